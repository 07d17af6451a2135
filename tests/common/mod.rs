//! Shared by the native parity tests (tests/parity.rs) and the browser tests
//! (tests/web.rs): the fixtures, face-api.js's own results for them
//! (tests/fixtures/faceapi_reference.json, written by tests/reference/run.mjs),
//! and the comparisons. Everything is embedded so the wasm build needs no file system.
#![allow(dead_code)]

use serde::Deserialize;

pub const DETECTOR: &[u8] = include_bytes!("../../models/tiny_face_detector.onnx");
pub const EXPRESSION: &[u8] = include_bytes!("../../models/face_expression.onnx");
const REFERENCE: &str = include_str!("../fixtures/faceapi_reference.json");

/// Expression probabilities: same model, same input tensor (112x112 crops need no resize).
pub const CROP_TOLERANCE: f32 = 1e-3;
/// Whole images: resize, box decoding and face extraction all take part.
pub const PIPELINE_PROB_TOLERANCE: f32 = 0.02;
pub const PIPELINE_MIN_IOU: f64 = 0.9;

macro_rules! fixtures {
    ($($name:literal),* $(,)?) => {
        /// The bytes of a fixture file, by its path under tests/fixtures/.
        pub fn fixture(name: &str) -> &'static [u8] {
            match name {
                $($name => include_bytes!(concat!("../fixtures/", $name)),)*
                other => panic!("fixture {other} is not embedded in tests/common/mod.rs"),
            }
        }
    };
}

/// The fixture face crops (tests/fixtures/crops/NAME.png), every one a tight face.
pub const CROPS: [&str; 8] = [
    "smile_1",
    "smile_2",
    "smile_3",
    "neutral_1",
    "neutral_2",
    "neutral_3",
    "sad_1",
    "mixed_1",
];

fixtures!(
    "crops/smile_1.png",
    "crops/smile_2.png",
    "crops/smile_3.png",
    "crops/neutral_1.png",
    "crops/neutral_2.png",
    "crops/neutral_3.png",
    "crops/sad_1.png",
    "crops/mixed_1.png",
    "frames/sample1_640x480.png",
    "frames/sample6_640x480.png",
    "frames/sample3_416x416.png",
);

#[derive(Deserialize)]
pub struct Reference {
    pub crops: Vec<RefCrop>,
    pub detector_raw: Vec<RefGrid>,
    pub frames: Vec<RefFrame>,
}

#[derive(Deserialize)]
pub struct RefCrop {
    pub file: String,
    pub expressions: [f32; 7],
}

#[derive(Deserialize)]
pub struct RefGrid {
    pub file: String,
    pub input_size: usize,
    /// NHWC [1, cells, cells, 25].
    pub shape: [usize; 4],
    pub data: Vec<f32>,
}

#[derive(Deserialize)]
pub struct RefFrame {
    pub file: String,
    pub input_size: usize,
    pub faces: Vec<RefFace>,
}

#[derive(Deserialize)]
pub struct RefFace {
    #[serde(rename = "box")]
    pub bbox: RefBox,
    pub score: f64,
    pub expressions: [f32; 7],
}

#[derive(Deserialize, Clone, Copy, Debug)]
pub struct RefBox {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

impl RefBox {
    pub fn iou(&self, o: &RefBox) -> f64 {
        let w = ((self.x + self.width).min(o.x + o.width) - self.x.max(o.x)).max(0.0);
        let h = ((self.y + self.height).min(o.y + o.height) - self.y.max(o.y)).max(0.0);
        let inter = w * h;
        inter / (self.width * self.height + o.width * o.height - inter)
    }
}

/// A face as our API reports it, reduced to what the comparison needs.
#[derive(Debug)]
pub struct OurFace {
    pub bbox: RefBox,
    pub score: f64,
    pub expressions: [f32; 7],
}

pub fn reference() -> Reference {
    serde_json::from_str(REFERENCE).expect("faceapi_reference.json parses")
}

/// A fixture PNG as RGBA bytes with its size.
pub fn rgba(name: &str) -> (Vec<u8>, u32, u32) {
    let img = image::load_from_memory(fixture(name))
        .expect("fixture decodes")
        .to_rgba8();
    let (w, h) = img.dimensions();
    (img.into_raw(), w, h)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Every crop's 7 probabilities within CROP_TOLERANCE of face-api's.
/// Returns one line per crop for the test log; panics with all failures.
pub fn check_crops(classify: impl Fn(&[u8], u32, u32) -> [f32; 7]) -> Vec<String> {
    let r = reference();
    assert!(r.crops.len() >= 6, "the reference lists too few crops");
    let mut log = Vec::new();
    let mut failures = Vec::new();
    for c in &r.crops {
        let (buf, w, h) = rgba(&c.file);
        let ours = classify(&buf, w, h);
        let d = max_diff(&ours, &c.expressions);
        log.push(format!(
            "{}: max |diff| {d:.2e}, happy {:.4} vs {:.4}",
            c.file, ours[1], c.expressions[1]
        ));
        if d > CROP_TOLERANCE {
            failures.push(format!(
                "{}: ours {ours:?} vs face-api {:?}",
                c.file, c.expressions
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "expression parity failed:\n{}",
        failures.join("\n")
    );
    log
}

/// The raw detector grid (ours NCHW) against face-api's (NHWC), for one input size.
pub fn check_grid(
    input_size: usize,
    grid: impl Fn(&[u8], u32, u32) -> Vec<f32>,
    tolerance: f32,
) -> f32 {
    let r = reference();
    let g = r
        .detector_raw
        .iter()
        .find(|g| g.input_size == input_size)
        .expect("reference grid for this size");
    let (buf, w, h) = rgba(&g.file);
    let ours = grid(&buf, w, h);
    let [_, cells, _, ch] = g.shape;
    assert_eq!(ours.len(), g.data.len(), "grid size");
    let mut worst = 0f32;
    for y in 0..cells {
        for x in 0..cells {
            for c in 0..ch {
                let theirs = g.data[(y * cells + x) * ch + c];
                let mine = ours[(c * cells + y) * cells + x];
                worst = worst.max((theirs - mine).abs());
            }
        }
    }
    assert!(
        worst <= tolerance,
        "{} at {input_size}: max |diff| {worst} > {tolerance}",
        g.file
    );
    worst
}

/// Same number of faces as face-api, each matched face with IoU >= 0.9 and
/// probabilities within 0.02. Checks every reference frame at `input_size`.
pub fn check_frames(
    input_size: usize,
    analyze: impl Fn(&[u8], u32, u32) -> Vec<OurFace>,
) -> Vec<String> {
    let r = reference();
    let frames: Vec<&RefFrame> = r
        .frames
        .iter()
        .filter(|f| f.input_size == input_size)
        .collect();
    assert!(
        frames.len() >= 2,
        "too few reference frames at {input_size}"
    );
    let mut log = Vec::new();
    let mut failures = Vec::new();
    for f in frames {
        let (buf, w, h) = rgba(&f.file);
        let ours = analyze(&buf, w, h);
        if ours.len() != f.faces.len() {
            failures.push(format!(
                "{} at {input_size}: {} faces, face-api found {}",
                f.file,
                ours.len(),
                f.faces.len()
            ));
            continue;
        }
        for theirs in &f.faces {
            let Some(best) = ours.iter().max_by(|a, b| {
                a.bbox
                    .iou(&theirs.bbox)
                    .total_cmp(&b.bbox.iou(&theirs.bbox))
            }) else {
                continue;
            };
            let iou = best.bbox.iou(&theirs.bbox);
            let d = max_diff(&best.expressions, &theirs.expressions);
            log.push(format!(
                "{} @{input_size}: IoU {iou:.4}, score {:.4} vs {:.4}, max prob |diff| {d:.2e}",
                f.file, best.score, theirs.score
            ));
            if iou < PIPELINE_MIN_IOU || d > PIPELINE_PROB_TOLERANCE {
                failures.push(format!(
                    "{} at {input_size}: face {:?} vs ours {:?} (IoU {iou:.3}, diff {d:.3})",
                    f.file, theirs.bbox, best
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "pipeline parity failed:\n{}",
        failures.join("\n")
    );
    log
}
