//! Unit rewards judged by the replica before their call (`judged`, `call_judged`; op `B`'s
//! kind `V`): the same outcomes, records, counters, delay bins and audit as the script's own
//! judging (the same scenario run with judging off, in another epoch of the same server), and
//! each way a judgment can be wrong by the time of the call taken back by the script.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::tests::harness::RedisServer;
use super::tests::{open, tally};
use super::*;
use crate::store::test_support::{DAY_MS, T0_MS, block_on, epoch_of, record, token_reward};

const HOUR_MS: u64 = 3_600_000;

fn reward(epoch: &Epoch, id: &str, unit: &str, amount: f64, h: Option<u64>) -> RewardOp {
    RewardOp {
        epoch: epoch.clone(),
        half_life_ms: h,
        ..crate::store::test_support::unit_reward(id, unit, amount, T0_MS + 2 * HOUR_MS)
    }
}

/// The units of the mixed scenarios: `f0`…`f39` assigned by `filler` (another replica: not in
/// `store`'s cache) over both arms and ~4.5 hours, `c0`…`c9` by `store` itself (cached).
pub(super) async fn assign_mixed_units(store: &RedisStore, filler: &RedisStore, epoch: &Epoch) {
    for i in 0..40u64 {
        let variant = if i % 3 == 0 { "b" } else { "a" };
        let unit = format!("f{i}");
        let at = T0_MS + i * 7 * 60_000;
        filler
            .insert_sticky(epoch, &unit, record(variant, at), tally(at))
            .await
            .unwrap();
    }
    for i in 0..10u64 {
        let at = T0_MS + i * 1_000;
        store
            .insert_sticky(epoch, &format!("c{i}"), record("a", at), tally(at))
            .await
            .unwrap();
    }
}

/// Two calls of rewards of every kind: units another replica assigned (this one reads their
/// records before the call) and units this one assigned (its cache holds them), amounts and
/// assignment times that spread over several delay bins and arms, and in the same calls what
/// the replica must not judge as applied or cannot judge alone: a window closed, a timestamp
/// before the assignment, no assignment, a unit rewarded twice, an id twice in one call and
/// again in the next, a unit already rewarded, tokens. Returns the outcomes of both calls.
async fn mixed(
    store: &RedisStore,
    filler: &RedisStore,
    epoch: &Epoch,
    h: Option<u64>,
) -> Vec<Vec<RewardOutcome>> {
    assign_mixed_units(store, filler, epoch).await;
    let amounts = [0.25, 0.5, 1.0, 0.3, 0.7, 0.123_457];
    let mut first = Vec::new();
    for i in 0..20 {
        let id = format!("e-f{i}");
        first.push(reward(epoch, &id, &format!("f{i}"), amounts[i % 6], h));
    }
    for i in 0..5 {
        let id = format!("e-c{i}");
        first.push(reward(epoch, &id, &format!("c{i}"), amounts[i % 6], h));
    }
    let closed = RewardOp {
        window_ms: 1,
        ..reward(epoch, "closed", "c5", 1.0, h)
    };
    let early = RewardOp {
        occurred_ms: Some(T0_MS - DAY_MS),
        ..reward(epoch, "early", "f20", 1.0, h)
    };
    let token = RewardOp {
        epoch: epoch.clone(),
        half_life_ms: h,
        ..token_reward("tok", "as-1", "b", T0_MS, 0.5, T0_MS + 2 * HOUR_MS)
    };
    first.extend([
        closed,
        early,
        reward(epoch, "nobody", "nobody", 1.0, h),
        reward(epoch, "again", "f1", 1.0, h),
        reward(epoch, "dup", "f21", 0.5, h),
        reward(epoch, "dup", "f22", 0.5, h),
        token,
        reward(epoch, "e-f23", "f23", 0.7, h),
    ]);
    let mut second = vec![
        reward(epoch, "e-f0", "f24", 1.0, h),
        reward(epoch, "twice", "f0", 1.0, h),
        reward(epoch, "c0 again", "c0", 1.0, h),
        reward(epoch, "c6", "c6", 0.5, h),
    ];
    for i in 25..31 {
        let id = format!("e-f{i}");
        second.push(reward(epoch, &id, &format!("f{i}"), amounts[i % 6], h));
    }
    let mut outcomes = Vec::new();
    for ops in [first, second] {
        outcomes.push(store.apply_rewards(ops).await.unwrap());
    }
    outcomes
}

/// Records, counters and delay histograms of one epoch.
pub(super) type State = (
    Vec<(String, StickyRecord)>,
    HashMap<String, ArmCounters>,
    HashMap<String, DelayHistograms>,
);

/// Everything a reward changes that the store reads back: the records, the counters and the
/// delay histograms.
pub(super) async fn state(store: &RedisStore, epoch: &Epoch) -> State {
    (
        store.scan_sticky(epoch, None, 1_000).await.unwrap(),
        store.counters(epoch).await.unwrap(),
        store.delay_histograms(epoch).await.unwrap(),
    )
}

/// The decayed sums of the judged path add each group's sum once instead of each reward in
/// turn: every addition of n rounds by at most u = 2^-53 of the partial sum, the decay's
/// product once more, and a reward's weight (exp2 in Rust, pow in Lua) by a unit or two, so
/// both paths are within (n + 2)·u·Σ|terms| of the exact sum, and of each other within twice
/// that; 4(n + 2)·u·Σ leaves room. `sum` bounds Σ|terms| (every reward is at most 1).
fn within_rounding(judged: f64, scripted: f64, n: u64, sum: f64) -> bool {
    #[allow(clippy::cast_precision_loss)]
    let bound = 4.0 * (n as f64 + 2.0) * f64::EPSILON / 2.0 * sum;
    (judged - scripted).abs() <= bound
}

fn same_state(judged: &State, scripted: &State) {
    assert_eq!(judged.0, scripted.0, "records");
    assert_eq!(
        judged.2, scripted.2,
        "delay histograms (integer micro-units)"
    );
    let arms: Vec<&String> = judged.1.keys().collect();
    assert_eq!(judged.1.len(), scripted.1.len(), "arms {arms:?}");
    for (variant, a) in &judged.1 {
        let b = &scripted.1[variant];
        assert_eq!(
            (
                a.exposures,
                a.reward_sum,
                a.decayed_at_ms,
                a.expected_exposures
            ),
            (
                b.exposures,
                b.reward_sum,
                b.decayed_at_ms,
                b.expected_exposures
            ),
            "arm {variant}: raw counters exact"
        );
        let n = a.exposures.max(1);
        #[allow(clippy::cast_precision_loss)]
        let sum = n as f64;
        assert!(
            within_rounding(a.decayed_reward_sum, b.decayed_reward_sum, n, sum),
            "arm {variant}: decayed R {} against {}",
            a.decayed_reward_sum,
            b.decayed_reward_sum
        );
        assert!(
            within_rounding(a.decayed_exposures, b.decayed_exposures, n, sum),
            "arm {variant}: decayed N {} against {}",
            a.decayed_exposures,
            b.decayed_exposures
        );
    }
}

/// The mixed calls with and without the replica's judging, with and without a half-life:
/// equal outcomes, records, counters (the decayed sums within rounding) and histograms, a
/// clean audit, and the judged path taken by exactly the rewards the replica could judge.
#[test]
fn judged_rewards_end_as_the_scripts_judging_does() {
    let server = RedisServer::start();
    let (judging, scripted, filler) = (open(&server), open(&server), open(&server));
    scripted.set_judging(false);
    // The script's kind V judging, not the transaction of plain commands (`tx_tests`).
    judging.set_transactions(false);
    scripted.set_transactions(false);
    block_on(async {
        for (round, h) in [None, Some(DAY_MS)].into_iter().enumerate() {
            let on = epoch_of(&format!("on{round}"), 1);
            let off = epoch_of(&format!("off{round}"), 1);
            let (before, back) = (judging.predicted(), judging.taken_back());
            let judged = mixed(&judging, &filler, &on, h).await;
            let plain = mixed(&scripted, &filler, &off, h).await;
            assert_eq!(judged, plain, "outcomes, half-life {h:?}");
            // First call: f0..f19, c0..c4, the first "dup" and f23; second: c6 and f25..f30
            // (f24's id is the first call's: sent as V, answered D).
            assert_eq!(judging.predicted() - before, 20 + 5 + 1 + 1 + 1 + 6);
            // Only f24's: a call's second reward of a unit or an id is the script's to judge
            // ("again", the second "dup"), as is a record the rules refuse.
            assert_eq!(judging.taken_back() - back, 1);
            assert_eq!(scripted.predicted(), 0);
            same_state(&state(&judging, &on).await, &state(&scripted, &off).await);
            let credited = judged
                .iter()
                .flatten()
                .filter(|o| matches!(o, RewardOutcome::Applied { .. }))
                .count();
            assert_eq!(credited, 20 + 5 + 1 + 1 + 1 + 1 + 6, "and the token");
        }
        assert!(judging.audit().await.unwrap().is_clean());
    });
}

/// Units `f1`…`f{units}` assigned to `a` by `other`; then, on `store`'s first read before a
/// call of rewards (`judged` or the transaction's), `other` credits unit `f1` (event `x1`) and
/// re-assigns `f2` from `a` to `b`: both records change between the read and the call. True
/// in the answer once it ran.
pub(super) fn race_the_read(
    store: &RedisStore,
    other: &Arc<RedisStore>,
    epoch: &Epoch,
    units: usize,
) -> Arc<AtomicBool> {
    block_on(async {
        for i in 1..=units {
            other
                .insert_sticky(epoch, &format!("f{i}"), record("a", T0_MS), tally(T0_MS))
                .await
                .unwrap();
        }
    });
    let fired = Arc::new(AtomicBool::new(false));
    let (hook_epoch, hook_fired, hook_other) = (epoch.clone(), fired.clone(), Arc::clone(other));
    store.on_judged_read(Some(Box::new(move || {
        if hook_fired.swap(true, Ordering::SeqCst) {
            return;
        }
        let (epoch, other) = (hook_epoch.clone(), hook_other.clone());
        // Another thread: this hook runs on the store's own runtime.
        std::thread::spawn(move || {
            block_on(async {
                let credited = other
                    .apply_rewards(vec![reward(&epoch, "x1", "f1", 1.0, None)])
                    .await
                    .unwrap();
                assert!(
                    matches!(&credited[..], [RewardOutcome::Applied { variant }] if variant == "a"),
                    "{credited:?}"
                );
                let moved = other
                    .reassign_sticky(&epoch, "f2", "a", record("b", T0_MS + 1), tally(T0_MS + 1))
                    .await
                    .unwrap();
                assert!(moved.is_some_and(|(_, written)| written));
            });
        })
        .join()
        .unwrap();
    })));
    fired
}

/// A record another replica changes between this replica's read and its call: a reward
/// credited there (this reward is then `AlreadyRewarded`) and a re-assignment (this reward
/// then credits the new arm); the predicted credits of both are taken back, an unchanged unit
/// is still credited as judged.
#[test]
fn a_record_changed_between_the_read_and_the_call_is_judged_by_the_script() {
    let server = RedisServer::start();
    let (store, other) = (open(&server), Arc::new(open(&server)));
    // The script's kind V judging (`tx_tests` races the transaction).
    store.set_transactions(false);
    let epoch = epoch_of("raced", 1);
    let fired = race_the_read(&store, &other, &epoch, 3);
    block_on(async {
        let outcomes = store
            .apply_rewards(vec![
                reward(&epoch, "e1", "f1", 0.5, None),
                reward(&epoch, "e2", "f2", 0.5, None),
                reward(&epoch, "e3", "f3", 0.25, None),
            ])
            .await
            .unwrap();
        assert!(fired.load(Ordering::SeqCst), "the hook ran");
        let applied = |variant: &str| RewardOutcome::Applied {
            variant: variant.to_owned(),
        };
        assert_eq!(
            outcomes,
            vec![RewardOutcome::AlreadyRewarded, applied("b"), applied("a")]
        );
        assert_eq!(store.predicted(), 1, "f3 alone as judged");
        assert_eq!(store.taken_back(), 2, "f1's and f2's judgments");
        let counters = store.counters(&epoch).await.unwrap();
        assert_eq!(counters["a"].reward_sum, 1.25);
        assert_eq!(counters["b"].reward_sum, 0.5);
        let histograms = store.delay_histograms(&epoch).await.unwrap();
        let mass = |variant: &str| histograms[variant].delays.values().sum::<f64>();
        assert_eq!((mass("a"), mass("b")), (1.25, 0.5));
        assert!(store.audit().await.unwrap().is_clean());
    });
}
