//! Tests of the sled store's value encodings (`codec`): round trips, compact sizes, and
//! every malformed or truncated value refused as corrupt rather than misread.

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
