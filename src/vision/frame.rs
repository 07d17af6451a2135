//! A validated, borrowed view of an RGBA image, as a canvas `ImageData` gives it.

use crate::vision::error::{Result, SmileError};

/// Smaller images carry no usable face and are rejected rather than guessed at.
pub const MIN_SIDE: u32 = 8;

/// An RGBA8 image, row-major, 4 bytes per pixel, alpha ignored.
#[derive(Clone, Copy, Debug)]
pub struct RgbaFrame<'a> {
    data: &'a [u8],
    width: u32,
    height: u32,
}

impl<'a> RgbaFrame<'a> {
    /// Checks the buffer length against `width * height * 4` without overflow.
    /// Huge frames are accepted: preprocessing samples them down without copying.
    pub fn new(data: &'a [u8], width: u32, height: u32) -> Result<Self> {
        if width < MIN_SIDE || height < MIN_SIDE {
            return Err(SmileError::Image(format!(
                "{width}x{height} is too small; both sides must be at least {MIN_SIDE} pixels"
            )));
        }
        let expected = (width as usize)
            .checked_mul(height as usize)
            .and_then(|n| n.checked_mul(4))
            .ok_or_else(|| SmileError::Image(format!("{width}x{height} is too large")))?;
        if data.len() != expected {
            return Err(SmileError::Image(format!(
                "an RGBA buffer for {width}x{height} must hold {expected} bytes, but it holds {}",
                data.len()
            )));
        }
        Ok(Self {
            data,
            width,
            height,
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The RGBA bytes, row-major.
    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }

    /// Red, green and blue of one pixel; the caller keeps `x`, `y` in bounds.
    #[inline]
    pub(crate) fn rgb(&self, x: usize, y: usize) -> [f32; 3] {
        let i = (y * self.width as usize + x) * 4;
        [
            self.data[i] as f32,
            self.data[i + 1] as f32,
            self.data[i + 2] as f32,
        ]
    }
}

/// A pixel rectangle inside a frame (whole pixels, as face-api slices face tensors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Region {
    pub fn whole(frame: &RgbaFrame) -> Self {
        Self {
            x: 0,
            y: 0,
            width: frame.width(),
            height: frame.height(),
        }
    }
}

/// Scales an RGBA image to `width` x `height` (each at least 1) by bilinear interpolation
/// between pixel centres, edges clamped: what a 2D canvas's `drawImage` does at its default
/// smoothing, so frames the worker copies out of a `VideoFrame` and scales here match the
/// ones it used to draw into a canvas. At exactly half the size it is the mean of each
/// 2x2 block. Alpha is set to 255.
pub fn scale_rgba(src: &RgbaFrame, width: u32, height: u32) -> Vec<u8> {
    let (sw, sh) = (src.width as usize, src.height as usize);
    let (w, h) = (width.max(1) as usize, height.max(1) as usize);
    /// Source taps and the weight of the second, per output index along one axis.
    fn taps(n_out: usize, n_src: usize) -> Vec<(usize, usize, f32)> {
        let scale = n_src as f64 / n_out as f64;
        (0..n_out)
            .map(|i| {
                let s = ((i as f64 + 0.5) * scale - 0.5).clamp(0.0, (n_src - 1) as f64);
                let lo = s.floor() as usize;
                (lo, (lo + 1).min(n_src - 1), (s - lo as f64) as f32)
            })
            .collect()
    }
    let data = src.data;
    let mut out = vec![255u8; w * h * 4];
    if sw == 2 * w && sh == 2 * h {
        // The usual camera case (640x480 to 320x240): integer means, same rounding.
        for y in 0..h {
            let (r0, r1) = (2 * y * sw * 4, (2 * y + 1) * sw * 4);
            for x in 0..w {
                for c in 0..3 {
                    let i = 8 * x + c;
                    let sum = u16::from(data[r0 + i])
                        + u16::from(data[r0 + i + 4])
                        + u16::from(data[r1 + i])
                        + u16::from(data[r1 + i + 4]);
                    out[(y * w + x) * 4 + c] = ((sum + 2) >> 2) as u8;
                }
            }
        }
        return out;
    }
    let (xs, ys) = (taps(w, sw), taps(h, sh));
    for (y, &(y0, y1, fy)) in ys.iter().enumerate() {
        let (r0, r1) = (y0 * sw * 4, y1 * sw * 4);
        let row = &mut out[y * w * 4..(y + 1) * w * 4];
        for (x, &(x0, x1, fx)) in xs.iter().enumerate() {
            for c in 0..3 {
                let p = |r: usize, x: usize| f32::from(data[r + x * 4 + c]);
                let top = p(r0, x0) + (p(r0, x1) - p(r0, x0)) * fx;
                let bottom = p(r1, x0) + (p(r1, x1) - p(r1, x0)) * fx;
                row[x * 4 + c] = (top + (bottom - top) * fy).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod scale_tests {
    use super::*;

    #[test]
    fn half_size_is_the_mean_of_each_block() {
        let (w, h) = (16u32, 12u32);
        let data: Vec<u8> = (0..w * h * 4).map(|i| (i * 37 % 251) as u8).collect();
        let src = RgbaFrame::new(&data, w, h).unwrap();
        let out = scale_rgba(&src, w / 2, h / 2);
        assert_eq!(out.len(), (w / 2 * h / 2 * 4) as usize);
        for y in 0..(h / 2) as usize {
            for x in 0..(w / 2) as usize {
                for c in 0..3 {
                    let at = |xx: usize, yy: usize| f32::from(data[(yy * w as usize + xx) * 4 + c]);
                    let mean = (at(2 * x, 2 * y)
                        + at(2 * x + 1, 2 * y)
                        + at(2 * x, 2 * y + 1)
                        + at(2 * x + 1, 2 * y + 1))
                        / 4.0;
                    let got = out[(y * (w / 2) as usize + x) * 4 + c];
                    assert!(
                        (f32::from(got) - mean).abs() <= 0.5,
                        "({x},{y},{c}): {got} vs {mean}"
                    );
                }
                assert_eq!(out[(y * (w / 2) as usize + x) * 4 + 3], 255);
            }
        }
    }

    #[test]
    fn same_size_is_a_copy_and_flat_stays_flat() {
        let (w, h) = (9u32, 8u32);
        let data: Vec<u8> = (0..w * h * 4)
            .map(|i| {
                if i % 4 == 3 {
                    255
                } else {
                    (i * 13 % 256) as u8
                }
            })
            .collect();
        let src = RgbaFrame::new(&data, w, h).unwrap();
        assert_eq!(scale_rgba(&src, w, h), data);
        let flat = vec![77u8; 40 * 30 * 4];
        let src = RgbaFrame::new(&flat, 40, 30).unwrap();
        assert!(scale_rgba(&src, 17, 11)
            .chunks(4)
            .all(|p| p[..3] == [77, 77, 77]));
    }
}
