//! The signed mode (`"verify": true`) on the hosted page: the verifier on the
//! page's own origin opens the challenge once the camera is on, gets a face crop about
//! every `frame_interval_ms` while the countdown runs, and decides when the page's own
//! verdict would have. Its signed token then goes back in a POST form.
//!
//! Every way the verifier can fail ends on the error screen (`Problem::Verifier`), whose
//! only way back sends `notsmiling=false&reason=error`, never a pass. A camera lost once
//! the challenge was opened ends there too, without Try again (the session token is
//! accepted once): its way back sends `reason=camera_lost`, unsigned like every failure. Crops are best
//! effort: a failed upload is logged and the next one tried; a 404 or 409 stops them.
//!
//! The rules (URLs, answers, pacing, retries) are in `challenge::verify`; the crop
//! geometry in `vision::crop`. What lives here: the requests, their deadline and retry
//! timers (owned, so dropping the page clears them) and the JPEG encoding.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, HtmlVideoElement, UrlSearchParams};

use crate::challenge::config::Config;
use crate::challenge::content::Problem;
use crate::challenge::outcome::{Outcome, Reason, Stats};
use crate::challenge::prompt::{Mode, Prompt, RELAX_MS};
use crate::challenge::verify::{
    create_body, finish_retry_after, parse_created, parse_finish, parse_uploaded,
    validate_session_token, Endpoints, FramePacer, Step, UploadAnswer, VerifyError, CROP_SIDE,
    JPEG_QUALITIES, MAX_FRAME_BYTES, REQUEST_TIMEOUT_MS, SESSION_TOKEN_PARAM,
};
use crate::vision::crop::{square_crop, Rect, DEFAULT_MARGIN};

use crate::web::dom::{self, console_error, describe, set_text, DomError, Timeout};
use crate::web::http::{self, Answer};

use super::ui::{detached_canvas, Phase};
use super::{with_page, Page};

/// The signed mode's state, one per page: a challenge is opened at most once (the
/// identity provider's session token is accepted once).
pub(super) struct Verifier {
    endpoints: Endpoints,
    state: String,
    session_token: String,
    phase: VerifyPhase,
    /// Numbers the requests: an answer to one that timed out or was abandoned is ignored.
    request: u32,
    /// The pending request's deadline or the wait before a finish retry.
    timer: Option<Timeout>,
    /// The server's signed verdict, once it has decided.
    token: Option<String>,
    /// Holds the smile's last crop until the server's spacing allows it.
    crop_delay: Option<Timeout>,
    /// Sent with the create request; the server signs it into the token.
    mode: Mode,
}

enum VerifyPhase {
    /// Waiting for Start (and the camera).
    Idle,
    Creating,
    Running(Run),
    Finishing(Finishing),
    /// Decided, failed, or a local failure that needs no signature.
    Done,
}

/// An open challenge during the countdown.
struct Run {
    id: String,
    pacer: FramePacer,
    /// The canvas crops are encoded in, made with the first one.
    canvas: Option<(HtmlCanvasElement, CanvasRenderingContext2d)>,
}

/// Asking for the verdict, maybe again after a 409.
struct Finishing {
    id: String,
    first_ms: f64,
    /// The page's counts, shown with the server's verdict.
    stats: Stats,
}

impl Verifier {
    fn next_request(&mut self) -> u32 {
        self.request = self.request.wrapping_add(1);
        self.request
    }

    /// The token to post, once the server has decided.
    pub(super) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }
}

/// Whether the server is asked about `outcome`. Only the verdict's own decisions (a
/// pass, a smile, no face, no smile in smile mode) are; an interruption or error goes back as the failure it is,
/// which needs no signature.
fn asks_server(outcome: &Outcome) -> bool {
    outcome.notsmiling
        || matches!(
            outcome.reason,
            Some(Reason::Smiled | Reason::NoFace | Reason::NoSmile)
        )
}

impl Page {
    /// The signed mode's part of the hosted page's set-up: the session token from the
    /// query and the endpoints. False (after the error screen) when it cannot run.
    pub(super) fn configure_verify(
        &mut self,
        config: &Config,
        params: &UrlSearchParams,
        state: &str,
    ) -> bool {
        if !config.verify {
            return true;
        }
        self.ui.set_data("verify", "true");
        set_text(&self.ui.privacy, self.texts.privacy_verify);
        let token = params.get(SESSION_TOKEN_PARAM);
        let session_token = match validate_session_token(token.as_deref()) {
            Ok(t) => t.to_owned(),
            Err(e) => {
                // Like a bad state: no session, so no way back that could go unsigned.
                self.show_problem(Problem::State, &e.to_string());
                return false;
            }
        };
        let href = dom::window().and_then(|w| w.location().href().map_err(DomError::from));
        let endpoints = href
            .map_err(|e| e.0)
            .and_then(|h| Endpoints::for_page(&h).map_err(|e| e.to_string()));
        match endpoints {
            Ok(endpoints) => {
                self.verifier = Some(Verifier {
                    endpoints,
                    state: state.to_owned(),
                    session_token,
                    phase: VerifyPhase::Idle,
                    request: 0,
                    timer: None,
                    token: None,
                    crop_delay: None,
                    mode: config.mode,
                });
                true
            }
            Err(detail) => {
                self.show_problem(Problem::Config, &detail);
                false
            }
        }
    }

    /// Stops whatever the verifier was doing (the error screen shows): late answers are
    /// ignored and timers cleared. Before a challenge was opened, Start may be tried again.
    pub(super) fn abort_verify(&mut self) {
        if let Some(v) = self.verifier.as_mut() {
            v.next_request();
            v.timer = None;
            if !matches!(v.phase, VerifyPhase::Idle) {
                v.phase = VerifyPhase::Done;
            }
        }
    }

    /// Whether Try again may run another challenge: always on the device; in the signed
    /// mode only before the verifier opened one (a camera error at Start).
    pub(super) fn verify_allows_retry(&self) -> bool {
        self.verifier
            .as_ref()
            .is_none_or(|v| matches!(v.phase, VerifyPhase::Idle))
    }

    /// The camera is on and the worker ready: opens the challenge on the verifier, whose
    /// countdown starts now, then starts ours with its duration. False when not in the
    /// signed mode (the caller starts the countdown itself).
    pub(super) fn open_verified(&mut self) -> bool {
        let Some(v) = self.verifier.as_mut() else {
            return false;
        };
        if !matches!(v.phase, VerifyPhase::Idle) {
            return true;
        }
        v.phase = VerifyPhase::Creating;
        let n = v.next_request();
        let url = v.endpoints.create().to_string();
        let body = JsValue::from_str(&create_body(&v.state, &v.session_token, v.mode));
        self.show_verifying();
        self.arm_deadline(n, Step::Create);
        let weak = self.weak.clone();
        spawn_local(async move {
            let answer = http::post(&url, "application/json", &body).await;
            with_page(&weak, |p| p.on_created(n, answer));
        });
        true
    }

    fn on_created(&mut self, n: u32, answer: Result<Answer, String>) {
        let Some(v) = self.verifier.as_mut() else {
            return;
        };
        if v.request != n || !matches!(v.phase, VerifyPhase::Creating) {
            return;
        }
        v.timer = None;
        let created = answer
            .map_err(|detail| VerifyError::Network {
                step: Step::Create,
                detail,
            })
            .and_then(|a| parse_created(a.status, &a.body));
        let created = match created {
            Ok(c) => c,
            Err(e) => return self.fail_verify(&e),
        };
        v.phase = VerifyPhase::Running(Run {
            id: created.challenge.clone(),
            pacer: FramePacer::new(&created),
            canvas: None,
        });
        let set = self
            .session
            .as_mut()
            .map(|s| s.set_duration_ms(created.duration_ms));
        if let Some(Err(e)) = set {
            return self.fail_verify(&VerifyError::BadAnswer {
                step: Step::Create,
                detail: e.to_string(),
            });
        }
        self.start_countdown();
    }

    /// Draws the judged face's crop now, if one is due and a face box is known, and
    /// counts it as sent.
    fn take_crop(&mut self) -> Option<PendingCrop> {
        let now = dom::now_ms();
        let due = match &self.verifier.as_ref()?.phase {
            VerifyPhase::Running(run) => run.pacer.due(now),
            _ => false,
        };
        if !due {
            return None;
        }
        let crop = self.draw_judged_face(false)?;
        if let Some(VerifyPhase::Running(run)) = self.verifier.as_mut().map(|v| &mut v.phase) {
            run.pacer.begin(now);
        }
        Some(crop)
    }

    /// Draws the judged face into a crop canvas (`own_canvas`: a fresh one, so that an
    /// upload still encoding the shared one is not drawn over).
    fn draw_judged_face(&mut self, own_canvas: bool) -> Option<PendingCrop> {
        let (face, analysis) = self.challenge.as_ref()?.judged_face?;
        let video = self.ui.selfview.clone();
        let size = (
            f64::from(video.video_width()),
            f64::from(video.video_height()),
        );
        let rect = square_crop(face, analysis, size, DEFAULT_MARGIN)?;
        let doc = self.ui.doc.clone();
        let v = self.verifier.as_mut()?;
        let VerifyPhase::Running(run) = &mut v.phase else {
            return None;
        };
        let url = match v.endpoints.frames(&run.id) {
            Ok(url) => url.to_string(),
            Err(e) => {
                console_error(&format!("smile-factor: {e}"));
                return None;
            }
        };
        let fresh;
        let (canvas, ctx) = if own_canvas {
            fresh = detached_canvas(&doc, None).ok()?;
            &fresh
        } else {
            if run.canvas.is_none() {
                match detached_canvas(&doc, None) {
                    Ok(c) => run.canvas = Some(c),
                    Err(e) => {
                        console_error(&format!("smile-factor: no canvas for snapshots: {e}"));
                        return None;
                    }
                }
            }
            run.canvas.as_ref()?
        };
        if let Err(e) = draw_crop(&video, canvas, ctx, rect) {
            warn(&format!("smile-factor: could not take a snapshot: {e}"));
            return None;
        }
        Some(PendingCrop {
            url,
            canvas: canvas.clone(),
            delay_ms: 0.0,
        })
    }

    /// Sends the judged face's crop if one is due (called once per animation frame while
    /// the countdown runs); out of turn when it answers the prompt on screen.
    pub(super) fn upload_crop(&mut self) {
        let crop = match self.take_prompt_crop() {
            Some(c) => Some(c),
            None => self.take_crop(),
        };
        let Some(crop) = crop else {
            return;
        };
        let weak = self.weak.clone();
        spawn_local(async move {
            let sent = crop.send().await;
            with_page(&weak, |p| p.on_uploaded(sent));
        });
    }

    /// The page saw a smile: the crop of that moment, drawn now, before the camera stops,
    /// and sent once the server's spacing allows. The server finishes early only to
    /// report a smile, and judges only the crops it has.
    pub(super) fn last_crop(&mut self, outcome: &Outcome) -> Option<PendingCrop> {
        if outcome.reason != Some(Reason::Smiled) {
            return None;
        }
        let wait = match &self.verifier.as_ref()?.phase {
            VerifyPhase::Running(run) => run.pacer.last_wait_ms(dom::now_ms())?,
            _ => return None,
        };
        let mut crop = self.draw_judged_face(true)?;
        crop.delay_ms = wait;
        Some(crop)
    }

    /// The first frame the page's own analysis sees answering the prompt on screen is
    /// sent at once (as soon as the server's spacing allows), so the server has it
    /// well inside the prompt's window; then the regular pace goes on.
    fn take_prompt_crop(&mut self) -> Option<PendingCrop> {
        let now = dom::now_ms();
        let threshold = self.session.as_ref()?.verdict().config().threshold;
        let smile = self.session.as_ref()?.verdict().current_smile();
        let ch = self.challenge.as_ref()?;
        let p = ch.prompt.as_ref()?;
        if p.answered || now >= p.until_ms || !p.kind.met_by(smile, threshold) {
            return None;
        }
        let early = match &self.verifier.as_ref()?.phase {
            VerifyPhase::Running(run) => run.pacer.due_early(now),
            _ => false,
        };
        if !early {
            return None;
        }
        let crop = self.draw_judged_face(false)?;
        if let Some(VerifyPhase::Running(run)) = self.verifier.as_mut().map(|v| &mut v.phase) {
            run.pacer.begin(now);
        }
        if let Some(p) = self.challenge.as_mut().and_then(|c| c.prompt.as_mut()) {
            p.answered = true;
        }
        Some(crop)
    }

    fn on_uploaded(&mut self, sent: Result<Answer, String>) {
        let answer = log_upload(&sent);
        if let Some(VerifyPhase::Running(run)) = self.verifier.as_mut().map(|v| &mut v.phase) {
            run.pacer.end(answer);
        }
        if answer != UploadAnswer::Accepted {
            // A crop answering the prompt that was not taken (too close to the previous
            // one, say) is tried again while the prompt shows.
            if let Some(p) = self.challenge.as_mut().and_then(|c| c.prompt.as_mut()) {
                p.answered = false;
            }
            return;
        }
        let body = sent.as_ref().map(|a| a.body.as_str()).unwrap_or("{}");
        match parse_uploaded(body) {
            Ok(Some(prompt)) => self.show_prompt(prompt),
            Ok(None) => {}
            // A broken answer costs this prompt (the server then fails it), not the check.
            Err(e) => warn(&format!("smile-factor: {e}")),
        }
    }

    /// Shows the prompt the server just revealed, at once: big, with its own countdown,
    /// announced assertively; for its window and the fade after it, the page's verdict
    /// does not count a smile either way.
    fn show_prompt(&mut self, prompt: Prompt) {
        let running = matches!(
            self.session.as_ref().map(|s| s.verdict().state()),
            Some(crate::challenge::verdict::State::Running)
        );
        if !running || self.challenge.is_none() {
            return;
        }
        let within = prompt.within_ms as f64;
        let Some(session) = self.session.as_mut() else {
            return;
        };
        session.excuse_smiles_for(within + RELAX_MS as f64);
        let until_ms = session.now_ms() + within;
        if let Some(ch) = self.challenge.as_mut() {
            ch.prompt = Some(super::challenge_loop::ShownPrompt {
                kind: prompt.kind,
                until_ms,
                answered: false,
            });
        }
        let text = self.texts.prompt(prompt.kind);
        set_text(&self.ui.prompt_text, text);
        // Only the look depends on it; a failure here leaves the default style.
        let _ = self
            .ui
            .prompt
            .set_attribute("data-kind", prompt.kind.as_str());
        crate::web::dom::set_hidden(&self.ui.prompt, false);
        // Cleared first so that the same words twice are announced twice.
        set_text(&self.ui.prompt_announce, "");
        set_text(&self.ui.prompt_announce, text);
        self.update_prompt();
    }

    /// The prompt's own countdown, and hiding it when its window is over.
    pub(super) fn update_prompt(&mut self) {
        let now = dom::now_ms();
        let Some(ch) = self.challenge.as_mut() else {
            return;
        };
        let Some(p) = ch.prompt.as_ref() else {
            return;
        };
        if now >= p.until_ms {
            ch.prompt = None;
            crate::web::dom::set_hidden(&self.ui.prompt, true);
            set_text(&self.ui.prompt_announce, "");
            return;
        }
        let secs = ((p.until_ms - now) / 1000.0).ceil() as u32;
        let text = self.texts.prompt_countdown_for(secs);
        if self.ui.prompt_countdown.text_content().as_deref() != Some(text.as_str()) {
            set_text(&self.ui.prompt_countdown, &text);
        }
    }

    /// The page's verdict has decided: in the signed mode, asks the server for its own
    /// and returns true (the result shows when it answers). False when the outcome goes
    /// back as it is (no signed mode, or a failure that needs no signature).
    /// `last` is the smile's crop from [`Page::last_crop`], sent before `finish`.
    pub(super) fn finish_verified(&mut self, outcome: &Outcome, last: Option<PendingCrop>) -> bool {
        let Some(v) = self.verifier.as_mut() else {
            return false;
        };
        let id = match &v.phase {
            VerifyPhase::Running(run) => run.id.clone(),
            // Already asking: a second decision (e.g. the tab hidden meanwhile) changes nothing.
            VerifyPhase::Finishing(_) => return true,
            VerifyPhase::Idle | VerifyPhase::Creating | VerifyPhase::Done => return false,
        };
        if !asks_server(outcome) {
            v.phase = VerifyPhase::Done;
            v.timer = None;
            return false;
        }
        v.phase = VerifyPhase::Finishing(Finishing {
            id,
            first_ms: dom::now_ms(),
            stats: outcome.stats,
        });
        self.show_verifying();
        let Some(crop) = last else {
            self.send_finish();
            return true;
        };
        let delay = crop.delay_ms;
        // The deadline covers the crop too: `finish` must not wait on it forever.
        let Some(n) = self.verifier.as_mut().map(Verifier::next_request) else {
            return true;
        };
        self.arm_deadline(n, Step::Finish);
        let weak = self.weak.clone();
        let mut crop = Some(crop);
        let mut send = move || {
            let Some(crop) = crop.take() else {
                return;
            };
            let weak = weak.clone();
            spawn_local(async move {
                let sent = crop.send().await;
                with_page(&weak, |p| {
                    log_upload(&sent);
                    if p.verifier.as_ref().is_some_and(|v| v.request == n) {
                        p.send_finish();
                    }
                });
            });
        };
        if delay <= 0.0 {
            send();
        } else {
            // Owned by the verifier: dropping the page cancels the send.
            match Timeout::new(delay.ceil() as i32, send) {
                Ok(t) => {
                    if let Some(v) = self.verifier.as_mut() {
                        v.crop_delay = Some(t);
                    }
                }
                Err(e) => self.fail_verify(&VerifyError::Network {
                    step: Step::Finish,
                    detail: e.0,
                }),
            }
        }
        true
    }

    fn send_finish(&mut self) {
        let Some(v) = self.verifier.as_mut() else {
            return;
        };
        let VerifyPhase::Finishing(f) = &v.phase else {
            return;
        };
        let url = match v.endpoints.finish(&f.id) {
            Ok(url) => url.to_string(),
            Err(e) => return self.fail_verify(&e),
        };
        let n = v.next_request();
        self.arm_deadline(n, Step::Finish);
        let weak = self.weak.clone();
        spawn_local(async move {
            // The protocol defines no body; an empty JSON object is what a JSON API accepts.
            let answer = http::post(&url, "application/json", &JsValue::from_str("{}")).await;
            with_page(&weak, |p| p.on_finished(n, answer));
        });
    }

    fn on_finished(&mut self, n: u32, answer: Result<Answer, String>) {
        let Some(v) = self.verifier.as_mut() else {
            return;
        };
        let VerifyPhase::Finishing(f) = &v.phase else {
            return;
        };
        if v.request != n {
            return;
        }
        v.timer = None;
        let (first_ms, stats) = (f.first_ms, f.stats);
        let verdict = answer
            .map_err(|detail| VerifyError::Network {
                step: Step::Finish,
                detail,
            })
            .and_then(|a| parse_finish(a.status, &a.body));
        match verdict {
            Ok(verdict) => {
                v.phase = VerifyPhase::Done;
                let outcome = verdict.outcome(stats);
                v.token = Some(verdict.token);
                self.show_result(outcome);
            }
            Err(e) => {
                let retry = match &e {
                    VerifyError::Http { status, .. } => {
                        finish_retry_after(*status, dom::now_ms() - first_ms)
                    }
                    _ => None,
                };
                let Some(ms) = retry else {
                    return self.fail_verify(&e);
                };
                // The server's countdown is a little behind ours: ask again shortly.
                let weak = self.weak.clone();
                match Timeout::new(ms, move || {
                    with_page(&weak, |p| p.send_finish());
                }) {
                    Ok(t) => v.timer = Some(t),
                    Err(te) => self.fail_verify(&VerifyError::Network {
                        step: Step::Finish,
                        detail: te.0,
                    }),
                }
            }
        }
    }

    /// Fails request `n` if it has not been answered in [`REQUEST_TIMEOUT_MS`].
    fn arm_deadline(&mut self, n: u32, step: Step) {
        let weak = self.weak.clone();
        let timer = Timeout::new(REQUEST_TIMEOUT_MS, move || {
            with_page(&weak, |p| {
                if p.verifier.as_ref().is_some_and(|v| v.request == n) {
                    p.fail_verify(&VerifyError::Timeout { step });
                }
            });
        });
        match timer {
            Ok(t) => {
                if let Some(v) = self.verifier.as_mut() {
                    v.timer = Some(t);
                }
            }
            // Without a deadline a hung request would leave the screen waiting forever.
            Err(e) => self.fail_verify(&VerifyError::Network { step, detail: e.0 }),
        }
    }

    fn fail_verify(&mut self, e: &VerifyError) {
        self.abort_verify();
        self.show_problem(Problem::Verifier, &e.to_string());
    }

    fn show_verifying(&mut self) {
        set_text(&self.ui.loading_text, self.texts.verifying);
        self.ui.show(Phase::Loading);
    }
}

/// A crop drawn into its canvas, to be encoded and posted.
pub(super) struct PendingCrop {
    url: String,
    canvas: HtmlCanvasElement,
    /// How long to hold it before sending (the last crop, for the server's spacing).
    delay_ms: f64,
}

impl PendingCrop {
    /// Encodes the crop as a JPEG within the server's limits and posts it. Only one is
    /// in flight at a time, so nothing draws over the canvas meanwhile.
    async fn send(self) -> Result<Answer, String> {
        let blob = encode_jpeg(&self.canvas).await?;
        http::post(&self.url, "image/jpeg", &blob).await
    }
}

/// Draws `rect` of the video into the `CROP_SIDE` square canvas, synchronously: the
/// camera may stop right after.
fn draw_crop(
    video: &HtmlVideoElement,
    canvas: &HtmlCanvasElement,
    ctx: &CanvasRenderingContext2d,
    rect: Rect,
) -> Result<(), String> {
    if canvas.width() != CROP_SIDE || canvas.height() != CROP_SIDE {
        canvas.set_width(CROP_SIDE);
        canvas.set_height(CROP_SIDE);
    }
    let side = f64::from(CROP_SIDE);
    ctx.draw_image_with_html_video_element_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
        video,
        rect.x,
        rect.y,
        rect.width,
        rect.height,
        0.0,
        0.0,
        side,
        side,
    )
    .map_err(|e| describe(&e))
}

/// Tries [`JPEG_QUALITIES`] in turn until the JPEG is at most [`MAX_FRAME_BYTES`].
async fn encode_jpeg(canvas: &HtmlCanvasElement) -> Result<JsValue, String> {
    let mut last = 0.0;
    for quality in JPEG_QUALITIES {
        let blob = to_jpeg(canvas, quality).await?;
        let size = blob.size();
        if size <= MAX_FRAME_BYTES as f64 {
            return Ok(blob.into());
        }
        last = size;
    }
    Err(format!(
        "the smallest JPEG was {last} bytes, over {MAX_FRAME_BYTES}"
    ))
}

/// Logs an upload that was not taken (a console warning: single failures are expected
/// now and then) and says what it means for the next ones.
fn log_upload(sent: &Result<Answer, String>) -> UploadAnswer {
    let answer = UploadAnswer::from_status(sent.as_ref().ok().map(|a| a.status));
    if answer != UploadAnswer::Accepted {
        let why = match sent {
            Ok(a) => format!("HTTP {}", a.status),
            Err(e) => e.clone(),
        };
        let then = if answer == UploadAnswer::Stop {
            "sending no more"
        } else {
            "the next one may pass"
        };
        warn(&format!(
            "smile-factor: a snapshot was not taken ({why}); {then}"
        ));
    }
    answer
}

/// `canvas.toBlob(.., "image/jpeg", quality)` as a future. The promise's own resolve
/// function is the callback, so no Rust closure outlives the call.
async fn to_jpeg(canvas: &HtmlCanvasElement, quality: f64) -> Result<web_sys::Blob, String> {
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        if let Err(e) = canvas.to_blob_with_type_and_encoder_options(
            &resolve,
            "image/jpeg",
            &JsValue::from_f64(quality),
        ) {
            let _ = reject.call1(&JsValue::NULL, &e);
        }
    });
    JsFuture::from(promise)
        .await
        .map_err(|e| describe(&e))?
        .dyn_into::<web_sys::Blob>()
        .map_err(|_| "the canvas gave no JPEG".to_owned())
}

/// A console warning, for what is not fatal.
fn warn(message: &str) {
    web_sys::console::warn_1(&JsValue::from_str(message));
}
