//! The scorer's table of detection rates by scale: each labelled crop centred in a
//! mid-grey frame 1.2x, 1.5x, 2x and 3x its size, at detector input 224 and 320, found by
//! one detector run on the frame as it is (face-api.js's way), by the pipeline's
//! detection ([`smile_factor::vision::distance`]: retries on larger canvases when the
//! first run finds nothing) and by the video tracker on the same frame repeated (one
//! detector view per frame). A crop counts as found when the largest box's centre lies
//! inside the crop. Rates leave out the crops listed in `genki4k_dev_no_face.txt` (looked
//! at and judged to hold no face); crops the pipeline misses at every scale and size and
//! that list does not name are printed, to be looked at.

use std::collections::HashMap;
use std::path::Path;

use smile_factor::vision::distance;
use smile_factor::{AnalyzerOptions, BoundingBox, FaceAnalyzer, RgbaFrame, Tracker};

use super::{images_in, load_rgba, AnyResult, BACKGROUND};

/// Frame side over crop side.
pub const SCALES: [f64; 4] = [1.2, 1.5, 2.0, 3.0];
pub const INPUT_SIZES: [usize; 2] = [224, 320];
/// GENKI-4K dev crops with no face in them, one `class/file  why` a line.
const NO_FACE: &str = include_str!("genki4k_dev_no_face.txt");

/// The crop centred in a mid-grey frame `scale` times its size, and the crop's place.
fn framed(rgba: &[u8], w: u32, h: u32, scale: f64) -> (Vec<u8>, u32, u32, BoundingBox) {
    let fw = ((w as f64 * scale).round() as u32).max(w);
    let fh = ((h as f64 * scale).round() as u32).max(h);
    let (ox, oy) = ((fw - w) / 2, (fh - h) / 2);
    let mut out = vec![BACKGROUND; (fw * fh * 4) as usize];
    for y in 0..h {
        let src = (y * w * 4) as usize..((y + 1) * w * 4) as usize;
        let dst = (((oy + y) * fw + ox) * 4) as usize;
        out[dst..dst + src.len()].copy_from_slice(&rgba[src]);
    }
    let place = BoundingBox {
        x: ox as f64,
        y: oy as f64,
        width: w as f64,
        height: h as f64,
    };
    (out, fw, fh, place)
}

fn centre_inside(b: &BoundingBox, place: &BoundingBox) -> bool {
    let (cx, cy) = (b.x + b.width / 2.0, b.y + b.height / 2.0);
    cx >= place.x && cx <= place.right() && cy >= place.y && cy <= place.bottom()
}

/// Whether the largest box's centre lies inside the crop's place in the frame.
fn found(boxes: &[(BoundingBox, f64)], place: &BoundingBox) -> bool {
    boxes
        .iter()
        .map(|(b, _)| b)
        .max_by(|a, b| a.area().total_cmp(&b.area()))
        .is_some_and(|b| centre_inside(b, place))
}

/// The tracker on the frame repeated, for as many frames as it takes to try every view
/// once: whether the first face it judges lies on the crop.
fn tracker_finds(a: &FaceAnalyzer, frame: &RgbaFrame, place: &BoundingBox) -> AnyResult<bool> {
    let mut tracker = Tracker::new(Default::default())?;
    for _ in 0..=2 * distance::RETRY_CANVASES.len() {
        let step = tracker.step(a, frame)?;
        if let Some(b) = step.judged.and_then(|i| step.boxes.get(i)) {
            return Ok(centre_inside(b, place));
        }
    }
    Ok(false)
}

/// `class/file` names of the crops judged to hold no face.
fn no_face_list() -> HashMap<&'static str, &'static str> {
    NO_FACE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once(char::is_whitespace).unwrap_or((l, "")))
        .map(|(name, why)| (name, why.trim()))
        .collect()
}

#[derive(Clone, Copy, Default)]
struct Cell {
    as_is: usize,
    pipeline: usize,
    tracker: usize,
    /// Detector work of the pipeline, in runs at this input size.
    work: f64,
}

/// Prints the table for the `smile` and `non_smile` crops under `dir`, every `every`th
/// crop of each class.
pub fn print_table(
    detector: &[u8],
    expression: &[u8],
    dir: &Path,
    every: usize,
    tracker: bool,
) -> AnyResult<()> {
    let analyzers = INPUT_SIZES
        .iter()
        .map(|&input_size| {
            let options = AnalyzerOptions {
                input_size,
                ..Default::default()
            };
            FaceAnalyzer::new(detector, expression, options)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let no_face = no_face_list();
    let cells = SCALES.len() * INPUT_SIZES.len();
    // [with a face, listed as no face][cell]
    let mut hits = [vec![Cell::default(); cells], vec![Cell::default(); cells]];
    let mut totals = [0usize; 2];
    let mut unlisted_misses = Vec::new();
    let mut listed_missed = 0usize;
    for sub in ["non_smile", "smile"] {
        for path in images_in(&dir.join(sub))?.into_iter().step_by(every.max(1)) {
            let name = format!(
                "{sub}/{}",
                path.file_name().and_then(|n| n.to_str()).unwrap_or("")
            );
            let listed = no_face.contains_key(name.as_str()) as usize;
            let (rgba, w, h) = load_rgba(&path)?;
            totals[listed] += 1;
            let mut misses = 0;
            for (si, &scale) in SCALES.iter().enumerate() {
                let (frame, fw, fh, place) = framed(&rgba, w, h, scale);
                let frame = RgbaFrame::new(&frame, fw, fh)?;
                for (ai, a) in analyzers.iter().enumerate() {
                    let cell = &mut hits[listed][si * INPUT_SIZES.len() + ai];
                    let first = a.detect_once(&frame)?;
                    cell.as_is += found(&first, &place) as usize;
                    // Exactly what FaceAnalyzer::detect does after its first run.
                    let (boxes, retries) = a.retry_if_empty(&frame, first)?;
                    let ok = found(&boxes, &place);
                    cell.pipeline += ok as usize;
                    cell.work += 1.0 + retries as f64 * retry_cost(a);
                    if tracker {
                        cell.tracker += tracker_finds(a, &frame, &place)? as usize;
                    }
                    misses += !ok as usize;
                }
            }
            if misses == cells {
                if listed == 1 {
                    listed_missed += 1;
                } else {
                    unlisted_misses.push(name);
                }
            }
        }
    }
    let [faces, listed] = totals;
    let pct = |n: usize| 100.0 * n as f64 / faces.max(1) as f64;
    println!();
    println!(
        "detection rate by scale: {faces} crops with a face (every {every}th of each class; \
         {listed} more listed in examples/score/genki4k_dev_no_face.txt left out), each centred \
         in a grey frame N times its size; found = the largest box's centre inside the crop"
    );
    let mut header = String::from("| frame / crop |");
    let mut rule = String::from("|---|");
    for s in INPUT_SIZES {
        header.push_str(&format!(" {s} as is | {s} pipeline |"));
        rule.push_str("---|---|");
        if tracker {
            header.push_str(&format!(" {s} tracker |"));
            rule.push_str("---|");
        }
    }
    println!("{header}");
    println!("{rule}");
    for (si, scale) in SCALES.iter().enumerate() {
        let mut line = format!("| {scale:>11.1}x |");
        for ai in 0..INPUT_SIZES.len() {
            let c = hits[0][si * INPUT_SIZES.len() + ai];
            line.push_str(&format!(
                " {:>6.2}% | {:>7.2}% |",
                pct(c.as_is),
                pct(c.pipeline)
            ));
            if tracker {
                line.push_str(&format!(" {:>7.2}% |", pct(c.tracker)));
            }
        }
        println!("{line}");
    }
    println!(
        "as is: one detector run on the frame (face-api.js); pipeline: FaceAnalyzer::detect \
         (when nothing is found, retries on canvases {:?} times the frame, at input <= {} and \
         score > {:.2}); tracker (--scales-tracker): the video loop on the frame repeated, found \
         within {} frames (one detector view a frame)",
        distance::RETRY_CANVASES,
        distance::RETRY_INPUT_SIZE,
        AnalyzerOptions::default().score_threshold * distance::RETRY_SCORE_FACTOR,
        1 + 2 * distance::RETRY_CANVASES.len()
    );
    for (ai, (a, s)) in analyzers.iter().zip(INPUT_SIZES).enumerate() {
        let (mut work, mut n) = (0.0, 0usize);
        for si in 0..SCALES.len() {
            work += hits[0][si * INPUT_SIZES.len() + ai].work;
            n += faces;
        }
        println!(
            "detector work at {s}, in runs as is: {:.2} a frame on these crops; {:.2} on a frame \
             with no face",
            work / n.max(1) as f64,
            1.0 + distance::RETRY_CANVASES.len() as f64 * retry_cost(a)
        );
    }
    let false_faces: usize = hits[1].iter().map(|c| c.pipeline).sum();
    println!(
        "listed no-face crops: {listed}; missed by the pipeline at every scale and size: \
         {listed_missed}; cells where a box lands on one anyway: {false_faces} of {}",
        listed * cells
    );
    println!(
        "crops with a face missed by the pipeline at every scale and size ({}): {}",
        unlisted_misses.len(),
        unlisted_misses.join(" ")
    );
    Ok(())
}

/// One retry's cost in runs at the analyser's first input size.
fn retry_cost(a: &FaceAnalyzer) -> f64 {
    let first = a.options().input_size as f64;
    let retry = distance::retry_input_size(a.options().input_size) as f64;
    (retry / first).powi(2)
}
