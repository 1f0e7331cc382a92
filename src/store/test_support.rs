//! Builders shared by the store's tests.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use super::sled::SledStore;
use super::types::{
    ArmCounters, Epoch, RewardOp, RewardOutcome, RewardTarget, StickyRecord, Tally,
};

pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;
pub const T0_MS: u64 = 1_700_000_000_000;

/// Runs one future to completion on a fresh current-thread runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
        .block_on(future)
}

pub fn open(dir: &Path) -> SledStore {
    SledStore::open(dir).expect("store opens")
}

/// The raw sled database of a closed store, for tests that tamper with it. Waits for the
/// directory lock like `SledStore::open` does (sled releases it a little after the last drop).
pub fn raw_db(dir: &Path) -> ::sled::Db {
    super::disk::open_db(dir, super::sled::DEFAULT_PAGE_CACHE_MB)
        .expect("the closed store releases its directory lock")
}

/// A fresh sled database in a temp dir (kept alive by the returned guard), for tests of the
/// layers under the store.
pub fn temp_db() -> (tempfile::TempDir, ::sled::Db) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = raw_db(dir.path());
    (dir, db)
}

pub fn epoch() -> Epoch {
    epoch_of("homepage-headline", 1)
}

/// The epoch of `experiment` at `revision`.
pub fn epoch_of(experiment: &str, revision: u32) -> Epoch {
    Epoch {
        experiment: experiment.to_owned(),
        revision,
    }
}

pub fn record(variant: &str, assigned_ms: u64) -> StickyRecord {
    StickyRecord {
        variant: variant.to_owned(),
        assigned_ms,
        propensity: 0.5,
        reward: None,
        rewarded_ms: None,
    }
}

/// A reward for a sticky unit arriving at `at_ms` without a timestamp, with a 7-day window.
pub fn unit_reward(event_id: &str, unit: &str, reward: f64, at_ms: u64) -> RewardOp {
    RewardOp {
        epoch: epoch(),
        event_id: event_id.to_owned(),
        target: RewardTarget::Unit(unit.to_owned()),
        reward,
        occurred_ms: None,
        now_ms: at_ms,
        window_ms: 7 * DAY_MS,
        half_life_ms: None,
    }
}

/// A reward for a token issued at `issued_ms`, arriving at `at_ms` without a timestamp, 7-day
/// window.
pub fn token_reward(
    event_id: &str,
    assignment_id: &str,
    variant: &str,
    issued_ms: u64,
    reward: f64,
    at_ms: u64,
) -> RewardOp {
    RewardOp {
        target: RewardTarget::Token {
            assignment_id: assignment_id.to_owned(),
            variant: variant.to_owned(),
            issued_ms,
            propensity: 0.5,
            confirmed_only: false,
        },
        ..unit_reward(event_id, "", reward, at_ms)
    }
}

/// A write context at `now_ms` without a half-life and without an allocation (so each
/// exposure's expectation goes to its own arm).
pub fn tally(now_ms: u64) -> Tally {
    Tally {
        now_ms,
        half_life_ms: None,
        allocation: Arc::from(Vec::new()),
    }
}

/// A write context with a half-life and an allocation of `(variant, probability)` pairs.
pub fn tally_with(now_ms: u64, half_life_ms: Option<u64>, allocation: &[(&str, f64)]) -> Tally {
    Tally {
        now_ms,
        half_life_ms,
        allocation: allocation
            .iter()
            .map(|(variant, probability)| ((*variant).to_owned(), *probability))
            .collect(),
    }
}

/// The raw N and R of an arm.
pub fn raw(counters: &ArmCounters) -> (u64, f64) {
    (counters.exposures, counters.reward_sum)
}

/// Every file and directory under `dir` (not following symlinks), `dir` excluded.
pub fn every_path(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable dir").flatten() {
        let path = entry.path();
        if std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir()) {
            found.extend(every_path(&path));
        }
        found.push(path);
    }
    found
}

/// Gives a store some of every kind of write (sticky records, per-request exposures, rewards,
/// an expiry pass) and waits until they are durable.
pub fn write_a_little_of_everything(store: &SledStore) {
    use super::Store;
    for unit in ["u1", "u2", "u3"] {
        block_on(store.insert_sticky(&epoch(), unit, record("control", T0_MS), tally(T0_MS)))
            .expect("sticky write");
    }
    store.count_exposure(&epoch(), "bold", tally(T0_MS));
    block_on(store.apply_rewards(vec![unit_reward("e1", "u1", 1.0, T0_MS)])).expect("rewards");
    block_on(store.expire(T0_MS + 30 * DAY_MS)).expect("expiry pass");
}

/// A stopping decision for `variant` at `decided_ms` (the numbers are arbitrary).
pub fn decision(variant: &str, decided_ms: u64) -> crate::store::Decision {
    crate::store::Decision {
        decided_ms,
        expected_loss: 0.0005,
        exposures: [(variant.to_owned(), 500)].into(),
        prob_best: 0.97,
        rule: crate::store::DecisionRule::default(),
        variant: variant.to_owned(),
    }
}

/// A history point at `at_ms` with one arm whose variant id is `tag` (what a test compares).
pub fn point(at_ms: u64, tag: &str) -> crate::store::HistoryPoint {
    crate::store::HistoryPoint {
        at_ms,
        arms: vec![crate::store::HistoryArm {
            expected_loss: 0.01,
            exposures: 10,
            posterior_mean: 0.3,
            prob_best: 0.5,
            rewards: 3.0,
            traffic_share: 0.5,
            variant: tag.to_owned(),
        }],
    }
}

/// A guardrail halt with fixed evidence, for the tests of how stores keep halts.
pub fn halt(metric: &str, variant: &str, halted_ms: u64) -> super::Halt {
    super::Halt {
        metric: metric.into(),
        variant: variant.into(),
        against: "control".into(),
        halted_ms,
        direction: "lower_is_better".into(),
        max_relative_change: 0.1,
        confidence: 0.99,
        prob_worse: 0.995,
        exposures: 2000,
        against_exposures: 2100,
        events: 60.0,
        against_events: 20.0,
        posterior: [61.0, 1941.0],
        against_posterior: [21.0, 2081.0],
    }
}

/// What sled holds under `key` now, durable or not. A sticky key has no value of its own since
/// store format 5: its unit's latest record in the unit log answers, encoded as the codec does.
pub fn sled_value(db: &::sled::Db, key: &[u8]) -> Option<Vec<u8>> {
    if key.first() == Some(&super::keys::KIND_STICKY) {
        let (latest, _) = super::unit_log::latest_records(db).expect("the unit log decodes");
        return latest
            .get(key)
            .map(|record| super::codec::encode_sticky(record, 0));
    }
    db.get(key).expect("sled reads").map(|value| value.to_vec())
}

/// Copies a data dir, files and subdirectories (the redo log's `wal/`), as a crash would leave
/// it for another open: what the kernel holds, synced or not.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Asserts that every reward of a batch was applied (none a duplicate or refused).
pub fn assert_all_applied(outcomes: &[RewardOutcome]) {
    let not_applied: Vec<_> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| !matches!(o, RewardOutcome::Applied { .. }))
        .collect();
    assert!(not_applied.is_empty(), "not applied: {not_applied:?}");
}
