//! Serves the page (`www/`) with the header rules a production host needs; this is their
//! only copy (the e2e harness `tools/serve.mjs` passes them on unchanged, and
//! `tests/e2e/serve.test.mjs` checks them through it): MIME types incl. `application/wasm`,
//! year-long immutable caching for content-hashed names (`*.<10 hex>.*`), `no-cache` +
//! strong ETag + 304 for the rest, and no way out of the root. Range requests and the file
//! body are tower-http's `ServeFile`; compression and the CSP are layers in
//! [`crate::router`].

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};
use tower::ServiceExt as _;
use tower_http::services::ServeFile;

use crate::App;

/// Content-hashed names never change.
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Everything else is revalidated on each use.
pub const CACHE_REVALIDATE: &str = "no-cache";
/// Errors are never kept.
const CACHE_NONE: &str = "no-store";

/// The policy the page runs under (README "Headers"); `form-action` is added per deployment.
pub const STRICT_CSP: &str =
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:";

/// The type of a file by its extension; anything unknown is `application/octet-stream`.
fn mime_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "ogg" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "vtt" => "text/vtt; charset=utf-8",
        "txt" | "md" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// True for a name like `smile_factor_bg.0123456789.wasm`.
pub fn is_hashed_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let mut parts = name.rsplitn(3, '.');
    let (Some(ext), Some(hash), Some(stem)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !ext.is_empty()
        && !stem.is_empty()
        && hash.len() == 10
        && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// RFC 9110 If-None-Match: `*` or a list of tags, compared weakly.
pub fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    let Some(value) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    if value.trim() == "*" {
        return true;
    }
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    value.split(',').any(|t| bare(t) == bare(etag))
}

/// A strong ETag of some bytes.
pub fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", URL_SAFE_NO_PAD.encode(Sha256::digest(bytes)))
}

/// The served directory and the ETags of its files, recomputed when a file changes.
pub struct Statics {
    root: PathBuf,
    etags: Mutex<HashMap<PathBuf, (String, String)>>,
}

impl Statics {
    /// `root` must exist; it is canonicalised once so symlinks can be checked against it.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        Ok(Self {
            root: root.canonicalize()?,
            etags: Mutex::new(HashMap::new()),
        })
    }

    /// The file a request path names, `Err(403)` when it would leave the root or is
    /// malformed, `Err(404)` when there is no such file.
    async fn resolve(&self, raw_path: &str) -> Result<PathBuf, StatusCode> {
        let decoded = percent_decode_str(raw_path)
            .decode_utf8()
            .map_err(|_| StatusCode::FORBIDDEN)?;
        if decoded.contains('\0') || decoded.contains('\\') {
            return Err(StatusCode::FORBIDDEN);
        }
        let mut path = self.root.clone();
        for segment in decoded.split('/') {
            match segment {
                "" | "." => {}
                ".." => return Err(StatusCode::FORBIDDEN),
                s => {
                    // A segment must be one plain name (no drive or root on any platform).
                    let mut comps = Path::new(s).components();
                    match (comps.next(), comps.next()) {
                        (Some(Component::Normal(_)), None) => path.push(s),
                        _ => return Err(StatusCode::FORBIDDEN),
                    }
                }
            }
        }
        let mut meta = tokio::fs::metadata(&path)
            .await
            .map_err(|_| StatusCode::NOT_FOUND)?;
        if meta.is_dir() {
            path.push("index.html");
            meta = tokio::fs::metadata(&path)
                .await
                .map_err(|_| StatusCode::NOT_FOUND)?;
        }
        if !meta.is_file() {
            return Err(StatusCode::NOT_FOUND);
        }
        // Symlinks must not lead out of the root either.
        let real = tokio::fs::canonicalize(&path)
            .await
            .map_err(|_| StatusCode::NOT_FOUND)?;
        if !real.starts_with(&self.root) {
            return Err(StatusCode::FORBIDDEN);
        }
        Ok(real)
    }

    async fn etag(&self, file: &Path) -> std::io::Result<String> {
        let meta = tokio::fs::metadata(file).await?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let key = format!("{}:{}", meta.len(), mtime);
        if let Ok(map) = self.etags.lock() {
            if let Some((k, etag)) = map.get(file) {
                if *k == key {
                    return Ok(etag.clone());
                }
            }
        }
        let etag = etag_of(&tokio::fs::read(file).await?);
        if let Ok(mut map) = self.etags.lock() {
            map.insert(file.to_path_buf(), (key, etag.clone()));
        }
        Ok(etag)
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE_NONE),
        ],
        text,
    )
        .into_response()
}

/// A generated JSON document (demo mode's config.json) with ETag and 304.
pub fn json_document(headers: &HeaderMap, body: String) -> Response {
    let etag = etag_of(body.as_bytes());
    if none_match(headers, &etag) {
        return not_modified(&etag, CACHE_REVALIDATE);
    }
    (
        [
            (
                header::CONTENT_TYPE,
                "application/json; charset=utf-8".to_owned(),
            ),
            (header::CACHE_CONTROL, CACHE_REVALIDATE.to_owned()),
            (header::ETAG, etag),
        ],
        body,
    )
        .into_response()
}

fn not_modified(etag: &str, cache: &'static str) -> Response {
    let mut res = StatusCode::NOT_MODIFIED.into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

/// The fallback route: any GET or HEAD that no API route took.
pub async fn serve(State(app): State<App>, req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut res = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    let path = req.uri().path().to_owned();
    if path == "/config.json" {
        if let Some(config) = app.demo_config() {
            return json_document(req.headers(), config);
        }
    }
    let statics = &app.statics;
    let file = match statics.resolve(&path).await {
        Ok(f) => f,
        Err(StatusCode::FORBIDDEN) => return plain(StatusCode::FORBIDDEN, "forbidden\n"),
        Err(_) => return plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    let Ok(etag) = statics.etag(&file).await else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let cache = if is_hashed_name(&file) {
        CACHE_IMMUTABLE
    } else {
        CACHE_REVALIDATE
    };
    if none_match(req.headers(), &etag) {
        return not_modified(&etag, cache);
    }
    let Ok(res) = ServeFile::new(&file).oneshot(req).await;
    let mut res = res.map(Body::new);
    if res.status().is_success() {
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(mime_type(&file)),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, v);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names() {
        assert!(is_hashed_name(Path::new(
            "a/smile_factor_bg.0123456789.wasm"
        )));
        assert!(!is_hashed_name(Path::new("smile-factor.js")));
        assert!(!is_hashed_name(Path::new("x.0123456789")));
        assert!(!is_hashed_name(Path::new("x.012345678g.js")));
    }

    #[test]
    fn mime_types() {
        assert_eq!(mime_type(Path::new("a.wasm")), "application/wasm");
        assert_eq!(mime_type(Path::new("A.HTML")), "text/html; charset=utf-8");
        assert_eq!(mime_type(Path::new("x")), "application/octet-stream");
    }
}
