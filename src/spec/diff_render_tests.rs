use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::*;
use crate::spec::{Experiment, parse_experiment, plan};

const BASE: &str = "\
id: home
description: Which headline?
owner: growth
status: running
assignment: sticky
policy: {burn_in: 100, min_share: 0.02}
default_variant: plain
variants:
  - {id: plain, payload: {headline: Build faster}}
  - {id: bold, payload: {headline: Ship in a day}}
";

fn exp(file: &str, edit: impl FnOnce(String) -> String) -> Experiment {
    let text = edit(BASE.to_owned());
    parse_experiment(Path::new(file), &text).unwrap_or_else(|e| panic!("{e:?}\n{text}"))
}

fn home_traffic() -> TrafficFacts {
    TrafficFacts::from_exposures(BTreeMap::from([(
        "home".to_owned(),
        BTreeMap::from([("plain".to_owned(), 1_187_u64), ("bold".to_owned(), 1_204)]),
    )]))
}

fn no_retired() -> BTreeMap<String, BTreeSet<String>> {
    BTreeMap::new()
}

#[test]
fn thousands_separators_group_digits_by_three() {
    let table = [
        (0, "0"),
        (7, "7"),
        (999, "999"),
        (1_000, "1,000"),
        (1_204, "1,204"),
        (123_456, "123,456"),
        (1_234_567, "1,234,567"),
        (u64::MAX, "18,446,744,073,709,551,615"),
    ];
    for (n, text) in table {
        assert_eq!(thousands(n), text);
    }
}

#[test]
fn traffic_facts_answer_per_variant_and_per_experiment() {
    let facts = home_traffic();
    assert!(facts.is_known());
    assert_eq!(facts.exposures("home", "bold"), Some(1_204));
    assert_eq!(facts.exposures("home", "gone"), None);
    assert_eq!(facts.total("home"), Some(2_391));
    assert_eq!(facts.total("other"), None);
    assert!(!TrafficFacts::unknown().is_known());
    assert_eq!(TrafficFacts::unknown().total("home"), None);
}

#[test]
fn retiring_a_sticky_variant_says_how_many_units_are_re_assigned() {
    let old = exp("running/home.yaml", |t| t);
    let new = exp("experiments/home.yaml", |t| {
        t.replace("  - {id: bold, payload: {headline: Ship in a day}}\n", "")
            .replace(
                "variants:\n",
                "variants:\n  - {id: calm, payload: {headline: Relax}}\n",
            )
    });
    let plan = plan(&[old], &[new], &no_retired());
    assert_eq!(
        plan.traffic_effects(&home_traffic()),
        vec![
            "home: variant 'bold' retired; its 1,204 sticky units will be re-assigned",
            "home: variant 'calm' added at its prior; traffic is split evenly again until it \
             has 100 exposures (policy.burn_in)",
        ]
    );
    let text = plan.render_text(&home_traffic());
    assert!(
        text.contains("~ home  changed, revision 1  (experiments/home.yaml)"),
        "{text}"
    );
    assert!(
        text.contains("    + variant 'calm' added (starts at its prior)\n"),
        "{text}"
    );
    assert!(
        text.contains("    - variant 'bold' retired (no new traffic; its data is kept)\n"),
        "{text}"
    );
    assert!(text.contains("    verdict: compatible\n"), "{text}");
    assert!(text.ends_with("Verdict: SAFE to apply\n"), "{text}");
}

#[test]
fn a_folder_comparison_says_it_has_no_traffic_data_and_omits_numbers() {
    let old = exp("a/home.yaml", |t| t);
    let new = exp("b/home.yaml", |t| {
        t.replace("  - {id: bold, payload: {headline: Ship in a day}}\n", "")
            .replace(
                "variants:\n",
                "variants:\n  - {id: calm, payload: {headline: Relax}}\n",
            )
    });
    let plan = plan(&[old], &[new], &no_retired());
    let text = plan.render_text(&TrafficFacts::unknown());
    assert!(
        text.contains("Effect on traffic (no traffic data: folder comparison):\n"),
        "{text}"
    );
    assert!(
        text.contains("  home: variant 'bold' retired; its sticky units will be re-assigned\n"),
        "{text}"
    );
}

#[test]
fn per_request_retirement_keeps_exposures_rather_than_re_assigning_units() {
    let per_request = |t: String| t.replace("assignment: sticky", "assignment: per_request");
    let old = exp("running/home.yaml", per_request);
    let new = exp("experiments/home.yaml", |t| {
        per_request(t).replace(
            "  - {id: plain, payload: {headline: Build faster}}\n",
            "  - {id: plain, payload: {headline: Build faster}}\n  - {id: x, payload: 1}\n",
        )
    });
    let old_three = exp("running/home.yaml", |t| {
        per_request(t).replace("variants:\n", "variants:\n  - {id: x, payload: 1}\n")
    });
    let new_two = exp("experiments/home.yaml", per_request);
    let facts = TrafficFacts::from_exposures(BTreeMap::from([(
        "home".to_owned(),
        BTreeMap::from([("x".to_owned(), 52_000_u64)]),
    )]));
    let plan_retire = plan(&[old_three], &[new_two], &no_retired());
    assert_eq!(
        plan_retire.traffic_effects(&facts),
        vec!["home: variant 'x' retired; it gets no more traffic (its 52,000 exposures are kept)"]
    );
    assert_eq!(
        plan(&[old], &[new], &no_retired()).verdict(),
        PlanVerdict::Safe
    );
}

#[test]
fn added_removed_and_status_changes_describe_their_traffic() {
    let running = [
        exp("running/home.yaml", |t| t),
        exp("running/gone.yaml", |t| t.replace("id: home", "id: gone")),
    ];
    let proposed = [
        exp("experiments/home.yaml", |t| {
            t.replace("status: running", "status: paused")
        }),
        exp("experiments/fresh.yaml", |t| {
            t.replace("id: home", "id: fresh")
                .replace("burn_in: 100", "burn_in: 1000")
        }),
    ];
    let facts = TrafficFacts::from_exposures(BTreeMap::from([(
        "gone".to_owned(),
        BTreeMap::from([("plain".to_owned(), 1_500_u64), ("bold".to_owned(), 1_710)]),
    )]));
    let plan = plan(&running, &proposed, &no_retired());
    assert_eq!(
        plan.traffic_effects(&facts),
        vec![
            "fresh: starts serving 2 variants, split evenly until every variant has 1,000 exposures",
            "gone: no longer served (assign answers 404); the assignments of its 3,210 sticky \
             units and all its data are kept",
            "home: paused: everybody gets 'plain', nothing is counted",
        ]
    );
    let text = plan.render_text(&facts);
    assert!(
        text.starts_with("Plan: 1 added, 1 changed, 1 removed, 0 unchanged\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "+ fresh  added, revision 1  (experiments/fresh.yaml)\n    variants: plain, bold\n"
        ),
        "{text}"
    );
    assert!(text.contains("- gone  removed, revision 1  (running/gone.yaml)\n    stops being served; its data is kept\n"), "{text}");
    assert!(text.contains("    status: running → paused\n"), "{text}");
}

#[test]
fn a_revision_bump_is_shown_as_a_fresh_epoch_with_the_history_it_leaves() {
    let old = exp("running/home.yaml", |t| t);
    let new = exp("experiments/home.yaml", |t| {
        t.replace("assignment: sticky", "revision: 2\nassignment: per_request")
    });
    let plan = plan(&[old], &[new], &no_retired());
    let text = plan.render_text(&home_traffic());
    assert!(
        text.contains("~ home  changed, revision 1 → 2  (experiments/home.yaml)\n"),
        "{text}"
    );
    assert!(text.contains("    starts a fresh data epoch: new counters and assignments; revision 1 stays as read-only history\n"), "{text}");
    assert!(text.contains("  home: fresh data epoch: the 2,391 exposures of revision 1 become read-only history; every unit is assigned afresh, split evenly until every variant has 100 exposures\n"), "{text}");
    assert!(text.ends_with("Verdict: SAFE to apply\n"), "{text}");
}

#[test]
fn a_refused_plan_lists_the_reasons_and_changes_no_traffic() {
    let old = exp("running/home.yaml", |t| t);
    let new = exp("experiments/home.yaml", |t| {
        t.replace("Ship in a day", "Ship now")
    });
    let plan = plan(&[old], &[new], &no_retired());
    let text = plan.render_text(&home_traffic());
    assert!(text.contains("    ~ variant 'bold' payload: {\"headline\":\"Ship in a day\"} → {\"headline\":\"Ship now\"}\n"), "{text}");
    assert!(text.contains("    verdict: NEEDS A REVISION BUMP\n      - experiments/home.yaml: the payload of variant `bold` changes"), "{text}");
    assert!(
        text.contains("  home: nothing changes until the revision problem above is fixed\n"),
        "{text}"
    );
    assert!(text.ends_with("Verdict: REFUSED: 1 experiment needs a revision bump; the server would reject the whole reload and keep running the current set\n"), "{text}");
}

#[test]
fn an_unchanged_set_says_there_is_nothing_to_change() {
    let plan = plan(
        &[exp("a/home.yaml", |t| t)],
        &[exp("b/home.yaml", |t| t)],
        &no_retired(),
    );
    let text = plan.render_text(&TrafficFacts::unknown());
    assert_eq!(
        text,
        "Plan: 0 added, 0 changed, 0 removed, 1 unchanged\n\n= unchanged: home\n\n\
         Effect on traffic (no traffic data: folder comparison):\n  none\n\n\
         Verdict: SAFE: nothing to change\n"
    );
}
