//! Every file, section, route, flag and experiment field that a code comment or a document
//! names must exist, so a rename breaks the build instead of misleading the next reader.
//!
//! What counts as a name, precisely enough to avoid false alarms:
//! - a repository path: text starting with a top-level folder (`src/`, `tests/`, `benches/`,
//!   `docs/`, `schema/`, `scripts/`, `experiments/`, `deploy/`, `fuzz/`, `clients/`, `.ci/`)
//!   in a comment or a Markdown file; it must exist from the repository's root or from the
//!   citing file's folder. Globs and placeholders (`src/**/*.rs`, `fuzz/seeds/<target>`) are
//!   patterns, not names, and are skipped;
//! - a bare `NAME.md`: some file of the repository has that name;
//! - a section: `FILE.md, "Title"` or `FILE.md#anchor` after a Markdown file, and "the
//!   README's Title section": the file has that heading;
//! - a Markdown link `[text](target#anchor)`: the target exists, and so does the anchor;
//! - a route (`/v1/…`, `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/ui…`): the
//!   running server has it (anything but its "no route" 404);
//! - a `--flag` in a Rust comment: one of the binary's flags, unless the line is about another
//!   command (`cargo`, a `.sh` script, …);
//! - a dotted experiment field in backticks (`policy.half_life`): the JSON Schema has it.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::docs_text::{
    DocLine, anchor, bundled_experiments, comment_lines, commented_files, every_flag,
    exists_in_repo, headings, ignored_by_git, markdown_files, markdown_lines, read, repo_files,
};
use crate::helpers::TestApp;

/// Folders at the repository's root whose paths comments cite.
const TOP_LEVEL: &str =
    r"src|tests|benches|docs|schema|scripts|experiments|deploy|fuzz|clients|\.ci";

/// Commands whose own flags a comment line may mention: a flag on such a line is not checked.
const OTHER_COMMANDS: &[&str] = &[
    "cargo",
    ".sh",
    "prlimit",
    "curl",
    "wrk",
    "git ",
    "rustc",
    "perf ",
    "promtool",
    "schemathesis",
    "docker",
    "openssl",
    "psql",
    "redis-cli",
    "valkey",
    "banditd-fill",
];

/// Compiled once: the checks run them over every line of the repository.
fn pattern(text: &str) -> Regex {
    Regex::new(text).expect("a valid pattern")
}

static PATH: LazyLock<Regex> = LazyLock::new(|| {
    pattern(&format!(
        r"(?:^|[^A-Za-z0-9_./-])((?:\.\./)*(?:{TOP_LEVEL})/[A-Za-z0-9_./-]*)"
    ))
});
static BARE_MD: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"(?:^|[^A-Za-z0-9_./*-])([A-Za-z0-9_-]+\.md)\b"));
static SECTION: LazyLock<Regex> =
    LazyLock::new(|| pattern(r#"^(?:, "([^"]+)"|#([A-Za-z0-9_-]+))"#));
static README_SECTION: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"README's ([A-Z][^,.;()`]*?) section"));
static LINK: LazyLock<Regex> = LazyLock::new(|| pattern(r"\]\(([^)\s]+)\)"));
static FLAG: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"(?:^|[\s(`\[])(--[a-z][a-z0-9-]*[a-z0-9])"));
static DOTTED_FIELD: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"`((?:reward|policy|stopping|prior|variants\[\])\.[a-z_]+)"));
static ROUTE: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?:^|[^A-Za-z0-9_.:/…-])(/(?:v1/[A-Za-z0-9_{}./-]*|healthz|readyz|metrics|openapi\.json|ui\b[A-Za-z0-9_{}./-]*))",
    )
});
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| pattern(r"\{[^}]*\}"));

/// Every documentation line that names things: comments, and Markdown text (code blocks
/// included: they hold commands and paths too).
fn doc_lines() -> Vec<DocLine> {
    let mut lines: Vec<DocLine> = commented_files()
        .iter()
        .flat_map(|f| comment_lines(f))
        .collect();
    for file in markdown_files() {
        lines.extend(markdown_lines(&file).into_iter().map(|(line, _)| line));
    }
    lines
}

/// `a/b/../c` → `a/c`; `None` if it climbs out of the repository.
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts.iter().collect())
}

/// The repository file a path names from `citing`: from the root, else from its folder.
fn resolve(citing: &Path, named: &str) -> Option<PathBuf> {
    if let Some(from_root) = normalise(Path::new(named))
        && exists_in_repo(&from_root)
    {
        return Some(from_root);
    }
    let from_folder = normalise(&citing.parent().unwrap_or(Path::new("")).join(named))?;
    exists_in_repo(&from_folder).then_some(from_folder)
}

/// A made-up name standing for any file: a capitalised placeholder word
/// (`results/perf-NAME.txt`) or an analyst's own experiment (`experiments/my-test.yaml`).
fn is_placeholder(named: &str) -> bool {
    let file = named.rsplit('/').next().unwrap_or(named);
    let stem = file.split('.').next().unwrap_or(file);
    stem.starts_with("my-")
        || stem.starts_with("my_")
        || stem
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| ["NAME", "FILE", "ID", "DIR", "PATH"].contains(&word))
}

/// Problems with the file and section references on one line (`names` holds every file name
/// of the repository, for bare `NAME.md` references).
fn file_reference_problems(line: &DocLine, names: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let text = &line.text;
    let check_section = |target: &Path, rest: &str, problems: &mut Vec<String>| {
        if target.extension().is_none_or(|e| e != "md") {
            return;
        }
        if let Some(found) = SECTION.captures(rest) {
            let titles = headings(target);
            match (found.get(1), found.get(2)) {
                (Some(title), _) if !titles.iter().any(|t| t == title.as_str()) => problems.push(
                    format!("{} has no section \"{}\"", target.display(), title.as_str()),
                ),
                (_, Some(id)) if !titles.iter().any(|t| anchor(t) == id.as_str()) => problems.push(
                    format!("{} has no anchor #{}", target.display(), id.as_str()),
                ),
                _ => {}
            }
        }
    };
    for found in PATH.captures_iter(text) {
        let whole = found.get(1).unwrap();
        let after = &text[whole.end()..];
        let named = whole.as_str().trim_end_matches(['.', '-']);
        if named.contains('*')
            || after.starts_with(['*', '<', '{', '…', '$'])
            || is_placeholder(named)
        {
            continue;
        }
        match resolve(&line.file, named) {
            Some(target) => {
                check_section(&target, &text[whole.start() + named.len()..], &mut problems)
            }
            None if ignored_by_git(Path::new(named)) => {}
            None => problems.push(format!("no file or folder {named}")),
        }
    }
    for found in BARE_MD.captures_iter(text) {
        let name = found.get(1).unwrap();
        if is_placeholder(name.as_str()) {
            continue;
        }
        if !names.contains(name.as_str()) {
            problems.push(format!("no file named {}", name.as_str()));
        } else if let Some(target) = resolve(&line.file, name.as_str()) {
            check_section(&target, &text[name.end()..], &mut problems);
        }
    }
    for found in README_SECTION.captures_iter(text) {
        let title = &found[1];
        if !headings(Path::new("README.md")).iter().any(|h| h == title) {
            problems.push(format!("README.md has no section \"{title}\""));
        }
    }
    problems
}

/// Problems with the Markdown links of one line of `line.file`.
fn link_problems(line: &DocLine) -> Vec<String> {
    let mut problems = Vec::new();
    for found in LINK.captures_iter(&line.text) {
        let target = &found[1];
        if ["http://", "https://", "mailto:"]
            .iter()
            .any(|s| target.starts_with(s))
        {
            continue;
        }
        let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
        let file = if path.is_empty() {
            Some(line.file.clone())
        } else {
            normalise(&line.file.parent().unwrap_or(Path::new("")).join(path))
                .filter(|p| exists_in_repo(p))
        };
        let Some(file) = file else {
            problems.push(format!("link to a missing file: {target}"));
            continue;
        };
        if !fragment.is_empty()
            && file.extension().is_some_and(|e| e == "md")
            && !headings(&file).iter().any(|h| anchor(h) == fragment)
        {
            problems.push(format!("link to a missing section: {target}"));
        }
    }
    problems
}

#[test]
fn every_file_and_section_a_comment_or_document_names_exists() {
    let names: BTreeSet<String> = repo_files()
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let mut problems = Vec::new();
    for line in doc_lines() {
        let mut found = file_reference_problems(&line, &names);
        if line.file.extension().is_some_and(|e| e == "md") {
            found.extend(link_problems(&line));
        }
        problems.extend(found.into_iter().map(|p| format!("{}: {p}", line.place())));
    }
    assert!(
        problems.is_empty(),
        "dangling references:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_reference_check_catches_a_missing_file_a_missing_section_and_a_bad_link() {
    let names: BTreeSet<String> = ["README.md".to_owned(), "ARCHITECTURE.md".to_owned()].into();
    let line = |file: &str, text: &str| DocLine {
        file: PathBuf::from(file),
        line: 1,
        text: text.to_owned(),
    };
    let cases = [
        (
            "src/lib.rs",
            "Layers (see DESIGN.md, \"Layers\")",
            "no file named DESIGN.md",
        ),
        (
            "src/lib.rs",
            "see src/engine/gone.rs",
            "no file or folder src/engine/gone.rs",
        ),
        (
            "experiments/x.yaml",
            "$schema=../schema/gone.schema.json",
            "no file or folder ../schema/gone.schema.json",
        ),
        (
            "src/lib.rs",
            "(docs/ARCHITECTURE.md, \"No such title\")",
            "has no section \"No such title\"",
        ),
        (
            "src/lib.rs",
            "see the README's Nowhere section",
            "no section \"Nowhere\"",
        ),
    ];
    for (file, text, expected) in cases {
        let problems = file_reference_problems(&line(file, text), &names);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{text:?}: {problems:?}"
        );
    }
    let fine = file_reference_problems(
        &line(
            "src/lib.rs",
            "(docs/ARCHITECTURE.md, \"Allocation\"); src/**/*.rs; fuzz/seeds/<t>; results/perf-NAME.txt",
        ),
        &names,
    );
    assert!(fine.is_empty(), "{fine:?}");
    assert!(ignored_by_git(Path::new("target/debug/banditd")));
    assert!(ignored_by_git(Path::new("data/")));
    assert!(!ignored_by_git(Path::new("src/engine/gone.rs")));
    let links = link_problems(&line(
        "README.md",
        "[a](docs/nothing.md) [b](#no-such-heading)",
    ));
    assert_eq!(links.len(), 2, "{links:?}");
}

/// `--flags` named by a Rust comment line that is about banditd.
fn flags_named(line: &DocLine) -> Vec<String> {
    if OTHER_COMMANDS
        .iter()
        .any(|command| line.text.contains(command))
    {
        return Vec::new();
    }
    FLAG.captures_iter(&line.text)
        .map(|c| c[1].to_owned())
        .collect()
}

#[test]
fn every_flag_a_source_comment_names_is_a_flag_of_the_binary() {
    let known = every_flag();
    let mut problems = Vec::new();
    for file in commented_files()
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
    {
        for line in comment_lines(file) {
            for flag in flags_named(&line) {
                if !known.contains(&flag) {
                    problems.push(format!("{}: {flag} is not a flag of banditd", line.place()));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "unknown flags (the binary has {known:?}):\n{}",
        problems.join("\n")
    );
    let renamed = DocLine {
        file: PathBuf::from("src/cli.rs"),
        line: 1,
        text: " hot reads are served by --sticky-cache instead".to_owned(),
    };
    assert!(
        !known.contains(&flags_named(&renamed)[0]),
        "a renamed flag is caught"
    );
}

/// The JSON Schema's dotted field paths (`reward.window`, `variants[].payload`).
pub fn schema_fields() -> BTreeSet<String> {
    let schema: Value =
        serde_json::from_str(&read(Path::new("schema/experiment.schema.json"))).unwrap();
    let mut fields = BTreeSet::new();
    collect_fields(&schema, &schema, "", &mut fields);
    fields
}

fn collect_fields(schema: &Value, node: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    let node = resolve_ref(schema, node);
    if let Some(properties) = node["properties"].as_object() {
        for (name, child) in properties {
            let path = format!("{prefix}{name}");
            out.insert(path.clone());
            collect_fields(schema, child, &format!("{path}."), out);
            let items = resolve_ref(schema, &resolve_ref(schema, child)["items"]);
            if items["properties"].is_object() {
                collect_fields(schema, items, &format!("{path}[]."), out);
            }
        }
    }
}

/// `{"$ref": "#/$defs/x", …}` → the definition (other keys ignored).
pub fn resolve_ref<'a>(schema: &'a Value, node: &'a Value) -> &'a Value {
    match node["$ref"].as_str().and_then(|r| r.strip_prefix("#/")) {
        Some(pointer) => schema.pointer(&format!("/{pointer}")).unwrap_or(node),
        None => node,
    }
}

#[test]
fn every_dotted_experiment_field_a_comment_or_document_names_is_in_the_schema() {
    let fields = schema_fields();
    let mut problems = Vec::new();
    for line in doc_lines() {
        for found in DOTTED_FIELD.captures_iter(&line.text) {
            if !fields.contains(&found[1]) {
                problems.push(format!(
                    "{}: no experiment field {}",
                    line.place(),
                    &found[1]
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(fields.contains("policy.half_life") && !fields.contains("policy.halflife"));
}

/// Routes named by a line, with `{id}` filled in with a bundled experiment.
fn routes_named(line: &DocLine) -> Vec<(String, String)> {
    ROUTE
        .captures_iter(&line.text)
        .filter_map(|c| {
            let whole = c.get(1).unwrap();
            let named = whole.as_str().trim_end_matches(['.', ',']);
            // A route ending in `/` names a family ("routes under /v1/admin/"), not a route.
            if line.text[whole.end()..].starts_with('…') || named.ends_with('/') {
                return None;
            }
            let probe = named.replace("{id}", "homepage-headline");
            Some((
                named.to_owned(),
                PLACEHOLDER.replace_all(&probe, "x").into_owned(),
            ))
        })
        .collect()
}

#[test]
fn every_route_a_comment_or_document_names_is_served() {
    let bundled = bundled_experiments();
    let files: Vec<(&str, &str)> = bundled
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let app = TestApp::spawn(&files);
    let mut checked = BTreeSet::new();
    let mut problems = Vec::new();
    for line in doc_lines() {
        for (named, probe) in routes_named(&line) {
            if !checked.insert(probe.clone()) {
                continue;
            }
            // A route may answer one method only: it is missing if GET and POST both find
            // no route (a wrong method is a 405).
            let no_route = |reply: crate::helpers::Reply| {
                reply.status == 404
                    && reply.body["detail"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("no route for"))
            };
            if no_route(app.get(&probe)) && no_route(app.post_json(&probe, &serde_json::json!({})))
            {
                problems.push(format!("{}: the server has no route {named}", line.place()));
            }
        }
    }
    let missing = app.get("/v1/no-such-route");
    assert!(
        missing.body["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("no route for"),
        "the server's answer to an unknown route changed: {}",
        missing.body
    );
    assert!(checked.len() > 5, "too few routes found: {checked:?}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
