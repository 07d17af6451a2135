//! Demo mode (no secrets set): this server plays the Auth0 side too. It mints ctx tokens
//! as the Action's `encodeToken` would, serves a page config that returns here, and its
//! `POST /continue` validates the verdict token as `validateToken` plus the Action's own
//! checks do, listing each check. The whole signed round trip then runs on one machine.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use url::Url;

use crate::error::ApiError;
use crate::tokens::{
    decode_verdict, mint_ctx, random_id, CtxClaims, CTX_USE, PROTOCOL_VERSION, VERDICT_TTL_SECS,
};
use crate::App;

/// The user every demo login is for.
pub const DEMO_SUB: &str = "demo|user";
/// Lifetime of a demo ctx token, as the Action sets it.
const CTX_TTL_SECS: u64 = 300;
/// Demo logins remembered at once (the oldest are dropped).
const MAX_PENDING: usize = 1000;

/// Logins this demo started: state -> nonce, as `api.transaction.setMetadata` keeps it.
#[derive(Default)]
pub struct Demo {
    pending: Mutex<HashMap<String, String>>,
}

/// `page URL?state=..&session_token=..` for a fresh demo login.
pub fn mint_link(app: &App) -> Result<Url, ApiError> {
    let s = &app.settings;
    let demo = app.demo.as_ref().ok_or(ApiError::NotFound)?;
    let now = app.clock.now_secs();
    let state = random_id(16)?;
    let nonce = random_id(16)?;
    let claims = CtxClaims {
        sub: DEMO_SUB.to_owned(),
        iss: s.issuer.clone(),
        exp: now + CTX_TTL_SECS,
        iat: Some(now),
        use_: CTX_USE.to_owned(),
        nonce: nonce.clone(),
        v: PROTOCOL_VERSION,
    };
    let token = mint_ctx(&claims, &s.ctx_keys[0])?;
    if let Ok(mut pending) = demo.pending.lock() {
        if pending.len() >= MAX_PENDING {
            pending.clear();
        }
        pending.insert(state.clone(), nonce);
    }
    let mut url = Url::parse(&s.issuer).map_err(|_| ApiError::Internal)?;
    url.query_pairs_mut()
        .append_pair("state", &state)
        .append_pair("session_token", &token);
    Ok(url)
}

/// The page config in demo mode: return to this server, in verify mode.
pub fn page_config(app: &App) -> String {
    let config = serde_json::json!({
        "returnUrl": app.settings.issuer,
        "duration": app.settings.timing.duration_ms / 1000,
        "verify": true,
    });
    format!("{config:#}\n")
}

/// `GET /demo`: a fresh login each visit (a ctx nonce works once).
pub async fn start(State(app): State<App>) -> Result<Response, ApiError> {
    let url = mint_link(&app)?;
    Ok(Redirect::to(url.as_str()).into_response())
}

#[derive(serde::Deserialize)]
pub struct ContinueQuery {
    state: Option<String>,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `POST /continue?state=..` with form field `smile_token`.
pub async fn continue_post(
    State(app): State<App>,
    Query(query): Query<ContinueQuery>,
    body: Bytes,
) -> Response {
    let token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "smile_token")
        .map(|(_, v)| v.into_owned());
    let state = query.state.unwrap_or_default();
    let s = &app.settings;
    let mut checks: Vec<(&str, bool, String)> = Vec::new();
    let mut verdict = None;
    match token.as_deref() {
        None => checks.push(("smile_token present in the POST body", false, String::new())),
        Some(token) => match decode_verdict(token, &s.verdict_key, app.clock.now_secs()) {
            Err(why) => checks.push(("signature (HS256) and expiry", false, why.to_owned())),
            Ok(c) => {
                checks.push((
                    "signature (HS256) and expiry",
                    true,
                    format!("exp {}", c.exp),
                ));
                checks.push((
                    "state claim equals the /continue state",
                    c.state == state,
                    String::new(),
                ));
                checks.push(("iss is this verifier", c.iss == s.issuer, c.iss.clone()));
                checks.push((
                    "aud is this tenant",
                    s.tenants.contains(&c.aud),
                    c.aud.clone(),
                ));
                checks.push((
                    "sub is the user logging in",
                    c.sub == DEMO_SUB,
                    c.sub.clone(),
                ));
                let expected_nonce = app
                    .demo
                    .as_ref()
                    .and_then(|d| d.pending.lock().ok()?.get(&state).cloned());
                checks.push((
                    "nonce equals the transaction's",
                    expected_nonce.as_deref() == Some(c.nonce.as_str()),
                    String::new(),
                ));
                checks.push((
                    "exp - iat <= 120 s",
                    c.exp.saturating_sub(c.iat) <= VERDICT_TTL_SECS,
                    format!("{} s", c.exp.saturating_sub(c.iat)),
                ));
                verdict = Some(c);
            }
        },
    }
    let valid = checks.iter().all(|(_, ok, _)| *ok);
    let rows: String = checks
        .iter()
        .map(|(name, ok, detail)| {
            format!(
                "<li class=\"{}\">{} {}{}</li>\n",
                if *ok { "pass" } else { "fail" },
                if *ok { "PASS" } else { "FAIL" },
                escape(name),
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(" <code>{}</code>", escape(detail))
                }
            )
        })
        .collect();
    let summary = match (&verdict, valid) {
        (Some(c), true) => format!(
            "Valid signed verdict: notsmiling = {}{}, frames = {}",
            c.notsmiling,
            c.reason
                .as_deref()
                .map(|r| format!(", reason = {}", escape(r)))
                .unwrap_or_default(),
            c.frames
        ),
        _ => "The verdict token is NOT valid: the login would be denied.".to_owned(),
    };
    // For tests and scripts: the verdict as attributes, set only when every check passed.
    let verdict_attrs = match (&verdict, valid) {
        (Some(c), true) => format!(
            " data-notsmiling=\"{}\" data-reason=\"{}\" data-frames=\"{}\" data-prompts=\"{}\" data-mode=\"{}\"",
            c.notsmiling,
            escape(c.reason.as_deref().unwrap_or("")),
            c.frames,
            escape(&c.prompts),
            escape(&c.mode)
        ),
        _ => String::new(),
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>smile-factor: continue</title>\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em}}code{{background:#eee;padding:0 .25em;word-break:break-all}}.pass{{color:#060}}.fail{{color:#a00}}</style>\n\
</head><body>\n<h1>The identity provider checked the verdict</h1>\n<p id=\"summary\" data-valid=\"{valid}\"{verdict_attrs}>{summary}</p>\n\
<ul id=\"checks\">\n{rows}</ul>\n<p>State: <code id=\"state\">{}</code></p>\n</body></html>\n",
        escape(&state)
    );
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
        html,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_html() {
        assert_eq!(
            super::escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
    }
}
