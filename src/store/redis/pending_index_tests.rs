//! New units reach the unit index through the shard's list of units not yet indexed
//! (`layout`, `<tag>:p`): the commit appends their names (no sorted-set insert per new unit),
//! and a page of an export moves them into the index first (`sticky_read::index_pending`), so
//! exports still page every unit in unit order, together with the units earlier versions put
//! in the index directly.

use super::layout::{self, SHARDS, ShardKeys};
use super::tests::harness::RedisServer;
use super::tests::{open, tally};
use super::*;
use crate::store::test_support::{T0_MS, block_on, epoch, record};

/// The commands Redis has run `name` since the last `CONFIG RESETSTAT` (scripts' included).
fn calls_of(server: &RedisServer, name: &str) -> u64 {
    server
        .cli(&["INFO", "commandstats"])
        .lines()
        .find_map(|line| {
            let stats = line.trim().strip_prefix(&format!("cmdstat_{name}:"))?;
            stats
                .split(',')
                .next()?
                .strip_prefix("calls=")?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// How many names the shards' lists and unit indexes hold.
fn pending_and_indexed(server: &RedisServer) -> (u64, u64) {
    (0..SHARDS).fold((0, 0), |(pending, indexed), shard| {
        let keys = ShardKeys::of(&epoch(), shard);
        let listed: u64 = server.cli(&["LLEN", &keys.pending]).trim().parse().unwrap();
        let zcard: u64 = server.cli(&["ZCARD", &keys.units]).trim().parse().unwrap();
        (pending + listed, indexed + zcard)
    })
}

/// Every record, `page` at a time.
fn export(store: &RedisStore, page: usize) -> Vec<String> {
    block_on(async {
        let mut units = Vec::new();
        let mut after = None;
        loop {
            let batch = store
                .scan_sticky(&epoch(), after.clone(), page)
                .await
                .unwrap();
            let Some((last, _)) = batch.last() else {
                return units;
            };
            after = Some(last.clone());
            units.extend(batch.into_iter().map(|(unit, _)| unit));
        }
    })
}

#[test]
fn new_units_cost_their_commit_no_sorted_set_insert_and_the_first_page_indexes_them() {
    let server = RedisServer::start();
    let store = open(&server);
    server.cli(&["CONFIG", "RESETSTAT"]);
    let mut units: Vec<String> = (0..60).map(|i| format!("unit-{:03}", 59 - i)).collect();
    block_on(async {
        for unit in &units {
            store
                .insert_sticky(&epoch(), unit, record("bold", T0_MS), tally(T0_MS))
                .await
                .unwrap();
        }
    });
    assert_eq!(
        calls_of(&server, "zadd"),
        0,
        "the commits inserted into a sorted set"
    );
    assert_eq!(pending_and_indexed(&server), (60, 0));
    units.sort();
    assert_eq!(export(&store, 7), units);
    assert_eq!(pending_and_indexed(&server), (0, 60));
    // Indexed once: a unit written again (first write wins) is not listed again.
    block_on(async {
        let (kept, new) = store
            .insert_sticky(&epoch(), "unit-000", record("control", T0_MS), tally(T0_MS))
            .await
            .unwrap();
        assert!(!new);
        assert_eq!(kept.variant, "bold");
    });
    assert_eq!(pending_and_indexed(&server), (0, 60));
    assert!(block_on(store.audit()).unwrap().is_clean());
}

#[test]
fn units_an_earlier_version_indexed_page_in_order_with_new_ones() {
    let server = RedisServer::start();
    // The earlier version's writes: the record in the shard's hash, the name straight in the
    // shard's unit index, no list.
    let old = ["b-old", "d-old", "f-old", "h-old"];
    for unit in old {
        let keys = ShardKeys::of(&epoch(), layout::shard_of(unit));
        let value = layout::encode_sticky(&record("control", T0_MS));
        server.cli(&["HSET", &keys.records, unit, &value]);
        server.cli(&["ZADD", &keys.units, "0", unit]);
    }
    let store = open(&server);
    let new = ["a-new", "c-new", "e-new", "g-new", "i-new"];
    block_on(async {
        for unit in new {
            store
                .insert_sticky(&epoch(), unit, record("bold", T0_MS), tally(T0_MS))
                .await
                .unwrap();
        }
        // An old unit keeps its record: first write wins, and it is not indexed twice.
        let (kept, added) = store
            .insert_sticky(&epoch(), "d-old", record("bold", T0_MS), tally(T0_MS))
            .await
            .unwrap();
        assert!(!added);
        assert_eq!(kept.variant, "control");
    });
    let mut all: Vec<String> = old.iter().chain(&new).map(|u| (*u).to_owned()).collect();
    all.sort();
    for page in [1, 2, 3, 100] {
        assert_eq!(export(&store, page), all, "pages of {page}");
    }
    assert_eq!(pending_and_indexed(&server), (0, 9));
}

#[test]
fn a_list_longer_than_one_index_call_is_moved_whole_before_the_page() {
    let server = RedisServer::start();
    let store = open(&server);
    // Units of one shard, listed as the commit lists them, more than one `index.lua` call takes.
    let shard = 3;
    let keys = ShardKeys::of(&epoch(), shard);
    let units: Vec<String> = (0..)
        .map(|i| format!("u{i:06}"))
        .filter(|unit| layout::shard_of(unit) == shard)
        .take(super::sticky_read::INDEX_CHUNK * 2 + 5)
        .collect();
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_connection().unwrap();
    let value = layout::encode_sticky(&record("bold", T0_MS));
    for chunk in units.chunks(1000) {
        let mut pipe = redis::pipe();
        for unit in chunk {
            pipe.hset(&keys.records, unit, &value).ignore();
        }
        pipe.rpush(&keys.pending, chunk).ignore();
        let _: () = pipe.query(&mut raw).unwrap();
    }
    let page = block_on(store.scan_sticky(&epoch(), None, 3)).unwrap();
    let first: Vec<&str> = page.iter().map(|(unit, _)| unit.as_str()).collect();
    assert_eq!(
        first,
        units[..3].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(pending_and_indexed(&server), (0, units.len() as u64));
}
