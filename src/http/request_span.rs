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
use super::request_id::{REQUEST_ID_HEADER, RequestId, UNMATCHED_ROUTE};
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
        req.extensions_mut().insert(id.clone());
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
#[path = "request_span_tests.rs"]
mod tests;
