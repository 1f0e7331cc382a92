//! The events-decoder property, written once: `tests/props/events.rs` runs it on generated
//! bodies and the `event_decoder` fuzz target (`fuzz/fuzz_targets/`) on libFuzzer's, both by
//! including this file.

use banditd::engine::{RawEvent, parse_timestamp};
use banditd::http::ApiError;
use banditd::http::events::{parse_array, parse_ndjson};

/// A refused body names where (serde_json's line and column); a refused event is one entry
/// of the batch (the rejection carries its index) and says which field when one is at fault.
pub fn check_array(body: &[u8]) {
    match parse_array(body) {
        Ok(events) => {
            for event in events {
                match event {
                    Ok(event) => check_timestamp(&event),
                    Err(detail) => assert!(
                        detail.starts_with("not a valid event: "),
                        "unexplained event rejection {detail:?}"
                    ),
                }
            }
        }
        Err(ApiError::BadRequest(message)) => assert!(
            message.contains(" at line ") && message.contains(" column "),
            "refusal without a place: {message:?}"
        ),
        Err(other) => panic!("refused with {other:?}, not a 400"),
    }
}

/// NDJSON: one entry per non-blank line, and every rejected entry names its line number in
/// the body (blank lines are skipped, so the batch index alone does not give the line).
pub fn check_ndjson(body: &[u8]) {
    match parse_ndjson(body) {
        Ok(events) => {
            let text = std::str::from_utf8(body).expect("decoded text is UTF-8");
            let event_lines: Vec<usize> = text
                .lines()
                .enumerate()
                .filter(|(_, line)| !line.trim().is_empty())
                .map(|(n, _)| n + 1)
                .collect();
            assert_eq!(events.len(), event_lines.len(), "one entry per line");
            for (event, line) in events.into_iter().zip(event_lines) {
                match event {
                    Ok(event) => check_timestamp(&event),
                    Err(detail) => assert!(
                        detail.starts_with(&format!("line {line}: ")),
                        "rejection of line {line} does not name it: {detail:?}"
                    ),
                }
            }
        }
        Err(ApiError::BadRequest(message)) => {
            assert!(std::str::from_utf8(body).is_err(), "{message:?}");
            assert!(
                message.contains("index "),
                "refusal without a place: {message:?}"
            );
        }
        Err(other) => panic!("refused with {other:?}, not a 400"),
    }
}

/// The timestamp is decoded further before the store; that step must not panic either.
pub fn check_timestamp(event: &RawEvent) {
    if let Some(timestamp) = &event.timestamp
        && let Err(detail) = parse_timestamp(timestamp)
    {
        assert!(detail.starts_with("timestamp "), "{detail:?}");
    }
}
