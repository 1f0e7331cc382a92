use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::json;

use super::*;
use crate::spec::parse_experiment;

const BASE: &str = "\
id: home
description: Which headline?
owner: growth
status: running
revision: 1
assignment: sticky
reward: {window: 7d}
prior: {alpha: 1, beta: 1}
policy: {burn_in: 100, min_share: 0.02}
default_variant: plain
variants:
  - {id: plain, payload: {headline: Build faster}}
  - {id: bold, payload: {headline: Ship in a day}}
";

/// The base experiment with `edit` applied to its text, read from `file`.
fn exp_in(file: &str, edit: impl FnOnce(String) -> String) -> Experiment {
    let text = edit(BASE.to_owned());
    parse_experiment(Path::new(file), &text).unwrap_or_else(|e| panic!("{e:?}\n{text}"))
}

fn running(edit: impl FnOnce(String) -> String) -> Experiment {
    exp_in("running/home.yaml", edit)
}

fn proposed(edit: impl FnOnce(String) -> String) -> Experiment {
    exp_in("experiments/home.yaml", edit)
}

fn same(text: String) -> String {
    text
}

fn one(old: Experiment, new: Experiment) -> ExperimentPlan {
    one_with_retired(old, new, &BTreeMap::new())
}

fn one_with_retired(
    old: Experiment,
    new: Experiment,
    retired: &BTreeMap<String, BTreeSet<String>>,
) -> ExperimentPlan {
    let plan = plan(&[old], &[new], retired);
    assert_eq!(plan.experiments.len(), 1);
    plan.experiments.into_iter().next().unwrap()
}

fn reasons(e: &ExperimentPlan) -> Vec<String> {
    match &e.verdict {
        Verdict::Compatible => Vec::new(),
        Verdict::NeedsRevisionBump { reasons } => reasons.clone(),
    }
}

fn with_third_variant(text: String) -> String {
    format!("{text}  - {{id: urgent, payload: {{headline: Last chance}}}}\n")
}

#[test]
fn identical_sets_are_unchanged_and_safe() {
    let e = one(running(same), proposed(same));
    assert_eq!(e.kind, ChangeKind::Unchanged);
    assert_eq!(e.verdict, Verdict::Compatible);
    assert!(e.changes.is_empty() && e.variants_changed.is_empty());
    let plan = plan(&[running(same)], &[proposed(same)], &BTreeMap::new());
    assert!(plan.is_noop());
    assert_eq!(plan.verdict(), PlanVerdict::Safe);
}

#[test]
fn reordering_variants_changes_nothing() {
    let swapped = |t: String| {
        t.replace(
            "  - {id: plain, payload: {headline: Build faster}}\n  - {id: bold, payload: {headline: Ship in a day}}\n",
            "  - {id: bold, payload: {headline: Ship in a day}}\n  - {id: plain, payload: {headline: Build faster}}\n",
        )
    };
    let e = one(running(same), proposed(swapped));
    assert_eq!(e.kind, ChangeKind::Unchanged);
}

#[test]
fn adding_a_variant_is_compatible() {
    let e = one(running(same), proposed(with_third_variant));
    assert_eq!(e.kind, ChangeKind::Changed);
    assert_eq!(e.variants_added, vec!["urgent"]);
    assert!(e.variants_retired.is_empty());
    assert_eq!(e.verdict, Verdict::Compatible);
}

#[test]
fn removing_a_variant_retires_it_and_is_compatible() {
    let e = one(running(with_third_variant), proposed(same));
    assert_eq!(e.variants_retired, vec!["urgent"]);
    assert!(e.variants_added.is_empty());
    assert_eq!(e.verdict, Verdict::Compatible);
}

#[test]
fn knobs_that_apply_to_existing_counts_are_compatible() {
    let old = running(|t| {
        t.replace(
            "assignment: sticky\n",
            "assignment: sticky\nstopping: {prob_best: 0.95, max_expected_loss: 0.001}\n",
        )
    });
    let new = proposed(|t| {
        t.replace("Which headline?", "Which hero headline?")
            .replace("owner: growth", "owner: growth-analytics")
            .replace("status: running", "status: paused")
            .replace("revision: 1\n", "revision: 1\nenvironments: [production]\n")
            .replace("window: 7d", "window: 1d")
            .replace("{alpha: 1, beta: 1}", "{alpha: 1, beta: 19}")
            .replace(
                "{burn_in: 100, min_share: 0.02}",
                "{burn_in: 250, min_share: 0.05, half_life: 2w}",
            )
            .replace("assignment: sticky\n", "assignment: sticky\nstopping: {prob_best: 0.99, max_expected_loss: 0.001, min_duration: 2w, on_winner: report}\n")
            .replace("default_variant: plain", "default_variant: bold")
    });
    let e = one(old, new);
    assert_eq!(e.verdict, Verdict::Compatible, "{:?}", reasons(&e));
    let changes: Vec<(&str, &str, &str)> = e
        .changes
        .iter()
        .map(|c| (c.field.as_str(), c.old.as_str(), c.new.as_str()))
        .collect();
    assert_eq!(
        changes,
        vec![
            ("description", "Which headline?", "Which hero headline?"),
            ("owner", "growth", "growth-analytics"),
            ("status", "running", "paused"),
            ("environments", "all", "[production]"),
            ("reward.window", "1w", "1d"),
            ("prior", "{alpha: 1, beta: 1}", "{alpha: 1, beta: 19}"),
            ("policy.burn_in", "100", "250"),
            ("policy.min_share", "0.02", "0.05"),
            ("policy.half_life", "none", "2w"),
            ("stopping.prob_best", "0.95", "0.99"),
            ("stopping.min_duration", "none", "2w"),
            ("stopping.on_winner", "exploit", "report"),
            ("default_variant", "plain", "bold"),
        ]
    );
}

#[test]
fn a_change_of_delay_model_is_compatible_and_shown() {
    // The delay model only changes how the stored counts are read, never the counts.
    for (old_model, new_model, old_shown, new_shown) in [
        ("", ", delay: off", "auto", "off"),
        (
            ", delay: off",
            ", delay: {median: 2d}",
            "off",
            "{median: 2d}",
        ),
        (
            ", delay: {median: 2d}",
            ", delay: auto",
            "{median: 2d}",
            "auto",
        ),
    ] {
        let old = running(|t| t.replace("{window: 7d}", &format!("{{window: 7d{old_model}}}")));
        let new = proposed(|t| t.replace("{window: 7d}", &format!("{{window: 7d{new_model}}}")));
        let e = one(old, new);
        assert_eq!(e.verdict, Verdict::Compatible, "{:?}", reasons(&e));
        let changes: Vec<(&str, &str, &str)> = e
            .changes
            .iter()
            .map(|c| (c.field.as_str(), c.old.as_str(), c.new.as_str()))
            .collect();
        assert_eq!(changes, vec![("reward.delay", old_shown, new_shown)]);
    }
}

#[test]
fn adding_or_removing_a_whole_stopping_rule_is_one_compatible_change() {
    let rule = |t: String| {
        t.replace(
            "assignment: sticky\n",
            "assignment: sticky\nstopping: {prob_best: 0.95, max_expected_loss: 0.001}\n",
        )
    };
    let e = one(running(same), proposed(rule));
    assert_eq!(e.verdict, Verdict::Compatible);
    assert_eq!(e.changes.len(), 1);
    assert_eq!(e.changes[0].field, "stopping");
    assert_eq!(e.changes[0].old, "none");
    assert_eq!(
        e.changes[0].new,
        "{prob_best: 0.95, max_expected_loss: 0.001, min_exposures: 0, on_winner: exploit}"
    );
}

#[test]
fn concluding_with_a_winner_is_compatible() {
    let e = one(
        running(same),
        proposed(|t| {
            t.replace("status: running", "status: concluded").replace(
                "default_variant: plain",
                "default_variant: plain\nwinner: bold",
            )
        }),
    );
    assert_eq!(e.verdict, Verdict::Compatible);
    assert!(
        e.changes
            .iter()
            .any(|c| c.field == "winner" && c.old == "none" && c.new == "bold")
    );
}

#[test]
fn changing_a_variant_prior_is_compatible() {
    let e = one(
        running(same),
        proposed(|t| {
            t.replace(
                "headline: Ship in a day}}",
                "headline: Ship in a day}, prior: {alpha: 30, beta: 470}}",
            )
        }),
    );
    assert_eq!(e.verdict, Verdict::Compatible);
    assert_eq!(
        e.variants_changed,
        vec![VariantChange {
            variant: "bold".into(),
            field: "prior".into(),
            old: "none".into(),
            new: "{alpha: 30, beta: 470}".into(),
        }]
    );
}

#[test]
fn changing_the_assignment_mode_needs_a_revision_bump() {
    let e = one(
        running(same),
        proposed(|t| t.replace("assignment: sticky", "assignment: per_request")),
    );
    let reasons = reasons(&e);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0]
            .starts_with("experiments/home.yaml: `assignment` changes from sticky to per_request"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[0].contains("Bump `revision` to 2 to start a fresh data epoch"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[0].contains("keep `assignment: sticky`"),
        "{}",
        reasons[0]
    );
}

#[test]
fn changing_a_kept_variants_payload_needs_a_revision_bump() {
    let e = one(
        running(same),
        proposed(|t| t.replace("Ship in a day", "Ship in an hour")),
    );
    assert_eq!(
        e.variants_changed,
        vec![VariantChange {
            variant: "bold".into(),
            field: "payload".into(),
            old: r#"{"headline":"Ship in a day"}"#.into(),
            new: r#"{"headline":"Ship in an hour"}"#.into(),
        }]
    );
    let reasons = reasons(&e);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("experiments/home.yaml: the payload of variant `bold` changes"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[0].contains("Bump `revision` to 2"),
        "{}",
        reasons[0]
    );
    assert!(reasons[0].contains("restore the payload"), "{}", reasons[0]);
}

#[test]
fn re_adding_a_retired_variant_needs_a_revision_bump() {
    let retired = BTreeMap::from([("home".to_owned(), BTreeSet::from(["urgent".to_owned()]))]);
    let e = one_with_retired(running(same), proposed(with_third_variant), &retired);
    assert_eq!(e.variants_added, vec!["urgent"]);
    let reasons = reasons(&e);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("variant `urgent` was retired but still has data in revision 1"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[0].contains("give the variant a new id"),
        "{}",
        reasons[0]
    );
    // Retired ids of another experiment do not matter.
    let elsewhere = BTreeMap::from([("other".to_owned(), BTreeSet::from(["urgent".to_owned()]))]);
    let e = one_with_retired(running(same), proposed(with_third_variant), &elsewhere);
    assert_eq!(e.verdict, Verdict::Compatible);
}

#[test]
fn a_revision_bump_makes_every_change_compatible_and_starts_a_fresh_epoch() {
    let retired = BTreeMap::from([("home".to_owned(), BTreeSet::from(["urgent".to_owned()]))]);
    let e = one_with_retired(
        running(same),
        proposed(|t| {
            with_third_variant(t)
                .replace("revision: 1", "revision: 2")
                .replace("assignment: sticky", "assignment: per_request")
                .replace("Ship in a day", "Ship in an hour")
        }),
        &retired,
    );
    assert_eq!(e.verdict, Verdict::Compatible);
    assert!(e.fresh_epoch);
    assert_eq!(
        (e.running_revision, e.proposed_revision),
        (Some(1), Some(2))
    );
    assert!(
        e.changes
            .iter()
            .any(|c| c.field == "revision" && c.old == "1" && c.new == "2")
    );
    assert!(!one(running(same), proposed(same)).fresh_epoch);
}

#[test]
fn a_revision_decrease_is_refused() {
    let e = one(
        running(|t| t.replace("revision: 1", "revision: 3")),
        proposed(|t| t.replace("revision: 1", "revision: 2")),
    );
    assert!(!e.fresh_epoch);
    let reasons = reasons(&e);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("`revision` goes down from 3 to 2"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[0].contains("Set `revision: 3` to keep the current data, or 4"),
        "{}",
        reasons[0]
    );
}

#[test]
fn adding_and_removing_whole_experiments_is_compatible() {
    let other = exp_in("experiments/other.yaml", |t| {
        t.replace("id: home", "id: other")
    });
    let plan = plan(&[running(same)], &[other], &BTreeMap::new());
    let kinds: Vec<(&str, ChangeKind)> = plan
        .experiments
        .iter()
        .map(|e| (e.id.as_str(), e.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![("home", ChangeKind::Removed), ("other", ChangeKind::Added)]
    );
    assert!(
        plan.experiments
            .iter()
            .all(|e| e.verdict == Verdict::Compatible)
    );
    assert_eq!(
        plan.experiments[0].file.as_deref(),
        Some("running/home.yaml")
    );
    assert_eq!(
        plan.experiments[1].file.as_deref(),
        Some("experiments/other.yaml")
    );
    // Compatible, but a running experiment stops being served: never "safe".
    assert!(plan.experiments[0].drops_served());
    assert_eq!(plan.verdict(), PlanVerdict::DropsServed);
    assert!(!plan.is_noop());
}

#[test]
fn one_incompatible_experiment_refuses_the_whole_plan_and_all_reasons_are_listed() {
    let retired = BTreeMap::from([("home".to_owned(), BTreeSet::from(["urgent".to_owned()]))]);
    let extra = exp_in("experiments/extra.yaml", |t| {
        t.replace("id: home", "id: extra")
    });
    let gone = exp_in("running/gone.yaml", |t| t.replace("id: home", "id: gone"));
    let tweaked = exp_in("experiments/tweaked.yaml", |t| {
        t.replace("id: home", "id: tweaked")
    });
    let tweaked_old = exp_in("running/tweaked.yaml", |t| {
        t.replace("id: home", "id: tweaked")
            .replace("min_share: 0.02", "min_share: 0.01")
    });
    let new_home = proposed(|t| {
        with_third_variant(t)
            .replace("assignment: sticky", "assignment: per_request")
            .replace("Build faster", "Build much faster")
    });
    let plan = plan(
        &[running(same), gone, tweaked_old],
        &[new_home, extra, tweaked],
        &retired,
    );
    assert_eq!(plan.verdict(), PlanVerdict::Refused);
    let by_id: BTreeMap<&str, &ExperimentPlan> = plan
        .experiments
        .iter()
        .map(|e| (e.id.as_str(), e))
        .collect();
    assert_eq!(by_id["extra"].kind, ChangeKind::Added);
    assert_eq!(by_id["gone"].kind, ChangeKind::Removed);
    assert_eq!(by_id["tweaked"].verdict, Verdict::Compatible);
    let home = reasons(by_id["home"]);
    assert_eq!(home.len(), 3, "{home:?}");
    assert!(home[0].contains("`assignment` changes"));
    assert!(home[1].contains("payload of variant `plain`"));
    assert!(home[2].contains("variant `urgent` was retired"));
    assert!(
        home.iter()
            .all(|r| r.starts_with("experiments/home.yaml: "))
    );
}

#[test]
fn plan_json_has_stable_field_names() {
    let plan = plan(
        &[running(same)],
        &[proposed(|t| {
            t.replace("Ship in a day", "Ship today")
                .replace("min_share: 0.02", "min_share: 0.03")
        })],
        &BTreeMap::new(),
    );
    let value = serde_json::to_value(&plan).unwrap();
    assert_eq!(value["verdict"], json!("refused"));
    let e = &value["experiments"][0];
    assert_eq!(e["id"], json!("home"));
    assert_eq!(e["kind"], json!("changed"));
    assert_eq!(e["file"], json!("experiments/home.yaml"));
    assert_eq!(e["running_revision"], json!(1));
    assert_eq!(e["proposed_revision"], json!(1));
    assert_eq!(e["fresh_epoch"], json!(false));
    assert_eq!(
        e["changes"],
        json!([{"field": "policy.min_share", "old": "0.02", "new": "0.03"}])
    );
    assert_eq!(e["variants_added"], json!([]));
    assert_eq!(e["variants_retired"], json!([]));
    assert_eq!(e["variants_changed"][0]["variant"], json!("bold"));
    assert_eq!(e["verdict"]["status"], json!("needs_revision_bump"));
    assert_eq!(e["verdict"]["reasons"].as_array().map(Vec::len), Some(1));
    assert!(e.get("context").is_none());
    let safe = super::plan(&[running(same)], &[proposed(same)], &BTreeMap::new());
    let value = serde_json::to_value(&safe).unwrap();
    assert_eq!(value["verdict"], json!("safe"));
    assert_eq!(
        value["experiments"][0]["verdict"],
        json!({"status": "compatible"})
    );
}

#[test]
fn changing_the_exposure_mode_needs_a_revision_bump_and_its_window_does_not() {
    let on_render = |t: String| {
        t.replace(
            "assignment: sticky\n",
            "assignment: sticky\nexposure: on_render\nconfirm_within: 10m\n",
        )
    };
    let e = one(running(same), proposed(on_render));
    let reasons = reasons(&e);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("`exposure` changes from on_assign to on_render")
            && reasons[0].contains("keep `exposure: on_assign`"),
        "{}",
        reasons[0]
    );
    let wider = one(
        running(on_render),
        proposed(|t| on_render(t).replace("confirm_within: 10m", "confirm_within: 30m")),
    );
    assert!(reasons_of_none(&wider), "{:?}", wider);
    assert_eq!(wider.changes.len(), 1);
    assert_eq!(
        (
            wider.changes[0].field.as_str(),
            wider.changes[0].new.as_str()
        ),
        ("confirm_within", "30m")
    );
}

fn reasons_of_none(e: &ExperimentPlan) -> bool {
    reasons(e).is_empty()
}
