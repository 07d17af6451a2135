//! The public face pipeline: find faces with TinyFaceDetector, then read each face's
//! expression with FaceExpressionNet, as face-api.js's
//! `detectAllFaces(input, TinyFaceDetectorOptions).withFaceExpressions()` does, plus
//! the smile score: our logistic head on the expression net's pooled features, shipped
//! in `face_expression.onnx` as its second output `smile` (models/README.md). It judges
//! smiles better than face-api's `happy` (README, "Accuracy").

use serde::Serialize;

use crate::vision::detect::{self, BoundingBox, GRID_CHANNELS};
use crate::vision::distance::{self, Canvas, RETRY_CANVASES};
use crate::vision::error::{Result, SmileError};
use crate::vision::frame::{Region, RgbaFrame};
use crate::vision::model::Model;
use crate::vision::preprocess::{
    mirror, square_input, Padding, DETECTOR_MEAN_RGB, EXPRESSION_INPUT_SIZE, EXPRESSION_MEAN_RGB,
};

/// FaceExpressionNet's output order (face-api src/faceExpressionNet/FaceExpressions.ts).
pub const EXPRESSION_LABELS: [&str; 7] = [
    "neutral",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgusted",
    "surprised",
];

/// Width of the expression model's second output, `smile`.
const SMILE_OUTPUTS: usize = 1;

/// The seven softmax probabilities of one face. They sum to 1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Expressions {
    pub neutral: f32,
    pub happy: f32,
    pub sad: f32,
    pub angry: f32,
    pub fearful: f32,
    pub disgusted: f32,
    pub surprised: f32,
}

impl Expressions {
    fn from_probabilities(p: &[f32]) -> Result<Self> {
        match *p {
            [neutral, happy, sad, angry, fearful, disgusted, surprised] => Ok(Self {
                neutral,
                happy,
                sad,
                angry,
                fearful,
                disgusted,
                surprised,
            }),
            _ => Err(SmileError::Inference {
                model: "expression",
                reason: format!("expected 7 probabilities, got {}", p.len()),
            }),
        }
    }

    /// In EXPRESSION_LABELS order.
    pub fn to_array(&self) -> [f32; 7] {
        [
            self.neutral,
            self.happy,
            self.sad,
            self.angry,
            self.fearful,
            self.disgusted,
            self.surprised,
        ]
    }
}

/// What the expression model says of one face crop.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FaceScores {
    /// face-api's seven probabilities, always of the crop as it is (parity with face-api).
    pub expressions: Expressions,
    /// The smile head's score, 0..1: the score the challenge's threshold applies to.
    pub smile: f32,
}

/// Which view of a crop the smile score comes from. The expression net is not
/// mirror-symmetric, and averaging a crop with its mirror image judges smiles better
/// (README, "Accuracy").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The crop as it is: one run of the net.
    AsIs,
    /// The crop's mirror image: one run (the video loop alternates it with `AsIs`).
    Mirrored,
    /// The mean of both smile scores: two runs, for single images.
    Averaged,
}

/// One face in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Face {
    /// In pixels of the analysed frame.
    #[serde(rename = "box")]
    pub bbox: BoundingBox,
    /// The detector's confidence, 0..1.
    pub score: f64,
    pub expressions: Expressions,
    /// The smile head's score of the crop as it is, 0..1.
    pub smile: f32,
}

/// Detector settings, fixed when the analyser is built.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnalyzerOptions {
    /// Side of the detector's square input: a multiple of 32. Smaller is faster and
    /// finds fewer small faces (face-api offers 224, 320, 416).
    pub input_size: usize,
    /// Faces scoring at or below this are dropped (face-api's scoreThreshold).
    pub score_threshold: f64,
}

impl Default for AnalyzerOptions {
    /// face-api's TinyFaceDetectorOptions defaults.
    fn default() -> Self {
        Self {
            input_size: 416,
            score_threshold: 0.5,
        }
    }
}

impl AnalyzerOptions {
    pub const MIN_INPUT_SIZE: usize = 64;
    pub const MAX_INPUT_SIZE: usize = 1024;

    fn validate(&self) -> Result<()> {
        let s = self.input_size;
        if !s.is_multiple_of(32) || !(Self::MIN_INPUT_SIZE..=Self::MAX_INPUT_SIZE).contains(&s) {
            return Err(SmileError::Option(format!(
                "inputSize must be a multiple of 32 from {} to {}, not {s}",
                Self::MIN_INPUT_SIZE,
                Self::MAX_INPUT_SIZE
            )));
        }
        let t = self.score_threshold;
        if !(t > 0.0 && t < 1.0) {
            return Err(SmileError::Option(format!(
                "scoreThreshold must lie strictly between 0 and 1, not {t}"
            )));
        }
        Ok(())
    }
}

/// Both models, loaded and optimised once, reused for every frame.
pub struct FaceAnalyzer {
    detector: Model,
    /// The detector at the retries' input ([`distance::retry_input_size`]) when that
    /// differs from `detector`'s.
    retry_detector: Option<Model>,
    expression: Model,
    options: AnalyzerOptions,
}

impl FaceAnalyzer {
    /// Loads `tiny_face_detector.onnx` and `face_expression.onnx` from their bytes.
    pub fn new(detector: &[u8], expression: &[u8], options: AnalyzerOptions) -> Result<Self> {
        options.validate()?;
        let load_detector = |s: usize| {
            let cells = s / 32;
            Model::load(
                "face detector",
                detector,
                &[1, 3, s, s],
                &[&[1, GRID_CHANNELS, cells, cells]],
            )
        };
        let retry_size = distance::retry_input_size(options.input_size);
        let retry_detector = (retry_size != options.input_size)
            .then(|| load_detector(retry_size))
            .transpose()?;
        let detector = load_detector(options.input_size)?;
        let e = EXPRESSION_INPUT_SIZE;
        let expression = Model::load(
            "expression",
            expression,
            &[1, 3, e, e],
            &[&[1, 7], &[1, SMILE_OUTPUTS]],
        )?;
        Ok(Self {
            detector,
            retry_detector,
            expression,
            options,
        })
    }

    pub fn options(&self) -> AnalyzerOptions {
        self.options
    }

    /// The detector's raw output for a frame: `[1, 25, cells, cells]` NCHW, flattened,
    /// channel = anchor * 5 + (x, y, w, h, objectness), before sigmoid and exp.
    pub fn detector_grid(&self, frame: &RgbaFrame) -> Result<Vec<f32>> {
        let input = square_input(
            frame,
            Region::whole(frame),
            Padding::BottomRight,
            self.options.input_size,
            DETECTOR_MEAN_RGB,
        );
        self.detector.run(input)
    }

    /// Face boxes in a frame, strongest first, in pixels; a face filling most of the
    /// frame is found too ([`crate::vision::distance`]).
    pub fn detect(&self, frame: &RgbaFrame) -> Result<Vec<(BoundingBox, f64)>> {
        let found = self.detect_once(frame)?;
        Ok(self.retry_if_empty(frame, found)?.0)
    }

    /// The retries of [`FaceAnalyzer::detect`] after a first run that gave `found`: the
    /// frame centred in each of [`RETRY_CANVASES`] until one finds a face. Also returns
    /// how many retries ran (for the scorer's cost column).
    pub fn retry_if_empty(
        &self,
        frame: &RgbaFrame,
        found: Vec<(BoundingBox, f64)>,
    ) -> Result<(Vec<(BoundingBox, f64)>, usize)> {
        if !found.is_empty() {
            return Ok((found, 0));
        }
        for (i, factor) in RETRY_CANVASES.into_iter().enumerate() {
            let found = self.detect_in_canvas(frame, factor)?;
            if !found.is_empty() {
                return Ok((found, i + 1));
            }
        }
        Ok((Vec::new(), RETRY_CANVASES.len()))
    }

    /// One retry: the detector on `frame` centred in a square canvas `factor` times its
    /// longer side, at the retries' input size and score threshold
    /// ([`crate::vision::distance`]); boxes in pixels of `frame`.
    pub fn detect_in_canvas(
        &self,
        frame: &RgbaFrame,
        factor: f64,
    ) -> Result<Vec<(BoundingBox, f64)>> {
        let size = distance::retry_input_size(self.options.input_size);
        let mut canvas = Canvas::new(frame, factor, size);
        let detector = self.retry_detector.as_ref().unwrap_or(&self.detector);
        let grid = detector.run(std::mem::take(&mut canvas.input))?;
        let threshold = self.options.score_threshold * distance::RETRY_SCORE_FACTOR;
        Ok(canvas.boxes(&grid, threshold))
    }

    /// One detector run on the frame as it is, as face-api.js does it.
    pub fn detect_once(&self, frame: &RgbaFrame) -> Result<Vec<(BoundingBox, f64)>> {
        let s = self.options.input_size;
        let grid = self.detector_grid(frame)?;
        let (w, h) = (frame.width(), frame.height());
        Ok(
            detect::decode(&grid, s / 32, s, w, h, self.options.score_threshold)
                .into_iter()
                .map(|d| (d.relative.scale(w as f64, h as f64), d.score))
                .collect(),
        )
    }

    /// Scores of the face inside `bbox` (pixels), its smile score from `view`. The box is
    /// clipped to the frame and floored, as face-api's extractFaceTensors does; `None`
    /// if nothing is left.
    pub fn classify_box(
        &self,
        frame: &RgbaFrame,
        bbox: &BoundingBox,
        view: View,
    ) -> Result<Option<FaceScores>> {
        match clip_to_frame(bbox, frame) {
            Some(region) => self.classify_region(frame, region, view).map(Some),
            None => Ok(None),
        }
    }

    fn classify_region(&self, frame: &RgbaFrame, region: Region, view: View) -> Result<FaceScores> {
        let mut input = square_input(
            frame,
            region,
            Padding::Centered,
            EXPRESSION_INPUT_SIZE,
            EXPRESSION_MEAN_RGB,
        );
        let mirrored = match view {
            View::AsIs => None,
            View::Mirrored => {
                mirror(&mut input, EXPRESSION_INPUT_SIZE);
                None
            }
            View::Averaged => {
                let mut m = input.clone();
                mirror(&mut m, EXPRESSION_INPUT_SIZE);
                Some(self.run_expression(m)?.smile)
            }
        };
        let mut scores = self.run_expression(input)?;
        if let Some(m) = mirrored {
            scores.smile = 0.5 * (scores.smile + m);
        }
        Ok(scores)
    }

    fn run_expression(&self, input: Vec<f32>) -> Result<FaceScores> {
        let outputs = self.expression.run_all(input)?;
        let smile = match outputs.get(1).map(|o| &o[..]) {
            Some(&[s]) => s,
            _ => {
                return Err(SmileError::Inference {
                    model: "expression",
                    reason: "expected one smile score".into(),
                })
            }
        };
        Ok(FaceScores {
            expressions: Expressions::from_probabilities(&outputs[0])?,
            smile,
        })
    }

    /// Every face in an RGBA frame with its expressions and smile score (of the crop as
    /// it is: one net run per face, as on video).
    pub fn analyze(&self, rgba: &[u8], width: u32, height: u32) -> Result<Vec<Face>> {
        let frame = RgbaFrame::new(rgba, width, height)?;
        let mut faces = Vec::new();
        for (bbox, score) in self.detect(&frame)? {
            if let Some(s) = self.classify_box(&frame, &bbox, View::AsIs)? {
                faces.push(Face {
                    bbox,
                    score,
                    expressions: s.expressions,
                    smile: s.smile,
                });
            }
        }
        Ok(faces)
    }

    /// Scores of an image that is already a face crop (no detection): its expressions,
    /// and the smile score averaged over the crop and its mirror image.
    pub fn classify_face(&self, rgba: &[u8], width: u32, height: u32) -> Result<FaceScores> {
        self.classify_face_view(rgba, width, height, View::Averaged)
    }

    /// [`FaceAnalyzer::classify_face`] with the smile score from `view`: `AsIs` runs the
    /// expression net once (a video loop's choice), `Averaged` twice.
    pub fn classify_face_view(
        &self,
        rgba: &[u8],
        width: u32,
        height: u32,
        view: View,
    ) -> Result<FaceScores> {
        let frame = RgbaFrame::new(rgba, width, height)?;
        self.classify_region(&frame, Region::whole(&frame), view)
    }

    /// Runs both nets once on a grey image and drops the results. In the browser the
    /// engine starts as baseline code and V8 optimises a function only after it has run
    /// a while. The worker runs this (50-120 ms in a fresh tab) while the start screen
    /// waits for a click and the camera starts; with the expression net alone, the first
    /// camera frame's detection still took 43-210 ms instead of about 15.
    pub fn warm_up(&self) -> Result<()> {
        let side = EXPRESSION_INPUT_SIZE as u32;
        let grey = vec![128u8; (side * side * 4) as usize];
        // Once each, as the docs say: the mirror view and the empty frame's retries would
        // make it 5 runs, which the first camera frame then waits behind.
        self.classify_face_view(&grey, side, side, View::AsIs)?;
        self.detect_once(&RgbaFrame::new(&grey, side, side)?)?;
        Ok(())
    }
}

/// face-api's Box.clipAtImageBorders followed by floor().
fn clip_to_frame(b: &BoundingBox, frame: &RgbaFrame) -> Option<Region> {
    // f64::max/min drop NaN silently, so a NaN box would otherwise become the whole frame.
    if ![b.x, b.y, b.width, b.height].iter().all(|v| v.is_finite()) {
        return None;
    }
    let (fw, fh) = (frame.width() as f64, frame.height() as f64);
    let (x, y) = (b.x.max(0.0), b.y.max(0.0));
    let w = (b.right() - x).min(fw - x).floor();
    let h = (b.bottom() - y).min(fh - y).floor();
    let (x, y) = (x.floor(), y.floor());
    if w < 1.0 || h < 1.0 || x >= fw || y >= fh {
        return None;
    }
    Some(Region {
        x: x as u32,
        y: y as u32,
        width: (w as u32).min(frame.width() - x as u32),
        height: (h as u32).min(frame.height() - y as u32),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_follows_face_api() {
        let buf = vec![0u8; 100 * 50 * 4];
        let f = RgbaFrame::new(&buf, 100, 50).unwrap();
        let b = BoundingBox {
            x: -10.5,
            y: 10.7,
            width: 30.9,
            height: 60.0,
        };
        assert_eq!(
            clip_to_frame(&b, &f),
            Some(Region {
                x: 0,
                y: 10,
                width: 20,
                height: 39
            })
        );
        let outside = BoundingBox {
            x: 120.0,
            y: 0.0,
            width: 10.0,
            height: 10.0,
        };
        assert_eq!(clip_to_frame(&outside, &f), None);
        let nan = BoundingBox {
            x: f64::NAN,
            y: 0.0,
            width: 10.0,
            height: 10.0,
        };
        assert_eq!(clip_to_frame(&nan, &f), None);
    }

    #[test]
    fn options_are_checked() {
        let bad = [
            (100, 0.5),
            (0, 0.5),
            (2048, 0.5),
            (416, 0.0),
            (416, 1.0),
            (416, f64::NAN),
        ];
        for (input_size, score_threshold) in bad {
            let o = AnalyzerOptions {
                input_size,
                score_threshold,
            };
            assert!(matches!(o.validate(), Err(SmileError::Option(_))), "{o:?}");
        }
        assert!(AnalyzerOptions::default().validate().is_ok());
    }
}
