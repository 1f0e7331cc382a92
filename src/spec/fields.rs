//! Typed reads from positioned YAML nodes, collecting every problem instead of stopping.
//!
//! Each reader returns `Option<T>`: `None` means "wrong, and already reported", so the
//! caller carries on and the analyst sees all problems of a file in one run. Messages
//! name the field, show what was found, and say what to write instead.

use std::path::Path;

use super::duration::HumanDuration;
use super::error::{Position, SpecError, excerpt, quoted};
use super::node::{Node, NodeKind};

/// The errors of one file, in the order found.
pub(crate) struct Report<'f> {
    pub file: &'f Path,
    pub errors: Vec<SpecError>,
}

impl<'f> Report<'f> {
    pub fn new(file: &'f Path) -> Self {
        Self {
            file,
            errors: Vec::new(),
        }
    }

    pub fn error(&mut self, pos: Position, message: impl Into<String>) {
        self.errors.push(SpecError::at(self.file, pos, message));
    }
}

/// A mapping whose keys have been checked against the fields allowed at that place.
pub(crate) struct Fields<'n> {
    /// Position of the mapping itself, where "missing field" errors point.
    pub pos: Position,
    /// How messages name this mapping, e.g. "the experiment" or "`policy`".
    pub what: String,
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    /// Reads `node` as a mapping. Unknown keys are reported (with the allowed names and a
    /// close match, since most are typos) and then ignored; `None` if it is no mapping.
    pub fn read(
        report: &mut Report<'_>,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        // `$schema` and similar editor hints are tolerated but not advertised.
        let listed = allowed
            .iter()
            .filter(|name| !name.starts_with('$'))
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        let NodeKind::Map(map) = &node.kind else {
            report.error(
                node.pos,
                format!(
                    "{what} must be a mapping of `field: value` lines ({listed}), found {}",
                    node.kind.describe()
                ),
            );
            return None;
        };
        let mut entries = Vec::with_capacity(map.len());
        for (key, value) in map {
            let NodeKind::Str(name) = &key.kind else {
                report.error(
                    key.pos,
                    format!(
                        "field names in {what} are words such as `{}`, found {}",
                        allowed.first().copied().unwrap_or("id"),
                        key.kind.describe()
                    ),
                );
                continue;
            };
            if allowed.contains(&name.as_str()) {
                entries.push((name.as_str(), key, value));
            } else if let Some(home) = home_of(name, allowed) {
                // A real field in the wrong block (a stopping threshold under `policy`):
                // the fix is to move it, not to pick another name.
                report.error(
                    key.pos,
                    format!("`{name}` is not a field of {what}; it belongs {home}: move it there"),
                );
            } else {
                let suggestion = closest(name, allowed)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                report.error(
                    key.pos,
                    format!(
                        "unknown field `{}` in {what}; {suggestion}allowed fields: {listed}",
                        excerpt(name)
                    ),
                );
            }
        }
        Some(Fields {
            pos: node.pos,
            what: what.to_owned(),
            entries,
        })
    }

    /// The value of `name` as written, explicit `null` included.
    pub fn raw(&self, name: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(key, _, _)| *key == name)
            .map(|(_, _, value)| *value)
    }

    /// The value of an optional field: absent and empty (`name:` with nothing after it,
    /// or `~`) both mean "use the default".
    pub fn get(&self, name: &str) -> Option<&'n Node> {
        self.raw(name).filter(|n| n.kind != NodeKind::Null)
    }

    /// The value of a required field, or an error telling what to add.
    pub fn require(&self, report: &mut Report<'_>, name: &str, example: &str) -> Option<&'n Node> {
        let found = self.get(name);
        if found.is_none() {
            // An empty value has no text of its own to point at; its key does.
            let (pos, state) = match self.entries.iter().find(|(key, _, _)| *key == name) {
                Some((_, key, _)) => (key.pos, "is empty"),
                None => (self.pos, "is missing"),
            };
            report.error(
                pos,
                format!(
                    "`{name}` {state} in {}; add e.g. `{name}: {example}`",
                    self.what
                ),
            );
        }
        found
    }
}

/// Where a field that is not allowed here does belong, when it is a field of exactly one
/// other block of the file: `prob_best` under `policy` → "under `stopping:`".
fn home_of(name: &str, allowed: &[&str]) -> Option<&'static str> {
    use super::parse::{EXPERIMENT_FIELDS, POLICY_FIELDS, REWARD_FIELDS, VARIANT_FIELDS};
    use super::stopping::STOPPING_FIELDS;
    let blocks: [(&[&str], &'static str); 5] = [
        (STOPPING_FIELDS, "under `stopping:`"),
        (POLICY_FIELDS, "under `policy:`"),
        (REWARD_FIELDS, "under `reward:`"),
        (
            EXPERIMENT_FIELDS,
            "at the top level of the file, not indented",
        ),
        (VARIANT_FIELDS, "in each entry of `variants:`"),
    ];
    let mut homes = blocks
        .iter()
        .filter(|(fields, _)| fields.contains(&name) && *fields != allowed)
        .map(|(_, home)| *home);
    match (homes.next(), homes.next()) {
        (Some(home), None) if !name.starts_with('$') => Some(home),
        _ => None,
    }
}

/// Whether `node` is a mapping none of whose keys is one of `allowed` or a near miss of one:
/// some other file (a config, a credentials file, `/etc/shadow`-like `user:hash:…` lines),
/// not a misspelt experiment. It gets one error naming only its first key, instead of one "unknown field"
/// error per key: those would each quote a key, and together the file's whole text.
pub(crate) fn is_foreign_mapping(
    report: &mut Report<'_>,
    node: &Node,
    what: &str,
    allowed: &[&str],
) -> bool {
    let NodeKind::Map(entries) = &node.kind else {
        return false;
    };
    let Some((first, _)) = entries.first() else {
        return false;
    };
    // A key that is a field, or a typo of one, makes it a (misspelt) experiment.
    let near_a_field = |key: &Node| {
        matches!(&key.kind, NodeKind::Str(name)
            if allowed.contains(&name.as_str()) || closest(name, allowed).is_some())
    };
    if entries.iter().any(|(key, _)| near_a_field(key)) {
        return false;
    }
    let first = match &first.kind {
        NodeKind::Str(name) => format!("`{}`", excerpt(name)),
        other => other.describe(),
    };
    report.error(
        node.pos,
        format!(
            "is not {what}: none of its {} keys is a field of one (the first is {first}); \
             an experiment file has `id`, `description`, `owner`, `status`, \
             `default_variant` and `variants`",
            entries.len()
        ),
    );
    true
}

/// The closest allowed name to a misspelt one (edit distance at most 2, or a prefix).
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2 || (word.len() >= 3 && c.starts_with(word)))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance (Levenshtein 1966), the classic two-row dynamic programme.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            let delete = previous[j + 1] + 1;
            let insert = current[j] + 1;
            current.push(substitute.min(delete).min(insert));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Text, e.g. a description. Numbers and booleans are refused rather than silently turned
/// into text, so `owner: 2024` does not pass review by accident.
pub(crate) fn text(report: &mut Report<'_>, node: &Node, field: &str) -> Option<String> {
    match &node.kind {
        NodeKind::Str(s) => Some(s.clone()),
        other => {
            report.error(
                node.pos,
                format!(
                    "`{field}` must be text, found {}; put it in quotes if it is meant as text",
                    other.describe()
                ),
            );
            None
        }
    }
}

/// Text that must contain something other than spaces.
pub(crate) fn non_empty_text(
    report: &mut Report<'_>,
    node: &Node,
    field: &str,
    hint: &str,
) -> Option<String> {
    let value = text(report, node, field)?;
    if value.trim().is_empty() {
        report.error(node.pos, format!("`{field}` must not be empty; {hint}"));
        return None;
    }
    Some(value)
}

/// A whole number from `min` up to `max`, e.g. `burn_in` or `revision`.
pub(crate) fn whole_number(
    report: &mut Report<'_>,
    node: &Node,
    field: &str,
    min: u64,
    max: u64,
) -> Option<u64> {
    let refuse = |report: &mut Report<'_>, why: String| {
        report.error(node.pos, format!("`{field}` {why}"));
        None
    };
    let whole: i128 = match &node.kind {
        NodeKind::Int(i) => *i,
        // `100.0` and `1e3` are whole numbers too, as long as an f64 holds them exactly.
        #[allow(clippy::cast_possible_truncation)]
        NodeKind::Float(x) if x.fract() == 0.0 && x.abs() <= F64_EXACT_INTEGERS => *x as i128,
        // u64 → f64 rounds, but only the order of magnitude matters for the message.
        #[allow(clippy::cast_precision_loss)]
        NodeKind::Float(x) if x.fract() == 0.0 && *x > 0.0 && *x <= max as f64 => {
            return refuse(
                report,
                format!(
                    "is {x}, written with a decimal point or an exponent, which is only exact \
                     up to 2^53; write the number with digits only"
                ),
            );
        }
        NodeKind::Float(x) if x.fract() == 0.0 && *x > 0.0 => {
            return refuse(report, format!("is {x}, above the largest allowed {max}"));
        }
        NodeKind::Float(x) if x.fract() == 0.0 => {
            return refuse(report, format!("must be {min} or more, found {x}"));
        }
        NodeKind::Float(x) => {
            return refuse(
                report,
                format!("must be a whole number, found {x}; drop the decimals"),
            );
        }
        NodeKind::Str(s) if s.trim().parse::<f64>().is_ok() => {
            return refuse(
                report,
                format!(
                    "must be a number, found the text {}; remove the quotes",
                    quoted(s)
                ),
            );
        }
        other => {
            return refuse(
                report,
                format!("must be a whole number, found {}", other.describe()),
            );
        }
    };
    if whole < i128::from(min) {
        return refuse(report, format!("must be {min} or more, found {whole}"));
    }
    match u64::try_from(whole) {
        Ok(v) if v <= max => Some(v),
        _ => refuse(
            report,
            format!("is {whole}, above the largest allowed {max}"),
        ),
    }
}

/// 2^53: every integer up to this magnitude is exactly representable as an f64.
const F64_EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

/// A finite decimal number (integers accepted), e.g. a prior parameter or a share.
pub(crate) fn number(report: &mut Report<'_>, node: &Node, field: &str) -> Option<f64> {
    match &node.kind {
        // i128 → f64 rounds only beyond 2^53, far outside any meaningful setting.
        #[allow(clippy::cast_precision_loss)]
        NodeKind::Int(i) => Some(*i as f64),
        NodeKind::Float(x) if x.is_finite() => Some(*x),
        NodeKind::Float(x) => {
            report.error(
                node.pos,
                format!("`{field}` must be a finite number, found {x}"),
            );
            None
        }
        NodeKind::Str(s) if s.trim().parse::<f64>().is_ok() => {
            report.error(
                node.pos,
                format!(
                    "`{field}` must be a number, found the text {}; remove the quotes",
                    quoted(s)
                ),
            );
            None
        }
        other => {
            report.error(
                node.pos,
                format!("`{field}` must be a number, found {}", other.describe()),
            );
            None
        }
    }
}

/// One of a fixed set of words, e.g. `status: running`.
pub(crate) fn choice<T: Copy>(
    report: &mut Report<'_>,
    node: &Node,
    field: &str,
    choices: &[(&str, T)],
) -> Option<T> {
    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
    if let NodeKind::Str(s) = &node.kind
        && let Some((_, value)) = choices.iter().find(|(name, _)| name == s)
    {
        return Some(*value);
    }
    let mut message = format!(
        "`{field}` must be one of {}, found {}",
        names.join(", "),
        node.kind.describe()
    );
    if let NodeKind::Str(s) = &node.kind
        && let Some(near) = closest(s, &names)
    {
        message.push_str(&format!("; did you mean `{near}`?"));
    }
    report.error(node.pos, message);
    None
}

/// A list; anything else is reported.
pub(crate) fn list<'n>(
    report: &mut Report<'_>,
    node: &'n Node,
    field: &str,
    example: &str,
) -> Option<&'n [Node]> {
    match &node.kind {
        NodeKind::Seq(items) => Some(items),
        other => {
            report.error(
                node.pos,
                format!(
                    "`{field}` must be a list such as {example}, found {}",
                    other.describe()
                ),
            );
            None
        }
    }
}

/// A duration such as `7d`; see [`HumanDuration::parse`] for the accepted spelling.
pub(crate) fn duration(report: &mut Report<'_>, node: &Node, field: &str) -> Option<HumanDuration> {
    let text = match &node.kind {
        NodeKind::Str(s) => s.clone(),
        // `window: 7` reads as a number; the parser's "has no unit" message fits it.
        NodeKind::Int(i) => i.to_string(),
        other => {
            report.error(
                node.pos,
                format!(
                    "`{field}` must be a duration such as 7d or 12h, found {}",
                    other.describe()
                ),
            );
            return None;
        }
    };
    HumanDuration::parse(&text)
        .map_err(|msg| report.error(node.pos, format!("`{field}` {msg}")))
        .ok()
}

/// A number as an analyst would write it: `1.2`, not `1.2000000000000002`.
pub(crate) fn fmt_number(x: f64) -> String {
    let text = format!("{x:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_matches_hand_computed_values() {
        // kitten → sitting is the textbook example with distance 3.
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("min_shar", "min_share"), 1);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    fn node(kind: NodeKind) -> Node {
        Node {
            kind,
            pos: Position { line: 2, column: 7 },
        }
    }

    #[test]
    fn whole_numbers_accept_whole_floats_and_refuse_the_rest() {
        let mut report = Report::new(Path::new("x.yaml"));
        let read =
            |report: &mut Report<'_>, kind| whole_number(report, &node(kind), "burn_in", 0, 1000);
        assert_eq!(read(&mut report, NodeKind::Int(7)), Some(7));
        assert_eq!(read(&mut report, NodeKind::Float(100.0)), Some(100));
        assert_eq!(read(&mut report, NodeKind::Float(1e3)), Some(1000));
        assert!(report.errors.is_empty());
        for (kind, phrase) in [
            (
                NodeKind::Int(1001),
                "is 1001, above the largest allowed 1000",
            ),
            (NodeKind::Float(1e20), "above the largest allowed 1000"),
            (NodeKind::Float(-1e20), "must be 0 or more"),
            (NodeKind::Float(-3.0), "must be 0 or more, found -3"),
            (NodeKind::Float(2.5), "must be a whole number, found 2.5"),
            (
                NodeKind::Float(f64::INFINITY),
                "must be a whole number, found inf",
            ),
            (NodeKind::Bool(true), "found the true/false value true"),
        ] {
            let mut report = Report::new(Path::new("x.yaml"));
            assert_eq!(read(&mut report, kind), None);
            let err = &report.errors[0];
            assert_eq!(err.position(), Position { line: 2, column: 7 });
            assert!(err.message.contains(phrase), "{err}");
        }
    }

    #[test]
    fn a_huge_whole_number_written_as_a_decimal_asks_for_plain_digits() {
        let mut report = Report::new(Path::new("x.yaml"));
        let huge = node(NodeKind::Float(1e19));
        assert_eq!(
            whole_number(&mut report, &huge, "burn_in", 0, u64::MAX),
            None
        );
        let err = &report.errors[0];
        assert!(
            err.message
                .contains("is 10000000000000000000, written with a decimal point or an exponent"),
            "{err}"
        );
        assert!(
            err.message.contains("write the number with digits only"),
            "{err}"
        );
    }

    #[test]
    fn a_mapping_of_foreign_keys_gets_one_error_and_a_misspelt_one_is_read_as_usual() {
        let allowed = ["id", "description", "variants"];
        let read = |text: &str| {
            let node = super::super::node::read_document(Path::new("x.yaml"), text).unwrap();
            let mut report = Report::new(Path::new("x.yaml"));
            let foreign = is_foreign_mapping(&mut report, &node, "an experiment", &allowed);
            (foreign, report.errors)
        };
        let (foreign, errors) = read("aws_key: AKIA1\npassword: hunter2\ntoken: t\n");
        assert!(foreign);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .message
                .contains("is not an experiment: none of its 3 keys is a field of one (the first is `aws_key`)"),
            "{}",
            errors[0]
        );
        assert!(!errors[0].message.contains("hunter2"));
        // Near misses are an experiment with typos: the usual per-field errors follow.
        assert_eq!(read("Id: x\ndescripton: y\n"), (false, Vec::new()));
        assert_eq!(read("[1, 2]"), (false, Vec::new()));
    }

    #[test]
    fn closest_suggests_near_misses_only() {
        let allowed = ["burn_in", "min_share"];
        assert_eq!(closest("burnin", &allowed), Some("burn_in"));
        assert_eq!(closest("min", &allowed), Some("min_share"));
        assert_eq!(closest("half_life", &allowed), None);
    }
}
