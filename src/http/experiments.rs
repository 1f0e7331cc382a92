//! `GET /v1/experiments`, `GET /v1/experiments/{id}` and its history: what analysts and
//! dashboards read.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::body::{LEVEL_HINT, REVISION_HINT, query_param};
use super::openapi::Routes;
use super::problem::{ApiError, ApiResult, Problem};
use super::state::AppState;
use crate::engine::{
    DEFAULT_CREDIBLE_LEVEL, ExperimentReport, ExperimentSummary, HistoryPoint, Timestamp,
};

/// History points returned when the request does not say.
pub const DEFAULT_HISTORY_LIMIT: usize = 1_440;

pub fn routes(api: &mut impl Routes) {
    api.route::<__path_list, _, _>(list)
        .route::<__path_show, _, _>(show)
        .route::<__path_history, _, _>(history);
}

#[derive(Serialize, utoipa::ToSchema)]
struct ExperimentList {
    experiments: Vec<ExperimentSummary>,
}

/// Every loaded experiment, drafts included, in file order.
#[utoipa::path(
    get,
    path = "/v1/experiments",
    tag = "experiments",
    operation_id = "list_experiments",
    responses(
        (status = 200, description = "A summary per experiment", body = ExperimentList),
        (status = 503, description = "The store cannot be read", body = Problem,
         content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn list(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let experiments = state.engine.summaries().await?;
    Ok(HttpResponse::Ok().json(ExperimentList { experiments }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    /// Credible level of the intervals, e.g. 0.9; default 0.95. Text, so that a bad value
    /// gets an error that names the parameter.
    #[serde(default)]
    #[param(value_type = Option<f64>, exclusive_minimum = 0.0, exclusive_maximum = 1.0)]
    level: Option<String>,
    /// An earlier revision, whose data stays readable after a revision bump; default: the
    /// loaded one.
    #[serde(default)]
    #[param(value_type = Option<u32>)]
    revision: Option<String>,
}

/// The full report: per-arm statistics, the stopping decision and the sample-ratio check.
#[utoipa::path(
    get,
    path = "/v1/experiments/{id}",
    tag = "experiments",
    operation_id = "show_experiment",
    params(("id" = String, Path, description = "Experiment id", example = "homepage-headline"), ShowQuery),
    responses(
        (status = 200, description = "The report", body = ExperimentReport),
        (status = 400, description = "A malformed query parameter", body = Problem,
         content_type = "application/problem+json"),
        (status = 404, description = "Unknown experiment or revision", body = Problem,
         content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be read", body = Problem,
         content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// Unix milliseconds or RFC 3339; default: the beginning.
    #[serde(default)]
    #[param(value_type = Option<Timestamp>, inline, example = "2026-01-01T00:00:00Z")]
    since: Option<String>,
    /// Most points returned; default 1,440. Any `int64` from 0: the server returns at most
    /// 10,000 whatever is asked. Text, so that a bad value gets an error naming it.
    #[serde(default)]
    #[param(value_type = Option<u64>)]
    limit: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct HistoryResponse {
    experiment: String,
    points: Vec<HistoryPoint>,
}

/// Snapshots of the current revision, one per history interval, oldest first.
#[utoipa::path(
    get,
    path = "/v1/experiments/{id}/history",
    tag = "experiments",
    operation_id = "experiment_history",
    params(("id" = String, Path, description = "Experiment id", example = "homepage-headline"), HistoryQuery),
    responses(
        (status = 200, description = "The history points", body = HistoryResponse),
        (status = 400, description = "A malformed query parameter", body = Problem,
         content_type = "application/problem+json"),
        (status = 404, description = "Unknown experiment", body = Problem,
         content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be read", body = Problem,
         content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn history(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> ApiResult<HttpResponse> {
    let since_ms = match &query.since {
        None => 0,
        Some(text) => parse_since(text)?,
    };
    let limit = match &query.limit {
        None => DEFAULT_HISTORY_LIMIT,
        Some(text) => parse_limit(text)?,
    };
    let points = state.engine.history(&id, since_ms, limit).await?;
    Ok(HttpResponse::Ok().json(HistoryResponse {
        experiment: id.into_inner(),
        points,
    }))
}

/// `since` as Unix milliseconds: a number up to `i64::MAX` (the document's `int64`), or an
/// RFC 3339 `date-time`. It is a lower bound, so a time before 1970 means the beginning
/// (found by schemathesis: `0022-06-13T08:36:56Z` is a valid `date-time` and was a 400).
fn parse_since(text: &str) -> ApiResult<u64> {
    match text.parse::<u64>() {
        Ok(ms) if i64::try_from(ms).is_err() => Err(ApiError::BadRequest(format!(
            "`since` is {ms}; Unix milliseconds go up to {}",
            i64::MAX
        ))),
        Ok(ms) => Ok(ms),
        Err(_) => {
            let at =
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| {
                    ApiError::BadRequest(format!(
                        "`since` is {text:?}: neither Unix milliseconds nor RFC 3339 (e.g. \
                         2026-11-26T10:00:00Z): {e}"
                    ))
                })?;
            Ok(u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
        }
    }
}

/// `limit` as a count: 0 to `i64::MAX`, the document's `int64` (the engine caps it). Found by
/// schemathesis: the document said so while the query decoder took any `usize` (2^63 was a
/// 200) and refused larger numbers without naming the parameter.
fn parse_limit(text: &str) -> ApiResult<usize> {
    text.parse::<i64>()
        .ok()
        .and_then(|limit| usize::try_from(limit).ok())
        .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "query parameter `limit` is {text:?}; use an integer from 0 to {}, e.g. 100",
                i64::MAX
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(result: ApiResult<u64>) -> String {
        match result {
            Err(ApiError::BadRequest(detail)) => detail,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn since_takes_unix_millis_up_to_int64_and_rfc3339() {
        assert_eq!(parse_since("0").unwrap(), 0);
        assert_eq!(parse_since("9223372036854775807").unwrap(), i64::MAX as u64);
        assert_eq!(
            parse_since("2026-11-26T12:00:00.250+02:00").unwrap(),
            1_795_687_200_250
        );
        assert!(detail(parse_since("9223372036854775808")).contains("`since`"));
        assert!(detail(parse_since("yesterday")).contains("`since`"));
    }

    #[test]
    fn limit_is_an_int64_count_and_nothing_else() {
        assert_eq!(parse_limit("0").unwrap(), 0);
        assert_eq!(parse_limit("1440").unwrap(), 1440);
        assert_eq!(
            parse_limit("9223372036854775807").unwrap(),
            i64::MAX as usize
        );
        for bad in [
            "",
            "-1",
            "1.5",
            "+3",
            "ten",
            "9223372036854775808",
            "1507016669118609227776",
        ] {
            match parse_limit(bad) {
                Err(ApiError::BadRequest(detail)) => assert!(detail.contains("`limit`")),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_since_before_1970_is_the_beginning() {
        assert_eq!(parse_since("0022-06-13T08:36:56Z").unwrap(), 0);
        assert_eq!(parse_since("1969-12-31T23:59:59.999Z").unwrap(), 0);
    }
}
