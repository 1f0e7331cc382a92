//! `banditd-fill`: writes N sticky assignments into a banditd data dir (or, with `--redis`,
//! into the Redis that banditd replicas share), through the public store API, as fast as the
//! store takes them. The load script uses it to build the 10M-unit
//! store of the scale test, and to give the event scenarios enough assigned-but-unrewarded
//! units (a unit's reward is credited once, so every applied event needs its own unit).
//!
//! Units are `{prefix}{i}` for i in `start..start + count`; unit i gets variant `i mod K`, so
//! the load scripts know every unit without asking. Every insert goes through
//! `Store::insert_sticky`, i.e. the writer thread's group commit: thousands of inserts are
//! kept in flight on one current-thread runtime so that each fsync carries a full batch.
//!
//! Given a number of events, it then writes that many applied events with distinct ids
//! (`fill_events`), so that the store holds as many kept event ids; with no units to write,
//! it adds the events to a filled dir (banditd-fill --count 0 --events N).

/// The same allocator as banditd (Cargo.toml), counting for `banditd-fill --memory-report`
/// only.
#[global_allocator]
static GLOBAL: fill_memory::CountingMiMalloc = fill_memory::CountingMiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use banditd::engine::{Clock, SystemClock};
use banditd::spec::{AssignmentMode, Experiment};
use banditd::store::{
    Epoch, RedisOptions, RedisStore, SledStore, StickyRecord, Store, StoreFuture, Tally,
};
use clap::Parser;
use futures_util::StreamExt;

mod fill_events;
mod fill_memory;
use fill_events::{EventPlan, EventReport};

/// Units per progress line.
const PROGRESS_EVERY_UNITS: u64 = 1_000_000;

#[derive(Debug, Parser)]
#[command(
    name = "banditd-fill",
    about = "Write N sticky units (and N applied events) into a banditd data dir"
)]
struct Args {
    /// The data dir banditd will serve (created if missing; must not be in use).
    #[arg(long, required_unless_present = "redis")]
    data_dir: Option<PathBuf>,
    /// Write into this Redis (`redis://host:port`) instead of a data dir: what
    /// `banditd serve --redis` replicas read (`benches/load/run.sh --redis`).
    #[arg(long, conflicts_with = "data_dir")]
    redis: Option<String>,
    /// The sticky experiment's YAML file; its id, revision and variants key the records.
    #[arg(long)]
    experiment: PathBuf,
    /// How many units to write.
    #[arg(long, default_value_t = 10_000_000)]
    count: u64,
    /// Unit ids are `{prefix}{i}`.
    #[arg(long, default_value = "s-")]
    prefix: String,
    /// First i.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Inserts in flight at once. The writer commits at most 1,024 per fsync; twice that in
    /// flight keeps the next batch queued while one is on disk. More only costs: waking
    /// thousands of futures in one `FuturesUnordered` showed up at ~25% of a profile at 8,192.
    #[arg(long, default_value_t = 2048)]
    in_flight: usize,
    /// Then write this many applied events with distinct ids (each keeps its id; see
    /// `fill_events` for what each one credits).
    #[arg(long, default_value_t = 0)]
    events: u64,
    /// Event ids are `{event_prefix}{j}`.
    #[arg(long, default_value = "e-")]
    event_prefix: String,
    /// First j of the events.
    #[arg(long, default_value_t = 0)]
    events_start: u64,
    /// Event j < count credits this run's unit `{prefix}{start + j}` (a unit takes one
    /// credit); without this flag, and past count, each event credits an assignment token of
    /// its own.
    #[arg(long)]
    credit_units: bool,
    /// Events per `Store::apply_rewards` call (one writer request; the writer commits up to
    /// 1,024 per fsync).
    #[arg(long, default_value_t = 1024)]
    events_per_call: usize,
    /// `apply_rewards` calls in flight at once.
    #[arg(long, default_value_t = 4)]
    calls_in_flight: usize,
    /// Write nothing: open the data dir (replaying its logs, as `banditd serve` does), wait
    /// this many milliseconds, print one `MEMORY` line (`fill_memory`: resident set, live
    /// heap) and the replays' log lines, and exit.
    #[arg(long, value_name = "SETTLE_MS", conflicts_with = "redis")]
    memory_report: Option<u64>,
}

/// What a fill did.
#[derive(Debug, Default)]
struct FillReport {
    inserted: u64,
    already_present: u64,
}

/// The one call into the store, kept apart so that a change of the `Store` trait (e.g. a
/// tally argument) is a one-line edit here.
fn store_unit(
    store: &dyn Store,
    epoch: &Epoch,
    unit: &str,
    record: StickyRecord,
    tally: Tally,
) -> StoreFuture<(StickyRecord, bool)> {
    store.insert_sticky(epoch, unit, record, tally)
}

fn load_experiment(path: &PathBuf) -> Result<Experiment, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let experiment = banditd::spec::parse_experiment(path, &text).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    if experiment.assignment != AssignmentMode::Sticky {
        return Err(format!(
            "{} is not a sticky experiment; only sticky units are stored",
            path.display()
        ));
    }
    Ok(experiment)
}

async fn fill(
    store: Arc<dyn Store>,
    experiment: &Experiment,
    args: &Args,
) -> Result<FillReport, String> {
    let (epoch, variants) = fill_events::epoch_and_variants(experiment);
    let arms = variants.len() as u64;
    // Round-robin is a uniform allocation: every arm had 1/K of each unit.
    let allocation: Arc<[(String, f64)]> = variants
        .iter()
        .map(|v| (v.clone(), 1.0 / arms as f64))
        .collect();
    let propensity = 1.0 / arms as f64;
    let now_ms = SystemClock.now_ms();
    let started = Instant::now();
    let end = args.start.saturating_add(args.count);
    let mut inserts = futures_util::stream::iter(args.start..end)
        .map(|i| {
            let record = StickyRecord {
                // i mod K < K = variants.len(), so the index is in range.
                variant: variants[(i % arms) as usize].clone(),
                assigned_ms: now_ms,
                propensity,
                reward: None,
                rewarded_ms: None,
            };
            let tally = Tally {
                now_ms,
                half_life_ms: None,
                allocation: allocation.clone(),
            };
            store_unit(
                store.as_ref(),
                &epoch,
                &format!("{}{i}", args.prefix),
                record,
                tally,
            )
        })
        .buffer_unordered(args.in_flight.max(1));
    let mut report = FillReport::default();
    while let Some(result) = inserts.next().await {
        let (_, inserted) = result.map_err(|e| format!("insert failed: {e}"))?;
        if inserted {
            report.inserted += 1;
        } else {
            report.already_present += 1;
        }
        let done = report.inserted + report.already_present;
        if done % PROGRESS_EVERY_UNITS == 0 {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "banditd-fill: {done} units in {secs:.1} s ({:.0} units/s)",
                done as f64 / secs.max(1e-9)
            );
        }
    }
    drop(inserts);
    Ok(report)
}

/// The units, then the events, then the final flush.
async fn fill_all(
    store: Arc<dyn Store>,
    experiment: &Experiment,
    args: &Args,
) -> Result<(FillReport, EventReport), String> {
    let units = fill(Arc::clone(&store), experiment, args).await?;
    let plan = EventPlan {
        events: args.events,
        start: args.events_start,
        event_prefix: args.event_prefix.clone(),
        credit_units: args.credit_units,
        unit_prefix: args.prefix.clone(),
        unit_start: args.start,
        units: args.count,
        per_call: args.events_per_call,
        in_flight: args.calls_in_flight,
    };
    let events = fill_events::fill_events(Arc::clone(&store), experiment, &plan).await?;
    store
        .shutdown()
        .await
        .map_err(|e| format!("final flush failed: {e}"))?;
    Ok((units, events))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let experiment = match load_experiment(&args.experiment) {
        Ok(experiment) => experiment,
        Err(error) => {
            eprintln!("banditd-fill: {error}");
            return ExitCode::from(2);
        }
    };
    if args.memory_report.is_some() {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .try_init();
        fill_memory::start_counting();
    }
    let opened: Result<Arc<dyn Store>, String> = match (&args.redis, &args.data_dir) {
        (Some(url), _) => RedisStore::open(RedisOptions {
            url: url.clone().into(),
            password: None,
            sentinel_password: None,
            sticky_cache_entries: 0,
            history_interval_ms: 0,
            wait: Default::default(),
            commit_gather: Default::default(),
        })
        .map(|store| Arc::new(store) as Arc<dyn Store>)
        .map_err(|error| format!("cannot open redis: {error}")),
        (None, Some(dir)) => SledStore::open(dir)
            .map(|store| Arc::new(store) as Arc<dyn Store>)
            .map_err(|error| format!("cannot open {}: {error}", dir.display())),
        (None, None) => Err("give --data-dir or --redis".to_owned()),
    };
    let store = match opened {
        Ok(store) => store,
        Err(error) => {
            eprintln!("banditd-fill: {error}");
            return ExitCode::from(1);
        }
    };
    if let Some(settle_ms) = args.memory_report {
        std::thread::sleep(std::time::Duration::from_millis(settle_ms));
        println!("{}", fill_memory::report_line());
        drop(store);
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("banditd-fill: cannot start a runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let started = Instant::now();
    let result = runtime.block_on(fill_all(Arc::clone(&store), &experiment, &args));
    let flushes = store.stats().commits;
    drop(store);
    let secs = started.elapsed().as_secs_f64();
    match result {
        Ok((report, events)) => {
            // One line for humans, one machine-readable line for run.sh and restart.sh.
            eprintln!(
                "banditd-fill: {} inserted, {} already present, {} events applied, {} already kept, {secs:.1} s ({:.1} s of events), {flushes} group commits",
                report.inserted,
                report.already_present,
                events.applied,
                events.duplicate,
                events.seconds
            );
            println!(
                "FILL inserted={} present={} seconds={secs:.3} flushes={flushes} events_applied={} events_kept_before={} event_exposures={} event_seconds={:.3}",
                report.inserted,
                report.already_present,
                events.applied,
                events.duplicate,
                events.exposures,
                events.seconds
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("banditd-fill: {error}");
            ExitCode::from(1)
        }
    }
}
