//! Tests of `reward.delay`. Shared fixtures live in `parse_tests.rs`.

use super::tests::{VALID, assert_error, parse};
use super::*;

fn with_delay(delay: &str) -> String {
    VALID.replace("  window: 7d", &format!("  window: 7d\n  delay: {delay}"))
}

#[test]
fn the_delay_model_defaults_to_auto() {
    assert_eq!(parse(VALID).unwrap().reward.delay, DelayModel::Auto);
    assert_eq!(
        parse(&with_delay("")).unwrap().reward.delay,
        DelayModel::Auto
    );
}

#[test]
fn auto_off_and_a_cold_start_median_parse() {
    assert_eq!(
        parse(&with_delay("auto")).unwrap().reward.delay,
        DelayModel::Auto
    );
    assert_eq!(
        parse(&with_delay("off")).unwrap().reward.delay,
        DelayModel::Off
    );
    let e = parse(&with_delay("{ median: 2d }")).unwrap();
    assert_eq!(
        e.reward.delay,
        DelayModel::Prior {
            median: HumanDuration::parse("2d").unwrap()
        }
    );
    assert_eq!(e.reward.delay.to_string(), "{median: 2d}");
    // The document round-trips through the parser.
    let document = e.to_document();
    assert_eq!(document["reward"]["delay"]["median"], "2d");
    let again = parse(&document.to_string()).unwrap();
    assert_eq!(again.reward.delay, e.reward.delay);
}

#[test]
fn an_unknown_delay_word_is_refused_with_a_suggestion() {
    assert_error(
        &with_delay("aut"),
        10,
        10,
        &[
            "`delay` must be `auto`, `off`",
            "{median: 2d}",
            "did you mean `auto`?",
        ],
    );
    assert_error(&with_delay("3"), 10, 10, &["found the number 3"]);
}

#[test]
fn a_delay_model_needs_a_positive_median_and_nothing_else() {
    assert_error(&with_delay("{ median: 0s }"), 10, 20, &["zero", "positive"]);
    assert_error(&with_delay("{ median: 2 }"), 10, 20, &["has no unit"]);
    let messages: Vec<String> = super::tests::errors(&with_delay("{ mean: 2d }"))
        .iter()
        .map(|e| e.message.clone())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("did you mean `median`?")),
        "{messages:?}"
    );
    assert_error(&with_delay("{}"), 10, 10, &["median"]);
}
