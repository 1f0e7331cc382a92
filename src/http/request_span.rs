//! The request's span, access log line and `X-Request-Id` echo, in one middleware
//! (`App::wrap(RequestSpan)`, outside the problem bodies so that it sees their answers).
//!
//! Every request gets an `info` span named `http_request` (`telemetry::REQUEST_SPAN`) with the
//! request id, method and route template; at the end the access log line is written inside it
//! (`access_log`) and the response gets the id. The span is entered only while the app works
//! on the request (its call and each poll) and, for a streamed body, while the body produces
//! a chunk: a sized body runs no code of ours that could log. `status` and `latency_ms` are
//! recorded on the span only when something reads them (the access log line, which carries
//! the span, or a span exporter), and the span's fields are formatted only when a line is
//! written inside it (`telemetry::lazy_fields`): a request that logs nothing pays for the span
//! itself, not for formatting it. This middleware replaced tracing-actix-web's `TracingLogger`,
//! which also entered the span on every poll of every body and recorded the end values on
//! every request (benches/load/results/span-2026-11-30.md).

use std::borrow::Cow;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::Method;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage};
use tracing::Span;

use super::access_log::{self, AccessEntry, AccessLog};
use super::request_id::{REQUEST_ID_HEADER, RequestContext, RequestId, UNMATCHED_ROUTE};
use super::route_table::RouteTable;
use crate::telemetry::REQUEST_SPAN;

/// The middleware (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<S, B> Transform<S, ServiceRequest> for RequestSpan
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B, SpanBody<B>>>;
    type Error = Error;
    type Transform = RequestSpanService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestSpanService { service }))
    }
}

#[derive(Debug)]
pub struct RequestSpanService<S> {
    service: S,
}

/// What the request's end needs from its start.
#[derive(Debug)]
struct Start {
    id: RequestId,
    route: Cow<'static, str>,
    at: Instant,
}

impl<S, B> Service<ServiceRequest> for RequestSpanService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B, SpanBody<B>>>;
    type Error = Error;
    type Future = Traced<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let id = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(RequestId::parse)
            .unwrap_or_else(RequestId::generated);
        // The pattern the path matches (`/v1/experiments/{id}/assign`), found before routing
        // itself runs: from the route list's segments (`route_table`), or actix's own table
        // for a list that one cannot decide.
        let route = match RouteTable::of_app() {
            Some(table) => table.template_of(req.path()).map(Cow::Borrowed),
            None => req.match_pattern().map(Cow::Owned),
        }
        .unwrap_or(Cow::Borrowed(UNMATCHED_ROUTE));
        let span = request_span(req.method(), &route, &id);
        req.extensions_mut().insert(RequestContext {
            id: id.clone(),
            route: route.clone(),
        });
        let inner = span.in_scope(|| self.service.call(req));
        Traced {
            inner,
            span,
            start: Start {
                id,
                route,
                at: Instant::now(),
            },
        }
    }
}

/// The request's span. The `otel.*` fields name and classify it for the exporter; without
/// one they would only add noise to every log line of the request.
fn request_span(method: &Method, route: &str, id: &RequestId) -> Span {
    #[cfg(not(feature = "otel"))]
    let span = tracing::info_span!(
        REQUEST_SPAN,
        method = %method,
        route,
        request_id = id.as_str(),
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    #[cfg(feature = "otel")]
    let span = tracing::info_span!(
        REQUEST_SPAN,
        method = %method,
        route,
        request_id = id.as_str(),
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
        otel.kind = "server",
        otel.name = format!("{method} {route}"),
        otel.status_code = tracing::field::Empty,
    );
    span
}

pin_project_lite::pin_project! {
    /// The app's future for one request, inside its span.
    pub struct Traced<F> {
        #[pin]
        inner: F,
        span: Span,
        start: Start,
    }
}

impl<F, B> Future for Traced<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<EitherBody<B, SpanBody<B>>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = {
            let _entered = this.span.enter();
            match std::task::ready!(this.inner.poll(cx)) {
                Ok(mut response) => {
                    finish(this.span, this.start, &mut response);
                    Ok(response)
                }
                Err(error) => {
                    // Every layer of the app answers errors as responses (handlers,
                    // extractors, actix-cors, `problem_bodies`); an `Err` carries no request
                    // to write an access line for, so it gets its status on the span only.
                    let status = error.as_response_error().status_code();
                    this.span.record("status", status.as_u16());
                    Err(error)
                }
            }
        };
        let span = this.span;
        Poll::Ready(outcome.map(|response| {
            response.map_body(|_, body| match body.size() {
                BodySize::Stream => EitherBody::right(SpanBody {
                    body,
                    span: span.clone(),
                }),
                _ => EitherBody::left(body),
            })
        }))
    }
}

/// The request's end, inside its span: the end values, the access log line, the echoed id.
fn finish<B>(span: &Span, start: &Start, response: &mut ServiceResponse<B>) {
    let status = response.status();
    let wanted = response
        .request()
        .app_data::<AccessLog>()
        .unwrap_or(&AccessLog::All)
        .wants(&mut rand::rng());
    if wanted || crate::telemetry::exporting_spans() {
        let latency_ms = start.at.elapsed().as_secs_f64() * 1000.0;
        span.record("status", status.as_u16());
        span.record("latency_ms", latency_ms);
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
        if wanted {
            access_log::write(&AccessEntry {
                method: response.request().method().as_str(),
                route: &start.route,
                status: status.as_u16(),
                latency_ms,
                request_id: start.id.as_str(),
            });
        }
    }
    response
        .headers_mut()
        .insert(REQUEST_ID_HEADER, start.id.header_value());
}

pin_project_lite::pin_project! {
    /// A streamed body, entering the request's span while it produces each chunk (an
    /// export's body reads the store and logs when that fails).
    pub struct SpanBody<B> {
        #[pin]
        body: B,
        span: Span,
    }
}

impl<B: MessageBody> MessageBody for SpanBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        let _entered = this.span.enter();
        this.body.poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use actix_web::{App, HttpResponse, test, web};
    use futures_util::StreamExt as _;
    use tracing_subscriber::Layer;
    use tracing_subscriber::fmt::format::JsonFields;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::telemetry::LazyFields;
    use crate::telemetry::captured::Captured;

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
    fn subscriber(
        captured: &Captured,
        records: &Records,
    ) -> impl tracing::Subscriber + Send + Sync {
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
}
