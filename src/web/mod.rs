//! Browser glue: every `#[wasm_bindgen]` export lives here, and only here.
//! Compiled for wasm32 only; the core it wraps (analyzer, tracker, verdict, config,
//! embed, redirect, content) is tested natively.
//!
//! Pages do not call these directly: `js/smile-factor.js` (the package entry) compiles
//! the module once, resolves the asset URLs and offers `startPage`, `mount` and the
//! `<smile-factor>` element on top of them. The exports:
//!
//! - `startPage(root, assets)`: the whole hosted page (`www/index.html`);
//! - `mountChallenge(shadowRoot, host, options, assets, onResult)`: an embedded
//!   challenge; returns a [`ChallengeHandle`] whose `destroy()` releases everything;
//! - `workerMain(init)`: the inference worker's side (`js/worker.js`);
//! - `FaceAnalyzer`: the face pipeline alone, for pages that drive it from JS.
//!
//! `assets` is `{module, worker, detector, expression, css}`: the compiled
//! `WebAssembly.Module` and the URLs of the worker script, both models and the stylesheet.

mod analyzer;
pub mod camera;
pub mod dom;
pub mod engine;
pub mod http;
pub mod page;
pub mod worker;

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;

pub use analyzer::{WebFaceAnalyzer, WebFaceTracker};

/// Runs once when the module is instantiated (on the page and in the worker).
#[wasm_bindgen(start)]
pub fn start() {
    // A panic then shows its message in the console instead of "unreachable".
    console_error_panic_hook::set_once();
}

fn js_error(e: dom::DomError) -> JsError {
    dom::console_error(&format!("smile-factor: {e}"));
    JsError::new(&e.0)
}

/// `startPage(root, assets)`: runs the smile-factor page, rendered into `root`.
/// `root` may carry the config as `data-config` (JSON) or as `data-return-url`,
/// `data-duration`, `data-lang`, `data-threshold`; otherwise `config.json` next to the
/// page is used. Problems the user can see (config, state, camera, models) end on the
/// error screen and resolve normally; it rejects only if the assets are unusable.
#[wasm_bindgen(js_name = startPage)]
pub async fn start_page(root: web_sys::HtmlElement, assets: JsValue) -> Result<(), JsError> {
    let assets = engine::Assets::from_js(&assets).map_err(js_error)?;
    page::start_page(root, assets).await.map_err(js_error)
}

/// A running embedded challenge. `destroy()` (or dropping it) stops the camera, the
/// worker and every listener and timer; a late event then finds nothing.
#[wasm_bindgen]
pub struct ChallengeHandle {
    page: Option<Rc<RefCell<page::Page>>>,
}

#[wasm_bindgen]
impl ChallengeHandle {
    /// Releases everything; calling it again does nothing.
    pub fn destroy(&mut self) {
        // If the page is busy (destroy called from inside its own result callback), the
        // handler that borrowed it holds the last reference and drops it on return.
        self.page.take();
    }
}

/// `mountChallenge(shadowRoot, host, options, assets, onResult)`: renders an embedded
/// challenge into `shadowRoot`. `options` is `{state?, returnUrl?, duration?,
/// threshold?, content?, lang?, config?}`; `onResult(detail)` is called once with
/// `{notsmiling, reason, framesAnalysed, faceSeenRatio, maxSmileScore}` (plus `message`
/// when the options are unusable). Throws only if the assets or the DOM are unusable.
#[wasm_bindgen(js_name = mountChallenge)]
pub fn mount_challenge(
    shadow_root: web_sys::ShadowRoot,
    host: web_sys::HtmlElement,
    options: JsValue,
    assets: JsValue,
    on_result: js_sys::Function,
) -> Result<ChallengeHandle, JsError> {
    let assets = engine::Assets::from_js(&assets).map_err(js_error)?;
    let page = page::mount(&shadow_root, host, &options, assets, on_result).map_err(js_error)?;
    Ok(ChallengeHandle { page: Some(page) })
}
