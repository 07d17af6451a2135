//! One error type for the core. The web module turns it into a JS `Error`.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum SmileError {
    /// The model bytes could not be parsed (truncated, corrupt, not ONNX, unsupported ops).
    #[error("the {model} model could not be loaded: {reason}")]
    ModelLoad { model: &'static str, reason: String },

    /// The model parsed, but its input or output is not the shape this code expects,
    /// which usually means the wrong file was passed.
    #[error("the {model} model has the wrong shape: expected {expected}, found {found}")]
    ModelShape {
        model: &'static str,
        expected: String,
        found: String,
    },

    /// The RGBA buffer or its dimensions make no valid image.
    #[error("invalid image: {0}")]
    Image(String),

    /// An option is out of range (detector input size, thresholds).
    #[error("invalid option: {0}")]
    Option(String),

    /// The engine rejected an input while running a loaded model.
    #[error("inference failed in the {model} model: {reason}")]
    Inference { model: &'static str, reason: String },
}

pub type Result<T, E = SmileError> = std::result::Result<T, E>;
