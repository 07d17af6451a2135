//! A face crop as the page uploads it: a JPEG of at most [`MAX_FRAME_BYTES`] and
//! [`MAX_SIDE`]x[`MAX_SIDE`] pixels. The size is read from the JPEG header and checked
//! before anything is decoded, and the decoder runs under `image::Limits`, so a
//! decompression bomb is refused before any large allocation.

use std::io::Cursor;

use image::{ImageDecoder, ImageFormat, ImageReader, Limits};
use smile_factor::vision::frame::MIN_SIDE;

/// Largest accepted body of a frame upload.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
/// Largest accepted side of a crop, in pixels.
pub const MAX_SIDE: u32 = 256;
/// The decoder may not allocate more than this (a 256x256 RGB image is 192 KiB).
const MAX_DECODE_ALLOC: u64 = 1024 * 1024;

/// A decoded crop, RGBA8 as the analyser takes it.
#[derive(Debug)]
pub struct Crop {
    pub rgba: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Why a frame was refused; the message goes back to the page.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    #[error("it is not a JPEG image")]
    NotJpeg,
    #[error("the JPEG is truncated")]
    Truncated,
    #[error("{0}x{1} pixels is larger than {MAX_SIDE}x{MAX_SIDE}")]
    TooLarge(u32, u32),
    #[error("{0}x{1} pixels is smaller than {MIN_SIDE}x{MIN_SIDE}")]
    TooSmall(u32, u32),
    #[error("the JPEG could not be decoded")]
    Corrupt,
}

/// Checks and decodes one uploaded crop.
pub fn decode_crop(bytes: &[u8]) -> Result<Crop, FrameError> {
    // SOI at the start; every encoder (canvas.toBlob included) ends with EOI, and a
    // lenient decoder would fill a cut-off image with grey instead of failing.
    if !bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(FrameError::NotJpeg);
    }
    if !bytes.ends_with(&[0xFF, 0xD9]) {
        return Err(FrameError::Truncated);
    }
    let limits = {
        let mut l = Limits::default();
        l.max_image_width = Some(MAX_SIDE);
        l.max_image_height = Some(MAX_SIDE);
        l.max_alloc = Some(MAX_DECODE_ALLOC);
        l
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), ImageFormat::Jpeg);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|_| FrameError::Corrupt)?;
    // Only the header has been read so far.
    let (width, height) = decoder.dimensions();
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(FrameError::TooLarge(width, height));
    }
    if width < MIN_SIDE || height < MIN_SIDE {
        return Err(FrameError::TooSmall(width, height));
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    decoder
        .set_limits(limits)
        .map_err(|_| FrameError::Corrupt)?;
    let image = image::DynamicImage::from_decoder(decoder).map_err(|_| FrameError::Corrupt)?;
    let rgba = image.into_rgba8();
    Ok(Crop {
        width: rgba.width(),
        height: rgba.height(),
        rgba: rgba.into_raw(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_jpeg_and_truncated() {
        assert_eq!(decode_crop(b"GIF89a").unwrap_err(), FrameError::NotJpeg);
        assert_eq!(decode_crop(&[]).unwrap_err(), FrameError::NotJpeg);
        assert_eq!(
            decode_crop(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]).unwrap_err(),
            FrameError::Truncated
        );
    }
}
