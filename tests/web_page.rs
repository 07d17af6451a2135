//! Browser tests for the page glue that can run in isolation: the camera module against
//! Chromium's fake device (started, then every track ended on stop and on drop), the
//! `getUserMedia` error mapping, a camera frame as a `VideoFrame`, and the page's small
//! pure helpers.
//! Needs `--use-fake-device-for-media-stream --use-fake-ui-for-media-stream` (webdriver.json).
#![cfg(target_arch = "wasm32")]

use smile_factor::challenge::content::Problem;
use smile_factor::challenge::outcome::Reason;
use smile_factor::web::camera::{self, stop_stream, Camera, CameraError};
use smile_factor::web::dom::OwnedFrame;
use smile_factor::web::page::analysis_fps;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{MediaStream, MediaStreamTrack, MediaStreamTrackState};

wasm_bindgen_test_configure!(run_in_browser);

fn tracks(stream: &MediaStream) -> Vec<MediaStreamTrack> {
    stream
        .get_tracks()
        .iter()
        .filter_map(|t| t.dyn_into::<MediaStreamTrack>().ok())
        .collect()
}

#[wasm_bindgen_test]
async fn fake_camera_starts_and_stop_ends_every_track() {
    let cam = camera::start(10_000).await.expect("fake camera starts");
    let ts = tracks(cam.stream());
    assert!(!ts.is_empty(), "the stream has a video track");
    assert!(
        ts.iter().all(|t| t.kind() == "video"),
        "no audio was asked for"
    );
    assert!(ts
        .iter()
        .all(|t| t.ready_state() == MediaStreamTrackState::Live));
    assert_eq!(cam.stop(), ts.len(), "every track was stopped");
    let states: Vec<_> = ts.iter().map(|t| t.ready_state()).collect();
    assert!(
        states.iter().all(|s| *s == MediaStreamTrackState::Ended),
        "after stop: {states:?}"
    );
}

#[wasm_bindgen_test]
async fn dropping_the_camera_ends_every_track() {
    let cam = camera::start(10_000).await.expect("fake camera starts");
    let ts = tracks(cam.stream());
    drop(cam);
    assert!(ts
        .iter()
        .all(|t| t.ready_state() == MediaStreamTrackState::Ended));
}

#[wasm_bindgen_test]
async fn stop_stream_is_idempotent_and_wrapping_works() {
    let cam = camera::start(10_000).await.expect("fake camera starts");
    let stream = cam.stream().clone();
    stop_stream(&stream);
    stop_stream(&stream);
    let again = Camera::from_stream(stream.clone());
    drop(again);
    assert!(tracks(&stream)
        .iter()
        .all(|t| t.ready_state() == MediaStreamTrackState::Ended));
    drop(cam);
}

#[wasm_bindgen_test]
fn dom_exception_names_map_to_problem_and_reason() {
    let cases = [
        (
            "NotAllowedError",
            Problem::CameraDenied,
            Reason::CameraDenied,
        ),
        ("SecurityError", Problem::CameraDenied, Reason::CameraDenied),
        (
            "NotFoundError",
            Problem::NoCamera,
            Reason::CameraUnavailable,
        ),
        (
            "NotReadableError",
            Problem::CameraInUse,
            Reason::CameraUnavailable,
        ),
        (
            "OverconstrainedError",
            Problem::CameraFormat,
            Reason::CameraUnavailable,
        ),
        (
            "AbortError",
            Problem::CameraOther,
            Reason::CameraUnavailable,
        ),
    ];
    for (name, problem, reason) in cases {
        let e =
            web_sys::DomException::new_with_message_and_name("test", name).expect("DOMException");
        let mapped = CameraError::from_rejection(&e.into());
        assert_eq!(mapped.problem, problem, "{name}");
        assert_eq!(mapped.problem.reason(), Some(reason), "{name}");
        assert!(mapped.detail.contains(name), "{}", mapped.detail);
    }
    // A plain Error or a string still maps, to the generic camera problem.
    let plain = CameraError::from_rejection(&js_sys::Error::new("boom").into());
    assert_eq!(plain.problem, Problem::CameraOther);
    let text = CameraError::from_rejection(&"odd".into());
    assert_eq!(text.problem, Problem::CameraOther);
}

#[wasm_bindgen_test]
fn fps_has_one_decimal_and_survives_zero_time() {
    assert_eq!(analysis_fps(150, 15_000.0), "10.0");
    assert_eq!(analysis_fps(187, 15_000.0), "12.5");
    assert_eq!(analysis_fps(0, 0.0), "0.0");
    assert_eq!(analysis_fps(5, f64::NAN), "0.0");
}

fn assets(module: &wasm_bindgen::JsValue) -> js_sys::Object {
    let obj = js_sys::Object::new();
    let set = |k: &str, v: &wasm_bindgen::JsValue| {
        js_sys::Reflect::set(&obj, &k.into(), v).expect("set");
    };
    set("module", module);
    for key in ["worker", "detector", "expression", "css"] {
        set(key, &format!("/nowhere/{key}").into());
    }
    obj
}

#[wasm_bindgen_test]
fn assets_must_carry_a_compiled_module_and_urls() {
    use smile_factor::web::engine::Assets;
    let e = Assets::from_js(&assets(&1.into()))
        .err()
        .expect("not a module");
    assert!(e.0.contains("WebAssembly.Module"), "{e}");
    let obj = assets(&wasm_bindgen::module());
    js_sys::Reflect::set(&obj, &"css".into(), &2.into()).expect("set");
    let e = Assets::from_js(&obj).err().expect("css is not a URL");
    assert!(e.0.contains("assets.css"), "{e}");
    assert!(Assets::from_js(&assets(&wasm_bindgen::module())).is_ok());
}

/// An embed with an unknown option renders into the shadow root, shows the error screen
/// and reports `reason: "error"` with a message naming the option, without any camera.
#[wasm_bindgen_test]
async fn embed_with_bad_options_fails_closed_inside_its_shadow_root() {
    use std::cell::RefCell;
    use std::rc::Rc;
    use wasm_bindgen::closure::Closure;

    let doc = web_sys::window()
        .and_then(|w| w.document())
        .expect("document");
    let host: web_sys::HtmlElement = doc
        .create_element("div")
        .expect("div")
        .dyn_into()
        .expect("html element");
    doc.body()
        .expect("body")
        .append_child(&host)
        .expect("append");
    let shadow = host
        .attach_shadow(&web_sys::ShadowRootInit::new(web_sys::ShadowRootMode::Open))
        .expect("shadow root");
    let got: Rc<RefCell<Option<wasm_bindgen::JsValue>>> = Rc::default();
    let sink = got.clone();
    let on_result = Closure::<dyn FnMut(wasm_bindgen::JsValue)>::new(move |v| {
        *sink.borrow_mut() = Some(v);
    });
    let options = js_sys::JSON::parse(r#"{"colour": "red"}"#).expect("json");
    let mut handle = smile_factor::web::mount_challenge(
        shadow.clone(),
        host.clone(),
        options,
        assets(&wasm_bindgen::module()).into(),
        on_result
            .as_ref()
            .unchecked_ref::<js_sys::Function>()
            .clone(),
    )
    .map_err(wasm_bindgen::JsValue::from)
    .expect("mounts");
    // The options are checked in a spawned task; let it run.
    for _ in 0..50 {
        if got.borrow().is_some() {
            break;
        }
        wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(
            &wasm_bindgen::JsValue::from(0),
        ))
        .await
        .expect("tick");
    }
    let detail = got.borrow().clone().expect("a result was reported");
    let field = |k: &str| js_sys::Reflect::get(&detail, &k.into()).expect("field");
    assert_eq!(field("notsmiling").as_bool(), Some(false));
    assert_eq!(field("reason").as_string().as_deref(), Some("error"));
    let message = field("message").as_string().unwrap_or_default();
    assert!(message.contains("colour"), "{message}");
    // Rendered into the shadow root, not the document; the phase is on the host.
    assert!(shadow.get_element_by_id("error-screen").is_some());
    assert!(doc.get_element_by_id("error-screen").is_none());
    assert_eq!(host.dataset().get("phase").as_deref(), Some("error"));
    handle.destroy();
    host.remove();
}

async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let window = web_sys::window().expect("a window");
        window
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .expect("setTimeout");
    });
    wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .expect("timer");
}

fn get(value: &wasm_bindgen::JsValue, key: &str) -> wasm_bindgen::JsValue {
    js_sys::Reflect::get(value, &key.into()).expect("readable property")
}

#[wasm_bindgen_test]
async fn a_camera_frame_is_wrapped_without_copy_and_closed_on_drop() {
    let cam = camera::start(10_000).await.expect("fake camera starts");
    let doc = web_sys::window().unwrap().document().unwrap();
    let video: web_sys::HtmlVideoElement = doc.create_element("video").unwrap().dyn_into().unwrap();
    video.set_muted(true);
    video.set_src_object(Some(cam.stream()));
    let _ = video.play();
    for _ in 0..100 {
        if video.ready_state() >= 2 {
            break;
        }
        sleep_ms(50).await;
    }
    assert!(
        video.ready_state() >= 2,
        "the fake camera's video has a frame"
    );

    let frame = OwnedFrame::from_video(&video).expect("a VideoFrame from the video");
    let js = frame.as_js().clone();
    assert_eq!(
        get(&js, "displayWidth").as_f64(),
        Some(f64::from(video.video_width()))
    );
    assert!(
        get(&js, "format").as_string().is_some(),
        "open: it has a pixel format"
    );
    // What the worker does with a message: only a VideoFrame is taken.
    assert!(OwnedFrame::from_js(wasm_bindgen::JsValue::from(1)).is_none());
    assert!(OwnedFrame::from_js(js_sys::ArrayBuffer::new(4).into()).is_none());
    drop(frame);
    assert!(
        get(&js, "format").is_null(),
        "closed on drop: the camera buffer is free"
    );
    drop(cam);
}
