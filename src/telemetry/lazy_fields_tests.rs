use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracing_subscriber::Layer;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, JsonFields};
use tracing_subscriber::layer::SubscriberExt;

use super::*;
use crate::telemetry::captured::Captured;

/// What a request does to its span: fields at the start, a line inside, the end's records, a
/// line after them (the access log's place), and a span of another name around it all.
fn request_like() {
    let outer = tracing::info_span!("engine.reload", trigger = "sighup");
    let _outer = outer.enter();
    let span = tracing::info_span!(
        "http_request",
        method = %"GET",
        route = "/v1/experiments/{id}/assign",
        request_id = "lb-7f3a:req \"42\"",
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    span.in_scope(|| {
        tracing::warn!(unit = "u1", "inside");
        span.record("status", 200u16);
        span.record("latency_ms", 0.25);
        tracing::info!(target: "banditd::access", "request");
    });
    // A second request whose only line comes after its records.
    let span = tracing::info_span!(
        "http_request",
        method = %"POST",
        route = "(unmatched)",
        request_id = "x",
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    span.record("status", 404u16);
    span.record("latency_ms", 1.5);
    span.in_scope(|| tracing::info!(target: "banditd::access", "request"));
}

fn pretty(lazy: bool) -> String {
    pretty_of(lazy, request_like)
}

fn pretty_of(lazy: bool, work: fn()) -> String {
    let captured = Captured::default();
    let fmt = tracing_subscriber::fmt::layer()
        .without_time()
        .with_ansi(false)
        .with_writer(captured.clone());
    let layer = if lazy {
        LazyFields::new(DefaultFields::new()).and_then(fmt).boxed()
    } else {
        fmt.boxed()
    };
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), work);
    captured.text()
}

fn json(lazy: bool) -> String {
    json_of(lazy, request_like)
}

fn json_of(lazy: bool, work: fn()) -> String {
    let captured = Captured::default();
    let fmt = tracing_subscriber::fmt::layer()
        .json()
        .without_time()
        .with_writer(captured.clone());
    let layer = if lazy {
        LazyFields::new(JsonFields::new()).and_then(fmt).boxed()
    } else {
        fmt.boxed()
    };
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), work);
    captured.text()
}

/// Request spans as wide as the `otel` build's (8 fields, the most kept) and one wider,
/// some fields left empty or recorded out of order, with lines inside.
fn wide_spans() {
    let span = tracing::info_span!(
        "http_request",
        method = %"GET",
        route = "/v1/experiments/{id}/assign",
        request_id = "r-8",
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
        otel.kind = "server",
        otel.name = "GET /v1/experiments/{id}/assign",
        otel.status_code = tracing::field::Empty,
    );
    span.in_scope(|| tracing::warn!("inside eight"));
    span.record("otel.status_code", "ERROR");
    span.record("status", 500u16);
    span.in_scope(|| tracing::info!("after the records"));
    let wider = tracing::info_span!(
        "http_request",
        a = 1u64,
        b = -2i64,
        c = true,
        d = 0.5,
        e = "five",
        f = %"six",
        g = tracing::field::Empty,
        h = 8u64,
        i = "nine",
    );
    wider.in_scope(|| tracing::warn!("inside nine"));
    let sparse = tracing::info_span!("http_request", x = tracing::field::Empty, y = 2u64);
    sparse.in_scope(|| tracing::warn!("inside sparse"));
}

#[test]
fn spans_of_up_to_eight_fields_and_wider_ones_read_as_the_fmt_layer_writes_them_alone() {
    let eager = pretty_of(false, wide_spans);
    assert!(
        eager.contains("otel.status_code=\"ERROR\"") || eager.contains("otel.status_code=ERROR"),
        "{eager}"
    );
    assert!(eager.contains("i=\"nine\""), "{eager}");
    assert_eq!(eager.lines().count(), 4, "{eager}");
    assert_eq!(pretty_of(true, wide_spans), eager);
    assert_eq!(json_of(true, wide_spans), json_of(false, wide_spans));
}

#[test]
fn lines_inside_a_deferred_span_are_the_ones_the_fmt_layer_writes_alone() {
    let eager = pretty(false);
    assert!(
        eager.contains(
            r#"http_request{method=GET route="/v1/experiments/{id}/assign" request_id="lb-7f3a:req \"42\"" status=200 latency_ms=0.25}"#
        ),
        "{eager}"
    );
    assert_eq!(eager.lines().count(), 3, "{eager}");
    assert_eq!(pretty(true), eager);

    let eager = json(false);
    let lines: Vec<serde_json::Value> = eager
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines[0]["span"]["request_id"], "lb-7f3a:req \"42\"");
    assert_eq!(lines[1]["span"]["latency_ms"], 0.25);
    assert_eq!(lines[2]["span"]["status"], 404);
    assert_eq!(lines[2]["spans"][0]["trigger"], "sighup");
    assert_eq!(json(true), eager);
}

/// `DefaultFields`, counting the spans and records it formats.
#[derive(Default)]
struct Counting(Arc<AtomicUsize>);

impl<'writer> FormatFields<'writer> for Counting {
    fn format_fields<R: RecordFields>(
        &self,
        writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        self.0.fetch_add(1, Ordering::Relaxed);
        DefaultFields::new().format_fields(writer, fields)
    }
}

#[test]
fn a_deferred_span_without_lines_is_never_formatted_and_other_spans_are() {
    let formatted = Arc::new(AtomicUsize::new(0));
    let captured = Captured::default();
    let fmt = tracing_subscriber::fmt::layer()
        .fmt_fields(Counting(formatted.clone()))
        .without_time()
        .with_ansi(false)
        .with_writer(captured.clone());
    let subscriber = tracing_subscriber::registry()
        .with(LazyFields::new(Counting(formatted.clone())).and_then(fmt));
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..3 {
            let span = tracing::info_span!("http_request", request_id = "quiet");
            let _entered = span.enter();
        }
        // Only what no fields look like (the placeholder's text), once for all spans.
        assert_eq!(formatted.load(Ordering::Relaxed), 1);
        formatted.store(0, Ordering::Relaxed);
        for _ in 0..3 {
            let span = tracing::info_span!("http_request", request_id = "quiet");
            let _entered = span.enter();
        }
        assert_eq!(formatted.load(Ordering::Relaxed), 0);
        let span = tracing::info_span!("http_request", request_id = "heard");
        span.in_scope(|| tracing::info!(n = 1, "inside"));
        span.in_scope(|| tracing::info!(n = 2, "inside"));
        // The span's fields once, and each line's own fields.
        assert_eq!(formatted.load(Ordering::Relaxed), 3);
        let _other = tracing::info_span!("engine.assign", experiment = "headline");
        assert_eq!(
            formatted.load(Ordering::Relaxed),
            4,
            "other spans as before"
        );
    });
    let text = captured.text();
    assert!(
        text.contains(
            "http_request{request_id=\"heard\"}: banditd::telemetry::lazy_fields::tests: inside n=2"
        ),
        "{text}"
    );
}

#[test]
fn a_line_the_fmt_layer_writes_by_itself_shows_the_span_without_its_fields_and_does_not_fail() {
    let captured = Captured::default();
    let fmt = tracing_subscriber::fmt::layer()
        .json()
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .without_time()
        .with_writer(captured.clone());
    let subscriber =
        tracing_subscriber::registry().with(LazyFields::new(JsonFields::new()).and_then(fmt));
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("http_request", request_id = "closing");
        span.in_scope(|| {});
    });
    let text = captured.text();
    let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(line["fields"]["message"], "close", "{text}");
    assert_eq!(
        line["span"],
        serde_json::json!({"name": "http_request"}),
        "{text}"
    );
}
