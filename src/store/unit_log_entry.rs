//! The bytes of one unit-log value (`unit_log`): its entries, each a unit and its sticky
//! record (or a removal), in the compact layout of store format 6, and the format-5 layout a
//! value written before the upgrade still has until compaction rewrites it.
//!
//! Device bytes per bulk event scale with the bytes each entry adds to the log (sled rewrites
//! a value with its leaf), so an entry holds what differs from its neighbours rather than the
//! record whole (format 5: ~52 bytes for a bulk event's credit, format 6: ~25):
//!
//! | field | format 6 |
//! | --- | --- |
//! | unit | length-prefixed bytes, exact |
//! | head | one byte: record or removal, reward tag, rewarded-at present, seq differs |
//! | seq | nothing when it is the commit's own (the key's); else the zigzag varint difference |
//! | assigned_ms | zigzag varint difference from the previous record's in the value |
//! | variant, propensity | index of the pair in the value's dictionary; a new pair's index (the dictionary's length) is followed by the variant (length-prefixed) and the propensity (f64 bits, exact) |
//! | reward | nothing for exactly 0.0 or 1.0 (the tag says which); f64 bits otherwise |
//! | rewarded_ms | zigzag varint difference from assigned_ms |
//!
//! A format-6 value starts with [`VALUE_TAG`], two bytes that no format-5 value starts with:
//! a format-5 value starts with its first unit's length as a varint, and `keys::put_varint`
//! never writes `0x80 0x00` (zero with a continuation byte). Differences are taken with
//! wrapping arithmetic, so every u64 round-trips whatever the clock did.

use super::codec::{self, StickyRef};
use super::error::StoreError;
use super::keys::{corrupt, put_bytes, put_varint, take_bytes, take_varint};

/// The first bytes of every format-6 value (see the module docs).
pub const VALUE_TAG: [u8; 2] = [0x80, 0x00];

const HAS_RECORD: u8 = 0b0000_0001;
const REWARD_MASK: u8 = 0b0000_0110;
const REWARD_ZERO: u8 = 0b0000_0010;
const REWARD_ONE: u8 = 0b0000_0100;
const REWARD_F64: u8 = 0b0000_0110;
const HAS_REWARDED_MS: u8 = 0b0000_1000;
const SEQ_DIFFERS: u8 = 0b0001_0000;
const KNOWN_HEAD_BITS: u8 = HAS_RECORD | REWARD_MASK | HAS_REWARDED_MS | SEQ_DIFFERS;

/// One entry of a log value: the unit and its record (`None`: removed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry<'a> {
    pub unit: &'a [u8],
    pub record: Option<StickyRef<'a>>,
}

fn zigzag(value: u64) -> u64 {
    let signed = value as i64;
    ((signed << 1) ^ (signed >> 63)) as u64
}

fn unzigzag(value: u64) -> u64 {
    (value >> 1) ^ (value & 1).wrapping_neg()
}

/// Builds one format-6 value of commit `seq`, entry by entry.
pub struct ValueEncoder {
    seq: u64,
    bytes: Vec<u8>,
    /// The dictionary: where each pair's variant sits in `bytes`, and its propensity's bits.
    pairs: Vec<(usize, usize, u64)>,
    previous_assigned_ms: u64,
}

impl ValueEncoder {
    pub fn new(seq: u64, capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(capacity);
        bytes.extend_from_slice(&VALUE_TAG);
        ValueEncoder {
            seq,
            bytes,
            pairs: Vec::new(),
            previous_assigned_ms: 0,
        }
    }

    /// Bytes written so far.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends the entry of `unit`: its record, or its removal.
    pub fn push(&mut self, unit: &[u8], record: Option<&StickyRef<'_>>) {
        put_bytes(&mut self.bytes, unit);
        let Some(record) = record else {
            self.bytes.push(0);
            return;
        };
        let mut head = HAS_RECORD;
        head |= match record.reward.map(f64::to_bits) {
            None => 0,
            Some(bits) if bits == 0f64.to_bits() => REWARD_ZERO,
            Some(bits) if bits == 1f64.to_bits() => REWARD_ONE,
            Some(_) => REWARD_F64,
        };
        if record.rewarded_ms.is_some() {
            head |= HAS_REWARDED_MS;
        }
        if record.seq != self.seq {
            head |= SEQ_DIFFERS;
        }
        self.bytes.push(head);
        if record.seq != self.seq {
            put_varint(&mut self.bytes, zigzag(record.seq.wrapping_sub(self.seq)));
        }
        put_varint(
            &mut self.bytes,
            zigzag(record.assigned_ms.wrapping_sub(self.previous_assigned_ms)),
        );
        self.previous_assigned_ms = record.assigned_ms;
        self.push_pair(record.variant.as_bytes(), record.propensity.to_bits());
        if head & REWARD_MASK == REWARD_F64 {
            let reward = record.reward.unwrap_or_default();
            self.bytes.extend_from_slice(&reward.to_be_bytes());
        }
        if let Some(rewarded_ms) = record.rewarded_ms {
            put_varint(
                &mut self.bytes,
                zigzag(rewarded_ms.wrapping_sub(record.assigned_ms)),
            );
        }
    }

    fn push_pair(&mut self, variant: &[u8], propensity: u64) {
        let bytes = &self.bytes;
        let known = self.pairs.iter().position(|&(start, len, bits)| {
            bits == propensity && bytes.get(start..start + len) == Some(variant)
        });
        match known {
            Some(index) => put_varint(&mut self.bytes, index as u64),
            None => {
                put_varint(&mut self.bytes, self.pairs.len() as u64);
                put_varint(&mut self.bytes, variant.len() as u64);
                let start = self.bytes.len();
                self.bytes.extend_from_slice(variant);
                self.bytes.extend_from_slice(&propensity.to_be_bytes());
                self.pairs.push((start, variant.len(), propensity));
            }
        }
    }

    /// The value's bytes.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// The entries of the value `value` of commit `seq`, in the order they were written, in
/// either layout. A malformed value yields one [`StoreError::Corrupt`] and ends.
pub fn entries(value: &[u8], seq: u64) -> impl Iterator<Item = Result<Entry<'_>, StoreError>> {
    let mut decoder = match value.strip_prefix(&VALUE_TAG) {
        Some(rest) => Decoder::Compact(CompactDecoder {
            rest,
            seq,
            pairs: Vec::new(),
            previous_assigned_ms: 0,
        }),
        None => Decoder::Format5(value),
    };
    std::iter::from_fn(move || {
        let entry = match &mut decoder {
            Decoder::Compact(compact) if !compact.rest.is_empty() => compact.next(),
            Decoder::Format5(rest) if !rest.is_empty() => format_5_entry(rest),
            _ => return None,
        };
        if entry.is_err() {
            decoder = Decoder::Format5(&[]);
        }
        Some(entry)
    })
}

enum Decoder<'a> {
    Compact(CompactDecoder<'a>),
    Format5(&'a [u8]),
}

/// Format 5: the unit and `codec::encode_sticky`'s record, both length-prefixed; an empty
/// record is a removal.
fn format_5_entry<'a>(rest: &mut &'a [u8]) -> Result<Entry<'a>, StoreError> {
    let (unit, after) = take_bytes(rest)?;
    let (record, after) = take_bytes(after)?;
    *rest = after;
    let record = match record {
        [] => None,
        bytes => Some(codec::decode_sticky_ref(bytes)?),
    };
    Ok(Entry { unit, record })
}

struct CompactDecoder<'a> {
    rest: &'a [u8],
    seq: u64,
    pairs: Vec<(&'a str, f64)>,
    previous_assigned_ms: u64,
}

impl<'a> CompactDecoder<'a> {
    fn next(&mut self) -> Result<Entry<'a>, StoreError> {
        let (unit, rest) = take_bytes(self.rest)?;
        let (&head, rest) = rest
            .split_first()
            .ok_or_else(|| corrupt("unit-log entry lacks its head byte"))?;
        self.rest = rest;
        if head & !KNOWN_HEAD_BITS != 0 {
            return Err(corrupt("unit-log entry has unknown head bits"));
        }
        if head & HAS_RECORD == 0 {
            if head != 0 {
                return Err(corrupt("unit-log removal entry has record bits"));
            }
            return Ok(Entry { unit, record: None });
        }
        let seq = if head & SEQ_DIFFERS != 0 {
            let difference = unzigzag(self.varint()?);
            if difference == 0 {
                return Err(corrupt("unit-log entry flags a seq equal to its commit's"));
            }
            self.seq.wrapping_add(difference)
        } else {
            self.seq
        };
        let assigned_ms = self
            .previous_assigned_ms
            .wrapping_add(unzigzag(self.varint()?));
        self.previous_assigned_ms = assigned_ms;
        let (variant, propensity) = self.pair()?;
        let reward = match head & REWARD_MASK {
            0 => None,
            REWARD_ZERO => Some(0.0),
            REWARD_ONE => Some(1.0),
            _ => Some(f64::from_bits(self.u64_bits("reward")?)),
        };
        let rewarded_ms = if head & HAS_REWARDED_MS != 0 {
            Some(assigned_ms.wrapping_add(unzigzag(self.varint()?)))
        } else {
            None
        };
        Ok(Entry {
            unit,
            record: Some(StickyRef {
                variant,
                assigned_ms,
                propensity,
                reward,
                rewarded_ms,
                seq,
            }),
        })
    }

    fn varint(&mut self) -> Result<u64, StoreError> {
        let (value, rest) = take_varint(self.rest)?;
        self.rest = rest;
        Ok(value)
    }

    fn u64_bits(&mut self, what: &str) -> Result<u64, StoreError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<8>()
            .ok_or_else(|| corrupt(&format!("unit-log entry lacks its {what}")))?;
        self.rest = rest;
        Ok(u64::from_be_bytes(*head))
    }

    fn pair(&mut self) -> Result<(&'a str, f64), StoreError> {
        let index = self.varint()?;
        if let Some(&pair) = usize::try_from(index)
            .ok()
            .and_then(|index| self.pairs.get(index))
        {
            return Ok(pair);
        }
        if index != self.pairs.len() as u64 {
            return Err(corrupt(
                "unit-log entry names a variant its value never defined",
            ));
        }
        let (variant, rest) = take_bytes(self.rest)?;
        self.rest = rest;
        let variant =
            std::str::from_utf8(variant).map_err(|_| corrupt("variant id is not UTF-8"))?;
        let propensity = f64::from_bits(self.u64_bits("propensity")?);
        self.pairs.push((variant, propensity));
        Ok((variant, propensity))
    }
}

#[cfg(test)]
#[path = "unit_log_entry_tests.rs"]
mod tests;
