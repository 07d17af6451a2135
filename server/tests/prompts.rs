//! Just-in-time prompts over HTTP against the real server on loopback, with the real
//! models on the fixture crops and a fake clock: a prompt is revealed only in the answer
//! to the crop that is due, following them passes, ignoring them fails `prompt_missed`,
//! and the verdict token carries `prompts` and `mode`.

mod common;

use common::*;
use serde_json::{json, Value};
use smile_factor_server::challenge::Timing;
use smile_factor_server::config::Settings;
use smile_factor_server::tokens::VerdictClaims;

/// A 15 s countdown: room for 2 or 3 prompts.
fn long_countdown() -> Settings {
    Settings {
        timing: Timing::new(15_000, 1_000),
        ..settings(10_000)
    }
}

/// One challenge of 15 crops a second apart; `face(prompted)` picks the crop, where
/// `prompted` says the previous answer revealed a prompt. Gives the answers that
/// revealed one, the finish body and the token's claims.
async fn run(
    srv: &TestServer,
    mode: Option<&str>,
    face: impl Fn(bool) -> &'static str,
) -> (Vec<Value>, Value, VerdictClaims) {
    let nonce = fresh_nonce();
    let token = ctx_token(&ctx_claims(&nonce, srv.now_secs()), CTX_SECRET);
    let mut body = json!({"state": "s", "session_token": token});
    if let Some(m) = mode {
        body["mode"] = json!(m);
    }
    let (status, created) = srv.create(body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["challenge"].as_str().expect("id").to_owned();
    let mut prompts = vec![];
    let mut prompted = false;
    for _ in 0..15 {
        let (status, answer) = srv.frame(&id, jpeg_crop(face(prompted))).await;
        assert_eq!(status, 200, "{answer}");
        prompted = answer.get("prompt").is_some();
        if prompted {
            prompts.push(answer["prompt"].clone());
        } else {
            assert_eq!(answer, json!({}));
        }
        srv.clock.advance(1_000);
    }
    let (status, finished) = srv.finish(&id).await;
    assert_eq!(status, 200, "{finished}");
    let c = verdict_claims(finished["token"].as_str().expect("token"));
    (prompts, finished, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_the_prompts_passes_and_the_token_says_so() {
    let srv = TestServer::with_settings(long_countdown()).await;
    let (prompts, body, c) = run(&srv, None, |p| if p { "smile_1" } else { "neutral_1" }).await;
    assert!((2..=3).contains(&prompts.len()), "{prompts:?}");
    for p in &prompts {
        assert_eq!(p, &json!({"kind": "smile", "within_ms": 2_500}));
    }
    assert_eq!(body["notsmiling"], true, "{body}");
    assert!(c.notsmiling);
    assert_eq!(c.prompts, format!("{0}/{0}", prompts.len()));
    assert_eq!(c.mode, "straight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_the_prompts_fails_prompt_missed_and_smiling_throughout_fails_smiled() {
    let srv = TestServer::with_settings(long_countdown()).await;
    let (prompts, body, c) = run(&srv, None, |_| "neutral_1").await;
    assert_eq!(body["reason"], "prompt_missed", "{body}");
    assert_eq!(c.reason.as_deref(), Some("prompt_missed"));
    assert_eq!(c.prompts, format!("0/{}", prompts.len()));
    let (_, body, _) = run(&srv, None, |_| "smile_1").await;
    assert_eq!(body["reason"], "smiled", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smile_mode_prompts_for_a_straight_face_and_signs_its_mode() {
    let srv = TestServer::with_settings(long_countdown()).await;
    let (prompts, body, c) = run(
        &srv,
        Some("smile"),
        |p| if p { "neutral_1" } else { "smile_1" },
    )
    .await;
    assert_eq!(prompts[0]["kind"], "straight");
    assert_eq!(body["notsmiling"], true, "{body}");
    assert_eq!(c.mode, "smile");
    let (_, body, _) = run(&srv, Some("smile"), |_| "neutral_1").await;
    assert_eq!(body["reason"], "no_smile", "{body}");
    let (status, _) = srv
        .create(json!({"state": "s", "session_token": "x", "mode": "laugh"}))
        .await;
    assert_eq!(status, 400);
}
