//! Counts every HTTP request by route template and status class, and times it by route.
//! The route is the template the request matched (`/v1/experiments/{id}/assign`), never the
//! raw path, so an experiment id in a path or a scan of random URLs adds no series.
//!
//! A `Transform` of its own rather than `middleware::from_fn`: its future wraps the inner one
//! in place, so a request costs no boxed future here.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::Error;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};

use super::registry::UNMATCHED_ROUTE;
use crate::http::request_id::{RequestContext, UNMATCHED_ROUTE as SPAN_UNMATCHED_ROUTE};

/// The middleware: `App::wrap(RecordRequests)`, outermost, so that answers made by other
/// middleware count too. With metrics off it only passes requests on.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordRequests;

impl<S, B> Transform<S, ServiceRequest> for RecordRequests
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RecordRequestsService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RecordRequestsService { service }))
    }
}

#[derive(Debug)]
pub struct RecordRequestsService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for RecordRequestsService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = Recorded<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        Recorded {
            inner: self.service.call(req),
            started: super::get().map(|_| Instant::now()),
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future, counted when it resolves. `started` is `None` when
    /// metrics are off.
    pub struct Recorded<F> {
        #[pin]
        inner: F,
        started: Option<Instant>,
    }
}

impl<F, B> Future for Recorded<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let (Some(started), Some(metrics)) = (this.started.take(), super::get()) {
            // An error here was raised before routing (a middleware refused the request), so
            // no route matched; routed errors arrive as responses.
            let elapsed = started.elapsed().as_secs_f64();
            match &result {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let request = response.request();
                    // The template the request span middleware already found for this path
                    // (src/http/route_table.rs decides it as actix does), rather than a second
                    // pass over actix's route table; that pass only without the middleware.
                    let found = RequestContext::with_route(request, |route| {
                        metrics.observe_request(metrics_route(route), status, elapsed);
                    });
                    if found.is_none() {
                        let route = request.match_pattern();
                        let route = route.as_deref().unwrap_or(UNMATCHED_ROUTE);
                        metrics.observe_request(route, status, elapsed);
                    }
                }
                Err(error) => {
                    let status = error.as_response_error().status_code().as_u16();
                    metrics.observe_request(UNMATCHED_ROUTE, status, elapsed);
                }
            }
        }
        Poll::Ready(result)
    }
}

/// The metrics' route label of the span's route: the same template, and the metrics' own name
/// for a path no route matches (the span says `(unmatched)`, the series `unmatched`).
fn metrics_route(span_route: &str) -> &str {
    if span_route == SPAN_UNMATCHED_ROUTE {
        UNMATCHED_ROUTE
    } else {
        span_route
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_span_route_becomes_the_same_label_the_route_match_gave() {
        // What `match_pattern` made of an unmatched path (`None`) and of a matched one.
        assert_eq!(metrics_route(SPAN_UNMATCHED_ROUTE), UNMATCHED_ROUTE);
        assert_eq!(
            metrics_route("/v1/experiments/{id}/assign"),
            "/v1/experiments/{id}/assign"
        );
    }
}
