//! The end of a challenge: the result screen, the outcome in `data-*`, and the redirect
//! (after a moment, or at once from "Return to sign-in").

use wasm_bindgen::prelude::*;

use crate::challenge::content::Problem;
use crate::challenge::outcome::{Outcome, Reason};

use crate::web::dom::{console_error, set_text, Timeout};

use super::challenge_loop::analysis_fps;
use super::effects::stop_camera;
use super::ui::{focus, Phase};
use super::{with_page, Page};

/// How long the result screen stays before the redirect.
pub const RESULT_SCREEN_MS: i32 = 1_000;

impl Page {
    /// The verdict has decided: releases camera and listeners, then (in the signed mode,
    /// once the verifier has decided) records the outcome for tests, shows the result,
    /// and leaves after a moment.
    pub(super) fn finish(&mut self, outcome: Outcome) {
        if self.result_timer.is_some() {
            return;
        }
        // In the signed mode a smile's own snapshot, taken while the camera still runs.
        let last = self.last_crop(&outcome);
        self.stop_challenge(&outcome);
        if self.finish_verified(&outcome, last) {
            return;
        }
        self.show_result(outcome);
    }

    /// Ends the countdown's machinery: the loop, the worker, the camera, the content.
    fn stop_challenge(&mut self, outcome: &Outcome) {
        if let Some(ch) = self.challenge.take() {
            let stats = outcome.stats;
            let per = |x: f64| {
                if stats.frames_analysed > 0 {
                    x / f64::from(stats.frames_analysed)
                } else {
                    0.0
                }
            };
            web_sys::console::info_1(&JsValue::from_str(&format!(
                "smile-factor: {} frames in {:.0} ms active, {:.1} ms per analysis in the worker, \
                 {} with the detector, {} camera frames dropped while the worker was busy, \
                 {} left out by the analysis budget of {:.1} fps",
                stats.frames_analysed,
                stats.elapsed_ms,
                per(ch.analyse_ms),
                ch.detect_frames,
                ch.dropped_frames,
                ch.paced_frames,
                1000.0 / ch.pacer.interval_ms(),
            )));
        }
        // The worker is done; terminating it frees its memory at once.
        self.engine = None;
        self.engine_ready = false;
        stop_camera(&self.camera);
        self.ui.selfview.set_src_object(None);
        let _ = self.ui.content_video.pause();
    }

    /// Records `outcome` (in the signed mode the server's), shows it, and leaves after
    /// a moment.
    pub(super) fn show_result(&mut self, outcome: Outcome) {
        if self.result_timer.is_some() {
            return;
        }
        self.record_outcome(&outcome);
        self.report(Some(&outcome), None);
        set_text(
            &self.ui.result_message,
            self.texts.result_in(self.mode, outcome.reason),
        );
        self.ui.show(Phase::Result);
        focus(&self.ui.result_message);
        let weak = self.weak.clone();
        match Timeout::new(RESULT_SCREEN_MS, move || {
            with_page(&weak, |p| p.redirect());
        }) {
            Ok(t) => self.result_timer = Some(t),
            Err(e) => {
                console_error(&format!("smile-factor: {e}; redirecting now"));
                self.redirect();
            }
        }
    }

    pub(super) fn record_outcome(&self, outcome: &Outcome) {
        let s = outcome.stats;
        self.ui
            .set_data("framesAnalysed", &s.frames_analysed.to_string());
        self.ui.set_data(
            "analysisFps",
            &analysis_fps(s.frames_analysed, s.elapsed_ms),
        );
        self.ui.set_data(
            "notsmiling",
            if outcome.notsmiling { "true" } else { "false" },
        );
        self.ui
            .set_data("reason", outcome.reason.map_or("", Reason::as_str));
    }

    pub(super) fn redirect(&mut self) {
        self.challenge = None;
        stop_camera(&self.camera);
        let token = self
            .verifier
            .as_ref()
            .and_then(|v| v.token().map(str::to_owned));
        if let Some(session) = self.session.as_mut() {
            // The navigator stops the camera again before it leaves. Without a token the
            // signed mode's redirector sends failures only.
            match token {
                Some(token) => session.post_token(&token),
                None => session.redirect(),
            };
        }
    }

    /// "Return to sign-in" on the error screen: fail with the problem's reason and leave.
    pub(super) fn return_after_problem(&mut self) {
        let Some(reason) = self.problem.and_then(Problem::reason) else {
            return;
        };
        let Some(session) = self.session.as_mut() else {
            return;
        };
        // Whatever the verdict said: in the signed mode it may have decided before the
        // verifier failed, and only the server could have confirmed it.
        session.abandon(reason);
        let Some(outcome) = session.sendable_outcome() else {
            return;
        };
        self.record_outcome(&outcome);
        self.report(Some(&outcome), None);
        self.ui.return_btn.set_disabled(true);
        self.ui.retry.set_disabled(true);
        self.redirect();
    }
}
