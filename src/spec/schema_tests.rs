//! Tests of the schema's own shape: valid draft 2020-12, documented, in step with the
//! parser's field lists and defaults, and identical to the shipped file. The parser/schema
//! agreement over a corpus of files is in `schema_corpus_tests.rs`.

use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::spec::node::read_document;
use crate::spec::parse::{
    EXPERIMENT_FIELDS, POLICY_FIELDS, PRIOR_FIELDS, REWARD_FIELDS, VARIANT_FIELDS,
};
use crate::spec::stopping::STOPPING_FIELDS;
use crate::spec::{DEFAULT_REWARD_WINDOW_SECONDS, HumanDuration, parse_experiment};

/// Set to `1` to rewrite the shipped schema file instead of comparing against it.
const WRITE_SCHEMA_ENV: &str = "BANDITD_WRITE_SCHEMA";

/// A validator for the schema; every test that validates builds its own (cheap, and keeps
/// tests independent).
pub(super) fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&json_schema()).expect("the schema compiles")
}

/// What the schema says about a YAML text, seen as JSON the way an editor sees it.
pub(super) enum SchemaVerdict {
    Accepts,
    Rejects(Vec<String>),
    /// YAML that has no JSON form (`.inf`, clashing keys, a syntax error): the schema never
    /// sees it, so only the parser can judge it.
    NoJsonForm(String),
}

impl SchemaVerdict {
    /// The verdict with the schema's reasons, for a failure message.
    pub(super) fn explain(&self) -> String {
        match self {
            SchemaVerdict::Accepts => "accepts".to_owned(),
            SchemaVerdict::Rejects(errors) => format!("rejects: {}", errors.join("; ")),
            SchemaVerdict::NoJsonForm(why) => format!("cannot see it (no JSON form): {why}"),
        }
    }
}

pub(super) fn schema_verdict(validator: &jsonschema::Validator, yaml: &str) -> SchemaVerdict {
    let node = match read_document(Path::new("corpus.yaml"), yaml) {
        Ok(node) => node,
        Err(err) => return SchemaVerdict::NoJsonForm(err.to_string()),
    };
    let json = match node.to_json() {
        Ok(json) => json,
        Err((pos, msg)) => return SchemaVerdict::NoJsonForm(format!("{pos}: {msg}")),
    };
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| format!("at '{}': {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        SchemaVerdict::Accepts
    } else {
        SchemaVerdict::Rejects(errors)
    }
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema() {
    let schema = json_schema();
    if let Err(err) = jsonschema::draft202012::meta::validate(&schema) {
        panic!(
            "not a valid draft 2020-12 schema: {err} at {}",
            err.instance_path()
        );
    }
    assert_eq!(
        schema["$schema"],
        json!("https://json-schema.org/draft/2020-12/schema")
    );
}

#[test]
fn every_bundled_experiment_satisfies_the_schema() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let validator = validator();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schema/experiment.schema.json\n"),
            "{} does not point editors at the schema",
            path.display()
        );
        match schema_verdict(&validator, &text) {
            SchemaVerdict::Accepts => checked += 1,
            other => panic!("{}: the schema {}", path.display(), other.explain()),
        }
    }
    assert_eq!(checked, 3, "expected the three bundled experiments");
}

/// Every object in `schema` that has `properties`: `(where, property names)`.
fn property_sets(schema: &Value, at: &str, found: &mut Vec<(String, Vec<String>)>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get("properties") {
                found.push((at.to_owned(), properties.keys().cloned().collect()));
            }
            for (key, value) in map {
                property_sets(value, &format!("{at}/{key}"), found);
            }
        }
        Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                property_sets(value, &format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

#[test]
fn every_property_and_definition_has_a_description_for_editors() {
    let schema = json_schema();
    let mut sets = Vec::new();
    property_sets(&schema, "#", &mut sets);
    let mut described = 0;
    for (at, names) in &sets {
        // `if`/`then`/`else` only restate a rule on properties documented above.
        if at.ends_with("/if") || at.ends_with("/then") || at.ends_with("/else") {
            continue;
        }
        let pointer = at.trim_start_matches('#').to_owned() + "/properties";
        for name in names {
            let property = &schema.pointer(&format!("{pointer}/{name}")).unwrap();
            let description = property["description"].as_str().unwrap_or("");
            assert!(
                description.len() > 20,
                "{at}/properties/{name} needs a description"
            );
            described += 1;
        }
    }
    // 18 top-level, 2 reward, 3 policy, 6 stopping, 2 prior, 4 variant, 6 guardrail;
    // `reward.delay`'s model has its `median` too.
    assert_eq!(described, 42);
    for (name, definition) in schema["$defs"].as_object().unwrap() {
        assert!(
            definition["description"]
                .as_str()
                .is_some_and(|d| d.len() > 20),
            "$defs/{name} needs a description"
        );
    }
    assert!(schema["description"].as_str().unwrap().len() > 200);
}

fn sorted(names: impl IntoIterator<Item = impl ToString>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().map(|n| n.to_string()).collect();
    names.sort();
    names
}

#[test]
fn the_schema_allows_exactly_the_fields_the_parser_reads() {
    let schema = json_schema();
    for (pointer, parser_fields) in [
        ("/properties", EXPERIMENT_FIELDS),
        ("/properties/reward/properties", REWARD_FIELDS),
        ("/properties/policy/properties", POLICY_FIELDS),
        ("/properties/stopping/properties", STOPPING_FIELDS),
        ("/$defs/prior/properties", PRIOR_FIELDS),
        ("/$defs/variant/properties", VARIANT_FIELDS),
    ] {
        let properties = schema.pointer(pointer).and_then(Value::as_object).unwrap();
        assert_eq!(
            sorted(properties.keys()),
            sorted(parser_fields),
            "{pointer}"
        );
        let parent = pointer.strip_suffix("/properties").unwrap_or_default();
        let closed = schema.pointer(&format!("{parent}/additionalProperties"));
        assert_eq!(closed, Some(&json!(false)), "{pointer} must be closed");
    }
}

#[test]
fn writing_every_schema_default_gives_the_same_experiment_as_leaving_it_out() {
    let schema = json_schema();
    let default = |pointer: &str| -> String {
        // JSON is YAML flow syntax, so a default can be pasted into a file as is.
        let value = schema.pointer(pointer).unwrap_or(&Value::Null);
        assert!(!value.is_null(), "{pointer} has no default");
        value.to_string()
    };
    let head = "id: x\ndescription: d\nowner: o\nstatus: running\n\
                default_variant: a\nvariants: [{id: a, payload: 1}, {id: b, payload: 2}]\n\
                stopping:\n  prob_best: 0.9\n  max_expected_loss: 0.01\n";
    let explicit = format!(
        "{head}  min_exposures: {}\n  on_winner: {}\nrevision: {}\nassignment: {}\n\
         reward: {{window: {}}}\nprior: {}\npolicy: {{burn_in: {}, min_share: {}}}\n",
        default("/properties/stopping/properties/min_exposures/default"),
        default("/properties/stopping/properties/on_winner/default"),
        default("/properties/revision/default"),
        default("/properties/assignment/default"),
        default("/properties/reward/properties/window/default"),
        default("/properties/prior/default"),
        default("/properties/policy/properties/burn_in/default"),
        default("/properties/policy/properties/min_share/default"),
    );
    let file = Path::new("x.yaml");
    let written = parse_experiment(file, &explicit).unwrap();
    let implied = parse_experiment(file, head).unwrap();
    assert_eq!(written, implied);
    assert_eq!(
        HumanDuration::parse(DEFAULT_REWARD_WINDOW_TEXT).map(HumanDuration::as_std),
        Ok(std::time::Duration::from_secs(
            DEFAULT_REWARD_WINDOW_SECONDS
        ))
    );
}

#[test]
fn the_shipped_schema_file_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA_FILE);
    let expected = json_schema_text();
    if std::env::var(WRITE_SCHEMA_ENV).is_ok_and(|v| v == "1") {
        std::fs::write(&path, &expected).unwrap();
    }
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    let regenerate = format!(
        "{SCHEMA_FILE} is out of date with spec::json_schema(); regenerate it with \
         `{WRITE_SCHEMA_ENV}=1 cargo test --lib spec::schema` (or `banditd schema > \
         {SCHEMA_FILE}`) and commit it"
    );
    let parsed: Value = serde_json::from_str(&shipped).unwrap_or(Value::Null);
    assert!(parsed == json_schema(), "{regenerate}");
    assert!(shipped == expected, "{regenerate} (formatting differs)");
}

#[test]
fn the_schema_text_is_pretty_printed_with_a_final_newline() {
    let text = json_schema_text();
    assert!(text.starts_with("{\n  \"$defs\": {\n"), "{}", &text[..40]);
    assert!(text.ends_with("}\n"));
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), json_schema());
}
