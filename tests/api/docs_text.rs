//! Reading the repository as text, for the documentation checks (`docs_refs`, `docs_readme`):
//! which files there are, the comments of source files, Markdown tables and headings, and the
//! real binary's `--help`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root (the crate's manifest directory).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Directories that hold no project text: build output, local tool installs and caches, and a
/// store the quick start may have left behind. Hidden directories other than `.ci` (`.git`,
/// `.venv`, `.pytest_cache`, …) are skipped as well.
const SKIPPED_DIRS: &[&str] = &["target", "node_modules", "__pycache__", "data"];

/// Folders of fuzzer inputs: copies and mutations of real files, kept as test data, so what
/// they seem to name is not a reference.
const INPUT_DIRS: &[&str] = &[
    "fuzz/seeds",
    "fuzz/open-findings",
    "fuzz/corpus",
    "fuzz/artifacts",
];

/// Every file of the repository, as paths relative to its root, sorted.
pub fn repo_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(repo().join(&dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = dir.join(&name);
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                let hidden = name.starts_with('.') && name != ".ci";
                let inputs = INPUT_DIRS.iter().any(|d| relative == Path::new(d));
                if !hidden && !inputs && !SKIPPED_DIRS.contains(&name.as_str()) {
                    pending.push(relative);
                }
            } else {
                files.push(relative);
            }
        }
    }
    files.sort();
    files
}

/// Whether git ignores `relative` by a pattern of a `.gitignore` file: a path the tools create
/// at run time (`fuzz/corpus/`, `benches/load/results/perf-NAME.data`) exists only locally, so a
/// document may name it without the repository holding it. Patterns are read simply: `*` is
/// any run of characters within a name, a leading `/` anchors at the file's folder, and a
/// pattern also covers what lies under it.
pub fn ignored_by_git(relative: &Path) -> bool {
    let named = relative.to_string_lossy();
    let named = named.trim_end_matches('/');
    repo_files()
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n == ".gitignore"))
        .any(|ignore| {
            let base = ignore.parent().map(|p| p.to_string_lossy().into_owned());
            read(ignore).lines().map(str::trim).any(|pattern| {
                if pattern.is_empty() || pattern.starts_with('#') || pattern.starts_with('!') {
                    return false;
                }
                let anchored = pattern.trim_start_matches('/').trim_end_matches('/');
                let full = match base.as_deref() {
                    Some(base) if !base.is_empty() => format!("{base}/{anchored}"),
                    _ => anchored.to_owned(),
                };
                let glob = regex::escape(&full).replace(r"\*", "[^/]*");
                let unanchored = !pattern.trim_end_matches('/').contains('/');
                let prefix = if unanchored { "(?:^|.*/)" } else { "^" };
                regex::Regex::new(&format!("{prefix}{glob}(?:/.*)?$"))
                    .is_ok_and(|re| re.is_match(named))
            })
        })
}

/// Whether `relative` (a file or a directory) exists under the repository's root.
pub fn exists_in_repo(relative: &Path) -> bool {
    repo().join(relative).exists()
}

pub fn read(relative: &Path) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", relative.display()))
}

/// A line of documentation text: where it is, and what it says.
#[derive(Debug, Clone)]
pub struct DocLine {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    pub text: String,
}

impl DocLine {
    pub fn place(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// The comment lines of Rust sources (`//`, `///`, `//!`; whole-line comments only, so a
/// `//` inside a string literal is never taken for one) and of shell scripts (`#`, not `#!`),
/// with the comment marker removed.
pub fn comment_lines(file: &Path) -> Vec<DocLine> {
    let name = file.to_string_lossy();
    let marker: &[&str] = if name.ends_with(".rs") {
        &["//!", "///", "//"]
    } else if hash_commented(&name) {
        &["#"]
    } else {
        return Vec::new();
    };
    read(file)
        .lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("#!") {
                return None;
            }
            let text = marker.iter().find_map(|m| trimmed.strip_prefix(m))?;
            Some(DocLine {
                file: file.to_path_buf(),
                line: index + 1,
                text: text.to_owned(),
            })
        })
        .collect()
}

/// Every line of a Markdown file, with whether it sits inside a fenced code block.
pub fn markdown_lines(file: &Path) -> Vec<(DocLine, bool)> {
    let mut fenced = false;
    read(file)
        .lines()
        .enumerate()
        .map(|(index, line)| {
            let fence = line.trim_start().starts_with("```");
            if fence {
                fenced = !fenced;
            }
            let doc = DocLine {
                file: file.to_path_buf(),
                line: index + 1,
                text: line.to_owned(),
            };
            (doc, fenced || fence)
        })
        .collect()
}

/// Files whose comments start with `#`: shell scripts, CI, build and deploy files, YAML.
fn hash_commented(name: &str) -> bool {
    let file = name.rsplit('/').next().unwrap_or(name);
    [".sh", ".yml", ".yaml", ".toml"]
        .iter()
        .any(|ext| file.ends_with(ext))
        || ["Dockerfile", "run"].contains(&file) && (file != "run" || name == ".ci/run")
}

/// Source files whose comments are checked: Rust under `src/`, `tests/`, `benches/` and
/// `fuzz/`, shell scripts, and the build, deploy and experiment files commented with `#`
/// (`Cargo.toml`, `Dockerfile`, YAML). The checks' own files are left out: their comments
/// describe the patterns they look for, with made-up names.
pub fn commented_files() -> Vec<PathBuf> {
    repo_files()
        .into_iter()
        .filter(|f| {
            let name = f.to_string_lossy();
            if name.starts_with("tests/api/docs_") {
                return false;
            }
            let rust = name.ends_with(".rs")
                && ["src/", "tests/", "benches/", "fuzz/"]
                    .iter()
                    .any(|dir| name.starts_with(dir));
            rust || hash_commented(&name)
        })
        .collect()
}

/// Every Markdown file of the repository.
pub fn markdown_files() -> Vec<PathBuf> {
    repo_files()
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "md"))
        .collect()
}

/// The headings of a Markdown file, as written (without the `#`s), outside code blocks.
pub fn headings(file: &Path) -> Vec<String> {
    markdown_lines(file)
        .into_iter()
        .filter(|(_, fenced)| !fenced)
        .filter_map(|(line, _)| {
            let text = line.text.trim_start();
            let hashes = text.len() - text.trim_start_matches('#').len();
            (1..=6)
                .contains(&hashes)
                .then(|| text[hashes..].trim().to_owned())
                .filter(|heading| !heading.is_empty())
        })
        .collect()
}

/// GitHub's anchor for a heading: lowercase, spaces to `-`, punctuation other than `-` and
/// `_` dropped.
pub fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The rows of the first Markdown table after the heading `section` whose header row starts
/// with `first_column`, each as its cells (trimmed). Panics, naming them, if there is none.
pub fn table_rows(file: &Path, section: &str, first_column: &str) -> Vec<Vec<String>> {
    let lines = markdown_lines(file);
    let start = lines
        .iter()
        .position(|(l, fenced)| {
            !fenced && l.text.trim_start_matches('#').trim() == section && l.text.starts_with('#')
        })
        .unwrap_or_else(|| panic!("{} has no section {section:?}", file.display()));
    let mut rows = Vec::new();
    let mut in_table = false;
    for (line, _) in &lines[start + 1..] {
        let text = line.text.trim();
        if !text.starts_with('|') {
            if in_table {
                break;
            }
            continue;
        }
        let cells = split_row(text);
        if !in_table {
            if cells.first().map(String::as_str) == Some(first_column) {
                in_table = true;
            }
            continue;
        }
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue;
        }
        rows.push(cells);
    }
    assert!(
        !rows.is_empty(),
        "{}: no table with a `{first_column}` column under {section:?}",
        file.display()
    );
    rows
}

/// `| a | b \| c |` → `["a", "b | c"]`.
fn split_row(text: &str) -> Vec<String> {
    let inner = text.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cells.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    cells.iter().map(|c| c.trim().to_owned()).collect()
}

/// A table cell without its code backticks.
pub fn plain(cell: &str) -> String {
    cell.replace('`', "").trim().to_owned()
}

/// The `--help` text of `banditd <args>`, with an empty environment so that no variable of
/// the machine running the tests shows up as a value or changes a default.
pub fn help(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_banditd"))
        .args(args)
        .arg("--help")
        .env_clear()
        .output()
        .expect("run banditd --help");
    assert!(output.status.success(), "banditd {args:?} --help failed");
    String::from_utf8(output.stdout).expect("help is UTF-8")
}

/// One option of a `--help` text.
#[derive(Debug, Clone, PartialEq)]
pub struct HelpOption {
    pub flag: String,
    pub env: Option<String>,
    pub default: Option<String>,
}

/// The options of a `--help` text (clap's long format), `--help` and `--version` excluded.
pub fn help_options(text: &str) -> Vec<HelpOption> {
    let mut options: Vec<HelpOption> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        let option_line = line.starts_with("  ") && !line.starts_with("          ");
        if option_line && (trimmed.starts_with("--") || trimmed.starts_with('-')) {
            let flag = trimmed
                .split([' ', ','])
                .map(str::trim)
                .find(|word| word.starts_with("--"));
            if let Some(flag) = flag {
                options.push(HelpOption {
                    flag: flag.to_owned(),
                    env: None,
                    default: None,
                });
            }
            continue;
        }
        let Some(option) = options.last_mut() else {
            continue;
        };
        if let Some(env) = bracketed(trimmed, "[env: ") {
            option.env = Some(env.split('=').next().unwrap_or(env).to_owned());
        }
        if let Some(default) = bracketed(trimmed, "[default: ") {
            option.default = Some(default.to_owned());
        }
    }
    options.retain(|o| o.flag != "--help" && o.flag != "--version");
    options
}

fn bracketed<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let start = text.find(prefix)? + prefix.len();
    let end = text[start..].find(']')? + start;
    Some(&text[start..end])
}

/// The subcommands `banditd --help` lists (without `help`).
pub fn subcommands() -> Vec<String> {
    let text = help(&[]);
    let mut names = Vec::new();
    let mut in_commands = false;
    for line in text.lines() {
        if line.trim_end() == "Commands:" {
            in_commands = true;
            continue;
        }
        if in_commands {
            if !line.starts_with("  ") {
                break;
            }
            if let Some(name) = line.split_whitespace().next()
                && name != "help"
            {
                names.push(name.to_owned());
            }
        }
    }
    assert!(!names.is_empty(), "no subcommands in:\n{text}");
    names
}

/// Every long flag of every subcommand of the binary, and its global ones.
pub fn every_flag() -> BTreeSet<String> {
    let mut flags: BTreeSet<String> = help_options(&help(&[]))
        .into_iter()
        .map(|o| o.flag)
        .collect();
    for command in subcommands() {
        flags.extend(help_options(&help(&[&command])).into_iter().map(|o| o.flag));
    }
    flags.extend(["--help".to_owned(), "--version".to_owned()]);
    flags
}

/// Copies the repository's `experiments/` folder's files as (name, text) pairs, for
/// `TestApp::spawn`.
pub fn bundled_experiments() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(repo().join("experiments"))
        .expect("experiments/")
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(e.path()).expect("read experiment");
            (name, text)
        })
        .collect();
    files.sort();
    files
}
