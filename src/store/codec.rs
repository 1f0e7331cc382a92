//! Hand-rolled binary values of the sled store. Fixed layouts rather than serde: a sticky
//! record is the per-unit cost of the store (the disk budget is ~150 bytes per unit, key and
//! sled overhead included), and decoding never trusts stored bytes: anything malformed is
//! [`StoreError::Corrupt`], never a panic.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::StoreError;
use super::keys::{corrupt, put_varint, take_bytes, take_u64, take_varint, utf8};
use super::records::{EpochSpec, HistoryArm, HistoryPoint, StoredHistory, StoredHistoryRef};
use super::state::MovedAway;
use super::types::{ArmCounters, EpochInfo, StickyRecord};

const REWARD_PRESENT: u8 = 0b01;
/// Added after the first release: a record without it was written by a build that did not
/// keep the reward's arrival time, and reads back with `rewarded_ms: None`.
const REWARDED_AT_PRESENT: u8 = 0b10;

/// A sticky record plus the group commit that last wrote it. A record is durable once that
/// commit's sequence number is at most the store's durable sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSticky {
    pub record: StickyRecord,
    pub seq: u64,
}

/// Layout: flags u8 · seq varint · assigned_ms varint · propensity f64 · variant (len-prefixed)
/// · reward f64 if flagged · rewarded_ms varint if flagged. About 25 bytes for a short variant
/// id. Since the overlay keeps a commit's records typed, only format-5 sticky keys (which
/// `migrate` reads) and the unit log's format-5 values hold this layout: tests write them.
#[cfg(test)]
pub fn encode_sticky(record: &StickyRecord, seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + record.variant.len());
    let mut flags = 0;
    if record.reward.is_some() {
        flags |= REWARD_PRESENT;
    }
    if record.rewarded_ms.is_some() {
        flags |= REWARDED_AT_PRESENT;
    }
    out.push(flags);
    put_varint(&mut out, seq);
    put_varint(&mut out, record.assigned_ms);
    out.extend_from_slice(&record.propensity.to_be_bytes());
    super::keys::put_bytes(&mut out, record.variant.as_bytes());
    if let Some(reward) = record.reward {
        out.extend_from_slice(&reward.to_be_bytes());
    }
    if let Some(rewarded_ms) = record.rewarded_ms {
        put_varint(&mut out, rewarded_ms);
    }
    out
}

/// A sticky record decoded in place: its variant borrowed from the stored bytes, so that a
/// replay of millions of records allocates nothing per record (`unit_log::replay`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StickyRef<'a> {
    pub variant: &'a str,
    pub assigned_ms: u64,
    pub propensity: f64,
    pub reward: Option<f64>,
    pub rewarded_ms: Option<u64>,
    pub seq: u64,
}

impl<'a> From<&'a StickyRecord> for StickyRef<'a> {
    fn from(record: &'a StickyRecord) -> Self {
        StickyRef {
            variant: &record.variant,
            assigned_ms: record.assigned_ms,
            propensity: record.propensity,
            reward: record.reward,
            rewarded_ms: record.rewarded_ms,
            seq: 0,
        }
    }
}

impl StickyRef<'_> {
    pub fn to_record(self) -> StickyRecord {
        StickyRecord {
            variant: self.variant.to_owned(),
            assigned_ms: self.assigned_ms,
            propensity: self.propensity,
            reward: self.reward,
            rewarded_ms: self.rewarded_ms,
        }
    }
}

/// Inverse of [`encode_sticky`].
pub fn decode_sticky(bytes: &[u8]) -> Result<StoredSticky, StoreError> {
    let decoded = decode_sticky_ref(bytes)?;
    Ok(StoredSticky {
        record: decoded.to_record(),
        seq: decoded.seq,
    })
}

/// Inverse of [`encode_sticky`], borrowing the variant.
pub fn decode_sticky_ref(bytes: &[u8]) -> Result<StickyRef<'_>, StoreError> {
    let (&flags, rest) = bytes
        .split_first()
        .ok_or_else(|| corrupt("empty sticky record"))?;
    if flags & !(REWARD_PRESENT | REWARDED_AT_PRESENT) != 0 {
        return Err(corrupt("unknown sticky record flags"));
    }
    let (seq, rest) = take_varint(rest)?;
    let (assigned_ms, rest) = take_varint(rest)?;
    let (propensity, rest) = take_f64(rest)?;
    let (variant, rest) = take_bytes(rest)?;
    let (reward, rest) = if flags & REWARD_PRESENT != 0 {
        let (reward, rest) = take_f64(rest)?;
        (Some(reward), rest)
    } else {
        (None, rest)
    };
    let (rewarded_ms, rest) = if flags & REWARDED_AT_PRESENT != 0 {
        let (rewarded_ms, rest) = take_varint(rest)?;
        (Some(rewarded_ms), rest)
    } else {
        (None, rest)
    };
    expect_end(rest, "sticky record")?;
    Ok(StickyRef {
        variant: std::str::from_utf8(variant).map_err(|_| corrupt("variant id is not UTF-8"))?,
        assigned_ms,
        propensity,
        reward,
        rewarded_ms,
        seq,
    })
}

/// Layout: exposures u64 · reward_sum f64 · decayed_exposures f64 · decayed_reward_sum f64 ·
/// expected_exposures f64 (all big-endian) · decayed_at_ms varint. 41–50 bytes; there are
/// only a few arm records per epoch.
pub fn encode_arm(counters: &ArmCounters) -> Vec<u8> {
    let mut out = Vec::with_capacity(50);
    out.extend_from_slice(&counters.exposures.to_be_bytes());
    for value in [
        counters.reward_sum,
        counters.decayed_exposures,
        counters.decayed_reward_sum,
        counters.expected_exposures,
    ] {
        out.extend_from_slice(&value.to_be_bytes());
    }
    put_varint(&mut out, counters.decayed_at_ms);
    out
}

/// Inverse of [`encode_arm`].
pub fn decode_arm(bytes: &[u8]) -> Result<ArmCounters, StoreError> {
    let (exposures, rest) = take_u64(bytes)?;
    let (reward_sum, rest) = take_f64(rest)?;
    let (decayed_exposures, rest) = take_f64(rest)?;
    let (decayed_reward_sum, rest) = take_f64(rest)?;
    let (expected_exposures, rest) = take_f64(rest)?;
    let (decayed_at_ms, rest) = take_varint(rest)?;
    expect_end(rest, "arm counters")?;
    Ok(ArmCounters {
        exposures,
        reward_sum,
        decayed_exposures,
        decayed_reward_sum,
        decayed_at_ms,
        expected_exposures,
    })
}

/// Layout: exposures varint · reward_sum f64 big-endian. 9–18 bytes, one per arm that ever
/// lost a unit to a re-assignment.
pub fn encode_moved_away(moved: &MovedAway) -> Vec<u8> {
    let mut out = Vec::with_capacity(18);
    put_varint(&mut out, moved.exposures);
    out.extend_from_slice(&moved.reward_sum.to_be_bytes());
    out
}

/// Inverse of [`encode_moved_away`].
pub fn decode_moved_away(bytes: &[u8]) -> Result<MovedAway, StoreError> {
    let (exposures, rest) = take_varint(bytes)?;
    let (reward_sum, rest) = take_f64(rest)?;
    expect_end(rest, "moved-away counts")?;
    Ok(MovedAway {
        exposures,
        reward_sum,
    })
}

const STARTED_PRESENT: u8 = 0b01;
const DECISION_PRESENT: u8 = 0b10;

/// Layout: flags u8 · started_ms varint if flagged · decision as compact JSON (the rest of the
/// value) if flagged.
pub fn encode_epoch_info(info: &EpochInfo) -> Vec<u8> {
    let mut flags = 0;
    if info.started_ms.is_some() {
        flags |= STARTED_PRESENT;
    }
    if info.decision.is_some() {
        flags |= DECISION_PRESENT;
    }
    let mut out = vec![flags];
    if let Some(started_ms) = info.started_ms {
        put_varint(&mut out, started_ms);
    }
    if let Some(decision) = &info.decision {
        out.extend_from_slice(&json_bytes(decision));
    }
    out
}

/// Inverse of [`encode_epoch_info`].
pub fn decode_epoch_info(bytes: &[u8]) -> Result<EpochInfo, StoreError> {
    let (&flags, rest) = bytes
        .split_first()
        .ok_or_else(|| corrupt("empty epoch record"))?;
    if flags & !(STARTED_PRESENT | DECISION_PRESENT) != 0 {
        return Err(corrupt("unknown epoch record flags"));
    }
    let (started_ms, rest) = if flags & STARTED_PRESENT != 0 {
        let (started_ms, rest) = take_varint(rest)?;
        (Some(started_ms), rest)
    } else {
        (None, rest)
    };
    let decision = if flags & DECISION_PRESENT != 0 {
        Some(take_json(rest, "stopping decision")?)
    } else {
        expect_end(rest, "epoch record")?;
        None
    };
    Ok(EpochInfo {
        started_ms,
        decision,
    })
}

/// The compact JSON of a history point as it is stored: its arms (the time is in the key).
pub fn history_json(point: &HistoryPoint) -> Vec<u8> {
    json_bytes(&StoredHistoryRef { arms: &point.arms })
}

/// A history point plus the group commit that wrote it (same durability rule as sticky
/// records). Layout: seq varint · compact JSON (the rest of the value, see [`history_json`]).
pub fn encode_history(point_json: &[u8], seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + point_json.len());
    put_varint(&mut out, seq);
    out.extend_from_slice(point_json);
    out
}

/// Inverse of [`encode_history`]: the point's arms and its commit sequence number.
pub fn decode_history(bytes: &[u8]) -> Result<(Vec<HistoryArm>, u64), StoreError> {
    let (seq, rest) = take_varint(bytes)?;
    let stored: StoredHistory = take_json(rest, "history point")?;
    Ok((stored.arms, seq))
}

/// An epoch's spec plus the group commit that wrote it (same durability rule as history
/// points). Layout: seq varint · compact JSON of the [`EpochSpec`] (the rest of the value).
pub fn encode_epoch_spec(spec_json: &[u8], seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + spec_json.len());
    put_varint(&mut out, seq);
    out.extend_from_slice(spec_json);
    out
}

/// Inverse of [`encode_epoch_spec`]: the spec and its commit sequence number.
pub fn decode_epoch_spec(bytes: &[u8]) -> Result<(EpochSpec, u64), StoreError> {
    let (seq, rest) = take_varint(bytes)?;
    Ok((take_json(rest, "epoch spec")?, seq))
}

/// The compact JSON text of a typed record (see `records` for why the bytes match the untyped
/// records of older builds).
pub fn json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    // Cannot fail: the records have string keys only, and non-finite numbers become `null`.
    serde_json::to_vec(value).unwrap_or_default()
}

fn take_json<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|error| corrupt(&format!("{what} is not what this build writes: {error}")))
}

/// A bare big-endian u64 (per-request exposures, event-id deadlines, meta values).
pub fn encode_u64(value: u64) -> [u8; 8] {
    value.to_be_bytes()
}

/// Inverse of [`encode_u64`].
pub fn decode_u64(bytes: &[u8], what: &str) -> Result<u64, StoreError> {
    let (value, rest) = take_u64(bytes)?;
    expect_end(rest, what)?;
    Ok(value)
}

/// A bare big-endian f64 (folded token rewards).
pub fn encode_f64(value: f64) -> [u8; 8] {
    value.to_be_bytes()
}

/// Inverse of [`encode_f64`].
pub fn decode_f64(bytes: &[u8], what: &str) -> Result<f64, StoreError> {
    let (value, rest) = take_f64(bytes)?;
    expect_end(rest, what)?;
    Ok(value)
}

/// The credit mark of one token assignment as formats 1 to 6 kept it (a sled key each): which
/// arm got how much, and until when the mark must be kept. Read only by the migration to
/// format 7 (`migrate`, `mark_log`); written only by tests that build older stores.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenMark {
    pub expiry_ms: u64,
    pub reward: f64,
    /// When the token was issued, and the propensity the policy had: what an off-policy
    /// analysis of per-request experiments needs (their assignments are not recorded).
    pub issued_ms: u64,
    pub propensity: f64,
    /// When the reward arrived; `None` in marks written before it was kept.
    pub credited_ms: Option<u64>,
    pub variant: String,
}

/// Marks the arrival time in a token mark. Variant ids never start with a 0x00 byte (they
/// are `[a-z0-9_-]`), so a mark written before the field existed, whose variant follows the
/// propensity directly, reads back unambiguously.
const CREDITED_AT_MARK: u8 = 0x00;

/// Layout: expiry_ms varint · reward f64 · issued_ms varint · propensity f64 · (0x00 ·
/// credited_ms varint, if known) · variant (rest).
#[cfg(test)]
pub fn encode_token_mark(mark: &TokenMark) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + mark.variant.len());
    put_varint(&mut out, mark.expiry_ms);
    out.extend_from_slice(&mark.reward.to_be_bytes());
    put_varint(&mut out, mark.issued_ms);
    out.extend_from_slice(&mark.propensity.to_be_bytes());
    if let Some(credited_ms) = mark.credited_ms {
        out.push(CREDITED_AT_MARK);
        put_varint(&mut out, credited_ms);
    }
    out.extend_from_slice(mark.variant.as_bytes());
    out
}

/// Inverse of [`encode_token_mark`].
pub fn decode_token_mark(bytes: &[u8]) -> Result<TokenMark, StoreError> {
    let (expiry_ms, rest) = take_varint(bytes)?;
    let (reward, rest) = take_f64(rest)?;
    let (issued_ms, rest) = take_varint(rest)?;
    let (propensity, rest) = take_f64(rest)?;
    let (credited_ms, rest) = match rest.split_first() {
        Some((&CREDITED_AT_MARK, after)) => {
            let (credited_ms, rest) = take_varint(after)?;
            (Some(credited_ms), rest)
        }
        _ => (None, rest),
    };
    Ok(TokenMark {
        expiry_ms,
        reward,
        issued_ms,
        propensity,
        credited_ms,
        variant: utf8(rest, "token variant id")?,
    })
}

/// A secret plus the group commit that wrote it, as banditd kept secrets in sled before they
/// moved to their own files (`secret_file`); now only tests build such stores.
#[cfg(test)]
pub fn encode_secret(secret: &[u8], seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + secret.len());
    put_varint(&mut out, seq);
    out.extend_from_slice(secret);
    out
}

/// Inverse of `encode_secret`: the secret bytes and their commit sequence number, read when a
/// store written by an older banditd is migrated.
pub fn decode_secret(bytes: &[u8]) -> Result<(Vec<u8>, u64), StoreError> {
    let (seq, rest) = take_varint(bytes)?;
    Ok((rest.to_vec(), seq))
}

fn take_f64(bytes: &[u8]) -> Result<(f64, &[u8]), StoreError> {
    let (bits, rest) = take_u64(bytes)?;
    Ok((f64::from_bits(bits), rest))
}

fn expect_end(rest: &[u8], what: &str) -> Result<(), StoreError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(corrupt(&format!("trailing bytes after {what}")))
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
