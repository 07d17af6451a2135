//! The mode of a challenge and its just-in-time prompts, shared by the page (which
//! shows a prompt) and the verifier server (which draws, reveals and checks them).
//!
//! A prompt asks for the opposite of what the mode asks for the rest of the countdown:
//! in `straight` mode "Quick, smile!", in `smile` mode "Quick, straight face!". It is
//! revealed only when due, in the answer to a crop upload, so a recording cannot know it.
//! Depends on nothing here.

use serde::{Deserialize, Serialize};

/// What passes: a straight face for the whole countdown (the default), or a held smile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Straight,
    Smile,
}

impl Mode {
    /// The name in the config, the create request and the verdict token.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Straight => "straight",
            Mode::Smile => "smile",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        [Mode::Straight, Mode::Smile]
            .into_iter()
            .find(|m| m.as_str() == s)
    }

    /// The kind of prompt that interrupts this mode.
    pub fn prompt_kind(self) -> PromptKind {
        match self {
            Mode::Straight => PromptKind::Smile,
            Mode::Smile => PromptKind::Straight,
        }
    }
}

/// What a prompt asks for. A field, not a constant, so that other kinds can be added
/// once there is labelled data to calibrate them on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptKind {
    /// A smile at or above the threshold.
    Smile,
    /// A face below the threshold.
    Straight,
}

impl PromptKind {
    /// The name on the wire and in the prompt element's `data-kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            PromptKind::Smile => "smile",
            PromptKind::Straight => "straight",
        }
    }

    /// Whether a crop with this smile score (`None`: no face) answers the prompt.
    pub fn met_by(self, smile: Option<f32>, threshold: f32) -> bool {
        match (self, smile.filter(|s| s.is_finite())) {
            (PromptKind::Smile, Some(s)) => s >= threshold,
            (PromptKind::Straight, Some(s)) => s < threshold,
            (_, None) => false,
        }
    }
}

/// A revealed prompt: `{"kind": "smile", "within_ms": 2500}` in a crop upload's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub kind: PromptKind,
    /// How long after the reveal a crop may answer it, by the server's clock.
    pub within_ms: u64,
}

/// Simple reaction time to a visual cue: about 200-250 ms (e.g. Welford 1980; Kosinski's
/// review of reaction-time studies). The upper end, since the cue comes unannounced.
pub const REACTION_MS: u64 = 250;
/// From the decision to a visible smile: zygomaticus major activity starts 300-500 ms
/// after a smile is seen (Dimberg & Thunberg 1998, facial EMG); the net scores a smile
/// once the lip corners are up, so the upper end.
pub const SMILE_ONSET_MS: u64 = 500;
/// The prompt's way to the eye: the server's analysis of the revealing crop (20-50 ms),
/// the answer on the wire, and the page painting it.
pub const ANSWER_MS: u64 = 250;
/// After the window a smile may take this long to fade: it is neither required nor held
/// against the user (the page and the server both excuse it).
pub const RELAX_MS: u64 = 1_000;

/// The window for a crop to answer a prompt, for crops sent every `frame_interval_ms`:
/// a cooperative user smiles about `REACTION_MS + SMILE_ONSET_MS + ANSWER_MS` (1 s) after
/// the reveal; the page then sends the crop of that moment at once (it may go half an
/// interval after the previous one), and the window leaves one more whole interval for a
/// slower face or a lost upload. At the default 1 s interval: 2.5 s.
pub fn within_ms(frame_interval_ms: u64) -> u64 {
    REACTION_MS + SMILE_ONSET_MS + ANSWER_MS + frame_interval_ms.saturating_mul(3) / 2
}

/// Bounds a page accepts on `within_ms`, so a wrong answer cannot pin the prompt forever.
pub const MIN_WITHIN_MS: u64 = 500;
pub const MAX_WITHIN_MS: u64 = 10_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_kinds_have_their_wire_names() {
        assert_eq!(Mode::default(), Mode::Straight);
        for m in [Mode::Straight, Mode::Smile] {
            assert_eq!(Mode::parse(m.as_str()), Some(m));
        }
        assert_eq!(Mode::parse("Smile"), None);
        assert_eq!(Mode::Straight.prompt_kind(), PromptKind::Smile);
        assert_eq!(Mode::Smile.prompt_kind(), PromptKind::Straight);
        let p: Prompt =
            serde_json::from_str(r#"{"kind":"straight","within_ms":2500}"#).expect("a prompt");
        assert_eq!(p.kind, PromptKind::Straight);
        assert_eq!(
            serde_json::to_string(&Prompt {
                kind: PromptKind::Smile,
                within_ms: 2000
            })
            .expect("json"),
            r#"{"kind":"smile","within_ms":2000}"#
        );
    }

    #[test]
    fn a_kind_is_met_by_its_side_of_the_threshold_and_never_without_a_face() {
        assert!(PromptKind::Smile.met_by(Some(0.5), 0.5));
        assert!(!PromptKind::Smile.met_by(Some(0.49), 0.5));
        assert!(PromptKind::Straight.met_by(Some(0.49), 0.5));
        assert!(!PromptKind::Straight.met_by(Some(0.5), 0.5));
        for k in [PromptKind::Smile, PromptKind::Straight] {
            assert!(!k.met_by(None, 0.5));
            assert!(!k.met_by(Some(f32::NAN), 0.5));
        }
    }

    #[test]
    fn the_window_covers_a_reaction_and_one_more_crop() {
        assert_eq!(within_ms(1_000), 2_500);
        // Always longer than the reaction and the next crop's interval.
        for interval in [200, 500, 1_000, 2_000] {
            assert!(within_ms(interval) >= REACTION_MS + SMILE_ONSET_MS + interval);
        }
    }
}
