//! Hand-rolled binary values of the sled store. Fixed layouts rather than serde: a sticky
//! record is the per-unit cost of the store (the disk budget is ~150 bytes per unit, key and
//! sled overhead included), and decoding never trusts stored bytes: anything malformed is
//! [`StoreError::Corrupt`], never a panic.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::StoreError;
use super::keys::{corrupt, put_bytes, put_varint, take_bytes, take_u64, take_varint, utf8};
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
/// id.
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
    put_bytes(&mut out, record.variant.as_bytes());
    if let Some(reward) = record.reward {
        out.extend_from_slice(&reward.to_be_bytes());
    }
    if let Some(rewarded_ms) = record.rewarded_ms {
        put_varint(&mut out, rewarded_ms);
    }
    out
}

/// Inverse of [`encode_sticky`].
pub fn decode_sticky(bytes: &[u8]) -> Result<StoredSticky, StoreError> {
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
    let record = StickyRecord {
        variant: utf8(variant, "variant id")?,
        assigned_ms,
        propensity,
        reward,
        rewarded_ms,
    };
    Ok(StoredSticky { record, seq })
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

/// The credit mark of one token assignment: which arm got how much, and until when the mark
/// must be kept.
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
mod tests {
    use super::*;

    fn record(reward: Option<f64>) -> StickyRecord {
        StickyRecord {
            variant: "bold\0ünï".to_owned(),
            assigned_ms: 1_700_000_000_123,
            propensity: 0.123_456_789,
            reward,
            rewarded_ms: None,
        }
    }

    #[test]
    fn sticky_records_round_trip_with_and_without_reward() {
        for reward in [None, Some(0.0), Some(0.75), Some(1.0)] {
            let bytes = encode_sticky(&record(reward), 12_345);
            let back = decode_sticky(&bytes).unwrap();
            assert_eq!(
                back,
                StoredSticky {
                    record: record(reward),
                    seq: 12_345
                }
            );
        }
    }

    #[test]
    fn a_rewarded_record_keeps_its_arrival_time_and_an_older_one_reads_without_it() {
        let rewarded = StickyRecord {
            rewarded_ms: Some(1_700_000_360_000),
            ..record(Some(1.0))
        };
        let bytes = encode_sticky(&rewarded, 5);
        assert_eq!(decode_sticky(&bytes).unwrap().record, rewarded);
        for len in 0..bytes.len() {
            assert!(matches!(
                decode_sticky(&bytes[..len]),
                Err(StoreError::Corrupt(_))
            ));
        }
        // The bytes an earlier build wrote for a rewarded unit: flags 0b01, no arrival time.
        let earlier = encode_sticky(&record(Some(1.0)), 5);
        assert_eq!(earlier[0], 0b01);
        assert_eq!(decode_sticky(&earlier).unwrap().record.rewarded_ms, None);
    }

    #[test]
    fn a_typical_sticky_record_is_small() {
        let typical = StickyRecord {
            variant: "control".to_owned(),
            assigned_ms: 1_700_000_000_000,
            propensity: 0.5,
            reward: None,
            rewarded_ms: None,
        };
        // flags 1 + seq 3 + assigned_ms 6 + propensity 8 + variant 1+7 = 26 bytes.
        assert_eq!(encode_sticky(&typical, 1_000_000).len(), 26);
    }

    #[test]
    fn every_truncation_of_a_sticky_record_is_corrupt() {
        let bytes = encode_sticky(&record(Some(0.5)), 99);
        for len in 0..bytes.len() {
            assert!(
                matches!(decode_sticky(&bytes[..len]), Err(StoreError::Corrupt(_))),
                "prefix of length {len} decoded"
            );
        }
    }

    #[test]
    fn trailing_garbage_and_unknown_flags_are_corrupt() {
        let mut bytes = encode_sticky(&record(None), 1);
        bytes.push(0);
        assert!(matches!(decode_sticky(&bytes), Err(StoreError::Corrupt(_))));
        let mut flagged = encode_sticky(&record(None), 1);
        flagged[0] = 0x80;
        assert!(matches!(
            decode_sticky(&flagged),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn arm_counters_and_token_marks_round_trip() {
        let arm = ArmCounters {
            exposures: 1 << 40,
            reward_sum: 12_345.678,
            decayed_exposures: 1e9 / 3.0,
            decayed_reward_sum: 0.1,
            decayed_at_ms: 1_700_000_000_000,
            expected_exposures: 2.0f64.powi(40) - 0.5,
        };
        let bytes = encode_arm(&arm);
        assert_eq!(decode_arm(&bytes).unwrap(), arm);
        assert_eq!(
            bytes.len(),
            40 + 6,
            "five fixed words and a six-byte timestamp"
        );
        for len in 0..bytes.len() {
            assert!(
                matches!(decode_arm(&bytes[..len]), Err(StoreError::Corrupt(_))),
                "prefix of length {len} decoded"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(decode_arm(&long), Err(StoreError::Corrupt(_))));
        let mark = TokenMark {
            expiry_ms: 1_700_000_000_000,
            reward: 0.25,
            issued_ms: 1_699_000_000_000,
            propensity: 0.125,
            credited_ms: Some(1_699_000_003_000),
            variant: "b/\0".to_owned(),
        };
        assert_eq!(decode_token_mark(&encode_token_mark(&mark)).unwrap(), mark);
        // A mark written before the arrival time was kept reads back without one.
        let old = TokenMark {
            credited_ms: None,
            ..mark.clone()
        };
        let old_bytes = encode_token_mark(&old);
        assert_eq!(old_bytes.len(), encode_token_mark(&mark).len() - 7);
        assert_eq!(decode_token_mark(&old_bytes).unwrap(), old);
        assert!(matches!(
            decode_token_mark(&[0x05, 1, 2]),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn moved_away_counts_round_trip_compactly_and_malformed_ones_are_corrupt() {
        for (exposures, reward_sum, len) in [(0, 0.0, 9), (3, 1.75, 9), (u64::MAX, 1e12, 18)] {
            let moved = MovedAway {
                exposures,
                reward_sum,
            };
            let bytes = encode_moved_away(&moved);
            assert_eq!(bytes.len(), len, "{moved:?}");
            assert_eq!(decode_moved_away(&bytes).unwrap(), moved);
        }
        let bytes = encode_moved_away(&MovedAway {
            exposures: 300,
            reward_sum: 0.5,
        });
        for len in 0..bytes.len() {
            assert!(
                matches!(
                    decode_moved_away(&bytes[..len]),
                    Err(StoreError::Corrupt(_))
                ),
                "prefix of length {len} decoded"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            decode_moved_away(&long),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            decode_moved_away(&[0xFF; 18]),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn epoch_records_round_trip_in_every_combination() {
        for started_ms in [None, Some(0), Some(1_700_000_000_000)] {
            for decision in [None, Some(decision())] {
                let info = EpochInfo {
                    started_ms,
                    decision,
                };
                assert_eq!(decode_epoch_info(&encode_epoch_info(&info)).unwrap(), info);
            }
        }
        assert_eq!(encode_epoch_info(&EpochInfo::default()), vec![0]);
    }

    #[test]
    fn undecodable_epoch_records_are_corrupt() {
        let info = EpochInfo {
            started_ms: Some(1_700_000_000_000),
            decision: Some(decision()),
        };
        let bytes = encode_epoch_info(&info);
        // Every cut either loses the varint or breaks the JSON.
        for len in 0..bytes.len() {
            assert!(
                matches!(
                    decode_epoch_info(&bytes[..len]),
                    Err(StoreError::Corrupt(_))
                ),
                "prefix of length {len} decoded"
            );
        }
        for bad in [
            vec![0x04],
            vec![0x00, 0x01],
            vec![0x02, b'{'],
            vec![0x02],
            [&[0x02][..], br#"{"winner":"bold"}"#].concat(),
        ] {
            assert!(
                matches!(decode_epoch_info(&bad), Err(StoreError::Corrupt(_))),
                "{bad:?} decoded"
            );
        }
    }

    #[test]
    fn history_points_round_trip_and_undecodable_ones_are_corrupt() {
        let point = HistoryPoint {
            at_ms: 7,
            arms: vec![HistoryArm {
                expected_loss: 0.01,
                exposures: 3,
                posterior_mean: 0.4,
                prob_best: 0.25,
                rewards: 1.0,
                traffic_share: 0.5,
                variant: "a".to_owned(),
            }],
        };
        let bytes = encode_history(&history_json(&point), 300);
        assert_eq!(decode_history(&bytes).unwrap(), (point.arms, 300));
        for bad in [
            vec![],
            vec![0x80],
            vec![0x01],
            vec![0x01, b'x'],
            vec![0x01, 0xFF],
            [&[0x01][..], br#"{"arms":[{"id":"a"}]}"#].concat(),
        ] {
            assert!(
                matches!(decode_history(&bad), Err(StoreError::Corrupt(_))),
                "{bad:?} decoded"
            );
        }
    }

    #[test]
    fn epoch_specs_round_trip_and_undecodable_ones_are_corrupt() {
        let spec = EpochSpec {
            document: serde_json::json!({"id": "home", "variants": [{"id": "a"}]}),
            priors: [(
                "a".to_owned(),
                crate::store::ArmPrior {
                    alpha: 25.0,
                    beta: 75.0,
                },
            )]
            .into(),
        };
        let bytes = encode_epoch_spec(&json_bytes(&spec), 77);
        assert_eq!(decode_epoch_spec(&bytes).unwrap(), (spec, 77));
        for bad in [
            vec![],
            vec![0x80],
            vec![0x01, b'{'],
            [&[0x01][..], br#"{"document":1}"#].concat(),
        ] {
            assert!(
                matches!(decode_epoch_spec(&bad), Err(StoreError::Corrupt(_))),
                "{bad:?} decoded"
            );
        }
    }

    #[test]
    fn json_bytes_are_compact() {
        let value = serde_json::json!({"a": [1, 2.5, "x y"]});
        assert_eq!(json_bytes(&value), br#"{"a":[1,2.5,"x y"]}"#.to_vec());
    }

    fn decision() -> crate::store::Decision {
        crate::store::Decision {
            decided_ms: 5,
            expected_loss: 0.0001,
            exposures: [("bold".to_owned(), 3)].into(),
            prob_best: 0.97,
            rule: crate::store::DecisionRule::default(),
            variant: "bold".to_owned(),
        }
    }

    #[test]
    fn secrets_and_scalars_round_trip() {
        let (secret, seq) = decode_secret(&encode_secret(&[0, 1, 255], 300)).unwrap();
        assert_eq!((secret, seq), (vec![0, 1, 255], 300));
        assert_eq!(decode_u64(&encode_u64(u64::MAX), "x").unwrap(), u64::MAX);
        assert_eq!(decode_f64(&encode_f64(-0.5), "x").unwrap(), -0.5);
        assert!(matches!(
            decode_u64(&[1, 2, 3], "x"),
            Err(StoreError::Corrupt(_))
        ));
    }
}
