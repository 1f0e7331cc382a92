//! The `RUST_LOG` filter, without its per-span bookkeeping when no directive needs it.
//!
//! `EnvFilter` keeps a table of live spans for its *dynamic* directives (those that name a
//! span or a field, `target[span{field=value}]=level`): each span's open, enter, exit, record
//! and close takes that table's lock, even when no directive is dynamic and the table stays
//! empty. The request span is entered at least twice per request (`http::request_span`), so a
//! plain level filter (the default `info`) paid six lock round trips per request for nothing.
//! [`StaticFilter`] forwards every call to the `EnvFilter` while it has a dynamic directive,
//! and only the filtering calls (`register_callsite`, `enabled`, `max_level_hint`) otherwise,
//! which is what the skipped calls amount to then: with no dynamic directive, `EnvFilter`
//! registers no span callsite, so its table never gets an entry.

use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer};

/// The filter layer (see the module doc).
pub struct StaticFilter {
    filter: EnvFilter,
    /// Whether any directive names a span or a field: only then does the filter track spans.
    dynamic: bool,
}

impl StaticFilter {
    pub fn new(filter: EnvFilter) -> Self {
        // A directive prints as `target[span{fields}]=level` exactly when it is dynamic
        // (tracing-subscriber's `Display` of a directive), and no target may hold a `[`.
        let dynamic = filter.to_string().contains('[');
        Self { filter, dynamic }
    }

    /// Whether the filter tracks spans (some directive names a span or a field).
    pub fn is_dynamic(&self) -> bool {
        self.dynamic
    }
}

impl<S: Subscriber> Layer<S> for StaticFilter {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        Layer::<S>::register_callsite(&self.filter, metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Layer::<S>::max_level_hint(&self.filter)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        Layer::<S>::enabled(&self.filter, metadata, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if self.dynamic {
            Layer::<S>::on_new_span(&self.filter, attrs, id, ctx);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if self.dynamic {
            Layer::<S>::on_record(&self.filter, id, values, ctx);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if self.dynamic {
            Layer::<S>::on_enter(&self.filter, id, ctx);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if self.dynamic {
            Layer::<S>::on_exit(&self.filter, id, ctx);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if self.dynamic {
            Layer::<S>::on_close(&self.filter, id, ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::telemetry::captured::Captured;

    fn logged_with(directives: &str, work: impl FnOnce()) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry()
            .with(StaticFilter::new(EnvFilter::new(directives)))
            .with(
                tracing_subscriber::fmt::layer()
                    .without_time()
                    .with_ansi(false)
                    .with_writer(captured.clone()),
            );
        tracing::subscriber::with_default(subscriber, work);
        captured.text()
    }

    fn some_logging() {
        tracing::info!("plain info");
        tracing::debug!("plain debug");
        let span = tracing::info_span!("http_request", route = "/v1/x");
        span.in_scope(|| {
            tracing::debug!("debug inside the request");
            tracing::info!("info inside the request");
        });
        tracing::debug!("debug after the request");
    }

    #[test]
    fn only_directives_that_name_a_span_or_a_field_are_dynamic() {
        for (directives, dynamic) in [
            ("info", false),
            ("warn,banditd=debug", false),
            ("banditd::http=trace,sled=off", false),
            ("[http_request]=debug", true),
            ("info,banditd[engine.assign]=debug", true),
            ("info,[{route=/v1/x}]=debug", true),
        ] {
            let filter = StaticFilter::new(EnvFilter::new(directives));
            assert_eq!(filter.is_dynamic(), dynamic, "{directives}");
        }
    }

    #[test]
    fn a_level_filter_logs_what_its_levels_allow_and_nothing_else() {
        let text = logged_with("info", some_logging);
        assert!(text.contains("plain info"), "{text}");
        assert!(text.contains("info inside the request"), "{text}");
        assert!(!text.contains("debug"), "{text}");
    }

    #[test]
    fn a_span_directive_still_opens_debug_lines_inside_that_span_only() {
        // Needs the skipped calls: EnvFilter learns that the span is entered from on_enter.
        let text = logged_with("info,[http_request]=debug", some_logging);
        assert!(text.contains("debug inside the request"), "{text}");
        assert!(text.contains("info inside the request"), "{text}");
        assert!(!text.contains("plain debug"), "{text}");
        assert!(!text.contains("debug after the request"), "{text}");
    }

    #[test]
    fn a_field_directive_still_opens_debug_lines_inside_spans_with_that_value() {
        let text = logged_with("info,[{route=/v1/x}]=debug", some_logging);
        assert!(text.contains("debug inside the request"), "{text}");
        assert!(!text.contains("plain debug"), "{text}");
        let text = logged_with("info,[{route=/v1/y}]=debug", some_logging);
        assert!(!text.contains("debug inside the request"), "{text}");
    }
}
