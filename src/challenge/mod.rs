//! The challenge rules: what the user sees, how the verdict is reached, and what goes
//! back to the identity provider. Nothing here knows of pixels: a frame arrives as a
//! smile score (`Option<f32>`, `None` when no face was seen), the seam with [`crate::vision`].
//!
//! The arrows run one way, from the leaves up:
//! - [`outcome`] (pass or fail, reason, stats), [`effects`] (the `Clock` and
//!   `Navigator` traits) and [`prompt`] (the mode and the just-in-time prompts) depend
//!   on nothing here;
//! - [`verdict`] (the state machine and its defaults) and [`redirect`] (state, return URL,
//!   continue URL) use those; [`content`] (texts) uses only `outcome`;
//! - [`feed`] (a lost camera, frozen frames) and [`pacing`] (which frames to analyse)
//!   depend on nothing here;
//! - [`session`] ties a verdict to a clock and a redirector;
//! - [`config`] (the page's config) uses `redirect` and `verdict`; [`embed`] (an
//!   embedded challenge's options) uses `config` and `redirect`;
//! - [`verify`] (the signed mode's protocol with the verifier server) uses `outcome` and
//!   `verdict`; `redirect` takes only its form field name from it.
//!
//! `tests/architecture.rs` checks these arrows.

pub mod config;
pub mod content;
pub mod effects;
pub mod embed;
pub mod feed;
pub mod outcome;
pub mod pacing;
pub mod prompt;
pub mod redirect;
pub mod session;
pub mod verdict;
pub mod verify;
