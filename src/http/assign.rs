//! `POST /v1/assign` and `GET /v1/experiments/{id}/assign`: which variant a unit sees.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::auth::AssignAuth;
use super::body::{parse_json, query_param, read_limited};
use super::openapi::Routes;
use super::problem::{ApiError, ApiResult, Problem};
use super::state::AppState;
use crate::engine::{Assignment, Refused, Unit};

/// Assign requests are tiny; anything bigger is a mistake or an attack.
pub const MAX_ASSIGN_BODY_BYTES: usize = 64 * 1024;

pub fn routes(api: &mut impl Routes) {
    api.route::<__path_assign_many, _, _>(assign_many)
        .route::<__path_assign_one, _, _>(assign_one);
}

/// Answers of the assign routes, errors included, carry `Cache-Control: no-store`: an
/// assignment belongs to one unit at one moment, so no browser or proxy may cache it and hand
/// it to the next call (nor an error, which the next reload may fix). An app-wide middleware
/// (`layers::RequestLayers`) keyed on the route template, since routes are mounted from the
/// annotated route list; this says which templates are the assign routes.
pub fn is_assign_route(template: Option<&str>) -> bool {
    matches!(template, Some("/v1/assign" | "/v1/experiments/{id}/assign"))
}

/// Body of `POST /v1/assign`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"unit": "user-42", "experiments": ["homepage-headline"]}))]
#[serde(deny_unknown_fields)]
struct AssignRequest {
    /// The user, session or device: 1 to 256 bytes of UTF-8, no control characters.
    #[schema(value_type = Unit)]
    unit: String,
    /// Omitted: every served (non-draft) experiment. Each id at most once.
    #[serde(default)]
    #[schema(value_type = Option<DistinctIds>)]
    experiments: Option<DistinctIds>,
    /// `false` peeks without counting an exposure (overrides the `count` query parameter).
    #[serde(default)]
    count: Option<bool>,
}

/// Experiment ids, each listed once: one request counts at most one exposure per experiment
/// (a list repeating an id a thousand times would otherwise count a thousand).
#[derive(Debug, Deserialize)]
#[serde(try_from = "Vec<String>")]
struct DistinctIds(Vec<String>);

/// An array of strings with `uniqueItems`, which utoipa's attributes cannot say.
impl utoipa::PartialSchema for DistinctIds {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(String::schema())
            .unique_items(true)
            .into()
    }
}

impl utoipa::ToSchema for DistinctIds {}

impl TryFrom<Vec<String>> for DistinctIds {
    type Error = String;

    fn try_from(ids: Vec<String>) -> Result<Self, String> {
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        if let Some(repeated) = ids.iter().find(|id| !seen.insert(id.as_str())) {
            return Err(format!(
                "experiment {repeated:?} is listed more than once; list each experiment once"
            ));
        }
        Ok(Self(ids))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[cfg_attr(test, derive(PartialEq))]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AssignQuery {
    /// The user, session or device: 1 to 256 bytes of UTF-8, no control characters.
    #[param(value_type = Unit)]
    unit: String,
    /// `false` (or `0`) peeks without counting an exposure; default `true`.
    #[serde(default)]
    #[param(value_type = Option<String>, pattern = "^(true|false|1|0)$")]
    count: Option<String>,
}

impl AssignQuery {
    /// The query of a plain call (`unit=k-1`, `unit=k-1&count=false`): only `unit` and
    /// `count`, each at most once, no `%` or `+` (so the decoded text is the raw text), and a
    /// unit. `None` for anything else, which `web::Query` then decodes and refuses as before.
    /// The plain case skips serde_urlencoded's deserializer and the extractor's error-handler
    /// lookup, ~900 instructions per assign (benches/load/results/preq5-2026-12-01-s10.md).
    fn plain(query: &str) -> Option<Self> {
        let (mut unit, mut count) = (None, None);
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            if pair.contains(['%', '+']) {
                return None;
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                "unit" => &mut unit,
                "count" => &mut count,
                _ => return None,
            };
            if slot.replace(value).is_some() {
                return None;
            }
        }
        Some(Self {
            unit: unit?.to_owned(),
            count: count.map(str::to_owned),
        })
    }
}

/// The `GET` assign route's query: [`AssignQuery::plain`] when it applies, else actix's
/// `web::Query` with the app's `QueryConfig` (its 400 problem for a bad query).
struct AssignParams(AssignQuery);

impl actix_web::FromRequest for AssignParams {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(match AssignQuery::plain(req.query_string()) {
            Some(query) => Ok(Self(query)),
            None => web::Query::<AssignQuery>::from_request(req, payload)
                .into_inner()
                .map(|query| Self(query.into_inner())),
        })
    }
}

/// One assignment as the frontend reads it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Assignment, example = json!({
    "experiment": "homepage-headline",
    "variant": "bold",
    "payload": {"headline": "Ship in a day"},
    "token": "eyJ...",
    "propensity": 0.5,
    "counted": true,
    "degraded": false,
    "sticky": true,
    "reward_until_ms": 1767225600000_i64
}))]
pub struct AssignmentDto<'a> {
    pub experiment: &'a str,
    pub variant: &'a str,
    /// The variant's `payload` from the experiment YAML, any JSON value; `null` when it has none.
    #[schema(value_type = Option<serde_json::Value>)]
    pub payload: Option<&'a serde_json::value::RawValue>,
    /// Pass back with reward events; `null` when nothing can be rewarded (peeks, paused).
    pub token: Option<&'a str>,
    /// The probability that this unit was shown this variant (for off-policy estimates).
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub propensity: f64,
    /// Whether this call counted an exposure.
    pub counted: bool,
    /// Always present: true when the store could not make the exposure durable, so the answer
    /// is the fallback (default variant, or a known unit's variant) and counts nothing.
    pub degraded: bool,
    /// Whether the unit keeps this variant on later calls (the experiment's `assignment:
    /// sticky`); a per-request experiment draws afresh on every call.
    pub sticky: bool,
    /// When the reward window of this assignment closes (Unix milliseconds): a reward event
    /// with the token is credited until then. `null` exactly when `token` is. A client may
    /// cache a sticky assignment and its token until this time (`GET /v1/sdk.js` does).
    pub reward_until_ms: Option<u64>,
    /// True for an experiment with `exposure: on_render`: the assignment is recorded but
    /// counts (and can be rewarded) only once the page posts this `token` to
    /// `POST /v1/exposures` after showing the variant; `counted` is then false. Absent
    /// (false) otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub confirm: bool,
}

impl<'a> From<&'a Assignment> for AssignmentDto<'a> {
    fn from(a: &'a Assignment) -> Self {
        Self {
            experiment: &a.experiment.epoch.experiment,
            variant: a.variant_id(),
            payload: a.payload(),
            token: a.token.as_deref(),
            propensity: a.propensity,
            counted: a.counted,
            degraded: a.degraded,
            sticky: a.sticky(),
            reward_until_ms: a.reward_until_ms(),
            confirm: a.confirm,
        }
    }
}

/// A listed experiment that got no assignment (see the README, "Assigning").
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AssignError)]
pub struct AssignErrorDto<'a> {
    pub experiment: &'a str,
    /// Stable machine-readable code: `unknown_experiment`, `experiment_not_served`, `not_in_environment`.
    pub error: &'static str,
    /// What is wrong and how to fix it, for a human.
    pub detail: String,
    /// What the page should render: the experiment's default variant and payload when the
    /// experiment exists but is not served here; `null` when it is unknown.
    #[schema(value_type = Option<FallbackDto>)]
    pub fallback: Option<FallbackDto<'a>>,
}

/// The variant a page renders for an experiment it could not be assigned in.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Fallback)]
pub struct FallbackDto<'a> {
    pub variant: &'a str,
    /// The variant's `payload` from the experiment YAML, any JSON value.
    #[schema(value_type = Option<serde_json::Value>)]
    pub payload: Option<&'a serde_json::value::RawValue>,
}

impl<'a> From<&'a Refused> for AssignErrorDto<'a> {
    fn from(r: &'a Refused) -> Self {
        Self {
            experiment: &r.experiment,
            error: r.error.code(),
            detail: r.error.to_string(),
            fallback: r.fallback.as_ref().map(|f| FallbackDto {
                variant: &f.variant,
                payload: f.payload.as_deref(),
            }),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AssignManyResponse)]
struct AssignManyResponse<'a> {
    unit: &'a str,
    assignments: Vec<AssignmentDto<'a>>,
    /// Always present (empty when every listed experiment was assigned).
    errors: Vec<AssignErrorDto<'a>>,
}

fn parse_unit(raw: &str) -> ApiResult<Unit> {
    Unit::parse(raw).map_err(|e| ApiError::BadRequest(format!("`unit`: {e}")))
}

/// Assigns a unit in several experiments at once (every served one by default).
#[utoipa::path(
    post,
    path = "/v1/assign",
    tag = "assign",
    operation_id = "assign_many",
    params(CountQuery),
    request_body(content = AssignRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One assignment per experiment", body = AssignManyResponse),
        (status = 400, description = "Malformed body, unit or query", body = Problem,
         content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong key (when BANDITD_ASSIGN_KEY is set)",
         body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive in time", body = Problem,
         content_type = "application/problem+json"),
        (status = 413, description = "The body exceeds 64 KiB", body = Problem,
         content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be read", body = Problem,
         content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
    security(("assign_key" = []), ("admin_key" = [])),
)]
async fn assign_many(
    _: AssignAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Payload,
    query: web::Query<CountQuery>,
) -> ApiResult<HttpResponse> {
    let body: AssignRequest = parse_json(&read_limited(&req, body, MAX_ASSIGN_BODY_BYTES).await?)?;
    let unit = parse_unit(&body.unit)?;
    let count = body
        .count
        .or(parse_count(query.count.as_deref())?)
        .unwrap_or(true);
    let answer = state
        .engine
        .assign_many(
            &unit,
            body.experiments.as_ref().map(|ids| &ids.0[..]),
            count,
        )
        .await?;
    Ok(HttpResponse::Ok().json(AssignManyResponse {
        unit: unit.as_str(),
        assignments: answer.assignments.iter().map(AssignmentDto::from).collect(),
        errors: answer.refused.iter().map(AssignErrorDto::from).collect(),
    }))
}

/// `?count=false` on the POST route.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct CountQuery {
    /// `false` (or `0`) peeks without counting an exposure; default `true`. The body's
    /// `count` wins when both are given.
    #[serde(default)]
    #[param(value_type = Option<String>, pattern = "^(true|false|1|0)$")]
    count: Option<String>,
}

/// `count` also takes 1 and 0, as query strings built by hand often do.
fn parse_count(raw: Option<&str>) -> ApiResult<Option<bool>> {
    let normalised = raw.map(|text| match text {
        "1" => "true",
        "0" => "false",
        other => other,
    });
    query_param("count", normalised, "use true or false")
}

/// Assigns a unit in one experiment.
#[utoipa::path(
    get,
    path = "/v1/experiments/{id}/assign",
    tag = "assign",
    operation_id = "assign_one",
    params(("id" = String, Path, description = "Experiment id", example = "homepage-headline"), AssignQuery),
    responses(
        (status = 200, description = "The assignment", body = AssignmentDto),
        (status = 400, description = "Missing or malformed unit or query", body = Problem,
         content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong key (when BANDITD_ASSIGN_KEY is set)",
         body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown or draft experiment", body = Problem,
         content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be read", body = Problem,
         content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
    security(("assign_key" = []), ("admin_key" = [])),
)]
async fn assign_one(
    _: AssignAuth,
    state: web::Data<AppState>,
    req: HttpRequest,
    AssignParams(query): AssignParams,
) -> ApiResult<HttpResponse> {
    let id = path_id(&req);
    let AssignQuery { unit, count } = query;
    // The query's own string becomes the unit (no copy of it).
    let unit = Unit::try_from(unit).map_err(|e| ApiError::BadRequest(format!("`unit`: {e}")))?;
    let assignment = state
        .engine
        .assign(&id, &unit, parse_count(count.as_deref())?.unwrap_or(true))
        .await?;
    // `HttpResponse::Ok().json(..)`'s bytes, without serde's generic path (src/http/assign_json.rs).
    Ok(AssignmentDto::from(&assignment).ok_response())
}

/// The route's `{id}` as `web::Path<String>` reads it (every `%XX` decoded, invalid UTF-8
/// replaced), borrowed from the request unless it holds an escape: `Path<String>` copies it
/// on every call of the hottest route. An id without `%` is the text itself, taken as it is:
/// decoding it would only re-check its UTF-8 (`decode_utf8_lossy`), ~400 instructions per
/// request (benches/load/results/preq5-2026-12-01-s10.md).
fn path_id(req: &HttpRequest) -> std::borrow::Cow<'_, str> {
    let raw = req.match_info().query("id");
    if raw.contains('%') {
        percent_encoding::percent_decode_str(raw).decode_utf8_lossy()
    } else {
        std::borrow::Cow::Borrowed(raw)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{App, test};

    use super::*;

    // `test` is actix's attribute in this module; this one is synchronous.
    #[::core::prelude::v1::test]
    fn a_plain_query_reads_as_serde_urlencoded_reads_it_and_any_other_is_left_to_it() {
        let plain = [
            "unit=k-1",
            "unit=k-1&count=false",
            "count=0&unit=x",
            "unit=",
            "unit",
            "&&unit=a&&",
            "unit=a=b",
            "unit=naïve☃",
        ];
        for query in plain {
            let ours = AssignQuery::plain(query);
            assert!(ours.is_some(), "{query:?} is plain");
            assert_eq!(
                ours,
                Some(serde_urlencoded::from_str::<AssignQuery>(query).unwrap()),
                "{query:?}"
            );
        }
        // Decoding (`+`, `%XX`), names other than unit and count, repeats, no unit: left to
        // serde_urlencoded, which decodes, or refuses with its own message.
        for query in [
            "unit=a+b",
            "unit=a%2Db",
            "u%6Eit=a",
            "unit=a&other=1",
            "unit=a&unit=b",
            "count=true&count=false&unit=a",
            "count=true",
            "",
            "=a&unit=b",
        ] {
            assert_eq!(AssignQuery::plain(query), None, "{query:?}");
        }
    }

    #[actix_web::test]
    async fn the_experiment_id_reads_as_the_path_extractor_reads_it() {
        async fn both(req: HttpRequest, id: web::Path<String>) -> HttpResponse {
            let borrowed = path_id(&req);
            HttpResponse::Ok().body(format!("{}|{}", id.into_inner(), borrowed))
        }
        let app = test::init_service(
            App::new().route("/v1/experiments/{id}/assign", web::get().to(both)),
        )
        .await;
        for id in [
            "plain",
            "with-dash_and.dot",
            "esc%2Daped",
            "%E2%9C%93",
            "a%20b",
            "bad%zz",
            "half%E2",
            "trail%",
            "%2F",
            "%25",
            "a+b",
        ] {
            let req = test::TestRequest::get()
                .uri(&format!("/v1/experiments/{id}/assign"))
                .to_request();
            let body = test::call_and_read_body(&app, req).await;
            let body = String::from_utf8(body.to_vec()).unwrap();
            let (extracted, borrowed) = body.split_once('|').unwrap();
            assert_eq!(borrowed, extracted, "{id}");
        }
    }
}
