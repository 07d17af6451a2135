//! Just-in-time prompts, by the server's clock: the secret schedule drawn when a
//! challenge opens, which crop upload reveals a prompt, and the check at finish.
//!
//! Pure and store-agnostic: a challenge keeps its [`Schedule`] (drawn once, never sent
//! ahead) and the log of its admitted crops ([`LoggedFrame`]: admission time and score).
//! Everything else is derived from those two: a prompt is revealed by the first crop
//! admitted at or after its due time, so no extra state has to be written when a prompt
//! is revealed. All times are milliseconds since the challenge started.

use serde::{Deserialize, Serialize};
use smile_factor::challenge::outcome::{Outcome, Reason};
use smile_factor::challenge::prompt::{within_ms, Mode, Prompt, PromptKind, RELAX_MS};

/// No prompt before this: the first crops show the face as the mode asks, so an
/// always-smiling face fails before any prompt could excuse it.
pub const START_MARGIN_MS: u64 = 1_500;
/// At least this much of a neutral stretch between one prompt's excused window and the
/// next prompt's due time.
pub const GAP_MS: u64 = 500;
/// The least random room a schedule keeps: with less, one prompt fewer is drawn, so the
/// times stay unpredictable.
pub const MIN_SLACK_MS: u64 = 1_000;
/// How many prompts are drawn, at random, before fitting them to the countdown.
pub const PROMPTS_MIN: usize = 2;
pub const PROMPTS_MAX: usize = 3;

/// A challenge's secret prompts. Serde, to live in any challenge store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub kind: PromptKind,
    /// A crop admitted within this long after the reveal answers the prompt.
    pub within_ms: u64,
    /// After the answer window, how long a smile is still excused (fading).
    pub relax_ms: u64,
    /// Due times, ascending.
    pub due_ms: Vec<u64>,
}

/// One admitted crop: when it was admitted and its smile score (`None`: no face, or not
/// analysed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoggedFrame {
    pub at_ms: u64,
    pub smile: Option<f32>,
}

/// Prompts met and prompts scheduled; `"met/total"` in the verdict token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptCheck {
    pub met: u32,
    pub total: u32,
}

impl PromptCheck {
    pub fn all_met(self) -> bool {
        self.met >= self.total
    }

    /// The token claim.
    pub fn claim(self) -> String {
        format!("{}/{}", self.met, self.total)
    }
}

impl Schedule {
    /// Draws the schedule for a countdown of `duration_ms` with crops every
    /// `frame_interval_ms`: 2 or 3 prompts (fewer when the countdown is too short for
    /// them to fit with room to vary), at random times, spaced so that each one's
    /// window and fade end before the next is due, the first after [`START_MARGIN_MS`],
    /// the last early enough that its window ends inside the countdown even when it is
    /// revealed a whole interval late. `random` gives uniform 64-bit values (the OS
    /// CSPRNG in the server, [`os_random`]).
    pub fn draw(
        duration_ms: u64,
        frame_interval_ms: u64,
        mode: Mode,
        mut random: impl FnMut() -> u64,
    ) -> Schedule {
        let within = within_ms(frame_interval_ms);
        let slot = within + RELAX_MS + GAP_MS;
        // The last due time: reveal up to one interval late, then its whole window, then
        // half a second for that crop to arrive before the countdown ends.
        let last_due_max = duration_ms
            .saturating_sub(frame_interval_ms)
            .saturating_sub(within)
            .saturating_sub(500);
        let span = last_due_max.saturating_sub(START_MARGIN_MS);
        let wanted =
            PROMPTS_MIN + uniform(&mut random, (PROMPTS_MAX - PROMPTS_MIN + 1) as u64) as usize;
        let mut n = wanted;
        // n prompts need (n - 1) slots between the first and the last due time.
        while n > 0 && (n as u64 - 1) * slot + MIN_SLACK_MS > span {
            n -= 1;
        }
        let mut due_ms = Vec::with_capacity(n);
        if n > 0 {
            let slack = span - (n as u64 - 1) * slot;
            // n sorted uniform offsets in 0..=slack, each shifted by its slots: every
            // spacing-respecting schedule is possible.
            let mut offsets: Vec<u64> = (0..n).map(|_| uniform(&mut random, slack + 1)).collect();
            offsets.sort_unstable();
            for (i, off) in offsets.into_iter().enumerate() {
                due_ms.push(START_MARGIN_MS + off + i as u64 * slot);
            }
        }
        Schedule {
            kind: mode.prompt_kind(),
            within_ms: within,
            relax_ms: RELAX_MS,
            due_ms,
        }
    }

    /// The prompt as the page gets it.
    pub fn prompt(&self) -> Prompt {
        Prompt {
            kind: self.kind,
            within_ms: self.within_ms,
        }
    }

    /// For each prompt, when it was revealed: the admission time of the first crop
    /// admitted at or after its due time (`admitted` in admission order), or `None`.
    pub fn reveals(&self, admitted: &[u64]) -> Vec<Option<u64>> {
        self.due_ms
            .iter()
            .map(|due| admitted.iter().copied().find(|at| at >= due))
            .collect()
    }

    /// The prompt revealed by a crop admitted at `at_ms`, after the crops admitted at
    /// `before` (in admission order): the answer to that upload.
    pub fn revealed_by(&self, before: &[u64], at_ms: u64) -> Option<Prompt> {
        let revealed_before = |due: u64| before.iter().any(|t| *t >= due);
        self.due_ms
            .iter()
            .any(|due| *due <= at_ms && !revealed_before(*due))
            .then(|| self.prompt())
    }

    /// If a crop admitted at `at_ms` falls in a revealed prompt's excused window (after
    /// the revealing crop, up to the answer window plus the fade), that window's end.
    pub fn excused_until(&self, reveals: &[Option<u64>], at_ms: u64) -> Option<u64> {
        reveals
            .iter()
            .flatten()
            .map(|r| (*r, r + self.within_ms + self.relax_ms))
            .find(|(r, end)| *r < at_ms && at_ms < *end)
            .map(|(_, end)| end)
    }

    /// The check at finish: a prompt is met when a crop admitted after its reveal and
    /// at most `within_ms` after it shows what it asked for. A prompt never revealed
    /// (the crops stopped, or the challenge ended first) is missed.
    pub fn check(&self, frames: &[LoggedFrame], threshold: f32) -> PromptCheck {
        let admitted: Vec<u64> = frames.iter().map(|f| f.at_ms).collect();
        let met = self
            .reveals(&admitted)
            .into_iter()
            .flatten()
            .filter(|r| {
                frames.iter().any(|f| {
                    f.at_ms > *r
                        && f.at_ms - r <= self.within_ms
                        && self.kind.met_by(f.smile, threshold)
                })
            })
            .count();
        PromptCheck {
            met: u32::try_from(met).unwrap_or(u32::MAX),
            total: u32::try_from(self.due_ms.len()).unwrap_or(u32::MAX),
        }
    }
}

/// The final outcome: the verdict's own failure stands (a smile outside the windows,
/// no face, no smile in smile mode); a pass with a prompt missed fails `prompt_missed`.
pub fn settle(outcome: Outcome, check: PromptCheck) -> Outcome {
    if outcome.notsmiling && !check.all_met() {
        Outcome {
            notsmiling: false,
            reason: Some(Reason::PromptMissed),
            stats: outcome.stats,
        }
    } else {
        outcome
    }
}

/// A uniform value in `0..n` (n >= 1); the modulo bias of a 64-bit draw over a range of
/// a few thousand is below 1e-15.
fn uniform(random: &mut impl FnMut() -> u64, n: u64) -> u64 {
    random() % n.max(1)
}

/// [`Schedule::draw`] with the OS CSPRNG (a draw takes at most 1 + [`PROMPTS_MAX`] values,
/// fetched first so the draw itself cannot fail).
pub fn draw_os(
    duration_ms: u64,
    frame_interval_ms: u64,
    mode: Mode,
) -> Result<Schedule, getrandom::Error> {
    let mut values = [0u64; 1 + PROMPTS_MAX];
    for v in &mut values {
        *v = os_random()?;
    }
    let mut it = values.into_iter().cycle();
    Ok(Schedule::draw(
        duration_ms,
        frame_interval_ms,
        mode,
        move || it.next().unwrap_or_default(),
    ))
}

/// 64 random bits from the OS CSPRNG.
pub fn os_random() -> Result<u64, getrandom::Error> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use smile_factor::challenge::outcome::Stats;

    fn schedule(due_ms: Vec<u64>) -> Schedule {
        Schedule {
            kind: PromptKind::Smile,
            within_ms: 2_500,
            relax_ms: 1_000,
            due_ms,
        }
    }

    fn frames(scores: &[(u64, f32)]) -> Vec<LoggedFrame> {
        scores
            .iter()
            .map(|&(at_ms, s)| LoggedFrame {
                at_ms,
                smile: Some(s),
            })
            .collect()
    }

    /// A deterministic stand-in for the CSPRNG (splitmix64).
    fn seeded(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }

    #[test]
    fn schedules_fit_the_countdown_vary_and_keep_their_spacing() {
        let mut counts = [0usize; 4];
        let mut firsts = std::collections::BTreeSet::new();
        for seed in 0..500 {
            let s = Schedule::draw(15_000, 1_000, Mode::Straight, seeded(seed));
            assert_eq!(s.kind, PromptKind::Smile);
            assert_eq!(s.within_ms, 2_500);
            counts[s.due_ms.len()] += 1;
            firsts.insert(s.due_ms[0]);
            assert!(s.due_ms[0] >= START_MARGIN_MS, "{s:?}");
            for w in s.due_ms.windows(2) {
                assert!(w[1] - w[0] >= s.within_ms + s.relax_ms + GAP_MS, "{s:?}");
            }
            let last = *s.due_ms.last().expect("some");
            // Revealed a whole interval late, its window still ends in the countdown.
            assert!(last + 1_000 + s.within_ms <= 15_000, "{s:?}");
        }
        assert!(
            counts[2] > 100 && counts[3] > 100,
            "2 and 3 both drawn: {counts:?}"
        );
        assert_eq!(counts[0] + counts[1], 0);
        assert!(
            firsts.len() > 50,
            "the first prompt's time varies: {}",
            firsts.len()
        );
        // Smile mode asks for a straight face.
        let s = Schedule::draw(15_000, 1_000, Mode::Smile, seeded(1));
        assert_eq!(s.kind, PromptKind::Straight);
    }

    #[test]
    fn a_short_countdown_gets_fewer_prompts_a_long_one_keeps_three_at_most() {
        for seed in 0..50 {
            let s = Schedule::draw(5_000, 1_000, Mode::Straight, seeded(seed));
            assert!(s.due_ms.len() <= 1, "{s:?}");
            let s = Schedule::draw(120_000, 1_000, Mode::Straight, seeded(seed));
            assert!((2..=3).contains(&s.due_ms.len()), "{s:?}");
        }
        let s = Schedule::draw(8_000, 1_000, Mode::Straight, seeded(3));
        assert_eq!(s.due_ms.len(), 1, "{s:?}");
    }

    #[test]
    fn the_os_generator_answers() {
        let a = os_random().expect("getrandom");
        let b = os_random().expect("getrandom");
        assert_ne!(a, b);
    }

    #[test]
    fn the_first_crop_at_or_after_the_due_time_reveals_once() {
        let s = schedule(vec![3_000, 8_000]);
        assert_eq!(s.revealed_by(&[0, 1_000, 2_000], 2_999), None);
        assert_eq!(s.revealed_by(&[0, 1_000, 2_000], 3_000), Some(s.prompt()));
        assert_eq!(s.revealed_by(&[0, 1_000, 2_000, 3_000], 4_000), None);
        // A gap in the uploads: the next crop after the due time reveals it.
        assert_eq!(s.revealed_by(&[0, 1_000], 5_500), Some(s.prompt()));
        assert_eq!(s.revealed_by(&[0, 1_000, 5_500], 8_200), Some(s.prompt()));
        assert_eq!(
            s.reveals(&[0, 1_000, 3_100, 4_100, 8_000]),
            vec![Some(3_100), Some(8_000)]
        );
        assert_eq!(s.reveals(&[0, 1_000]), vec![None, None]);
    }

    #[test]
    fn windows_excuse_after_the_revealing_crop_until_the_fade_ends() {
        let s = schedule(vec![3_000]);
        let r = s.reveals(&[3_100]);
        assert_eq!(
            s.excused_until(&r, 3_100),
            None,
            "the revealing crop was taken before"
        );
        assert_eq!(s.excused_until(&r, 3_101), Some(6_600));
        assert_eq!(s.excused_until(&r, 6_599), Some(6_600));
        assert_eq!(s.excused_until(&r, 6_600), None);
        assert_eq!(s.excused_until(&[None], 4_000), None);
    }

    #[test]
    fn following_the_prompts_meets_them_ignoring_or_smiling_too_late_does_not() {
        let s = schedule(vec![3_000, 8_000]);
        let followed = frames(&[
            (0, 0.0),
            (1_000, 0.0),
            (2_000, 0.0),
            (3_050, 0.0),
            (4_050, 0.9),
            (5_050, 0.2),
            (6_050, 0.0),
            (7_050, 0.0),
            (8_050, 0.0),
            (9_000, 0.0),
            (10_050, 0.8),
        ]);
        assert_eq!(s.check(&followed, 0.5), PromptCheck { met: 2, total: 2 });
        assert_eq!(s.check(&followed, 0.5).claim(), "2/2");
        let neutral: Vec<_> = (0..15).map(|i| (i * 1_000, 0.05)).collect();
        assert_eq!(
            s.check(&frames(&neutral), 0.5),
            PromptCheck { met: 0, total: 2 }
        );
        // The revealing crop itself does not count, nor one past the window.
        let late = frames(&[(3_000, 0.9), (5_600, 0.9), (8_000, 0.0), (9_000, 0.9)]);
        assert_eq!(s.check(&late, 0.5), PromptCheck { met: 1, total: 2 });
        // A crop with no face meets nothing.
        let noface = [
            LoggedFrame {
                at_ms: 3_000,
                smile: None,
            },
            LoggedFrame {
                at_ms: 4_000,
                smile: None,
            },
        ];
        assert_eq!(schedule(vec![3_000]).check(&noface, 0.5).met, 0);
    }

    #[test]
    fn a_straight_prompt_asks_for_a_face_below_the_threshold() {
        let s = Schedule {
            kind: PromptKind::Straight,
            ..schedule(vec![3_000])
        };
        let always = frames(&[(2_000, 0.9), (3_000, 0.9), (4_000, 0.9), (5_000, 0.9)]);
        assert_eq!(s.check(&always, 0.5).met, 0);
        let obeyed = frames(&[(2_000, 0.9), (3_000, 0.9), (4_000, 0.1), (5_000, 0.9)]);
        assert_eq!(s.check(&obeyed, 0.5).met, 1);
    }

    #[test]
    fn settle_fails_a_pass_with_a_missed_prompt_and_keeps_other_failures() {
        let stats = Stats {
            frames_analysed: 10,
            face_seen_ratio: 1.0,
            max_smile_score: 0.1,
            elapsed_ms: 15_000.0,
        };
        let pass = Outcome {
            notsmiling: true,
            reason: None,
            stats,
        };
        let missed = settle(pass, PromptCheck { met: 1, total: 2 });
        assert!(!missed.notsmiling);
        assert_eq!(missed.reason, Some(Reason::PromptMissed));
        assert_eq!(settle(pass, PromptCheck { met: 2, total: 2 }), pass);
        assert_eq!(settle(pass, PromptCheck { met: 0, total: 0 }), pass);
        let smiled = Outcome {
            notsmiling: false,
            reason: Some(Reason::Smiled),
            stats,
        };
        assert_eq!(settle(smiled, PromptCheck { met: 0, total: 2 }), smiled);
    }
}
