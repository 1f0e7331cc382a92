//! Grouped exposures count exactly what the same exposures counted one by one would.

use super::*;
use crate::store::overlay::BatchState;
use crate::store::state::DurableState;
use crate::store::test_support::*;

const HALF_LIFE_MS: u64 = 60_000;

fn exposure(variant_index: usize, tally: &Tally) -> PendingExposure {
    PendingExposure {
        epoch: epoch(),
        arm: ExposedArm::InAllocation(variant_index),
        tally: tally.clone(),
    }
}

fn counts(groups: &ExposureGroups) -> Vec<u64> {
    groups.groups.iter().map(|group| group.count).collect()
}

#[test]
fn exposures_sharing_epoch_arm_moment_and_allocation_form_one_group() {
    let allocation = tally_with(T0_MS, None, &[("a", 0.5), ("b", 0.5)]);
    let later = Tally {
        now_ms: T0_MS + 1,
        ..allocation.clone()
    };
    // Equal content, another snapshot: kept apart (identity, not equality, is compared).
    let copy = tally_with(T0_MS, None, &[("a", 0.5), ("b", 0.5)]);
    let exposures = vec![
        exposure(0, &allocation),
        exposure(1, &allocation),
        exposure(0, &allocation),
        exposure(0, &later),
        exposure(0, &copy),
        exposure(0, &allocation),
    ];
    let groups = ExposureGroups::of(exposures);
    assert_eq!(counts(&groups), vec![3, 1, 1, 1]);
}

#[test]
fn grouped_exposures_equal_the_closed_form_and_the_one_by_one_counts() {
    let dir = tempfile::tempdir().unwrap();
    let db = raw_db(dir.path());
    let durable = DurableState::default();
    let batch = BatchState::new(1, 0);
    let first = tally_with(
        T0_MS,
        Some(HALF_LIFE_MS),
        &[("a", 0.5), ("b", 0.3), ("c", 0.2)],
    );
    let later = Tally {
        now_ms: T0_MS + HALF_LIFE_MS,
        ..first.clone()
    };
    // 1,000 of a and 500 of b at T0; 300 more of a one half-life later.
    let mut exposures = Vec::new();
    for i in 0..1_500 {
        exposures.push(exposure(usize::from(i >= 1_000), &first));
    }
    for _ in 0..300 {
        exposures.push(exposure(0, &later));
    }

    let mut one_by_one = Txn::new(&db, &durable, &batch);
    for PendingExposure { epoch, arm, tally } in &exposures {
        let ExposedArm::InAllocation(index) = arm else {
            unreachable!("built above")
        };
        apply::count_exposures(
            &mut one_by_one,
            epoch,
            &tally.allocation[*index].0,
            tally,
            1,
        )
        .unwrap();
    }
    let groups = ExposureGroups::of(exposures);
    assert_eq!(counts(&groups), vec![1_000, 500, 300]);
    let mut grouped = Txn::new(&db, &durable, &batch);
    groups.apply(&mut grouped).unwrap();

    let a = grouped.arm(&epoch(), "a");
    let b = grouped.arm(&epoch(), "b");
    let c = grouped.arm(&epoch(), "c");
    assert_eq!((a.counters.exposures, a.per_request), (1_300, 1_300));
    assert_eq!((b.counters.exposures, b.per_request), (500, 500));
    assert_eq!(c.counters.exposures, 0);
    // Σ over exposures of each arm's probability: 1,800 × (0.5, 0.3, 0.2).
    for (arm, expected) in [(&a, 900.0), (&b, 540.0), (&c, 360.0)] {
        assert!((arm.counters.expected_exposures - expected).abs() < 1e-9);
    }
    // a's 1,000 from T0 weigh 1/2 one half-life later, plus the 300 made then.
    assert!((a.counters.decayed_exposures - 800.0).abs() < 1e-9);
    assert_eq!(a.counters.decayed_at_ms, T0_MS + HALF_LIFE_MS);

    for variant in ["a", "b", "c"] {
        let (grouped, single) = (
            grouped.arm(&epoch(), variant),
            one_by_one.arm(&epoch(), variant),
        );
        assert_eq!(grouped.counters.exposures, single.counters.exposures);
        assert_eq!(grouped.per_request, single.per_request);
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(1.0);
        assert!(close(
            grouped.counters.expected_exposures,
            single.counters.expected_exposures
        ));
        assert!(close(
            grouped.counters.decayed_exposures,
            single.counters.decayed_exposures
        ));
    }
    // The epoch started at the first exposure, as it would have one by one.
    assert_eq!(
        grouped
            .epoch_info(&epoch())
            .and_then(|info| info.started_ms),
        Some(T0_MS)
    );
}

#[test]
fn an_allocation_kept_by_a_group_cannot_be_mistaken_for_a_new_one_at_the_same_address() {
    // Each tally is dropped by the caller right after it is queued; the group keeps its own
    // clone, so a later allocation can never reuse the address and join the wrong group.
    let mut groups = ExposureGroups::default();
    for share in [0.9, 0.1] {
        let tally = tally_with(T0_MS, None, &[("a", share), ("b", 1.0 - share)]);
        groups.add(epoch(), ExposedArm::InAllocation(0), tally);
    }
    assert_eq!(counts(&groups), vec![1, 1]);
    let dir = tempfile::tempdir().unwrap();
    let db = raw_db(dir.path());
    let (durable, batch) = (DurableState::default(), BatchState::new(1, 0));
    let mut txn = Txn::new(&db, &durable, &batch);
    groups.apply(&mut txn).unwrap();
    assert!((txn.arm(&epoch(), "a").counters.expected_exposures - 1.0).abs() < 1e-12);
    assert!((txn.arm(&epoch(), "b").counters.expected_exposures - 1.0).abs() < 1e-12);
}
