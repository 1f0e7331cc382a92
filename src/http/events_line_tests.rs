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

/// Every line one byte away from a plain one (each byte replaced by, or preceded by, each of
/// a set of bytes that matter to JSON, or removed): the fast path accepts it only if serde's
/// decoder accepts it, and then with the same event.
#[test]
fn no_line_one_byte_away_is_read_differently_from_serde() {
    let bytes: &[u8] = b"{}[]\":,\\ \t\n\r0a-_\x01\x7f";
    let (mut accepted, mut lines) = (0, 0);
    for base in PLAIN {
        let base = base.as_bytes();
        for at in 0..=base.len() {
            let mut variants: Vec<Vec<u8>> = Vec::new();
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
            for variant in &variants {
                let Ok(line) = std::str::from_utf8(variant) else {
                    continue;
                };
                lines += 1;
                if let Some(event) = plain_event(line) {
                    accepted += 1;
                    assert_eq!(Some(event), through_serde(line), "{line:?}");
                }
            }
        }
    }
    // Not vacuous: whitespace and in-string changes keep the plain shape (~21% of the lines).
    assert!(accepted > lines / 10, "{accepted} of {lines}");
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
