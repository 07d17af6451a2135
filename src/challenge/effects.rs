//! The side effects the challenge rules need, as small traits: the browser implements
//! them in `web`, native tests with fakes.

use url::Url;

/// A source of timestamps in milliseconds (the page uses `performance.now()`).
pub trait Clock {
    /// The current time in milliseconds; only differences matter.
    fn now_ms(&self) -> f64;
}

/// Leaves the page. The web module stops the camera tracks, then calls
/// `location.replace` so the back button does not return to the challenge, or submits a
/// hidden POST form.
pub trait Navigator {
    /// Navigates to `url`.
    fn navigate(&mut self, url: &Url);

    /// Leaves by a form `POST` to `action` with `fields` as its body, so that a token in
    /// them never appears in a URL (history, logs, `Referer`).
    fn post_form(&mut self, action: &Url, fields: &[(&str, &str)]);
}
