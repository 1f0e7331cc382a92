//! Operator routes: `POST /v1/admin/reload`, `GET /v1/admin/config`, `GET /v1/admin/store` and
//! `GET /v1/admin/build` (admin key).

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::auth::AdminAuth;
use super::openapi::Routes;
use super::problem::{ApiError, ApiResult, Problem};
use super::state::AppState;
use crate::engine::{ConfigStatus, ReloadError, ReloadOutcome, ReplicaSet, WatchStatus};
use crate::store::{BackendStats, RedisCommitStats, StoreHealth};

pub fn routes(api: &mut impl Routes) {
    api.route::<__path_reload, _, _>(reload)
        .route::<__path_config, _, _>(config)
        .route::<__path_store, _, _>(store)
        .route::<__path_build, _, _>(build);
}

/// `GET /v1/admin/config`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminConfig {
    #[serde(flatten)]
    pub status: ConfigStatus,
    pub watch: WatchStatus,
    /// Every loaded experiment as the document the server runs (the experiment YAML's
    /// fields, defaults filled in), in file order.
    #[schema(value_type = Vec<Object>)]
    pub experiments: Vec<serde_json::Value>,
    /// Per experiment, the variants removed from its YAML whose data is kept.
    pub retired: BTreeMap<String, BTreeSet<String>>,
    /// Every live replica sharing this server's store, the version each runs, and whether
    /// they agree (`agree: false` while a rollout has not reached every replica).
    pub replicas: ReplicaSet,
}

/// `GET /v1/admin/store`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StoreReport {
    /// `sled` or `redis`.
    #[schema(value_type = String, pattern = "^(sled|redis)$")]
    pub backend: &'static str,
    /// Group commits made, each one atomic batch and one fsync.
    pub group_commits: u64,
    /// Sequence number of the last commit known to be on disk.
    pub durable_seq: u64,
    pub health: StoreHealth,
    /// Redis only: how often a replica writes its aggregated per-request exposures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposure_flush_ms: Option<u64>,
    /// Embedded store only: heap bytes of its in-memory tables, which grow with the units and
    /// event ids it keeps (the README's Durability section gives the bytes per unit and id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_bytes: Option<TableBytesReport>,
    /// Redis only: which way the replica's group commits went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_commits: Option<RedisCommitStats>,
    pub sticky_cache: StickyCacheReport,
}

/// Heap bytes of the embedded store's in-memory tables.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TableBytesReport {
    /// Every durable sticky assignment: slots, credited rewards, spill set.
    pub sticky_units: u64,
    /// Every kept event-id and token credit mark digest.
    pub event_ids: u64,
}

/// The store's cache of durable sticky records.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StickyCacheReport {
    /// Most records held (`--sticky-cache-entries`); 0: the cache is off.
    pub capacity: usize,
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
    /// hits / (hits + misses); `null` before the first lookup.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub hit_ratio: Option<f64>,
}

/// Which code this replica runs: version, git commit, profile, target, features.
#[utoipa::path(
    get,
    path = "/v1/admin/build",
    tag = "admin",
    operation_id = "admin_build",
    responses(
        (status = 200, description = "The build this server runs", body = crate::build_info::BuildInfo),
        (status = 401, description = "Missing or wrong admin key (when BANDITD_ADMIN_KEY is \
                                      set)", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("admin_key" = [])),
)]
async fn build(_: AdminAuth) -> HttpResponse {
    HttpResponse::Ok().json(crate::build_info::current())
}

/// Applies the folder as it is on disk now, or changes nothing and says why.
#[utoipa::path(
    post,
    path = "/v1/admin/reload",
    tag = "admin",
    operation_id = "reload",
    responses(
        (status = 200, description = "Applied, or nothing had changed", body = ReloadOutcome),
        (status = 401, description = "Missing or wrong admin key (when BANDITD_ADMIN_KEY is \
                                      set)", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "Refused: invalid or incompatible files; nothing changed. \
                                      `errors` lists each problem with its file:line:col",
         body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be read", body = Problem,
         content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
    security(("admin_key" = [])),
)]
async fn reload(_: AdminAuth, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    match state.engine.reload("api").await {
        Ok(outcome) => Ok(HttpResponse::Ok().json(outcome)),
        Err(ReloadError::Engine(error)) => Err(ApiError::Engine(error)),
        Err(error) => Err(ApiError::Unprocessable {
            detail: error.to_string(),
            errors: error.problems(),
        }),
    }
}

/// The loaded version, load time, files, the last error, every experiment as the document the
/// server runs (what `banditd plan --server` diffs against), and the version every live
/// replica sharing the store runs (config drift).
#[utoipa::path(
    get,
    path = "/v1/admin/config",
    tag = "admin",
    operation_id = "admin_config",
    responses(
        (status = 200, description = "What is loaded", body = AdminConfig),
        (status = 401, description = "Missing or wrong admin key (when BANDITD_ADMIN_KEY is \
                                      set)", body = Problem,
         content_type = "application/problem+json"),
        (status = 503, description = "The store cannot be read", body = Problem,
         content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
    security(("admin_key" = [])),
)]
async fn config(_: AdminAuth, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let experiments: Vec<serde_json::Value> = state
        .engine
        .catalog()
        .all()
        .map(|live| live.spec.to_document())
        .collect();
    let retired = state.engine.retired_variants().await?;
    let replicas = state.engine.replica_set(&state.replica).await?;
    Ok(HttpResponse::Ok().json(AdminConfig {
        status: ConfigStatus::clone(&state.engine.config_status()),
        watch: state.engine.watch_status(),
        experiments,
        retired,
        replicas,
    }))
}

/// The store's counters since start: the figures every backend has, its health, and the
/// backend's own (sled: the sticky cache, for sizing `--sticky-cache-entries`: a low hit ratio
/// on a traffic of returning units means the cache is smaller than the working set, and every
/// miss is a sled read).
#[utoipa::path(
    get,
    path = "/v1/admin/store",
    tag = "admin",
    operation_id = "admin_store",
    responses(
        (status = 200, description = "The store's counters and health", body = StoreReport),
        (status = 401, description = "Missing or wrong admin key (when BANDITD_ADMIN_KEY is \
                                      set)", body = Problem,
         content_type = "application/problem+json"),
    ),
    security(("admin_key" = [])),
)]
async fn store(_: AdminAuth, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let stats = state.engine.store().stats();
    let (cache, exposure_flush_ms, table_bytes, redis_commits) = match &stats.backend {
        BackendStats::Sled {
            sticky_cache,
            tables,
        } => (
            sticky_cache,
            None,
            Some(TableBytesReport {
                sticky_units: tables.sticky_units,
                event_ids: tables.event_ids,
            }),
            None,
        ),
        BackendStats::Redis {
            sticky_cache,
            exposure_flush_ms,
            commits,
        } => (sticky_cache, Some(*exposure_flush_ms), None, Some(*commits)),
    };
    let lookups = cache.hits + cache.misses;
    // Counts far below 2^53, so the conversion is exact enough for a ratio.
    let hit_ratio = (lookups > 0).then(|| cache.hits as f64 / lookups as f64);
    Ok(HttpResponse::Ok().json(StoreReport {
        backend: stats.backend.name(),
        group_commits: stats.commits,
        durable_seq: stats.durable_position,
        health: state.engine.store().health(),
        exposure_flush_ms,
        table_bytes,
        redis_commits,
        sticky_cache: StickyCacheReport {
            capacity: cache.capacity,
            entries: cache.entries,
            hits: cache.hits,
            misses: cache.misses,
            hit_ratio,
        },
    }))
}
