//! The commit gather (`gather`) against a real `redis-server`: two cohorts of clients in a
//! closed loop share one round with it on, and a lone request's commit never waits.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::tests::harness::RedisServer;
use super::tests::tally;
use super::*;
use crate::store::test_support::{T0_MS, block_on, epoch, record};

fn open_with(server: &RedisServer, cap_us: u64) -> RedisStore {
    super::tests::open_with_gather(server, CommitGather { cap_us })
}

/// A round long enough that the second cohort queues during the first one's, as on a server
/// whose round is set by `fdatasync` (the harness's own rounds are a fraction of a ms).
const ROUND: Duration = Duration::from_millis(30);
/// How long a client takes between an answer and its next request (an HTTP turnaround):
/// long enough that the commit task closes on the other cohort first, short against a round.
const TURNAROUND: Duration = Duration::from_millis(3);
/// Clients per cohort, and new units each client asks for one after the other.
const CLIENTS: usize = 4;
const UNITS_EACH: usize = 6;

/// Two cohorts of `CLIENTS` clients, the second starting a third of a round after the first,
/// each asking for `UNITS_EACH` new units (named after `name`) in turn. Returns the commits they took.
fn two_cohorts(store: &RedisStore, name: &str) -> u64 {
    store.shared.arrivals.set_round_floor(ROUND);
    let before = store.stats().commits;
    std::thread::scope(|scope| {
        for client in 0..2 * CLIENTS {
            scope.spawn(move || {
                if client >= CLIENTS {
                    std::thread::sleep(ROUND / 3);
                }
                block_on(async {
                    for n in 0..UNITS_EACH {
                        if n > 0 {
                            std::thread::sleep(TURNAROUND);
                        }
                        let unit = format!("{name}{client}-{n}");
                        let written = store
                            .insert_sticky(&epoch(), &unit, record("bold", T0_MS), tally(T0_MS))
                            .await
                            .expect("the insert is committed");
                        assert!(written.1);
                    }
                });
            });
        }
    });
    store.stats().commits - before
}

#[test]
fn two_cohorts_of_new_units_share_one_round_with_the_gather_on() {
    let server = RedisServer::start();
    // Off: the cohorts alternate, about two commits per unit each client asks for.
    let off = open_with(&server, 0);
    let apart = two_cohorts(&off, "off");
    assert!(
        apart > UNITS_EACH as u64 + 2,
        "without the gather {apart} commits: the scenario did not form two cohorts"
    );
    assert_eq!(off.shared.arrivals.delayed.load(Ordering::Relaxed), 0);
    // On (capped far above the round, so the round bounds it): the first commit closes at
    // once (nothing to go by), the next waits for its clients and carries both cohorts, and so
    // does every one after it: UNITS_EACH + 1, and one more when a client counted but not yet
    // queued misses the commit its count closed.
    let on = open_with(&server, 1_000_000);
    let together = two_cohorts(&on, "on");
    assert!(
        together <= UNITS_EACH as u64 + 2,
        "with the gather {together} commits for {UNITS_EACH} units per client (without: {apart})"
    );
    // As the store's stats report it (`/metrics`, `GET /v1/admin/store`).
    let BackendStats::Redis { commits, .. } = on.stats().backend else {
        panic!("a Redis store's stats are Redis's");
    };
    assert!(commits.gather_delayed > 0, "{commits:?}");
    assert!(commits.gather_waited_us > 0, "{commits:?}");
}

#[test]
fn a_lone_request_in_flight_is_never_delayed() {
    let server = RedisServer::start();
    let store = open_with(&server, 1_000_000);
    block_on(async {
        for n in 0..20 {
            let unit = format!("lone-{n}");
            store
                .insert_sticky(&epoch(), &unit, record("bold", T0_MS), tally(T0_MS))
                .await
                .expect("the insert is committed");
        }
    });
    assert!(store.stats().commits >= 20);
    // By the gather's own record, not by a clock: no commit waited at all.
    assert_eq!(store.shared.arrivals.delayed.load(Ordering::Relaxed), 0);
    assert_eq!(store.shared.arrivals.waited_us.load(Ordering::Relaxed), 0);
}
