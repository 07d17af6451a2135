//! Faces at any distance (`vision::distance`), with the real models: a face that fills
//! the frame is found where one detector run misses it, its box lands on the face, the
//! tracker finds it within a few frames, and a frame without a face stays without one
//! after every retry (at the retries' lower score threshold).

mod common;

use common::{rgba, CROPS, DETECTOR, EXPRESSION};
use smile_factor::vision::distance::{retry_input_size, RETRY_CANVASES};
use smile_factor::{AnalyzerOptions, BoundingBox, FaceAnalyzer, RgbaFrame};

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
        assert_eq!(pipeline, CROPS.len(), "@{size}: close faces missed");
        assert!(
            as_is < pipeline,
            "@{size}: one run already finds every close face, so this tests nothing"
        );
    }
}

#[test]
fn boxes_from_a_canvas_come_back_in_frame_pixels() {
    // A face found as it is must be found at the same place through a canvas, which
    // a first run at 320 retries at input 224 and which, for a frame wider than tall,
    // sits at an offset. Compared with one run at 224 as it is (the detector's boxes
    // change with its input size); they differ a little with the canvas's scale, and a
    // wrong offset or scale would put them apart.
    let a = analyzer(320);
    let first = analyzer(224);
    // (frame, canvas): 1.0 centres the 640x480 frame at a vertical offset of 80 px.
    for (name, factor) in [
        ("sample1_640x480", 1.0),
        ("sample3_416x416", 1.0),
        ("sample3_416x416", RETRY_CANVASES[0]),
    ] {
        let (buf, w, h) = rgba(&format!("frames/{name}.png"));
        let frame = RgbaFrame::new(&buf, w, h).unwrap();
        let direct = first.detect_once(&frame).unwrap();
        assert!(direct.len() >= 2, "{name}");
        let via = a.detect_in_canvas(&frame, factor).unwrap();
        for (b, _) in &direct {
            let best = via.iter().map(|(v, _)| v.iou(b)).fold(0.0, f64::max);
            println!("{name}, canvas {factor}: best IoU {best:.2}");
            assert!(
                best > 0.5,
                "{name}, canvas {factor}: {b:?} moved (best IoU {best:.2})"
            );
        }
    }
}

/// A `side`-pixel square of a fixture photo at (`x`, `y`).
fn patch(name: &str, x: u32, y: u32, side: u32) -> Vec<u8> {
    let (buf, w, h) = rgba(&format!("frames/{name}.png"));
    let img = image::RgbaImage::from_raw(w, h, buf).unwrap();
    image::imageops::crop_imm(&img, x, y, side, side)
        .to_image()
        .into_raw()
}

#[test]
fn a_frame_without_a_face_stays_without_one() {
    // Flat grey, a smooth colour ramp, and photo patches with no face in them (gloves,
    // fishnet, a dark top: patches where some other canvas or input size scores a box
    // between 0.3 and 0.36). Every retry runs, none may invent a face.
    let (w, h) = (320u32, 240u32);
    let grey = vec![128u8; (w * h * 4) as usize];
    let ramp: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            [(x * 255 / w) as u8, (y * 255 / h) as u8, 90, 255]
        })
        .collect();
    let mut frames = vec![(grey, w, h), (ramp, w, h)];
    for (name, x, y) in [
        ("sample1_640x480", 288, 384),
        ("sample1_640x480", 432, 384),
        ("sample3_416x416", 0, 288),
    ] {
        frames.push((patch(name, x, y, 96), 96, 96));
    }
    for size in [224, 320] {
        let a = analyzer(size);
        for (i, (buf, w, h)) in frames.iter().enumerate() {
            let frame = RgbaFrame::new(buf, *w, *h).unwrap();
            assert!(a.detect(&frame).unwrap().is_empty(), "frame {i} @{size}");
            for factor in RETRY_CANVASES {
                let found = a.detect_in_canvas(&frame, factor).unwrap();
                assert!(
                    found.is_empty(),
                    "frame {i} @{size}, canvas {factor}: {found:?}"
                );
            }
        }
    }
}

#[test]
fn a_retry_never_runs_the_detector_larger_than_the_first_run() {
    // The tracker's rule, one detector run a frame at most the cost of one as it is,
    // holds only if a retry's input is no larger than the first run's.
    for size in [64, 160, 224, 320, 416, 1024] {
        assert!(retry_input_size(size) <= size, "{size}");
    }
}

#[test]
fn the_tracker_finds_a_close_face_within_a_few_frames_at_one_run_each() {
    use smile_factor::{Tracker, TrackerOptions};
    let side = 240;
    for size in [224, 320] {
        let a = analyzer(size);
        let mut found_at = Vec::new();
        for name in CROPS {
            let buf = close_face(name, side);
            let frame = RgbaFrame::new(&buf, side, side).unwrap();
            if !a.detect_once(&frame).unwrap().is_empty() {
                continue; // found as it is: nothing to show here
            }
            let mut tracker = Tracker::new(TrackerOptions::default()).unwrap();
            // The frame as it is, then each canvas once, between runs as it is.
            let first = (1..=2 * RETRY_CANVASES.len()).find(|_| {
                let step = tracker.step(&a, &frame).unwrap();
                step.judged
                    .and_then(|i| step.boxes.get(i))
                    .is_some_and(|b| {
                        let (cx, cy) = (b.x + b.width / 2.0, b.y + b.height / 2.0);
                        let s = side as f64;
                        (cx - s / 2.0).abs() < s / 4.0 && (cy - s / 2.0).abs() < s / 4.0
                    })
            });
            found_at.push((name, first));
            // Once found, the face is kept on the following frames.
            if first.is_some() {
                for _ in 0..6 {
                    let step = tracker.step(&a, &frame).unwrap();
                    assert!(step.judged.is_some(), "{name} @{size} lost");
                }
            }
        }
        println!("@{size}: close faces the first run misses, frame found: {found_at:?}");
        assert!(
            !found_at.is_empty(),
            "@{size}: every close face found as it is: tests nothing"
        );
        assert!(
            found_at.iter().all(|(_, f)| f.is_some()),
            "@{size}: close faces not found by the tracker: {found_at:?}"
        );
    }
}
