//! `POST /v1/assign` and `GET /v1/experiments/{id}/assign`: which variant a unit sees.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::auth::AssignAuth;
use super::body::{parse_json, query_param, read_limited};
use super::problem::{ApiError, ApiResult, wrong_method};
use super::state::AppState;
use crate::engine::{Assignment, Refused, Unit};

/// Assign requests are tiny; anything bigger is a mistake or an attack.
pub const MAX_ASSIGN_BODY_BYTES: usize = 64 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/assign")
            .wrap(no_store())
            .route(web::post().to(assign_many))
            .default_service(web::to(wrong_method)),
    )
    .service(
        web::resource("/v1/experiments/{id}/assign")
            .wrap(no_store())
            .route(web::get().to(assign_one))
            .default_service(web::to(wrong_method)),
    );
}

/// An assignment belongs to one unit at one moment: no browser or proxy may cache it and
/// hand it to the next call (an error neither: it may be fixed by the next reload).
fn no_store() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new().add((
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    ))
}

/// Body of `POST /v1/assign`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignRequest {
    unit: String,
    /// Omitted: every served (non-draft) experiment.
    #[serde(default)]
    experiments: Option<DistinctIds>,
    /// `false` peeks without counting an exposure.
    #[serde(default)]
    count: Option<bool>,
}

/// Experiment ids, each listed once: one request counts at most one exposure per experiment
/// (a list repeating an id a thousand times would otherwise count a thousand).
#[derive(Debug, Deserialize)]
#[serde(try_from = "Vec<String>")]
struct DistinctIds(Vec<String>);

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignQuery {
    unit: String,
    #[serde(default)]
    count: Option<String>,
}

/// One assignment as the frontend reads it.
#[derive(Debug, Serialize)]
pub struct AssignmentDto<'a> {
    pub experiment: &'a str,
    pub variant: &'a str,
    pub payload: Option<&'a serde_json::value::RawValue>,
    /// Pass back with reward events; `null` when nothing can be rewarded (peeks, paused).
    pub token: Option<&'a str>,
    pub propensity: f64,
    /// Whether this call counted an exposure.
    pub counted: bool,
    /// Always present: true when the store could not make the exposure durable, so the answer
    /// is the fallback (default variant, or a known unit's variant) and counts nothing.
    pub degraded: bool,
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
        }
    }
}

/// A listed experiment that got no assignment (see the README, "Assigning").
#[derive(Debug, Serialize)]
pub struct AssignErrorDto<'a> {
    pub experiment: &'a str,
    /// Stable machine-readable code: `unknown_experiment`, `experiment_not_served`, `not_in_environment`.
    pub error: &'static str,
    /// What is wrong and how to fix it, for a human.
    pub detail: String,
    /// What the page should render: the experiment's default variant and payload when the
    /// experiment exists but is not served here; `null` when it is unknown.
    pub fallback: Option<FallbackDto<'a>>,
}

#[derive(Debug, Serialize)]
pub struct FallbackDto<'a> {
    pub variant: &'a str,
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

#[derive(Debug, Serialize)]
struct AssignManyResponse<'a> {
    unit: &'a str,
    assignments: Vec<AssignmentDto<'a>>,
    /// Always present (empty when every listed experiment was assigned).
    errors: Vec<AssignErrorDto<'a>>,
}

fn parse_unit(raw: &str) -> ApiResult<Unit> {
    Unit::parse(raw).map_err(|e| ApiError::BadRequest(format!("`unit`: {e}")))
}

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
#[derive(Debug, Deserialize)]
struct CountQuery {
    #[serde(default)]
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

async fn assign_one(
    _: AssignAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<AssignQuery>,
) -> ApiResult<HttpResponse> {
    let unit = parse_unit(&query.unit)?;
    let assignment = state
        .engine
        .assign(
            &id,
            &unit,
            parse_count(query.count.as_deref())?.unwrap_or(true),
        )
        .await?;
    Ok(HttpResponse::Ok().json(AssignmentDto::from(&assignment)))
}
