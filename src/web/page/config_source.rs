//! Where the config comes from: the root's `data-*` attributes, `config.json` next to
//! the page, or an embed's options checked against the page config.

use wasm_bindgen_futures::JsFuture;
use web_sys::HtmlElement;

use crate::challenge::config::Config;
use crate::challenge::embed::{EmbedOptions, EmbedPlan};

use crate::web::dom::{self, describe};

/// Config file, relative to the page, used when the root element carries no config (and
/// by an embedded element to check its return URL against the allowlist).
pub const CONFIG_URL: &str = "config.json";

/// The config from the root's `data-config` (JSON), from simple data attributes
/// (`data-return-url`, `data-duration`, `data-lang`, `data-threshold`), or from
/// `config.json`. Returns the message to show on failure.
pub(super) async fn load_config(root: &HtmlElement) -> Result<Config, String> {
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

/// The options checked, with the page config loaded when a return URL must be checked.
pub(super) async fn load_embed_plan(json: &str) -> Result<EmbedPlan, String> {
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

async fn fetch_response(url: &str) -> Result<web_sys::Response, String> {
    let w = dom::window().map_err(|e| e.0)?;
    dom::ok_response(w.fetch_with_str(url)).await
}

async fn fetch_text(url: &str) -> Result<String, String> {
    let response = fetch_response(url).await?;
    let text = JsFuture::from(response.text().map_err(|e| describe(&e))?)
        .await
        .map_err(|e| describe(&e))?;
    text.as_string()
        .ok_or_else(|| "the response is not text".to_owned())
}
