//! Start-up configuration from flags and environment variables, checked once with clear
//! errors. Secrets come from the environment only (a flag would show in `ps`). With no
//! secret set at all the server runs in demo mode with random keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum_client_ip::ClientIpSource;
use clap::Parser;
use thiserror::Error;
use url::Url;

use crate::challenge::Timing;
use crate::tokens::{random_id, Secret};

/// Shortest accepted secret, in bytes (HS256 wants at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;
/// A request body must arrive within this unless configured.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole request may take this long (a slow client or a stuck store cannot hold a worker).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Least estimated entropy of a secret, in bits.
const MIN_SECRET_BITS: f64 = 128.0;

/// Flags; each can also be given as the environment variable named in `--help`.
#[derive(Debug, Parser)]
#[command(
    name = "smile-factor-server",
    version,
    about = "smile-factor verifier: serves the page, re-runs the models on face crops and signs the verdict.",
    after_help = "Secrets come from the environment only: SMILE_CTX_SECRET, SMILE_CTX_SECRET_PREV (optional, \
rotation) and SMILE_VERDICT_SECRET, each at least 32 random bytes, ctx and verdict different. \
With none of them set the server runs in demo mode: random keys, a printed page URL, and a local /continue."
)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "SMILE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// This server's public origin, the `iss` of its verdict tokens (e.g. https://factor.example.com).
    #[arg(long, env = "SMILE_ISSUER")]
    pub issuer: Option<String>,
    /// Allowed ctx-token issuers (the Auth0 tenant domains), comma-separated.
    #[arg(long, env = "SMILE_TENANTS", value_delimiter = ',')]
    pub tenants: Vec<String>,
    /// Origins the page may POST its verdict to (CSP form-action); default: https:// + each tenant.
    #[arg(long, env = "SMILE_RETURN_ORIGINS", value_delimiter = ',')]
    pub return_origins: Vec<String>,
    /// Directory of the page to serve.
    #[arg(long, env = "SMILE_WWW", default_value = "www")]
    pub www: PathBuf,
    /// Directory holding tiny_face_detector.onnx and face_expression.onnx.
    #[arg(long, env = "SMILE_MODELS", default_value = "models")]
    pub models: PathBuf,
    /// Countdown of a challenge in milliseconds (5000..=120000).
    #[arg(long, env = "SMILE_DURATION_MS", default_value_t = 15_000)]
    pub duration_ms: u64,
    /// How often the page sends a crop, in milliseconds.
    #[arg(long, env = "SMILE_FRAME_INTERVAL_MS", default_value_t = 1_000)]
    pub frame_interval_ms: u64,
    /// A request body must arrive within this many milliseconds.
    #[arg(long, env = "SMILE_BODY_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_timeout_ms: u64,
    /// Challenges one IP address may open per minute (per instance).
    #[arg(long, env = "SMILE_CHALLENGES_PER_MINUTE", default_value_t = 30)]
    pub challenges_per_minute: u32,
    /// Where the client's address comes from: `ConnectInfo` (the socket: no proxy in
    /// front), or the header your proxy sets: `RightmostXForwardedFor` (nginx, HAProxy,
    /// most load balancers), `XRealIp`, `CfConnectingIp`, `TrueClientIp`, `FlyClientIp`,
    /// `CloudFrontViewerAddress`, `XEnvoyExternalAddress`.
    #[arg(long, env = "SMILE_CLIENT_IP_SOURCE", default_value = "ConnectInfo", value_parser = parse_client_ip_source)]
    pub client_ip_source: ClientIpSource,
    /// Keep the challenges in this Redis (redis://host:port[/db]) so several instances
    /// can serve them; default: in this process. A password belongs in the variable, not the flag.
    #[arg(long, env = "SMILE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
}

/// The secrets as read from the environment.
#[derive(Default)]
pub struct SecretEnv {
    pub ctx: Option<String>,
    pub ctx_prev: Option<String>,
    pub verdict: Option<String>,
}

impl SecretEnv {
    /// Reads `SMILE_CTX_SECRET`, `SMILE_CTX_SECRET_PREV` and `SMILE_VERDICT_SECRET`;
    /// an empty variable counts as unset.
    pub fn from_env() -> Self {
        let get = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
        Self {
            ctx: get("SMILE_CTX_SECRET"),
            ctx_prev: get("SMILE_CTX_SECRET_PREV"),
            verdict: get("SMILE_VERDICT_SECRET"),
        }
    }

    fn any(&self) -> bool {
        self.ctx.is_some() || self.ctx_prev.is_some() || self.verdict.is_some()
    }
}

/// A configuration the server refuses to start with.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    #[error("{0} is not set; set all of SMILE_CTX_SECRET, SMILE_VERDICT_SECRET, SMILE_ISSUER and SMILE_TENANTS, or none of the secrets for demo mode")]
    Missing(&'static str),
    #[error(
        "{name} is too short: {len} bytes, at least {MIN_SECRET_BYTES} random bytes are needed"
    )]
    ShortSecret { name: &'static str, len: usize },
    #[error("{name} looks like low-entropy text (about {bits:.0} bits); use at least {MIN_SECRET_BYTES} random bytes, e.g. `openssl rand -base64 32`")]
    WeakSecret { name: &'static str, bits: f64 },
    #[error("SMILE_CTX_SECRET and SMILE_VERDICT_SECRET must be different keys")]
    SameSecrets,
    #[error(
        "SMILE_CTX_SECRET_PREV equals SMILE_VERDICT_SECRET; the two directions need different keys"
    )]
    PrevIsVerdict,
    #[error("{name} is not a usable origin ({value:?}): {reason}")]
    BadOrigin {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("SMILE_TENANTS has an empty entry")]
    EmptyTenant,
    #[error("the duration must be 5000..=120000 ms and the frame interval 100..=duration, found {duration_ms} and {interval_ms}")]
    Timing { duration_ms: u64, interval_ms: u64 },
    #[error("--challenges-per-minute must be at least 1")]
    RateLimit,
}

fn parse_client_ip_source(s: &str) -> Result<ClientIpSource, String> {
    s.parse().map_err(|_| {
        format!("{s:?} is not a client address source; use ConnectInfo (no proxy), RightmostXForwardedFor, XRealIp, CfConnectingIp, TrueClientIp, FlyClientIp, CloudFrontViewerAddress or XEnvoyExternalAddress")
    })
}

/// Everything the running server needs, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Current ctx key first, then the previous one.
    pub ctx_keys: Vec<Secret>,
    pub verdict_key: Secret,
    /// `iss` of verdict tokens: this server's origin.
    pub issuer: String,
    /// Allowed ctx `iss` values.
    pub tenants: Vec<String>,
    /// CSP `form-action` origins besides 'self'.
    pub return_origins: Vec<String>,
    pub timing: Timing,
    pub challenges_per_minute: u32,
    /// Where the rate limit reads the client's address.
    pub client_ip_source: ClientIpSource,
    pub www: PathBuf,
    /// A request body must arrive within this (slow clients cannot hold a worker).
    pub body_timeout: Duration,
    /// A whole request must be answered within this; then 408 `timeout`.
    pub request_timeout: Duration,
    /// Demo mode: serves its own config.json and `/continue`.
    pub demo: bool,
}

impl Settings {
    /// Checks the flags and secrets. `local_origin` (the bound address) is the issuer,
    /// tenant and return origin in demo mode.
    pub fn new(args: &Args, secrets: SecretEnv, local_origin: &Url) -> Result<Self, ConfigError> {
        let timing = check_timing(args.duration_ms, args.frame_interval_ms)?;
        if args.challenges_per_minute == 0 {
            return Err(ConfigError::RateLimit);
        }
        if !secrets.any() {
            let mut demo = Self::demo(
                local_origin,
                timing,
                args.challenges_per_minute,
                args.www.clone(),
            )?;
            demo.body_timeout = Duration::from_millis(args.body_timeout_ms);
            demo.client_ip_source = args.client_ip_source.clone();
            return Ok(demo);
        }
        let ctx = check_secret("SMILE_CTX_SECRET", secrets.ctx)?;
        let verdict = check_secret("SMILE_VERDICT_SECRET", secrets.verdict)?;
        if ctx.same_as(&verdict) {
            return Err(ConfigError::SameSecrets);
        }
        let mut ctx_keys = vec![ctx];
        if let Some(prev) = secrets.ctx_prev {
            let prev = check_secret("SMILE_CTX_SECRET_PREV", Some(prev))?;
            if prev.same_as(&verdict) {
                return Err(ConfigError::PrevIsVerdict);
            }
            ctx_keys.push(prev);
        }
        let issuer = origin_of(
            "SMILE_ISSUER",
            args.issuer
                .as_deref()
                .ok_or(ConfigError::Missing("SMILE_ISSUER"))?,
        )?;
        if args.tenants.is_empty() {
            return Err(ConfigError::Missing("SMILE_TENANTS"));
        }
        let mut tenants = Vec::new();
        for t in &args.tenants {
            let t = t.trim();
            if t.is_empty() {
                return Err(ConfigError::EmptyTenant);
            }
            tenants.push(t.to_owned());
        }
        let return_origins = if args.return_origins.is_empty() {
            // A tenant is a domain (Auth0's `iss`) or already a URL.
            tenants
                .iter()
                .map(|t| {
                    let raw = if t.contains("://") {
                        t.clone()
                    } else {
                        format!("https://{t}")
                    };
                    origin_of("SMILE_TENANTS", &raw)
                })
                .collect::<Result<_, _>>()?
        } else {
            args.return_origins
                .iter()
                .map(|o| origin_of("SMILE_RETURN_ORIGINS", o.trim()))
                .collect::<Result<_, _>>()?
        };
        Ok(Self {
            ctx_keys,
            verdict_key: verdict,
            issuer,
            tenants,
            return_origins,
            timing,
            challenges_per_minute: args.challenges_per_minute,
            client_ip_source: args.client_ip_source.clone(),
            www: args.www.clone(),
            body_timeout: Duration::from_millis(args.body_timeout_ms),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            demo: false,
        })
    }

    /// Demo mode: fresh random keys, and this server as issuer, tenant and return target.
    pub fn demo(
        local_origin: &Url,
        timing: Timing,
        challenges_per_minute: u32,
        www: PathBuf,
    ) -> Result<Self, ConfigError> {
        let key = || {
            random_id(32)
                .map(Secret::new)
                .map_err(|_| ConfigError::Missing("a random source for the demo keys"))
        };
        let origin = origin_of("the listen address", local_origin.as_str())?;
        Ok(Self {
            ctx_keys: vec![key()?],
            verdict_key: key()?,
            issuer: origin.clone(),
            tenants: vec![origin.clone()],
            return_origins: vec![origin],
            timing,
            challenges_per_minute,
            client_ip_source: ClientIpSource::ConnectInfo,
            www,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            demo: true,
        })
    }
}

fn check_timing(duration_ms: u64, interval_ms: u64) -> Result<Timing, ConfigError> {
    if !(5_000..=120_000).contains(&duration_ms) || !(100..=duration_ms).contains(&interval_ms) {
        return Err(ConfigError::Timing {
            duration_ms,
            interval_ms,
        });
    }
    Ok(Timing::new(duration_ms, interval_ms))
}

/// Refuses a missing, short or obviously low-entropy secret.
pub fn check_secret(name: &'static str, value: Option<String>) -> Result<Secret, ConfigError> {
    let value = value.ok_or(ConfigError::Missing(name))?;
    let bytes = value.as_bytes();
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(ConfigError::ShortSecret {
            name,
            len: bytes.len(),
        });
    }
    let bits = entropy_bits(bytes);
    if bits < MIN_SECRET_BITS {
        return Err(ConfigError::WeakSecret { name, bits });
    }
    Ok(Secret::new(bytes.to_vec()))
}

/// Shannon entropy of the byte histogram times the length: a rough upper bound that
/// still catches repeats, short alphabets and words (hex and base64 keys pass easily).
fn entropy_bits(bytes: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    let per_byte: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    per_byte * n
}

/// `scheme://host[:port]` of an http(s) URL without path, query or credentials.
fn origin_of(name: &'static str, raw: &str) -> Result<String, ConfigError> {
    let bad = |reason| ConfigError::BadOrigin {
        name,
        value: raw.to_owned(),
        reason,
    };
    let url = Url::parse(raw).map_err(|_| bad("not an absolute URL"))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(bad("the scheme must be https (or http for local testing)"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it must not carry credentials"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must be an origin, without path, query or fragment"));
    }
    if url.host().is_none() {
        return Err(bad("it has no host"));
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_secrets_are_refused() {
        let short = check_secret("X", Some("abc".into()));
        assert!(matches!(short, Err(ConfigError::ShortSecret { .. })));
        for weak in ["a".repeat(64), "ab".repeat(32), "password".repeat(5)] {
            assert!(
                matches!(
                    check_secret("X", Some(weak.clone())),
                    Err(ConfigError::WeakSecret { .. })
                ),
                "{weak}"
            );
        }
        let hex = "3f9a0c4be21d7785a6c0f11e9b3d42aa07c5e86d19f2b4a3c8e7d6015b9f0a2c";
        assert!(check_secret("X", Some(hex.into())).is_ok());
        let b64 = "q8M1v0JrZ2xKc3RQd0Y5aGtXbUx4cE5zVGJ6QWVGZ0g";
        assert!(check_secret("X", Some(b64.into())).is_ok());
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("X", "https://a.test").as_deref(),
            Ok("https://a.test")
        );
        assert!(origin_of("X", "https://a.test/path").is_err());
        assert!(origin_of("X", "ftp://a.test").is_err());
        assert!(origin_of("X", "tenant.auth0.com").is_err());
    }
}
