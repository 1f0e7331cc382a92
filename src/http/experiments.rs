//! `GET /v1/experiments`, `GET /v1/experiments/{id}` and its history: what analysts and
//! dashboards read.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::body::{LEVEL_HINT, REVISION_HINT, query_param};
use super::problem::{ApiError, ApiResult, wrong_method};
use super::state::AppState;
use crate::engine::{
    DEFAULT_CREDIBLE_LEVEL, ExperimentSummary, HistoryPoint, Timestamp, parse_timestamp,
};

/// History points returned when the request does not say.
pub const DEFAULT_HISTORY_LIMIT: usize = 1_440;

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
    )
    .service(
        web::resource("/v1/experiments/{id}/history")
            .route(web::get().to(history))
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    /// Credible level of the intervals, e.g. 0.9; default 0.95. Text, so that a bad value
    /// gets an error that names the parameter.
    #[serde(default)]
    level: Option<String>,
    /// An earlier revision, whose data stays readable after a revision bump.
    #[serde(default)]
    revision: Option<String>,
}

async fn show(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<ShowQuery>,
) -> ApiResult<HttpResponse> {
    let level =
        query_param("level", query.level.as_deref(), LEVEL_HINT)?.unwrap_or(DEFAULT_CREDIBLE_LEVEL);
    let revision = query_param("revision", query.revision.as_deref(), REVISION_HINT)?;
    Ok(HttpResponse::Ok().json(state.engine.report(&id, level, revision).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// Unix milliseconds or RFC 3339; default: the beginning.
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Serialize)]
struct HistoryResponse {
    experiment: String,
    points: Vec<HistoryPoint>,
}

async fn history(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> ApiResult<HttpResponse> {
    let since_ms = match &query.since {
        None => 0,
        Some(text) => {
            let ts = match text.parse::<u64>() {
                Ok(ms) => Timestamp::Millis(ms),
                Err(_) => Timestamp::Rfc3339(text.clone()),
            };
            parse_timestamp(&ts).map_err(|e| ApiError::BadRequest(format!("`since`: {e}")))?
        }
    };
    let limit = query.limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    let points = state.engine.history(&id, since_ms, limit).await?;
    Ok(HttpResponse::Ok().json(HistoryResponse {
        experiment: id.into_inner(),
        points,
    }))
}
