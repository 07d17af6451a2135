//! The server's own run of the models on one crop: the detector first (a crop without a
//! face counts as no face, as in the page), then the smile score of the largest face.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use smile_factor::{AnalyzerOptions, FaceAnalyzer, RgbaFrame};

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
        Ok(self.analyzer.classify_box(&frame, &bbox)?.map(|e| e.happy))
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
