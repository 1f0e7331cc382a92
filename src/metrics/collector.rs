//! Figures read at scrape time from what the engine and the store already keep: the store's
//! commit count, health and sticky-cache counters, the loaded configuration, and per
//! experiment the posterior snapshot's age, the decision state and the sample-ratio check.
//! Reading them here (rather than counting again on the hot paths) keeps one source for each
//! number, the same one `GET /v1/admin/store` and `GET /v1/experiments/{id}` show.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

use crate::engine::{DECISION_STATES, Engine, decision_state};
use crate::store::{BackendStats, RedisCommitStats};

/// Reads the engine (and through it the store) at every scrape.
#[derive(Debug)]
pub struct EngineCollector {
    pub engine: Arc<Engine>,
}

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_store(&mut encoder)?;
        self.encode_config(&mut encoder)?;
        self.encode_experiments(&mut encoder)
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    ConstCounter::new(value).encode(encoder.encode_descriptor(
        name,
        help,
        None,
        MetricType::Counter,
    )?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?)
}

/// One family of `metric_type`: a sample per label set, each encoded by `metric`.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    (name, help, unit, metric_type): (&str, &str, Option<&Unit>, MetricType),
    samples: impl IntoIterator<Item = (L, M)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, metric_type)?;
    for (labels, metric) in samples {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One counter family: a sample per label set.
fn counters<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let samples = samples
        .into_iter()
        .map(|(labels, value)| (labels, ConstCounter::new(value)));
    family(encoder, (name, help, None, MetricType::Counter), samples)
}

/// One gauge family: a sample per label set.
fn gauges<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error> {
    let samples = samples
        .into_iter()
        .map(|(labels, value)| (labels, ConstGauge::new(value)));
    family(encoder, (name, help, unit, MetricType::Gauge), samples)
}

/// Which way a Redis replica's commits went (`RedisCommitStats` says why an operator looks).
fn encode_redis_commits(
    encoder: &mut DescriptorEncoder,
    commits: &RedisCommitStats,
) -> Result<(), std::fmt::Error> {
    counters(
        encoder,
        "banditd_store_redis_transactions",
        "Reward commits tried as an optimistic transaction, by outcome: applied; conflict (a \
         watched key changed, another replica wrote the same shards: the script applied it); \
         discarded (Redis refused a command while queued, EXECABORT: the script applied it)",
        [
            ([("outcome", "applied")], commits.transactions_applied),
            ([("outcome", "conflict")], commits.transaction_conflicts),
            ([("outcome", "discarded")], commits.transactions_discarded),
        ],
    )?;
    counter(
        encoder,
        "banditd_store_redis_gather_delayed",
        "Group commits whose close waited for the requests the last commit answered",
        commits.gather_delayed,
    )?;
    ConstCounter::new(commits.gather_waited_us as f64 / 1e6).encode(encoder.encode_descriptor(
        "banditd_store_redis_gather_wait",
        "Time group commits waited for the requests the last commit answered, in total",
        Some(&Unit::Seconds),
        MetricType::Counter,
    )?)?;
    counter(
        encoder,
        "banditd_store_redis_gather_pauses",
        "Times the gather paused because its waits kept ending short of their count (an \
         open-loop load, or more connections than one round turns around)",
        commits.gather_pauses,
    )
}

impl EngineCollector {
    fn encode_store(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let store = self.engine.store();
        let stats = store.stats();
        let health = store.health();
        counter(
            encoder,
            "banditd_store_group_commits",
            "Group commits made since the store was opened (each one batch and one fsync)",
            stats.commits,
        )?;
        gauge(
            encoder,
            "banditd_store_writable",
            "1 while store writes reach the disk; 0 during a failure episode",
            None,
            if health.writable { 1.0 } else { 0.0 },
        )?;
        counter(
            encoder,
            "banditd_store_failure_episodes",
            "Stretches of time in which store writes failed, since the store was opened",
            health.episodes,
        )?;
        // Figures only some backends have.
        if let BackendStats::Sled { tables, .. } = stats.backend {
            gauges(
                encoder,
                "banditd_store_table",
                "Heap bytes of the embedded store's in-memory tables (they grow with the sticky \
                 units and event ids kept)",
                Some(&Unit::Bytes),
                [
                    ([("table", "sticky_units")], tables.sticky_units as f64),
                    ([("table", "event_ids")], tables.event_ids as f64),
                ],
            )?;
        }
        if let BackendStats::Redis { commits, .. } = stats.backend {
            encode_redis_commits(encoder, &commits)?;
        }
        match stats.backend {
            BackendStats::Sled {
                sticky_cache: cache,
                ..
            }
            | BackendStats::Redis {
                sticky_cache: cache,
                ..
            } => {
                counter(
                    encoder,
                    "banditd_sticky_cache_hits",
                    "Sticky lookups answered from the in-memory cache",
                    cache.hits,
                )?;
                counter(
                    encoder,
                    "banditd_sticky_cache_misses",
                    "Sticky lookups that read the store (new units and units not cached)",
                    cache.misses,
                )?;
                gauge(
                    encoder,
                    "banditd_sticky_cache_entries",
                    "Sticky records held in the cache",
                    None,
                    cache.entries as f64,
                )?;
                gauge(
                    encoder,
                    "banditd_sticky_cache_capacity",
                    "Most sticky records the cache holds (--sticky-cache-entries; 0: off)",
                    None,
                    cache.capacity as f64,
                )
            }
        }
    }

    fn encode_config(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let config = self.engine.config_status();
        let mut info = encoder.encode_descriptor(
            "banditd_config",
            "The loaded experiment folder: its content hash",
            None,
            MetricType::Info,
        )?;
        info.encode_info(&[("version", config.version.as_str())])?;
        gauge(
            encoder,
            "banditd_config_loaded_timestamp_seconds",
            "When the loaded experiment set was loaded (Unix time)",
            None,
            config.loaded_ms as f64 / 1000.0,
        )?;
        gauge(
            encoder,
            "banditd_config_reload_failing",
            "1 while the latest reload was refused (the last good set is still served)",
            None,
            if config.last_error.is_some() {
                1.0
            } else {
                0.0
            },
        )
    }

    fn encode_experiments(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let catalog = self.engine.catalog();
        let now_ms = self.engine.now_ms();
        let snapshots: Vec<_> = catalog
            .all()
            .map(|live| (live.clone(), live.snapshot().clone()))
            .collect();
        gauges(
            encoder,
            "banditd_experiment_snapshot_age",
            "Age of the posterior snapshot the assign path uses (rebuilt on traffic)",
            Some(&Unit::Seconds),
            snapshots.iter().map(|(live, snapshot)| {
                let age_ms = now_ms.saturating_sub(snapshot.taken_ms);
                (
                    [("experiment", live.spec.id.as_str())],
                    age_ms as f64 / 1000.0,
                )
            }),
        )?;
        gauges(
            encoder,
            "banditd_experiment_decision",
            "The stopping rule's state: 1 for the current state (no_rule, collecting, winner)",
            None,
            snapshots.iter().flat_map(|(live, snapshot)| {
                let current = decision_state(&live.spec, snapshot);
                DECISION_STATES.iter().map(move |state| {
                    (
                        [("experiment", live.spec.id.as_str()), ("state", *state)],
                        if *state == current { 1.0 } else { 0.0 },
                    )
                })
            }),
        )?;
        gauges(
            encoder,
            "banditd_experiment_srm_p_value",
            "Sample-ratio check: p-value of observed against predicted exposures (absent \
             with too little data; under 0.001 is an alert)",
            None,
            snapshots.iter().filter_map(|(live, snapshot)| {
                let p_value = snapshot.srm_p_value()?;
                Some(([("experiment", live.spec.id.as_str())], p_value))
            }),
        )?;
        gauges(
            encoder,
            "banditd_guardrail_halted",
            "Guardrails: 1 while a halt stops the arm's traffic, else 0 (never halted, or \
             resumed by resume_after_halt); one sample per arm and guardrail",
            None,
            snapshots.iter().flat_map(|(live, snapshot)| {
                let spec = &live.spec;
                spec.guardrails.iter().flat_map(move |guardrail| {
                    spec.variants.iter().map(move |variant| {
                        let (id, metric) = (variant.id.as_str(), guardrail.metric.as_str());
                        let halted = snapshot.halts.iter().any(|h| {
                            h.variant == id
                                && h.metric == metric
                                && crate::engine::halt_in_force(spec, h)
                        });
                        (
                            [
                                ("experiment", spec.id.as_str()),
                                ("variant", id),
                                ("metric", metric),
                            ],
                            if halted { 1.0 } else { 0.0 },
                        )
                    })
                })
            }),
        )
    }
}
