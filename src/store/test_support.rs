//! Builders shared by the store's tests.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use super::{ArmCounters, Epoch, RewardOp, RewardTarget, SledStore, StickyRecord, Tally};

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

/// A store whose sticky cache holds at most `sticky_cache_entries` records (0: reads always go
/// to sled, for tests of the sled read path).
pub fn open_with_sticky_cache(dir: &Path, sticky_cache_entries: usize) -> SledStore {
    let options = super::StoreOptions {
        sticky_cache_entries,
        ..super::StoreOptions::default()
    };
    SledStore::open_with(dir, options).expect("store opens")
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
    Epoch {
        experiment: "homepage-headline".to_owned(),
        revision: 1,
    }
}

pub fn record(variant: &str, assigned_ms: u64) -> StickyRecord {
    StickyRecord {
        variant: variant.to_owned(),
        assigned_ms,
        propensity: 0.5,
        reward: None,
    }
}

/// A reward for a sticky unit that happened and arrived at `at_ms`, with a 7-day window.
pub fn unit_reward(event_id: &str, unit: &str, reward: f64, at_ms: u64) -> RewardOp {
    RewardOp {
        epoch: epoch(),
        event_id: event_id.to_owned(),
        target: RewardTarget::Unit(unit.to_owned()),
        reward,
        occurred_ms: at_ms,
        now_ms: at_ms,
        window_ms: 7 * DAY_MS,
        half_life_ms: None,
    }
}

/// A reward for a token issued at `issued_ms`, happening and arriving at `at_ms`, 7-day window.
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
