//! What the page says: every UI text and the built-in jokes, per language, in one place.
//!
//! Pure data and formatting (no browser API), so every language is checked natively for
//! completeness. The web module only picks a [`Texts`] with [`texts_for`] and writes its
//! strings into the DOM as text (never as HTML).
//!
//! [`Problem`] names everything that can stop the page before or instead of the verdict
//! (camera errors by `DOMException.name`, models, config, state) so that the mapping to
//! a message and to the `reason` sent back is decided here, once.

use crate::challenge::outcome::Reason;
use crate::challenge::prompt::{Mode, PromptKind};

/// Languages with a full set of texts; the first is the fallback.
pub const LANGUAGES: [&str; 2] = ["en", "de"];

/// How often the polite live region announces the remaining time, in seconds.
pub const ANNOUNCE_EVERY_S: u32 = 5;

/// Something that stops the page; each has a message and maybe a way back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The user or a policy refused the camera (`NotAllowedError`, `SecurityError`).
    CameraDenied,
    /// There is no camera (`NotFoundError`).
    NoCamera,
    /// The camera exists but cannot be read, usually in use elsewhere (`NotReadableError`).
    CameraInUse,
    /// The camera cannot give the requested format, even without constraints.
    CameraFormat,
    /// `getUserMedia` did not settle in time (a hidden permission prompt, a stuck driver).
    CameraTimeout,
    /// The camera stopped after it had started: its track ended (unplugged, taken by
    /// another app, permission revoked) or stayed muted past the grace.
    CameraLost,
    /// Any other camera failure (`AbortError`, `TypeError`, ...).
    CameraOther,
    /// Not a secure context (http: on a non-local host): browsers hide the camera API.
    InsecureContext,
    /// `navigator.mediaDevices` is missing (old browser, or disabled).
    NoMediaDevices,
    /// The face models or the wasm engine failed to load.
    Engine,
    /// The page config is missing or invalid; there is nowhere to return to.
    Config,
    /// The login state in the page URL is unusable; never redirect.
    State,
    /// The signed mode's verifier failed (HTTP error, no answer, a bad answer): fail
    /// closed with `error`, and never send a pass.
    Verifier,
}

impl Problem {
    /// Maps a `DOMException.name` from `getUserMedia` to a problem.
    /// `OverconstrainedError` maps to [`Problem::CameraFormat`]; the page retries without
    /// constraints first and only reports it if that fails too.
    pub fn from_camera_error_name(name: &str) -> Problem {
        match name {
            "NotAllowedError" | "SecurityError" | "PermissionDeniedError" => Problem::CameraDenied,
            "NotFoundError" | "DevicesNotFoundError" => Problem::NoCamera,
            "NotReadableError" | "TrackStartError" => Problem::CameraInUse,
            "OverconstrainedError" | "ConstraintNotSatisfiedError" => Problem::CameraFormat,
            "TimeoutError" => Problem::CameraTimeout,
            _ => Problem::CameraOther,
        }
    }

    /// The `reason` sent back by the "Return to sign-in" button, or `None` when the page
    /// must not redirect at all (no valid state or no valid return URL).
    pub fn reason(self) -> Option<Reason> {
        match self {
            Problem::CameraDenied => Some(Reason::CameraDenied),
            Problem::CameraLost => Some(Reason::CameraLost),
            Problem::NoCamera
            | Problem::CameraInUse
            | Problem::CameraFormat
            | Problem::CameraTimeout
            | Problem::CameraOther
            | Problem::InsecureContext
            | Problem::NoMediaDevices => Some(Reason::CameraUnavailable),
            Problem::Engine | Problem::Verifier => Some(Reason::Error),
            Problem::Config | Problem::State => None,
        }
    }

    /// Whether "Try again" makes sense (it re-runs the camera start). For a lost camera
    /// it also starts a new countdown; the signed mode never offers it once its
    /// challenge was opened (the session token is accepted once).
    pub fn can_retry(self) -> bool {
        matches!(
            self,
            Problem::CameraDenied
                | Problem::NoCamera
                | Problem::CameraInUse
                | Problem::CameraFormat
                | Problem::CameraTimeout
                | Problem::CameraOther
                | Problem::CameraLost
        )
    }
}

/// Every text of the page in one language.
#[derive(Debug)]
pub struct Texts {
    /// BCP 47 tag written to `<html lang>`.
    pub lang: &'static str,
    pub title: &'static str,
    pub loading: &'static str,
    /// "Keep a straight face for {n} seconds." (`{n}` is replaced).
    pub intro: &'static str,
    pub privacy: &'static str,
    /// The privacy line in the signed mode, where a few crops go to the page's server.
    pub privacy_verify: &'static str,
    /// While the verifier opens or decides the challenge.
    pub verifying: &'static str,
    pub keys_hint: &'static str,
    pub start: &'static str,
    /// "{n} s left" for the visible countdown.
    pub countdown: &'static str,
    /// "{n} seconds left" for the screen-reader announcement.
    pub announce: &'static str,
    pub paused: &'static str,
    pub smile_label: &'static str,
    pub no_face_now: &'static str,
    pub camera_label: &'static str,
    pub play: &'static str,
    pub result_passed: &'static str,
    pub result_smiled: &'static str,
    pub result_no_face: &'static str,
    pub result_interrupted: &'static str,
    pub result_failed: &'static str,
    /// A just-in-time prompt was not answered in time.
    pub result_prompt_missed: &'static str,
    /// Smile mode: no smile was held.
    pub result_no_smile: &'static str,
    /// Smile mode's start-screen line, like `intro` (`{n}` is replaced).
    pub intro_smile: &'static str,
    /// Smile mode's line on a pass.
    pub result_smile_passed: &'static str,
    /// The prompts, shown big the moment the verifier reveals one.
    pub prompt_smile: &'static str,
    pub prompt_straight: &'static str,
    /// The prompt's own countdown, "{n} s" (`{n}` is replaced).
    pub prompt_countdown: &'static str,
    pub redirecting: &'static str,
    pub error_title: &'static str,
    pub retry: &'static str,
    pub return_to_sign_in: &'static str,
    pub camera_denied: &'static str,
    pub no_camera: &'static str,
    pub camera_in_use: &'static str,
    pub camera_format: &'static str,
    pub camera_timeout: &'static str,
    pub camera_other: &'static str,
    pub camera_lost: &'static str,
    pub insecure_context: &'static str,
    pub no_media_devices: &'static str,
    pub engine: &'static str,
    pub config: &'static str,
    pub state: &'static str,
    pub verifier: &'static str,
    /// Short, clean one-liners written for this project, shown as timed cards.
    pub jokes: &'static [&'static str],
}

impl Texts {
    /// The start screen's first line for a countdown of `secs` seconds.
    pub fn intro_for(&self, secs: u32) -> String {
        self.intro.replace("{n}", &secs.to_string())
    }

    /// The prompt for `kind` (`smile` or `straight`), shown and announced as it is revealed.
    pub fn prompt(&self, kind: PromptKind) -> &'static str {
        match kind {
            PromptKind::Smile => self.prompt_smile,
            PromptKind::Straight => self.prompt_straight,
        }
    }

    /// The prompt's own countdown.
    pub fn prompt_countdown_for(&self, secs: u32) -> String {
        self.prompt_countdown.replace("{n}", &secs.to_string())
    }

    /// The visible countdown.
    pub fn countdown_for(&self, secs: u32) -> String {
        self.countdown.replace("{n}", &secs.to_string())
    }

    /// The live-region announcement.
    pub fn announce_for(&self, secs: u32) -> String {
        self.announce.replace("{n}", &secs.to_string())
    }

    /// The meter's text: the score as a whole percentage, or that no face is visible.
    pub fn smile_value(&self, smile: Option<f32>) -> String {
        match smile {
            Some(s) if s.is_finite() => format!("{} %", (s.clamp(0.0, 1.0) * 100.0).round()),
            _ => self.no_face_now.to_owned(),
        }
    }

    /// The plain-language message for a problem.
    pub fn problem(&self, problem: Problem) -> &'static str {
        match problem {
            Problem::CameraDenied => self.camera_denied,
            Problem::NoCamera => self.no_camera,
            Problem::CameraInUse => self.camera_in_use,
            Problem::CameraFormat => self.camera_format,
            Problem::CameraTimeout => self.camera_timeout,
            Problem::CameraOther => self.camera_other,
            Problem::CameraLost => self.camera_lost,
            Problem::InsecureContext => self.insecure_context,
            Problem::NoMediaDevices => self.no_media_devices,
            Problem::Engine => self.engine,
            Problem::Config => self.config,
            Problem::State => self.state,
            Problem::Verifier => self.verifier,
        }
    }

    /// The result screen's message in `mode`: a pass says what passed.
    pub fn result_in(&self, mode: Mode, reason: Option<Reason>) -> &'static str {
        match (mode, reason) {
            (Mode::Smile, None) => self.result_smile_passed,
            _ => self.result(reason),
        }
    }

    /// The start screen's first line in `mode`.
    pub fn intro_in(&self, mode: Mode, secs: u32) -> String {
        match mode {
            Mode::Straight => self.intro_for(secs),
            Mode::Smile => self.intro_smile.replace("{n}", &secs.to_string()),
        }
    }

    /// The result screen's message: passed, or why not.
    pub fn result(&self, reason: Option<Reason>) -> &'static str {
        match reason {
            None => self.result_passed,
            Some(Reason::Smiled) => self.result_smiled,
            Some(Reason::NoFace) => self.result_no_face,
            Some(Reason::Interrupted) => self.result_interrupted,
            Some(Reason::PromptMissed) => self.result_prompt_missed,
            Some(Reason::NoSmile) => self.result_no_smile,
            Some(
                Reason::CameraDenied
                | Reason::CameraUnavailable
                | Reason::CameraLost
                | Reason::Error,
            ) => self.result_failed,
        }
    }

    /// Which joke to show after `elapsed_ms` of active time when each stays `card_ms`.
    pub fn joke_at(&self, elapsed_ms: f64, card_ms: f64) -> &'static str {
        if self.jokes.is_empty() {
            return "";
        }
        let index = if elapsed_ms.is_finite() && card_ms > 0.0 && elapsed_ms > 0.0 {
            // `as` saturates; the modulo keeps the index in range.
            (elapsed_ms / card_ms) as usize % self.jokes.len()
        } else {
            0
        };
        self.jokes[index]
    }
}

/// The texts for a config `lang` tag: exact match, then the primary subtag
/// (`de-CH` → `de`), then English.
pub fn texts_for(lang: &str) -> &'static Texts {
    let primary = lang.split('-').next().unwrap_or(lang).to_ascii_lowercase();
    match primary.as_str() {
        "de" => &DE,
        _ => &EN,
    }
}

/// English.
pub static EN: Texts = Texts {
    lang: "en",
    title: "Smile factor",
    loading: "Loading…",
    intro: "Keep a straight face for {n} seconds.",
    privacy: "Video is analysed on this device and never uploaded.",
    privacy_verify: "Video is analysed on this device. To confirm the result, a few small snapshots of your face are sent to this site; they are not stored.",
    verifying: "Checking…",
    keys_hint: "Press Space or P to pause.",
    start: "Start",
    countdown: "{n} s left",
    announce: "{n} seconds left",
    paused: "Paused",
    smile_label: "Smile",
    no_face_now: "no face",
    camera_label: "Your camera",
    play: "Play",
    result_passed: "Straight face, well done!",
    result_smiled: "You smiled!",
    result_no_face: "No face was visible.",
    result_interrupted: "Interrupted: the page was hidden.",
    result_failed: "The check could not be completed.",
    result_prompt_missed: "You missed a prompt.",
    result_no_smile: "No smile was seen.",
    intro_smile: "Smile within {n} seconds to sign in.",
    result_smile_passed: "Nice smile, well done!",
    prompt_smile: "Quick, smile!",
    prompt_straight: "Quick, straight face!",
    prompt_countdown: "{n} s",
    redirecting: "Returning to sign-in…",
    error_title: "Something went wrong",
    retry: "Try again",
    return_to_sign_in: "Return to sign-in",
    camera_denied: "Camera access was denied. Allow the camera for this page and try again.",
    no_camera: "No camera was found. Connect a camera and try again.",
    camera_in_use: "The camera is in use by another application. Close it and try again.",
    camera_format: "The camera cannot provide a usable video format.",
    camera_timeout: "The camera did not answer. Check the permission prompt and try again.",
    camera_other: "The camera could not be started.",
    camera_lost: "The camera stopped during the check. Check that it is connected and not used by another application, then try again.",
    insecure_context: "The camera is only available on a secure (https) page.",
    no_media_devices: "This browser does not offer camera access.",
    engine: "The face detection engine could not be loaded.",
    config: "This page is not configured correctly.",
    state: "This page was opened without a valid login. Start the sign-in again.",
    verifier: "The result could not be confirmed with this site's server. Return to sign-in and try again later.",
    jokes: &[
        "I told my wifi a joke. It didn't get the connection.",
        "My calendar and I are not on speaking terms. Its days are numbered.",
        "The stapler quit. It felt it was holding everything together alone.",
        "I tried to catch fog yesterday. Mist.",
        "My houseplant asked for space. I gave it a bigger pot.",
        "The keyboard went to therapy. Too many people were pushing its buttons.",
        "My alarm clock and I have a deal: it rings, I pretend I did not hear it.",
        "A sandwich walks into a café. The waiter says: sorry, we don't serve food here.",
        "My password is the last eight planets. Pluto was not amused.",
        "The library book about anti-gravity is impossible to put down.",
        "I used to hate facial hair, but then it grew on me.",
    ],
};

/// German.
pub static DE: Texts = Texts {
    lang: "de",
    title: "Lächel-Faktor",
    loading: "Wird geladen…",
    intro: "Bleib {n} Sekunden lang ernst.",
    privacy: "Das Video wird auf diesem Gerät ausgewertet und nie hochgeladen.",
    privacy_verify: "Das Video wird auf diesem Gerät ausgewertet. Zur Bestätigung des Ergebnisses gehen einige kleine Aufnahmen deines Gesichts an diese Website; sie werden nicht gespeichert.",
    verifying: "Wird geprüft…",
    keys_hint: "Leertaste oder P pausiert.",
    start: "Start",
    countdown: "noch {n} s",
    announce: "noch {n} Sekunden",
    paused: "Pausiert",
    smile_label: "Lächeln",
    no_face_now: "kein Gesicht",
    camera_label: "Deine Kamera",
    play: "Abspielen",
    result_passed: "Keine Miene verzogen, gut gemacht!",
    result_smiled: "Du hast gelächelt!",
    result_no_face: "Es war kein Gesicht zu sehen.",
    result_interrupted: "Unterbrochen: Die Seite war verdeckt.",
    result_failed: "Die Prüfung konnte nicht abgeschlossen werden.",
    result_prompt_missed: "Du hast eine Aufforderung verpasst.",
    result_no_smile: "Es war kein Lächeln zu sehen.",
    intro_smile: "Lächle innerhalb von {n} Sekunden, um dich anzumelden.",
    result_smile_passed: "Schönes Lächeln, gut gemacht!",
    prompt_smile: "Schnell, lächeln!",
    prompt_straight: "Schnell, ernst schauen!",
    prompt_countdown: "{n} s",
    redirecting: "Zurück zur Anmeldung…",
    error_title: "Etwas ist schiefgegangen",
    retry: "Erneut versuchen",
    return_to_sign_in: "Zurück zur Anmeldung",
    camera_denied: "Der Kamerazugriff wurde verweigert. Erlaube die Kamera für diese Seite und versuche es erneut.",
    no_camera: "Es wurde keine Kamera gefunden. Schließe eine Kamera an und versuche es erneut.",
    camera_in_use: "Die Kamera wird von einer anderen Anwendung benutzt. Schließe sie und versuche es erneut.",
    camera_format: "Die Kamera liefert kein brauchbares Videoformat.",
    camera_timeout: "Die Kamera antwortet nicht. Prüfe die Berechtigungsabfrage und versuche es erneut.",
    camera_other: "Die Kamera konnte nicht gestartet werden.",
    camera_lost: "Die Kamera hat während der Prüfung aufgehört zu senden. Prüfe, ob sie angeschlossen ist und von keiner anderen Anwendung benutzt wird, und versuche es erneut.",
    insecure_context: "Die Kamera ist nur auf einer sicheren (https-)Seite verfügbar.",
    no_media_devices: "Dieser Browser bietet keinen Kamerazugriff.",
    engine: "Die Gesichtserkennung konnte nicht geladen werden.",
    config: "Diese Seite ist nicht richtig eingerichtet.",
    state: "Diese Seite wurde ohne gültige Anmeldung geöffnet. Starte die Anmeldung erneut.",
    verifier: "Das Ergebnis konnte nicht mit dem Server dieser Website bestätigt werden. Kehre zur Anmeldung zurück und versuche es später erneut.",
    jokes: &[
        "Mein WLAN und ich haben Schluss gemacht. Es gab keine Verbindung mehr.",
        "Der Kalender ist beleidigt. Seine Tage sind gezählt.",
        "Der Tacker hat gekündigt. Er fühlte sich, als hielte er alles allein zusammen.",
        "Ich wollte gestern Nebel fangen. Mist.",
        "Meine Zimmerpflanze wollte mehr Freiraum. Sie bekam einen größeren Topf.",
        "Die Tastatur geht zur Therapie. Alle drücken ständig ihre Knöpfe.",
        "Ein Butterbrot geht ins Café. Der Kellner sagt: Essen bedienen wir hier nicht.",
        "Das Buch über Schwerkraft ist so spannend, man kann es kaum hinlegen.",
        "Treffen sich zwei Magnete. Sagt der eine: Was soll ich bloß anziehen?",
        "Warum sitzen Geister nie im Kino vorn? Sie sehen lieber durch alles hindurch.",
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> [&'static Texts; 2] {
        [&EN, &DE]
    }

    #[test]
    fn every_language_is_complete() {
        for t in all() {
            assert!(LANGUAGES.contains(&t.lang));
            for s in [
                t.title,
                t.loading,
                t.privacy,
                t.privacy_verify,
                t.verifying,
                t.verifier,
                t.keys_hint,
                t.start,
                t.paused,
                t.smile_label,
                t.no_face_now,
                t.camera_label,
                t.play,
                t.result_passed,
                t.result_smiled,
                t.result_no_face,
                t.result_interrupted,
                t.result_failed,
                t.redirecting,
                t.error_title,
                t.retry,
                t.return_to_sign_in,
            ] {
                assert!(!s.trim().is_empty(), "{}: empty text", t.lang);
            }
            for tpl in [t.intro, t.countdown, t.announce] {
                assert!(tpl.contains("{n}"), "{}: {tpl}", t.lang);
            }
            assert!((8..=12).contains(&t.jokes.len()), "{}", t.lang);
            for j in t.jokes {
                assert!(!j.trim().is_empty() && j.len() < 200, "{j}");
            }
        }
    }

    #[test]
    fn every_problem_has_a_message_in_every_language() {
        let problems = [
            Problem::CameraDenied,
            Problem::NoCamera,
            Problem::CameraInUse,
            Problem::CameraFormat,
            Problem::CameraTimeout,
            Problem::CameraOther,
            Problem::CameraLost,
            Problem::InsecureContext,
            Problem::NoMediaDevices,
            Problem::Engine,
            Problem::Config,
            Problem::State,
            Problem::Verifier,
        ];
        for t in all() {
            let mut seen = std::collections::HashSet::new();
            for p in problems {
                assert!(
                    seen.insert(t.problem(p)),
                    "{}: {p:?} shares a message",
                    t.lang
                );
            }
        }
    }

    #[test]
    fn camera_error_names_map_to_problems_and_reasons() {
        let cases = [
            (
                "NotAllowedError",
                Problem::CameraDenied,
                Some(Reason::CameraDenied),
            ),
            (
                "SecurityError",
                Problem::CameraDenied,
                Some(Reason::CameraDenied),
            ),
            (
                "NotFoundError",
                Problem::NoCamera,
                Some(Reason::CameraUnavailable),
            ),
            (
                "NotReadableError",
                Problem::CameraInUse,
                Some(Reason::CameraUnavailable),
            ),
            (
                "OverconstrainedError",
                Problem::CameraFormat,
                Some(Reason::CameraUnavailable),
            ),
            (
                "TimeoutError",
                Problem::CameraTimeout,
                Some(Reason::CameraUnavailable),
            ),
            (
                "AbortError",
                Problem::CameraOther,
                Some(Reason::CameraUnavailable),
            ),
            ("", Problem::CameraOther, Some(Reason::CameraUnavailable)),
        ];
        for (name, problem, reason) in cases {
            let p = Problem::from_camera_error_name(name);
            assert_eq!(p, problem, "{name}");
            assert_eq!(p.reason(), reason, "{name}");
            assert!(p.can_retry(), "{name}");
        }
    }

    #[test]
    fn state_and_config_problems_never_redirect() {
        for p in [Problem::State, Problem::Config] {
            assert_eq!(p.reason(), None);
            assert!(!p.can_retry());
        }
        assert_eq!(Problem::Engine.reason(), Some(Reason::Error));
        assert!(!Problem::Engine.can_retry());
        // A challenge's nonce is used once: no retry, only the way back with `error`.
        assert_eq!(Problem::Verifier.reason(), Some(Reason::Error));
        assert!(!Problem::Verifier.can_retry());
        assert_eq!(
            Problem::InsecureContext.reason(),
            Some(Reason::CameraUnavailable)
        );
        assert!(!Problem::InsecureContext.can_retry());
    }

    #[test]
    fn a_lost_camera_fails_with_camera_lost_and_may_be_retried() {
        assert_eq!(Problem::CameraLost.reason(), Some(Reason::CameraLost));
        assert!(Problem::CameraLost.can_retry());
        assert!(EN
            .problem(Problem::CameraLost)
            .starts_with("The camera stopped"));
        assert!(DE.problem(Problem::CameraLost).starts_with("Die Kamera"));
        assert_eq!(EN.result(Some(Reason::CameraLost)), EN.result_failed);
    }

    #[test]
    fn language_fallbacks() {
        assert_eq!(texts_for("en").lang, "en");
        assert_eq!(texts_for("de").lang, "de");
        assert_eq!(texts_for("de-CH").lang, "de");
        assert_eq!(texts_for("DE").lang, "de");
        assert_eq!(texts_for("pt-BR").lang, "en");
        assert_eq!(texts_for("").lang, "en");
    }

    #[test]
    fn formatting() {
        assert_eq!(EN.intro_for(15), "Keep a straight face for 15 seconds.");
        assert_eq!(EN.countdown_for(3), "3 s left");
        assert_eq!(DE.announce_for(10), "noch 10 Sekunden");
        assert_eq!(EN.smile_value(Some(0.123)), "12 %");
        assert_eq!(EN.smile_value(Some(7.0)), "100 %");
        assert_eq!(EN.smile_value(None), "no face");
        assert_eq!(EN.smile_value(Some(f32::NAN)), "no face");
        assert_eq!(EN.result(None), EN.result_passed);
        assert_eq!(EN.result(Some(Reason::Smiled)), "You smiled!");
    }

    #[test]
    fn jokes_rotate_and_survive_bad_times() {
        let n = EN.jokes.len();
        assert_eq!(EN.joke_at(0.0, 4000.0), EN.jokes[0]);
        assert_eq!(EN.joke_at(3999.0, 4000.0), EN.jokes[0]);
        assert_eq!(EN.joke_at(4000.0, 4000.0), EN.jokes[1]);
        assert_eq!(EN.joke_at(4000.0 * n as f64, 4000.0), EN.jokes[0]);
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
            assert_eq!(EN.joke_at(bad, 4000.0), EN.jokes[0]);
        }
        assert_eq!(EN.joke_at(5000.0, 0.0), EN.jokes[0]);
    }
}
