//! The analysis budget: which animation frames go to the worker. Analysing every frame
//! the worker can take keeps a core busy for the whole countdown; a neutral face needs
//! far fewer. The pacer sends at `analysisFps` on average and, once the latest score
//! comes near the threshold (a smile may be starting), flat out for a short boost so the
//! verdict's hold is timed as finely as without a budget.
//!
//! Plain numbers in, a yes or no out: the page asks [`AnalysisPacer::due`] on each
//! animation frame the worker is free and tells [`AnalysisPacer::sent`] when it sent one.
//! Whatever cannot be judged (a clock that is NaN or runs backwards, a NaN score) means
//! "analyse": a frame too many costs a few milliseconds, a frame too few may miss a smile.

/// Default analysis rate, frames per second, chosen by measurement (`./run bench`, rows 6
/// and 7 of BENCHMARKS.md): on the 2-core machine the page's main thread and worker took
/// about 140 ms of CPU per challenge second at 10 fps against about 210 at 15 (the goal is
/// 200, a fifth of a core), and the smile delay stayed near that of flat out: a smile's first
/// frame waits at most 100 ms for its turn, then the boost follows the 300 ms hold frame
/// by frame.
pub const DEFAULT_ANALYSIS_FPS: f64 = 10.0;
/// Lowest allowed rate: 200 ms apart still puts a frame inside a 300 ms hold.
pub const MIN_ANALYSIS_FPS: f64 = 5.0;
/// Highest allowed rate, and a special one: every animation frame the worker is free
/// (flat out, as before the budget), whatever the display's refresh rate.
pub const MAX_ANALYSIS_FPS: f64 = 60.0;

/// How early an animation frame may come and still count as on time: the page reads the
/// clock when the frame runs, a millisecond or two off the display's beat.
const JITTER_MS: f64 = 2.0;

/// How long a score near the threshold keeps the pacer flat out. Longer than the default
/// 300 ms hold, so a smile that starts is followed frame by frame until it is decided.
pub const BOOST_MS: f64 = 500.0;

/// A score at or above this share of the threshold starts a boost: a smile rises through
/// intermediate scores, while a neutral face scores near 0.
pub const BOOST_SHARE_OF_THRESHOLD: f32 = 0.5;

/// Paces the frames handed to the analyser. Times are milliseconds on one monotonic clock.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisPacer {
    interval_ms: f64,
    /// When the next paced frame is due: a grid one interval apart, so frames landing on
    /// the first animation frame after each grid point still average the rate.
    next_at: Option<f64>,
    last_sent: Option<f64>,
    boost_until: Option<f64>,
}

impl AnalysisPacer {
    /// A pacer at `fps` frames per second; a rate outside
    /// [`MIN_ANALYSIS_FPS`]..=[`MAX_ANALYSIS_FPS`] (or NaN) is clamped to it, since the
    /// config has already refused such rates with a message.
    pub fn new(fps: f64) -> AnalysisPacer {
        let fps = if fps.is_nan() {
            DEFAULT_ANALYSIS_FPS
        } else {
            fps.clamp(MIN_ANALYSIS_FPS, MAX_ANALYSIS_FPS)
        };
        AnalysisPacer {
            interval_ms: 1000.0 / fps,
            next_at: None,
            last_sent: None,
            boost_until: None,
        }
    }

    /// Milliseconds between paced frames.
    pub fn interval_ms(&self) -> f64 {
        self.interval_ms
    }

    /// Whether a frame should be analysed at `now`, given the latest smile score
    /// (`None`: no face) and the verdict's threshold. A score near the threshold starts
    /// (or extends) a boost, during which every frame is due.
    pub fn due(&mut self, now: f64, smile: Option<f32>, threshold: f32) -> bool {
        if !now.is_finite() {
            return true;
        }
        // A NaN score boosts too.
        if smile.is_some_and(|s| s.is_nan() || s >= threshold * BOOST_SHARE_OF_THRESHOLD) {
            self.boost_until = Some(now + BOOST_MS);
        }
        if self.boosting(now) || self.flat_out() {
            return true;
        }
        match (self.next_at, self.last_sent) {
            (Some(next), Some(last)) => now >= next - JITTER_MS || now < last,
            _ => true,
        }
    }

    /// Whether every frame is due ([`MAX_ANALYSIS_FPS`]).
    pub fn flat_out(&self) -> bool {
        self.interval_ms <= 1000.0 / MAX_ANALYSIS_FPS
    }

    /// Whether a boost is running at `now`.
    pub fn boosting(&self, now: f64) -> bool {
        self.boost_until.is_some_and(|until| now < until)
    }

    /// A frame was handed to the analyser at `now`.
    pub fn sent(&mut self, now: f64) {
        if !now.is_finite() {
            // No time to build on: the next frame is due at once.
            self.next_at = None;
            self.last_sent = None;
            return;
        }
        let backwards = self.last_sent.is_some_and(|last| now < last);
        let on_grid = self
            .next_at
            .filter(|_| !backwards)
            .map(|n| n + self.interval_ms);
        // Late by over half an interval (the worker was busy, a pause, a boost): start
        // the grid again from here rather than catch up with frames close together.
        self.next_at = Some(match on_grid {
            Some(n) if n >= now + self.interval_ms / 2.0 => n,
            _ => now + self.interval_ms,
        });
        self.last_sent = Some(now);
    }
}

impl Default for AnalysisPacer {
    fn default() -> Self {
        AnalysisPacer::new(DEFAULT_ANALYSIS_FPS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: f32 = 0.5;

    /// Animation frames at 60 Hz for `ms`, the worker always free: the times sent.
    fn run(
        p: &mut AnalysisPacer,
        from: f64,
        ms: f64,
        smile: impl Fn(f64) -> Option<f32>,
    ) -> Vec<f64> {
        let mut sent = Vec::new();
        let mut now = from;
        while now < from + ms {
            if p.due(now, smile(now), T) {
                p.sent(now);
                sent.push(now);
            }
            now += 1000.0 / 60.0;
        }
        sent
    }

    #[test]
    fn neutral_faces_are_analysed_at_the_rate() {
        for fps in [5.0, 15.0, 20.0, 30.0, 59.0, 60.0] {
            let mut p = AnalysisPacer::new(fps);
            let sent = run(&mut p, 1_000.0, 10_000.0, |_| Some(0.02));
            let rate = sent.len() as f64 / 10.0;
            assert!(
                (rate - fps).abs() <= 0.1 * fps + 0.1,
                "{fps} fps asked, {rate} sent"
            );
            // Never two frames closer than half an interval.
            for w in sent.windows(2) {
                assert!(w[1] - w[0] >= p.interval_ms() / 2.0, "{fps}: {w:?}");
            }
        }
    }

    #[test]
    fn the_first_frame_is_due_at_once() {
        let mut p = AnalysisPacer::new(15.0);
        assert!(p.due(123.0, None, T));
        p.sent(123.0);
        assert!(!p.due(124.0, None, T));
        assert!(!p.due(123.0 + 60.0, None, T));
        assert!(p.due(123.0 + 1000.0 / 15.0, None, T));
    }

    #[test]
    fn a_rising_score_boosts_to_every_frame() {
        let mut p = AnalysisPacer::new(15.0);
        // Neutral for a second, then a smile rising through the threshold.
        let smile = |t: f64| {
            Some(if t < 2_000.0 {
                0.05
            } else {
                ((t - 2_000.0) / 200.0).min(0.9) as f32
            })
        };
        let sent = run(&mut p, 1_000.0, 2_000.0, smile);
        let before = sent.iter().filter(|&&t| t < 2_000.0).count();
        assert!(
            (14..=16).contains(&before),
            "{before} frames in the neutral second"
        );
        // Once the score reached half the threshold (at 2.05 s) every animation frame went.
        let boosted: Vec<f64> = sent.iter().copied().filter(|&t| t >= 2_100.0).collect();
        for w in boosted.windows(2) {
            assert!(w[1] - w[0] < 17.0, "a gap while boosting: {w:?}");
        }
        assert!(
            boosted.len() >= 50,
            "{} frames in the smiling second",
            boosted.len()
        );
    }

    #[test]
    fn the_boost_ends_after_the_score_falls() {
        let mut p = AnalysisPacer::new(15.0);
        assert!(p.due(0.0, Some(0.6), T));
        p.sent(0.0);
        assert!(p.boosting(BOOST_MS - 1.0));
        assert!(p.due(16.0, Some(0.1), T));
        p.sent(16.0);
        assert!(p.due(BOOST_MS - 1.0, Some(0.1), T));
        p.sent(BOOST_MS - 1.0);
        assert!(!p.boosting(BOOST_MS));
        assert!(!p.due(BOOST_MS + 16.0, Some(0.1), T), "paced again");
        assert!(p.due(BOOST_MS + 70.0, Some(0.1), T));
    }

    #[test]
    fn the_boost_starts_at_half_the_threshold() {
        let mut p = AnalysisPacer::default();
        p.sent(0.0);
        assert!(!p.due(20.0, Some(0.24), T));
        assert!(!p.due(20.0, None, T), "no face is no smile");
        assert!(p.due(20.0, Some(0.25), T));
        let mut p = AnalysisPacer::default();
        p.sent(0.0);
        assert!(!p.due(20.0, Some(0.44), 0.9));
        assert!(p.due(20.0, Some(0.45), 0.9));
    }

    #[test]
    fn what_cannot_be_judged_is_analysed() {
        let mut p = AnalysisPacer::default();
        p.sent(1_000.0);
        assert!(p.due(f64::NAN, Some(0.0), T), "NaN clock");
        assert!(p.due(f64::INFINITY, Some(0.0), T), "infinite clock");
        assert!(p.due(1_010.0, Some(f32::NAN), T), "NaN score");
        let mut p = AnalysisPacer::new(15.0);
        p.sent(1_000.0);
        assert!(p.due(500.0, Some(0.0), T), "the clock went back");
        p.sent(500.0);
        // The grid starts again from the new time, not from the old one.
        assert!(!p.due(510.0, Some(0.0), T));
        assert!(p.due(500.0 + 1000.0 / 15.0, Some(0.0), T));
        let mut p = AnalysisPacer::default();
        p.sent(f64::NAN);
        assert!(p.due(0.0, Some(0.0), T), "after a NaN send");
    }

    #[test]
    fn a_late_frame_restarts_the_grid_without_a_burst() {
        let mut p = AnalysisPacer::new(15.0);
        p.sent(0.0);
        // The worker was busy: the next frame goes at 300 ms, long after it was due.
        assert!(p.due(300.0, None, T));
        p.sent(300.0);
        assert!(!p.due(317.0, None, T));
        assert!(!p.due(350.0, None, T));
        assert!(p.due(367.0, None, T));
    }

    #[test]
    fn rates_outside_the_bounds_are_clamped() {
        assert_eq!(AnalysisPacer::new(1.0).interval_ms(), 200.0);
        assert_eq!(AnalysisPacer::new(1_000.0).interval_ms(), 1000.0 / 60.0);
        assert_eq!(AnalysisPacer::new(f64::NAN), AnalysisPacer::default());
    }
}
