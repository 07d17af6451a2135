//! Browser glue: every `#[wasm_bindgen]` export lives here, and only here.
//! Compiled for wasm32 only; the core it wraps (analyzer, verdict, config, redirect,
//! content) is tested natively.
//!
//! Two exports:
//!
//! ```js
//! import init, { startPage, FaceAnalyzer } from './pkg/smile_factor.js';
//! await init();
//! // The whole smile-factor page (www/index.html): config, state, camera, challenge,
//! // verdict and redirect. Resolves once the start screen (or an error screen) shows.
//! await startPage(document.getElementById('app'));
//!
//! // Or just the face pipeline:
//! const analyzer = new FaceAnalyzer(detectorBytes, expressionBytes, { inputSize: 320 });
//! const faces = analyzer.analyze(imageData.data, imageData.width, imageData.height);
//! // [{ box: {x, y, width, height}, score, expressions: {neutral, happy, ...} }]
//! ```

mod analyzer;
pub mod camera;
pub mod dom;
pub mod page;

use wasm_bindgen::prelude::*;

pub use analyzer::WebFaceAnalyzer;

/// Runs once when the module is instantiated.
#[wasm_bindgen(start)]
pub fn start() {
    // A panic then shows its message in the console instead of "unreachable".
    console_error_panic_hook::set_once();
}

/// `startPage(root)`: runs the smile-factor page inside the markup of `www/index.html`.
/// `root` may carry the config as `data-config` (JSON) or as `data-return-url`,
/// `data-duration`, `data-lang`, `data-threshold`; otherwise `config.json` next to the
/// page is used. Problems the user can see (config, state, camera, models) end on the
/// error screen and resolve normally; it rejects only if the page markup is broken.
#[wasm_bindgen(js_name = startPage)]
pub async fn start_page(root: web_sys::HtmlElement) -> Result<(), JsError> {
    page::start_page(root).await.map_err(|e| {
        dom::console_error(&format!("smile-factor: {e}"));
        JsError::new(&e.0)
    })
}
