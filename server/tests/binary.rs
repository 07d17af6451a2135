//! The binary itself: demo mode prints a page URL with a ctx token, and weak or
//! incomplete secrets stop it at start with a clear message.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn server() -> Command {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smile-factor-server"));
    cmd.arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--www")
        .arg(root.join("www"))
        .arg("--models")
        .arg(root.join("models"));
    for (k, _) in std::env::vars() {
        if k.starts_with("SMILE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn demo_mode_prints_a_page_url_with_a_session_token() {
    let mut child = server()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut link = None;
    for _ in 0..5 {
        let Some(Ok(line)) = lines.next() else { break };
        if line.starts_with("http://127.0.0.1:") && line.contains("session_token=") {
            link = Some(line);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let link = link.expect("a page URL on stdout");
    let url = url::Url::parse(&link).expect("url");
    let names: Vec<_> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(names, ["state", "session_token"]);
}

fn start_error(envs: &[(&str, &str)]) -> String {
    let out = server().envs(envs.iter().copied()).output().expect("run");
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_secrets_stop_the_server_with_a_message() {
    let good_a = "3f9a0c4be21d7785a6c0f11e9b3d42aa07c5e86d19f2b4a3c8e7d6015b9f0a2c";
    let good_b = "b4a3c8e7d6015b9f0a2c3f9a0c4be21d7785a6c0f11e9b3d42aa07c5e86d19f2";
    let err = start_error(&[
        ("SMILE_CTX_SECRET", "short"),
        ("SMILE_VERDICT_SECRET", good_b),
    ]);
    assert!(err.contains("SMILE_CTX_SECRET is too short"), "{err}");
    let weak = "a".repeat(40);
    let err = start_error(&[
        ("SMILE_CTX_SECRET", &weak),
        ("SMILE_VERDICT_SECRET", good_b),
    ]);
    assert!(err.contains("low-entropy"), "{err}");
    let err = start_error(&[
        ("SMILE_CTX_SECRET", good_a),
        ("SMILE_VERDICT_SECRET", good_a),
    ]);
    assert!(err.contains("must be different"), "{err}");
    let err = start_error(&[("SMILE_CTX_SECRET", good_a)]);
    assert!(err.contains("SMILE_VERDICT_SECRET is not set"), "{err}");
    let err = start_error(&[
        ("SMILE_CTX_SECRET", good_a),
        ("SMILE_VERDICT_SECRET", good_b),
    ]);
    assert!(err.contains("SMILE_ISSUER is not set"), "{err}");
    // The secrets never appear in the messages.
    assert!(!err.contains(good_a) && !err.contains(good_b));
}

#[test]
fn an_unknown_client_address_source_stops_the_server_with_the_choices() {
    let err = start_error(&[("SMILE_CLIENT_IP_SOURCE", "LeftmostXForwardedFor")]);
    assert!(err.contains("not a client address source"), "{err}");
    assert!(err.contains("RightmostXForwardedFor"), "{err}");
}

#[test]
fn an_unreachable_redis_stops_the_server_without_showing_its_password() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("redis://:hunter2-redis-password@127.0.0.1:{port}/");
    let err = start_error(&[
        (
            "SMILE_CTX_SECRET",
            "3f9a0c4be21d7785a6c0f11e9b3d42aa07c5e86d19f2b4a3c8e7d6015b9f0a2c",
        ),
        (
            "SMILE_VERDICT_SECRET",
            "b4a3c8e7d6015b9f0a2c3f9a0c4be21d7785a6c0f11e9b3d42aa07c5e86d19f2",
        ),
        ("SMILE_ISSUER", "https://verifier.test"),
        ("SMILE_TENANTS", "tenant.test"),
        ("SMILE_REDIS_URL", &url),
    ]);
    assert!(
        err.contains(&format!("cannot use Redis at 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn a_tls_redis_url_is_refused_with_a_clear_message() {
    let err = start_error(&[(
        "SMILE_REDIS_URL",
        "rediss://:hunter2-redis-password@cache.example:6380/0",
    )]);
    assert!(err.contains("rediss:// (TLS) is not built in"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
