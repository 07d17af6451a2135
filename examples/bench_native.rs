//! Native timing of the core: `cargo run --release --example bench_native [-- ROUNDS]`.
//! Prints median and p90 per call of `analyze` on a 640x480 frame (detector at 224,
//! 320, 416) and of `classify_face` on a 112x112 crop, then detect-then-track on the
//! page's 320x240 frame at 224: a detect frame, a tracked frame (expression net plus
//! template matching), and the mean cost per frame at the tracker's default mix.
//! Last, detection as is and with the retries on larger canvases (`vision::distance`) on
//! a 320x240 frame with no face and one with a face filling it.
//! The browser comparison with face-api.js is a separate benchmark; this one tracks
//! the engine itself.

use std::time::Instant;

use smile_factor::{AnalyzerOptions, FaceAnalyzer, RgbaFrame, Tracker, TrackerOptions, View};

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
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100)
        .max(1);
    let (frame, fw, fh) = rgba(FRAME)?;
    let (crop, cw, ch) = rgba(CROP)?;
    println!("native, {rounds} calls after {WARMUP} warm-up, single thread");
    println!("| call                                   | median ms | p90 ms | faces |");
    println!("|----------------------------------------|-----------|--------|-------|");
    for size in [224, 320, 416] {
        let a = FaceAnalyzer::new(
            DETECTOR,
            EXPRESSION,
            AnalyzerOptions {
                input_size: size,
                ..Default::default()
            },
        )?;
        let faces = a.analyze(&frame, fw, fh)?.len();
        let (med, p90) = time(rounds, || a.analyze(&frame, fw, fh));
        println!("| analyze 640x480, detector at {size:<3}       | {med:>9.2} | {p90:>6.2} | {faces:>5} |");
    }
    let a = FaceAnalyzer::new(DETECTOR, EXPRESSION, AnalyzerOptions::default())?;
    let (med, p90) = time(rounds, || a.classify_face(&crop, cw, ch));
    println!("| classify_face 112x112                  | {med:>9.2} | {p90:>6.2} |     - |");
    track_rows(rounds, &frame, fw, fh)?;
    distance_rows(rounds, &crop, cw, ch)?;
    Ok(())
}

/// Detection with and without the retries on larger canvases (`vision::distance`), on
/// the page's 320x240 frame at 224 and 320: a face at a normal distance costs the same,
/// a frame with no face pays the retries, a face filling the frame is found only by one.
fn distance_rows(
    rounds: usize,
    crop: &[u8],
    cw: u32,
    ch: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let (w, h) = (320u32, 240u32);
    let grey = vec![128u8; (w * h * 4) as usize];
    // The smile crop scaled to the frame's height, centred: a face close to the camera.
    let img = image::RgbaImage::from_raw(cw, ch, crop.to_vec()).ok_or("crop size")?;
    let face = image::imageops::resize(&img, h, h, image::imageops::FilterType::Triangle);
    let mut close = image::RgbaImage::from_pixel(w, h, image::Rgba([128, 128, 128, 255]));
    image::imageops::overlay(&mut close, &face, ((w - h) / 2) as i64, 0);
    // At 320 the retries run at 224 (`distance::RETRY_INPUT_SIZE`).
    for size in [224, 320] {
        let options = AnalyzerOptions {
            input_size: size,
            ..Default::default()
        };
        let a = FaceAnalyzer::new(DETECTOR, EXPRESSION, options)?;
        for (name, buf) in [("no face", &grey), ("face filling it", close.as_raw())] {
            let f = RgbaFrame::new(buf, w, h)?;
            let once = time(rounds, || a.detect_once(&f));
            row(
                &format!("320x240 @{size}, {name}: detect as is"),
                once,
                &a.detect_once(&f)?.len().to_string(),
            );
            let both = time(rounds, || a.detect(&f));
            row(
                &format!("320x240 @{size}, {name}: detect + retry"),
                both,
                &a.detect(&f)?.len().to_string(),
            );
        }
    }
    Ok(())
}

fn row(name: &str, (med, p90): (f64, f64), faces: &str) {
    println!("| {name:<38} | {med:>9.2} | {p90:>6.2} | {faces:>5} |");
}

/// The page's frame: the 640x480 fixture scaled to 320x240, detector at 224.
fn track_rows(
    rounds: usize,
    frame: &[u8],
    fw: u32,
    fh: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let img = image::RgbaImage::from_raw(fw, fh, frame.to_vec()).ok_or("frame size")?;
    let small = image::imageops::resize(&img, 320, 240, image::imageops::FilterType::Triangle);
    let f = RgbaFrame::new(small.as_raw(), 320, 240)?;
    let a = FaceAnalyzer::new(
        DETECTOR,
        EXPRESSION,
        AnalyzerOptions {
            input_size: 224,
            ..Default::default()
        },
    )?;
    let largest = |f: &RgbaFrame| -> Result<_, smile_factor::SmileError> {
        Ok(a.detect(f)?
            .into_iter()
            .map(|(b, _)| b)
            .max_by(|x, y| x.area().total_cmp(&y.area())))
    };
    let faces = a.detect(&f)?.len().to_string();
    let judged = largest(&f)?.ok_or("the bench frame must show a face")?;
    // Today's page: the detector, then the expression net on the largest box.
    let today = time(rounds, || -> Result<_, smile_factor::SmileError> {
        largest(&f)?
            .map(|b| a.classify_box(&f, &b, View::AsIs))
            .transpose()
    });
    row("320x240 @224: detect + classify (today)", today, &faces);
    let defaults = TrackerOptions::default();
    let mut t = Tracker::new(defaults)?;
    let detect = time(rounds, || {
        t.reset();
        t.step(&a, &f)
    });
    row("320x240 @224: tracker, detect frame", detect, &faces);
    // Never due for detection: every timed step is a tracked frame.
    let mut t = Tracker::new(TrackerOptions {
        redetect_every: TrackerOptions::MAX_REDETECT_EVERY,
        ..defaults
    })?;
    t.step(&a, &f)?;
    let tracked = time(rounds, || t.step(&a, &f));
    if t.step(&a, &f)?.detected {
        return Err("the still frame lost its track".into());
    }
    row("320x240 @224: tracker, tracked frame", tracked, "1");
    let net = time(rounds, || a.classify_box(&f, &judged, View::AsIs));
    row("  of which the expression net alone", net, "1");
    // One whole redetect cycle per sample, so each sample is the mean over the mix.
    let n = defaults.redetect_every as usize;
    let mut t = Tracker::new(defaults)?;
    let (med, p90) = time(rounds, || -> Result<(), smile_factor::SmileError> {
        for _ in 0..n {
            t.step(&a, &f)?;
        }
        Ok(())
    });
    let k = n as f64;
    row(
        &format!("320x240 @224: tracker mean, 1 in {n} detect"),
        (med / k, p90 / k),
        "-",
    );
    println!(
        "tracked frame vs today: {:.1}x faster; default mix vs today: {:.1}x faster (medians)",
        today.0 / tracked.0,
        today.0 * k / med
    );
    Ok(())
}
