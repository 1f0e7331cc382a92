//! `POST /v1/events` bodies through the JSON-array and the NDJSON decoder.

use banditd::engine::{RawEvent, Timestamp, Unit};
use banditd::http::events::{parse_array, parse_ndjson};
use proptest::prelude::*;
use serde_json::json;

#[path = "checks/events.rs"]
mod checks;

use self::checks::{check_array, check_ndjson};
use crate::hostile::{config, fuzz_seeds, mutated, nested, text};

const KEYS: &[&str] = &[
    "id",
    "experiment",
    "unit",
    "token",
    "reward",
    "timestamp",
    "color",
    "",
    "ID",
];

/// Numbers as JSON text, including those no Rust number type holds.
const NUMBERS: &[&str] = &[
    "0",
    "0.5",
    "1",
    "-1",
    "-0",
    "1.5e3",
    "1795687200250",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "1e308",
    "1e400",
    "1e-400",
    "0.30000000000000004",
];

/// Timestamps as JSON strings: valid, leap second, offsets, out of range, not a time.
const TIMESTAMPS: &[&str] = &[
    "\"2026-11-26T12:00:00.250+02:00\"",
    "\"2026-11-26T10:00:00Z\"",
    "\"1970-01-01T00:00:00Z\"",
    "\"1969-12-31T23:59:59.999Z\"",
    "\"0000-01-01T00:00:00+23:59\"",
    "\"9999-12-31T23:59:60Z\"",
    "\"2026-02-30T00:00:00Z\"",
    "\"2026-11-26T10:00:00.123456789123Z\"",
    "\"2026-11-26t10:00:00z\"",
    "\"yesterday\"",
    "\"\"",
];

/// One field as JSON text, value of any type, key possibly unknown or repeated.
fn field() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        4 => text().prop_map(|t| json!(t).to_string()),
        2 => prop::sample::select(NUMBERS).prop_map(str::to_owned),
        2 => prop::sample::select(TIMESTAMPS).prop_map(str::to_owned),
        1 => prop::sample::select(&["null", "true", "[]", "{}"][..]).prop_map(str::to_owned),
        1 => (0usize..160).prop_map(|depth| nested(depth, "[", "]", true)),
        1 => (0usize..160).prop_map(|depth| nested(depth, "{\"a\":", "}", true)),
    ];
    (prop::sample::select(KEYS), value).prop_map(|(key, value)| format!("\"{key}\":{value}"))
}

/// One array element or NDJSON line: mostly an object of fields, sometimes something else.
fn event_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(field(), 0..8).prop_map(|fields| format!("{{{}}}", fields.join(","))),
        4 => well_formed_event().prop_map(|event| event.to_string()),
        1 => prop::sample::select(NUMBERS).prop_map(str::to_owned),
        // serde_json's recursion limit is 128 levels: both sides of it.
        1 => (100usize..160).prop_map(|depth| nested(depth, "[", "]", true)),
    ]
}

/// A valid event: every field of the right type (the values themselves may be refused later,
/// by the engine's checks, which these decoders do not make).
fn well_formed_event() -> impl Strategy<Value = serde_json::Value> {
    (
        text(),
        text(),
        prop::option::of(text().prop_map(valid_unit)),
        prop::option::of(text()),
        prop::option::of(prop_oneof![
            Just("reward".to_owned()),
            Just("refunds".to_owned()),
            text()
        ]),
        prop::option::of(prop_oneof![Just(0.0), Just(1.0), 0.0f64..=1.0]),
        prop::option::of(prop_oneof![
            any::<u64>().prop_map(|ms| json!(ms)),
            prop::sample::select(TIMESTAMPS).prop_map(|t| json!(t.trim_matches('"'))),
        ]),
    )
        .prop_map(|(id, experiment, unit, token, metric, reward, timestamp)| {
            let mut event = json!({ "id": id, "experiment": experiment });
            for (key, value) in [
                ("unit", unit.map(|u| json!(u))),
                ("token", token.map(|t| json!(t))),
                ("metric", metric.map(|m| json!(m))),
                ("reward", reward.map(|r| json!(r))),
                ("timestamp", timestamp),
            ] {
                if let Some(value) = value {
                    event[key] = value;
                }
            }
            event
        })
}

/// The generated text made a valid unit (1–256 bytes, no control characters), as the decoder
/// parses units; invalid units reach the decoder through [`field`] and must be refused.
fn valid_unit(text: String) -> String {
    let mut unit = String::new();
    for c in text.chars().filter(|c| !c.is_control()) {
        if unit.len() + c.len_utf8() > 256 {
            break;
        }
        unit.push(c);
    }
    if unit.is_empty() {
        "u".to_owned()
    } else {
        unit
    }
}

fn array_body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(event_text(), 0..6)
        .prop_map(|events| format!("[{}]", events.join(",")).into_bytes())
}

/// Lines separated by LF or CRLF, with blank and whitespace-only lines between them.
fn ndjson_body() -> impl Strategy<Value = Vec<u8>> {
    let separator = prop::sample::select(&["\n", "\r\n", "\n\n", "\n \t\n", "\r\n\r\n"][..]);
    prop::collection::vec((event_text(), separator), 0..6).prop_map(|lines| {
        lines
            .into_iter()
            .flat_map(|(line, separator)| [line, separator.to_owned()])
            .collect::<String>()
            .into_bytes()
    })
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn every_array_body_is_decoded_or_refused_with_a_place(body in mutated(array_body(), 2)) {
        check_array(&body);
        check_ndjson(&body);
    }

    #[test]
    fn every_ndjson_body_is_decoded_or_refused_with_a_place(body in mutated(ndjson_body(), 2)) {
        check_ndjson(&body);
        check_array(&body);
    }

    #[test]
    fn well_formed_events_decode_to_exactly_their_fields(
        events in prop::collection::vec(well_formed_event(), 1..5),
    ) {
        let array = serde_json::to_vec(&events).expect("values serialise");
        // Read back as plain JSON values, so numbers are parsed exactly as the decoder does.
        let values: Vec<serde_json::Value> =
            serde_json::from_slice(&array).expect("serialised values parse");
        let expected: Vec<RawEvent> = values.iter().map(expected_event).collect();
        let ndjson: String = events.iter().map(|e| format!("{e}\n")).collect();
        for decoded in [parse_array(&array), parse_ndjson(ndjson.as_bytes())] {
            let decoded: Vec<RawEvent> = decoded
                .expect("a well-formed body is accepted")
                .into_iter()
                .collect::<Result<_, _>>()
                .expect("well-formed events decode");
            prop_assert_eq!(&decoded, &expected);
        }
    }
}

/// What the generator meant, read back from its JSON without the decoder under test.
fn expected_event(event: &serde_json::Value) -> RawEvent<'static> {
    let text = |key: &str| event.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    RawEvent {
        id: text("id").unwrap_or_default().into(),
        experiment: text("experiment").unwrap_or_default().into(),
        unit: text("unit").map(|u| {
            let unit = Unit::parse(&u).expect("the generator's units are valid");
            unit.into_string().into()
        }),
        token: text("token").map(Into::into),
        metric: text("metric").map(Into::into),
        reward: event.get("reward").and_then(serde_json::Value::as_f64),
        timestamp: event.get("timestamp").map(|t| match t {
            serde_json::Value::String(s) => Timestamp::Rfc3339(s.clone()),
            other => Timestamp::Millis(other.as_u64().unwrap_or_default()),
        }),
    }
}

/// Found by these properties: a line that is JSON but not an event was rejected without its
/// line number, so with blank lines in the body nothing said which line was at fault.
#[test]
fn an_ndjson_line_that_is_not_an_event_names_its_line() {
    let body = b"{\"id\":\"a\",\"experiment\":\"x\",\"unit\":\"u\"}\n\n\n{\"id\":\"b\",\"experiment\":\"x\",\"unit\":\"u\",\"colour\":1}\n";
    let events = parse_ndjson(body).expect("UTF-8 body");
    let detail = events[1].as_ref().expect_err("unknown field");
    assert!(detail.starts_with("line 4: "), "{detail:?}");
    assert!(detail.contains("colour"), "{detail:?}");
}

/// The generator must reach past the JSON reader: among its bodies are decoded events and
/// events refused field by field.
#[test]
fn the_generated_bodies_reach_the_event_fields() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::new(config(1));
    let (mut decoded, mut refused_events) = (0, 0);
    for _ in 0..200 {
        let body = mutated(array_body(), 2)
            .new_tree(&mut runner)
            .expect("bodies are generated")
            .current();
        for event in parse_array(&body).unwrap_or_default() {
            match event {
                Ok(_) => decoded += 1,
                Err(_) => refused_events += 1,
            }
        }
    }
    assert!(decoded >= 20, "{decoded} events decoded");
    assert!(refused_events >= 20, "{refused_events} events refused");
}

#[test]
fn the_committed_fuzz_inputs_are_decoded_or_refused_with_a_place() {
    for (name, body) in fuzz_seeds("event_decoder") {
        eprintln!("{name}");
        check_array(&body);
        check_ndjson(&body);
    }
}
