//! What the writes cost Redis, counted in commands (`INFO commandstats` counts the commands
//! scripts run too): Redis replicates a script's effects, so every write command a script runs
//! is one AOF record and one pass of Redis's write path. A group commit must therefore write
//! each shard's counters once, however many writes it carries, and an event must not cost more
//! write commands than its records need. `benches/load/redis_cost.sh` measures the same on a
//! whole server, in CPU time as well.

use std::collections::HashMap;

use super::layout::ShardKeys;
use super::tests::{open, tally};
use super::*;
use crate::store::test_support::{T0_MS, block_on, epoch, record, unit_reward};

use super::tests::harness::RedisServer;

/// Calls per command since the last `CONFIG RESETSTAT`.
fn command_calls(server: &RedisServer) -> HashMap<String, u64> {
    server
        .cli(&["INFO", "commandstats"])
        .lines()
        .filter_map(|line| {
            let (name, stats) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.split(',').next()?.strip_prefix("calls=")?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

/// Script calls in `calls`: the `apply` library's by `FCALL` (`scripts`), the single-purpose
/// scripts' by `EVALSHA`.
fn script_calls(calls: &HashMap<String, u64>) -> u64 {
    ["evalsha", "fcall"]
        .iter()
        .filter_map(|name| calls.get(*name))
        .sum()
}

/// Write commands since the last reset, and script calls.
fn writes_and_scripts(server: &RedisServer) -> (u64, u64) {
    const WRITES: [&str; 13] = [
        "set",
        "rpush",
        "del",
        "hset",
        "hsetnx",
        "hincrby",
        "hdel",
        "zadd",
        "zrem",
        "sadd",
        "pexpire",
        "pexpireat",
        "expire",
    ];
    let calls = command_calls(server);
    let writes = WRITES.iter().filter_map(|name| calls.get(*name)).sum();
    (writes, script_calls(&calls))
}

#[test]
fn a_group_commit_of_new_units_writes_each_shards_counters_once() {
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        // The epoch's first write also fixes its start: not part of what is counted here.
        store
            .insert_sticky(&epoch(), "first", record("bold", T0_MS), tally(T0_MS))
            .await
            .unwrap();
        server.cli(&["CONFIG", "RESETSTAT"]);
        let units = 400u64;
        insert_units(&store, units).await;
        let (writes, scripts) = writes_and_scripts(&server);
        // One record each, and one counter write and one delay-histogram write per script
        // call (not one per exposure and arm: that was 4-6 write commands per new unit).
        assert!(
            writes <= units + 2 * scripts,
            "{units} new units in {scripts} script calls took {writes} write commands: {:?}",
            command_calls(&server)
        );
        let counters = store.counters(&epoch()).await.unwrap();
        assert_eq!(counters["bold"].exposures, units + 1);
        assert_eq!(
            counters
                .values()
                .map(|arm| arm.expected_exposures)
                .sum::<f64>(),
            (units + 1) as f64
        );
        assert!(store.audit().await.unwrap().is_clean());
    });
}

#[test]
fn a_batch_of_rewards_writes_each_shards_counters_once() {
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        let units = 300u64;
        insert_units(&store, units).await;
        server.cli(&["CONFIG", "RESETSTAT"]);
        let keys_before: u64 = server.cli(&["DBSIZE"]).parse().unwrap();
        reward_each_unit(&store, 0..units).await;
        let (writes, scripts) = writes_and_scripts(&server);
        // Per event: its record rewritten (ZREM + ZADD); per script call: the claims, the
        // settles, the counters, the outcomes, the id lists and their expiry (it was 9 write
        // commands per event, then 6 with counters written per call, then 4 with ids and
        // outcomes as hash fields).
        assert!(
            writes <= 2 * units + 3 * scripts,
            "{units} rewards in {scripts} script calls took {writes} write commands: {:?}",
            command_calls(&server)
        );
        // Ids and outcomes are fields and list entries, not keys of their own (it was two
        // keys per event): a few keys per shard (directory, list, list index, outcomes).
        let keys_after: u64 = server.cli(&["DBSIZE"]).parse().unwrap();
        assert!(
            keys_after - keys_before <= 5 * u64::from(layout::SHARDS),
            "{units} applied events added {} keys",
            keys_after - keys_before
        );
        let counters = store.counters(&epoch()).await.unwrap();
        assert_eq!(counters["bold"].reward_sum, 0.5 * units as f64);
        assert!(store.audit().await.unwrap().is_clean());
    });
}

/// Calls of the commands scripts run (every command but the script calls themselves).
fn inner_commands(server: &RedisServer) -> u64 {
    command_calls(server)
        .iter()
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "evalsha" | "eval" | "script|load" | "fcall" | "function|load"
            )
        })
        .map(|(_, calls)| calls)
        .sum()
}

#[test]
fn a_group_commit_of_new_units_on_one_primary_is_one_script_call() {
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        store
            .insert_sticky(&epoch(), "first", record("bold", T0_MS), tally(T0_MS))
            .await
            .unwrap();
        server.cli(&["CONFIG", "RESETSTAT"]);
        let commits_before = store.stats().commits;
        // Units of every shard, written concurrently: they share a few group commits.
        let units = 200u64;
        insert_units(&store, units).await;
        let commits = store.stats().commits - commits_before;
        let (_, scripts) = writes_and_scripts(&server);
        // A single primary takes a call over several slots: one call per commit, not one per
        // shard (it was up to eight per commit, each reading and writing its counters).
        assert!(
            scripts <= commits,
            "{units} new units in {commits} group commits took {scripts} script calls"
        );
        // And such a call counts in one shard's counter and histogram hashes: one HSET each
        // per call, not one per shard it touches (it was up to sixteen per call); the records
        // take one HSET per shard.
        let hsets = command_calls(&server).get("hset").copied().unwrap_or(0);
        assert!(
            hsets <= (2 + u64::from(layout::SHARDS)) * scripts,
            "{units} new units in {scripts} script calls took {hsets} HSETs"
        );
        assert_eq!(
            store.counters(&epoch()).await.unwrap()["bold"].exposures,
            units + 1
        );
        assert!(store.audit().await.unwrap().is_clean());
    });
}

#[test]
fn a_batch_of_rewards_reads_each_record_once_and_writes_records_once_per_call() {
    let server = RedisServer::start();
    let store = open(&server);
    // The script's costs (a transaction's: `tx_tests`).
    store.set_transactions(false);
    block_on(async {
        let units = 300u64;
        insert_units(&store, units).await;
        server.cli(&["CONFIG", "RESETSTAT"]);
        reward_each_unit(&store, 0..units).await;
        let calls = command_calls(&server);
        let (_, scripts) = writes_and_scripts(&server);
        let commands = inner_commands(&server);
        // One lookup of each record (a sorted-set range, which no command batches); the ids'
        // claims, their outcomes and their settles are read a call at a time (it was one HGET
        // each, six commands per event in all).
        // On a single primary the one call also reads and writes each id shard's directory
        // and list (a few commands per shard, not per event).
        assert!(
            commands <= units + 8 * scripts + 12 * u64::from(layout::SHARDS),
            "{units} rewards in {scripts} script calls ran {commands} commands: {calls:?}"
        );
        // The records are rewritten by one ZREM and one ZADD per call and shard (it was two
        // per event); the id lists' indexes take one ZADD per id shard.
        let record_writes = ["zrem", "zadd"]
            .iter()
            .filter_map(|name| calls.get(*name))
            .sum::<u64>();
        assert!(
            record_writes <= 3 * u64::from(layout::SHARDS) * scripts,
            "{units} rewards in {scripts} script calls took {record_writes} ZREM/ZADD: {calls:?}"
        );
        let counters = store.counters(&epoch()).await.unwrap();
        assert_eq!(counters["bold"].reward_sum, 0.5 * units as f64);
        assert!(store.audit().await.unwrap().is_clean());
    });
}

#[test]
fn a_unit_written_twice_in_one_call_keeps_the_last_record_only() {
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        store
            .insert_sticky(&epoch(), "u", record("bold", T0_MS), tally(T0_MS))
            .await
            .unwrap();
        // Two rewards of one unit in one batch: one call reads the record, credits it, and
        // refuses the second against the record the first left (buffered, not yet written).
        let outcomes = store
            .apply_rewards(vec![
                unit_reward("e1", "u", 0.5, T0_MS + 1),
                unit_reward("e2", "u", 0.25, T0_MS + 2),
            ])
            .await
            .unwrap();
        assert!(matches!(outcomes[0], RewardOutcome::Applied { .. }));
        assert_eq!(outcomes[1], RewardOutcome::AlreadyRewarded);
        let shard = layout::shard_of("u");
        let keys = ShardKeys::of(&epoch(), shard);
        assert_eq!(server.cli(&["HLEN", &keys.records]).trim(), "1");
        // Listed once for the unit index (`pending_index_tests`).
        assert_eq!(server.cli(&["LLEN", &keys.pending]).trim(), "1");
        let counters = store.counters(&epoch()).await.unwrap();
        assert_eq!(counters["bold"].reward_sum, 0.5);
        assert!(store.audit().await.unwrap().is_clean());
    });
}

#[test]
fn new_units_and_a_batch_of_rewards_read_their_records_a_shard_at_a_time() {
    let server = RedisServer::start();
    let store = open(&server);
    // The script's costs (a transaction's: `tx_tests`).
    store.set_transactions(false);
    block_on(async {
        server.cli(&["CONFIG", "RESETSTAT"]);
        let units = 200u64;
        insert_units(&store, units).await;
        let (_, scripts) = writes_and_scripts(&server);
        let calls = command_calls(&server);
        // A record is a hash field: the inserts' lookups are one HMGET per call and shard
        // (it was one sorted-set range per unit, which no command batches).
        let shards = u64::from(layout::SHARDS);
        assert_eq!(calls.get("zrangebylex"), None, "{calls:?}");
        assert!(
            calls.get("hmget").copied().unwrap_or(0) <= (shards + 1) * scripts,
            "{units} new units in {scripts} script calls: {calls:?}"
        );
        server.cli(&["CONFIG", "RESETSTAT"]);
        reward_each_unit(&store, 0..units).await;
        let calls = command_calls(&server);
        // One call: the records are read by one HMGET per shard, rewritten by one HSET per
        // shard, and no ZREM or ZADD rewrites a record (it was a range, a ZREM and a ZADD).
        assert_eq!(script_calls(&calls), 1, "{calls:?}");
        assert_eq!(calls.get("zrangebylex"), None, "{calls:?}");
        assert_eq!(calls.get("zrem"), None, "{calls:?}");
        // Per shard its records and its ids' directory; the counters and histograms once.
        assert!(
            calls.get("hmget").copied().unwrap_or(0) <= 2 * shards + 2,
            "{calls:?}"
        );
        let counters = store.counters(&epoch()).await.unwrap();
        assert_eq!(counters["bold"].reward_sum, 0.5 * units as f64);
        assert!(store.audit().await.unwrap().is_clean());
    });
}

/// The AOF's size in bytes (the harness runs Redis with `appendonly yes`).
fn aof_bytes(server: &RedisServer) -> u64 {
    server
        .cli(&["INFO", "persistence"])
        .lines()
        .find_map(|line| line.trim().strip_prefix("aof_current_size:")?.parse().ok())
        .expect("INFO persistence reports aof_current_size")
}

/// Rewards units `u1`… of `units` assigned ones in one batch, counted from a reset of Redis's
/// command statistics: the experiment's first reward (its registration for the sweep, written
/// once) goes before. Returns the batch's events and the AOF's size before it.
async fn counted_rewards(server: &RedisServer, store: &RedisStore, units: u64) -> (u64, u64) {
    insert_units(store, units).await;
    store
        .apply_rewards(vec![unit_reward("first", "u0", 0.5, T0_MS + 1)])
        .await
        .unwrap();
    server.cli(&["CONFIG", "RESETSTAT"]);
    let aof_before = aof_bytes(server);
    reward_each_unit(store, 1..units).await;
    (units - 1, aof_before)
}

#[test]
fn a_batch_of_rewards_on_one_primary_is_one_script_call_that_writes_no_claims() {
    let server = RedisServer::start();
    let store = open(&server);
    // The script's costs (a transaction's: `tx_tests`).
    store.set_transactions(false);
    block_on(async {
        let units = 300u64;
        let (events, aof_before) = counted_rewards(&server, &store, units).await;
        let (writes, scripts) = writes_and_scripts(&server);
        // Claim, apply and settle in one call (it was 17 here: claim.lua and settle.lua per id
        // shard, apply.lua).
        assert_eq!(scripts, 1, "{:?}", command_calls(&server));
        // Nothing but the records, the counters and the kept ids: no pending claim written
        // and rewritten, no claim outcome kept (it was 291 AOF bytes per event here, now 149).
        let aof = (aof_bytes(&server) - aof_before) / events;
        assert!(aof <= 200, "{aof} AOF bytes per applied event");
        let outcome_keys = server.cli(&["KEYS", "*:o:*"]);
        assert!(outcome_keys.trim().is_empty(), "{outcome_keys}");
        // Per record shard its ZREM and ZADD, per id shard its HSET, RPUSH, ZADD and expiries;
        // the counter and histogram hashes once.
        let shards = u64::from(layout::SHARDS);
        assert!(
            writes <= 2 * shards + 5 * shards + 2,
            "{events} rewards took {writes} write commands: {:?}",
            command_calls(&server)
        );
        let counters = store.counters(&epoch()).await.unwrap();
        assert_eq!(counters["bold"].reward_sum, 0.5 * units as f64);
        assert!(store.audit().await.unwrap().is_clean());
    });
}

/// A batch of unit rewards by transaction (`tx`): no script call, one `EXEC`, one `HMGET` per
/// records shard, each records shard rewritten by one `HSET`, each id shard's digests kept by
/// one `SADD` and its list by one `APPEND` and one `ZADD` (at most two expiries set), the
/// counters by five commands; no more AOF bytes per event than the script's bound.
#[test]
fn a_batch_of_rewards_by_transaction_runs_no_script_and_writes_each_shard_once() {
    let server = RedisServer::start();
    let store = open(&server);
    block_on(async {
        let units = 300u64;
        let (events, aof_before) = counted_rewards(&server, &store, units).await;
        let calls = command_calls(&server);
        let (writes, scripts) = writes_and_scripts(&server);
        assert_eq!(scripts, 0, "{calls:?}");
        assert_eq!(calls.get("exec"), Some(&1), "{calls:?}");
        let shards = u64::from(layout::SHARDS);
        assert!(
            calls.get("hmget").is_some_and(|&n| n <= shards),
            "{calls:?}"
        );
        assert!(
            calls.get("append").is_some_and(|&n| n <= shards),
            "{calls:?}"
        );
        assert!(
            writes <= 5 * shards + 5,
            "{events} rewards took {writes} writes: {calls:?}"
        );
        let aof = (aof_bytes(&server) - aof_before) / events;
        assert!(aof <= 200, "{aof} AOF bytes per applied event");
        assert_eq!(store.transactions(), (2, 0));
        let counters = store.counters(&epoch()).await.unwrap();
        assert_eq!(counters["bold"].reward_sum, 0.5 * units as f64);
        assert!(store.audit().await.unwrap().is_clean());
    });
}

/// Inserts units `u0`..`u{units - 1}` on `bold`, all at once (so they share group commits),
/// each a new record.
async fn insert_units(store: &RedisStore, units: u64) {
    let inserts = (0..units).map(|i| {
        store.insert_sticky(
            &epoch(),
            &format!("u{i}"),
            record("bold", T0_MS),
            tally(T0_MS),
        )
    });
    for result in futures_util::future::join_all(inserts).await {
        assert!(result.unwrap().1, "a new unit");
    }
}

/// Rewards units `u{i}` for `i` in `range` with 0.5 each (event `e{i}`), in one batch, and
/// checks every reward was applied.
async fn reward_each_unit(store: &RedisStore, range: std::ops::Range<u64>) {
    let ops = range
        .map(|i| unit_reward(&format!("e{i}"), &format!("u{i}"), 0.5, T0_MS + 1))
        .collect();
    let outcomes = store.apply_rewards(ops).await.unwrap();
    assert!(
        outcomes
            .iter()
            .all(|outcome| matches!(outcome, RewardOutcome::Applied { .. }))
    );
}
