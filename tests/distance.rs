//! Faces at any distance (`vision::distance`), with the real models: a face that fills
//! the frame is found where one detector run misses it, its box lands on the face, and
//! a frame without a face stays without one after every retry.

mod common;

use common::{rgba, DETECTOR, EXPRESSION};
use smile_factor::vision::distance::RETRY_CANVASES;
use smile_factor::{AnalyzerOptions, BoundingBox, FaceAnalyzer, RgbaFrame};

const CROPS: [&str; 8] = [
    "smile_1",
    "smile_2",
    "smile_3",
    "neutral_1",
    "neutral_2",
    "neutral_3",
    "sad_1",
    "mixed_1",
];

fn analyzer(input_size: usize) -> FaceAnalyzer {
    let options = AnalyzerOptions {
        input_size,
        ..Default::default()
    };
    FaceAnalyzer::new(DETECTOR, EXPRESSION, options).expect("models load")
}

fn largest(boxes: &[(BoundingBox, f64)]) -> Option<BoundingBox> {
    boxes
        .iter()
        .map(|(b, _)| *b)
        .max_by(|a, b| a.area().total_cmp(&b.area()))
}

/// The tight fixture crop (the face fills it edge to edge) scaled up to `side`, as a
/// face right in front of the camera shows in a frame.
fn close_face(name: &str, side: u32) -> Vec<u8> {
    let (buf, w, h) = rgba(&format!("crops/{name}.png"));
    let img = image::RgbaImage::from_raw(w, h, buf).unwrap();
    image::imageops::resize(&img, side, side, image::imageops::FilterType::Triangle).into_raw()
}

#[test]
fn a_face_filling_the_frame_is_found_on_its_face() {
    for size in [224, 320] {
        let a = analyzer(size);
        let side = 240;
        let (mut as_is, mut pipeline) = (0, 0);
        for name in CROPS {
            let buf = close_face(name, side);
            let frame = RgbaFrame::new(&buf, side, side).unwrap();
            as_is += !a.detect_once(&frame).unwrap().is_empty() as usize;
            let Some(b) = largest(&a.detect(&frame).unwrap()) else {
                continue;
            };
            pipeline += 1;
            // The face fills the frame: the box is centred on it and at least half as wide.
            let (cx, cy) = (b.x + b.width / 2.0, b.y + b.height / 2.0);
            let s = side as f64;
            assert!(
                (cx - s / 2.0).abs() < s / 4.0 && (cy - s / 2.0).abs() < s / 4.0,
                "{name} @{size}: box {b:?} is off the face"
            );
            assert!(
                b.width > s / 2.0,
                "{name} @{size}: box {b:?} is too small for the face"
            );
        }
        println!("close faces @{size}: one run finds {as_is}/8, the pipeline {pipeline}/8");
        // The bar is 95% of faces; on 8 faces that allows one miss (at 320 one
        // crop cut inside the face outline is found by no canvas).
        assert!(pipeline >= CROPS.len() - 1, "@{size}: close faces missed");
        assert!(
            as_is < pipeline,
            "@{size}: one run already finds every close face, so this tests nothing"
        );
    }
}

#[test]
fn boxes_from_a_canvas_come_back_in_frame_pixels() {
    // A face found as it is must be found at the same place through a canvas. The boxes
    // differ a little with the scale (IoU 0.58 at the worst); a wrong offset or scale
    // would put them apart.
    let (buf, w, h) = rgba("frames/sample3_416x416.png");
    let frame = RgbaFrame::new(&buf, w, h).unwrap();
    let a = analyzer(416);
    let direct = a.detect_once(&frame).unwrap();
    assert!(direct.len() >= 2);
    for factor in [1.5, 2.0] {
        let via = a.detect_in_canvas(&frame, factor).unwrap();
        for (b, _) in &direct {
            let best = via.iter().map(|(v, _)| v.iou(b)).fold(0.0, f64::max);
            assert!(
                best > 0.5,
                "canvas {factor}: {b:?} moved (best IoU {best:.2})"
            );
        }
    }
}

#[test]
fn a_frame_without_a_face_stays_without_one() {
    // Flat grey and a smooth colour ramp: every retry runs, none may invent a face.
    let (w, h) = (320u32, 240u32);
    let grey = vec![128u8; (w * h * 4) as usize];
    let ramp: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            [(x * 255 / w) as u8, (y * 255 / h) as u8, 90, 255]
        })
        .collect();
    for size in [224, 320] {
        let a = analyzer(size);
        for buf in [&grey, &ramp] {
            let frame = RgbaFrame::new(buf, w, h).unwrap();
            assert!(a.detect(&frame).unwrap().is_empty());
            for factor in RETRY_CANVASES {
                assert!(a.detect_in_canvas(&frame, factor).unwrap().is_empty());
            }
        }
    }
}

#[test]
fn the_tracker_finds_a_close_face_within_a_few_frames_at_one_run_each() {
    use smile_factor::{Tracker, TrackerOptions};
    let a = analyzer(224);
    let side = 240;
    let mut found_at = Vec::new();
    for name in CROPS {
        let buf = close_face(name, side);
        let frame = RgbaFrame::new(&buf, side, side).unwrap();
        if !a.detect_once(&frame).unwrap().is_empty() {
            continue; // found as it is: nothing to show here
        }
        let mut tracker = Tracker::new(TrackerOptions::default()).unwrap();
        let first = (1..=2 * RETRY_CANVASES.len() + 1)
            .find(|_| tracker.step(&a, &frame).unwrap().judged.is_some());
        found_at.push((name, first));
        // Once found, the face is kept on the following frames.
        if first.is_some() {
            for _ in 0..6 {
                assert!(tracker.step(&a, &frame).unwrap().judged.is_some(), "{name} lost");
            }
        }
    }
    println!("close faces the first run misses, frame found: {found_at:?}");
    assert!(!found_at.is_empty(), "every close face found as it is: tests nothing");
    let found = found_at.iter().filter(|(_, f)| f.is_some()).count();
    assert!(found + 1 >= found_at.len(), "close faces not found by the tracker: {found_at:?}");
}
