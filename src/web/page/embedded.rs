//! The embedded challenge (`<smile-factor>` or `mount()`): options from attributes, the
//! result to a callback, and a redirect only with a return URL the page config allows.

use std::cell::RefCell;
use std::rc::Rc;

use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlElement;

use crate::challenge::config::ReturnUrls;
use crate::challenge::embed::EmbedPlan;
use crate::challenge::outcome::{Outcome, Reason};
use crate::challenge::redirect::ReturnTarget;

use crate::web::dom::{self, console_error, describe, set_hidden, DomError};
use crate::web::engine::Assets;

use super::config_source::load_embed_plan;
use super::ui::{render, Ui};
use super::{new_page, with_page, Host, Page, DETECTOR_INPUT_SIZE};

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

impl Page {
    /// An embedded challenge: the plan is checked already; it has a return target only
    /// with an allowed return URL.
    pub(super) fn configure_embed(&mut self, plan: EmbedPlan) -> bool {
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

    /// Hands the outcome (or, without one, the config error) to an embedding page, once.
    pub(super) fn report(&mut self, outcome: Option<&Outcome>, message: Option<&str>) {
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
