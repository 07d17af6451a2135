//! Test harness: starts the real server on a free loopback port with a fake clock and
//! known keys, and makes ctx tokens and JPEG crops from the fixtures.
#![allow(dead_code)]

pub mod redis_server;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};
use smile_factor_server::challenge::Timing;
use smile_factor_server::clock::FakeClock;
use smile_factor_server::config::Settings;
use smile_factor_server::judge::JudgePool;
use smile_factor_server::store::Store;
use smile_factor_server::tokens::{Secret, VerdictClaims};
use smile_factor_server::{load_judge, serve, App};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const CTX_SECRET: &str = "ctx-3f9a0c4be21d7785a6c0f11e9b3d42aa07c5e86d19f2b4a3";
pub const CTX_SECRET_PREV: &str = "prev-8b1e77f0c2a94d3e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2";
pub const VERDICT_SECRET: &str = "vrd-c5e86d19f2b4a3c8e7d6015b9f0a2c3f9a0c4be21d7785a6";
pub const ISSUER: &str = "https://verifier.test";
pub const TENANT: &str = "tenant.test";
pub const SUB: &str = "auth0|123";
/// Fake clock's start, in Unix ms.
pub const T0_MS: u64 = 1_800_000_000_000;
pub const DURATION_MS: u64 = 5_000;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The models, loaded once per test binary.
pub fn judge() -> Arc<JudgePool> {
    static JUDGE: OnceLock<Arc<JudgePool>> = OnceLock::new();
    JUDGE
        .get_or_init(|| Arc::new(load_judge(&root().join("models")).expect("models load")))
        .clone()
}

pub struct TestServer {
    pub base: String,
    pub clock: FakeClock,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub fn settings(challenges_per_minute: u32) -> Settings {
    Settings {
        ctx_keys: vec![Secret::new(CTX_SECRET), Secret::new(CTX_SECRET_PREV)],
        verdict_key: Secret::new(VERDICT_SECRET),
        issuer: ISSUER.to_owned(),
        tenants: vec![TENANT.to_owned()],
        return_origins: vec![format!("https://{TENANT}")],
        timing: Timing::new(DURATION_MS, 1_000),
        challenges_per_minute,
        client_ip_source: axum_client_ip::ClientIpSource::ConnectInfo,
        www: root().join("www"),
        body_timeout: std::time::Duration::from_millis(300),
        request_timeout: smile_factor_server::config::DEFAULT_REQUEST_TIMEOUT,
        demo: false,
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with_settings(settings(10_000)).await
    }

    /// A server whose static root is `www` (the default settings otherwise).
    pub async fn serving(www: PathBuf) -> Self {
        Self::with_settings(Settings {
            www,
            ..settings(100)
        })
        .await
    }

    pub async fn with_settings(settings: Settings) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let clock = FakeClock::new(T0_MS);
        let app = App::new(settings, Arc::new(clock.clone()), judge()).expect("app");
        Self::run(listener, app, clock, format!("http://{addr}"))
    }

    /// An instance keeping its challenges in `store`, on `clock` (instances that share a
    /// store share a clock too, as servers on NTP do).
    pub async fn with_store(settings: Settings, clock: FakeClock, store: Arc<dyn Store>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = App::with_store(settings, Arc::new(clock.clone()), judge(), store).expect("app");
        Self::run(listener, app, clock, format!("http://{addr}"))
    }

    /// Demo mode with its own origin as issuer.
    pub async fn demo() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let origin = url::Url::parse(&base).expect("origin");
        let settings = Settings::demo(
            &origin,
            Timing::new(DURATION_MS, 1_000),
            1_000,
            root().join("www"),
        )
        .expect("demo settings");
        let clock = FakeClock::new(T0_MS);
        let app = App::new(settings, Arc::new(clock.clone()), judge()).expect("app");
        Self::run(listener, app, clock, base)
    }

    fn run(listener: TcpListener, app: App, clock: FakeClock, base: String) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, app, async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            base,
            clock,
            client,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A GET of a static path with the given `Accept-Encoding`.
    pub fn get_accepting(&self, path: &str, accept: &str) -> reqwest::RequestBuilder {
        self.client
            .get(self.url(path))
            .header("accept-encoding", accept)
    }

    /// POSTs a challenge request; returns status and JSON.
    pub async fn create(&self, body: Value) -> (u16, Value) {
        let res = self
            .client
            .post(self.url("/api/v1/challenges"))
            .json(&body)
            .send()
            .await
            .expect("send");
        status_json(res).await
    }

    /// Opens a challenge with a fresh valid ctx token; returns its id and the nonce.
    pub async fn open(&self, state: &str) -> (String, String) {
        let nonce = fresh_nonce();
        let token = ctx_token(&ctx_claims(&nonce, self.now_secs()), CTX_SECRET);
        (self.open_with(state, &token).await, nonce)
    }

    /// Opens a challenge with `session_token`, which must be accepted; returns its id.
    pub async fn open_with(&self, state: &str, session_token: &str) -> String {
        let (status, body) = self
            .create(json!({"state": state, "session_token": session_token}))
            .await;
        assert_eq!(status, 201, "{body}");
        body["challenge"].as_str().expect("id").to_owned()
    }

    /// Uploads the fixture crop `name` `n` times, a second apart by the fake clock.
    pub async fn send_frames(&self, id: &str, name: &str, n: u32) {
        let jpeg = jpeg_crop(name);
        assert!(jpeg.len() <= 16 * 1024, "crop is {} bytes", jpeg.len());
        for _ in 0..n {
            let (status, body) = self.frame(id, jpeg.clone()).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body, json!({}));
            self.clock.advance(1_000);
        }
    }

    /// Finishes a challenge that must be decided; returns the verdict token.
    pub async fn finish_token(&self, id: &str) -> String {
        let (status, body) = self.finish(id).await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().expect("token").to_owned()
    }

    pub async fn frame(&self, id: &str, jpeg: Vec<u8>) -> (u16, Value) {
        let res = self
            .client
            .post(self.url(&format!("/api/v1/challenges/{id}/frames")))
            .header("content-type", "image/jpeg")
            .body(jpeg)
            .send()
            .await
            .expect("send");
        status_json(res).await
    }

    pub async fn finish(&self, id: &str) -> (u16, Value) {
        let res = self
            .client
            .post(self.url(&format!("/api/v1/challenges/{id}/finish")))
            .send()
            .await
            .expect("send");
        status_json(res).await
    }

    pub fn now_secs(&self) -> u64 {
        use smile_factor_server::clock::Clock;
        self.clock.now_secs()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

pub async fn status_json(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// 128 random-looking bits; unique per call within a test binary.
pub fn fresh_nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "nonce-{:032x}",
        N.fetch_add(1, Ordering::SeqCst)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
    )
}

pub fn ctx_claims(nonce: &str, now_secs: u64) -> Value {
    json!({
        "sub": SUB, "iss": TENANT, "iat": now_secs, "exp": now_secs + 300,
        "use": "smile-ctx", "nonce": nonce, "v": 1
    })
}

pub fn ctx_token(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()).expect("key"),
    )
    .expect("encode")
}

/// A verdict token checked as the Action checks it (HS256, issuer, audience, the
/// registered claims), except its expiry: the fake clock is in the future.
pub fn decode_verdict(token: &str) -> (Header, VerdictClaims) {
    let header = jsonwebtoken::decode_header(token).expect("header");
    let mut v = Validation::new(Algorithm::HS256);
    v.validate_exp = false;
    v.set_audience(&[TENANT]);
    v.set_issuer(&[ISSUER]);
    v.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
    let data = jsonwebtoken::decode::<VerdictClaims>(
        token,
        &DecodingKey::from_secret(VERDICT_SECRET.as_bytes()).expect("key"),
        &v,
    )
    .expect("a valid verdict token");
    (header, data.claims)
}

/// The claims of a verdict token (`decode_verdict`).
pub fn verdict_claims(token: &str) -> VerdictClaims {
    decode_verdict(token).1
}

/// An unsigned token with `alg: none`.
pub fn none_token(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// A fixture crop (112x112 PNG), with a margin of edge pixels as the page's tracked
/// crop has, encoded as JPEG.
pub fn jpeg_crop(name: &str) -> Vec<u8> {
    let path = root()
        .join("tests/fixtures/crops")
        .join(format!("{name}.png"));
    let img = image::open(&path).expect("fixture").to_rgb8();
    let margin = 28u32;
    let side = img.width() + 2 * margin;
    let padded = image::RgbImage::from_fn(side, side, |x, y| {
        let cx = x.saturating_sub(margin).min(img.width() - 1);
        let cy = y.saturating_sub(margin).min(img.height() - 1);
        *img.get_pixel(cx, cy)
    });
    encode_jpeg(&padded)
}

pub fn encode_jpeg(img: &image::RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(img)
        .expect("jpeg");
    out
}
