//! Whether the camera's feed still counts: a lost track ends the challenge, and frozen
//! frames count as no face. Pure rules on times in milliseconds (`performance.now()` in
//! the page), tested natively; the page polls the track and hands over each analysed
//! frame's signature (a hash of its pixels, computed in the vision room: here it is only
//! a number that is equal for identical frames).
//!
//! **Lost**: the track ended (an `ended` event, or `readyState == "ended"`, which
//! `track.stop()` sets without any event), or it has been muted for longer than
//! [`MUTE_GRACE_MS`] (a short mute, e.g. a driver's hiccup, that ends with `unmute` in
//! time is forgiven).
//!
//! **Frozen**: a run of consecutive analysed frames with the same signature that has lasted
//! longer than [`FROZEN_AFTER_MS`]; every frame of the run from then on is frozen. A live
//! camera never gives bit-identical frames for that long (sensor noise alone changes
//! them), while a stalled camera, or a still image played as a camera, gives nothing
//! else. The same camera frame analysed twice (the page may analyse faster than the
//! camera delivers) only makes a run of a few tens of milliseconds.

/// How long a muted track may stay muted before the camera counts as lost.
pub const MUTE_GRACE_MS: f64 = 1_000.0;

/// Identical frames for longer than this count as no face.
pub const FROZEN_AFTER_MS: f64 = 1_000.0;

/// Whether the camera is lost at `now_ms`: its track `ended`, or it has been muted since
/// `muted_since_ms` for longer than [`MUTE_GRACE_MS`]. A time that is not finite counts
/// as past the grace: a bad clock must not keep a dead camera alive.
pub fn camera_lost(ended: bool, muted_since_ms: Option<f64>, now_ms: f64) -> bool {
    ended
        || muted_since_ms.is_some_and(|since| {
            let muted_for = now_ms - since;
            !(muted_for.is_finite() && muted_for <= MUTE_GRACE_MS)
        })
}

/// The frozen-frame rule over a challenge's analysed frames, in the order analysed.
#[derive(Debug, Clone, Default)]
pub struct FrozenFrames {
    /// The latest signature and when the run of frames with it began.
    run: Option<(u64, f64)>,
    frozen: u32,
}

impl FrozenFrames {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one analysed frame's `signature` at `now_ms`; true when it is frozen (count
    /// it as no face). A time that is not finite or runs backwards never restarts a run
    /// and, within one, counts as frozen: a bad clock must not make a still image live.
    pub fn frame(&mut self, now_ms: f64, signature: u64) -> bool {
        let frozen = match self.run {
            Some((last, since)) if last == signature => {
                let lasted = now_ms - since;
                !(lasted.is_finite() && lasted <= FROZEN_AFTER_MS)
            }
            _ => {
                // A new picture starts a run; without a usable time it starts at 0, which
                // any later finite time is long past.
                let since = if now_ms.is_finite() { now_ms } else { 0.0 };
                self.run = Some((signature, since));
                false
            }
        };
        if frozen {
            self.frozen = self.frozen.saturating_add(1);
        }
        frozen
    }

    /// How many frames were judged frozen so far.
    pub fn frozen_frames(&self) -> u32 {
        self.frozen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_track_is_lost_at_once() {
        assert!(camera_lost(true, None, 0.0));
        assert!(camera_lost(true, Some(0.0), 10.0));
        assert!(!camera_lost(false, None, 1e9));
    }

    #[test]
    fn a_mute_is_forgiven_only_within_the_grace() {
        assert!(!camera_lost(false, Some(1_000.0), 1_000.0));
        assert!(!camera_lost(false, Some(1_000.0), 1_000.0 + MUTE_GRACE_MS));
        assert!(camera_lost(false, Some(1_000.0), 1_000.1 + MUTE_GRACE_MS));
        // A clock that runs backwards is no reason to give up on the camera...
        assert!(!camera_lost(false, Some(1_000.0), 500.0));
        // ...but one that is broken cannot keep a muted camera alive.
        assert!(camera_lost(false, Some(1_000.0), f64::NAN));
        assert!(camera_lost(false, Some(f64::NAN), 1_000.0));
        assert!(camera_lost(false, Some(0.0), f64::INFINITY));
    }

    #[test]
    fn a_live_camera_never_freezes() {
        let mut f = FrozenFrames::new();
        // 30 fps, each picture analysed twice in a row, for a minute.
        for i in 0..3_600u64 {
            let t = i as f64 * 1000.0 / 60.0;
            assert!(!f.frame(t, i / 2), "frame {i}");
        }
        assert_eq!(f.frozen_frames(), 0);
    }

    #[test]
    fn a_looping_video_whose_consecutive_frames_differ_never_freezes() {
        // The e2e fake camera loops 6 frames of which frames 0 and 4 are identical.
        let mut f = FrozenFrames::new();
        for i in 0..600u64 {
            let sig = [10, 11, 12, 11, 10, 13][(i % 6) as usize];
            assert!(!f.frame(i as f64 * 33.3, sig));
        }
    }

    #[test]
    fn identical_frames_freeze_after_the_limit_until_the_picture_changes() {
        let mut f = FrozenFrames::new();
        let mut frozen = Vec::new();
        for i in 0..=30 {
            let t = 5_000.0 + f64::from(i) * 100.0;
            frozen.push(f.frame(t, 42));
        }
        // Frames at 0..=1000 ms of the run are live, the 20 after it frozen.
        assert!(frozen[..=10].iter().all(|&x| !x), "{frozen:?}");
        assert!(frozen[11..].iter().all(|&x| x), "{frozen:?}");
        assert_eq!(f.frozen_frames(), 20);
        // A new picture starts a new run, live again.
        assert!(!f.frame(8_100.0, 43));
        assert!(!f.frame(8_200.0, 43));
        assert!(f.frame(9_200.0, 43));
        assert_eq!(f.frozen_frames(), 21);
    }

    #[test]
    fn bad_times_never_make_a_still_picture_live() {
        let mut f = FrozenFrames::new();
        assert!(!f.frame(1_000.0, 7));
        assert!(f.frame(f64::NAN, 7));
        assert!(!f.frame(1_500.0, 7));
        // Backwards within a run: not a new run; a later good time still freezes.
        assert!(!f.frame(200.0, 7));
        assert!(f.frame(2_001.0, 7));
        // A run that starts at a bad time counts from 0.
        let mut g = FrozenFrames::new();
        assert!(!g.frame(f64::NAN, 1));
        assert!(g.frame(1_500.0, 1));
    }
}
