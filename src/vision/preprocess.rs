//! Model input tensors, built exactly as face-api.js 1.7.15 builds them from a tensor
//! input: `padToSquare` (src/ops/padToSquare.ts), then `tf.image.resizeBilinear` with
//! alignCorners=false and halfPixelCenters=false, then mean subtraction and `/ 255`.
//! The padded square is never materialised: each output pixel samples the source
//! region directly, so a huge frame costs no more memory than a small one.

use crate::vision::frame::{Region, RgbaFrame};

/// TinyFaceDetector's per-channel mean (face-api src/tinyFaceDetector/const.ts, MEAN_RGB).
pub const DETECTOR_MEAN_RGB: [f32; 3] = [117.001, 114.697, 97.404];
/// FaceFeatureExtractor's per-channel mean (face-api src/faceFeatureExtractor/FaceFeatureExtractor.ts).
pub const EXPRESSION_MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];
/// FaceExpressionNet always sees 112x112 (FaceFeatureExtractor.forwardInput).
pub const EXPRESSION_INPUT_SIZE: usize = 112;
/// Both nets divide by 255 after subtracting the mean.
const SCALE: f32 = 255.0;

/// Where `padToSquare` puts the zero padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// The detector pads after the image (isCenterInputs = false).
    BottomRight,
    /// The expression net centres the image (isCenterInputs = true).
    Centered,
}

/// One output coordinate's two source taps and the weight of the second.
#[derive(Clone, Copy)]
struct Tap {
    lo: usize,
    hi: usize,
    frac: f32,
}

/// resizeBilinear's legacy mapping: `src = dst * in / out`, no half-pixel shift.
fn taps(out: usize, side: usize) -> Vec<Tap> {
    let ratio = side as f32 / out as f32;
    (0..out)
        .map(|d| {
            let src = d as f32 * ratio;
            let lo = (src.floor() as usize).min(side - 1);
            let hi = (src.ceil() as usize).min(side - 1);
            Tap {
                lo,
                hi,
                frac: src - lo as f32,
            }
        })
        .collect()
}

/// Builds a `[1, 3, size, size]` NCHW tensor (flattened) from `region` of `frame`:
/// pad to a square with zeros, resize bilinearly, subtract `mean`, divide by 255.
/// `region` must lie inside the frame and be non-empty (callers clip first).
pub fn square_input(
    frame: &RgbaFrame,
    region: Region,
    padding: Padding,
    size: usize,
    mean: [f32; 3],
) -> Vec<f32> {
    let offset = offset(region, padding);
    if region.width.max(region.height) as usize == size {
        return unscaled(frame, region, offset, size, mean);
    }
    resampled(frame, region, offset, size, mean)
}

/// Where `region` starts inside its padded square. Centred padding appends
/// round(diff / 2) and prepends the rest, so the image starts at floor(diff / 2).
fn offset(region: Region, padding: Padding) -> (usize, usize) {
    let (w, h) = (region.width as usize, region.height as usize);
    let side = w.max(h);
    match padding {
        Padding::BottomRight => (0, 0),
        Padding::Centered => ((side - w) / 2, (side - h) / 2),
    }
}

/// [`square_input`] when the padded square is already `size`: the resize's every tap is
/// `lo = hi = d` with weight 0, so each value is its pixel's, to the bit, and skipping
/// the taps saves most of the cost (a 112x112 crop is the page's usual input).
fn unscaled(
    frame: &RgbaFrame,
    region: Region,
    (ox, oy): (usize, usize),
    size: usize,
    mean: [f32; 3],
) -> Vec<f32> {
    let w = region.width as usize;
    let plane = size * size;
    let pad = mean.map(|m| (0.0 - m) / SCALE);
    let mut data = vec![0f32; 3 * plane];
    let (rp, gb) = data.split_at_mut(plane);
    let (gp, bp) = gb.split_at_mut(plane);
    let stride = frame.width() as usize * 4;
    let bytes = frame.bytes();
    let rows = rp
        .chunks_exact_mut(size)
        .zip(gp.chunks_exact_mut(size))
        .zip(bp.chunks_exact_mut(size));
    for (py, ((r, g), b)) in rows.enumerate() {
        let src = py
            .checked_sub(oy)
            .filter(|&y| y < region.height as usize)
            .and_then(|y| bytes.get((region.y as usize + y) * stride + region.x as usize * 4..))
            .and_then(|s| s.get(..w * 4));
        let Some(src) = src else {
            r.fill(pad[0]);
            g.fill(pad[1]);
            b.fill(pad[2]);
            continue;
        };
        for (c, o) in [&mut *r, &mut *g, &mut *b].into_iter().enumerate() {
            o[..ox].fill(pad[c]);
            o[ox + w..].fill(pad[c]);
        }
        let px = r[ox..ox + w]
            .iter_mut()
            .zip(&mut g[ox..ox + w])
            .zip(&mut b[ox..ox + w])
            .zip(src.chunks_exact(4));
        for (((r, g), b), p) in px {
            *r = (p[0] as f32 - mean[0]) / SCALE;
            *g = (p[1] as f32 - mean[1]) / SCALE;
            *b = (p[2] as f32 - mean[2]) / SCALE;
        }
    }
    data
}

/// [`square_input`] by legacy bilinear resampling.
fn resampled(
    frame: &RgbaFrame,
    region: Region,
    (ox, oy): (usize, usize),
    size: usize,
    mean: [f32; 3],
) -> Vec<f32> {
    let (w, h) = (region.width as usize, region.height as usize);
    let side = w.max(h);
    // Where each padded-square column and row lies in the frame (None: in the padding),
    // worked out once per column and once per output row instead of per sample: the
    // same samples and arithmetic as one `frame.rgb` call per tap, a fraction of the cost.
    let bytes = frame.bytes();
    let stride = frame.width() as usize * 4;
    let col = |px: usize| (px >= ox && px < ox + w).then(|| (region.x as usize + px - ox) * 4);
    let row = |py: usize| {
        (py >= oy && py < oy + h)
            .then(|| &bytes[(region.y as usize + py - oy) * stride..][..stride])
    };
    let rgb = |r: Option<&[u8]>, c: Option<usize>| match (r, c) {
        (Some(r), Some(c)) => [r[c] as f32, r[c + 1] as f32, r[c + 2] as f32],
        _ => [0.0; 3],
    };

    let tx = taps(size, side);
    let ty = taps(size, side);
    let cols: Vec<(Option<usize>, Option<usize>, f32)> =
        tx.iter().map(|t| (col(t.lo), col(t.hi), t.frac)).collect();
    let plane = size * size;
    let mut data = vec![0f32; 3 * plane];
    for (oy_, ry) in ty.iter().enumerate() {
        let (lo, hi) = (row(ry.lo), row(ry.hi));
        for (ox_, &(cl, ch, frac)) in cols.iter().enumerate() {
            let (tl, tr) = (rgb(lo, cl), rgb(lo, ch));
            let (bl, br) = (rgb(hi, cl), rgb(hi, ch));
            for c in 0..3 {
                let top = tl[c] + (tr[c] - tl[c]) * frac;
                let bottom = bl[c] + (br[c] - bl[c]) * frac;
                let v = top + (bottom - top) * ry.frac;
                data[c * plane + oy_ * size + ox_] = (v - mean[c]) / SCALE;
            }
        }
    }
    data
}

/// Mirrors a `[1, 3, size, size]` tensor left to right, in place: the net's input for
/// the mirror image of the same crop. The expression net is not mirror-symmetric, so the
/// smile score averages (or, on video, alternates) a crop and its mirror.
pub fn mirror(input: &mut [f32], size: usize) {
    for row in input.chunks_exact_mut(size.max(1)) {
        row.reverse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
        (0..w * h)
            .flat_map(|_| [rgb[0], rgb[1], rgb[2], 255])
            .collect()
    }

    fn at(t: &[f32], c: usize, y: usize, x: usize) -> f32 {
        let size = ((t.len() / 3) as f64).sqrt() as usize;
        t[(c * size + y) * size + x]
    }

    #[test]
    fn identity_size_only_normalises() {
        let buf = solid(16, 16, [255, 0, 10]);
        let f = RgbaFrame::new(&buf, 16, 16).unwrap();
        let t = square_input(
            &f,
            Region::whole(&f),
            Padding::Centered,
            16,
            [5.0, 0.0, 10.0],
        );
        assert_eq!(t.len(), 3 * 16 * 16);
        assert!((at(&t, 0, 3, 3) - 250.0 / 255.0).abs() < 1e-6);
        assert_eq!(at(&t, 1, 0, 15), 0.0);
        assert_eq!(at(&t, 2, 15, 0), 0.0);
    }

    #[test]
    fn bottom_right_padding_is_zero_before_mean() {
        // 16 wide, 8 high: rows 8..16 of the square are padding.
        let buf = solid(16, 8, [200, 200, 200]);
        let f = RgbaFrame::new(&buf, 16, 8).unwrap();
        let t = square_input(&f, Region::whole(&f), Padding::BottomRight, 16, [100.0; 3]);
        assert!((at(&t, 0, 7, 0) - 100.0 / 255.0).abs() < 1e-6);
        assert!((at(&t, 0, 8, 0) + 100.0 / 255.0).abs() < 1e-6);
    }

    #[test]
    fn centred_padding_splits_the_difference() {
        // 8 wide, 13 high: diff 5, face-api appends round(2.5) = 3 and prepends 2.
        let buf = solid(8, 13, [255, 255, 255]);
        let f = RgbaFrame::new(&buf, 8, 13).unwrap();
        let t = square_input(&f, Region::whole(&f), Padding::Centered, 13, [0.0; 3]);
        let row: Vec<f32> = (0..13).map(|x| at(&t, 0, 0, x)).collect();
        assert_eq!(&row[..2], &[0.0, 0.0]);
        assert_eq!(&row[2..10], &[1.0; 8]);
        assert_eq!(&row[10..], &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn legacy_bilinear_matches_hand_computed_values() {
        // A 2x... ramp: resizing 8 -> 4 samples source 0, 2, 4, 6 exactly;
        // resizing 8 -> 5 samples 0, 1.6, 3.2, 4.8, 6.4.
        let w = 8u32;
        let buf: Vec<u8> = (0..w * w)
            .flat_map(|i| {
                let v = (i % w * 10) as u8;
                [v, v, v, 255]
            })
            .collect();
        let f = RgbaFrame::new(&buf, w, w).unwrap();
        let t4 = square_input(&f, Region::whole(&f), Padding::BottomRight, 4, [0.0; 3]);
        let got: Vec<f32> = (0..4).map(|x| at(&t4, 0, 1, x) * 255.0).collect();
        for (g, e) in got.iter().zip([0.0, 20.0, 40.0, 60.0]) {
            assert!((g - e).abs() < 1e-3, "{got:?}");
        }
        let t5 = square_input(&f, Region::whole(&f), Padding::BottomRight, 5, [0.0; 3]);
        let got: Vec<f32> = (0..5).map(|x| at(&t5, 0, 0, x) * 255.0).collect();
        for (g, e) in got.iter().zip([0.0, 16.0, 32.0, 48.0, 64.0]) {
            assert!((g - e).abs() < 1e-3, "{got:?}");
        }
    }

    #[test]
    fn region_samples_only_inside_it() {
        let mut buf = solid(16, 16, [0, 0, 0]);
        // Paint the 8x8 block at (8, 8) white.
        for y in 8..16 {
            for x in 8..16 {
                let i = (y * 16 + x) * 4;
                buf[i..i + 3].copy_from_slice(&[255, 255, 255]);
            }
        }
        let f = RgbaFrame::new(&buf, 16, 16).unwrap();
        let r = Region {
            x: 8,
            y: 8,
            width: 8,
            height: 8,
        };
        let t = square_input(&f, r, Padding::Centered, 8, [0.0; 3]);
        assert_eq!(at(&t, 0, 0, 0), 1.0);
        assert_eq!(at(&t, 2, 7, 7), 1.0);
    }

    /// The fast path for a square already at the net's size gives the resample's bits,
    /// padding included, for a region inside a larger frame and both paddings.
    #[test]
    fn unscaled_input_equals_the_resample_bit_for_bit() {
        let (fw, fh) = (23u32, 19u32);
        let buf: Vec<u8> = (0..fw * fh * 4)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let f = RgbaFrame::new(&buf, fw, fh).unwrap();
        for (x, y, width, height) in [(0, 0, 23, 19), (3, 2, 12, 12), (5, 1, 9, 16), (1, 4, 17, 6)]
        {
            let r = Region {
                x,
                y,
                width,
                height,
            };
            let size = width.max(height) as usize;
            for padding in [Padding::Centered, Padding::BottomRight] {
                let fast = square_input(&f, r, padding, size, EXPRESSION_MEAN_RGB);
                let slow = resampled(&f, r, offset(r, padding), size, EXPRESSION_MEAN_RGB);
                let bits = |t: &[f32]| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fast), bits(&slow), "{r:?} {padding:?}");
            }
        }
    }

    #[test]
    fn mirror_reverses_each_row_and_twice_is_identity() {
        let x: Vec<f32> = (0..3 * 4 * 4).map(|v| v as f32).collect();
        let mut m = x.clone();
        mirror(&mut m, 4);
        assert_eq!(&m[..4], &[3.0, 2.0, 1.0, 0.0]);
        assert_eq!(&m[44..], &[47.0, 46.0, 45.0, 44.0]);
        mirror(&mut m, 4);
        assert_eq!(m, x);
    }
}
