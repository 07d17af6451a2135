//! The challenge loop: camera start, then every animation frame hands the camera's
//! frame to the worker (one in flight), feeds the worker's answers to the verdict, and
//! updates the countdown, meter, jokes and overlay; Space or P pauses, a hidden tab ends it.
//!
//! The camera's feed is checked on the way (rules in `challenge::feed`): a lost camera
//! (track ended, or muted past a grace) stops the challenge before another frame counts,
//! and frames identical to the previous ones for over a second count as no face.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use crate::challenge::config::Content;
use crate::challenge::content::{Problem, ANNOUNCE_EVERY_S};
use crate::challenge::feed::FrozenFrames;
use crate::challenge::outcome::Reason;
use crate::challenge::pacing::AnalysisPacer;
use crate::challenge::prompt::PromptKind;
use crate::challenge::verdict::State;

use crate::web::camera::{self, Camera, CAMERA_TIMEOUT_MS};
use crate::web::dom::{
    self, console_error, describe, set_hidden, set_text, update_text, AnimationLoop, DomError,
    Listener, OwnedFrame,
};
use crate::web::engine::FrameResult;

use super::effects::stop_camera;
use super::ui::{context_2d, detached_canvas, focus, Phase};
use super::{with_page, Page};

/// Width of the frame handed to the analyser; the height follows the camera's aspect.
pub const ANALYSIS_WIDTH: u32 = 320;

/// How long each joke card stays.
pub const JOKE_CARD_MS: f64 = 4_000.0;

/// A frame the worker has not answered after this long means it is stuck: fail closed.
pub const WORKER_TIMEOUT_MS: f64 = 10_000.0;

/// Marked when the first frame's result arrives (the benchmark's "first verdict").
pub const FIRST_ANALYSIS_MARK: &str = "smile-factor:first-analysis";

/// How camera frames reach the worker; written to `data-frame-transfer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameTransfer {
    /// A transferred `VideoFrame`, scaled and read back in the worker: the main thread
    /// does no pixel work.
    VideoFrame,
    /// Drawn into a canvas and read back here, the pixels transferred: browsers without
    /// WebCodecs, or after a `VideoFrame` failed.
    Canvas,
}

impl FrameTransfer {
    pub fn as_str(self) -> &'static str {
        match self {
            FrameTransfer::VideoFrame => "video-frame",
            FrameTransfer::Canvas => "canvas",
        }
    }
}

/// What only exists while the countdown runs; dropping it removes the listeners and
/// stops the loop.
pub(super) struct Challenge {
    pub(super) _frames: AnimationLoop,
    pub(super) _keys: Listener,
    pub(super) _visibility: Listener,
    /// Offscreen canvas the camera frame is scaled into for `getImageData`; made only
    /// when frames cannot go to the worker as `VideoFrame`s.
    pub(super) readback: Option<(HtmlCanvasElement, CanvasRenderingContext2d)>,
    pub(super) overlay_ctx: CanvasRenderingContext2d,
    pub(super) last_announced: Option<u32>,
    /// Worker time per analysed frame, summed, for the console summary.
    pub(super) analyse_ms: f64,
    /// Frames on which the detector ran (the rest were tracked).
    pub(super) detect_frames: u32,
    /// Camera frames skipped because the worker was still busy.
    pub(super) dropped_frames: u32,
    /// The analysis budget: which frames go to the worker.
    pub(super) pacer: AnalysisPacer,
    /// Camera frames not analysed because the budget did not ask for them yet.
    pub(super) paced_frames: u32,
    /// The latest judged face box and the analysed frame's size it is measured on; the
    /// signed mode crops it from the video. `None` while no face is seen (or frozen).
    pub(super) judged_face: Option<([f64; 4], (f64, f64))>,
    /// The frozen-frame rule over this countdown's analysed frames.
    pub(super) frozen: FrozenFrames,
    /// The prompt on screen: what it asks, when it ends (page clock), and whether the
    /// crop answering it went out.
    pub(super) prompt: Option<ShownPrompt>,
}

/// A prompt the verifier revealed, while it shows.
pub(super) struct ShownPrompt {
    pub(super) kind: PromptKind,
    pub(super) until_ms: f64,
    pub(super) answered: bool,
}

/// A detached canvas for reading camera frames back on the page.
fn readback_canvas(
    doc: &web_sys::Document,
) -> Result<(HtmlCanvasElement, CanvasRenderingContext2d), DomError> {
    let attrs = web_sys::ContextAttributes2d::new();
    // The frame is read back every time; this keeps the canvas in CPU memory.
    attrs.set_will_read_frequently(true);
    detached_canvas(doc, Some(&attrs))
}

/// Analysed frames per active second, one decimal, for `data-analysis-fps`.
pub fn analysis_fps(frames: u32, elapsed_ms: f64) -> String {
    let fps = if elapsed_ms > 0.0 && elapsed_ms.is_finite() {
        f64::from(frames) * 1000.0 / elapsed_ms
    } else {
        0.0
    };
    format!("{fps:.1}")
}

impl Page {
    /// Start (or Try again): starts the camera, then the challenge once the worker is
    /// ready too. After a lost camera, Try again starts a whole new countdown.
    pub(super) fn begin_camera(&mut self) {
        if self.starting
            || self.challenge.is_some()
            || self.waiting_camera.is_some()
            || self.engine.is_none()
        {
            return;
        }
        let retry_allowed = self.verify_allows_retry();
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let lost = session
            .outcome()
            .is_some_and(|o| o.reason == Some(Reason::CameraLost));
        if lost {
            // The signed mode's challenge was opened once and cannot be run again.
            if !retry_allowed || !session.restart_after_camera_lost() {
                return;
            }
            if let Some(engine) = self.engine.as_ref() {
                engine.reset_tracking();
            }
        }
        self.starting = true;
        self.problem = None;
        self.ui.start.set_disabled(true);
        self.ui.show(Phase::Loading);
        let weak = self.weak.clone();
        spawn_local(async move {
            let result = camera::start(CAMERA_TIMEOUT_MS).await;
            let handled = with_page(&weak, |p| {
                p.starting = false;
                match result {
                    Ok(camera) => p.on_camera(camera),
                    Err(e) => p.show_problem(e.problem, &e.detail),
                }
            });
            // The page is gone (replaced): the camera in `result` was dropped and stopped.
            let _ = handled;
        });
    }

    /// The camera is on: begin, or wait for the worker (the loading screen stays).
    pub(super) fn on_camera(&mut self, mut camera: Camera) {
        // The worker failed meanwhile (the error screen shows): dropping stops the camera.
        if self.engine.is_none() || self.problem.is_some() {
            return;
        }
        let weak = self.weak.clone();
        if let Err(e) = camera.watch(move || {
            with_page(&weak, |p| p.check_camera());
        }) {
            // Not fatal: every animation frame polls the track as well.
            console_error(&format!("smile-factor: cannot watch the camera track: {e}"));
        }
        // Playing from now, while the screen still says loading, the self-view has a
        // frame to analyse as soon as the challenge begins.
        self.ui.selfview.set_src_object(Some(camera.stream()));
        self.ui.selfview.set_muted(true);
        // Autoplay of a muted video is allowed; a rejection only costs the self-view.
        if let Ok(p) = self.ui.selfview.play() {
            spawn_local(async move {
                if let Err(e) = JsFuture::from(p).await {
                    console_error(&format!(
                        "smile-factor: self-view did not play: {}",
                        describe(&e)
                    ));
                }
            });
        }
        if self.engine_ready {
            self.begin_challenge(camera);
        } else {
            self.waiting_camera = Some(camera);
        }
    }

    pub(super) fn begin_challenge(&mut self, camera: Camera) {
        // An earlier camera (there should be none) is stopped; if the cell were busy the
        // new camera would be dropped here, which stops it too.
        stop_camera(&self.camera);
        if let Ok(mut c) = self.camera.try_borrow_mut() {
            *c = Some(camera);
        }
        // The signed mode first opens the challenge on the verifier, whose countdown
        // starts with it; ours starts when it answers.
        if !self.open_verified() {
            self.start_countdown();
        }
    }

    /// The camera and the worker (and in the signed mode the verifier) are ready.
    pub(super) fn start_countdown(&mut self) {
        match self.build_challenge() {
            Ok(ch) => self.challenge = Some(ch),
            Err(e) => {
                self.show_problem(Problem::Engine, &e.0);
                return;
            }
        }
        self.ui.set_data("frozenFrames", "0");
        set_hidden(&self.ui.prompt, true);
        match &self.content {
            Content::Jokes => {
                set_hidden(&self.ui.joke, false);
                set_hidden(&self.ui.content_video, true);
            }
            Content::Video { .. } => {
                set_hidden(&self.ui.joke, true);
                set_hidden(&self.ui.content_video, false);
                self.play_content();
            }
        }
        set_hidden(&self.ui.paused, true);
        if let Some(s) = self.session.as_mut() {
            s.start();
        }
        // Texts first: the layout that focus() forces then covers them, and the first
        // frame of the countdown only paints.
        self.update_display();
        self.ui.show(Phase::Challenge);
        focus(&self.ui.challenge_screen);
    }

    pub(super) fn build_challenge(&mut self) -> Result<Challenge, DomError> {
        let doc = &self.ui.doc;
        let overlay_ctx = context_2d(&self.ui.overlay, None)?;

        let weak = self.weak.clone();
        let frames = AnimationLoop::start(move || with_page(&weak, |p| p.step()).unwrap_or(false));
        let weak = self.weak.clone();
        // An embedded widget must not take Space from the rest of the login page.
        let key_target: &web_sys::EventTarget = if self.ui.whole_page {
            doc
        } else {
            &self.ui.container
        };
        let keys = Listener::new(key_target, "keydown", move |e| {
            with_page(&weak, |p| p.on_key(&e));
        })?;
        let weak = self.weak.clone();
        let visibility = Listener::new(doc, "visibilitychange", move |_| {
            with_page(&weak, |p| p.on_visibility());
        })?;
        Ok(Challenge {
            _frames: frames,
            _keys: keys,
            _visibility: visibility,
            readback: None,
            overlay_ctx,
            last_announced: None,
            prompt: None,
            analyse_ms: 0.0,
            detect_frames: 0,
            dropped_frames: 0,
            pacer: AnalysisPacer::new(self.analysis_fps),
            paced_frames: 0,
            judged_face: None,
            frozen: FrozenFrames::new(),
        })
    }

    pub(super) fn play_content(&mut self) {
        let video = self.ui.content_video.clone();
        let play_btn = self.ui.play.clone();
        set_hidden(&play_btn, true);
        match video.play() {
            Ok(promise) => spawn_local(async move {
                // Autoplay with sound may be refused; then the user starts it.
                if JsFuture::from(promise).await.is_err() {
                    set_hidden(&play_btn, false);
                    focus(&play_btn);
                }
            }),
            Err(_) => set_hidden(&play_btn, false),
        }
    }

    /// One animation frame: hand the current camera frame to the worker (unless it is
    /// still busy: then this frame is dropped; or the analysis budget does not ask for
    /// it yet: then it is paced), end the challenge when decided, update the screen.
    /// Returns false once the challenge is over.
    pub(super) fn step(&mut self) -> bool {
        // Before anything is sent: the <video> keeps showing its last frame after the
        // track ended, and that frame must not be analysed.
        if self.check_camera() {
            return false;
        }
        let running = matches!(
            self.session.as_ref().map(|s| s.verdict().state()),
            Some(State::Running)
        );
        if running {
            if let Err(e) = self.send_frame() {
                console_error(&format!("smile-factor: frame analysis failed: {e}"));
                if let Some(s) = self.session.as_mut() {
                    s.fail(Reason::Error);
                }
            }
            self.upload_crop();
        }
        let outcome = self.session.as_mut().and_then(|s| s.tick().copied());
        if let Some(outcome) = outcome {
            self.finish(outcome);
            return false;
        }
        self.update_display();
        true
    }

    /// Hands the camera frame to the worker, to be analysed at `ANALYSIS_WIDTH`, when
    /// the worker is free and the analysis budget asks for a frame.
    pub(super) fn send_frame(&mut self) -> Result<(), String> {
        let now = dom::now_ms();
        let (Some(ch), Some(engine)) = (self.challenge.as_mut(), self.engine.as_mut()) else {
            return Ok(());
        };
        let (smile, threshold) = match self.session.as_ref() {
            Some(s) => (s.verdict().current_smile(), s.verdict().config().threshold),
            None => return Ok(()),
        };
        let busy = engine.busy_for_ms(now);
        if let Some(ms) = busy.filter(|ms| *ms > WORKER_TIMEOUT_MS) {
            return Err(format!("the worker has not answered for {ms:.0} ms"));
        }
        // The budget first: a frame it would not have sent is not one the worker lost.
        if !ch.pacer.due(now, smile, threshold) {
            ch.paced_frames += 1;
            return Ok(());
        }
        if busy.is_some() {
            ch.dropped_frames += 1;
            return Ok(());
        }
        let video = &self.ui.selfview;
        let (vw, vh) = (video.video_width(), video.video_height());
        // HAVE_CURRENT_DATA: a frame can be drawn.
        if video.ready_state() < 2 || vw == 0 || vh == 0 {
            return Ok(());
        }
        let w = ANALYSIS_WIDTH;
        let h = ((u64::from(w) * u64::from(vh)) / u64::from(vw)).clamp(1, 4 * u64::from(w)) as u32;
        if self.ui.overlay.width() != w || self.ui.overlay.height() != h {
            self.ui.overlay.set_width(w);
            self.ui.overlay.set_height(h);
        }
        if self.frame_transfer == FrameTransfer::VideoFrame {
            match OwnedFrame::from_video(video).and_then(|f| engine.send_video_frame(&f, w, h, now))
            {
                Ok(()) => {
                    ch.pacer.sent(now);
                    return Ok(());
                }
                // Not fatal: the canvas path needs nothing the failed call did.
                Err(e) => console_error(&format!(
                    "smile-factor: cannot pass VideoFrames to the worker ({e}); reading frames back on the page instead"
                )),
            }
            self.set_frame_transfer(FrameTransfer::Canvas);
            return self.send_frame();
        }
        let (canvas, ctx) = match ch.readback.as_ref() {
            Some(r) => r,
            None => ch
                .readback
                .insert(readback_canvas(&self.ui.doc).map_err(|e| e.0)?),
        };
        if canvas.width() != w || canvas.height() != h {
            canvas.set_width(w);
            canvas.set_height(h);
        }
        let (wf, hf) = (f64::from(w), f64::from(h));
        ctx.draw_image_with_html_video_element_and_dw_and_dh(video, 0.0, 0.0, wf, hf)
            .map_err(|e| describe(&e))?;
        let image = ctx
            .get_image_data(0.0, 0.0, wf, hf)
            .map_err(|e| describe(&e))?;
        engine.send_frame(&image, now).map_err(|e| e.0)?;
        ch.pacer.sent(now);
        Ok(())
    }

    /// A frame's result from the worker: feeds the verdict and draws the boxes. Results
    /// that arrive while paused or after the end are not counted.
    pub(super) fn on_frame_result(&mut self, result: &FrameResult) {
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        if !engine.accept(result) {
            return;
        }
        let running = matches!(
            self.session.as_ref().map(|s| s.verdict().state()),
            Some(State::Running)
        );
        if !running || self.check_camera() {
            return;
        }
        let Some(ch) = self.challenge.as_mut() else {
            return;
        };
        let frozen = ch.frozen.frame(dom::now_ms(), result.signature);
        if frozen {
            self.ui
                .set_data("frozenFrames", &ch.frozen.frozen_frames().to_string());
        }
        // A verdict this frame decides (a held smile) ends the challenge now, not on the
        // next animation frame: up to one display frame sooner.
        let decided = self
            .session
            .as_mut()
            .and_then(|s| s.frame(if frozen { None } else { result.smile }).copied());
        ch.analyse_ms += result.ms;
        ch.detect_frames += u32::from(result.detected);
        let analysed = (
            f64::from(self.ui.overlay.width()),
            f64::from(self.ui.overlay.height()),
        );
        // A frozen face is not sent to the verifier either.
        ch.judged_face = result
            .judged
            .filter(|_| !frozen)
            .and_then(|i| result.boxes.get(i))
            .map(|b| (*b, analysed));
        if !self.first_analysis_marked {
            self.first_analysis_marked = true;
            if let Some(perf) = web_sys::window().and_then(|w| w.performance()) {
                let _ = perf.mark(FIRST_ANALYSIS_MARK);
            }
        }
        let o = &ch.overlay_ctx;
        o.clear_rect(
            0.0,
            0.0,
            f64::from(self.ui.overlay.width()),
            f64::from(self.ui.overlay.height()),
        );
        for (i, [x, y, w, h]) in result.boxes.iter().copied().enumerate() {
            let is_judged = result.judged == Some(i);
            o.set_line_width(if is_judged { 3.0 } else { 1.0 });
            o.set_stroke_style_str(if is_judged { "#ffcc00" } else { "#ffffff" });
            o.stroke_rect(x, y, w, h);
        }
        if let Some(outcome) = decided {
            // Drops the worker whose message this is: wasm-bindgen defers freeing a
            // closure that is still running, as for a worker failure in `on_engine`.
            self.finish(outcome);
        }
    }

    pub(super) fn update_display(&mut self) {
        self.update_prompt();
        let Some(session) = self.session.as_ref() else {
            return;
        };
        let texts = self.texts;
        let secs = session.remaining_secs();
        update_text(&self.ui.countdown, &texts.countdown_for(secs));
        let smile = session.verdict().current_smile();
        // Unchanged between results: writing it anyway costs a layout pass per animation frame.
        let meter = f64::from(smile.unwrap_or(0.0));
        if self.ui.smile_meter.value() != meter {
            self.ui.smile_meter.set_value(meter);
        }
        update_text(&self.ui.smile_value, &texts.smile_value(smile));
        let elapsed = session.verdict().config().duration_ms - session.remaining_ms();
        if let Some(ch) = self.challenge.as_mut() {
            // Announce every few seconds, not every second: a live region that talks
            // constantly is unusable.
            if secs.is_multiple_of(ANNOUNCE_EVERY_S) && ch.last_announced != Some(secs) && secs > 0
            {
                ch.last_announced = Some(secs);
                set_text(&self.ui.announce, &texts.announce_for(secs));
            }
            if matches!(self.content, Content::Jokes) {
                let joke = texts.joke_at(elapsed + self.joke_offset_ms, JOKE_CARD_MS);
                if self.ui.joke.text_content().as_deref() != Some(joke) {
                    set_text(&self.ui.joke, joke);
                }
            }
        }
    }

    pub(super) fn on_key(&mut self, event: &web_sys::Event) {
        let Some(key) = event.dyn_ref::<web_sys::KeyboardEvent>() else {
            return;
        };
        let is_toggle = matches!(key.key().as_str(), " " | "p" | "P" | "Spacebar");
        if !is_toggle || key.alt_key() || key.ctrl_key() || key.meta_key() {
            return;
        }
        // Space would otherwise scroll or press a focused button.
        event.prevent_default();
        if key.repeat() {
            return;
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        match session.verdict().state() {
            State::Running => {
                session.pause();
                set_hidden(&self.ui.paused, false);
                let _ = self.ui.content_video.pause();
            }
            State::Paused => {
                session.resume();
                if let Some(engine) = self.engine.as_ref() {
                    engine.reset_tracking();
                }
                set_hidden(&self.ui.paused, true);
                if matches!(self.content, Content::Video { .. }) {
                    self.play_content();
                }
            }
            State::NotStarted | State::Decided(_) => {}
        }
    }

    /// Checks the camera (running, or waiting for the worker or the verifier); if it was
    /// lost, ends the challenge at once on the error screen and returns true.
    pub(super) fn check_camera(&mut self) -> bool {
        let now = dom::now_ms();
        let lost = match (self.camera.try_borrow(), self.waiting_camera.as_ref()) {
            (Ok(c), waiting) => c.as_ref().or(waiting).and_then(|c| c.lost(now)),
            (Err(_), waiting) => waiting.and_then(|c| c.lost(now)),
        };
        match lost {
            Some(detail) => {
                self.on_camera_lost(&detail);
                true
            }
            None => false,
        }
    }

    /// The camera stopped before the verdict: the verdict fails with `camera_lost` before
    /// another frame counts, and the error screen offers Try again (on the device) and
    /// Return to sign-in.
    fn on_camera_lost(&mut self, detail: &str) {
        // Leaving already, or on the error screen: the camera is stopped anyway.
        if self.result_timer.is_some() || self.problem.is_some() {
            return;
        }
        if let Some(s) = self.session.as_mut() {
            s.fail(Reason::CameraLost);
        }
        // The frame in the worker may be one the <video> kept after the track ended.
        if let Some(engine) = self.engine.as_mut() {
            engine.discard_in_flight();
        }
        let _ = self.ui.content_video.pause();
        self.show_problem(Problem::CameraLost, detail);
    }

    pub(super) fn on_visibility(&mut self) {
        if self.ui.doc.visibility_state() != web_sys::VisibilityState::Hidden {
            return;
        }
        let outcome = self.session.as_mut().and_then(|s| s.hidden().copied());
        if let Some(outcome) = outcome {
            self.finish(outcome);
        }
    }
}
