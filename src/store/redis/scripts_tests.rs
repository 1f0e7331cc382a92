//! The `apply` library as a Redis function (`scripts`): loaded once and called by `FCALL`,
//! loaded again where a primary lost it, and run by `EVALSHA` on a Redis without Functions.
//! (The rest of the Redis suite runs through the function; `contract_tests` also runs the
//! whole store contract on a Redis without Functions.)

use super::tests::harness::RedisServer;
use super::tests::{open, tally};
use super::*;
use crate::store::test_support::{T0_MS, block_on, epoch, record, unit_reward};

/// The arguments that take Functions away from a `redis-server` 7 (their commands renamed to
/// names nobody calls): what a Redis before 7.0 answers, "unknown command".
pub(super) const WITHOUT_FUNCTIONS: [&str; 4] =
    ["--rename-command", "FCALL", "--rename-command", "FUNCTION"];

/// `redis-server` with Functions renamed away (see [`WITHOUT_FUNCTIONS`]).
pub(super) fn server_without_functions() -> RedisServer {
    RedisServer::start_with(&[
        WITHOUT_FUNCTIONS[0],
        WITHOUT_FUNCTIONS[1],
        "banditd-test-no-fcall",
        WITHOUT_FUNCTIONS[2],
        WITHOUT_FUNCTIONS[3],
        "banditd-test-no-function",
    ])
}

/// `calls` of a command in `INFO commandstats` (0 when never called).
fn calls(server: &RedisServer, command: &str) -> u64 {
    let stats = server.cli(&["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Writes `count` new units and one reward, and checks they read back with clean counters.
fn write_and_check(store: &RedisStore, prefix: &str, count: usize) {
    block_on(async {
        let mut inserts = Vec::new();
        for i in 0..count {
            let unit = format!("{prefix}{i}");
            inserts.push(store.insert_sticky(&epoch(), &unit, record("bold", T0_MS), tally(T0_MS)));
        }
        for written in futures_util::future::join_all(inserts).await {
            assert!(written.expect("the insert is acknowledged").1);
        }
        let unit = format!("{prefix}0");
        let outcomes = store
            .apply_rewards(vec![unit_reward(
                &format!("{prefix}-e"),
                &unit,
                0.5,
                T0_MS + 5,
            )])
            .await
            .expect("the reward is acknowledged");
        assert_eq!(
            outcomes,
            vec![RewardOutcome::Applied {
                variant: "bold".into()
            }]
        );
        for i in 0..count {
            let unit = format!("{prefix}{i}");
            let held = store.sticky(&epoch(), &unit).await.unwrap();
            assert_eq!(held.map(|r| r.variant).as_deref(), Some("bold"), "{unit}");
        }
        assert!(store.audit().await.unwrap().is_clean());
    });
}

#[test]
fn a_commit_calls_the_library_as_a_function_loaded_once() {
    let server = RedisServer::start();
    let store = open(&server);
    // Rewards by the script, not by a transaction of plain commands (`tx`).
    store.set_transactions(false);
    write_and_check(&store, "f", 20);
    write_and_check(&store, "g", 20);
    let function = store.shared.scripts.apply.function().to_owned();
    assert!(
        server
            .cli(&["FUNCTION", "LIST", "LIBRARYNAME", "banditd_*"])
            .contains(&function),
        "the library is loaded under its versioned name"
    );
    assert_eq!(calls(&server, "function|load"), 1, "loaded once");
    assert!(calls(&server, "fcall") >= 4, "the commits went by FCALL");
    assert!(!store.shared.scripts.apply.eval_only());
}

/// A failover to a node that never had the library, a restart without it, or `FUNCTION FLUSH`:
/// the next call finds no function, loads the library and goes through.
#[test]
fn a_primary_that_lost_the_library_gets_it_again() {
    let server = RedisServer::start();
    let store = open(&server);
    write_and_check(&store, "before", 10);
    assert_eq!(server.cli(&["FUNCTION", "FLUSH"]), "OK");
    assert_eq!(server.cli(&["FUNCTION", "LIST"]), "");
    write_and_check(&store, "after", 10);
    assert_eq!(calls(&server, "function|load"), 2, "loaded again once");
    assert!(
        server
            .cli(&["FUNCTION", "LIST"])
            .contains(store.shared.scripts.apply.function())
    );
}

/// `FUNCTION LOAD` is written to the AOF like any write: Redis restarted from it still has
/// the library.
#[test]
fn the_library_survives_a_restart_from_the_aof() {
    let mut server = RedisServer::start();
    let store = open(&server);
    write_and_check(&store, "u", 5);
    block_on(store.shutdown()).expect("clean shutdown");
    server.restart();
    assert!(
        server.cli(&["FUNCTION", "LIST"]).contains("banditd_apply_"),
        "FUNCTION LOAD is in the AOF"
    );
    let store = open(&server);
    write_and_check(&store, "v", 5);
    assert_eq!(calls(&server, "function|load"), 0, "nothing to load again");
}

#[test]
fn a_redis_without_functions_runs_the_library_by_evalsha() {
    let server = server_without_functions();
    assert!(
        server.cli(&["FCALL", "x", "0"]).contains("unknown command"),
        "the server has no FCALL"
    );
    let store = open(&server);
    write_and_check(&store, "e", 20);
    assert!(store.shared.scripts.apply.eval_only());
    assert!(calls(&server, "evalsha") >= 2);
}

/// The library keeps a few tables from call to call (`apply.lua`'s scratch arrays for a
/// command's arguments, the tables of an arm's field names): a call that writes fewer units
/// and counters than the one before it (one variant's, after a call of two) must not write
/// what that one left behind them. A stale unit name would be pushed to a shard's list of units
/// not yet indexed again, a stale counter written back over the newer one (the audit sees it).
#[test]
fn what_a_call_leaves_in_the_library_is_never_written_by_the_next() {
    let server = RedisServer::start();
    let store = open(&server);
    let store = &store;
    block_on(async {
        let inserts = (0..40).map(|i| {
            let unit = format!("big-{i}");
            let variant = if i % 2 == 0 { "bold" } else { "plain" };
            async move {
                store
                    .insert_sticky(&epoch(), &unit, record(variant, T0_MS), tally(T0_MS))
                    .await
            }
        });
        for written in futures_util::future::join_all(inserts).await {
            assert!(written.expect("the insert is acknowledged").1);
        }
        for i in 0..3 {
            let unit = format!("small-{i}");
            let later = T0_MS + 1000 * (i + 1);
            let written = store
                .insert_sticky(&epoch(), &unit, record("plain", later), tally(later))
                .await
                .expect("the insert is acknowledged");
            assert!(written.1);
        }
    });
    let listed: u64 = (0..super::layout::SHARDS)
        .map(|shard| {
            let keys = super::layout::ShardKeys::of(&epoch(), shard);
            let n = server.cli(&["LLEN", &keys.pending]);
            n.trim().parse::<u64>().expect("LLEN answers a count")
        })
        .sum();
    assert_eq!(listed, 43, "each new unit is listed once");
    assert!(block_on(store.audit()).unwrap().is_clean());
}
