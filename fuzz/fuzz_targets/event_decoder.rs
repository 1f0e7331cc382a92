//! `POST /v1/events` bodies: the same bytes through the JSON-array and the NDJSON decoder.
//! Property (written once in `tests/props/checks/events.rs`, shared with the property tests):
//! no panic; a refused body says where (line and column, or the byte index of bad UTF-8); a
//! refused array element is one entry of the batch (the rejection carries its index) with a
//! reason; a refused NDJSON line names its line.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/props/checks/events.rs"]
mod checks;

fuzz_target!(|body: &[u8]| {
    checks::check_array(body);
    checks::check_ndjson(body);
});
