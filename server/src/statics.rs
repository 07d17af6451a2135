//! Serves the page (`www/`) with the header rules a production host needs; this is their
//! only copy (the e2e harness `tools/serve.mjs` passes them on unchanged, and
//! `tests/e2e/serve.test.mjs` checks them through it): MIME types incl. `application/wasm`,
//! year-long immutable caching for content-hashed names (`*.<10 hex>.*`), `no-cache` +
//! strong ETag + 304 for the rest, and no way out of the root. The CSP and the other
//! security headers are layers in [`crate::router`].
//!
//! Encodings: `tools/package.mjs` writes `x.br` (brotli 11) and `x.gz` (gzip -9) next to
//! every package asset `x`, `tools/precompress.mjs` next to the page's own files (`./run
//! build`; not config.json); a sibling older than `x` is ignored (stale after an edit; so
//! a deploy copy must keep file times, `cp -p`/`rsync -t`, or `x` is compressed on the fly).
//! tower-http's `ServeFile` (`precompressed_br`/`_gzip`) sends the
//! sibling the client accepts, brotli first at equal q, with `Content-Encoding` and
//! `Vary: Accept-Encoding`; a file without one is compressed on the fly by tower-http's
//! compression (not images, not under 32 bytes). Each representation has its own entity
//! tag: the sha256 of the identity file, plus `.br`/`.gzip` for a coded one, strong for a
//! sibling on disk, weak (`W/`) when compressed on the fly (those bytes depend on the
//! compressor's version). If-None-Match, the one precondition evaluated, is checked
//! against the representation that would be sent, so a 304 is per encoding. A Range request is always answered from the identity
//! file (206 with the identity ETag): byte offsets into a coded body are of no use to a
//! media player. The siblings are not resources of their own: `/x.br` is 404 while `x`
//! exists (a `.br`/`.gz` file with no identity file next to it is an ordinary file).

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
use tower_http::compression::CompressionLayer;
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
pub fn none_match(if_none_match: Option<&HeaderValue>, etag: &str) -> bool {
    let Some(value) = if_none_match.and_then(|v| v.to_str().ok()) else {
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

/// The ETag of one representation: the identity's `"tag"` as is, `"tag.br"` for a coded
/// body from a file on disk, `W/"tag.br"` for one compressed on the fly.
pub fn representation_etag(identity: &str, coding: Option<&str>, on_disk: bool) -> String {
    let Some(coding) = coding else {
        return identity.to_owned();
    };
    let bare = identity.trim_end_matches('"');
    let weak = if on_disk { "" } else { "W/" };
    format!("{weak}{bare}.{coding}\"")
}

/// The precompressed siblings of a file, as `ServeFile` looks for them.
const SIBLING_EXTENSIONS: [&str; 2] = ["br", "gz"];

/// True when `file` is `x.br` or `x.gz` and `x` exists: a representation of `x`, not a resource.
async fn is_sibling(file: &Path) -> bool {
    let Some(ext) = file.extension().and_then(|e| e.to_str()) else {
        return false;
    };
    SIBLING_EXTENSIONS.contains(&ext)
        && tokio::fs::metadata(file.with_extension(""))
            .await
            .is_ok_and(|m| m.is_file())
}

/// True when `file.ext` is a file written no earlier than `file`: a page file edited after
/// the build (its siblings then stale) is compressed on the fly instead.
async fn fresh_sibling(file: &Path, ext: &str) -> bool {
    let mut name = file.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    let (Ok(id), Ok(sib)) = (
        tokio::fs::metadata(file).await,
        tokio::fs::metadata(Path::new(&name)).await,
    ) else {
        return false;
    };
    match (id.modified(), sib.modified()) {
        (Ok(a), Ok(b)) => sib.is_file() && b >= a,
        _ => false,
    }
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

/// The preconditions of a request are ours (entity tags of the content, per encoding);
/// `ServeFile`'s own (length and mtime) must not answer them.
const PRECONDITIONS: [header::HeaderName; 4] = [
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
];

/// Marks a response whose `Content-Encoding` came from a sibling on disk.
#[derive(Clone, Copy)]
struct FromDisk;

/// Sends the representation of a resource the request asks for: `inner` answers with the
/// identity body or a precompressed sibling, tower-http compresses on the fly what is
/// neither, then the ETag of what is sent decides between 200 and 304.
async fn represent<S>(
    inner: S,
    mut req: Request,
    identity_etag: &str,
    cache: &'static str,
    mime: &'static str,
) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
    for h in PRECONDITIONS {
        req.headers_mut().remove(h);
    }
    if req.headers().contains_key(header::RANGE) {
        req.headers_mut().insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }
    let svc = ServiceBuilder::new()
        .layer(CompressionLayer::new())
        .map_response(move |mut res: Response| {
            if res.headers().contains_key(header::CONTENT_ENCODING) {
                res.extensions_mut().insert(FromDisk);
            }
            // Before the compression layer, which skips images by their type.
            if res.status().is_success() {
                res.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            }
            res
        })
        .service(inner);
    let Ok(res) = svc.oneshot(req).await;
    let mut res = res.map(Body::new);
    if !res.status().is_success() {
        return res;
    }
    let coding = res
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let etag = representation_etag(
        identity_etag,
        coding,
        res.extensions().get::<FromDisk>().is_some(),
    );
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if !h.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("accept-encoding"))
    }) {
        h.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if none_match(if_none_match.as_ref(), &etag) {
        return not_modified(&res);
    }
    res
}

/// A generated JSON document (demo mode's config.json) with ETag, 304 and compression.
async fn json_document(req: Request, body: String) -> Response {
    let etag = etag_of(body.as_bytes());
    let inner = service_fn(move |_: Request| {
        let body = body.clone();
        async move { Ok::<_, Infallible>(Response::new(Body::from(body))) }
    });
    represent(
        inner,
        req,
        &etag,
        CACHE_REVALIDATE,
        "application/json; charset=utf-8",
    )
    .await
}

/// The 304 for a response: its validators and caching headers, no body.
fn not_modified(res: &Response) -> Response {
    let mut out = StatusCode::NOT_MODIFIED.into_response();
    for name in [header::ETAG, header::CACHE_CONTROL, header::VARY] {
        for v in res.headers().get_all(&name) {
            out.headers_mut().append(&name, v.clone());
        }
    }
    out
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
            return json_document(req, config).await;
        }
    }
    let statics = &app.statics;
    let file = match statics.resolve(&path).await {
        Ok(f) => f,
        Err(StatusCode::FORBIDDEN) => return plain(StatusCode::FORBIDDEN, "forbidden\n"),
        Err(_) => return plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    if is_sibling(&file).await {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    let Ok(etag) = statics.etag(&file).await else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let cache = if is_hashed_name(&file) {
        CACHE_IMMUTABLE
    } else {
        CACHE_REVALIDATE
    };
    let mut files = ServeFile::new(&file);
    if fresh_sibling(&file, "br").await {
        files = files.precompressed_br();
    }
    if fresh_sibling(&file, "gz").await {
        files = files.precompressed_gzip();
    }
    let inner = ServiceExt::<Request>::map_response(files, |res| res.map(Body::new));
    represent(inner, req, &etag, cache, mime_type(&file)).await
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
    fn one_etag_per_representation() {
        let id = etag_of(b"x");
        assert_eq!(representation_etag(&id, None, true), id);
        let br = representation_etag(&id, Some("br"), true);
        assert_eq!(br, format!("{}.br\"", &id[..id.len() - 1]));
        assert_eq!(
            representation_etag(&id, Some("gzip"), false),
            format!("W/{}", &br[..br.len() - 4]) + ".gzip\""
        );
    }

    #[test]
    fn mime_types() {
        assert_eq!(mime_type(Path::new("a.wasm")), "application/wasm");
        assert_eq!(mime_type(Path::new("A.HTML")), "text/html; charset=utf-8");
        assert_eq!(mime_type(Path::new("x")), "application/octet-stream");
    }
}
