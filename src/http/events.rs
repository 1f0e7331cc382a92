//! `POST /v1/events`: reward events in bulk, as a JSON array or NDJSON. The response is sent
//! only after the applied events are durable.

use actix_web::{HttpRequest, HttpResponse, web};

use super::auth::{EventsPost, tokens_only_refusal};
use super::body::read_limited;
use super::events_direct::decode_array_directly;
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
    auth: EventsPost,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    // Without the key, a body that cannot be read is no proof either: 401 as before.
    let refused = |e: ApiError| match auth {
        EventsPost::TokensOnly => tokens_only_refusal(),
        EventsPost::Keyed => e,
    };
    // The events borrow their text from the body, which lives until the answer is built.
    let (ndjson, body) = read_body(&req, body).await.map_err(refused)?;
    let (events, lines) = decode_events(ndjson, &body).map_err(refused)?;
    auth.admit(|| {
        !events.is_empty()
            && events.iter().all(|event| {
                event
                    .as_ref()
                    .is_ok_and(|event| state.engine.verify_event_token(event))
            })
    })?;
    let mut report = state.engine.ingest(events).await?;
    for rejection in &mut report.rejections {
        rejection.line = lines.get(rejection.index).copied();
    }
    // `HttpResponse::Ok().json(report)`'s bytes, without serde's generic path (`events_json`).
    Ok(super::events_json::ok_response(&report))
}

/// The decoded events (their text borrowed from the body), and for NDJSON each one's line.
pub type ReadEvents<'a> = (Vec<Result<RawEvent<'a>, String>>, Vec<usize>);

/// The body, and whether it is NDJSON (else a JSON array).
async fn read_body(req: &HttpRequest, body: web::Payload) -> ApiResult<(bool, web::BytesMut)> {
    let format = body_format(req)?;
    let body = read_limited(req, body, MAX_EVENTS_BODY_BYTES).await?;
    let ndjson = match format {
        BodyFormat::Array => false,
        BodyFormat::Ndjson => true,
        BodyFormat::Sniff => body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_none_or(|&b| b != b'['),
    };
    Ok((ndjson, body))
}

/// The events of a body [`read_body`] read.
fn decode_events(ndjson: bool, body: &[u8]) -> ApiResult<ReadEvents<'_>> {
    let (events, lines) = if ndjson {
        parse_ndjson_lines(body)?
    } else {
        (parse_array(body)?, Vec::new())
    };
    if events.len() > MAX_EVENTS_PER_BATCH {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} events in one request; at most {MAX_EVENTS_PER_BATCH} are accepted",
            events.len()
        )));
    }
    Ok((events, lines))
}

/// How the body's events are laid out, from its content type.
#[derive(Debug, PartialEq, Eq)]
enum BodyFormat {
    /// `application/json`, or no content type: a JSON array.
    Array,
    /// `application/x-ndjson` (or `application/ndjson`, `application/jsonl`).
    Ndjson,
    /// `text/plain`: what `navigator.sendBeacon` sends for a string, the one body type a
    /// browser posts across origins without a preflight. A body starting with `[` is a JSON
    /// array, anything else NDJSON (a single event object is one NDJSON line).
    Sniff,
}

fn body_format(req: &HttpRequest) -> ApiResult<BodyFormat> {
    let Some(content_type) = req.headers().get(actix_web::http::header::CONTENT_TYPE) else {
        return Ok(BodyFormat::Array);
    };
    let essence = content_type
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    // Compared without case and without a lowercased copy (one allocation less per POST,
    // 0.9% of the worker's CPU for one event per POST); the copy is made for a refusal only.
    let is = |name: &str| essence.eq_ignore_ascii_case(name);
    if essence.is_empty() || is("application/json") {
        Ok(BodyFormat::Array)
    } else if is("application/x-ndjson") || is("application/ndjson") || is("application/jsonl") {
        Ok(BodyFormat::Ndjson)
    } else if is("text/plain") {
        Ok(BodyFormat::Sniff)
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "content type {:?} is not accepted; send application/json (an array of events), \
             application/x-ndjson (one event per line) or, from a browser's sendBeacon, \
             text/plain holding either",
            essence.to_ascii_lowercase()
        )))
    }
}

/// The array must be JSON; each element is decoded on its own so one bad event is only a
/// rejection of that event. Public (with [`parse_ndjson`]) for the property tests and the
/// fuzz targets under `fuzz/`: the decoders are pure, so they are exercised without a server.
pub fn parse_array(body: &[u8]) -> ApiResult<Vec<Result<RawEvent<'_>, String>>> {
    // Plain elements without serde (`events_line`), else serde in one pass, else element by
    // element.
    if let Some(events) = std::str::from_utf8(body)
        .ok()
        .and_then(super::events_line::plain_array)
    {
        return Ok(events);
    }
    match decode_array_directly(body) {
        Some(events) => Ok(events),
        None => parse_array_by_element(body),
    }
}

/// [`parse_array`] for a body [`decode_array_directly`] did not decode.
fn parse_array_by_element(body: &[u8]) -> ApiResult<Vec<Result<RawEvent<'_>, String>>> {
    // The elements as borrowed raw text, each decoded straight into an event. Any
    // failure takes the path through `Value` below, whose outcome and wording are the API's.
    if let Ok(items) = serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(body)
        && let Some(events) = items
            .into_iter()
            .map(|item| decode_event_text(item.get()))
            .collect::<Option<Vec<_>>>()
    {
        return Ok(events);
    }
    let items: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|e| {
        let starts_with_object = body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'{');
        let hint = if starts_with_object {
            "; a body of one event object per line is NDJSON: send it with `Content-Type: \
             application/x-ndjson` (a single event also goes in an array: `[{…}]`)"
        } else {
            ""
        };
        ApiError::BadRequest(format!(
            "the body must be a JSON array of events: {}{hint}",
            plain_words(&e.to_string())
        ))
    })?;
    Ok(items.into_iter().map(decode_event).collect())
}

/// One event per line; blank lines are skipped; a malformed line rejects only that event.
/// Every rejection starts with `line N:`: blank lines are not events, so the rejection's batch
/// index alone would not tell the pipeline which line to look at.
pub fn parse_ndjson(body: &[u8]) -> ApiResult<Vec<Result<RawEvent<'_>, String>>> {
    Ok(parse_ndjson_lines(body)?.0)
}

/// [`parse_ndjson`] with the 1-based line of each event. Lines end with `\n` or `\r\n`; lines
/// of only whitespace are skipped (and still counted, so line numbers match an editor's).
/// Both vectors are sized once from the body's count of line ends (at most one past
/// [`MAX_EVENTS_PER_BATCH`]; counted with `memchr`, a byte-by-byte count cost as much as it
/// saved): grown by doubling instead,
/// the events' vector (~180 bytes an event) was copied ~10 times for a 1,000-event body, ~250
/// instructions an event (`benches/load/bulk_cost.sh`).
pub fn parse_ndjson_lines(body: &[u8]) -> ApiResult<ReadEvents<'_>> {
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::BadRequest(format!("the NDJSON body is not UTF-8: {e}")))?;
    // At most one past the limit (`read_events` refuses more): a body of blank lines must not
    // reserve room for millions of events.
    let most = (memchr::memchr_iter(b'\n', body).count() + 1).min(MAX_EVENTS_PER_BATCH + 1);
    let mut events = Vec::with_capacity(most);
    let mut lines = Vec::with_capacity(most);
    // The lines as `str::lines` splits them (at `\n`, less a `\r` before it), found with
    // `memchr`: `lines()` searched ~400 instructions an event (`benches/load/bulk_cost.sh`).
    let ends = memchr::memchr_iter(b'\n', body).map(Some).chain([None]);
    let mut start = 0;
    for (n, end) in ends.enumerate() {
        let line = match end {
            Some(end) => {
                let line = &text[start..end];
                start = end + 1;
                line.strip_suffix('\r').unwrap_or(line)
            }
            None => &text[start..],
        };
        if line.trim().is_empty() {
            continue;
        }
        // The plain shape of a pipeline's line without serde (`events_line`), else serde.
        let event = match super::events_line::plain_event(line) {
            Some(event) => Ok(event),
            None => serde_json::from_str::<RawEvent>(line).or_else(|_| {
                serde_json::from_str::<serde_json::Value>(line)
                    .map_err(|e| format!("invalid JSON: {}", plain_words(&e.to_string())))
                    .and_then(decode_event)
                    .map_err(|detail| format!("line {}: {detail}", n + 1))
            }),
        };
        events.push(event);
        lines.push(n + 1);
    }
    Ok((events, lines))
}

/// One array element's JSON text as an event: decoded directly (no `Value` tree, the one
/// allocation per field being the event's own strings), and only when that fails through
/// [`decode_event`], which words the rejection. Both accept the same texts and build the same
/// event: serde's derived decoder is the same either way, and a `Value` holds each number and
/// string exactly as the text does (a duplicate field, which a `Value` resolves to its last
/// occurrence, fails the direct decoding and so takes the `Value` path). `None` when the text
/// is no `Value` at all (a number out of range, which a raw element does not check): then the
/// whole body is refused, as the `Value` path refuses it.
fn decode_event_text(text: &str) -> Option<Result<RawEvent<'_>, String>> {
    match serde_json::from_str::<RawEvent>(text) {
        Ok(event) => Some(Ok(event)),
        Err(_) => serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .map(decode_event),
    }
}

fn decode_event(value: serde_json::Value) -> Result<RawEvent<'static>, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = plain_words(&e.inner().to_string());
        if path == "." {
            format!("not a valid event: {inner}")
        } else {
            format!("not a valid event: `{path}`: {inner}")
        }
    })
}

/// serde names the Rust types it expected (`struct RawEvent`, `f64`, `untagged enum
/// Timestamp`); a pipeline author knows JSON, so say what JSON was expected instead. Only the
/// `expected …` part is rewritten: the client's own text quoted before it is left alone.
fn plain_words(message: &str) -> String {
    const WORDS: [(&str, &str); 8] = [
        ("expected struct RawEvent", "expected an event object"),
        ("expected f64", "expected a number"),
        (
            "expected u64",
            "expected a whole number of Unix milliseconds",
        ),
        ("expected u32", "expected a whole number"),
        ("expected usize", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        (
            "data did not match any variant of untagged enum Timestamp",
            "expected Unix milliseconds (a whole number) or an RFC 3339 string \
             (e.g. 2026-11-26T10:00:00Z)",
        ),
        ("expected a sequence", "expected a JSON array of events"),
    ];
    WORDS.iter().fold(message.to_owned(), |text, (rust, json)| {
        text.replace(rust, json)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format_of(content_type: Option<&str>) -> Result<BodyFormat, String> {
        let mut req = actix_web::test::TestRequest::post();
        if let Some(value) = content_type {
            req = req.insert_header((actix_web::http::header::CONTENT_TYPE, value));
        }
        body_format(&req.to_http_request()).map_err(|e| match e {
            ApiError::UnsupportedMediaType(detail) => detail,
            other => format!("not a 415: {other:?}"),
        })
    }

    #[test]
    fn the_body_format_ignores_case_parameters_and_spaces_and_quotes_a_refusal_in_lowercase() {
        use BodyFormat::{Array, Ndjson, Sniff};
        let cases = [
            (None, Array),
            (Some(""), Array),
            (Some("application/json"), Array),
            (Some("Application/JSON; charset=utf-8"), Array),
            (Some("  application/json  ;"), Array),
            (Some("application/x-ndjson"), Ndjson),
            (Some("APPLICATION/NDJSON"), Ndjson),
            (Some("application/jsonl; charset=UTF-8"), Ndjson),
            (Some("Text/Plain;charset=UTF-8"), Sniff),
        ];
        for (content_type, expected) in cases {
            assert_eq!(format_of(content_type), Ok(expected), "{content_type:?}");
        }
        let refused = format_of(Some("Application/XML; charset=utf-8")).unwrap_err();
        assert!(
            refused.starts_with("content type \"application/xml\" is not accepted; send"),
            "{refused}"
        );
        assert!(format_of(Some("application/json-seq")).is_err());
        assert!(format_of(Some("application/jsonx")).is_err());
    }

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
    fn ndjson_lines_count_blank_and_crlf_lines_like_an_editor() {
        let body =
            b"\r\n{\"id\":\"a\",\"experiment\":\"x\",\"unit\":\"u\"}\r\n \t\r\n{\"id\":1}\r\n";
        let (events, lines) = parse_ndjson_lines(body).unwrap();
        assert_eq!(lines, [2, 4]);
        assert!(events[0].is_ok());
        assert!(events[1].as_ref().unwrap_err().starts_with("line 4:"));
    }

    #[test]
    fn ndjson_lines_split_where_str_lines_splits() {
        let event = r#"{"id":"a","experiment":"x","unit":"u"}"#;
        let bodies = [
            event.to_owned(),
            format!("{event}\n"),
            format!("{event}\r\n{event}\r\n"),
            format!("\n\n{event}\n \r\n{event}\r"),
            format!("{event}\r{event}\n{event}"),
            format!("{event}\n\r\n\r\r\n\u{e9}\n{event}\n\n"),
            String::new(),
            "\n".to_owned(),
            format!("{event}\r\n  not json\r\n{{\"id\":1}}\r\n[1, 2\r"),
            "\r\n\r\nnot json\n".to_owned(),
            // Cut short: the refusal names the column where the line ended.
            format!("{{\"id\":\"a\"\r\n{event}"),
        ];
        for body in bodies {
            // The reference: std's own split into lines, numbered from 1, blank ones skipped.
            let expected: Vec<(usize, Result<RawEvent, String>)> = body
                .lines()
                .enumerate()
                .filter(|(_, line)| !line.trim().is_empty())
                .map(|(n, line)| {
                    // A refusal's wording names the column, so a line cut elsewhere shows.
                    let event = serde_json::from_str::<RawEvent>(line).or_else(|_| {
                        serde_json::from_str::<serde_json::Value>(line)
                            .map_err(|e| format!("invalid JSON: {}", plain_words(&e.to_string())))
                            .and_then(decode_event)
                            .map_err(|detail| format!("line {}: {detail}", n + 1))
                    });
                    (n + 1, event)
                })
                .collect();
            let (events, lines) = parse_ndjson_lines(body.as_bytes()).unwrap();
            let got: Vec<(usize, Result<RawEvent, String>)> =
                lines.into_iter().zip(events).collect();
            assert_eq!(got, expected, "{body:?}");
        }
    }

    #[test]
    fn serde_type_names_become_json_words() {
        let detail = decode_event(serde_json::json!({"id": "a", "experiment": "x", "reward": "1"}))
            .unwrap_err();
        assert!(
            detail.contains("expected a number") && !detail.contains("f64"),
            "{detail}"
        );
        let detail = decode_event(serde_json::json!(3)).unwrap_err();
        assert!(detail.contains("an event object"), "{detail}");
    }

    #[test]
    fn an_array_element_with_an_unknown_field_rejects_only_itself() {
        let body = br#"[{"id":"a","experiment":"x","unit":"u"},{"id":"b","experiment":"x","unit":"u","color":"red"}]"#;
        let events = parse_array(body).unwrap();
        assert!(events[0].is_ok());
        assert!(events[1].as_ref().unwrap_err().contains("color"));
    }

    #[test]
    fn direct_decoding_gives_what_decoding_through_a_value_gives() {
        let texts = [
            r#"{"id":"a","experiment":"x","unit":"u"}"#,
            r#"{"id":"a","experiment":"x","token":"t","reward":1,"timestamp":1700000000000}"#,
            r#"{"id":"a\u00e9","experiment":"x","unit":"u","metric":"refunds","timestamp":"2026-11-26T10:00:00Z"}"#,
            r#"{"id":"a","experiment":"x","unit":null,"reward":0.25}"#,
            r#"{"id":"a","id":"b","experiment":"x","unit":"u"}"#,
            r#"{"id":"a","experiment":"x","unit":"u","color":"red"}"#,
            r#"{"id":"a","experiment":"x","unit":""}"#,
            r#"{"id":"a","experiment":"x","reward":"1"}"#,
            r#"{"id":"a","experiment":"x","timestamp":1.5}"#,
            r#"{"id":"a","experiment":"x","reward":1e400}"#,
            r#"[1]"#,
            r#"3"#,
        ];
        for text in texts {
            let through_value = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .map(decode_event);
            assert_eq!(decode_event_text(text), through_value, "{text}");
        }
        // A duplicate field: the last occurrence, as a `Value` keeps it.
        let twice = decode_event_text(r#"{"id":"a","id":"b","experiment":"x","unit":"u"}"#);
        assert_eq!(
            twice.map(|event| event.map(|e| e.id.into_owned())),
            Some(Ok("b".to_owned()))
        );
    }

    #[test]
    fn an_element_no_value_can_hold_refuses_the_whole_array_with_its_place() {
        let body = br#"[{"id":"a","experiment":"x","unit":"u"},{"id":"b","experiment":"x","unit":"u","reward":1e400}]"#;
        match parse_array(body) {
            Err(ApiError::BadRequest(message)) => {
                assert!(
                    message.contains("out of range at line 1 column"),
                    "{message}"
                );
            }
            other => panic!("expected a refusal of the body, got {other:?}"),
        }
    }

    #[test]
    fn array_and_ndjson_bodies_decode_to_the_same_events() {
        let lines = [
            r#"{"id":"a","experiment":"x","unit":"u"}"#,
            r#"{"id":"b","experiment":"x","unit":"u","color":"red"}"#,
            r#"{"id":"c","id":"d","experiment":"x","unit":"u","reward":0.5}"#,
        ];
        let array = format!("[{}]", lines.join(","));
        let ndjson = lines.join("\n");
        let from_array = parse_array(array.as_bytes()).unwrap();
        let from_ndjson = parse_ndjson(ndjson.as_bytes()).unwrap();
        assert_eq!(from_array[0], from_ndjson[0]);
        assert_eq!(from_array[2], from_ndjson[2]);
        assert_eq!(from_array[2].as_ref().map(|e| e.id.as_ref()), Ok("d"));
        let array_detail = from_array[1].as_ref().unwrap_err();
        let ndjson_detail = from_ndjson[1].as_ref().unwrap_err();
        assert_eq!(format!("line 2: {array_detail}"), *ndjson_detail);
    }

    #[test]
    fn a_body_of_good_events_decodes_in_one_pass_to_what_each_element_decodes_to() {
        let bodies = [
            "[]",
            r#" [ {"id":"a","experiment":"x","unit":"u"} ] "#,
            r#"[{"id":"a\u00e9","experiment":"x","unit":"u","metric":"refunds","timestamp":"2026-11-26T10:00:00Z"},{"id":"b","experiment":"x","token":"t","reward":0.25,"timestamp":1700000000000}]"#,
        ];
        for body in bodies {
            let direct = decode_array_directly(body.as_bytes());
            assert!(direct.is_some(), "{body}");
            let by_element = parse_array_by_element(body.as_bytes()).unwrap();
            assert_eq!(direct.as_ref(), Some(&by_element), "{body}");
            assert_eq!(parse_array(body.as_bytes()).unwrap(), by_element, "{body}");
        }
        let events = decode_array_directly(bodies[2].as_bytes()).unwrap();
        let ids: Vec<_> = events
            .iter()
            .map(|e| e.as_ref().unwrap().id.as_ref())
            .collect();
        assert_eq!(ids, ["a\u{e9}", "b"]);
        assert_eq!(events[1].as_ref().unwrap().reward, Some(0.25));
    }

    #[test]
    fn a_body_one_pass_cannot_decode_takes_the_element_by_element_path() {
        let bodies = [
            // A bad element among good ones: rejected alone, with the API's wording.
            r#"[{"id":"a","experiment":"x","unit":"u"},{"id":"b","experiment":"x","unit":"u","color":"red"}]"#,
            // A duplicate field: its last occurrence, as a `Value` keeps it.
            r#"[{"id":"a","id":"b","experiment":"x","unit":"u"}]"#,
            // Not one array: refused whole.
            r#"[{"id":"a","experiment":"x","unit":"u"}] []"#,
            r#"[{"id":"a","experiment":"x","unit":"u"}"#,
            r#"{"id":"a","experiment":"x","unit":"u"}"#,
        ];
        for body in bodies {
            assert_eq!(decode_array_directly(body.as_bytes()), None, "{body}");
        }
        let events = parse_array(bodies[0].as_bytes()).unwrap();
        assert_eq!(events[0].as_ref().map(|e| e.id.as_ref()), Ok("a"));
        assert!(events[1].as_ref().unwrap_err().contains("color"));
        let events = parse_array(bodies[1].as_bytes()).unwrap();
        assert_eq!(events[0].as_ref().map(|e| e.id.as_ref()), Ok("b"));
        for body in &bodies[2..] {
            assert!(
                matches!(parse_array(body.as_bytes()), Err(ApiError::BadRequest(_))),
                "{body}"
            );
        }
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
