//! The store contract: one test suite, written once, that every [`Store`] backend must pass.
//!
//! The suite is a set of async functions generic over a [`Backend`] (a factory for one store
//! on a fresh, private location), and the [`store_contract_tests!`] macro, which expands to one
//! `#[test]` per function for a given backend. A backend's test module is therefore two items:
//!
//! ```ignore
//! struct RedisBackend { /* the server, the key prefix, the open store */ }
//!
//! impl contract::Backend for RedisBackend {
//!     type Store = RedisStore;
//!     async fn open() -> Self { /* fresh prefix or database on a test server; open the store */ }
//!     fn store(&self) -> &RedisStore { &self.store }
//!     async fn reopen(&mut self) { /* shut the store down, open a new one on the same keys */ }
//!     // Optional: fault injection for the health test (default: unsupported, test skipped).
//!     fn fail_next_commits(&self, commits: u32) -> bool { false }
//! }
//!
//! crate::store_contract_tests!(RedisBackend);
//! ```
//!
//! Each test runs on a fresh current-thread tokio runtime (`enable_all`), so a backend may use
//! tokio I/O and timers; concurrency is real where the backend has it (the sled writer thread,
//! a server), since the suite starts many requests before awaiting any. What the suite checks:
//!
//! - `sticky`: set-if-absent under concurrency (one winner, one exposure), compare-and-set
//!   re-assignment, paginated scans of sticky records;
//! - `rewards`: at-most-once events (also racing) and credits for units and tokens, counters
//!   equal to what the records imply (the trait's `audit`), paginated token credits, expiry
//!   after the window (never before it);
//! - `epochs`: first-write-wins decisions (racing, and across a restart), history ordering
//!   (oldest or newest first), ranges and replacement at the same time, the epoch's spec
//!   (last write wins, per epoch), epoch start, durability of every acknowledged write across
//!   a restart, health transitions where the backend can inject faults;
//! - `replicas`: a process's own replica report, live until it expires or is withdrawn.
//! - `confirm`: `exposure: on_render` confirmations, counted once with the allocation of
//!   their assignment, the ledger untouched, across a restart; `confirm_tokens`: per-request
//!   token confirmations counted once per assignment id (racing, across a restart), within
//!   `confirm_within`, their marks expiring after the windows, rewards only once confirmed.
//! - `delays`: the delay histograms, written with the counters they derive from (every
//!   counted exposure in its cohort, every credit in its delay bin), across a restart.

mod confirm;
mod confirm_tokens;
mod delays;
mod epochs;
mod guardrails;
mod replicas;
mod rewards;
mod sticky;

pub use confirm::*;
pub use confirm_tokens::*;
pub use delays::*;
pub use epochs::*;
pub use guardrails::*;
pub use replicas::*;
pub use rewards::*;
pub use sticky::*;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{ArmCounters, Store};
use crate::store::test_support::epoch;

/// A factory for one backend's store on a fresh, private location: what the suite needs to
/// test a backend. See the module docs for an example.
pub trait Backend: Sized {
    type Store: Store;

    /// A store on a new, empty location (a temp dir, a key prefix on a test server).
    fn open() -> impl std::future::Future<Output = Self>;

    /// The store currently open.
    fn store(&self) -> &Self::Store;

    /// Shuts the store down (everything acknowledged must be durable) and opens a new store on
    /// the same location: a process restart.
    fn reopen(&mut self) -> impl std::future::Future<Output = ()>;

    /// Makes the next `commits` durable writes fail as a broken disk or an unreachable server
    /// would, then heal by themselves. False if the backend cannot inject faults (the health
    /// test is then skipped for it).
    fn fail_next_commits(&self, _commits: u32) -> bool {
        false
    }
}

/// Expands to one `#[test]` per contract function for `$backend` (a [`Backend`]). Invoke it
/// inside a `#[cfg(test)]` module of the backend.
#[macro_export]
macro_rules! store_contract_tests {
    ($backend:ty) => {
        $crate::store_contract_tests!(@tests $backend;
            set_if_absent_has_one_winner_and_one_exposure_under_concurrency,
            a_reassignment_is_a_compare_and_set_with_one_winner,
            sticky_scans_page_through_every_unit_in_byte_order,
            an_event_id_is_applied_at_most_once_even_when_racing,
            an_assignment_is_credited_at_most_once_for_units_and_tokens,
            counters_equal_what_the_records_imply,
            token_credit_scans_page_through_every_mark,
            ids_and_marks_expire_after_the_window_and_not_before,
            the_first_decision_holds_against_racing_and_later_ones,
            history_is_ordered_ranged_and_replaced_at_the_same_time,
            an_epoch_spec_is_replaced_kept_per_epoch_and_durable,
            the_epoch_starts_at_its_first_counted_write_and_never_moves,
            acknowledged_writes_survive_a_restart,
            health_follows_a_failure_episode_and_writes_resume,
            a_replica_report_is_live_until_it_expires_or_is_withdrawn,
            a_confirmation_counts_once_with_the_allocation_of_its_assignment,
            a_token_confirmation_counts_once_even_when_racing_and_after_a_restart,
            a_reward_on_a_rendered_token_needs_its_confirmation,
            confirmation_marks_expire_after_their_windows_and_late_ones_are_refused,
            the_first_halt_of_an_arm_and_metric_holds_against_racing_and_later_ones,
            guardrail_events_count_once_per_assignment_and_metric,
            every_counted_exposure_and_credit_lands_in_the_delay_histograms,
        );
    };
    (@tests $backend:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::store::contract::run($crate::store::contract::$name::<$backend>());
            }
        )*
    };
}

/// Runs one contract test on a fresh runtime.
pub fn run<F: std::future::Future<Output = ()>>(test: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
        .block_on(test);
}

/// The epoch's counters, by variant.
async fn counters_of<S: Store>(store: &S) -> HashMap<String, ArmCounters> {
    store.counters(&epoch()).await.expect("counters read")
}

/// The raw N of one arm (0 if the arm has none).
async fn exposures_of<S: Store>(store: &S, variant: &str) -> u64 {
    counters_of(store)
        .await
        .get(variant)
        .map_or(0, |arm| arm.exposures)
}

/// Waits (at most 10 s) until `check` holds: per-request exposures are counted at a later
/// commit, and a failed backend recovers by itself.
async fn eventually<S: Store, F>(store: &S, what: &str, mut check: F)
where
    F: AsyncFnMut(&S) -> bool,
{
    let start = Instant::now();
    while !check(store).await {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The audit finds counters equal to the records.
async fn assert_audit_clean<S: Store>(store: &S) -> crate::store::AuditReport {
    let report = store.audit().await.expect("audit runs");
    assert!(report.is_clean(), "{report:?}");
    report
}
