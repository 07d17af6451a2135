//! The page's driver: the pure [`Verdict`] tied to a [`Clock`] and a [`Redirector`].

use url::Url;

use crate::challenge::effects::{Clock, Navigator};
use crate::challenge::outcome::{Outcome, Reason};
use crate::challenge::redirect::Redirector;
use crate::challenge::verdict::{State, Verdict, VerdictConfig, VerdictConfigError};

/// The page's driver: a [`Verdict`] fed with times from a [`Clock`], and a
/// [`Redirector`] that leaves the page once, when asked after the decision.
///
/// Redirecting is a separate step so the page can show the result (or an error screen
/// with a button) before it leaves. An embedded challenge without a return URL has no
/// redirector: the embedding page gets the outcome and decides.
pub struct Session<C: Clock, N: Navigator> {
    verdict: Verdict,
    clock: C,
    redirector: Option<Redirector<N>>,
    /// A failure that overrides the verdict's decision (see [`Session::abandon`]).
    abandoned: Option<Outcome>,
}

impl<C: Clock, N: Navigator> Session<C, N> {
    /// Ties the parts together; nothing happens until [`Session::start`].
    pub fn new(verdict: Verdict, clock: C, redirector: Redirector<N>) -> Self {
        Self {
            verdict,
            clock,
            redirector: Some(redirector),
            abandoned: None,
        }
    }

    /// A session that never navigates: [`Session::redirect`] always gives `None`.
    pub fn without_redirect(verdict: Verdict, clock: C) -> Self {
        Self {
            verdict,
            clock,
            redirector: None,
            abandoned: None,
        }
    }

    /// Replaces the countdown's length before the start (the signed mode takes the
    /// verifier's); ignored once started, so a running countdown never jumps.
    pub fn set_duration_ms(&mut self, duration_ms: f64) -> Result<(), VerdictConfigError> {
        if self.verdict.state() != State::NotStarted {
            return Ok(());
        }
        self.verdict = Verdict::new(VerdictConfig {
            duration_ms,
            ..*self.verdict.config()
        })?;
        Ok(())
    }

    /// See [`Verdict::start`].
    pub fn start(&mut self) {
        self.verdict.start(self.clock.now_ms());
    }

    /// See [`Verdict::frame`].
    pub fn frame(&mut self, smile: Option<f32>) -> Option<&Outcome> {
        self.verdict.frame(self.clock.now_ms(), smile)
    }

    /// See [`Verdict::tick`].
    pub fn tick(&mut self) -> Option<&Outcome> {
        self.verdict.tick(self.clock.now_ms())
    }

    /// See [`Verdict::pause`].
    pub fn pause(&mut self) {
        self.verdict.pause(self.clock.now_ms());
    }

    /// See [`Verdict::resume`].
    pub fn resume(&mut self) {
        self.verdict.resume(self.clock.now_ms());
    }

    /// See [`Verdict::hidden`].
    pub fn hidden(&mut self) -> Option<&Outcome> {
        self.verdict.hidden(self.clock.now_ms())
    }

    /// See [`Verdict::fail`].
    pub fn fail(&mut self, reason: Reason) -> &Outcome {
        self.verdict.fail(reason)
    }

    /// Fails with `reason` even when the verdict has decided already: the way back from
    /// an error screen. In the signed mode the page's own decision is only a request to
    /// the verifier; if that fails, the outcome is `reason`, whatever the page saw.
    pub fn abandon(&mut self, reason: Reason) -> Outcome {
        let decided = *self.verdict.fail(reason);
        let outcome = Outcome {
            notsmiling: false,
            reason: Some(reason),
            stats: decided.stats,
        };
        *self.abandoned.get_or_insert(outcome)
    }

    /// "Try again" after the camera was lost mid-challenge (the verdict failed with
    /// [`Reason::CameraLost`]): a fresh verdict with the same config, so a whole new
    /// countdown runs. Refused (false, nothing changes) in every other state: a decided
    /// smile or missing face is never retried, nor an outcome already on its way back.
    pub fn restart_after_camera_lost(&mut self) -> bool {
        let lost = self
            .verdict
            .outcome()
            .is_some_and(|o| o.reason == Some(Reason::CameraLost));
        let sent = self.redirector.as_ref().is_some_and(|r| r.sent().is_some());
        if !lost || self.abandoned.is_some() || sent {
            return false;
        }
        match Verdict::new(*self.verdict.config()) {
            Ok(v) => {
                self.verdict = v;
                true
            }
            // Cannot happen (the config was valid); refusing keeps the failure.
            Err(_) => false,
        }
    }

    /// A prompt was shown now: smiles are excused for `for_ms` (see
    /// [`Verdict::excuse_smiles_until`]). Gives the page clock's time it ends at.
    pub fn excuse_smiles_for(&mut self, for_ms: f64) -> f64 {
        let until = self.clock.now_ms() + for_ms;
        self.verdict.excuse_smiles_until(until);
        until
    }

    /// The page clock's time now.
    pub fn now_ms(&self) -> f64 {
        self.clock.now_ms()
    }

    /// See [`Verdict::remaining_ms`].
    pub fn remaining_ms(&self) -> f64 {
        self.verdict.remaining_ms(self.clock.now_ms())
    }

    /// See [`Verdict::remaining_secs`].
    pub fn remaining_secs(&self) -> u32 {
        self.verdict.remaining_secs(self.clock.now_ms())
    }

    /// The verdict, for the meter, the state and the stats.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// The redirector, e.g. to see where the page went; `None` without a return URL.
    pub fn redirector(&self) -> Option<&Redirector<N>> {
        self.redirector.as_ref()
    }

    /// Once decided, navigates to the continue URL (only on the first call) and returns
    /// it; `None` while undecided, so the page cannot leave before the verdict, and
    /// always `None` without a redirector.
    pub fn redirect(&mut self) -> Option<&Url> {
        let outcome = self.outcome()?;
        Some(self.redirector.as_mut()?.redirect(&outcome))
    }

    /// The verdict's outcome, or the failure it was [abandoned](Session::abandon) with.
    pub fn outcome(&self) -> Option<Outcome> {
        self.abandoned.or_else(|| self.verdict.outcome().copied())
    }

    /// The outcome [`Session::redirect`] sends (see [`Redirector::sendable`]), once decided.
    pub fn sendable_outcome(&self) -> Option<Outcome> {
        let outcome = self.outcome()?;
        Some(match &self.redirector {
            Some(r) => r.sendable(&outcome),
            None => outcome,
        })
    }

    /// Posts the verifier's token (see [`Redirector::post_token`]), once; `None` without
    /// a redirector. It does not wait for the local verdict: the server's is the one sent.
    pub fn post_token(&mut self, token: &str) -> Option<&Url> {
        Some(self.redirector.as_mut()?.post_token(token))
    }
}
