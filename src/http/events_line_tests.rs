//! The plain-line fast path against serde's decoder: whatever it accepts, serde decodes to
//! the same event; what it declines goes to serde's path unchanged.

use super::*;

use crate::engine::RawEvent;

/// serde's decoding of a line, as `events::parse_ndjson_lines` tries it first.
fn through_serde(line: &str) -> Option<RawEvent<'_>> {
    serde_json::from_str::<RawEvent>(line).ok()
}

/// Lines the fast path must take, each as serde decodes it.
const PLAIN: [&str; 6] = [
    r#"{"id":"e0-1-20-0","experiment":"load-sticky","unit":"ev-20000"}"#,
    r#" { "experiment" : "x" ,	"id":"a" , "unit":"u" } "#,
    r#"{"id":"a","experiment":"x","token":"eyJhIjoxfQ.c2ln","metric":"refunds"}"#,
    "{\"id\":\"\",\"experiment\":\"\",\"unit\":\"café\"}",
    "{\"id\":\"é ü\",\"experiment\":\"x\",\"unit\":\"日本\",\"token\":\"\u{7f}\"}",
    "{\"id\":\"a\",\n\"experiment\":\"x\"}\r",
];

#[test]
fn plain_lines_decode_to_what_serde_decodes_them_to() {
    for line in PLAIN {
        let fast = plain_event(line);
        assert!(fast.is_some(), "declined a plain line: {line:?}");
        assert_eq!(fast, through_serde(line), "{line:?}");
        let event = fast.unwrap_or_else(|| unreachable!());
        // Borrowed from the line, as serde borrows it: no copy per field.
        assert!(matches!(event.id, Cow::Borrowed(_)), "{line:?}");
    }
}

#[test]
fn lines_of_another_shape_are_left_to_serde() {
    let declined = [
        r#"{"id":"a","experiment":"x","unit":"u","reward":0.5}"#,
        r#"{"id":"a","experiment":"x","unit":"u","timestamp":"2026-11-26T10:00:00Z"}"#,
        r#"{"id":"a","experiment":"x","unit":null}"#,
        r#"{"id":"a\n","experiment":"x","unit":"u"}"#,
        r#"{"id":"a\"b","experiment":"x","unit":"u"}"#,
        r#"{"id":"a","id":"b","experiment":"x","unit":"u"}"#,
        r#"{"id":"a","experiment":"x","unit":"u","color":"red"}"#,
        r#"{"id":"a","experiment":"x","unit":""}"#,
        r#"{"experiment":"x","unit":"u"}"#,
        r#"{"id":"a","unit":"u"}"#,
        r#"{"id":"a","experiment":"x","unit":"u"} x"#,
        r#"{"id":"a","experiment":"x","unit":"u",}"#,
        r#"{"id":"a","experiment":"x","unit":"u""#,
        r#"{}"#,
        r#"[{"id":"a","experiment":"x","unit":"u"}]"#,
        "{\"id\":\"a\u{1}\",\"experiment\":\"x\"}",
        "{\"id\":\"a\",\"experiment\":\"x\",\"unit\":\"u\u{7f}v\"}",
        "",
    ];
    for line in declined {
        assert_eq!(plain_event(line), None, "{line:?}");
    }
    // The duplicate key: serde's path decides it (its last occurrence, through a `Value`).
    let twice = r#"{"id":"a","id":"b","experiment":"x","unit":"u"}"#;
    let parsed = crate::http::events::parse_ndjson(twice.as_bytes()).unwrap_or_default();
    assert_eq!(parsed[0].as_ref().map(|e| e.id.as_ref()), Ok("b"));
}

/// Every text one byte away from `base` (each byte replaced by, or preceded by, each of a set
/// of bytes that matter to JSON, or removed) that is still UTF-8.
fn one_byte_away(base: &str) -> Vec<String> {
    let bytes: &[u8] = b"{}[]\":,\\ \t\n\r0a-_\x01\x7f";
    let base = base.as_bytes();
    let mut variants: Vec<Vec<u8>> = Vec::new();
    for at in 0..=base.len() {
        if at < base.len() {
            let mut removed = base.to_vec();
            removed.remove(at);
            variants.push(removed);
        }
        for &byte in bytes {
            let mut inserted = base.to_vec();
            inserted.insert(at, byte);
            variants.push(inserted);
            if at < base.len() {
                let mut replaced = base.to_vec();
                replaced[at] = byte;
                variants.push(replaced);
            }
        }
    }
    variants
        .into_iter()
        .filter_map(|variant| String::from_utf8(variant).ok())
        .collect()
}

/// Every line one byte away from a plain one: the fast path accepts it only if serde's
/// decoder accepts it, and then with the same event.
#[test]
fn no_line_one_byte_away_is_read_differently_from_serde() {
    let (mut accepted, mut lines) = (0, 0);
    for base in PLAIN {
        for line in one_byte_away(base) {
            lines += 1;
            if let Some(event) = plain_event(&line) {
                accepted += 1;
                assert_eq!(Some(event), through_serde(&line), "{line:?}");
            }
        }
    }
    // Not vacuous: whitespace and in-string changes keep the plain shape (~21% of the lines).
    assert!(accepted > lines / 10, "{accepted} of {lines}");
}

/// serde's decoding of an array body, as `events::parse_array` tries it after the fast path.
fn array_through_serde(body: &str) -> Option<Vec<Result<RawEvent<'_>, String>>> {
    serde_json::from_str::<Vec<RawEvent>>(body)
        .ok()
        .map(|events| events.into_iter().map(Ok).collect())
}

/// Arrays of plain lines: one event per POST as a page sends it, one of each plain line, all
/// of them with whitespace around every token.
fn plain_arrays() -> Vec<String> {
    let mut arrays: Vec<String> = PLAIN.iter().map(|line| format!("[{line}]")).collect();
    arrays.push(format!(" \n[ {} ]\r\n", PLAIN.join(" ,\t")));
    arrays.push(format!("[{}]", PLAIN[..3].join(",")));
    arrays
}

#[test]
fn plain_arrays_decode_to_what_serde_decodes_them_to() {
    for body in plain_arrays() {
        let fast = plain_array(&body);
        assert!(fast.is_some(), "declined a plain array: {body:?}");
        assert_eq!(fast, array_through_serde(&body), "{body:?}");
    }
    let declined = [
        "[]",
        " [ ] ",
        r#"{"id":"a","experiment":"x"}"#,
        r#"[{"id":"a","experiment":"x"}"#,
        r#"[{"id":"a","experiment":"x"},]"#,
        r#"[{"id":"a","experiment":"x"}] []"#,
        r#"[{"id":"a","experiment":"x"}][{"id":"b","experiment":"x"}]"#,
        r#"[{"id":"a","experiment":"x"} {"id":"b","experiment":"x"}]"#,
        r#"[{"id":"a","experiment":"x"},{"id":"b","experiment":"x","reward":1}]"#,
        r#"[[{"id":"a","experiment":"x"}]]"#,
        "",
    ];
    for body in declined {
        assert_eq!(plain_array(body), None, "{body:?}");
    }
}

/// Every array one byte away from a plain one: the fast path accepts it only if serde's
/// decoder accepts it, and then with the same events.
#[test]
fn no_array_one_byte_away_is_read_differently_from_serde() {
    let (mut accepted, mut bodies) = (0, 0);
    for base in plain_arrays() {
        for body in one_byte_away(&base) {
            bodies += 1;
            if let Some(events) = plain_array(&body) {
                accepted += 1;
                assert_eq!(Some(events), array_through_serde(&body), "{body:?}");
            }
        }
    }
    assert!(accepted > bodies / 10, "{accepted} of {bodies}");
}

/// The eight-byte test against the byte-by-byte one: every byte value at every place of a word
/// of plain bytes (ASCII and not), and words with two special bytes.
#[test]
fn eight_bytes_end_a_plain_run_exactly_when_one_of_them_would() {
    let special = |byte: u8| byte == b'"' || byte == b'\\' || byte < 0x20;
    for filler in [b'a', b' ', 0x7f, 0x80, 0xc3, 0xff] {
        assert!(!ends_plain_run(u64::from_le_bytes([filler; 8])));
        for at in 0..8 {
            for byte in 0..=u8::MAX {
                let mut word = [filler; 8];
                word[at] = byte;
                assert_eq!(
                    ends_plain_run(u64::from_le_bytes(word)),
                    special(byte),
                    "{filler:#x} with {byte:#x} at {at}"
                );
                word[7 - at] = b'\\';
                assert!(ends_plain_run(u64::from_le_bytes(word)));
            }
        }
    }
}
