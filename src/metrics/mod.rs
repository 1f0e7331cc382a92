//! Prometheus metrics: the instruments the hot paths touch (`registry`), the handles resolved
//! once per loaded experiment (`experiment`), the per-request HTTP middleware (`http`), and
//! the figures read at scrape time from the engine and the store (`collector`), all encoded
//! by `prometheus-client` (`exporter`).
//!
//! The instruments are process-wide and installed once at startup when metrics are on
//! ([`install`]); every call site asks [`get`], one atomic load, so with `--metrics off` the
//! store's writer thread, the engine and the middleware do nothing at all. A process-wide
//! handle rather than one threaded through every constructor: the store's writer and the
//! engine's experiments would otherwise each need a new constructor argument for it.

mod collector;
mod experiment;
mod exporter;
mod http;
mod registry;

use std::sync::OnceLock;

pub use experiment::{AssignOutcome, EventOutcome, EventRecorder, ExperimentMetrics};
pub use exporter::Exporter;
pub use http::RecordRequests;
pub use registry::Metrics;

static INSTALLED: OnceLock<Metrics> = OnceLock::new();

/// Turns metrics on for the life of the process; idempotent.
pub fn install() -> &'static Metrics {
    INSTALLED.get_or_init(Metrics::default)
}

/// The instruments, when metrics are on.
#[inline]
pub fn get() -> Option<&'static Metrics> {
    INSTALLED.get()
}

#[cfg(test)]
mod tests;
