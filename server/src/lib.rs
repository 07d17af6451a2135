//! smile-factor-server: the verifier of the signed mode. It serves the page, opens challenges
//! for a ctx token from the Auth0 Action, re-runs the models on the face crops the page
//! uploads, decides with the core's verdict rules by its own clock, and signs the result.
//!
//! The binary (`main.rs`) only parses the configuration and calls [`serve`]; the
//! integration tests build an [`App`] with a fake clock and call the same function.

// No unwrap or expect where a request can reach (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod challenge;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod frames;
pub mod judge;
pub mod prompts;
pub mod statics;
pub mod store;
pub mod tokens;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::clock::Clock;
use crate::config::Settings;
use crate::demo::Demo;
use crate::judge::JudgePool;
use crate::statics::{Statics, STRICT_CSP};
use crate::store::{ClientKey, MemoryStore, Store, Ttls};

/// Shared state of the running server; cheap to clone.
#[derive(Clone)]
pub struct App {
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    pub judge: Arc<JudgePool>,
    pub statics: Arc<Statics>,
    /// Challenges and used ctx nonces: in this process, or shared by instances (Redis).
    pub store: Arc<dyn Store>,
    /// Challenge creations per client, in this process; a shared store counts across
    /// instances as well ([`Store::count_creation`]).
    pub limiter: Arc<DefaultKeyedRateLimiter<ClientKey>>,
    /// Demo mode's logins; `None` in production.
    pub demo: Option<Arc<Demo>>,
}

/// A failure at start, with a message for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read the model {path}: {source}")]
    ModelFile {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot load the models: {0}")]
    Model(#[from] smile_factor::SmileError),
    #[error("the page directory {path} is not usable: {source}")]
    Www {
        path: String,
        source: std::io::Error,
    },
}

impl App {
    /// Builds the state from checked settings and loaded models, with the challenges in
    /// this process ([`MemoryStore`]).
    pub fn new(
        settings: Settings,
        clock: Arc<dyn Clock>,
        judge: Arc<JudgePool>,
    ) -> Result<Self, StartError> {
        let store = Arc::new(MemoryStore::new(Ttls::for_timing(&settings.timing)));
        Self::with_store(settings, clock, judge, store)
    }

    /// The same with the challenges in `store` (for example a [`store::RedisStore`]
    /// shared by several instances).
    pub fn with_store(
        settings: Settings,
        clock: Arc<dyn Clock>,
        judge: Arc<JudgePool>,
        store: Arc<dyn Store>,
    ) -> Result<Self, StartError> {
        let statics = Statics::new(&settings.www).map_err(|source| StartError::Www {
            path: settings.www.display().to_string(),
            source,
        })?;
        let per_minute = NonZeroU32::new(settings.challenges_per_minute).unwrap_or(NonZeroU32::MIN);
        let demo = settings.demo.then(|| Arc::new(Demo::default()));
        Ok(Self {
            store,
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
            settings: Arc::new(settings),
            clock,
            judge,
            statics: Arc::new(statics),
            demo,
        })
    }

    /// Demo mode's generated config.json; `None` serves the file from `www/`.
    pub fn demo_config(&self) -> Option<String> {
        self.demo.as_ref().map(|_| demo::page_config(self))
    }
}

/// Loads both models from `dir` once, one copy per core (at most four).
pub fn load_judge(dir: &Path) -> Result<JudgePool, StartError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| StartError::ModelFile {
            path: path.display().to_string(),
            source,
        })
    };
    let copies = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    Ok(JudgePool::new(
        &read("tiny_face_detector.onnx")?,
        &read("face_expression.onnx")?,
        copies,
    )?)
}

/// The access log: method, path without query, status, latency. Nothing else, ever:
/// no query (it carries the ctx token), no header, no body.
/// Answers 408 `timeout` (a JSON error like every other) when the request is not done in
/// time; dropping the handler's future releases what it held.
async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<Duration>,
    req: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => error::ApiError::Timeout.into_response(),
    }
}

async fn access_log(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let start = Instant::now();
    let res = next.run(req).await;
    tracing::info!(
        %method,
        path = %path,
        status = res.status().as_u16(),
        latency_ms = start.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    res
}

/// The CSP of the page: strict, plus where the verdict form may be posted.
fn page_csp(settings: &Settings) -> HeaderValue {
    let mut csp = format!("{STRICT_CSP}; form-action 'self'");
    for origin in &settings.return_origins {
        csp.push(' ');
        csp.push_str(origin);
    }
    // Origins were checked at start, so this only fails on a bug; then stay strict.
    HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static(STRICT_CSP))
}

/// All routes and layers.
pub fn router(app: App) -> Router {
    let csp = page_csp(&app.settings);
    let body_timeout = app.settings.body_timeout;
    let request_timeout_limit = app.settings.request_timeout;
    let app_client_ip_source = app.settings.client_ip_source.clone().into_extension();
    let mut routes = Router::new()
        .route("/api/v1/challenges", post(api::create))
        .route("/api/v1/challenges/{id}/frames", post(api::frame))
        .route("/api/v1/challenges/{id}/finish", post(api::finish))
        .method_not_allowed_fallback(api::method_not_allowed);
    if app.demo.is_some() {
        routes = routes
            .route("/continue", post(demo::continue_post))
            .route("/demo", get(demo::start));
    }
    routes
        // The API's bodies are compressed on the fly; the page's files choose their own
        // representation (precompressed siblings, ETag per encoding: `statics`).
        .route_layer(CompressionLayer::new())
        .fallback(statics::serve)
        .with_state(app)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            csp,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(axum::middleware::from_fn_with_state(
            request_timeout_limit,
            request_timeout,
        ))
        .layer(app_client_ip_source)
        .layer(axum::middleware::from_fn(access_log))
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: App,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
