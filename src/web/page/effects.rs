//! The browser's side of the challenge's effects: `performance.now()` as the clock, and
//! a navigator that stops the camera before it leaves with `location.replace`.

use std::cell::RefCell;
use std::rc::Rc;

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
