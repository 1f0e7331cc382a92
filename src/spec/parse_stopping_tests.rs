//! Tests of the statistics settings: `policy.half_life` and the `stopping:` block. Shared
//! fixtures live in `parse_tests.rs`.

use std::time::Duration;

use super::tests::{VALID, assert_error, errors, parse, with_line};
use super::*;
use crate::spec::model::{OnWinner, StoppingSpec};

/// `VALID` with `block` (lines indented as in a file) inserted right after `policy:`, so the
/// block's first line is line 14.
fn with_block(block: &str) -> String {
    with_line(13, &format!("  min_share: 0.02\n{block}"))
}

/// `VALID` with a `stopping:` block at line 14 whose fields start on line 15.
fn with_stopping(fields: &[&str]) -> String {
    let body: Vec<String> = fields.iter().map(|f| format!("  {f}")).collect();
    with_block(&format!("stopping:\n{}", body.join("\n")))
}

const THRESHOLDS: [&str; 2] = ["prob_best: 0.95", "max_expected_loss: 0.001"];

#[test]
fn half_life_parses_into_the_policy() {
    let e = parse(&with_block("  half_life: 14d")).unwrap();
    assert_eq!(
        e.policy.half_life.map(HumanDuration::as_std),
        Some(Duration::from_secs(14 * 86_400))
    );
    assert_eq!(e.policy.min_share, 0.02);
}

#[test]
fn an_empty_half_life_means_no_decay() {
    let e = parse(&with_block("  half_life:")).unwrap();
    assert_eq!(e.policy.half_life, None);
}

#[test]
fn a_bad_half_life_points_at_the_value() {
    for (value, phrase) in [
        ("14", "has no unit"),
        ("0d", "is zero"),
        ("two weeks", "does not start with a number"),
        ("1.5w", "not a whole number"),
    ] {
        assert_error(
            &with_block(&format!("  half_life: {value}")),
            14,
            14,
            &["`half_life`", phrase],
        );
    }
    assert_error(
        &with_block("  half_life: [14d]"),
        14,
        14,
        &["`half_life` must be a duration such as 7d or 12h, found a list"],
    );
}

#[test]
fn a_full_stopping_block_parses_into_the_model() {
    let e = parse(&with_stopping(&[
        "prob_best: 0.95",
        "max_expected_loss: 0.001",
        "min_exposures: 1000",
        "min_duration: 3d",
        "on_winner: report",
    ]))
    .unwrap();
    assert_eq!(
        e.stopping,
        Some(StoppingSpec {
            prob_best: 0.95,
            max_expected_loss: 0.001,
            min_exposures: 1000,
            min_duration: Some(HumanDuration::from_std(Duration::from_secs(3 * 86_400))),
            on_winner: OnWinner::Report,
            allow_prior_only_decision: false,
        })
    );
}

#[test]
fn allow_prior_only_decision_is_a_true_or_false_flag() {
    let e = parse(&with_stopping(&[
        THRESHOLDS[0],
        THRESHOLDS[1],
        "allow_prior_only_decision: true",
    ]))
    .unwrap();
    let stopping = e.stopping.unwrap();
    assert!(stopping.allow_prior_only_decision);
    assert_eq!(stopping.required_exposures(), 0);
    let default = parse(&with_stopping(&[THRESHOLDS[0], THRESHOLDS[1]])).unwrap();
    assert_eq!(default.stopping.unwrap().required_exposures(), 1);
    assert_error(
        &with_stopping(&[
            THRESHOLDS[0],
            THRESHOLDS[1],
            "allow_prior_only_decision: yes",
        ]),
        17,
        30,
        &["`allow_prior_only_decision` must be true or false, found the text \"yes\""],
    );
}

#[test]
fn a_stopping_block_with_only_the_thresholds_gets_the_defaults() {
    let e = parse(&with_stopping(&THRESHOLDS)).unwrap();
    let stopping = e.stopping.unwrap();
    assert_eq!(stopping.min_exposures, 0);
    assert_eq!(stopping.min_duration, None);
    assert_eq!(stopping.on_winner, OnWinner::Exploit);
    assert_eq!(
        (stopping.min_exposures, stopping.on_winner),
        (
            crate::spec::DEFAULT_MIN_EXPOSURES,
            crate::spec::DEFAULT_ON_WINNER
        )
    );
}

#[test]
fn an_empty_stopping_block_means_no_stopping_rule() {
    let e = parse(&with_block("stopping:")).unwrap();
    assert_eq!(e.stopping, None);
}

#[test]
fn max_expected_loss_of_exactly_one_is_allowed() {
    let e = parse(&with_stopping(&["prob_best: 0.99", "max_expected_loss: 1"])).unwrap();
    assert_eq!(e.stopping.map(|s| s.max_expected_loss), Some(1.0));
}

#[test]
fn prob_best_is_required_in_a_stopping_block() {
    assert_error(
        &with_stopping(&["max_expected_loss: 0.001"]),
        15,
        3,
        &["`prob_best` is missing in `stopping`; add e.g. `prob_best: 0.95`"],
    );
}

#[test]
fn max_expected_loss_is_required_in_a_stopping_block() {
    assert_error(
        &with_stopping(&["prob_best: 0.95", "max_expected_loss:"]),
        16,
        3,
        &["`max_expected_loss` is empty in `stopping`; add e.g. `max_expected_loss: 0.001`"],
    );
}

#[test]
fn prob_best_must_be_above_one_half() {
    for value in ["0.5", "0.3", "0"] {
        assert_error(
            &with_stopping(&[&format!("prob_best: {value}"), THRESHOLDS[1]]),
            15,
            14,
            &[
                &format!("`prob_best` must be above 0.5 and below 1, found {value}"),
                "two variants could both pass it",
                "e.g. 0.95 for 95%",
            ],
        );
    }
}

#[test]
fn prob_best_must_be_below_one() {
    assert_error(
        &with_stopping(&["prob_best: 1", THRESHOLDS[1]]),
        15,
        14,
        &["found 1: no amount of data makes P(best) exactly 1"],
    );
}

#[test]
fn prob_best_written_as_a_percentage_gets_the_fraction() {
    assert_error(
        &with_stopping(&["prob_best: 95", THRESHOLDS[1]]),
        15,
        14,
        &[
            "found 95",
            "it is how sure the winner must be of being best, so for 95% write 0.95",
        ],
    );
    // Said once: the generic example would repeat it ("e.g. 0.95 for 95% (for 95% write 0.95)").
    let message = &errors(&with_stopping(&["prob_best: 95", THRESHOLDS[1]]))[0].message;
    assert_eq!(message.matches("0.95").count(), 1, "{message}");
    assert_error(
        &with_stopping(&["prob_best: 95%", THRESHOLDS[1]]),
        15,
        14,
        &[
            "`prob_best` must be a number, found the text \"95%\"",
            "write percentages as fractions: 0.95",
        ],
    );
}

#[test]
fn prob_best_must_be_a_finite_number() {
    assert_error(
        &with_stopping(&["prob_best: high", THRESHOLDS[1]]),
        15,
        14,
        &["`prob_best` must be a number, found the text \"high\""],
    );
    assert_error(
        &with_stopping(&["prob_best: .nan", THRESHOLDS[1]]),
        15,
        14,
        &["`prob_best` must be a finite number, found NaN"],
    );
}

#[test]
fn max_expected_loss_must_be_above_zero() {
    for value in ["0", "-0.01"] {
        assert_error(
            &with_stopping(&[THRESHOLDS[0], &format!("max_expected_loss: {value}")]),
            16,
            22,
            &[
                &format!("`max_expected_loss` must be above 0 and at most 1, found {value}"),
                "never reaches 0",
                "e.g. 0.001 for 0.1 percentage points",
            ],
        );
    }
}

#[test]
fn max_expected_loss_must_be_at_most_one() {
    assert_error(
        &with_stopping(&[THRESHOLDS[0], "max_expected_loss: 1.5"]),
        16,
        22,
        &[
            "must be above 0 and at most 1, found 1.5",
            "cannot fall by more than 1",
            "so for 1.5% write 0.015",
        ],
    );
}

#[test]
fn min_exposures_must_be_a_non_negative_whole_number() {
    for (value, phrase) in [
        ("-1", "must be 0 or more, found -1"),
        ("2.5", "must be a whole number, found 2.5"),
        ("many", "must be a whole number, found the text \"many\""),
    ] {
        assert_error(
            &with_stopping(&[
                THRESHOLDS[0],
                THRESHOLDS[1],
                &format!("min_exposures: {value}"),
            ]),
            17,
            18,
            &["`min_exposures`", phrase],
        );
    }
}

#[test]
fn a_bad_min_duration_points_at_the_value() {
    for (value, phrase) in [
        ("3", "has no unit; write e.g. 3d"),
        ("3days", "unknown unit \"days\""),
        ("0h", "is zero"),
    ] {
        assert_error(
            &with_stopping(&[
                THRESHOLDS[0],
                THRESHOLDS[1],
                &format!("min_duration: {value}"),
            ]),
            17,
            17,
            &["`min_duration`", phrase],
        );
    }
}

#[test]
fn an_unknown_on_winner_lists_the_choices() {
    assert_error(
        &with_stopping(&[THRESHOLDS[0], THRESHOLDS[1], "on_winner: explot"]),
        17,
        14,
        &[
            "`on_winner` must be one of exploit, report, found the text \"explot\"",
            "did you mean `exploit`?",
        ],
    );
}

#[test]
fn stopping_must_be_a_mapping() {
    assert_error(
        &with_block("stopping: 0.95"),
        14,
        11,
        &[
            "`stopping` must be a mapping of `field: value` lines (prob_best, \
             max_expected_loss, min_exposures, min_duration, on_winner, \
             allow_prior_only_decision), found the number 0.95",
        ],
    );
}

#[test]
fn an_unknown_stopping_field_gets_a_suggestion() {
    assert_error(
        &with_stopping(&[THRESHOLDS[0], THRESHOLDS[1], "min_exposure: 1000"]),
        17,
        3,
        &["unknown field `min_exposure` in `stopping`; did you mean `min_exposures`?"],
    );
}

#[test]
fn every_problem_of_a_stopping_block_is_reported_in_file_order() {
    let text = with_stopping(&[
        "prob_best: 2",
        "max_expected_loss: 0",
        "min_exposures: -3",
        "min_duration: soon",
        "on_winner: stop",
        "prior: 1",
    ]);
    let positions: Vec<_> = errors(&text).iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(
        positions,
        vec![(15, 14), (16, 22), (17, 18), (18, 17), (19, 14), (20, 3)]
    );
}

#[test]
fn the_stopping_block_may_sit_anywhere_in_the_file() {
    let e = parse(&format!(
        "{VALID}\nstopping: {{prob_best: 0.9, max_expected_loss: 0.01}}\n"
    ))
    .unwrap();
    assert_eq!(e.stopping.map(|s| s.prob_best), Some(0.9));
}

#[test]
fn on_winner_prints_and_serializes_as_written_in_yaml() {
    for (choice, text) in [(OnWinner::Exploit, "exploit"), (OnWinner::Report, "report")] {
        assert_eq!(choice.as_str(), text);
        assert_eq!(choice.to_string(), text);
        assert_eq!(
            serde_json::to_value(choice).unwrap(),
            serde_json::json!(text)
        );
    }
}
