//! Export pages through the index: sorted whatever the write order, each unit once, units
//! written between pages included, and a stale index rebuilt.

use super::*;
use crate::store::Store;
use crate::store::sled::SledStore;
use crate::store::test_support::*;

fn insert(store: &SledStore, unit: &str) {
    block_on(store.insert_sticky(&epoch(), unit, record("control", T0_MS), tally(T0_MS))).unwrap();
}

fn export(store: &SledStore, limit: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = block_on(store.scan_sticky(&epoch(), after.clone(), limit)).unwrap();
        seen.extend(page.iter().map(|(unit, _)| unit.clone()));
        if page.len() < limit {
            return seen;
        }
        after = page.last().map(|(unit, _)| unit.clone());
    }
}

#[test]
fn units_written_after_the_index_was_built_join_the_pages_they_sort_into() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for unit in (0..40).step_by(2).rev() {
        insert(&store, &format!("u{unit:02}"));
    }
    // The first page builds the index of the even units.
    let first = block_on(store.scan_sticky(&epoch(), None, 5)).unwrap();
    let first: Vec<_> = first.into_iter().map(|(unit, _)| unit).collect();
    assert_eq!(first, ["u00", "u02", "u04", "u06", "u08"]);
    // Odd units arrive after it: those after the cursor come in their place.
    for unit in (1..40).step_by(2) {
        insert(&store, &format!("u{unit:02}"));
    }
    let mut seen = first;
    let mut after = seen.last().cloned();
    loop {
        let page = block_on(store.scan_sticky(&epoch(), after.clone(), 5)).unwrap();
        seen.extend(page.iter().map(|(unit, _)| unit.clone()));
        if page.len() < 5 {
            break;
        }
        after = page.last().map(|(unit, _)| unit.clone());
    }
    let mut expected: Vec<_> = ["u00", "u02", "u04", "u06", "u08"]
        .map(str::to_owned)
        .to_vec();
    expected.extend((9..40).map(|unit| format!("u{unit:02}")));
    assert_eq!(seen, expected);
}

#[test]
fn an_index_with_a_long_tail_is_rebuilt_and_still_answers_every_unit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    insert(&store, "a");
    assert_eq!(export(&store, 10), ["a"]);
    let units: Vec<_> = (0..REBUILD_TAIL_MIN + 10)
        .map(|unit| format!("b{unit:06}"))
        .collect();
    // One commit of many inserts, so the test stays fast.
    let inserts: Vec<_> = units
        .iter()
        .map(|unit| store.insert_sticky(&epoch(), unit, record("control", T0_MS), tally(T0_MS)))
        .collect();
    block_on(async {
        for insert in inserts {
            insert.await.unwrap();
        }
    });
    let page = block_on(store.scan_sticky(&epoch(), None, 3)).unwrap();
    assert_eq!(page.len(), 3);
    // That page read the whole tail: the index is stale, and the next page rebuilds it.
    let index = store.export_index_for_tests(&epoch());
    assert!(index.1, "stale after a tail of {} entries", index.0);
    let all = export(&store, 1000);
    let mut expected = vec!["a".to_owned()];
    expected.extend(units);
    assert_eq!(all.len(), expected.len());
    assert_eq!(all, expected);
    let rebuilt = store.export_index_for_tests(&epoch());
    assert!(!rebuilt.1, "{rebuilt:?}");
}

#[test]
fn idle_indexes_are_dropped_and_at_most_two_are_kept() {
    let indexes = ExportIndexes::default();
    let (_dir, db) = temp_db();
    let table = StickyTable::default();
    for revision in 1..=3 {
        let epoch = Epoch {
            experiment: "e".to_owned(),
            revision,
        };
        indexes.page(&db, &table, &epoch, None, 10).unwrap();
    }
    assert_eq!(indexes.lock().len(), MAX_INDEXES);
    for index in indexes.lock().iter() {
        index.lock().unwrap().last_used -= Duration::from_millis(IDLE_MS + 1);
    }
    indexes.drop_idle();
    assert_eq!(indexes.lock().len(), 0);
}
