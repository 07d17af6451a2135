//! Privacy: a whole challenge plus rejected requests leave only method, path, status and
//! latency in the log: no token, no secret, no state, no pixel data.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::*;
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_token_secret_or_pixels() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .init();

    let srv = TestServer::start().await;
    let state = "state-7c1d2e9f0a3b4c5d";
    let nonce = fresh_nonce();
    let ctx = ctx_token(&ctx_claims(&nonce, srv.now_secs()), CTX_SECRET);
    let id = srv.open_with(state, &ctx).await;
    srv.send_frames(&id, "neutral_1", 5).await;
    let verdict = srv.finish_token(&id).await;
    let jpeg = jpeg_crop("neutral_1");
    // Rejected requests, and a page URL carrying the token in its query.
    srv.create(json!({"state": state, "session_token": ctx}))
        .await;
    srv.create(json!({"state": state, "session_token": ctx_token(&ctx_claims("n2", srv.now_secs()), VERDICT_SECRET)})).await;
    let mut page = url::Url::parse(&srv.url("/")).expect("url");
    page.query_pairs_mut()
        .append_pair("state", state)
        .append_pair("session_token", &ctx);
    assert_eq!(
        srv.client.get(page).send().await.expect("send").status(),
        200
    );
    srv.stop().await;

    let log = String::from_utf8(captured.0.lock().expect("log").clone()).expect("utf8");
    assert!(
        log.contains("/api/v1/challenges"),
        "the access log works: {log}"
    );
    assert!(
        log.contains("status=201") && log.contains("status=409"),
        "{log}"
    );
    let forbidden = [
        ctx.clone(),
        verdict.clone(),
        ctx.split('.').nth(2).expect("sig").to_owned(),
        verdict.split('.').nth(1).expect("payload").to_owned(),
        CTX_SECRET.to_owned(),
        CTX_SECRET_PREV.to_owned(),
        VERDICT_SECRET.to_owned(),
        state.to_owned(),
        nonce.clone(),
        "session_token".to_owned(),
        STANDARD.encode(&jpeg[..48]),
        URL_SAFE_NO_PAD.encode(&jpeg[..48]),
    ];
    for f in forbidden {
        assert!(!log.contains(&f), "the log contains {f:?}:\n{log}");
    }
    // No raw JPEG bytes either (the log is text; an SOI marker would show as U+FFFD).
    assert!(!log.contains('\u{FFFD}'));
}
