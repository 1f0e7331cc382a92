//! `GET /metrics`: the Prometheus scrape. Guarded by `MetricsAuth` (the metrics key, else the
//! admin key); answers 404 when the server runs with `--metrics off`.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};

use super::auth::MetricsAuth;
use super::problem::{ApiError, ApiResult, wrong_method};
use crate::metrics::Exporter;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/metrics")
            .route(web::get().to(metrics))
            .default_service(web::to(wrong_method)),
    );
}

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
