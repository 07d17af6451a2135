//! The page's UI: the markup rendered once, every element it touches looked up once,
//! the screens (one shown at a time, named in `data-phase`), texts and focus.

use wasm_bindgen::JsCast;
use web_sys::{
    CanvasRenderingContext2d, Document, Element, HtmlButtonElement, HtmlCanvasElement, HtmlElement,
    HtmlMeterElement, HtmlVideoElement,
};

use crate::challenge::content::Texts;

use crate::web::dom::{console_error, describe, set_hidden, set_text, DomError};

/// The challenge's markup; static, every text is set with textContent.
const MARKUP: &str = include_str!("markup.html");

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

/// Every element the page touches, looked up once.
pub(super) struct Ui {
    pub(super) doc: Document,
    /// Carries `data-phase` and the outcome's `data-*`.
    pub(super) status: HtmlElement,
    /// The rendered widget (`div.sf`); carries `lang`.
    pub(super) container: HtmlElement,
    pub(super) whole_page: bool,
    pub(super) loading_screen: HtmlElement,
    pub(super) loading_text: HtmlElement,
    pub(super) start_screen: HtmlElement,
    pub(super) challenge_screen: HtmlElement,
    pub(super) result_screen: HtmlElement,
    pub(super) error_screen: HtmlElement,
    pub(super) title: HtmlElement,
    pub(super) intro: HtmlElement,
    pub(super) privacy: HtmlElement,
    pub(super) keys_hint: HtmlElement,
    pub(super) start: HtmlButtonElement,
    pub(super) countdown: HtmlElement,
    pub(super) announce: HtmlElement,
    /// The just-in-time prompt (signed mode): shown big, with its own countdown, and
    /// announced assertively.
    pub(super) prompt: HtmlElement,
    pub(super) prompt_text: HtmlElement,
    pub(super) prompt_countdown: HtmlElement,
    pub(super) prompt_announce: HtmlElement,
    pub(super) paused: HtmlElement,
    pub(super) joke: HtmlElement,
    pub(super) content_video: HtmlVideoElement,
    pub(super) play: HtmlButtonElement,
    pub(super) selfview: HtmlVideoElement,
    pub(super) overlay: HtmlCanvasElement,
    pub(super) camera_label: HtmlElement,
    pub(super) smile_label: HtmlElement,
    pub(super) smile_meter: HtmlMeterElement,
    pub(super) smile_value: HtmlElement,
    pub(super) result_message: HtmlElement,
    pub(super) redirecting: HtmlElement,
    pub(super) error_title: HtmlElement,
    pub(super) error_message: HtmlElement,
    pub(super) error_detail: HtmlElement,
    pub(super) retry: HtmlButtonElement,
    pub(super) return_btn: HtmlButtonElement,
}

/// The element with `id` inside `root`, cast to `T`; a missing or wrong one names the id.
pub(super) fn find<T: JsCast>(root: &Element, id: &str) -> Result<T, DomError> {
    root.query_selector(&format!("#{id}"))?
        .ok_or_else(|| DomError(format!("the challenge markup has no #{id} element")))?
        .dyn_into::<T>()
        .map_err(|_| DomError(format!("#{id} is not the expected kind of element")))
}

/// Renders the challenge (stylesheet link + markup) as the new content of `into`.
pub(super) fn render(
    doc: &Document,
    into: &web_sys::Node,
    css_url: &str,
) -> Result<HtmlElement, DomError> {
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
    pub(super) fn find(
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
            prompt: by_id("prompt")?,
            prompt_text: by_id("prompt-text")?,
            prompt_countdown: by_id("prompt-countdown")?,
            prompt_announce: by_id("prompt-announce")?,
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
    pub(super) fn apply_texts(&self, t: &Texts) {
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

    pub(super) fn set_data(&self, key: &str, value: &str) {
        if let Err(e) = self.status.dataset().set(key, value) {
            console_error(&format!(
                "smile-factor: cannot set data-{key}: {}",
                describe(&e)
            ));
        }
    }

    /// Shows exactly one screen and records it in `data-phase`.
    pub(super) fn show(&self, phase: Phase) {
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
    pub(super) fn prerender(&self, screen: &HtmlElement) {
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

/// Moves keyboard focus; a failure only costs convenience.
pub(super) fn focus(el: &HtmlElement) {
    let _ = el.focus();
}

/// A canvas outside the document, with its 2d context (`attrs`: e.g. read back often).
pub(super) fn detached_canvas(
    doc: &Document,
    attrs: Option<&web_sys::ContextAttributes2d>,
) -> Result<(HtmlCanvasElement, CanvasRenderingContext2d), DomError> {
    let canvas: HtmlCanvasElement = doc
        .create_element("canvas")?
        .dyn_into()
        .map_err(|_| DomError("cannot create a canvas".into()))?;
    let ctx = context_2d(&canvas, attrs)?;
    Ok((canvas, ctx))
}

pub(super) fn context_2d(
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
