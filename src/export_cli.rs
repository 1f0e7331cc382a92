//! `banditd export ID --server URL --what assignments|events|stats [--format csv|ndjson]
//! [--revision N] [--output FILE]`: the export route of a running server, streamed to stdout or
//! a file. Exit 0 on success, 2 on any error (clap's own usage errors are 2 as well).
//!
//! The body is copied as it arrives, so a ten-million-unit export needs no memory to speak of.
//! A file is written as `FILE.partial` and renamed only once the whole body arrived, so an
//! interrupted export never leaves a short file that looks complete.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::engine::export::{ExportFormat, ExportKind};
use crate::spec::{ExperimentId, HumanDuration};

/// Largest error body read from the server: problem documents are a few hundred bytes.
const MAX_PROBLEM_BYTES: u64 = 64 * 1024;

/// `banditd export` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Experiment id.
    pub id: String,
    /// Running banditd, e.g. http://banditd.internal:8080.
    #[arg(long, env = "BANDITD_SERVER")]
    pub server: String,
    /// `assignments` (sticky: one row per unit, with its propensity), `events` (credited
    /// rewards) or `stats` (per-arm statistics).
    #[arg(long, value_parser = ExportKind::parse)]
    pub what: ExportKind,
    /// `csv` or `ndjson`.
    #[arg(long, default_value = "csv", value_parser = ExportFormat::parse)]
    pub format: ExportFormat,
    /// Data epoch to export (default: the loaded revision).
    #[arg(long)]
    pub revision: Option<u32>,
    /// Credible level of the stats intervals (default 0.95).
    #[arg(long)]
    pub level: Option<f64>,
    /// Write here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Sent as `Authorization: Bearer <key>`; the export route takes the events key.
    #[arg(long, env = "BANDITD_EVENTS_KEY", hide_env_values = true)]
    pub events_key: Option<String>,
    /// Used when no events key is given: the admin key opens every route.
    #[arg(long, env = "BANDITD_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// How long to wait to connect, for the answer to start, and for each read of the body
    /// (`30s`, `2m`). There is no limit on the whole transfer.
    #[arg(long, env = "BANDITD_EXPORT_TIMEOUT", default_value = "30s", value_parser = HumanDuration::parse)]
    pub timeout: HumanDuration,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("`{id}` is not an experiment id: {detail}")]
    BadId { id: String, detail: String },
    #[error("cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("{url} answered {status}: {detail}")]
    Status {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("the export from {url} broke off: {detail}")]
    Transfer { url: String, detail: String },
    #[error("cannot write {path}: {detail}")]
    Write { path: String, detail: String },
}

/// Runs the command; the exit code is the process's.
pub fn main(args: &ExportArgs) -> ExitCode {
    match run(args) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("banditd export: {error}");
            ExitCode::from(2)
        }
    }
}

/// Fetches the export and writes it; returns the bytes written.
pub fn run(args: &ExportArgs) -> Result<u64, ExportError> {
    ExperimentId::parse(&args.id).map_err(|error| ExportError::BadId {
        id: args.id.clone(),
        detail: error.to_string(),
    })?;
    let url = export_url(args);
    let timeout = Some(args.timeout.as_std());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(timeout)
        .timeout_recv_response(timeout)
        .timeout_per_read(timeout)
        .build()
        .into();
    let mut request = agent.get(&url);
    if let Some(key) = bearer_key(args) {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let mut response = request.call().map_err(|e| ExportError::Unreachable {
        url: url.clone(),
        detail: e.to_string(),
    })?;
    let status = response.status().as_u16();
    if status != 200 {
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_PROBLEM_BYTES)
            .read_to_string()
            .unwrap_or_default();
        return Err(ExportError::Status {
            url,
            status,
            detail: problem_detail(status, &body),
        });
    }
    let mut body = response.into_body().into_reader();
    match &args.output {
        None => {
            let mut out = BufWriter::new(io::stdout().lock());
            copy(&mut body, &mut out, &url, "stdout")
        }
        Some(path) => write_file(&mut body, path, &url),
    }
}

/// `<server>/v1/experiments/<id>/export?what=…&format=…[&revision=…][&level=…]`. The id was
/// checked to be `[a-z0-9_-]` and the other values are numbers or fixed words, so nothing
/// needs percent-encoding.
fn export_url(args: &ExportArgs) -> String {
    let server = args.server.trim().trim_end_matches('/');
    let base = if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    };
    let mut url = format!(
        "{base}/v1/experiments/{}/export?what={}&format={}",
        args.id,
        args.what.as_str(),
        args.format.extension()
    );
    if let Some(revision) = args.revision {
        url.push_str(&format!("&revision={revision}"));
    }
    if let Some(level) = args.level {
        url.push_str(&format!("&level={level}"));
    }
    url
}

/// The events key if set, else the admin key: the least privilege that opens the route. An
/// empty value (e.g. `BANDITD_EVENTS_KEY=` in a compose file) counts as unset.
fn bearer_key(args: &ExportArgs) -> Option<&str> {
    fn set(key: Option<&str>) -> Option<&str> {
        key.map(str::trim).filter(|k| !k.is_empty())
    }
    set(args.events_key.as_deref()).or_else(|| set(args.admin_key.as_deref()))
}

/// The problem document's `detail`, else the start of the body; with a hint for key errors.
fn problem_detail(status: u16, body: &str) -> String {
    let detail = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect());
    if status == 401 {
        format!("{detail}; set BANDITD_EVENTS_KEY (or --events-key) to the server's events key")
    } else {
        detail
    }
}

fn copy(
    body: &mut dyn Read,
    out: &mut dyn Write,
    url: &str,
    path: &str,
) -> Result<u64, ExportError> {
    let mut buffer = vec![0; 64 * 1024];
    let mut written = 0;
    loop {
        let read = match body.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(ExportError::Transfer {
                    url: url.to_owned(),
                    detail: error.to_string(),
                });
            }
        };
        out.write_all(&buffer[..read])
            .map_err(|e| write_error(path, &e))?;
        written += read as u64;
    }
    out.flush().map_err(|e| write_error(path, &e))?;
    Ok(written)
}

fn write_error(path: &str, error: &io::Error) -> ExportError {
    ExportError::Write {
        path: path.to_owned(),
        detail: error.to_string(),
    }
}

/// Writes to `<path>.partial`, then renames it over `path` once complete; removes the partial
/// file on failure.
fn write_file(body: &mut dyn Read, path: &Path, url: &str) -> Result<u64, ExportError> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let shown = path.display().to_string();
    let result = File::create(&partial)
        .map_err(|e| write_error(&shown, &e))
        .and_then(|file| {
            let mut out = BufWriter::new(file);
            let written = copy(body, &mut out, url, &shown)?;
            let file = out
                .into_inner()
                .map_err(|e| write_error(&shown, e.error()))?;
            file.sync_all().map_err(|e| write_error(&shown, &e))?;
            Ok(written)
        })
        .and_then(|written| {
            std::fs::rename(&partial, path).map_err(|e| write_error(&shown, &e))?;
            Ok(written)
        });
    if result.is_err() {
        // Best effort: the error being reported matters more than a leftover partial file.
        let _ = std::fs::remove_file(&partial);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(server: &str) -> ExportArgs {
        ExportArgs {
            id: "headline".into(),
            server: server.into(),
            what: ExportKind::Assignments,
            format: ExportFormat::Ndjson,
            revision: None,
            level: None,
            output: None,
            events_key: None,
            admin_key: None,
            timeout: HumanDuration::parse("30s").unwrap(),
        }
    }

    #[test]
    fn the_url_names_the_route_and_every_given_parameter() {
        assert_eq!(
            export_url(&args("banditd.internal:8080/")),
            "http://banditd.internal:8080/v1/experiments/headline/export?what=assignments&format=ndjson"
        );
        let mut full = args("https://b.example");
        full.revision = Some(3);
        full.level = Some(0.9);
        full.what = ExportKind::Stats;
        full.format = ExportFormat::Csv;
        assert_eq!(
            export_url(&full),
            "https://b.example/v1/experiments/headline/export?what=stats&format=csv&revision=3&level=0.9"
        );
    }

    #[test]
    fn the_events_key_is_preferred_and_empty_keys_count_as_unset() {
        let mut a = args("x");
        assert_eq!(bearer_key(&a), None);
        a.admin_key = Some("admin".into());
        assert_eq!(bearer_key(&a), Some("admin"));
        a.events_key = Some("events".into());
        assert_eq!(bearer_key(&a), Some("events"));
        a.events_key = Some("  ".into());
        assert_eq!(bearer_key(&a), Some("admin"));
    }

    #[test]
    fn an_invalid_experiment_id_fails_before_any_request() {
        let mut a = args("127.0.0.1:1");
        a.id = "Head Line".into();
        assert!(matches!(run(&a), Err(ExportError::BadId { .. })));
    }

    #[test]
    fn problem_details_are_shown_with_a_key_hint_on_401() {
        let body = r#"{"type":"x","title":"t","status":401,"detail":"no key"}"#;
        let text = problem_detail(401, body);
        assert!(text.starts_with("no key; set BANDITD_EVENTS_KEY"), "{text}");
        assert_eq!(problem_detail(502, "bad gateway"), "bad gateway");
    }

    #[test]
    fn a_broken_transfer_leaves_no_file_behind() {
        struct Broken(bool);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if std::mem::replace(&mut self.0, true) {
                    Err(io::Error::new(io::ErrorKind::UnexpectedEof, "chunk cut"))
                } else {
                    buf[..3].copy_from_slice(b"a,b");
                    Ok(3)
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let error = write_file(&mut Broken(false), &path, "http://x").unwrap_err();
        assert!(matches!(error, ExportError::Transfer { .. }), "{error}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let written = write_file(&mut &b"unit\r\nu1\r\n"[..], &path, "http://x").unwrap();
        assert_eq!(written, 10);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "unit\r\nu1\r\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
