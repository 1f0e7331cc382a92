//! Contract: sticky assignments (set-if-absent, compare-and-set) and their scans.

use futures_util::future::join_all;

use super::{Backend, assert_audit_clean, exposures_of};
use crate::store::Store;
use crate::store::test_support::{T0_MS, epoch, record, tally};

/// Many concurrent first requests of one unit, each proposing another variant: exactly one
/// wins, every caller gets the winner's record, and one exposure is counted.
pub async fn set_if_absent_has_one_winner_and_one_exposure_under_concurrency<B: Backend>() {
    let backend = B::open().await;
    let store = backend.store();
    let variants = ["a", "b", "c", "d"];
    let racing = (0..64).map(|caller| {
        let variant = variants[caller % variants.len()];
        store.insert_sticky(&epoch(), "racer", record(variant, T0_MS), tally(T0_MS))
    });
    let answers: Vec<_> = join_all(racing)
        .await
        .into_iter()
        .map(|answer| answer.expect("insert acknowledged"))
        .collect();
    assert_eq!(answers.iter().filter(|(_, won)| *won).count(), 1);
    let held = &answers[0].0;
    assert!(
        answers.iter().all(|(record, _)| record == held),
        "{answers:?}"
    );
    assert_eq!(
        store.sticky(&epoch(), "racer").await.unwrap().as_ref(),
        Some(held)
    );
    let mut total = 0;
    for variant in variants {
        total += exposures_of(store, variant).await;
    }
    assert_eq!(total, 1, "one exposure for one unit");
    assert_eq!(exposures_of(store, &held.variant).await, 1);
    // A later insert with another variant changes nothing either.
    let (again, won) = store
        .insert_sticky(&epoch(), "racer", record("z", T0_MS + 1), tally(T0_MS + 1))
        .await
        .unwrap();
    assert_eq!((&again, won), (held, false));
    assert_eq!(exposures_of(store, "z").await, 0);
    assert_audit_clean(store).await;
}

/// A re-assignment away from a retired variant replaces the record only if it still names
/// that variant: among racing re-assignments one wins; the old arm keeps its counters.
pub async fn a_reassignment_is_a_compare_and_set_with_one_winner<B: Backend>() {
    let backend = B::open().await;
    let store = backend.store();
    assert_eq!(
        store
            .reassign_sticky(&epoch(), "nobody", "old", record("b", T0_MS), tally(T0_MS))
            .await
            .unwrap(),
        None,
        "a unit without a record has nothing to re-assign"
    );
    store
        .insert_sticky(&epoch(), "u1", record("old", T0_MS), tally(T0_MS))
        .await
        .unwrap();
    let later = T0_MS + 1000;
    let racing = ["b", "c", "b", "c", "b", "c", "b", "c"].map(|variant| {
        let mut proposed = record(variant, later);
        proposed.reward = Some(1.0);
        store.reassign_sticky(&epoch(), "u1", "old", proposed, tally(later))
    });
    let answers: Vec<_> = join_all(racing)
        .await
        .into_iter()
        .map(|answer| answer.unwrap().expect("the unit has a record"))
        .collect();
    assert_eq!(answers.iter().filter(|(_, won)| *won).count(), 1);
    let held = answers[0].0.clone();
    assert!(answers.iter().all(|(record, _)| *record == held));
    assert_ne!(held.variant, "old");
    assert_eq!(held.assigned_ms, later);
    assert_eq!(
        held.reward, None,
        "a new assignment starts without a reward"
    );
    assert_eq!(
        store.sticky(&epoch(), "u1").await.unwrap(),
        Some(held.clone())
    );
    assert_eq!(
        exposures_of(store, "old").await,
        1,
        "history is not rewritten"
    );
    assert_eq!(exposures_of(store, &held.variant).await, 1);
    let stale = store
        .reassign_sticky(&epoch(), "u1", "old", record("d", later), tally(later))
        .await
        .unwrap();
    assert_eq!(stale, Some((held, false)));
    assert_audit_clean(store).await;
}

/// Pages of a sticky scan cover every unit once, in byte order of the unit, and a short page
/// is the last.
pub async fn sticky_scans_page_through_every_unit_in_byte_order<B: Backend>() {
    let backend = B::open().await;
    let store = backend.store();
    let mut units: Vec<String> = (0..25).map(|i| format!("unit-{i}")).collect();
    units.push("Émile".to_owned());
    units.push("zz".to_owned());
    for (i, unit) in units.iter().enumerate() {
        let variant = if i % 2 == 0 { "a" } else { "b" };
        store
            .insert_sticky(&epoch(), unit, record(variant, T0_MS), tally(T0_MS))
            .await
            .unwrap();
    }
    let other = crate::store::Epoch {
        revision: 2,
        ..epoch()
    };
    store
        .insert_sticky(&other, "elsewhere", record("a", T0_MS), tally(T0_MS))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .scan_sticky(&epoch(), after.clone(), 10)
            .await
            .unwrap();
        assert!(page.len() <= 10);
        let short = page.len() < 10;
        after = page.last().map(|(unit, _)| unit.clone());
        seen.extend(page);
        if short {
            break;
        }
    }
    units.sort();
    let scanned: Vec<&String> = seen.iter().map(|(unit, _)| unit).collect();
    assert_eq!(scanned, units.iter().collect::<Vec<_>>());
    for (unit, scanned) in &seen {
        assert_eq!(
            store.sticky(&epoch(), unit).await.unwrap().as_ref(),
            Some(scanned)
        );
    }
    assert_eq!(
        store.scan_sticky(&epoch(), None, 0).await.unwrap(),
        Vec::new()
    );
    assert_eq!(
        store
            .scan_sticky(&epoch(), units.last().cloned(), 10)
            .await
            .unwrap(),
        Vec::new()
    );
}
