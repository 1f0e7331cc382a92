//! `GET /v1/experiments`, `GET /v1/experiments/{id}` and its history: what analysts and
//! dashboards read.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::body::{LEVEL_HINT, REVISION_HINT, query_param};
use super::openapi::Routes;
use super::problem::{ApiError, ApiResult, Problem};
use super::state::AppState;
use crate::engine::{
    DEFAULT_CREDIBLE_LEVEL, ExperimentReport, ExperimentSummary, HistoryEntry, HistoryRequest,
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
    /// Points at or after this time: Unix milliseconds, RFC 3339, or a plain date
    /// (`2026-11-01`, meaning 00:00 UTC); default: the beginning.
    #[serde(default)]
    #[param(value_type = Option<Since>, inline, example = "2026-11-01")]
    since: Option<String>,
    /// Most points returned; default 1,440. Any `int64` from 0: the server returns at most
    /// 10,000 whatever is asked. Text, so that a bad value gets an error naming it.
    #[serde(default)]
    #[param(value_type = Option<u64>)]
    limit: Option<String>,
    /// `asc` (default): the oldest points first; `desc`: the newest first, so `limit` keeps
    /// the newest.
    #[serde(default)]
    #[param(value_type = Option<String>, pattern = "^(asc|desc)$")]
    order: Option<String>,
    /// The newest N points (for plotting the recent past), listed oldest first unless
    /// `order=desc`; `limit`, if also given, caps them.
    #[serde(default)]
    #[param(value_type = Option<u64>)]
    latest: Option<String>,
    /// One revision's points; default: the loaded revision and the earlier ones (up to 50
    /// revisions back), each point naming its revision.
    #[serde(default)]
    #[param(value_type = Option<u32>)]
    revision: Option<String>,
}

/// What `since` accepts, for the OpenAPI document: Unix milliseconds, an RFC 3339
/// `date-time`, or a `date`.
struct Since;

impl utoipa::PartialSchema for Since {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        let string = |format, description| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(format)))
                .description(Some(description))
        };
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(0))
                    .description(Some("Unix milliseconds")),
            )
            .item(string(
                KnownFormat::DateTime,
                "RFC 3339, e.g. 2026-11-26T10:00:00Z",
            ))
            .item(string(
                KnownFormat::Date,
                "a date, meaning 00:00 UTC, e.g. 2026-11-01",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Since {}

impl HistoryQuery {
    /// The engine's request, and whether its answer is to be reversed (`latest`).
    fn check(&self) -> ApiResult<(HistoryRequest, bool)> {
        let since_ms = match &self.since {
            None => 0,
            Some(text) => parse_since(text)?,
        };
        let revision = query_param("revision", self.revision.as_deref(), REVISION_HINT)?;
        let newest_first = match self.order.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(ApiError::BadRequest(format!(
                    "query parameter `order` is {other:?}; use `asc` (oldest first) or `desc` \
                     (newest first)"
                )));
            }
        };
        // `latest` picks the newest N points; `order` then only says how they are listed
        // (oldest first by default), and `limit`, if also given, caps them.
        if let Some(text) = &self.latest {
            let latest = parse_count("latest", text)?;
            let cap = match &self.limit {
                None => latest,
                Some(text) => parse_count("limit", text)?.min(latest),
            };
            let request = HistoryRequest {
                revision,
                since_ms,
                limit: cap,
                newest_first: true,
            };
            return Ok((request, !newest_first));
        }
        let limit = match &self.limit {
            None => DEFAULT_HISTORY_LIMIT,
            Some(text) => parse_count("limit", text)?,
        };
        let request = HistoryRequest {
            revision,
            since_ms,
            limit,
            newest_first,
        };
        Ok((request, false))
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct HistoryResponse {
    experiment: String,
    points: Vec<HistoryEntry>,
}

/// Snapshots of the experiment, one per history interval: of every revision (each point names
/// its own), oldest first, unless the query says otherwise.
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
        (status = 404, description = "Unknown experiment or revision", body = Problem,
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
    let (request, reverse) = query.check()?;
    let mut points = state.engine.history(&id, request).await?;
    if reverse {
        points.reverse();
    }
    Ok(HttpResponse::Ok().json(HistoryResponse {
        experiment: id.into_inner(),
        points,
    }))
}

/// `since` as Unix milliseconds: a number up to `i64::MAX` (the document's `int64`), an
/// RFC 3339 `date-time`, or a plain `date` (00:00 UTC that day). It is a lower bound, so a
/// time before 1970 means the beginning (found by schemathesis: `0022-06-13T08:36:56Z` is a
/// valid `date-time` and was a 400).
fn parse_since(text: &str) -> ApiResult<u64> {
    let millis = |at: time::OffsetDateTime| {
        u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
    };
    match text.parse::<u64>() {
        Ok(ms) if i64::try_from(ms).is_err() => Err(ApiError::BadRequest(format!(
            "`since` is {ms}; Unix milliseconds go up to {}",
            i64::MAX
        ))),
        Ok(ms) => Ok(ms),
        Err(_) => {
            let rfc3339 = &time::format_description::well_known::Rfc3339;
            if let Ok(at) = time::OffsetDateTime::parse(text, rfc3339) {
                return Ok(millis(at));
            }
            plain_date(text)
                .map(|day| millis(day.midnight().assume_utc()))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "`since` is {text:?}: neither Unix milliseconds, an RFC 3339 time \
                         (e.g. 2026-11-26T10:00:00Z) nor a date (e.g. 2026-11-01, meaning \
                         00:00 UTC)"
                    ))
                })
        }
    }
}

/// A calendar date written `YYYY-MM-DD` (RFC 3339's `full-date`), if `text` is one.
fn plain_date(text: &str) -> Option<time::Date> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u16> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let month = time::Month::try_from(u8::try_from(number(5..7)?).ok()?).ok()?;
    let day = u8::try_from(number(8..10)?).ok()?;
    time::Date::from_calendar_date(i32::from(number(0..4)?), month, day).ok()
}

/// `limit` or `latest` as a count: 0 to `i64::MAX`, the document's `int64` (the engine caps
/// it). Found by schemathesis: the document said so while the query decoder took any `usize`
/// (2^63 was a 200) and refused larger numbers without naming the parameter.
fn parse_count(name: &str, text: &str) -> ApiResult<usize> {
    text.parse::<i64>()
        .ok()
        .and_then(|limit| usize::try_from(limit).ok())
        .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "query parameter `{name}` is {text:?}; use an integer from 0 to {}, e.g. 100",
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
    fn since_takes_a_plain_date_as_midnight_utc() {
        assert_eq!(parse_since("2026-11-01").unwrap(), 1_793_491_200_000);
        assert_eq!(parse_since("1970-01-01").unwrap(), 0);
        for bad in ["2026-13-01", "2026-11-31", "2026-1-1", "26-11-01"] {
            assert!(detail(parse_since(bad)).contains("`since`"), "{bad}");
        }
    }

    #[test]
    fn limit_is_an_int64_count_and_nothing_else() {
        assert_eq!(parse_count("limit", "0").unwrap(), 0);
        assert_eq!(parse_count("limit", "1440").unwrap(), 1440);
        assert_eq!(
            parse_count("limit", "9223372036854775807").unwrap(),
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
            match parse_count("limit", bad) {
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
