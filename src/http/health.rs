//! `GET /healthz` (the process answers) and `GET /readyz` (it should get traffic).

use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};

use super::problem::{ApiError, ApiResult, wrong_method};
use super::state::AppState;

/// HEAD answers like GET (actix sends no body for it): load balancers often probe with HEAD.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/healthz")
            .route(web::get().to(healthz))
            .route(web::head().to(healthz))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/readyz")
            .route(web::get().to(readyz))
            .route(web::head().to(readyz))
            .default_service(web::to(wrong_method)),
    );
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready once the experiments are loaded and the store answers; not ready while draining.
async fn readyz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    if state.draining.load(Ordering::Acquire) {
        return Err(ApiError::Unavailable("shutting down".to_owned()));
    }
    let catalog = state.engine.catalog();
    if let Some(live) = catalog.all().next() {
        state
            .engine
            .store()
            .counters(&live.epoch)
            .await
            .map_err(crate::engine::EngineError::from)?;
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "status": "ready",
        "experiments": catalog.all().count(),
    })))
}
