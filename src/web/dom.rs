//! Small DOM helpers with owned cleanup: an event listener that removes itself on drop,
//! a timeout that clears itself on drop, and a requestAnimationFrame loop that cancels
//! itself on drop. Owning these in structs (instead of `Closure::forget`) means ending a
//! screen releases everything it registered.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Document, Element, EventTarget, HtmlElement, Window};

/// A browser failure inside the glue, with a message for the console.
#[derive(Debug, Clone)]
pub struct DomError(pub String);

impl std::fmt::Display for DomError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DomError {}

impl From<JsValue> for DomError {
    fn from(value: JsValue) -> Self {
        DomError(describe(&value))
    }
}

/// A readable one-line description of a thrown JS value (Error, DOMException, string).
pub fn describe(value: &JsValue) -> String {
    if let Some(e) = value.dyn_ref::<web_sys::DomException>() {
        return format!("{}: {}", e.name(), e.message());
    }
    if let Some(e) = value.dyn_ref::<js_sys::Error>() {
        return String::from(e.to_string());
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}

pub fn window() -> Result<Window, DomError> {
    web_sys::window().ok_or_else(|| DomError("no window (not running in a page)".into()))
}

pub fn document() -> Result<Document, DomError> {
    window()?
        .document()
        .ok_or_else(|| DomError("no document".into()))
}

/// The element with `id`, cast to `T`; a missing or wrong element names the id.
pub fn by_id<T: JsCast>(doc: &Document, id: &str) -> Result<T, DomError> {
    doc.get_element_by_id(id)
        .ok_or_else(|| DomError(format!("the page has no #{id} element")))?
        .dyn_into::<T>()
        .map_err(|_| DomError(format!("#{id} is not the expected kind of element")))
}

/// Sets text only: query-derived strings must never be parsed as HTML.
pub fn set_text(el: &Element, text: &str) {
    el.set_text_content(Some(text));
}

/// Writes the text only if it changed: the challenge loop sets its texts on every
/// animation frame, and each write costs a style, layout and paint pass on the main thread.
pub fn update_text(el: &Element, text: &str) {
    if el.text_content().as_deref() != Some(text) {
        el.set_text_content(Some(text));
    }
}

pub fn set_hidden(el: &HtmlElement, hidden: bool) {
    el.set_hidden(hidden);
}

/// Logs to the console as an error (tests and operators read it there).
pub fn console_error(message: &str) {
    web_sys::console::error_1(&JsValue::from_str(message));
}

/// `performance.now()`, or 0 if there is no performance object (the verdict then never
/// advances, which fails closed).
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

#[wasm_bindgen]
extern "C" {
    /// WebCodecs' `VideoFrame`, declared here because web-sys has it only behind its
    /// unstable-API cfg. Made from the camera's `<video>` it holds the decoded frame without
    /// copying or converting it, so the main thread's share of a frame is about 0.1 ms.
    pub type VideoFrame;

    #[wasm_bindgen(constructor, catch)]
    fn new(source: &web_sys::HtmlVideoElement) -> Result<VideoFrame, JsValue>;

    #[wasm_bindgen(method)]
    fn close(this: &VideoFrame);
}

/// A `VideoFrame` that is closed on drop: an open frame pins one of the camera's few
/// buffers until garbage collection, which stalls capture. Closing a frame that was
/// transferred to a worker does nothing.
pub struct OwnedFrame(VideoFrame);

impl OwnedFrame {
    /// The video's current frame (the caller checks that it has one).
    pub fn from_video(video: &web_sys::HtmlVideoElement) -> Result<Self, DomError> {
        Ok(Self(VideoFrame::new(video)?))
    }

    /// Takes ownership of a frame that arrived in a message; anything else is refused.
    pub fn from_js(value: JsValue) -> Option<Self> {
        value
            .is_instance_of::<VideoFrame>()
            .then(|| Self(value.unchecked_into()))
    }

    pub fn as_js(&self) -> &JsValue {
        &self.0
    }
}

impl Drop for OwnedFrame {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Whether the current global scope (page or worker) defines `name`.
pub fn has_global(name: &str) -> bool {
    js_sys::Reflect::has(&js_sys::global(), &JsValue::from_str(name)).unwrap_or(false)
}

/// An event listener that is removed when this value is dropped.
pub struct Listener {
    target: EventTarget,
    event: &'static str,
    closure: Closure<dyn FnMut(web_sys::Event)>,
}

impl Listener {
    pub fn new(
        target: &EventTarget,
        event: &'static str,
        handler: impl FnMut(web_sys::Event) + 'static,
    ) -> Result<Self, DomError> {
        let closure = Closure::<dyn FnMut(web_sys::Event)>::new(handler);
        target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref())?;
        Ok(Self {
            target: target.clone(),
            event,
            closure,
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Dropping the Closure while the browser still holds it would make a later
        // event throw; remove it from the target first.
        let _ = self
            .target
            .remove_event_listener_with_callback(self.event, self.closure.as_ref().unchecked_ref());
    }
}

/// A `setTimeout` that is cleared when this value is dropped.
pub struct Timeout {
    handle: i32,
    _closure: Closure<dyn FnMut()>,
}

impl Timeout {
    pub fn new(ms: i32, handler: impl FnMut() + 'static) -> Result<Self, DomError> {
        let closure = Closure::<dyn FnMut()>::new(handler);
        let handle = window()?.set_timeout_with_callback_and_timeout_and_arguments_0(
            closure.as_ref().unchecked_ref(),
            ms,
        )?;
        Ok(Self {
            handle,
            _closure: closure,
        })
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        if let Some(w) = web_sys::window() {
            w.clear_timeout_with_handle(self.handle);
        }
    }
}

/// The per-frame callback handed to requestAnimationFrame.
type FrameCallback = Closure<dyn FnMut(f64)>;

struct LoopInner {
    closure: RefCell<Option<FrameCallback>>,
    handle: Cell<Option<i32>>,
}

impl LoopInner {
    fn request(&self) {
        let (Some(w), Ok(closure)) = (web_sys::window(), self.closure.try_borrow()) else {
            return;
        };
        if let Some(c) = closure.as_ref() {
            match w.request_animation_frame(c.as_ref().unchecked_ref()) {
                Ok(h) => self.handle.set(Some(h)),
                Err(e) => console_error(&format!("requestAnimationFrame failed: {}", describe(&e))),
            }
        }
    }
}

/// A requestAnimationFrame loop: `step` runs once per frame while it returns true.
/// One frame is requested only after the previous step returned, so work never queues.
/// Dropping the loop cancels the pending frame and frees the closure.
pub struct AnimationLoop {
    inner: Rc<LoopInner>,
}

impl AnimationLoop {
    pub fn start(mut step: impl FnMut() -> bool + 'static) -> Self {
        let inner = Rc::new(LoopInner {
            closure: RefCell::new(None),
            handle: Cell::new(None),
        });
        // Weak: the closure must not keep its own holder alive (that would leak it).
        let weak: Weak<LoopInner> = Rc::downgrade(&inner);
        let closure: FrameCallback = Closure::new(move |_t: f64| {
            if let Some(inner) = weak.upgrade() {
                inner.handle.set(None);
            }
            if step() {
                if let Some(inner) = weak.upgrade() {
                    inner.request();
                }
            }
        });
        *inner.closure.borrow_mut() = Some(closure);
        inner.request();
        Self { inner }
    }
}

impl Drop for AnimationLoop {
    fn drop(&mut self) {
        if let (Some(h), Some(w)) = (self.inner.handle.take(), web_sys::window()) {
            let _ = w.cancel_animation_frame(h);
        }
        if let Ok(mut c) = self.inner.closure.try_borrow_mut() {
            c.take();
        }
    }
}

/// The `Response` a `fetch` promise resolves to, if its status is 2xx; otherwise (or on a
/// network error) a message naming what went wrong.
pub async fn ok_response(fetch: js_sys::Promise) -> Result<web_sys::Response, String> {
    let response = wasm_bindgen_futures::JsFuture::from(fetch)
        .await
        .map_err(|e| describe(&e))?
        .dyn_into::<web_sys::Response>()
        .map_err(|_| "fetch did not return a Response".to_owned())?;
    if !response.ok() {
        return Err(format!("HTTP {}", response.status()));
    }
    Ok(response)
}
