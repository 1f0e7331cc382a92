//! Operator routes: `POST /v1/admin/reload`, `GET /v1/admin/config`, `GET /v1/admin/store` and
//! `GET /v1/admin/build` (admin key).

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::auth::AdminAuth;
use super::problem::{ApiError, ApiResult, wrong_method};
use super::state::AppState;
use crate::engine::ReloadError;
use crate::store::BackendStats;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/admin/reload")
            .route(web::post().to(reload))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/v1/admin/config")
            .route(web::get().to(config))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/v1/admin/store")
            .route(web::get().to(store))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/v1/admin/build")
            .route(web::get().to(build))
            .default_service(web::to(wrong_method)),
    );
}

/// Which code this replica runs: version, git commit, profile, target, features.
async fn build(_: AdminAuth) -> HttpResponse {
    HttpResponse::Ok().json(crate::build_info::current())
}

/// Applies the folder as it is on disk now, or changes nothing and says why.
async fn reload(_: AdminAuth, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    match state.engine.reload("api").await {
        Ok(outcome) => Ok(HttpResponse::Ok().json(outcome)),
        Err(ReloadError::Engine(error)) => Err(ApiError::Engine(error)),
        Err(error) => Err(ApiError::Unprocessable {
            detail: error.to_string(),
            errors: error.problems(),
        }),
    }
}

/// The loaded version, load time, files, the last error, and every experiment as the
/// document the server runs (what `banditd plan --server` diffs against).
async fn config(_: AdminAuth, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let status = state.engine.config_status();
    let experiments: Vec<serde_json::Value> = state
        .engine
        .catalog()
        .all()
        .map(|live| live.spec.to_document())
        .collect();
    let retired = state.engine.retired_variants().await?;
    Ok(HttpResponse::Ok().json(json!({
        "version": status.version,
        "loaded_ms": status.loaded_ms,
        "directory": status.directory,
        "environment": status.environment,
        "files": status.files,
        "last_error": status.last_error,
        "watch": state.engine.watch_status(),
        "experiments": experiments,
        "retired": retired,
    })))
}

/// The store's counters since start: the figures every backend has, its health, and the
/// backend's own (sled: the sticky cache, for sizing `--sticky-cache-entries`: a low hit ratio
/// on a traffic of returning units means the cache is smaller than the working set, and every
/// miss is a sled read).
async fn store(_: AdminAuth, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let stats = state.engine.store().stats();
    let mut body = json!({
        "backend": stats.backend.name(),
        "group_commits": stats.commits,
        "durable_seq": stats.durable_position,
        "health": state.engine.store().health(),
    });
    let cache = match &stats.backend {
        BackendStats::Sled { sticky_cache } => sticky_cache,
        BackendStats::Redis {
            sticky_cache,
            exposure_flush_ms,
        } => {
            body["exposure_flush_ms"] = json!(exposure_flush_ms);
            sticky_cache
        }
    };
    let lookups = cache.hits + cache.misses;
    // Counts far below 2^53, so the conversion is exact enough for a ratio.
    let hit_ratio = (lookups > 0).then(|| cache.hits as f64 / lookups as f64);
    body["sticky_cache"] = json!({
        "capacity": cache.capacity,
        "entries": cache.entries,
        "hits": cache.hits,
        "misses": cache.misses,
        "hit_ratio": hit_ratio,
    });
    Ok(HttpResponse::Ok().json(body))
}
