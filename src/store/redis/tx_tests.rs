//! Unit rewards applied as a transaction of plain commands (`tx`): the same outcomes and the
//! same stored state (records, counters, delay bins, epoch start, change counter, kept ids and
//! their expiries) as the script's judging on a mixed commit; a record changed between the
//! read and `EXEC` aborts the transaction and the script answers, after which the next
//! commits take the script for a while; what the transaction does not judge goes as before;
//! a connection lost before `EXEC` fails the jobs and the retry applies once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::judged_tests::{assign_mixed_units, race_the_read, state};
use super::tests::harness::RedisServer;
use super::tests::{open, tally};
use super::*;
use crate::store::test_support::{DAY_MS, T0_MS, block_on, epoch_of, record, token_reward};

const HOUR_MS: u64 = 3_600_000;

fn reward(epoch: &Epoch, id: &str, unit: &str, amount: f64) -> RewardOp {
    RewardOp {
        epoch: epoch.clone(),
        ..crate::store::test_support::unit_reward(id, unit, amount, T0_MS + 2 * HOUR_MS)
    }
}

fn applied(variant: &str) -> RewardOutcome {
    RewardOutcome::Applied {
        variant: variant.to_owned(),
    }
}

/// Runs `command` with redis-cli once, right after the next transaction's read and before its
/// writes; the flag says whether it ran. The hook holds a redis-cli handle, not the server
/// (the store keeps the hook: see `RedisServer::cli_handle`).
fn once_after_the_read(
    store: &RedisStore,
    server: &RedisServer,
    command: &'static [&'static str],
) -> Arc<AtomicBool> {
    let fired = Arc::new(AtomicBool::new(false));
    let (hook_fired, cli) = (fired.clone(), server.cli_handle());
    store.on_judged_read(Some(Box::new(move || {
        if !hook_fired.swap(true, Ordering::SeqCst) {
            cli.run(command);
        }
    })));
    fired
}

/// Retries `ops` (one unit reward of variant `a`) until the store takes them again (it probes
/// Redis while failing), then checks they were applied once: a resend is a duplicate.
async fn retry_applies_once(store: &RedisStore, ops: Vec<RewardOp>) {
    let mut retried = store.apply_rewards(ops.clone()).await;
    for _ in 0..50 {
        if retried.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        retried = store.apply_rewards(ops.clone()).await;
    }
    assert_eq!(retried.unwrap(), vec![applied("a")]);
    assert_eq!(
        store.apply_rewards(ops).await.unwrap(),
        vec![RewardOutcome::Duplicate]
    );
}

/// Two commits of unit rewards without a half-life, every case the judging meets: units
/// another replica assigned and units this one did (cached), amounts and assignment times
/// over several delay bins and both arms, a window closed, a timestamp before the assignment,
/// no assignment, a unit twice (credited, then refused as rewarded; refused, then credited),
/// an id twice in a commit (a duplicate once applied; judged again when refused first) and
/// again in the next, a unit already rewarded.
async fn mixed(store: &RedisStore, filler: &RedisStore, epoch: &Epoch) -> Vec<Vec<RewardOutcome>> {
    assign_mixed_units(store, filler, epoch).await;
    let amounts = [0.25, 0.5, 1.0, 0.3, 0.7, 0.123_457];
    let mut first = Vec::new();
    for i in 0..20 {
        first.push(reward(
            epoch,
            &format!("e-f{i}"),
            &format!("f{i}"),
            amounts[i % 6],
        ));
    }
    for i in 0..5 {
        first.push(reward(
            epoch,
            &format!("e-c{i}"),
            &format!("c{i}"),
            amounts[i % 6],
        ));
    }
    let closed = |id: &str, unit: &str| RewardOp {
        window_ms: 1,
        ..reward(epoch, id, unit, 1.0)
    };
    let early = RewardOp {
        occurred_ms: Some(T0_MS - DAY_MS),
        ..reward(epoch, "early", "f20", 1.0)
    };
    first.extend([
        closed("closed", "c5"),
        early,
        reward(epoch, "nobody", "nobody", 1.0),
        reward(epoch, "again", "f1", 1.0),
        reward(epoch, "dup", "f21", 0.5),
        reward(epoch, "dup", "f22", 0.5),
        closed("refused first", "c8"),
        reward(epoch, "refused first", "c6", 0.5),
        reward(epoch, "c8 now", "c8", 0.7),
        reward(epoch, "f20 now", "f20", -0.25),
    ]);
    let mut second = vec![
        reward(epoch, "e-f0", "f24", 1.0),
        reward(epoch, "twice", "f0", 1.0),
        reward(epoch, "c0 again", "c0", 1.0),
        reward(epoch, "c7", "c7", 0.5),
    ];
    for i in 25..31 {
        second.push(reward(
            epoch,
            &format!("e-f{i}"),
            &format!("f{i}"),
            amounts[i % 6],
        ));
    }
    let mut outcomes = Vec::new();
    for ops in [first, second] {
        outcomes.push(store.apply_rewards(ops).await.unwrap());
    }
    outcomes
}

/// A hash as `redis-cli` prints it, as sorted (field, value) pairs.
fn hash(server: &RedisServer, key: &str) -> Vec<(String, String)> {
    let out = server.cli(&["HGETALL", key]);
    let lines: Vec<&str> = out.lines().collect();
    let mut pairs: Vec<(String, String)> = lines
        .chunks(2)
        .filter(|pair| pair.len() == 2)
        .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// Everything stored of one epoch, by shard: its records' texts, its arms hash (the start and
/// the change counter with the counters), its delay bins; per event-id shard of its
/// experiment, how many digests are kept, the digest lists' ends and lengths, and whether the
/// set and the lists expire within the window and a day and two hours.
fn raw(server: &RedisServer, epoch: &Epoch) -> Vec<String> {
    let mut out = Vec::new();
    for shard in 0..layout::SHARDS {
        let keys = layout::ShardKeys::of(epoch, shard);
        out.push(format!("{shard} records {:?}", hash(server, &keys.records)));
        out.push(format!("{shard} arms {:?}", hash(server, &keys.arms)));
        out.push(format!("{shard} delays {:?}", hash(server, &keys.delays)));
        out.push(format!(
            "{shard} new units {}",
            server.cli(&["LLEN", &keys.pending])
        ));
        let experiment = &epoch.experiment;
        let set = layout::event_digest_key(experiment, shard);
        let kept = server.cli(&["SCARD", &set]);
        let index = layout::event_digest_index_key(experiment, shard);
        let ends = server.cli(&["ZRANGE", &index, "0", "-1", "WITHSCORES"]);
        let mut lists = Vec::new();
        for (at, end) in ends.lines().skip(1).step_by(2).enumerate() {
            let key = layout::event_digest_list_key(experiment, shard, end.parse().unwrap());
            let ttl: i64 = server.cli(&["PTTL", &key]).parse().unwrap();
            lists.push((at, end.to_owned(), server.cli(&["STRLEN", &key]), ttl > 0));
        }
        let ttl: i64 = server.cli(&["PTTL", &set]).parse().unwrap();
        let bound = i64::try_from(7 * DAY_MS + DAY_MS + 2 * HOUR_MS).unwrap();
        let expires = kept == "0" || (ttl > 0 && ttl <= bound);
        out.push(format!("{shard} ids {kept} {lists:?} expires {expires}"));
    }
    out
}

/// The epoch `name`'s keys spelled as another's: the two epochs' raw states compare equal.
fn renamed(lines: Vec<String>, from: &Epoch, to: &Epoch) -> Vec<String> {
    lines
        .into_iter()
        .map(|line| line.replace(&from.experiment, &to.experiment))
        .collect()
}

/// The mixed commits by transaction and by the script (judging off, in another epoch of the
/// same server): equal outcomes, equal stored state to the byte (but the digests, keyed by
/// experiment), both commits by transaction; the commits resent are duplicates throughout.
#[test]
fn a_transaction_leaves_what_the_script_leaves() {
    let server = RedisServer::start();
    let (tx, scripted, filler) = (open(&server), open(&server), open(&server));
    scripted.set_judging(false);
    scripted.set_transactions(false);
    let (on, off) = (epoch_of("tx", 1), epoch_of("sc", 1));
    block_on(async {
        let by_tx = mixed(&tx, &filler, &on).await;
        let by_script = mixed(&scripted, &filler, &off).await;
        assert_eq!(by_tx, by_script, "outcomes");
        assert_eq!(tx.transactions(), (2, 0), "both commits by transaction");
        assert_eq!(scripted.transactions(), (0, 0));
        assert_eq!(tx.predicted(), 0, "no script call");
        assert_eq!(state(&tx, &on).await, state(&scripted, &off).await);
        assert_eq!(raw(&server, &on), renamed(raw(&server, &off), &off, &on));
        let credited = by_tx
            .iter()
            .flatten()
            .filter(|o| matches!(o, RewardOutcome::Applied { .. }))
            .count();
        // f0..f19, c0..c4, the first "dup", c6 (its id refused first), c8 and f20 (each refused
        // first); then c7 and f25..f30.
        assert_eq!(credited, 20 + 5 + 4 + 1 + 6);
        assert!(tx.audit().await.unwrap().is_clean());
    });
}

/// A record another replica changes between the transaction's read and its `EXEC` (a reward
/// credited there, a re-assignment): the transaction aborts, nothing of it is written, and
/// the script judges the commit (the first reward then refused as rewarded, the second
/// credited to the new arm). The next commits take the script (the back-off), then the
/// transaction again.
#[test]
fn a_record_changed_before_exec_aborts_and_the_script_answers() {
    let server = RedisServer::start();
    let (store, other) = (open(&server), Arc::new(open(&server)));
    let epoch = epoch_of("raced", 1);
    let units = 4 + tx::BACKOFF_FIRST as usize;
    let fired = race_the_read(&store, &other, &epoch, units);
    block_on(async {
        let outcomes = store
            .apply_rewards(vec![
                reward(&epoch, "e1", "f1", 0.5),
                reward(&epoch, "e2", "f2", 0.5),
                reward(&epoch, "e3", "f3", 0.25),
            ])
            .await
            .unwrap();
        assert!(fired.load(Ordering::SeqCst), "the hook ran");
        assert_eq!(
            outcomes,
            vec![RewardOutcome::AlreadyRewarded, applied("b"), applied("a")]
        );
        assert_eq!(store.transactions(), (0, 1), "aborted, then the script");
        let counters = store.counters(&epoch).await.unwrap();
        assert_eq!(counters["a"].reward_sum, 1.25);
        assert_eq!(counters["b"].reward_sum, 0.5);
        // The back-off: the next commits take the script at once, then a transaction.
        for i in 4..4 + tx::BACKOFF_FIRST as usize {
            let unit = format!("f{i}");
            let outcome = store
                .apply_rewards(vec![reward(&epoch, &format!("e{i}"), &unit, 1.0)])
                .await
                .unwrap();
            assert_eq!(outcome, vec![applied("a")]);
            assert_eq!(store.transactions(), (0, 1), "commit {i} by the script");
        }
        let last = format!("f{units}");
        let outcome = store
            .apply_rewards(vec![reward(&epoch, "last", &last, 1.0)])
            .await
            .unwrap();
        assert_eq!(outcome, vec![applied("a")]);
        assert_eq!(store.transactions(), (1, 1), "by transaction again");
        assert!(store.audit().await.unwrap().is_clean());
    });
}

/// What the transaction does not judge goes through the script as before: a commit with a
/// token reward, one with a half-life, and one whose id shard still has a directory of whole
/// ids (an upgrade's, after which the next commits take the script without a read); then a
/// commit of unit rewards alone is a transaction again.
#[test]
fn what_the_transaction_does_not_judge_takes_the_script() {
    let server = RedisServer::start();
    let store = open(&server);
    let epoch = epoch_of("mixed", 1);
    block_on(async {
        for unit in ["u1", "u2", "u3", "u4"] {
            store
                .insert_sticky(&epoch, unit, record("a", T0_MS), tally(T0_MS))
                .await
                .unwrap();
        }
        let token = RewardOp {
            epoch: epoch.clone(),
            ..token_reward("tok", "as-1", "b", T0_MS, 0.5, T0_MS + 2 * HOUR_MS)
        };
        let outcomes = store
            .apply_rewards(vec![reward(&epoch, "i1", "u1", 1.0), token])
            .await
            .unwrap();
        assert_eq!(outcomes, vec![applied("a"), applied("b")]);
        let decayed = RewardOp {
            half_life_ms: Some(DAY_MS),
            ..reward(&epoch, "i2", "u2", 1.0)
        };
        assert_eq!(
            store.apply_rewards(vec![decayed]).await.unwrap(),
            vec![applied("a")]
        );
        let directory = layout::event_dir_key(&epoch.experiment, layout::shard_of("i3"));
        server.cli(&["HSET", &directory, "someone-else", "A1"]);
        let outcome = store
            .apply_rewards(vec![reward(&epoch, "i3", "u3", 1.0)])
            .await
            .unwrap();
        assert_eq!(outcome, vec![applied("a")]);
        assert_eq!(store.transactions(), (0, 0), "each by the script");
        server.cli(&["DEL", &directory]);
        // The read that found the directory backs off as an abort does: the next commits
        // take the script without a read, then a transaction.
        for i in 0..tx::BACKOFF_FIRST {
            let id = format!("again {i}");
            let outcome = store
                .apply_rewards(vec![reward(&epoch, &id, "u3", 1.0)])
                .await
                .unwrap();
            assert_eq!(outcome, vec![RewardOutcome::AlreadyRewarded]);
            assert_eq!(store.transactions(), (0, 0), "commit {i} by the script");
        }
        let outcome = store
            .apply_rewards(vec![reward(&epoch, "i4", "u4", 1.0)])
            .await
            .unwrap();
        assert_eq!(outcome, vec![applied("a")]);
        assert_eq!(store.transactions(), (1, 0));
    });
}

/// The connection lost between the transaction's read and its `EXEC`: the jobs fail with the
/// store's error, nothing is applied, and the retry applies the reward once (then finds it).
#[test]
fn a_connection_lost_before_exec_fails_the_jobs_and_the_retry_applies_once() {
    let server = RedisServer::start();
    let store = open(&server);
    let epoch = epoch_of("lost", 1);
    block_on(async {
        store
            .insert_sticky(&epoch, "u1", record("a", T0_MS), tally(T0_MS))
            .await
            .unwrap();
    });
    let fired = once_after_the_read(&store, &server, &["CLIENT", "KILL", "TYPE", "normal"]);
    let ops = vec![reward(&epoch, "once", "u1", 1.0)];
    block_on(async {
        let failed = store.apply_rewards(ops.clone()).await;
        assert!(fired.load(Ordering::SeqCst), "the hook ran");
        assert!(failed.is_err(), "the jobs fail: {failed:?}");
        retry_applies_once(&store, ops).await;
        assert_eq!(
            store.transactions(),
            (2, 0),
            "the retry and the resend by transaction"
        );
        // The shared connection was killed too: its first read reconnects it.
        let mut counters = store.counters(&epoch).await;
        for _ in 0..50 {
            if counters.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            counters = store.counters(&epoch).await;
        }
        assert_eq!(counters.unwrap()["a"].reward_sum, 1.0);
        assert!(store.audit().await.unwrap().is_clean());
    });
}

/// A command Redis refuses while queueing it makes it discard the transaction (`EXECABORT`):
/// nothing ran, so the script applies the commit instead of the jobs failing, and the next
/// commits take the script for a while, as after an abort.
#[test]
fn a_transaction_redis_discards_takes_the_script() {
    let server = RedisServer::start();
    let store = open(&server);
    let epoch = epoch_of("discarded", 1);
    block_on(async {
        for unit in ["u1", "u2"] {
            store
                .insert_sticky(&epoch, unit, record("a", T0_MS), tally(T0_MS))
                .await
                .unwrap();
        }
        store.refuse_next_transaction();
        let ops = vec![reward(&epoch, "d1", "u1", 1.0)];
        assert_eq!(
            store.apply_rewards(ops.clone()).await.unwrap(),
            vec![applied("a")]
        );
        assert_eq!(store.discarded_transactions(), 1);
        assert_eq!(store.transactions(), (0, 0), "by the script");
        for i in 0..tx::BACKOFF_FIRST {
            let outcome = store
                .apply_rewards(vec![reward(&epoch, &format!("again {i}"), "u1", 1.0)])
                .await
                .unwrap();
            assert_eq!(outcome, vec![RewardOutcome::AlreadyRewarded]);
            assert_eq!(store.transactions(), (0, 0), "commit {i} by the script");
        }
        let outcome = store
            .apply_rewards(vec![reward(&epoch, "d2", "u2", 0.5)])
            .await
            .unwrap();
        assert_eq!(outcome, vec![applied("a")]);
        assert_eq!(store.transactions(), (1, 0), "a transaction again");
        assert_eq!(
            store.apply_rewards(ops).await.unwrap(),
            vec![RewardOutcome::Duplicate]
        );
        assert_eq!(store.counters(&epoch).await.unwrap()["a"].reward_sum, 1.5);
        assert!(store.audit().await.unwrap().is_clean());
    });
}

/// Redis out of memory (here from just after the transaction's read) refuses the
/// transaction's writes while queueing them, then the script's call: the jobs fail with the
/// store's unavailability, nothing is written, and once Redis has memory again the retry
/// applies the reward once.
#[test]
fn out_of_memory_fails_the_jobs_and_nothing_is_written() {
    let server = RedisServer::start();
    let store = open(&server);
    let epoch = epoch_of("full", 1);
    block_on(async {
        store
            .insert_sticky(&epoch, "u1", record("a", T0_MS), tally(T0_MS))
            .await
            .unwrap();
    });
    let before = raw(&server, &epoch);
    server.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    let fired = once_after_the_read(&store, &server, &["CONFIG", "SET", "maxmemory", "1"]);
    let ops = vec![reward(&epoch, "m1", "u1", 1.0)];
    block_on(async {
        let failed = store.apply_rewards(ops.clone()).await;
        assert!(fired.load(Ordering::SeqCst), "the hook ran");
        assert!(
            matches!(failed, Err(StoreError::Unavailable(ref cause)) if cause.contains("refuses writes")),
            "{failed:?}"
        );
    });
    assert_eq!(
        store.discarded_transactions(),
        1,
        "discarded, then the script refused"
    );
    assert_eq!(raw(&server, &epoch), before, "nothing written");
    server.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    block_on(async {
        retry_applies_once(&store, ops).await;
        assert_eq!(store.counters(&epoch).await.unwrap()["a"].reward_sum, 1.0);
        assert!(store.audit().await.unwrap().is_clean());
    });
}
