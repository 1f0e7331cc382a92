//! One corpus of experiment files, judged by both the parser and the schema. They must
//! agree: a file the editor accepts and `banditd validate` refuses (or the reverse) is a
//! bug in one of them. The only exceptions are the rules a schema cannot express; those
//! cases are marked `ParserOnly` with the phrase of the schema's top-level description
//! that documents them, so the exception list and the documentation cannot drift apart.

use std::path::Path;

use super::json_schema;
use super::tests::{SchemaVerdict, schema_verdict, validator};
use crate::spec::parse_experiment;

/// What both judges should say about a file.
enum Expect {
    Valid,
    Invalid,
    /// Refused by the parser, accepted by the schema (or invisible to it): a rule the schema
    /// documents in its top-level description with this phrase.
    ParserOnly(&'static str),
}

struct Case {
    name: String,
    yaml: String,
    expect: Expect,
}

/// The smallest valid experiment. Lines: 1 id, 2 description, 3 owner, 4 status,
/// 5 default_variant, 6 variants, 7-10 two variants.
const MINIMAL: &str = "id: minimal
description: Which button converts better?
owner: growth
status: running
default_variant: a
variants:
  - id: a
    payload: 1
  - id: b
    payload: 2
";

/// `MINIMAL` with top-level `lines` added before `default_variant`.
fn with(lines: &str) -> String {
    MINIMAL.replace(
        "default_variant: a\n",
        &format!("{lines}\ndefault_variant: a\n"),
    )
}

/// `MINIMAL` with `from` (which must occur) replaced by `to`.
fn swap(from: &str, to: &str) -> String {
    assert!(MINIMAL.contains(from), "{from:?} is not in MINIMAL");
    MINIMAL.replacen(from, to, 1)
}

/// `MINIMAL` without the top-level field `name` (and, for `variants`, its entries).
fn without(name: &str) -> String {
    if name == "variants" {
        return MINIMAL[..MINIMAL.find("variants:").unwrap_or(0)].to_owned();
    }
    MINIMAL
        .lines()
        .filter(|line| !line.starts_with(&format!("{name}:")))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// `MINIMAL` concluded with `winner`.
fn concluded(winner: &str) -> String {
    with(winner).replace("status: running", "status: concluded")
}

/// A stopping block with valid thresholds plus `extra` lines (indented by the caller).
fn stopping(extra: &str) -> String {
    with(&format!(
        "stopping:\n  prob_best: 0.9\n  max_expected_loss: 0.01\n{extra}"
    ))
}

const EVERY_FIELD: &str = r#"$schema: ../schema/experiment.schema.json
id: search_ranking-2
description: Which ranking weights get more clicks?
owner: search-relevance
status: paused
environments: [staging, production]
revision: 3
assignment: per_request
reward:
  window: 30m
prior: { alpha: 2, beta: 38 }
policy:
  burn_in: 500
  min_share: 0.1
  half_life: 14d
stopping:
  prob_best: 0.95
  max_expected_loss: 0.001
  min_exposures: 1000
  min_duration: 3d
  on_winner: report
default_variant: baseline
variants:
  - id: baseline
    payload: { weights: [1.0, 0.3] }
  - id: fresh
    payload: { weights: [1.0, 0.2] }
    prior: { alpha: 3, beta: 37 }
"#;

fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |name: &str, yaml: String, expect: Expect| {
        cases.push(Case {
            name: name.to_owned(),
            yaml,
            expect,
        });
    };
    use Expect::{Invalid, ParserOnly, Valid};

    // Valid variations.
    add("minimal file", MINIMAL.to_owned(), Valid);
    add("every optional field", EVERY_FIELD.to_owned(), Valid);
    add("concluded with a winner", concluded("winner: b"), Valid);
    for status in ["draft", "paused"] {
        add(
            status,
            swap("status: running", &format!("status: {status}")),
            Valid,
        );
    }
    add(
        "empty optional values mean the defaults",
        with(
            "$schema:\nenvironments:\nrevision:\nassignment:\nreward:\n  window:\nprior:\n\
             policy:\n  burn_in:\n  min_share:\n  half_life:\nstopping:\nwinner: ~",
        ),
        Valid,
    );
    add(
        "empty optional values inside stopping",
        stopping("  min_exposures:\n  min_duration:\n  on_winner:"),
        Valid,
    );
    for (kind, payload) in [
        ("mapping", "{headline: Build faster}"),
        ("list", "[1, two, null]"),
        ("text", "Build faster"),
        ("YAML 1.2 text that looks boolean", "no"),
        ("integer", "-42"),
        ("decimal", "0.5"),
        ("true/false", "false"),
        ("null", "null"),
        (
            "nested block",
            "\n      weights: {a: [1, {b: 2}]}\n      flags: [true]",
        ),
        ("number keys", "{1: one, 2: two}"),
    ] {
        add(
            &format!("payload: {kind}"),
            swap("    payload: 1", &format!("    payload: {payload}")),
            Valid,
        );
    }
    add(
        "whole numbers written with a decimal point or exponent",
        with("revision: 2.0\npolicy:\n  burn_in: 1e3"),
        Valid,
    );
    add(
        "every duration unit, leading zeros and quoted spaces",
        stopping("  min_duration: 12h\nreward:\n  window: 45s\npolicy:\n  half_life: 0030m")
            .replace("window: 45s", "window: \" 2w \""),
        Valid,
    );
    add("a day window", with("reward: {window: 1d}"), Valid);
    add(
        "boundaries that are allowed",
        stopping("  min_exposures: 0\npolicy:\n  min_share: 0\n  burn_in: 0")
            .replace("prob_best: 0.9", "prob_best: 0.500001")
            .replace("max_expected_loss: 0.01", "max_expected_loss: 1"),
        Valid,
    );
    add("largest revision", with("revision: 4294967295"), Valid);
    add(
        "largest burn_in",
        with("policy: {burn_in: 18446744073709551615}"),
        Valid,
    );
    add(
        "a 64-character id with digits, dashes and underscores",
        swap("id: minimal", &format!("id: {}", "a_-9".repeat(16))),
        Valid,
    );
    add(
        "a flow-style file",
        "{id: x, description: d, owner: o, status: draft, default_variant: a, \
         variants: [{id: a, payload: 1}, {id: b, payload: 2}]}"
            .to_owned(),
        Valid,
    );
    add(
        "fractional priors",
        with("prior: {alpha: 0.5, beta: 0.5}"),
        Valid,
    );

    // Rules both enforce.
    let invalid = [
        ("empty file", String::new()),
        ("a list instead of a mapping", "- id: a\n".to_owned()),
        (
            "empty required field",
            swap("default_variant: a", "default_variant:"),
        ),
        ("null id", swap("id: minimal", "id: ~")),
        ("unknown top-level field", with("rollout: 10")),
        ("unknown reward field", with("reward:\n  windw: 7d")),
        (
            "unknown prior field",
            with("prior: {alpha: 1, beta: 1, gamma: 1}"),
        ),
        ("unknown policy field", with("policy:\n  halflife: 14d")),
        ("unknown stopping field", stopping("  min_exposure: 5")),
        (
            "unknown variant field",
            swap("    payload: 2", "    payload: 2\n    weight: 3"),
        ),
        ("a number as a field name", with("1: one")),
        ("$schema that is not text", with("$schema: 3")),
        ("id with capitals", swap("id: minimal", "id: Minimal")),
        (
            "id of 65 characters",
            swap("id: minimal", &format!("id: {}", "x".repeat(65))),
        ),
        ("empty id", swap("id: minimal", "id: \"\"")),
        ("id that is a number", swap("id: minimal", "id: 42")),
        (
            "blank description",
            swap(
                "description: Which button converts better?",
                "description: \" \"",
            ),
        ),
        ("owner as a number", swap("owner: growth", "owner: 2024")),
        ("unknown status", swap("status: running", "status: live")),
        ("unknown assignment", with("assignment: per-request")),
        ("environments not a list", with("environments: production")),
        ("empty environments", with("environments: []")),
        (
            "repeated environment",
            with("environments: [staging, staging]"),
        ),
        (
            "environment with capitals",
            with("environments: [Production]"),
        ),
    ];
    for (name, yaml) in invalid {
        add(name, yaml, Invalid);
    }
    for field in [
        "id",
        "description",
        "owner",
        "status",
        "default_variant",
        "variants",
    ] {
        add(&format!("missing {field}"), without(field), Invalid);
    }
    for (what, value) in [
        ("zero", "0"),
        ("decimal", "1.5"),
        ("text", "\"2\""),
        ("above 2^32 - 1", "4294967296"),
        ("true/false", "true"),
    ] {
        add(
            &format!("revision {what}"),
            with(&format!("revision: {value}")),
            Invalid,
        );
    }
    for window in [
        "7", "0d", "1.5d", "7 d", "7days", "7D", "-1d", "[7d]", "\"\"",
    ] {
        add(
            &format!("window {window}"),
            with(&format!("reward:\n  window: {window}")),
            Invalid,
        );
    }
    for (what, prior) in [
        ("zero alpha", "{alpha: 0, beta: 1}"),
        ("negative beta", "{alpha: 1, beta: -2}"),
        ("missing beta", "{alpha: 1}"),
        ("empty alpha", "{alpha: ~, beta: 1}"),
        ("alpha as text", "{alpha: \"1\", beta: 1}"),
        ("not a mapping", "1"),
    ] {
        add(
            &format!("prior: {what}"),
            with(&format!("prior: {prior}")),
            Invalid,
        );
    }
    for (field, value) in [
        ("burn_in", "-1"),
        ("burn_in", "2.5"),
        ("burn_in", "lots"),
        ("min_share", "1"),
        ("min_share", "-0.1"),
        ("min_share", "2%"),
        ("half_life", "14"),
        ("half_life", "two weeks"),
    ] {
        add(
            &format!("policy {field}: {value}"),
            with(&format!("policy:\n  {field}: {value}")),
            Invalid,
        );
    }
    add("stopping not a mapping", with("stopping: 0.95"), Invalid);
    add(
        "stopping without prob_best",
        with("stopping:\n  max_expected_loss: 0.01"),
        Invalid,
    );
    add(
        "stopping without max_expected_loss",
        with("stopping:\n  prob_best: 0.9"),
        Invalid,
    );
    add(
        "stopping with an empty prob_best",
        with("stopping:\n  prob_best:\n  max_expected_loss: 0.01"),
        Invalid,
    );
    for (field, value) in [
        ("prob_best", "0.5"),
        ("prob_best", "1"),
        ("prob_best", "95"),
        ("prob_best", "95%"),
        ("max_expected_loss", "0"),
        ("max_expected_loss", "-0.01"),
        ("max_expected_loss", "1.5"),
    ] {
        // The block's other threshold stays valid, so only this value is wrong.
        let (prob_best, max_expected_loss) = match field {
            "prob_best" => (value, "0.01"),
            _ => ("0.9", value),
        };
        add(
            &format!("stopping {field}: {value}"),
            with(&format!(
                "stopping:\n  prob_best: {prob_best}\n  max_expected_loss: {max_expected_loss}"
            )),
            Invalid,
        );
    }
    for (field, value) in [
        ("min_exposures", "-1"),
        ("min_exposures", "2.5"),
        ("min_duration", "3"),
        ("min_duration", "0s"),
        ("on_winner", "stop"),
        ("on_winner", "Exploit"),
    ] {
        add(
            &format!("stopping {field}: {value}"),
            stopping(&format!("  {field}: {value}")),
            Invalid,
        );
    }
    let invalid = [
        ("concluded without a winner", concluded("")),
        ("concluded with an empty winner", concluded("winner: ~")),
        ("a winner while running", with("winner: b")),
        ("a winner that is no id", concluded("winner: B")),
        ("a winner that is a number", concluded("winner: 2")),
        (
            "only one variant",
            MINIMAL.replace("  - id: b\n    payload: 2\n", ""),
        ),
        (
            "no variants",
            format!("{}variants: []\n", without("variants")),
        ),
        (
            "variants as a mapping",
            format!("{}variants: {{a: 1, b: 2}}\n", without("variants")),
        ),
        (
            "a variant that is text",
            swap("  - id: b\n    payload: 2", "  - b"),
        ),
        (
            "a variant without id",
            swap("  - id: b\n    payload: 2", "  - payload: 2"),
        ),
        ("a variant without payload", swap("    payload: 2\n", "")),
        (
            "a variant id with a space",
            swap("  - id: b", "  - id: b c"),
        ),
        (
            "a variant prior of zero",
            swap(
                "    payload: 2",
                "    payload: 2\n    prior: {alpha: 0, beta: 1}",
            ),
        ),
    ];
    for (name, yaml) in invalid {
        add(name, yaml, Invalid);
    }

    // Rules only the parser can check; each phrase is in the schema's description.
    let names_a_variant = "`default_variant` and `winner` must name one of the variants";
    add(
        "default_variant naming no variant",
        swap("default_variant: a", "default_variant: c"),
        ParserOnly(names_a_variant),
    );
    add(
        "winner naming no variant",
        concluded("winner: c"),
        ParserOnly(names_a_variant),
    );
    add(
        "duplicate variant ids",
        swap("  - id: b", "  - id: a"),
        ParserOnly("variant ids must be unique within the file"),
    );
    add(
        "min_share times the variants reaching 1",
        with("policy:\n  min_share: 0.5"),
        ParserOnly("min_share × the number of variants must stay below 1"),
    );
    let finite = "numbers must be finite";
    add(
        "infinite prior",
        with("prior: {alpha: .inf, beta: 1}"),
        ParserOnly(finite),
    );
    add(
        "NaN prob_best",
        with("stopping: {prob_best: .nan, max_expected_loss: 0.01}"),
        ParserOnly(finite),
    );
    add(
        "infinite payload number",
        swap("    payload: 1", "    payload: {w: .inf}"),
        ParserOnly(finite),
    );
    add(
        "a duration of more than 584 million years",
        with("reward:\n  window: 99999999999999999999w"),
        ParserOnly("a duration is at most 18446744073709551 seconds"),
    );
    add(
        "a huge whole number written with an exponent",
        with("policy:\n  burn_in: 1.0e19"),
        ParserOnly("must be at most 2^53"),
    );
    add(
        "payload keys that clash as JSON text",
        swap("    payload: 1", "    payload: {1: a, \"1\": b}"),
        ParserOnly("payload mapping keys must stay distinct"),
    );
    add(
        "duplicate keys",
        with("owner: again"),
        ParserOnly("no duplicate keys"),
    );
    add(
        "two documents",
        format!("{MINIMAL}---\n{MINIMAL}"),
        ParserOnly("one YAML document per file"),
    );
    add(
        "nesting deeper than the limit",
        swap(
            "    payload: 1",
            &format!("    payload: {}1{}", "[".repeat(20), "]".repeat(20)),
        ),
        ParserOnly("levels of nesting"),
    );
    cases
}

#[test]
fn the_parser_and_the_schema_agree_on_every_corpus_file() {
    let validator = validator();
    let description = json_schema()["description"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let cases = corpus();
    assert!(cases.len() >= 25, "only {} cases", cases.len());
    let mut disagreements = Vec::new();
    for case in &cases {
        let parsed = parse_experiment(Path::new("corpus.yaml"), &case.yaml);
        let verdict = schema_verdict(&validator, &case.yaml);
        let agrees = match (&case.expect, &parsed, &verdict) {
            (Expect::Valid, Ok(_), SchemaVerdict::Accepts) => true,
            (Expect::Invalid, Err(_), SchemaVerdict::Rejects(_)) => true,
            (Expect::ParserOnly(rule), Err(_), SchemaVerdict::Accepts)
            | (Expect::ParserOnly(rule), Err(_), SchemaVerdict::NoJsonForm(_)) => {
                if !description.contains(rule) {
                    disagreements.push(format!(
                        "{}: the schema description does not document {rule:?}",
                        case.name
                    ));
                }
                true
            }
            _ => false,
        };
        if !agrees {
            disagreements.push(format!(
                "{}:\n  parser: {}\n  schema: {}\n--- yaml ---\n{}",
                case.name,
                match &parsed {
                    Ok(_) => "accepts".to_owned(),
                    Err(errors) => format!(
                        "{:?}",
                        errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
                    ),
                },
                verdict.explain(),
                case.yaml
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} corpus files:\n\n{}",
        disagreements.len(),
        cases.len(),
        disagreements.join("\n\n")
    );
}

#[test]
fn the_corpus_covers_valid_invalid_and_parser_only_files() {
    let cases = corpus();
    let count = |f: fn(&Expect) -> bool| cases.iter().filter(|c| f(&c.expect)).count();
    assert!(count(|e| matches!(e, Expect::Valid)) >= 20);
    assert!(count(|e| matches!(e, Expect::Invalid)) >= 60);
    assert!(count(|e| matches!(e, Expect::ParserOnly(_))) >= 10);
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    let total = names.len();
    names.dedup();
    assert_eq!(names.len(), total, "corpus case names must be unique");
}

/// The first phrase a message says twice, if any: three words, or two when one is a number
/// (`for 95%` twice is the same advice twice). Words compare without case and surrounding
/// punctuation.
fn repeated_phrase(message: &str) -> Option<String> {
    let words: Vec<String> = message
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| ".,;:()`\"'".contains(c))
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let has_digit = |w: &String| w.chars().any(|c| c.is_ascii_digit());
    let mut seen = std::collections::HashSet::new();
    let pairs = words
        .windows(2)
        .filter(|pair| pair.iter().any(has_digit))
        .map(|pair| pair.join(" "));
    let triples = words.windows(3).map(|triple| triple.join(" "));
    pairs
        .chain(triples)
        .find(|phrase| !seen.insert(phrase.clone()))
}

#[test]
fn no_message_says_the_same_thing_twice() {
    let mut repeats = Vec::new();
    let mut checked = 0;
    let extra = [
        ("prob_best as a percentage", swap_stopping("prob_best: 95")),
        (
            "loss as a percentage",
            swap_stopping("max_expected_loss: 2"),
        ),
    ];
    let cases = corpus()
        .into_iter()
        .map(|case| (case.name, case.yaml))
        .chain(
            extra
                .into_iter()
                .map(|(name, yaml)| (name.to_owned(), yaml)),
        );
    for (name, yaml) in cases {
        let Err(errors) = parse_experiment(Path::new("corpus.yaml"), &yaml) else {
            continue;
        };
        for error in errors {
            checked += 1;
            if let Some(phrase) = repeated_phrase(&error.message) {
                repeats.push(format!("{name}: {phrase:?} twice in: {}", error.message));
            }
        }
    }
    assert!(checked >= 20, "only {checked} messages");
    assert!(repeats.is_empty(), "{repeats:#?}");
    // The detector catches the message this test was written for.
    assert_eq!(
        repeated_phrase("it is how sure, e.g. 0.95 for 95% (for 95% write 0.95)").as_deref(),
        Some("for 95%")
    );
}

/// A valid file whose stopping block holds `field` and the other threshold.
fn swap_stopping(field: &str) -> String {
    let other = if field.starts_with("prob_best") {
        "max_expected_loss: 0.001"
    } else {
        "prob_best: 0.95"
    };
    format!("{MINIMAL}stopping: {{{field}, {other}}}\n")
}
