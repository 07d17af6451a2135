//! The way back to the identity provider: the `state` token from the page URL, the
//! return URL checks, and `<return URL>/continue?state=...&notsmiling=...[&reason=...]`.
//!
//! The output URL keeps the configured return URL's scheme, host and port; only the path
//! (one `continue` segment) and the query (rebuilt from scratch) change, so nothing in
//! `state` can redirect elsewhere. Navigation sits behind [`Navigator`] so it is tested
//! natively with a fake.
//!
//! In the signed mode a pass goes back only as the verifier's token, posted in
//! a form to `<return URL>/continue?state=...`; the query way back then carries failures
//! only, so an unsigned `notsmiling=true` is never sent.
//!
//! Long only with its unit tests (half the file): one set of URL rules, each tried with hostile input.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use url::{Host, Url};

use crate::challenge::effects::Navigator;
use crate::challenge::outcome::{Outcome, Reason};
use crate::challenge::verify::TOKEN_FIELD;

/// Longest accepted `state`, in bytes of its UTF-8 (bytes bound the URL length).
pub const MAX_STATE_BYTES: usize = 2048;

/// The path segment appended to the return URL.
const CONTINUE_SEGMENT: &str = "continue";

/// Names of the query parameters sent back on the continue URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParamNames {
    /// Carries the state token back; default `state`.
    pub state: String,
    /// `true` or `false`; default `notsmiling`.
    pub notsmiling: String,
    /// Why it failed; default `reason`.
    pub reason: String,
}

impl Default for ParamNames {
    fn default() -> Self {
        Self {
            state: "state".to_owned(),
            notsmiling: "notsmiling".to_owned(),
            reason: "reason".to_owned(),
        }
    }
}

/// The `state` token from the page URL is unusable; the page shows this and does not redirect.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateError {
    /// No `state` parameter at all.
    #[error("the page URL has no login state; start the login again")]
    Missing,
    /// `state=` with nothing after it.
    #[error("the login state in the page URL is empty; start the login again")]
    Empty,
    /// Longer than [`MAX_STATE_BYTES`].
    #[error("the login state is {bytes} bytes long, more than the {MAX_STATE_BYTES} allowed")]
    TooLong {
        /// Length of the state in UTF-8 bytes.
        bytes: usize,
    },
    /// Contains a control character (newline, NUL, ...).
    #[error("the login state contains a control character at byte {index}")]
    ControlChar {
        /// Byte offset of the first control character.
        index: usize,
    },
}

/// A return URL that must not be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReturnUrlError {
    /// Not parseable as an absolute URL (relative URLs included).
    #[error("it is not an absolute URL ({0})")]
    Parse(#[from] url::ParseError),
    /// Neither `https:` nor `http:` on a loopback host.
    #[error("it must use https: (http: only on localhost, 127.0.0.1 or [::1]), not {0}:")]
    Scheme(String),
    /// `http:` to a host that is not loopback.
    #[error("http: is only allowed on localhost, 127.0.0.1 or [::1]; use https:")]
    InsecureHttp,
    /// Has no host.
    #[error("it has no host")]
    NoHost,
    /// Has `user:pass@`.
    #[error("it must not contain a user name or password")]
    UserInfo,
    /// Has `?...`: the query is rebuilt, so a configured one would be silently lost.
    #[error("it must not contain a query (?...)")]
    Query,
    /// Has `#...`.
    #[error("it must not contain a fragment (#...)")]
    Fragment,
}

/// The continue URL cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RedirectError {
    /// The return URL failed [`validate_return_url`].
    #[error("the return URL is not usable: {0}")]
    ReturnUrl(#[from] ReturnUrlError),
    /// The state failed [`validate_state`].
    #[error(transparent)]
    State(#[from] StateError),
    /// Two query parameter names are equal, or one is empty.
    #[error("the query parameter names must be non-empty and distinct: {0:?}")]
    ParamNames(ParamNames),
}

/// Checks the `state` read from the page URL (already percent-decoded by
/// `URLSearchParams`) and returns it unchanged.
pub fn validate_state(raw: Option<&str>) -> Result<&str, StateError> {
    let state = raw.ok_or(StateError::Missing)?;
    if state.is_empty() {
        return Err(StateError::Empty);
    }
    if state.len() > MAX_STATE_BYTES {
        return Err(StateError::TooLong { bytes: state.len() });
    }
    if let Some((index, _)) = state.char_indices().find(|(_, c)| c.is_control()) {
        return Err(StateError::ControlChar { index });
    }
    Ok(state)
}

/// Parses and checks a configured return URL; see [`validate_return_url`].
pub fn parse_return_url(raw: &str) -> Result<Url, ReturnUrlError> {
    let url = Url::parse(raw)?;
    validate_return_url(&url)?;
    Ok(url)
}

/// A return URL must be absolute `https:` (or `http:` on a loopback host, for local
/// testing), with no user info, query or fragment.
pub fn validate_return_url(url: &Url) -> Result<(), ReturnUrlError> {
    let scheme = url.scheme();
    if scheme != "https" && scheme != "http" {
        return Err(ReturnUrlError::Scheme(scheme.to_owned()));
    }
    let host = url.host().ok_or(ReturnUrlError::NoHost)?;
    if scheme == "http" && !is_loopback(&host) {
        return Err(ReturnUrlError::InsecureHttp);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ReturnUrlError::UserInfo);
    }
    if url.query().is_some() {
        return Err(ReturnUrlError::Query);
    }
    if url.fragment().is_some() {
        return Err(ReturnUrlError::Fragment);
    }
    Ok(())
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        // `url` lowercases domains, so "LOCALHOST" arrives here as "localhost".
        Host::Domain(domain) => *domain == "localhost",
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Builds `<return URL>/continue?state=..&notsmiling=..[&reason=..]`.
///
/// Appends one `continue` segment (`https://t.test` and `https://t.test/` give
/// `https://t.test/continue`; a path already ending in `continue` is kept). The query is
/// form-encoded by `url`, so any state round-trips byte-exact.
pub fn continue_url(
    return_url: &Url,
    params: &ParamNames,
    state: &str,
    outcome: &Outcome,
) -> Result<Url, RedirectError> {
    let target = ReturnTarget::new(return_url, params.clone(), Some(state))?;
    Ok(target.url_for(outcome))
}

/// A checked return URL (already ending in `/continue`), parameter names and state:
/// everything needed to build the continue URL once the outcome is known.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnTarget {
    base: Url,
    params: ParamNames,
    state: String,
}

impl ReturnTarget {
    /// Checks the return URL, the parameter names and the raw `state` from the page URL.
    pub fn new(
        return_url: &Url,
        params: ParamNames,
        raw_state: Option<&str>,
    ) -> Result<Self, RedirectError> {
        validate_return_url(return_url)?;
        if !params_are_usable(&params) {
            return Err(RedirectError::ParamNames(params));
        }
        let state = validate_state(raw_state)?.to_owned();
        let mut base = return_url.clone();
        {
            // Cannot fail: a URL with a host (checked above) can be a base.
            let mut segments = base
                .path_segments_mut()
                .map_err(|()| ReturnUrlError::NoHost)?;
            segments.pop_if_empty();
        }
        let ends_in_continue = base
            .path_segments()
            .and_then(|mut s| s.next_back())
            .is_some_and(|last| last == CONTINUE_SEGMENT);
        if !ends_in_continue {
            base.path_segments_mut()
                .map_err(|()| ReturnUrlError::NoHost)?
                .push(CONTINUE_SEGMENT);
        }
        Ok(Self {
            base,
            params,
            state,
        })
    }

    /// The state that will be sent back.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// The signed mode's form action: the continue URL with only the state parameter
    /// (the token goes in the POST body).
    pub fn post_url(&self) -> Url {
        let mut url = self.base.clone();
        url.set_fragment(None);
        url.set_query(None);
        url.query_pairs_mut()
            .append_pair(&self.params.state, &self.state);
        url
    }

    /// The continue URL for `outcome`.
    pub fn url_for(&self, outcome: &Outcome) -> Url {
        let mut url = self.base.clone();
        url.set_fragment(None);
        url.set_query(None);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair(&self.params.state, &self.state)
                .append_pair(
                    &self.params.notsmiling,
                    if outcome.notsmiling { "true" } else { "false" },
                );
            if let Some(reason) = outcome.reason {
                query.append_pair(&self.params.reason, reason.as_str());
            }
        }
        url
    }
}

fn params_are_usable(p: &ParamNames) -> bool {
    let names = [&p.state, &p.notsmiling, &p.reason];
    names.iter().all(|n| !n.is_empty())
        && p.state != p.notsmiling
        && p.state != p.reason
        && p.notsmiling != p.reason
}

/// Leaves for the continue URL exactly once, however often it is asked.
pub struct Redirector<N: Navigator> {
    target: ReturnTarget,
    navigator: N,
    sent: Option<Url>,
    /// Passes go back only as a signed token ([`Redirector::post_token`]).
    signed: bool,
}

impl<N: Navigator> Redirector<N> {
    /// Nothing is sent until [`Redirector::redirect`].
    pub fn new(target: ReturnTarget, navigator: N) -> Self {
        Self {
            target,
            navigator,
            sent: None,
            signed: false,
        }
    }

    /// The signed mode's redirector: [`Redirector::redirect`] sends failures only.
    pub fn signed(target: ReturnTarget, navigator: N) -> Self {
        Self {
            signed: true,
            ..Self::new(target, navigator)
        }
    }

    /// What [`Redirector::redirect`] sends for `outcome`: the outcome itself, except that
    /// in the signed mode a pass (which needs the verifier's token) fails with `error`.
    pub fn sendable(&self, outcome: &Outcome) -> Outcome {
        if self.signed && outcome.notsmiling {
            Outcome {
                notsmiling: false,
                reason: Some(Reason::Error),
                stats: outcome.stats,
            }
        } else {
            *outcome
        }
    }

    /// On the first call, builds the URL for `outcome` (see [`Redirector::sendable`]) and
    /// navigates there; later calls navigate no more and return the first URL (a second
    /// outcome cannot change it).
    pub fn redirect(&mut self, outcome: &Outcome) -> &Url {
        let url = match self.sent.take() {
            Some(url) => url,
            None => {
                let url = self.target.url_for(&self.sendable(outcome));
                self.navigator.navigate(&url);
                url
            }
        };
        self.sent.insert(url)
    }

    /// On the first call (of this or [`Redirector::redirect`]), posts the verifier's
    /// `token` as [`TOKEN_FIELD`] to [`ReturnTarget::post_url`]; later calls send nothing
    /// and return the first URL.
    pub fn post_token(&mut self, token: &str) -> &Url {
        let url = match self.sent.take() {
            Some(url) => url,
            None => {
                let url = self.target.post_url();
                self.navigator.post_form(&url, &[(TOKEN_FIELD, token)]);
                url
            }
        };
        self.sent.insert(url)
    }

    /// The URL navigated to, if any.
    pub fn sent(&self) -> Option<&Url> {
        self.sent.as_ref()
    }

    /// The target the URL is built from.
    pub fn target(&self) -> &ReturnTarget {
        &self.target
    }

    /// The navigator (tests inspect their fake through this).
    pub fn navigator(&self) -> &N {
        &self.navigator
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::outcome::{Reason, Stats};

    const TRICKY: &str = "a+b/c=d&e%f#g ü 雪 😀";

    fn outcome(reason: Option<Reason>) -> Outcome {
        Outcome {
            notsmiling: reason.is_none(),
            reason,
            stats: Stats {
                frames_analysed: 10,
                face_seen_ratio: 1.0,
                max_smile_score: 0.1,
                elapsed_ms: 15_000.0,
            },
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).expect("test URL")
    }

    fn pairs(u: &Url) -> Vec<(String, String)> {
        u.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn state_checks() {
        assert_eq!(validate_state(None), Err(StateError::Missing));
        assert_eq!(validate_state(Some("")), Err(StateError::Empty));
        assert_eq!(validate_state(Some("abc")), Ok("abc"));
        assert_eq!(validate_state(Some(TRICKY)), Ok(TRICKY));
        assert_eq!(validate_state(Some(" x ")), Ok(" x "));
        let max = "a".repeat(MAX_STATE_BYTES);
        assert_eq!(validate_state(Some(&max)), Ok(max.as_str()));
        let long = "a".repeat(MAX_STATE_BYTES + 1);
        assert_eq!(
            validate_state(Some(&long)),
            Err(StateError::TooLong { bytes: 2049 })
        );
        // Bytes, not chars: 683 three-byte chars are 2049 bytes.
        let wide = "雪".repeat(683);
        assert!(matches!(
            validate_state(Some(&wide)),
            Err(StateError::TooLong { .. })
        ));
        for bad in ["a\nb", "a\0", "\tx", "x\u{7f}", "x\u{85}"] {
            assert!(
                matches!(
                    validate_state(Some(bad)),
                    Err(StateError::ControlChar { .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            validate_state(Some("ab\rc")),
            Err(StateError::ControlChar { index: 2 })
        );
    }

    #[test]
    fn return_url_checks() {
        for ok in [
            "https://tenant.auth0.com",
            "https://tenant.auth0.com:8443/base/",
            "http://localhost:3000/",
            "http://LOCALHOST/",
            "http://127.0.0.1:8080",
            "http://[::1]:8080/x",
        ] {
            assert!(parse_return_url(ok).is_ok(), "{ok}");
        }
        let cases = [
            ("/continue", "absolute"),
            ("tenant.auth0.com", "absolute"),
            ("http://tenant.auth0.com", "only allowed"),
            ("http://localhost.evil.com", "only allowed"),
            ("http://10.0.0.1", "only allowed"),
            ("javascript:alert(1)", "javascript"),
            ("ftp://x.test/", "ftp"),
            ("data:text/html,hi", "data"),
            ("https://user:pass@x.test/", "user name"),
            ("https://user@x.test/", "user name"),
            ("https://x.test/?a=b", "query"),
            ("https://x.test/?", "query"),
            ("https://x.test/#frag", "fragment"),
            ("https://x.test/#", "fragment"),
        ];
        for (bad, msg) in cases {
            let err = parse_return_url(bad).expect_err(bad);
            assert!(err.to_string().contains(msg), "{bad}: {err}");
        }
    }

    #[test]
    fn continue_path() {
        let p = ParamNames::default();
        let o = outcome(None);
        let cases = [
            (
                "https://tenant.auth0.com",
                "https://tenant.auth0.com/continue",
            ),
            (
                "https://tenant.auth0.com/",
                "https://tenant.auth0.com/continue",
            ),
            ("https://x.test/base/", "https://x.test/base/continue"),
            ("https://x.test/base", "https://x.test/base/continue"),
            ("https://x.test/continue", "https://x.test/continue"),
            ("https://x.test/continue/", "https://x.test/continue"),
            ("https://x.test/a/continue", "https://x.test/a/continue"),
            (
                "https://x.test/continued",
                "https://x.test/continued/continue",
            ),
            ("http://localhost:3000", "http://localhost:3000/continue"),
        ];
        for (input, want) in cases {
            let got = continue_url(&url(input), &p, "s", &o).expect(input);
            assert_eq!(
                got.as_str(),
                format!("{want}?state=s&notsmiling=true"),
                "{input}"
            );
        }
    }

    #[test]
    fn query_with_and_without_reason() {
        let p = ParamNames::default();
        let base = url("https://tenant.auth0.com");
        let passed = continue_url(&base, &p, "xyz", &outcome(None)).expect("url");
        assert_eq!(
            passed.as_str(),
            "https://tenant.auth0.com/continue?state=xyz&notsmiling=true"
        );
        let smiled = continue_url(&base, &p, "xyz", &outcome(Some(Reason::Smiled))).expect("url");
        assert_eq!(
            smiled.as_str(),
            "https://tenant.auth0.com/continue?state=xyz&notsmiling=false&reason=smiled"
        );
        let custom = ParamNames {
            state: "st".into(),
            notsmiling: "ok".into(),
            reason: "why".into(),
        };
        let got = continue_url(&base, &custom, "xyz", &outcome(Some(Reason::NoFace))).expect("url");
        assert_eq!(
            pairs(&got),
            [("st", "xyz"), ("ok", "false"), ("why", "no_face")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn tricky_state_round_trips_byte_exact() {
        let base = url("https://tenant.auth0.com/base/");
        let got = continue_url(&base, &ParamNames::default(), TRICKY, &outcome(None)).expect("url");
        let reparsed = Url::parse(got.as_str()).expect("reparse");
        let p = pairs(&reparsed);
        assert_eq!(p[0], ("state".to_owned(), TRICKY.to_owned()));
        assert_eq!(p.len(), 2);
        assert_eq!(reparsed.fragment(), None);
        assert_eq!(reparsed.path(), "/base/continue");
    }

    #[test]
    fn state_cannot_change_the_origin() {
        let states = [
            TRICKY,
            "//evil.test",
            "https://evil.test/",
            "@evil.test",
            "\\\\evil.test",
            "../../../evil",
            "x#@evil.test",
            "x?y=z&notsmiling=true",
            "%2F%2Fevil.test",
        ];
        for base in ["https://tenant.auth0.com", "http://127.0.0.1:9000/a/"] {
            let base = url(base);
            for state in states {
                let got = continue_url(&base, &ParamNames::default(), state, &outcome(None))
                    .expect(state);
                let reparsed = Url::parse(got.as_str()).expect("reparse");
                assert_eq!(reparsed.origin(), base.origin(), "{state}");
                let p = pairs(&reparsed);
                assert_eq!(p.len(), 2, "{state}");
                assert_eq!(p[0].1, state);
                assert_eq!(
                    p[1],
                    ("notsmiling".to_owned(), "true".to_owned()),
                    "{state}"
                );
            }
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let p = ParamNames::default();
        let o = outcome(None);
        assert!(matches!(
            continue_url(&url("https://x.test/?a=1"), &p, "s", &o),
            Err(RedirectError::ReturnUrl(ReturnUrlError::Query))
        ));
        assert!(matches!(
            continue_url(&url("https://x.test/"), &p, "a\nb", &o),
            Err(RedirectError::State(StateError::ControlChar { .. }))
        ));
        let same = ParamNames {
            reason: "state".into(),
            ..ParamNames::default()
        };
        assert!(matches!(
            continue_url(&url("https://x.test/"), &same, "s", &o),
            Err(RedirectError::ParamNames(_))
        ));
    }

    #[derive(Default)]
    struct FakeNavigator(Vec<Url>, Vec<(Url, Vec<(String, String)>)>);

    impl Navigator for FakeNavigator {
        fn navigate(&mut self, url: &Url) {
            self.0.push(url.clone());
        }

        fn post_form(&mut self, action: &Url, fields: &[(&str, &str)]) {
            let fields = fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            self.1.push((action.clone(), fields));
        }
    }

    #[test]
    fn post_url_has_only_the_state() {
        let params = ParamNames {
            state: "st".into(),
            ..ParamNames::default()
        };
        for (base, want) in [
            (
                "https://tenant.auth0.com",
                "https://tenant.auth0.com/continue?st=",
            ),
            ("https://x.test/base/", "https://x.test/base/continue?st="),
            ("https://x.test/continue", "https://x.test/continue?st="),
            (
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080/continue?st=",
            ),
        ] {
            let target = ReturnTarget::new(&url(base), params.clone(), Some(TRICKY)).expect(base);
            let post = target.post_url();
            assert!(post.as_str().starts_with(want), "{base}: {post}");
            assert_eq!(pairs(&post), vec![("st".to_owned(), TRICKY.to_owned())]);
            assert_eq!(post.fragment(), None);
        }
    }

    #[test]
    fn signed_mode_posts_the_token_and_never_sends_an_unsigned_pass() {
        let target = ReturnTarget::new(
            &url("https://tenant.auth0.com"),
            ParamNames::default(),
            Some("abc"),
        )
        .expect("target");
        let mut r = Redirector::signed(target.clone(), FakeNavigator::default());
        let sent = r.post_token("h.p.s").clone();
        assert_eq!(sent.as_str(), "https://tenant.auth0.com/continue?state=abc");
        assert_eq!(
            r.navigator().1,
            vec![(
                sent.clone(),
                vec![("smile_token".to_owned(), "h.p.s".to_owned())]
            )]
        );
        // Once only, whichever way is asked next.
        assert_eq!(r.post_token("other"), &sent);
        assert_eq!(r.redirect(&outcome(None)), &sent);
        assert_eq!(r.navigator().1.len(), 1);
        assert!(r.navigator().0.is_empty());

        // Without a token a pass goes back as a failure.
        let mut r = Redirector::signed(target.clone(), FakeNavigator::default());
        assert_eq!(r.sendable(&outcome(None)).reason, Some(Reason::Error));
        let url = r.redirect(&outcome(None)).clone();
        assert_eq!(
            url.as_str(),
            "https://tenant.auth0.com/continue?state=abc&notsmiling=false&reason=error"
        );
        assert!(r.navigator().1.is_empty());
        // Failures go back as they are.
        let r = Redirector::signed(target.clone(), FakeNavigator::default());
        let smiled = outcome(Some(Reason::Smiled));
        assert_eq!(r.sendable(&smiled), smiled);
        // The unsigned mode is unchanged.
        let r = Redirector::new(target, FakeNavigator::default());
        assert_eq!(r.sendable(&outcome(None)), outcome(None));
    }

    #[test]
    fn redirector_navigates_exactly_once() {
        let target = ReturnTarget::new(
            &url("https://tenant.auth0.com"),
            ParamNames::default(),
            Some("abc"),
        )
        .expect("target");
        let mut r = Redirector::new(target, FakeNavigator::default());
        assert!(r.sent().is_none());
        assert!(r.navigator().0.is_empty());
        let first = r.redirect(&outcome(Some(Reason::Smiled))).clone();
        assert_eq!(
            first.as_str(),
            "https://tenant.auth0.com/continue?state=abc&notsmiling=false&reason=smiled"
        );
        // A later, different outcome changes nothing.
        assert_eq!(r.redirect(&outcome(None)), &first);
        assert_eq!(r.navigator().0, vec![first.clone()]);
        assert_eq!(r.sent(), Some(&first));
    }
}
