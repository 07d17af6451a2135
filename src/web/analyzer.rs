//! The `FaceAnalyzer` JS export: the core face pipeline for pages that drive it from JS.
//! The smile-factor page itself uses the core analyzer directly (see `page`).
//!
//! ```js
//! import init, { FaceAnalyzer } from './pkg/smile_factor.js';
//! await init();
//! const analyzer = new FaceAnalyzer(detectorBytes, expressionBytes, { inputSize: 320 });
//! const faces = analyzer.analyze(imageData.data, imageData.width, imageData.height);
//! // [{ box: {x, y, width, height}, score, expressions: {neutral, happy, ...}, smile }]
//! const one = analyzer.classifyFace(cropRgba, 112, 112, { mirror: false }); // one net run
//! const boxes = analyzer.detect(imageData.data, imageData.width, imageData.height);
//! // [{ box: {x, y, width, height}, score }]   (detector only)
//!
//! // Detect, then track: the detector runs only every few frames.
//! const tracker = new FaceTracker(detectorBytes, expressionBytes, { inputSize: 224 });
//! const { boxes, judged, smile, detected } = tracker.step(imageData.data, imageData.width, imageData.height);
//! ```

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::vision::analyzer::{AnalyzerOptions, Expressions, FaceAnalyzer as CoreAnalyzer, View};
use crate::vision::detect::BoundingBox;
use crate::vision::frame::RgbaFrame;
use crate::vision::track::{Tracker, TrackerOptions};

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

/// `classifyFace`'s result: the seven probabilities and `smile`, in one flat object
/// (written out: `serde(flatten)` would make a JS `Map`).
#[derive(Serialize)]
struct JsClassification {
    neutral: f32,
    happy: f32,
    sad: f32,
    angry: f32,
    fearful: f32,
    disgusted: f32,
    surprised: f32,
    smile: f32,
}

impl JsClassification {
    fn new(e: Expressions, smile: f32) -> Self {
        let Expressions {
            neutral,
            happy,
            sad,
            angry,
            fearful,
            disgusted,
            surprised,
        } = e;
        Self {
            neutral,
            happy,
            sad,
            angry,
            fearful,
            disgusted,
            surprised,
            smile,
        }
    }
}

/// `classifyFace`'s options: whether the smile score averages the crop with its mirror
/// image (default true).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsClassifyOptions {
    mirror: Option<bool>,
}

/// `FaceTracker`'s options: the analyser's and the tracker's, every field optional.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsTrackerOptions {
    input_size: Option<usize>,
    score_threshold: Option<f64>,
    redetect_every: Option<u32>,
    margin: Option<f64>,
    mirror_odd_frames: Option<bool>,
}

/// `undefined` or `null` mean every default; anything else must be an options object.
fn parse_options<T: Default + for<'de> Deserialize<'de>>(options: JsValue) -> Result<T, JsError> {
    if options.is_undefined() || options.is_null() {
        return Ok(T::default());
    }
    // Through a JSON value: serde-wasm-bindgen reads only the fields it knows, so a
    // misspelt option would be ignored without a word; serde_json honours
    // `deny_unknown_fields`.
    let value: serde_json::Value = serde_wasm_bindgen::from_value(options)
        .map_err(|e| JsError::new(&format!("invalid options: {e}")))?;
    if !value.is_object() {
        return Err(JsError::new("invalid options: expected an object"));
    }
    serde_json::from_value(value).map_err(|e| JsError::new(&format!("invalid options: {e}")))
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
        let js: JsOptions = parse_options(options)?;
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
    /// `[{ box: {x, y, width, height}, score, expressions: {neutral, happy, ...}, smile }]`;
    /// `smile` is the smile head's score (0..1) of the face as it is, the score the
    /// challenge's threshold applies to.
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

    /// `classifyFace(rgba, width, height, options?)`: the scores of an image that is
    /// already a face crop, as `{neutral, happy, sad, angry, fearful, disgusted,
    /// surprised, smile}`: face-api's seven probabilities of the crop, and the smile score
    /// averaged over the crop and its mirror image (two runs of the expression net).
    /// `options` is `{ mirror?: boolean }`: `mirror: false` scores the crop as it is, one
    /// run (as `analyze` and `FaceTracker` do on video frames).
    #[wasm_bindgen(js_name = classifyFace)]
    pub fn classify_face(
        &self,
        rgba: &[u8],
        width: u32,
        height: u32,
        options: JsValue,
    ) -> Result<JsValue, JsError> {
        let js: JsClassifyOptions = parse_options(options)?;
        let view = if js.mirror.unwrap_or(true) {
            View::Averaged
        } else {
            View::AsIs
        };
        let s = self.inner.classify_face_view(rgba, width, height, view)?;
        to_js(&JsClassification::new(s.expressions, s.smile))
    }
}

/// Detect, then track: the largest face is followed between detector runs, and only
/// the expression net runs on the frames in between (see `track` in the core).
#[wasm_bindgen(js_name = FaceTracker)]
pub struct WebFaceTracker {
    analyzer: CoreAnalyzer,
    tracker: Tracker,
}

#[wasm_bindgen(js_class = FaceTracker)]
impl WebFaceTracker {
    /// `new FaceTracker(detectorBytes, expressionBytes, options?)` with `options`
    /// `{ inputSize?, scoreThreshold?, redetectEvery?, margin?, mirrorOddFrames? }`: the
    /// analyser's two, plus how often the detector runs at least (frames; default 5), how
    /// much the tracked box grows on each side before classification (fraction; default
    /// 0), and whether odd frames read the mirror image's smile score (default false).
    /// Throws an `Error` naming the problem for a bad model or a bad or unknown option.
    #[wasm_bindgen(constructor)]
    pub fn new(
        detector: &[u8],
        expression: &[u8],
        options: JsValue,
    ) -> Result<WebFaceTracker, JsError> {
        let js: JsTrackerOptions = parse_options(options)?;
        let a = AnalyzerOptions::default();
        let t = TrackerOptions::default();
        let tracker = Tracker::new(TrackerOptions {
            redetect_every: js.redetect_every.unwrap_or(t.redetect_every),
            margin: js.margin.unwrap_or(t.margin),
            mirror_odd_frames: js.mirror_odd_frames.unwrap_or(t.mirror_odd_frames),
            ..t
        })?;
        let analyzer = CoreAnalyzer::new(
            detector,
            expression,
            AnalyzerOptions {
                input_size: js.input_size.unwrap_or(a.input_size),
                score_threshold: js.score_threshold.unwrap_or(a.score_threshold),
            },
        )?;
        Ok(Self { analyzer, tracker })
    }

    /// `step(rgba, width, height)`: one video frame, as
    /// `{ boxes: [{x, y, width, height}], judged: number|null, smile: number|null, detected }`.
    /// `boxes` holds every detection on a frame where the detector ran (`detected`), the
    /// tracked box otherwise; `judged` indexes the face whose smile score is given (of
    /// its mirror image on odd frames with `mirrorOddFrames`); `smile` is null when there
    /// is no face.
    pub fn step(&mut self, rgba: &[u8], width: u32, height: u32) -> Result<JsValue, JsError> {
        let frame = RgbaFrame::new(rgba, width, height)?;
        let step = self.tracker.step(&self.analyzer, &frame)?;
        // `judged` and `smile` are `null`, not `undefined`, when there is no face.
        let serializer = serde_wasm_bindgen::Serializer::new().serialize_missing_as_null(true);
        step.serialize(&serializer)
            .map_err(|e| JsError::new(&e.to_string()))
    }

    /// `reset()`: forget the face (after a pause or a camera switch); the next frame
    /// runs the detector.
    pub fn reset(&mut self) {
        self.tracker.reset();
    }
}
