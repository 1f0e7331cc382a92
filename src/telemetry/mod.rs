//! Logging and tracing setup in one place: the log format, colours, the `RUST_LOG` filter
//! (default `info`), lists as JSON arrays, and the optional OpenTelemetry exporter (cargo
//! feature `otel`, flag `--otlp-endpoint`). The request span and the access log live in
//! `http::request_span`; engine calls and store commits open `debug` spans of their own. The
//! request span's fields are formatted only when a line is written inside it (`lazy_fields`),
//! and a filter without span or field directives skips the filter's span bookkeeping
//! (`static_filter`).

#[cfg(test)]
pub(crate) mod captured;
mod json_lists;
mod lazy_fields;
#[cfg(feature = "otel")]
mod otel;
mod static_filter;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use json_lists::{JSON_LIST_FIELDS, JsonList, ListsAsArrays};
pub use lazy_fields::{DEFERRED_SPANS, LazyFields, REQUEST_SPAN};
pub use static_filter::StaticFilter;

/// Whether spans go to an exporter (`--otlp-endpoint`): only then are the request span's
/// end values (`status`, `latency_ms`) recorded on a request that writes no access log line,
/// since nothing else would read them.
static EXPORTING_SPANS: AtomicBool = AtomicBool::new(false);

/// See [`EXPORTING_SPANS`].
pub fn exporting_spans() -> bool {
    EXPORTING_SPANS.load(Ordering::Relaxed)
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable, for terminals (coloured only when stderr is one).
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// What the subscriber is built from.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    pub format: LogFormat,
    /// OTLP/HTTP collector to export spans to (`http://collector:4318`); `None`: no export.
    pub otlp_endpoint: Option<String>,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(
        "--otlp-endpoint needs a banditd built with the `otel` feature \
         (cargo build --release --features otel)"
    )]
    OtelNotBuilt,
    #[error("cannot set up the OTLP exporter for {endpoint}: {reason}")]
    Otlp { endpoint: String, reason: String },
}

/// Keeps the exporter alive; dropping it flushes the spans not yet sent.
#[derive(Default)]
pub struct TelemetryGuard {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(Err(error)) = self.provider.take().map(|provider| provider.shutdown()) {
            tracing::warn!(%error, "the OTLP exporter did not flush its last spans");
        }
    }
}

/// Filter of the span exporter: the engine's and the store's `debug` spans go to the trace
/// backend even when the log shows `info` only (with the exporter off they cost nothing, as no
/// layer wants them).
#[cfg(feature = "otel")]
const OTLP_FILTER: &str = "info,banditd=debug";

/// Installs the global subscriber (a second call changes nothing and returns a guard that
/// holds nothing). Log lines go to stderr.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = wants_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    );
    #[cfg(feature = "otel")]
    if let Some(endpoint) = &config.otlp_endpoint {
        // Two layers, two filters: per-layer filtering costs a little on every span, so it
        // is only paid when there is a second layer.
        let provider = otel::provider(endpoint)?;
        EXPORTING_SPANS.store(true, Ordering::Relaxed);
        let _ = tracing_subscriber::registry()
            .with(log_layer(config.format, ansi).with_filter(filter))
            .with(otel::layer(&provider).with_filter(EnvFilter::new(OTLP_FILTER)))
            .try_init();
        return Ok(TelemetryGuard {
            provider: Some(provider),
        });
    }
    #[cfg(not(feature = "otel"))]
    if config.otlp_endpoint.is_some() {
        return Err(TelemetryError::OtelNotBuilt);
    }
    let _ = tracing_subscriber::registry()
        .with(StaticFilter::new(filter))
        .with(log_layer(config.format, ansi))
        .try_init();
    Ok(TelemetryGuard::default())
}

/// The layer that writes log lines to stderr in `format`, behind the layer that defers the
/// request span's fields (`lazy_fields`; not with colours, which only the fmt layer writes),
/// which must see spans and events first.
fn log_layer<S>(format: LogFormat, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use tracing_subscriber::fmt::format::{DefaultFields, JsonFields};
    match format {
        LogFormat::Pretty => {
            let fmt = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi);
            if ansi {
                fmt.boxed()
            } else {
                LazyFields::new(DefaultFields::new()).and_then(fmt).boxed()
            }
        }
        LogFormat::Json => LazyFields::new(JsonFields::new())
            .and_then(
                tracing_subscriber::fmt::layer()
                    .json()
                    .event_format(ListsAsArrays::new(tracing_subscriber::fmt::format().json()))
                    .with_writer(std::io::stderr),
            )
            .boxed(),
    }
}

/// Colour codes only for a terminal, and never when `NO_COLOR` is set (no-color.org): in a
/// file, a pipe or a log shipper they are noise around every level and field name.
fn wants_colour(stderr_is_terminal: bool, no_color: bool) -> bool {
    stderr_is_terminal && !no_color
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_used_only_on_a_terminal_without_no_color() {
        assert!(wants_colour(true, false));
        assert!(!wants_colour(false, false));
        assert!(!wants_colour(true, true));
        assert!(!wants_colour(false, true));
    }
}
