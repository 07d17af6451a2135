//! Native timing of the core: `cargo run --release --example bench_native [-- ROUNDS]`.
//! Prints median and p90 per call of `analyze` on a 640x480 frame (detector at 224,
//! 320, 416) and of `classify_face` on a 112x112 crop. The browser comparison with
//! face-api.js is a separate benchmark; this one tracks the engine itself.

use std::time::Instant;

use smile_factor::{AnalyzerOptions, FaceAnalyzer};

const DETECTOR: &[u8] = include_bytes!("../models/tiny_face_detector.onnx");
const EXPRESSION: &[u8] = include_bytes!("../models/face_expression.onnx");
const FRAME: &[u8] = include_bytes!("../tests/fixtures/frames/sample6_640x480.png");
const CROP: &[u8] = include_bytes!("../tests/fixtures/crops/smile_1.png");
const WARMUP: usize = 5;

fn rgba(png: &[u8]) -> Result<(Vec<u8>, u32, u32), image::ImageError> {
    let img = image::load_from_memory(png)?.to_rgba8();
    let (w, h) = img.dimensions();
    Ok((img.into_raw(), w, h))
}

/// Median and 90th percentile in milliseconds.
fn time<T>(rounds: usize, mut f: impl FnMut() -> T) -> (f64, f64) {
    for _ in 0..WARMUP {
        std::hint::black_box(f());
    }
    let mut ms: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[(ms.len() * 9 / 10).min(ms.len() - 1)])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(100).max(1);
    let (frame, fw, fh) = rgba(FRAME)?;
    let (crop, cw, ch) = rgba(CROP)?;
    println!("native, {rounds} calls after {WARMUP} warm-up, single thread");
    println!("| call                                   | median ms | p90 ms | faces |");
    println!("|----------------------------------------|-----------|--------|-------|");
    for size in [224, 320, 416] {
        let a = FaceAnalyzer::new(DETECTOR, EXPRESSION, AnalyzerOptions { input_size: size, ..Default::default() })?;
        let faces = a.analyze(&frame, fw, fh)?.len();
        let (med, p90) = time(rounds, || a.analyze(&frame, fw, fh));
        println!("| analyze 640x480, detector at {size:<3}       | {med:>9.2} | {p90:>6.2} | {faces:>5} |");
    }
    let a = FaceAnalyzer::new(DETECTOR, EXPRESSION, AnalyzerOptions::default())?;
    let (med, p90) = time(rounds, || a.classify_face(&crop, cw, ch));
    println!("| classify_face 112x112                  | {med:>9.2} | {p90:>6.2} |     - |");
    Ok(())
}
