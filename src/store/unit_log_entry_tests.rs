//! The compact entry layout: every field combination round-trips bit for bit, format-5 values
//! still decode, malformed values are refused without a panic, and what an entry costs.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::store::keys;
use crate::store::test_support::T0_MS;
use crate::store::types::StickyRecord;

/// A decoded entry with the floats as bits, so NaN and -0.0 compare exactly.
type Exact = (
    Vec<u8>,
    Option<(String, u64, u64, Option<u64>, Option<u64>, u64)>,
);

fn exact(unit: &[u8], record: Option<&StickyRef<'_>>) -> Exact {
    (
        unit.to_vec(),
        record.map(|r| {
            (
                r.variant.to_owned(),
                r.assigned_ms,
                r.propensity.to_bits(),
                r.reward.map(f64::to_bits),
                r.rewarded_ms,
                r.seq,
            )
        }),
    )
}

fn decoded(value: &[u8], seq: u64) -> Vec<Exact> {
    entries(value, seq)
        .map(|entry| {
            let entry = entry.expect("a value the encoder wrote decodes");
            exact(entry.unit, entry.record.as_ref())
        })
        .collect()
}

/// What a format-5 build wrote: unit and `codec::encode_sticky` record, length-prefixed.
fn format_5_value(pushed: &[(Vec<u8>, Option<StickyRef<'_>>)]) -> Vec<u8> {
    let mut value = Vec::new();
    for (unit, record) in pushed {
        keys::put_bytes(&mut value, unit);
        let bytes = record
            .map(|r| codec::encode_sticky(&r.to_record(), r.seq))
            .unwrap_or_default();
        keys::put_bytes(&mut value, &bytes);
    }
    value
}

fn sticky(variant: &str, seq: u64) -> StickyRef<'_> {
    StickyRef {
        variant,
        assigned_ms: T0_MS,
        propensity: 0.5,
        reward: None,
        rewarded_ms: None,
        seq,
    }
}

#[test]
fn every_field_combination_round_trips_bit_for_bit() {
    const SEQ: u64 = 1_000;
    let variants = ["control", "", "bold-ü", "control"];
    let seqs = [SEQ, SEQ - 1, SEQ + 1, 0, u64::MAX];
    let assigned = [T0_MS, 0, u64::MAX, T0_MS - 5_000];
    let propensities = [0.5, 1.0, 1.0 / 3.0, f64::MIN_POSITIVE, -0.0, f64::NAN];
    let rewards = [
        None,
        Some(0.0),
        Some(1.0),
        Some(-0.0),
        Some(0.25),
        Some(f64::NAN),
    ];
    let rewarded = [None, Some(T0_MS + 1_500), Some(0), Some(u64::MAX)];
    let mut pushed = Vec::new();
    for (n, &variant) in variants.iter().enumerate() {
        for &seq in &seqs {
            for &assigned_ms in &assigned {
                for &propensity in &propensities {
                    for &reward in &rewards {
                        for &rewarded_ms in &rewarded {
                            let unit = format!("unit-{n}-{}", pushed.len()).into_bytes();
                            let record = StickyRef {
                                variant,
                                assigned_ms,
                                propensity,
                                reward,
                                rewarded_ms,
                                seq,
                            };
                            pushed.push((unit, Some(record)));
                        }
                    }
                }
            }
        }
        pushed.push((b"removed".to_vec(), None));
    }
    let mut encoder = ValueEncoder::new(SEQ, 0);
    for (unit, record) in &pushed {
        encoder.push(unit, record.as_ref());
    }
    let value = encoder.finish();
    let expected: Vec<_> = pushed
        .iter()
        .map(|(unit, record)| exact(unit, record.as_ref()))
        .collect();
    assert_eq!(decoded(&value, SEQ), expected);
    assert_eq!(decoded(&format_5_value(&pushed), SEQ), expected);
}

#[test]
fn random_values_round_trip_with_a_fixed_seed() {
    let mut rng = StdRng::seed_from_u64(14);
    let variants = ["control", "bold", "quiet", "a-much-longer-variant-name"];
    let propensities = [0.5, 0.25, 1.0, 0.123_456_789];
    for _ in 0..200 {
        let seq = rng.random_range(1..1_000_000);
        let mut pushed = Vec::new();
        for _ in 0..rng.random_range(1..80) {
            let unit: Vec<u8> = (0..rng.random_range(1..=256))
                .map(|_| rng.random())
                .collect();
            if rng.random_range(0..10) == 0 {
                pushed.push((unit, None));
                continue;
            }
            let assigned_ms = T0_MS + rng.random_range(0..86_400_000);
            let reward = match rng.random_range(0..4) {
                0 => None,
                1 => Some(0.0),
                2 => Some(1.0),
                _ => Some(rng.random::<f64>()),
            };
            let record = StickyRef {
                variant: variants[rng.random_range(0..variants.len())],
                assigned_ms,
                propensity: if rng.random() {
                    propensities[rng.random_range(0..propensities.len())]
                } else {
                    rng.random()
                },
                reward,
                rewarded_ms: reward
                    .filter(|_| rng.random())
                    .map(|_| assigned_ms + rng.random_range(0..3_600_000)),
                seq: if rng.random_range(0..4) == 0 {
                    rng.random_range(0..seq + 10)
                } else {
                    seq
                },
            };
            pushed.push((unit, Some(record)));
        }
        let mut encoder = ValueEncoder::new(seq, 0);
        for (unit, record) in &pushed {
            encoder.push(unit, record.as_ref());
        }
        let expected: Vec<_> = pushed
            .iter()
            .map(|(unit, record)| exact(unit, record.as_ref()))
            .collect();
        assert_eq!(decoded(&encoder.finish(), seq), expected);
    }
}

/// A value of `count` bulk-event credits as the load benchmark sends them: 12-byte unit ids,
/// two arms at one propensity each, assigned within the last minute, rewarded 0 or 1.
fn bulk_credits(count: u64) -> Vec<(Vec<u8>, StickyRecord)> {
    (0..count)
        .map(|n| {
            let assigned_ms = T0_MS + (n * 7_919) % 60_000;
            let record = StickyRecord {
                variant: if n % 2 == 0 { "control" } else { "bold" }.to_owned(),
                assigned_ms,
                propensity: if n % 2 == 0 { 0.537_5 } else { 0.462_5 },
                reward: Some(if n % 3 == 0 { 1.0 } else { 0.0 }),
                rewarded_ms: Some(T0_MS + 60_000 + n),
            };
            (format!("u-{:010}", n * 104_729).into_bytes(), record)
        })
        .collect()
}

#[test]
fn a_bulk_event_credit_takes_about_half_the_bytes_of_format_5() {
    const SEQ: u64 = 123_456;
    let credits = bulk_credits(60);
    let pushed: Vec<_> = credits
        .iter()
        .map(|(unit, record)| {
            let mut r = StickyRef::from(record);
            r.seq = SEQ;
            (unit.clone(), Some(r))
        })
        .collect();
    let mut encoder = ValueEncoder::new(SEQ, 0);
    for (unit, record) in &pushed {
        encoder.push(unit, record.as_ref());
    }
    let compact = encoder.finish().len() as f64 / 60.0;
    let format_5 = format_5_value(&pushed).len() as f64 / 60.0;
    println!("bytes per bulk credit entry: format 5 {format_5:.1}, format 6 {compact:.1}");
    assert!(format_5 > 50.0, "{format_5}");
    assert!(compact < 28.0, "{compact}");
}

#[test]
fn malformed_values_are_corrupt_not_a_panic() {
    let mut encoder = ValueEncoder::new(7, 0);
    encoder.push(b"u1", Some(&sticky("control", 7)));
    encoder.push(b"u2", None);
    let mut credited = sticky("bold", 3);
    credited.reward = Some(0.75);
    credited.rewarded_ms = Some(T0_MS + 9);
    encoder.push(b"u3", Some(&credited));
    let value = encoder.finish();
    // Every cut either ends on an entry boundary (fewer entries) or is refused.
    let whole = decoded(&value, 7);
    for cut in VALUE_TAG.len()..value.len() {
        let result: Result<Vec<_>, _> = entries(&value[..cut], 7).collect();
        match result {
            Ok(prefix) => assert!(prefix.len() < whole.len(), "cut at {cut}"),
            Err(error) => assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}"),
        }
    }
    let corrupt_after_unit = |tail: &[u8]| {
        let mut value = VALUE_TAG.to_vec();
        keys::put_bytes(&mut value, b"u");
        value.extend_from_slice(tail);
        matches!(
            entries(&value, 7).collect::<Result<Vec<_>, _>>(),
            Err(StoreError::Corrupt(_))
        )
    };
    for (tail, what) in [
        (vec![0b1000_0000], "unknown head bits"),
        (vec![0b0000_1000], "a removal with record bits"),
        (vec![HAS_RECORD, 0, 1], "a variant never defined"),
        (
            vec![HAS_RECORD | SEQ_DIFFERS, 0, 0],
            "a seq difference of zero",
        ),
        (
            vec![HAS_RECORD, 0, 0, 2, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0],
            "a variant that is not UTF-8",
        ),
        (vec![HAS_RECORD, 0, 0, 1, b'a', 0, 0], "a short propensity"),
        (vec![HAS_RECORD, 0xff], "a cut varint"),
    ] {
        assert!(corrupt_after_unit(&tail), "{what}");
    }
    let mut rng = StdRng::seed_from_u64(6);
    for _ in 0..2_000 {
        let mut noisy = value.clone();
        let at = rng.random_range(VALUE_TAG.len()..noisy.len());
        noisy[at] = rng.random();
        // Any outcome but a panic: a flipped byte may still decode to some record.
        let _ = entries(&noisy, 7).collect::<Result<Vec<_>, _>>();
    }
}

#[test]
fn no_format_5_value_starts_with_the_tag() {
    for len in 0..=crate::engine::MAX_UNIT_BYTES * 4 {
        let mut prefix = Vec::new();
        keys::put_varint(&mut prefix, len as u64);
        assert!(!prefix.starts_with(&VALUE_TAG), "unit length {len}");
    }
}
