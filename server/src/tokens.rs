//! The two HS256 tokens of the protocol (issue 14): the ctx token the Auth0 Action mints
//! with `api.redirect.encodeToken`, checked here, and the verdict token this server signs
//! for `api.redirect.validateToken`. The two directions use different keys, so a token
//! cannot be reflected from one into the other.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The `use` claim of a ctx token.
pub const CTX_USE: &str = "smile-ctx";
/// Protocol version in both tokens.
pub const PROTOCOL_VERSION: u32 = 1;
/// A verdict token lives this long (`exp - iat`); the Action checks it too.
pub const VERDICT_TTL_SECS: u64 = 120;
/// Longest ctx lifetime accepted from now: used nonces are remembered this long.
pub const MAX_CTX_LIFETIME_SECS: u64 = 15 * 60;
/// Clock skew allowed between Auth0 and this server on `exp`.
pub const LEEWAY_SECS: u64 = 30;
/// Longest accepted nonce (the Action's are 128-bit hex or base64).
const MAX_NONCE_BYTES: usize = 128;

/// An HS256 secret with its key id; the bytes never reach a log (no `Debug` of them).
#[derive(Clone)]
pub struct Secret {
    bytes: Vec<u8>,
    kid: String,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Secret {
    /// Wraps the secret as Auth0 uses it: the UTF-8 bytes of the string.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        let bytes = bytes.into();
        // A hash prefix identifies the key for rotation without revealing it.
        let digest = Sha256::new()
            .chain_update(b"smile-factor key id\0")
            .chain_update(&bytes)
            .finalize();
        let kid = URL_SAFE_NO_PAD.encode(&digest[..9]);
        Self { bytes, kid }
    }

    /// The key id written into the verdict token's header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Same bytes.
    pub fn same_as(&self, other: &Secret) -> bool {
        self.bytes == other.bytes
    }

    fn decoding(&self) -> Result<DecodingKey, jsonwebtoken::errors::Error> {
        DecodingKey::from_secret(&self.bytes)
    }

    fn encoding(&self) -> Result<EncodingKey, ApiError> {
        EncodingKey::from_secret(&self.bytes).map_err(|_| ApiError::Internal)
    }
}

/// What the server keeps of a valid ctx token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CtxClaims {
    pub sub: String,
    pub iss: String,
    pub exp: u64,
    #[serde(default)]
    pub iat: Option<u64>,
    #[serde(rename = "use")]
    pub use_: String,
    pub nonce: String,
    pub v: u32,
}

/// Validates a ctx token: HS256 only, signed by the current or the previous ctx key,
/// not expired by `now_secs`, `iss` one of `tenants`, `use` and `v` as the protocol says.
pub fn validate_ctx(
    token: &str,
    keys: &[&Secret],
    tenants: &[String],
    now_secs: u64,
) -> Result<CtxClaims, ApiError> {
    let mut validation = Validation::new(Algorithm::HS256);
    // Expiry is checked below against the server's Clock, not the system time.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    validation.set_issuer(tenants);
    let mut last = ApiError::BadToken("it is not a valid token");
    for key in keys {
        let decoded = key
            .decoding()
            .and_then(|k| jsonwebtoken::decode::<CtxClaims>(token, &k, &validation));
        match decoded {
            Ok(data) => return check_ctx_claims(data.claims, now_secs),
            // Only a bad signature may be retried with the previous key.
            Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => {
                last = ApiError::BadToken("the signature does not match");
            }
            Err(e) => return Err(ApiError::BadToken(describe(e.kind()))),
        }
    }
    Err(last)
}

fn describe(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "only HS256 is accepted",
        ErrorKind::InvalidIssuer => "the issuer is not an allowed tenant",
        ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
        ErrorKind::InvalidSignature => "the signature does not match",
        ErrorKind::Json(_) => "the claims are not as expected",
        _ => "it is not a valid token",
    }
}

fn check_ctx_claims(c: CtxClaims, now_secs: u64) -> Result<CtxClaims, ApiError> {
    if c.exp.saturating_add(LEEWAY_SECS) <= now_secs {
        return Err(ApiError::BadToken("it has expired"));
    }
    if c.exp > now_secs.saturating_add(MAX_CTX_LIFETIME_SECS) {
        return Err(ApiError::BadToken("it lives longer than allowed"));
    }
    if c.use_ != CTX_USE {
        return Err(ApiError::BadToken("it is not a smile-factor session token"));
    }
    if c.v != PROTOCOL_VERSION {
        return Err(ApiError::BadToken("its protocol version is not supported"));
    }
    if c.nonce.is_empty() || c.nonce.len() > MAX_NONCE_BYTES {
        return Err(ApiError::BadToken("its nonce is missing or too long"));
    }
    if c.sub.is_empty() {
        return Err(ApiError::BadToken("its subject is empty"));
    }
    Ok(c)
}

/// The verdict token's claims, exactly as issue 14 lists them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerdictClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub state: String,
    pub nonce: String,
    pub jti: String,
    pub iat: u64,
    pub exp: u64,
    pub notsmiling: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    pub frames: u32,
    /// Prompts met out of prompts scheduled, `"met/total"`.
    #[serde(default)]
    pub prompts: String,
    /// `straight` or `smile`.
    #[serde(default)]
    pub mode: String,
    pub v: u32,
}

/// Signs a verdict token with HS256 and the key's `kid`.
pub fn sign_verdict(claims: &VerdictClaims, key: &Secret) -> Result<String, ApiError> {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid().to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding()?).map_err(|_| ApiError::Internal)
}

/// Mints a ctx token as the Action's `encodeToken` would (demo mode and tests).
pub fn mint_ctx(claims: &CtxClaims, key: &Secret) -> Result<String, ApiError> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key.encoding()?)
        .map_err(|_| ApiError::Internal)
}

/// Decodes a verdict token as Auth0's `validateToken` does: HS256 signature and expiry
/// at `now_secs` only; the caller checks the rest. Used by demo mode's `/continue`.
pub fn decode_verdict(
    token: &str,
    key: &Secret,
    now_secs: u64,
) -> Result<VerdictClaims, &'static str> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "state"]);
    let claims = key
        .decoding()
        .and_then(|k| jsonwebtoken::decode::<VerdictClaims>(token, &k, &validation))
        .map_err(|e| describe(e.kind()))?
        .claims;
    if claims.exp <= now_secs {
        return Err("it has expired");
    }
    Ok(claims)
}

/// `n` random bytes from the OS, base64url without padding.
pub fn random_id(n: usize) -> Result<String, ApiError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|_| ApiError::Internal)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}
