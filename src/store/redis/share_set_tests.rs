//! A commit's new units name their expected-exposure shares through share sets (op `W` of
//! `apply.lua`), declared once per call, variant, time and half-life, rather than carrying
//! them one by one: the script then adds each set's shares once per call. The counters stay
//! exact (`cost_tests` and the audit check the sums through the store).

use std::sync::Arc;

use super::call::Call;
use super::tests::harness::RedisServer;
use super::tests::{open, tally};
use super::*;
use crate::store::test_support::{T0_MS, block_on, epoch, record};

#[test]
fn a_call_of_new_units_declares_each_variants_shares_once_and_sends_no_argument_a_unit() {
    let mut call = Call::new(&epoch(), 0);
    let tally = Tally {
        allocation: Arc::from(vec![
            ("control".to_owned(), 0.2),
            ("bold".to_owned(), 0.3),
            ("calm".to_owned(), 0.5),
        ]),
        ..tally(T0_MS)
    };
    let variants = ["control", "bold", "calm"];
    let before = call.args.len();
    for i in 0..90 {
        let variant = variants[i % 3];
        call.sticky("I", &format!("u{i}"), "", &record(variant, T0_MS), &tally);
    }
    let declared = call.args.iter().filter(|arg| *arg == "W").count();
    assert_eq!(
        declared,
        3,
        "one share set per variant: {:?}",
        &call.args[..40]
    );
    // A set: W, name, variant, time, half-life, count, then three (variant, micro) pairs; the
    // units themselves are packed into op N (one argument for the call), not sent one by one.
    assert_eq!(call.args.len() - before, 3 * (6 + 2 * 3));
    // Another time or half-life is another set.
    let later = Tally {
        now_ms: T0_MS + 1,
        ..tally.clone()
    };
    call.sticky("I", "u90", "", &record("bold", T0_MS + 1), &later);
    assert_eq!(call.args.iter().filter(|arg| *arg == "W").count(), 4);
}

#[test]
fn new_units_under_a_half_life_at_several_times_count_what_one_at_a_time_counts() {
    // The same units, at the same times, written concurrently (shared calls, share sets) and
    // one at a time (a call each): the same raw, decayed and expected counts.
    let half_life = Tally {
        half_life_ms: Some(60_000),
        ..tally(T0_MS)
    };
    let at = |i: u64| Tally {
        now_ms: T0_MS + (i % 4) * 1000,
        ..half_life.clone()
    };
    let counts = |concurrent: bool| {
        let server = RedisServer::start();
        let store = open(&server);
        block_on(async {
            let writes = (0..40u64).map(|i| {
                let variant = if i % 3 == 0 { "bold" } else { "control" };
                let tally = at(i);
                store.insert_sticky(
                    &epoch(),
                    &format!("u{i}"),
                    record(variant, tally.now_ms),
                    tally,
                )
            });
            if concurrent {
                for written in futures_util::future::join_all(writes).await {
                    written.unwrap();
                }
            } else {
                for write in writes {
                    write.await.unwrap();
                }
            }
            assert!(store.audit().await.unwrap().is_clean());
            store.counters(&epoch()).await.unwrap()
        })
    };
    let (shared, alone) = (counts(true), counts(false));
    for variant in ["bold", "control"] {
        let (a, b) = (&shared[variant], &alone[variant]);
        assert_eq!(a.exposures, b.exposures, "{variant}");
        assert_eq!(a.expected_exposures, b.expected_exposures, "{variant}");
        let tolerance = 1e-12 * b.decayed_exposures.abs().max(1.0);
        assert!(
            (a.decayed_exposures - b.decayed_exposures).abs() <= tolerance,
            "{variant}: {} vs {}",
            a.decayed_exposures,
            b.decayed_exposures
        );
    }
}
