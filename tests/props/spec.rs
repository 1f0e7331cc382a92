//! Experiment YAML files through `spec::parse_experiment`.

use std::path::Path;

use banditd::spec::parse_experiment;
use proptest::prelude::*;
use proptest::sample::Index;

#[path = "checks/spec.rs"]
mod checks;

use crate::hostile::{FRAGMENTS, config, fuzz_seeds, mutated, nested};

const BUNDLED: [&str; 3] = [
    include_str!("../../experiments/homepage-headline.yaml"),
    include_str!("../../experiments/checkout-button.yaml"),
    include_str!("../../experiments/search-ranking.yaml"),
];

/// Every optional field, anchors and aliases, a merge key, flow and block styles.
const ANCHORED: &str = r#"id: anchored
description: &d "anchors, aliases and a merge key"
owner: *d
status: concluded
environments: [staging, "production"]
revision: 3
assignment: per_request
reward: { window: 36h }
prior: &p { alpha: 0.5, beta: 2 }
policy: { burn_in: 10, min_share: 0.05, half_life: 2w }
stopping:
  prob_best: 0.975
  max_expected_loss: 0.0001
  min_exposures: 100
  min_duration: 90m
  on_winner: report
default_variant: a
winner: b
variants:
  - id: a
    payload: &payload { <<: *p, list: [1, 2.5, ~, true, "é🎯"], nested: { x: [[{}]] } }
    prior: *p
  - id: b
    payload: *payload
  - id: c
    payload: |
      multi
      line
"#;

/// Scalars that YAML reads as something surprising, or that no field can hold.
const VALUES: &[&str] = &[
    "*p",
    "*undefined",
    "&x 1",
    ".nan",
    "-.inf",
    "1e400",
    "0x7fffffffffffffffffffffffffffffffff",
    "-340282366920938463463374607431768211457",
    "0o17",
    "01234",
    "no",
    "~",
    "''",
    "!!binary aGk=",
    "!!int x",
    "!custom 1",
    "[",
    "{ a: 1, a: 2 }",
    "|",
    "\"\\x00\\u202e\\ud800\"",
    "\"unterminated",
    "\"\\x7f\\x85\\x8a\\x9b\\ufeff\\uffff\"",
    "- item",
    "? key",
];

/// A line-level edit: the structure an analyst could break by hand.
#[derive(Debug, Clone)]
enum LineEdit {
    /// A second copy of a line: duplicate keys, duplicate variants.
    Duplicate(Index),
    Delete(Index),
    /// Indentation moved by -4..=4 spaces, or a tab at the start.
    Indent(Index, i8),
    /// The value after `key:` replaced.
    Value(Index, &'static str),
}

fn line_edit() -> impl Strategy<Value = LineEdit> {
    prop_oneof![
        2 => any::<Index>().prop_map(LineEdit::Duplicate),
        1 => any::<Index>().prop_map(LineEdit::Delete),
        1 => (any::<Index>(), -4i8..=5).prop_map(|(at, by)| LineEdit::Indent(at, by)),
        3 => (any::<Index>(), prop::sample::select(VALUES).prop_union(prop::sample::select(FRAGMENTS)))
            .prop_map(|(at, value)| LineEdit::Value(at, value)),
    ]
}

fn edit_lines(document: &str, edits: &[LineEdit]) -> String {
    let mut lines: Vec<String> = document.lines().map(str::to_owned).collect();
    for edit in edits {
        let count = lines.len();
        if count == 0 {
            break;
        }
        match edit {
            LineEdit::Duplicate(at) => {
                let at = at.index(lines.len());
                lines.insert(at, lines[at].clone());
            }
            LineEdit::Delete(at) => {
                lines.remove(at.index(lines.len()));
            }
            LineEdit::Indent(at, by) => {
                let line = &mut lines[at.index(count)];
                match by {
                    5 => line.insert(0, '\t'),
                    by if *by >= 0 => line.insert_str(0, &" ".repeat(*by as usize)),
                    by => {
                        let strip = line.len() - line.trim_start_matches(' ').len();
                        line.drain(..strip.min(usize::from(by.unsigned_abs())));
                    }
                }
            }
            LineEdit::Value(at, value) => {
                let line = &mut lines[at.index(count)];
                if let Some(colon) = line.find(": ") {
                    line.replace_range(colon + 2.., value);
                } else {
                    line.push_str(value);
                }
            }
        }
    }
    lines.join("\n") + "\n"
}

/// Documents that cost a naive parser its stack or memory: deep flow and block nesting, an
/// alias expansion that doubles per level, a very long line.
fn hostile_document() -> impl Strategy<Value = String> {
    prop_oneof![
        (10usize..600)
            .prop_map(|depth| format!("id: deep\npayload: {}\n", nested(depth, "[", "]", true))),
        (10usize..600).prop_map(|depth| format!(
            "id: deep\npayload: {}\n",
            nested(depth, "{a: ", "}", false)
        )),
        (10usize..200).prop_map(|depth| {
            (0..depth)
                .map(|d| format!("{}k:\n", "  ".repeat(d)))
                .collect::<String>()
        }),
        (4usize..16).prop_map(|levels| {
            let mut doc = String::from("a0: &a0 [x, x]\n");
            for level in 1..levels {
                let previous = level - 1;
                doc.push_str(&format!(
                    "a{level}: &a{level} [*a{previous}, *a{previous}]\n"
                ));
            }
            doc
        }),
        (1_000usize..20_000).prop_map(|len| format!("id: {}\n", "x".repeat(len))),
    ]
}

fn documents() -> impl Strategy<Value = String> {
    let valid = prop::sample::select(&[BUNDLED[0], BUNDLED[1], BUNDLED[2], ANCHORED][..]);
    prop_oneof![
        4 => (valid, prop::collection::vec(line_edit(), 0..4))
            .prop_map(|(document, edits)| edit_lines(document, &edits)),
        1 => hostile_document(),
    ]
}

/// The shared property (see `checks/spec.rs`) on a file named as the catalog would name it.
fn check(text: &str) {
    checks::check(Path::new("experiments/prop.yaml"), text);
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn every_edited_experiment_file_is_read_or_refused_at_a_place(text in documents()) {
        check(&text);
    }

    #[test]
    fn every_byte_mutated_experiment_file_is_read_or_refused_at_a_place(
        bytes in mutated(documents().prop_map(String::into_bytes), 4),
    ) {
        // The catalog refuses a file that is not UTF-8 before parsing; keep what is left.
        check(&String::from_utf8_lossy(&bytes));
    }
}

/// The generator must reach past the YAML reader, or the properties above only test syntax
/// errors: among its documents are accepted experiments and files refused by field rules.
#[test]
fn the_generated_files_reach_the_field_rules_and_acceptance() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::new(config(1));
    let (mut accepted, mut field_errors) = (0, 0);
    for _ in 0..200 {
        let text = documents()
            .new_tree(&mut runner)
            .expect("documents are generated")
            .current();
        match parse_experiment(Path::new("p.yaml"), &text) {
            Ok(_) => accepted += 1,
            Err(errors)
                if errors
                    .iter()
                    .all(|e| !e.message.starts_with("invalid YAML")) =>
            {
                field_errors += 1;
            }
            Err(_) => {}
        }
    }
    assert!(accepted >= 20, "{accepted} of 200 accepted");
    assert!(
        field_errors >= 20,
        "{field_errors} of 200 refused by field rules"
    );
}

/// Found by the `spec_parser` fuzz target: a lone CR ends a line in YAML, so an error on the
/// line after it is at line 2 (the property counted only LF line ends).
#[test]
fn an_error_after_a_lone_carriage_return_is_on_the_second_line() {
    check("\r\0\0\0\0\0\0\u{10}");
    let errors = parse_experiment(Path::new("p.yaml"), "\r\0").expect_err("not YAML");
    assert_eq!((errors[0].line, errors[0].column), (2, 1));
}

#[test]
fn the_committed_fuzz_inputs_are_read_or_refused_at_a_place() {
    for (name, bytes) in fuzz_seeds("spec_parser") {
        if let Ok(text) = std::str::from_utf8(&bytes) {
            eprintln!("{name}");
            check(text);
        }
    }
}

/// Found by the `spec_parser` fuzz target: a payload holding a C1 control character (written
/// as `\x8a` in the file) was served, but its document form had the character raw, which
/// YAML refuses, so `banditd plan --server` could not read the server's configuration.
#[test]
fn a_document_with_control_characters_in_its_text_reads_back() {
    let text = r#"id: c1
description: "a\x8a and \x7f"
owner: o
status: running
default_variant: a
variants:
  - id: a
    payload: "\x9b31m \x85 \ufeff \uffff"
  - id: b
    payload: null
"#;
    check(text);
    let experiment = parse_experiment(Path::new("c1.yaml"), text).expect("a valid file");
    assert_eq!(experiment.description, "a\u{8a} and \u{7f}");
}
