//! The analyst dashboard at `/ui/`: server-rendered HTML (maud templates compiled into the
//! binary) with plots drawn as SVG on the server, no JavaScript build step, nothing fetched
//! from elsewhere. Its numbers come from the engine's own report (`GET /v1/experiments/{id}`
//! answers from the same call), rounded by one stated rule (`numbers`).
//!
//! `routes` mounts the pages through the API's route list; `access` and `session` decide who
//! sees them; `pages` renders; `svg` draws the plots; `error` is the pages' error boundary.

pub mod access;
pub mod error;
pub mod numbers;
pub mod pages;
pub mod routes;
pub mod session;
pub mod svg;

pub use access::{DEFAULT_REFRESH, DEFAULT_SESSION_LIFETIME, UiSettings};
pub use routes::routes;
pub use session::SessionKey;

/// The purpose string of the session key derived from the token secret
/// (`TokenSigner::derive_key`).
pub const SESSION_KEY_PURPOSE: &str = "ui-session";
