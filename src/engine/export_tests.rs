//! Exports: the RFC 4180 quoter, row formatting, and whole exports over a real store.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::engine::{ManualClock, TokenSigner};
use crate::store::{RewardOp, RewardTarget, SledStore, Tally};

const T0_MS: u64 = 1_700_000_000_000;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

fn sticky_yaml(revision: u32, assignment: &str) -> String {
    format!(
        "id: headline\ndescription: d\nowner: o\nstatus: running\nrevision: {revision}\n\
         assignment: {assignment}\nreward: {{ window: 7d }}\npolicy: {{ burn_in: 0 }}\n\
         default_variant: control\nvariants:\n  - id: control\n    payload: {{}}\n  - id: bold\n    payload: {{}}\n"
    )
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
        .block_on(future)
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SledStore>,
    engine: Engine,
}

fn fixture(yaml: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let spec = crate::spec::parse_experiment(Path::new("headline.yaml"), yaml).unwrap();
    let engine = block_on(Engine::start(
        vec![spec],
        store.clone(),
        TokenSigner::new(&[7; 32]),
        Arc::new(ManualClock::new(T0_MS)),
    ))
    .unwrap();
    Fixture {
        _dir: dir,
        store,
        engine,
    }
}

fn epoch(revision: u32) -> Epoch {
    Epoch {
        experiment: "headline".to_owned(),
        revision,
    }
}

fn tally() -> Tally {
    Tally {
        now_ms: T0_MS,
        half_life_ms: None,
        allocation: Arc::from(Vec::new()),
    }
}

/// Inserts `units` (unit, variant, propensity) concurrently, so they share group commits.
fn insert_units(store: &SledStore, revision: u32, units: &[(String, &str, f64)]) {
    block_on(futures_util::future::join_all(units.iter().map(
        |(unit, variant, propensity)| {
            let record = StickyRecord {
                variant: (*variant).to_owned(),
                assigned_ms: T0_MS,
                propensity: *propensity,
                reward: None,
                rewarded_ms: None,
            };
            store.insert_sticky(&epoch(revision), unit, record, tally())
        },
    )))
    .into_iter()
    .for_each(|inserted| assert!(inserted.unwrap().1));
}

fn reward(revision: u32, event_id: &str, target: RewardTarget, reward: f64) -> RewardOp {
    RewardOp {
        epoch: epoch(revision),
        event_id: event_id.to_owned(),
        target,
        reward,
        occurred_ms: Some(T0_MS + 1),
        now_ms: T0_MS + 1,
        window_ms: 7 * DAY_MS,
        half_life_ms: None,
    }
}

/// Every chunk of an export, as text.
fn drain(mut export: Export) -> Vec<String> {
    let mut chunks = Vec::new();
    while let Some(chunk) = block_on(export.next_chunk()).unwrap() {
        chunks.push(String::from_utf8(chunk).unwrap());
    }
    chunks
}

fn start(
    fixture: &Fixture,
    kind: ExportKind,
    format: ExportFormat,
    revision: Option<u32>,
) -> Export {
    block_on(
        fixture
            .engine
            .export("headline", kind, format, revision, None),
    )
    .unwrap()
}

fn csv_line(cells: &[Cell]) -> String {
    let mut out = String::new();
    push_row(&mut out, ExportFormat::Csv, &[], cells);
    out
}

#[test]
fn csv_fields_with_a_comma_quote_or_line_break_are_quoted_with_quotes_doubled() {
    let quoted = |text: &str| {
        let mut out = String::new();
        push_csv_field(&mut out, text);
        out
    };
    assert_eq!(quoted("a,b"), "\"a,b\"");
    assert_eq!(quoted("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(quoted("\""), "\"\"\"\"");
    assert_eq!(quoted("two\r\nlines"), "\"two\r\nlines\"");
    assert_eq!(quoted("line\n"), "\"line\n\"");
}

#[test]
fn plain_csv_fields_are_written_as_they_are() {
    let mut out = String::new();
    for text in ["alice", "user 42", "ünïcødé", "", "'single'"] {
        out.clear();
        push_csv_field(&mut out, text);
        assert_eq!(out, text);
    }
}

#[test]
fn csv_rows_end_in_crlf_with_nulls_empty_and_numbers_that_parse_back_exactly() {
    let line = csv_line(&[
        Cell::Text("a,b".into()),
        Cell::Int(1_700_000_000_123),
        Cell::Num(0.1 + 0.2),
        Cell::Num(1e-7),
        Cell::Num(f64::NAN),
        Cell::Null,
        Cell::Bool(true),
        Cell::Num(1.0),
    ]);
    assert_eq!(
        line,
        "\"a,b\",1700000000123,0.30000000000000004,0.0000001,,,true,1\r\n"
    );
    assert_eq!("0.30000000000000004".parse::<f64>().unwrap(), 0.1 + 0.2);
}

#[test]
fn ndjson_rows_are_one_object_per_line_with_keys_in_column_order_and_nulls() {
    let mut out = String::new();
    let columns = ["unit", "propensity", "reward", "assigned_ms", "retired"];
    let cells = [
        Cell::Text("say \"hi\", bob".into()),
        Cell::Num(0.25),
        Cell::Null,
        Cell::Int(7),
        Cell::Bool(false),
    ];
    push_row(&mut out, ExportFormat::Ndjson, &columns, &cells);
    assert_eq!(
        out,
        "{\"unit\":\"say \\\"hi\\\", bob\",\"propensity\":0.25,\"reward\":null,\
         \"assigned_ms\":7,\"retired\":false}\n"
    );
    let back: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
    assert_eq!(back["unit"], "say \"hi\", bob");
    let mut header = String::new();
    push_header(&mut header, ExportFormat::Ndjson, &columns);
    assert!(header.is_empty(), "NDJSON has no header line");
}

#[test]
fn times_are_rfc3339_utc_with_milliseconds() {
    assert_eq!(rfc3339_utc(0).unwrap(), "1970-01-01T00:00:00.000Z");
    // 1_700_000_000 s is 2023-11-14T22:13:20Z (a widely quoted Unix-time milestone).
    assert_eq!(
        rfc3339_utc(1_700_000_000_123).unwrap(),
        "2023-11-14T22:13:20.123Z"
    );
    assert_eq!(rfc3339_utc(u64::MAX), None);
}

#[test]
fn unknown_kinds_and_formats_are_refused_naming_the_choices() {
    assert_eq!(ExportKind::parse("events"), Ok(ExportKind::Events));
    assert_eq!(ExportFormat::parse("ndjson"), Ok(ExportFormat::Ndjson));
    let kind = ExportKind::parse("units").unwrap_err();
    assert!(
        kind.contains("\"units\"") && kind.contains("assignments"),
        "{kind}"
    );
    let format = ExportFormat::parse("CSV").unwrap_err();
    assert!(format.contains("`csv` or `ndjson`"), "{format}");
}

#[test]
fn a_sticky_assignment_export_streams_every_unit_once_across_pages() {
    let f = fixture(&sticky_yaml(1, "sticky"));
    let units: Vec<(String, &str, f64)> = (0..2_345)
        .map(|i| {
            let variant = if i % 3 == 0 { "bold" } else { "control" };
            (
                format!("user-{i:05}"),
                variant,
                0.5 + f64::from(i) / 10_000.0,
            )
        })
        .collect();
    insert_units(&f.store, 1, &units);
    block_on(f.store.apply_rewards(vec![reward(
        1,
        "e1",
        RewardTarget::Unit("user-00003".into()),
        0.25,
    )]))
    .unwrap();
    let export = start(&f, ExportKind::Assignments, ExportFormat::Csv, None);
    assert_eq!(export.file_name(), "headline-r1-assignments.csv");
    let chunks = drain(export);
    // 2,345 records in pages of 1,000: three chunks, the header in the first.
    assert_eq!(chunks.len(), 3);
    let text = chunks.concat();
    let mut lines = text.split_terminator("\r\n");
    assert_eq!(
        lines.next(),
        Some("unit,variant,assigned_ms,assigned_at,propensity,reward")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), units.len());
    for (row, (unit, variant, propensity)) in rows.iter().zip(&units) {
        assert_eq!(row[0], unit);
        assert_eq!(row[1], *variant);
        assert_eq!(row[2], T0_MS.to_string());
        assert_eq!(row[3], "2023-11-14T22:13:20.000Z");
        assert_eq!(row[4].parse::<f64>().unwrap(), *propensity);
        let expected_reward = if unit == "user-00003" { "0.25" } else { "" };
        assert_eq!(row[5], expected_reward, "{unit}");
    }
}

#[test]
fn an_event_export_lists_only_the_rewarded_units_even_when_pages_between_have_none() {
    let f = fixture(&sticky_yaml(1, "sticky"));
    let units: Vec<(String, &str, f64)> = (0..2_100)
        .map(|i| (format!("u{i:05}"), "control", 0.5))
        .collect();
    insert_units(&f.store, 1, &units);
    // The first and the third page hold a reward; the second holds none.
    let ops = vec![
        reward(1, "e1", RewardTarget::Unit("u00010".into()), 1.0),
        reward(1, "e2", RewardTarget::Unit("u02050".into()), 0.5),
    ];
    block_on(f.store.apply_rewards(ops)).unwrap();
    let chunks = drain(start(&f, ExportKind::Events, ExportFormat::Ndjson, None));
    let rows: Vec<serde_json::Value> = chunks
        .concat()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["unit"], "u00010");
    assert_eq!(rows[0]["reward"], 1.0);
    assert_eq!(rows[1]["unit"], "u02050");
    assert_eq!(rows[1]["reward"], 0.5);
    assert_eq!(rows[1]["variant"], "control");
    assert!(rows[1].get("propensity").is_none());
}

#[test]
fn a_per_request_export_lists_the_retained_token_credits() {
    let f = fixture(&sticky_yaml(1, "per_request"));
    let token = |id: &str, variant: &str| RewardTarget::Token {
        assignment_id: id.into(),
        variant: variant.into(),
        issued_ms: T0_MS,
        propensity: 0.25,
        confirmed_only: false,
    };
    let ops = vec![
        reward(1, "e1", token("a-1", "bold"), 1.0),
        reward(1, "e2", token("a-2", "control"), 0.75),
    ];
    block_on(f.store.apply_rewards(ops)).unwrap();
    for kind in [ExportKind::Assignments, ExportKind::Events] {
        let text = drain(start(&f, kind, ExportFormat::Csv, None)).concat();
        let retained = T0_MS + 7 * DAY_MS + crate::store::TOKEN_MARK_SLACK_MS;
        assert_eq!(
            text,
            format!(
                // T0 = 1.7e12 ms is 2023-11-14T22:13:20Z (1,700,000,000 s after the epoch).
                // Both rewards arrived 1 ms after the tokens were issued.
                "assignment_id,variant,issued_ms,issued_at,propensity,reward,retained_until_ms,\
                 rewarded_ms,rewarded_at,time_to_reward_ms\r\n\
                 a-1,bold,{T0_MS},2023-11-14T22:13:20.000Z,0.25,1,{retained},{at},\
                 2023-11-14T22:13:20.001Z,1\r\n\
                 a-2,control,{T0_MS},2023-11-14T22:13:20.000Z,0.25,0.75,{retained},{at},\
                 2023-11-14T22:13:20.001Z,1\r\n",
                at = T0_MS + 1,
            )
        );
    }
}

#[test]
fn an_empty_export_is_the_header_alone_and_ndjson_is_empty() {
    let f = fixture(&sticky_yaml(1, "sticky"));
    let csv = drain(start(&f, ExportKind::Assignments, ExportFormat::Csv, None));
    assert_eq!(
        csv,
        vec!["unit,variant,assigned_ms,assigned_at,propensity,reward\r\n".to_owned()]
    );
    assert!(drain(start(&f, ExportKind::Events, ExportFormat::Ndjson, None)).is_empty());
}

#[test]
fn stats_rows_are_the_arms_of_the_report() {
    let f = fixture(&sticky_yaml(1, "sticky"));
    insert_units(
        &f.store,
        1,
        &[("u1".into(), "bold", 0.5), ("u2".into(), "bold", 0.5)],
    );
    block_on(
        f.store
            .apply_rewards(vec![reward(1, "e1", RewardTarget::Unit("u1".into()), 1.0)]),
    )
    .unwrap();
    let report = block_on(f.engine.report("headline", 0.9, None)).unwrap();
    let export = block_on(f.engine.export(
        "headline",
        ExportKind::Stats,
        ExportFormat::Ndjson,
        None,
        Some(0.9),
    ))
    .unwrap();
    let rows: Vec<serde_json::Value> = drain(export)
        .concat()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), report.arms.len());
    for (row, arm) in rows.iter().zip(&report.arms) {
        let keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted_columns = STATS_COLUMNS.to_vec();
        sorted_columns.sort_unstable();
        assert_eq!(keys, sorted_columns);
        assert_eq!(row["variant"], arm.variant.as_str());
        assert_eq!(row["exposures"], arm.exposures);
        assert_eq!(row["rewards"], arm.rewards);
        assert_eq!(row["posterior_alpha"], arm.posterior.alpha);
        assert_eq!(row["ci_lower"], arm.posterior.credible_interval.lower);
        assert_eq!(row["ci_upper"], arm.posterior.credible_interval.upper);
        assert_eq!(row["prob_best"], serde_json::json!(arm.prob_best));
    }
    // bold: 2 exposures, 1 reward, naive Beta(1 + 1, 1 + 1); the corrected posterior counts
    // the exposures still pending as fewer trials, so its mean is higher.
    assert_eq!(rows[1]["variant"], "bold");
    assert_eq!(rows[1]["rate"], 0.5);
    assert_eq!(rows[1]["naive_alpha"], 2.0);
    assert_eq!(rows[1]["naive_beta"], 2.0);
    assert!(rows[1]["posterior_mean"].as_f64().unwrap() > 0.5);
    let delay = report.arms[1].delay.as_ref().unwrap();
    assert_eq!(rows[1]["delay_median_ms"], delay.delay_median_ms);
    assert_eq!(rows[0]["rate"], serde_json::Value::Null);
}

#[test]
fn a_past_revision_exports_its_own_epoch_in_its_own_layout() {
    // Revision 1 was sticky; the spec is now per-request at revision 2.
    let f = fixture(&sticky_yaml(2, "per_request"));
    insert_units(&f.store, 1, &[("old-unit".into(), "bold", 0.4)]);
    insert_units(&f.store, 2, &[("new-unit".into(), "control", 0.6)]);
    block_on(f.store.apply_rewards(vec![reward(
        1,
        "e1",
        RewardTarget::Unit("old-unit".into()),
        1.0,
    )]))
    .unwrap();
    let export = start(&f, ExportKind::Assignments, ExportFormat::Csv, Some(1));
    assert_eq!(export.file_name(), "headline-r1-assignments.csv");
    let text = drain(export).concat();
    assert_eq!(
        text,
        "unit,variant,assigned_ms,assigned_at,propensity,reward\r\n\
         old-unit,bold,1700000000000,2023-11-14T22:13:20.000Z,0.4,1\r\n"
    );
    // Revision 1 was served before specs were kept: its counts are known, every number that
    // depends on its priors and settings is empty rather than recomputed under today's spec.
    let stats = drain(start(&f, ExportKind::Stats, ExportFormat::Csv, Some(1))).concat();
    assert_eq!(
        stats.lines().nth(1).unwrap(),
        format!(
            "bold,false,1,1,1,{}1{},false",
            ",".repeat(10),
            ",".repeat(6)
        )
    );
    assert_eq!(stats.lines().count(), 2);
}

#[test]
fn a_revision_that_was_never_loaded_is_unknown() {
    let f = fixture(&sticky_yaml(2, "sticky"));
    for revision in [0, 3] {
        let error = block_on(f.engine.export(
            "headline",
            ExportKind::Assignments,
            ExportFormat::Csv,
            Some(revision),
            None,
        ))
        .unwrap_err();
        assert!(
            matches!(error, EngineError::UnknownRevision { revision: r, current: 2, .. } if r == revision),
            "{error:?}"
        );
    }
    let unknown =
        block_on(
            f.engine
                .export("nope", ExportKind::Stats, ExportFormat::Csv, None, None),
        )
        .unwrap_err();
    assert!(matches!(unknown, EngineError::UnknownExperiment(_)));
}
