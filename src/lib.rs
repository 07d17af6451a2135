//! smile-factor: a playful login factor that fails when the user smiles.
//!
//! Three rooms, with arrows one way (`tests/architecture.rs` checks them):
//! - [`vision`]: pixels to faces and smile scores (frames, preprocessing, the `nn`
//!   engine, models, detection, analysis, tracking). Knows nothing of logins.
//! - [`challenge`]: the rules (config, texts, embed options, the verdict state machine,
//!   the return URL). Knows nothing of pixels; a frame reaches it as a smile score.
//! - [`web`]: wasm32 only, all browser glue and every `#[wasm_bindgen]` export; uses both.
//!
//! `vision` and `challenge` use no browser API and are tested natively with `cargo test`.

pub mod challenge;
pub mod vision;

#[cfg(target_arch = "wasm32")]
pub mod web;

pub use vision::analyzer::{
    AnalyzerOptions, Expressions, Face, FaceAnalyzer, FaceScores, View, EXPRESSION_LABELS,
};
pub use vision::detect::BoundingBox;
pub use vision::error::SmileError;
pub use vision::frame::RgbaFrame;
pub use vision::track::{TrackStep, Tracker, TrackerOptions};
