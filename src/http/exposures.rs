//! `POST /v1/exposures`: confirmations that assignments were rendered, for experiments with
//! `exposure: on_render`. Idempotent (an assignment counts at most once), durable before the
//! answer, and open to browsers through `navigator.sendBeacon` (a `text/plain` body) when every
//! confirmation carries its assign token.

use actix_web::{HttpRequest, HttpResponse, web};

use super::auth::EventsPost;
use super::body::read_limited;
use super::openapi::Routes;
use super::problem::{ApiError, ApiResult, Problem};
use super::state::AppState;
use crate::engine::exposure::{ConfirmationReport, MAX_CONFIRMATIONS_PER_BATCH, RawConfirmation};

/// Largest confirmations body: 1,000 confirmations with tokens fit in well under 1 MiB.
pub const MAX_EXPOSURES_BODY_BYTES: usize = 1024 * 1024;

pub fn routes(api: &mut impl Routes) {
    api.route::<__path_post_exposures, _, _>(post_exposures);
}

/// Confirms that assignments were shown; each counts as an exposure once, within the
/// experiment's `confirm_within` of its assignment. Answers once the counted ones are durable.
#[utoipa::path(
    post,
    path = "/v1/exposures",
    tag = "events",
    operation_id = "post_exposures",
    request_body(
        description = "Up to 1,000 confirmations (1 MiB): a JSON array, a single object, or \
                       NDJSON (one object per line). `text/plain` (what sendBeacon sends) is read \
                       the same way. Each names its experiment and carries the assign `token`, \
                       or the sticky `unit` (events key required then).",
        content(
            (Vec<RawConfirmation> = "application/json", example = json!([
                {"experiment": "homepage-headline", "token": "eyJ..."}
            ])),
            (Vec<RawConfirmation> = "text/plain"),
            (Vec<RawConfirmation> = "application/x-ndjson"),
        ),
    ),
    responses(
        (status = 200, description = "What happened to each confirmation",
         body = ConfirmationReport),
        (status = 400, description = "The body is not JSON or NDJSON", body = Problem,
         content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong key (when BANDITD_EVENTS_KEY is set and \
                                      a confirmation has no valid token)", body = Problem,
         content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive in time", body = Problem,
         content_type = "application/problem+json"),
        (status = 413, description = "More than 1 MiB or 1,000 confirmations", body = Problem,
         content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON, NDJSON nor text", body = Problem,
         content_type = "application/problem+json"),
        (status = 503, description = "The store does not accept writes; nothing was confirmed",
         body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
    security(("events_key" = []), ("admin_key" = [])),
)]
async fn post_exposures(
    auth: EventsPost,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let items = match read_confirmations(&req, body).await {
        Ok(items) => items,
        Err(_) if matches!(auth, EventsPost::TokensOnly) => return Err(keyless_refusal()),
        Err(e) => return Err(e),
    };
    let tokens_ok = !items.is_empty()
        && items.iter().all(|item| {
            item.as_ref()
                .is_ok_and(|item| state.engine.verify_confirmation_token(item))
        });
    if matches!(auth, EventsPost::TokensOnly) && !tokens_ok {
        return Err(keyless_refusal());
    }
    let report: ConfirmationReport = state.engine.confirm(items).await?;
    Ok(HttpResponse::Ok().json(report))
}

fn keyless_refusal() -> ApiError {
    ApiError::Unauthorized(
        "this route needs `Authorization: Bearer <key>` with the key set in \
         BANDITD_EVENTS_KEY; without it, every confirmation must carry a valid `token` from \
         assign for its experiment"
            .to_owned(),
    )
}

async fn read_confirmations(
    req: &HttpRequest,
    body: web::Payload,
) -> ApiResult<Vec<Result<RawConfirmation, String>>> {
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("?"))
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        ""
        | "application/json"
        | "text/plain"
        | "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl" => {}
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content type {other:?} is not accepted; send application/json (an array of \
                 confirmations), application/x-ndjson (one per line) or, from sendBeacon, \
                 text/plain holding either"
            )));
        }
    }
    let ndjson = !content_type.is_empty() && content_type != "application/json";
    let body = read_limited(req, body, MAX_EXPOSURES_BODY_BYTES).await?;
    let items = parse_confirmations(&body, ndjson)?;
    if items.len() > MAX_CONFIRMATIONS_PER_BATCH {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} confirmations in one request; at most {MAX_CONFIRMATIONS_PER_BATCH} are accepted",
            items.len()
        )));
    }
    Ok(items)
}

/// A JSON array, a single object, or NDJSON: told apart by the first character (`[` an array)
/// and, failing that, by whether the whole body is one JSON value. An empty body is an empty
/// NDJSON sequence when the content type allows lines (`lines`), and no array otherwise.
fn parse_confirmations(
    body: &[u8],
    lines: bool,
) -> ApiResult<Vec<Result<RawConfirmation, String>>> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first.is_none() && lines {
        return Ok(Vec::new());
    }
    let Some(first) = first else {
        return Err(ApiError::BadRequest(
            "the body is empty; send a JSON array of confirmations, e.g. \
             [{\"experiment\": \"…\", \"token\": \"…\"}]"
                .to_owned(),
        ));
    };
    if first == b'[' {
        let items: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|e| {
            ApiError::BadRequest(format!(
                "the body must be a JSON array of confirmations: {e}"
            ))
        })?;
        return Ok(items.into_iter().map(decode).collect());
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        return Ok(vec![decode(value)]);
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not UTF-8: {e}")))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str::<serde_json::Value>(line)
                .map_err(|e| format!("invalid JSON: {e}"))
                .and_then(decode)
                .map_err(|detail| format!("line {}: {detail}", n + 1))
        })
        .collect())
}

fn decode(value: serde_json::Value) -> Result<RawConfirmation, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("not a valid confirmation: {}", e.inner())
        } else {
            format!("not a valid confirmation: `{path}`: {}", e.inner())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_single_objects_and_ndjson_all_read() {
        let one = br#"{"experiment":"x","token":"t"}"#;
        assert_eq!(parse_confirmations(one, false).unwrap().len(), 1);
        let array = br#"[{"experiment":"x","token":"t"},{"experiment":"x","unit":"u"}]"#;
        assert_eq!(parse_confirmations(array, false).unwrap().len(), 2);
        let lines = b"{\"experiment\":\"x\",\"token\":\"t\"}\n\nnot json\n";
        let read = parse_confirmations(lines, true).unwrap();
        assert!(read[0].is_ok());
        assert!(read[1].as_ref().unwrap_err().starts_with("line 3:"));
        let unknown = br#"[{"experiment":"x","tokn":"t"}]"#;
        assert!(
            parse_confirmations(unknown, false).unwrap()[0]
                .as_ref()
                .unwrap_err()
                .contains("tokn")
        );
        assert!(parse_confirmations(b"[1,", false).is_err());
        // A missing JSON body is no array at all: a 400, not an empty success; as NDJSON it
        // is an empty sequence.
        assert!(parse_confirmations(b"", false).is_err());
        assert!(parse_confirmations(b" \n ", false).is_err());
        assert!(parse_confirmations(b"", true).unwrap().is_empty());
    }
}
