//! `banditd plan PATH`: what shipping the experiment folder `PATH` would change, before it
//! ships. The running set comes from a server (`--server URL`: its `GET /v1/admin/config`,
//! with the retired variants its store knows, and per-variant traffic from
//! `GET /v1/experiments/{id}`) or from another folder (`--against DIR`, no traffic data).
//! The rules are `spec::plan`'s; this module only fetches, reads and prints.
//!
//! Exit codes, for CI: 0 the server would accept the reload and every served experiment
//! stays served, 1 it would refuse it (an experiment needs a revision bump), 2 the
//! comparison itself failed (invalid folder, unreachable server, unexpected answer), 3 it
//! would accept it but served experiments would stop being served (their units lose them).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use crate::catalog;
use crate::engine::ReplicaSet;
use crate::spec::{
    self, ChangeKind, Experiment, HumanDuration, Plan, PlanVerdict, SpecError, TrafficFacts,
};

/// The server would accept the reload.
pub const EXIT_SAFE: u8 = 0;
/// The server would refuse the reload: at least one experiment needs a revision bump.
pub const EXIT_REFUSED: u8 = 1;
/// No verdict: the folder is invalid, or the server could not be asked.
pub const EXIT_ERROR: u8 = 2;
/// The server would accept the reload, but experiments served now would stop being served:
/// a loss a reviewer must see, never reported as safe.
pub const EXIT_DROPS_SERVED: u8 = 3;

/// Largest answer read from the server. The configuration embeds every payload, which a
/// frontend keeps small; 64 MiB is far above any real set and still bounds memory.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// `banditd plan` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// Folder of proposed experiment files (the change under review).
    pub path: PathBuf,
    /// Running banditd to compare with, e.g. http://banditd.internal:8080.
    #[arg(long, env = "BANDITD_SERVER")]
    pub server: Option<String>,
    /// Compare with this folder as the running set instead of a server (no traffic
    /// numbers); takes precedence over --server.
    #[arg(long, value_name = "DIR")]
    pub against: Option<PathBuf>,
    /// Plan the set this environment loads. Default with --server: the server's own.
    #[arg(long, env = "BANDITD_ENVIRONMENT")]
    pub environment: Option<String>,
    /// Print the plan as JSON (for CI bots) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Sent as `Authorization: Bearer <key>` to the server.
    #[arg(long, env = "BANDITD_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// How long to wait for each answer of the server (`10s`, `1m`).
    #[arg(long, env = "BANDITD_PLAN_TIMEOUT", default_value = "10s", value_parser = HumanDuration::parse)]
    pub timeout: HumanDuration,
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the {role} folder {} is invalid ({} errors)", path.display(), errors.len())]
    InvalidFolder {
        role: &'static str,
        path: PathBuf,
        errors: Vec<SpecError>,
    },
    #[error(
        "no running set to compare with: give --server URL (or BANDITD_SERVER) or --against DIR"
    )]
    NoBaseline,
    #[error("cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("{url} answered HTTP {status}: {detail}")]
    Status {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("unexpected answer from {url}: {detail}")]
    BadResponse { url: String, detail: String },
}

impl PlanError {
    /// The spec errors behind an invalid folder, one `file:line:col: message` each.
    fn spec_errors(&self) -> Vec<String> {
        match self {
            PlanError::InvalidFolder { errors, .. } => {
                errors.iter().map(ToString::to_string).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// Where the running set came from, for the header and the JSON.
#[derive(Debug, Clone, Serialize)]
pub struct RunningSource {
    /// `server` or `folder`.
    pub source: &'static str,
    /// Server URL or folder path.
    pub location: String,
    /// The server's configuration version (`null` for a folder).
    pub version: Option<String>,
    pub environment: Option<String>,
}

/// A finished comparison: the plan and everything needed to print it.
#[derive(Debug, Clone)]
pub struct PlanReport {
    pub plan: Plan,
    pub traffic: TrafficFacts,
    pub running: RunningSource,
    pub proposed: PathBuf,
    pub environment: Option<String>,
    /// Things the reader should know that are not changes (environment mismatch, the
    /// server's last failed reload).
    pub notes: Vec<String>,
    /// Things that make the plan itself doubtful: replicas that run different versions (the
    /// plan compares with the one replica asked).
    pub warnings: Vec<String>,
}

/// The running set and what the server knows besides it.
struct Baseline {
    experiments: Vec<Experiment>,
    retired: BTreeMap<String, BTreeSet<String>>,
    source: RunningSource,
    notes: Vec<String>,
    warnings: Vec<String>,
    server: Option<Server>,
}

/// Runs `banditd plan` on stdout/stderr.
pub fn main(args: &PlanArgs) -> ExitCode {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    ExitCode::from(run(args, &mut stdout.lock(), &mut stderr.lock()))
}

/// Makes the plan and prints it (text or JSON on `out`); errors go to `err` as text, or to
/// `out` as JSON with `--json`. Returns the exit code.
pub fn run(args: &PlanArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let written = match make_plan(args) {
        Ok(report) => {
            let code = match report.plan.verdict() {
                PlanVerdict::Safe => EXIT_SAFE,
                PlanVerdict::Refused => EXIT_REFUSED,
                PlanVerdict::DropsServed => EXIT_DROPS_SERVED,
            };
            let printed = if args.json {
                write_json(out, &json_report(&report))
            } else {
                out.write_all(render_report(&report).as_bytes())
            };
            printed.map(|()| code)
        }
        Err(error) => {
            let printed = if args.json {
                write_json(
                    out,
                    &serde_json::json!({
                        "verdict": "error",
                        "error": error.to_string(),
                        "spec_errors": error.spec_errors(),
                    }),
                )
            } else {
                let mut text = String::new();
                for line in error.spec_errors() {
                    text.push_str(&line);
                    text.push('\n');
                }
                text.push_str(&format!("banditd plan: {error}\n"));
                err.write_all(text.as_bytes())
            };
            printed.map(|()| EXIT_ERROR)
        }
    };
    written.unwrap_or_else(|e| {
        let _ = writeln!(err, "banditd plan: cannot write the plan: {e}");
        EXIT_ERROR
    })
}

fn write_json(out: &mut dyn Write, value: &serde_json::Value) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    writeln!(out, "{text}")
}

/// Reads both sides and compares them.
pub fn make_plan(args: &PlanArgs) -> Result<PlanReport, PlanError> {
    let flag_environment = non_empty(args.environment.as_deref());
    let mut baseline = if let Some(dir) = &args.against {
        folder_baseline(dir, flag_environment.as_deref())?
    } else if let Some(url) = non_empty(args.server.as_deref()) {
        let server = Server::new(&url, non_empty(args.admin_key.as_deref()), args.timeout);
        server_baseline(server)?
    } else {
        return Err(PlanError::NoBaseline);
    };
    let environment = match (&flag_environment, &baseline.source.environment) {
        (Some(flag), server) if baseline.server.is_some() && server.as_ref() != Some(flag) => {
            let runs = server.as_ref().map_or_else(
                || "all environments".to_owned(),
                |s| format!("environment `{s}`"),
            );
            baseline.notes.push(format!(
                "the server runs {runs}, but the proposed folder is filtered for `{flag}`; \
                 experiments live in only one of them show as added or removed"
            ));
            Some(flag.clone())
        }
        (Some(flag), _) => Some(flag.clone()),
        (None, server) => server.clone(),
    };
    let proposed = catalog::load_dir(&args.path, environment.as_deref()).map_err(|errors| {
        PlanError::InvalidFolder {
            role: "proposed",
            path: args.path.clone(),
            errors,
        }
    })?;
    let mut plan = spec::plan(&baseline.experiments, &proposed, &baseline.retired);
    if baseline.server.is_some() {
        // A server's experiments have no file here: say so instead of making up a path.
        for e in &mut plan.experiments {
            if e.kind == ChangeKind::Removed {
                e.file = None;
            }
        }
    }
    let traffic = match &baseline.server {
        Some(server) => server.traffic(&plan)?,
        None => TrafficFacts::unknown(),
    };
    Ok(PlanReport {
        plan,
        traffic,
        running: baseline.source,
        proposed: args.path.clone(),
        environment,
        notes: baseline.notes,
        warnings: baseline.warnings,
    })
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn folder_baseline(dir: &Path, environment: Option<&str>) -> Result<Baseline, PlanError> {
    let experiments =
        catalog::load_dir(dir, environment).map_err(|errors| PlanError::InvalidFolder {
            role: "running",
            path: dir.to_path_buf(),
            errors,
        })?;
    Ok(Baseline {
        experiments,
        retired: BTreeMap::new(),
        source: RunningSource {
            source: "folder",
            location: dir.display().to_string(),
            version: None,
            environment: environment.map(str::to_owned),
        },
        notes: Vec::new(),
        warnings: Vec::new(),
        server: None,
    })
}

/// `GET /v1/admin/config`. Unknown fields are ignored, so a newer server still plans.
#[derive(Debug, Deserialize)]
struct AdminConfig {
    version: String,
    #[serde(default)]
    environment: Option<String>,
    experiments: Vec<serde_json::Value>,
    #[serde(default)]
    retired: BTreeMap<String, BTreeSet<String>>,
    #[serde(default)]
    last_error: Option<serde_json::Value>,
    /// Absent from servers older than config-drift reporting.
    #[serde(default)]
    replicas: Option<ReplicaSet>,
}

/// The part of `GET /v1/experiments/{id}` the plan reads.
#[derive(Debug, Deserialize)]
struct ExperimentStats {
    arms: Vec<ArmStats>,
}

#[derive(Debug, Deserialize)]
struct ArmStats {
    variant: String,
    exposures: u64,
}

/// The text of a server's experiment document that `spec::parse_experiment` reads back: JSON
/// (which is YAML), with the characters YAML will not take raw written as `\uXXXX` escapes.
/// JSON escapes only C0 controls and writes every other character raw, but YAML 1.2 (§5.1,
/// `c-printable`) refuses DEL, the C1 controls and U+FFFE/U+FFFF in a file, and YAML 1.1
/// readers take NEL as a line break; a payload holding one (written as an escape in the
/// analyst's file) made `plan --server` fail on a configuration the server runs. They can only
/// occur inside JSON strings, so escaping them in the whole text is exact.
pub fn document_text(document: &serde_json::Value) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string_pretty(document)?;
    let refused = |c: char| {
        matches!(
            c,
            '\u{7f}'..='\u{9f}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
        )
    };
    if !json.contains(refused) {
        return Ok(json);
    }
    let mut text = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if refused(c) {
            text.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            text.push(c);
        }
    }
    Ok(text)
}

fn server_baseline(server: Server) -> Result<Baseline, PlanError> {
    let url = server.url("/v1/admin/config");
    let config: AdminConfig = server.get_json(&url)?.ok_or_else(|| PlanError::Status {
        url: url.clone(),
        status: 404,
        detail: "the server has no /v1/admin/config; it is older than this banditd, so \
                 compare with a checkout of the running folder instead (--against DIR)"
            .into(),
    })?;
    let mut experiments = Vec::with_capacity(config.experiments.len());
    let mut errors = Vec::new();
    for (index, document) in config.experiments.iter().enumerate() {
        // Named by where it came from (a URL and an index), not a made-up file path.
        let name = match document.get("id").and_then(serde_json::Value::as_str) {
            Some(id) => format!("{url} experiment `{id}`"),
            None => format!("{url} experiment {}", index + 1),
        };
        let text = document_text(document).map_err(|e| PlanError::BadResponse {
            url: url.clone(),
            detail: e.to_string(),
        })?;
        match spec::parse_experiment(Path::new(&name), &text) {
            Ok(experiment) => experiments.push(experiment),
            Err(found) => errors.extend(found.into_iter().map(|e| e.to_string())),
        }
    }
    if !errors.is_empty() {
        return Err(PlanError::BadResponse {
            url,
            detail: format!(
                "its experiments do not read as experiment documents: {}",
                errors.join("; ")
            ),
        });
    }
    let mut notes = Vec::new();
    if let Some(last_error) = config.last_error.filter(|e| !e.is_null()) {
        let detail = ["message", "detail", "error"]
            .iter()
            .find_map(|key| last_error.get(*key).and_then(serde_json::Value::as_str))
            .map_or_else(|| last_error.to_string(), str::to_owned);
        notes.push(format!(
            "the server's last reload failed and it still runs version {}: {detail}",
            config.version
        ));
    }
    let warnings = config
        .replicas
        .as_ref()
        .and_then(drift_warning)
        .into_iter()
        .collect();
    Ok(Baseline {
        experiments,
        retired: config.retired,
        source: RunningSource {
            source: "server",
            location: server.base.clone(),
            version: Some(config.version),
            environment: config.environment,
        },
        notes,
        warnings,
        server: Some(server),
    })
}

/// The warning for replicas that run different experiment folders, naming which run which:
/// the plan compares with the replica asked, and a reload applies per replica.
pub fn drift_warning(replicas: &ReplicaSet) -> Option<String> {
    (!replicas.agree).then(|| {
        format!(
            "the {} live replicas do not run the same experiment folder ({}); this plan \
             compares with {} only, and a rollout is unfinished or a replica refused a reload",
            replicas.live.len(),
            replicas.describe_versions(),
            replicas.this_replica
        )
    })
}

/// A running banditd, asked over HTTP with a blocking client (the CLI does nothing else
/// meanwhile, so an async runtime would only add weight).
struct Server {
    base: String,
    admin_key: Option<String>,
    agent: ureq::Agent,
}

impl Server {
    fn new(url: &str, admin_key: Option<String>, timeout: HumanDuration) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout.as_std()))
            .build()
            .into();
        Self {
            base: normalise_url(url),
            admin_key,
            agent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The JSON answer of `url`; `None` on 404. Other statuses are errors carrying the
    /// problem `detail` the server sent.
    fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<Option<T>, PlanError> {
        let mut request = self.agent.get(url);
        if let Some(key) = &self.admin_key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let mut response = request.call().map_err(|e| PlanError::Unreachable {
            url: url.to_owned(),
            detail: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string()
            .map_err(|e| PlanError::BadResponse {
                url: url.to_owned(),
                detail: format!("cannot read the body: {e}"),
            })?;
        if status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            let detail = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
                .unwrap_or_else(|| body.chars().take(200).collect());
            let hint = if status == 401 || status == 403 {
                "; set BANDITD_ADMIN_KEY (or --admin-key) to the server's admin key"
            } else {
                ""
            };
            return Err(PlanError::Status {
                url: url.to_owned(),
                status,
                detail: format!("{detail}{hint}"),
            });
        }
        serde_json::from_str(&body)
            .map(Some)
            .map_err(|e| PlanError::BadResponse {
                url: url.to_owned(),
                detail: e.to_string(),
            })
    }

    /// Exposures per variant of every running experiment the plan touches (unchanged and
    /// added ones have no traffic consequence, so they are not asked for).
    fn traffic(&self, plan: &Plan) -> Result<TrafficFacts, PlanError> {
        let mut exposures = BTreeMap::new();
        for e in &plan.experiments {
            if matches!(e.kind, ChangeKind::Added | ChangeKind::Unchanged) {
                continue;
            }
            let url = self.url(&format!("/v1/experiments/{}", e.id));
            if let Some(stats) = self.get_json::<ExperimentStats>(&url)? {
                let arms = stats
                    .arms
                    .into_iter()
                    .map(|a| (a.variant, a.exposures))
                    .collect();
                exposures.insert(e.id.clone(), arms);
            }
        }
        Ok(TrafficFacts::from_exposures(exposures))
    }
}

/// `banditd.internal:8080/` → `http://banditd.internal:8080`.
fn normalise_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    }
}

/// Header, notes, then the plan text.
pub fn render_report(report: &PlanReport) -> String {
    let running = &report.running;
    let mut text = format!(
        "Comparing {} (proposed) with {} {}",
        report.proposed.display(),
        running.source,
        running.location
    );
    if let Some(version) = &running.version {
        text.push_str(&format!(" (running version {version})"));
    }
    match &report.environment {
        Some(env) => text.push_str(&format!(", environment `{env}`\n")),
        None => text.push_str(", all environments\n"),
    }
    for warning in &report.warnings {
        text.push_str(&format!("warning: {warning}\n"));
    }
    for note in &report.notes {
        text.push_str(&format!("note: {note}\n"));
    }
    text.push('\n');
    text.push_str(&report.plan.render_text(&report.traffic));
    text
}

/// The JSON for CI bots: the plan's own fields (`verdict`, `experiments`) plus where both
/// sides came from, the traffic effects and the notes.
pub fn json_report(report: &PlanReport) -> serde_json::Value {
    let mut value = serde_json::to_value(&report.plan).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        let extra = serde_json::json!({
            "running": report.running,
            "proposed": {
                "location": report.proposed.display().to_string(),
                "environment": report.environment,
            },
            "traffic": {
                "known": report.traffic.is_known(),
                "effects": report.plan.traffic_effects(&report.traffic),
            },
            "notes": report.notes,
            "warnings": report.warnings,
        });
        if let serde_json::Value::Object(extra) = extra {
            object.extend(extra);
        }
    }
    value
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
