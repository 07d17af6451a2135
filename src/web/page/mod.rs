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
//! `WebNavigator` so every redirect stops it first.
//!
//! Frames are analysed in a worker (`Engine`); the main thread only wraps the camera's
//! current frame in a `VideoFrame` and transfers it (or, without WebCodecs, draws it into
//! a small canvas and transfers its pixels), and updates the UI.
//!
//! The DOM contract the browser tests rely on (ids in `markup.html`, `data-*` on `<html>`
//! or on the host element) is listed in the README; screen changes go through `Ui::show`.
//!
//! This file holds the [`Page`] itself, its set-up and the worker's lifecycle; the rest
//! is split by concern, each file adding its own `impl Page` block:
//! - `hosted` and `embedded`: the two hosts' entry points and their configuration;
//! - `config_source`: where the config comes from (data attributes, `config.json`);
//! - `ui`: the markup, the elements, the screens;
//! - `challenge_loop`: camera start, the per-frame loop, keys and visibility;
//! - `result`: the result screen, the `data-*` record and the redirect;
//! - `effects`: the browser's clock and navigator for the core's traits;
//! - `verify`: the signed mode, where the page's origin decides from a few face crops.

mod challenge_loop;
mod config_source;
mod effects;
mod embedded;
mod hosted;
mod result;
mod ui;
mod verify;

pub use challenge_loop::analysis_fps;
pub use embedded::mount;
pub use hosted::start_page;

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use wasm_bindgen::JsCast;
use web_sys::HtmlElement;

use crate::challenge::config::{Config, Content};
use crate::challenge::content::{texts_for, Problem, Texts, EN};
use crate::challenge::outcome::Reason;
use crate::challenge::pacing::DEFAULT_ANALYSIS_FPS;
use crate::challenge::prompt::Mode;
use crate::challenge::redirect::{Redirector, ReturnTarget};
use crate::challenge::session::Session;
use crate::challenge::verdict::Verdict;

use crate::web::camera::Camera;
use crate::web::dom::{
    self, console_error, has_global, set_hidden, set_text, DomError, Listener, Timeout,
};
use crate::web::engine::{Assets, Engine, EngineEvent};

use challenge_loop::{Challenge, FrameTransfer, JOKE_CARD_MS};
use effects::{stop_camera, PerfClock, SharedCamera, WebNavigator};
use ui::{focus, Phase, Ui};
use verify::Verifier;

/// Detector input side. 224 keeps the dev build at ≥ 10 analysed frames per second in
/// headless Chromium on 2 cores; a face filling a webcam frame is still found reliably.
pub const DETECTOR_INPUT_SIZE: usize = 224;

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
    /// The config's `analysisFps`: each countdown's pacer starts from it.
    analysis_fps: f64,
    /// The config's mode, for the texts.
    pub(super) mode: Mode,
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
    /// The signed mode's verifier (`"verify": true`); `None` decides on the device.
    verifier: Option<Verifier>,
    /// The buttons' listeners, alive as long as the page.
    _buttons: Vec<Listener>,
    weak: Weak<RefCell<Page>>,
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
            analysis_fps: DEFAULT_ANALYSIS_FPS,
            mode: Mode::default(),
            challenge: None,
            problem: None,
            starting: false,
            waiting_camera: None,
            result_timer: None,
            prerender_timer: None,
            joke_offset_ms: (dom::now_ms() * 7.0).rem_euclid(JOKE_CARD_MS * 32.0),
            verifier: None,
            _buttons: Vec::new(),
            weak: weak.clone(),
        })
    });
    install_buttons(&page)?;
    Ok(page)
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

impl Page {
    pub(super) fn set_language(&mut self, config: &Config) {
        self.texts = texts_for(&config.lang);
        self.ui.apply_texts(self.texts);
        self.ui.show(Phase::Loading);
    }

    /// A config problem: on the error screen, and for an embed straight to the result
    /// callback too (there is no session, so no button can report it later).
    pub(super) fn fail_config(&mut self, detail: &str) {
        self.show_problem(Problem::Config, detail);
        self.report(None, Some(detail));
    }

    /// Creates the session (redirecting only with a target) and shows the config.
    pub(super) fn begin_session(&mut self, config: Config, target: Option<ReturnTarget>) -> bool {
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
                // Signed: a pass goes back only as the verifier's token.
                let redirector = if config.verify {
                    Redirector::signed(target, navigator)
                } else {
                    Redirector::new(target, navigator)
                };
                Session::new(verdict, PerfClock, redirector)
            }
            None => Session::without_redirect(verdict, PerfClock),
        });
        // The intro uses whole seconds; durations are checked to lie in 5..=120.
        let secs = config.duration_s.round() as u32;
        set_text(&self.ui.intro, &self.texts.intro_in(config.mode, secs));
        self.mode = config.mode;
        set_text(&self.ui.countdown, &self.texts.countdown_for(secs));
        self.content = config.content;
        self.analysis_fps = config.analysis_fps;
        if let Content::Video { video, captions } = &self.content {
            self.prepare_video(video, captions.as_deref());
        }
        true
    }

    /// Sets the content video's source (and captions) so it loads while the user reads.
    pub(super) fn prepare_video(&self, src: &str, captions: Option<&str>) {
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
    pub(super) fn spawn_engine(&mut self) -> bool {
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
    pub(super) fn start_engine(&mut self) {
        if let Some(detail) = self.engine_failure.take() {
            self.show_problem(Problem::Engine, &detail);
        } else if self.spawn_engine() {
            self.show_start();
        }
    }

    /// The worker could not start or load the models. Before the config is known the
    /// error waits for it, so that the error screen can offer "Return to sign-in".
    pub(super) fn engine_failed(&mut self, detail: String) {
        self.engine = None;
        self.engine_ready = false;
        if self.session.is_none() && self.problem.is_none() {
            self.engine_failure = Some(detail);
        } else {
            self.show_problem(Problem::Engine, &detail);
        }
    }

    pub(super) fn on_engine(&mut self, event: EngineEvent) {
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

    pub(super) fn set_frame_transfer(&mut self, transfer: FrameTransfer) {
        self.frame_transfer = transfer;
        self.ui.set_data("frameTransfer", transfer.as_str());
    }

    pub(super) fn show_start(&mut self) {
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
    pub(super) fn show_problem(&mut self, problem: Problem, detail: &str) {
        console_error(&format!(
            "smile-factor: {}: {detail}",
            self.texts.problem(problem)
        ));
        self.challenge = None;
        self.abort_verify();
        self.waiting_camera = None; // dropping it stops it
        stop_camera(&self.camera);
        self.ui.selfview.set_src_object(None);
        let retry = problem.can_retry() && self.verify_allows_retry();
        if !retry {
            // No challenge can follow (only "Return to sign-in"): stop loading models.
            self.engine = None;
            self.engine_ready = false;
        }
        self.problem = Some(problem);
        set_text(&self.ui.error_message, self.texts.problem(problem));
        let show_detail = matches!(
            problem,
            Problem::Config | Problem::Engine | Problem::State | Problem::Verifier
        );
        set_text(&self.ui.error_detail, if show_detail { detail } else { "" });
        set_hidden(&self.ui.error_detail, !show_detail);
        let can_return = self.session.is_some() && problem.reason().is_some();
        let can_retry = can_return && retry;
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
}
