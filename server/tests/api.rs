//! The challenge protocol over HTTP against the real server on loopback: the happy
//! paths with real crops and real tokens, and every bad-input case of issue 14.

mod common;

use common::*;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use smile_factor_server::tokens::Secret;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neutral_face_passes_with_a_signed_token() {
    let srv = TestServer::start().await;
    let state = "st&ate=1 ünïcode";
    let (id, nonce) = srv.open(state).await;
    srv.send_frames(&id, "neutral_1", 5).await;
    let (status, body) = srv.finish(&id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["notsmiling"], true);
    assert!(body.get("reason").is_none(), "{body}");
    let token = body["token"].as_str().expect("token");
    let (header, c) = decode_verdict(token);
    assert_eq!(header.alg, Algorithm::HS256);
    assert_eq!(
        header.kid.as_deref(),
        Some(Secret::new(VERDICT_SECRET).kid())
    );
    assert_eq!(c.iss, ISSUER);
    assert_eq!(c.aud, TENANT);
    assert_eq!(c.sub, SUB);
    assert_eq!(c.state, state);
    assert_eq!(c.nonce, nonce);
    assert_eq!(c.jti.len(), 22, "128 bits in base64url");
    assert_eq!(c.iat, srv.now_secs());
    assert_eq!(c.exp, c.iat + 120);
    assert!(c.notsmiling);
    assert_eq!(c.reason, None);
    assert_eq!(c.frames, 5);
    assert_eq!(c.v, 1);
    // The raw payload has no reason key at all on a pass.
    let payload = token.split('.').nth(1).expect("payload");
    let raw: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .expect("b64"),
    )
    .expect("json");
    assert!(raw.get("reason").is_none());
    // Finished once.
    let (status, body) = srv.finish(&id).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("finished")));
    let (status, _) = srv.frame(&id, jpeg_crop("neutral_1")).await;
    assert_eq!(status, 409);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smiling_face_fails_with_reason_smiled_even_early() {
    let srv = TestServer::start().await;
    let (id, _) = srv.open("s").await;
    srv.send_frames(&id, "smile_1", 2).await;
    // 2 s into a 5 s countdown: an early finish may report the smile.
    let (status, body) = srv.finish(&id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["notsmiling"], false);
    assert_eq!(body["reason"], "smiled");
    let (_, c) = decode_verdict(body["token"].as_str().expect("token"));
    assert!(!c.notsmiling);
    assert_eq!(c.reason.as_deref(), Some("smiled"));
    assert_eq!(c.frames, 2);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_finish_without_a_smile_is_refused_then_no_face_fails() {
    let srv = TestServer::start().await;
    let (id, _) = srv.open("s").await;
    srv.send_frames(&id, "neutral_2", 2).await;
    let (status, body) = srv.finish(&id).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("too_early")),
        "{body}"
    );
    // Grey frames carry no face: after the countdown the verdict is no_face.
    let grey = encode_jpeg(&image::RgbImage::from_pixel(
        160,
        160,
        image::Rgb([128, 128, 128]),
    ));
    for _ in 0..3 {
        assert_eq!(srv.frame(&id, grey.clone()).await.0, 200);
        srv.clock.advance(1_000);
    }
    let (status, body) = srv.finish(&id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["notsmiling"], false);
    assert_eq!(body["reason"], "no_face");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_creation_rejects_bad_input() {
    let srv = TestServer::start().await;
    let now = srv.now_secs();
    let good = |nonce: &str| ctx_token(&ctx_claims(nonce, now), CTX_SECRET);
    let post = |ct: &'static str, body: Vec<u8>| {
        srv.client
            .post(srv.url("/api/v1/challenges"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let expect = |(status, body): (u16, Value), want: u16, code: &str| {
        assert_eq!(status, want, "{body}");
        assert_eq!(body["error"], code, "{body}");
        assert!(body["message"].is_string(), "{body}");
    };
    let valid = serde_json::to_vec(&json!({"state": "s", "session_token": good(&fresh_nonce())}))
        .expect("json");
    expect(
        status_json(post("text/plain", valid).await.expect("send")).await,
        415,
        "unsupported_media_type",
    );
    expect(
        status_json(
            post("application/json", vec![b' '; 9_000])
                .await
                .expect("send"),
        )
        .await,
        413,
        "too_large",
    );
    expect(
        status_json(
            post("application/json", b"{\"state\":".to_vec())
                .await
                .expect("send"),
        )
        .await,
        400,
        "bad_json",
    );
    expect(
        status_json(
            post("application/json", b"[]".to_vec())
                .await
                .expect("send"),
        )
        .await,
        400,
        "bad_json",
    );
    let t = good(&fresh_nonce());
    expect(
        srv.create(json!({"state": "s", "session_token": t, "extra": 1}))
            .await,
        400,
        "bad_json",
    );
    expect(
        srv.create(json!({"session_token": t})).await,
        400,
        "bad_json",
    );
    expect(
        srv.create(json!({"state": "", "session_token": t})).await,
        400,
        "bad_state",
    );
    expect(
        srv.create(json!({"state": "a\nb", "session_token": t}))
            .await,
        400,
        "bad_state",
    );
    expect(
        srv.create(json!({"state": "x".repeat(2049), "session_token": t}))
            .await,
        400,
        "bad_state",
    );

    let n = fresh_nonce();
    let claims = ctx_claims(&n, now);
    let with = |k: &str, v: Value| {
        let mut c = claims.clone();
        c[k] = v;
        c
    };
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS512),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(CTX_SECRET.as_bytes()).expect("key"),
    )
    .expect("hs512");
    let bad_tokens = [
        ("wrong signature", ctx_token(&claims, VERDICT_SECRET)),
        ("alg none", none_token(&claims)),
        ("HS512", hs512),
        (
            "expired",
            ctx_token(&with("exp", json!(now - 100)), CTX_SECRET),
        ),
        (
            "unknown iss",
            ctx_token(&with("iss", json!("evil.test")), CTX_SECRET),
        ),
        (
            "wrong use",
            ctx_token(&with("use", json!("other")), CTX_SECRET),
        ),
        ("wrong v", ctx_token(&with("v", json!(2)), CTX_SECRET)),
        (
            "no sub",
            ctx_token(
                &json!({"iss": TENANT, "exp": now + 300, "use": "smile-ctx", "nonce": n, "v": 1}),
                CTX_SECRET,
            ),
        ),
        ("garbage", "not.a.token".to_owned()),
        ("empty", String::new()),
    ];
    for (what, token) in bad_tokens {
        let (status, body) = srv
            .create(json!({"state": "s", "session_token": token}))
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("bad_token")),
            "{what}: {body}"
        );
    }
    // None of those burnt the nonce; the previous ctx key is accepted.
    let (status, body) = srv
        .create(json!({"state": "s", "session_token": ctx_token(&claims, CTX_SECRET_PREV)}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["challenge"].is_string());
    assert_eq!(body["duration_ms"], 5_000);
    assert_eq!(body["frame_interval_ms"], 1_000);
    assert_eq!(body["max_frames"], 7);
    // The same nonce again, even re-signed with the current key, is a replay.
    let (status, body) = srv
        .create(json!({"state": "s", "session_token": ctx_token(&claims, CTX_SECRET)}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("nonce_reused")),
        "{body}"
    );
    srv.stop().await;
}

/// A JPEG whose SOF0 header declares `w`x`h` and whose data is tiny.
fn jpeg_declaring(w: u16, h: u16) -> Vec<u8> {
    let mut j = encode_jpeg(&image::RgbImage::from_pixel(
        16,
        16,
        image::Rgb([90, 90, 90]),
    ));
    let sof = j.windows(2).position(|p| p == [0xFF, 0xC0]).expect("SOF0");
    j[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    j[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    j
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_reject_bad_input_and_bad_timing() {
    let srv = TestServer::start().await;
    let (id, _) = srv.open("s").await;
    let good = jpeg_crop("neutral_1");
    let expect = |(status, body): (u16, Value), want: u16, code: &str, what: &str| {
        assert_eq!(status, want, "{what}: {body}");
        assert_eq!(body["error"], code, "{what}: {body}");
    };
    let res = srv
        .client
        .post(srv.url(&format!("/api/v1/challenges/{id}/frames")))
        .header("content-type", "image/png")
        .body(good.clone())
        .send()
        .await
        .expect("send");
    expect(
        status_json(res).await,
        415,
        "unsupported_media_type",
        "png type",
    );
    expect(
        srv.frame(&id, vec![0xFF; 16 * 1024 + 1]).await,
        413,
        "too_large",
        "17 KiB",
    );
    expect(
        srv.frame(&id, b"hello, not a jpeg".to_vec()).await,
        400,
        "bad_frame",
        "not jpeg",
    );
    expect(
        srv.frame(&id, good[..good.len() / 2].to_vec()).await,
        400,
        "bad_frame",
        "truncated",
    );
    expect(
        srv.frame(&id, jpeg_declaring(60_000, 60_000)).await,
        400,
        "bad_frame",
        "bomb",
    );
    let big = encode_jpeg(&image::RgbImage::from_pixel(
        300,
        300,
        image::Rgb([1, 2, 3]),
    ));
    expect(srv.frame(&id, big).await, 400, "bad_frame", "300x300");
    expect(
        srv.frame("nope", good.clone()).await,
        404,
        "unknown_challenge",
        "unknown",
    );
    expect(
        srv.frame(&"x".repeat(500), good.clone()).await,
        404,
        "unknown_challenge",
        "long id",
    );
    let res = srv
        .client
        .post(srv.url("/api/v1/challenges/nope/finish"))
        .send()
        .await
        .expect("send");
    expect(
        status_json(res).await,
        404,
        "unknown_challenge",
        "unknown finish",
    );

    // Spacing: the next frame within half the interval is refused.
    assert_eq!(srv.frame(&id, good.clone()).await.0, 200);
    srv.clock.advance(499);
    expect(
        srv.frame(&id, good.clone()).await,
        429,
        "too_fast",
        "499 ms",
    );
    srv.clock.advance(1);
    assert_eq!(srv.frame(&id, good.clone()).await.0, 200);
    // Budget: 7 frames in all for a 5 s countdown.
    for _ in 0..5 {
        srv.clock.advance(500);
        assert_eq!(srv.frame(&id, good.clone()).await.0, 200);
    }
    srv.clock.advance(500);
    expect(
        srv.frame(&id, good.clone()).await,
        409,
        "too_many_frames",
        "8th",
    );

    // Window: a fresh challenge, a frame 7.5 s after its start.
    let (late, _) = srv.open("s").await;
    srv.clock.advance(7_500);
    expect(
        srv.frame(&late, good.clone()).await,
        409,
        "window_over",
        "late",
    );
    srv.stop().await;
}

/// Opens a challenge with extra request headers; returns the status and error code.
async fn create_with_headers(srv: &TestServer, headers: &[(&str, &str)]) -> (u16, Option<String>) {
    let token = ctx_token(&ctx_claims(&fresh_nonce(), srv.now_secs()), CTX_SECRET);
    let mut req = srv
        .client
        .post(srv.url("/api/v1/challenges"))
        .json(&json!({"state": "s", "session_token": token}));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.expect("send");
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (status, body["error"].as_str().map(str::to_owned))
}

/// Opens a challenge as if a proxy had sent `X-Forwarded-For: forwarded`.
async fn create_forwarded(srv: &TestServer, forwarded: &str) -> (u16, Option<String>) {
    create_with_headers(srv, &[("x-forwarded-for", forwarded)]).await
}

/// An error answer as `create_with_headers` returns it.
fn refused(status: u16, code: &str) -> (u16, Option<String>) {
    (status, Some(code.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_proxy_a_forged_forwarded_for_does_not_escape_the_rate_limit() {
    let srv = TestServer::with_settings(settings(2)).await;
    for i in 0..2 {
        let fake = format!("203.0.113.{i}");
        assert_eq!(create_forwarded(&srv, &fake).await.0, 201);
    }
    assert_eq!(
        create_forwarded(&srv, "198.51.100.9").await,
        refused(429, "rate_limited")
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_the_limit_is_per_client_from_the_rightmost_forwarded_for() {
    let mut s = settings(2);
    s.client_ip_source = axum_client_ip::ClientIpSource::RightmostXForwardedFor;
    let srv = TestServer::with_settings(s).await;
    // Two users behind one proxy (all requests come from 127.0.0.1): each has its own budget.
    for user in ["192.0.2.10", "192.0.2.20"] {
        for _ in 0..2 {
            assert_eq!(create_forwarded(&srv, user).await.0, 201);
        }
        assert_eq!(
            create_forwarded(&srv, user).await,
            refused(429, "rate_limited"),
            "{user}"
        );
    }
    // A client's own entry goes leftmost; the proxy appends the real address on the right.
    assert_eq!(
        create_forwarded(&srv, "198.51.100.1, 192.0.2.10").await,
        refused(429, "rate_limited")
    );
    // A request that did not come through the proxy is refused, not let through.
    assert_eq!(
        create_with_headers(&srv, &[]).await,
        refused(400, "no_client_address")
    );
    assert_eq!(
        create_forwarded(&srv, "not an address").await,
        refused(400, "no_client_address")
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_client_is_limited_by_its_64_not_by_each_address() {
    let mut s = settings(2);
    s.client_ip_source = axum_client_ip::ClientIpSource::RightmostXForwardedFor;
    let srv = TestServer::with_settings(s).await;
    // Any address of one /64 spends the same budget.
    for ip in ["2001:db8:5:6::1", "2001:db8:5:6:aaaa::2"] {
        assert_eq!(create_forwarded(&srv, ip).await.0, 201, "{ip}");
    }
    assert_eq!(
        create_forwarded(&srv, "2001:db8:5:6:ffff:ffff:ffff:ffff").await,
        refused(429, "rate_limited")
    );
    // The neighbouring /64 is another client.
    assert_eq!(create_forwarded(&srv, "2001:db8:5:7::1").await.0, 201);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_creation_is_rate_limited_per_ip() {
    let srv = TestServer::with_settings(settings(2)).await;
    srv.open("a").await;
    srv.open("b").await;
    let token = ctx_token(&ctx_claims(&fresh_nonce(), srv.now_secs()), CTX_SECRET);
    let (status, body) = srv
        .create(json!({"state": "c", "session_token": token}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_at_the_frame_endpoint_never_break_the_server() {
    let srv = TestServer::start().await;
    let (id, _) = srv.open("s").await;
    // xorshift: reproducible without a rand dependency.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seed = jpeg_crop("neutral_3");
    for i in 0..300u32 {
        let len = (next() % 20_000) as usize;
        let mut body: Vec<u8> = match i % 3 {
            // Pure noise.
            0 => (0..len).map(|_| next() as u8).collect(),
            // A JPEG frame around noise, to reach the decoder.
            1 => {
                let mut b = vec![0xFF, 0xD8, 0xFF];
                b.extend((0..len % 16_000).map(|_| next() as u8));
                b.extend([0xFF, 0xD9]);
                b
            }
            // A real crop with a few bytes flipped.
            _ => seed.clone(),
        };
        if i % 3 == 2 {
            for _ in 0..(1 + next() % 8) {
                let at = 2 + (next() as usize) % (body.len() - 4);
                body[at] = next() as u8;
            }
        }
        let (status, value) = srv.frame(&id, body).await;
        assert!(
            [200, 400, 409, 413, 429].contains(&status),
            "case {i}: {status} {value}"
        );
        assert!(
            value.get("error").is_some() || status == 200,
            "case {i}: {value}"
        );
        srv.clock.advance(10);
    }
    // Still up and still correct.
    let (status, _) = srv.frame("nope", seed).await;
    assert_eq!(status, 404);
    srv.stop().await;
}

/// A store that never answers (a stuck backend): only the whole-request timeout ends a call.
struct StuckStore;

#[async_trait::async_trait]
impl smile_factor_server::store::Store for StuckStore {
    async fn take_nonce(
        &self,
        _: &smile_factor_server::store::NonceKey,
    ) -> Result<bool, smile_factor_server::store::StoreError> {
        std::future::pending().await
    }
    async fn create(
        &self,
        _: &str,
        _: &smile_factor_server::challenge::Record,
    ) -> Result<bool, smile_factor_server::store::StoreError> {
        std::future::pending().await
    }
    async fn load(
        &self,
        _: &str,
    ) -> Result<
        Option<smile_factor_server::challenge::Snapshot>,
        smile_factor_server::store::StoreError,
    > {
        std::future::pending().await
    }
    async fn append_frame(
        &self,
        _: &str,
        _: usize,
        _: u64,
    ) -> Result<smile_factor_server::store::Cas, smile_factor_server::store::StoreError> {
        std::future::pending().await
    }
    async fn score_frame(
        &self,
        _: &str,
        _: usize,
        _: smile_factor_server::challenge::Score,
    ) -> Result<(), smile_factor_server::store::StoreError> {
        std::future::pending().await
    }
    async fn finish(
        &self,
        _: &str,
        _: usize,
    ) -> Result<smile_factor_server::store::Cas, smile_factor_server::store::StoreError> {
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_hangs_ends_in_a_json_408_and_the_server_stays_up() {
    let mut settings = settings(10_000);
    settings.request_timeout = std::time::Duration::from_millis(300);
    let srv = TestServer::with_store(
        settings,
        smile_factor_server::clock::FakeClock::new(T0_MS),
        std::sync::Arc::new(StuckStore),
    )
    .await;
    let started = std::time::Instant::now();
    let token = ctx_token(&ctx_claims(&fresh_nonce(), srv.now_secs()), CTX_SECRET);
    let (status, body) = srv
        .create(json!({"state": "stuck", "session_token": token}))
        .await;
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["error"], "timeout", "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The next request is answered the same way: nothing was left holding the server.
    assert_eq!(srv.frame("some-id", jpeg_crop("neutral_1")).await.0, 408);
    // The page's files do not touch the store.
    let page = srv.client.get(srv.url("/")).send().await.expect("get /");
    assert_eq!(page.status(), 200);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_time_out_and_wrong_methods_are_json_errors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::start().await;
    let addr = srv.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/v1/challenges HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\nConnection: close\r\n\r\n{{\"state\""
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    // The rest of the body never comes; the 300 ms body timeout answers.
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("answered in time")
    .expect("read");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"slow_body\""), "{text}");

    let res = srv
        .client
        .get(srv.url("/api/v1/challenges"))
        .send()
        .await
        .expect("send");
    let (status, body) = status_json(res).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    // Still up.
    srv.open("s").await;
    srv.stop().await;
}
