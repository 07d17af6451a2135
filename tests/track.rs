//! Detect-then-track with the real models on frames built from the fixture faces, at the
//! page's analysis size (320x240, detector at 224). Each test compares the tracker
//! with what detection on every frame gives on the same frames.

mod common;

use common::{rgba, DETECTOR, EXPRESSION};
use smile_factor::{
    AnalyzerOptions, BoundingBox, FaceAnalyzer, RgbaFrame, SmileError, TrackStep, Tracker,
    TrackerOptions, View,
};

const W: u32 = 320;
const H: u32 = 240;
/// The e2e videos' background: a soft grey-blue gradient without structure.
const TOP: [f64; 3] = [150.0, 156.0, 160.0];
const BOTTOM: [f64; 3] = [118.0, 122.0, 128.0];
/// A 112x112 crop drawn 1.6x, as large as the e2e videos show it after the page scales
/// them to 320x240.
const FACE_SCALE: f64 = 1.6;

fn analyzer() -> FaceAnalyzer {
    let options = AnalyzerOptions {
        input_size: 224,
        ..Default::default()
    };
    FaceAnalyzer::new(DETECTOR, EXPRESSION, options).expect("models load")
}

fn tracker(options: TrackerOptions) -> Tracker {
    Tracker::new(options).expect("valid options")
}

fn background() -> Vec<u8> {
    let mut out = Vec::with_capacity((W * H * 4) as usize);
    for y in 0..H {
        let t = y as f64 / (H - 1) as f64;
        let c: Vec<u8> = (0..3)
            .map(|i| (TOP[i] + (BOTTOM[i] - TOP[i]) * t).round() as u8)
            .collect();
        for _ in 0..W {
            out.extend_from_slice(&[c[0], c[1], c[2], 255]);
        }
    }
    out
}

/// The fixture crop scaled bilinearly by FACE_SCALE and centred at (cx, cy).
fn scene(crop: &str, cx: f64, cy: f64) -> Vec<u8> {
    let (src, sw, sh) = rgba(crop);
    let mut out = background();
    let (w, h) = (
        (sw as f64 * FACE_SCALE).round() as i64,
        (sh as f64 * FACE_SCALE).round() as i64,
    );
    let (x0, y0) = (
        (cx - w as f64 / 2.0).round() as i64,
        (cy - h as f64 / 2.0).round() as i64,
    );
    let tap = |i: i64, n: u32| {
        let s = ((i as f64 + 0.5) / FACE_SCALE - 0.5).clamp(0.0, (n - 1) as f64);
        let lo = s.floor() as usize;
        (lo, (lo + 1).min(n as usize - 1), s - lo as f64)
    };
    for y in 0..h {
        let dy = y0 + y;
        if dy < 0 || dy >= H as i64 {
            continue;
        }
        let (sy0, sy1, fy) = tap(y, sh);
        for x in 0..w {
            let dx = x0 + x;
            if dx < 0 || dx >= W as i64 {
                continue;
            }
            let (sx0, sx1, fx) = tap(x, sw);
            let o = ((dy * W as i64 + dx) * 4) as usize;
            for c in 0..3 {
                let p = |yy: usize, xx: usize| src[(yy * sw as usize + xx) * 4 + c] as f64;
                let top = p(sy0, sx0) * (1.0 - fx) + p(sy0, sx1) * fx;
                let bot = p(sy1, sx0) * (1.0 - fx) + p(sy1, sx1) * fx;
                out[o + c] = (top * (1.0 - fy) + bot * fy).round() as u8;
            }
        }
    }
    out
}

fn frame(buf: &[u8]) -> RgbaFrame<'_> {
    RgbaFrame::new(buf, W, H).expect("valid frame")
}

fn step(t: &mut Tracker, a: &FaceAnalyzer, buf: &[u8]) -> TrackStep {
    t.step(a, &frame(buf)).expect("step")
}

/// The view the tracker's `i`th frame (from 0) reads with the default options: odd
/// frames are mirrored when `mirror_odd_frames` is on.
fn view_of(i: usize) -> View {
    if TrackerOptions::default().mirror_odd_frames && i % 2 == 1 {
        View::Mirrored
    } else {
        View::AsIs
    }
}

/// Detection on every frame, as the page did before: the largest box and its smile
/// score from `view`.
fn every_frame(a: &FaceAnalyzer, buf: &[u8], view: View) -> Option<(BoundingBox, f32)> {
    let f = frame(buf);
    let boxes = a.detect(&f).expect("detect");
    let b = boxes
        .into_iter()
        .map(|(b, _)| b)
        .max_by(|x, y| x.area().total_cmp(&y.area()))?;
    let smile = a.classify_box(&f, &b, view).expect("classify")?.smile;
    Some((b, smile))
}

fn judged(s: &TrackStep) -> BoundingBox {
    s.boxes[s.judged.expect("a judged face")]
}

#[test]
fn a_still_face_is_detected_once_then_tracked_with_the_same_verdict() {
    let a = analyzer();
    let mut t = tracker(TrackerOptions::default());
    for crop in [
        "crops/mixed_1.png",
        "crops/smile_3.png",
        "crops/neutral_2.png",
    ] {
        t.reset();
        let buf = scene(crop, 160.0, 120.0);
        let (b0, h0) = every_frame(&a, &buf, View::AsIs).expect("the face is found");
        let (_, m0) = every_frame(&a, &buf, View::Mirrored).expect("the face is found");
        let first = step(&mut t, &a, &buf);
        assert!(first.detected);
        assert_eq!(
            first.smile,
            Some(h0),
            "{crop}: a detect frame is exactly detect-every-frame"
        );
        for i in 2..=4 {
            let s = step(&mut t, &a, &buf);
            assert!(!s.detected, "{crop}: frame {i} should skip the detector");
            assert_eq!(s.boxes.len(), 1);
            assert!(
                judged(&s).iou(&b0) > 0.99,
                "{crop}: frame {i} box {:?} vs {b0:?}",
                s.boxes
            );
            let h = s.smile.expect("a tracked face has a score");
            let want = if view_of(i - 1) == View::Mirrored {
                m0
            } else {
                h0
            };
            assert!(
                (h - want).abs() < 0.05,
                "{crop}: frame {i} smile {h} vs {want}"
            );
        }
    }
}

#[test]
fn a_moving_face_is_followed_and_scored_as_when_it_stood_still() {
    let a = analyzer();
    // neutral_2 is left out: its score swings by 0.2 when its box moves by one pixel,
    // whichever way the box is found.
    for crop in [
        "crops/mixed_1.png",
        "crops/smile_1.png",
        "crops/smile_3.png",
        "crops/neutral_1.png",
        "crops/sad_1.png",
    ] {
        let mut t = tracker(TrackerOptions::default());
        // 3 px right and 1 px down a frame: 4 frames cover 12 px, 7% of the face. The
        // face itself does not change, so the first frame's score is the right one.
        let at = |i: usize| scene(crop, 150.0 + 3.0 * i as f64, 118.0 + i as f64);
        let first = step(&mut t, &a, &at(0));
        let (b0, h0) = (judged(&first), first.smile.expect("face found"));
        let (_, m0) = every_frame(&a, &at(0), View::Mirrored).expect("face found");
        for i in 1..5 {
            let buf = at(i);
            let s = step(&mut t, &a, &buf);
            assert!(
                !s.detected,
                "{crop} frame {i}: the face stayed within reach"
            );
            let b = judged(&s);
            let (ex, ey) = (b0.x + 3.0 * i as f64, b0.y + i as f64);
            assert!(
                (b.x - ex).abs() < 1.5 && (b.y - ey).abs() < 1.5 && b.width == b0.width,
                "{crop} frame {i}: box {b:?}, the face is at ({ex:.1}, {ey:.1})"
            );
            let h = s.smile.expect("a tracked face has a score");
            let still = if view_of(i) == View::Mirrored { m0 } else { h0 };
            let every = every_frame(&a, &buf, view_of(i)).map(|(_, h)| h);
            println!("{crop} frame {i}: tracker {h:.3}, still {still:.3}, detection on this frame {every:?}");
            assert!(
                (h - still).abs() < 0.1,
                "{crop} frame {i}: smile {h} vs {still} standing still"
            );
        }
    }
}

#[test]
fn a_face_that_jumps_is_detected_again_on_that_frame() {
    let a = analyzer();
    let mut t = tracker(TrackerOptions::default());
    let left = scene("crops/smile_3.png", 105.0, 120.0);
    let right = scene("crops/smile_3.png", 215.0, 120.0);
    assert!(step(&mut t, &a, &left).detected);
    assert!(!step(&mut t, &a, &left).detected);
    let s = step(&mut t, &a, &right);
    assert!(s.detected, "a 110 px jump must run the detector");
    let (b, h) = every_frame(&a, &right, view_of(2)).expect("face found");
    assert!(judged(&s).iou(&b) > 0.99);
    assert_eq!(s.smile, Some(h));
    // And the new place is tracked from then on.
    let s = step(&mut t, &a, &right);
    assert!(!s.detected);
    assert!(judged(&s).iou(&b) > 0.99);
}

#[test]
fn a_face_that_vanishes_gives_no_face_until_it_returns() {
    let a = analyzer();
    let mut t = tracker(TrackerOptions::default());
    let face = scene("crops/neutral_2.png", 160.0, 120.0);
    let empty = background();
    assert!(step(&mut t, &a, &face).smile.is_some());
    assert!(!step(&mut t, &a, &face).detected);
    for _ in 0..3 {
        let s = step(&mut t, &a, &empty);
        assert!(s.detected, "a lost face must run the detector");
        assert_eq!((s.smile, s.judged), (None, None));
        assert!(s.boxes.is_empty());
    }
    let back = step(&mut t, &a, &face);
    assert!(back.detected && back.smile.is_some());
}

#[test]
fn the_detector_runs_every_n_frames_and_on_reset() {
    let a = analyzer();
    let buf = scene("crops/smile_1.png", 160.0, 120.0);
    for n in [1u32, 3, 4] {
        let mut t = tracker(TrackerOptions {
            redetect_every: n,
            ..Default::default()
        });
        let ran: Vec<bool> = (0..9).map(|_| step(&mut t, &a, &buf).detected).collect();
        let expected: Vec<bool> = (0..9).map(|i| i % n == 0).collect();
        assert_eq!(ran, expected, "redetect_every {n}");
    }
    let mut t = tracker(TrackerOptions::default());
    step(&mut t, &a, &buf);
    assert!(!step(&mut t, &a, &buf).detected);
    t.reset();
    assert!(step(&mut t, &a, &buf).detected, "reset forgets the face");
}

#[test]
fn several_faces_track_the_largest_and_draw_all_on_detect_frames() {
    let a = analyzer();
    let (big, bw, bh) = rgba("frames/sample6_640x480.png");
    let img = image::RgbaImage::from_raw(bw, bh, big).expect("fixture frame");
    let small = image::imageops::resize(&img, W, H, image::imageops::FilterType::Triangle);
    let buf = small.into_raw();
    let mut t = tracker(TrackerOptions::default());
    let first = step(&mut t, &a, &buf);
    assert!(first.boxes.len() >= 2, "{:?}", first.boxes);
    let largest = judged(&first);
    assert!(first.boxes.iter().all(|b| b.area() <= largest.area()));
    let next = step(&mut t, &a, &buf);
    assert!(!next.detected);
    assert_eq!((next.boxes.len(), next.judged), (1, Some(0)));
    assert!(next.boxes[0].iou(&largest) > 0.99);
    // The tracked frame is odd: its score is that of the same box in frame 1's view.
    let same_box = a
        .classify_box(&frame(&buf), &next.boxes[0], view_of(1))
        .expect("classify")
        .map(|s| s.smile);
    assert_eq!(next.smile, same_box);
}

#[test]
fn odd_frames_read_the_mirror_image_when_switched_on() {
    let a = analyzer();
    let buf = scene("crops/mixed_1.png", 160.0, 120.0);
    let (_, as_is) = every_frame(&a, &buf, View::AsIs).expect("face found");
    let (_, mirrored) = every_frame(&a, &buf, View::Mirrored).expect("face found");
    assert!((as_is - mirrored).abs() > 1e-3, "{as_is} vs {mirrored}");
    // redetect_every 1: every frame is a detect frame, so the box is always the same.
    let every = TrackerOptions {
        redetect_every: 1,
        mirror_odd_frames: true,
        ..Default::default()
    };
    let mut t = tracker(every);
    let got: Vec<f32> = (0..4)
        .map(|_| step(&mut t, &a, &buf).smile.expect("face"))
        .collect();
    assert_eq!(got, [as_is, mirrored, as_is, mirrored]);
    t.reset();
    assert_eq!(
        step(&mut t, &a, &buf).smile,
        Some(as_is),
        "reset starts on an even frame"
    );
    let mut t = tracker(TrackerOptions {
        mirror_odd_frames: false,
        ..every
    });
    let got: Vec<f32> = (0..3)
        .map(|_| step(&mut t, &a, &buf).smile.expect("face"))
        .collect();
    assert_eq!(got, [as_is; 3]);
}

#[test]
fn a_new_frame_size_runs_the_detector() {
    let a = analyzer();
    let buf = scene("crops/smile_2.png", 160.0, 120.0);
    let mut t = tracker(TrackerOptions::default());
    step(&mut t, &a, &buf);
    let img = image::RgbaImage::from_raw(W, H, buf).expect("frame");
    let bigger = image::imageops::resize(&img, 2 * W, 2 * H, image::imageops::FilterType::Triangle);
    let f = RgbaFrame::new(bigger.as_raw(), 2 * W, 2 * H).expect("frame");
    assert!(t.step(&a, &f).expect("step").detected);
}

#[test]
fn bad_options_are_errors_naming_the_option() {
    let d = TrackerOptions::default();
    let cases = [
        (
            TrackerOptions {
                redetect_every: 0,
                ..d
            },
            "redetectEvery",
        ),
        (TrackerOptions { margin: -0.5, ..d }, "margin"),
        (
            TrackerOptions {
                margin: f64::NAN,
                ..d
            },
            "margin",
        ),
        (
            TrackerOptions {
                min_correlation: 1.5,
                ..d
            },
            "minCorrelation",
        ),
        (
            TrackerOptions {
                max_shift: 0.0,
                ..d
            },
            "maxShift",
        ),
    ];
    for (o, name) in cases {
        match Tracker::new(o) {
            Err(SmileError::Option(msg)) => assert!(msg.contains(name), "{msg}"),
            Err(e) => panic!("{o:?}: wrong error {e}"),
            Ok(_) => panic!("{o:?} was accepted"),
        }
    }
}
