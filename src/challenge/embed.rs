//! Settings of an embedded challenge: the `<smile-factor>` element's attributes or the
//! options of `mount()`, checked into a [`Config`] plus the state to send back.
//!
//! Without `returnUrl` the challenge never navigates; the embedding page gets the result
//! as an event. With `returnUrl` it redirects like the hosted page, so the same rules
//! apply: the URL must be on the page's allowlist (a config file the query cannot
//! reach) and the state must be valid. Anything else fails closed with a message.
//!
//! The embed always decides on the device: the signed mode (`"verify": true`)
//! is the hosted page's only, so a `verify` option is refused with a message, and a page
//! config with `"verify": true` lends the embed only its allowlist and parameter names.

use serde::Deserialize;
use thiserror::Error;
use url::Url;

use crate::challenge::config::{Config, ConfigError, ReturnUrls};
use crate::challenge::redirect::{parse_return_url, validate_state, ReturnUrlError, StateError};

/// The options as JS gives them. Attributes arrive as strings, `mount()` options as
/// numbers; both are accepted for the numeric fields.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmbedOptions {
    /// The login state to send back with the redirect; required with `return_url`.
    pub state: Option<String>,
    /// Where to redirect after the verdict; must be allowed by the page config.
    pub return_url: Option<String>,
    /// Countdown in seconds.
    pub duration: Option<serde_json::Value>,
    /// Smile threshold, 0..1.
    pub threshold: Option<serde_json::Value>,
    /// Frames analysed per second while no smile is near (the config's `analysisFps`).
    pub analysis_fps: Option<serde_json::Value>,
    /// `"jokes"` or the URL of a video to play.
    pub content: Option<String>,
    /// Language tag for the texts.
    pub lang: Option<String>,
    /// URL of the page config holding the return-URL allowlist (default `config.json`).
    pub config: Option<String>,
    /// Not supported: present only to refuse it with a clear message.
    pub verify: Option<serde_json::Value>,
}

/// Why an embedded challenge cannot run.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EmbedError {
    /// Not an options object, or an unknown option (serde's message names it).
    #[error("invalid smile-factor options: {0}")]
    Options(String),
    /// A setting is out of range or malformed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `returnUrl` does not parse or is not https.
    #[error("return-url is not usable: {0}")]
    ReturnUrl(#[from] ReturnUrlError),
    /// `returnUrl` is fine but the page config does not list it.
    #[error("return-url {0} is not on the page's allowlist (returnUrl/returnUrls in its config)")]
    NotAllowed(String),
    /// `returnUrl` is set but the page has no config to check it against.
    #[error("return-url needs the page config with its allowlist: {0}")]
    NoPageConfig(String),
    /// The state to send back is missing or unusable.
    #[error(transparent)]
    State(#[from] StateError),
    /// `verify` was given: the embedded challenge has no signed mode.
    #[error("the verify option is only available on the hosted page; an embedded challenge decides on the device")]
    VerifyUnsupported,
}

/// A checked embedded challenge.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedPlan {
    /// Settings; `return_urls` is [`ReturnUrls::Fixed`] with a return URL, else `None`.
    pub config: Config,
    /// The state to send back (only with a return URL).
    pub state: Option<String>,
}

impl EmbedOptions {
    /// Parses the options object (as JSON).
    pub fn parse(json: &str) -> Result<EmbedOptions, EmbedError> {
        serde_json::from_str(json).map_err(|e| EmbedError::Options(e.to_string()))
    }

    /// Whether the page config must be loaded (only to check a return URL).
    pub fn needs_page_config(&self) -> bool {
        self.return_url.is_some()
    }

    /// Checks the options. `page_config` is the page's own config (its allowlist and
    /// parameter names), or the reason it could not be loaded; it is only consulted
    /// when a return URL is set.
    pub fn plan(&self, page_config: Result<&Config, &str>) -> Result<EmbedPlan, EmbedError> {
        if self.verify.is_some() {
            return Err(EmbedError::VerifyUnsupported);
        }
        let mut obj = serde_json::Map::new();
        for (key, value) in [
            ("duration", &self.duration),
            ("threshold", &self.threshold),
            ("analysisFps", &self.analysis_fps),
        ] {
            if let Some(v) = value {
                obj.insert(key.into(), number(key, v)?.into());
            }
        }
        if let Some(content) = &self.content {
            let value = if content.trim() == "jokes" {
                serde_json::Value::from("jokes")
            } else {
                serde_json::json!({ "video": content })
            };
            obj.insert("content".into(), value);
        }
        if let Some(lang) = &self.lang {
            obj.insert("lang".into(), lang.as_str().into());
        }
        let mut config = Config::parse_embedded(&serde_json::Value::Object(obj).to_string())?;

        let Some(raw_url) = &self.return_url else {
            return Ok(EmbedPlan {
                config,
                state: None,
            });
        };
        let url: Url = parse_return_url(raw_url.trim())?;
        let page = page_config.map_err(|e| EmbedError::NoPageConfig(e.to_owned()))?;
        if !page.allows_return_to(&url) {
            return Err(EmbedError::NotAllowed(url.to_string()));
        }
        let state = validate_state(self.state.as_deref())?.to_owned();
        config.return_urls = ReturnUrls::Fixed(url);
        config.params = page.params.clone();
        Ok(EmbedPlan {
            config,
            state: Some(state),
        })
    }
}

/// A number, or a string holding one (attributes are strings).
fn number(field: &str, v: &serde_json::Value) -> Result<f64, ConfigError> {
    let parsed = match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    parsed
        .filter(|n| n.is_finite())
        .ok_or_else(|| ConfigError::Invalid {
            field: field.to_owned(),
            reason: format!("must be a number, found {v}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::config::Content;

    fn page() -> Config {
        Config::parse(r#"{"returnUrls": {"a": "https://a.test", "b": "https://b.test/x"}}"#)
            .expect("valid page config")
    }

    fn plan(json: &str) -> Result<EmbedPlan, EmbedError> {
        let page = page();
        EmbedOptions::parse(json)?.plan(Ok(&page))
    }

    #[test]
    fn no_return_url_means_no_redirect_and_no_state_needed() {
        let p = plan(r#"{"duration": "7", "threshold": 0.6}"#).expect("valid");
        assert_eq!(p.config.return_urls, ReturnUrls::None);
        assert_eq!(p.state, None);
        assert_eq!(p.config.duration_s, 7.0);
        assert_eq!(p.config.threshold, 0.6);
        assert_eq!(p.config.content, Content::Jokes);
    }

    #[test]
    fn allowed_return_url_needs_a_valid_state() {
        let p = plan(r#"{"returnUrl": "https://b.test/x", "state": "s 1"}"#).expect("valid");
        assert_eq!(
            p.config.return_urls,
            ReturnUrls::Fixed(Url::parse("https://b.test/x").expect("url"))
        );
        assert_eq!(p.state.as_deref(), Some("s 1"));
        // Trailing slash or not, it is the same URL.
        assert!(plan(r#"{"returnUrl": "https://a.test/", "state": "s"}"#).is_ok());
        assert!(matches!(
            plan(r#"{"returnUrl": "https://a.test"}"#),
            Err(EmbedError::State(_))
        ));
    }

    #[test]
    fn return_url_off_the_allowlist_is_refused() {
        for url in [
            "https://evil.test",
            "https://a.test/other",
            "https://a.test.evil.test",
        ] {
            let json = format!(r#"{{"returnUrl": "{url}", "state": "s"}}"#);
            assert!(
                matches!(plan(&json), Err(EmbedError::NotAllowed(_))),
                "{url} must be refused"
            );
        }
        assert!(matches!(
            plan(r#"{"returnUrl": "javascript:alert(1)", "state": "s"}"#),
            Err(EmbedError::ReturnUrl(_))
        ));
    }

    #[test]
    fn return_url_without_a_page_config_fails_closed() {
        let opts = EmbedOptions::parse(r#"{"returnUrl": "https://a.test", "state": "s"}"#)
            .expect("parses");
        assert!(opts.needs_page_config());
        assert!(matches!(
            opts.plan(Err("HTTP 404")),
            Err(EmbedError::NoPageConfig(m)) if m == "HTTP 404"
        ));
        // Without a return URL the page config is not needed at all.
        let opts = EmbedOptions::parse("{}").expect("parses");
        assert!(!opts.needs_page_config());
        assert!(opts.plan(Err("HTTP 404")).is_ok());
    }

    #[test]
    fn bad_values_name_the_field() {
        let p = plan(r#"{"analysisFps": "20"}"#).expect("an attribute's string");
        assert_eq!(p.config.analysis_fps, 20.0);
        let p = plan(r#"{"analysisFps": 60}"#).expect("a mount() number");
        assert_eq!(p.config.analysis_fps, 60.0);
        let e = plan(r#"{"analysisFps": 2}"#).expect_err("below the bounds");
        assert!(e.to_string().contains("analysisFps"), "{e}");
        let e = plan(r#"{"duration": "soon"}"#).expect_err("not a number");
        assert!(e.to_string().contains("duration"), "{e}");
        let e = plan(r#"{"threshold": 2}"#).expect_err("out of range");
        assert!(e.to_string().contains("threshold"), "{e}");
        let e = plan(r#"{"colour": "red"}"#).expect_err("unknown option");
        assert!(e.to_string().contains("colour"), "{e}");
        let e = plan(r#"{"content": "javascript:alert(1)"}"#).expect_err("bad video url");
        assert!(e.to_string().contains("content"), "{e}");
    }

    #[test]
    fn the_embed_stays_on_the_device() {
        assert_eq!(
            plan(r#"{"verify": true}"#).expect_err("verify"),
            EmbedError::VerifyUnsupported
        );
        assert_eq!(
            plan(r#"{"verify": false}"#).expect_err("verify"),
            EmbedError::VerifyUnsupported
        );
        // A signed hosted page's config only lends its allowlist.
        let signed = Config::parse(r#"{"returnUrl": "https://a.test", "verify": true}"#)
            .expect("page config");
        let p = EmbedOptions::parse(r#"{"returnUrl": "https://a.test", "state": "s"}"#)
            .and_then(|o| o.plan(Ok(&signed)))
            .expect("plan");
        assert!(!p.config.verify);
    }

    #[test]
    fn content_may_name_a_video() {
        let p = plan(r#"{"content": "media/funny.mp4"}"#).expect("valid");
        assert_eq!(
            p.config.content,
            Content::Video {
                video: "media/funny.mp4".into(),
                captions: None
            }
        );
    }
}
