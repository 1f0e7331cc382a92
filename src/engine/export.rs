//! Exports for notebooks: an epoch's sticky assignments (with their propensities, for
//! inverse-propensity / off-policy evaluation), its credited rewards, and its per-arm stats, as
//! CSV (RFC 4180) or NDJSON.
//!
//! An [`Export`] is a cursor, not a buffer: each [`Export::next_chunk`] reads one page of
//! [`EXPORT_PAGE_SIZE`] records from the store and formats it, so the HTTP layer can stream a
//! ten-million-unit export in constant memory. Only durable records are exported (the store's
//! scans wait for their commit), so an export never shows an assignment a crash could take back.
//!
//! What the store keeps decides what can be exported. Sticky experiments keep one record per
//! unit for the epoch's life. Per-request experiments keep nothing per assignment except the
//! at-most-once mark of each *rewarded* token, until its retention ends (reward window plus a
//! day); the mark holds the variant, the reward, that deadline, and the token's issue time and
//! propensity (signed into the token), which is what an inverse-propensity estimate needs. Event
//! ids are kept only for deduplication and are never exported.

use std::sync::Arc;

use super::{DEFAULT_CREDIBLE_LEVEL, Engine, EngineError};
use crate::spec::AssignmentMode;
use crate::store::{Epoch, StickyRecord, Store, TokenCredit};

/// Records read from the store per chunk: large enough that per-page overhead vanishes, small
/// enough that a chunk stays ~100 KB.
pub const EXPORT_PAGE_SIZE: usize = 1_000;

/// Columns of a sticky assignment export: one row per unit of the epoch.
pub const STICKY_ASSIGNMENT_COLUMNS: &[&str] = &[
    "unit",
    "variant",
    "assigned_ms",
    "assigned_at",
    "propensity",
    "reward",
];
/// Columns of a sticky event export: one row per rewarded unit, with the reward's arrival
/// time (by the server's clock) and how long after the assignment it came: the time to
/// convert. Both are empty for rewards stored by builds that did not keep the arrival.
pub const STICKY_EVENT_COLUMNS: &[&str] = &[
    "unit",
    "variant",
    "assigned_ms",
    "assigned_at",
    "reward",
    "rewarded_ms",
    "rewarded_at",
    "time_to_reward_ms",
];
/// Columns of a per-request export: one row per retained token credit mark, with the reward's
/// arrival as in [`STICKY_EVENT_COLUMNS`] (measured from the token's issue).
pub const TOKEN_COLUMNS: &[&str] = &[
    "assignment_id",
    "variant",
    "issued_ms",
    "issued_at",
    "propensity",
    "reward",
    "retained_until_ms",
    "rewarded_ms",
    "rewarded_at",
    "time_to_reward_ms",
];
/// Columns of a stats export: the per-arm fields of `GET /v1/experiments/{id}`, flattened.
pub const STATS_COLUMNS: &[&str] = &[
    "variant",
    "retired",
    "exposures",
    "rewards",
    "rate",
    "effective_exposures",
    "effective_rewards",
    "posterior_alpha",
    "posterior_beta",
    "posterior_mean",
    "ci_lower",
    "ci_upper",
    "prob_best",
    "expected_loss",
    "traffic_share",
    "expected_exposures",
    "naive_exposures",
    "naive_alpha",
    "naive_beta",
    "naive_prob_best",
    "delay_median_ms",
    "delay_p90_ms",
    "halted",
];

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    Assignments,
    Events,
    Stats,
}

impl ExportKind {
    /// Parses the `what` parameter; the error says which values exist.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "assignments" => Ok(Self::Assignments),
            "events" => Ok(Self::Events),
            "stats" => Ok(Self::Stats),
            other => Err(format!(
                "`what` is {other:?}; use `assignments`, `events` or `stats`"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assignments => "assignments",
            Self::Events => "events",
            Self::Stats => "stats",
        }
    }
}

/// How to write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// RFC 4180: a header row, comma-separated, CRLF line ends, fields quoted when needed.
    Csv,
    /// One JSON object per line, keys in column order.
    Ndjson,
}

impl ExportFormat {
    /// Parses the `format` parameter; the error says which values exist.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "csv" => Ok(Self::Csv),
            "ndjson" => Ok(Self::Ndjson),
            other => Err(format!("`format` is {other:?}; use `csv` or `ndjson`")),
        }
    }

    /// The media type, as RFC 4180 and the NDJSON convention name it.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Ndjson => "application/x-ndjson",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
        }
    }
}

/// One exported value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(u64),
    /// Written in the shortest form that parses back to the same `f64`; not finite → null.
    Num(f64),
    Bool(bool),
    /// Empty in CSV, `null` in NDJSON.
    Null,
}

fn optional_num(value: Option<f64>) -> Cell {
    value.map_or(Cell::Null, Cell::Num)
}

/// Appends `text` as one RFC 4180 field: quoted, with inner quotes doubled, when it holds a
/// comma, a quote or a line break (section 2, rules 5–7); as is otherwise.
pub fn push_csv_field(out: &mut String, text: &str) {
    if text.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// Appends the CSV header row (nothing for NDJSON, whose objects name their fields).
pub fn push_header(out: &mut String, format: ExportFormat, columns: &[&str]) {
    if format == ExportFormat::Csv {
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_csv_field(out, column);
        }
        out.push_str("\r\n");
    }
}

/// Appends one row; `cells` are in `columns` order.
pub fn push_row(out: &mut String, format: ExportFormat, columns: &[&str], cells: &[Cell]) {
    match format {
        ExportFormat::Csv => {
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match cell {
                    Cell::Text(text) => push_csv_field(out, text),
                    Cell::Int(n) => out.push_str(&n.to_string()),
                    // `Display` of f64 is the shortest round-tripping decimal, without exponent.
                    Cell::Num(x) if x.is_finite() => out.push_str(&x.to_string()),
                    Cell::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                    Cell::Num(_) | Cell::Null => {}
                }
            }
            out.push_str("\r\n");
        }
        ExportFormat::Ndjson => {
            out.push('{');
            for (i, (column, cell)) in columns.iter().zip(cells).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let value = match cell {
                    Cell::Text(text) => serde_json::Value::from(text.as_str()),
                    Cell::Int(n) => serde_json::Value::from(*n),
                    // Non-finite numbers become null (`From<f64>` for `Value`).
                    Cell::Num(x) => serde_json::Value::from(*x),
                    Cell::Bool(b) => serde_json::Value::from(*b),
                    Cell::Null => serde_json::Value::Null,
                };
                // `Display` of a `Value` is its compact JSON and cannot fail.
                out.push_str(&serde_json::Value::from(*column).to_string());
                out.push(':');
                out.push_str(&value.to_string());
            }
            out.push_str("}\n");
        }
    }
}

/// `ms` since the Unix epoch as RFC 3339 UTC with milliseconds (`2026-11-26T12:00:00.250Z`);
/// `None` past the year 9999.
pub fn rfc3339_utc(ms: u64) -> Option<String> {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    ))
}

fn sticky_cells(unit: &str, record: &StickyRecord, with_propensity: bool) -> Vec<Cell> {
    let mut cells = vec![
        Cell::Text(unit.to_owned()),
        Cell::Text(record.variant.clone()),
        Cell::Int(record.assigned_ms),
        rfc3339_utc(record.assigned_ms).map_or(Cell::Null, Cell::Text),
    ];
    if with_propensity {
        cells.push(Cell::Num(record.propensity));
    }
    cells.push(optional_num(record.reward));
    if !with_propensity {
        cells.extend(arrival_cells(record.assigned_ms, record.rewarded_ms));
    }
    cells
}

/// `rewarded_ms`, `rewarded_at` and `time_to_reward_ms` of a reward that arrived at
/// `arrived_ms` (null when the store did not keep it) for an assignment made at `assigned_ms`.
fn arrival_cells(assigned_ms: u64, arrived_ms: Option<u64>) -> [Cell; 3] {
    match arrived_ms {
        Some(ms) => [
            Cell::Int(ms),
            rfc3339_utc(ms).map_or(Cell::Null, Cell::Text),
            Cell::Int(ms.saturating_sub(assigned_ms)),
        ],
        None => [Cell::Null, Cell::Null, Cell::Null],
    }
}

fn token_cells(credit: &TokenCredit) -> Vec<Cell> {
    let mut cells = vec![
        Cell::Text(credit.assignment_id.clone()),
        Cell::Text(credit.variant.clone()),
        Cell::Int(credit.issued_ms),
        rfc3339_utc(credit.issued_ms).map_or(Cell::Null, Cell::Text),
        Cell::Num(credit.propensity),
        Cell::Num(credit.reward),
        Cell::Int(credit.retained_until_ms),
    ];
    cells.extend(arrival_cells(credit.issued_ms, credit.credited_ms));
    cells
}

/// Where the rows of an export come from, and how far it got.
enum Rows {
    /// Sticky records after `after`; only the rewarded ones for an event export.
    Sticky {
        after: Option<String>,
        rewarded_only: bool,
    },
    /// Token credit marks from the store's page cursor `after` (`None`: the first page).
    Tokens {
        after: Option<String>,
    },
    /// Confirmation marks after `after` (per-request `exposure: on_render`).
    Confirmations {
        after: Option<String>,
    },
    /// Stats: few rows, computed up front.
    Stats(Vec<Vec<Cell>>),
    Done,
}

/// A streaming export of one epoch; see the module docs.
pub struct Export {
    experiment: String,
    revision: u32,
    kind: ExportKind,
    format: ExportFormat,
    columns: &'static [&'static str],
    header_sent: bool,
    rows: Rows,
    store: Arc<dyn Store>,
    epoch: Epoch,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("experiment", &self.experiment)
            .field("revision", &self.revision)
            .field("kind", &self.kind)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Export {
    pub fn revision(&self) -> u32 {
        self.revision
    }

    /// The columns (CSV header, NDJSON keys) in order.
    pub fn columns(&self) -> &'static [&'static str] {
        self.columns
    }

    /// `<id>-r<revision>-<what>.<csv|ndjson>`: ids are `[a-z0-9_-]`, so it needs no escaping.
    pub fn file_name(&self) -> String {
        format!(
            "{}-r{}-{}.{}",
            self.experiment,
            self.revision,
            self.kind.as_str(),
            self.format.extension()
        )
    }

    /// The next piece of the body: the header with the first page, then one page per call
    /// (pages without a row to export are skipped); `None` once everything was returned.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, EngineError> {
        let mut out = String::new();
        if !self.header_sent {
            self.header_sent = true;
            push_header(&mut out, self.format, self.columns);
        }
        loop {
            match &mut self.rows {
                Rows::Done => break,
                Rows::Stats(rows) => {
                    for cells in rows.iter() {
                        push_row(&mut out, self.format, self.columns, cells);
                    }
                    self.rows = Rows::Done;
                }
                Rows::Sticky {
                    after,
                    rewarded_only,
                } => {
                    let page = self
                        .store
                        .scan_sticky(&self.epoch, after.clone(), EXPORT_PAGE_SIZE)
                        .await?;
                    let with_propensity = !*rewarded_only;
                    for (unit, record) in &page {
                        if *rewarded_only && record.reward.is_none() {
                            continue;
                        }
                        let cells = sticky_cells(unit, record, with_propensity);
                        push_row(&mut out, self.format, self.columns, &cells);
                    }
                    if page.len() < EXPORT_PAGE_SIZE {
                        self.rows = Rows::Done;
                    } else {
                        *after = page.last().map(|(unit, _)| unit.clone());
                    }
                }
                Rows::Confirmations { after } => {
                    let page = self
                        .store
                        .scan_token_confirmations(&self.epoch, after.clone(), EXPORT_PAGE_SIZE)
                        .await?;
                    for mark in &page {
                        let cells = super::export_confirmations::confirmation_cells(mark);
                        push_row(&mut out, self.format, self.columns, &cells);
                    }
                    if page.len() < EXPORT_PAGE_SIZE {
                        self.rows = Rows::Done;
                    } else {
                        *after = page.last().map(|mark| mark.assignment_id.clone());
                    }
                }
                Rows::Tokens { after } => {
                    let page = self
                        .store
                        .scan_token_credits(&self.epoch, after.clone(), EXPORT_PAGE_SIZE)
                        .await?;
                    for credit in &page.credits {
                        push_row(&mut out, self.format, self.columns, &token_cells(credit));
                    }
                    match page.next {
                        Some(next) => *after = Some(next),
                        None => self.rows = Rows::Done,
                    }
                }
            }
            if !out.is_empty() {
                break;
            }
        }
        Ok((!out.is_empty()).then(|| out.into_bytes()))
    }
}

impl Engine {
    /// Starts an export of experiment `id` at `revision` (default: the loaded one; an earlier
    /// one reads that epoch's data). Stats use credible intervals at `level` (default 0.95).
    ///
    /// The row layout follows the epoch's assignment mode. For an earlier revision the spec
    /// may have changed mode since, so the data decides: an epoch with sticky records is
    /// sticky, one with token marks only is per-request, an empty one takes the current mode.
    #[tracing::instrument(level = "debug", name = "engine.export", skip_all, fields(experiment = id, ?kind, ?format, ?revision))]
    pub async fn export(
        &self,
        id: &str,
        kind: ExportKind,
        format: ExportFormat,
        revision: Option<u32>,
        level: Option<f64>,
    ) -> Result<Export, EngineError> {
        let live = self.loaded(id)?;
        let current = live.spec.revision;
        let revision = revision.unwrap_or(current);
        if revision == 0 || revision > current {
            return Err(EngineError::UnknownRevision {
                experiment: id.to_owned(),
                revision,
                current,
            });
        }
        let epoch = Epoch {
            experiment: id.to_owned(),
            revision,
        };
        let mode = if revision == current {
            live.spec.assignment
        } else {
            self.mode_of_past_epoch(&epoch, live.spec.assignment)
                .await?
        };
        let level = level.unwrap_or(DEFAULT_CREDIBLE_LEVEL);
        let (columns, rows) = match (kind, mode) {
            (ExportKind::Stats, _) => (
                STATS_COLUMNS,
                Rows::Stats(self.stats_rows(id, level, revision).await?),
            ),
            (ExportKind::Assignments, AssignmentMode::Sticky) => (
                STICKY_ASSIGNMENT_COLUMNS,
                Rows::Sticky {
                    after: None,
                    rewarded_only: false,
                },
            ),
            (ExportKind::Events, AssignmentMode::Sticky) => (
                STICKY_EVENT_COLUMNS,
                Rows::Sticky {
                    after: None,
                    rewarded_only: true,
                },
            ),
            // The confirmed exposures, as a sticky on_render export lists confirmed units.
            (ExportKind::Assignments, AssignmentMode::PerRequest)
                if !super::exposure::counts_on_assign(&live) =>
            {
                (
                    super::export_confirmations::CONFIRMATION_COLUMNS,
                    Rows::Confirmations { after: None },
                )
            }
            (ExportKind::Assignments | ExportKind::Events, AssignmentMode::PerRequest) => {
                (TOKEN_COLUMNS, Rows::Tokens { after: None })
            }
        };
        Ok(Export {
            experiment: id.to_owned(),
            revision,
            kind,
            format,
            columns,
            header_sent: false,
            rows,
            store: Arc::clone(&self.store),
            epoch,
        })
    }

    async fn mode_of_past_epoch(
        &self,
        epoch: &Epoch,
        current: AssignmentMode,
    ) -> Result<AssignmentMode, EngineError> {
        if !self.store.scan_sticky(epoch, None, 1).await?.is_empty() {
            return Ok(AssignmentMode::Sticky);
        }
        if !self
            .store
            .scan_token_credits(epoch, None, 1)
            .await?
            .credits
            .is_empty()
            || !self
                .store
                .scan_token_confirmations(epoch, None, 1)
                .await?
                .is_empty()
        {
            return Ok(AssignmentMode::PerRequest);
        }
        Ok(current)
    }

    /// The arms of the report of `revision`, flattened: an export and `GET
    /// /v1/experiments/{id}?revision=N` show the same numbers, each revision's under its own
    /// spec, and `null` (empty in CSV) where a number is unknown.
    async fn stats_rows(
        &self,
        id: &str,
        level: f64,
        revision: u32,
    ) -> Result<Vec<Vec<Cell>>, EngineError> {
        let report = self.report(id, level, Some(revision)).await?;
        Ok(report
            .arms
            .into_iter()
            .map(|arm| {
                let interval = &arm.posterior.credible_interval;
                // Without a delay correction the naive figures are the ones above.
                let delay = arm.delay.as_ref();
                let naive = |corrected: f64, pick: fn(&super::ArmDelayReport) -> f64| {
                    Cell::Num(delay.map_or(corrected, pick))
                };
                vec![
                    Cell::Text(arm.variant),
                    Cell::Bool(arm.retired),
                    Cell::Int(arm.exposures),
                    Cell::Num(arm.rewards),
                    optional_num(arm.rate),
                    Cell::Num(arm.effective_exposures),
                    Cell::Num(arm.effective_rewards),
                    Cell::Num(arm.posterior.alpha),
                    Cell::Num(arm.posterior.beta),
                    Cell::Num(arm.posterior.mean),
                    Cell::Num(interval.lower),
                    Cell::Num(interval.upper),
                    optional_num(arm.prob_best),
                    optional_num(arm.expected_loss),
                    Cell::Num(arm.traffic_share),
                    Cell::Num(arm.expected_exposures),
                    naive(arm.effective_exposures, |d| d.naive.exposures),
                    naive(arm.posterior.alpha, |d| d.naive.alpha),
                    naive(arm.posterior.beta, |d| d.naive.beta),
                    optional_num(delay.map_or(arm.prob_best, |d| d.naive.prob_best)),
                    optional_num(delay.map(|d| d.delay_median_ms)),
                    optional_num(delay.map(|d| d.delay_p90_ms)),
                    Cell::Bool(arm.halted),
                ]
            })
            .collect())
    }
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
