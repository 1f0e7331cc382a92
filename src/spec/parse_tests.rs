//! One test per rule of `parse_experiment`, each checking the line, the column and the key
//! phrase of the message an analyst would see.

use std::path::Path;

use serde_json::json;

use super::*;

/// A complete, valid experiment; tests replace single lines to break one rule at a time.
pub(super) const VALID: &str = r#"id: homepage-headline
description: Which hero headline turns visitors into sign-ups?
owner: growth-analytics
status: running
environments: [staging, production]
revision: 1
assignment: sticky
reward:
  window: 7d
prior: { alpha: 1, beta: 1 }
policy:
  burn_in: 100
  min_share: 0.02
default_variant: control
variants:
  - id: control
    payload: { headline: "Build faster" }
  - id: bold
    payload: { headline: "Ship in a day" }
    prior: { alpha: 2, beta: 40 }
"#;

/// `VALID` with line `line` (1-based) replaced by `text` (which may span several lines).
pub(super) fn with_line(line: usize, text: &str) -> String {
    VALID
        .lines()
        .enumerate()
        .map(|(i, l)| if i + 1 == line { text } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `VALID` without the given lines (1-based).
pub(super) fn without_lines(lines: &[usize]) -> String {
    VALID
        .lines()
        .enumerate()
        .filter(|(i, _)| !lines.contains(&(i + 1)))
        .map(|(_, l)| l)
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) fn parse(text: &str) -> Result<Experiment, Vec<SpecError>> {
    parse_experiment(Path::new("experiments/home.yaml"), text)
}

pub(super) fn errors(text: &str) -> Vec<SpecError> {
    match parse(text) {
        Ok(e) => panic!("expected errors, parsed {e:?}\n--- input ---\n{text}"),
        Err(errors) => errors,
    }
}

/// Asserts exactly one error, at `line:column`, whose message contains every phrase.
pub(super) fn assert_error(text: &str, line: usize, column: usize, phrases: &[&str]) {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    let err = &errors[0];
    assert_eq!(
        (err.line, err.column),
        (line, column),
        "wrong position for: {err}"
    );
    assert_eq!(err.file, Path::new("experiments/home.yaml"));
    for phrase in phrases {
        assert!(err.message.contains(phrase), "missing {phrase:?} in: {err}");
    }
}

#[test]
fn the_full_example_parses_into_the_model() {
    let e = parse(VALID).unwrap();
    assert_eq!(e.id.as_str(), "homepage-headline");
    assert_eq!(
        e.description,
        "Which hero headline turns visitors into sign-ups?"
    );
    assert_eq!(e.owner, "growth-analytics");
    assert_eq!(e.status, Status::Running);
    assert_eq!(
        e.environments,
        Some(vec!["staging".to_owned(), "production".to_owned()])
    );
    assert_eq!(e.revision, 1);
    assert_eq!(e.assignment, AssignmentMode::Sticky);
    assert_eq!(e.reward.window.as_std(), Duration::from_secs(7 * 86_400));
    assert_eq!(
        e.prior,
        Prior {
            alpha: 1.0,
            beta: 1.0
        }
    );
    assert_eq!(e.policy.burn_in, 100);
    assert_eq!(e.policy.min_share, 0.02);
    assert_eq!(e.policy.half_life, None);
    assert_eq!(e.stopping, None);
    assert_eq!(e.default_variant.as_str(), "control");
    assert_eq!(e.winner, None);
    assert_eq!(e.variants.len(), 2);
    assert_eq!(e.variants[0].id.as_str(), "control");
    assert_eq!(e.variants[0].payload, json!({"headline": "Build faster"}));
    assert_eq!(e.variants[0].prior, None);
    assert_eq!(
        e.variants[1].prior,
        Some(Prior {
            alpha: 2.0,
            beta: 40.0
        })
    );
    assert_eq!(
        e.arm_prior(1),
        Prior {
            alpha: 2.0,
            beta: 40.0
        }
    );
    assert_eq!(e.source, Path::new("experiments/home.yaml"));
    assert_eq!(e.id_position, Position { line: 1, column: 5 });
}

#[test]
fn defaults_apply_when_optional_fields_are_absent() {
    let e = parse(&without_lines(&[5, 6, 7, 8, 9, 10, 11, 12, 13, 20])).unwrap();
    assert_eq!(e.environments, None);
    assert!(e.is_live_in(Some("anywhere")));
    assert_eq!(e.revision, 1);
    assert_eq!(e.assignment, AssignmentMode::Sticky);
    assert_eq!(e.reward.window.to_string(), "1w");
    assert_eq!(
        e.prior,
        Prior {
            alpha: 1.0,
            beta: 1.0
        }
    );
    assert_eq!(e.policy.burn_in, 100);
    assert_eq!(e.policy.min_share, 0.0);
    assert_eq!(e.policy.half_life, None);
    assert_eq!(e.stopping, None);
    assert_eq!(e.variants[1].prior, None);
}

#[test]
fn empty_optional_fields_mean_the_default() {
    let text = with_line(5, "environments:\nwinner: ~")
        .replace("  window: 7d", "  window:")
        .replace("policy:\n  burn_in: 100\n  min_share: 0.02", "policy:");
    let e = parse(&text).unwrap();
    assert_eq!(e.environments, None);
    assert_eq!(e.winner, None);
    assert_eq!(e.reward.window.to_string(), "1w");
    assert_eq!(e.policy.burn_in, 100);
}

#[test]
fn per_request_assignment_and_other_values_parse() {
    let text = with_line(7, "assignment: per_request")
        .replace("revision: 1", "revision: 3")
        .replace("window: 7d", "window: 36h")
        .replace("burn_in: 100", "burn_in: 0");
    let e = parse(&text).unwrap();
    assert_eq!(e.assignment, AssignmentMode::PerRequest);
    assert_eq!(e.revision, 3);
    assert_eq!(e.reward.window.as_std(), Duration::from_secs(36 * 3600));
    assert_eq!(e.policy.burn_in, 0);
}

#[test]
fn a_schema_key_and_a_schema_comment_are_tolerated() {
    let text = format!(
        "# yaml-language-server: $schema=../schema/experiment.schema.json\n\
         $schema: ../schema/experiment.schema.json\n{VALID}"
    );
    let e = parse(&text).unwrap();
    assert_eq!(e.id_position, Position { line: 3, column: 5 });
}

#[test]
fn an_id_with_capitals_or_spaces_is_refused_with_a_suggestion() {
    assert_error(
        &with_line(1, "id: Homepage Headline"),
        1,
        5,
        &[
            "contains 'H'",
            "only lowercase letters",
            "write e.g. `homepage-headline`",
        ],
    );
}

#[test]
fn an_id_longer_than_64_characters_is_refused() {
    let long = "x".repeat(65);
    assert_error(
        &with_line(1, &format!("id: {long}")),
        1,
        5,
        &["65 characters long", "at most 64"],
    );
}

#[test]
fn an_empty_id_is_refused() {
    assert_error(&with_line(1, "id: \"\""), 1, 5, &["`id` must not be empty"]);
}

#[test]
fn missing_required_fields_are_all_reported_at_the_top_of_the_file() {
    let errors = errors(&without_lines(&[1, 2, 3, 4, 14]));
    let messages: Vec<_> = errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(errors.len(), 5, "{messages:#?}");
    for (err, field) in
        errors
            .iter()
            .zip(["id", "description", "owner", "status", "default_variant"])
    {
        assert_eq!((err.line, err.column), (1, 1), "{err}");
        assert!(
            err.message
                .starts_with(&format!("`{field}` is missing in the experiment; add e.g.")),
            "{err}"
        );
    }
}

#[test]
fn an_empty_required_field_points_at_the_field() {
    assert_error(
        &with_line(14, "default_variant:"),
        14,
        1,
        &["`default_variant` is empty", "default_variant: control"],
    );
}

#[test]
fn a_blank_description_is_refused() {
    assert_error(
        &with_line(2, "description: \"   \""),
        2,
        14,
        &["`description` must not be empty", "say in one sentence"],
    );
}

#[test]
fn an_owner_that_is_not_text_is_a_type_error_at_the_value() {
    assert_error(
        &with_line(3, "owner: 2024"),
        3,
        8,
        &["`owner` must be text, found the number 2024", "quotes"],
    );
}

#[test]
fn an_unknown_status_lists_the_choices_and_suggests_the_closest() {
    assert_error(
        &with_line(4, "status: runing"),
        4,
        9,
        &[
            "must be one of draft, running, paused, concluded",
            "found the text \"runing\"",
            "did you mean `running`?",
        ],
    );
}

#[test]
fn an_unknown_assignment_mode_is_refused() {
    assert_error(
        &with_line(7, "assignment: per-request"),
        7,
        13,
        &[
            "must be one of sticky, per_request",
            "did you mean `per_request`?",
        ],
    );
}

#[test]
fn environments_must_be_a_list() {
    assert_error(
        &with_line(5, "environments: production"),
        5,
        15,
        &["`environments` must be a list such as [staging, production]"],
    );
}

#[test]
fn an_empty_environment_list_is_refused() {
    assert_error(
        &with_line(5, "environments: []"),
        5,
        15,
        &["run nowhere", "remove the field to run everywhere"],
    );
}

#[test]
fn a_repeated_environment_points_at_the_second_one() {
    assert_error(
        &with_line(5, "environments: [staging, production, staging]"),
        5,
        37,
        &["environment `staging` is listed twice (first at line 5, column 16)"],
    );
}

#[test]
fn an_environment_name_follows_the_id_rules() {
    assert_error(
        &with_line(5, "environments: [staging, Production]"),
        5,
        25,
        &["\"Production\" contains 'P'", "write e.g. `production`"],
    );
    assert_error(
        &with_line(5, "environments: [staging, \"\"]"),
        5,
        25,
        &["must not be empty"],
    );
}

#[test]
fn revision_zero_is_refused() {
    assert_error(
        &with_line(6, "revision: 0"),
        6,
        11,
        &["must be 1 or more, found 0"],
    );
}

#[test]
fn revision_must_be_a_whole_number() {
    assert_error(
        &with_line(6, "revision: 1.5"),
        6,
        11,
        &["must be a whole number, found 1.5"],
    );
    assert_error(
        &with_line(6, "revision: \"2\""),
        6,
        11,
        &[
            "must be a number, found the text \"2\"",
            "remove the quotes",
        ],
    );
    assert_error(
        &with_line(6, "revision: 4294967296"),
        6,
        11,
        &["above the largest allowed 4294967295"],
    );
}

#[test]
fn an_unknown_field_is_an_error_listing_the_allowed_fields() {
    assert_error(
        &format!("{VALID}rollout:\n  percent: 10\n"),
        21,
        1,
        &[
            "unknown field `rollout` in the experiment; allowed fields: id, description, owner, \
             status, environments, revision, assignment, exposure, confirm_within, reward, prior, policy, stopping, \
             guardrails, default_variant, winner, variants",
        ],
    );
}

#[test]
fn an_unknown_policy_field_lists_half_life_among_the_allowed_fields() {
    assert_error(
        &with_line(13, "  min_share: 0.02\n  halflife: 14d"),
        14,
        3,
        &[
            "unknown field `halflife` in `policy`; did you mean `half_life`?",
            "allowed fields: burn_in, min_share, half_life",
        ],
    );
}

#[test]
fn a_misspelt_field_gets_a_suggestion() {
    assert_error(
        &with_line(13, "  min_shar: 0.02"),
        13,
        3,
        &["unknown field `min_shar` in `policy`; did you mean `min_share`?"],
    );
    assert_error(
        &with_line(20, "    priors: {alpha: 1, beta: 1}"),
        20,
        5,
        &[
            "unknown field `priors` in variant `bold`",
            "did you mean `prior`?",
            "allowed fields: id, payload, prior",
        ],
    );
}

#[test]
fn all_problems_of_a_file_are_reported_in_file_order() {
    let text = with_line(1, "id: Bad Id")
        .replace("status: running", "status: live")
        .replace("assignment: sticky", "assigment: sticky")
        .replace("min_share: 0.02", "min_share: 2")
        .replace("  - id: bold", "  - id: control");
    let positions: Vec<_> = errors(&text).iter().map(|e| (e.line, e.column)).collect();
    // The unknown key (7:1) is found before any value is read, yet listed in file order.
    assert_eq!(positions, vec![(1, 5), (4, 9), (7, 1), (13, 14), (18, 9)]);
}

#[test]
fn a_syntax_error_carries_its_location() {
    let errors = errors(&with_line(10, "prior: { alpha: 1, beta: 1"));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].file, Path::new("experiments/home.yaml"));
    assert!(errors[0].line >= 10, "{}", errors[0]);
    assert!(
        errors[0].message.starts_with("invalid YAML:"),
        "{}",
        errors[0]
    );
}

#[test]
fn a_bad_indentation_is_a_syntax_error_with_location() {
    let errors = errors(&with_line(9, "    window: 7d\n  extra"));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].line >= 9 && errors[0].column > 0, "{}", errors[0]);
}

#[test]
fn an_empty_file_says_what_an_experiment_looks_like() {
    assert_error(
        "",
        1,
        1,
        &[
            "the experiment must be a mapping of `field: value` lines (id, description",
            "found an empty value",
        ],
    );
}

#[test]
fn numbers_print_as_written() {
    assert_eq!(fmt_number(0.4 * 3.0), "1.2");
    assert_eq!(fmt_number(1.0), "1");
    assert_eq!(fmt_number(0.02), "0.02");
    assert_eq!(fmt_number(-0.0), "0");
}
