//! The engine's request paths without HTTP: `Engine::assign` and `Engine::ingest` on a real
//! sled store in a temp dir, with the load test's two experiments (benches/load/experiments:
//! three arms, burn-in 0, so every decision is a Thompson draw).
//!
//! - `assign/sticky_hit`: a unit assigned before; one sled read, no write.
//! - `assign/per_request`: a Thompson draw and a counted exposure (sent to the writer thread,
//!   never awaited).
//! - `assign/sticky_miss_latency`: a new unit, one at a time. Each waits for its own group
//!   commit (an fsync), so this is the latency of a first assignment, not a throughput.
//! - `assign/sticky_miss_x1024`: 1,024 new units at once; they share group commits, so the
//!   per-element time is the throughput cost of a new unit under load.
//! - `ingest/unit_x1000`, `ingest/token_x1000`: one batch of 1,000 reward events (by sticky
//!   unit, by per-request token) applied durably. Each sample's units or tokens are made by an
//!   untimed setup, because a reward is credited once per assignment.
//!
//! Every iteration is driven by `block_on` on a current-thread runtime: the same single-thread
//! shape as one actix worker.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use banditd::engine::{Engine, RawEvent, SystemClock, TokenSigner, Unit};
use banditd::spec::{Experiment, parse_experiment};
use banditd::store::SledStore;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tokio::runtime::Runtime;

const STICKY: &str = "load-sticky";
const PER_REQUEST: &str = "load-per-request";
const STICKY_YAML: &str = include_str!("load/experiments/load-sticky.yaml");
const PER_REQUEST_YAML: &str = include_str!("load/experiments/load-per-request.yaml");

/// Units assigned before the sticky-hit bench, cycled through by it.
const KNOWN_UNITS: usize = 10_000;
/// Events per ingest batch: the bulk size the load test posts.
const EVENTS_PER_BATCH: usize = 1_000;
/// New units per concurrent sticky-miss iteration: one full group commit.
const CONCURRENT_NEW_UNITS: usize = 1_024;

struct Fixture {
    runtime: Runtime,
    engine: Arc<Engine>,
    /// Keeps the store's directory alive for the fixture's lifetime.
    _dir: tempfile::TempDir,
    /// Source of never-used unit and event ids.
    next_id: AtomicU64,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir for the bench store");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
        let experiments = vec![
            experiment("load-sticky.yaml", STICKY_YAML),
            experiment("load-per-request.yaml", PER_REQUEST_YAML),
        ];
        let store = Arc::new(SledStore::open(dir.path()).expect("a sled store in the temp dir"));
        let engine = runtime
            .block_on(Engine::start(
                experiments,
                store,
                TokenSigner::new(&[7; 32]),
                Arc::new(SystemClock),
            ))
            .expect("the engine starts on the bench experiments");
        Fixture {
            runtime,
            engine: Arc::new(engine),
            _dir: dir,
            next_id: AtomicU64::new(0),
        }
    }

    fn fresh_units(&self, n: usize, prefix: &str) -> Vec<Unit> {
        let first = self.next_id.fetch_add(n as u64, Ordering::Relaxed);
        (first..first + n as u64)
            .map(|i| Unit::parse(&format!("{prefix}-{i}")).expect("a short ASCII unit id"))
            .collect()
    }

    /// Assigns `units` concurrently (they share group commits); returns the tokens.
    fn assign_all(&self, experiment: &str, units: &[Unit]) -> Vec<String> {
        let engine = &self.engine;
        self.runtime.block_on(async {
            let assigns = units
                .iter()
                .map(|unit| engine.assign(experiment, unit, true));
            futures_util::future::join_all(assigns)
                .await
                .into_iter()
                .map(|a| {
                    a.expect("assign succeeds on a healthy store")
                        .token
                        .expect("a counted assignment carries a token")
                })
                .collect()
        })
    }
}

fn experiment(file: &str, yaml: &str) -> Experiment {
    parse_experiment(Path::new(file), yaml).expect("the bundled load-test experiment is valid")
}

fn event(
    id: String,
    experiment: &str,
    unit: Option<&Unit>,
    token: Option<String>,
) -> Result<RawEvent<'static>, String> {
    Ok(RawEvent {
        id: id.into(),
        experiment: experiment.to_owned().into(),
        unit: unit.map(|unit| unit.as_str().to_owned().into()),
        token: token.map(Into::into),
        metric: None,
        reward: Some(1.0),
        timestamp: None,
    })
}

fn assign(c: &mut Criterion) {
    let fixture = Fixture::new();
    let known = fixture.fresh_units(KNOWN_UNITS, "known");
    for chunk in known.chunks(CONCURRENT_NEW_UNITS) {
        fixture.assign_all(STICKY, chunk);
    }
    let mut group = c.benchmark_group("assign");
    group.throughput(Throughput::Elements(1));

    let mut i = 0usize;
    group.bench_function("sticky_hit", |b| {
        b.iter(|| {
            i = (i + 1) % known.len();
            let answer = fixture
                .runtime
                .block_on(fixture.engine.assign(STICKY, &known[i], true));
            black_box(answer.map(|a| a.arm))
        })
    });

    let unit = Unit::parse("per-request-unit").expect("a short ASCII unit id");
    group.bench_function("per_request", |b| {
        b.iter(|| {
            let answer = fixture
                .runtime
                .block_on(fixture.engine.assign(PER_REQUEST, &unit, true));
            black_box(answer.map(|a| a.arm))
        })
    });

    group.sample_size(20);
    group.bench_function("sticky_miss_latency", |b| {
        b.iter_batched(
            || fixture.fresh_units(1, "miss"),
            |units| {
                let answer = fixture
                    .runtime
                    .block_on(fixture.engine.assign(STICKY, &units[0], true));
                black_box(answer.map(|a| a.counted))
            },
            BatchSize::SmallInput,
        )
    });

    group.throughput(Throughput::Elements(CONCURRENT_NEW_UNITS as u64));
    group.sample_size(10);
    group.bench_function("sticky_miss_x1024", |b| {
        b.iter_batched(
            || fixture.fresh_units(CONCURRENT_NEW_UNITS, "many"),
            |units| black_box(fixture.assign_all(STICKY, &units).len()),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn ingest(c: &mut Criterion) {
    let fixture = Fixture::new();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(EVENTS_PER_BATCH as u64));
    group.sample_size(10);

    group.bench_function("unit_x1000", |b| {
        b.iter_batched(
            || {
                let units = fixture.fresh_units(EVENTS_PER_BATCH, "ev");
                fixture.assign_all(STICKY, &units);
                units
                    .iter()
                    .map(|unit| event(format!("e-{}", unit.as_str()), STICKY, Some(unit), None))
                    .collect::<Vec<_>>()
            },
            |events| {
                let report = fixture.runtime.block_on(fixture.engine.ingest(events));
                assert_eq!(
                    report.as_ref().map(|r| r.applied).ok(),
                    Some(EVENTS_PER_BATCH)
                );
                black_box(report.map(|r| r.applied))
            },
            BatchSize::PerIteration,
        )
    });

    group.bench_function("token_x1000", |b| {
        b.iter_batched(
            || {
                let units = fixture.fresh_units(EVENTS_PER_BATCH, "tok");
                let tokens = fixture.assign_all(PER_REQUEST, &units);
                units
                    .iter()
                    .zip(tokens)
                    .map(|(unit, token)| {
                        event(
                            format!("t-{}", unit.as_str()),
                            PER_REQUEST,
                            None,
                            Some(token),
                        )
                    })
                    .collect::<Vec<_>>()
            },
            |events| {
                let report = fixture.runtime.block_on(fixture.engine.ingest(events));
                assert_eq!(
                    report.as_ref().map(|r| r.applied).ok(),
                    Some(EVENTS_PER_BATCH)
                );
                black_box(report.map(|r| r.applied))
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, assign, ingest);
criterion_main!(benches);
