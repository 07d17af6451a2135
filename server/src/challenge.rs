//! One challenge and its rules, by the server's clock: frame spacing, the frame budget,
//! the upload window, and a single finish after the countdown (earlier only to report a
//! smile). The verdict itself is the core's [`Verdict`], fed with server times.
//!
//! A challenge's state is what [`crate::store`] keeps, in any number of server instances:
//! an immutable [`Record`] written once at creation, an append-only log of
//! [`FrameEntry`] (each scored once its crop is analysed), and a once-only finished flag.
//! Nothing else is mutable: the verdict is recomputed from the record and the log
//! whenever it is needed, so an instance holds no state of its own between requests.

use serde::{Deserialize, Serialize};
use smile_factor::challenge::outcome::{Outcome, Reason};
use smile_factor::challenge::prompt::{Mode, Prompt};
use smile_factor::challenge::verdict::{Verdict, VerdictConfig, VerdictConfigError};

use crate::error::ApiError;
use crate::prompts::{settle, LoggedFrame, PromptCheck, Schedule};
use crate::tokens::CtxClaims;

/// Frames may still arrive this long after the countdown (upload latency).
pub const WINDOW_GRACE_MS: u64 = 2_000;

/// Timing the server announces in the 201 answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub duration_ms: u64,
    pub frame_interval_ms: u64,
    pub max_frames: u32,
}

impl Timing {
    /// A budget of one frame per interval over the countdown, plus two for jitter.
    pub fn new(duration_ms: u64, frame_interval_ms: u64) -> Self {
        let per = duration_ms.div_ceil(frame_interval_ms.max(1));
        let max_frames = u32::try_from(per).unwrap_or(u32::MAX).saturating_add(2);
        Self {
            duration_ms,
            frame_interval_ms,
            max_frames,
        }
    }

    /// Time from the start after which no frame is admitted.
    pub fn window_ms(&self) -> u64 {
        self.duration_ms + WINDOW_GRACE_MS
    }
}

/// What a challenge is, written once when it is opened and never changed. Stored as JSON
/// (Redis) or as is (memory); new fields need `#[serde(default)]` so that records written
/// by an older instance during a rolling update still load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The validated ctx token's claims (sub, iss, nonce).
    pub ctx: CtxClaims,
    /// The exact login state the page sent.
    pub state: String,
    pub timing: Timing,
    /// Server time of the creation: the countdown's start.
    pub started_ms: u64,
    /// Straight face to pass (the default) or a smile; signed into the token.
    #[serde(default)]
    pub mode: Mode,
    /// The secret prompt schedule. Required: a record without one (from an instance
    /// before prompts) fails to load, so it can end only without a token.
    pub schedule: Schedule,
}

impl Record {
    /// Milliseconds of the countdown at server time `at_ms`.
    pub fn elapsed(&self, at_ms: u64) -> u64 {
        at_ms.saturating_sub(self.started_ms)
    }
}

/// The analysis of one admitted frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Score {
    /// Admitted, analysis still running (possibly on another instance).
    Pending,
    /// A face with this smile score.
    Face { smile: f32 },
    /// No face in the crop.
    NoFace,
    /// The analysis failed (internal error): the frame counts for the budget only.
    Failed,
}

impl Score {
    /// From the judge's answer: `None` when there was no face.
    pub fn of(smile: Option<f32>) -> Self {
        smile.map_or(Self::NoFace, |smile| Self::Face { smile })
    }

    /// `Some(smile)` once analysed, as the core's verdict takes it.
    fn analysed(self) -> Option<Option<f32>> {
        match self {
            Self::Face { smile } => Some(Some(smile)),
            Self::NoFace => Some(None),
            Self::Pending | Self::Failed => None,
        }
    }
}

/// One entry of a challenge's frame log.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrameEntry {
    /// Server time the frame arrived (the spacing and window rules judge this).
    pub at_ms: u64,
    pub score: Score,
}

/// A challenge as read from the store at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub record: Record,
    /// In admission order.
    pub frames: Vec<FrameEntry>,
    pub finished: bool,
}

impl Snapshot {
    /// A frame is admitted but not scored yet.
    pub fn has_pending(&self) -> bool {
        self.frames.iter().any(|f| f.score == Score::Pending)
    }

    /// Says whether one more frame may be admitted at `now_ms`; an admitted frame counts
    /// against the budget and the spacing even if its analysis fails later.
    pub fn admit(&self, now_ms: u64) -> Result<(), ApiError> {
        if self.finished {
            return Err(ApiError::Finished);
        }
        let timing = &self.record.timing;
        if self.record.elapsed(now_ms) > timing.window_ms() {
            return Err(ApiError::WindowOver);
        }
        if self.frames.len() >= usize::try_from(timing.max_frames).unwrap_or(usize::MAX) {
            return Err(ApiError::TooManyFrames(timing.max_frames));
        }
        let half = timing.frame_interval_ms / 2;
        if self
            .frames
            .last()
            .is_some_and(|last| now_ms.saturating_sub(last.at_ms) < half)
        {
            return Err(ApiError::TooFast {
                interval_ms: timing.frame_interval_ms,
            });
        }
        Ok(())
    }

    /// Countdown times of every admitted frame, in admission order.
    fn admitted(&self) -> Vec<u64> {
        self.frames
            .iter()
            .map(|f| self.record.elapsed(f.at_ms))
            .collect()
    }

    /// The prompt a frame admitted at `now_ms` reveals, if any: the answer to its upload.
    /// Only during the countdown; a crop in the grace period reveals nothing.
    pub fn reveals(&self, now_ms: u64) -> Option<Prompt> {
        let at = self.record.elapsed(now_ms);
        (at <= self.record.timing.duration_ms)
            .then(|| self.record.schedule.revealed_by(&self.admitted(), at))
            .flatten()
    }

    /// Prompts met out of prompts scheduled, on the crops analysed so far.
    pub fn prompts(&self) -> PromptCheck {
        let log: Vec<LoggedFrame> = self
            .frames
            .iter()
            .map(|f| LoggedFrame {
                at_ms: self.record.elapsed(f.at_ms),
                smile: f.score.analysed().flatten(),
            })
            .collect();
        self.record
            .schedule
            .check(&log, VerdictConfig::default().threshold)
    }

    /// The core's verdict fed with every analysed frame, in admission order; a smile in
    /// a revealed prompt's window is excused (it answers the prompt).
    pub fn verdict(&self) -> Result<Verdict, VerdictConfigError> {
        let cfg = VerdictConfig {
            // The core's limits (5..120 s) check the duration.
            duration_ms: self.record.timing.duration_ms as f64,
            mode: self.record.mode,
            ..VerdictConfig::default()
        };
        let mut verdict = Verdict::new(cfg)?;
        verdict.start(0.0);
        let schedule = &self.record.schedule;
        let reveals = schedule.reveals(&self.admitted());
        for f in &self.frames {
            if let Some(smile) = f.score.analysed() {
                let at = self.record.elapsed(f.at_ms);
                if let Some(end) = schedule.excused_until(&reveals, at) {
                    verdict.excuse_smiles_until(end as f64);
                }
                verdict.frame(at as f64, smile);
            }
        }
        Ok(verdict)
    }

    /// The outcome if the challenge may end at `now_ms`: after the countdown, or earlier if
    /// a smile was seen. The caller then sets the finished flag (once, atomically).
    pub fn decide(&self, now_ms: u64) -> Result<Outcome, ApiError> {
        if self.finished {
            return Err(ApiError::Finished);
        }
        let mut verdict = self.verdict().map_err(|_| ApiError::Internal)?;
        let elapsed = self.record.elapsed(now_ms);
        let outcome = if elapsed < self.record.timing.duration_ms {
            // Smile mode passes only at the end, once every prompt had its turn.
            if self.record.mode == Mode::Smile {
                return Err(ApiError::TooEarly);
            }
            // The last judged crop showed a face at or above the smile threshold, and
            // not in answer to a prompt.
            let latest = self.frames.iter().rev().find_map(|f| {
                f.score
                    .analysed()
                    .map(|_| self.record.elapsed(f.at_ms) as f64)
            });
            let latest_smiles = verdict
                .current_smile()
                .is_some_and(|s| s >= verdict.config().threshold)
                && latest.is_none_or(|at| !verdict.excused_at(at));
            match verdict.outcome() {
                // About one crop a second cannot time a 300 ms hold between two crops: an
                // early finish is the page reporting a smile, and a smiling latest crop
                // confirms it. It can only fail the login, never pass it.
                Some(o) if o.reason == Some(Reason::Smiled) => *o,
                None if latest_smiles => *verdict.fail(Reason::Smiled),
                _ => return Err(ApiError::TooEarly),
            }
        } else {
            *verdict.tick(elapsed as f64).ok_or(ApiError::Internal)?
        };
        Ok(settle(outcome, self.prompts()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> CtxClaims {
        CtxClaims {
            sub: "u".into(),
            iss: "t".into(),
            exp: 0,
            iat: None,
            use_: "smile-ctx".into(),
            nonce: "n".into(),
            v: 1,
        }
    }

    fn challenge() -> Snapshot {
        Snapshot {
            record: Record {
                ctx: ctx(),
                state: "s".into(),
                timing: Timing::new(5_000, 1_000),
                started_ms: 10_000,
                mode: Mode::Straight,
                schedule: no_prompts(),
            },
            frames: Vec::new(),
            finished: false,
        }
    }

    fn no_prompts() -> Schedule {
        Schedule {
            kind: smile_factor::challenge::prompt::PromptKind::Smile,
            within_ms: 2_500,
            relax_ms: 1_000,
            due_ms: vec![],
        }
    }

    /// A 15 s challenge started at 0 with prompts due at 4 s and 9 s in `mode`, fed one
    /// crop a second with `score(t)`; gives the prompts revealed and the outcome.
    fn run_prompted(mode: Mode, score: impl Fn(u64) -> f32) -> (Vec<u64>, Outcome) {
        let mut c = challenge();
        c.record.timing = Timing::new(15_000, 1_000);
        c.record.started_ms = 0;
        c.record.mode = mode;
        c.record.schedule = Schedule {
            kind: mode.prompt_kind(),
            due_ms: vec![4_000, 9_000],
            ..no_prompts()
        };
        let mut revealed = vec![];
        let mut shown: Option<u64> = None;
        for i in 0..15 {
            let t = 50 + i * 1_000;
            c.admit(t).expect("admitted");
            if c.reveals(t).is_some() {
                revealed.push(t);
                shown = Some(t);
            }
            let since = shown.map(|s| t.saturating_sub(s));
            frame(&mut c, t, Some(score(since.unwrap_or(u64::MAX))));
        }
        let o = c.decide(15_100).expect("finished");
        (revealed, o)
    }

    #[test]
    fn prompts_are_revealed_by_the_first_crop_due_and_checked_at_finish() {
        // Smiles on the crop after each reveal (1 s later), neutral otherwise.
        let (revealed, o) = run_prompted(
            Mode::Straight,
            |since| {
                if since == 1_000 {
                    0.9
                } else {
                    0.05
                }
            },
        );
        assert_eq!(revealed, vec![4_050, 9_050]);
        assert!(o.notsmiling, "{o:?}");
        // Ignoring them.
        let (_, o) = run_prompted(Mode::Straight, |_| 0.05);
        assert_eq!(o.reason, Some(Reason::PromptMissed));
        // Smiling all the time.
        let (_, o) = run_prompted(Mode::Straight, |_| 0.9);
        assert_eq!(o.reason, Some(Reason::Smiled));
        // A smile kept on after the first prompt fails once its window is over.
        let (_, o) = run_prompted(Mode::Straight, |since| {
            if (1_000..u64::MAX).contains(&since) {
                0.9
            } else {
                0.05
            }
        });
        assert_eq!(o.reason, Some(Reason::Smiled));
    }

    #[test]
    fn smile_mode_passes_a_smile_that_obeys_its_straight_prompts() {
        let (_, o) = run_prompted(Mode::Smile, |since| {
            if since == 1_000 || since == 2_000 {
                0.05
            } else {
                0.9
            }
        });
        assert!(o.notsmiling, "{o:?}");
        let (_, o) = run_prompted(Mode::Smile, |_| 0.05);
        assert_eq!(o.reason, Some(Reason::NoSmile));
        let (_, o) = run_prompted(Mode::Smile, |_| 0.9);
        assert_eq!(o.reason, Some(Reason::PromptMissed));
    }

    /// Admits and scores one frame as the API does.
    fn frame(c: &mut Snapshot, at_ms: u64, smile: Option<f32>) {
        c.frames.push(FrameEntry {
            at_ms,
            score: Score::of(smile),
        });
    }

    #[test]
    fn budget_is_one_per_interval_plus_two() {
        assert_eq!(Timing::new(15_000, 1_000).max_frames, 17);
    }

    #[test]
    fn spacing_budget_and_window() {
        let mut c = challenge();
        assert!(c.admit(10_000).is_ok());
        frame(&mut c, 10_000, None);
        assert!(matches!(c.admit(10_499), Err(ApiError::TooFast { .. })));
        assert!(c.admit(10_500).is_ok());
        assert!(matches!(c.admit(17_001), Err(ApiError::WindowOver)));
        for i in 1..7 {
            frame(&mut c, 10_000 + i * 1_000, None);
        }
        assert!(matches!(c.admit(17_000), Err(ApiError::TooManyFrames(7))));
        c.finished = true;
        assert!(matches!(c.admit(11_000), Err(ApiError::Finished)));
    }

    #[test]
    fn smile_may_finish_early_a_pass_may_not() {
        let mut c = challenge();
        frame(&mut c, 10_000, Some(0.1));
        assert!(matches!(c.decide(11_000), Err(ApiError::TooEarly)));
        frame(&mut c, 12_000, Some(0.9));
        frame(&mut c, 13_000, Some(0.9));
        let o = c.decide(13_000).expect("smiled");
        assert_eq!(o.reason, Some(Reason::Smiled));
        c.finished = true;
        assert!(matches!(c.decide(20_000), Err(ApiError::Finished)));
    }

    #[test]
    fn one_smiling_latest_crop_confirms_an_early_smile_an_older_one_does_not() {
        let mut c = challenge();
        frame(&mut c, 10_000, Some(0.9));
        frame(&mut c, 11_000, Some(0.1));
        assert!(matches!(c.decide(11_500), Err(ApiError::TooEarly)));
        frame(&mut c, 12_000, Some(0.8));
        let o = c.decide(12_100).expect("smiled");
        assert!(!o.notsmiling);
        assert_eq!(o.reason, Some(Reason::Smiled));
    }

    #[test]
    fn pass_after_the_countdown() {
        let mut c = challenge();
        for i in 0..5 {
            frame(&mut c, 10_000 + i * 1_000, Some(0.01));
        }
        let o = c.decide(15_000).expect("over");
        assert!(o.notsmiling);
        assert_eq!(o.stats.frames_analysed, 5);
    }

    #[test]
    fn pending_and_failed_frames_are_not_judged() {
        let mut c = challenge();
        for i in 0..4 {
            frame(&mut c, 10_000 + i * 1_000, Some(0.01));
        }
        // A smiling crop still in analysis, and one whose analysis failed.
        c.frames.push(FrameEntry {
            at_ms: 14_000,
            score: Score::Pending,
        });
        c.frames.push(FrameEntry {
            at_ms: 14_600,
            score: Score::Failed,
        });
        assert!(c.has_pending());
        let o = c.decide(15_000).expect("over");
        assert_eq!(o.stats.frames_analysed, 4);
        c.frames[4].score = Score::Face { smile: 0.95 };
        assert!(!c.has_pending());
        assert_eq!(c.verdict().expect("cfg").stats(5_000.0).frames_analysed, 5);
    }

    #[test]
    fn the_record_survives_json_and_tolerates_added_fields() {
        let c = challenge();
        let json = serde_json::to_value(&c.record).expect("json");
        let back: Record = serde_json::from_value(json.clone()).expect("back");
        assert_eq!(back, c.record);
        // A newer instance may add fields; an older one must still read the record.
        let mut newer = json.clone();
        newer["colour"] = "blue".into();
        let back: Record = serde_json::from_value(newer).expect("with an added field");
        assert_eq!(back, c.record);
        // A record without a prompt schedule is refused rather than run without prompts.
        let mut older = json;
        older.as_object_mut().expect("object").remove("schedule");
        assert!(serde_json::from_value::<Record>(older).is_err());
    }
}
