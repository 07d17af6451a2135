//! Load benchmark of the verifier server on loopback (issue 14, Tests): server CPU time per
//! challenge, latency of `frames` and `finish` (median, p90, p99) with one client and with
//! concurrent clients, and the bytes uploaded per challenge. Prints one Markdown report.
//!
//! ```text
//! cargo run -p smile-factor-server --example load            # dev profile, as ./run serve
//! cargo run -p smile-factor-server --profile tool --example load
//! ./run bench-server                                         # the first line
//! ```
//!
//! Options: `--challenges N` (one client, default 20), `--clients C` and `--per-client M`
//! (concurrent phase, default 20 x 5), `--frames F` (per challenge, default 10).
//!
//! Then the scale-out section (issue 15; `--scale-out` runs only it): `--scale-clients C`
//! clients (default 16) each run `--scale-per-client M` (default 3) full challenges (create,
//! 12 crops, finish) against 1 instance (memory), 1 instance + Redis, and 3 instances
//! sharing Redis with the requests of each challenge spread round robin over them; it
//! reports challenges/s, p50/p99 per request, the CPU per challenge of the servers and of
//! redis-server (a child on a free loopback port), errors, and the tokens that verify.
//!
//! The real server binary runs as a child process (built by this example through cargo in
//! the same profile), so its CPU time (`/proc/<pid>/stat` utime + stime) is its own and not
//! the client's. It runs on the system clock with a 5 s countdown and a 500 ms frame
//! interval, so every request meets the same rules as the page's; the fake clock of the
//! tests would need the server in-process, mixing the client's CPU time into the server's.
//! Everything is bounded: a fixed number of challenges, a 30 s timeout per request and an
//! overall deadline, and the child is killed and reaped on every way out.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smile_factor_server::frames::decode_crop;
use smile_factor_server::tokens::{
    mint_ctx, random_id, CtxClaims, Secret, CTX_USE, PROTOCOL_VERSION,
};

/// The server's countdown and frame interval for the benchmark (the shortest it accepts).
const DURATION_MS: u64 = 5_000;
const FRAME_INTERVAL_MS: u64 = 500;
/// The page's crop: the face box plus a quarter of its side on each side, 160 px, JPEG 0.85.
const CROP_SIDE: u32 = 160;
const CROP_MARGIN: f64 = 0.25;
const JPEG_QUALITY: u8 = 85;
/// The ctx tokens' issuer (the "tenant") and user.
const TENANT: &str = "bench.test";
const SUB: &str = "auth0|bench";
/// Every request gives up after this; the whole run after [`DEADLINE`].
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const DEADLINE: Duration = Duration::from_secs(15 * 60);
/// The finish waits this long past the countdown (the server's clock started a little
/// before the client saw the 201).
const FINISH_SLACK_MS: u64 = 30;

type Res<T> = Result<T, String>;

fn main() {
    let opts = match Opts::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&opts) {
        eprintln!("load: {e}");
        std::process::exit(1);
    }
}

struct Opts {
    challenges: usize,
    clients: usize,
    per_client: usize,
    frames: usize,
    /// Scale-out section: concurrent clients, challenges each, and only that section.
    scale_clients: usize,
    scale_per_client: usize,
    scale_only: bool,
}

impl Opts {
    fn parse() -> Res<Self> {
        let mut o = Opts {
            challenges: 20,
            clients: 20,
            per_client: 5,
            frames: 10,
            scale_clients: 16,
            scale_per_client: 3,
            scale_only: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            if a == "--help" || a == "-h" {
                println!(
                    "usage: load [--challenges 20] [--clients 20] [--per-client 5] [--frames 10] \
[--scale-clients 16] [--scale-per-client 3] [--scale-out (only the scale-out section)]"
                );
                std::process::exit(0);
            }
            if a == "--scale-out" {
                o.scale_only = true;
                continue;
            }
            let v: usize = args
                .next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{a} needs a number"))?;
            match a.as_str() {
                "--challenges" => o.challenges = v.clamp(1, 200),
                "--clients" => o.clients = v.clamp(1, 100),
                "--per-client" => o.per_client = v.clamp(1, 50),
                "--frames" => o.frames = v.clamp(1, 11),
                "--scale-clients" => o.scale_clients = v.clamp(1, 64),
                "--scale-per-client" => o.scale_per_client = v.clamp(1, 20),
                _ => return Err(format!("unknown option {a} (try --help)")),
            }
        }
        Ok(o)
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The cargo profile this example was built with, from its path (`target/<dir>/examples`).
fn profile() -> (String, PathBuf) {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let profile = match name.as_str() {
        "debug" => "dev".to_owned(),
        other => other.to_owned(),
    };
    (profile, dir)
}

fn describe_profile(p: &str) -> String {
    match p {
        "dev" => "dev (`target/debug`): our crates (the engine, the server) at opt-level 1, dependencies at opt-level 3; the build the tests and `./run serve` use".to_owned(),
        "tool" => "tool (`target/tool`): opt-level 3 everywhere, `lto = false` (thin-local), 16 codegen units, no panic unwinding".to_owned(),
        "release" => "release: opt-level 3, fat LTO, one codegen unit".to_owned(),
        other => other.to_owned(),
    }
}

/// The server binary of the same profile, built through cargo when run by cargo.
fn server_binary(profile: &str, dir: &Path) -> Res<PathBuf> {
    let bin = dir.join("smile-factor-server");
    if let Ok(cargo) = std::env::var("CARGO") {
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "smile-factor-server", "--bin"])
            .arg("smile-factor-server")
            .args(["--profile", profile])
            .current_dir(root())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run cargo to build the server: {e}"))?;
        if !status.success() {
            return Err("building the server failed".into());
        }
    }
    if !bin.is_file() {
        return Err(format!(
            "{} is missing: build it with cargo build -p smile-factor-server --profile {profile}",
            bin.display()
        ));
    }
    Ok(bin)
}

fn run(opts: &Opts) -> Res<()> {
    let (profile, dir) = profile();
    let bin = server_binary(&profile, &dir)?;
    if !opts.scale_only {
        single(opts, &profile, &bin)?;
        println!();
    }
    scale_out(opts, &profile, &bin)
}

/// One instance, 1 then C clients: latency, CPU and bytes per challenge.
fn single(opts: &Opts, profile: &str, bin: &Path) -> Res<()> {
    let started = Instant::now();
    let load_start = uptime();
    let crops = Crops::make()?;
    let ctx_secret = random_id(32).map_err(|e| e.to_string())?;
    let verdict_secret = random_id(32).map_err(|e| e.to_string())?;
    let server = Server::start(bin, &ctx_secret, &verdict_secret, DURATION_MS, None)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let key = Arc::new(Secret::new(ctx_secret));
    let ctx = Ctx {
        bases: vec![server.base.clone()],
        duration_ms: DURATION_MS,
        key,
        crops: Arc::new(crops),
        frames: opts.frames,
        deadline: started + DEADLINE,
    };
    // One warm-up challenge (not counted): first connections, first inferences.
    rt.block_on(warm_up(&ctx, &server.base))?;
    let one = rt.block_on(phase(&ctx, &[&server], None, 1, opts.challenges))?;
    let many = rt.block_on(phase(&ctx, &[&server], None, opts.clients, opts.per_client))?;
    let peak_rss_kib = server.peak_rss_kib();
    let log_lines = server.stop();
    drop(rt);
    // Where the server's time goes: the same code in this process, same profile.
    let split = in_process_split(&ctx.crops)?;
    let load_end = uptime();
    report(&Report {
        opts,
        profile,
        one: &one,
        many: &many,
        split: &split,
        crops: &ctx.crops,
        load_start: &load_start,
        load_end: &load_end,
        peak_rss_kib,
        log_lines,
        elapsed: started.elapsed(),
    });
    Ok(())
}

// ---- crops ------------------------------------------------------------------------------

struct Crops {
    /// (name, JPEG, a smile?)
    items: Vec<(String, Vec<u8>, bool)>,
}

impl Crops {
    /// The fixture faces (112 px squares around the detector's box) as the page uploads
    /// them: widened by the page's crop margin (edge pixels repeated, as in the server
    /// tests), scaled to 160 px, JPEG quality 85.
    fn make() -> Res<Self> {
        let mut items = Vec::new();
        for name in [
            "neutral_1",
            "smile_1",
            "neutral_2",
            "smile_2",
            "neutral_3",
            "smile_3",
        ] {
            let path = root().join(format!("tests/fixtures/crops/{name}.png"));
            let img = image::open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .to_rgb8();
            let margin = (f64::from(img.width()) * CROP_MARGIN).round() as u32;
            let side = img.width() + 2 * margin;
            let padded = image::RgbImage::from_fn(side, side, |x, y| {
                let cx = x.saturating_sub(margin).min(img.width() - 1);
                let cy = y.saturating_sub(margin).min(img.height() - 1);
                *img.get_pixel(cx, cy)
            });
            let scaled = image::imageops::resize(
                &padded,
                CROP_SIDE,
                CROP_SIDE,
                image::imageops::FilterType::Triangle,
            );
            let mut jpeg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
                .encode_image(&scaled)
                .map_err(|e| e.to_string())?;
            items.push((name.to_owned(), jpeg, name.starts_with("smile")));
        }
        Ok(Self { items })
    }

    /// Challenge `k` shows one face throughout: neutral and smiling faces alternate.
    fn for_challenge(&self, k: usize) -> &(String, Vec<u8>, bool) {
        &self.items[k % self.items.len()]
    }
}

// ---- the server as a child process -------------------------------------------------------

struct Server {
    child: Option<Child>,
    pid: u32,
    base: String,
    log: Arc<Mutex<(usize, Vec<String>)>>,
}

impl Server {
    fn start(
        bin: &Path,
        ctx_secret: &str,
        verdict_secret: &str,
        duration_ms: u64,
        redis_url: Option<&str>,
    ) -> Res<Self> {
        let mut cmd = Command::new(bin);
        cmd.current_dir(root())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--www",
                "www",
                "--models",
                "models",
            ])
            .args(["--issuer", "http://127.0.0.1", "--tenants", TENANT])
            .args(["--duration-ms", &duration_ms.to_string()])
            .args(["--frame-interval-ms", &FRAME_INTERVAL_MS.to_string()])
            // All clients share 127.0.0.1, which the per-IP limit would otherwise stop.
            .args(["--challenges-per-minute", "100000"])
            .env_remove("SMILE_CTX_SECRET_PREV")
            .env_remove("RUST_LOG")
            .env("SMILE_CTX_SECRET", ctx_secret)
            .env("SMILE_VERDICT_SECRET", verdict_secret)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in [
            "SMILE_LISTEN",
            "SMILE_ISSUER",
            "SMILE_TENANTS",
            "SMILE_RETURN_ORIGINS",
            "SMILE_WWW",
            "SMILE_MODELS",
            "SMILE_DURATION_MS",
            "SMILE_FRAME_INTERVAL_MS",
            "SMILE_BODY_TIMEOUT_MS",
            "SMILE_CHALLENGES_PER_MINUTE",
            "SMILE_REDIS_URL",
        ] {
            cmd.env_remove(var);
        }
        if let Some(url) = redis_url {
            cmd.args(["--redis-url", url]);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id();
        // The access log (one line per request, production's default level): counted, and
        // the last lines kept for an error message.
        let log = Arc::new(Mutex::new((0usize, Vec::new())));
        if let Some(stderr) = child.stderr.take() {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(mut l) = log.lock() {
                        l.0 += 1;
                        l.1.push(line);
                        if l.1.len() > 5 {
                            l.1.remove(0);
                        }
                    }
                }
            });
        }
        let mut server = Server {
            child: Some(child),
            pid,
            base: String::new(),
            log,
        };
        // "smile-factor-server: listening on http://127.0.0.1:PORT/"
        let stdout = server
            .child
            .as_mut()
            .and_then(|c| c.stdout.take())
            .ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok));
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .ok()
            .flatten()
            .ok_or_else(|| format!("the server did not start: {:?}", server.last_log()))?;
        let url = line
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http://"))
            .ok_or_else(|| format!("unexpected first line from the server: {line}"))?;
        server.base = url.trim_end_matches('/').to_owned();
        Ok(server)
    }

    fn last_log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.1.clone()).unwrap_or_default()
    }

    /// utime + stime of the whole server process (all threads), in ms.
    fn cpu_ms(&self) -> f64 {
        proc_cpu_ms(&format!("/proc/{}/stat", self.pid))
    }

    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// Kills and reaps the child; returns the number of log lines it wrote.
    fn stop(mut self) -> usize {
        self.kill();
        // Give the reader thread a moment to count the last lines.
        std::thread::sleep(Duration::from_millis(100));
        self.log.lock().map(|l| l.0).unwrap_or(0)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime (fields 14 and 15) of `/proc/<pid>/stat`, in ms.
fn proc_cpu_ms(path: &str) -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(clock_ticks);
    let Ok(stat) = std::fs::read_to_string(path) else {
        return f64::NAN;
    };
    // The command name may hold spaces; the fields after it are fixed.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // After ")": field 3 is index 0, so utime (14) is 11 and stime (15) is 12.
    (get(11) + get(12)) * 1000.0 / ticks
}

// ---- the clients ---------------------------------------------------------------------------

struct Ctx {
    /// One or more instances; request `j` of challenge `k` goes to `bases[(k + j) % n]`.
    bases: Vec<String>,
    duration_ms: u64,
    key: Arc<Secret>,
    crops: Arc<Crops>,
    frames: usize,
    deadline: Instant,
}

/// One request's answer: latency in ms and status (0 when it failed without one).
#[derive(Clone, Copy)]
struct Sample {
    ms: f64,
    status: u16,
    /// The `error` code of a refusal, when it is one of the API's.
    code: Option<&'static str>,
}

/// The API's error codes (server/README.md).
const CODES: [&str; 18] = [
    "too_large",
    "unsupported_media_type",
    "bad_json",
    "bad_state",
    "bad_frame",
    "bad_body",
    "slow_body",
    "method_not_allowed",
    "bad_token",
    "nonce_reused",
    "too_many_frames",
    "window_over",
    "finished",
    "too_early",
    "too_fast",
    "rate_limited",
    "unknown_challenge",
    "store_unavailable",
];

fn error_code(text: &str) -> Option<&'static str> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let code = v.get("error")?.as_str()?;
    CODES.iter().copied().find(|c| *c == code)
}

#[derive(Default)]
struct ChallengeRecord {
    create: Vec<Sample>,
    frames: Vec<Sample>,
    finish: Vec<Sample>,
    /// (expected a pass, got a pass) when the finish succeeded.
    verdict: Option<(bool, bool)>,
    /// Body bytes sent and the HTTP/1.1 request line and headers this client sent.
    body_bytes: usize,
    header_bytes: usize,
    /// finish answered 409 too_early and was retried.
    finish_retries: usize,
    /// The verdict token of a successful finish.
    token: Option<String>,
}

struct Phase {
    clients: usize,
    records: Vec<ChallengeRecord>,
    wall: Duration,
    server_cpu_ms: f64,
    redis_cpu_ms: f64,
    client_cpu_ms: f64,
}

fn new_client() -> Res<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh ctx token as the Action's `encodeToken` makes it: a new nonce each time.
fn ctx_token(key: &Secret) -> Res<String> {
    let now = now_secs();
    let claims = CtxClaims {
        sub: SUB.to_owned(),
        iss: TENANT.to_owned(),
        exp: now + 300,
        iat: Some(now),
        use_: CTX_USE.to_owned(),
        nonce: random_id(16).map_err(|e| e.to_string())?,
        v: PROTOCOL_VERSION,
    };
    mint_ctx(&claims, key).map_err(|e| e.to_string())
}

/// Bytes of the request line and headers reqwest sends for a POST with a body (it adds
/// `accept: */*` and `host`; no user agent).
fn header_bytes(host: &str, path: &str, content_type: Option<&str>, body_len: usize) -> usize {
    let mut h = format!("POST {path} HTTP/1.1\r\n");
    if let Some(ct) = content_type {
        h.push_str(&format!("content-type: {ct}\r\n"));
    }
    h.push_str("accept: */*\r\n");
    h.push_str(&format!("host: {host}\r\n"));
    h.push_str(&format!("content-length: {body_len}\r\n\r\n"));
    h.len()
}

async fn post(
    client: &reqwest::Client,
    url: String,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (Sample, String) {
    let mut req = client.post(url).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let t = Instant::now();
    let res = req.send().await;
    let (status, text) = match res {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    };
    let code = if (200..300).contains(&status) {
        None
    } else {
        error_code(&text)
    };
    (
        Sample {
            ms: t.elapsed().as_secs_f64() * 1000.0,
            status,
            code,
        },
        text,
    )
}

/// One challenge as the page runs it: create with a fresh ctx token, one crop every
/// interval (one at a time, the next when both the interval has passed and the previous
/// answer is in), then finish after the countdown (a 409 too_early is retried).
async fn challenge(
    ctx: &Ctx,
    client: &reqwest::Client,
    k: usize,
    frames: usize,
) -> Res<ChallengeRecord> {
    let mut rec = ChallengeRecord::default();
    let host = ctx.bases[0].trim_start_matches("http://");
    // Round robin per request over the instances, starting at a different one per challenge.
    let mut request = k;
    let mut next_base = || {
        let b = ctx.bases[request % ctx.bases.len()].clone();
        request += 1;
        b
    };
    let (_, jpeg, smiling) = ctx.crops.for_challenge(k);
    let body = serde_json::json!({
        "state": format!("bench-{k}"),
        "session_token": ctx_token(&ctx.key)?,
    })
    .to_string()
    .into_bytes();
    let path = "/api/v1/challenges";
    rec.body_bytes += body.len();
    rec.header_bytes += header_bytes(host, path, Some("application/json"), body.len());
    let (s, text) = post(
        client,
        format!("{}{path}", next_base()),
        Some("application/json"),
        body,
    )
    .await;
    rec.create.push(s);
    if s.status != 201 {
        return Err(format!("create answered {}: {text}", s.status));
    }
    let t0 = tokio::time::Instant::now();
    let answer: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let id = answer["challenge"]
        .as_str()
        .ok_or("no challenge id")?
        .to_owned();
    let interval = Duration::from_millis(FRAME_INTERVAL_MS);
    for i in 0..frames {
        tokio::time::sleep_until(t0 + interval * i as u32).await;
        let path = format!("/api/v1/challenges/{id}/frames");
        rec.body_bytes += jpeg.len();
        rec.header_bytes += header_bytes(host, &path, Some("image/jpeg"), jpeg.len());
        let (s, _) = post(
            client,
            format!("{}{path}", next_base()),
            Some("image/jpeg"),
            jpeg.clone(),
        )
        .await;
        rec.frames.push(s);
        if Instant::now() > ctx.deadline {
            return Err("the overall deadline passed".into());
        }
    }
    tokio::time::sleep_until(t0 + Duration::from_millis(ctx.duration_ms + FINISH_SLACK_MS)).await;
    let path = format!("/api/v1/challenges/{id}/finish");
    for attempt in 0..5 {
        rec.header_bytes += header_bytes(host, &path, None, 0);
        let (s, text) = post(client, format!("{}{path}", next_base()), None, Vec::new()).await;
        if s.status == 409 && text.contains("too_early") && attempt < 4 {
            rec.finish_retries += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        rec.finish.push(s);
        if s.status == 200 {
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            rec.verdict = Some((!smiling, v["notsmiling"].as_bool().unwrap_or(false)));
            rec.token = v["token"].as_str().map(str::to_owned);
        }
        break;
    }
    Ok(rec)
}

async fn warm_up(ctx: &Ctx, base: &str) -> Res<()> {
    let client = new_client()?;
    // Create and two crops; the challenge is left open (it expires in the server).
    let body = serde_json::json!({"state": "warm-up", "session_token": ctx_token(&ctx.key)?})
        .to_string()
        .into_bytes();
    let (s, text) = post(
        &client,
        format!("{base}/api/v1/challenges"),
        Some("application/json"),
        body,
    )
    .await;
    if s.status != 201 {
        return Err(format!("warm-up create answered {}: {text}", s.status));
    }
    let answer: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let id = answer["challenge"]
        .as_str()
        .ok_or("no challenge id")?
        .to_owned();
    for i in 0..2 {
        let (_, jpeg, _) = ctx.crops.for_challenge(i);
        let (s, text) = post(
            &client,
            format!("{base}/api/v1/challenges/{id}/frames"),
            Some("image/jpeg"),
            jpeg.clone(),
        )
        .await;
        if s.status != 200 {
            return Err(format!("warm-up frame answered {}: {text}", s.status));
        }
        tokio::time::sleep(Duration::from_millis(FRAME_INTERVAL_MS)).await;
    }
    Ok(())
}

/// `clients` clients at once, each running `per_client` challenges one after another.
/// Their starts are spread over one frame interval, as independent users would be.
async fn phase(
    ctx: &Ctx,
    servers: &[&Server],
    redis: Option<&RedisChild>,
    clients: usize,
    per_client: usize,
) -> Res<Phase> {
    let servers_cpu = || servers.iter().map(|s| s.cpu_ms()).sum::<f64>();
    let redis_cpu = || redis.map_or(0.0, RedisChild::cpu_ms);
    let cpu0 = servers_cpu();
    let redis0 = redis_cpu();
    let me0 = proc_cpu_ms("/proc/self/stat");
    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = new_client()?;
        let ctx = Ctx {
            bases: ctx.bases.clone(),
            duration_ms: ctx.duration_ms,
            key: Arc::clone(&ctx.key),
            crops: Arc::clone(&ctx.crops),
            frames: ctx.frames,
            deadline: ctx.deadline,
        };
        let stagger = Duration::from_millis(FRAME_INTERVAL_MS * c as u64 / clients as u64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(stagger).await;
            let mut out = Vec::new();
            for j in 0..per_client {
                out.push(challenge(&ctx, &client, c * per_client + j, ctx.frames).await?);
            }
            Ok::<_, String>(out)
        }));
    }
    let mut records = Vec::new();
    for task in tasks {
        records.extend(task.await.map_err(|e| e.to_string())??);
    }
    let wall = t.elapsed();
    Ok(Phase {
        clients,
        records,
        wall,
        server_cpu_ms: servers_cpu() - cpu0,
        redis_cpu_ms: redis_cpu() - redis0,
        client_cpu_ms: proc_cpu_ms("/proc/self/stat") - me0,
    })
}

// ---- where the time goes, in this process ----------------------------------------------------

struct Split {
    decode_ms: f64,
    models_ms: f64,
    copies: usize,
}

fn in_process_split(crops: &Crops) -> Res<Split> {
    let judge =
        smile_factor_server::load_judge(&root().join("models")).map_err(|e| e.to_string())?;
    let copies = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let decoded = crops
        .items
        .iter()
        .map(|(_, jpeg, _)| decode_crop(jpeg).map_err(|e| e.to_string()))
        .collect::<Res<Vec<_>>>()?;
    for crop in &decoded {
        judge.smile(crop).map_err(|e| e.to_string())?;
    }
    // Batches: the thread's CPU clock is only updated at scheduler events.
    let t = thread_cpu_ms();
    for _ in 0..50 {
        for (_, jpeg, _) in &crops.items {
            decode_crop(jpeg).map_err(|e| e.to_string())?;
        }
    }
    let decode_ms = (thread_cpu_ms() - t) / (50 * crops.items.len()) as f64;
    let t = thread_cpu_ms();
    for _ in 0..4 {
        for crop in &decoded {
            judge.smile(crop).map_err(|e| e.to_string())?;
        }
    }
    let models_ms = (thread_cpu_ms() - t) / (4 * decoded.len()) as f64;
    Ok(Split {
        decode_ms,
        models_ms,
        copies,
    })
}

/// CPU time of this thread in ms (`/proc/thread-self/schedstat`: ns on a CPU).
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns / 1e6)
}

// ---- the report ------------------------------------------------------------------------------

/// Nearest-rank quantile.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn uptime() -> String {
    Command::new("uptime")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/loadavg")
                .ok()
                .map(|s| format!("loadavg {}", s.trim()))
        })
        .unwrap_or_else(|| "unknown".into())
}

fn cmd_out(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .current_dir(root())
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

struct Report<'a> {
    opts: &'a Opts,
    profile: &'a str,
    one: &'a Phase,
    many: &'a Phase,
    split: &'a Split,
    crops: &'a Crops,
    load_start: &'a str,
    load_end: &'a str,
    peak_rss_kib: Option<u64>,
    log_lines: usize,
    elapsed: Duration,
}

fn latency_row(out: &mut String, clients: usize, name: &str, samples: Vec<Sample>, ok: u16) {
    let n = samples.len();
    let mut good: Vec<f64> = samples
        .iter()
        .filter(|s| s.status == ok)
        .map(|s| s.ms)
        .collect();
    let mut errors: Vec<String> = Vec::new();
    let mut other: Vec<(u16, Option<&str>)> = samples
        .iter()
        .filter(|s| s.status != ok)
        .map(|s| (s.status, s.code))
        .collect();
    other.sort_unstable();
    other.dedup();
    for (st, code) in other {
        let c = samples
            .iter()
            .filter(|s| s.status == st && s.code == code)
            .count();
        let what = match (st, code) {
            (0, _) => "no answer".to_owned(),
            (st, Some(code)) => format!("{st} {code}"),
            (st, None) => st.to_string(),
        };
        errors.push(format!("{c} x {what}"));
    }
    let max = good.iter().copied().fold(f64::NAN, f64::max);
    out.push_str(&format!(
        "| {clients} | {name} | {n} | {} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
        if errors.is_empty() {
            "0".into()
        } else {
            errors.join(", ")
        },
        quantile(&mut good, 0.5),
        quantile(&mut good, 0.9),
        quantile(&mut good, 0.99),
        max,
    ));
}

fn report(r: &Report) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    let date = cmd_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let commit = cmd_out("git", &["rev-parse", "--short", "HEAD"]);
    let rustc = cmd_out("rustc", &["-V"]);
    let mut out = String::new();
    out.push_str(&format!(
        "- Date: {date}; checkout {commit}; runtime {:.1} min; command: `cargo run -p smile-factor-server{} --example load`\n",
        r.elapsed.as_secs_f64() / 60.0,
        if r.profile == "dev" { String::new() } else { format!(" --profile {}", r.profile) },
    ));
    out.push_str(&format!(
        "- Build profile: {}; {rustc}\n",
        describe_profile(r.profile)
    ));
    out.push_str(&format!(
        "- Machine: {cpu}, {cores} cores; load at start: `{}`; at the end: `{}`\n",
        r.load_start, r.load_end
    ));
    out.push_str(&format!(
        "- Server: the `smile-factor-server` binary as a child process on 127.0.0.1 (system clock, countdown {DURATION_MS} ms, frame interval {FRAME_INTERVAL_MS} ms, access log on at info, written to a pipe), {} model copies; peak RSS {}\n",
        r.split.copies,
        r.peak_rss_kib.map_or("unknown".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0)),
    ));
    let sizes: Vec<String> = r
        .crops
        .items
        .iter()
        .map(|(n, j, _)| format!("{n} {} B", j.len()))
        .collect();
    out.push_str(&format!(
        "- Each challenge: create (fresh ctx token), {} crops {FRAME_INTERVAL_MS} ms apart (one at a time), finish after the countdown; one fixture face per challenge, neutral and smiling alternating; crops {CROP_SIDE}x{CROP_SIDE} JPEG q{JPEG_QUALITY}: {}\n\n",
        r.opts.frames,
        sizes.join(", ")
    ));

    out.push_str(
        "Latency per request (ms, client side, over loopback; errors = any other status):\n\n",
    );
    out.push_str("| clients | request | n | errors | median | p90 | p99 | max |\n| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: |\n");
    for p in [r.one, r.many] {
        let all = |f: fn(&ChallengeRecord) -> &Vec<Sample>| -> Vec<Sample> {
            p.records
                .iter()
                .flat_map(|c| f(c).iter().copied())
                .collect()
        };
        latency_row(&mut out, p.clients, "create", all(|c| &c.create), 201);
        latency_row(&mut out, p.clients, "frames", all(|c| &c.frames), 200);
        latency_row(&mut out, p.clients, "finish", all(|c| &c.finish), 200);
    }
    out.push('\n');
    out.push_str("Per challenge:\n\n");
    out.push_str("| clients | challenges | wall (s) | challenges/s | frames/s | server CPU per challenge (ms) | server CPU per frame (ms) | server CPU busy (% of one core) | client CPU per challenge (ms) | bytes up per challenge: bodies | with HTTP/1.1 headers | verdicts as expected |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for p in [r.one, r.many] {
        let n = p.records.len() as f64;
        let frames_ok: usize = p
            .records
            .iter()
            .map(|c| c.frames.iter().filter(|s| s.status == 200).count())
            .sum();
        let bodies: usize = p.records.iter().map(|c| c.body_bytes).sum();
        let headers: usize = p.records.iter().map(|c| c.header_bytes).sum();
        let verdicts = p
            .records
            .iter()
            .filter_map(|c| c.verdict)
            .collect::<Vec<_>>();
        let right = verdicts.iter().filter(|(e, g)| e == g).count();
        let wall = p.wall.as_secs_f64();
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.2} | {:.1} | {:.0} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {right}/{} |\n",
            p.clients,
            p.records.len(),
            wall,
            n / wall,
            frames_ok as f64 / wall,
            p.server_cpu_ms / n,
            p.server_cpu_ms / frames_ok.max(1) as f64,
            p.server_cpu_ms / wall / 10.0,
            p.client_cpu_ms / n,
            bodies as f64 / n,
            (bodies + headers) as f64 / n,
            verdicts.len(),
        ));
    }
    let retries: usize = [r.one, r.many]
        .iter()
        .flat_map(|p| p.records.iter())
        .map(|c| c.finish_retries)
        .sum();
    out.push_str(&format!(
        "\nNotes: the clients pace themselves as the page does ({} frames/s each), so frames/s is the offered load, not the server's capacity; CPU is utime + stime of the server process from /proc/<pid>/stat (clock ticks) over each phase, the client's own shown apart. Where the server's time goes, measured in this example's process with the same code and profile on the same crops (thread CPU time, mean of 300 decodes and 24 model runs): JPEG check + decode {:.2} ms, both models (detector at 224 + expression net) {:.1} ms per frame; the rest of the server's CPU per frame is HTTP, tokio, the blocking-pool hand-offs and the access log. finish retried after 409 too_early: {retries}. Access-log lines written: {}.\n",
        1000 / FRAME_INTERVAL_MS,
        r.split.decode_ms,
        r.split.models_ms,
        r.log_lines,
    ));
    print!("{out}");
}

// ---- scale-out: 1 instance, 1 + Redis, 3 sharing Redis ------------------------------------

/// The scale-out section's countdown: 12 crops 500 ms apart fit in it.
const SCALE_DURATION_MS: u64 = 6_000;
const SCALE_FRAMES: usize = 12;

/// A `redis-server` child on a free loopback port, without persistence.
struct RedisChild {
    child: Option<Child>,
    pid: u32,
    url: String,
}

impl RedisChild {
    fn start() -> Res<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server (./run setup installs it): {e}"))?;
        let pid = child.id();
        let redis = Self {
            child: Some(child),
            pid,
            url: format!("redis://127.0.0.1:{port}/"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("redis-server did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }

    fn cpu_ms(&self) -> f64 {
        proc_cpu_ms(&format!("/proc/{}/stat", self.pid))
    }
}

impl Drop for RedisChild {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct ScaleRow {
    setup: &'static str,
    phase: Phase,
    /// Finishes answered 200, tokens that verify with the verdict key, distinct `jti`s.
    finished: usize,
    valid_tokens: usize,
    distinct_jti: usize,
}

fn scale_out(opts: &Opts, profile: &str, bin: &Path) -> Res<()> {
    let started = Instant::now();
    let load_start = uptime();
    let crops = Arc::new(Crops::make()?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for (setup, instances, with_redis) in [
        ("1 instance, memory", 1, false),
        ("1 instance + Redis", 1, true),
        ("3 instances + Redis, round robin", 3, true),
    ] {
        let ctx_secret = random_id(32).map_err(|e| e.to_string())?;
        let verdict_secret = random_id(32).map_err(|e| e.to_string())?;
        let redis = if with_redis {
            Some(RedisChild::start()?)
        } else {
            None
        };
        let servers = (0..instances)
            .map(|_| {
                Server::start(
                    bin,
                    &ctx_secret,
                    &verdict_secret,
                    SCALE_DURATION_MS,
                    redis.as_ref().map(|r| r.url.as_str()),
                )
            })
            .collect::<Res<Vec<_>>>()?;
        let ctx = Ctx {
            bases: servers.iter().map(|s| s.base.clone()).collect(),
            duration_ms: SCALE_DURATION_MS,
            key: Arc::new(Secret::new(ctx_secret)),
            crops: Arc::clone(&crops),
            frames: SCALE_FRAMES,
            deadline: started + DEADLINE,
        };
        for s in &servers {
            rt.block_on(warm_up(&ctx, &s.base))?;
        }
        let refs: Vec<&Server> = servers.iter().collect();
        let phase = rt.block_on(phase(
            &ctx,
            &refs,
            redis.as_ref(),
            opts.scale_clients,
            opts.scale_per_client,
        ))?;
        for s in servers {
            s.stop();
        }
        drop(redis);
        let key = Secret::new(verdict_secret);
        let now = now_secs();
        let tokens: Vec<&String> = phase
            .records
            .iter()
            .filter_map(|r| r.token.as_ref())
            .collect();
        let mut jti = std::collections::HashSet::new();
        let mut valid = 0;
        for t in &tokens {
            if let Ok(c) = smile_factor_server::tokens::decode_verdict(t, &key, now) {
                valid += 1;
                jti.insert(c.jti);
            }
        }
        let finished = phase
            .records
            .iter()
            .flat_map(|r| r.finish.iter())
            .filter(|s| s.status == 200)
            .count();
        rows.push(ScaleRow {
            setup,
            phase,
            finished,
            valid_tokens: valid,
            distinct_jti: jti.len(),
        });
    }
    let load_end = uptime();
    report_scale(
        opts,
        profile,
        &rows,
        &load_start,
        &load_end,
        started.elapsed(),
    );
    Ok(())
}

fn report_scale(
    opts: &Opts,
    profile: &str,
    rows: &[ScaleRow],
    load_start: &str,
    load_end: &str,
    elapsed: Duration,
) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let date = cmd_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let commit = cmd_out("git", &["rev-parse", "--short", "HEAD"]);
    let redis = cmd_out("redis-server", &["--version"]);
    let mut out = String::new();
    out.push_str(&format!(
        "- Date: {date}; checkout {commit}; runtime {:.1} min; command: `cargo run -p smile-factor-server{} --example load -- --scale-out`\n",
        elapsed.as_secs_f64() / 60.0,
        if profile == "dev" { String::new() } else { format!(" --profile {profile}") },
    ));
    out.push_str(&format!(
        "- Machine: {cores} cores; load at start: `{load_start}`; at the end: `{load_end}`; {}\n",
        redis
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    out.push_str(&format!(
        "- Each setup: {} clients at once, {} challenges each (create, {SCALE_FRAMES} crops {FRAME_INTERVAL_MS} ms apart, finish after a {SCALE_DURATION_MS} ms countdown); with 3 instances request j of challenge k goes to instance (k + j) mod 3, so every challenge is created, fed and finished on different instances; servers (`{profile}` build) and redis-server are child processes on 127.0.0.1\n\n",
        opts.scale_clients, opts.scale_per_client
    ));
    out.push_str("| setup | challenges | wall (s) | challenges/s | requests | errors | all requests p50 / p99 (ms) | frames p50 / p99 (ms) | create + finish p50 / p99 (ms) | server CPU per challenge (ms) | redis CPU per challenge (ms) | tokens valid / finished (distinct jti) |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for r in rows {
        let p = &r.phase;
        let n = p.records.len() as f64;
        let all: Vec<Sample> = p
            .records
            .iter()
            .flat_map(|c| c.create.iter().chain(&c.frames).chain(&c.finish).copied())
            .collect();
        let mut kinds: Vec<String> = all
            .iter()
            .filter(|s| !(200..300).contains(&s.status))
            .map(|s| format!("{} {}", s.status, s.code.unwrap_or("?")))
            .collect();
        let count = kinds.len();
        kinds.sort();
        kinds.dedup();
        let errors = if count == 0 {
            "0".to_owned()
        } else {
            format!("{count} ({})", kinds.join(", "))
        };
        let ms = |v: &[Sample]| -> (f64, f64) {
            let mut good: Vec<f64> = v
                .iter()
                .filter(|s| (200..300).contains(&s.status))
                .map(|s| s.ms)
                .collect();
            let p50 = quantile(&mut good, 0.5);
            (p50, quantile(&mut good, 0.99))
        };
        let frames: Vec<Sample> = p
            .records
            .iter()
            .flat_map(|c| c.frames.iter().copied())
            .collect();
        let ends: Vec<Sample> = p
            .records
            .iter()
            .flat_map(|c| c.create.iter().chain(&c.finish).copied())
            .collect();
        let (a50, a99) = ms(&all);
        let (f50, f99) = ms(&frames);
        let (e50, e99) = ms(&ends);
        let wall = p.wall.as_secs_f64();
        out.push_str(&format!(
            "| {} | {} | {wall:.1} | {:.2} | {} | {errors} | {a50:.1} / {a99:.1} | {f50:.1} / {f99:.1} | {e50:.1} / {e99:.1} | {:.0} | {} | {} / {} ({}) |\n",
            r.setup,
            p.records.len(),
            r.finished as f64 / wall,
            all.len(),
            p.server_cpu_ms / n,
            if r.setup.contains("Redis") { format!("{:.1}", p.redis_cpu_ms / n) } else { "-".into() },
            r.valid_tokens,
            r.finished,
            r.distinct_jti,
        ));
    }
    out.push_str("\nchallenges/s is set by the clients' pace (one crop every 500 ms, as the page) and their number, not by the server's capacity; CPU is utime + stime from /proc/<pid>/stat over the phase (all server processes summed; redis-server apart), per challenge finished.\n");
    print!("{out}");
}
