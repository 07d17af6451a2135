//! POST requests to the page's own server (the signed mode's verifier): the status and
//! body text come back for the core's rules to judge; only a request that got no answer
//! at all is an error here.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, RequestInit, Response};

use super::dom::{self, describe};

/// An HTTP answer, whatever its status.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// `POST url` with `body` (a string or a `Blob`) as `content_type`. Same-origin requests
/// send the page's cookies by the fetch default; nothing else is added.
pub async fn post(url: &str, content_type: &str, body: &JsValue) -> Result<Answer, String> {
    let window = dom::window().map_err(|e| e.0)?;
    let headers = Headers::new().map_err(|e| describe(&e))?;
    headers
        .set("Content-Type", content_type)
        .map_err(|e| describe(&e))?;
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(body);
    let response: Response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(|e| describe(&e))?
        .dyn_into()
        .map_err(|_| "fetch did not return a Response".to_owned())?;
    let text = JsFuture::from(response.text().map_err(|e| describe(&e))?)
        .await
        .map_err(|e| describe(&e))?;
    Ok(Answer {
        status: response.status(),
        body: text.as_string().unwrap_or_default(),
    })
}
