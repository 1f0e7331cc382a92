//! The one-pass decoder of a JSON array of events, the fast path of `POST /v1/events`'s array
//! bodies (`events::parse_array`).

use super::events::MAX_EVENTS_PER_BATCH;
use crate::engine::RawEvent;

/// A body whose every element is a good event, decoded in one pass over the body; `None` if
/// any element (or the array) fails to decode, and [`super::events::parse_array`] then takes its element by
/// element path, which words each rejection. The outcome is the same whenever this one
/// succeeds: each element is decoded by the same derived decoder from the same text that the
/// next path gives `decode_event_text`, and that decodes it directly too. It saves that path's
/// first pass, which read every element once to find its raw text and once more to decode
/// it: for one event per POST ~1,500 instructions of the HTTP worker's ~50,700
/// (`benches/load/results/event15-2026-12-01-s15.md`).
pub(super) fn decode_array_directly(body: &[u8]) -> Option<Vec<Result<RawEvent<'_>, String>>> {
    use serde::de::DeserializeSeed;
    // Every event opens one object: an upper bound on the events (nested objects and braces
    // in strings only add to it), capped as `events::parse_ndjson_lines` caps its count of lines.
    let most = memchr::memchr_iter(b'{', body)
        .count()
        .min(MAX_EVENTS_PER_BATCH + 1);
    let mut decoder = serde_json::Deserializer::from_slice(body);
    let events = DirectEvents { most }.deserialize(&mut decoder).ok()?;
    // As `serde_json::from_slice` ends: only whitespace may follow the array.
    decoder.end().ok()?;
    Some(events)
}

/// The array's elements decoded into events as they are read ([`decode_array_directly`]).
struct DirectEvents {
    /// Room reserved for events up front.
    most: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for DirectEvents {
    type Value = Vec<Result<RawEvent<'de>, String>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, decoder: D) -> Result<Self::Value, D::Error> {
        decoder.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DirectEvents {
    type Value = Vec<Result<RawEvent<'de>, String>>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON array of events")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut events = Vec::with_capacity(self.most);
        while let Some(event) = seq.next_element::<RawEvent<'de>>()? {
            events.push(Ok(event));
        }
        Ok(events)
    }
}
