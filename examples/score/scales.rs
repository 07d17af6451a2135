//! The scorer's table of detection rates by scale: each labelled crop centred in a
//! mid-grey frame 1.2x, 1.5x, 2x and 3x its size, at detector input 224 and 320, found by
//! one detector run on the frame as it is (face-api.js's way) and by the pipeline's
//! detection ([`smile_factor::vision::distance`]: retries on larger canvases when the
//! first run finds nothing). A crop counts as found when the largest box's centre lies
//! inside the crop. Crops missed at every scale and size are listed: the ones to look at
//! for crops with no face in them.

use std::path::Path;

use smile_factor::vision::distance;
use smile_factor::{AnalyzerOptions, BoundingBox, FaceAnalyzer, RgbaFrame};

use super::{images_in, load_rgba, AnyResult, BACKGROUND};

/// Frame side over crop side.
pub const SCALES: [f64; 4] = [1.2, 1.5, 2.0, 3.0];
pub const INPUT_SIZES: [usize; 2] = [224, 320];

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

/// Whether the largest box's centre lies inside the crop's place in the frame.
fn found(boxes: &[(BoundingBox, f64)], place: &BoundingBox) -> bool {
    boxes
        .iter()
        .map(|(b, _)| b)
        .max_by(|a, b| a.area().total_cmp(&b.area()))
        .is_some_and(|b| {
            let (cx, cy) = (b.x + b.width / 2.0, b.y + b.height / 2.0);
            cx >= place.x && cx <= place.right() && cy >= place.y && cy <= place.bottom()
        })
}

/// Prints the table for the `smile` and `non_smile` crops under `dir`.
pub fn print_table(detector: &[u8], expression: &[u8], dir: &Path) -> AnyResult<()> {
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
    let cells = SCALES.len() * INPUT_SIZES.len();
    // [cell] -> (found as is, found by the pipeline)
    let mut hits = vec![(0usize, 0usize); cells];
    let mut total = 0usize;
    let mut missed_everywhere = Vec::new();
    let mut missed_somewhere = 0usize;
    for sub in ["non_smile", "smile"] {
        for path in images_in(&dir.join(sub))? {
            let (rgba, w, h) = load_rgba(&path)?;
            total += 1;
            let mut misses = 0;
            for (si, &scale) in SCALES.iter().enumerate() {
                let (frame, fw, fh, place) = framed(&rgba, w, h, scale);
                let frame = RgbaFrame::new(&frame, fw, fh)?;
                for (ai, a) in analyzers.iter().enumerate() {
                    let cell = &mut hits[si * INPUT_SIZES.len() + ai];
                    let first = a.detect_once(&frame)?;
                    cell.0 += found(&first, &place) as usize;
                    // Exactly what FaceAnalyzer::detect does after its first run.
                    let ok = found(&a.retry_if_empty(&frame, first)?, &place);
                    cell.1 += ok as usize;
                    misses += !ok as usize;
                }
            }
            missed_somewhere += (misses > 0) as usize;
            if misses == cells {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                missed_everywhere.push(format!("{sub}/{name}"));
            }
        }
    }
    let pct = |n: usize| 100.0 * n as f64 / total.max(1) as f64;
    println!();
    println!(
        "detection rate by scale: {total} crops, each centred in a grey frame N times its size; \
         found = the largest box's centre inside the crop"
    );
    let mut header = String::from("| frame / crop |");
    let mut rule = String::from("|--------------|");
    for s in INPUT_SIZES {
        header.push_str(&format!(" {s} as is | {s} pipeline |"));
        rule.push_str("------------|--------------|");
    }
    println!("{header}");
    println!("{rule}");
    for (si, scale) in SCALES.iter().enumerate() {
        let mut line = format!("| {scale:>11.1}x |");
        for ai in 0..INPUT_SIZES.len() {
            let (once, piped) = hits[si * INPUT_SIZES.len() + ai];
            line.push_str(&format!(" {:>9.2}% | {:>11.2}% |", pct(once), pct(piped)));
        }
        println!("{line}");
    }
    println!(
        "as is: one detector run on the frame (face-api.js); pipeline: FaceAnalyzer::detect \
         (when nothing is found, retries on canvases {:?} times the frame)",
        distance::RETRY_CANVASES
    );
    println!(
        "missed by the pipeline at some scale or size: {missed_somewhere}; at every one ({}): {}",
        missed_everywhere.len(),
        missed_everywhere.join(" ")
    );
    Ok(())
}
