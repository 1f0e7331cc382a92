//! The instruments the request paths and the store's writer update, and their names. Counts
//! that the store or the engine already keep (commits, sticky-cache hits, failure episodes)
//! are not here: `collector` reads them at scrape time, so nothing is counted twice.

use std::collections::HashMap;
use std::sync::RwLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Request latency buckets, in seconds: 50 µs to 10 s. An assign served from memory takes
/// tens of microseconds; one that waits for a group commit takes an fsync.
const LATENCY_BUCKETS_S: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Commit and fsync buckets, in seconds: 100 µs (a page-cache fsync) to 10 s (a stalled disk).
const DISK_BUCKETS_S: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// Requests per group commit: 1 to 4096, powers of two.
const BATCH_BUCKETS: [f64; 13] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// The label of a request that matched no route: one value, whatever the path was.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Status classes, by the first digit of the status code (`1xx` … `5xx`).
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatusLabels {
    pub route: String,
    pub status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AssignLabels {
    pub experiment: String,
    pub variant: String,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub experiment: String,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_S)
}

/// One route's instruments, resolved on its first request so later ones skip the families'
/// label hashing.
#[derive(Debug)]
struct RouteHandles {
    by_status_class: [Counter; 5],
    latency: Histogram,
}

impl RouteHandles {
    /// Counts one answered request with `status` (an HTTP status code) after `seconds`.
    fn observe(&self, status: u16, seconds: f64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_status_class[class].inc();
        self.latency.observe(seconds);
    }
}

/// Every instrument updated outside a scrape.
#[derive(Debug)]
pub struct Metrics {
    http_requests: Family<RouteStatusLabels, Counter>,
    http_latency: HistogramFamily<RouteLabels>,
    /// Route template → its handles; a route is added once, on its first request.
    routes: RwLock<HashMap<String, RouteHandles>>,
    pub(super) assignments: Family<AssignLabels, Counter>,
    pub(super) events: Family<EventLabels, Counter>,
    pub reloads: Family<ReloadLabels, Counter>,
    /// One group commit: its sled batch applied and made durable.
    pub store_commit_seconds: Histogram,
    /// Requests one group commit carried (queued per-request exposures ride along uncounted).
    pub store_commit_batch_size: Histogram,
    /// The `fdatasync` part of a commit.
    pub store_fsync_seconds: Histogram,
    /// Group commits that failed (each answers all its callers with an error).
    pub store_commit_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            http_requests: Family::default(),
            http_latency: Family::new_with_constructor(latency_histogram),
            routes: RwLock::default(),
            assignments: Family::default(),
            events: Family::default(),
            reloads: Family::default(),
            store_commit_seconds: Histogram::new(DISK_BUCKETS_S),
            store_commit_batch_size: Histogram::new(BATCH_BUCKETS),
            store_fsync_seconds: Histogram::new(DISK_BUCKETS_S),
            store_commit_failures: Counter::default(),
        }
    }
}

impl Metrics {
    /// Counts one answered request of `route` (a route template such as
    /// `/v1/experiments/{id}/assign`, or [`UNMATCHED_ROUTE`]) with `status` after `seconds`.
    /// Only registered templates reach here, so the label set is bounded by the application's
    /// routes. A known route costs a read lock, a hash of the template and two atomic updates;
    /// a route's first request resolves its handles under the write lock.
    pub fn observe_request(&self, route: &str, status: u16, seconds: f64) {
        let routes = self
            .routes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(handles) = routes.get(route) {
            return handles.observe(status, seconds);
        }
        drop(routes);
        let mut routes = self
            .routes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        routes
            .entry(route.to_owned())
            .or_insert_with(|| {
                let counter = |status| {
                    self.http_requests.get_or_create_owned(&RouteStatusLabels {
                        route: route.to_owned(),
                        status,
                    })
                };
                RouteHandles {
                    by_status_class: STATUS_CLASSES.map(counter),
                    latency: self.http_latency.get_or_create_owned(&RouteLabels {
                        route: route.to_owned(),
                    }),
                }
            })
            .observe(status, seconds);
    }

    /// How many routes have handles (for tests).
    #[cfg(test)]
    pub fn routes_seen(&self) -> usize {
        self.routes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Counts one reload attempt (`applied`, `unchanged` or `refused`).
    pub fn reloaded(&self, result: &'static str) {
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }

    /// Adds every instrument to `registry` (they share their values with these handles).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "banditd_http_requests",
            "HTTP requests answered, by route template and status class",
            self.http_requests.clone(),
        );
        registry.register_with_unit(
            "banditd_http_request_duration",
            "Time from a request's arrival to its response head, by route template",
            Unit::Seconds,
            self.http_latency.clone(),
        );
        registry.register(
            "banditd_assignments",
            "Assign answers by experiment, variant and outcome (counted, peek, degraded, \
             paused, returning, new)",
            self.assignments.clone(),
        );
        registry.register(
            "banditd_events",
            "Reward events by experiment and outcome (applied, duplicate, or the rejection \
             reason)",
            self.events.clone(),
        );
        registry.register(
            "banditd_reloads",
            "Experiment folder reloads by result (applied, unchanged, refused)",
            self.reloads.clone(),
        );
        registry.register_with_unit(
            "banditd_store_commit_duration",
            "Time to apply one group commit's batch and make it durable",
            Unit::Seconds,
            self.store_commit_seconds.clone(),
        );
        registry.register(
            "banditd_store_commit_batch_size",
            "Requests carried by one group commit",
            self.store_commit_batch_size.clone(),
        );
        registry.register_with_unit(
            "banditd_store_fsync_duration",
            "Time of the fdatasync of one group commit",
            Unit::Seconds,
            self.store_fsync_seconds.clone(),
        );
        registry.register(
            "banditd_store_commit_failures",
            "Group commits that failed (their callers got an error; see the failure episodes)",
            self.store_commit_failures.clone(),
        );
    }
}
