//! The server's own run of the models on one crop: the detector first (a crop without a
//! face counts as no face, as in the page), then the smile score of the largest face.

use smile_factor::{AnalyzerOptions, FaceAnalyzer, RgbaFrame};

use crate::frames::Crop;

/// Detector input side for crops of at most 256 px: a multiple of 32, as in face-api.
pub const DETECTOR_INPUT_SIZE: usize = 224;

/// Both models, loaded once at start and shared by every request.
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

    /// The smile score (`happy`) of the largest face in the crop, `None` without a face.
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
            .classify_box(&frame, &bbox)?
            .map(|e| e.happy))
    }
}
