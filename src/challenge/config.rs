//! The page configuration: JSON from a config file next to the page (or from a data
//! attribute holding the same JSON), checked once at load.
//!
//! The return URL never comes from the page's query string: it is either fixed here
//! (`returnUrl`), or the query may only pick one key of an allowlist (`returnUrls`).
//!
//! ```json
//! { "returnUrls": { "prod": "https://tenant.auth0.com" }, "returnParam": "return",
//!   "duration": 15, "threshold": 0.5, "content": "jokes",
//!   "params": { "state": "state", "notsmiling": "notsmiling", "reason": "reason" },
//!   "lang": "en", "holdMs": 300, "minFaceRatio": 0.8, "analysisFps": 15, "verify": false }
//! ```
//!
//! `"verify": true` switches the hosted page to the signed mode (see
//! [`crate::challenge::verify`]): a verifier on the page's own origin decides from a few
//! face crops and signs the verdict. Only the hosted page has it; an embedded challenge
//! always decides on the device.
//!
//! Long only with its unit tests (a third of the file): one schema, checked field by field.

use std::collections::BTreeMap;

use serde::Deserialize;
use thiserror::Error;
use url::Url;

use crate::challenge::pacing::{DEFAULT_ANALYSIS_FPS, MAX_ANALYSIS_FPS, MIN_ANALYSIS_FPS};
use crate::challenge::prompt::Mode;
use crate::challenge::redirect::{parse_return_url, ParamNames, ReturnUrlError};
use crate::challenge::verdict::{
    VerdictConfig, DEFAULT_DURATION_MS, DEFAULT_HOLD_MS, DEFAULT_MIN_FACE_RATIO, DEFAULT_THRESHOLD,
    MAX_DURATION_MS, MAX_HOLD_MS, MIN_DURATION_MS,
};

/// Default name of the query parameter that picks a `returnUrls` key.
pub const DEFAULT_RETURN_PARAM: &str = "return";
/// Default page language.
pub const DEFAULT_LANG: &str = "en";

/// How many characters of an unknown return key an error message repeats.
const MAX_KEY_IN_MESSAGE: usize = 64;

/// An unusable config, or a query that picks no allowed return URL.
/// The page shows the message and logs it to the console.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// Not JSON, wrong types, or an unknown field (serde's message names it).
    #[error("the config is invalid: {0}")]
    Json(String),
    /// Neither `returnUrl` nor `returnUrls`.
    #[error("the config needs \"returnUrl\" (one fixed URL) or \"returnUrls\" (an allowlist)")]
    NoReturnUrl,
    /// Both `returnUrl` and `returnUrls`.
    #[error("the config has both \"returnUrl\" and \"returnUrls\"; keep one")]
    BothReturnUrls,
    /// A return URL fails the checks of [`crate::challenge::redirect::validate_return_url`].
    #[error("{field} is not a usable return URL: {source}")]
    ReturnUrl {
        /// Which entry, e.g. `returnUrls."prod"`.
        field: String,
        /// What is wrong with it.
        source: ReturnUrlError,
    },
    /// A number outside its range.
    #[error("\"{field}\" must be {expected}, found {found}")]
    OutOfRange {
        /// JSON field name.
        field: &'static str,
        /// The allowed range, in words.
        expected: &'static str,
        /// The value found.
        found: String,
    },
    /// Any other invalid value.
    #[error("\"{field}\" is invalid: {reason}")]
    Invalid {
        /// JSON field name (dotted for nested ones).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The page URL lacks the parameter that picks a return URL (and there are several).
    #[error("the page URL has no \"{param}\" parameter to pick the return URL")]
    MissingReturnKey {
        /// The parameter name (`returnParam`).
        param: String,
    },
    /// The page URL picks a key that is not in `returnUrls`.
    #[error("the page URL's \"{param}\" parameter names no allowed return URL: {key:?}")]
    UnknownReturnKey {
        /// The parameter name (`returnParam`).
        param: String,
        /// The value given, cut to a few dozen characters.
        key: String,
    },
}

/// Where the page may return to.
#[derive(Debug, Clone, PartialEq)]
pub enum ReturnUrls {
    /// Always this URL (`returnUrl`).
    Fixed(Url),
    /// The page URL's `param` picks one key of `urls` (`returnUrls`, `returnParam`).
    Allowlist {
        /// Query parameter that holds the key.
        param: String,
        /// Allowed return URLs by key.
        urls: BTreeMap<String, Url>,
    },
    /// No redirect: an embedded challenge whose page takes the result as an event.
    /// Only [`Config::parse_embedded`] produces this.
    None,
}

/// What plays during the countdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// The built-in joke cards.
    Jokes,
    /// A video, with optional captions (WebVTT); URLs may be relative to the page.
    Video {
        /// Video URL.
        video: String,
        /// Captions URL, if any.
        captions: Option<String>,
    },
}

/// A checked page configuration; build it with [`Config::parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the page may return to.
    pub return_urls: ReturnUrls,
    /// Countdown in seconds (5..=120).
    pub duration_s: f64,
    /// Smile threshold (0 < t < 1).
    pub threshold: f32,
    /// Smile hold time in milliseconds.
    pub hold_ms: f64,
    /// Share of frames that must show a face.
    pub min_face_ratio: f64,
    /// Camera frames analysed per second while no smile is near (5..=60; 60 is every
    /// frame the worker can take). See [`crate::challenge::pacing`].
    pub analysis_fps: f64,
    /// What plays during the countdown.
    pub content: Content,
    /// Query parameter names of the continue URL.
    pub params: ParamNames,
    /// Page language tag, e.g. `en` or `pt-BR`.
    pub lang: String,
    /// The signed mode: the page's origin runs the verifier, which gets a few face crops,
    /// decides, and signs the verdict that the page posts back. Default false (everything
    /// stays on the device). Never set for an embedded challenge.
    pub verify: bool,
    /// `straight` (a smile fails; the default) or `smile` (a held smile passes).
    pub mode: Mode,
}

/// The JSON as written; every field optional so that missing ones get clear errors.
#[derive(Deserialize)]
#[serde(rename = "config", rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    return_url: Option<String>,
    return_urls: Option<BTreeMap<String, String>>,
    return_param: Option<String>,
    duration: Option<f64>,
    threshold: Option<f64>,
    // A `Value` so that a wrong shape gets our message, not serde's "untagged" one.
    content: Option<serde_json::Value>,
    params: Option<ParamNames>,
    lang: Option<String>,
    hold_ms: Option<f64>,
    min_face_ratio: Option<f64>,
    analysis_fps: Option<f64>,
    verify: Option<bool>,
    mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVideo {
    video: String,
    #[serde(default)]
    captions: Option<String>,
}

/// Same as [`Config::parse`].
pub fn parse(json: &str) -> Result<Config, ConfigError> {
    Config::parse(json)
}

impl Config {
    /// Parses and checks the config JSON. Unknown fields are errors (typo safety).
    pub fn parse(json: &str) -> Result<Config, ConfigError> {
        Self::parse_with(json, true)
    }

    /// As [`Config::parse`], but a config without any return URL is valid and gives
    /// [`ReturnUrls::None`]: the settings of an embedded challenge.
    pub fn parse_embedded(json: &str) -> Result<Config, ConfigError> {
        Self::parse_with(json, false)
    }

    fn parse_with(json: &str, needs_return: bool) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            serde_json::from_str(json).map_err(|e| ConfigError::Json(e.to_string()))?;

        let params = raw.params.unwrap_or_default();
        check_params(&params)?;
        let return_urls = if !needs_return && raw.return_url.is_none() && raw.return_urls.is_none()
        {
            ReturnUrls::None
        } else {
            parse_return_urls(raw.return_url, raw.return_urls, raw.return_param, &params)?
        };

        let duration_s = raw.duration.unwrap_or(DEFAULT_DURATION_MS / 1000.0);
        if !(MIN_DURATION_MS / 1000.0..=MAX_DURATION_MS / 1000.0).contains(&duration_s) {
            return Err(out_of_range(
                "duration",
                "between 5 and 120 (seconds)",
                duration_s,
            ));
        }
        let threshold = raw.threshold.map_or(DEFAULT_THRESHOLD, |t| t as f32);
        // Checked after the cast: 0.999999999 would round to 1.0 as f32.
        if !(threshold > 0.0 && threshold < 1.0) {
            let found = raw.threshold.unwrap_or(f64::from(threshold));
            return Err(out_of_range("threshold", "strictly between 0 and 1", found));
        }
        let hold_ms = raw.hold_ms.unwrap_or(DEFAULT_HOLD_MS);
        if !(0.0..=MAX_HOLD_MS).contains(&hold_ms) {
            return Err(out_of_range(
                "holdMs",
                "between 0 and 5000 (milliseconds)",
                hold_ms,
            ));
        }
        let min_face_ratio = raw.min_face_ratio.unwrap_or(DEFAULT_MIN_FACE_RATIO);
        if !(0.0..=1.0).contains(&min_face_ratio) {
            return Err(out_of_range(
                "minFaceRatio",
                "between 0 and 1",
                min_face_ratio,
            ));
        }

        let analysis_fps = raw.analysis_fps.unwrap_or(DEFAULT_ANALYSIS_FPS);
        if !(MIN_ANALYSIS_FPS..=MAX_ANALYSIS_FPS).contains(&analysis_fps) {
            return Err(out_of_range(
                "analysisFps",
                "between 5 and 60 (frames per second)",
                analysis_fps,
            ));
        }

        let content = parse_content(raw.content)?;
        let lang = raw.lang.unwrap_or_else(|| DEFAULT_LANG.to_owned());
        check_lang(&lang)?;

        let verify = raw.verify.unwrap_or(false);
        // The embed has no verifier protocol (yet): it stays on the device.
        if verify && !needs_return {
            return Err(invalid(
                "verify",
                "is only available on the hosted page; an embedded challenge decides on the device",
            ));
        }

        let mode = match raw.mode.as_deref() {
            None => Mode::default(),
            Some(m) => Mode::parse(m)
                .ok_or_else(|| invalid("mode", "must be \"straight\" or \"smile\""))?,
        };

        let config = Config {
            return_urls,
            duration_s,
            threshold,
            hold_ms,
            min_face_ratio,
            analysis_fps,
            content,
            params,
            lang,
            verify,
            mode,
        };
        // The checks above mirror the verdict's; this keeps them from drifting apart.
        config
            .verdict_config()
            .validate()
            .map_err(|e| ConfigError::Invalid {
                field: "config".to_owned(),
                reason: e.to_string(),
            })?;
        Ok(config)
    }

    /// The query parameter the page should read to pick a return URL, if any.
    pub fn return_param(&self) -> Option<&str> {
        match &self.return_urls {
            ReturnUrls::Fixed(_) | ReturnUrls::None => None,
            ReturnUrls::Allowlist { param, .. } => Some(param),
        }
    }

    /// Whether `url` is one this config allows returning to (compared as parsed URLs,
    /// so `https://t.test` and `https://t.test/` are the same).
    pub fn allows_return_to(&self, url: &Url) -> bool {
        match &self.return_urls {
            ReturnUrls::Fixed(fixed) => fixed == url,
            ReturnUrls::Allowlist { urls, .. } => urls.values().any(|u| u == url),
            ReturnUrls::None => false,
        }
    }

    /// The return URL. `query_pick` is the value of [`Config::return_param`] in the page
    /// URL: it may only name a key of the allowlist, never a URL. With a fixed
    /// `returnUrl` it is ignored. With an allowlist of one entry it may be absent.
    pub fn resolve_return_url(&self, query_pick: Option<&str>) -> Result<Url, ConfigError> {
        match &self.return_urls {
            ReturnUrls::Fixed(url) => Ok(url.clone()),
            ReturnUrls::None => Err(ConfigError::NoReturnUrl),
            ReturnUrls::Allowlist { param, urls } => match query_pick {
                Some(key) => urls
                    .get(key)
                    .cloned()
                    .ok_or_else(|| ConfigError::UnknownReturnKey {
                        param: param.clone(),
                        key: key.chars().take(MAX_KEY_IN_MESSAGE).collect(),
                    }),
                None => match (urls.len(), urls.values().next()) {
                    (1, Some(only)) => Ok(only.clone()),
                    _ => Err(ConfigError::MissingReturnKey {
                        param: param.clone(),
                    }),
                },
            },
        }
    }

    /// The verdict's tuning from this config.
    pub fn verdict_config(&self) -> VerdictConfig {
        VerdictConfig {
            duration_ms: self.duration_s * 1000.0,
            threshold: self.threshold,
            hold_ms: self.hold_ms,
            min_face_ratio: self.min_face_ratio,
            mode: self.mode,
        }
    }
}

fn out_of_range(field: &'static str, expected: &'static str, found: f64) -> ConfigError {
    ConfigError::OutOfRange {
        field,
        expected,
        found: found.to_string(),
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A query parameter name: non-empty, no control characters.
fn check_name(field: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_params(p: &ParamNames) -> Result<(), ConfigError> {
    check_name("params.state", &p.state)?;
    check_name("params.notsmiling", &p.notsmiling)?;
    check_name("params.reason", &p.reason)?;
    if p.state == p.notsmiling || p.state == p.reason || p.notsmiling == p.reason {
        return Err(invalid("params", "the three names must differ"));
    }
    Ok(())
}

fn parse_return_urls(
    fixed: Option<String>,
    allowlist: Option<BTreeMap<String, String>>,
    return_param: Option<String>,
    params: &ParamNames,
) -> Result<ReturnUrls, ConfigError> {
    match (fixed, allowlist) {
        (Some(_), Some(_)) => Err(ConfigError::BothReturnUrls),
        (None, None) => Err(ConfigError::NoReturnUrl),
        (Some(raw), None) => {
            if return_param.is_some() {
                return Err(invalid(
                    "returnParam",
                    "only applies with \"returnUrls\"; a fixed \"returnUrl\" is never picked",
                ));
            }
            let url = parse_return_url(&raw).map_err(|source| ConfigError::ReturnUrl {
                field: "returnUrl".to_owned(),
                source,
            })?;
            Ok(ReturnUrls::Fixed(url))
        }
        (None, Some(raw_urls)) => {
            if raw_urls.is_empty() {
                return Err(invalid("returnUrls", "must list at least one URL"));
            }
            let param = return_param.unwrap_or_else(|| DEFAULT_RETURN_PARAM.to_owned());
            check_name("returnParam", &param)?;
            // The page reads both from its own URL; one name cannot carry both.
            if param == params.state {
                return Err(invalid(
                    "returnParam",
                    "must differ from the state parameter",
                ));
            }
            let mut urls = BTreeMap::new();
            for (key, raw) in raw_urls {
                if key.is_empty() {
                    return Err(invalid("returnUrls", "keys must not be empty"));
                }
                let url = parse_return_url(&raw).map_err(|source| ConfigError::ReturnUrl {
                    field: format!("returnUrls.{key:?}"),
                    source,
                })?;
                urls.insert(key, url);
            }
            Ok(ReturnUrls::Allowlist { param, urls })
        }
    }
}

const CONTENT_SHAPE: &str =
    "must be \"jokes\" or {\"video\": \"<url>\", \"captions\": \"<url>\"} (captions optional)";

fn parse_content(value: Option<serde_json::Value>) -> Result<Content, ConfigError> {
    use serde_json::Value;
    match value {
        None | Some(Value::Null) => Ok(Content::Jokes),
        Some(Value::String(s)) if s == "jokes" => Ok(Content::Jokes),
        Some(object @ Value::Object(_)) => {
            let raw: RawVideo = serde_json::from_value(object)
                .map_err(|e| invalid("content", format!("{e}; it {CONTENT_SHAPE}")))?;
            check_media_url("content.video", &raw.video)?;
            if let Some(captions) = &raw.captions {
                check_media_url("content.captions", captions)?;
            }
            Ok(Content::Video {
                video: raw.video,
                captions: raw.captions,
            })
        }
        Some(_) => Err(invalid("content", CONTENT_SHAPE)),
    }
}

/// Media may be relative to the page; absolute ones must be http(s), not `javascript:`.
fn check_media_url(field: &str, raw: &str) -> Result<(), ConfigError> {
    if raw.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    match Url::parse(raw) {
        Ok(url) if matches!(url.scheme(), "https" | "http") => Ok(()),
        Ok(url) => Err(invalid(
            field,
            format!("must be an http(s) or relative URL, not {}:", url.scheme()),
        )),
        Err(url::ParseError::RelativeUrlWithoutBase) => Ok(()),
        Err(e) => Err(invalid(field, e.to_string())),
    }
}

/// A BCP 47-shaped tag (letters, digits, hyphens); which languages exist is the page's job.
fn check_lang(lang: &str) -> Result<(), ConfigError> {
    let shaped = !lang.is_empty()
        && lang.len() <= 35
        && lang.split('-').all(|part| {
            !part.is_empty() && part.len() <= 8 && part.chars().all(|c| c.is_ascii_alphanumeric())
        });
    if shaped {
        Ok(())
    } else {
        Err(invalid(
            "lang",
            format!("{lang:?} is not a language tag like \"en\" or \"pt-BR\""),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(json: &str) -> Config {
        match Config::parse(json) {
            Ok(c) => c,
            Err(e) => panic!("{json}: {e}"),
        }
    }

    fn parse_err(json: &str) -> ConfigError {
        match Config::parse(json) {
            Ok(c) => panic!("{json} parsed: {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse_ok(r#"{"returnUrl": "https://tenant.auth0.com"}"#);
        assert_eq!(c.duration_s, 15.0);
        assert_eq!(c.threshold, DEFAULT_THRESHOLD);
        assert_eq!(c.hold_ms, 300.0);
        assert_eq!(c.min_face_ratio, 0.8);
        assert_eq!(c.analysis_fps, DEFAULT_ANALYSIS_FPS);
        assert_eq!(c.content, Content::Jokes);
        assert_eq!(c.params, ParamNames::default());
        assert_eq!(c.lang, "en");
        assert_eq!(c.return_param(), None);
        assert_eq!(c.verdict_config(), VerdictConfig::default());
        assert!(!c.verify);
    }

    #[test]
    fn mode_is_straight_by_default_smile_on_request_and_nothing_else() {
        let c = parse_ok(r#"{"returnUrl": "https://tenant.auth0.com"}"#);
        assert_eq!(c.mode, Mode::Straight);
        let c = parse_ok(r#"{"returnUrl": "https://tenant.auth0.com", "mode": "smile"}"#);
        assert_eq!(c.mode, Mode::Smile);
        assert_eq!(c.verdict_config().mode, Mode::Smile);
        for bad in [r#""Smile""#, r#""laugh""#, r#""""#] {
            let e = parse_err(&format!(
                r#"{{"returnUrl": "https://tenant.auth0.com", "mode": {bad}}}"#
            ));
            assert!(
                matches!(&e, ConfigError::Invalid { field, .. } if field == "mode"),
                "{e}"
            );
        }
    }

    #[test]
    fn verify_is_opt_in_and_hosted_only() {
        let c = parse_ok(r#"{"returnUrl": "https://tenant.auth0.com", "verify": true}"#);
        assert!(c.verify);
        let c = parse_ok(r#"{"returnUrl": "https://tenant.auth0.com", "verify": false}"#);
        assert!(!c.verify);
        let e = parse_err(r#"{"returnUrl": "https://tenant.auth0.com", "verify": "yes"}"#);
        assert!(matches!(e, ConfigError::Json(_)), "{e}");
        let e = Config::parse_embedded(r#"{"verify": true}"#).expect_err("embed");
        assert!(
            matches!(&e, ConfigError::Invalid { field, .. } if field == "verify"),
            "{e}"
        );
        assert!(
            !Config::parse_embedded(r#"{"verify": false}"#)
                .expect("embed")
                .verify
        );
    }

    #[test]
    fn full_config() {
        let c = parse_ok(
            r#"{
              "returnUrls": {"prod": "https://tenant.auth0.com", "dev": "http://localhost:3000/"},
              "returnParam": "to",
              "duration": 30, "threshold": 0.7, "holdMs": 500, "minFaceRatio": 0.9,
              "analysisFps": 24.5,
              "content": {"video": "media/clip.mp4", "captions": "media/clip.vtt"},
              "params": {"state": "s", "notsmiling": "ok"},
              "lang": "pt-BR"
            }"#,
        );
        assert_eq!(c.return_param(), Some("to"));
        assert_eq!(c.analysis_fps, 24.5);
        assert_eq!(
            c.content,
            Content::Video {
                video: "media/clip.mp4".into(),
                captions: Some("media/clip.vtt".into())
            }
        );
        assert_eq!(c.params.state, "s");
        assert_eq!(c.params.reason, "reason");
        let v = c.verdict_config();
        assert_eq!(v.duration_ms, 30_000.0);
        assert_eq!(v.threshold, 0.7);
        assert_eq!(v.hold_ms, 500.0);
        assert_eq!(v.min_face_ratio, 0.9);
        assert_eq!(
            c.resolve_return_url(Some("dev")).expect("dev").as_str(),
            "http://localhost:3000/"
        );
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = parse_err(r#"{"returnUrl": "https://x.test", "durration": 10}"#);
        assert!(matches!(e, ConfigError::Json(_)));
        assert!(e.to_string().contains("unknown field `durration`"), "{e}");
        let e = parse_err(r#"{"returnUrl": "https://x.test", "params": {"stat": "x"}}"#);
        assert!(e.to_string().contains("unknown field `stat`"), "{e}");
        let e = parse_err(r#"{"returnUrl": "https://x.test", "content": {"vidoe": "a.mp4"}}"#);
        assert!(e.to_string().contains("vidoe"), "{e}");
    }

    #[test]
    fn not_json_or_wrong_types() {
        for bad in [
            "",
            "[]",
            "null",
            "{",
            r#"{"returnUrl": 5}"#,
            r#"{"returnUrl": "https://x.test", "duration": "15"}"#,
        ] {
            assert!(matches!(parse_err(bad), ConfigError::Json(_)), "{bad}");
        }
    }

    #[test]
    fn return_url_presence() {
        assert_eq!(parse_err("{}"), ConfigError::NoReturnUrl);
        assert_eq!(
            parse_err(r#"{"returnUrl": "https://a.test", "returnUrls": {"a": "https://a.test"}}"#),
            ConfigError::BothReturnUrls
        );
        assert!(matches!(
            parse_err(r#"{"returnUrls": {}}"#),
            ConfigError::Invalid { .. }
        ));
        assert!(matches!(
            parse_err(r#"{"returnUrl": "https://a.test", "returnParam": "to"}"#),
            ConfigError::Invalid { .. }
        ));
        assert!(matches!(
            parse_err(r#"{"returnUrls": {"": "https://a.test"}}"#),
            ConfigError::Invalid { .. }
        ));
        assert!(matches!(
            parse_err(r#"{"returnUrls": {"a": "https://a.test"}, "returnParam": "state"}"#),
            ConfigError::Invalid { .. }
        ));
    }

    #[test]
    fn return_urls_are_checked_at_load() {
        for bad in [
            "http://tenant.auth0.com",
            "https://u:p@tenant.auth0.com",
            "https://tenant.auth0.com/#x",
            "https://tenant.auth0.com/?a=b",
            "/relative",
            "javascript:alert(1)",
        ] {
            let json = format!(r#"{{"returnUrl": {bad:?}}}"#);
            assert!(
                matches!(parse_err(&json), ConfigError::ReturnUrl { .. }),
                "{bad}"
            );
            let json = format!(r#"{{"returnUrls": {{"ok": "https://a.test", "bad": {bad:?}}}}}"#);
            let e = parse_err(&json);
            assert!(e.to_string().contains(r#"returnUrls."bad""#), "{e}");
        }
    }

    #[test]
    fn ranges() {
        let cases = [
            (r#""duration": 4.9"#, "duration"),
            (r#""duration": 121"#, "duration"),
            (r#""threshold": 0"#, "threshold"),
            (r#""threshold": 1"#, "threshold"),
            (r#""threshold": 0.99999999999"#, "threshold"),
            (r#""threshold": -0.5"#, "threshold"),
            (r#""holdMs": -1"#, "holdMs"),
            (r#""holdMs": 5001"#, "holdMs"),
            (r#""minFaceRatio": 1.5"#, "minFaceRatio"),
            (r#""analysisFps": 4.9"#, "analysisFps"),
            (r#""analysisFps": 61"#, "analysisFps"),
            (r#""analysisFps": 0"#, "analysisFps"),
            (r#""analysisFps": -15"#, "analysisFps"),
        ];
        for (field, name) in cases {
            let json = format!(r#"{{"returnUrl": "https://a.test", {field}}}"#);
            let e = parse_err(&json);
            assert!(
                matches!(&e, ConfigError::OutOfRange { field, .. } if *field == name),
                "{json}: {e}"
            );
        }
        for ok in [
            r#""duration": 5"#,
            r#""duration": 120"#,
            r#""threshold": 0.01"#,
            r#""holdMs": 0"#,
            r#""minFaceRatio": 1"#,
            r#""analysisFps": 5"#,
            r#""analysisFps": 60"#,
        ] {
            parse_ok(&format!(r#"{{"returnUrl": "https://a.test", {ok}}}"#));
        }
    }

    #[test]
    fn analysis_fps_errors_say_the_range() {
        let e = parse_err(r#"{"returnUrl": "https://a.test", "analysisFps": 120}"#);
        assert_eq!(
            e.to_string(),
            "\"analysisFps\" must be between 5 and 60 (frames per second), found 120"
        );
        let e = parse_err(r#"{"returnUrl": "https://a.test", "analysisFps": "15"}"#);
        assert!(matches!(e, ConfigError::Json(_)), "{e}");
        let c = Config::parse_embedded(r#"{"analysisFps": 30}"#).expect("embedded");
        assert_eq!(c.analysis_fps, 30.0);
    }

    #[test]
    fn content_shapes() {
        let c = parse_ok(r#"{"returnUrl": "https://a.test", "content": "jokes"}"#);
        assert_eq!(c.content, Content::Jokes);
        let c = parse_ok(
            r#"{"returnUrl": "https://a.test", "content": {"video": "https://cdn.test/v.mp4"}}"#,
        );
        assert_eq!(
            c.content,
            Content::Video {
                video: "https://cdn.test/v.mp4".into(),
                captions: None
            }
        );
        for bad in [
            r#""memes""#,
            "5",
            "[]",
            r#"{"captions": "a.vtt"}"#,
            r#"{"video": ""}"#,
            r#"{"video": "javascript:alert(1)"}"#,
        ] {
            let json = format!(r#"{{"returnUrl": "https://a.test", "content": {bad}}}"#);
            let e = parse_err(&json);
            assert!(
                matches!(&e, ConfigError::Invalid { field, .. } if field.starts_with("content")),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn params_and_lang() {
        for bad in [
            r#""params": {"state": ""}"#,
            r#""params": {"reason": "state"}"#,
            r#""params": {"notsmiling": "a\nb"}"#,
            r#""lang": """#,
            r#""lang": "en_US""#,
            r#""lang": "<script>""#,
        ] {
            let json = format!(r#"{{"returnUrl": "https://a.test", {bad}}}"#);
            assert!(
                matches!(parse_err(&json), ConfigError::Invalid { .. }),
                "{bad}"
            );
        }
    }

    fn allowlist() -> Config {
        parse_ok(
            r#"{"returnUrls": {"prod": "https://tenant.auth0.com", "staging": "https://staging.auth0.com/base/"}}"#,
        )
    }

    #[test]
    fn the_query_only_picks_a_key() {
        let c = allowlist();
        assert_eq!(c.return_param(), Some("return"));
        assert_eq!(
            c.resolve_return_url(Some("staging")).expect("key").as_str(),
            "https://staging.auth0.com/base/"
        );
        for pick in [
            "https://evil.test",
            "https://tenant.auth0.com",
            "PROD",
            "prod ",
            "",
            "//evil.test",
        ] {
            let e = c.resolve_return_url(Some(pick)).expect_err(pick);
            assert!(matches!(e, ConfigError::UnknownReturnKey { .. }), "{pick}");
        }
        assert_eq!(
            c.resolve_return_url(None),
            Err(ConfigError::MissingReturnKey {
                param: "return".into()
            })
        );
        let long = "k".repeat(10_000);
        let e = c.resolve_return_url(Some(&long)).expect_err("long");
        assert!(e.to_string().len() < 200, "{e}");
    }

    #[test]
    fn single_entry_allowlist_needs_no_pick() {
        let c = parse_ok(r#"{"returnUrls": {"only": "https://a.test"}}"#);
        assert_eq!(
            c.resolve_return_url(None).expect("only").as_str(),
            "https://a.test/"
        );
        assert!(c.resolve_return_url(Some("other")).is_err());
    }

    #[test]
    fn fixed_url_ignores_the_query() {
        let c = parse_ok(r#"{"returnUrl": "https://tenant.auth0.com"}"#);
        for pick in [None, Some("https://evil.test"), Some("x")] {
            assert_eq!(
                c.resolve_return_url(pick).expect("fixed").as_str(),
                "https://tenant.auth0.com/"
            );
        }
    }

    #[test]
    fn free_parse_matches() {
        let json = r#"{"returnUrl": "https://tenant.auth0.com"}"#;
        assert_eq!(parse(json), Config::parse(json));
    }
}
