//! The request span's fields, formatted only when a log line is written inside the span.
//!
//! tracing-subscriber's fmt layer formats every new span's fields into a `FormattedFields`
//! extension when the span opens, so that its log lines can print them: for the per-request
//! `http_request` span that is one formatted string per request, nearly always thrown away
//! unread (benches/load/PROFILES.md measured it at ~3% of a known-unit assign). This layer,
//! placed before the fmt layer, keeps the values of the spans named in [`DEFERRED_SPANS`]
//! as they came ([`RawFields`], copies of the strings) and leaves an empty `FormattedFields`
//! behind, which the fmt layer takes as "already formatted". When an event is about to be
//! written inside such a span, it formats the kept values with the fmt layer's own field
//! formatter first, so the line is the same one the fmt layer would have written. A value
//! recorded on the span later is formatted by the fmt layer at once, so the kept values are
//! formatted then too: the request span records its end values only when a line or an
//! exporter reads them (`http::request_span`).

use std::fmt::Write as _;
use std::marker::PhantomData;
use std::sync::OnceLock;

use tracing::field::{Field, Value, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, FormattedFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Name of the per-request span (`http::request_span`).
pub const REQUEST_SPAN: &str = "http_request";

/// Spans whose fields are formatted only when a line is written inside them: spans opened
/// on every request, whose fields are plain strings and numbers.
pub const DEFERRED_SPANS: &[&str] = &[REQUEST_SPAN];

/// Most fields a deferred span may have; a span with more is formatted the usual way at once.
/// The request span has at most 8 (with the `otel` feature; 5 without).
const MAX_KEPT_VALUES: usize = 8;

/// One kept value; strings are ranges of [`RawFields::text`].
#[derive(Debug, Clone, Copy)]
enum Raw {
    Str(usize, usize),
    /// A `Debug`/`Display` value (`%method`), kept as its text.
    Text(usize, usize),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
}

/// A deferred span's values at its start, in their order: each with its field's index in
/// the span's field set, kept inline (a span opened per request allocates its text only).
#[derive(Debug)]
struct RawFields {
    text: String,
    values: [(usize, Raw); MAX_KEPT_VALUES],
    len: usize,
}

impl Default for RawFields {
    fn default() -> Self {
        Self {
            text: String::new(),
            values: [(0, Raw::Bool(false)); MAX_KEPT_VALUES],
            len: 0,
        }
    }
}

impl RawFields {
    /// Keeps one value; a span has no more values than fields, which `on_new_span` bounds.
    fn push(&mut self, field: &Field, raw: Raw) {
        if let Some(slot) = self.values.get_mut(self.len) {
            *slot = (field.index(), raw);
            self.len += 1;
        }
    }

    fn kept(&self) -> &[(usize, Raw)] {
        &self.values[..self.len]
    }
}

impl Visit for RawFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let start = self.text.len();
        self.text.push_str(value);
        self.push(field, Raw::Str(start, self.text.len()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let start = self.text.len();
        let _ = write!(self.text, "{value:?}");
        self.push(field, Raw::Text(start, self.text.len()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Raw::U64(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Raw::I64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Raw::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Raw::Bool(value));
    }
}

impl RawFields {
    /// The kept values formatted with `formatter`, as one record, the way the fmt layer
    /// would have formatted them at the span's start and on each record.
    fn formatted<N>(&self, formatter: &N, metadata: &Metadata<'_>) -> String
    where
        N: for<'writer> FormatFields<'writer>,
    {
        // Owned views of the values first, so that `dyn Value` references to them can live
        // in the array the value set borrows.
        let views: Vec<View<'_>> = self
            .kept()
            .iter()
            .map(|(_, raw)| match *raw {
                Raw::Str(start, end) => View::Str(&self.text[start..end]),
                Raw::Text(start, end) => {
                    View::Text(tracing::field::display(&self.text[start..end]))
                }
                Raw::U64(value) => View::U64(value),
                Raw::I64(value) => View::I64(value),
                Raw::F64(value) => View::F64(value),
                Raw::Bool(value) => View::Bool(value),
            })
            .collect();
        let fields = metadata.fields();
        let mut text = String::new();
        let Some(any_field) = fields.iter().next() else {
            return text;
        };
        // The kept values' fields, back from their indices in the span's field set.
        let all: Vec<Field> = fields.iter().collect();
        // A fixed-size array, as `FieldSet::value_set` takes; unused slots hold no value.
        let mut entries: [(&Field, Option<&dyn Value>); MAX_KEPT_VALUES] =
            [(&any_field, None); MAX_KEPT_VALUES];
        for (slot, ((index, _), view)) in entries.iter_mut().zip(self.kept().iter().zip(&views)) {
            if let Some(field) = all.get(*index) {
                *slot = (field, Some(view.as_value()));
            }
        }
        let value_set = fields.value_set(&entries);
        let _ = formatter.format_fields(Writer::new(&mut text), Record::new(&value_set));
        text
    }
}

/// A kept value, borrowed, as something `tracing` can record again.
enum View<'a> {
    Str(&'a str),
    Text(tracing::field::DisplayValue<&'a str>),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
}

impl View<'_> {
    fn as_value(&self) -> &dyn Value {
        match self {
            Self::Str(text) => text,
            Self::Text(text) => text,
            Self::U64(value) => value,
            Self::I64(value) => value,
            Self::F64(value) => value,
            Self::Bool(value) => value,
        }
    }
}

/// The layer (see the module doc). `N` is the fmt layer's field formatter, and the layer
/// must come before the fmt layer in the stack (`lazy.and_then(fmt_layer)`), so that it sees
/// spans and events first. Only for a fmt layer without colours: the formatted fields it
/// leaves behind are plain text (tracing-subscriber lets only the fmt layer write coloured
/// field names), and a terminal, the one place with colours, is not where the cost matters.
pub struct LazyFields<N> {
    formatter: N,
    /// What `formatter` makes of no fields at all (`{}` in JSON, nothing in the pretty
    /// format): the placeholder's text, so that a line the fmt layer writes without this
    /// layer's help (a span event it makes itself, say) shows the span without its fields
    /// instead of fields it cannot parse.
    no_fields: OnceLock<String>,
    _formatter: PhantomData<fn(N)>,
}

impl<N> LazyFields<N> {
    /// `formatter` as the fmt layer after it has it.
    pub fn new(formatter: N) -> Self {
        Self {
            formatter,
            no_fields: OnceLock::new(),
            _formatter: PhantomData,
        }
    }
}

fn is_deferred(metadata: &Metadata<'_>) -> bool {
    DEFERRED_SPANS.contains(&metadata.name())
}

impl<S, N> tracing_subscriber::Layer<S> for LazyFields<N>
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !is_deferred(attrs.metadata()) || attrs.metadata().fields().len() > MAX_KEPT_VALUES {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut raw = RawFields {
            text: String::with_capacity(96),
            ..RawFields::default()
        };
        attrs.record(&mut raw);
        let no_fields = self
            .no_fields
            .get_or_init(|| RawFields::default().formatted(&self.formatter, attrs.metadata()));
        let mut extensions = span.extensions_mut();
        if extensions.get_mut::<FormattedFields<N>>().is_none() {
            extensions.insert(raw);
            extensions.insert(FormattedFields::<N>::new(no_fields.clone()));
        }
    }

    fn on_record(&self, id: &Id, _: &Record<'_>, ctx: Context<'_, S>) {
        // A recorded value is formatted by the fmt layer at once, so the kept ones are
        // formatted first, in their place before it: the same text as without this layer, and
        // no more work (the request span records only when a line follows).
        let Some(span) = ctx.span(id).filter(|span| is_deferred(span.metadata())) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(raw) = extensions.remove::<RawFields>() {
            self.materialize(&raw, span.metadata(), &mut extensions);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            if !is_deferred(span.metadata()) {
                continue;
            }
            let mut extensions = span.extensions_mut();
            if let Some(raw) = extensions.remove::<RawFields>() {
                self.materialize(&raw, span.metadata(), &mut extensions);
            }
        }
    }
}

impl<N> LazyFields<N>
where
    N: for<'writer> FormatFields<'writer> + 'static,
{
    /// Replaces the span's placeholder `FormattedFields` with the formatted kept values.
    fn materialize(
        &self,
        raw: &RawFields,
        metadata: &Metadata<'_>,
        extensions: &mut tracing_subscriber::registry::ExtensionsMut<'_>,
    ) {
        let text = raw.formatted(&self.formatter, metadata);
        match extensions.get_mut::<FormattedFields<N>>() {
            Some(formatted) => formatted.fields = text,
            None => extensions.insert(FormattedFields::<N>::new(text)),
        }
    }
}

#[cfg(test)]
#[path = "lazy_fields_tests.rs"]
mod tests;
