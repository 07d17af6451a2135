//! The browser's side of the challenge's effects: `performance.now()` as the clock, and
//! a navigator that stops the camera before it leaves with `location.replace` or, for
//! the signed mode's token, a hidden POST form.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use web_sys::{HtmlFormElement, HtmlInputElement};

use crate::challenge::effects::{Clock, Navigator};

use crate::web::camera::Camera;
use crate::web::dom::{self, console_error, DomError};

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
    pub(super) camera: SharedCamera,
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

    fn post_form(&mut self, action: &url::Url, fields: &[(&str, &str)]) {
        stop_camera(&self.camera);
        if let Err(e) = submit_form(action, fields) {
            console_error(&format!("smile-factor: could not leave the page: {e}"));
        }
    }
}

/// Builds `<form method="post" action=..>` with one hidden input per field, hidden and
/// outside the challenge's markup, and submits it: the values travel in the body only.
fn submit_form(action: &url::Url, fields: &[(&str, &str)]) -> Result<(), DomError> {
    let doc = dom::document()?;
    let form: HtmlFormElement = doc
        .create_element("form")?
        .dyn_into()
        .map_err(|_| DomError("cannot create a form".into()))?;
    form.set_method("post");
    form.set_action(action.as_str());
    form.set_hidden(true);
    for (name, value) in fields {
        let input: HtmlInputElement = doc
            .create_element("input")?
            .dyn_into()
            .map_err(|_| DomError("cannot create an input".into()))?;
        input.set_type("hidden");
        input.set_name(name);
        input.set_value(value);
        form.append_child(&input)?;
    }
    let parent: web_sys::Element = match doc.body() {
        Some(body) => body.into(),
        None => doc
            .document_element()
            .ok_or_else(|| DomError("no <html> element".into()))?,
    };
    parent.append_child(&form)?;
    form.submit()?;
    Ok(())
}

/// Stops and forgets the camera, if any (dropping [`Camera`] stops its tracks).
pub(super) fn stop_camera(camera: &SharedCamera) {
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
