//! The camera: `getUserMedia` with our own timeout, errors mapped to a [`Problem`], and a
//! [`Camera`] that stops every track when asked or dropped, so no path leaves the camera
//! light on (the redirect stops it first, see `page`). While it runs, [`Camera::lost`]
//! tells whether its track ended or stays muted (the rule is `challenge::feed`).

use std::cell::Cell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{MediaStream, MediaStreamConstraints, MediaStreamTrack, MediaStreamTrackState};

use crate::challenge::content::Problem;
use crate::challenge::feed::{camera_lost, MUTE_GRACE_MS};

use super::dom::{describe, now_ms, window, DomError, Listener};

/// `getUserMedia` may never settle (an ignored prompt, a stuck driver); give up after this.
pub const CAMERA_TIMEOUT_MS: i32 = 15_000;

/// Why the camera did not start: the problem shown to the user and a console detail.
#[derive(Debug, Clone)]
pub struct CameraError {
    pub problem: Problem,
    pub detail: String,
}

impl std::fmt::Display for CameraError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.problem, self.detail)
    }
}

impl CameraError {
    fn new(problem: Problem, detail: impl Into<String>) -> Self {
        Self {
            problem,
            detail: detail.into(),
        }
    }

    /// Maps a rejection of `getUserMedia` by its `DOMException.name`.
    pub fn from_rejection(value: &JsValue) -> Self {
        let name = value
            .dyn_ref::<web_sys::DomException>()
            .map(|e| e.name())
            .or_else(|| {
                value
                    .dyn_ref::<js_sys::Error>()
                    .map(|e| String::from(e.name()))
            })
            .unwrap_or_default();
        Self::new(Problem::from_camera_error_name(&name), describe(value))
    }
}

/// What the video tracks' events said: set by the listeners, read by [`Camera::lost`].
#[derive(Default)]
struct TrackEvents {
    ended: Cell<bool>,
    /// Since a `mute` not yet followed by `unmute`.
    muted_since: Cell<Option<f64>>,
}

/// A running camera stream; every track is stopped on [`Camera::stop`] or on drop.
pub struct Camera {
    stream: MediaStream,
    events: Rc<TrackEvents>,
    /// Since when polling has seen a track muted (events may be missed or late).
    polled_muted_since: Cell<Option<f64>>,
    /// The tracks' `ended`, `mute` and `unmute` listeners, removed when the camera drops.
    listeners: Vec<Listener>,
}

impl Camera {
    /// Wraps a stream (tests build one from a fake device).
    pub fn from_stream(stream: MediaStream) -> Self {
        Self {
            stream,
            events: Rc::default(),
            polled_muted_since: Cell::new(None),
            listeners: Vec::new(),
        }
    }

    /// Listens for `ended`, `mute` and `unmute` on the video tracks and calls `on_change`
    /// after each, so the page can act at once (then ask [`Camera::lost`]). Without it
    /// `lost` still polls the tracks.
    pub fn watch(&mut self, on_change: impl Fn() + 'static) -> Result<(), DomError> {
        let on_change = Rc::new(on_change);
        for track in video_tracks(&self.stream) {
            for event in ["ended", "mute", "unmute"] {
                let (events, on_change) = (self.events.clone(), on_change.clone());
                self.listeners.push(Listener::new(&track, event, move |_| {
                    match event {
                        "ended" => events.ended.set(true),
                        "mute" if events.muted_since.get().is_none() => {
                            events.muted_since.set(Some(now_ms()));
                        }
                        "mute" => {}
                        _ => events.muted_since.set(None),
                    }
                    on_change();
                })?);
            }
        }
        Ok(())
    }

    /// Why the camera counts as lost at `now_ms`, for the console; `None` while it is
    /// live. Polls the tracks too: `track.stop()` (and a revoked permission in some
    /// browsers) ends a track without an `ended` event.
    pub fn lost(&self, now_ms: f64) -> Option<String> {
        let tracks = video_tracks(&self.stream);
        let polled_ended = tracks.is_empty()
            || tracks
                .iter()
                .any(|t| t.ready_state() == MediaStreamTrackState::Ended);
        if tracks.iter().any(MediaStreamTrack::muted) {
            if self.polled_muted_since.get().is_none() {
                self.polled_muted_since.set(Some(now_ms));
            }
        } else {
            self.polled_muted_since.set(None);
        }
        let ended = polled_ended || self.events.ended.get();
        let muted_since = match (self.events.muted_since.get(), self.polled_muted_since.get()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if !camera_lost(ended, muted_since, now_ms) {
            return None;
        }
        Some(if ended {
            "the camera's video track ended".to_owned()
        } else {
            format!("the camera's video track has been muted for over {MUTE_GRACE_MS} ms")
        })
    }

    pub fn stream(&self) -> &MediaStream {
        &self.stream
    }

    /// Stops every track (the browser's camera indicator goes off); returns how many.
    pub fn stop(&self) -> usize {
        stop_stream(&self.stream)
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.stop();
    }
}

fn video_tracks(stream: &MediaStream) -> Vec<MediaStreamTrack> {
    stream
        .get_video_tracks()
        .iter()
        .filter_map(|t| t.dyn_into::<MediaStreamTrack>().ok())
        .collect()
}

/// Stops every track of `stream`; returns how many it stopped.
pub fn stop_stream(stream: &MediaStream) -> usize {
    let mut stopped = 0;
    for track in stream.get_tracks().iter() {
        if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
            track.stop();
            stopped += 1;
        }
    }
    stopped
}

/// The constraints the page asks for: 640x480 from the front camera, no audio.
fn preferred_constraints() -> MediaStreamConstraints {
    let video = js_sys::Object::new();
    let set = |k: &str, v: JsValue| {
        let _ = js_sys::Reflect::set(&video, &JsValue::from_str(k), &v);
    };
    set("width", JsValue::from(640));
    set("height", JsValue::from(480));
    set("facingMode", JsValue::from_str("user"));
    let c = MediaStreamConstraints::new();
    c.set_video(&video);
    c.set_audio(&JsValue::FALSE);
    c
}

/// Any camera at all: the fallback after `OverconstrainedError`.
fn any_camera_constraints() -> MediaStreamConstraints {
    let c = MediaStreamConstraints::new();
    c.set_video(&JsValue::TRUE);
    c.set_audio(&JsValue::FALSE);
    c
}

/// Checks the secure context and `navigator.mediaDevices`, then starts the camera with
/// the preferred constraints, retrying without them if the camera cannot meet them.
pub async fn start(timeout_ms: i32) -> Result<Camera, CameraError> {
    let w = window().map_err(|e| CameraError::new(Problem::CameraOther, e.0))?;
    if !w.is_secure_context() {
        return Err(CameraError::new(
            Problem::InsecureContext,
            "window.isSecureContext is false",
        ));
    }
    // `mediaDevices` is undefined outside secure contexts and in some embedded browsers;
    // web-sys's getter would then hand back undefined typed as MediaDevices.
    let devices = js_sys::Reflect::get(&w.navigator(), &JsValue::from_str("mediaDevices"))
        .ok()
        .filter(|d| !d.is_undefined() && !d.is_null())
        .and_then(|d| d.dyn_into::<web_sys::MediaDevices>().ok())
        .ok_or_else(|| {
            CameraError::new(Problem::NoMediaDevices, "navigator.mediaDevices is missing")
        })?;
    match request(&devices, &preferred_constraints(), timeout_ms).await {
        Err(e) if e.problem == Problem::CameraFormat => {
            request(&devices, &any_camera_constraints(), timeout_ms).await
        }
        other => other,
    }
}

/// One `getUserMedia` call raced against a timeout.
async fn request(
    devices: &web_sys::MediaDevices,
    constraints: &MediaStreamConstraints,
    timeout_ms: i32,
) -> Result<Camera, CameraError> {
    let w = window().map_err(|e| CameraError::new(Problem::CameraOther, e.0))?;
    let gum = devices
        .get_user_media_with_constraints(constraints)
        .map_err(|e| CameraError::from_rejection(&e))?;
    // The timer resolves the race with `undefined`; passing `resolve` itself as the
    // callback needs no Rust closure, so nothing is leaked if the camera wins.
    let mut timer = None;
    let timeout = js_sys::Promise::new(&mut |resolve, _reject| {
        timer = w
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, timeout_ms)
            .ok();
    });
    let race = js_sys::Promise::race(&js_sys::Array::of2(&gum, &timeout));
    let result = JsFuture::from(race).await;
    if let Some(t) = timer {
        w.clear_timeout_with_handle(t);
    }
    match result {
        Ok(value) => match value.dyn_into::<MediaStream>() {
            Ok(stream) => Ok(Camera::from_stream(stream)),
            Err(_) => {
                // Timed out. If the camera answers later, stop it at once.
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(late) = JsFuture::from(gum).await {
                        if let Ok(stream) = late.dyn_into::<MediaStream>() {
                            stop_stream(&stream);
                        }
                    }
                });
                Err(CameraError::new(
                    Problem::CameraTimeout,
                    format!("getUserMedia did not answer within {timeout_ms} ms"),
                ))
            }
        },
        Err(e) => Err(CameraError::from_rejection(&e)),
    }
}
