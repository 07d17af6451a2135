//! The signed mode's side of the page: the verifier protocol as pure rules.
//!
//! With `"verify": true` the hosted page opens a challenge on its own origin's verifier
//! (`POST /api/v1/challenges`), sends a few face crops during the countdown
//! (`POST /api/v1/challenges/{id}/frames`), asks for the verdict at the end
//! (`POST /api/v1/challenges/{id}/finish`) and posts the server's signed token to
//! `<return URL>/continue`. The server decides; the page's own verdict only says when to
//! ask. Here: the endpoint URLs, the request body, the answers' checks, the upload pacing
//! and the finish retries, all without a browser so they are tested natively.
//!
//! Long only with its unit tests (a third of the file): one protocol, checked answer by answer.

use serde::Deserialize;
use thiserror::Error;
use url::Url;

use crate::challenge::outcome::{Outcome, Reason, Stats};
use crate::challenge::prompt::{Mode, Prompt, MAX_WITHIN_MS, MIN_WITHIN_MS};
use crate::challenge::verdict::{MAX_DURATION_MS, MIN_DURATION_MS};

/// The page query parameter carrying the identity provider's signed context token.
pub const SESSION_TOKEN_PARAM: &str = "session_token";
/// Longest accepted session token, in bytes (a JWT of a few claims is far shorter).
pub const MAX_SESSION_TOKEN_BYTES: usize = 8192;
/// The form field the verdict token is posted in.
pub const TOKEN_FIELD: &str = "smile_token";
/// Where challenges are created, on the page's own origin.
pub const CHALLENGES_PATH: &str = "/api/v1/challenges";

/// The server's limits for one crop: its JPEG bytes and its side in pixels.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
pub const MAX_FRAME_SIDE: u32 = 256;
/// The crop's side in pixels, within [`MAX_FRAME_SIDE`].
pub const CROP_SIDE: u32 = 160;
/// JPEG qualities to try in turn until the crop fits in [`MAX_FRAME_BYTES`]. A 160 px face
/// at 0.85 is usually 4-8 KiB; the lower ones are for noisy cameras.
pub const JPEG_QUALITIES: [f64; 4] = [0.85, 0.7, 0.55, 0.4];

/// A `409` to `finish` may only mean that the server's countdown is a few ms behind
/// ours: ask again this often, for at most this long after the first try.
pub const FINISH_RETRY_MS: i32 = 250;
pub const FINISH_RETRY_FOR_MS: f64 = 3_000.0;
/// A create or finish request unanswered after this long fails closed.
pub const REQUEST_TIMEOUT_MS: i32 = 15_000;

/// Bounds on the server's pacing, so a wrong answer can neither flood it nor stall us.
const MIN_FRAME_INTERVAL_MS: f64 = 100.0;
const MAX_FRAMES: u32 = 1_000;
const MAX_CHALLENGE_ID_BYTES: usize = 256;
const MAX_TOKEN_BYTES: usize = 8192;
/// How much of a server's error message the console repeats.
const MAX_MESSAGE_CHARS: usize = 200;

/// Which request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    Frame,
    Finish,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Create => "starting the check",
            Step::Frame => "sending a snapshot",
            Step::Finish => "finishing the check",
        })
    }
}

/// The verifier could not be used; the page shows `Problem::Verifier` and fails closed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum VerifyError {
    /// An HTTP error status, with the server's `message` if it sent one.
    #[error("the verifier answered HTTP {status} while {step}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Http {
        step: Step,
        status: u16,
        message: Option<String>,
    },
    /// The request did not reach the server or its answer was lost.
    #[error("the verifier could not be reached while {step}: {detail}")]
    Network { step: Step, detail: String },
    /// No answer in [`REQUEST_TIMEOUT_MS`].
    #[error("the verifier did not answer in time while {step}")]
    Timeout { step: Step },
    /// A success status with a body that breaks the protocol.
    #[error("the verifier's answer while {step} is not usable: {detail}")]
    BadAnswer { step: Step, detail: String },
    /// The page's own URL or the challenge id gives no endpoint URL.
    #[error("no verifier URL: {0}")]
    Url(String),
}

/// The session token from the page URL is unusable; like a bad `state`, the page then
/// shows the error and never returns.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionTokenError {
    #[error("the page URL has no session_token; start the sign-in again")]
    Missing,
    #[error("the session_token in the page URL is empty; start the sign-in again")]
    Empty,
    #[error(
        "the session_token is {bytes} bytes long, more than the {MAX_SESSION_TOKEN_BYTES} allowed"
    )]
    TooLong { bytes: usize },
    #[error("the session_token contains whitespace or a control character")]
    BadChar,
}

/// Checks the `session_token` read from the page URL and returns it unchanged.
pub fn validate_session_token(raw: Option<&str>) -> Result<&str, SessionTokenError> {
    let token = raw.ok_or(SessionTokenError::Missing)?;
    if token.is_empty() {
        return Err(SessionTokenError::Empty);
    }
    if token.len() > MAX_SESSION_TOKEN_BYTES {
        return Err(SessionTokenError::TooLong { bytes: token.len() });
    }
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(SessionTokenError::BadChar);
    }
    Ok(token)
}

/// The endpoints, resolved against the page's own URL: same origin, whatever its path.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoints {
    challenges: Url,
}

impl Endpoints {
    /// From the page's `location.href`.
    pub fn for_page(page: &str) -> Result<Self, VerifyError> {
        let page = Url::parse(page).map_err(|e| VerifyError::Url(format!("page URL: {e}")))?;
        let challenges = page
            .join(CHALLENGES_PATH)
            .map_err(|e| VerifyError::Url(e.to_string()))?;
        if challenges.cannot_be_a_base() {
            return Err(VerifyError::Url(format!("{page} has no path")));
        }
        Ok(Self { challenges })
    }

    /// `POST` here to open a challenge.
    pub fn create(&self) -> &Url {
        &self.challenges
    }

    /// `POST` crops here.
    pub fn frames(&self, challenge: &str) -> Result<Url, VerifyError> {
        self.for_challenge(challenge, "frames")
    }

    /// `POST` here for the verdict.
    pub fn finish(&self, challenge: &str) -> Result<Url, VerifyError> {
        self.for_challenge(challenge, "finish")
    }

    /// The id is one path segment, percent-encoded by `url`: it cannot leave the path.
    fn for_challenge(&self, id: &str, last: &str) -> Result<Url, VerifyError> {
        let mut url = self.challenges.clone();
        url.path_segments_mut()
            .map_err(|()| VerifyError::Url("the page URL has no path".into()))?
            .pop_if_empty()
            .push(id)
            .push(last);
        Ok(url)
    }
}

/// The JSON body of the create request: `{"state", "session_token"}`, plus `"mode":
/// "smile"` in smile mode (the default mode is left out, as servers before it expect).
/// The server signs the mode into the token, and the identity provider checks it.
pub fn create_body(state: &str, session_token: &str, mode: Mode) -> String {
    let mut body = serde_json::json!({ "state": state, "session_token": session_token });
    if mode != Mode::default() {
        body["mode"] = serde_json::Value::from(mode.as_str());
    }
    body.to_string()
}

/// Checks a crop upload's success answer: `{}`, or `{"prompt": {"kind", "within_ms"}}`
/// when this crop revealed a prompt. A prompt out of bounds breaks the protocol.
pub fn parse_uploaded(body: &str) -> Result<Option<Prompt>, VerifyError> {
    #[derive(Deserialize)]
    struct Uploaded {
        #[serde(default)]
        prompt: Option<Prompt>,
    }
    let step = Step::Frame;
    let u: Uploaded = serde_json::from_str(body).map_err(|e| bad(step, e.to_string()))?;
    match u.prompt {
        Some(p) if !(MIN_WITHIN_MS..=MAX_WITHIN_MS).contains(&p.within_ms) => Err(bad(
            step,
            format!("within_ms {} is outside 500..=10000", p.within_ms),
        )),
        p => Ok(p),
    }
}

/// An open challenge: `201 {"challenge", "duration_ms", "frame_interval_ms", "max_frames"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Created {
    /// The server's id for it, used in the frames and finish paths.
    pub challenge: String,
    /// The countdown, which the page shows instead of its configured one.
    pub duration_ms: f64,
    /// How often to send a crop.
    pub frame_interval_ms: f64,
    /// How many crops at most.
    pub max_frames: u32,
}

/// Checks the create answer. The server answers `201`; any other status is an error.
pub fn parse_created(status: u16, body: &str) -> Result<Created, VerifyError> {
    let step = Step::Create;
    if status != 201 {
        return Err(http_error(step, status, body));
    }
    let c: Created = serde_json::from_str(body).map_err(|e| bad(step, e.to_string()))?;
    if c.challenge.is_empty()
        || c.challenge.len() > MAX_CHALLENGE_ID_BYTES
        || c.challenge.chars().any(char::is_control)
    {
        return Err(bad(
            step,
            "the challenge id is empty, too long or has control characters",
        ));
    }
    if !(MIN_DURATION_MS..=MAX_DURATION_MS).contains(&c.duration_ms) {
        return Err(bad(
            step,
            format!("duration_ms {} is outside 5000..=120000", c.duration_ms),
        ));
    }
    if !(MIN_FRAME_INTERVAL_MS..=c.duration_ms).contains(&c.frame_interval_ms) {
        return Err(bad(
            step,
            format!(
                "frame_interval_ms {} is outside 100..=duration_ms",
                c.frame_interval_ms
            ),
        ));
    }
    if !(1..=MAX_FRAMES).contains(&c.max_frames) {
        return Err(bad(
            step,
            format!("max_frames {} is outside 1..=1000", c.max_frames),
        ));
    }
    Ok(c)
}

#[derive(Deserialize)]
struct RawFinish {
    token: String,
    notsmiling: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// The server's verdict: `200 {"token", "notsmiling", "reason"?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerVerdict {
    /// The signed verdict token, posted back as [`TOKEN_FIELD`].
    pub token: String,
    pub notsmiling: bool,
    /// Why it failed; a reason the page does not know shows as [`Reason::Error`] (the
    /// token, which the identity provider checks, carries the server's own).
    pub reason: Option<Reason>,
}

impl ServerVerdict {
    /// The outcome the page shows and records: the server's verdict with the page's stats.
    pub fn outcome(&self, stats: Stats) -> Outcome {
        Outcome {
            notsmiling: self.notsmiling,
            reason: self.reason,
            stats,
        }
    }
}

/// Checks the finish answer. A pass with a reason, or a failure of an unknown kind with
/// no token, breaks the protocol: the page then fails closed and sends nothing.
pub fn parse_finish(status: u16, body: &str) -> Result<ServerVerdict, VerifyError> {
    let step = Step::Finish;
    if status != 200 {
        return Err(http_error(step, status, body));
    }
    let raw: RawFinish = serde_json::from_str(body).map_err(|e| bad(step, e.to_string()))?;
    let token_ok = !raw.token.is_empty()
        && raw.token.len() <= MAX_TOKEN_BYTES
        && !raw
            .token
            .chars()
            .any(|c| c.is_control() || c.is_whitespace());
    if !token_ok {
        return Err(bad(step, "the token is empty, too long or has whitespace"));
    }
    let reason = match (raw.notsmiling, raw.reason.as_deref()) {
        (true, None) => None,
        (true, Some(r)) => return Err(bad(step, format!("a pass with reason {r:?}"))),
        (false, r) => Some(r.and_then(Reason::parse).unwrap_or(Reason::Error)),
    };
    Ok(ServerVerdict {
        token: raw.token,
        notsmiling: raw.notsmiling,
        reason,
    })
}

/// After a failed finish `status`, `since_first_ms` after the first try: how long to wait
/// before asking again, or `None` to give up.
pub fn finish_retry_after(status: u16, since_first_ms: f64) -> Option<i32> {
    let retry = status == 409
        && since_first_ms.is_finite()
        && since_first_ms + f64::from(FINISH_RETRY_MS) <= FINISH_RETRY_FOR_MS;
    retry.then_some(FINISH_RETRY_MS)
}

/// What one crop upload's answer means for the next ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadAnswer {
    /// Taken.
    Accepted,
    /// Not taken this time (network, rate limit, a bad crop): logged, the next may pass.
    Skipped,
    /// The challenge is unknown (404) or over (409): send no more.
    Stop,
}

impl UploadAnswer {
    /// From the HTTP status; `None` for a request that got no answer.
    pub fn from_status(status: Option<u16>) -> Self {
        match status {
            Some(200..=299) => UploadAnswer::Accepted,
            Some(404 | 409) => UploadAnswer::Stop,
            _ => UploadAnswer::Skipped,
        }
    }
}

/// Slack on the last crop's spacing for the previous crop's time on the wire: the
/// server measures the interval between arrivals.
pub const LAST_CROP_MARGIN_MS: f64 = 100.0;
/// The same slack for a crop answering a prompt: wider, as a refused one costs the prompt
/// (measured: with 100 ms, 4 runs in 10 on a loaded 2-core machine had one refused, 429).
pub const PROMPT_CROP_MARGIN_MS: f64 = 300.0;

/// When to send the next crop: about every `frame_interval_ms`, one at a time, at most
/// `max_frames` in all, and none after a [`UploadAnswer::Stop`].
#[derive(Debug, Clone, PartialEq)]
pub struct FramePacer {
    interval_ms: f64,
    max_frames: u32,
    started: u32,
    accepted: u32,
    last_ms: Option<f64>,
    in_flight: bool,
    stopped: bool,
}

impl FramePacer {
    pub fn new(created: &Created) -> Self {
        Self {
            interval_ms: created.frame_interval_ms,
            max_frames: created.max_frames,
            started: 0,
            accepted: 0,
            last_ms: None,
            in_flight: false,
            stopped: false,
        }
    }

    /// Whether a crop should be sent now (the caller sends none without a face box).
    pub fn due(&self, now_ms: f64) -> bool {
        !self.stopped
            && !self.in_flight
            && self.started < self.max_frames
            && self
                .last_ms
                .is_none_or(|last| now_ms - last >= self.interval_ms)
    }

    /// How long until one last crop may go before `finish` (the page saw a smile, and the
    /// server finishes early only when its latest crop shows one): out of turn, but
    /// within `max_frames` and not so soon after the previous one that the server calls
    /// it too close (half the interval, plus [`LAST_CROP_MARGIN_MS`] for the previous
    /// one's time on the wire). `None` when no crop may go at all.
    pub fn last_wait_ms(&self, now_ms: f64) -> Option<f64> {
        if self.stopped || self.started >= self.max_frames || !now_ms.is_finite() {
            return None;
        }
        let ready = self.last_ms.map_or(now_ms, |last| {
            last + self.interval_ms / 2.0 + LAST_CROP_MARGIN_MS
        });
        Some((ready - now_ms).max(0.0))
    }

    /// Whether a crop answering a prompt may go now, out of turn: none in flight, within
    /// `max_frames`, and half an interval (plus the wire's margin) after the previous one.
    pub fn due_early(&self, now_ms: f64) -> bool {
        let spaced = self
            .last_ms
            .is_none_or(|last| now_ms - last >= self.interval_ms / 2.0 + PROMPT_CROP_MARGIN_MS);
        !self.in_flight && spaced && self.last_wait_ms(now_ms).is_some()
    }

    /// A crop is on its way; counted against `max_frames` whatever its answer.
    pub fn begin(&mut self, now_ms: f64) {
        self.started += 1;
        self.last_ms = Some(now_ms);
        self.in_flight = true;
    }

    /// Its answer arrived.
    pub fn end(&mut self, answer: UploadAnswer) {
        self.in_flight = false;
        match answer {
            UploadAnswer::Accepted => self.accepted += 1,
            UploadAnswer::Skipped => {}
            UploadAnswer::Stop => self.stopped = true,
        }
    }

    /// Crops sent and crops the server took.
    pub fn counts(&self) -> (u32, u32) {
        (self.started, self.accepted)
    }

    pub fn stopped(&self) -> bool {
        self.stopped
    }
}

fn bad(step: Step, detail: impl Into<String>) -> VerifyError {
    VerifyError::BadAnswer {
        step,
        detail: detail.into(),
    }
}

/// An error status with the `message` of the server's `{"error", "message"}` body, cut short.
pub fn http_error(step: Step, status: u16, body: &str) -> VerifyError {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: Option<String>,
    }
    let message = serde_json::from_str::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.message)
        .map(|m| {
            m.chars()
                .filter(|c| !c.is_control())
                .take(MAX_MESSAGE_CHARS)
                .collect()
        });
    VerifyError::Http {
        step,
        status,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::prompt::PromptKind;

    fn stats() -> Stats {
        Stats {
            frames_analysed: 3,
            face_seen_ratio: 1.0,
            max_smile_score: 0.1,
            elapsed_ms: 15_000.0,
        }
    }

    const CREATED: &str = r#"{"challenge": "c-1", "duration_ms": 15000, "frame_interval_ms": 1000, "max_frames": 15}"#;

    #[test]
    fn session_token_checks() {
        assert_eq!(
            validate_session_token(None),
            Err(SessionTokenError::Missing)
        );
        assert_eq!(
            validate_session_token(Some("")),
            Err(SessionTokenError::Empty)
        );
        assert_eq!(validate_session_token(Some("a.b-c_d")), Ok("a.b-c_d"));
        for bad in ["a b", "a\nb", "\u{0}"] {
            assert_eq!(
                validate_session_token(Some(bad)),
                Err(SessionTokenError::BadChar)
            );
        }
        let long = "a".repeat(MAX_SESSION_TOKEN_BYTES + 1);
        assert!(matches!(
            validate_session_token(Some(&long)),
            Err(SessionTokenError::TooLong { .. })
        ));
    }

    #[test]
    fn endpoints_are_on_the_page_origin() {
        let e =
            Endpoints::for_page("https://factor.test:8443/some/page/?state=x&session_token=y#f")
                .expect("endpoints");
        assert_eq!(
            e.create().as_str(),
            "https://factor.test:8443/api/v1/challenges"
        );
        assert_eq!(
            e.frames("c-1").expect("frames").as_str(),
            "https://factor.test:8443/api/v1/challenges/c-1/frames"
        );
        assert_eq!(
            e.finish("c-1").expect("finish").as_str(),
            "https://factor.test:8443/api/v1/challenges/c-1/finish"
        );
        // An id cannot climb out of its segment or add a query.
        let odd = e.finish("../x?y#z").expect("finish");
        assert_eq!(
            odd.as_str(),
            "https://factor.test:8443/api/v1/challenges/..%2Fx%3Fy%23z/finish"
        );
        assert!(Endpoints::for_page("not a url").is_err());
        assert!(Endpoints::for_page("data:text/html,x").is_err());
    }

    #[test]
    fn create_body_is_json_with_both_fields() {
        let body = create_body("a\"b ü", "tok", Mode::Straight);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"state": "a\"b ü", "session_token": "tok"})
        );
    }

    #[test]
    fn create_body_names_the_mode_only_when_it_is_not_the_default() {
        let v: serde_json::Value =
            serde_json::from_str(&create_body("s", "t", Mode::Smile)).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"state": "s", "session_token": "t", "mode": "smile"})
        );
    }

    #[test]
    fn an_upload_answer_may_reveal_a_prompt() {
        assert_eq!(parse_uploaded("{}").expect("empty"), None);
        let p = parse_uploaded(r#"{"prompt": {"kind": "smile", "within_ms": 2500}}"#)
            .expect("prompt")
            .expect("some");
        assert_eq!(p.kind, PromptKind::Smile);
        assert_eq!(p.within_ms, 2_500);
        for bad in [
            r#"{"prompt": {"kind": "smile", "within_ms": 100}}"#,
            r#"{"prompt": {"kind": "smile", "within_ms": 60000}}"#,
            r#"{"prompt": {"kind": "wink", "within_ms": 2500}}"#,
            r#"{"prompt": {"kind": "smile"}}"#,
            "not json",
        ] {
            assert!(parse_uploaded(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_prompt_crop_goes_half_an_interval_and_a_margin_after_the_previous_one() {
        let mut p = FramePacer::new(&parse_created(201, CREATED).expect("created"));
        assert!(p.due_early(0.0), "nothing sent yet");
        p.begin(1_000.0);
        assert!(!p.due_early(1_900.0), "in flight");
        p.end(UploadAnswer::Accepted);
        let interval = p.interval_ms;
        let ready = 1_000.0 + interval / 2.0 + PROMPT_CROP_MARGIN_MS;
        assert!(!p.due_early(ready - 1.0));
        assert!(p.due_early(ready));
        p.end(UploadAnswer::Stop);
        assert!(!p.due_early(ready + 10_000.0), "stopped");
    }

    #[test]
    fn created_is_checked() {
        let c = parse_created(201, CREATED).expect("created");
        assert_eq!(c.challenge, "c-1");
        assert_eq!(c.duration_ms, 15_000.0);
        assert_eq!(c.max_frames, 15);
        // Extra fields are allowed: the next issue adds prompts.
        let extra = CREATED.replace('}', r#", "prompts": []}"#);
        assert!(parse_created(201, &extra).is_ok());
        for bad in [
            r#"{"challenge": "", "duration_ms": 15000, "frame_interval_ms": 1000, "max_frames": 15}"#,
            r#"{"challenge": "c", "duration_ms": 1000, "frame_interval_ms": 500, "max_frames": 15}"#,
            r#"{"challenge": "c", "duration_ms": 15000, "frame_interval_ms": 10, "max_frames": 15}"#,
            r#"{"challenge": "c", "duration_ms": 15000, "frame_interval_ms": 1000, "max_frames": 0}"#,
            r#"{"challenge": "c", "duration_ms": 15000, "frame_interval_ms": 1000}"#,
            "[]",
            "",
        ] {
            assert!(
                matches!(parse_created(201, bad), Err(VerifyError::BadAnswer { .. })),
                "{bad}"
            );
        }
        let e = parse_created(200, CREATED).expect_err("not 201");
        assert!(matches!(e, VerifyError::Http { status: 200, .. }), "{e}");
        let e = parse_created(401, r#"{"error": "bad_token", "message": "expired\n"}"#)
            .expect_err("401");
        assert_eq!(
            e.to_string(),
            "the verifier answered HTTP 401 while starting the check: expired"
        );
        let e = parse_created(502, "<html>").expect_err("502");
        assert_eq!(
            e.to_string(),
            "the verifier answered HTTP 502 while starting the check"
        );
    }

    #[test]
    fn finish_takes_the_servers_verdict() {
        let v = parse_finish(200, r#"{"token": "t.k.n", "notsmiling": true}"#).expect("pass");
        assert_eq!(v.token, "t.k.n");
        let o = v.outcome(stats());
        assert!(o.notsmiling);
        assert_eq!(o.reason, None);
        assert_eq!(o.stats, stats());

        let v = parse_finish(
            200,
            r#"{"token": "t", "notsmiling": false, "reason": "smiled"}"#,
        )
        .expect("smiled");
        assert_eq!(v.outcome(stats()).reason, Some(Reason::Smiled));
        // A failure without a reason, or with one the page does not know, shows as error.
        for body in [
            r#"{"token": "t", "notsmiling": false}"#,
            r#"{"token": "t", "notsmiling": false, "reason": "from_the_future"}"#,
        ] {
            let v = parse_finish(200, body).expect(body);
            assert_eq!(v.reason, Some(Reason::Error), "{body}");
            assert!(!v.notsmiling);
        }
        for bad in [
            r#"{"token": "t", "notsmiling": true, "reason": "smiled"}"#,
            r#"{"token": "", "notsmiling": true}"#,
            r#"{"token": "a b", "notsmiling": true}"#,
            r#"{"notsmiling": true}"#,
            r#"{"token": "t", "notsmiling": "true"}"#,
        ] {
            assert!(
                matches!(parse_finish(200, bad), Err(VerifyError::BadAnswer { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_finish(409, "{}"),
            Err(VerifyError::Http { status: 409, .. })
        ));
    }

    #[test]
    fn finish_retries_only_a_409_for_a_while() {
        assert_eq!(finish_retry_after(409, 0.0), Some(FINISH_RETRY_MS));
        assert_eq!(finish_retry_after(409, 2_750.0), Some(FINISH_RETRY_MS));
        assert_eq!(finish_retry_after(409, 2_751.0), None);
        assert_eq!(finish_retry_after(409, f64::NAN), None);
        for status in [400, 401, 404, 429, 500] {
            assert_eq!(finish_retry_after(status, 0.0), None, "{status}");
        }
        // Every 250 ms from the first try: 12 retries at most.
        let mut t = 0.0;
        let mut tries = 1;
        while let Some(ms) = finish_retry_after(409, t) {
            t += f64::from(ms);
            tries += 1;
        }
        assert_eq!(tries, 13);
    }

    #[test]
    fn pacer_sends_one_at_a_time_every_interval_up_to_the_max() {
        let created = Created {
            max_frames: 3,
            ..parse_created(201, CREATED).expect("created")
        };
        let mut p = FramePacer::new(&created);
        assert!(p.due(0.0));
        p.begin(0.0);
        // In flight: nothing more, however long it takes.
        assert!(!p.due(5_000.0));
        p.end(UploadAnswer::Skipped);
        assert!(!p.due(999.0));
        assert!(!p.due(f64::NAN));
        assert!(p.due(1_000.0));
        p.begin(1_000.0);
        p.end(UploadAnswer::Accepted);
        p.begin(2_000.0);
        p.end(UploadAnswer::Accepted);
        assert!(!p.due(10_000.0), "max_frames");
        assert_eq!(p.counts(), (3, 2));
    }

    #[test]
    fn a_404_or_409_stops_uploads() {
        assert_eq!(UploadAnswer::from_status(Some(200)), UploadAnswer::Accepted);
        assert_eq!(UploadAnswer::from_status(Some(404)), UploadAnswer::Stop);
        assert_eq!(UploadAnswer::from_status(Some(409)), UploadAnswer::Stop);
        for s in [Some(400), Some(413), Some(429), Some(500), None] {
            assert_eq!(UploadAnswer::from_status(s), UploadAnswer::Skipped, "{s:?}");
        }
        let mut p = FramePacer::new(&parse_created(201, CREATED).expect("created"));
        p.begin(0.0);
        p.end(UploadAnswer::Stop);
        assert!(p.stopped());
        assert!(!p.due(60_000.0));
    }

    #[test]
    fn a_last_crop_waits_for_half_the_interval_and_fits_the_budget() {
        let mut p = FramePacer::new(&parse_created(201, CREATED).expect("created"));
        assert_eq!(p.last_wait_ms(0.0), Some(0.0), "nothing sent yet");
        p.begin(0.0);
        // In flight or not, the spacing counts from when the previous one went.
        assert_eq!(p.last_wait_ms(100.0), Some(400.0 + LAST_CROP_MARGIN_MS));
        p.end(UploadAnswer::Accepted);
        assert_eq!(p.last_wait_ms(2_000.0), Some(0.0));
        assert_eq!(p.last_wait_ms(f64::NAN), None);
        p.begin(2_000.0);
        p.end(UploadAnswer::Stop);
        assert_eq!(
            p.last_wait_ms(60_000.0),
            None,
            "the server stopped taking crops"
        );
    }

    #[test]
    fn crops_fit_the_servers_limits() {
        assert!((64..=MAX_FRAME_SIDE).contains(&CROP_SIDE));
        for q in JPEG_QUALITIES {
            assert!(q > 0.0 && q <= 1.0);
        }
    }
}
