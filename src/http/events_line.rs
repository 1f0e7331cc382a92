//! The fast path of one NDJSON line (`events::parse_ndjson_lines`) and of a JSON array's
//! elements (`events::parse_array`): an event object whose members are all plain strings,
//! which is what a pipeline's bulk body and a page's one event per POST are made of.
//!
//! serde_json's derived decoder spent ~1,800 of the HTTP worker's ~4,200 instructions per bulk
//! event (`benches/load/results/sbulk17-2026-12-01-s17.md`): each key and value went through
//! its generic reader, the field visitor, the `Option` and `Cow` layers and the unit's check.
//! [`plain_event`] reads the one shape that needs none of that: an object of `id`,
//! `experiment`, `unit`, `token` and `metric`, each at most once, each a string without an
//! escape or a control character, with JSON whitespace anywhere between tokens and nothing
//! after the object. Anything else (a number, `null`, an escape, another or a repeated key, a
//! missing `id` or `experiment`, a unit [`Unit::check`] refuses, a malformed line) is `None`,
//! and the line takes serde's path, which decides and words it as before. What it accepts,
//! serde's decoder accepts too and decodes to the same event: a string with no escape is its
//! bytes between the quotes, borrowed as serde borrows it (checked against serde by the tests,
//! on every line one byte away from typical ones).

use std::borrow::Cow;

use crate::engine::{RawEvent, Unit};

/// The event of `line` if it has the plain shape of the module docs, else `None`.
pub(super) fn plain_event(line: &str) -> Option<RawEvent<'_>> {
    let mut reader = Reader { text: line, at: 0 };
    reader.skip_space();
    let fields = reader.plain_object()?;
    reader.skip_space();
    if reader.at != line.len() {
        return None;
    }
    event_of(fields)
}

/// The events of a JSON array body whose every element has the plain shape of the module docs
/// (`[` and `]`, elements separated by `,`, JSON whitespace anywhere between tokens, nothing
/// after the array), else `None`: the body then takes `events::parse_array`'s serde paths,
/// which decide and word it as before. One event per POST is such an array: its parse was
/// 2,875 of the HTTP worker's instructions per request through serde's one-pass decoding
/// (`events_direct`), 1,603 here (`benches/load/results/single18-2026-12-02-s18.md`). An empty
/// array is left to serde too.
pub(super) fn plain_array(body: &str) -> Option<Vec<Result<RawEvent<'_>, String>>> {
    let mut reader = Reader { text: body, at: 0 };
    reader.skip_space();
    reader.expect(b'[')?;
    let mut events = Vec::with_capacity(1);
    loop {
        reader.skip_space();
        events.push(Ok(event_of(reader.plain_object()?)?));
        reader.skip_space();
        match reader.next()? {
            b',' => {}
            b']' => break,
            _ => return None,
        }
    }
    reader.skip_space();
    (reader.at == body.len()).then_some(events)
}

/// The event of a plain object's members (`Reader::plain_object`): `None` without an `id` or
/// an `experiment`, or with a unit [`Unit::check`] refuses.
#[inline(always)]
fn event_of([id, experiment, unit, token, metric]: [Option<&str>; 5]) -> Option<RawEvent<'_>> {
    if let Some(unit) = unit {
        Unit::check(unit).ok()?;
    }
    Some(RawEvent {
        id: Cow::Borrowed(id?),
        experiment: Cow::Borrowed(experiment?),
        unit: unit.map(Cow::Borrowed),
        token: token.map(Cow::Borrowed),
        metric: metric.map(Cow::Borrowed),
        reward: None,
        timestamp: None,
    })
}

/// A cursor over the line's bytes.
struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    /// The members of one plain event object, from `{` to its `}` (the reader left after
    /// it), in the order `id`, `experiment`, `unit`, `token`, `metric`. Inlined, as the NDJSON line's loop was one function
    /// before arrays shared it: called, it cost a bulk event +275 instructions
    /// (`benches/load/results/single18-2026-12-02-s18.md`).
    #[inline(always)]
    fn plain_object(&mut self) -> Option<[Option<&'a str>; 5]> {
        let mut fields: [Option<&'a str>; 5] = [None; 5];
        self.expect(b'{')?;
        loop {
            self.skip_space();
            let field = match self.plain_string()?.as_bytes() {
                b"id" => 0,
                b"experiment" => 1,
                b"unit" => 2,
                b"token" => 3,
                b"metric" => 4,
                _ => return None,
            };
            self.skip_space();
            self.expect(b':')?;
            self.skip_space();
            let value = self.plain_string()?;
            if fields[field].replace(value).is_some() {
                return None;
            }
            self.skip_space();
            match self.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        Some(fields)
    }

    fn next(&mut self) -> Option<u8> {
        let byte = *self.text.as_bytes().get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, wanted: u8) -> Option<()> {
        (self.next()? == wanted).then_some(())
    }

    /// Skips JSON's whitespace: space, tab, line feed, carriage return.
    fn skip_space(&mut self) {
        let bytes = self.text.as_bytes();
        while bytes
            .get(self.at)
            .is_some_and(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.at += 1;
        }
    }

    /// A string with neither an escape nor a control character, as the text between its
    /// quotes; `None` for anything else. Eight bytes are looked at at once while none of
    /// them ends the string or cannot be in it ([`ends_plain_run`]): byte by byte, the scan
    /// was ~9 instructions a byte (`benches/load/bulk_cost.sh`).
    fn plain_string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let bytes = self.text.as_bytes();
        while let Some(word) = bytes.get(self.at..self.at + 8) {
            let word = u64::from_le_bytes(word.try_into().ok()?);
            if ends_plain_run(word) {
                break;
            }
            self.at += 8;
        }
        loop {
            match *bytes.get(self.at)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.at += 1,
            }
        }
        // Both ends are ASCII quotes, so char boundaries of the (UTF-8) line.
        let text = self.text.get(start..self.at)?;
        self.at += 1;
        Some(text)
    }
}

/// Whether any of the eight bytes of `word` is a quote, a backslash or below 0x20: the usual
/// test for a zero byte, `(v - 0x01…01) & !v & 0x80…80`, which is exact for whether there is
/// one (not for where), on `word` (bytes below 0x20) and on `word` xor each of the two bytes.
fn ends_plain_run(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |v: u64, n: u64| v.wrapping_sub(ONES * n) & !v & HIGHS != 0;
    below(word, 0x20)
        || below(word ^ (ONES * u64::from(b'"')), 1)
        || below(word ^ (ONES * u64::from(b'\\')), 1)
}

#[cfg(test)]
#[path = "events_line_tests.rs"]
mod tests;
