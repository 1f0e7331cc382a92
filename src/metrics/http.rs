//! Counts every HTTP request by route template and status class, and times it by route.
//! The route is the template the request matched (`/v1/experiments/{id}/assign`), never the
//! raw path, so an experiment id in a path or a scan of random URLs adds no series.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use super::registry::UNMATCHED_ROUTE;

/// Middleware (`actix_web::middleware::from_fn`); with metrics off it only passes the
/// request on. Wrap it outermost, so that answers made by other middleware count too.
pub async fn record_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(metrics) = super::get() else {
        return next.call(req).await;
    };
    let started = Instant::now();
    let result = next.call(req).await;
    // An error here was raised before routing (a middleware refused the request), so no
    // route matched; routed errors arrive as responses.
    let (route, status) = match &result {
        Ok(response) => (response.request().match_pattern(), response.status()),
        Err(error) => (None, error.as_response_error().status_code()),
    };
    metrics.observe_request(
        route.as_deref().unwrap_or(UNMATCHED_ROUTE),
        status.as_u16(),
        started.elapsed().as_secs_f64(),
    );
    result
}
