//! `GET /healthz` (the process answers) and `GET /readyz` (it should get traffic).

use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::openapi::Routes;
use super::problem::{ApiError, ApiResult, Problem};
use super::state::AppState;

/// HEAD answers like GET (actix sends no body for it): load balancers often probe with HEAD.
/// Each handler's `#[utoipa::path]` declares both methods.
pub fn routes(api: &mut impl Routes) {
    api.route::<__path_healthz, _, _>(healthz)
        .route::<__path_readyz, _, _>(readyz);
}

/// `GET /healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    /// Always `ok`: the process answers.
    pub status: &'static str,
}

/// `GET /readyz` when the node should get traffic.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"status": "ready", "experiments": 3}))]
pub struct Ready {
    /// Always `ready`.
    pub status: &'static str,
    /// Experiments loaded.
    pub experiments: usize,
}

/// The process answers (liveness).
#[utoipa::path(
    method(get, head),
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    responses((status = 200, description = "The process answers", body = Health)),
)]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Ready once the experiments are loaded and the store accepts writes; not ready while
/// draining, nor while store writes fail (503 with the store's reason, until it recovers).
#[utoipa::path(
    method(get, head),
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready for traffic", body = Ready),
        (status = 503, description = "Draining, or the store does not accept writes",
         body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
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
    Ok(HttpResponse::Ok().json(Ready {
        status: "ready",
        experiments: catalog.all().count(),
    }))
}
