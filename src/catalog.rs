//! The experiment folder on disk: reads every `.yaml`/`.yml` file and hands the texts to `spec`.
//!
//! All-or-nothing: one broken file fails the whole load, and every error of every file is
//! returned together, so a reload can never swap in half a folder and `banditd validate`
//! shows an analyst the full list in one run.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::spec::{self, Experiment, SpecError};

mod folder;
mod prior_check;

use folder::{FoundFile, list_folder, named_file, read_file};
pub use folder::{MAX_FILE_BYTES, MAX_FOLDER_BYTES, MAX_FOLDER_FILES};

/// A folder read once: its experiments and the content hash of exactly the bytes they were
/// parsed from (so the version shown can never describe other bytes than those loaded).
#[derive(Debug, Clone)]
pub struct LoadedFolder {
    /// See [`fingerprint`].
    pub version: String,
    pub experiments: Vec<Experiment>,
    /// The folder's valid experiments that are not live in the environment asked for, so a
    /// server can say "exists, but not here" instead of "unknown".
    pub elsewhere: Vec<Experiment>,
}

/// Reads every experiment file in `dir` once (non-recursive; `.yaml`/`.yml`, dotfiles and
/// other files ignored; sorted by name; links followed only within the folder; see
/// `folder.rs` for the limits), checks the set (unique ids over the whole folder), then
/// keeps the experiments live in `environment` (`None`: all).
pub fn read_folder(dir: &Path, environment: Option<&str>) -> Result<LoadedFolder, Vec<SpecError>> {
    let listing = list_folder(dir).map_err(|e| vec![e])?;
    let mut hasher = Fingerprint::default();
    let mut warnings = Vec::new();
    let experiments = load_files(
        &listing.files,
        listing.refused,
        &mut hasher,
        Some(&mut warnings),
    )?;
    // A valid file can still hold a trap (`show_banner: no` is served as the text "no"):
    // the server loads it as written and says so in the log, at every load.
    for warning in &warnings {
        tracing::warn!(file = %warning.file.display(), "{warning}");
    }
    let (experiments, elsewhere) = experiments
        .into_iter()
        .partition(|e| e.is_live_in(environment));
    Ok(LoadedFolder {
        version: hasher.finish(),
        experiments,
        elsewhere,
    })
}

/// [`read_folder`]'s experiments.
pub fn load_dir(dir: &Path, environment: Option<&str>) -> Result<Vec<Experiment>, Vec<SpecError>> {
    read_folder(dir, environment).map(|folder| folder.experiments)
}

/// A content hash of the folder's experiment files (names and bytes, in name order): the
/// loaded configuration's version. Reads the files under the same rules as [`read_folder`]
/// and fails with the first problem of the listing.
pub fn fingerprint(dir: &Path) -> Result<String, SpecError> {
    let listing = list_folder(dir)?;
    if let Some(refused) = listing.refused.into_iter().next() {
        return Err(refused);
    }
    let mut hasher = Fingerprint::default();
    for file in &listing.files {
        hasher.add(file, &read_file(file)?);
    }
    Ok(hasher.finish())
}

/// The running hash behind [`fingerprint`].
#[derive(Default)]
struct Fingerprint(sha2::Sha256);

impl Fingerprint {
    fn add(&mut self, file: &FoundFile, bytes: &[u8]) {
        use sha2::Digest;
        let name = file
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.0.update((name.len() as u64).to_be_bytes());
        self.0.update(name.as_bytes());
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    fn finish(self) -> String {
        use sha2::Digest;
        let digest = self.0.finalize();
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// Like [`load_dir`] for a mix of files and folders, as `banditd validate PATH...` takes
/// them. A file named explicitly is read whatever its extension (and wherever a link named
/// explicitly points); a file reached twice (named and inside a named folder) counts once.
/// Errors of missing paths are collected too.
pub fn load_paths(
    paths: &[PathBuf],
    environment: Option<&str>,
) -> Result<Vec<Experiment>, Vec<SpecError>> {
    load_paths_linted(paths, environment, None)
}

/// [`load_paths`], adding the warnings of every valid file to `warnings` when given.
fn load_paths_linted(
    paths: &[PathBuf],
    environment: Option<&str>,
    warnings: Option<&mut Vec<SpecError>>,
) -> Result<Vec<Experiment>, Vec<SpecError>> {
    let mut files: Vec<FoundFile> = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.is_dir() {
            match list_folder(path) {
                Ok(listing) => {
                    files.extend(listing.files);
                    errors.extend(listing.refused);
                }
                Err(e) => errors.push(e),
            }
        } else if path.exists() {
            match named_file(path) {
                Ok(file) => files.push(file),
                Err(e) => errors.push(e),
            }
        } else {
            errors.push(SpecError::whole_file(
                path,
                "no such file or folder; check the path",
            ));
        }
    }
    let files = without_repeats(files);
    load_files(&files, errors, &mut Fingerprint::default(), warnings).map(|experiments| {
        experiments
            .into_iter()
            .filter(|e| e.is_live_in(environment))
            .collect()
    })
}

/// What `banditd validate` checks beyond each file's validity.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidateOptions<'a> {
    /// Check the set this environment loads (`None`: all).
    pub environment: Option<&'a str>,
    /// Accept a set with no experiment (otherwise a CI guard fails on it: a wrong path, a
    /// glob that matched nothing, or an environment nobody spells that way).
    pub allow_empty: bool,
}

/// What `banditd validate` prints. On failure: every error as `file:line:col: message`, then
/// a count, and `false`. Otherwise: the warnings (same form, `warning:` first), one summary
/// line per experiment live in the environment, then a count; `false` when no experiment is
/// live there (unless `allow_empty`), else `true`.
pub fn validate_report(
    paths: &[PathBuf],
    options: ValidateOptions<'_>,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    let environment = options.environment;
    let mut warnings = Vec::new();
    // Load unfiltered so the summary can say how many files were valid but not live here.
    let experiments = match load_paths_linted(paths, None, Some(&mut warnings)) {
        Ok(experiments) => experiments,
        Err(errors) => {
            for error in &errors {
                writeln!(out, "{error}")?;
            }
            let mut files: Vec<&Path> = errors.iter().map(|e| e.file.as_path()).collect();
            files.sort();
            files.dedup();
            writeln!(
                out,
                "{} in {}: the set is invalid, and a server would keep running its last valid \
                 set; fix {} and run validate again",
                plural(errors.len(), "error"),
                plural(files.len(), "file"),
                if errors.len() == 1 { "it" } else { "them" }
            )?;
            return Ok(false);
        }
    };
    for warning in &warnings {
        writeln!(out, "{warning}")?;
    }
    if let Some(note) = unknown_environment(&experiments, environment) {
        writeln!(out, "warning: {note}")?;
    }
    let (live, elsewhere): (Vec<_>, Vec<_>) =
        experiments.iter().partition(|e| e.is_live_in(environment));
    for e in &live {
        writeln!(
            out,
            "ok  {}  {}  {}  {}  rev {}  window {}{}  ({})",
            e.id,
            e.status,
            e.assignment,
            plural(e.variants.len(), "variant"),
            e.revision,
            e.reward.window,
            statistics_summary(e),
            e.source.display()
        )?;
    }
    for warning in live
        .iter()
        .filter_map(|e| prior_check::prior_only_warning(e))
    {
        writeln!(out, "warning  {warning}")?;
    }
    let mut summary = format!("{} valid", plural(live.len(), "experiment"));
    if let (Some(env), false) = (environment, elsewhere.is_empty()) {
        summary.push_str(&format!(
            "; {} more valid but not live in `{env}`",
            elsewhere.len()
        ));
    }
    if !warnings.is_empty() {
        summary.push_str(&format!("; {}", plural(warnings.len(), "warning")));
    }
    writeln!(out, "{summary}")?;
    if live.is_empty() && !options.allow_empty {
        let place = match environment {
            Some(env) => format!(" live in `{env}`"),
            None => String::new(),
        };
        writeln!(
            out,
            "error: no experiment{place}: a server would serve nothing. Check the paths (and \
             --environment); pass --allow-empty if an empty set is intended"
        )?;
        return Ok(false);
    }
    Ok(true)
}

/// A warning when `environment` is named by no file although files do name environments:
/// probably a typo (`prod` for `production`), which would load only the experiments that
/// list no environment. `None` when the name is used, or when no file lists environments.
pub fn unknown_environment<'a>(
    experiments: impl IntoIterator<Item = &'a Experiment>,
    environment: Option<&str>,
) -> Option<String> {
    let environment = environment?;
    let mut named: Vec<&str> = experiments
        .into_iter()
        .filter_map(|e| e.environments.as_deref())
        .flatten()
        .map(String::as_str)
        .collect();
    named.sort_unstable();
    named.dedup();
    if named.is_empty() || named.contains(&environment) {
        return None;
    }
    Some(format!(
        "the environment `{environment}` is named by no experiment file (they name: {}); only \
         experiments without an `environments` list are live in it. Check the spelling",
        named.join(", ")
    ))
}

/// The optional statistics settings, only when set, so a reviewer sees at a glance which
/// experiments decay their evidence or may stop on their own: `  half-life 2w  stops at
/// P(best) >= 0.95, loss <= 0.001, then exploit`.
fn statistics_summary(e: &Experiment) -> String {
    let mut summary = String::new();
    if let Some(half_life) = e.policy.half_life {
        summary.push_str(&format!("  half-life {half_life}"));
    }
    if let Some(stopping) = &e.stopping {
        summary.push_str(&format!(
            "  stops at P(best) >= {}, loss <= {}",
            stopping.prob_best, stopping.max_expected_loss
        ));
        if stopping.min_exposures > 0 {
            summary.push_str(&format!(", {} exposures each", stopping.min_exposures));
        }
        if let Some(min_duration) = stopping.min_duration {
            summary.push_str(&format!(", after {min_duration}"));
        }
        summary.push_str(&format!(", then {}", stopping.on_winner));
    }
    summary
}

/// `3 errors`, `1 error`.
fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Most errors reported for one file. A file that is not an experiment at all can hold
/// tens of thousands of bad keys within the size limit; every one of them would travel on to
/// the reload response, `GET /v1/admin/config` and the log. The first ones (in file order)
/// are what an analyst fixes first anyway.
pub const MAX_ERRORS_PER_FILE: usize = 50;

/// The first [`MAX_ERRORS_PER_FILE`] errors of one file, then one line saying how many more.
fn at_most_shown(file: &Path, mut errors: Vec<SpecError>) -> Vec<SpecError> {
    if errors.len() > MAX_ERRORS_PER_FILE {
        let more = errors.len() - MAX_ERRORS_PER_FILE;
        errors.truncate(MAX_ERRORS_PER_FILE);
        errors.push(SpecError::whole_file(
            file,
            format!("and {more} more errors in this file, not shown; fix the ones above first"),
        ));
    }
    errors
}

/// Drops files already seen (compared by the path they are read from, so `./a.yaml` and
/// `a.yaml` match), keeping the first spelling for messages.
fn without_repeats(files: Vec<FoundFile>) -> Vec<FoundFile> {
    let mut seen = std::collections::HashSet::new();
    files
        .into_iter()
        .filter(|f| seen.insert(f.resolved.clone()))
        .collect()
}

/// Reads (hashing the bytes) and parses every file, adds every error to `errors`, checks the
/// set, then filters.
fn load_files(
    files: &[FoundFile],
    mut errors: Vec<SpecError>,
    hasher: &mut Fingerprint,
    mut warnings: Option<&mut Vec<SpecError>>,
) -> Result<Vec<Experiment>, Vec<SpecError>> {
    let mut experiments = Vec::with_capacity(files.len());
    for file in files {
        let bytes = match read_file(file) {
            Ok(bytes) => bytes,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        hasher.add(file, &bytes);
        let Ok(text) = String::from_utf8(bytes) else {
            errors.push(SpecError::whole_file(
                &file.path,
                "is not UTF-8 text; save the file as UTF-8",
            ));
            continue;
        };
        match spec::parse_experiment(&file.path, &text) {
            Ok(experiment) => {
                if let Some(warnings) = warnings.as_deref_mut() {
                    warnings.extend(spec::lint_experiment(&file.path, &text));
                }
                experiments.push(experiment);
            }
            Err(file_errors) => errors.extend(at_most_shown(&file.path, file_errors)),
        }
    }
    // The id check runs even when some files failed, so one run shows every problem.
    let experiments = match spec::check_set(experiments) {
        Ok(experiments) => experiments,
        Err(clashes) => {
            errors.extend(clashes);
            return Err(errors);
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(experiments)
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;

#[cfg(all(test, unix))]
#[path = "catalog/safety_tests.rs"]
mod safety_tests;
