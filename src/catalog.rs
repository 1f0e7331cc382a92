//! The experiment folder on disk: reads every `.yaml`/`.yml` file and hands the texts to `spec`.
//!
//! All-or-nothing: one broken file fails the whole load, and every error of every file is
//! returned together, so a reload can never swap in half a folder and `banditd validate`
//! shows an analyst the full list in one run.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::spec::{self, Experiment, SpecError};

/// Loads every experiment file in `dir` (non-recursive; `.yaml`/`.yml`, dotfiles and other
/// files ignored; sorted by name), checks the set (unique ids over the whole folder), then
/// keeps the experiments live in `environment` (`None`: all).
pub fn load_dir(dir: &Path, environment: Option<&str>) -> Result<Vec<Experiment>, Vec<SpecError>> {
    let files = experiment_files(dir).map_err(|e| vec![e])?;
    load_files(&files, environment)
}

/// A content hash of the folder's experiment files (names and bytes, in name order): the
/// loaded configuration's version, and what the file watcher compares to notice a change.
pub fn fingerprint(dir: &Path) -> Result<String, SpecError> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for file in experiment_files(dir)? {
        let bytes = std::fs::read(&file)
            .map_err(|e| SpecError::whole_file(&file, format!("cannot read the file: {e}")))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        hasher.update((name.len() as u64).to_be_bytes());
        hasher.update(name.as_bytes());
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(&bytes);
    }
    let digest = hasher.finalize();
    Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// Like [`load_dir`] for a mix of files and folders, as `banditd validate PATH...` takes
/// them. A file named explicitly is read whatever its extension; a file reached twice (named
/// and inside a named folder) counts once. Errors of missing paths are collected too.
pub fn load_paths(
    paths: &[PathBuf],
    environment: Option<&str>,
) -> Result<Vec<Experiment>, Vec<SpecError>> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.is_dir() {
            match experiment_files(path) {
                Ok(found) => files.extend(found),
                Err(e) => errors.push(e),
            }
        } else if path.exists() {
            files.push(path.clone());
        } else {
            errors.push(SpecError::whole_file(
                path,
                "no such file or folder; check the path",
            ));
        }
    }
    let files = without_repeats(files);
    match load_files(&files, environment) {
        Ok(experiments) if errors.is_empty() => Ok(experiments),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            Err(errors)
        }
    }
}

/// What `banditd validate` prints. On failure: every error as `file:line:col: message`, then
/// a count, and `false`. On success: one summary line per experiment live in `environment`,
/// then a count, and `true`.
pub fn validate_report(
    paths: &[PathBuf],
    environment: Option<&str>,
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    // Load unfiltered so the summary can say how many files were valid but not live here.
    let experiments = match load_paths(paths, None) {
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
                "{} in {}; nothing was loaded",
                plural(errors.len(), "error"),
                plural(files.len(), "file")
            )?;
            return Ok(false);
        }
    };
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
    let mut summary = format!("{} valid", plural(live.len(), "experiment"));
    if let (Some(env), false) = (environment, elsewhere.is_empty()) {
        summary.push_str(&format!(
            "; {} more valid but not live in `{env}`",
            elsewhere.len()
        ));
    }
    writeln!(out, "{summary}")?;
    Ok(true)
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

/// The experiment files of one folder, sorted by name.
fn experiment_files(dir: &Path) -> Result<Vec<PathBuf>, SpecError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        SpecError::whole_file(dir, format!("cannot read the experiment folder: {e}"))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            SpecError::whole_file(dir, format!("cannot list the experiment folder: {e}"))
        })?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_yaml = Path::new(name.as_ref())
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml"));
        // Follows symlinks on purpose: a deployment may link files into the folder.
        if !name.starts_with('.') && is_yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Drops files already seen (compared by canonical path, so `./a.yaml` and `a.yaml` match),
/// keeping the first spelling for messages.
fn without_repeats(files: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    files
        .into_iter()
        .filter(|f| seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())))
        .collect()
}

/// Reads and parses every file, collects all errors, checks the set, then filters.
fn load_files(
    files: &[PathBuf],
    environment: Option<&str>,
) -> Result<Vec<Experiment>, Vec<SpecError>> {
    let mut experiments = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for file in files {
        let text = match std::fs::read(file) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => {
                    errors.push(SpecError::whole_file(
                        file,
                        "is not UTF-8 text; save the file as UTF-8",
                    ));
                    continue;
                }
            },
            Err(e) => {
                errors.push(SpecError::whole_file(
                    file,
                    format!("cannot read the file: {e}"),
                ));
                continue;
            }
        };
        match spec::parse_experiment(file, &text) {
            Ok(experiment) => experiments.push(experiment),
            Err(file_errors) => errors.extend(file_errors),
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
    Ok(experiments
        .into_iter()
        .filter(|e| e.is_live_in(environment))
        .collect())
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
