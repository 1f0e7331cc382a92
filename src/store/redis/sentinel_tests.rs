//! The Redis store behind a Sentinel (a real primary, its replica and one Sentinel, see the
//! harness): it finds the primary through the Sentinel, password-protected or not, and
//! follows a failover by itself, graceful or after a `kill -9` under load.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::tests::harness::{RedisSentinel, SentinelSetup};
use super::*;
use crate::store::test_support::{T0_MS, block_on, epoch, record};

/// A graceful failover (`SENTINEL FAILOVER`) demotes a primary that stays up: its writes are
/// refused (READONLY), and the store must ask the Sentinel again rather than keep writing to
/// the old address.
#[test]
fn a_store_behind_sentinel_follows_a_graceful_failover() {
    let redis = RedisSentinel::start();
    let store = RedisStore::open(RedisOptions {
        url: redis.url().into(),
        password: None,
        sentinel_password: None,
        sticky_cache_entries: 0,
        history_interval_ms: 0,
        wait: Default::default(),
        commit_gather: Default::default(),
    })
    .expect("redis store opens through the Sentinel");
    block_on(async {
        store
            .insert_sticky(&epoch(), "before", record("a", T0_MS), tests::tally(T0_MS))
            .await
            .unwrap();
    });
    assert_eq!(redis.primary.cli(&["WAIT", "1", "5000"]), "1");
    // The Sentinel refuses a failover (NOGOODSLAVE) until it has its own fresh INFO of the
    // replica, which it asks for a while after it learnt of it from the primary (the harness's
    // wait): asked again until it accepts. INPROG: it is failing over already (the primary
    // missed its 1 s `down-after-milliseconds` under load), which this test follows the same
    // way. Any other answer fails at once.
    let mut answer = String::new();
    wait_for(30, "the Sentinel to accept the failover", || {
        answer = redis
            .sentinel
            .cli(&["SENTINEL", "FAILOVER", harness_master()]);
        !answer.starts_with("NOGOODSLAVE")
    });
    assert!(
        answer == "OK" || answer.starts_with("INPROG"),
        "SENTINEL FAILOVER answered {answer:?}"
    );
    // Each step polls under its own deadline: the Sentinel names the replica at once, but
    // demotes the old primary only when its next INFO of that node (every 10 s outside a
    // failover) shows it still a primary, which under load took most of a deadline the three
    // steps used to share, leaving the store too little of it to follow.
    let asked = Instant::now();
    wait_for(30, "the Sentinel to name the replica", || {
        redis.primary_port() == Some(redis.replica.port)
    });
    let named = asked.elapsed();
    // Until the Sentinel has demoted the old primary it still takes writes (lost when it
    // resyncs: the README's "What a failover can lose"); from then on it refuses them.
    wait_for(60, "the Sentinel to demote the old primary", || {
        redis.primary.cli(&["ROLE"]).starts_with("slave")
    });
    let demoted = asked.elapsed();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    loop {
        i += 1;
        let unit = format!("after-{i}");
        let written =
            block_on(store.insert_sticky(&epoch(), &unit, record("b", T0_MS), tests::tally(T0_MS)));
        if written.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store did not follow in 30 s: {written:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The write went to the promoted node: it holds it (a read of the node itself, not of its
    // role, which a later, unrequested failover under load could change).
    eprintln!(
        "failover asked; replica named after {named:?}, old primary demoted after {demoted:?}, \
         the store followed after {:?} ({i} attempts)",
        asked.elapsed()
    );
    let written = format!("after-{i}");
    let records = layout::ShardKeys::of(&epoch(), layout::shard_of(&written)).records;
    let held = redis.replica.cli(&["HEXISTS", &records, &written]);
    assert_eq!(
        held,
        "1",
        "the write is on the promoted node (its role: {:?}; the Sentinel names port {:?})",
        redis.replica.cli(&["ROLE"]),
        redis.primary_port()
    );
    block_on(async {
        assert!(store.sticky(&epoch(), "before").await.unwrap().is_some());
        assert!(
            store
                .sticky(&epoch(), &format!("after-{i}"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(store.audit().await.unwrap().is_clean());
    });
    assert!(store.health().writable);
}

/// Polls `done` every 100 ms until it holds, failing after `seconds` with what it waited for.
fn wait_for(seconds: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "waited {seconds} s for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn harness_master() -> &'static str {
    super::tests::harness::SENTINEL_MASTER
}

const SENTINEL_PASSWORD: &str = "sentinel-pw-7f3a";
const DATA_PASSWORD: &str = "data-pw-91c2";

/// A Sentinel with its own `requirepass`, watching data nodes with theirs.
fn protected() -> RedisSentinel {
    RedisSentinel::start_with(&SentinelSetup {
        sentinel_password: Some(SENTINEL_PASSWORD),
        data_password: Some(DATA_PASSWORD),
        ..SentinelSetup::default()
    })
}

fn open_with(
    redis: &RedisSentinel,
    password: Option<&str>,
    sentinel_password: Option<&str>,
) -> Result<RedisStore, StoreError> {
    RedisStore::open(RedisOptions {
        url: redis.url().into(),
        password: password.map(Into::into),
        sentinel_password: sentinel_password.map(Into::into),
        sticky_cache_entries: 0,
        history_interval_ms: 0,
        wait: Default::default(),
        commit_gather: Default::default(),
    })
}

#[test]
fn a_password_protected_sentinel_is_asked_with_the_sentinel_password() {
    let redis = protected();
    let store = open_with(&redis, Some(DATA_PASSWORD), Some(SENTINEL_PASSWORD))
        .expect("the store opens through a password-protected Sentinel");
    block_on(async {
        store
            .insert_sticky(&epoch(), "u", record("a", T0_MS), tests::tally(T0_MS))
            .await
            .unwrap();
        assert_eq!(
            store
                .sticky(&epoch(), "u")
                .await
                .unwrap()
                .map(|r| r.variant),
            Some("a".to_owned())
        );
        assert!(store.audit().await.unwrap().is_clean());
    });
    assert_ne!(
        redis.primary.cli(&["DBSIZE"]),
        "0",
        "the write is on the primary"
    );
    assert!(store.health().writable);
}

/// Each refusal names the setting that holds the wrong password, and quotes no password.
#[test]
fn a_wrong_or_missing_password_stops_the_open_naming_the_setting_not_the_secret() {
    let redis = protected();
    let wrong = "wrong-pw-5d0e";
    for (password, sentinel_password, expected) in [
        (Some(DATA_PASSWORD), None, "a Sentinel requires a password"),
        (
            Some(DATA_PASSWORD),
            Some(wrong),
            "a Sentinel refused the Sentinel password",
        ),
        (
            Some(wrong),
            Some(SENTINEL_PASSWORD),
            "the primary the Sentinels name refused the password",
        ),
    ] {
        let error = match open_with(&redis, password, sentinel_password) {
            Err(error) => error,
            Ok(_) => panic!("opened with {password:?} / {sentinel_password:?}"),
        };
        let text = format!("{error} {error:?}");
        assert!(text.contains(expected), "{text}");
        for secret in [wrong, DATA_PASSWORD, SENTINEL_PASSWORD] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}

/// `kill -9` of the primary while a writer inserts units without pause: the writes fail
/// (errors, never a false success) until the Sentinel has promoted the replica, then resume on
/// it by themselves. Replication is asynchronous, so what the old primary acknowledged in its
/// last moments may be missing (README, "What a failover can lose"); everything acknowledged
/// after the promotion is kept, no unit reads back another variant than the one acknowledged,
/// and the counters equal the records the new primary holds.
///
/// A write is judged by when it was *sent*, against the moment the old primary was reaped: a
/// reply the old primary sent just before it died can be read after the kill (it waited in the
/// socket, or the writer thread was descheduled on a busy machine), and what it acknowledged
/// may not have reached the replica. Stamping writes with their reply time made that case look
/// like a write lost after the kill.
#[test]
fn a_store_behind_sentinel_follows_a_kill_9_of_the_primary_under_load() {
    let mut redis = protected();
    let store =
        open_with(&redis, Some(DATA_PASSWORD), Some(SENTINEL_PASSWORD)).expect("the store opens");
    // (unit, variant, sent at, acknowledged at)
    let acked: Mutex<Vec<(String, String, Instant, Instant)>> = Mutex::default();
    let failures = std::sync::atomic::AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let killed_at = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let (unit, variant) = (format!("u{i}"), ["control", "bold"][(i % 2) as usize]);
                let tally = tests::tally(T0_MS);
                let sent_at = Instant::now();
                let written =
                    block_on(store.insert_sticky(&epoch(), &unit, record(variant, T0_MS), tally));
                match written {
                    Ok(_) => acked.lock().unwrap().push((
                        unit,
                        variant.to_owned(),
                        sent_at,
                        Instant::now(),
                    )),
                    Err(_) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        });
        std::thread::sleep(Duration::from_millis(500));
        // `kill` returns once the process is reaped: nothing sent after this reached it.
        redis.primary.kill();
        let killed_at = Instant::now();
        let deadline = killed_at + Duration::from_secs(30);
        // Until the Sentinel has promoted the replica and 50 writes went through after.
        loop {
            let resumed = acked
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, _, sent, _)| *sent > killed_at)
                .count();
            if resumed >= 50 && redis.primary_port() == Some(redis.replica.port) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no write went through in 30 s after the kill ({resumed} resumed)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
        killed_at
    });
    let acked = acked.into_inner().unwrap();
    assert!(
        failures.load(Ordering::Relaxed) > 0,
        "the writer saw the primary go"
    );
    assert!(redis.replica.cli(&["ROLE"]).starts_with("master"));
    let stored: HashMap<String, String> = block_on(async {
        let mut stored = HashMap::new();
        for (unit, _, _, _) in &acked {
            if let Some(found) = store.sticky(&epoch(), unit).await.unwrap() {
                stored.insert(unit.clone(), found.variant);
            }
        }
        assert!(store.audit().await.unwrap().is_clean());
        stored
    });
    let mut lost_before = 0;
    for (unit, variant, sent, _) in &acked {
        match stored.get(unit) {
            Some(found) => assert_eq!(found, variant, "{unit} reads back another variant"),
            None if *sent < killed_at => lost_before += 1,
            None => panic!("{unit}, sent after the kill and acknowledged, is lost"),
        }
    }
    // What asynchronous replication can take back is what the old primary had not sent yet:
    // on one machine, a few writes at most.
    let before = acked
        .iter()
        .filter(|(_, _, sent, _)| *sent < killed_at)
        .count();
    let outage = acked
        .iter()
        .filter(|(_, _, sent, _)| *sent > killed_at)
        .map(|(_, _, _, acked_at)| *acked_at)
        .next()
        .map(|at| at - killed_at);
    eprintln!(
        "sent before the kill and acknowledged: {before}, lost by the failover: {lost_before}, writes resumed after {outage:?}"
    );
    assert!(store.health().writable);
}
