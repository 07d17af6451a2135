//! Browser tests: the wasm build, through the same exports JS calls, loads both models
//! and reproduces face-api.js's results on the fixtures in headless Chromium.
#![cfg(target_arch = "wasm32")]

mod common;

use common::{check_crops, check_frames, OurFace, RefBox, DETECTOR, EXPRESSION};
use serde::Deserialize;
use smile_factor::web::WebFaceAnalyzer;
use wasm_bindgen::JsValue;
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
        [self.neutral, self.happy, self.sad, self.angry, self.fearful, self.disgusted, self.surprised]
    }
}

#[derive(Deserialize)]
struct JsFace {
    #[serde(rename = "box")]
    bbox: RefBox,
    score: f64,
    expressions: JsExpressions,
}

fn options(input_size: usize) -> JsValue {
    let o = js_sys::Object::new();
    js_sys::Reflect::set(&o, &"inputSize".into(), &(input_size as f64).into()).unwrap();
    o.into()
}

fn analyzer(input_size: usize) -> WebFaceAnalyzer {
    WebFaceAnalyzer::new(DETECTOR, EXPRESSION, options(input_size)).unwrap_or_else(|_| panic!("models load in wasm"))
}

#[wasm_bindgen_test]
fn expression_parity_in_the_browser() {
    let a = analyzer(224);
    check_crops(|buf, w, h| {
        let v = a.classify_face(buf, w, h).unwrap_or_else(|_| panic!("classifyFace"));
        serde_wasm_bindgen::from_value::<JsExpressions>(v).unwrap().to_array()
    });
}

#[wasm_bindgen_test]
fn pipeline_parity_in_the_browser() {
    let a = analyzer(416);
    check_frames(416, |buf, w, h| {
        let v = a.analyze(buf, w, h).unwrap_or_else(|_| panic!("analyze"));
        serde_wasm_bindgen::from_value::<Vec<JsFace>>(v)
            .unwrap()
            .into_iter()
            .map(|f| OurFace { bbox: f.bbox, score: f.score, expressions: f.expressions.to_array() })
            .collect()
    });
}

#[wasm_bindgen_test]
fn bad_input_throws_a_js_error_with_the_reason() {
    let err = WebFaceAnalyzer::new(&DETECTOR[..1000], EXPRESSION, JsValue::UNDEFINED)
        .err()
        .map(JsValue::from)
        .expect("a truncated model must throw");
    let msg = js_sys::Error::from(err).message().as_string().unwrap_or_default();
    assert!(msg.contains("face detector"), "{msg}");

    let bad_opts = js_sys::JSON::parse(r#"{"inputSize": 300}"#).unwrap();
    let err = WebFaceAnalyzer::new(DETECTOR, EXPRESSION, bad_opts).err().map(JsValue::from).expect("bad options throw");
    let msg = js_sys::Error::from(err).message().as_string().unwrap_or_default();
    assert!(msg.contains("multiple of 32"), "{msg}");

    let a = analyzer(224);
    let err = a.analyze(&[0; 10], 64, 64).err().map(JsValue::from).expect("short buffer throws");
    let msg = js_sys::Error::from(err).message().as_string().unwrap_or_default();
    assert!(msg.contains("16384 bytes"), "{msg}");
}
