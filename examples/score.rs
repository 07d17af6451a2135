//! Command-line scorer.
//!
//! `cargo run --release --example score -- [--input-size N] [--models DIR] <image|dir>...`
//!     prints every face found, with its box, score and 7 expression probabilities, as JSON.
//! `cargo run --release --example score -- --labelled DIR [--faceapi FILE.jsonl]`
//!     scores a `DIR/smile`, `DIR/non_smile` set (e.g. ../shared/data/genki4k-dev) two ways:
//!     the expression net on each whole crop, and detect-then-classify on the crop
//!     padded into a larger frame. Prints accuracy of `happy > t`, ROC AUC, the best
//!     threshold and the detection rate; with `--faceapi`, the largest difference from
//!     face-api.js's own probabilities for the same crops. Then `accuracy NN.NN%` and
//!     `AUC 0.NNNN` lines for face-api's rule (`happy > 0.5`) and for the smile head
//!     (mirror-averaged, at the default threshold), and the head's 5-fold CV figures
//!     that `models/smile_head/train.py` recorded in `models/smile_head/cv.json`.
//! `... --labelled DIR --track [--frames N] [--motion PX] [--redetect-every N] [--margin M]`
//!     also feeds each crop-in-frame as a sequence of N frames (default 6) through the
//!     tracker and compares it, frame by frame, with detection on every frame. The crop
//!     stands still, or moves PX pixels right and down per frame with `--motion`. Scores
//!     are the smile head's; the tracker reads odd frames mirrored unless `--no-mirror`.
//!     Each sequence's verdict is a smile held over `--hold N` consecutive frames (5).
//! `... --labelled DIR [--scales-only] [--every N] [--scales-tracker]` ends with the table
//!     of detection rates by scale (score/scales.rs); `--scales-only` prints only that
//!     table, `--every N` builds it from every Nth crop of each class (a quicker look while
//!     iterating), `--scales-tracker` adds the video tracker's column (twice the work).

use std::collections::HashMap;
use std::error::Error;
use std::path::{Path, PathBuf};

use smile_factor::challenge::verdict::DEFAULT_THRESHOLD;
use smile_factor::{AnalyzerOptions, Face, FaceAnalyzer, RgbaFrame, Tracker, TrackerOptions};

type AnyResult<T> = Result<T, Box<dyn Error>>;

#[path = "score/scales.rs"]
mod scales;

/// The crop goes in the middle of a frame this many times its size, on mid-grey,
/// so the detector sees a face with context as a webcam frame would show it.
const FRAME_FACTOR: u32 = 3;
const BACKGROUND: u8 = 128;

struct Args {
    models: PathBuf,
    input_size: usize,
    labelled: Option<PathBuf>,
    faceapi: Option<PathBuf>,
    track: Option<TrackArgs>,
    paths: Vec<PathBuf>,
    scales_only: bool,
    every: usize,
    scales_tracker: bool,
}

/// How the labelled crops go through the tracker.
#[derive(Clone, Copy)]
struct TrackArgs {
    /// Frames per crop. 6 with the default redetect_every of 5: detect, 4 tracked, detect.
    frames: u32,
    /// Pixels the crop moves right and down per frame (0 = a still sequence).
    motion: u32,
    /// Consecutive frames at or above the threshold that make a sequence's smile.
    hold: u32,
    options: TrackerOptions,
}

fn parse_args() -> AnyResult<Args> {
    let mut args = Args {
        models: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"),
        input_size: AnalyzerOptions::default().input_size,
        labelled: None,
        faceapi: None,
        track: None,
        paths: Vec::new(),
        scales_only: false,
        every: 1,
        scales_tracker: false,
    };
    let mut track = TrackArgs {
        frames: 6,
        motion: 0,
        hold: 5,
        options: TrackerOptions::default(),
    };
    let mut tracking = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--models" => args.models = value()?.into(),
            "--input-size" => args.input_size = value()?.parse()?,
            "--labelled" => args.labelled = Some(value()?.into()),
            "--faceapi" => args.faceapi = Some(value()?.into()),
            "--track" => tracking = true,
            "--frames" => track.frames = value()?.parse()?,
            "--motion" => track.motion = value()?.parse()?,
            "--redetect-every" => track.options.redetect_every = value()?.parse()?,
            "--margin" => track.options.margin = value()?.parse()?,
            "--hold" => track.hold = value()?.parse()?,
            "--no-mirror" => track.options.mirror_odd_frames = false,
            "--scales-only" => args.scales_only = true,
            "--scales-tracker" => args.scales_tracker = true,
            "--every" => args.every = value()?.parse::<usize>()?.max(1),
            "-h" | "--help" => {
                println!("usage: score [--models DIR] [--input-size N] (<image|dir>... | --labelled DIR [--scales-only] [--every N] [--scales-tracker] [--faceapi FILE] [--track [--frames N] [--motion PX] [--redetect-every N] [--margin M]])");
                std::process::exit(0);
            }
            _ => args.paths.push(a.into()),
        }
    }
    if tracking {
        if !(1..=64).contains(&track.frames) || track.motion > 8 {
            return Err("--frames must be 1 to 64 and --motion 0 to 8".into());
        }
        if !(1..=track.frames).contains(&track.hold) {
            return Err("--hold must be 1 to --frames".into());
        }
        // Checks the tracker options before any image is read.
        Tracker::new(track.options)?;
        args.track = Some(track);
    }
    if args.labelled.is_none() && args.paths.is_empty() {
        return Err("give an image, a folder, or --labelled DIR (see --help)".into());
    }
    Ok(args)
}

fn load_rgba(path: &Path) -> AnyResult<(Vec<u8>, u32, u32)> {
    let img = image::open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .to_rgba8();
    let (w, h) = img.dimensions();
    Ok((img.into_raw(), w, h))
}

fn images_in(dir: &Path) -> AnyResult<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase)
                    .as_deref(),
                Some("jpg" | "jpeg" | "png")
            )
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The crop centred in a larger mid-grey frame.
fn pad_into_frame(rgba: &[u8], w: u32, h: u32) -> (Vec<u8>, u32, u32) {
    pad_into_frame_at(rgba, w, h, 0)
}

/// The crop in a larger mid-grey frame, `shift` pixels right and down of the centre
/// (`shift` is at most the crop's size, so it stays inside the frame).
fn pad_into_frame_at(rgba: &[u8], w: u32, h: u32, shift: i64) -> (Vec<u8>, u32, u32) {
    let (fw, fh) = (w * FRAME_FACTOR, h * FRAME_FACTOR);
    let mut out = vec![BACKGROUND; (fw * fh * 4) as usize];
    let shift_x = shift.clamp(-(w as i64), w as i64);
    let shift_y = shift.clamp(-(h as i64), h as i64);
    let ox = ((fw - w) / 2) as i64 + shift_x;
    let oy = ((fh - h) / 2) as i64 + shift_y;
    let (ox, oy) = (ox as u32, oy as u32);
    for y in 0..h {
        let src = (y * w * 4) as usize..((y + 1) * w * 4) as usize;
        let dst = (((oy + y) * fw + ox) * 4) as usize;
        out[dst..dst + src.len()].copy_from_slice(&rgba[src]);
    }
    (out, fw, fh)
}

fn largest(faces: &[Face]) -> Option<&Face> {
    faces
        .iter()
        .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
}

/// ROC AUC by the rank-sum formula, ties counted half.
fn roc_auc(pos: &[f64], neg: &[f64]) -> f64 {
    let mut all: Vec<(f64, bool)> = pos
        .iter()
        .map(|&s| (s, true))
        .chain(neg.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + j + 1) as f64 / 2.0;
        rank_sum += avg_rank * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let (np, nn) = (pos.len() as f64, neg.len() as f64);
    (rank_sum - np * (np + 1.0) / 2.0) / (np * nn)
}

fn accuracy(pos: &[f64], neg: &[f64], t: f64) -> f64 {
    let correct = pos.iter().filter(|&&s| s > t).count() + neg.iter().filter(|&&s| s <= t).count();
    correct as f64 / (pos.len() + neg.len()) as f64
}

/// The threshold with the best accuracy, placed midway between neighbouring scores.
fn best_threshold(pos: &[f64], neg: &[f64]) -> (f64, f64) {
    let mut scores: Vec<f64> = pos.iter().chain(neg).copied().collect();
    scores.sort_by(f64::total_cmp);
    scores.dedup();
    let mut best = (0.5, accuracy(pos, neg, 0.5));
    for pair in scores.windows(2) {
        let t = (pair[0] + pair[1]) / 2.0;
        let a = accuracy(pos, neg, t);
        if a > best.1 {
            best = (t, a);
        }
    }
    best
}

fn report(name: &str, pos: &[f64], neg: &[f64]) {
    let (t, a) = best_threshold(pos, neg);
    println!(
        "| {name:<34} | {:>6} | {:>7.2}% | {:>6.4} | {:>9.4} | {:>7.2}% |",
        pos.len() + neg.len(),
        100.0 * accuracy(pos, neg, 0.5),
        roc_auc(pos, neg),
        t,
        100.0 * a
    );
}

fn read_faceapi(path: &Path) -> AnyResult<HashMap<String, [f64; 7]>> {
    let text = std::fs::read_to_string(path)?;
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let file = v["file"].as_str().ok_or("a line has no file")?.to_string();
        let mut p = [0.0; 7];
        for (slot, label) in p.iter_mut().zip(smile_factor::EXPRESSION_LABELS) {
            *slot = v["probs"][label]
                .as_f64()
                .ok_or("a line lacks a probability")?;
        }
        out.insert(file, p);
    }
    Ok(out)
}

/// Per-frame results of detection on every frame and of the tracker on the same frames.
/// A frame without a face scores 0, as in the pipeline row.
#[derive(Default)]
struct TrackTally {
    every: [Vec<f64>; 2],
    tracked: [Vec<f64>; 2],
    /// Only the frames where the tracker skipped the detector: (tracker, every frame).
    skipped: [Vec<(f64, f64)>; 2],
    every_faces: usize,
    tracker_faces: usize,
    detector_runs: usize,
    frames: usize,
    diff_sum: f64,
    diff_max: f64,
    same_call: usize,
    /// Per sequence, the best score held over `hold` consecutive frames (the lowest in
    /// the window): it smiled when that reaches the threshold. Tracker, every frame.
    held: [[Vec<f64>; 2]; 2],
}

/// The highest minimum over windows of `hold` consecutive scores.
fn held_score(scores: &[f64], hold: usize) -> f64 {
    scores
        .windows(hold.max(1))
        .map(|w| w.iter().copied().fold(f64::INFINITY, f64::min))
        .fold(0.0, f64::max)
}

impl TrackTally {
    /// Feeds one crop through the tracker as a sequence. `still` is the detect-every-frame
    /// result of the centred crop: a still sequence repeats the same frame, and the models
    /// are deterministic, so every frame would give exactly it again.
    fn crop(
        &mut self,
        analyzer: &FaceAnalyzer,
        tracker: &mut Tracker,
        args: TrackArgs,
        class: usize,
        (rgba, w, h): (&[u8], u32, u32),
        still: Option<f64>,
    ) -> AnyResult<()> {
        tracker.reset();
        let (mut seq_t, mut seq_e) = (Vec::new(), Vec::new());
        let n = args.frames as i64;
        for k in 0..n {
            // Centred over the sequence, so the crop never leaves the frame.
            let shift = (k - (n - 1) / 2) * args.motion as i64;
            let (frame, fw, fh) = pad_into_frame_at(rgba, w, h, shift);
            let every = if args.motion == 0 {
                still
            } else {
                let faces = analyzer.analyze(&frame, fw, fh)?;
                largest(&faces).map(|f| f.smile as f64)
            };
            let step = tracker.step(analyzer, &RgbaFrame::new(&frame, fw, fh)?)?;
            let ours = step.smile.map(f64::from);
            let (e, t) = (every.unwrap_or(0.0), ours.unwrap_or(0.0));
            seq_t.push(t);
            seq_e.push(e);
            self.every[class].push(e);
            self.tracked[class].push(t);
            if !step.detected {
                self.skipped[class].push((t, e));
            }
            self.every_faces += every.is_some() as usize;
            self.tracker_faces += ours.is_some() as usize;
            self.detector_runs += step.detected as usize;
            self.frames += 1;
            self.diff_sum += (t - e).abs();
            self.diff_max = self.diff_max.max((t - e).abs());
            let thr = DEFAULT_THRESHOLD as f64;
            self.same_call += ((t >= thr) == (e >= thr)) as usize;
        }
        let hold = args.hold as usize;
        self.held[0][class].push(held_score(&seq_t, hold));
        self.held[1][class].push(held_score(&seq_e, hold));
        Ok(())
    }

    fn print(&self, args: TrackArgs, input_size: usize) {
        let o = args.options;
        let motion = match args.motion {
            0 => "a still sequence".to_string(),
            m => format!("moving {m} px right and down per frame"),
        };
        println!();
        println!(
            "detect, then track: each crop in its {FRAME_FACTOR}x frame as {} frames, {motion}; \
             detector input {input_size}, redetect_every {}, margin {}, min_correlation {}, max_shift {}; \
             smile scores, odd frames mirrored: {}",
            args.frames, o.redetect_every, o.margin, o.min_correlation, o.max_shift, o.mirror_odd_frames
        );
        println!("| mode                               | frames | acc@0.5  |  AUC   | best thr  | best acc |");
        println!("|------------------------------------|--------|----------|--------|-----------|----------|");
        report("detection on every frame", &self.every[1], &self.every[0]);
        report("tracker", &self.tracked[1], &self.tracked[0]);
        let part = |i: usize| {
            self.skipped.clone().map(|v| {
                v.iter()
                    .map(|p| if i == 0 { p.0 } else { p.1 })
                    .collect::<Vec<f64>>()
            })
        };
        let (ours, every) = (part(0), part(1));
        report("tracker, tracked frames only", &ours[1], &ours[0]);
        report("every frame, on those frames", &every[1], &every[0]);
        let pct = |n: usize| 100.0 * n as f64 / self.frames.max(1) as f64;
        println!(
            "frames with a face: every frame {:.2}%, tracker {:.2}%; the tracker ran the detector on {:.2}% of frames",
            pct(self.every_faces),
            pct(self.tracker_faces),
            pct(self.detector_runs)
        );
        println!(
            "tracker vs every frame, per frame: mean |diff| smile {:.5}, max {:.4}, same smile>={DEFAULT_THRESHOLD:.2} call {:.2}%",
            self.diff_sum / self.frames.max(1) as f64,
            self.diff_max,
            pct(self.same_call)
        );
        let thr = DEFAULT_THRESHOLD as f64;
        for (name, h) in [
            ("tracker", &self.held[0]),
            ("every frame, as is", &self.held[1]),
        ] {
            let acc = h[1].iter().filter(|&&s| s >= thr).count()
                + h[0].iter().filter(|&&s| s < thr).count();
            println!(
                "sequence verdict, {name} (smile held {} frames at >= {thr:.2}): accuracy {:.2}%, AUC {:.4}",
                args.hold,
                100.0 * acc as f64 / (h[0].len() + h[1].len()).max(1) as f64,
                roc_auc(&h[1], &h[0])
            );
        }
    }
}

fn score_labelled(
    analyzer: &FaceAnalyzer,
    dir: &Path,
    faceapi: Option<&Path>,
    track: Option<TrackArgs>,
) -> AnyResult<()> {
    let reference = faceapi.map(read_faceapi).transpose()?;
    let mut tally = TrackTally::default();
    let mut tracker = track.map(|t| Tracker::new(t.options)).transpose()?;
    let (mut crop, mut piped) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    let mut smile: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let (mut detected, mut total) = (0usize, 0usize);
    let (mut max_diff, mut mean_diff, mut agree, mut compared) = (0f64, 0f64, 0usize, 0usize);
    for (class, sub) in ["non_smile", "smile"].iter().enumerate() {
        for path in images_in(&dir.join(sub))? {
            let (rgba, w, h) = load_rgba(&path)?;
            let scores = analyzer.classify_face(&rgba, w, h)?;
            let happy = scores.expressions;
            crop[class].push(happy.happy as f64);
            smile[class].push(scores.smile as f64);
            let (frame, fw, fh) = pad_into_frame(&rgba, w, h);
            let faces = analyzer.analyze(&frame, fw, fh)?;
            total += 1;
            let face = largest(&faces);
            detected += face.is_some() as usize;
            // An undetected face cannot be judged smiling: it scores 0 here.
            piped[class].push(face.map_or(0.0, |f| f.expressions.happy as f64));
            if let (Some(t), Some(tracker)) = (track, tracker.as_mut()) {
                let still = face.map(|f| f.smile as f64);
                tally.crop(analyzer, tracker, t, class, (&rgba, w, h), still)?;
            }
            let key = format!(
                "{sub}/{}",
                path.file_name().and_then(|n| n.to_str()).unwrap_or("")
            );
            if let Some(theirs) = reference.as_ref().and_then(|r| r.get(&key)) {
                let ours = happy.to_array();
                let d = ours
                    .iter()
                    .zip(theirs)
                    .map(|(a, b)| (*a as f64 - b).abs())
                    .fold(0.0, f64::max);
                max_diff = max_diff.max(d);
                mean_diff += (ours[1] as f64 - theirs[1]).abs();
                agree += ((ours[1] > 0.5) == (theirs[1] > 0.5)) as usize;
                compared += 1;
            }
        }
    }
    println!("dataset: {} (smile = positive)", dir.display());
    println!("| mode                               | images | acc@0.5  |  AUC   | best thr  | best acc |");
    println!("|------------------------------------|--------|----------|--------|-----------|----------|");
    report("expression net on whole crop", &crop[1], &crop[0]);
    // A flat curve around the chosen threshold means the choice does not hinge on this split.
    let sweep: Vec<String> = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
        .iter()
        .map(|&t| format!("{t:.1}: {:.2}%", 100.0 * accuracy(&crop[1], &crop[0], t)))
        .collect();
    println!(
        "| whole-crop accuracy by threshold   | {} |",
        sweep.join(" | ")
    );
    report("detect+classify (crop in 3x frame)", &piped[1], &piped[0]);
    println!(
        "detection rate (crop in {FRAME_FACTOR}x frame, input {}): {detected}/{total} = {:.2}%",
        analyzer.options().input_size,
        100.0 * detected as f64 / total.max(1) as f64
    );
    if let Some(r) = &reference {
        let theirs: [Vec<f64>; 2] = ["non_smile/", "smile/"].map(|p| {
            let mut v: Vec<(&String, f64)> = r
                .iter()
                .filter(|(k, _)| k.starts_with(p))
                .map(|(k, v)| (k, v[1]))
                .collect();
            v.sort_by(|a, b| a.0.cmp(b.0));
            v.into_iter().map(|x| x.1).collect()
        });
        report(
            "face-api.js 1.7.15 (from --faceapi)",
            &theirs[1],
            &theirs[0],
        );
        println!(
            "vs face-api.js on {compared} crops: max |diff| over 7 probs {max_diff:.4}, mean |diff| happy {:.5}, same happy>0.5 call {:.2}%",
            mean_diff / compared.max(1) as f64,
            100.0 * agree as f64 / compared.max(1) as f64
        );
    }
    print_smile_accuracy(&crop, &smile)?;
    if let Some(t) = track {
        tally.print(t, analyzer.options().input_size);
    }
    Ok(())
}

/// face-api's rule against the smile head, and the head's cross-validated figures.
fn print_smile_accuracy(happy: &[Vec<f64>; 2], smile: &[Vec<f64>; 2]) -> AnyResult<()> {
    let t = DEFAULT_THRESHOLD as f64;
    // `accuracy` counts `> t`; the verdict counts `>= t`: the same unless a score is exactly t.
    println!();
    println!("face-api.js rule, happy > 0.5 (whole crop):");
    println!(
        "accuracy {:.2}%",
        100.0 * accuracy(&happy[1], &happy[0], 0.5)
    );
    println!("AUC {:.4}", roc_auc(&happy[1], &happy[0]));
    println!("smile head, mirror-averaged, smile >= {t:.2} (default threshold; whole crop):");
    println!("accuracy {:.2}%", 100.0 * accuracy(&smile[1], &smile[0], t));
    println!("AUC {:.4}", roc_auc(&smile[1], &smile[0]));
    let cv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/smile_head/cv.json");
    let cv: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cv)?)?;
    println!(
        "the head is trained on GENKI-4K dev: on dev the lines above are in-sample; its {}-fold \
         cross-validated dev figures (models/smile_head/cv.json, by train.py):",
        cv["folds"]
    );
    for row in cv["rows"].as_array().ok_or("cv.json: no rows")? {
        println!(
            "  {:<44} accuracy {:.2}% ± {:.2}, AUC {:.4} ± {:.4}",
            row["name"].as_str().unwrap_or("?"),
            row["accuracy"].as_f64().unwrap_or(f64::NAN),
            row["accuracy_sd"].as_f64().unwrap_or(f64::NAN),
            row["auc"].as_f64().unwrap_or(f64::NAN),
            row["auc_sd"].as_f64().unwrap_or(f64::NAN),
        );
    }
    println!(
        "  thresholds chosen in the folds' training parts: {} (mean {:.3} ± {:.3})",
        cv["thresholds"],
        cv["threshold_mean"].as_f64().unwrap_or(f64::NAN),
        cv["threshold_sd"].as_f64().unwrap_or(f64::NAN)
    );
    Ok(())
}

fn main() -> AnyResult<()> {
    let args = parse_args()?;
    let read = |name: &str| -> AnyResult<Vec<u8>> {
        let p = args.models.join(name);
        std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()).into())
    };
    let options = AnalyzerOptions {
        input_size: args.input_size,
        ..Default::default()
    };
    let analyzer = FaceAnalyzer::new(
        &read("tiny_face_detector.onnx")?,
        &read("face_expression.onnx")?,
        options,
    )?;
    if let Some(dir) = &args.labelled {
        if !args.scales_only {
            score_labelled(&analyzer, dir, args.faceapi.as_deref(), args.track)?;
        }
        let (detector, expression) = (
            read("tiny_face_detector.onnx")?,
            read("face_expression.onnx")?,
        );
        return scales::print_table(&detector, &expression, dir, args.every, args.scales_tracker);
    }
    let mut results = Vec::new();
    for p in &args.paths {
        let files = if p.is_dir() {
            images_in(p)?
        } else {
            vec![p.clone()]
        };
        for f in files {
            let (rgba, w, h) = load_rgba(&f)?;
            let faces = analyzer.analyze(&rgba, w, h)?;
            results.push(serde_json::json!({ "file": f.display().to_string(), "width": w, "height": h, "faces": faces }));
        }
    }
    println!("{}", serde_json::to_string_pretty(&results)?);
    Ok(())
}
