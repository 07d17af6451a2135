//! Faces at any distance. TinyFaceDetector misses a face that fills much of its input
//! (a user close to a laptop camera, or the server's tight crops): it finds faces best
//! at about 50-100 pixels of its input. When the frame as it is shows no face, the
//! detector runs again on the frame centred in larger square canvases, so the same face
//! covers less of the detector's view, until one finds a face. A frame whose face is
//! found as it is costs nothing extra; a frame with no face at all pays every retry.

use crate::vision::analyzer::FaceAnalyzer;
use crate::vision::detect::{self, BoundingBox};
use crate::vision::error::Result;
use crate::vision::frame::RgbaFrame;
use crate::vision::preprocess::DETECTOR_MEAN_RGB;

/// Retry canvases, in multiples of the frame's longer side, in the order tried. Chosen on
/// GENKI-4K dev crops in grey frames 1.2x-3x their size at input 224 and 320: 1.5 finds
/// faces a third of the frame wide at 320, 2.5 and 4 faces filling the frame
/// (`./run score --labelled` prints the table by scale).
pub const RETRY_CANVASES: [f64; 3] = [1.5, 2.5, 4.0];

/// Face boxes in pixels of `frame`, strongest first: the frame as it is, and when that
/// finds nothing, the frame centred in each of [`RETRY_CANVASES`] until one finds a face.
pub fn detect(analyzer: &FaceAnalyzer, frame: &RgbaFrame) -> Result<Vec<(BoundingBox, f64)>> {
    let found = analyzer.detect_once(frame)?;
    retry_if_empty(analyzer, frame, found)
}

/// The retries of [`detect`] after a first run that gave `found`.
pub fn retry_if_empty(
    analyzer: &FaceAnalyzer,
    frame: &RgbaFrame,
    found: Vec<(BoundingBox, f64)>,
) -> Result<Vec<(BoundingBox, f64)>> {
    if !found.is_empty() {
        return Ok(found);
    }
    for factor in RETRY_CANVASES {
        let found = detect_in_canvas(analyzer, frame, factor)?;
        if !found.is_empty() {
            return Ok(found);
        }
    }
    Ok(Vec::new())
}

/// One detector run on `frame` centred in a square canvas `factor` times its longer
/// side (at least 1), the rest filled with the detector's mean colour, which is zero
/// once normalised. Boxes come back in pixels of `frame` (they may reach past its edges).
pub fn detect_in_canvas(
    analyzer: &FaceAnalyzer,
    frame: &RgbaFrame,
    factor: f64,
) -> Result<Vec<(BoundingBox, f64)>> {
    let options = analyzer.options();
    let s = options.input_size;
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let side = canvas_side(w, h, factor);
    let (ox, oy) = ((side - w) / 2, (side - h) / 2);
    let input = canvas_input(frame, side, (ox, oy), s);
    let grid = analyzer.run_detector(input)?;
    let side_px = side as f64;
    Ok(detect::decode(
        &grid,
        s / 32,
        s,
        side as u32,
        side as u32,
        options.score_threshold,
    )
    .into_iter()
    .map(|d| {
        let b = d.relative.scale(side_px, side_px);
        let moved = BoundingBox {
            x: b.x - ox as f64,
            y: b.y - oy as f64,
            ..b
        };
        (moved, d.score)
    })
    .collect())
}

/// The canvas side for a `w` x `h` frame: `factor` times the longer side, never less
/// than the frame, and bounded so a NaN or huge factor cannot ask for absurd sizes.
fn canvas_side(w: usize, h: usize, factor: f64) -> usize {
    let long = w.max(h);
    let f = if factor.is_finite() {
        factor.clamp(1.0, 8.0)
    } else {
        1.0
    };
    ((long as f64 * f).round() as usize).max(long)
}

/// The detector's `[1, 3, size, size]` input for `frame` placed at `offset` in a
/// `side` x `side` canvas of the mean colour: the same legacy bilinear sampling and
/// normalisation as [`crate::vision::preprocess::square_input`], the canvas never
/// materialised.
fn canvas_input(frame: &RgbaFrame, side: usize, offset: (usize, usize), size: usize) -> Vec<f32> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (ox, oy) = offset;
    let pixel = |px: usize, py: usize| -> [f32; 3] {
        if px >= ox && px < ox + w && py >= oy && py < oy + h {
            frame.rgb(px - ox, py - oy)
        } else {
            DETECTOR_MEAN_RGB
        }
    };
    // resizeBilinear without half-pixel centres: src = dst * in / out.
    let ratio = side as f32 / size as f32;
    let taps: Vec<(usize, usize, f32)> = (0..size)
        .map(|d| {
            let src = d as f32 * ratio;
            let lo = (src.floor() as usize).min(side - 1);
            let hi = (src.ceil() as usize).min(side - 1);
            (lo, hi, src - lo as f32)
        })
        .collect();
    let plane = size * size;
    let mut data = vec![0f32; 3 * plane];
    for (y, &(ylo, yhi, fy)) in taps.iter().enumerate() {
        for (x, &(xlo, xhi, fx)) in taps.iter().enumerate() {
            let (tl, tr) = (pixel(xlo, ylo), pixel(xhi, ylo));
            let (bl, br) = (pixel(xlo, yhi), pixel(xhi, yhi));
            for c in 0..3 {
                let top = tl[c] + (tr[c] - tl[c]) * fx;
                let bottom = bl[c] + (br[c] - bl[c]) * fx;
                let v = top + (bottom - top) * fy;
                data[c * plane + y * size + x] = (v - DETECTOR_MEAN_RGB[c]) / 255.0;
            }
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canvas_is_never_smaller_than_the_frame_nor_absurd() {
        assert_eq!(canvas_side(100, 50, 2.0), 200);
        assert_eq!(canvas_side(100, 50, 0.5), 100);
        assert_eq!(canvas_side(100, 50, f64::NAN), 100);
        assert_eq!(canvas_side(100, 50, 1e9), 800);
    }

    #[test]
    fn the_frame_sits_in_the_middle_of_a_neutral_canvas() {
        // A white 8x8 frame in a 16x16 canvas sampled at 16: white in the middle, zero
        // (the mean, normalised) around it.
        let buf = vec![255u8; 8 * 8 * 4];
        let f = RgbaFrame::new(&buf, 8, 8).unwrap();
        let t = canvas_input(&f, 16, (4, 4), 16);
        let at = |c: usize, y: usize, x: usize| t[c * 256 + y * 16 + x];
        assert_eq!(at(0, 0, 0), 0.0);
        assert_eq!(at(2, 15, 15), 0.0);
        assert_eq!(at(1, 3, 8), 0.0);
        for c in 0..3 {
            let white = (255.0 - DETECTOR_MEAN_RGB[c]) / 255.0;
            assert!((at(c, 4, 4) - white).abs() < 1e-6);
            assert!((at(c, 11, 11) - white).abs() < 1e-6);
        }
        assert_eq!(at(0, 12, 8), 0.0);
    }
}
