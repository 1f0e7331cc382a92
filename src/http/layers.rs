//! The application's own checks around every routed request, in one `Transform` whose future
//! wraps the inner one in place: the strict query check (`query`) before routing, and
//! `Cache-Control: no-store` on the assign routes' answers (`assign`) after it.
//!
//! They were two `middleware::from_fn` layers, each a boxed future per request, and the
//! `no-store` one matched the path against the whole route table *before* routing (one more
//! regex pass over the dynamic routes per request, on the hottest route). After routing, the
//! request knows its resource, so the route template is a lookup by index instead.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::Error;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{CACHE_CONTROL, HeaderValue};

use super::assign::is_assign_route;
use super::query::check_query;
use super::request_id::RequestContext;

/// The middleware: `App::wrap(RequestLayers)`, inside CORS so that CORS decorates its refusals.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestLayers;

impl<S, B> Transform<S, ServiceRequest> for RequestLayers
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = RequestLayersService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestLayersService { service }))
    }
}

#[derive(Debug)]
pub struct RequestLayersService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for RequestLayersService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Layered<S::Future, B>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        match check_query(req.query_string()) {
            Ok(()) => Layered {
                inner: Some(self.service.call(req)),
                refused: None,
            },
            Err(problem) => {
                // Refused before routing: the route template comes from the table (rare path).
                let assign = is_assign_route(req.match_pattern().as_deref());
                let mut response = req.error_response(problem).map_into_right_body();
                if assign {
                    no_store(&mut response);
                }
                Layered {
                    inner: None,
                    refused: Some(response),
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The routed request's future, or the refusal of a query that is not UTF-8.
    pub struct Layered<F, B> {
        #[pin]
        inner: Option<F>,
        refused: Option<ServiceResponse<EitherBody<B>>>,
    }
}

impl<F, B> Future for Layered<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return match this.refused.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Ready(Err(actix_web::error::ErrorInternalServerError(
                    "the request layers' future was polled after it completed",
                ))),
            };
        };
        let mut response = std::task::ready!(inner.poll(cx))?.map_into_left_body();
        // The template the request span middleware found (no second match of the path), or
        // actix's own when this runs without it.
        let assign =
            RequestContext::with_route(response.request(), |route| is_assign_route(Some(route)))
                .unwrap_or_else(|| is_assign_route(response.request().match_pattern().as_deref()));
        if assign {
            no_store(&mut response);
        }
        Poll::Ready(Ok(response))
    }
}

fn no_store<B>(response: &mut ServiceResponse<B>) {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
