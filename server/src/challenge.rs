//! One open challenge and its rules, by the server's clock: frame spacing, the frame
//! budget, the upload window, and a single finish after the countdown (earlier only to
//! report a smile). The verdict itself is the core's [`Verdict`], fed with server times.

use smile_factor::challenge::outcome::{Outcome, Reason};
use smile_factor::challenge::prompt::{Mode, Prompt};
use smile_factor::challenge::verdict::{Verdict, VerdictConfig, VerdictConfigError};

use crate::error::ApiError;
use crate::prompts::{settle, LoggedFrame, PromptCheck, Schedule};
use crate::tokens::CtxClaims;

/// Frames may still arrive this long after the countdown (upload latency).
pub const WINDOW_GRACE_MS: u64 = 2_000;

/// Timing the server announces in the 201 answer.
#[derive(Debug, Clone, Copy, PartialEq)]
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
}

/// A challenge between its creation and its finish.
#[derive(Debug)]
pub struct Challenge {
    /// The validated ctx token's claims (sub, iss, nonce).
    pub ctx: CtxClaims,
    /// The exact login state the page sent.
    pub state: String,
    timing: Timing,
    started_ms: u64,
    verdict: Verdict,
    received: u32,
    last_frame_ms: Option<u64>,
    finished: bool,
    // Prompts hook: the secret schedule and the log of admitted crops (elapsed ms).
    schedule: Schedule,
    log: Vec<LoggedFrame>,
}

impl Challenge {
    /// Starts the countdown at `now_ms`.
    pub fn new(
        ctx: CtxClaims,
        state: String,
        timing: Timing,
        now_ms: u64,
        mode: Mode,
        schedule: Schedule,
    ) -> Result<Self, VerdictConfigError> {
        let cfg = VerdictConfig {
            // The core's limits (5..120 s) check the duration.
            duration_ms: timing.duration_ms as f64,
            mode,
            ..VerdictConfig::default()
        };
        let mut verdict = Verdict::new(cfg)?;
        verdict.start(0.0);
        Ok(Self {
            ctx,
            state,
            timing,
            started_ms: now_ms,
            verdict,
            received: 0,
            last_frame_ms: None,
            finished: false,
            schedule,
            log: Vec::new(),
        })
    }

    /// The mode the verdict runs in (signed into the token).
    pub fn mode(&self) -> Mode {
        self.verdict.config().mode
    }

    /// Prompts met out of prompts scheduled, on the crops logged so far.
    pub fn prompts(&self) -> PromptCheck {
        self.schedule
            .check(&self.log, self.verdict.config().threshold)
    }

    fn admitted(&self) -> Vec<u64> {
        self.log.iter().map(|f| f.at_ms).collect()
    }

    fn elapsed(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.started_ms)
    }

    /// Admits one frame at `now_ms` or says why not; an admitted frame counts against
    /// the budget and the spacing even if its analysis fails later. Gives the prompt
    /// this frame reveals, if any (the answer to the upload).
    pub fn admit_frame(&mut self, now_ms: u64) -> Result<Option<Prompt>, ApiError> {
        if self.finished {
            return Err(ApiError::Finished);
        }
        if self.elapsed(now_ms) > self.timing.duration_ms + WINDOW_GRACE_MS {
            return Err(ApiError::WindowOver);
        }
        if self.received >= self.timing.max_frames {
            return Err(ApiError::TooManyFrames(self.timing.max_frames));
        }
        let half = self.timing.frame_interval_ms / 2;
        if self
            .last_frame_ms
            .is_some_and(|last| now_ms.saturating_sub(last) < half)
        {
            return Err(ApiError::TooFast {
                interval_ms: self.timing.frame_interval_ms,
            });
        }
        self.received += 1;
        self.last_frame_ms = Some(now_ms);
        let at = self.elapsed(now_ms);
        // Only during the countdown: a crop in the grace period reveals nothing.
        let prompt = (at <= self.timing.duration_ms)
            .then(|| self.schedule.revealed_by(&self.admitted(), at))
            .flatten();
        self.log.push(LoggedFrame {
            at_ms: at,
            smile: None,
        });
        Ok(prompt)
    }

    /// Feeds the analysed frame admitted at `at_ms`: `smile` is `None` without a face.
    pub fn judge_frame(&mut self, at_ms: u64, smile: Option<f32>) {
        if !self.finished {
            let at = self.elapsed(at_ms);
            if let Some(f) = self.log.iter_mut().rev().find(|f| f.at_ms == at) {
                f.smile = smile;
            }
            let reveals = self.schedule.reveals(&self.admitted());
            if let Some(end) = self.schedule.excused_until(&reveals, at) {
                self.verdict.excuse_smiles_until(end as f64);
            }
            self.verdict.frame(at as f64, smile);
        }
    }

    /// Ends the challenge once: after the countdown, or earlier if a smile was seen.
    /// The last judged crop showed a face at or above the smile threshold.
    fn latest_crop_smiles(&self) -> bool {
        let latest = self.log.iter().rev().find(|f| f.smile.is_some());
        self.verdict
            .current_smile()
            .is_some_and(|s| s >= self.verdict.config().threshold)
            // A smile answering a prompt is no reason to end.
            && latest.is_none_or(|f| !self.verdict.excused_at(f.at_ms as f64))
    }

    pub fn finish(&mut self, now_ms: u64) -> Result<Outcome, ApiError> {
        if self.finished {
            return Err(ApiError::Finished);
        }
        let elapsed = self.elapsed(now_ms);
        let outcome = if elapsed < self.timing.duration_ms {
            // Smile mode passes only at the end, once every prompt had its turn.
            if self.mode() == Mode::Smile {
                return Err(ApiError::TooEarly);
            }
            match self.verdict.outcome() {
                Some(o) if o.reason == Some(Reason::Smiled) => *o,
                // About one crop a second cannot time a 300 ms hold between two crops: an
                // early finish is the page reporting a smile, and a smiling latest crop
                // confirms it. It can only fail the login, never pass it.
                None if self.latest_crop_smiles() => *self.verdict.fail(Reason::Smiled),
                _ => return Err(ApiError::TooEarly),
            }
        } else {
            *self
                .verdict
                .tick(elapsed as f64)
                .ok_or(ApiError::Internal)?
        };
        self.finished = true;
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

    fn challenge() -> Challenge {
        Challenge::new(
            ctx(),
            "s".into(),
            Timing::new(5_000, 1_000),
            10_000,
            Mode::Straight,
            no_prompts(),
        )
        .expect("valid")
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
        let schedule = Schedule {
            kind: mode.prompt_kind(),
            due_ms: vec![4_000, 9_000],
            ..no_prompts()
        };
        let mut c = Challenge::new(
            ctx(),
            "s".into(),
            Timing::new(15_000, 1_000),
            0,
            mode,
            schedule,
        )
        .expect("valid");
        let mut revealed = vec![];
        let mut shown: Option<u64> = None;
        for i in 0..15 {
            let t = 50 + i * 1_000;
            if c.admit_frame(t).expect("admitted").is_some() {
                revealed.push(t);
                shown = Some(t);
            }
            let since = shown.map(|s| t.saturating_sub(s));
            c.judge_frame(t, Some(score(since.unwrap_or(u64::MAX))));
        }
        let o = c.finish(15_100).expect("finished");
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

    #[test]
    fn budget_is_one_per_interval_plus_two() {
        assert_eq!(Timing::new(15_000, 1_000).max_frames, 17);
    }

    #[test]
    fn spacing_budget_and_window() {
        let mut c = challenge();
        assert!(c.admit_frame(10_000).is_ok());
        assert!(matches!(
            c.admit_frame(10_499),
            Err(ApiError::TooFast { .. })
        ));
        assert!(c.admit_frame(10_500).is_ok());
        assert!(matches!(c.admit_frame(17_001), Err(ApiError::WindowOver)));
    }

    #[test]
    fn smile_may_finish_early_a_pass_may_not() {
        let mut c = challenge();
        c.judge_frame(10_000, Some(0.1));
        assert!(matches!(c.finish(11_000), Err(ApiError::TooEarly)));
        c.judge_frame(12_000, Some(0.9));
        c.judge_frame(13_000, Some(0.9));
        let o = c.finish(13_000).expect("smiled");
        assert_eq!(o.reason, Some(Reason::Smiled));
        assert!(matches!(c.finish(20_000), Err(ApiError::Finished)));
    }

    #[test]
    fn one_smiling_latest_crop_confirms_an_early_smile_an_older_one_does_not() {
        let mut c = challenge();
        c.judge_frame(10_000, Some(0.9));
        c.judge_frame(11_000, Some(0.1));
        assert!(matches!(c.finish(11_500), Err(ApiError::TooEarly)));
        c.judge_frame(12_000, Some(0.8));
        let o = c.finish(12_100).expect("smiled");
        assert!(!o.notsmiling);
        assert_eq!(o.reason, Some(Reason::Smiled));
    }

    #[test]
    fn pass_after_the_countdown() {
        let mut c = challenge();
        for i in 0..5 {
            c.judge_frame(10_000 + i * 1_000, Some(0.01));
        }
        let o = c.finish(15_000).expect("over");
        assert!(o.notsmiling);
        assert_eq!(o.stats.frames_analysed, 5);
    }
}
