//! Warnings: things a valid file says that are probably not what its author meant. They do
//! not make a file invalid (the server loads it as written); `banditd validate` prints them.
//!
//! The one trap today: YAML 1.1 read `yes`, `no`, `on`, `off`, `y` and `n` as booleans,
//! YAML 1.2 (which banditd follows, so that `country: NO` stays Norway) reads them as text.
//! An analyst who writes `show_banner: no` in a payload means false, but the frontend receives
//! the string "no", which JavaScript treats as true. Only unquoted values are flagged: quotes
//! say the text is meant.

use std::path::Path;

use super::error::{Position, SpecError};
use super::node::{Node, NodeKind, read_document};

/// Plain scalars that YAML 1.1 read as booleans, lower-cased, with the boolean they meant.
const YAML11_BOOLEANS: &[(&str, bool)] = &[
    ("yes", true),
    ("y", true),
    ("on", true),
    ("no", false),
    ("n", false),
    ("off", false),
];

/// Every warning of one experiment file's text (none if the text does not read as YAML: the
/// parser reports that as an error).
pub fn lint_experiment(file: &Path, text: &str) -> Vec<SpecError> {
    let Ok(root) = read_document(file, text) else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    for payload in payloads(&root) {
        boolean_like_text(file, text, payload, &mut warnings);
    }
    warnings
}

/// The `payload` value of every entry of `variants`.
fn payloads(root: &Node) -> Vec<&Node> {
    let NodeKind::Map(fields) = &root.kind else {
        return Vec::new();
    };
    let variants = fields
        .iter()
        .find(|(key, _)| key.kind == NodeKind::Str("variants".to_owned()))
        .map(|(_, value)| value);
    let Some(Node {
        kind: NodeKind::Seq(items),
        ..
    }) = variants
    else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match &item.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(key, _)| key.kind == NodeKind::Str("payload".to_owned()))
                .map(|(_, value)| value),
            _ => None,
        })
        .collect()
}

fn boolean_like_text(file: &Path, text: &str, node: &Node, warnings: &mut Vec<SpecError>) {
    match &node.kind {
        NodeKind::Str(value) => {
            let lower = value.to_ascii_lowercase();
            let Some((_, meant)) = YAML11_BOOLEANS.iter().find(|(word, _)| *word == lower) else {
                return;
            };
            if is_quoted(text, node.pos) {
                return;
            }
            warnings.push(SpecError::at(
                file,
                node.pos,
                format!(
                    "warning: `{value}` is the text \"{value}\" here (YAML 1.2), not a boolean; \
                     a JavaScript frontend treats any non-empty text as true. Write `{meant}` \
                     for the boolean, or \"{value}\" in quotes if you mean the text"
                ),
            ));
        }
        NodeKind::Seq(items) => {
            for item in items {
                boolean_like_text(file, text, item, warnings);
            }
        }
        NodeKind::Map(entries) => {
            for (_, value) in entries {
                boolean_like_text(file, text, value, warnings);
            }
        }
        NodeKind::Null | NodeKind::Bool(_) | NodeKind::Int(_) | NodeKind::Float(_) => {}
    }
}

/// Whether the scalar written at `pos` starts with a quote (the parser keeps no style, so the
/// source is read at the node's position: 1-based line, column in characters).
fn is_quoted(text: &str, pos: Position) -> bool {
    let Some(line) = text.lines().nth(pos.line.saturating_sub(1)) else {
        return false;
    };
    matches!(
        line.chars().nth(pos.column.saturating_sub(1)),
        Some('"' | '\'')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
id: banner
description: d
owner: o
status: running
default_variant: plain
variants:
  - id: plain
    payload: { show_banner: no, label: \"no\", colour: 'Y', count: 3 }
  - id: loud
    payload:
      show_banner: On
      flags: [off, true, n]
      note: No way
";

    #[test]
    fn unquoted_yaml_1_1_booleans_in_payloads_are_flagged_with_the_boolean_to_write() {
        let warnings = lint_experiment(Path::new("x.yaml"), FILE);
        let found: Vec<(usize, usize, String)> = warnings
            .iter()
            .map(|w| (w.line, w.column, w.message.clone()))
            .collect();
        let at: Vec<(usize, usize)> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
        // `show_banner: no` (8:29), `On` (11:20), `off` and `n` (12:15, 12:26); the quoted
        // "no" and 'Y', the real `true` and the sentence "No way" are left alone.
        assert_eq!(
            at,
            vec![(8, 29), (11, 20), (12, 15), (12, 26)],
            "{found:#?}"
        );
        assert_eq!(
            warnings[0].to_string(),
            "x.yaml:8:29: warning: `no` is the text \"no\" here (YAML 1.2), not a boolean; a \
             JavaScript frontend treats any non-empty text as true. Write `false` for the \
             boolean, or \"no\" in quotes if you mean the text"
        );
        assert!(found[1].2.contains("Write `true`"), "{found:?}");
    }

    #[test]
    fn a_file_that_is_not_yaml_has_no_warnings() {
        assert!(lint_experiment(Path::new("x.yaml"), "a: [1").is_empty());
        assert!(lint_experiment(Path::new("x.yaml"), "- 1\n").is_empty());
    }
}
