//! The inference worker: runs in a dedicated module worker (`js/worker.js` instantiates
//! the same wasm module and calls `workerMain`), loads both models once, and answers
//! each frame message with the judged face's smile score. Keeping inference here keeps
//! the main thread free for the video and the UI.
//!
//! Messages in: `{type: "frame", id, width, height, videoFrame}` (a transferred camera
//! frame, scaled to width x height here on an `OffscreenCanvas`), or the same with
//! `buffer` (transferred RGBA pixels, already that size), and `{type: "reset"}`.
//! Messages out: `{type: "ready", videoFrames}` (whether `videoFrame` is accepted),
//! `{type: "error", message}` and `{type: "result", id, boxes, judged, smile, detected, ms,
//! signature}` (`signature`: the analysed pixels' hash, for the frozen-frame rule).

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::vision::analyzer::{AnalyzerOptions, FaceAnalyzer};
use crate::vision::frame::RgbaFrame;
use crate::vision::signature::frame_signature;
use crate::vision::track::{TrackStep, Tracker, TrackerOptions};

use super::dom::{describe, has_global, DomError, Listener, OwnedFrame};

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
        pixels: Pixels,
    },
    Reset,
}

enum Pixels {
    Rgba(js_sys::ArrayBuffer),
    /// Closed when dropped, whatever happens to the request.
    Video(OwnedFrame),
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
            Some("frame") => {
                // Taken first, so that a bad field below still closes the frame.
                let video = OwnedFrame::from_js(get("videoFrame")?);
                let pixels = match video {
                    Some(frame) => Pixels::Video(frame),
                    None => Pixels::Rgba(get("buffer")?.dyn_into().map_err(|_| {
                        "a frame needs a videoFrame (VideoFrame) or a buffer (ArrayBuffer)"
                            .to_owned()
                    })?),
                };
                Ok(Request::Frame {
                    id: number("id")?,
                    width: number("width")?,
                    height: number("height")?,
                    pixels,
                })
            }
            other => Err(format!("unknown message type {other:?}")),
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum Reply<'a> {
    #[serde(rename_all = "camelCase")]
    Ready {
        video_frames: bool,
    },
    Error {
        message: &'a str,
    },
    Result {
        id: u32,
        boxes: Vec<[f64; 4]>,
        judged: Option<usize>,
        smile: Option<f32>,
        detected: bool,
        ms: f64,
        signature: u64,
    },
}

/// Bits of the signature sent to the page: 53 fit a JS number exactly (a u64 would need a
/// BigInt); a collision of two different frames stays a 2^-53 chance.
const SIGNATURE_BITS: u32 = 53;

struct WorkerState {
    scope: DedicatedWorkerGlobalScope,
    analyzer: FaceAnalyzer,
    /// Detect, then track: the detector runs on a minority of frames.
    tracker: Tracker,
    /// Where transferred `VideoFrame`s are scaled and read back; made on first use.
    readback: Option<Readback>,
    _listener: Listener,
}

/// Largest side a camera frame is scaled to (the page asks for 320 wide).
const MAX_SIDE: u32 = 4096;

/// A 2D `OffscreenCanvas` kept in CPU memory, since every frame is read back.
struct Readback {
    canvas: web_sys::OffscreenCanvas,
    ctx: web_sys::OffscreenCanvasRenderingContext2d,
}

#[wasm_bindgen]
extern "C" {
    /// The same context, for the one call web-sys lacks without its unstable-API cfg:
    /// `drawImage(videoFrame, dx, dy, dw, dh)`.
    #[wasm_bindgen(js_name = OffscreenCanvasRenderingContext2D)]
    type FrameContext;

    #[wasm_bindgen(method, catch, js_name = drawImage)]
    fn draw_frame(
        this: &FrameContext,
        frame: &JsValue,
        dx: f64,
        dy: f64,
        dw: f64,
        dh: f64,
    ) -> Result<(), JsValue>;
}

impl Readback {
    fn new(width: u32, height: u32) -> Result<Self, String> {
        let canvas = web_sys::OffscreenCanvas::new(width, height).map_err(|e| describe(&e))?;
        let attrs = web_sys::ContextAttributes2d::new();
        attrs.set_will_read_frequently(true);
        let ctx = canvas
            .get_context_with_context_options("2d", &attrs)
            .map_err(|e| describe(&e))?
            .ok_or("no 2d context on an OffscreenCanvas")?
            .dyn_into()
            .map_err(|_| "the 2d context has an unexpected type".to_owned())?;
        Ok(Self { canvas, ctx })
    }

    /// Scales `frame` to `width` x `height` and returns its RGBA pixels. The frame is
    /// closed as soon as it is drawn, before the slower analysis, to free the camera's buffer.
    fn rgba(&mut self, frame: OwnedFrame, width: u32, height: u32) -> Result<Vec<u8>, String> {
        if self.canvas.width() != width || self.canvas.height() != height {
            self.canvas.set_width(width);
            self.canvas.set_height(height);
        }
        let (w, h) = (f64::from(width), f64::from(height));
        self.ctx
            .unchecked_ref::<FrameContext>()
            .draw_frame(frame.as_js(), 0.0, 0.0, w, h)
            .map_err(|e| format!("cannot draw the camera frame: {}", describe(&e)))?;
        drop(frame);
        let image = self
            .ctx
            .get_image_data(0.0, 0.0, w, h)
            .map_err(|e| format!("cannot read the camera frame: {}", describe(&e)))?;
        Ok(image.data().0)
    }
}

/// The worker can take `VideoFrame`s if it has WebCodecs and `OffscreenCanvas`.
fn accepts_video_frames() -> bool {
    has_global("VideoFrame") && has_global("OffscreenCanvas")
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
    let response = super::dom::ok_response(fetch).await?;
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
    post(
        &scope,
        &Reply::Ready {
            video_frames: accepts_video_frames(),
        },
    );
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
            readback: None,
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
                pixels,
            }) => {
                let reply = state.analyse(id, width, height, pixels);
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
        pixels: Pixels,
    ) -> Result<Reply<'static>, String> {
        let t0 = now_ms(&self.scope);
        let rgba = match pixels {
            Pixels::Rgba(buffer) => js_sys::Uint8Array::new(&buffer).to_vec(),
            Pixels::Video(frame) => {
                if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
                    return Err(format!("cannot scale a camera frame to {width}x{height}"));
                }
                let readback = match self.readback.as_mut() {
                    Some(r) => r,
                    None => self.readback.insert(Readback::new(width, height)?),
                };
                readback.rgba(frame, width, height)?
            }
        };
        let frame = RgbaFrame::new(&rgba, width, height).map_err(|e| e.to_string())?;
        let signature = frame_signature(&frame) >> (64 - SIGNATURE_BITS);
        let TrackStep {
            boxes,
            judged,
            smile,
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
            smile,
            detected,
            ms: now_ms(&self.scope) - t0,
            signature,
        })
    }
}

fn now_ms(scope: &DedicatedWorkerGlobalScope) -> f64 {
    scope.performance().map_or(0.0, |p| p.now())
}
