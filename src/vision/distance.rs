//! Faces at any distance. TinyFaceDetector misses a face that fills much of its input
//! (a user close to a laptop camera, or the server's tight crops): it finds faces best
//! at about 50-100 pixels of its input. When the frame as it is shows no face, the
//! detector runs again on the frame centred in larger square canvases, so the same face
//! covers less of the detector's view, until one finds a face. A frame whose face is
//! found as it is costs nothing extra; a frame with no face at all pays every retry
//! (`FaceAnalyzer::detect`); the video tracker tries one view per frame instead.

use crate::vision::detect::{self, BoundingBox};
use crate::vision::frame::RgbaFrame;
use crate::vision::preprocess::DETECTOR_MEAN_RGB;

/// Retry canvases, in multiples of the frame's longer side, in the order tried. Chosen on
/// GENKI-4K dev crops in grey frames 1.2x-3x their size with the first run at 224 and at
/// 320: 1.25 finds most faces filling half the frame or more, 2.5 the ones filling it,
/// and together they find as many as three or four canvases did at 0.5
/// (`./run score --labelled DIR --scales-only` prints the table by scale).
pub const RETRY_CANVASES: [f64; 2] = [1.25, 2.5];

/// The retries' detector input side, at most: a face that needs a retry is a large one,
/// which a small input still resolves, and a 224 run costs half a 320 one, so a retry
/// never costs more than the first run. The same canvases then suit any first input size.
pub const RETRY_INPUT_SIZE: usize = 224;

/// The retries keep boxes scoring above this fraction of the score threshold (0.3 for
/// face-api's 0.5): at 0.5 no set of canvases found 95% of the dev faces at every
/// scale. On frames with no face (photo patches away from faces, noise, flat grey, a
/// ramp, and dev crops of necks and clothing) 0.3 added no face that 0.5 did not report.
pub const RETRY_SCORE_FACTOR: f64 = 0.6;

/// The retries' input side for a first run at `input_size`.
pub fn retry_input_size(input_size: usize) -> usize {
    input_size.min(RETRY_INPUT_SIZE)
}

/// A frame placed in the middle of a larger square canvas, as the detector sees it.
pub struct Canvas {
    /// The detector's `[1, 3, size, size]` input.
    pub input: Vec<f32>,
    side: usize,
    offset: (usize, usize),
    size: usize,
}

impl Canvas {
    /// `frame` centred in a square canvas `factor` times its longer side (at least 1),
    /// the rest filled with the detector's mean colour (zero once normalised), sampled
    /// at the detector's input `size`.
    pub fn new(frame: &RgbaFrame, factor: f64, size: usize) -> Self {
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let side = canvas_side(w, h, factor);
        let offset = ((side - w) / 2, (side - h) / 2);
        Self {
            input: canvas_input(frame, side, offset, size),
            side,
            offset,
            size,
        }
    }

    /// The detector's `grid` for this canvas as boxes in pixels of the frame (they may
    /// reach past its edges), strongest first.
    pub fn boxes(&self, grid: &[f32], score_threshold: f64) -> Vec<(BoundingBox, f64)> {
        let side = self.side as f64;
        let (ox, oy) = (self.offset.0 as f64, self.offset.1 as f64);
        detect::decode(
            grid,
            self.size / 32,
            self.size,
            self.side as u32,
            self.side as u32,
            score_threshold,
        )
        .into_iter()
        .map(|d| {
            let b = d.relative.scale(side, side);
            let moved = BoundingBox {
                x: b.x - ox,
                y: b.y - oy,
                ..b
            };
            (moved, d.score)
        })
        .collect()
    }
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
        for (c, mean) in DETECTOR_MEAN_RGB.iter().enumerate() {
            let white = (255.0 - mean) / 255.0;
            assert!((at(c, 4, 4) - white).abs() < 1e-6);
            assert!((at(c, 11, 11) - white).abs() < 1e-6);
        }
        assert_eq!(at(0, 12, 8), 0.0);
    }
}
