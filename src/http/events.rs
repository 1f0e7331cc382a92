//! `POST /v1/events`: reward events in bulk, as a JSON array or NDJSON. The response is sent
//! only after the applied events are durable.

use actix_web::{HttpRequest, HttpResponse, web};

use super::auth::EventsAuth;
use super::body::read_limited;
use super::openapi::Routes;
use super::problem::{ApiError, ApiResult, Problem};
use super::state::AppState;
use crate::engine::{EventBatchReport, RawEvent};

/// Largest events body: 8 MiB holds well over 10,000 typical events.
pub const MAX_EVENTS_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Most events per request; larger batches should be split by the pipeline.
pub const MAX_EVENTS_PER_BATCH: usize = 10_000;

pub fn routes(api: &mut impl Routes) {
    api.route::<__path_post_events, _, _>(post_events);
}

/// Applies a batch of reward events; answers once the applied ones are durable. A bad event
/// is rejected on its own (with its index and a reason); the rest of the batch still applies.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    operation_id = "post_events",
    request_body(
        description = "Up to 10,000 events (8 MiB): a JSON array, or NDJSON with one event \
                       object per line (the schema then describes the sequence of lines; blank \
                       lines are skipped). No content type means a JSON array.",
        content(
            (Vec<RawEvent> = "application/json", example = json!([
                {"id": "evt-1", "experiment": "homepage-headline", "unit": "user-42"},
                {"id": "evt-2", "experiment": "homepage-headline", "token": "eyJ...",
                 "reward": 0.5, "timestamp": "2026-01-01T12:00:00Z"}
            ])),
            (Vec<RawEvent> = "application/x-ndjson"),
        ),
    ),
    responses(
        (status = 200, description = "What happened to each event", body = EventBatchReport),
        (status = 400, description = "The body is not a JSON array, or NDJSON that is not \
                                      UTF-8", body = Problem,
         content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong key (when BANDITD_EVENTS_KEY is set)",
         body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive in time", body = Problem,
         content_type = "application/problem+json"),
        (status = 413, description = "More than 8 MiB or 10,000 events", body = Problem,
         content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor NDJSON", body = Problem,
         content_type = "application/problem+json"),
        (status = 503, description = "The store does not accept writes; nothing was applied",
         body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
    security(("events_key" = []), ("admin_key" = [])),
)]
async fn post_events(
    _: EventsAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let ndjson = is_ndjson(&req)?;
    let body = read_limited(&req, body, MAX_EVENTS_BODY_BYTES).await?;
    let events = if ndjson {
        parse_ndjson(&body)?
    } else {
        parse_array(&body)?
    };
    if events.len() > MAX_EVENTS_PER_BATCH {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} events in one request; at most {MAX_EVENTS_PER_BATCH} are accepted",
            events.len()
        )));
    }
    let report = state.engine.ingest(events).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// JSON array (`application/json`, or no content type) or NDJSON (`application/x-ndjson`).
fn is_ndjson(req: &HttpRequest) -> ApiResult<bool> {
    let Some(content_type) = req.headers().get(actix_web::http::header::CONTENT_TYPE) else {
        return Ok(false);
    };
    let essence = content_type
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "" => Ok(false),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Ok(true),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "content type {other:?} is not accepted; send application/json (an array of events) \
             or application/x-ndjson (one event per line)"
        ))),
    }
}

/// The array must be JSON; each element is decoded on its own so one bad event is only a
/// rejection of that event. Public (with [`parse_ndjson`]) for the property tests and the
/// fuzz targets under `fuzz/`: the decoders are pure, so they are exercised without a server.
pub fn parse_array(body: &[u8]) -> ApiResult<Vec<Result<RawEvent, String>>> {
    let items: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("the body must be a JSON array of events: {e}"))
    })?;
    Ok(items.into_iter().map(decode_event).collect())
}

/// One event per line; blank lines are skipped; a malformed line rejects only that event.
/// Every rejection starts with `line N:`: blank lines are not events, so the rejection's batch
/// index alone would not tell the pipeline which line to look at.
pub fn parse_ndjson(body: &[u8]) -> ApiResult<Vec<Result<RawEvent, String>>> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::BadRequest(format!("the NDJSON body is not UTF-8: {e}")))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str::<serde_json::Value>(line)
                .map_err(|e| format!("invalid JSON: {e}"))
                .and_then(decode_event)
                .map_err(|detail| format!("line {}: {detail}", n + 1))
        })
        .collect())
}

fn decode_event(value: serde_json::Value) -> Result<RawEvent, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("not a valid event: {}", e.inner())
        } else {
            format!("not a valid event: `{path}`: {}", e.inner())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ndjson_line_rejects_only_itself() {
        let body = b"{\"id\":\"a\",\"experiment\":\"x\",\"unit\":\"u\"}\n\nnot json\n{\"id\":\"b\",\"experiment\":\"x\",\"token\":\"t\",\"reward\":0.5}\n";
        let events = parse_ndjson(body).unwrap();
        assert_eq!(events.len(), 3);
        assert!(events[0].is_ok());
        assert!(events[1].as_ref().unwrap_err().starts_with("line 3:"));
        assert_eq!(events[2].as_ref().unwrap().reward, Some(0.5));
    }

    #[test]
    fn an_array_element_with_an_unknown_field_rejects_only_itself() {
        let body = br#"[{"id":"a","experiment":"x","unit":"u"},{"id":"b","experiment":"x","unit":"u","color":"red"}]"#;
        let events = parse_array(body).unwrap();
        assert!(events[0].is_ok());
        assert!(events[1].as_ref().unwrap_err().contains("color"));
    }

    #[test]
    fn a_body_that_is_not_an_array_is_a_bad_request() {
        assert!(matches!(
            parse_array(b"{\"id\":1}"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(parse_array(b"[{"), Err(ApiError::BadRequest(_))));
    }
}
