//! `GET /v1/experiments` and `GET /v1/experiments/{id}`: what analysts and dashboards read.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::problem::{ApiResult, wrong_method};
use super::state::AppState;
use crate::engine::ExperimentSummary;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/experiments")
            .route(web::get().to(list))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/v1/experiments/{id}")
            .route(web::get().to(show))
            .default_service(web::to(wrong_method)),
    );
}

#[derive(Serialize)]
struct ExperimentList {
    experiments: Vec<ExperimentSummary>,
}

async fn list(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let experiments = state.engine.summaries().await?;
    Ok(HttpResponse::Ok().json(ExperimentList { experiments }))
}

async fn show(state: web::Data<AppState>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.engine.report(&id).await?))
}
