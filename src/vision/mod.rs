//! Vision: pixels to faces and smile scores. Nothing here knows of logins.
//!
//! [`frame`] validates an RGBA buffer; [`preprocess`] is face-api's exact preprocessing;
//! [`nn`] is the inference engine and [`model`] loads a net for one input shape;
//! [`detect`] decodes the detector's grid into boxes; [`distance`] finds faces that fill
//! the frame; [`analyzer`] runs detect then
//! classify; [`track`] follows a face between detections; [`crop`] is the geometry of a
//! face crop on the full frame; [`signature`] hashes a frame's pixels, so identical
//! frames can be told. [`error`] is their one error type.

pub mod analyzer;
pub mod crop;
pub mod detect;
pub mod distance;
pub mod error;
pub mod frame;
pub mod model;
pub mod nn;
pub mod preprocess;
pub mod signature;
pub mod track;
