//! Property tests of the three decoders that read untrusted input: `POST /v1/events` bodies
//! (JSON array and NDJSON), assignment tokens, and experiment YAML files. Each property holds
//! for every input: no panic, and the input is either accepted or refused with an error that
//! says where (event line or index and field; a typed token refusal; file:line:column).
//!
//! Inputs are structured but hostile: valid documents built from the formats' own fields,
//! then mutated (truncated, bytes flipped, hostile fragments inserted, parts repeated) and
//! stuffed with deep nesting, huge numbers, odd Unicode, control characters, duplicate keys
//! and YAML aliases, so that the properties reach the field checks and not only the first
//! syntax error. Seeds are fixed and case counts bounded (`hostile::config`), so a run is
//! repeatable and takes a few seconds. The `cargo fuzz` targets under `fuzz/` check the same
//! properties without a time bound.

mod events;
mod hostile;
mod spec;
mod token;
