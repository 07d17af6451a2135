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
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::vision::analyzer::{AnalyzerOptions, FaceAnalyzer};
use crate::vision::frame::{scale_rgba, RgbaFrame};
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
    /// A camera frame's RGBA pixels at its own size, copied out by `VideoFrame.copyTo`.
    Copied {
        rgba: Vec<u8>,
        width: u32,
        height: u32,
    },
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

#[wasm_bindgen]
extern "C" {
    /// `VideoFrame.copyTo(destination, {format: "RGBA"})` and `visibleRect`, which web-sys
    /// has only behind its unstable-API cfg.
    #[wasm_bindgen(js_name = VideoFrame)]
    type FrameCopy;

    #[wasm_bindgen(method, catch, js_name = copyTo)]
    fn copy_to(
        this: &FrameCopy,
        destination: &js_sys::Uint8Array,
        options: &JsValue,
    ) -> Result<js_sys::Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = allocationSize)]
    fn allocation_size(this: &FrameCopy, options: &JsValue) -> Result<f64, JsValue>;
}

/// The frame's visible pixels as RGBA at its own size: Chromium converts them from the
/// camera's I420 in a fraction of a millisecond, where drawing into a canvas and reading
/// it back took about 3 ms per frame on the 2-core machine. `None` where the browser
/// cannot convert (`format` is newer than `VideoFrame`): the canvas path then serves.
async fn copy_rgba(frame: &OwnedFrame) -> Option<(Vec<u8>, u32, u32)> {
    let js = frame.as_js();
    let rect = js_sys::Reflect::get(js, &JsValue::from_str("visibleRect")).ok()?;
    let side = |key: &str| {
        js_sys::Reflect::get(&rect, &JsValue::from_str(key))
            .ok()?
            .as_f64()
            .filter(|n| *n >= 1.0 && *n <= f64::from(MAX_SIDE))
            .map(|n| n as u32)
    };
    let (width, height) = (side("width")?, side("height")?);
    let options = js_sys::Object::new();
    js_sys::Reflect::set(
        &options,
        &JsValue::from_str("format"),
        &JsValue::from_str("RGBA"),
    )
    .ok()?;
    let frame_copy = js.unchecked_ref::<FrameCopy>();
    let size = frame_copy.allocation_size(&options).ok()?;
    let expected = u64::from(width) * u64::from(height) * 4;
    if size as u64 != expected {
        return None;
    }
    let destination = js_sys::Uint8Array::new_with_length(size as u32);
    let layout = JsFuture::from(frame_copy.copy_to(&destination, &options).ok()?)
        .await
        .ok()?;
    // One plane, rows packed (allocationSize said so); checked rather than assumed.
    let plane = js_sys::Reflect::get(&layout, &JsValue::from_f64(0.0)).ok()?;
    let stride = js_sys::Reflect::get(&plane, &JsValue::from_str("stride"))
        .ok()?
        .as_f64()?;
    let offset = js_sys::Reflect::get(&plane, &JsValue::from_str("offset"))
        .ok()?
        .as_f64()?;
    if stride != f64::from(width) * 4.0 || offset != 0.0 {
        return None;
    }
    Some((destination.to_vec(), width, height))
}

thread_local! {
    /// Cleared when `copy_rgba` fails once: from then on frames go through the canvas.
    static COPY_RGBA: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
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
    // Camera frames are copied out asynchronously, then analysed like the others; the
    // page keeps one frame in flight, so answers keep their order.
    if let Ok(Request::Frame {
        id,
        width,
        height,
        pixels: Pixels::Video(frame),
    }) = request
    {
        if !COPY_RGBA.with(|c| c.get()) {
            return handle(Ok(Request::Frame {
                id,
                width,
                height,
                pixels: Pixels::Video(frame),
            }));
        }
        spawn_local(async move {
            let t0 = js_sys::global()
                .dyn_into::<DedicatedWorkerGlobalScope>()
                .ok()
                .map_or(0.0, |scope| now_ms(&scope));
            let pixels = match copy_rgba(&frame).await {
                Some((rgba, w, h)) => {
                    drop(frame);
                    Pixels::Copied {
                        rgba,
                        width: w,
                        height: h,
                    }
                }
                None => {
                    COPY_RGBA.with(|c| c.set(false));
                    Pixels::Video(frame)
                }
            };
            handle_timed(
                Ok(Request::Frame {
                    id,
                    width,
                    height,
                    pixels,
                }),
                Some(t0),
            );
        });
        return;
    }
    handle(request);
}

fn handle(request: Result<Request, String>) {
    handle_timed(request, None);
}

/// Answers one request; `started` is when its analysis began, if before now (the copy).
fn handle_timed(request: Result<Request, String>, started: Option<f64>) {
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
                let reply = state.analyse(id, width, height, pixels, started);
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
        started: Option<f64>,
    ) -> Result<Reply<'static>, String> {
        let t0 = started.unwrap_or_else(|| now_ms(&self.scope));
        let rgba = match pixels {
            Pixels::Rgba(buffer) => js_sys::Uint8Array::new(&buffer).to_vec(),
            Pixels::Copied {
                rgba,
                width: cw,
                height: ch,
            } => {
                if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
                    return Err(format!("cannot scale a camera frame to {width}x{height}"));
                }
                let camera = RgbaFrame::new(&rgba, cw, ch).map_err(|e| e.to_string())?;
                if (cw, ch) == (width, height) {
                    rgba
                } else {
                    scale_rgba(&camera, width, height)
                }
            }
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
