use std::path::{Path, PathBuf};

use serde_json::json;

use crate::spec::{Experiment, Position, parse_experiment};

const BUNDLED: [(&str, &str); 3] = [
    (
        "homepage-headline.yaml",
        include_str!("../../experiments/homepage-headline.yaml"),
    ),
    (
        "checkout-button.yaml",
        include_str!("../../experiments/checkout-button.yaml"),
    ),
    (
        "search-ranking.yaml",
        include_str!("../../experiments/search-ranking.yaml"),
    ),
];

/// Every optional field set, awkward payloads (text that looks like other YAML types,
/// escapes, non-ASCII, big and fractional numbers, nesting, null) and per-arm priors.
const MAXIMAL: &str = r#"
id: maximal_exp-1
description: "Every field: quotes \" and backslashes \\ and a tab\t and émoji 🎯"
owner: "growth: analytics # not a comment"
status: concluded
environments: [staging, production, eu-west_1]
revision: 4294967295
assignment: per_request
reward: { window: 36h }
prior: { alpha: 0.5, beta: 2 }
policy: { burn_in: 18446744073709551615, min_share: 0.1, half_life: 2w }
stopping:
  prob_best: 0.975
  max_expected_loss: 0.0001
  min_exposures: 123456
  min_duration: 90m
  on_winner: report
default_variant: control
winner: treatment
variants:
  - id: control
    payload: ~
  - id: treatment
    payload:
      yes_text: "yes"
      no_text: "no"
      null_text: "null"
      number_text: "0123"
      float: 2.0
      tiny: 1.0e-300
      big: 18446744073709551615
      negative: -9223372036854775808
      list: [1, "two", 3.5, true, null, {k: [[]]}]
      "key with: colon": "line\nbreak\u0001control"
      empty_map: {}
      empty_text: ""
    prior: { alpha: 3, beta: 97 }
  - id: third
    payload: plain text
"#;

fn parse(name: &str, text: &str) -> Experiment {
    parse_experiment(Path::new(name), text).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

/// The experiment re-read from the JSON text of its document, with the read-from fields
/// set to the original's so the rest can be compared with `==`.
fn round_trip(original: &Experiment, text: &str) -> Experiment {
    let name = format!("<server>/{}.yaml", original.id);
    let mut reread = parse_experiment(Path::new(&name), text)
        .unwrap_or_else(|e| panic!("{name} does not re-read: {e:?}\n{text}"));
    assert_eq!(reread.source, PathBuf::from(&name));
    reread.source = original.source.clone();
    reread.id_position = original.id_position;
    reread
}

#[test]
fn bundled_experiments_survive_document_json_and_parse() {
    for (name, text) in BUNDLED {
        let original = parse(name, text);
        let document = original.to_document();
        let pretty = serde_json::to_string_pretty(&document).unwrap();
        let compact = serde_json::to_string(&document).unwrap();
        assert_eq!(round_trip(&original, &pretty), original, "{name} (pretty)");
        assert_eq!(
            round_trip(&original, &compact),
            original,
            "{name} (compact)"
        );
    }
}

#[test]
fn a_maximal_experiment_survives_document_json_and_parse() {
    let original = parse("maximal.yaml", MAXIMAL);
    // The fixture really exercises the optional fields and awkward values.
    assert!(original.stopping.is_some() && original.policy.half_life.is_some());
    assert_eq!(original.variants[1].payload["yes_text"], json!("yes"));
    assert_eq!(original.variants[0].payload, json!(null));
    let document = original.to_document();
    for text in [
        serde_json::to_string_pretty(&document).unwrap(),
        serde_json::to_string(&document).unwrap(),
    ] {
        assert_eq!(round_trip(&original, &text), original, "{text}");
    }
}

#[test]
fn minimal_experiment_documents_spell_out_every_default() {
    let original = parse(
        "min.yaml",
        "id: m\ndescription: d\nowner: o\nstatus: draft\ndefault_variant: a\n\
         variants: [{id: a, payload: 1}, {id: b, payload: 2}]\n",
    );
    assert_eq!(
        original.to_document(),
        json!({
            "id": "m",
            "description": "d",
            "owner": "o",
            "exposure": "on_assign",
            "status": "draft",
            "revision": 1,
            "assignment": "sticky",
            "reward": {"window": "1w", "delay": "auto"},
            "prior": {"alpha": 1.0, "beta": 1.0},
            "policy": {"burn_in": 100, "min_share": 0.0},
            "default_variant": "a",
            "variants": [{"id": "a", "payload": 1}, {"id": "b", "payload": 2}],
        })
    );
}

#[test]
fn document_fields_use_the_yaml_spellings() {
    let original = parse("maximal.yaml", MAXIMAL);
    let document = original.to_document();
    assert_eq!(document["assignment"], json!("per_request"));
    assert_eq!(document["reward"]["window"], json!("36h"));
    assert_eq!(document["policy"]["half_life"], json!("2w"));
    assert_eq!(document["stopping"]["min_duration"], json!("90m"));
    assert_eq!(document["stopping"]["on_winner"], json!("report"));
    assert_eq!(document["winner"], json!("treatment"));
    assert_eq!(
        document["variants"][1]["prior"],
        json!({"alpha": 3.0, "beta": 97.0})
    );
    assert_eq!(
        document["environments"],
        json!(["staging", "production", "eu-west_1"])
    );
    // Positions are not part of the document.
    assert_ne!(original.id_position, Position::FILE);
    assert!(document.get("source").is_none());
}
