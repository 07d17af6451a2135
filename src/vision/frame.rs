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
