//! The smile-factor challenge UI: screens, the challenge loop and the way back.
//!
//! It runs in two hosts: the whole page (`startPage`, `www/index.html`: config from
//! `config.json`, state from the query, always redirects) and an embedded element (the
//! `<smile-factor>` shadow root or `mount()`: options from attributes, the result goes to
//! a callback, and it redirects only with an allowed return URL).
//!
//! A [`Page`] is held by its owner (a thread-local for the whole page, the JS handle for
//! an element). Event handlers hold only a `Weak` to it and borrow it briefly (never across
//! an `await`), so a handler that fires late finds nothing and does nothing. Everything it
//! registers (listeners, the animation loop, the timer, the inference worker, the camera)
//! is owned by it, so dropping it releases all of them. The camera is shared with the
//! [`WebNavigator`] so every redirect stops it first.
//!
//! Frames are analysed in a worker ([`Engine`]); the main thread only wraps the camera's
//! current frame in a `VideoFrame` and transfers it (or, without WebCodecs, draws it into
//! a small canvas and transfers its pixels), and updates the UI.
//!
//! The DOM contract the browser tests rely on (ids in `markup.html`, `data-*` on `<html>`
//! or on the host element) is listed in the README; screen changes go through [`Ui::show`].

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    CanvasRenderingContext2d, Document, Element, HtmlButtonElement, HtmlCanvasElement, HtmlElement,
    HtmlMeterElement, HtmlVideoElement,
};

use crate::challenge::config::{Config, Content, ReturnUrls};
use crate::challenge::content::{texts_for, Problem, Texts, ANNOUNCE_EVERY_S, EN};
use crate::challenge::effects::{Clock, Navigator};
use crate::challenge::embed::{EmbedOptions, EmbedPlan};
use crate::challenge::outcome::{Outcome, Reason};
use crate::challenge::redirect::{Redirector, ReturnTarget};
use crate::challenge::session::Session;
use crate::challenge::verdict::{State, Verdict};

use super::camera::{self, Camera, CAMERA_TIMEOUT_MS};
use super::dom::{
    self, console_error, describe, has_global, set_hidden, set_text, AnimationLoop, DomError,
    Listener, OwnedFrame, Timeout,
};
use super::engine::{Assets, Engine, EngineEvent, FrameResult};

/// Detector input side. 224 keeps the dev build at ≥ 10 analysed frames per second in
/// headless Chromium on 2 cores; a face filling a webcam frame is still found reliably.
pub const DETECTOR_INPUT_SIZE: usize = 224;
/// Width of the frame handed to the analyser; the height follows the camera's aspect.
pub const ANALYSIS_WIDTH: u32 = 320;
/// How long the result screen stays before the redirect.
pub const RESULT_SCREEN_MS: i32 = 1_000;
/// How long each joke card stays.
pub const JOKE_CARD_MS: f64 = 4_000.0;
/// A frame the worker has not answered after this long means it is stuck: fail closed.
pub const WORKER_TIMEOUT_MS: f64 = 10_000.0;
/// Config file, relative to the page, used when the root element carries no config (and
/// by an embedded element to check its return URL against the allowlist).
pub const CONFIG_URL: &str = "config.json";
/// The challenge's markup; static, every text is set with textContent.
const MARKUP: &str = include_str!("markup.html");
/// Marked when the first frame's result arrives (the benchmark's "first verdict").
pub const FIRST_ANALYSIS_MARK: &str = "smile-factor:first-analysis";

/// How camera frames reach the worker; written to `data-frame-transfer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameTransfer {
    /// A transferred `VideoFrame`, scaled and read back in the worker: the main thread
    /// does no pixel work.
    VideoFrame,
    /// Drawn into a canvas and read back here, the pixels transferred: browsers without
    /// WebCodecs, or after a `VideoFrame` failed.
    Canvas,
}

impl FrameTransfer {
    pub fn as_str(self) -> &'static str {
        match self {
            FrameTransfer::VideoFrame => "video-frame",
            FrameTransfer::Canvas => "canvas",
        }
    }
}

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

/// Where the UI lives and how it talks to its surroundings.
pub enum Host {
    /// The whole page: `data-*` on `<html>`, the document title, keys on the document.
    Page,
    /// An embedded element: `data-*` on the host element, keys only inside the widget,
    /// and the outcome goes to `on_result` (the element turns it into an event).
    Embed {
        host: HtmlElement,
        on_result: js_sys::Function,
    },
}

/// Every element the page touches, looked up once.
struct Ui {
    doc: Document,
    /// Carries `data-phase` and the outcome's `data-*`.
    status: HtmlElement,
    /// The rendered widget (`div.sf`); carries `lang`.
    container: HtmlElement,
    whole_page: bool,
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

/// The element with `id` inside `root`, cast to `T`; a missing or wrong one names the id.
fn find<T: JsCast>(root: &Element, id: &str) -> Result<T, DomError> {
    root.query_selector(&format!("#{id}"))?
        .ok_or_else(|| DomError(format!("the challenge markup has no #{id} element")))?
        .dyn_into::<T>()
        .map_err(|_| DomError(format!("#{id} is not the expected kind of element")))
}

/// Renders the challenge (stylesheet link + markup) as the new content of `into`.
fn render(doc: &Document, into: &web_sys::Node, css_url: &str) -> Result<HtmlElement, DomError> {
    into.set_text_content(None);
    let link = doc.create_element("link")?;
    link.set_attribute("rel", "stylesheet")?;
    link.set_attribute("href", css_url)?;
    let container: HtmlElement = doc
        .create_element("div")?
        .dyn_into()
        .map_err(|_| DomError("cannot create a div".into()))?;
    container.set_class_name("sf");
    container.set_attribute("part", "root")?;
    container.set_inner_html(MARKUP);
    into.append_child(&link)?;
    into.append_child(&container)?;
    Ok(container)
}

impl Ui {
    fn find(
        doc: &Document,
        container: HtmlElement,
        status: HtmlElement,
        whole_page: bool,
    ) -> Result<Self, DomError> {
        let root: &Element = &container;
        let by_id = |id: &str| find::<HtmlElement>(root, id);
        Ok(Self {
            doc: doc.clone(),
            status,
            whole_page,
            loading_screen: by_id("loading-screen")?,
            loading_text: by_id("loading-text")?,
            start_screen: by_id("start-screen")?,
            challenge_screen: by_id("challenge-screen")?,
            result_screen: by_id("result-screen")?,
            error_screen: by_id("error-screen")?,
            title: by_id("title")?,
            intro: by_id("intro")?,
            privacy: by_id("privacy")?,
            keys_hint: by_id("keys-hint")?,
            start: find::<HtmlButtonElement>(root, "start")?,
            countdown: by_id("countdown")?,
            announce: by_id("announce")?,
            paused: by_id("paused")?,
            joke: by_id("joke")?,
            content_video: find::<HtmlVideoElement>(root, "content-video")?,
            play: find::<HtmlButtonElement>(root, "play")?,
            selfview: find::<HtmlVideoElement>(root, "selfview")?,
            overlay: find::<HtmlCanvasElement>(root, "overlay")?,
            camera_label: by_id("camera-label")?,
            smile_label: by_id("smile-label")?,
            smile_meter: find::<HtmlMeterElement>(root, "smile-meter")?,
            smile_value: by_id("smile-value")?,
            result_message: by_id("result-message")?,
            redirecting: by_id("redirecting")?,
            error_title: by_id("error-title")?,
            error_message: by_id("error-message")?,
            error_detail: by_id("error-detail")?,
            retry: find::<HtmlButtonElement>(root, "retry")?,
            return_btn: find::<HtmlButtonElement>(root, "return")?,
            container,
        })
    }

    /// Writes every static text of `t` (all via textContent).
    fn apply_texts(&self, t: &Texts) {
        self.container.set_lang(t.lang);
        if self.whole_page {
            self.doc.set_title(t.title);
        }
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
        if let Err(e) = self.status.dataset().set(key, value) {
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

    /// Styles and lays out a hidden screen once, invisibly, then hides it again. The
    /// first layout of the challenge screen (the media-controls stylesheet, the meter's
    /// shadow tree) took 18-48 ms in a fresh tab, inside the task that starts the
    /// countdown; done while the start screen waits, that task's share drops to 3-12 ms.
    fn prerender(&self, screen: &HtmlElement) {
        if !screen.hidden() {
            return;
        }
        let style = screen.style();
        let _ = style.set_property("visibility", "hidden");
        let _ = style.set_property("position", "absolute");
        screen.set_hidden(false);
        // Reading a layout value forces style and layout now; nothing is painted.
        let _ = screen.offset_width();
        screen.set_hidden(true);
        let _ = style.remove_property("visibility");
        let _ = style.remove_property("position");
    }
}

/// A detached canvas for reading camera frames back on the page.
fn readback_canvas(
    doc: &web_sys::Document,
) -> Result<(HtmlCanvasElement, CanvasRenderingContext2d), DomError> {
    let canvas: HtmlCanvasElement = doc
        .create_element("canvas")?
        .dyn_into()
        .map_err(|_| DomError("cannot create a canvas".into()))?;
    let attrs = web_sys::ContextAttributes2d::new();
    // The frame is read back every time; this keeps the canvas in CPU memory.
    attrs.set_will_read_frequently(true);
    let ctx = context_2d(&canvas, Some(&attrs))?;
    Ok((canvas, ctx))
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
    /// Offscreen canvas the camera frame is scaled into for `getImageData`; made only
    /// when frames cannot go to the worker as `VideoFrame`s.
    readback: Option<(HtmlCanvasElement, CanvasRenderingContext2d)>,
    overlay_ctx: CanvasRenderingContext2d,
    last_announced: Option<u32>,
    /// Worker time per analysed frame, summed, for the console summary.
    analyse_ms: f64,
    /// Frames on which the detector ran (the rest were tracked).
    detect_frames: u32,
    /// Camera frames skipped because the worker was still busy.
    dropped_frames: u32,
}

pub struct Page {
    ui: Ui,
    host: Host,
    assets: Assets,
    texts: &'static Texts,
    /// `None` until the config, state and return URL are known to be good; without it
    /// the page can never redirect.
    session: Option<Session<PerfClock, WebNavigator>>,
    camera: SharedCamera,
    /// The inference worker; `engine_ready` once it has loaded the models.
    engine: Option<Engine>,
    engine_ready: bool,
    /// Why the worker failed before the config was loaded; shown once it is.
    engine_failure: Option<String>,
    /// Decided when the worker is ready.
    frame_transfer: FrameTransfer,
    /// Detector input side for the worker.
    input_size: usize,
    /// The first frame result has been marked for the benchmark.
    first_analysis_marked: bool,
    /// The outcome was handed to the embedding page already.
    reported: bool,
    content: Content,
    challenge: Option<Challenge>,
    /// The problem on the error screen, for "Try again" and "Return to sign-in".
    problem: Option<Problem>,
    /// A camera start is under way; further clicks are ignored.
    starting: bool,
    /// The camera, started while the worker still loads the models; the challenge
    /// begins when the worker is ready.
    waiting_camera: Option<Camera>,
    result_timer: Option<Timeout>,
    /// Renders the challenge screen once, invisibly, while the start screen shows.
    prerender_timer: Option<Timeout>,
    /// Where in the joke cycle the countdown starts; chosen once per page.
    joke_offset_ms: f64,
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

/// Builds a page in `container` (already rendered) and installs its buttons.
fn new_page(
    ui: Ui,
    host: Host,
    assets: Assets,
    input_size: usize,
) -> Result<Rc<RefCell<Page>>, DomError> {
    ui.apply_texts(&EN);
    ui.show(Phase::Loading);
    let page = Rc::new_cyclic(|weak: &Weak<RefCell<Page>>| {
        RefCell::new(Page {
            ui,
            host,
            assets,
            texts: &EN,
            session: None,
            camera: Rc::new(RefCell::new(None)),
            engine: None,
            engine_ready: false,
            engine_failure: None,
            frame_transfer: FrameTransfer::Canvas,
            input_size,
            first_analysis_marked: false,
            reported: false,
            content: Content::Jokes,
            challenge: None,
            problem: None,
            starting: false,
            waiting_camera: None,
            result_timer: None,
            prerender_timer: None,
            joke_offset_ms: (dom::now_ms() * 7.0).rem_euclid(JOKE_CARD_MS * 32.0),
            _buttons: Vec::new(),
            weak: weak.clone(),
        })
    });
    install_buttons(&page)?;
    Ok(page)
}

/// Entry point behind the `startPage` export: the whole page, rendered into `root`.
pub async fn start_page(root: HtmlElement, assets: Assets) -> Result<(), DomError> {
    let doc = dom::document()?;
    // `data-input-size` on the root overrides the detector size (for tuning).
    let input_size = root
        .dataset()
        .get("inputSize")
        .map(|v| v.trim().parse::<usize>().map_err(|_| v));
    let container = render(&doc, &root, &assets.css_url)?;
    let html = doc
        .document_element()
        .ok_or_else(|| DomError("no <html> element".into()))?
        .dyn_into::<HtmlElement>()
        .map_err(|_| DomError("<html> is not an HTML element".into()))?;
    let ui = Ui::find(&doc, container, html, true)?;
    let page = new_page(
        ui,
        Host::Page,
        assets,
        input_size
            .as_ref()
            .and_then(|r| r.as_ref().ok().copied())
            .unwrap_or(DETECTOR_INPUT_SIZE),
    )?;
    // Replacing an earlier page drops it, which releases its listeners and camera.
    PAGE.with(|p| p.replace(Some(page.clone())));
    let weak = Rc::downgrade(&page);
    drop(page);

    if let Some(Err(v)) = input_size {
        with_page(&weak, |p| {
            p.show_problem(
                Problem::Config,
                &format!("data-input-size is not a number: {v:?}"),
            )
        });
        return Ok(());
    }
    // 1. The worker starts loading the models while the config loads.
    if with_page(&weak, |p| p.spawn_engine()) != Some(true) {
        return Ok(());
    }
    // 2. Config (texts stay English until it names a language).
    let config = match load_config(&root).await {
        Ok(c) => c,
        Err(detail) => {
            with_page(&weak, |p| p.show_problem(Problem::Config, &detail));
            return Ok(());
        }
    };
    // 3. State, return URL and the session; any failure here means no redirect ever.
    // 4. The start screen shows while the worker may still load the models.
    with_page(&weak, |p| {
        if p.configure_page(config) {
            p.start_engine();
        }
    });
    Ok(())
}

/// Entry point behind `mountChallenge`: an embedded challenge rendered into `shadow`
/// (the element's shadow root), reporting to `on_result`. The caller owns the page;
/// dropping it releases everything.
pub fn mount(
    shadow: &web_sys::ShadowRoot,
    host: HtmlElement,
    options: &JsValue,
    assets: Assets,
    on_result: js_sys::Function,
) -> Result<Rc<RefCell<Page>>, DomError> {
    let doc = dom::document()?;
    let container = render(&doc, shadow, &assets.css_url)?;
    let ui = Ui::find(&doc, container, host.clone(), false)?;
    let page = new_page(
        ui,
        Host::Embed { host, on_result },
        assets,
        DETECTOR_INPUT_SIZE,
    )?;
    let options = if options.is_undefined() || options.is_null() {
        Ok("{}".to_owned())
    } else {
        js_sys::JSON::stringify(options)
            .map(String::from)
            .map_err(|e| describe(&e))
    };
    let weak = Rc::downgrade(&page);
    // The worker loads the models while the options (and maybe the page config) are checked.
    with_page(&weak, |p| p.spawn_engine());
    spawn_local(async move {
        let plan = match options {
            Ok(json) => load_embed_plan(&json).await,
            Err(e) => Err(format!("invalid smile-factor options: {e}")),
        };
        with_page(&weak, |p| match plan {
            Ok(plan) => {
                if p.configure_embed(plan) {
                    p.start_engine();
                }
            }
            Err(detail) => p.fail_config(&detail),
        });
    });
    Ok(page)
}

/// The options checked, with the page config loaded when a return URL must be checked.
async fn load_embed_plan(json: &str) -> Result<EmbedPlan, String> {
    let options = EmbedOptions::parse(json).map_err(|e| e.to_string())?;
    let plan = if options.needs_page_config() {
        let url = options.config.as_deref().unwrap_or(CONFIG_URL);
        let page_config = fetch_text(url)
            .await
            .map_err(|e| format!("could not load {url}: {e}"))
            .and_then(|json| Config::parse(&json).map_err(|e| format!("{url}: {e}")));
        options.plan(page_config.as_ref().map_err(String::as_str))
    } else {
        options.plan(Err("not needed"))
    };
    plan.map_err(|e| e.to_string())
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
    /// The whole page: applies the config and checks state and return URL from the
    /// query. False (after showing the error screen) when the page must never redirect.
    fn configure_page(&mut self, config: Config) -> bool {
        self.set_language(&config);
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
        if let Err(e) = crate::challenge::redirect::validate_state(raw_state.as_deref()) {
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
        self.begin_session(config, Some(target))
    }

    /// An embedded challenge: the plan is checked already; it has a return target only
    /// with an allowed return URL.
    fn configure_embed(&mut self, plan: EmbedPlan) -> bool {
        self.set_language(&plan.config);
        let target = match &plan.config.return_urls {
            ReturnUrls::Fixed(url) => {
                match ReturnTarget::new(url, plan.config.params.clone(), plan.state.as_deref()) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        self.fail_config(&e.to_string());
                        return false;
                    }
                }
            }
            _ => None,
        };
        set_hidden(&self.ui.redirecting, target.is_none());
        self.begin_session(plan.config, target)
    }

    fn set_language(&mut self, config: &Config) {
        self.texts = texts_for(&config.lang);
        self.ui.apply_texts(self.texts);
        self.ui.show(Phase::Loading);
    }

    /// A config problem: on the error screen, and for an embed straight to the result
    /// callback too (there is no session, so no button can report it later).
    fn fail_config(&mut self, detail: &str) {
        self.show_problem(Problem::Config, detail);
        self.report(None, Some(detail));
    }

    /// Creates the session (redirecting only with a target) and shows the config.
    fn begin_session(&mut self, config: Config, target: Option<ReturnTarget>) -> bool {
        let verdict = match Verdict::new(config.verdict_config()) {
            Ok(v) => v,
            Err(e) => {
                self.fail_config(&e.to_string());
                return false;
            }
        };
        self.session = Some(match target {
            Some(target) => {
                let navigator = WebNavigator {
                    camera: self.camera.clone(),
                };
                Session::new(verdict, PerfClock, Redirector::new(target, navigator))
            }
            None => Session::without_redirect(verdict, PerfClock),
        });
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

    /// Starts the inference worker, which begins loading the models, unless it runs.
    /// Called before the config is loaded, so that both downloads overlap.
    fn spawn_engine(&mut self) -> bool {
        if self.engine.is_some() {
            return true;
        }
        let weak = self.weak.clone();
        let started = Engine::start(&self.assets, self.input_size, move |event| {
            with_page(&weak, |p| p.on_engine(event));
        });
        match started {
            Ok(engine) => {
                self.engine = Some(engine);
                true
            }
            Err(e) => {
                self.engine_failed(e.0);
                false
            }
        }
    }

    /// The config is good: shows the start screen at once. The user can start (and
    /// answer the camera prompt) while the worker still loads the models.
    fn start_engine(&mut self) {
        if let Some(detail) = self.engine_failure.take() {
            self.show_problem(Problem::Engine, &detail);
        } else if self.spawn_engine() {
            self.show_start();
        }
    }

    /// The worker could not start or load the models. Before the config is known the
    /// error waits for it, so that the error screen can offer "Return to sign-in".
    fn engine_failed(&mut self, detail: String) {
        self.engine = None;
        self.engine_ready = false;
        if self.session.is_none() && self.problem.is_none() {
            self.engine_failure = Some(detail);
        } else {
            self.show_problem(Problem::Engine, &detail);
        }
    }

    fn on_engine(&mut self, event: EngineEvent) {
        match event {
            EngineEvent::Ready { video_frames } => {
                self.engine_ready = true;
                self.set_frame_transfer(if video_frames && has_global("VideoFrame") {
                    FrameTransfer::VideoFrame
                } else {
                    FrameTransfer::Canvas
                });
                if let Some(camera) = self.waiting_camera.take() {
                    self.begin_challenge(camera);
                }
            }
            EngineEvent::Failed(detail) => {
                let running = self.challenge.is_some();
                if running {
                    self.engine = None;
                    self.engine_ready = false;
                    console_error(&format!("smile-factor: frame analysis failed: {detail}"));
                    let outcome = self.session.as_mut().map(|s| *s.fail(Reason::Error));
                    if let Some(outcome) = outcome {
                        self.finish(outcome);
                    }
                } else {
                    self.engine_failed(detail);
                }
            }
            EngineEvent::Frame(result) => self.on_frame_result(&result),
        }
    }

    fn set_frame_transfer(&mut self, transfer: FrameTransfer) {
        self.frame_transfer = transfer;
        self.ui.set_data("frameTransfer", transfer.as_str());
    }

    fn show_start(&mut self) {
        self.ui.show(Phase::Start);
        self.ui.start.set_disabled(false);
        focus(&self.ui.start);
        // In a task of its own, so that neither this one nor a click grows by it.
        let weak = self.weak.clone();
        self.prerender_timer = Timeout::new(0, move || {
            with_page(&weak, |p| {
                // With the first joke in place, its text is shaped now too.
                if matches!(p.content, Content::Jokes) {
                    set_text(&p.ui.joke, p.texts.joke_at(p.joke_offset_ms, JOKE_CARD_MS));
                }
                p.ui.prerender(&p.ui.challenge_screen);
            });
        })
        .ok();
    }

    /// Shows the error screen. `detail` goes to the console, and is shown in small print
    /// for problems only an operator can fix (config, engine) or the state message.
    fn show_problem(&mut self, problem: Problem, detail: &str) {
        console_error(&format!(
            "smile-factor: {}: {detail}",
            self.texts.problem(problem)
        ));
        self.challenge = None;
        self.waiting_camera = None; // dropping it stops it
        stop_camera(&self.camera);
        self.ui.selfview.set_src_object(None);
        if !problem.can_retry() {
            // No challenge can follow (only "Return to sign-in"): stop loading models.
            self.engine = None;
            self.engine_ready = false;
        }
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

    /// Start (or Try again): starts the camera, then the challenge once the worker is
    /// ready too.
    fn begin_camera(&mut self) {
        if self.starting
            || self.challenge.is_some()
            || self.waiting_camera.is_some()
            || self.session.is_none()
            || self.engine.is_none()
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
                    Ok(camera) => p.on_camera(camera),
                    Err(e) => p.show_problem(e.problem, &e.detail),
                }
            });
            // The page is gone (replaced): the camera in `result` was dropped and stopped.
            let _ = handled;
        });
    }

    /// The camera is on: begin, or wait for the worker (the loading screen stays).
    fn on_camera(&mut self, camera: Camera) {
        // The worker failed meanwhile (the error screen shows): dropping stops the camera.
        if self.engine.is_none() || self.problem.is_some() {
            return;
        }
        // Playing from now, while the screen still says loading, the self-view has a
        // frame to analyse as soon as the challenge begins.
        self.ui.selfview.set_src_object(Some(camera.stream()));
        self.ui.selfview.set_muted(true);
        // Autoplay of a muted video is allowed; a rejection only costs the self-view.
        if let Ok(p) = self.ui.selfview.play() {
            spawn_local(async move {
                if let Err(e) = JsFuture::from(p).await {
                    console_error(&format!(
                        "smile-factor: self-view did not play: {}",
                        describe(&e)
                    ));
                }
            });
        }
        if self.engine_ready {
            self.begin_challenge(camera);
        } else {
            self.waiting_camera = Some(camera);
        }
    }

    fn begin_challenge(&mut self, camera: Camera) {
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
        if let Some(s) = self.session.as_mut() {
            s.start();
        }
        // Texts first: the layout that focus() forces then covers them, and the first
        // frame of the countdown only paints.
        self.update_display();
        self.ui.show(Phase::Challenge);
        focus(&self.ui.challenge_screen);
    }

    fn build_challenge(&mut self) -> Result<Challenge, DomError> {
        let doc = &self.ui.doc;
        let overlay_ctx = context_2d(&self.ui.overlay, None)?;

        let weak = self.weak.clone();
        let frames = AnimationLoop::start(move || with_page(&weak, |p| p.step()).unwrap_or(false));
        let weak = self.weak.clone();
        // An embedded widget must not take Space from the rest of the login page.
        let key_target: &web_sys::EventTarget = if self.ui.whole_page {
            doc
        } else {
            &self.ui.container
        };
        let keys = Listener::new(key_target, "keydown", move |e| {
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
            readback: None,
            overlay_ctx,
            last_announced: None,
            analyse_ms: 0.0,
            detect_frames: 0,
            dropped_frames: 0,
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

    /// One animation frame: hand the current camera frame to the worker (unless it is
    /// still busy: then this frame is dropped), end the challenge when decided, update
    /// the screen. Returns false once the challenge is over.
    fn step(&mut self) -> bool {
        let running = matches!(
            self.session.as_ref().map(|s| s.verdict().state()),
            Some(State::Running)
        );
        if running {
            if let Err(e) = self.send_frame() {
                console_error(&format!("smile-factor: frame analysis failed: {e}"));
                if let Some(s) = self.session.as_mut() {
                    s.fail(Reason::Error);
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

    /// Hands the camera frame to the worker, to be analysed at `ANALYSIS_WIDTH`.
    fn send_frame(&mut self) -> Result<(), String> {
        let now = dom::now_ms();
        let (Some(ch), Some(engine)) = (self.challenge.as_mut(), self.engine.as_mut()) else {
            return Ok(());
        };
        match engine.busy_for_ms(now) {
            Some(ms) if ms > WORKER_TIMEOUT_MS => {
                return Err(format!("the worker has not answered for {ms:.0} ms"))
            }
            Some(_) => {
                ch.dropped_frames += 1;
                return Ok(());
            }
            None => {}
        }
        let video = &self.ui.selfview;
        let (vw, vh) = (video.video_width(), video.video_height());
        // HAVE_CURRENT_DATA: a frame can be drawn.
        if video.ready_state() < 2 || vw == 0 || vh == 0 {
            return Ok(());
        }
        let w = ANALYSIS_WIDTH;
        let h = ((u64::from(w) * u64::from(vh)) / u64::from(vw)).clamp(1, 4 * u64::from(w)) as u32;
        if self.ui.overlay.width() != w || self.ui.overlay.height() != h {
            self.ui.overlay.set_width(w);
            self.ui.overlay.set_height(h);
        }
        if self.frame_transfer == FrameTransfer::VideoFrame {
            match OwnedFrame::from_video(video).and_then(|f| engine.send_video_frame(&f, w, h, now))
            {
                Ok(()) => return Ok(()),
                // Not fatal: the canvas path needs nothing the failed call did.
                Err(e) => console_error(&format!(
                    "smile-factor: cannot pass VideoFrames to the worker ({e}); reading frames back on the page instead"
                )),
            }
            self.set_frame_transfer(FrameTransfer::Canvas);
            return self.send_frame();
        }
        let (canvas, ctx) = match ch.readback.as_ref() {
            Some(r) => r,
            None => ch
                .readback
                .insert(readback_canvas(&self.ui.doc).map_err(|e| e.0)?),
        };
        if canvas.width() != w || canvas.height() != h {
            canvas.set_width(w);
            canvas.set_height(h);
        }
        let (wf, hf) = (f64::from(w), f64::from(h));
        ctx.draw_image_with_html_video_element_and_dw_and_dh(video, 0.0, 0.0, wf, hf)
            .map_err(|e| describe(&e))?;
        let image = ctx
            .get_image_data(0.0, 0.0, wf, hf)
            .map_err(|e| describe(&e))?;
        engine.send_frame(&image, now).map_err(|e| e.0)
    }

    /// A frame's result from the worker: feeds the verdict and draws the boxes. Results
    /// that arrive while paused or after the end are not counted.
    fn on_frame_result(&mut self, result: &FrameResult) {
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        if !engine.accept(result) {
            return;
        }
        let running = matches!(
            self.session.as_ref().map(|s| s.verdict().state()),
            Some(State::Running)
        );
        let Some(ch) = self.challenge.as_mut() else {
            return;
        };
        if !running {
            return;
        }
        if let Some(s) = self.session.as_mut() {
            s.frame(result.happy);
        }
        ch.analyse_ms += result.ms;
        ch.detect_frames += u32::from(result.detected);
        if !self.first_analysis_marked {
            self.first_analysis_marked = true;
            if let Some(perf) = web_sys::window().and_then(|w| w.performance()) {
                let _ = perf.mark(FIRST_ANALYSIS_MARK);
            }
        }
        let o = &ch.overlay_ctx;
        o.clear_rect(
            0.0,
            0.0,
            f64::from(self.ui.overlay.width()),
            f64::from(self.ui.overlay.height()),
        );
        for (i, [x, y, w, h]) in result.boxes.iter().copied().enumerate() {
            let is_judged = result.judged == Some(i);
            o.set_line_width(if is_judged { 3.0 } else { 1.0 });
            o.set_stroke_style_str(if is_judged { "#ffcc00" } else { "#ffffff" });
            o.stroke_rect(x, y, w, h);
        }
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
                let joke = texts.joke_at(elapsed + self.joke_offset_ms, JOKE_CARD_MS);
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
                if let Some(engine) = self.engine.as_ref() {
                    engine.reset_tracking();
                }
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
            let per = |x: f64| {
                if stats.frames_analysed > 0 {
                    x / f64::from(stats.frames_analysed)
                } else {
                    0.0
                }
            };
            web_sys::console::info_1(&JsValue::from_str(&format!(
                "smile-factor: {} frames in {:.0} ms active, {:.1} ms per analysis in the worker, \
                 {} with the detector, {} camera frames dropped while the worker was busy",
                stats.frames_analysed,
                stats.elapsed_ms,
                per(ch.analyse_ms),
                ch.detect_frames,
                ch.dropped_frames,
            )));
        }
        // The worker is done; terminating it frees its memory at once.
        self.engine = None;
        self.engine_ready = false;
        stop_camera(&self.camera);
        self.ui.selfview.set_src_object(None);
        let _ = self.ui.content_video.pause();
        self.record_outcome(&outcome);
        self.report(Some(&outcome), None);
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

    /// Hands the outcome (or, without one, the config error) to an embedding page, once.
    fn report(&mut self, outcome: Option<&Outcome>, message: Option<&str>) {
        let Host::Embed { on_result, .. } = &self.host else {
            return;
        };
        if self.reported {
            return;
        }
        self.reported = true;
        let detail = ResultDetail::new(outcome, message);
        let serializer = serde_wasm_bindgen::Serializer::new().serialize_missing_as_null(true);
        let called = detail
            .serialize(&serializer)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                on_result
                    .call1(&JsValue::NULL, &v)
                    .map_err(|e| describe(&e))
            });
        if let Err(e) = called {
            console_error(&format!("smile-factor: the result handler failed: {e}"));
        }
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
        self.report(Some(&outcome), None);
        self.ui.return_btn.set_disabled(true);
        self.ui.retry.set_disabled(true);
        self.redirect();
    }
}

/// The `detail` of the `smile-factor-result` event and the value `mount()` resolves to.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultDetail<'a> {
    notsmiling: bool,
    reason: Option<&'static str>,
    frames_analysed: u32,
    face_seen_ratio: f64,
    max_smile_score: f32,
    /// Only for a config error: what is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

impl<'a> ResultDetail<'a> {
    /// Without an outcome the challenge never ran: a failure with reason `error`.
    fn new(outcome: Option<&Outcome>, message: Option<&'a str>) -> Self {
        match outcome {
            Some(o) => Self {
                notsmiling: o.notsmiling,
                reason: o.reason.map(Reason::as_str),
                frames_analysed: o.stats.frames_analysed,
                face_seen_ratio: o.stats.face_seen_ratio,
                max_smile_score: o.stats.max_smile_score,
                message,
            },
            None => Self {
                notsmiling: false,
                reason: Some(Reason::Error.as_str()),
                frames_analysed: 0,
                face_seen_ratio: 0.0,
                max_smile_score: 0.0,
                message,
            },
        }
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
