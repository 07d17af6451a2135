//! Browser tests: the wasm build, through the same exports JS calls, loads both models
//! and reproduces face-api.js's results on the fixtures in headless Chromium.
#![cfg(target_arch = "wasm32")]

mod common;

use common::{check_crops, check_frames, rgba, OurFace, RefBox, DETECTOR, EXPRESSION};
use serde::Deserialize;
use smile_factor::web::{WebFaceAnalyzer, WebFaceTracker};
use wasm_bindgen::{JsError, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[derive(Deserialize)]
struct JsExpressions {
    neutral: f32,
    happy: f32,
    sad: f32,
    angry: f32,
    fearful: f32,
    disgusted: f32,
    surprised: f32,
}

impl JsExpressions {
    fn to_array(&self) -> [f32; 7] {
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

#[derive(Deserialize)]
struct JsFace {
    #[serde(rename = "box")]
    bbox: RefBox,
    score: f64,
    expressions: JsExpressions,
    smile: f32,
}

fn options(input_size: usize) -> JsValue {
    let o = js_sys::Object::new();
    js_sys::Reflect::set(&o, &"inputSize".into(), &(input_size as f64).into()).unwrap();
    o.into()
}

fn analyzer(input_size: usize) -> WebFaceAnalyzer {
    WebFaceAnalyzer::new(DETECTOR, EXPRESSION, options(input_size))
        .unwrap_or_else(|_| panic!("models load in wasm"))
}

#[wasm_bindgen_test]
fn expression_parity_in_the_browser() {
    let a = analyzer(224);
    check_crops(|buf, w, h| {
        let v = a
            .classify_face(buf, w, h, JsValue::UNDEFINED)
            .unwrap_or_else(|_| panic!("classifyFace"));
        serde_wasm_bindgen::from_value::<JsExpressions>(v)
            .unwrap()
            .to_array()
    });
}

/// `classifyFace(..., { mirror: false })` runs the net once on the crop as it is: the same
/// seven expressions, and the smile score of the crop alone, which differs from the
/// mirror-averaged default (the net is not mirror-symmetric).
#[wasm_bindgen_test]
fn classify_face_without_the_mirror() {
    let a = analyzer(224);
    let (buf, w, h) = rgba("crops/mixed_1.png");
    let classify = |options: JsValue| {
        let v = a
            .classify_face(&buf, w, h, options)
            .unwrap_or_else(|_| panic!("classifyFace"));
        let smile = js_sys::Reflect::get(&v, &"smile".into())
            .ok()
            .and_then(|s| s.as_f64())
            .unwrap_or(f64::NAN);
        let e = serde_wasm_bindgen::from_value::<JsExpressions>(v)
            .unwrap()
            .to_array();
        (e, smile)
    };
    let (e_avg, s_avg) = classify(JsValue::UNDEFINED);
    let (e_one, s_one) = classify(js_sys::JSON::parse(r#"{"mirror": false}"#).unwrap());
    assert_eq!(e_avg, e_one);
    assert!(
        (0.0..=1.0).contains(&s_one) && (s_one - s_avg).abs() > 1e-4,
        "{s_one} vs {s_avg}"
    );
    let bad = js_sys::JSON::parse(r#"{"mirror": "no"}"#).unwrap();
    assert!(
        a.classify_face(&buf, w, h, bad).is_err(),
        "a mirror that is not a boolean throws"
    );
}

#[wasm_bindgen_test]
fn pipeline_parity_in_the_browser() {
    let a = analyzer(416);
    check_frames(416, |buf, w, h| {
        let v = a.analyze(buf, w, h).unwrap_or_else(|_| panic!("analyze"));
        serde_wasm_bindgen::from_value::<Vec<JsFace>>(v)
            .unwrap()
            .into_iter()
            .map(|f| OurFace {
                bbox: f.bbox,
                score: f.score,
                expressions: f.expressions.to_array(),
            })
            .collect()
    });
}

/// The message of the JS error a call threw; fails the test (with `what`) if it did not.
fn thrown_message<T>(result: Result<T, JsError>, what: &str) -> String {
    let err = result.err().map(JsValue::from).expect(what);
    js_sys::Error::from(err)
        .message()
        .as_string()
        .unwrap_or_default()
}

#[wasm_bindgen_test]
fn bad_input_throws_a_js_error_with_the_reason() {
    let msg = thrown_message(
        WebFaceAnalyzer::new(&DETECTOR[..1000], EXPRESSION, JsValue::UNDEFINED),
        "a truncated model must throw",
    );
    assert!(msg.contains("face detector"), "{msg}");

    let bad_opts = js_sys::JSON::parse(r#"{"inputSize": 300}"#).unwrap();
    let msg = thrown_message(
        WebFaceAnalyzer::new(DETECTOR, EXPRESSION, bad_opts),
        "bad options throw",
    );
    assert!(msg.contains("multiple of 32"), "{msg}");

    // A misspelt option throws, naming it, instead of being ignored.
    let typo = js_sys::JSON::parse(r#"{"inputsize": 320}"#).unwrap();
    let msg = thrown_message(
        WebFaceAnalyzer::new(DETECTOR, EXPRESSION, typo),
        "an unknown option throws",
    );
    assert!(msg.contains("unknown field `inputsize`"), "{msg}");
    let typo = js_sys::JSON::parse(r#"{"redetectEvry": 3}"#).unwrap();
    assert!(
        WebFaceTracker::new(DETECTOR, EXPRESSION, typo).is_err(),
        "an unknown tracker option throws"
    );
    let typo = js_sys::JSON::parse(r#"{"mirorr": false}"#).unwrap();
    let (buf, w, h) = rgba("crops/mixed_1.png");
    assert!(
        analyzer(224).classify_face(&buf, w, h, typo).is_err(),
        "an unknown classifyFace option throws"
    );

    let a = analyzer(224);
    let msg = thrown_message(a.analyze(&[0; 10], 64, 64), "short buffer throws");
    assert!(msg.contains("16384 bytes"), "{msg}");
}

/// What `FaceTracker.step` returns.
#[derive(Deserialize)]
struct JsStep {
    boxes: Vec<RefBox>,
    judged: Option<usize>,
    smile: Option<f32>,
    detected: bool,
}

fn step(t: &mut WebFaceTracker, buf: &[u8], w: u32, h: u32) -> JsStep {
    let v = t.step(buf, w, h).unwrap_or_else(|_| panic!("step"));
    serde_wasm_bindgen::from_value(v).unwrap()
}

#[wasm_bindgen_test]
fn tracker_detects_then_follows_the_largest_face() {
    let (buf, w, h) = rgba("frames/sample6_640x480.png");
    // What detection on every frame says: the largest face and its smile score.
    let faces: Vec<JsFace> = serde_wasm_bindgen::from_value(
        analyzer(224)
            .analyze(&buf, w, h)
            .unwrap_or_else(|_| panic!("analyze")),
    )
    .unwrap();
    let largest = faces
        .iter()
        .max_by(|a, b| (a.bbox.width * a.bbox.height).total_cmp(&(b.bbox.width * b.bbox.height)))
        .expect("the fixture has faces");

    let mut t = WebFaceTracker::new(DETECTOR, EXPRESSION, options(224))
        .unwrap_or_else(|_| panic!("tracker loads"));
    let steps: Vec<JsStep> = (0..6).map(|_| step(&mut t, &buf, w, h)).collect();
    // The detector runs on the first frame and again after redetectEvery (5) frames.
    let detected: Vec<bool> = steps.iter().map(|s| s.detected).collect();
    assert_eq!(detected, [true, false, false, false, false, true]);

    let first = &steps[0];
    assert_eq!(
        first.boxes.len(),
        faces.len(),
        "a detect frame draws every face"
    );
    let judged = first.boxes[first.judged.expect("a face is judged")];
    assert!(
        judged.iou(&largest.bbox) > 0.99,
        "judged {judged:?}, largest {:?}",
        largest.bbox
    );
    let smile = first.smile.expect("smile on a detect frame");
    assert!(
        (smile - largest.smile).abs() < 1e-4,
        "{smile} vs {}",
        largest.smile
    );
    for (i, s) in steps.iter().enumerate().take(5).skip(1) {
        assert_eq!(
            (s.boxes.len(), s.judged),
            (1, Some(0)),
            "a tracked frame draws the tracked box"
        );
        assert!(
            s.boxes[0].iou(&largest.bbox) > 0.9,
            "tracked box {:?}",
            s.boxes[0]
        );
        let h = s.smile.expect("smile on a tracked frame");
        // Odd frames read the mirror image (a different score); even ones match.
        assert!(
            (0.0..=1.0).contains(&h) && (i % 2 == 1 || (h - smile).abs() < 0.02),
            "frame {i}: tracked smile {h} vs detected {smile}"
        );
    }

    // reset() forgets the face: the next frame runs the detector.
    t.reset();
    assert!(step(&mut t, &buf, w, h).detected);

    // An empty scene: no face, nothing judged, and the detector keeps looking.
    let grey = vec![128u8; (w * h * 4) as usize];
    for _ in 0..2 {
        let s = step(&mut t, &grey, w, h);
        assert!(s.detected && s.boxes.is_empty(), "{} boxes", s.boxes.len());
        assert_eq!((s.judged, s.smile), (None, None));
    }
}
