//! The verdict: from analysed frames and elapsed time, decides whether the user passed
//! (did not smile), smiled, showed no face, or left the page.
//!
//! [`Verdict`] is a pure state machine. Every input carries its own timestamp in
//! milliseconds (`performance.now()` in the page), so it is tested natively with explicit
//! times; [`crate::challenge::session::Session`] ties it to a clock and a redirector for the page.
//!
//! Elapsed time is *active* time only: while paused the countdown stands still and frames
//! are ignored. Timestamps that are not finite or run backwards never advance time and
//! never count as frames, so a bad clock cannot pass the factor.
//!
//! Long only with its unit tests (half the file): one state machine, tested rule by rule.

use thiserror::Error;

use crate::challenge::outcome::{Outcome, Reason, Stats};
use crate::challenge::prompt::Mode;

/// Smile score (the smile head's) at or above which a frame counts as smiling. Calibrated
/// by 5-fold cross-validation on GENKI-4K dev: the mean of the thresholds that maximise
/// balanced accuracy in each fold's training part (0.49 ± 0.04 over the folds;
/// `models/smile_head/cv.json`, README "Accuracy").
pub const DEFAULT_THRESHOLD: f32 = 0.49;
/// Default countdown length.
pub const DEFAULT_DURATION_MS: f64 = 15_000.0;
/// Shortest allowed countdown.
pub const MIN_DURATION_MS: f64 = 5_000.0;
/// Longest allowed countdown.
pub const MAX_DURATION_MS: f64 = 120_000.0;
/// Default time a smile must be held to count.
pub const DEFAULT_HOLD_MS: f64 = 300.0;
/// Longest allowed hold time (a longer one would make smiling nearly free).
pub const MAX_HOLD_MS: f64 = 5_000.0;
/// Default share of analysed frames that must contain a face to pass.
pub const DEFAULT_MIN_FACE_RATIO: f64 = 0.8;

/// Tuning of the verdict; build it with [`crate::challenge::config::Config::verdict_config`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VerdictConfig {
    /// Countdown length in active milliseconds.
    pub duration_ms: f64,
    /// Smile score at or above which a frame counts as smiling (0 < t < 1).
    pub threshold: f32,
    /// How long the score must stay at or above the threshold, in milliseconds.
    pub hold_ms: f64,
    /// Share of analysed frames (0..=1) that must contain a face to pass.
    pub min_face_ratio: f64,
    /// `Straight`: a held smile fails at once. `Smile`: a held smile is what passes, at
    /// the countdown's end (so that every prompt is shown), and none fails `no_smile`.
    pub mode: Mode,
}

impl Default for VerdictConfig {
    fn default() -> Self {
        Self {
            duration_ms: DEFAULT_DURATION_MS,
            threshold: DEFAULT_THRESHOLD,
            hold_ms: DEFAULT_HOLD_MS,
            min_face_ratio: DEFAULT_MIN_FACE_RATIO,
            mode: Mode::Straight,
        }
    }
}

/// A [`VerdictConfig`] value outside its range (NaN included).
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum VerdictConfigError {
    /// `duration_ms` is outside [`MIN_DURATION_MS`]..=[`MAX_DURATION_MS`].
    #[error("the duration must be between {MIN_DURATION_MS} and {MAX_DURATION_MS} ms, found {0}")]
    Duration(f64),
    /// `threshold` is not strictly between 0 and 1.
    #[error("the smile threshold must be strictly between 0 and 1, found {0}")]
    Threshold(f32),
    /// `hold_ms` is outside 0..=[`MAX_HOLD_MS`].
    #[error("the smile hold time must be between 0 and {MAX_HOLD_MS} ms, found {0}")]
    Hold(f64),
    /// `min_face_ratio` is outside 0..=1.
    #[error("the minimum face ratio must be between 0 and 1, found {0}")]
    FaceRatio(f64),
}

impl VerdictConfig {
    /// Checks every field; `RangeInclusive::contains` also rejects NaN.
    pub fn validate(&self) -> Result<(), VerdictConfigError> {
        if !(MIN_DURATION_MS..=MAX_DURATION_MS).contains(&self.duration_ms) {
            return Err(VerdictConfigError::Duration(self.duration_ms));
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(VerdictConfigError::Threshold(self.threshold));
        }
        if !(0.0..=MAX_HOLD_MS).contains(&self.hold_ms) {
            return Err(VerdictConfigError::Hold(self.hold_ms));
        }
        if !(0.0..=1.0).contains(&self.min_face_ratio) {
            return Err(VerdictConfigError::FaceRatio(self.min_face_ratio));
        }
        Ok(())
    }
}

/// Where the challenge is, for the page's screens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum State {
    /// `start` has not been called yet.
    NotStarted,
    /// The countdown runs and frames count.
    Running,
    /// The countdown stands still and frames are ignored.
    Paused,
    /// Finished; the outcome never changes.
    Decided(Outcome),
}

/// Before the decision; after it `Verdict::outcome` is set and wins.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    NotStarted,
    Running,
    Paused,
}

/// The verdict state machine. See the module docs for the rules.
#[derive(Debug, Clone)]
pub struct Verdict {
    cfg: VerdictConfig,
    phase: Phase,
    outcome: Option<Outcome>,
    /// Active time banked before the current running stretch.
    active_before_ms: f64,
    /// When the current running stretch began.
    resumed_at_ms: f64,
    /// Latest accepted timestamp; time never goes back past it.
    last_ms: Option<f64>,
    frames: u32,
    faces: u32,
    max_smile: f32,
    current_smile: Option<f32>,
    /// Active time of the first frame of the current run at/above the threshold.
    /// Active (not wall) time, so pausing mid-smile neither resets nor completes the run.
    run_start_ms: Option<f64>,
    /// Until this input time a smile neither fails nor passes: a prompt's window, where
    /// the prompt asked for the opposite of the mode.
    excused_until_ms: f64,
    /// Smile mode: a smile was held outside any prompt window.
    held_smile: bool,
}

impl Verdict {
    /// A verdict that has not started. Fails if a config value is out of range.
    pub fn new(cfg: VerdictConfig) -> Result<Self, VerdictConfigError> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            phase: Phase::NotStarted,
            outcome: None,
            active_before_ms: 0.0,
            resumed_at_ms: 0.0,
            last_ms: None,
            frames: 0,
            faces: 0,
            max_smile: 0.0,
            current_smile: None,
            run_start_ms: None,
            excused_until_ms: f64::NEG_INFINITY,
            held_smile: false,
        })
    }

    /// A prompt was shown at `now_ms`: until `until_ms` (same clock as the frames), smiles
    /// do not count towards a hold, in either direction. A later call may only extend it.
    pub fn excuse_smiles_until(&mut self, until_ms: f64) {
        if until_ms.is_finite() {
            self.excused_until_ms = self.excused_until_ms.max(until_ms);
        }
    }

    /// Whether smiles are excused at `now_ms` (a prompt's window is open).
    pub fn excused_at(&self, now_ms: f64) -> bool {
        now_ms < self.excused_until_ms
    }

    /// The config this verdict runs with.
    pub fn config(&self) -> &VerdictConfig {
        &self.cfg
    }

    /// Starts the countdown; ignored unless not started yet.
    pub fn start(&mut self, now_ms: f64) {
        if self.outcome.is_none() && self.phase == Phase::NotStarted {
            let t = self.accept_time(now_ms);
            self.resumed_at_ms = t;
            self.phase = Phase::Running;
        }
    }

    /// Feeds one analysed frame: `smile` is the largest face's score, `None` if no face.
    ///
    /// Ignored unless running, and when `now_ms` is not finite or earlier than a previous
    /// input. Decides `smiled` once the hold time is reached, and the countdown end when
    /// the frame is past it. Returns the outcome once decided (now or earlier).
    pub fn frame(&mut self, now_ms: f64, smile: Option<f32>) -> Option<&Outcome> {
        if self.outcome.is_some() || self.phase != Phase::Running {
            return self.outcome.as_ref();
        }
        // A frame at a bad time cannot be placed in the hold run; dropping it is safest.
        if !now_ms.is_finite() || self.last_ms.is_some_and(|last| now_ms < last) {
            return None;
        }
        self.last_ms = Some(now_ms);
        let active = self.active_ms(now_ms);
        self.frames = self.frames.saturating_add(1);
        // A NaN score is treated as no face: it must not help the face ratio.
        let score = smile.filter(|s| s.is_finite()).map(|s| s.clamp(0.0, 1.0));
        self.current_smile = score;
        match score {
            Some(s) => {
                self.faces = self.faces.saturating_add(1);
                self.max_smile = self.max_smile.max(s);
                if s >= self.cfg.threshold && !self.excused_at(now_ms) {
                    let start = *self.run_start_ms.get_or_insert(active);
                    if active - start >= self.cfg.hold_ms {
                        match self.cfg.mode {
                            Mode::Straight => {
                                self.decide(Some(Reason::Smiled), active);
                                return self.outcome.as_ref();
                            }
                            Mode::Smile => self.held_smile = true,
                        }
                    }
                } else {
                    self.run_start_ms = None;
                }
            }
            None => self.run_start_ms = None,
        }
        if active >= self.cfg.duration_ms {
            self.decide_end(active);
        }
        self.outcome.as_ref()
    }

    /// Advances the countdown; decides `passed` or `no_face` when it has run out.
    /// Returns the outcome once decided (now or earlier).
    pub fn tick(&mut self, now_ms: f64) -> Option<&Outcome> {
        if self.outcome.is_none() && self.phase == Phase::Running {
            let t = self.accept_time(now_ms);
            let active = self.active_ms(t);
            if active >= self.cfg.duration_ms {
                self.decide_end(active);
            }
        }
        self.outcome.as_ref()
    }

    /// Stops the countdown; it never decides, so pausing cannot pass the factor.
    pub fn pause(&mut self, now_ms: f64) {
        if self.outcome.is_none() && self.phase == Phase::Running {
            let t = self.accept_time(now_ms);
            self.active_before_ms = self.active_ms(t);
            self.phase = Phase::Paused;
        }
    }

    /// Restarts the countdown after [`Verdict::pause`].
    pub fn resume(&mut self, now_ms: f64) {
        if self.outcome.is_none() && self.phase == Phase::Paused {
            self.resumed_at_ms = self.accept_time(now_ms);
            self.phase = Phase::Running;
        }
    }

    /// The page was hidden: decides `interrupted` if running or paused.
    /// Before `start` it is ignored (nothing was being measured yet).
    pub fn hidden(&mut self, now_ms: f64) -> Option<&Outcome> {
        if self.outcome.is_none() && self.phase != Phase::NotStarted {
            let t = self.accept_time(now_ms);
            let active = self.active_ms(t);
            self.decide(Some(Reason::Interrupted), active);
        }
        self.outcome.as_ref()
    }

    /// Decides a failure from outside (camera denied, error, ...) in any state.
    /// If already decided, returns the earlier outcome unchanged.
    pub fn fail(&mut self, reason: Reason) -> &Outcome {
        let t = self.last_ms.unwrap_or(self.resumed_at_ms);
        let outcome = self.outcome_with(Some(reason), self.active_ms(t));
        self.outcome.get_or_insert(outcome)
    }

    /// Milliseconds left on the countdown: the full duration before start, 0 once decided.
    pub fn remaining_ms(&self, now_ms: f64) -> f64 {
        if self.outcome.is_some() {
            return 0.0;
        }
        let active = self.active_ms(self.clamp_time(now_ms));
        (self.cfg.duration_ms - active).max(0.0)
    }

    /// Whole seconds left, rounded up, for the countdown display.
    pub fn remaining_secs(&self, now_ms: f64) -> u32 {
        // `as` saturates; the value is within 0..=120 anyway.
        (self.remaining_ms(now_ms) / 1000.0).ceil() as u32
    }

    /// The latest frame's smile score for the meter; `None` if it had no face.
    pub fn current_smile(&self) -> Option<f32> {
        self.current_smile
    }

    /// Where the challenge is.
    pub fn state(&self) -> State {
        match (self.outcome, self.phase) {
            (Some(outcome), _) => State::Decided(outcome),
            (None, Phase::NotStarted) => State::NotStarted,
            (None, Phase::Running) => State::Running,
            (None, Phase::Paused) => State::Paused,
        }
    }

    /// The outcome, once decided.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Live stats at `now_ms`; after the decision, the stats of the outcome.
    pub fn stats(&self, now_ms: f64) -> Stats {
        match self.outcome {
            Some(outcome) => outcome.stats,
            None => self.stats_at(self.active_ms(self.clamp_time(now_ms))),
        }
    }

    /// `now_ms` if usable, else the latest accepted time: time never runs backwards.
    fn clamp_time(&self, now_ms: f64) -> f64 {
        if now_ms.is_finite() && self.last_ms.is_none_or(|last| now_ms >= last) {
            now_ms
        } else {
            // Before any valid time, 0 is as good as any origin; later times only add.
            self.last_ms.unwrap_or(0.0)
        }
    }

    fn accept_time(&mut self, now_ms: f64) -> f64 {
        let t = self.clamp_time(now_ms);
        self.last_ms = Some(t);
        t
    }

    /// Active time at `t`, where `t` is never before the current stretch began.
    fn active_ms(&self, t: f64) -> f64 {
        match self.phase {
            Phase::Running => self.active_before_ms + (t - self.resumed_at_ms).max(0.0),
            Phase::NotStarted | Phase::Paused => self.active_before_ms,
        }
    }

    fn face_ratio(&self) -> f64 {
        if self.frames == 0 {
            0.0
        } else {
            // Division (not multiplication) so that e.g. 4/5 compares equal to 0.8.
            f64::from(self.faces) / f64::from(self.frames)
        }
    }

    fn stats_at(&self, elapsed_ms: f64) -> Stats {
        Stats {
            frames_analysed: self.frames,
            face_seen_ratio: self.face_ratio(),
            max_smile_score: self.max_smile,
            elapsed_ms,
        }
    }

    fn outcome_with(&self, reason: Option<Reason>, elapsed_ms: f64) -> Outcome {
        Outcome {
            notsmiling: reason.is_none(),
            reason,
            stats: self.stats_at(elapsed_ms),
        }
    }

    fn decide(&mut self, reason: Option<Reason>, elapsed_ms: f64) {
        if self.outcome.is_none() {
            self.outcome = Some(self.outcome_with(reason, elapsed_ms));
        }
    }

    /// The countdown ran out without a held smile: pass only with enough face frames.
    fn decide_end(&mut self, elapsed_ms: f64) {
        let enough_face = self.frames > 0 && self.face_ratio() >= self.cfg.min_face_ratio;
        let reason = if !enough_face {
            Some(Reason::NoFace)
        } else if self.cfg.mode == Mode::Smile && !self.held_smile {
            Some(Reason::NoSmile)
        } else {
            None
        };
        self.decide(reason, elapsed_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> VerdictConfig {
        VerdictConfig {
            duration_ms: 15_000.0,
            threshold: 0.5,
            hold_ms: 300.0,
            min_face_ratio: 0.8,
            mode: Mode::Straight,
        }
    }

    #[test]
    fn a_smile_inside_a_prompt_window_does_not_fail_one_after_it_does() {
        let mut v = started(cfg());
        v.frame(1_100.0, Some(0.1));
        v.excuse_smiles_until(4_000.0);
        for t in [2_000.0, 2_500.0, 3_000.0, 3_999.0] {
            assert_eq!(v.frame(t, Some(0.9)), None, "excused at {t}");
        }
        // The window is over: the smile now counts, from its first frame after.
        assert_eq!(v.frame(4_000.0, Some(0.9)), None);
        let o = v.frame(4_300.0, Some(0.9)).copied().expect("smiled");
        assert_eq!(o.reason, Some(Reason::Smiled));
    }

    #[test]
    fn smile_mode_passes_a_held_smile_at_the_end_and_fails_none() {
        let smile = VerdictConfig {
            mode: Mode::Smile,
            ..cfg()
        };
        let mut v = started(smile);
        for i in 0..10 {
            assert_eq!(v.frame(1_000.0 + f64::from(i) * 100.0, Some(0.9)), None);
        }
        for i in 0..140 {
            v.frame(2_000.0 + f64::from(i) * 100.0, Some(0.1));
        }
        let o = v.tick(16_000.0).copied().expect("over");
        assert!(o.notsmiling);
        assert_eq!(o.reason, None);

        let mut v = started(smile);
        for i in 0..150 {
            v.frame(1_000.0 + f64::from(i) * 100.0, Some(0.1));
        }
        let o = v.tick(16_000.0).copied().expect("over");
        assert_eq!(o.reason, Some(Reason::NoSmile));

        // A smile held only inside a prompt's window does not pass either.
        let mut v = started(smile);
        v.excuse_smiles_until(3_000.0);
        for i in 0..150 {
            let t = 1_000.0 + f64::from(i) * 100.0;
            v.frame(t, Some(if t < 3_000.0 { 0.9 } else { 0.1 }));
        }
        assert_eq!(
            v.tick(16_000.0).copied().map(|o| o.reason),
            Some(Some(Reason::NoSmile))
        );
        // No face still comes first.
        let mut v = started(smile);
        v.frame(2_000.0, None);
        assert_eq!(
            v.tick(16_000.0).copied().map(|o| o.reason),
            Some(Some(Reason::NoFace))
        );
    }

    fn started(cfg: VerdictConfig) -> Verdict {
        let mut v = Verdict::new(cfg).expect("valid config");
        v.start(1_000.0);
        v
    }

    #[test]
    fn config_ranges() {
        assert!(VerdictConfig::default().validate().is_ok());
        let bad = [
            VerdictConfig {
                duration_ms: 4_999.0,
                ..cfg()
            },
            VerdictConfig {
                duration_ms: 120_001.0,
                ..cfg()
            },
            VerdictConfig {
                duration_ms: f64::NAN,
                ..cfg()
            },
            VerdictConfig {
                threshold: 0.0,
                ..cfg()
            },
            VerdictConfig {
                threshold: 1.0,
                ..cfg()
            },
            VerdictConfig {
                threshold: f32::NAN,
                ..cfg()
            },
            VerdictConfig {
                hold_ms: -1.0,
                ..cfg()
            },
            VerdictConfig {
                hold_ms: f64::INFINITY,
                ..cfg()
            },
            VerdictConfig {
                min_face_ratio: 1.01,
                ..cfg()
            },
            VerdictConfig {
                min_face_ratio: f64::NAN,
                ..cfg()
            },
        ];
        for c in bad {
            assert!(Verdict::new(c).is_err(), "{c:?}");
        }
    }

    #[test]
    fn reason_strings() {
        let all = [
            (Reason::Smiled, "smiled"),
            (Reason::NoFace, "no_face"),
            (Reason::Interrupted, "interrupted"),
            (Reason::CameraDenied, "camera_denied"),
            (Reason::CameraUnavailable, "camera_unavailable"),
            (Reason::CameraLost, "camera_lost"),
            (Reason::Error, "error"),
            (Reason::PromptMissed, "prompt_missed"),
            (Reason::NoSmile, "no_smile"),
        ];
        assert_eq!(all.len(), Reason::ALL.len(), "every reason is listed here");
        for (r, s) in all {
            assert_eq!(r.as_str(), s);
            assert_eq!(r.to_string(), s);
        }
    }

    #[test]
    fn not_started_ignores_everything_but_fail() {
        let mut v = Verdict::new(cfg()).expect("valid");
        assert_eq!(v.state(), State::NotStarted);
        assert!(v.frame(0.0, Some(1.0)).is_none());
        assert!(v.tick(100_000.0).is_none());
        assert!(v.hidden(100_000.0).is_none());
        v.pause(1.0);
        assert_eq!(v.state(), State::NotStarted);
        assert_eq!(v.remaining_ms(1e9), 15_000.0);
        assert_eq!(v.stats(0.0).frames_analysed, 0);
    }

    #[test]
    fn score_equal_to_threshold_counts_as_smiling() {
        let mut v = started(cfg());
        assert!(v.frame(1_000.0, Some(0.5)).is_none());
        let o = *v.frame(1_300.0, Some(0.5)).expect("decided");
        assert!(!o.notsmiling);
        assert_eq!(o.reason, Some(Reason::Smiled));
        assert_eq!(o.stats.elapsed_ms, 300.0);
        assert_eq!(o.stats.frames_analysed, 2);
    }

    #[test]
    fn score_just_below_threshold_does_not_count() {
        let below = f32::from_bits(0.5f32.to_bits() - 1);
        let mut v = started(cfg());
        for i in 0..100 {
            assert!(v
                .frame(1_000.0 + f64::from(i) * 100.0, Some(below))
                .is_none());
        }
        assert_eq!(v.state(), State::Running);
    }

    #[test]
    fn hold_of_299_ms_is_not_enough_300_is() {
        let mut v = started(cfg());
        assert!(v.frame(2_000.0, Some(0.9)).is_none());
        assert!(v.frame(2_299.0, Some(0.9)).is_none());
        let o = v.frame(2_300.0, Some(0.9)).expect("decided");
        assert_eq!(o.reason, Some(Reason::Smiled));
        assert_eq!(o.stats.max_smile_score, 0.9);
    }

    #[test]
    fn a_single_dip_or_lost_face_resets_the_run() {
        for dip in [Some(0.1), None, Some(f32::NAN)] {
            let mut v = started(cfg());
            assert!(v.frame(2_000.0, Some(0.9)).is_none());
            assert!(v.frame(2_200.0, Some(0.9)).is_none());
            assert!(v.frame(2_250.0, dip).is_none());
            assert!(v.frame(2_300.0, Some(0.9)).is_none(), "{dip:?}");
            assert!(v.frame(2_599.0, Some(0.9)).is_none(), "{dip:?}");
            assert!(v.frame(2_600.0, Some(0.9)).is_some(), "{dip:?}");
        }
    }

    #[test]
    fn zero_hold_decides_on_one_frame() {
        let mut v = started(VerdictConfig {
            hold_ms: 0.0,
            ..cfg()
        });
        assert!(v.frame(1_000.0, Some(0.5)).is_some());
    }

    /// Feeds `n` frames evenly over the countdown, `faces` of them with a face.
    fn run_with_faces(faces: u32, n: u32) -> Outcome {
        let mut v = started(cfg());
        for i in 0..n {
            let smile = (i < faces).then_some(0.1);
            let t = 1_000.0 + f64::from(i) * 14_000.0 / f64::from(n);
            assert!(v.frame(t, smile).is_none());
        }
        assert!(v.tick(15_999.0).is_none());
        *v.tick(16_000.0).expect("countdown over")
    }

    #[test]
    fn face_ratio_of_exactly_80_percent_passes() {
        for (faces, n) in [(4, 5), (8, 10), (80, 100), (800, 1000)] {
            let o = run_with_faces(faces, n);
            assert!(o.notsmiling, "{faces}/{n}");
            assert_eq!(o.reason, None);
            assert_eq!(o.stats.face_seen_ratio, 0.8);
            assert_eq!(o.stats.frames_analysed, n);
            assert_eq!(o.stats.elapsed_ms, 15_000.0);
        }
    }

    #[test]
    fn face_ratio_of_79_percent_fails() {
        for (faces, n) in [(79, 100), (3, 5), (799, 1000)] {
            let o = run_with_faces(faces, n);
            assert!(!o.notsmiling);
            assert_eq!(o.reason, Some(Reason::NoFace));
        }
    }

    #[test]
    fn zero_frames_is_no_face_even_with_ratio_zero() {
        let mut v = started(VerdictConfig {
            min_face_ratio: 0.0,
            ..cfg()
        });
        let o = v.tick(16_000.0).expect("over");
        assert_eq!(o.reason, Some(Reason::NoFace));
        assert_eq!(o.stats.face_seen_ratio, 0.0);
    }

    #[test]
    fn a_frame_past_the_end_decides_too() {
        let mut v = started(cfg());
        let o = v.frame(16_000.0, Some(0.0)).expect("over");
        assert!(o.notsmiling);
    }

    #[test]
    fn hidden_interrupts_running_and_paused() {
        let mut v = started(cfg());
        let o = v.hidden(2_000.0).expect("decided");
        assert_eq!(o.reason, Some(Reason::Interrupted));
        assert_eq!(o.stats.elapsed_ms, 1_000.0);

        let mut v = started(cfg());
        v.pause(2_000.0);
        assert_eq!(
            v.hidden(5_000.0).expect("decided").reason,
            Some(Reason::Interrupted)
        );
    }

    #[test]
    fn pause_stops_time_and_cannot_pass() {
        let mut v = started(cfg());
        assert!(v.frame(1_000.0, Some(0.0)).is_none());
        v.pause(5_000.0);
        assert_eq!(v.state(), State::Paused);
        assert_eq!(v.remaining_ms(1_000_000.0), 11_000.0);
        assert!(v.tick(1_000_000.0).is_none());
        assert_eq!(v.state(), State::Paused);
        v.resume(1_000_000.0);
        assert_eq!(v.remaining_ms(1_000_000.0), 11_000.0);
        assert!(v.tick(1_010_999.0).is_none());
        let o = v.tick(1_011_000.0).expect("over");
        assert_eq!(o.stats.elapsed_ms, 15_000.0);
    }

    #[test]
    fn frames_while_paused_are_ignored() {
        let mut v = started(cfg());
        assert!(v.frame(1_000.0, Some(0.1)).is_none());
        v.pause(2_000.0);
        for i in 0..50 {
            assert!(v.frame(2_000.0 + f64::from(i) * 100.0, Some(1.0)).is_none());
        }
        assert_eq!(v.stats(0.0).frames_analysed, 1);
        assert_eq!(v.current_smile(), Some(0.1));
        assert_eq!(v.stats(0.0).max_smile_score, 0.1);
    }

    #[test]
    fn hold_is_measured_in_active_time_across_a_pause() {
        let mut v = started(cfg());
        assert!(v.frame(2_000.0, Some(0.9)).is_none());
        v.pause(2_100.0);
        v.resume(60_000.0);
        // 100 ms before the pause + 199 ms after = 299 ms of active time.
        assert!(v.frame(60_199.0, Some(0.9)).is_none());
        assert!(v.frame(60_200.0, Some(0.9)).is_some());
    }

    #[test]
    fn outcome_never_changes() {
        let mut v = started(cfg());
        assert!(v.frame(1_000.0, Some(0.9)).is_none());
        let first = *v.frame(1_300.0, Some(0.9)).expect("smiled");
        assert_eq!(v.frame(1_400.0, None), Some(&first));
        assert_eq!(v.tick(100_000.0), Some(&first));
        assert_eq!(v.hidden(100_000.0), Some(&first));
        v.pause(100_001.0);
        v.resume(100_002.0);
        v.start(100_003.0);
        assert_eq!(*v.fail(Reason::CameraDenied), first);
        assert_eq!(v.state(), State::Decided(first));
        assert_eq!(v.remaining_ms(0.0), 0.0);
        assert_eq!(v.stats(1e9), first.stats);
    }

    #[test]
    fn fail_works_in_any_state() {
        let mut v = Verdict::new(cfg()).expect("valid");
        let o = *v.fail(Reason::CameraDenied);
        assert_eq!(o.reason, Some(Reason::CameraDenied));
        assert!(!o.notsmiling);
        assert_eq!(o.stats.elapsed_ms, 0.0);

        let mut v = started(cfg());
        assert!(v.frame(3_000.0, Some(0.2)).is_none());
        let o = v.fail(Reason::Error);
        assert_eq!(o.reason, Some(Reason::Error));
        assert_eq!(o.stats.elapsed_ms, 2_000.0);
        assert_eq!(o.stats.frames_analysed, 1);
    }

    #[test]
    fn non_finite_timestamps_are_ignored() {
        let mut v = started(cfg());
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(v.frame(bad, Some(0.0)).is_none());
            assert!(v.tick(bad).is_none());
            assert!(v.remaining_ms(bad).is_finite());
        }
        assert_eq!(v.stats(0.0).frames_analysed, 0);
        assert_eq!(v.remaining_ms(f64::NAN), 15_000.0);
        v.pause(f64::NAN);
        v.resume(f64::NAN);
        assert_eq!(v.state(), State::Running);
        // The countdown still ends on real time, and without frames it fails closed.
        assert_eq!(v.tick(16_000.0).expect("over").reason, Some(Reason::NoFace));
    }

    #[test]
    fn non_finite_start_still_fails_closed() {
        let mut v = Verdict::new(cfg()).expect("valid");
        v.start(f64::NAN);
        assert_eq!(v.state(), State::Running);
        assert_eq!(v.tick(20_000.0).expect("over").reason, Some(Reason::NoFace));
    }

    #[test]
    fn backwards_timestamps_do_not_count_or_rewind() {
        let mut v = started(cfg());
        assert!(v.frame(5_000.0, Some(0.0)).is_none());
        assert!(v.frame(4_000.0, Some(0.0)).is_none());
        assert!(v.tick(0.0).is_none());
        assert_eq!(v.stats(0.0).frames_analysed, 1);
        assert_eq!(v.remaining_ms(0.0), 11_000.0);
        // A smile run cannot be completed by a frame from the past either.
        assert!(v.frame(6_000.0, Some(0.9)).is_none());
        assert!(v.frame(7_000.0 - 10_000.0, Some(0.9)).is_none());
        assert_eq!(v.stats(6_000.0).frames_analysed, 2);
        // Pause with a backwards time uses the last good time.
        v.pause(0.0);
        assert_eq!(v.remaining_ms(0.0), 10_000.0);
    }

    #[test]
    fn remaining_time_counts_down_and_rounds_up() {
        let mut v = Verdict::new(cfg()).expect("valid");
        assert_eq!(v.remaining_secs(0.0), 15);
        v.start(1_000.0);
        assert_eq!(v.remaining_ms(1_000.0), 15_000.0);
        assert_eq!(v.remaining_secs(1_001.0), 15);
        assert_eq!(v.remaining_secs(2_000.0), 14);
        assert_eq!(v.remaining_ms(15_500.0), 500.0);
        assert_eq!(v.remaining_secs(15_500.0), 1);
        assert_eq!(v.remaining_ms(99_000.0), 0.0);
        assert_eq!(v.remaining_secs(99_000.0), 0);
    }

    #[test]
    fn scores_are_clamped_for_stats() {
        let mut v = started(cfg());
        assert!(v.frame(1_000.0, Some(7.0)).is_none());
        assert_eq!(v.current_smile(), Some(1.0));
        assert_eq!(v.stats(1_000.0).max_smile_score, 1.0);
        assert!(v.frame(1_100.0, Some(-3.0)).is_none());
        assert_eq!(v.current_smile(), Some(0.0));
    }

    #[test]
    fn outcome_serialises_for_js() {
        let mut v = started(cfg());
        let o = *v.fail(Reason::CameraUnavailable);
        let json = serde_json::to_string(&o).expect("serialise");
        assert!(json.contains(r#""reason":"camera_unavailable""#), "{json}");
        assert!(json.contains(r#""framesAnalysed":0"#), "{json}");
        assert!(json.contains(r#""notsmiling":false"#), "{json}");
    }
}
