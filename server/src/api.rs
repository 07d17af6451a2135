//! The challenge API of the signed mode: open a challenge with a ctx token, upload face crops,
//! finish for a signed verdict. Every failure is an [`ApiError`] (JSON, defined status).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_client_ip::{ClientIp, Rejection as ClientIpRejection};
use serde::{Deserialize, Serialize};

use crate::challenge::{Record, Score, Snapshot};
use crate::error::ApiError;
use crate::frames::{decode_crop, MAX_FRAME_BYTES};
use crate::prompts;
use crate::store::{Cas, ClientKey, NonceKey};
use crate::tokens::{
    random_id, sign_verdict, validate_ctx, VerdictClaims, PROTOCOL_VERSION, VERDICT_TTL_SECS,
};
use crate::App;
use smile_factor::challenge::prompt::{Mode, Prompt};

/// Largest accepted challenge request (a 2 KiB state plus a token).
pub const MAX_JSON_BYTES: usize = 8 * 1024;
/// Longest challenge id we look up (ours are 22 characters).
const MAX_ID_LEN: usize = 64;
/// Compare-and-set attempts before a request racing others for one challenge gives up.
const MAX_CAS_ROUNDS: usize = 8;
/// A finish waits at most this long for frames still in analysis, polling.
const PENDING_WAIT: Duration = Duration::from_secs(2);
const PENDING_POLL: Duration = Duration::from_millis(20);

/// `POST /api/v1/challenges` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    state: String,
    session_token: String,
    // Prompts hook: the page's mode, signed into the token for the Action to check.
    #[serde(default)]
    mode: Mode,
}

/// `201` answer.
#[derive(Serialize)]
struct CreateResponse {
    challenge: String,
    duration_ms: u64,
    frame_interval_ms: u64,
    max_frames: u32,
}

/// `finish` answer.
#[derive(Serialize)]
struct FinishResponse {
    token: String,
    notsmiling: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// True when the Content-Type's media type (parameters ignored) is `expected`.
fn has_content_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(expected))
}

/// Reads at most `limit` bytes; a longer body is 413 whether or not it declared its length.
async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::TooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let inner = e.into_inner();
        if caused_by::<http_body_util::LengthLimitError>(inner.as_ref()) {
            ApiError::TooLarge { limit }
        } else if caused_by::<tower_http::timeout::TimeoutError>(inner.as_ref()) {
            ApiError::SlowBody
        } else {
            ApiError::BadBody
        }
    })
}

/// True when `T` is the error or any of its sources (layers wrap body errors).
fn caused_by<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<T>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// serde_json's message without the input it quotes, cut short.
fn json_message(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            format!("malformed JSON at line {} column {}", e.line(), e.column())
        }
        Category::Data => e.to_string().chars().take(160).collect(),
    }
}

/// `POST /api/v1/challenges`.
pub async fn create(
    State(app): State<App>,
    client: Result<ClientIp, ClientIpRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Behind a proxy, a request without its header did not come through it: refused.
    let ClientIp(ip) = client.map_err(|_| ApiError::NoClientAddress)?;
    let client = ClientKey::new(ip);
    // This process's limiter first: a flood from one client never reaches the store.
    if app.limiter.check_key(&client).is_err() {
        return Err(ApiError::RateLimited);
    }
    let budget = u64::from(app.settings.challenges_per_minute);
    if let Some(n) = app.store.count_creation(&client).await? {
        if n > budget {
            return Err(ApiError::RateLimited);
        }
    }
    if !has_content_type(&headers, "application/json") {
        return Err(ApiError::UnsupportedMediaType {
            expected: "application/json",
        });
    }
    let bytes = read_limited(&headers, body, MAX_JSON_BYTES).await?;
    let req: CreateRequest =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::BadJson(json_message(&e)))?;
    smile_factor::challenge::redirect::validate_state(Some(&req.state))?;
    let settings = &app.settings;
    let keys: Vec<_> = settings.ctx_keys.iter().collect();
    let ctx = validate_ctx(
        &req.session_token,
        &keys,
        &settings.tenants,
        app.clock.now_secs(),
    )?;
    // Last check, so a request refused for another reason does not burn the nonce.
    if !app
        .store
        .take_nonce(&NonceKey::new(&ctx.iss, &ctx.nonce))
        .await?
    {
        return Err(ApiError::NonceReused);
    }
    let timing = settings.timing;
    let schedule = prompts::draw_os(timing.duration_ms, timing.frame_interval_ms, req.mode)
        .map_err(|_| ApiError::Internal)?;
    let record = Record {
        ctx,
        state: req.state,
        timing,
        started_ms: app.clock.now_ms(),
        mode: req.mode,
        schedule,
    };
    let id = random_id(16)?;
    // 128 random bits do not collide; a taken id would be a broken random source.
    if !app.store.create(&id, &record).await? {
        return Err(ApiError::Internal);
    }
    let answer = CreateResponse {
        challenge: id,
        duration_ms: timing.duration_ms,
        frame_interval_ms: timing.frame_interval_ms,
        max_frames: timing.max_frames,
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// True for an id we could have made (base64url, not too long): anything else is unknown
/// without asking the store.
fn plausible_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn lookup(app: &App, id: &str) -> Result<Snapshot, ApiError> {
    if !plausible_id(id) {
        return Err(ApiError::UnknownChallenge);
    }
    app.store.load(id).await?.ok_or(ApiError::UnknownChallenge)
}

/// Admits a frame that arrived at `at`: applies the rules to the latest snapshot and
/// appends only if no other frame was appended meanwhile (on any instance), else reads
/// again. Returns the new entry's index and the prompt this frame reveals, if any
/// (judged on the very log it was appended to, so exactly one frame reveals a prompt).
async fn admit(
    app: &App,
    id: &str,
    mut snap: Snapshot,
    at: u64,
) -> Result<(usize, Option<Prompt>), ApiError> {
    for _ in 0..MAX_CAS_ROUNDS {
        snap.admit(at)?;
        let prompt = snap.reveals(at);
        match app.store.append_frame(id, snap.frames.len(), at).await? {
            Cas::Done(index) => return Ok((index, prompt)),
            Cas::Stale => snap = lookup(app, id).await?,
            Cas::Finished => return Err(ApiError::Finished),
            Cas::Gone => return Err(ApiError::UnknownChallenge),
        }
    }
    // Frames racing for one challenge: the spacing rule would refuse all but one anyway.
    Err(ApiError::TooFast {
        interval_ms: snap.record.timing.frame_interval_ms,
    })
}

/// `POST /api/v1/challenges/{id}/frames`.
pub async fn frame(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Arrival time: the spacing and window rules judge when the page sent the crop, not
    // how long it queued behind busy cores (under load that turned on-time crops into 429s).
    let at = app.clock.now_ms();
    if !has_content_type(&headers, "image/jpeg") {
        return Err(ApiError::UnsupportedMediaType {
            expected: "image/jpeg",
        });
    }
    let bytes = read_limited(&headers, body, MAX_FRAME_BYTES).await?;
    let snap = lookup(&app, &id).await?;
    let crop = tokio::task::spawn_blocking(move || decode_crop(&bytes))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|e| ApiError::BadFrame(e.to_string()))?;
    let (index, prompt) = admit(&app, &id, snap, at).await?;
    let judge = Arc::clone(&app.judge);
    let smile = tokio::task::spawn_blocking(move || judge.smile(&crop))
        .await
        .map_err(|_| ApiError::Internal)
        .and_then(|r| r.map_err(|_| ApiError::Internal));
    // A failed analysis is recorded too, so a finish does not wait for it.
    let score = smile.as_ref().map_or(Score::Failed, |s| Score::of(*s));
    app.store.score_frame(&id, index, score).await?;
    smile?;
    // The prompt this crop revealed, if any: the only time the page learns of it.
    let answer = match prompt {
        Some(p) => serde_json::json!({ "prompt": p }),
        None => serde_json::json!({}),
    };
    Ok(Json(answer).into_response())
}

/// Reads the challenge for its finish: waits (bounded) while a frame admitted earlier is
/// still being analysed, perhaps on another instance, so its score counts.
async fn settled(app: &App, id: &str) -> Result<Snapshot, ApiError> {
    let give_up = tokio::time::Instant::now() + PENDING_WAIT;
    loop {
        let snap = lookup(app, id).await?;
        if snap.finished || !snap.has_pending() || tokio::time::Instant::now() >= give_up {
            return Ok(snap);
        }
        tokio::time::sleep(PENDING_POLL).await;
    }
}

/// `POST /api/v1/challenges/{id}/finish`.
pub async fn finish(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let now = app.clock.now_ms();
    let mut snap = settled(&app, &id).await?;
    let mut won = None;
    for _ in 0..MAX_CAS_ROUNDS {
        let outcome = snap.decide(now)?;
        // The flag is set once, on one instance, and only if no frame came in since the
        // snapshot was read: this outcome is exactly what the log holds.
        match app.store.finish(&id, snap.frames.len()).await? {
            Cas::Done(_) => {
                won = Some(outcome);
                break;
            }
            Cas::Stale => snap = settled(&app, &id).await?,
            Cas::Finished => return Err(ApiError::Finished),
            Cas::Gone => return Err(ApiError::UnknownChallenge),
        }
    }
    let outcome = won.ok_or(ApiError::TooFast {
        interval_ms: snap.record.timing.frame_interval_ms,
    })?;
    let challenge = &snap.record;
    let iat = app.clock.now_secs();
    let reason = outcome.reason.map(|r| r.as_str());
    let claims = VerdictClaims {
        iss: app.settings.issuer.clone(),
        aud: challenge.ctx.iss.clone(),
        sub: challenge.ctx.sub.clone(),
        state: challenge.state.clone(),
        nonce: challenge.ctx.nonce.clone(),
        jti: random_id(16)?,
        iat,
        exp: iat + VERDICT_TTL_SECS,
        notsmiling: outcome.notsmiling,
        reason: reason.map(str::to_owned),
        frames: outcome.stats.frames_analysed,
        prompts: snap.prompts().claim(),
        mode: challenge.mode.as_str().to_owned(),
        v: PROTOCOL_VERSION,
    };
    let token = sign_verdict(&claims, &app.settings.verdict_key)?;
    let mut res = Json(FinishResponse {
        token,
        notsmiling: outcome.notsmiling,
        reason,
    })
    .into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

/// Any other method on an API route.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
