//! A YAML document as a tree of nodes that remember where they were written.
//!
//! Why a tree instead of `#[derive(Deserialize)]` straight into typed structs: serde stops at
//! the first type error or unknown field, and validation errors (a `min_share` that is too
//! large, a `default_variant` naming nothing) have no location at all once the value is a
//! plain `f64`. Reading the file into positioned nodes first (serde-saphyr's `Spanned`
//! gives every node its line and column) lets the schema walker in `parse.rs` report every
//! problem of a file at once, each at the exact line:column of the offending key or value.
//! Only YAML syntax errors (and duplicate keys, which serde-saphyr rejects while parsing)
//! stop the read early.

use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{MessageFormatter, NonFiniteFloatPolicy, Spanned, UserMessageFormatter};

use super::error::{Position, SpecError, excerpt, quoted};

/// Deepest nesting of mappings and lists in a file. The tree is built recursively, and each
/// level costs tens of kilobytes of stack in debug builds; 16 levels stay far inside a 2 MiB
/// thread stack while leaving a payload (itself at depth 4: file → variants → variant →
/// payload) twelve levels of its own, more than any frontend configuration needs.
pub(crate) const MAX_NESTING: usize = 16;

/// Longest payload key, in characters. The experiment's document form (`banditd plan
/// --server` reads the running set back through the YAML reader) writes a payload key as an
/// implicit flow key, and the reader looks ahead at most 1,024 characters for such a key's
/// end; escaped, a character takes at most 6 (`\u009F`), so 128 always reads back. Frontend
/// payload keys are names, far shorter.
pub const MAX_PAYLOAD_KEY_CHARS: usize = 128;

/// Reads one YAML document into a positioned tree. A syntax error (or a duplicate key) is
/// reported at its line:column; nothing else is judged here.
pub(crate) fn read_document(file: &Path, text: &str) -> Result<Node, SpecError> {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_NESTING;
    let options = serde_saphyr::options! {
        budget: Some(budget),
        // YAML 1.2 booleans only: `no` (Norway) or `y` in a payload stay text.
        strict_booleans: true,
        // `zip: 01234` keeps its leading zero instead of becoming the number 1234.
        leading_zero_numbers_as_strings: true,
        // `.nan` / `.inf` reach the schema walker, which says which field may not hold them.
        non_finite_float_policy: NonFiniteFloatPolicy::PassThrough,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options::<Node>(text, options).map_err(|err| yaml_error(file, &err))
}

/// Turns a serde-saphyr error into an analyst-facing one. The `Node` visitor accepts every
/// YAML value, so only document-level problems arrive here: syntax, duplicate keys,
/// unknown aliases, several documents, nesting deeper than the parser budget.
fn yaml_error(file: &Path, err: &serde_saphyr::Error) -> SpecError {
    let pos = err
        .location()
        .filter(|loc| loc.line() > 0)
        .map_or(Position::FILE, |loc| Position {
            line: usize::try_from(loc.line()).unwrap_or(usize::MAX),
            column: usize::try_from(loc.column()).unwrap_or(usize::MAX),
        });
    let mut inner = err.without_snippet();
    while let serde_saphyr::Error::AliasError { error, .. } = inner {
        inner = error.without_snippet();
    }
    if let serde_saphyr::Error::Budget {
        breach: serde_saphyr::budget::BudgetBreach::Depth { .. },
        ..
    } = inner
    {
        return SpecError::at(
            file,
            pos,
            format!(
                "nested deeper than {MAX_NESTING} levels of mappings and lists; \
                 flatten this part of the payload"
            ),
        );
    }
    // The formatter's text may quote the input (a duplicate key, for one): escaped and cut
    // like any other excerpt of the file, so neither a terminal nor a log line can be fooled
    // and a file that is not YAML at all cannot come out whole.
    let detail = match inner {
        serde_saphyr::Error::DuplicateMappingKey { key: Some(key), .. } => {
            format!("duplicate mapping key `{}`", excerpt(key))
        }
        other => excerpt(&UserMessageFormatter.format_message(other)),
    };
    let hint = match inner {
        serde_saphyr::Error::DuplicateMappingKey { .. } => {
            "each field may appear only once in the same block; remove or rename one"
        }
        serde_saphyr::Error::MultipleDocuments { .. } => {
            "put one experiment per file and remove the extra `---` document"
        }
        _ if mentions_tabs(&detail) => {
            "YAML indents with spaces only: replace the tab with spaces (2 per level, as in the \
             bundled files)"
        }
        _ => "check the indentation and quoting around this place",
    };
    SpecError::at(file, pos, format!("invalid YAML: {detail}; {hint}"))
}

/// Whether a parser message is about a tab character ("found a tab", "tabs disallowed").
fn mentions_tabs(detail: &str) -> bool {
    let lower = detail.to_ascii_lowercase();
    lower.contains("found a tab") || lower.contains("tabs ") || lower.contains("tab character")
}

/// One YAML node with the position of its first character (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub pos: Position,
}

/// The YAML value of a node, after the YAML 1.2 core schema resolved plain scalars.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeKind {
    Null,
    Bool(bool),
    /// Every YAML integer fits: serde-saphyr hands out at most 128 bits.
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order; keys are nodes too, so an unknown key can be pointed at.
    Map(Vec<(Node, Node)>),
}

impl NodeKind {
    /// How an analyst would call what they wrote, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match self {
            NodeKind::Null => "an empty value".to_owned(),
            NodeKind::Bool(b) => format!("the true/false value {b}"),
            NodeKind::Int(i) => format!("the number {i}"),
            NodeKind::Float(x) => format!("the number {x}"),
            NodeKind::Str(s) => format!("the text {}", quoted(s)),
            NodeKind::Seq(_) => "a list".to_owned(),
            NodeKind::Map(_) => "a mapping (key: value pairs)".to_owned(),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<NodeKind>::deserialize(deserializer)?;
        // `referenced` is where the value is used: for an alias `*a` that is the alias
        // itself, which is the line an analyst has to look at.
        let loc = spanned.referenced;
        Ok(Node {
            kind: spanned.value,
            pos: Position {
                line: usize::try_from(loc.line()).unwrap_or(usize::MAX),
                column: usize::try_from(loc.column()).unwrap_or(usize::MAX),
            },
        })
    }
}

impl<'de> Deserialize<'de> for NodeKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = NodeKind;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<NodeKind, E> {
        Ok(NodeKind::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeKind, E> {
        Ok(NodeKind::Int(i128::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeKind, E> {
        Ok(NodeKind::Int(i128::from(v)))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<NodeKind, E> {
        Ok(NodeKind::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<NodeKind, E> {
        i128::try_from(v)
            .map(NodeKind::Int)
            .map_err(|_| E::custom("integer is too large"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NodeKind, E> {
        Ok(NodeKind::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
        NodeKind::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeKind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(NodeKind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeKind, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<Node, Node>()? {
            entries.push(entry);
        }
        Ok(NodeKind::Map(entries))
    }
}

impl Node {
    /// The node as JSON, for variant payloads handed to the frontend. JSON has text keys
    /// only, so scalar keys become text (`1: a` → `"1": "a"`); a null or nested key, a
    /// key that clashes after that conversion, and NaN/infinity (no JSON spelling) are
    /// refused with the position of the offending piece.
    pub fn to_json(&self) -> Result<serde_json::Value, (Position, String)> {
        use serde_json::Value;
        Ok(match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    Value::from(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    Value::from(v)
                } else {
                    return Err((self.pos, format!("the number {i} is too large for JSON")));
                }
            }
            NodeKind::Float(x) => match serde_json::Number::from_f64(*x) {
                Some(n) => Value::Number(n),
                None => {
                    return Err((
                        self.pos,
                        format!("{x} has no JSON form; payload numbers must be finite"),
                    ));
                }
            },
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Array(
                items
                    .iter()
                    .map(Node::to_json)
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            NodeKind::Map(entries) => {
                let mut object = serde_json::Map::with_capacity(entries.len());
                for (key, value) in entries {
                    let name = match &key.kind {
                        NodeKind::Str(s) => s.clone(),
                        NodeKind::Bool(b) => b.to_string(),
                        NodeKind::Int(i) => i.to_string(),
                        NodeKind::Float(x) => x.to_string(),
                        other => {
                            return Err((
                                key.pos,
                                format!(
                                    "a payload key must be text, found {}; quote it",
                                    other.describe()
                                ),
                            ));
                        }
                    };
                    let length = name.chars().count();
                    if length > MAX_PAYLOAD_KEY_CHARS {
                        return Err((
                            key.pos,
                            format!(
                                "the payload key {} is {length} characters long; a payload key \
                                 may have at most {MAX_PAYLOAD_KEY_CHARS}",
                                quoted(&name)
                            ),
                        ));
                    }
                    if object.contains_key(&name) {
                        return Err((
                            key.pos,
                            format!(
                                "the payload key {} appears twice; remove one",
                                quoted(&name)
                            ),
                        ));
                    }
                    object.insert(name, value.to_json()?);
                }
                Value::Object(object)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str) -> Result<Node, SpecError> {
        read_document(Path::new("t.yaml"), text)
    }

    fn at(line: usize, column: usize) -> Position {
        Position { line, column }
    }

    #[test]
    fn every_node_remembers_its_line_and_column() {
        let node = read("# comment\nid: x\nlist:\n  - a\n  - {k: 7}\n").unwrap();
        let NodeKind::Map(entries) = &node.kind else {
            panic!("root is not a map: {node:?}")
        };
        assert_eq!(entries[0].0.pos, at(2, 1));
        assert_eq!(entries[0].1.pos, at(2, 5));
        let NodeKind::Seq(items) = &entries[1].1.kind else {
            panic!("list is not a list")
        };
        assert_eq!(items[0].pos, at(4, 5));
        let NodeKind::Map(inner) = &items[1].kind else {
            panic!("item is not a map")
        };
        assert_eq!(inner[0].1.kind, NodeKind::Int(7));
        assert_eq!(inner[0].1.pos, at(5, 9));
    }

    #[test]
    fn scalars_follow_the_yaml_1_2_core_schema() {
        let node = read("[12, 1.5, \"12\", true, no, ~, 007, .nan]").unwrap();
        let NodeKind::Seq(items) = node.kind else {
            panic!("not a list")
        };
        let kinds: Vec<_> = items.into_iter().map(|n| n.kind).collect();
        assert_eq!(
            kinds[..7].to_vec(),
            vec![
                NodeKind::Int(12),
                NodeKind::Float(1.5),
                NodeKind::Str("12".into()),
                NodeKind::Bool(true),
                NodeKind::Str("no".into()),
                NodeKind::Null,
                NodeKind::Str("007".into()),
            ]
        );
        assert!(matches!(kinds[7], NodeKind::Float(x) if x.is_nan()));
    }

    #[test]
    fn a_syntax_error_points_at_its_line_and_column() {
        let err = read("id: x\nvariants: [a, b\n").unwrap_err();
        assert_eq!(err.position(), at(2, 11));
        assert!(err.message.starts_with("invalid YAML:"), "{err}");
        assert!(err.message.contains("bracket"), "{err}");
    }

    #[test]
    fn a_duplicate_key_points_at_the_second_occurrence() {
        let err = read("id: a\nowner: me\nid: b\n").unwrap_err();
        assert_eq!(err.position(), at(3, 1));
        assert!(err.message.contains("duplicate mapping key `id`"), "{err}");
        assert!(err.message.contains("only once"), "{err}");
    }

    #[test]
    fn a_second_document_is_refused() {
        let err = read("id: a\n---\nid: b\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("one experiment per file"), "{err}");
    }

    #[test]
    fn an_unknown_alias_is_refused_at_the_alias() {
        let err = read("a: 1\nb: *nowhere\n").unwrap_err();
        assert_eq!(err.position(), at(2, 4));
    }

    #[test]
    fn absurdly_deep_nesting_is_refused_not_a_crash() {
        let deep = format!("payload: {}1{}\n", "[".repeat(500), "]".repeat(500));
        let err = read(&deep).unwrap_err();
        assert_eq!(err.line, 1, "{err}");
        assert!(err.message.starts_with("invalid YAML:"), "{err}");
        let block: String = (0..200)
            .map(|depth| format!("{}k:\n", " ".repeat(depth)))
            .collect();
        let err = read(&block).unwrap_err();
        assert_eq!(err.position(), at(17, 17));
        assert!(
            err.message.contains("nested deeper than 16 levels"),
            "{err}"
        );
        // Sixteen levels are fine.
        let allowed: String = (0..16)
            .map(|depth| format!("{}k:\n", " ".repeat(depth)))
            .collect();
        assert!(read(&allowed).is_ok());
    }

    #[test]
    fn nested_maps_lists_and_scalars_convert_to_the_same_json() {
        let node = read(concat!(
            "weights: {title: 2.5, recency: [1, 0.5]}\n",
            "flags: [true, null, \"x\"]\n",
            "1: one\n",
            "nested:\n  deeper:\n    deepest: -3\n",
        ))
        .unwrap();
        assert_eq!(
            node.to_json(),
            Ok(json!({
                "weights": {"title": 2.5, "recency": [1, 0.5]},
                "flags": [true, null, "x"],
                "1": "one",
                "nested": {"deeper": {"deepest": -3}},
            }))
        );
        assert_eq!(
            read("plain text").unwrap().to_json(),
            Ok(json!("plain text"))
        );
        assert_eq!(read("42").unwrap().to_json(), Ok(json!(42)));
    }

    #[test]
    fn payload_json_keeps_anchored_values() {
        let node = read("base: &b {color: red}\ncopy: *b\n").unwrap();
        assert_eq!(
            node.to_json(),
            Ok(json!({"base": {"color": "red"}, "copy": {"color": "red"}}))
        );
    }

    #[test]
    fn non_finite_numbers_and_clashing_keys_have_no_json_form() {
        let nan = read("a:\n  b: .inf\n").unwrap().to_json().unwrap_err();
        assert_eq!(nan.0, at(2, 6));
        assert!(nan.1.contains("finite"), "{}", nan.1);
        let clash = read("1: a\n\"1\": b\n").unwrap().to_json().unwrap_err();
        assert_eq!(clash.0, at(2, 1));
        assert!(clash.1.contains("appears twice"), "{}", clash.1);
        let null_key = read("~: a\n").unwrap().to_json().unwrap_err();
        assert!(null_key.1.contains("must be text"), "{}", null_key.1);
    }

    /// Found by the spec_parser fuzz target: a 1,100-character key (YAML's explicit `? key`)
    /// was accepted, but the document form `plan --server` reads back could not be read.
    #[test]
    fn a_payload_key_longer_than_the_limit_is_refused_at_the_key() {
        let longest = "k".repeat(MAX_PAYLOAD_KEY_CHARS);
        let accepted = read(&format!("a: 1\n{longest}: 2\n")).unwrap().to_json();
        assert_eq!(accepted, Ok(json!({"a": 1, longest.as_str(): 2})));
        let too_long = "k".repeat(MAX_PAYLOAD_KEY_CHARS + 1);
        let refused = read(&format!("a: 1\n? {too_long}\n: 2\n"))
            .unwrap()
            .to_json()
            .unwrap_err();
        assert_eq!(refused.0, at(2, 3));
        assert!(refused.1.contains("at most 128"), "{}", refused.1);
        assert!(
            refused.1.chars().count() < 200,
            "the key is quoted short: {}",
            refused.1
        );
    }
}
