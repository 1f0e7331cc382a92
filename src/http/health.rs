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

/// Ready once the experiments are loaded and the store accepts writes; not ready while
/// draining, nor while store writes fail (503 with the store's reason, until it recovers).
async fn readyz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    if state.draining.load(Ordering::Acquire) {
        return Err(ApiError::Unavailable("shutting down".to_owned()));
    }
    let catalog = state.engine.catalog();
    let store = state.engine.store();
    if !store.writable() {
        let cause = store
            .health()
            .failing
            .map_or_else(|| "recovering".to_owned(), |episode| episode.cause);
        return Err(ApiError::Unavailable(format!(
            "the store does not accept writes: {cause}"
        )));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "status": "ready",
        "experiments": catalog.all().count(),
    })))
}
