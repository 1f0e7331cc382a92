//! `POST /v1/events` bodies: the same bytes through the JSON-array and the NDJSON decoder.
//! Property: no panic; a refused body says where (line and column, or the byte index of bad
//! UTF-8); a refused event is one entry of the batch (its index) with a reason that names the
//! line (NDJSON syntax) or the field.
#![no_main]

use banditd::engine::{RawEvent, parse_timestamp};
use banditd::http::ApiError;
use banditd::http::events::{parse_array, parse_ndjson};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    check("array", body, parse_array(body));
    check("ndjson", body, parse_ndjson(body));
});

fn check(mode: &str, body: &[u8], decoded: Result<Vec<Result<RawEvent, String>>, ApiError>) {
    match decoded {
        Ok(events) => {
            for event in events {
                match event {
                    // The timestamp is the one field decoded further before the store.
                    Ok(event) => {
                        if let Some(ts) = &event.timestamp {
                            let _ = parse_timestamp(ts);
                        }
                    }
                    Err(detail) => assert!(
                        detail.starts_with("line ") || detail.starts_with("not a valid event: "),
                        "{mode}: unlocated event rejection {detail:?} for {body:?}"
                    ),
                }
            }
        }
        Err(ApiError::BadRequest(message)) => assert!(
            message.contains(" line ") || message.contains("index "),
            "{mode}: unlocated refusal {message:?} for {body:?}"
        ),
        Err(other) => panic!("{mode}: refused with {other:?}, not a 400"),
    }
}
