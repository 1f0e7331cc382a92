//! Paginated export scans of [`SledStore`]: order, pagination, epoch isolation, durability.

use std::collections::HashSet;
use std::task::{Context, Waker};
use std::time::Duration;

use super::*;
use crate::store::MAX_RETENTION_LAG_MS;
use crate::store::TOKEN_MARK_SLACK_MS;
use crate::store::TokenCredit;
use crate::store::test_support::*;

fn is_pending<T>(future: &mut StoreFuture<T>) -> bool {
    let mut context = Context::from_waker(Waker::noop());
    future.as_mut().poll(&mut context).is_pending()
}

fn epoch_of(experiment: &str, revision: u32) -> Epoch {
    Epoch {
        experiment: experiment.to_owned(),
        revision,
    }
}

/// Every page of `epoch` with pages of `limit`, following the last unit of each page.
fn all_pages(store: &SledStore, epoch: &Epoch, limit: usize) -> Vec<Vec<(String, StickyRecord)>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = block_on(store.scan_sticky(epoch, after.clone(), limit)).unwrap();
        after = page.last().map(|(unit, _)| unit.clone());
        let last = page.len() < limit;
        pages.push(page);
        if last {
            return pages;
        }
    }
}

fn insert(store: &SledStore, epoch: &Epoch, unit: &str, variant: &str) {
    block_on(store.insert_sticky(epoch, unit, record(variant, T0_MS), tally(T0_MS))).unwrap();
}

#[test]
fn pages_return_every_unit_exactly_once_in_byte_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut units: Vec<String> = (0..23).map(|i| format!("user-{i}")).collect();
    units.extend(["a,b", "say \"hi\"", "ünï", "Z", "", "a"].map(str::to_owned));
    for (i, unit) in units.iter().enumerate() {
        insert(
            &store,
            &epoch(),
            unit,
            if i % 2 == 0 { "control" } else { "bold" },
        );
    }
    let pages = all_pages(&store, &epoch(), 7);
    // 29 units in pages of 7: four full pages and a short one.
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![7, 7, 7, 7, 1]
    );
    let scanned: Vec<String> = pages.iter().flatten().map(|(u, _)| u.clone()).collect();
    let mut expected = units.clone();
    expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(scanned, expected);
    for (unit, held) in pages.iter().flatten() {
        let i = units.iter().position(|u| u == unit).unwrap();
        let variant = if i % 2 == 0 { "control" } else { "bold" };
        assert_eq!(held, &record(variant, T0_MS), "{unit}");
    }
}

#[test]
fn a_page_size_equal_to_the_count_ends_with_an_empty_page() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for unit in ["u1", "u2", "u3"] {
        insert(&store, &epoch(), unit, "control");
    }
    let pages = all_pages(&store, &epoch(), 3);
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 0]);
    assert!(
        block_on(store.scan_sticky(&epoch(), None, 0))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_scan_never_returns_records_of_another_epoch_or_kind() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let here = epoch_of("exp", 2);
    // Neighbours in key order: other revisions, experiment ids that are prefixes or
    // extensions of this one.
    for (other, unit) in [
        (epoch_of("exp", 1), "before"),
        (epoch_of("exp", 3), "after"),
        (epoch_of("ex", 2), "short"),
        (epoch_of("expa", 2), "long"),
    ] {
        insert(&store, &other, unit, "control");
    }
    insert(&store, &here, "mine", "bold");
    let mut token = token_reward("e1", "tok-1", "bold", T0_MS, 1.0, T0_MS);
    token.epoch = here.clone();
    block_on(store.apply_rewards(vec![token])).unwrap();
    let all: Vec<String> = all_pages(&store, &here, 2)
        .into_iter()
        .flatten()
        .map(|(unit, _)| unit)
        .collect();
    assert_eq!(all, vec!["mine".to_owned()]);
    assert!(
        block_on(store.scan_sticky(&epoch_of("exp", 4), None, 10))
            .unwrap()
            .is_empty()
    );
    // Resuming after the epoch's last unit does not run into the next epoch.
    assert!(
        block_on(store.scan_sticky(&here, Some("mine".to_owned()), 10))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn scanned_records_carry_their_reward_and_propensity() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut held = record("bold", T0_MS);
    held.propensity = 0.3125;
    block_on(store.insert_sticky(&epoch(), "u1", held.clone(), tally(T0_MS))).unwrap();
    insert(&store, &epoch(), "u2", "control");
    block_on(store.apply_rewards(vec![unit_reward("e1", "u1", 0.25, T0_MS + 5)])).unwrap();
    let page = block_on(store.scan_sticky(&epoch(), None, 10)).unwrap();
    held.reward = Some(0.25);
    held.rewarded_ms = Some(T0_MS + 5);
    assert_eq!(
        page,
        vec![
            ("u1".to_owned(), held),
            ("u2".to_owned(), record("control", T0_MS))
        ]
    );
}

#[test]
fn a_scan_shows_only_records_already_on_disk_and_waits_for_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    insert(&store, &epoch(), "u1", "control");
    let key = keys::epoch_key(KIND_STICKY, &epoch(), "u2");
    let gate = store.shared.flush_gate.lock().unwrap();
    let write = store.insert_sticky(&epoch(), "u2", record("bold", T0_MS), tally(T0_MS));
    while sled_value(&store.shared.sled().unwrap(), &key).is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    // u2 is in sled's log but not on disk: the page answers at once, without it.
    let page = futures_util::FutureExt::now_or_never(store.scan_sticky(&epoch(), None, 10))
        .expect("a page of durable records answers at once")
        .unwrap();
    let units = |page: Vec<(String, StickyRecord)>| -> Vec<String> {
        page.into_iter().map(|(unit, _)| unit).collect()
    };
    assert_eq!(units(page), ["u1"]);
    drop(gate);
    block_on(write).unwrap();
    let after = block_on(store.scan_sticky(&epoch(), None, 10)).unwrap();
    assert_eq!(units(after), ["u1", "u2"]);
}

#[test]
fn token_credits_page_by_assignment_id_with_variant_reward_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let ops: Vec<RewardOp> = (0..5)
        .map(|i| {
            let variant = if i < 2 { "a" } else { "b" };
            token_reward(
                &format!("e{i}"),
                &format!("t{i}"),
                variant,
                T0_MS + i,
                0.5,
                T0_MS + 10,
            )
        })
        .collect();
    block_on(store.apply_rewards(ops)).unwrap();
    let first = block_on(store.scan_token_credits(&epoch(), None, 3)).unwrap();
    let rest = block_on(store.scan_token_credits(&epoch(), first.next.clone(), 3)).unwrap();
    assert_eq!(first.credits.len(), 3);
    assert_eq!(rest.credits.len(), 2);
    assert_eq!(rest.next, None, "a short page is the last");
    // One commit, one generation: the marks come in the order they were credited.
    let ids: Vec<&str> = first
        .credits
        .iter()
        .chain(&rest.credits)
        .map(|c| c.assignment_id.as_str())
        .collect();
    assert_eq!(ids, ["t0", "t1", "t2", "t3", "t4"]);
    assert_eq!(
        first.credits[1],
        TokenCredit {
            assignment_id: "t1".to_owned(),
            variant: "a".to_owned(),
            reward: 0.5,
            retained_until_ms: T0_MS + 1 + 7 * DAY_MS + TOKEN_MARK_SLACK_MS,
            issued_ms: T0_MS + 1,
            propensity: 0.5,
            credited_ms: Some(T0_MS + 10),
        }
    );
    assert!(
        block_on(store.scan_token_credits(&epoch_of("other", 1), None, 3))
            .unwrap()
            .credits
            .is_empty()
    );
}

#[test]
fn expired_token_credits_are_no_longer_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let early = token_reward("e1", "t-early", "a", T0_MS, 1.0, T0_MS);
    let late = token_reward(
        "e2",
        "t-late",
        "a",
        T0_MS + 3 * DAY_MS,
        1.0,
        T0_MS + 3 * DAY_MS,
    );
    block_on(store.apply_rewards(vec![early, late])).unwrap();
    let retained_until = T0_MS + 7 * DAY_MS + TOKEN_MARK_SLACK_MS;
    // Removes the early mark (and both event ids, whose retention is shorter) once its
    // generation is due.
    block_on(store.expire(retained_until + MAX_RETENTION_LAG_MS)).unwrap();
    let left: HashSet<String> = block_on(store.scan_token_credits(&epoch(), None, 10))
        .unwrap()
        .credits
        .into_iter()
        .map(|c| c.assignment_id)
        .collect();
    assert_eq!(left, HashSet::from(["t-late".to_owned()]));
}

#[test]
fn a_token_credit_scan_waits_until_the_marks_are_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let gate = store.shared.flush_gate.lock().unwrap();
    let write = store.apply_rewards(vec![token_reward("e1", "t1", "a", T0_MS, 1.0, T0_MS)]);
    // The mark's payload value is applied to sled, not yet on disk.
    while store
        .shared
        .sled()
        .unwrap()
        .scan_prefix([keys::KIND_MARK_LOG])
        .next()
        .is_none()
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut scan = store.scan_token_credits(&epoch(), None, 10);
    assert!(
        is_pending(&mut scan),
        "scan_token_credits() showed a mark a crash could take back"
    );
    drop(gate);
    block_on(write).unwrap();
    let ids: Vec<String> = block_on(scan)
        .unwrap()
        .credits
        .into_iter()
        .map(|c| c.assignment_id)
        .collect();
    assert_eq!(ids, vec!["t1".to_owned()]);
}
