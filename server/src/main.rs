//! `smile-factor-server`: reads flags and environment, loads the models, binds, and
//! serves. Demo mode (no secrets) prints a page URL with a freshly minted ctx token.

// No unwrap or expect where a request can reach (tests may use them).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use smile_factor_server::clock::SystemClock;
use smile_factor_server::config::{Args, SecretEnv, Settings};
use smile_factor_server::store::{redis_host, RedisStore, Ttls};
use smile_factor_server::{demo, load_judge, serve, App};
use tokio::net::TcpListener;
use url::Url;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("smile-factor-server: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let judge = load_judge(&args.models).map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    // The origin a local browser uses; an unspecified address means loopback here.
    let mut origin = Url::parse("http://127.0.0.1/").map_err(|e| e.to_string())?;
    if !bound.ip().is_unspecified() {
        origin
            .set_ip_host(bound.ip())
            .map_err(|()| "cannot build the local origin".to_owned())?;
    }
    origin
        .set_port(Some(bound.port()))
        .map_err(|()| "cannot build the local origin".to_owned())?;
    let settings =
        Settings::new(&args, SecretEnv::from_env(), &origin).map_err(|e| e.to_string())?;
    let demo_mode = settings.demo;
    let clock = Arc::new(SystemClock::new());
    let app = match args.redis_url.as_deref().filter(|u| !u.is_empty()) {
        None => App::new(settings, clock, Arc::new(judge)),
        Some(url) => {
            let host = redis_host(url);
            let store = RedisStore::new(url, Ttls::for_timing(&settings.timing))
                .map_err(|e| format!("{e}"))?;
            // A wrong URL is the usual mistake: say so now rather than at the first login.
            store
                .ping()
                .await
                .map_err(|e| format!("cannot use Redis at {host}: {e}"))?;
            tracing::info!(redis = %host, "challenges in Redis");
            App::with_store(settings, clock, Arc::new(judge), Arc::new(store))
        }
    }
    .map_err(|e| e.to_string())?;
    if demo_mode {
        let link = demo::mint_link(&app).map_err(|e| e.to_string())?;
        let mut fresh = origin.clone();
        fresh.set_path("/demo");
        println!("smile-factor-server: DEMO MODE (random keys; no secrets set)");
        println!("Open this page (one login; {fresh} starts a fresh one each visit):");
        println!("{link}");
    } else {
        println!("smile-factor-server: listening on {origin}");
    }
    serve(listener, app, shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
