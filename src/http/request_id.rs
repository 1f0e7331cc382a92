//! Every request's identity and span. `tracing-actix-web`'s `TracingLogger` opens one span per
//! request with [`RequestSpan`] as its root span builder: the request id (the caller's
//! `X-Request-Id` when it is sane, else the UUID the middleware generated), method and route
//! template at the start; status and latency at the end, when the access log line is written.
//! [`EchoRequestId`] returns the id in the `X-Request-Id` response header, and the problem
//! bodies carry it as `request_id` (`problem_bodies`).

use std::borrow::Cow;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{Error, HttpMessage, HttpRequest};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;

use super::access_log::{self, AccessEntry, AccessLog};
use super::route_table::RouteTable;

/// The header a request id arrives and leaves in.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming request id kept (a UUID is 36 bytes, a W3C trace id 32; load balancers'
/// ids fit). A longer one is replaced: it would bloat every log line of the request.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// Route of a request no route matched (the span's and the access log's `route`): the raw
/// path would put unbounded, caller-chosen text in every log line and trace.
pub const UNMATCHED_ROUTE: &str = "(unmatched)";

/// A request's id: visible ASCII, 1 to [`MAX_REQUEST_ID_BYTES`] bytes, so it is safe in a
/// header, a log line and a JSON body as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The caller's id, when it is one we can echo: anything else (empty, too long, spaces,
    /// control or non-ASCII bytes) is replaced by a generated id rather than refused, since a
    /// request id is a courtesy, never a reason to fail a request.
    pub fn parse(value: &HeaderValue) -> Option<Self> {
        let bytes = value.as_bytes();
        let sane = !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID_BYTES
            && bytes.iter().all(|byte| byte.is_ascii_graphic());
        sane.then(|| Self(value.clone()))
    }

    /// The id of a request that came without a usable one: the UUID (v4) `TracingLogger`
    /// generated for it.
    fn generated(req: &ServiceRequest) -> Self {
        let uuid = req
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(|id| **id)
            .unwrap_or_else(|| uuid::Builder::from_random_bytes(rand::random()).into_uuid());
        // Encoded on the stack: the header value is the one allocation. A UUID's text is
        // visible ASCII, which `HeaderValue` always takes.
        let mut text = uuid::Uuid::encode_buffer();
        let text = uuid.hyphenated().encode_lower(&mut text);
        Self(HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("unknown")))
    }

    pub fn as_str(&self) -> &str {
        // Checked to be visible ASCII when it was made.
        self.0.to_str().unwrap_or_default()
    }

    /// The id the middleware gave this request (`None` outside the `TracingLogger`).
    pub fn of(req: &HttpRequest) -> Option<Self> {
        req.extensions()
            .get::<RequestStart>()
            .map(|start| start.id.clone())
    }
}

/// What the span's end needs from its start, kept in the request's extensions.
struct RequestStart {
    id: RequestId,
    route: Option<Cow<'static, str>>,
    at: Instant,
}

/// The root span builder of `TracingLogger<RequestSpan>`.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(req: &ServiceRequest) -> Span {
        let id = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(RequestId::parse)
            .unwrap_or_else(|| RequestId::generated(req));
        // The pattern the path matches (`/v1/experiments/{id}/assign`), found before routing
        // itself runs: from the route list's segments (`route_table`), or actix's own table
        // for a list that one cannot decide.
        let route = match RouteTable::of_app() {
            Some(table) => table.template_of(req.path()).map(Cow::Borrowed),
            None => req.match_pattern().map(Cow::Owned),
        };
        let route_name = route.as_deref().unwrap_or(UNMATCHED_ROUTE);
        // The `otel.*` fields name and classify the span for the exporter; without it they
        // would only add noise to every log line of the request.
        #[cfg(not(feature = "otel"))]
        let span = tracing::info_span!(
            "http_request",
            method = %req.method(),
            route = route_name,
            request_id = id.as_str(),
            status = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        );
        #[cfg(feature = "otel")]
        let span = tracing::info_span!(
            "http_request",
            method = %req.method(),
            route = route_name,
            request_id = id.as_str(),
            status = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
            otel.kind = "server",
            otel.name = format!("{} {route_name}", req.method()),
            otel.status_code = tracing::field::Empty,
        );
        req.extensions_mut().insert(RequestStart {
            id,
            route,
            at: Instant::now(),
        });
        span
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        // Every layer of the app answers errors as responses (handlers, extractors,
        // actix-cors, `problem_bodies`); an `Err` would carry no request to read the start
        // from, so it gets its status on the span and no access log line.
        let response = match outcome {
            Ok(response) => response,
            Err(error) => {
                span.record("status", error.as_response_error().status_code().as_u16());
                return;
            }
        };
        let status = response.status().as_u16();
        let req = response.request();
        let extensions = req.extensions();
        let Some(start) = extensions.get::<RequestStart>() else {
            return;
        };
        let latency_ms = start.at.elapsed().as_secs_f64() * 1000.0;
        span.record("status", status);
        span.record("latency_ms", latency_ms);
        if response.status().is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
        let wanted = req
            .app_data::<AccessLog>()
            .unwrap_or(&AccessLog::All)
            .wants(&mut rand::rng());
        if wanted {
            access_log::write(&AccessEntry {
                method: req.method().as_str(),
                route: start.route.as_deref().unwrap_or(UNMATCHED_ROUTE),
                status,
                latency_ms,
                request_id: start.id.as_str(),
            });
        }
    }
}

/// Middleware inside `TracingLogger`: sets `X-Request-Id` on every response
/// (`App::wrap(EchoRequestId)`). A `Transform` of its own rather than `middleware::from_fn`, so
/// that a request costs no boxed future here.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoRequestId;

impl<S, B> Transform<S, ServiceRequest> for EchoRequestId
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = EchoRequestIdService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(EchoRequestIdService { service }))
    }
}

#[derive(Debug)]
pub struct EchoRequestIdService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for EchoRequestIdService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = Echoed<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        Echoed {
            inner: self.service.call(req),
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future; its response gets the request's id.
    pub struct Echoed<F> {
        #[pin]
        inner: F,
    }
}

impl<F, B> Future for Echoed<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = std::task::ready!(self.project().inner.poll(cx))?;
        if let Some(id) = RequestId::of(response.request()) {
            response.headers_mut().insert(REQUEST_ID_HEADER, id.0);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Option<String> {
        let value = HeaderValue::from_str(text).ok()?;
        RequestId::parse(&value).map(|id| id.as_str().to_owned())
    }

    #[test]
    fn a_sane_incoming_id_is_kept_and_any_other_is_refused() {
        assert_eq!(parsed("abc-123_x.y:z"), Some("abc-123_x.y:z".to_owned()));
        let longest = "a".repeat(MAX_REQUEST_ID_BYTES);
        assert_eq!(parsed(&longest), Some(longest.clone()));
        assert_eq!(parsed(&format!("{longest}a")), None);
        assert_eq!(parsed(""), None);
        assert_eq!(parsed("has space"), None);
        assert_eq!(parsed("tab\there"), None);
        let non_ascii = HeaderValue::from_bytes("caf\u{e9}".as_bytes()).unwrap();
        assert_eq!(RequestId::parse(&non_ascii), None);
    }
}
