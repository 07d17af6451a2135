//! The page flow without a browser: config → verdict → session → one navigation,
//! with a fake clock and a fake navigator.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use smile_factor::challenge::config::Config;
use smile_factor::challenge::effects::{Clock, Navigator};
use smile_factor::challenge::outcome::Reason;
use smile_factor::challenge::redirect::{Redirector, ReturnTarget};
use smile_factor::challenge::session::Session;
use smile_factor::challenge::verdict::{State, Verdict};
use url::Url;

/// A clock the test moves by hand; shared so the test keeps a handle.
#[derive(Clone, Default)]
struct FakeClock(Rc<Cell<f64>>);

impl FakeClock {
    fn set(&self, ms: f64) {
        self.0.set(ms);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> f64 {
        self.0.get()
    }
}

/// Records every navigation and form post; shared so the test sees them after handing
/// it over.
#[derive(Clone, Default)]
struct FakeNavigator(Rc<RefCell<Vec<Url>>>, Rc<RefCell<Vec<(Url, String)>>>);

impl Navigator for FakeNavigator {
    fn navigate(&mut self, url: &Url) {
        self.0.borrow_mut().push(url.clone());
    }

    fn post_form(&mut self, action: &Url, fields: &[(&str, &str)]) {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        self.1.borrow_mut().push((action.clone(), body));
    }
}

const CONFIG: &str = r#"{
  "returnUrls": {"prod": "https://tenant.auth0.com", "local": "http://localhost:3000/base/"},
  "duration": 5,
  "params": {"state": "st"}
}"#;

fn session(
    pick: Option<&str>,
    state: Option<&str>,
) -> (Session<FakeClock, FakeNavigator>, FakeClock, FakeNavigator) {
    let config = Config::parse(CONFIG).expect("config");
    let return_url = config.resolve_return_url(pick).expect("return url");
    let target = ReturnTarget::new(&return_url, config.params.clone(), state).expect("target");
    let clock = FakeClock::default();
    let nav = FakeNavigator::default();
    let verdict = Verdict::new(config.verdict_config()).expect("verdict");
    let s = Session::new(verdict, clock.clone(), Redirector::new(target, nav.clone()));
    (s, clock, nav)
}

fn visited(nav: &FakeNavigator) -> Vec<String> {
    nav.0.borrow().iter().map(|u| u.to_string()).collect()
}

#[test]
fn passing_run_redirects_once_with_notsmiling_true() {
    let (mut s, clock, nav) = session(Some("prod"), Some("a+b/c=d&e%f#g ü 雪 😀"));
    clock.set(10_000.0);
    s.start();
    assert_eq!(s.remaining_secs(), 5);
    for i in 0..50 {
        clock.set(10_000.0 + f64::from(i) * 100.0);
        assert!(s.frame(Some(0.2)).is_none());
        assert!(s.tick().is_none());
        // The page cannot leave before the verdict.
        assert!(s.redirect().is_none());
    }
    assert_eq!(s.verdict().current_smile(), Some(0.2));
    clock.set(15_000.0);
    let outcome = *s.tick().expect("countdown over");
    assert!(outcome.notsmiling);
    assert_eq!(outcome.stats.frames_analysed, 50);
    assert_eq!(outcome.stats.face_seen_ratio, 1.0);
    assert!(visited(&nav).is_empty());

    let url = s.redirect().expect("decided").clone();
    assert_eq!(
        url.origin(),
        Url::parse("https://tenant.auth0.com")
            .expect("url")
            .origin()
    );
    assert_eq!(url.path(), "/continue");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(
        pairs,
        vec![
            ("st".to_owned(), "a+b/c=d&e%f#g ü 雪 😀".to_owned()),
            ("notsmiling".to_owned(), "true".to_owned()),
        ]
    );
    // Asking again (e.g. a second timer) does not navigate again.
    s.redirect();
    s.tick();
    s.redirect();
    assert_eq!(visited(&nav), vec![url.to_string()]);
}

#[test]
fn smiling_run_fails_early() {
    let (mut s, clock, nav) = session(Some("local"), Some("xyz"));
    clock.set(0.0);
    s.start();
    clock.set(1_000.0);
    assert!(s.frame(Some(0.9)).is_none());
    clock.set(1_300.0);
    assert_eq!(
        s.frame(Some(0.9)).expect("smiled").reason,
        Some(Reason::Smiled)
    );
    assert!(s.remaining_ms() == 0.0);
    s.redirect();
    assert_eq!(
        visited(&nav),
        vec!["http://localhost:3000/base/continue?st=xyz&notsmiling=false&reason=smiled"]
    );
}

#[test]
fn tab_switch_interrupts() {
    let (mut s, clock, nav) = session(Some("prod"), Some("xyz"));
    s.start();
    clock.set(2_000.0);
    s.pause();
    assert_eq!(s.verdict().state(), State::Paused);
    clock.set(60_000.0);
    assert!(s.tick().is_none());
    assert_eq!(
        s.hidden().expect("hidden").reason,
        Some(Reason::Interrupted)
    );
    s.redirect();
    assert_eq!(
        visited(&nav),
        vec!["https://tenant.auth0.com/continue?st=xyz&notsmiling=false&reason=interrupted"]
    );
}

#[test]
fn camera_denied_before_start() {
    let (mut s, _clock, nav) = session(Some("prod"), Some("xyz"));
    assert_eq!(
        s.fail(Reason::CameraDenied).reason,
        Some(Reason::CameraDenied)
    );
    s.redirect();
    assert_eq!(
        visited(&nav),
        vec!["https://tenant.auth0.com/continue?st=xyz&notsmiling=false&reason=camera_denied"]
    );
}

#[test]
fn camera_lost_mid_challenge_fails_closed_or_starts_over() {
    let (mut s, clock, nav) = session(Some("prod"), Some("xyz"));
    s.start();
    clock.set(1_000.0);
    s.frame(Some(0.1));
    // Lost: decided at once, later frames and ticks change nothing.
    assert_eq!(s.fail(Reason::CameraLost).reason, Some(Reason::CameraLost));
    clock.set(9_000.0);
    assert!(s.frame(Some(0.1)).is_some_and(|o| !o.notsmiling));
    assert_eq!(s.tick().map(|o| o.reason), Some(Some(Reason::CameraLost)));
    // "Try again": a whole new countdown, counted from its own start.
    assert!(s.restart_after_camera_lost());
    assert_eq!(s.verdict().state(), State::NotStarted);
    s.start();
    assert_eq!(s.remaining_secs(), 5);
    for i in 1..=50 {
        clock.set(9_000.0 + f64::from(i) * 100.0);
        s.frame(Some(0.1));
    }
    let outcome = *s.tick().expect("countdown over");
    assert!(outcome.notsmiling);
    assert_eq!(outcome.stats.frames_analysed, 50);
    // No restart after any other outcome.
    assert!(!s.restart_after_camera_lost());
    s.redirect();
    assert_eq!(
        visited(&nav),
        vec!["https://tenant.auth0.com/continue?st=xyz&notsmiling=true"]
    );

    // "Return to sign-in" instead: camera_lost goes back, and no restart follows.
    let (mut s, _clock, nav) = session(Some("prod"), Some("xyz"));
    s.start();
    s.fail(Reason::CameraLost);
    s.abandon(Reason::CameraLost);
    s.redirect();
    assert!(!s.restart_after_camera_lost());
    assert_eq!(
        visited(&nav),
        vec!["https://tenant.auth0.com/continue?st=xyz&notsmiling=false&reason=camera_lost"]
    );

    // A smile or a missing face can never be retried.
    for reason in [
        Reason::Smiled,
        Reason::NoFace,
        Reason::Interrupted,
        Reason::Error,
    ] {
        let (mut s, _clock, _nav) = session(Some("prod"), Some("xyz"));
        s.start();
        s.fail(reason);
        assert!(!s.restart_after_camera_lost(), "{reason}");
        assert_eq!(s.outcome().and_then(|o| o.reason), Some(reason));
    }
}

#[test]
fn bad_state_or_pick_means_no_session() {
    let config = Config::parse(CONFIG).expect("config");
    assert!(config
        .resolve_return_url(Some("https://evil.test"))
        .is_err());
    assert!(config.resolve_return_url(None).is_err());
    let url = config.resolve_return_url(Some("prod")).expect("prod");
    for state in [None, Some(""), Some("a\u{0}b")] {
        assert!(
            ReturnTarget::new(&url, config.params.clone(), state).is_err(),
            "{state:?}"
        );
    }
}

/// An embedded challenge without a return URL decides the same way but never navigates.
#[test]
fn embedded_session_without_return_url_decides_and_never_navigates() {
    use smile_factor::challenge::embed::EmbedOptions;
    let plan = EmbedOptions::parse(r#"{"duration": "5"}"#)
        .and_then(|o| o.plan(Err("no page config")))
        .expect("plan");
    let clock = FakeClock::default();
    let verdict = Verdict::new(plan.config.verdict_config()).expect("verdict");
    let mut s: Session<FakeClock, FakeNavigator> =
        Session::without_redirect(verdict, clock.clone());
    clock.set(1_000.0);
    s.start();
    for i in 0..10 {
        clock.set(1_000.0 + f64::from(i) * 100.0);
        s.frame(Some(0.9));
    }
    let outcome = *s.tick().expect("a held smile decides");
    assert!(!outcome.notsmiling);
    assert_eq!(outcome.reason, Some(Reason::Smiled));
    assert!(s.redirect().is_none());
    assert!(s.redirector().is_none());
}

/// The signed mode: the verifier's duration, its token posted in a form, and never an
/// unsigned pass, even when the page's own verdict passed.
#[test]
fn signed_session_posts_the_token_or_fails_closed() {
    let config = Config::parse(CONFIG).expect("config");
    let return_url = config.resolve_return_url(Some("prod")).expect("return url");
    let target =
        ReturnTarget::new(&return_url, config.params.clone(), Some("xyz")).expect("target");
    let new_session = || {
        let clock = FakeClock::default();
        let nav = FakeNavigator::default();
        let verdict = Verdict::new(config.verdict_config()).expect("verdict");
        let s = Session::new(
            verdict,
            clock.clone(),
            Redirector::signed(target.clone(), nav.clone()),
        );
        (s, clock, nav)
    };
    let pass = |s: &mut Session<FakeClock, FakeNavigator>, clock: &FakeClock| {
        s.start();
        for i in 0..100 {
            clock.set(f64::from(i) * 100.0);
            s.frame(Some(0.1));
        }
        clock.set(12_000.0);
        *s.tick().expect("countdown over")
    };

    // The server's duration replaces the config's (5 s) before the start only.
    let (mut s, clock, nav) = new_session();
    s.set_duration_ms(10_000.0).expect("in range");
    assert_eq!(s.remaining_secs(), 10);
    assert!(s.set_duration_ms(1.0).is_err());
    assert!(pass(&mut s, &clock).notsmiling);
    s.set_duration_ms(60_000.0).expect("ignored once started");
    assert_eq!(s.verdict().config().duration_ms, 10_000.0);
    // The token goes in the body; the URL has only the state.
    let url = s.post_token("h.p.s").expect("target").clone();
    assert_eq!(url.as_str(), "https://tenant.auth0.com/continue?st=xyz");
    assert_eq!(
        nav.1.borrow().clone(),
        vec![(url, "smile_token=h.p.s".to_owned())]
    );
    s.redirect();
    assert!(visited(&nav).is_empty(), "one way back only");

    // Without a token the local pass goes back as a failure.
    let (mut s, clock, nav) = new_session();
    assert!(pass(&mut s, &clock).notsmiling);
    assert_eq!(
        s.sendable_outcome().and_then(|o| o.reason),
        Some(Reason::Error)
    );
    s.redirect();
    assert_eq!(
        visited(&nav),
        vec!["https://tenant.auth0.com/continue?st=xyz&notsmiling=false&reason=error"]
    );

    // The verifier failed after a local smile: "Return to sign-in" sends `error`.
    let (mut s, clock, nav) = new_session();
    s.start();
    clock.set(100.0);
    s.frame(Some(0.9));
    clock.set(500.0);
    assert_eq!(
        s.frame(Some(0.9)).and_then(|o| o.reason),
        Some(Reason::Smiled)
    );
    let o = s.abandon(Reason::Error);
    assert_eq!((o.notsmiling, o.reason), (false, Some(Reason::Error)));
    assert_eq!(s.outcome(), Some(o));
    s.redirect();
    assert_eq!(
        visited(&nav),
        vec!["https://tenant.auth0.com/continue?st=xyz&notsmiling=false&reason=error"]
    );
    assert!(nav.1.borrow().is_empty());
}

/// The page's loop without a browser: animation frames at 60 Hz, one frame in flight to a
/// worker answering after `worker_ms`, the analysis budget at `fps`. A face scores 0.02,
/// then 0.9 from `smile_from` for `smile_ms`. Returns when the verdict said "smiled".
fn smiled_at(fps: f64, smile_from: f64, smile_ms: f64, worker_ms: f64) -> Option<f64> {
    use smile_factor::challenge::pacing::AnalysisPacer;
    use smile_factor::challenge::verdict::VerdictConfig;

    let mut verdict = Verdict::new(VerdictConfig::default()).expect("defaults");
    let threshold = verdict.config().threshold;
    let mut pacer = AnalysisPacer::new(fps);
    let score = |t: f64| {
        if (smile_from..smile_from + smile_ms).contains(&t) {
            0.9
        } else {
            0.02
        }
    };
    let mut in_flight: Option<f64> = None;
    verdict.start(0.0);
    let mut now = 0.0;
    while now < 5_000.0 {
        if let Some(sent) = in_flight.filter(|sent| now >= sent + worker_ms) {
            in_flight = None;
            if let Some(o) = verdict.frame(now, Some(score(sent))) {
                return (o.reason == Some(Reason::Smiled)).then_some(now);
            }
        }
        if in_flight.is_none() && pacer.due(now, verdict.current_smile(), threshold) {
            pacer.sent(now);
            in_flight = Some(now);
        }
        now += 1000.0 / 60.0;
    }
    None
}

#[test]
fn the_analysis_budget_keeps_a_held_smile_caught_as_fast_as_flat_out() {
    use smile_factor::challenge::pacing::DEFAULT_ANALYSIS_FPS;
    // Smiles starting at every phase of the grid of 15 fps and of the default rate, held
    // for the 300 ms hold plus the first smiling frame's wait for its turn (one interval)
    // plus the worker's 20 ms and a 60 Hz frame: 417 ms at 15 fps, 450 ms at 10.
    for fps in [15.0, DEFAULT_ANALYSIS_FPS] {
        let interval = 1000.0 / fps;
        let held = 300.0 + interval + 50.0;
        for i in 0..40 {
            let from = 1_000.0 + f64::from(i) * interval / 40.0;
            let flat = smiled_at(60.0, from, held, 20.0).expect("flat out catches it");
            let paced = smiled_at(fps, from, held, 20.0)
                .unwrap_or_else(|| panic!("{fps} fps misses a smile from {from}"));
            // At most one paced interval later: the smile's first frame may wait that
            // long, the boost then follows the hold frame by frame.
            assert!(
                paced - flat <= interval + 1.0,
                "{fps} fps, smile from {from}: {paced} ms paced, {flat} ms flat out"
            );
        }
        // A neutral face is never "smiled", paced or not.
        assert_eq!(smiled_at(fps, 10_000.0, 0.0, 20.0), None);
    }
}
