//! The smile-factor page: screens, the challenge loop and the way back.
//!
//! One [`Page`] lives in a thread-local for the page's lifetime. Event handlers hold only a
//! `Weak` to it and borrow it briefly (never across an `await`), so a handler that fires
//! late finds nothing and does nothing. Everything a screen registers (listeners, the
//! animation loop, the result timer) is owned by the page and released when the screen
//! ends; the camera is shared with the [`WebNavigator`] so every redirect stops it first.
//!
//! The DOM contract the browser tests rely on (ids and `data-*` on `<html>`) is listed in
//! `www/index.html` and in the README; screen changes always go through [`Page::show`].

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    CanvasRenderingContext2d, Document, HtmlButtonElement, HtmlCanvasElement, HtmlElement,
    HtmlMeterElement, HtmlVideoElement,
};

use crate::analyzer::{AnalyzerOptions, FaceAnalyzer};
use crate::config::{Config, Content};
use crate::content::{texts_for, Problem, Texts, ANNOUNCE_EVERY_S, EN};
use crate::detect::BoundingBox;
use crate::frame::RgbaFrame;
use crate::redirect::{Navigator, Redirector, ReturnTarget};
use crate::verdict::{Clock, Outcome, Reason, Session, State, Verdict};

use super::camera::{self, Camera, CAMERA_TIMEOUT_MS};
use super::dom::{
    self, by_id, console_error, describe, set_hidden, set_text, AnimationLoop, DomError, Listener,
    Timeout,
};

/// Detector input side. 224 keeps the dev build at ≥ 10 analysed frames per second in
/// headless Chromium on 2 cores; a face filling a webcam frame is still found reliably.
pub const DETECTOR_INPUT_SIZE: usize = 224;
/// Width of the frame handed to the analyser; the height follows the camera's aspect.
pub const ANALYSIS_WIDTH: u32 = 320;
/// How long the result screen stays before the redirect.
pub const RESULT_SCREEN_MS: i32 = 1_000;
/// How long each joke card stays.
pub const JOKE_CARD_MS: f64 = 4_000.0;
/// Model files, relative to the page.
pub const DETECTOR_URL: &str = "models/tiny_face_detector.onnx";
pub const EXPRESSION_URL: &str = "models/face_expression.onnx";
/// Config file, relative to the page, used when the root element carries no config.
pub const CONFIG_URL: &str = "config.json";

/// The screens; the name is written to `<html data-phase>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Loading,
    Start,
    Challenge,
    Result,
    Error,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Loading => "loading",
            Phase::Start => "start",
            Phase::Challenge => "challenge",
            Phase::Result => "result",
            Phase::Error => "error",
        }
    }
}

/// `performance.now()` for the core's clock.
pub struct PerfClock;

impl Clock for PerfClock {
    fn now_ms(&self) -> f64 {
        dom::now_ms()
    }
}

/// The camera, shared by the page and the navigator.
pub type SharedCamera = Rc<RefCell<Option<Camera>>>;

/// Leaves with `location.replace` (the back button must not return to the challenge),
/// after stopping the camera tracks.
pub struct WebNavigator {
    camera: SharedCamera,
}

impl Navigator for WebNavigator {
    fn navigate(&mut self, url: &url::Url) {
        stop_camera(&self.camera);
        let result = dom::window()
            .map(|w| w.location())
            .and_then(|l| l.replace(url.as_str()).map_err(DomError::from));
        if let Err(e) = result {
            console_error(&format!("smile-factor: could not leave the page: {e}"));
        }
    }
}

/// Stops and forgets the camera, if any (dropping [`Camera`] stops its tracks).
fn stop_camera(camera: &SharedCamera) {
    match camera.try_borrow_mut() {
        Ok(mut c) => drop(c.take()),
        // Cannot happen single-threaded outside a borrow; stop the tracks anyway.
        Err(_) => {
            if let Ok(c) = camera.try_borrow() {
                if let Some(c) = c.as_ref() {
                    let _ = c.stop();
                }
            }
        }
    }
}

/// Every element the page touches, looked up once.
struct Ui {
    doc: Document,
    html: HtmlElement,
    loading_screen: HtmlElement,
    loading_text: HtmlElement,
    start_screen: HtmlElement,
    challenge_screen: HtmlElement,
    result_screen: HtmlElement,
    error_screen: HtmlElement,
    title: HtmlElement,
    intro: HtmlElement,
    privacy: HtmlElement,
    keys_hint: HtmlElement,
    start: HtmlButtonElement,
    countdown: HtmlElement,
    announce: HtmlElement,
    paused: HtmlElement,
    joke: HtmlElement,
    content_video: HtmlVideoElement,
    play: HtmlButtonElement,
    selfview: HtmlVideoElement,
    overlay: HtmlCanvasElement,
    camera_label: HtmlElement,
    smile_label: HtmlElement,
    smile_meter: HtmlMeterElement,
    smile_value: HtmlElement,
    result_message: HtmlElement,
    redirecting: HtmlElement,
    error_title: HtmlElement,
    error_message: HtmlElement,
    error_detail: HtmlElement,
    retry: HtmlButtonElement,
    return_btn: HtmlButtonElement,
}

impl Ui {
    fn find(doc: &Document) -> Result<Self, DomError> {
        let html = doc
            .document_element()
            .ok_or_else(|| DomError("no <html> element".into()))?
            .dyn_into::<HtmlElement>()
            .map_err(|_| DomError("<html> is not an HTML element".into()))?;
        Ok(Self {
            doc: doc.clone(),
            html,
            loading_screen: by_id(doc, "loading-screen")?,
            loading_text: by_id(doc, "loading-text")?,
            start_screen: by_id(doc, "start-screen")?,
            challenge_screen: by_id(doc, "challenge-screen")?,
            result_screen: by_id(doc, "result-screen")?,
            error_screen: by_id(doc, "error-screen")?,
            title: by_id(doc, "title")?,
            intro: by_id(doc, "intro")?,
            privacy: by_id(doc, "privacy")?,
            keys_hint: by_id(doc, "keys-hint")?,
            start: by_id(doc, "start")?,
            countdown: by_id(doc, "countdown")?,
            announce: by_id(doc, "announce")?,
            paused: by_id(doc, "paused")?,
            joke: by_id(doc, "joke")?,
            content_video: by_id(doc, "content-video")?,
            play: by_id(doc, "play")?,
            selfview: by_id(doc, "selfview")?,
            overlay: by_id(doc, "overlay")?,
            camera_label: by_id(doc, "camera-label")?,
            smile_label: by_id(doc, "smile-label")?,
            smile_meter: by_id(doc, "smile-meter")?,
            smile_value: by_id(doc, "smile-value")?,
            result_message: by_id(doc, "result-message")?,
            redirecting: by_id(doc, "redirecting")?,
            error_title: by_id(doc, "error-title")?,
            error_message: by_id(doc, "error-message")?,
            error_detail: by_id(doc, "error-detail")?,
            retry: by_id(doc, "retry")?,
            return_btn: by_id(doc, "return")?,
        })
    }

    /// Writes every static text of `t` (all via textContent).
    fn apply_texts(&self, t: &Texts) {
        self.html.set_lang(t.lang);
        self.doc.set_title(t.title);
        set_text(&self.title, t.title);
        set_text(&self.loading_text, t.loading);
        set_text(&self.privacy, t.privacy);
        set_text(&self.keys_hint, t.keys_hint);
        set_text(&self.start, t.start);
        set_text(&self.paused, t.paused);
        set_text(&self.play, t.play);
        set_text(&self.camera_label, t.camera_label);
        set_text(&self.smile_label, t.smile_label);
        set_text(&self.redirecting, t.redirecting);
        set_text(&self.error_title, t.error_title);
        set_text(&self.retry, t.retry);
        set_text(&self.return_btn, t.return_to_sign_in);
    }

    fn set_data(&self, key: &str, value: &str) {
        if let Err(e) = self.html.dataset().set(key, value) {
            console_error(&format!(
                "smile-factor: cannot set data-{key}: {}",
                describe(&e)
            ));
        }
    }

    /// Shows exactly one screen and records it in `data-phase`.
    fn show(&self, phase: Phase) {
        let screens = [
            (Phase::Loading, &self.loading_screen),
            (Phase::Start, &self.start_screen),
            (Phase::Challenge, &self.challenge_screen),
            (Phase::Result, &self.result_screen),
            (Phase::Error, &self.error_screen),
        ];
        for (p, el) in screens {
            set_hidden(el, p != phase);
        }
        self.set_data("phase", phase.as_str());
    }
}

/// Moves keyboard focus; a failure only costs convenience.
fn focus(el: &HtmlElement) {
    let _ = el.focus();
}

/// What only exists while the countdown runs; dropping it removes the listeners and
/// stops the loop.
struct Challenge {
    _frames: AnimationLoop,
    _keys: Listener,
    _visibility: Listener,
    /// Offscreen canvas the camera frame is scaled into for `getImageData`.
    canvas: HtmlCanvasElement,
    ctx: CanvasRenderingContext2d,
    overlay_ctx: CanvasRenderingContext2d,
    last_announced: Option<u32>,
    joke_offset_ms: f64,
    /// Time spent inside `analyze`, for the console summary.
    analyse_ms: f64,
}

pub struct Page {
    ui: Ui,
    texts: &'static Texts,
    /// `None` until the config, state and return URL are known to be good; without it
    /// the page can never redirect.
    session: Option<Session<PerfClock, WebNavigator>>,
    camera: SharedCamera,
    analyzer: Option<FaceAnalyzer>,
    content: Content,
    challenge: Option<Challenge>,
    /// The problem on the error screen, for "Try again" and "Return to sign-in".
    problem: Option<Problem>,
    /// A camera start is under way; further clicks are ignored.
    starting: bool,
    result_timer: Option<Timeout>,
    /// The buttons' listeners, alive as long as the page.
    _buttons: Vec<Listener>,
    weak: Weak<RefCell<Page>>,
}

thread_local! {
    static PAGE: RefCell<Option<Rc<RefCell<Page>>>> = const { RefCell::new(None) };
}

/// Runs `f` on the page if it still exists and is not borrowed (a reentrant event).
fn with_page<R>(weak: &Weak<RefCell<Page>>, f: impl FnOnce(&mut Page) -> R) -> Option<R> {
    let page = weak.upgrade()?;
    let mut page = page.try_borrow_mut().ok()?;
    Some(f(&mut page))
}

/// Entry point behind the `startPage` export.
pub async fn start_page(root: HtmlElement) -> Result<(), DomError> {
    let doc = dom::document()?;
    let ui = Ui::find(&doc)?;
    ui.apply_texts(&EN);
    ui.show(Phase::Loading);

    let page = Rc::new_cyclic(|weak: &Weak<RefCell<Page>>| {
        RefCell::new(Page {
            ui,
            texts: &EN,
            session: None,
            camera: Rc::new(RefCell::new(None)),
            analyzer: None,
            content: Content::Jokes,
            challenge: None,
            problem: None,
            starting: false,
            result_timer: None,
            _buttons: Vec::new(),
            weak: weak.clone(),
        })
    });
    // Replacing an earlier page drops it, which releases its listeners and camera.
    PAGE.with(|p| p.replace(Some(page.clone())));
    let weak = Rc::downgrade(&page);
    install_buttons(&page)?;

    // 1. Config (texts stay English until it names a language).
    let config = match load_config(&root).await {
        Ok(c) => c,
        Err(detail) => {
            with_page(&weak, |p| p.show_problem(Problem::Config, &detail));
            return Ok(());
        }
    };
    // 2. State, return URL and the session; any failure here means no redirect ever.
    let ready = with_page(&weak, |p| p.configure(config)).unwrap_or(false);
    if !ready {
        return Ok(());
    }
    // 3. Models. `data-input-size` on the root overrides the detector size (for tuning).
    let input_size = match root.dataset().get("inputSize") {
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) => n,
            Err(_) => {
                with_page(&weak, |p| {
                    p.show_problem(
                        Problem::Config,
                        &format!("data-input-size is not a number: {v:?}"),
                    )
                });
                return Ok(());
            }
        },
        None => DETECTOR_INPUT_SIZE,
    };
    match load_analyzer(input_size).await {
        Ok(analyzer) => {
            with_page(&weak, |p| {
                p.analyzer = Some(analyzer);
                p.show_start();
            });
        }
        Err(detail) => {
            with_page(&weak, |p| p.show_problem(Problem::Engine, &detail));
        }
    }
    Ok(())
}

fn install_buttons(page: &Rc<RefCell<Page>>) -> Result<(), DomError> {
    let mut p = page
        .try_borrow_mut()
        .map_err(|_| DomError("page busy".into()))?;
    let weak = Rc::downgrade(page);
    let w1 = weak.clone();
    let start = Listener::new(&p.ui.start, "click", move |_| {
        with_page(&w1, |p| p.begin_camera());
    })?;
    let w2 = weak.clone();
    let retry = Listener::new(&p.ui.retry, "click", move |_| {
        with_page(&w2, |p| p.begin_camera());
    })?;
    let w3 = weak.clone();
    let ret = Listener::new(&p.ui.return_btn, "click", move |_| {
        with_page(&w3, |p| p.return_after_problem());
    })?;
    let w4 = weak;
    let play = Listener::new(&p.ui.play, "click", move |_| {
        with_page(&w4, |p| p.play_content());
    })?;
    p._buttons = vec![start, retry, ret, play];
    Ok(())
}

/// The config from the root's `data-config` (JSON), from simple data attributes
/// (`data-return-url`, `data-duration`, `data-lang`, `data-threshold`), or from
/// `config.json`. Returns the message to show on failure.
async fn load_config(root: &HtmlElement) -> Result<Config, String> {
    let json = match config_from_dataset(root) {
        Some(json) => json,
        None => fetch_text(CONFIG_URL)
            .await
            .map_err(|e| format!("could not load {CONFIG_URL}: {e}"))?,
    };
    Config::parse(&json).map_err(|e| e.to_string())
}

fn config_from_dataset(root: &HtmlElement) -> Option<String> {
    let data = root.dataset();
    if let Some(json) = data.get("config") {
        return Some(json);
    }
    let mut obj = serde_json::Map::new();
    if let Some(url) = data.get("returnUrl") {
        obj.insert("returnUrl".into(), url.into());
    }
    obj.get("returnUrl")?;
    for key in ["duration", "threshold"] {
        if let Some(v) = data.get(key) {
            // A non-number is passed on as a string so that Config::parse names the field.
            let value = v
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(serde_json::Value::String(v), serde_json::Value::Number);
            obj.insert(key.into(), value);
        }
    }
    if let Some(lang) = data.get("lang") {
        obj.insert("lang".into(), lang.into());
    }
    Some(serde_json::Value::Object(obj).to_string())
}

async fn fetch_response(url: &str) -> Result<web_sys::Response, String> {
    let w = dom::window().map_err(|e| e.0)?;
    let response = JsFuture::from(w.fetch_with_str(url))
        .await
        .map_err(|e| describe(&e))?
        .dyn_into::<web_sys::Response>()
        .map_err(|_| "fetch did not return a Response".to_owned())?;
    if !response.ok() {
        return Err(format!("HTTP {}", response.status()));
    }
    Ok(response)
}

async fn fetch_text(url: &str) -> Result<String, String> {
    let response = fetch_response(url).await?;
    let text = JsFuture::from(response.text().map_err(|e| describe(&e))?)
        .await
        .map_err(|e| describe(&e))?;
    text.as_string()
        .ok_or_else(|| "the response is not text".to_owned())
}

async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let response = fetch_response(url).await?;
    let buf = JsFuture::from(response.array_buffer().map_err(|e| describe(&e))?)
        .await
        .map_err(|e| describe(&e))?;
    Ok(js_sys::Uint8Array::new(&buf).to_vec())
}

async fn load_analyzer(input_size: usize) -> Result<FaceAnalyzer, String> {
    let detector = fetch_bytes(DETECTOR_URL)
        .await
        .map_err(|e| format!("could not load {DETECTOR_URL}: {e}"))?;
    let expression = fetch_bytes(EXPRESSION_URL)
        .await
        .map_err(|e| format!("could not load {EXPRESSION_URL}: {e}"))?;
    let options = AnalyzerOptions {
        input_size,
        ..AnalyzerOptions::default()
    };
    FaceAnalyzer::new(&detector, &expression, options).map_err(|e| e.to_string())
}

/// Index of the largest box by area: with several faces in view, the one nearest the
/// camera is the user's, and only that one is judged (and classified, which saves time).
pub fn largest_box(boxes: &[BoundingBox]) -> Option<usize> {
    let area = |b: &BoundingBox| b.width * b.height;
    boxes
        .iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| area(a).total_cmp(&area(b)))
        .map(|(i, _)| i)
}

/// Analysed frames per active second, one decimal, for `data-analysis-fps`.
pub fn analysis_fps(frames: u32, elapsed_ms: f64) -> String {
    let fps = if elapsed_ms > 0.0 && elapsed_ms.is_finite() {
        f64::from(frames) * 1000.0 / elapsed_ms
    } else {
        0.0
    };
    format!("{fps:.1}")
}

impl Page {
    /// Applies the config and checks state and return URL. False (after showing the
    /// error screen) when the page must never redirect.
    fn configure(&mut self, config: Config) -> bool {
        self.texts = texts_for(&config.lang);
        self.ui.apply_texts(self.texts);
        self.ui.show(Phase::Loading);

        let search = dom::window()
            .and_then(|w| w.location().search().map_err(DomError::from))
            .unwrap_or_default();
        let params = match web_sys::UrlSearchParams::new_with_str(&search) {
            Ok(p) => p,
            Err(e) => {
                self.show_problem(Problem::State, &describe(&e));
                return false;
            }
        };
        let raw_state = params.get(&config.params.state);
        if let Err(e) = crate::redirect::validate_state(raw_state.as_deref()) {
            self.show_problem(Problem::State, &e.to_string());
            return false;
        }
        let pick = config.return_param().and_then(|name| params.get(name));
        let return_url = match config.resolve_return_url(pick.as_deref()) {
            Ok(u) => u,
            Err(e) => {
                self.show_problem(Problem::Config, &e.to_string());
                return false;
            }
        };
        let target =
            match ReturnTarget::new(&return_url, config.params.clone(), raw_state.as_deref()) {
                Ok(t) => t,
                Err(e) => {
                    self.show_problem(Problem::Config, &e.to_string());
                    return false;
                }
            };
        let verdict = match Verdict::new(config.verdict_config()) {
            Ok(v) => v,
            Err(e) => {
                self.show_problem(Problem::Config, &e.to_string());
                return false;
            }
        };
        let navigator = WebNavigator {
            camera: self.camera.clone(),
        };
        self.session = Some(Session::new(
            verdict,
            PerfClock,
            Redirector::new(target, navigator),
        ));
        // The intro uses whole seconds; durations are checked to lie in 5..=120.
        let secs = config.duration_s.round() as u32;
        set_text(&self.ui.intro, &self.texts.intro_for(secs));
        set_text(&self.ui.countdown, &self.texts.countdown_for(secs));
        self.content = config.content;
        if let Content::Video { video, captions } = &self.content {
            self.prepare_video(video, captions.as_deref());
        }
        true
    }

    /// Sets the content video's source (and captions) so it loads while the user reads.
    fn prepare_video(&self, src: &str, captions: Option<&str>) {
        let v = &self.ui.content_video;
        v.set_src(src);
        v.set_preload("auto");
        if let Some(url) = captions {
            let track = self
                .ui
                .doc
                .create_element("track")
                .ok()
                .and_then(|t| t.dyn_into::<web_sys::HtmlTrackElement>().ok());
            if let Some(track) = track {
                track.set_kind("captions");
                track.set_src(url);
                track.set_srclang(self.texts.lang);
                track.set_label(self.texts.lang);
                track.set_default(true);
                let _ = v.append_child(&track);
            }
        }
    }

    fn show_start(&mut self) {
        self.ui.show(Phase::Start);
        self.ui.start.set_disabled(false);
        focus(&self.ui.start);
    }

    /// Shows the error screen. `detail` goes to the console, and is shown in small print
    /// for problems only an operator can fix (config, engine) or the state message.
    fn show_problem(&mut self, problem: Problem, detail: &str) {
        console_error(&format!(
            "smile-factor: {}: {detail}",
            self.texts.problem(problem)
        ));
        self.challenge = None;
        stop_camera(&self.camera);
        self.ui.selfview.set_src_object(None);
        self.problem = Some(problem);
        set_text(&self.ui.error_message, self.texts.problem(problem));
        let show_detail = matches!(problem, Problem::Config | Problem::Engine | Problem::State);
        set_text(&self.ui.error_detail, if show_detail { detail } else { "" });
        set_hidden(&self.ui.error_detail, !show_detail);
        let can_return = self.session.is_some() && problem.reason().is_some();
        let can_retry = can_return && problem.can_retry();
        set_hidden(&self.ui.retry, !can_retry);
        set_hidden(&self.ui.return_btn, !can_return);
        self.ui.show(Phase::Error);
        if can_retry {
            focus(&self.ui.retry);
        } else if can_return {
            focus(&self.ui.return_btn);
        } else {
            focus(&self.ui.error_screen);
        }
    }

    /// Start (or Try again): starts the camera, then the challenge.
    fn begin_camera(&mut self) {
        if self.starting
            || self.challenge.is_some()
            || self.session.is_none()
            || self.analyzer.is_none()
        {
            return;
        }
        self.starting = true;
        self.problem = None;
        self.ui.start.set_disabled(true);
        self.ui.show(Phase::Loading);
        let weak = self.weak.clone();
        spawn_local(async move {
            let result = camera::start(CAMERA_TIMEOUT_MS).await;
            let handled = with_page(&weak, |p| {
                p.starting = false;
                match result {
                    Ok(camera) => p.begin_challenge(camera),
                    Err(e) => p.show_problem(e.problem, &e.detail),
                }
            });
            // The page is gone (replaced): the camera in `result` was dropped and stopped.
            let _ = handled;
        });
    }

    fn begin_challenge(&mut self, camera: Camera) {
        self.ui.selfview.set_src_object(Some(camera.stream()));
        self.ui.selfview.set_muted(true);
        let self_play = self.ui.selfview.play();
        // An earlier camera (there should be none) is stopped; if the cell were busy the
        // new camera would be dropped here, which stops it too.
        stop_camera(&self.camera);
        if let Ok(mut c) = self.camera.try_borrow_mut() {
            *c = Some(camera);
        }
        match self.build_challenge() {
            Ok(ch) => self.challenge = Some(ch),
            Err(e) => {
                self.show_problem(Problem::Engine, &e.0);
                return;
            }
        }
        // Autoplay of a muted video is allowed; a rejection only costs the self-view.
        if let Ok(p) = self_play {
            spawn_local(async move {
                if let Err(e) = JsFuture::from(p).await {
                    console_error(&format!(
                        "smile-factor: self-view did not play: {}",
                        describe(&e)
                    ));
                }
            });
        }
        match &self.content {
            Content::Jokes => {
                set_hidden(&self.ui.joke, false);
                set_hidden(&self.ui.content_video, true);
            }
            Content::Video { .. } => {
                set_hidden(&self.ui.joke, true);
                set_hidden(&self.ui.content_video, false);
                self.play_content();
            }
        }
        set_hidden(&self.ui.paused, true);
        self.ui.show(Phase::Challenge);
        focus(&self.ui.challenge_screen);
        if let Some(s) = self.session.as_mut() {
            s.start();
        }
        self.update_display();
    }

    fn build_challenge(&mut self) -> Result<Challenge, DomError> {
        let doc = &self.ui.doc;
        let canvas: HtmlCanvasElement = doc
            .create_element("canvas")?
            .dyn_into()
            .map_err(|_| DomError("cannot create a canvas".into()))?;
        canvas.set_width(ANALYSIS_WIDTH);
        canvas.set_height(ANALYSIS_WIDTH * 3 / 4);
        let attrs = web_sys::ContextAttributes2d::new();
        // The frame is read back every time; this keeps the canvas in CPU memory.
        attrs.set_will_read_frequently(true);
        let ctx = context_2d(&canvas, Some(&attrs))?;
        let overlay_ctx = context_2d(&self.ui.overlay, None)?;

        let weak = self.weak.clone();
        let frames = AnimationLoop::start(move || with_page(&weak, |p| p.step()).unwrap_or(false));
        let weak = self.weak.clone();
        let keys = Listener::new(doc, "keydown", move |e| {
            with_page(&weak, |p| p.on_key(&e));
        })?;
        let weak = self.weak.clone();
        let visibility = Listener::new(doc, "visibilitychange", move |_| {
            with_page(&weak, |p| p.on_visibility());
        })?;
        Ok(Challenge {
            _frames: frames,
            _keys: keys,
            _visibility: visibility,
            canvas,
            ctx,
            overlay_ctx,
            last_announced: None,
            joke_offset_ms: (dom::now_ms() * 7.0).rem_euclid(JOKE_CARD_MS * 32.0),
            analyse_ms: 0.0,
        })
    }

    fn play_content(&mut self) {
        let video = self.ui.content_video.clone();
        let play_btn = self.ui.play.clone();
        set_hidden(&play_btn, true);
        match video.play() {
            Ok(promise) => spawn_local(async move {
                // Autoplay with sound may be refused; then the user starts it.
                if JsFuture::from(promise).await.is_err() {
                    set_hidden(&play_btn, false);
                    focus(&play_btn);
                }
            }),
            Err(_) => set_hidden(&play_btn, false),
        }
    }

    /// One animation frame: analyse the current camera frame (if any), feed the verdict,
    /// update the screen. Returns false once the challenge is over.
    fn step(&mut self) -> bool {
        let running = matches!(
            self.session.as_ref().map(|s| s.verdict().state()),
            Some(State::Running)
        );
        if running {
            match self.analyse_frame() {
                Ok(Some(smile)) => {
                    if let Some(s) = self.session.as_mut() {
                        s.frame(smile);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    console_error(&format!("smile-factor: frame analysis failed: {e}"));
                    if let Some(s) = self.session.as_mut() {
                        s.fail(Reason::Error);
                    }
                }
            }
        }
        let outcome = self.session.as_mut().and_then(|s| s.tick().copied());
        if let Some(outcome) = outcome {
            self.finish(outcome);
            return false;
        }
        self.update_display();
        true
    }

    /// `Ok(None)`: no camera frame yet (not counted). `Ok(Some(x))`: a frame was
    /// analysed; `x` is the largest face's happy score, or `None` without a face.
    fn analyse_frame(&mut self) -> Result<Option<Option<f32>>, String> {
        let video = &self.ui.selfview;
        let (vw, vh) = (video.video_width(), video.video_height());
        // HAVE_CURRENT_DATA: a frame can be drawn.
        if video.ready_state() < 2 || vw == 0 || vh == 0 {
            return Ok(None);
        }
        let (Some(ch), Some(analyzer)) = (self.challenge.as_mut(), self.analyzer.as_ref()) else {
            return Ok(None);
        };
        let w = ANALYSIS_WIDTH;
        let h = ((u64::from(w) * u64::from(vh)) / u64::from(vw)).clamp(1, 4 * u64::from(w)) as u32;
        if ch.canvas.height() != h {
            ch.canvas.set_height(h);
            self.ui.overlay.set_width(w);
            self.ui.overlay.set_height(h);
        }
        let (wf, hf) = (f64::from(w), f64::from(h));
        ch.ctx
            .draw_image_with_html_video_element_and_dw_and_dh(video, 0.0, 0.0, wf, hf)
            .map_err(|e| describe(&e))?;
        let data = ch
            .ctx
            .get_image_data(0.0, 0.0, wf, hf)
            .map_err(|e| describe(&e))?
            .data();
        let t0 = dom::now_ms();
        let frame = RgbaFrame::new(&data, w, h).map_err(|e| e.to_string())?;
        let boxes: Vec<BoundingBox> = analyzer
            .detect(&frame)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(b, _score)| b)
            .collect();
        let judged = largest_box(&boxes);
        let happy = match judged.and_then(|i| boxes.get(i)) {
            Some(b) => analyzer
                .classify_box(&frame, b)
                .map_err(|e| e.to_string())?
                .map(|e| e.happy),
            None => None,
        };
        ch.analyse_ms += dom::now_ms() - t0;

        let o = &ch.overlay_ctx;
        o.clear_rect(
            0.0,
            0.0,
            f64::from(self.ui.overlay.width()),
            f64::from(self.ui.overlay.height()),
        );
        for (i, b) in boxes.iter().enumerate() {
            let is_judged = judged == Some(i);
            o.set_line_width(if is_judged { 3.0 } else { 1.0 });
            o.set_stroke_style_str(if is_judged { "#ffcc00" } else { "#ffffff" });
            o.stroke_rect(b.x, b.y, b.width, b.height);
        }
        Ok(Some(happy))
    }

    fn update_display(&mut self) {
        let Some(session) = self.session.as_ref() else {
            return;
        };
        let texts = self.texts;
        let secs = session.remaining_secs();
        set_text(&self.ui.countdown, &texts.countdown_for(secs));
        let smile = session.verdict().current_smile();
        self.ui
            .smile_meter
            .set_value(f64::from(smile.unwrap_or(0.0)));
        set_text(&self.ui.smile_value, &texts.smile_value(smile));
        let elapsed = session.verdict().config().duration_ms - session.remaining_ms();
        if let Some(ch) = self.challenge.as_mut() {
            // Announce every few seconds, not every second: a live region that talks
            // constantly is unusable.
            if secs.is_multiple_of(ANNOUNCE_EVERY_S) && ch.last_announced != Some(secs) && secs > 0
            {
                ch.last_announced = Some(secs);
                set_text(&self.ui.announce, &texts.announce_for(secs));
            }
            if matches!(self.content, Content::Jokes) {
                let joke = texts.joke_at(elapsed + ch.joke_offset_ms, JOKE_CARD_MS);
                if self.ui.joke.text_content().as_deref() != Some(joke) {
                    set_text(&self.ui.joke, joke);
                }
            }
        }
    }

    fn on_key(&mut self, event: &web_sys::Event) {
        let Some(key) = event.dyn_ref::<web_sys::KeyboardEvent>() else {
            return;
        };
        let is_toggle = matches!(key.key().as_str(), " " | "p" | "P" | "Spacebar");
        if !is_toggle || key.alt_key() || key.ctrl_key() || key.meta_key() {
            return;
        }
        // Space would otherwise scroll or press a focused button.
        event.prevent_default();
        if key.repeat() {
            return;
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        match session.verdict().state() {
            State::Running => {
                session.pause();
                set_hidden(&self.ui.paused, false);
                let _ = self.ui.content_video.pause();
            }
            State::Paused => {
                session.resume();
                set_hidden(&self.ui.paused, true);
                if matches!(self.content, Content::Video { .. }) {
                    self.play_content();
                }
            }
            State::NotStarted | State::Decided(_) => {}
        }
    }

    fn on_visibility(&mut self) {
        if self.ui.doc.visibility_state() != web_sys::VisibilityState::Hidden {
            return;
        }
        let outcome = self.session.as_mut().and_then(|s| s.hidden().copied());
        if let Some(outcome) = outcome {
            self.finish(outcome);
        }
    }

    /// Records the outcome for tests, releases camera and listeners, shows the result,
    /// and redirects after a moment.
    fn finish(&mut self, outcome: Outcome) {
        if self.result_timer.is_some() {
            return;
        }
        if let Some(ch) = self.challenge.take() {
            let stats = outcome.stats;
            web_sys::console::info_1(&JsValue::from_str(&format!(
                "smile-factor: {} frames in {:.0} ms active, {:.1} ms per analysis",
                stats.frames_analysed,
                stats.elapsed_ms,
                if stats.frames_analysed > 0 {
                    ch.analyse_ms / f64::from(stats.frames_analysed)
                } else {
                    0.0
                },
            )));
        }
        stop_camera(&self.camera);
        self.ui.selfview.set_src_object(None);
        let _ = self.ui.content_video.pause();
        self.record_outcome(&outcome);
        set_text(&self.ui.result_message, self.texts.result(outcome.reason));
        self.ui.show(Phase::Result);
        focus(&self.ui.result_message);
        let weak = self.weak.clone();
        match Timeout::new(RESULT_SCREEN_MS, move || {
            with_page(&weak, |p| p.redirect());
        }) {
            Ok(t) => self.result_timer = Some(t),
            Err(e) => {
                console_error(&format!("smile-factor: {e}; redirecting now"));
                self.redirect();
            }
        }
    }

    fn record_outcome(&self, outcome: &Outcome) {
        let s = outcome.stats;
        self.ui
            .set_data("framesAnalysed", &s.frames_analysed.to_string());
        self.ui.set_data(
            "analysisFps",
            &analysis_fps(s.frames_analysed, s.elapsed_ms),
        );
        self.ui.set_data(
            "notsmiling",
            if outcome.notsmiling { "true" } else { "false" },
        );
        self.ui
            .set_data("reason", outcome.reason.map_or("", Reason::as_str));
    }

    fn redirect(&mut self) {
        self.challenge = None;
        stop_camera(&self.camera);
        if let Some(session) = self.session.as_mut() {
            // The navigator stops the camera again before `location.replace`.
            session.redirect();
        }
    }

    /// "Return to sign-in" on the error screen: fail with the problem's reason and leave.
    fn return_after_problem(&mut self) {
        let Some(reason) = self.problem.and_then(Problem::reason) else {
            return;
        };
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let outcome = *session.fail(reason);
        self.record_outcome(&outcome);
        self.ui.return_btn.set_disabled(true);
        self.ui.retry.set_disabled(true);
        self.redirect();
    }
}

fn context_2d(
    canvas: &HtmlCanvasElement,
    attrs: Option<&web_sys::ContextAttributes2d>,
) -> Result<CanvasRenderingContext2d, DomError> {
    let ctx = match attrs {
        Some(a) => canvas.get_context_with_context_options("2d", a)?,
        None => canvas.get_context("2d")?,
    };
    ctx.ok_or_else(|| DomError("2d canvas is not available".into()))?
        .dyn_into::<CanvasRenderingContext2d>()
        .map_err(|_| DomError("2d canvas is not available".into()))
}
