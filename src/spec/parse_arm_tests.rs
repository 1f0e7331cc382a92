//! Tests of the rules on arms and allocation: variants, priors, policy, reward window,
//! default_variant / winner references and payloads. Shared fixtures live in
//! `parse_tests.rs`.

use std::path::Path;

use serde_json::json;

use super::tests::{VALID, assert_error, errors, parse, with_line, without_lines};
use super::*;

#[test]
fn a_bad_reward_window_points_at_the_value() {
    for (window, phrase) in [
        ("7", "has no unit"),
        ("0d", "is zero"),
        ("-1d", "is negative"),
        ("7y", "unknown unit \"y\""),
        ("1.5d", "not a whole number"),
        ("99999999999999999999w", "too large"),
    ] {
        assert_error(
            &with_line(9, &format!("  window: {window}")),
            9,
            11,
            &["`window`", phrase],
        );
    }
    assert_error(
        &with_line(9, "  window: [7d]"),
        9,
        11,
        &["must be a duration such as 7d"],
    );
}

#[test]
fn a_prior_parameter_must_be_above_zero() {
    assert_error(
        &with_line(10, "prior: { alpha: 0, beta: 1 }"),
        10,
        17,
        &[
            "`alpha` of `prior` must be above 0, found 0",
            "uniform prior",
        ],
    );
    assert_error(
        &with_line(10, "prior: { alpha: 1, beta: -2 }"),
        10,
        26,
        &["`beta` of `prior` must be above 0, found -2"],
    );
}

#[test]
fn a_prior_parameter_must_be_finite() {
    assert_error(
        &with_line(10, "prior: { alpha: .inf, beta: 1 }"),
        10,
        17,
        &["`alpha` must be a finite number, found inf"],
    );
    assert_error(
        &with_line(10, "prior: { alpha: 1, beta: .nan }"),
        10,
        26,
        &["`beta` must be a finite number, found NaN"],
    );
}

#[test]
fn a_prior_needs_both_parameters() {
    assert_error(
        &with_line(10, "prior: { alpha: 1 }"),
        10,
        8,
        &["`beta` is missing in `prior`"],
    );
}

#[test]
fn a_per_arm_prior_is_checked_and_names_its_variant() {
    assert_error(
        &with_line(20, "    prior: { alpha: 2, beta: 0 }"),
        20,
        30,
        &["`beta` of the prior of variant `bold` must be above 0"],
    );
}

#[test]
fn burn_in_must_be_a_non_negative_whole_number() {
    assert_error(
        &with_line(12, "  burn_in: -5"),
        12,
        12,
        &["must be 0 or more, found -5"],
    );
    assert_error(
        &with_line(12, "  burn_in: 2.5"),
        12,
        12,
        &["must be a whole number, found 2.5"],
    );
}

#[test]
fn a_type_error_points_at_the_value_and_names_what_was_found() {
    assert_error(
        &with_line(12, "  burn_in: lots"),
        12,
        12,
        &["`burn_in` must be a whole number, found the text \"lots\""],
    );
}

#[test]
fn min_share_must_lie_in_zero_to_one() {
    assert_error(
        &with_line(13, "  min_share: 1"),
        13,
        14,
        &["at least 0 and below 1, found 1", "e.g. 0.02 for 2%"],
    );
    assert_error(&with_line(13, "  min_share: -0.1"), 13, 14, &["found -0.1"]);
}

#[test]
fn min_share_times_the_number_of_variants_must_stay_below_one() {
    let text = format!(
        "{}\n  - id: third\n    payload: 3\n",
        with_line(13, "  min_share: 0.4")
    );
    assert_error(
        &text,
        13,
        14,
        &[
            "min_share 0.4 × 3 variants = 1.2 must be below 1",
            "lower min_share to at most 0.33",
        ],
    );
}

#[test]
fn min_share_exactly_one_over_k_is_refused_and_the_suggestion_stays_below_it() {
    assert_error(
        &with_line(13, "  min_share: 0.5"),
        13,
        14,
        &[
            "min_share 0.5 × 2 variants = 1 must be below 1",
            "at most 0.49",
        ],
    );
}

#[test]
fn fewer_than_two_variants_is_refused_at_the_variant_list() {
    assert_error(
        &without_lines(&[18, 19, 20]),
        16,
        3,
        &["at least 2 variants", "found 1"],
    );
    let head = &VALID[..VALID.find("variants:").unwrap()];
    assert_error(&format!("{head}variants: []\n"), 15, 11, &["found 0"]);
}

#[test]
fn a_duplicate_variant_id_points_at_the_second_occurrence() {
    assert_error(
        &with_line(18, "  - id: control"),
        18,
        9,
        &[
            "variant id `control` is used twice (first at line 16, column 9)",
            "give each variant its own id",
        ],
    );
}

#[test]
fn a_variant_without_id_or_payload_is_refused() {
    let errors = errors(&without_lines(&[16]).replace(
        "    payload: { headline: \"Build faster\" }",
        "  - payload: { headline: \"Build faster\" }",
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!((errors[0].line, errors[0].column), (16, 5));
    assert!(
        errors[0].message.contains("`id` is missing in variant 1"),
        "{}",
        errors[0]
    );

    assert_error(
        &without_lines(&[19]),
        18,
        5,
        &["variant `bold` has no `payload`", "payload: {}"],
    );
}

#[test]
fn variants_must_be_a_list_of_mappings() {
    assert_error(
        &without_lines(&[19, 20]).replace("  - id: bold", "  - bold"),
        18,
        5,
        &["variant 2 must be a mapping", "found the text \"bold\""],
    );
    let head = &VALID[..VALID.find("variants:").unwrap()];
    assert_error(
        &format!("{head}variants: {{control: 1, bold: 2}}\n"),
        15,
        11,
        &["`variants` must be a list", "found a mapping"],
    );
}

#[test]
fn default_variant_must_name_a_variant() {
    assert_error(
        &with_line(14, "default_variant: contrl"),
        14,
        18,
        &[
            "`default_variant` is `contrl`, which is not one of the variants",
            "did you mean `control`?",
            "use one of: control, bold",
        ],
    );
}

#[test]
fn references_are_not_checked_against_a_broken_variant_list() {
    // Only the broken variant is reported, not a follow-up "default_variant unknown".
    assert_error(&with_line(16, "  - id: Control"), 16, 9, &["contains 'C'"]);
}

#[test]
fn a_concluded_experiment_needs_a_winner() {
    assert_error(
        &with_line(4, "status: concluded"),
        4,
        9,
        &[
            "`status: concluded` needs a `winner`",
            "add `winner: <variant id>`",
        ],
    );
}

#[test]
fn a_winner_is_only_allowed_when_concluded() {
    assert_error(
        &with_line(14, "default_variant: control\nwinner: bold"),
        15,
        9,
        &["only allowed when `status: concluded` (status is running)"],
    );
}

#[test]
fn a_winner_must_name_a_variant() {
    let text = with_line(4, "status: concluded").replace(
        "default_variant: control",
        "default_variant: control\nwinner: bolder",
    );
    assert_error(
        &text,
        15,
        9,
        &["`winner` is `bolder`", "did you mean `bold`?"],
    );
}

#[test]
fn a_concluded_experiment_with_a_winner_parses() {
    let text = with_line(4, "status: concluded").replace(
        "default_variant: control",
        "default_variant: control\nwinner: bold",
    );
    let e = parse(&text).unwrap();
    assert_eq!(e.status, Status::Concluded);
    assert_eq!(e.winner.as_ref().map(VariantId::as_str), Some("bold"));
}

#[test]
fn min_share_total_is_checked_even_when_burn_in_is_broken() {
    let text = with_line(12, "  burn_in: -1").replace("min_share: 0.02", "min_share: 0.5");
    let messages: Vec<_> = errors(&text)
        .iter()
        .map(|e| (e.line, e.column, e.message.clone()))
        .collect();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert_eq!((messages[0].0, messages[0].1), (12, 12));
    assert_eq!((messages[1].0, messages[1].1), (13, 14));
    assert!(
        messages[1].2.contains("0.5 × 2 variants = 1"),
        "{messages:#?}"
    );
}

#[test]
fn payloads_of_any_shape_become_json() {
    let text = with_line(17, "    payload:\n      weights: {title: 2.5, recency: [1, 0.5]}\n      boost: [{field: brand, by: 2}]")
        .replace("    payload: { headline: \"Ship in a day\" }", "    payload: plain text");
    let e = parse(&text).unwrap();
    assert_eq!(
        e.variants[0].payload,
        json!({"weights": {"title": 2.5, "recency": [1, 0.5]}, "boost": [{"field": "brand", "by": 2}]})
    );
    assert_eq!(e.variants[1].payload, json!("plain text"));
    let list = parse(&with_line(17, "    payload: [1, two, null, false]")).unwrap();
    assert_eq!(list.variants[0].payload, json!([1, "two", null, false]));
    let null = parse(&with_line(17, "    payload: null")).unwrap();
    assert_eq!(null.variants[0].payload, serde_json::Value::Null);
}

#[test]
fn a_payload_without_json_form_points_inside_the_payload() {
    assert_error(
        &with_line(17, "    payload: { weight: .inf }"),
        17,
        24,
        &[
            "payload of variant `control`",
            "payload numbers must be finite",
        ],
    );
}

#[test]
fn the_min_share_suggestion_gains_decimals_for_many_variants() {
    let mut report = Report::new(Path::new("x.yaml"));
    check_min_share_total(&mut report, 0.01, 200, Position { line: 3, column: 4 });
    assert_eq!(report.errors.len(), 1);
    let err = &report.errors[0];
    assert_eq!(err.position(), Position { line: 3, column: 4 });
    assert!(err.message.contains("0.01 × 200 variants = 2"), "{err}");
    assert!(err.message.contains("at most 0.004"), "{err}");
}

#[test]
fn more_than_100_variants_are_refused_at_the_list_naming_the_limit() {
    let list = |count: usize| -> String {
        let variants: String = (0..count)
            .map(|i| format!("  - {{id: v{i}, payload: {i}}}\n"))
            .collect();
        format!(
            "id: wide\ndescription: d\nowner: o\nstatus: running\ndefault_variant: v0\n\
             variants:\n{variants}"
        )
    };
    assert_eq!(parse(&list(MAX_VARIANTS)).unwrap().variants.len(), 100);
    let errs = errors(&list(MAX_VARIANTS + 1));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].line, errs[0].column), (7, 3));
    assert!(
        errs[0]
            .message
            .contains("lists 101 variants, above the limit of 100 per experiment"),
        "{}",
        errs[0]
    );
}
