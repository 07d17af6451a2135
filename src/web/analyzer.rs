//! The `FaceAnalyzer` JS export: the core face pipeline for pages that drive it from JS.
//! The smile-factor page itself uses the core analyzer directly (see `page`).
//!
//! ```js
//! import init, { FaceAnalyzer } from './pkg/smile_factor.js';
//! await init();
//! const analyzer = new FaceAnalyzer(detectorBytes, expressionBytes, { inputSize: 320 });
//! const faces = analyzer.analyze(imageData.data, imageData.width, imageData.height);
//! // [{ box: {x, y, width, height}, score, expressions: {neutral, happy, ...} }]
//! const boxes = analyzer.detect(imageData.data, imageData.width, imageData.height);
//! // [{ box: {x, y, width, height}, score }]   (detector only)
//! ```

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::analyzer::{AnalyzerOptions, FaceAnalyzer as CoreAnalyzer};
use crate::detect::BoundingBox;
use crate::frame::RgbaFrame;

/// The options object JS may pass; every field is optional.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsOptions {
    input_size: Option<usize>,
    score_threshold: Option<f64>,
}

/// One detector result as JS sees it: `{ box: {x, y, width, height}, score }`.
#[derive(Serialize)]
struct JsDetection {
    #[serde(rename = "box")]
    bbox: BoundingBox,
    score: f64,
}

fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, JsError> {
    serde_wasm_bindgen::to_value(value).map_err(|e| JsError::new(&e.to_string()))
}

/// Both models, loaded once; call `analyze` per frame.
#[wasm_bindgen(js_name = FaceAnalyzer)]
pub struct WebFaceAnalyzer {
    inner: CoreAnalyzer,
}

#[wasm_bindgen(js_class = FaceAnalyzer)]
impl WebFaceAnalyzer {
    /// `new FaceAnalyzer(detectorBytes, expressionBytes, options?)` where the bytes are
    /// `Uint8Array`s of `tiny_face_detector.onnx` and `face_expression.onnx`, and
    /// `options` is `{ inputSize?: number, scoreThreshold?: number }`.
    /// Throws an `Error` naming the problem if a model is corrupt or the wrong file.
    #[wasm_bindgen(constructor)]
    pub fn new(
        detector: &[u8],
        expression: &[u8],
        options: JsValue,
    ) -> Result<WebFaceAnalyzer, JsError> {
        let js: JsOptions = if options.is_undefined() || options.is_null() {
            JsOptions::default()
        } else {
            serde_wasm_bindgen::from_value(options)
                .map_err(|e| JsError::new(&format!("invalid options: {e}")))?
        };
        let defaults = AnalyzerOptions::default();
        let options = AnalyzerOptions {
            input_size: js.input_size.unwrap_or(defaults.input_size),
            score_threshold: js.score_threshold.unwrap_or(defaults.score_threshold),
        };
        Ok(Self {
            inner: CoreAnalyzer::new(detector, expression, options)?,
        })
    }

    /// `analyze(rgba, width, height)`: every face in an RGBA frame (for example
    /// `new Uint8Array(imageData.data.buffer)`), as
    /// `[{ box: {x, y, width, height}, score, expressions: {neutral, happy, ...} }]`.
    pub fn analyze(&self, rgba: &[u8], width: u32, height: u32) -> Result<JsValue, JsError> {
        to_js(&self.inner.analyze(rgba, width, height)?)
    }

    /// `detect(rgba, width, height)`: the detector alone, no expressions, as
    /// `[{ box: {x, y, width, height}, score }]`, strongest first, in pixels.
    pub fn detect(&self, rgba: &[u8], width: u32, height: u32) -> Result<JsValue, JsError> {
        let frame = RgbaFrame::new(rgba, width, height)?;
        let found: Vec<JsDetection> = self
            .inner
            .detect(&frame)?
            .into_iter()
            .map(|(bbox, score)| JsDetection { bbox, score })
            .collect();
        to_js(&found)
    }

    /// `classifyFace(rgba, width, height)`: the expressions of an image that is already
    /// a face crop, as `{neutral, happy, sad, angry, fearful, disgusted, surprised}`.
    #[wasm_bindgen(js_name = classifyFace)]
    pub fn classify_face(&self, rgba: &[u8], width: u32, height: u32) -> Result<JsValue, JsError> {
        to_js(&self.inner.classify_face(rgba, width, height)?)
    }
}
