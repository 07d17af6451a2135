//! The page host and demo mode over HTTP: header rules (MIME, caching, ETag/304, CSP,
//! compression, traversal) and the local `/continue` that checks tokens as Auth0 would.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_follow_the_header_rules() {
    let srv = TestServer::start().await;
    let res = srv.client.get(srv.url("/")).send().await.expect("send");
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
        "{csp}"
    );
    assert!(
        csp.contains("form-action 'self' https://tenant.test"),
        "{csp}"
    );
    let etag = h["etag"].to_str().expect("etag").to_owned();
    assert!(etag.starts_with('"'), "strong: {etag}");

    let res = srv
        .client
        .get(srv.url("/index.html"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 304);
    assert_eq!(res.text().await.expect("body"), "");

    let res = srv
        .get_accepting("/app.js", "gzip")
        .send()
        .await
        .expect("send");
    assert_eq!(
        res.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(res.headers()["content-encoding"], "gzip");

    // Raw requests: an HTTP client would normalise these paths before sending.
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/..%2fCargo.toml",
        "/a/%2e%2e/%2e%2e/Cargo.toml",
        "/%5c..%5cCargo.toml",
        "/%00",
    ] {
        assert_eq!(raw_status(&srv, path).await, 403, "{path}");
    }
    let res = srv
        .client
        .get(srv.url("/missing.txt"))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 404);
    let res = srv.client.delete(srv.url("/")).send().await.expect("send");
    assert_eq!(res.status(), 405);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_names_are_immutable_and_wasm_has_its_type() {
    let dir = std::env::temp_dir().join(format!("smile-www-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("engine.0123456789.wasm"), b"\0asm\x01\0\0\0").expect("write");
    std::fs::write(dir.join("index.html"), b"<!doctype html>").expect("write");
    let srv = TestServer::serving(dir.clone()).await;
    let res = srv
        .client
        .get(srv.url("/engine.0123456789.wasm"))
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/wasm");
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let res = srv
        .client
        .get(srv.url("/engine.0123456789.wasm"))
        .header("range", "bytes=0-3")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await.expect("body").as_ref(), b"\0asm");
    srv.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The rules the e2e harness's old copy also had, checked at their one source: a directory
/// serves its index, a symlink cannot lead out of the root, errors are never stored, a 304
/// carries the same security headers, an unsatisfiable range is 416, and brotli is offered.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_symlinks_errors_304s_ranges_and_brotli() {
    let dir = std::env::temp_dir().join(format!("smile-www-rules-{}", std::process::id()));
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("sub")).expect("dir");
    std::fs::write(www.join("index.html"), b"<!doctype html>").expect("write");
    std::fs::write(www.join("sub/index.html"), b"sub").expect("write");
    std::fs::write(www.join("v.mp4"), b"0123456789").expect("write");
    std::fs::write(www.join("big.js"), "smile ".repeat(2_000)).expect("write");
    std::fs::write(dir.join("secret.txt"), b"secret").expect("write");
    std::os::unix::fs::symlink(dir.join("secret.txt"), www.join("link.txt")).expect("symlink");
    let srv = TestServer::serving(www).await;
    let get = |path: &str| srv.client.get(srv.url(path));

    let res = get("/sub/").send().await.expect("send");
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.expect("body"), "sub");

    let res = get("/link.txt").send().await.expect("send");
    assert_eq!(res.status(), 403, "a symlink out of the root");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(!res.text().await.expect("body").contains("secret"));
    let res = get("/missing.txt").send().await.expect("send");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(res.headers().contains_key("content-security-policy"));

    let first = get("/sub/index.html").send().await.expect("send");
    let etag = first.headers()["etag"].clone();
    let res = get("/sub/index.html")
        .header(
            "if-none-match",
            format!("W/{}", etag.to_str().expect("etag")),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 304);
    for h in [
        "content-security-policy",
        "x-content-type-options",
        "referrer-policy",
        "cache-control",
        "etag",
    ] {
        assert_eq!(res.headers().get(h), first.headers().get(h), "{h} on a 304");
    }

    let res = get("/v.mp4")
        .header("range", "bytes=20-30")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 416);
    let res = srv
        .get_accepting("/big.js", "br")
        .send()
        .await
        .expect("send");
    assert_eq!(res.headers()["content-encoding"], "br");
    srv.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Precompressed siblings (`x.br`, `x.gz`, as tools/package.mjs writes them): the one the
/// client accepts (brotli first), with Content-Encoding, Vary and an ETag of its own; a 304
/// per representation; Range from the identity file only; the siblings are not served under
/// their own names; a file without siblings is compressed on the fly with a weak ETag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precompressed_siblings_one_etag_per_encoding() {
    const CHROMIUM: &str = "gzip, deflate, br, zstd";
    let www = std::env::temp_dir().join(format!("smile-www-br-{}", std::process::id()));
    std::fs::create_dir_all(&www).expect("dir");
    let asset = "/engine.0123456789.wasm";
    let identity = b"\0asm\x01\0\0\0 the identity bytes".to_vec();
    // The server does not decode siblings: recognisable stand-ins show which file was sent.
    std::fs::write(www.join(&asset[1..]), &identity).expect("write");
    std::fs::write(www.join("engine.0123456789.wasm.br"), b"brotli stand-in").expect("write");
    std::fs::write(www.join("engine.0123456789.wasm.gz"), b"gzip stand-in").expect("write");
    std::fs::write(www.join("big.js"), "smile ".repeat(2_000)).expect("write");
    std::fs::write(www.join("logs.tar.gz"), b"an archive, no identity file").expect("write");
    let srv = TestServer::serving(www.clone()).await;
    let get = |path: &str, accept: &str| srv.get_accepting(path, accept);
    let text = |res: &reqwest::Response, h: &str| {
        res.headers()
            .get(h)
            .map(|v| v.to_str().expect("ascii").to_owned())
    };

    let mut etags = Vec::new();
    for (accept, coding, body) in [
        (CHROMIUM, Some("br"), &b"brotli stand-in"[..]),
        ("br", Some("br"), b"brotli stand-in"),
        ("gzip", Some("gzip"), b"gzip stand-in"),
        ("br;q=0.5, gzip", Some("gzip"), b"gzip stand-in"),
        ("identity", None, &identity[..]),
    ] {
        let res = get(asset, accept).send().await.expect("send");
        assert_eq!(res.status(), 200, "{accept}");
        assert_eq!(
            text(&res, "content-encoding").as_deref(),
            coding,
            "{accept}"
        );
        assert_eq!(
            res.headers()["content-type"],
            "application/wasm",
            "{accept}"
        );
        assert_eq!(
            res.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{accept}"
        );
        assert_eq!(res.headers()["vary"], "accept-encoding", "{accept}");
        assert_eq!(
            text(&res, "content-length"),
            Some(body.len().to_string()),
            "{accept}"
        );
        let etag = text(&res, "etag").expect("etag");
        assert!(etag.starts_with('"'), "strong: {etag}");
        if let Some(c) = coding {
            assert!(etag.ends_with(&format!(".{c}\"")), "{etag} names {c}");
        }
        assert_eq!(res.bytes().await.expect("body").as_ref(), body, "{accept}");
        etags.push((accept, coding, etag));
    }
    let (_, _, br) = &etags[0];
    let (_, _, gz) = &etags[2];
    let (_, _, id) = &etags[4];
    assert!(br != gz && gz != id && br != id, "{etags:?}");
    assert_eq!(&etags[1].2, br);
    assert_eq!(&etags[3].2, gz);

    // A 304 only for the tag of the representation the request would get.
    for (accept, tag, status) in [
        (CHROMIUM, br, 304),
        ("gzip", gz, 304),
        ("identity", id, 304),
        ("gzip", br, 200),
        (CHROMIUM, id, 200),
        ("identity", br, 200),
    ] {
        let res = get(asset, accept)
            .header("if-none-match", tag)
            .send()
            .await
            .expect("send");
        assert_eq!(res.status(), status, "{accept} with If-None-Match {tag}");
        if status == 304 {
            assert_eq!(text(&res, "etag").as_ref(), Some(tag));
            assert_eq!(res.headers()["vary"], "accept-encoding");
            assert_eq!(
                res.headers()["cache-control"],
                "public, max-age=31536000, immutable"
            );
            assert!(res.headers().get("content-encoding").is_none());
            assert_eq!(res.bytes().await.expect("body").len(), 0);
        }
    }

    // Range: the identity file's bytes, whatever the client accepts.
    let res = get(asset, CHROMIUM)
        .header("range", "bytes=0-3")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 206);
    assert!(res.headers().get("content-encoding").is_none());
    assert_eq!(
        text(&res, "content-range").as_deref(),
        Some(&*format!("bytes 0-3/{}", identity.len()))
    );
    assert_eq!(text(&res, "etag").as_ref(), Some(id));
    assert_eq!(res.bytes().await.expect("body").as_ref(), b"\0asm");

    // HEAD describes the same representation.
    let res = srv
        .client
        .head(srv.url(asset))
        .header("accept-encoding", CHROMIUM)
        .send()
        .await
        .expect("send");
    assert_eq!(text(&res, "content-encoding").as_deref(), Some("br"));
    assert_eq!(text(&res, "etag").as_ref(), Some(br));

    // A sibling is no resource of its own; a .gz with no identity file is an ordinary file.
    for p in ["/engine.0123456789.wasm.br", "/engine.0123456789.wasm.gz"] {
        let res = get(p, CHROMIUM).send().await.expect("send");
        assert_eq!(res.status(), 404, "{p}");
        assert_eq!(res.headers()["cache-control"], "no-store", "{p}");
    }
    let res = get("/logs.tar.gz", "identity").send().await.expect("send");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/octet-stream");
    assert!(res.headers().get("content-encoding").is_none());

    // No sibling: compressed on the fly, with a weak tag of its own and its own 304.
    let plain = get("/big.js", "identity").send().await.expect("send");
    let plain_etag = text(&plain, "etag").expect("etag");
    assert_eq!(plain.headers()["vary"], "accept-encoding");
    let res = get("/big.js", "br").send().await.expect("send");
    assert_eq!(res.headers()["content-encoding"], "br");
    let weak = text(&res, "etag").expect("etag");
    assert_eq!(weak, format!("W/{}.br\"", plain_etag.trim_end_matches('"')));
    let res = get("/big.js", "br")
        .header("if-none-match", &weak)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 304);
    let res = get("/big.js", "identity")
        .header("if-none-match", &weak)
        .send()
        .await
        .expect("send");
    assert_eq!(
        res.status(),
        200,
        "the coded tag does not validate the identity"
    );
    srv.stop().await;
    let _ = std::fs::remove_dir_all(www);
}

/// The page's own files (index.html, app.js...) get siblings from `./run build` too
/// (tools/precompress.mjs): served as the package's are, with Content-Encoding and Vary,
/// but revalidated (no content hash). A sibling older than its file (the file edited after
/// the build) is ignored: the file is compressed on the fly, never served stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_files_precompressed_and_never_stale() {
    let www = std::env::temp_dir().join(format!("smile-www-page-br-{}", std::process::id()));
    std::fs::create_dir_all(&www).expect("dir");
    let page = "<!doctype html><title>smile</title>".repeat(40);
    std::fs::write(www.join("index.html"), &page).expect("write");
    std::fs::write(www.join("index.html.br"), b"brotli stand-in").expect("write");
    std::fs::write(www.join("index.html.gz"), b"gzip stand-in").expect("write");
    let srv = TestServer::serving(www.clone()).await;
    let get = |path: &str, accept: &str| srv.get_accepting(path, accept).send();
    for path in ["/", "/index.html"] {
        for (accept, coding, body) in [
            ("br", "br", "brotli stand-in"),
            ("gzip", "gzip", "gzip stand-in"),
        ] {
            let res = get(path, accept).await.expect("send");
            assert_eq!(res.status(), 200, "{path} {accept}");
            let h = res.headers().clone();
            assert_eq!(h["content-encoding"], coding, "{path} {accept}");
            assert_eq!(h["vary"], "accept-encoding", "{path} {accept}");
            assert_eq!(h["content-type"], "text/html; charset=utf-8");
            assert_eq!(h["cache-control"], "no-cache");
            assert!(h["etag"].to_str().expect("etag").starts_with('"'), "strong");
            assert_eq!(res.text().await.expect("body"), body, "{path} {accept}");
        }
    }

    // Edited after the build: the siblings are older than the file, so not sent.
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for sib in ["index.html.br", "index.html.gz"] {
        std::fs::File::options()
            .write(true)
            .open(www.join(sib))
            .and_then(|f| f.set_modified(hour_ago))
            .expect("set mtime");
    }
    for accept in ["br", "gzip"] {
        let res = get("/index.html", accept).await.expect("send");
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-encoding"], accept);
        assert_eq!(res.headers()["vary"], "accept-encoding");
        let etag = res.headers()["etag"].to_str().expect("etag").to_owned();
        assert!(etag.starts_with("W/"), "compressed on the fly: {etag}");
        let body = res.bytes().await.expect("body");
        assert!(!body.starts_with(b"brotli stand-in") && !body.starts_with(b"gzip stand-in"));
    }
    let res = get("/index.html", "identity").await.expect("send");
    assert_eq!(res.text().await.expect("body"), page);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(www);
}

/// Sends `GET path` byte for byte and returns the status code.
async fn raw_status(srv: &TestServer, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = srv.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line")
}

fn query_param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .expect("param")
}

async fn continue_page(srv: &TestServer, state: &str, token: &str) -> String {
    let mut target = url::Url::parse(&srv.url("/continue")).expect("url");
    target.query_pairs_mut().append_pair("state", state);
    let res = srv
        .client
        .post(target)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("smile_token", token)
                .finish(),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-security-policy"],
        "default-src 'none'; style-src 'unsafe-inline'"
    );
    res.text().await.expect("html")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_round_trip_is_checked_as_auth0_would() {
    let srv = TestServer::demo().await;
    let config: Value = srv
        .client
        .get(srv.url("/config.json"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(config["verify"], true);
    assert_eq!(config["returnUrl"], srv.base);

    let res = srv.client.get(srv.url("/demo")).send().await.expect("send");
    assert_eq!(res.status(), 303);
    let page = res.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let state = query_param(&page, "state");
    let ctx = query_param(&page, "session_token");
    let id = srv.open_with(&state, &ctx).await;
    srv.send_frames(&id, "neutral_1", 5).await;
    let token = srv.finish_token(&id).await;

    let html = continue_page(&srv, &state, &token).await;
    assert!(html.contains("data-valid=\"true\""), "{html}");
    assert!(html.contains("notsmiling = true"), "{html}");
    assert!(!html.contains("FAIL"), "{html}");

    // Another state, a tampered token, and HTML in the state are all reported, escaped.
    let html = continue_page(&srv, "<b>other</b>", &token).await;
    assert!(html.contains("data-valid=\"false\""), "{html}");
    assert!(
        html.contains("&lt;b&gt;other&lt;/b&gt;") && !html.contains("<b>other"),
        "{html}"
    );
    let mut tampered = token.clone();
    tampered.insert(tampered.len() / 2, 'A');
    let html = continue_page(&srv, &state, &tampered).await;
    assert!(html.contains("data-valid=\"false\""), "{html}");
    srv.stop().await;
}
