//! Assign over a real Redis: a new unit costs one round trip (the insert, which answers the
//! record a unit already holds), and every case the skipped read used to decide (a unit known
//! elsewhere, one on a retired or halted arm, a peek, a failing store) answers as before.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::engine::{ManualClock, TokenSigner};
use crate::store::{Epoch, Halt, RedisOptions, RedisStore, Store};

// The store's Redis tests hold this harness in a private module; a second copy here keeps the
// engine's tests out of the store's internals.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../../tests/api/redis_harness.rs"]
mod harness;
use harness::RedisServer;

const T0_MS: u64 = 1_700_000_000_000;

/// A sticky experiment `sticky` with `variants` (the first is the default) and a guardrail, so
/// that a recorded halt stops an arm.
fn spec(variants: &[&str]) -> crate::spec::Experiment {
    let listed: String = variants
        .iter()
        .map(|id| format!("  - id: {id}\n    payload: {{}}\n"))
        .collect();
    let yaml = format!(
        "id: sticky\ndescription: d\nowner: o\nstatus: running\nassignment: sticky\n\
         reward: {{ window: 7d }}\npolicy: {{ burn_in: 0 }}\ndefault_variant: {default}\n\
         variants:\n{listed}guardrails:\n  - metric: refunds\n    direction: lower_is_better\n    \
         max_relative_change: 0.1\n",
        default = variants[0],
    );
    crate::spec::parse_experiment(Path::new("sticky.yaml"), &yaml).expect("the spec parses")
}

fn ledger() -> Epoch {
    Epoch {
        experiment: "sticky".to_owned(),
        revision: 1,
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
        .block_on(future)
}

fn open(server: &RedisServer) -> Arc<RedisStore> {
    Arc::new(
        RedisStore::open(RedisOptions {
            url: server.url().into(),
            password: None,
            sentinel_password: None,
            sticky_cache_entries: 1000,
            history_interval_ms: 60_000,
            wait: Default::default(),
            commit_gather: Default::default(),
        })
        .expect("redis store opens"),
    )
}

/// A replica: its own store handle (its own sticky cache) and engine, at a fixed clock (no
/// snapshot refresh reads Redis while a test counts commands).
fn replica(server: &RedisServer, variants: &[&str]) -> (Arc<RedisStore>, Engine) {
    let store = open(server);
    let engine = block_on(Engine::start(
        vec![spec(variants)],
        store.clone(),
        TokenSigner::new(&[7; 32]),
        Arc::new(ManualClock::new(T0_MS)),
    ))
    .expect("the engine starts");
    (store, engine)
}

fn assign(engine: &Engine, unit: &str, count: bool) -> Assignment {
    let unit = Unit::parse(unit).expect("a valid unit");
    block_on(engine.assign("sticky", &unit, count)).expect("assign never fails")
}

/// Calls per command since the last `CONFIG RESETSTAT` (`INFO commandstats` also counts the
/// commands scripts run).
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

fn calls_of(calls: &HashMap<String, u64>, name: &str) -> u64 {
    calls.get(name).copied().unwrap_or(0)
}

/// The unit's record in Redis, read through a store handle with an empty cache.
fn stored(server: &RedisServer, unit: &str) -> Option<crate::store::StickyRecord> {
    block_on(open(server).sticky(&ledger(), unit)).expect("redis answers")
}

fn exposures(store: &RedisStore) -> u64 {
    block_on(store.counters(&ledger()))
        .expect("redis answers")
        .values()
        .map(|arm| arm.exposures)
        .sum()
}

#[test]
fn a_new_unit_on_redis_costs_one_script_call_and_no_lookup_before_it() {
    let server = RedisServer::start();
    let (_store, engine) = replica(&server, &["control", "bold"]);
    // The epoch's first write also fixes its start: not part of what is counted here.
    assert!(assign(&engine, "first", true).counted);
    server.cli(&["CONFIG", "RESETSTAT"]);
    let units = 40u64;
    for i in 0..units {
        let answer = assign(&engine, &format!("u{i}"), true);
        assert!(answer.counted && answer.fresh && answer.token.is_some());
    }
    let calls = command_calls(&server);
    // One insert script per new unit (each assign here is its own group commit), which finds
    // the unit absent in its shard's records hash (one `HMGET` inside the script; the epoch has
    // no sorted set of the earlier layout, so the script looks no further). A lookup before it
    // is a second round trip: an `HGET` of the records hash that finds nothing and then a
    // `ZRANGEBYLEX` of the earlier layout's sorted set (`sticky_read::sticky`), one per unit.
    // (The group commit's script is a Redis function, `FCALL`: store::redis::scripts.)
    assert_eq!(
        calls_of(&calls, "evalsha") + calls_of(&calls, "fcall"),
        units,
        "{calls:?}"
    );
    assert_eq!(
        calls_of(&calls, "zrangebylex"),
        0,
        "{units} new units were looked up before their insert: {calls:?}"
    );
}

#[test]
fn a_known_unit_is_answered_from_the_cache_with_no_redis_call() {
    let server = RedisServer::start();
    let (_store, engine) = replica(&server, &["control", "bold"]);
    let first = assign(&engine, "u", true);
    server.cli(&["CONFIG", "RESETSTAT"]);
    for count in [true, false] {
        let again = assign(&engine, "u", count);
        assert_eq!(again.variant_id(), first.variant_id());
        assert!(!again.counted && !again.fresh && again.token.is_some());
    }
    let calls = command_calls(&server);
    assert!(
        calls
            .keys()
            .all(|name| matches!(name.as_str(), "info" | "config|resetstat")),
        "a cached unit reached Redis: {calls:?}"
    );
}

#[test]
fn a_unit_assigned_on_another_replica_keeps_its_variant_and_is_counted_once() {
    let server = RedisServer::start();
    let (store_a, a) = replica(&server, &["control", "bold"]);
    let (_store_b, b) = replica(&server, &["control", "bold"]);
    for i in 0..20 {
        let unit = format!("u{i}");
        let first = assign(&a, &unit, true);
        // B has never seen the unit: its insert finds A's record and answers it.
        let there = assign(&b, &unit, true);
        assert_eq!(there.variant_id(), first.variant_id());
        assert!(!there.counted && !there.fresh && !there.degraded);
        assert!(there.token.is_some(), "a returning unit keeps its token");
        assert_eq!(there.outcome(true), AssignOutcome::Returning);
    }
    assert_eq!(exposures(&store_a), 20);
    assert!(block_on(store_a.audit()).unwrap().is_clean());
}

#[test]
fn a_unit_on_a_retired_arm_unseen_by_this_replica_is_reassigned_once() {
    let server = RedisServer::start();
    let (store_a, a) = replica(&server, &["control", "bold"]);
    let mut on_bold = Vec::new();
    for i in 0..40 {
        let unit = format!("u{i}");
        if assign(&a, &unit, true).variant_id() == "bold" {
            on_bold.push(unit);
        }
    }
    assert!(!on_bold.is_empty(), "some unit drew bold");
    // A replica on the spec that retired `bold`: its units move to an active arm.
    let (_store_b, b) = replica(&server, &["control", "calm"]);
    for unit in &on_bold {
        let moved = assign(&b, unit, true);
        assert_ne!(moved.variant_id(), "bold");
        assert!(moved.counted && moved.fresh && moved.token.is_some());
        assert_eq!(stored(&server, unit).unwrap().variant, moved.variant_id());
        // Moved once: the next call is a returning unit.
        let again = assign(&b, unit, true);
        assert!(!again.counted && !again.fresh);
    }
    assert_eq!(exposures(&store_a), 40 + on_bold.len() as u64);
    assert!(block_on(store_a.audit()).unwrap().is_clean());
}

#[test]
fn a_unit_on_a_halted_arm_unseen_by_this_replica_is_reassigned() {
    let server = RedisServer::start();
    let (store_a, a) = replica(&server, &["control", "bold"]);
    let mut on_bold = Vec::new();
    for i in 0..40 {
        let unit = format!("u{i}");
        if assign(&a, &unit, true).variant_id() == "bold" {
            on_bold.push(unit);
        }
    }
    assert!(!on_bold.is_empty(), "some unit drew bold");
    block_on(store_a.record_halt(&ledger(), halt("bold"))).unwrap();
    // A replica started after the halt: bold is inactive in its snapshot.
    let (_store_b, b) = replica(&server, &["control", "bold"]);
    for unit in &on_bold {
        let moved = assign(&b, unit, true);
        assert_eq!(moved.variant_id(), "control");
        assert!(moved.counted && moved.fresh);
        assert_eq!(stored(&server, unit).unwrap().variant, "control");
    }
    assert!(block_on(store_a.audit()).unwrap().is_clean());
}

#[test]
fn a_peek_writes_nothing_for_a_new_unit_and_answers_a_known_units_variant() {
    let server = RedisServer::start();
    let (store_a, a) = replica(&server, &["control", "bold"]);
    let (_store_b, b) = replica(&server, &["control", "bold"]);
    let known = assign(&a, "known", true);
    server.cli(&["CONFIG", "RESETSTAT"]);
    let peek = assign(&b, "new", false);
    assert!(!peek.counted && !peek.fresh && peek.token.is_none());
    let calls = command_calls(&server);
    assert_eq!(
        calls_of(&calls, "evalsha") + calls_of(&calls, "fcall"),
        0,
        "a peek ran a write script"
    );
    assert_eq!(stored(&server, "new"), None);
    // B has not seen `known`: the peek reads it and answers its variant.
    let peek = assign(&b, "known", false);
    assert_eq!(peek.variant_id(), known.variant_id());
    assert!(!peek.counted && peek.token.is_some());
    assert_eq!(exposures(&store_a), 1);
}

#[test]
fn a_new_unit_gets_the_degraded_default_when_redis_is_gone() {
    let mut server = RedisServer::start();
    let (_store, engine) = replica(&server, &["control", "bold"]);
    assert!(assign(&engine, "before", true).counted);
    server.kill();
    for unit in ["a", "b"] {
        let answer = assign(&engine, unit, true);
        assert_eq!(answer.variant_id(), "control");
        assert!(answer.degraded && !answer.counted && answer.token.is_none());
    }
}

fn halt(variant: &str) -> Halt {
    Halt {
        metric: "refunds".into(),
        variant: variant.into(),
        against: "control".into(),
        halted_ms: T0_MS,
        direction: "lower_is_better".into(),
        max_relative_change: 0.1,
        confidence: 0.99,
        prob_worse: 0.999,
        exposures: 1000,
        against_exposures: 1000,
        events: 30.0,
        against_events: 10.0,
        posterior: [31.0, 971.0],
        against_posterior: [11.0, 991.0],
    }
}
