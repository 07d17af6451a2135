//! The hosted page (`startPage`, `www/index.html`): config from the root element or
//! `config.json`, state and return URL from the page's query (and in the signed mode the
//! session token); it always returns to the identity provider.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use web_sys::HtmlElement;

use crate::challenge::config::Config;
use crate::challenge::content::Problem;
use crate::challenge::redirect::ReturnTarget;

use crate::web::dom::{self, describe, DomError};
use crate::web::engine::Assets;

use super::config_source::load_config;
use super::ui::{render, Ui};
use super::{new_page, with_page, Host, Page, DETECTOR_INPUT_SIZE};

thread_local! {
    static PAGE: RefCell<Option<Rc<RefCell<Page>>>> = const { RefCell::new(None) };
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

impl Page {
    /// The whole page: applies the config and checks state and return URL from the
    /// query. False (after showing the error screen) when the page must never redirect.
    pub(super) fn configure_page(&mut self, config: Config) -> bool {
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
        let state = match crate::challenge::redirect::validate_state(raw_state.as_deref()) {
            Ok(s) => s.to_owned(),
            Err(e) => {
                self.show_problem(Problem::State, &e.to_string());
                return false;
            }
        };
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
        // The signed mode needs its session token too; without one, no session at all.
        if !self.configure_verify(&config, &params, &state) {
            return false;
        }
        self.begin_session(config, Some(target))
    }
}
