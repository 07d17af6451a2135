//! The inference worker: runs in a dedicated module worker (`js/worker.js` instantiates
//! the same wasm module and calls `workerMain`), loads both models once, and answers
//! each frame message with the judged face's happy score. Keeping inference here keeps
//! the main thread free for the video and the UI.
//!
//! Messages in: `{type: "frame", id, width, height, buffer}` (the RGBA buffer is
//! transferred) and `{type: "reset"}`. Messages out: `{type: "ready"}`,
//! `{type: "error", message}` and `{type: "result", id, boxes, judged, happy, detected, ms}`.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::analyzer::{AnalyzerOptions, FaceAnalyzer};
use crate::frame::RgbaFrame;
use crate::track::{TrackStep, Tracker, TrackerOptions};

use super::dom::{describe, DomError, Listener};

/// What `workerMain` is given by the page.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkerInit {
    detector: String,
    expression: String,
    input_size: usize,
}

enum Request {
    Frame {
        id: u32,
        width: u32,
        height: u32,
        buffer: js_sys::ArrayBuffer,
    },
    Reset,
}

impl Request {
    /// Read field by field: the buffer must stay a JS ArrayBuffer, not be copied by serde.
    fn from_js(data: &JsValue) -> Result<Request, String> {
        let get = |key: &str| {
            js_sys::Reflect::get(data, &JsValue::from_str(key)).map_err(|e| describe(&e))
        };
        let number = |key: &str| -> Result<u32, String> {
            get(key)?
                .as_f64()
                .filter(|n| n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(n))
                .map(|n| n as u32)
                .ok_or_else(|| format!("{key} must be a whole number"))
        };
        match get("type")?.as_string().as_deref() {
            Some("reset") => Ok(Request::Reset),
            Some("frame") => Ok(Request::Frame {
                id: number("id")?,
                width: number("width")?,
                height: number("height")?,
                buffer: get("buffer")?
                    .dyn_into()
                    .map_err(|_| "buffer must be an ArrayBuffer".to_owned())?,
            }),
            other => Err(format!("unknown message type {other:?}")),
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum Reply<'a> {
    Ready,
    Error {
        message: &'a str,
    },
    Result {
        id: u32,
        boxes: Vec<[f64; 4]>,
        judged: Option<usize>,
        happy: Option<f32>,
        detected: bool,
        ms: f64,
    },
}

struct WorkerState {
    scope: DedicatedWorkerGlobalScope,
    analyzer: FaceAnalyzer,
    /// Detect, then track: the detector runs on a minority of frames.
    tracker: Tracker,
    _listener: Listener,
}

thread_local! {
    /// The worker's one analyser, alive until the page terminates the worker.
    static STATE: RefCell<Option<WorkerState>> = const { RefCell::new(None) };
}

fn post(scope: &DedicatedWorkerGlobalScope, reply: &Reply) {
    let sent = serde_wasm_bindgen::to_value(reply)
        .map_err(|e| e.to_string())
        .and_then(|v| scope.post_message(&v).map_err(|e| describe(&e)));
    if let Err(e) = sent {
        web_sys::console::error_1(&JsValue::from_str(&format!(
            "smile-factor worker: cannot reply: {e}"
        )));
    }
}

async fn read_bytes(fetch: js_sys::Promise) -> Result<Vec<u8>, String> {
    let response = JsFuture::from(fetch)
        .await
        .map_err(|e| describe(&e))?
        .dyn_into::<web_sys::Response>()
        .map_err(|_| "fetch did not return a Response".to_owned())?;
    if !response.ok() {
        return Err(format!("HTTP {}", response.status()));
    }
    let buf = JsFuture::from(response.array_buffer().map_err(|e| describe(&e))?)
        .await
        .map_err(|e| describe(&e))?;
    Ok(js_sys::Uint8Array::new(&buf).to_vec())
}

/// `workerMain({detector, expression, inputSize})`: loads the models, then serves frames.
/// Rejects with a readable message if the models cannot be loaded; `js/worker.js` passes
/// that on to the page as an error message.
#[wasm_bindgen(js_name = workerMain)]
pub async fn worker_main(init: JsValue) -> Result<(), JsError> {
    let scope: DedicatedWorkerGlobalScope = js_sys::global()
        .dyn_into()
        .map_err(|_| JsError::new("workerMain must run in a dedicated worker"))?;
    let init: WorkerInit = serde_wasm_bindgen::from_value(init)
        .map_err(|e| JsError::new(&format!("invalid worker init: {e}")))?;
    // Both downloads start before either is awaited.
    let (detector, expression) = (
        scope.fetch_with_str(&init.detector),
        scope.fetch_with_str(&init.expression),
    );
    let detector = read_bytes(detector)
        .await
        .map_err(|e| JsError::new(&format!("could not load {}: {e}", init.detector)))?;
    let expression = read_bytes(expression)
        .await
        .map_err(|e| JsError::new(&format!("could not load {}: {e}", init.expression)))?;
    let options = AnalyzerOptions {
        input_size: init.input_size,
        ..AnalyzerOptions::default()
    };
    let analyzer = FaceAnalyzer::new(&detector, &expression, options)?;
    let tracker = Tracker::new(TrackerOptions::default())?;
    let listener =
        Listener::new(&scope, "message", on_message).map_err(|e: DomError| JsError::new(&e.0))?;
    post(&scope, &Reply::Ready);
    // Frames that arrive meanwhile wait for this (the page keeps one in flight); the
    // camera usually takes longer to start than the warm-up.
    if let Err(e) = analyzer.warm_up() {
        web_sys::console::error_1(&JsValue::from_str(&format!(
            "smile-factor worker: warm-up failed: {e}"
        )));
    }
    STATE.with(|s| {
        s.replace(Some(WorkerState {
            scope,
            analyzer,
            tracker,
            _listener: listener,
        }))
    });
    Ok(())
}

fn on_message(event: web_sys::Event) {
    let Some(event) = event.dyn_ref::<MessageEvent>() else {
        return;
    };
    let request = Request::from_js(&event.data());
    STATE.with(|s| {
        let Ok(mut guard) = s.try_borrow_mut() else {
            return;
        };
        let Some(state) = guard.as_mut() else {
            return;
        };
        match request {
            Ok(Request::Reset) => state.tracker.reset(),
            Ok(Request::Frame {
                id,
                width,
                height,
                buffer,
            }) => {
                let reply = state.analyse(id, width, height, &buffer);
                match reply {
                    Ok(reply) => post(&state.scope, &reply),
                    Err(message) => post(&state.scope, &Reply::Error { message: &message }),
                }
            }
            Err(e) => post(
                &state.scope,
                &Reply::Error {
                    message: &format!("unexpected message: {e}"),
                },
            ),
        }
    });
}

impl WorkerState {
    fn analyse(
        &mut self,
        id: u32,
        width: u32,
        height: u32,
        buffer: &js_sys::ArrayBuffer,
    ) -> Result<Reply<'static>, String> {
        let t0 = now_ms(&self.scope);
        let rgba = js_sys::Uint8Array::new(buffer).to_vec();
        let frame = RgbaFrame::new(&rgba, width, height).map_err(|e| e.to_string())?;
        let TrackStep {
            boxes,
            judged,
            happy,
            detected,
        } = self
            .tracker
            .step(&self.analyzer, &frame)
            .map_err(|e| e.to_string())?;
        Ok(Reply::Result {
            id,
            boxes: boxes
                .iter()
                .map(|b| [b.x, b.y, b.width, b.height])
                .collect(),
            judged,
            happy,
            detected,
            ms: now_ms(&self.scope) - t0,
        })
    }
}

fn now_ms(scope: &DedicatedWorkerGlobalScope) -> f64 {
    scope.performance().map_or(0.0, |p| p.now())
}
