//! `GET /v1/experiments/{id}/export?what=assignments|events|stats&format=csv|ndjson
//! [&revision=N][&level=0.95]`: an epoch's data for notebooks, streamed page by page so that a
//! ten-million-unit export never sits in memory. Guarded by the events key (the admin key opens
//! it too): assignments name units, which is pipeline data, not public stats.

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::auth::EventsAuth;
use super::body::{LEVEL_HINT, REVISION_HINT, query_param};
use super::openapi::Routes;
use super::problem::{ApiError, ApiResult, Problem};
use super::state::AppState;
use crate::engine::EngineError;
use crate::engine::export::{Export, ExportFormat, ExportKind};

pub fn routes(api: &mut impl Routes) {
    api.route::<__path_export, _, _>(export);
}

/// The query as sent; every field is text so that a bad value gets an error naming it.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    /// What to export: one row per assignment, per event, or per arm.
    #[serde(default)]
    #[param(required = true, value_type = String, pattern = "^(assignments|events|stats)$")]
    what: Option<String>,
    /// `csv` (default) or `ndjson`.
    #[serde(default)]
    #[param(value_type = Option<String>, pattern = "^(csv|ndjson)$")]
    format: Option<String>,
    /// An earlier revision; default: the loaded one.
    #[serde(default)]
    #[param(value_type = Option<u32>)]
    revision: Option<String>,
    /// Credible level of the `stats` intervals; default 0.95.
    #[serde(default)]
    #[param(value_type = Option<f64>, exclusive_minimum = 0.0, exclusive_maximum = 1.0)]
    level: Option<String>,
}

/// The query, checked.
#[derive(Debug, PartialEq)]
struct ExportParams {
    kind: ExportKind,
    format: ExportFormat,
    revision: Option<u32>,
    level: Option<f64>,
}

impl ExportQuery {
    fn check(&self) -> Result<ExportParams, ApiError> {
        let kind = match self.what.as_deref() {
            None => {
                return Err(ApiError::BadRequest(
                    "query parameter `what` is missing; use `assignments`, `events` or `stats`"
                        .into(),
                ));
            }
            Some(text) => ExportKind::parse(text).map_err(ApiError::BadRequest)?,
        };
        let format = match self.format.as_deref() {
            None => ExportFormat::Csv,
            Some(text) => ExportFormat::parse(text).map_err(ApiError::BadRequest)?,
        };
        let revision = query_param("revision", self.revision.as_deref(), REVISION_HINT)?;
        let level = query_param("level", self.level.as_deref(), LEVEL_HINT)?;
        // Checked whatever is exported: a level only the `stats` export reads is still a
        // mistake in the others (found by schemathesis: `level=0.0` exported assignments).
        if let Some(level) = level
            && !(level > 0.0 && level < 1.0)
        {
            return Err(ApiError::BadRequest(format!(
                "query parameter `level` is {level}; {LEVEL_HINT}"
            )));
        }
        Ok(ExportParams {
            kind,
            format,
            revision,
            level,
        })
    }
}

/// An epoch's data as a file, streamed (events key: assignments name units).
#[utoipa::path(
    get,
    path = "/v1/experiments/{id}/export",
    tag = "experiments",
    operation_id = "export_experiment",
    params(("id" = String, Path, description = "Experiment id", example = "homepage-headline"), ExportQuery),
    responses(
        (status = 200, description = "The file, streamed; a store failure mid-stream ends the \
                                      transfer without its last chunk, never with a short \
                                      file that looks complete",
         content(
             (String = "text/csv", example = "experiment,revision,variant,unit,assigned_ms\n"),
             (String = "application/x-ndjson"),
         ),
         headers(("Content-Disposition" = String, description = "`attachment` with a file name"))),
        (status = 400, description = "A missing or malformed query parameter", body = Problem,
         content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong key (when BANDITD_EVENTS_KEY is set)",
         body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown experiment or revision", body = Problem,
         content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be read", body = Problem,
         content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
    security(("events_key" = []), ("admin_key" = [])),
)]
async fn export(
    _: EventsAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let query = web::Query::<ExportQuery>::from_query(req.query_string())
        .map_err(|error| ApiError::BadRequest(format!("invalid query string: {error}")))?;
    let params = query.check()?;
    let export = state
        .engine
        .export(
            &id,
            params.kind,
            params.format,
            params.revision,
            params.level,
        )
        .await?;
    let disposition = format!("attachment; filename=\"{}\"", export.file_name());
    Ok(HttpResponse::Ok()
        .content_type(params.format.content_type())
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .streaming(chunks(export)))
}

/// The export as a body stream. A store failure after the first chunk can no longer become
/// a problem response (the status is sent), so it ends the stream with an error: actix then
/// aborts the chunked body without its terminating chunk, and the client sees a truncated
/// transfer instead of a short file that looks complete.
fn chunks(
    export: Export,
) -> impl futures_util::Stream<Item = Result<Bytes, EngineError>> + 'static {
    futures_util::stream::unfold(Some(export), |state| async move {
        let mut export = state?;
        match export.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(Bytes::from(chunk)), Some(export))),
            Ok(None) => None,
            Err(error) => {
                tracing::error!(%error, file = %export.file_name(), "export aborted");
                Some((Err(error), None))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(what: Option<&str>, format: Option<&str>, revision: Option<&str>) -> ExportQuery {
        ExportQuery {
            what: what.map(str::to_owned),
            format: format.map(str::to_owned),
            revision: revision.map(str::to_owned),
            level: None,
        }
    }

    fn detail(result: Result<ExportParams, ApiError>) -> String {
        match result {
            Err(ApiError::BadRequest(detail)) => detail,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn format_defaults_to_csv_and_revision_to_the_loaded_one() {
        let params = query(Some("stats"), None, None).check().unwrap();
        assert_eq!(
            params,
            ExportParams {
                kind: ExportKind::Stats,
                format: ExportFormat::Csv,
                revision: None,
                level: None,
            }
        );
        let params = query(Some("events"), Some("ndjson"), Some("3"))
            .check()
            .unwrap();
        assert_eq!(
            (params.kind, params.format, params.revision),
            (ExportKind::Events, ExportFormat::Ndjson, Some(3))
        );
    }

    #[test]
    fn a_missing_or_unknown_what_is_a_bad_request_naming_the_choices() {
        assert!(detail(query(None, None, None).check()).contains("`what` is missing"));
        assert!(detail(query(Some("units"), None, None).check()).contains("`assignments`"));
    }

    #[test]
    fn a_bad_format_revision_or_level_is_a_bad_request_naming_the_parameter() {
        assert!(detail(query(Some("stats"), Some("xml"), None).check()).contains("`format`"));
        for revision in ["abc", "-1", "1.5", ""] {
            let text = detail(query(Some("stats"), None, Some(revision)).check());
            assert!(text.contains("`revision`"), "{text}");
        }
        let mut bad_level = query(Some("stats"), None, None);
        bad_level.level = Some("high".into());
        assert!(detail(bad_level.check()).contains("`level`"));
    }

    #[test]
    fn a_level_outside_0_1_is_a_bad_request_whatever_is_exported() {
        for what in ["assignments", "events", "stats"] {
            for level in ["0", "0.0", "1", "-0.5", "NaN", "inf"] {
                let mut q = query(Some(what), None, None);
                q.level = Some(level.into());
                let text = detail(q.check());
                assert!(text.contains("`level`"), "{what} {level}: {text}");
            }
            let mut q = query(Some(what), None, None);
            q.level = Some("0.9".into());
            assert_eq!(q.check().unwrap().level, Some(0.9));
        }
    }
}
