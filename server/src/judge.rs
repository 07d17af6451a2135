//! The server's own run of the models on one crop: the detector first (a crop without a
//! face counts as no face, as in the page), then the smile score of the largest face.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use smile_factor::{AnalyzerOptions, FaceAnalyzer, RgbaFrame, View};

use crate::frames::Crop;

/// Detector input side for crops of at most 256 px: a multiple of 32, as in face-api.
pub const DETECTOR_INPUT_SIZE: usize = 224;

/// One copy of both models. The engine keeps scratch buffers per network, so a copy
/// serves one inference at a time; [`JudgePool`] holds one per core.
pub struct Judge {
    analyzer: FaceAnalyzer,
}

impl Judge {
    /// Loads both models from their ONNX bytes.
    pub fn new(detector: &[u8], expression: &[u8]) -> Result<Self, smile_factor::SmileError> {
        let options = AnalyzerOptions {
            input_size: DETECTOR_INPUT_SIZE,
            ..AnalyzerOptions::default()
        };
        Ok(Self {
            analyzer: FaceAnalyzer::new(detector, expression, options)?,
        })
    }

    /// The smile score (the smile head's, averaged over the face and its mirror image: a
    /// crop is a single image) of the largest face in the crop, `None` without a face.
    /// CPU-bound: call it from `spawn_blocking`.
    pub fn smile(&self, crop: &Crop) -> Result<Option<f32>, smile_factor::SmileError> {
        let frame = RgbaFrame::new(&crop.rgba, crop.width, crop.height)?;
        let largest = self
            .analyzer
            .detect(&frame)?
            .into_iter()
            .map(|(bbox, _)| bbox)
            .max_by(|a, b| (a.width * a.height).total_cmp(&(b.width * b.height)));
        let Some(bbox) = largest else {
            return Ok(None);
        };
        Ok(self
            .analyzer
            .classify_box(&frame, &bbox, View::Averaged)?
            .map(|s| s.smile))
    }
}

/// Copies of the models, loaded once at start and shared by every request; each
/// inference takes one copy in turn.
pub struct JudgePool {
    judges: Vec<Mutex<Judge>>,
    next: AtomicUsize,
}

impl JudgePool {
    /// `copies` analysers (at least one) from the same model bytes.
    pub fn new(
        detector: &[u8],
        expression: &[u8],
        copies: usize,
    ) -> Result<Self, smile_factor::SmileError> {
        let judges = (0..copies.max(1))
            .map(|_| Judge::new(detector, expression).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            judges,
            next: AtomicUsize::new(0),
        })
    }

    /// [`Judge::smile`] on the next copy; blocks while that copy is busy, so call it
    /// from `spawn_blocking`. `None` also when a copy was poisoned by a panic.
    pub fn smile(&self, crop: &Crop) -> Result<Option<f32>, smile_factor::SmileError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.judges.len();
        match self.judges[i].lock() {
            Ok(judge) => judge.smile(crop),
            Err(poisoned) => poisoned.into_inner().smile(crop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smile_factor::challenge::verdict::DEFAULT_THRESHOLD;

    const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");
    const CROPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/crops");

    /// A fixture crop with 28 px of its edge pixels repeated around it, as the page's
    /// crops give the detector some context (the API tests send the same, as JPEG).
    fn padded(name: &str) -> Crop {
        let img = image::open(format!("{CROPS}/{name}.png"))
            .expect("fixture")
            .to_rgba8();
        let m = 28u32;
        let side = img.width() + 2 * m;
        let out = image::RgbaImage::from_fn(side, side, |x, y| {
            let cx = x.saturating_sub(m).min(img.width() - 1);
            let cy = y.saturating_sub(m).min(img.height() - 1);
            *img.get_pixel(cx, cy)
        });
        Crop {
            rgba: out.into_raw(),
            width: side,
            height: side,
        }
    }

    /// face-api's `happy` gave neutral_3 0.64 on this padded crop, a false smile at 0.5;
    /// the smile head keeps every neutral fixture below the threshold and every smile above.
    #[test]
    fn padded_fixture_crops_are_judged_by_the_smile_head() {
        let read = |f: &str| std::fs::read(format!("{MODELS}/{f}")).expect("model");
        let judge = Judge::new(
            &read("tiny_face_detector.onnx"),
            &read("face_expression.onnx"),
        )
        .expect("models load");
        for (name, smiling) in [
            ("neutral_1", false),
            ("neutral_2", false),
            ("neutral_3", false),
            ("smile_1", true),
            ("smile_2", true),
            ("smile_3", true),
        ] {
            let s = judge.smile(&padded(name)).expect("judged").expect("a face");
            println!("{name}: smile {s:.4}");
            assert_eq!(s >= DEFAULT_THRESHOLD, smiling, "{name}: smile {s}");
        }
    }
}
