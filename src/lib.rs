//! smile-factor: a playful login factor that fails when the user smiles.
//!
//! The core (everything but `web`) is plain Rust with no browser APIs, so it is tested
//! natively with `cargo test`: model loading and inference ([`model`]), preprocessing
//! ([`preprocess`]), box decoding ([`detect`]) and the face pipeline ([`analyzer`]).
//! [`web`] holds all browser glue and every `#[wasm_bindgen]` export, on wasm32 only.

pub mod analyzer;
pub mod config;
pub mod content;
pub mod detect;
pub mod embed;
pub mod error;
pub mod frame;
pub mod model;
pub mod nn;
pub mod preprocess;
pub mod redirect;
pub mod track;
pub mod verdict;

#[cfg(target_arch = "wasm32")]
pub mod web;

pub use analyzer::{AnalyzerOptions, Expressions, Face, FaceAnalyzer, EXPRESSION_LABELS};
pub use detect::BoundingBox;
pub use error::SmileError;
pub use frame::RgbaFrame;
pub use track::{TrackStep, Tracker, TrackerOptions};
