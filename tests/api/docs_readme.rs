//! The README's reference tables and quick start, checked against what they describe: the
//! experiment-field table against the JSON Schema and the parser, the configuration table
//! against `banditd serve --help`, and the quick-start `curl` lines against a live server.
//! Each check reads the real thing (the schema file, the binary's help, the server), so a
//! field, flag or route added elsewhere passes as soon as the README documents it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::{Map, Value, json};

use banditd::spec::{HumanDuration, parse_experiment};

use crate::docs_refs::{resolve_ref, schema_fields};
use crate::docs_text::{bundled_experiments, help, help_options, plain, read, table_rows};
use crate::helpers::TestApp;

const README: &str = "README.md";

/// One row of the README's experiment-field table.
#[derive(Debug)]
struct FieldRow {
    field: String,
    required: String,
    default: String,
}

fn field_rows() -> Vec<FieldRow> {
    table_rows(Path::new(README), "Experiment YAML reference", "field")
        .into_iter()
        .map(|cells| FieldRow {
            field: plain(&cells[0]),
            required: plain(&cells[1]),
            default: plain(&cells[2]),
        })
        .collect()
}

/// Default cells that say "no value" in words rather than giving one.
const NO_VALUE_WORDS: &[&str] = &[
    "",
    "none",
    "all",
    "unset",
    "experiment prior",
    "default_variant",
];

/// A README default cell as a value (`{alpha: 1, beta: 1}` is YAML), or `None` for words.
fn default_value(cell: &str) -> Option<Value> {
    if NO_VALUE_WORDS.contains(&cell) {
        return None;
    }
    Some(serde_saphyr::from_str::<Value>(cell).unwrap_or_else(|e| panic!("default {cell:?}: {e}")))
}

/// Equal as documents: numbers by value (`0` = `0.0`), durations by length (`7d` = `1w`),
/// objects key by key.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(x), Value::String(y)) => {
            match (HumanDuration::parse(x), HumanDuration::parse(y)) {
                (Ok(x), Ok(y)) => x.as_millis() == y.as_millis(),
                _ => x == y,
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_value(v, w))
        }
        _ => a == b,
    }
}

/// The schema node of a dotted field path, its parent object's node, and the parent's path.
fn schema_node<'a>(schema: &'a Value, field: &str) -> (&'a Value, &'a Value, Option<String>) {
    let mut parent = schema;
    let mut parent_path = None;
    let mut node = schema;
    let mut walked = String::new();
    for part in field.split('.') {
        let (name, items) = match part.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (part, false),
        };
        parent = resolve_ref(schema, node);
        node = &parent["properties"][name];
        assert!(!node.is_null(), "the schema has no field {field}");
        if !walked.is_empty() {
            parent_path = Some(walked.clone());
        }
        walked = if walked.is_empty() {
            part.to_owned()
        } else {
            format!("{walked}.{part}")
        };
        if items {
            node = resolve_ref(schema, &resolve_ref(schema, node)["items"]);
        }
    }
    (node, parent, parent_path)
}

/// What the README's `required` cell should say for `field`, by the schema.
fn schema_requirement(schema: &Value, field: &str) -> String {
    let (_, parent, parent_path) = schema_node(schema, field);
    let name = field.rsplit('.').next().unwrap();
    let listed = |object: &Value| {
        object["required"]
            .as_array()
            .is_some_and(|r| r.iter().any(|n| n == name))
    };
    if parent_path.is_none() && listed(&schema["then"]) {
        return "when".to_owned();
    }
    if !listed(parent) {
        return "no".to_owned();
    }
    match parent_path {
        None => "yes".to_owned(),
        Some(path) if path.ends_with("[]") => "yes".to_owned(),
        Some(path) => format!("in {path}"),
    }
}

#[test]
fn the_readme_field_table_matches_the_json_schema() {
    let schema: Value =
        serde_json::from_str(&read(Path::new("schema/experiment.schema.json"))).unwrap();
    let rows = field_rows();
    let documented: BTreeSet<&str> = rows.iter().map(|r| r.field.as_str()).collect();
    let mut problems = Vec::new();
    for field in schema_fields() {
        let covered = documented.iter().any(|d| {
            *d == field
                || d.starts_with(&format!("{field}."))
                || d.starts_with(&format!("{field}[]."))
                || field.starts_with(&format!("{d}."))
        });
        if !covered {
            problems.push(format!("schema field {field} has no README row"));
        }
    }
    for row in &rows {
        if !schema_fields().contains(&row.field) {
            problems.push(format!("README row {} is not a schema field", row.field));
            continue;
        }
        let expected = schema_requirement(&schema, &row.field);
        let matches = match expected.as_str() {
            "when" => row.required.starts_with("when "),
            other => row.required == other,
        };
        if !matches {
            problems.push(format!(
                "{}: README says required {:?}, the schema says {expected:?}",
                row.field, row.required
            ));
        }
        let (node, _, _) = schema_node(&schema, &row.field);
        let schema_default = node.get("default");
        match (schema_default, default_value(&row.default)) {
            (Some(s), Some(r)) if !same_value(s, &r) => problems.push(format!(
                "{}: README default {} but schema default {s}",
                row.field, row.default
            )),
            (Some(s), None) => problems.push(format!(
                "{}: README gives no default, the schema's is {s}",
                row.field
            )),
            (None, Some(r)) => problems.push(format!(
                "{}: README default {r} is not in the schema",
                row.field
            )),
            _ => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A bundled experiment as the parser's full document (every field written out).
fn bundled_document() -> Value {
    let text = read(Path::new("experiments/homepage-headline.yaml"));
    let mut doc = parse_experiment(Path::new("x.yaml"), &text)
        .expect("the bundled experiment parses")
        .to_document();
    // The bundled files list no guardrails (`serve` refuses them until the server enforces
    // them); one entry with the required fields lets every `guardrails[]` row be checked.
    doc["guardrails"] = json!([{
        "metric": "refunds",
        "direction": "lower_is_better",
        "max_relative_change": 0.1
    }]);
    doc
}

/// Parses `doc` (JSON is YAML) the way `banditd validate` parses a file.
fn parse(doc: &Value) -> Result<Value, String> {
    parse_experiment(Path::new("x.yaml"), &doc.to_string())
        .map(|e| e.to_document())
        .map_err(|errors| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })
}

/// The value at a dotted field path (`variants[].prior` reads the first variant).
fn at<'a>(doc: &'a mut Value, field: &str) -> (&'a mut Map<String, Value>, String) {
    let mut node = doc;
    let parts: Vec<&str> = field.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        node = match part.strip_suffix("[]") {
            Some(name) => &mut node[name][0],
            None => &mut node[*part],
        };
        // A block the bundled file leaves out (e.g. `stopping`) starts empty.
        if node.is_null() {
            *node = json!({});
        }
    }
    let object = node.as_object_mut().expect("a mapping");
    (object, parts[parts.len() - 1].to_owned())
}

/// Values for the optional fields the bundled experiment leaves out, so the parser can be
/// shown every documented field.
fn example(field: &str) -> Option<Value> {
    Some(match field {
        "policy.half_life" => json!("14d"),
        "stopping.min_duration" => json!("3d"),
        "variants[].prior" => json!({"alpha": 2, "beta": 40}),
        "guardrails[].against" => json!("control"),
        "$schema" => json!("../schema/experiment.schema.json"),
        _ => return None,
    })
}

#[test]
fn the_readme_field_table_matches_the_parser() {
    let rows = field_rows();
    let base = bundled_document();
    let mut full = base.clone();
    let mut problems = Vec::new();
    for row in &rows {
        let (object, name) = at(&mut full, &row.field);
        if !object.contains_key(&name)
            && let Some(value) = example(&row.field)
        {
            object.insert(name, value);
        }
    }
    if let Err(errors) = parse(&full) {
        problems.push(format!(
            "the parser refuses a document with every README field:\n{errors}"
        ));
    }
    for row in &rows {
        let mut without = base.clone();
        let (object, name) = at(&mut without, &row.field);
        object.remove(&name);
        if row.field == "winner" {
            without["status"] = json!("concluded");
        }
        let parsed = parse(&without);
        match (row.required.as_str(), parsed) {
            ("no", Ok(mut parsed)) => {
                let (object, name) = at(&mut parsed, &row.field);
                let value = object.get(&name).cloned();
                match (value, default_value(&row.default)) {
                    (Some(v), Some(d)) if !same_value(&v, &d) => problems.push(format!(
                        "{}: README default {} but the parser's is {v}",
                        row.field, row.default
                    )),
                    (Some(v), None) => problems.push(format!(
                        "{}: README says no default ({:?}), the parser fills in {v}",
                        row.field, row.default
                    )),
                    (None, Some(d)) => problems.push(format!(
                        "{}: README default {d}, the parser leaves it unset",
                        row.field
                    )),
                    _ => {}
                }
            }
            ("no", Err(errors)) => problems.push(format!(
                "{}: README says optional, the parser: {errors}",
                row.field
            )),
            (_, Ok(_)) => problems.push(format!(
                "{}: README says required ({}), the parser accepts a document without it",
                row.field, row.required
            )),
            (_, Err(errors)) if !errors.contains(&format!("`{name}`")) => problems.push(format!(
                "{}: refused without it, but the error does not name it: {errors}",
                row.field
            )),
            _ => {}
        }
    }
    let mut modelled = BTreeSet::new();
    flatten(&full_parsed(&full), "", &rows, &mut modelled);
    for field in modelled {
        if !rows.iter().any(|r| r.field == field) {
            problems.push(format!(
                "the parser models {field}, the README table does not"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn full_parsed(full: &Value) -> Value {
    parse(full).unwrap_or(Value::Null)
}

/// The field paths of a parsed document, stopping at paths the README documents whole.
fn flatten(doc: &Value, prefix: &str, rows: &[FieldRow], out: &mut BTreeSet<String>) {
    let Some(object) = doc.as_object() else {
        return;
    };
    for (name, value) in object {
        let path = format!("{prefix}{name}");
        if rows.iter().any(|r| r.field == path) {
            out.insert(path);
        } else if let Some(first) = value.as_array().and_then(|a| a.first()) {
            flatten(first, &format!("{path}[]."), rows, out);
        } else if value.is_object() {
            flatten(value, &format!("{path}."), rows, out);
        } else {
            out.insert(path);
        }
    }
}

#[test]
fn the_readme_configuration_table_matches_serve_help() {
    let options = help_options(&help(&["serve"]));
    assert!(options.len() > 10, "{options:?}");
    let rows = table_rows(Path::new(README), "Configuration", "flag");
    let mut problems = Vec::new();
    for option in &options {
        let Some(row) = rows.iter().find(|r| plain(&r[0]) == option.flag) else {
            problems.push(format!(
                "{} is not in the README's configuration table",
                option.flag
            ));
            continue;
        };
        let env = plain(&row[1]);
        if option.env.as_deref() != Some(env.as_str()) {
            problems.push(format!(
                "{}: README env {env}, --help {:?}",
                option.flag, option.env
            ));
        }
        let default = plain(&row[2]);
        match &option.default {
            Some(value) if *value != default => problems.push(format!(
                "{}: README default {default:?}, --help {value:?}",
                option.flag
            )),
            // Without a default in --help, the cell describes in words (`unset`, `cores`);
            // a value in backticks would claim a default the binary does not have.
            None if row[2].contains('`') => problems.push(format!(
                "{}: README default {}, but --help shows none",
                option.flag, row[2]
            )),
            _ => {}
        }
    }
    for row in &rows {
        let flag = plain(&row[0]);
        // A flag that only a build with a cargo feature has says so in its row.
        let feature_only = row.iter().any(|cell| cell.contains("cargo feature"));
        if !feature_only && !options.iter().any(|o| o.flag == flag) {
            problems.push(format!(
                "README documents {flag}, which `serve --help` does not have"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// One command of the quick start, with the answer the README shows for it, if any.
#[derive(Debug)]
struct Example {
    command: String,
    answer: Option<Value>,
}

/// The `curl` commands of the README's quick start (continuation lines joined), each with the
/// JSON answer written under it as comment lines.
fn quick_start() -> Vec<Example> {
    let text = read(Path::new(README));
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Quick start"))
        .expect("a Quick start section");
    let mut examples: Vec<Example> = Vec::new();
    let mut pending = String::new();
    let mut answer = String::new();
    let mut in_block = false;
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = line.trim() == "```sh" && !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim();
            if comment.starts_with('{') || !answer.is_empty() {
                answer.push_str(comment);
                if let (Ok(value), Some(last)) =
                    (serde_json::from_str::<Value>(&answer), examples.last_mut())
                {
                    last.answer = Some(value);
                    answer.clear();
                }
            }
            continue;
        }
        if !pending.is_empty() || line.trim_start().starts_with("curl ") {
            pending.push_str(line.trim_end().trim_end_matches('\\'));
            pending.push(' ');
            if !line.trim_end().ends_with('\\') {
                examples.push(Example {
                    command: std::mem::take(&mut pending),
                    answer: None,
                });
            }
        }
    }
    examples
}

/// Same keys (recursively) and the same JSON types; arrays compare their first items.
fn shape_problems(path: &str, documented: &Value, actual: &Value, out: &mut Vec<String>) {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    match (documented, actual) {
        (Value::Object(d), Value::Object(a)) => {
            let dk: BTreeSet<&String> = d.keys().collect();
            let ak: BTreeSet<&String> = a.keys().collect();
            if dk != ak {
                out.push(format!(
                    "{path}: README shows keys {dk:?}, the server answers {ak:?}"
                ));
            }
            for key in dk.intersection(&ak) {
                shape_problems(&format!("{path}.{key}"), &d[*key], &a[*key], out);
            }
        }
        (Value::Array(d), Value::Array(a)) => {
            if let (Some(d), Some(a)) = (d.first(), a.first()) {
                shape_problems(&format!("{path}[0]"), d, a, out);
            }
        }
        (d, a) if kind(d) != kind(a) => out.push(format!(
            "{path}: README shows a {}, the server answers {a}",
            kind(d)
        )),
        _ => {}
    }
}

#[test]
fn the_readme_quick_start_runs_against_a_live_server() {
    let examples = quick_start();
    assert!(examples.len() >= 4, "{examples:#?}");
    assert!(
        examples.iter().filter(|e| e.answer.is_some()).count() >= 2,
        "{examples:#?}"
    );
    let bundled = bundled_experiments();
    let files: Vec<(&str, &str)> = bundled
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let app = TestApp::spawn(&files);
    let host = app.address.trim_start_matches("http://");
    let mut problems = Vec::new();
    for example in &examples {
        let command = example
            .command
            .replace("http://127.0.0.1:8080", &app.address)
            .replace("127.0.0.1:8080", host)
            .replace("localhost:8080", host);
        assert!(
            command.contains(host),
            "no host:port to replace in {command}"
        );
        let output = Command::new("bash")
            .arg("-c")
            .arg(format!("{command} --max-time 10 -w '\\n%{{http_code}}'"))
            .output()
            .expect("bash and curl (scripts/test.sh installs curl when missing)");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
        if status != "200" {
            problems.push(format!("{}\n  → HTTP {status}: {body}", example.command));
            continue;
        }
        let Ok(actual) = serde_json::from_str::<Value>(body) else {
            problems.push(format!("{}\n  → not JSON: {body}", example.command));
            continue;
        };
        if let Some(documented) = &example.answer {
            let mut shape = Vec::new();
            shape_problems("answer", documented, &actual, &mut shape);
            problems.extend(
                shape
                    .into_iter()
                    .map(|p| format!("{}\n  → {p}", example.command)),
            );
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_readme_layout_line_names_every_top_level_module() {
    let modules: Vec<String> = read(Path::new("src/lib.rs"))
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let name = line
                .strip_prefix("pub mod ")
                .or(line.strip_prefix("mod "))?;
            Some(name.trim_end_matches(';').trim().to_owned())
        })
        .collect();
    assert!(modules.len() > 10, "{modules:?}");
    let readme = read(Path::new(README));
    let start = readme
        .find("\nLayout")
        .expect("a Layout paragraph in the README");
    let layout = &readme[start..];
    let layout = &layout[..layout[1..].find("\n\n").map_or(layout.len(), |end| end + 1)];
    let missing: Vec<&String> = modules
        .iter()
        .filter(|m| {
            !layout.contains(&format!("`src/{m}`")) && !layout.contains(&format!("`src/{m}.rs`"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the README's layout line leaves out {missing:?}:\n{layout}"
    );
}
