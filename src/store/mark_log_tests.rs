//! The mark log's layout, and token credits across commits, restarts, expiry and exports.

use std::collections::BTreeSet;

use super::*;
use crate::store::RewardOutcome::{AlreadyRewarded, Applied, Duplicate, OutsideWindow};
use crate::store::event_log::GENERATION_MS;
use crate::store::test_support::{
    DAY_MS, T0_MS, block_on, epoch, epoch_of, open, raw, raw_db, token_reward,
};
use crate::store::{ArmCounters, RewardOp, RewardOutcome, SledStore, Store, TOKEN_MARK_SLACK_MS};

fn credit(assignment_id: &str, credited_ms: Option<u64>) -> TokenCredit {
    TokenCredit {
        assignment_id: assignment_id.to_owned(),
        variant: "bold".to_owned(),
        reward: 0.25,
        retained_until_ms: T0_MS + 8 * DAY_MS,
        issued_ms: T0_MS,
        propensity: 0.125,
        credited_ms,
    }
}

fn pending(due_ms: u64, epoch: &Epoch, digest: u64, assignment_id: &str) -> PendingMark {
    PendingMark {
        due_ms,
        epoch: epoch.clone(),
        digest,
        credit: credit(assignment_id, Some(T0_MS + 5)),
    }
}

fn applied(variant: &str) -> RewardOutcome {
    Applied {
        variant: variant.to_owned(),
    }
}

fn counters(store: &SledStore) -> std::collections::HashMap<String, ArmCounters> {
    block_on(store.counters(&epoch())).unwrap()
}

#[test]
fn entries_round_trip_and_malformed_ones_are_corrupt_not_panics() {
    let marks = [credit("a-1", Some(T0_MS + 9)), credit("ä-2", None)];
    let mut value = Vec::new();
    for mark in &marks {
        put_entry(&mut value, mark);
    }
    assert_eq!(decode_value(&value).unwrap(), marks);
    assert!(decode_value(&value[..value.len() - 1]).is_err());
    assert!(decode_value(&[0x05, b'a']).is_err());
    let key = payload_key(3 * GENERATION_MS, &epoch_of("exp", 7), 9, 4);
    let parsed = PayloadKey::parse(&key).unwrap();
    assert_eq!(
        parsed,
        PayloadKey {
            due_ms: 3 * GENERATION_MS,
            epoch: epoch_of("exp", 7),
            seq: 9,
            chunk: 4
        }
    );
    assert!(PayloadKey::parse(&key[..key.len() - 1]).is_err());
    assert!(PayloadKey::parse(&[keys::KIND_EVENT_LOG]).is_err());
    assert!(is_mark_digest_key(&parsed.digest_key()));
    assert!(!is_mark_digest_key(&event_log::log_key(1, 9, 4)));
}

#[test]
fn log_values_are_small_paired_and_grouped_by_generation_and_epoch() {
    let mut marks = PendingMarks::default();
    let long = "x".repeat(200);
    for n in 0..700_u64 {
        let (due, ep) = match n % 3 {
            0 => (2 * GENERATION_MS, epoch()),
            1 => (2 * GENERATION_MS, epoch_of("other", 1)),
            _ => (GENERATION_MS, epoch()),
        };
        marks.push(pending(due, &ep, n, &format!("{long}-{n}")));
    }
    let values = log_values(42, &marks);
    let mut seen = BTreeSet::new();
    let mut chunks = BTreeSet::new();
    for (key, value) in values.iter().filter(|(key, _)| key[0] == KIND_MARK_LOG) {
        let parsed = PayloadKey::parse(key).unwrap();
        assert!(chunks.insert(parsed.chunk), "chunks are unique per commit");
        assert_eq!(parsed.seq, 42);
        let entries = decode_value(value).unwrap();
        assert!(value.len() < MAX_VALUE_BYTES + 300, "{}", value.len());
        assert!(entries.len() <= event_log::MAX_LOG_VALUE_DIGESTS);
        let (_, digests) = values
            .iter()
            .find(|(k, _)| *k == parsed.digest_key())
            .expect("every payload value has its digest value");
        let digests: Vec<u64> = event_log::decode_value(digests).unwrap().collect();
        assert_eq!(digests.len(), entries.len());
        for (digest, entry) in digests.iter().zip(&entries) {
            let n: u64 = entry
                .assignment_id
                .rsplit('-')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(*digest, n, "a digest sits at its mark's place");
            let (due, ep) = match n % 3 {
                0 => (2 * GENERATION_MS, epoch()),
                1 => (2 * GENERATION_MS, epoch_of("other", 1)),
                _ => (GENERATION_MS, epoch()),
            };
            assert_eq!((parsed.due_ms, &parsed.epoch), (due, &ep));
            assert!(seen.insert(n));
        }
    }
    assert_eq!(seen.len(), 700);
    assert_eq!(
        values.len(),
        2 * chunks.len(),
        "one digest value per payload value"
    );
}

#[test]
fn page_cursors_are_opaque_round_trips_and_bad_ones_are_refused() {
    let cursor = Cursor {
        due_ms: 5,
        seq: u64::MAX,
        chunk: MARK_CHUNK_BIT - 1,
        index: 3,
    };
    assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
    assert!(Cursor::decode("zz").is_err());
    assert!(Cursor::decode(&"g".repeat(64)).is_err());
    assert!(Cursor::decode(&"é".repeat(32)).is_err());
}

fn token_at(event_id: &str, assignment_id: &str, issued_ms: u64, reward: f64) -> RewardOp {
    token_reward(
        event_id,
        assignment_id,
        "bold",
        issued_ms,
        reward,
        issued_ms + 1,
    )
}

#[test]
fn a_token_is_credited_once_within_a_commit_across_commits_and_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        let outcomes = block_on(store.apply_rewards(vec![
            token_at("e1", "a1", T0_MS, 1.0),
            token_at("e2", "a1", T0_MS, 1.0),
            token_at("e1", "a2", T0_MS, 1.0),
        ]))
        .unwrap();
        assert_eq!(outcomes, vec![applied("bold"), AlreadyRewarded, Duplicate]);
        let again = block_on(store.apply_rewards(vec![token_at("e3", "a1", T0_MS, 1.0)]));
        assert_eq!(again.unwrap(), vec![AlreadyRewarded]);
        assert_eq!(raw(&counters(&store)["bold"]).1, 1.0);
    }
    let store = open(dir.path());
    let outcomes = block_on(store.apply_rewards(vec![
        token_at("e1", "a1", T0_MS, 1.0),
        token_at("e4", "a1", T0_MS, 1.0),
        token_at("e5", "a3", T0_MS, 1.0),
    ]))
    .unwrap();
    assert_eq!(outcomes, vec![Duplicate, AlreadyRewarded, applied("bold")]);
    assert_eq!(raw(&counters(&store)["bold"]).1, 2.0);
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.live_token_marks, report.event_ids), (2, 2));
}

#[test]
fn a_token_mark_is_not_an_event_id_of_the_same_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // The mark's digest input is not the event id's: the event id "a1" does not mark token
    // "a1", nor the reverse.
    let outcomes = block_on(store.apply_rewards(vec![
        token_at("a1", "x", T0_MS, 1.0),
        token_at("y", "a1", T0_MS, 1.0),
    ]))
    .unwrap();
    assert_eq!(outcomes, vec![applied("bold"), applied("bold")]);
}

#[test]
fn the_at_most_once_check_replays_from_the_event_log_without_the_payloads() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        let outcomes = block_on(store.apply_rewards(vec![token_at("e1", "a1", T0_MS, 1.0)]));
        assert_eq!(outcomes.unwrap(), vec![applied("bold")]);
    }
    {
        let db = raw_db(dir.path());
        let payloads: Vec<_> = db
            .scan_prefix([KIND_MARK_LOG])
            .map(|item| item.unwrap().0)
            .collect();
        assert_eq!(payloads.len(), 1);
        for key in payloads {
            db.remove(key).unwrap();
        }
        db.flush().unwrap();
    }
    let store = open(dir.path());
    let outcomes = block_on(store.apply_rewards(vec![token_at("e2", "a1", T0_MS, 1.0)]));
    assert_eq!(outcomes.unwrap(), vec![AlreadyRewarded]);
}

#[test]
fn marks_expire_with_their_generation_and_fold_their_rewards() {
    let dir = tempfile::tempdir().unwrap();
    let issued = [T0_MS, T0_MS + 10, T0_MS + 3 * GENERATION_MS];
    let mark_end = |issued_ms: u64| issued_ms + 7 * DAY_MS + TOKEN_MARK_SLACK_MS;
    let first_due = event_log::generation_due(mark_end(issued[0]));
    {
        let store = open(dir.path());
        let ops: Vec<_> = issued
            .iter()
            .enumerate()
            .map(|(n, &at)| token_at(&format!("e{n}"), &format!("a{n}"), at, 0.5 + n as f64))
            .collect();
        assert!(
            block_on(store.apply_rewards(ops))
                .unwrap()
                .iter()
                .all(|o| matches!(o, Applied { .. }))
        );
        let before = counters(&store)["bold"];
        assert!(store.audit().unwrap().is_clean());
        // Every event id's generation (a week after arrival) is due before any mark's.
        assert_eq!(
            block_on(store.expire(first_due - 1)).unwrap(),
            3,
            "ids only"
        );
        assert_eq!(store.audit().unwrap().live_token_marks, 3);
        assert_eq!(
            block_on(store.expire(first_due)).unwrap(),
            2,
            "the first generation's two marks"
        );
        let report = store.audit().unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.live_token_marks, 1);
        assert_eq!(counters(&store)["bold"], before, "folding moves no counter");
        let page = block_on(store.scan_token_credits(&epoch(), None, 10)).unwrap();
        assert_eq!(page.credits.len(), 1);
        assert_eq!(page.credits[0].assignment_id, "a2");
        // The expired tokens are refused from now on, whatever their event's clock says.
        let late = token_reward("e9", "a0", "bold", issued[0], 1.0, issued[0] + 2);
        assert_eq!(
            block_on(store.apply_rewards(vec![late])).unwrap(),
            vec![OutsideWindow]
        );
        // The new token on the live generation is still refused as marked.
        let again = token_at("e10", "a2", issued[2], 1.0);
        assert_eq!(
            block_on(store.apply_rewards(vec![again])).unwrap(),
            vec![AlreadyRewarded]
        );
    }
    let store = open(dir.path());
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
    let last_due = event_log::generation_due(mark_end(issued[2]));
    assert_eq!(block_on(store.expire(last_due)).unwrap(), 1);
    let report = store.audit().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.live_token_marks, report.event_ids), (0, 0));
    assert_eq!(raw(&counters(&store)["bold"]).1, 0.5 + 1.5 + 2.5);
    let db = store.raw();
    assert_eq!(db.scan_prefix([KIND_MARK_LOG]).count(), 0);
    assert_eq!(db.scan_prefix([keys::KIND_EVENT_LOG]).count(), 0);
    assert_eq!(db.scan_prefix([keys::KIND_EXPIRY]).count(), 0);
}

#[test]
fn a_thousand_token_credits_add_a_handful_of_keys_and_no_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let keys_before = store.raw().len();
    // Assignment ids of 100 bytes.
    let ops: Vec<_> = (0..1000)
        .map(|n| token_at(&format!("e{n}"), &format!("{n:0>100}"), T0_MS, 1.0))
        .collect();
    let outcomes = block_on(store.apply_rewards(ops)).unwrap();
    assert!(outcomes.iter().all(|o| matches!(o, Applied { .. })));
    let db = store.raw();
    let payloads = db.scan_prefix([KIND_MARK_LOG]).count();
    // ~140 bytes per entry: 14 to 15 entries per value.
    assert!((50..=80).contains(&payloads), "{payloads} payload values");
    let new_keys = db.len() - keys_before;
    // Payloads and their digest values, four event-id values, the arm, the epoch, the delay
    // bin and the meta keys: not a key per credit.
    assert!(
        new_keys <= 2 * payloads + 12,
        "{new_keys} keys for 1000 credits"
    );
    assert_eq!(db.scan_prefix([keys::KIND_TOKEN_MARK]).count(), 0);
    assert_eq!(db.scan_prefix([keys::KIND_EXPIRY]).count(), 0);
    drop(db);
    block_on(store.shutdown()).unwrap();
    let blobs: Vec<_> = std::fs::read_dir(dir.path().join("blobs"))
        .map(|entries| entries.map(|entry| entry.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(blobs.is_empty(), "{blobs:?}");
}

#[test]
fn an_export_pages_every_mark_of_its_epoch_once_across_generations_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut expected = BTreeSet::new();
    for commit in 0..4_u64 {
        let mut ops = Vec::new();
        for n in 0..9_u64 {
            // Three generations, interleaved with another epoch's marks.
            let issued = T0_MS + (n % 3) * GENERATION_MS;
            let id = format!("c{commit}-n{n}");
            ops.push(token_at(&format!("e-{id}"), &id, issued, 1.0));
            let mut other = token_at(&format!("o-{id}"), &id, issued, 1.0);
            other.epoch = epoch_of("other", 1);
            ops.push(other);
            expected.insert(id);
        }
        block_on(store.apply_rewards(ops)).unwrap();
    }
    for limit in [1, 7, 36, 100] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = block_on(store.scan_token_credits(&epoch(), after, limit)).unwrap();
            assert!(page.credits.len() <= limit);
            seen.extend(page.credits.into_iter().map(|credit| credit.assignment_id));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let unique: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(seen.len(), 36, "limit {limit}: each mark once");
        assert_eq!(unique, expected, "limit {limit}");
    }
}

#[test]
fn the_audit_reports_a_mark_whose_digest_value_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        block_on(store.apply_rewards(vec![
            token_at("e1", "a1", T0_MS, 1.0),
            token_at("e2", "a2", T0_MS, 1.0),
        ]))
        .unwrap();
        assert!(store.audit().unwrap().is_clean());
    }
    {
        let db = raw_db(dir.path());
        let digest_values: Vec<_> = db
            .scan_prefix([keys::KIND_EVENT_LOG])
            .map(|item| item.unwrap().0)
            .filter(|key| is_mark_digest_key(key))
            .collect();
        assert_eq!(digest_values.len(), 1);
        db.remove(&digest_values[0]).unwrap();
        db.flush().unwrap();
    }
    let store = open(dir.path());
    let report = store.audit().unwrap();
    assert_eq!(
        (report.live_token_marks, report.unindexed_records),
        (2, 2),
        "{report:?}"
    );
    assert!(!report.is_clean());
}
