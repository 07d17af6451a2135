//! What a challenge ends with: pass or fail, the reason, and what was seen. Shared by the
//! verdict, the way back and the texts, and by nothing they depend on, so they all import
//! it without a circle.

use serde::Serialize;

/// Why the factor failed; sent as the `reason` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A smile was held at or above the threshold.
    Smiled,
    /// Too few frames (or none) showed a face.
    NoFace,
    /// The page was hidden during the countdown.
    Interrupted,
    /// The user refused camera access.
    CameraDenied,
    /// There is no camera, or it could not be started.
    CameraUnavailable,
    /// The camera stopped during the countdown (unplugged, taken by another app, its
    /// permission revoked): its track ended or stayed muted.
    CameraLost,
    /// Anything else went wrong (model load, config, ...).
    Error,
    /// A just-in-time prompt ("Quick, smile!") was not answered within its window.
    PromptMissed,
    /// Smile mode: no smile was held during the countdown.
    NoSmile,
}

impl Reason {
    /// The value sent in the query string.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Smiled => "smiled",
            Reason::NoFace => "no_face",
            Reason::Interrupted => "interrupted",
            Reason::CameraDenied => "camera_denied",
            Reason::CameraUnavailable => "camera_unavailable",
            Reason::CameraLost => "camera_lost",
            Reason::Error => "error",
            Reason::PromptMissed => "prompt_missed",
            Reason::NoSmile => "no_smile",
        }
    }

    /// Every reason.
    pub const ALL: [Reason; 9] = [
        Reason::Smiled,
        Reason::NoFace,
        Reason::Interrupted,
        Reason::CameraDenied,
        Reason::CameraUnavailable,
        Reason::CameraLost,
        Reason::Error,
        Reason::PromptMissed,
        Reason::NoSmile,
    ];

    /// The reason sent as `s` (the verifier's answers use the same names).
    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the verdict saw, reported with the outcome (and live while running).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Frames fed while running, with or without a face.
    pub frames_analysed: u32,
    /// Share of analysed frames with a face; 0 when none were analysed.
    pub face_seen_ratio: f64,
    /// Highest smile score seen (0..=1).
    pub max_smile_score: f32,
    /// Active (unpaused) time in milliseconds.
    pub elapsed_ms: f64,
}

/// The final, immutable result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// True only when the user passed; then `reason` is `None`.
    pub notsmiling: bool,
    /// Why the factor failed; `None` when it passed.
    pub reason: Option<Reason>,
    /// What was seen up to the decision.
    pub stats: Stats,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_parse_back() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        assert_eq!(Reason::parse("Smiled"), None);
        assert_eq!(Reason::parse(""), None);
    }
}
