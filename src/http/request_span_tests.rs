use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, test, web};
use futures_util::StreamExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::layer::SubscriberExt;

use super::*;
use crate::telemetry::LazyFields;

/// A writer that keeps what the subscriber wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn lines(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

/// Counts the values recorded on request spans after they opened.
#[derive(Clone, Default)]
struct Records(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> Layer<S> for Records {
    fn on_record(
        &self,
        _: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.fetch_add(values.len(), Ordering::Relaxed);
    }
}

/// The JSON log format as `telemetry::init` builds it, writing to `captured`.
fn subscriber(captured: &Captured, records: &Records) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::registry()
        .with(
            LazyFields::new(JsonFields::new()).and_then(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(captured.clone()),
            ),
        )
        .with(records.clone())
}

async fn logs_inside() -> HttpResponse {
    tracing::warn!("the handler says");
    HttpResponse::Ok().body("{}")
}

async fn streams_and_logs() -> HttpResponse {
    let chunks = futures_util::stream::iter(["a", "b"]).map(|chunk| {
        tracing::warn!(chunk, "the body says");
        Ok::<_, Error>(Bytes::from_static(chunk.as_bytes()))
    });
    HttpResponse::Ok().streaming(chunks)
}

#[actix_web::test]
async fn lines_of_the_handler_and_of_a_streamed_body_carry_the_request_id_and_route() {
    let captured = Captured::default();
    let records = Records::default();
    let _guard = tracing::subscriber::set_default(subscriber(&captured, &records));
    let app = test::init_service(
        App::new()
            .wrap(RequestSpan)
            .app_data(AccessLog::Off)
            .route("/v1/experiments/{id}/assign", web::get().to(logs_inside))
            .route(
                "/v1/experiments/{id}/export",
                web::get().to(streams_and_logs),
            ),
    )
    .await;
    let request = test::TestRequest::get()
        .uri("/v1/experiments/headline/assign?unit=u1")
        .insert_header(("x-request-id", "given-1"))
        .to_request();
    let response = test::call_service(&app, request).await;
    assert_eq!(response.headers().get("x-request-id").unwrap(), "given-1");
    let request = test::TestRequest::get()
        .uri("/v1/experiments/headline/export")
        .to_request();
    let response = test::call_service(&app, request).await;
    let generated = response.headers().get("x-request-id").unwrap().clone();
    assert_eq!(test::read_body(response).await, "ab");

    let lines = captured.lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let span = &lines[0]["span"];
    assert_eq!(lines[0]["fields"]["message"], "the handler says");
    assert_eq!(span["name"], REQUEST_SPAN);
    assert_eq!(span["request_id"], "given-1", "{span}");
    assert_eq!(span["route"], "/v1/experiments/{id}/assign", "{span}");
    assert_eq!(span["method"], "GET", "{span}");
    for line in &lines[1..] {
        assert_eq!(line["fields"]["message"], "the body says");
        assert_eq!(line["span"]["request_id"], generated.to_str().unwrap());
        assert_eq!(line["span"]["route"], "/v1/experiments/{id}/export");
    }
    // Nothing read the end values: the access log is off and no exporter is set.
    assert_eq!(records.0.load(Ordering::Relaxed), 0);
}

#[actix_web::test]
async fn the_access_line_carries_the_span_with_its_end_values() {
    let captured = Captured::default();
    let records = Records::default();
    let _guard = tracing::subscriber::set_default(subscriber(&captured, &records));
    let app = test::init_service(
        App::new()
            .wrap(RequestSpan)
            .app_data(AccessLog::All)
            .route("/healthz", web::get().to(HttpResponse::Ok)),
    )
    .await;
    let request = test::TestRequest::get().uri("/healthz").to_request();
    let response = test::call_service(&app, request).await;
    let id = response.headers().get("x-request-id").unwrap().clone();
    let request = test::TestRequest::get().uri("/no/such/route").to_request();
    assert_eq!(test::call_service(&app, request).await.status(), 404);

    let lines = captured.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["target"], "banditd::access");
    assert_eq!(line["fields"]["request_id"], id.to_str().unwrap());
    assert_eq!(line["fields"]["route"], "/healthz");
    assert_eq!(line["fields"]["status"], 200);
    assert_eq!(line["span"]["status"], 200, "{line}");
    assert_eq!(line["span"]["latency_ms"], line["fields"]["latency_ms"]);
    assert_eq!(line["span"]["request_id"], id.to_str().unwrap());
    assert_eq!(lines[1]["fields"]["route"], UNMATCHED_ROUTE);
    assert_eq!(lines[1]["span"]["status"], 404);
    assert_eq!(
        records.0.load(Ordering::Relaxed),
        4,
        "status and latency, twice"
    );
}
