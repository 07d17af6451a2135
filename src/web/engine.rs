//! The main thread's side of the inference worker: it starts the worker (which runs
//! `worker::worker_main` on the same wasm module), hands it camera frames (transferred
//! `VideoFrame`s, or RGBA buffers where WebCodecs is missing), and turns its messages
//! into [`EngineEvent`]s.
//!
//! At most one frame is in flight: while the worker is busy the page drops frames instead
//! of queueing them, so latency never builds up. Dropping the [`Engine`] terminates the
//! worker and removes its listeners.

use serde::Deserialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{MessageEvent, Worker, WorkerOptions, WorkerType};

use super::dom::{describe, DomError, Listener, OwnedFrame};

/// Where the engine's parts are; the JS entry resolves them next to itself.
pub struct Assets {
    /// The compiled `WebAssembly.Module`, shared with the worker so it compiles once.
    pub module: JsValue,
    pub worker_url: String,
    pub detector_url: String,
    pub expression_url: String,
    /// The challenge's stylesheet, linked into the rendered UI.
    pub css_url: String,
}

impl Assets {
    /// Reads `{module, worker, detector, expression, css}` from the JS entry.
    pub fn from_js(value: &JsValue) -> Result<Self, DomError> {
        let get = |key: &str| {
            js_sys::Reflect::get(value, &JsValue::from_str(key))
                .map_err(|e| DomError(format!("assets.{key}: {}", describe(&e))))
        };
        let url = |key: &str| {
            get(key)?
                .as_string()
                .ok_or_else(|| DomError(format!("assets.{key} must be a URL string")))
        };
        let module = get("module")?;
        if !module.is_instance_of::<js_sys::WebAssembly::Module>() {
            return Err(DomError(
                "assets.module must be a WebAssembly.Module".into(),
            ));
        }
        Ok(Self {
            module,
            worker_url: url("worker")?,
            detector_url: url("detector")?,
            expression_url: url("expression")?,
            css_url: url("css")?,
        })
    }
}

/// One analysed frame, as the worker reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct FrameResult {
    /// Echo of the frame id, so a late answer cannot be taken for a newer frame.
    pub id: u32,
    /// Boxes to draw, `[x, y, width, height]` in analysed-frame pixels.
    pub boxes: Vec<[f64; 4]>,
    /// Index of the judged face in `boxes`.
    pub judged: Option<usize>,
    /// Its smile score (the smile head's, 0..1); `None` when no face was found.
    pub smile: Option<f32>,
    /// Whether the detector ran (else the face was tracked).
    pub detected: bool,
    /// Time the worker spent on the frame.
    pub ms: f64,
    /// A hash of the analysed pixels: equal for identical frames (`challenge::feed`).
    pub signature: u64,
}

/// What the worker says.
pub enum EngineEvent {
    /// Models loaded; frames may be sent. `video_frames`: the worker can scale and read
    /// back a transferred `VideoFrame` itself (it has `OffscreenCanvas` and WebCodecs).
    Ready { video_frames: bool },
    /// Loading or analysis failed, or the worker crashed.
    Failed(String),
    /// A frame's result.
    Frame(FrameResult),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum WorkerMessage {
    #[serde(rename_all = "camelCase")]
    Ready {
        #[serde(default)]
        video_frames: bool,
    },
    Error {
        message: String,
    },
    Result(FrameResult),
}

/// The worker and its listeners; the worker is terminated on drop.
pub struct Engine {
    worker: Worker,
    _message: Listener,
    _error: Listener,
    /// Id and send time of the frame being analysed.
    in_flight: Option<(u32, f64)>,
    next_id: u32,
}

impl Engine {
    /// Starts the worker and asks it to load the models; `on_event` gets every message.
    pub fn start(
        assets: &Assets,
        input_size: usize,
        on_event: impl Fn(EngineEvent) + 'static,
    ) -> Result<Self, DomError> {
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Module);
        let worker = Worker::new_with_options(&assets.worker_url, &options)?;
        let on_event = std::rc::Rc::new(on_event);
        let on_message = on_event.clone();
        let message = Listener::new(&worker, "message", move |e| {
            let Some(e) = e.dyn_ref::<MessageEvent>() else {
                return;
            };
            let event = match serde_wasm_bindgen::from_value::<WorkerMessage>(e.data()) {
                Ok(WorkerMessage::Ready { video_frames }) => EngineEvent::Ready { video_frames },
                Ok(WorkerMessage::Error { message }) => EngineEvent::Failed(message),
                Ok(WorkerMessage::Result(r)) => EngineEvent::Frame(r),
                Err(err) => EngineEvent::Failed(format!("unexpected worker message: {err}")),
            };
            on_message(event);
        })?;
        // A worker script that fails to load or throws reports here, not as a message.
        let error = Listener::new(&worker, "error", move |e| {
            let detail = e
                .dyn_ref::<web_sys::ErrorEvent>()
                .map(|e| e.message())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "the analysis worker could not start".to_owned());
            on_event(EngineEvent::Failed(detail));
        })?;

        let init = js_sys::Object::new();
        let set = |k: &str, v: &JsValue| js_sys::Reflect::set(&init, &JsValue::from_str(k), v);
        set("module", &assets.module)?;
        set("detector", &JsValue::from_str(&assets.detector_url))?;
        set("expression", &JsValue::from_str(&assets.expression_url))?;
        set("inputSize", &JsValue::from_f64(input_size as f64))?;
        worker.post_message(&init)?;
        Ok(Self {
            worker,
            _message: message,
            _error: error,
            in_flight: None,
            next_id: 1,
        })
    }

    /// How long the current frame has been in the worker, if one is.
    pub fn busy_for_ms(&self, now_ms: f64) -> Option<f64> {
        self.in_flight.map(|(_, sent)| now_ms - sent)
    }

    /// Hands an RGBA frame to the worker, transferring (not copying) its buffer.
    pub fn send_frame(&mut self, image: &web_sys::ImageData, now_ms: f64) -> Result<(), DomError> {
        let data = js_sys::Reflect::get(image, &JsValue::from_str("data"))?;
        let buffer = js_sys::Reflect::get(&data, &JsValue::from_str("buffer"))?;
        self.post_frame(image.width(), image.height(), "buffer", &buffer, now_ms)
    }

    /// Hands the worker a camera frame to scale to `width` x `height` itself, so the
    /// main thread neither converts nor reads back pixels. Only after the worker's
    /// `Ready` said it can ([`EngineEvent::Ready`]).
    pub fn send_video_frame(
        &mut self,
        frame: &OwnedFrame,
        width: u32,
        height: u32,
        now_ms: f64,
    ) -> Result<(), DomError> {
        self.post_frame(width, height, "videoFrame", frame.as_js(), now_ms)
    }

    /// Posts `{type: "frame", id, width, height, [key]: pixels}`, transferring `pixels`.
    fn post_frame(
        &mut self,
        width: u32,
        height: u32,
        key: &str,
        pixels: &JsValue,
        now_ms: f64,
    ) -> Result<(), DomError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let msg = js_sys::Object::new();
        let set = |k: &str, v: &JsValue| js_sys::Reflect::set(&msg, &JsValue::from_str(k), v);
        set("type", &JsValue::from_str("frame"))?;
        set("id", &JsValue::from(id))?;
        set("width", &JsValue::from(width))?;
        set("height", &JsValue::from(height))?;
        set(key, pixels)?;
        self.worker
            .post_message_with_transfer(&msg, &js_sys::Array::of1(pixels))?;
        self.in_flight = Some((id, now_ms));
        Ok(())
    }

    /// Accepts a result if it answers the frame in flight (else it is stale: `false`).
    pub fn accept(&mut self, result: &FrameResult) -> bool {
        match self.in_flight {
            Some((id, _)) if id == result.id => {
                self.in_flight = None;
                true
            }
            _ => false,
        }
    }

    /// Forgets the frame in flight: its answer will be taken as stale, and the next frame
    /// may be sent at once. For a camera that was lost: the frame may show what the
    /// `<video>` kept after the track ended.
    pub fn discard_in_flight(&mut self) {
        self.in_flight = None;
    }

    /// Forgets the tracked face (after a pause the user may have moved).
    pub fn reset_tracking(&self) {
        let msg = js_sys::Object::new();
        if js_sys::Reflect::set(
            &msg,
            &JsValue::from_str("type"),
            &JsValue::from_str("reset"),
        )
        .is_ok()
        {
            if let Err(e) = self.worker.post_message(&msg) {
                super::dom::console_error(&format!(
                    "smile-factor: could not reset tracking: {}",
                    describe(&e)
                ));
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}
