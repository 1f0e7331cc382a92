//! Tests of the `guardrails:` list: defaults, every refusal at its line:column, and the
//! round trip through the document the server hands to `banditd plan`.

use std::path::Path;

use super::*;
use crate::spec::error::SpecError;
use crate::spec::parse_experiment;

/// A valid experiment whose `guardrails:` list starts on line 6 (entries from line 7).
fn with_guardrails(entries: &str) -> String {
    format!(
        "id: checkout\ndescription: Which checkout converts?\nowner: growth\nstatus: running\n\
         default_variant: control\nguardrails:\n{entries}variants:\n  - id: control\n    \
         payload: {{}}\n  - id: bold\n    payload: {{}}\n"
    )
}

fn parse(text: &str) -> Result<crate::spec::Experiment, Vec<SpecError>> {
    parse_experiment(Path::new("experiments/checkout.yaml"), text)
}

fn assert_error(text: &str, line: usize, column: usize, phrases: &[&str]) {
    let errors = parse(text).expect_err("expected errors");
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    let err = &errors[0];
    assert_eq!((err.line, err.column), (line, column), "wrong place: {err}");
    for phrase in phrases {
        assert!(err.message.contains(phrase), "missing {phrase:?} in: {err}");
    }
}

const REFUNDS: &str =
    "  - metric: refunds\n    direction: lower_is_better\n    max_relative_change: 0.1\n";

#[test]
fn an_entry_with_only_the_required_fields_gets_the_defaults() {
    let e = parse(&with_guardrails(REFUNDS)).unwrap();
    assert_eq!(e.guardrails.len(), 1);
    let g = &e.guardrails[0];
    assert_eq!(g.metric.as_str(), "refunds");
    assert_eq!(g.direction, GuardrailDirection::LowerIsBetter);
    assert_eq!(g.max_relative_change, 0.1);
    assert_eq!(g.confidence, DEFAULT_GUARDRAIL_CONFIDENCE);
    assert_eq!(g.min_exposures, DEFAULT_GUARDRAIL_MIN_EXPOSURES);
    assert_eq!(g.against, None);
    assert_eq!(e.guardrail_reference(g).as_str(), "control");
}

#[test]
fn every_field_is_read_and_the_document_reads_back_equal() {
    let text = with_guardrails(&format!(
        "{REFUNDS}  - metric: retention-7d\n    direction: higher_is_better\n    \
         max_relative_change: 0.05\n    confidence: 0.995\n    min_exposures: 5000\n    \
         against: bold\n"
    ));
    let e = parse(&text).unwrap();
    let g = &e.guardrails[1];
    assert_eq!(g.direction, GuardrailDirection::HigherIsBetter);
    assert_eq!((g.confidence, g.min_exposures), (0.995, 5000));
    assert_eq!(e.guardrail_reference(g).as_str(), "bold");
    let again = parse(&e.to_document().to_string()).unwrap();
    assert_eq!(again.guardrails, e.guardrails);
}

#[test]
fn no_list_means_no_guardrails() {
    let e = parse(&with_guardrails("").replace("guardrails:\n", "")).unwrap();
    assert!(e.guardrails.is_empty());
    assert!(e.to_document().get("guardrails").is_none());
}

#[test]
fn a_missing_required_field_is_named_with_an_example() {
    assert_error(
        &with_guardrails("  - metric: refunds\n    direction: lower_is_better\n"),
        7,
        5,
        &["`max_relative_change` is missing in guardrail 1", "0.1"],
    );
}

#[test]
fn a_misspelt_direction_or_field_gets_a_suggestion() {
    assert_error(
        &with_guardrails(&REFUNDS.replace("lower_is_better", "lower_is_beter")),
        8,
        16,
        &[
            "`direction` must be one of",
            "did you mean `lower_is_better`?",
        ],
    );
    assert_error(
        &with_guardrails(&format!("{REFUNDS}    confidance: 0.99\n")),
        10,
        5,
        &["unknown field `confidance`", "did you mean `confidence`?"],
    );
}

#[test]
fn against_must_name_a_variant() {
    assert_error(
        &with_guardrails(&format!("{REFUNDS}    against: controll\n")),
        10,
        14,
        &["`against` is `controll`", "did you mean `control`?"],
    );
}

#[test]
fn metric_names_are_distinct_ids_and_not_the_primary_reward() {
    assert_error(
        &with_guardrails(&format!("{REFUNDS}{REFUNDS}")),
        10,
        13,
        &["`refunds` is listed twice (first at line 7"],
    );
    assert_error(
        &with_guardrails(&REFUNDS.replace("refunds", "reward")),
        7,
        13,
        &["`reward` is the name of the primary reward"],
    );
    assert_error(
        &with_guardrails(&REFUNDS.replace("refunds", "Refunds")),
        7,
        13,
        &["`metric` `Refunds`", "only lowercase"],
    );
}

#[test]
fn tolerances_and_confidences_out_of_range_are_refused_with_the_reason() {
    assert_error(
        &with_guardrails(&REFUNDS.replace("0.1", "-0.1")),
        9,
        26,
        &["must be at least 0"],
    );
    assert_error(
        &with_guardrails(
            &REFUNDS
                .replace("lower_is_better", "higher_is_better")
                .replace("0.1", "1"),
        ),
        9,
        26,
        &["below 1 with `direction: higher_is_better`"],
    );
    assert_error(
        &with_guardrails(&REFUNDS.replace("0.1", "\"10%\"")),
        9,
        26,
        &["write percentages as fractions: 0.1"],
    );
    for bad in ["0.5", "1", "99"] {
        assert_error(
            &with_guardrails(&format!("{REFUNDS}    confidence: {bad}\n")),
            10,
            17,
            &["`confidence` must be above 0.5 and below 1"],
        );
    }
}

#[test]
fn a_list_that_is_not_a_list_is_refused() {
    let text = with_guardrails("").replace("guardrails:\n", "guardrails: refunds\n");
    assert_error(&text, 6, 13, &["`guardrails`"]);
}

#[test]
fn adding_or_changing_a_guardrail_is_a_compatible_plan_that_shows_the_rule() {
    use std::collections::BTreeMap;

    use crate::spec::{ChangeKind, Verdict, plan};

    let without = parse(&with_guardrails("").replace("guardrails:\n", "")).unwrap();
    let with = parse(&with_guardrails(REFUNDS)).unwrap();
    let renamed = parse(&with_guardrails(&REFUNDS.replace("refunds", "chargebacks"))).unwrap();
    for (old, new, shown) in [
        (
            &without,
            &with,
            "refunds lower_is_better 0.1 @0.99 ≥1000 vs control",
        ),
        (
            &with,
            &renamed,
            "chargebacks lower_is_better 0.1 @0.99 ≥1000 vs control",
        ),
        (&with, &without, "none"),
    ] {
        let plan = plan(
            std::slice::from_ref(old),
            std::slice::from_ref(new),
            &BTreeMap::new(),
        );
        let experiment = &plan.experiments[0];
        assert_eq!(experiment.kind, ChangeKind::Changed);
        assert_eq!(experiment.verdict, Verdict::Compatible);
        let change = experiment
            .changes
            .iter()
            .find(|c| c.field == "guardrails")
            .expect("the guardrails change is listed");
        assert_eq!(change.new, shown);
    }
}
