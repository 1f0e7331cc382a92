//! `GET /metrics`: the Prometheus scrape. Guarded by `MetricsAuth` (the metrics key, else the
//! admin key); answers 404 when the server runs with `--metrics off`.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};

use super::auth::MetricsAuth;
use super::openapi::Routes;
use super::problem::{ApiError, ApiResult, Problem};
use crate::metrics::Exporter;

pub fn routes(api: &mut impl Routes) {
    api.route::<__path_metrics, _, _>(metrics);
}

/// The Prometheus scrape.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition format",
         content_type = "text/plain", body = String),
        (status = 401, description = "Missing or wrong key (when BANDITD_METRICS_KEY or \
                                      BANDITD_ADMIN_KEY is set)", body = Problem,
         content_type = "application/problem+json"),
        (status = 404, description = "Metrics are turned off (--metrics off)", body = Problem,
         content_type = "application/problem+json"),
        (status = 503, description = "The metrics could not be encoded", body = Problem,
         content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
    security(("metrics_key" = []), ("admin_key" = [])),
)]
async fn metrics(_: MetricsAuth, exporter: Option<web::Data<Exporter>>) -> ApiResult<HttpResponse> {
    let exporter = exporter.ok_or_else(|| {
        ApiError::NotFound(
            "metrics are turned off on this server (--metrics off / BANDITD_METRICS=false)"
                .to_owned(),
        )
    })?;
    let text = exporter
        .render()
        .map_err(|_| ApiError::Unavailable("the metrics could not be encoded".to_owned()))?;
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, Exporter::CONTENT_TYPE))
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(text))
}
