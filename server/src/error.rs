//! Every way a request can fail, as one typed enum that renders as
//! `{"error": code, "message": text}` with its HTTP status. Messages never repeat a
//! token, a secret or image bytes.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use thiserror::Error;

/// A request the server refuses, or an internal failure.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error("the body is larger than the {limit} bytes allowed")]
    TooLarge { limit: usize },
    #[error("the content type must be {expected}")]
    UnsupportedMediaType { expected: &'static str },
    #[error("the body could not be read")]
    BadBody,
    #[error("the body arrived too slowly")]
    SlowBody,
    #[error("the request took too long; try again")]
    Timeout,
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    #[error("the JSON body is invalid: {0}")]
    BadJson(String),
    #[error("the login state is invalid: {0}")]
    BadState(#[from] smile_factor::challenge::redirect::StateError),
    #[error("the session token is not valid: {0}")]
    BadToken(&'static str),
    #[error("this session token was already used")]
    NonceReused,
    #[error("the frame is not usable: {0}")]
    BadFrame(String),
    #[error("frames are coming too fast; send one every {interval_ms} ms")]
    TooFast { interval_ms: u64 },
    #[error("too many challenges from this address; try again later")]
    RateLimited,
    #[error("the request did not say the client's address as the proxy in front sets it")]
    NoClientAddress,
    #[error("this challenge already has its {0} frames")]
    TooManyFrames(u32),
    #[error("the challenge window is over")]
    WindowOver,
    #[error("the challenge is already finished")]
    Finished,
    #[error("the countdown is not over yet")]
    TooEarly,
    #[error("no such challenge")]
    UnknownChallenge,
    #[error("not found")]
    NotFound,
    #[error("the challenge store is unavailable; try again shortly")]
    StoreUnavailable,
    #[error("the server could not complete the request")]
    Internal,
}

impl From<crate::store::StoreError> for ApiError {
    /// Either way the request fails and nothing is decided (the challenge fails closed).
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        tracing::warn!(error = %e, "challenge store");
        match e {
            StoreError::Unavailable(_) => ApiError::StoreUnavailable,
            StoreError::Corrupt(_) => ApiError::Internal,
        }
    }
}

impl ApiError {
    /// The stable machine-readable code and the HTTP status.
    pub fn code_and_status(&self) -> (&'static str, StatusCode) {
        use ApiError::*;
        match self {
            TooLarge { .. } => ("too_large", StatusCode::PAYLOAD_TOO_LARGE),
            UnsupportedMediaType { .. } => {
                ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE)
            }
            BadBody => ("bad_body", StatusCode::BAD_REQUEST),
            SlowBody => ("slow_body", StatusCode::REQUEST_TIMEOUT),
            Timeout => ("timeout", StatusCode::REQUEST_TIMEOUT),
            MethodNotAllowed => ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
            BadJson(_) => ("bad_json", StatusCode::BAD_REQUEST),
            BadState(_) => ("bad_state", StatusCode::BAD_REQUEST),
            BadToken(_) => ("bad_token", StatusCode::UNAUTHORIZED),
            NonceReused => ("nonce_reused", StatusCode::CONFLICT),
            BadFrame(_) => ("bad_frame", StatusCode::BAD_REQUEST),
            TooFast { .. } => ("too_fast", StatusCode::TOO_MANY_REQUESTS),
            RateLimited => ("rate_limited", StatusCode::TOO_MANY_REQUESTS),
            NoClientAddress => ("no_client_address", StatusCode::BAD_REQUEST),
            TooManyFrames(_) => ("too_many_frames", StatusCode::CONFLICT),
            WindowOver => ("window_over", StatusCode::CONFLICT),
            Finished => ("finished", StatusCode::CONFLICT),
            TooEarly => ("too_early", StatusCode::CONFLICT),
            UnknownChallenge => ("unknown_challenge", StatusCode::NOT_FOUND),
            NotFound => ("not_found", StatusCode::NOT_FOUND),
            StoreUnavailable => ("store_unavailable", StatusCode::SERVICE_UNAVAILABLE),
            Internal => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, status) = self.code_and_status();
        let mut res = (
            status,
            Json(ErrorBody {
                error: code,
                message: self.to_string(),
            }),
        )
            .into_response();
        // An error is about this one request: never cached.
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if matches!(self, ApiError::StoreUnavailable) {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}
