//! The Redis (or Valkey) backend: many stateless replicas sharing one store
//! (`banditd serve --redis URL`).
//!
//! Layout and encodings: `layout`. Writes: `commit` (one group commit per replica, one
//! `apply.lua` call per epoch shard). Reads go straight to Redis, except known sticky units,
//! which a replica caches: a sticky record's variant and assignment time never change except
//! through a re-assignment, which goes through this replica's compare-and-set anyway.
//!
//! All Redis I/O runs on one tokio runtime on its own thread (the connection manager and its
//! reconnects live there), so the store works the same under actix's per-worker runtimes,
//! tests' runtimes, and plain `block_on`.
//!
//! Durability: with `appendonly yes` and `appendfsync always`, Redis fsyncs its AOF before it
//! replies to any client of that event-loop pass, so an acknowledged write, and anything a
//! read returns, is on disk. What `everysec` and asynchronous failover can lose is in the
//! README ("Scaling out").
//!
//! Modes: standalone and Sentinel-managed primaries. A script of one shard also touches the
//! epoch's facts in shard 0 and the experiment's event-id keys, which is fine on one primary
//! but not on Redis Cluster (CROSSSLOT); Cluster is refused at startup.

mod commit;
#[cfg(test)]
mod contract_tests;
mod layout;
mod read;
mod replicas;
#[cfg(test)]
mod rules_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, Script};
use tokio::sync::{mpsc, oneshot};

pub use self::commit::FLUSH_EVERY_MS as EXPOSURE_FLUSH_EVERY_MS;
use self::commit::FLUSH_EVERY_MS;
use self::commit::{Command, ExposureGroup};
use super::health::HealthState;
use super::{
    ArmCounters, AuditReport, BackendStats, Decision, Epoch, EpochInfo, HistoryPoint,
    ReplicaReport, RewardOp, RewardOutcome, SecretMaker, StickyCacheStats, StickyRecord, Store,
    StoreError, StoreFuture, StoreHealth, StoreStats, Tally, TokenCredit,
};
use crate::secret::SecretString;

/// How to reach Redis and how this replica uses it.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[user[:password]@]host[:port][/db]` or `redis+unix:///path/to/socket`.
    /// A secret: it may carry the password.
    pub url: SecretString,
    /// The password, if not in the URL (`BANDITD_REDIS_PASSWORD`).
    pub password: Option<SecretString>,
    /// Known sticky units cached in this replica (0: off).
    pub sticky_cache_entries: usize,
    /// History points are kept one per this interval, whichever replica writes first
    /// (0: one per distinct time).
    pub history_interval_ms: u64,
}

/// Why a Redis URL was refused (never quotes the URL: it may hold a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisUrlError {
    #[error(
        "rediss:// (TLS) is not supported by this build; reach Redis over a private network or a unix socket, or terminate TLS in a sidecar (e.g. stunnel) and use redis://"
    )]
    Tls,
    #[error("the Redis URL is not valid: {0}")]
    Invalid(String),
}

/// Parses the URL and applies a separate password; refuses TLS.
pub fn connection_info(
    url: &SecretString,
    password: Option<&SecretString>,
) -> Result<redis::ConnectionInfo, RedisUrlError> {
    let text = url.expose().trim();
    if text.starts_with("rediss://") || text.starts_with("valkeys://") {
        return Err(RedisUrlError::Tls);
    }
    let info = text
        .into_connection_info()
        .map_err(|error| RedisUrlError::Invalid(error.kind_name()))?;
    Ok(match password {
        Some(password) => {
            let settings = info
                .redis_settings()
                .clone()
                .set_password(password.expose());
            info.set_redis_settings(settings)
        }
        None => info,
    })
}

trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for redis::RedisError {
    /// The error's category only: the message of a URL parse error may quote the URL.
    fn kind_name(&self) -> String {
        format!("{:?}", self.kind())
    }
}

struct Scripts {
    apply: Script,
    expire: Script,
    expire_events: Script,
    history: Script,
    decide: Script,
}

/// What the commit task, the store handle and the read futures share.
pub(crate) struct Shared {
    connection: ConnectionManager,
    scripts: Scripts,
    health: HealthState,
    /// Names this replica's exposure flushes (unique per process start).
    replica_id: String,
    exposures: Mutex<HashMap<ExposureKey, ExposureGroup>>,
    cache: Mutex<HashMap<(Epoch, String), StickyRecord>>,
    cache_capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    commits: AtomicU64,
    history_interval_ms: u64,
}

#[derive(PartialEq, Eq, Hash)]
struct ExposureKey {
    epoch: Epoch,
    variant: String,
    allocation: usize,
    now_ms: u64,
    half_life_ms: Option<u64>,
}

impl Shared {
    fn take_exposures(&self) -> Vec<ExposureGroup> {
        let taken = std::mem::take(&mut *lock(&self.exposures));
        taken.into_values().collect()
    }

    fn commit_succeeded(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        if !self.health.writable() {
            self.health.end();
        }
    }

    fn cache_get(&self, epoch: &Epoch, unit: &str) -> Option<StickyRecord> {
        if self.cache_capacity == 0 {
            return None;
        }
        let found = lock(&self.cache)
            .get(&(epoch.clone(), unit.to_owned()))
            .cloned();
        match found {
            Some(_) => self.hits.fetch_add(1, Ordering::Relaxed),
            None => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        found
    }

    fn cache_put(&self, epoch: &Epoch, unit: &str, record: &StickyRecord) {
        if self.cache_capacity == 0 {
            return;
        }
        let mut cache = lock(&self.cache);
        if cache.len() >= self.cache_capacity {
            // Crude but bounded: a replica's working set refills it within seconds.
            cache.clear();
        }
        cache.insert((epoch.clone(), unit.to_owned()), record.clone());
    }

    fn cache_forget(&self, epoch: &Epoch, unit: &str) {
        if self.cache_capacity > 0 {
            lock(&self.cache).remove(&(epoch.clone(), unit.to_owned()));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Maps a Redis error to the store's: a script error is a bug (`Io`); anything else (no
/// connection, a timeout, a loading or read-only server, a failed fsync) means writes do not
/// reach Redis now, and starts a failure episode (see [`Store::health`]).
fn classify(shared: &Shared, error: &redis::RedisError) -> StoreError {
    if matches!(
        error.kind(),
        redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError)
    ) && !error.to_string().contains("MISCONF")
    {
        return StoreError::Io(format!("redis: {error}"));
    }
    let cause = format!(
        "redis is unreachable or refuses writes: {}",
        error.kind_name()
    );
    if shared.health.writable() {
        shared.health.begin(&cause);
    }
    StoreError::Unavailable(cause)
}

fn replica_error(shared: &Shared, error: replicas::ReplicaError) -> StoreError {
    match error {
        replicas::ReplicaError::Redis(error) => classify(shared, &error),
        replicas::ReplicaError::Unreadable(detail) => StoreError::Corrupt(detail),
    }
}

/// The Redis store. Cheap handle; the work happens on its own runtime thread.
pub struct RedisStore {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    commands: mpsc::UnboundedSender<Command>,
    /// Dropping it stops the runtime thread.
    _stop: oneshot::Sender<()>,
}

/// How long one Redis request may take before the store counts Redis as unreachable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the store probes Redis while it is failing.
const PROBE_EVERY: Duration = Duration::from_millis(200);

impl RedisStore {
    /// Connects (refusing to start if Redis cannot be reached or is a Cluster node) and starts
    /// the commit task.
    pub fn open(options: RedisOptions) -> Result<Self, StoreError> {
        let info = connection_info(&options.url, options.password.as_ref())
            .map_err(|error| StoreError::Incompatible(error.to_string()))?;
        let client = redis::Client::open(info)
            .map_err(|error| StoreError::Io(format!("redis: {}", error.kind_name())))?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("banditd-redis".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready_tx.send(Err(StoreError::Io(error.to_string())));
                        return;
                    }
                };
                let handle = runtime.handle().clone();
                runtime.block_on(async move {
                    match connect(client, &options).await {
                        Ok((shared, commands, receiver)) => {
                            let _ = ready_tx.send(Ok((shared.clone(), commands, handle)));
                            tokio::spawn(probe(shared.clone()));
                            tokio::spawn(commit::run(shared, receiver));
                            let _ = stop_rx.await;
                        }
                        Err(error) => {
                            let _ = ready_tx.send(Err(error));
                        }
                    }
                });
            })
            .map_err(|error| StoreError::Io(error.to_string()))?;
        let (shared, commands, runtime) = ready_rx
            .recv()
            .map_err(|_| StoreError::Io("the redis thread died".into()))??;
        Ok(Self {
            shared,
            runtime,
            commands,
            _stop: stop_tx,
        })
    }

    fn spawn<T, F>(&self, work: F) -> StoreFuture<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let task = self.runtime.spawn(work);
        Box::pin(async move {
            task.await
                .map_err(|_| StoreError::Closed)
                .and_then(|result| result)
        })
    }

    fn send<T: Send + 'static>(
        &self,
        make: impl FnOnce(commit::Reply<T>) -> Command,
    ) -> StoreFuture<T> {
        let (reply, result) = oneshot::channel();
        let sent = self.commands.send(make(reply));
        Box::pin(async move {
            sent.map_err(|_| StoreError::Closed)?;
            result.await.map_err(|_| StoreError::Closed)?
        })
    }
}

type Connected = (
    Arc<Shared>,
    mpsc::UnboundedSender<Command>,
    mpsc::UnboundedReceiver<Command>,
);

async fn connect(client: redis::Client, options: &RedisOptions) -> Result<Connected, StoreError> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    let unreachable =
        |error: redis::RedisError| StoreError::Unavailable(format!("cannot reach redis: {error}"));
    let mut connection = ConnectionManager::new_with_config(client, config)
        .await
        .map_err(unreachable)?;
    let cluster: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut connection)
        .await
        .map_err(unreachable)?;
    if cluster.contains("cluster_enabled:1") {
        return Err(StoreError::Incompatible(
            "this Redis is a Cluster node; banditd supports standalone and Sentinel-managed Redis (see the README, \"Scaling out\")".into(),
        ));
    }
    let (commands, receiver) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        connection,
        scripts: Scripts {
            apply: Script::new(include_str!("apply.lua")),
            expire: Script::new(include_str!("expire.lua")),
            expire_events: Script::new(include_str!("expire_events.lua")),
            history: Script::new(include_str!("history.lua")),
            decide: Script::new(include_str!("decide.lua")),
        },
        health: HealthState::default(),
        replica_id: replica_id(),
        exposures: Mutex::new(HashMap::new()),
        cache: Mutex::new(HashMap::new()),
        cache_capacity: options.sticky_cache_entries,
        hits: AtomicU64::new(0),
        misses: AtomicU64::new(0),
        commits: AtomicU64::new(0),
        history_interval_ms: options.history_interval_ms,
    });
    Ok((shared, commands, receiver))
}

/// A name for this process's exposure flushes: random, so two replicas never share one.
fn replica_id() -> String {
    use rand::RngExt;
    let mut bytes = [0u8; 8];
    rand::rng().fill(&mut bytes[..]);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// While the store is failing, PINGs Redis; the first answer ends the episode.
async fn probe(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    loop {
        tick.tick().await;
        if shared.health.writable() {
            continue;
        }
        let mut connection = shared.connection.clone();
        match redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
        {
            Ok(_) => shared.health.end(),
            Err(error) => shared.health.retry_failed(&error.kind_name()),
        }
    }
}

impl Store for RedisStore {
    fn sticky(&self, epoch: &Epoch, unit: &str) -> StoreFuture<Option<StickyRecord>> {
        if let Some(record) = self.shared.cache_get(epoch, unit) {
            return Box::pin(async move { Ok(Some(record)) });
        }
        let (shared, epoch, unit) = (self.shared.clone(), epoch.clone(), unit.to_owned());
        self.spawn(async move {
            let record = read::sticky(&shared, &epoch, &unit).await?;
            if let Some(record) = &record {
                shared.cache_put(&epoch, &unit, record);
            }
            Ok(record)
        })
    }

    fn insert_sticky(
        &self,
        epoch: &Epoch,
        unit: &str,
        record: StickyRecord,
        tally: Tally,
    ) -> StoreFuture<(StickyRecord, bool)> {
        let (epoch, unit) = (epoch.clone(), unit.to_owned());
        self.send(|reply| Command::Insert {
            epoch,
            unit,
            record,
            tally,
            reply,
        })
    }

    fn reassign_sticky(
        &self,
        epoch: &Epoch,
        unit: &str,
        from_variant: &str,
        record: StickyRecord,
        tally: Tally,
    ) -> StoreFuture<Option<(StickyRecord, bool)>> {
        let (epoch, unit, from) = (epoch.clone(), unit.to_owned(), from_variant.to_owned());
        self.send(|reply| Command::Reassign {
            epoch,
            unit,
            from,
            record,
            tally,
            reply,
        })
    }

    fn count_exposure(&self, epoch: &Epoch, variant: &str, tally: Tally) -> bool {
        if !self.shared.health.writable() {
            return false;
        }
        let key = ExposureKey {
            epoch: epoch.clone(),
            variant: variant.to_owned(),
            allocation: Arc::as_ptr(&tally.allocation).cast::<()>() as usize,
            now_ms: tally.now_ms,
            half_life_ms: tally.half_life_ms,
        };
        let mut exposures = lock(&self.shared.exposures);
        let group = exposures.entry(key).or_insert_with(|| ExposureGroup {
            epoch: epoch.clone(),
            variant: variant.to_owned(),
            tally,
            count: 0,
        });
        group.count += 1;
        true
    }

    fn apply_rewards(&self, ops: Vec<RewardOp>) -> StoreFuture<Vec<RewardOutcome>> {
        if ops.is_empty() {
            return Box::pin(async { Ok(Vec::new()) });
        }
        self.send(|reply| Command::Rewards { ops, reply })
    }

    fn counters(&self, epoch: &Epoch) -> StoreFuture<HashMap<String, ArmCounters>> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { read::counters(&shared, &epoch).await })
    }

    fn epoch_info(&self, epoch: &Epoch) -> StoreFuture<EpochInfo> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { read::epoch_info(&shared, &epoch).await })
    }

    fn record_decision(&self, epoch: &Epoch, decision: Decision) -> StoreFuture<Decision> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { read::record_decision(&shared, &epoch, decision).await })
    }

    fn append_history(&self, epoch: &Epoch, point: HistoryPoint) -> StoreFuture<()> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { read::append_history(&shared, &epoch, point).await })
    }

    fn history(
        &self,
        epoch: &Epoch,
        since_ms: u64,
        limit: usize,
    ) -> StoreFuture<Vec<HistoryPoint>> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { read::history(&shared, &epoch, since_ms, limit).await })
    }

    fn scan_sticky(
        &self,
        epoch: &Epoch,
        after_unit: Option<String>,
        limit: usize,
    ) -> StoreFuture<Vec<(String, StickyRecord)>> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { read::scan_sticky(&shared, &epoch, after_unit, limit).await })
    }

    fn scan_token_credits(
        &self,
        epoch: &Epoch,
        after_id: Option<String>,
        limit: usize,
    ) -> StoreFuture<Vec<TokenCredit>> {
        let (shared, epoch) = (self.shared.clone(), epoch.clone());
        self.spawn(async move { read::scan_marks(&shared, &epoch, after_id, limit).await })
    }

    fn expire(&self, now_ms: u64) -> StoreFuture<u64> {
        let shared = self.shared.clone();
        self.spawn(async move { read::expire(&shared, now_ms).await })
    }

    /// Generated once and kept in Redis (`SET NX`), so every replica signs and verifies with
    /// the same key. Anybody who can read Redis can read it: see the README ("Scaling out")
    /// for the protection rules, or pass `--token-secret` to keep it out of Redis.
    fn secret(&self, name: &str, make: SecretMaker) -> StoreFuture<Vec<u8>> {
        let (shared, key) = (self.shared.clone(), layout::secret_key(name));
        self.spawn(async move { read::secret(&shared, &key, make()).await })
    }

    fn stats(&self) -> StoreStats {
        let commits = self.shared.commits.load(Ordering::Relaxed);
        StoreStats {
            commits,
            durable_position: commits,
            backend: BackendStats::Redis {
                sticky_cache: StickyCacheStats {
                    capacity: self.shared.cache_capacity,
                    entries: lock(&self.shared.cache).len(),
                    hits: self.shared.hits.load(Ordering::Relaxed),
                    misses: self.shared.misses.load(Ordering::Relaxed),
                },
                exposure_flush_ms: FLUSH_EVERY_MS,
            },
        }
    }

    /// Recomputes every counter from the records (see `read::audit`).
    fn audit(&self) -> StoreFuture<AuditReport> {
        let shared = self.shared.clone();
        self.spawn(async move { read::audit(&shared).await })
    }

    fn writable(&self) -> bool {
        self.shared.health.writable()
    }

    fn health(&self) -> StoreHealth {
        self.shared.health.snapshot()
    }

    fn announce(&self, report: ReplicaReport, expires_ms: u64) -> StoreFuture<()> {
        let shared = self.shared.clone();
        self.spawn(async move {
            let mut connection = shared.connection.clone();
            replicas::announce(&mut connection, &report, expires_ms)
                .await
                .map_err(|error| replica_error(&shared, error))
        })
    }

    fn withdraw(&self, id: &str) -> StoreFuture<()> {
        let (shared, id) = (self.shared.clone(), id.to_owned());
        self.spawn(async move {
            let mut connection = shared.connection.clone();
            replicas::withdraw(&mut connection, &id)
                .await
                .map_err(|error| replica_error(&shared, error))
        })
    }

    fn replicas(&self, now_ms: u64) -> StoreFuture<Vec<ReplicaReport>> {
        let shared = self.shared.clone();
        self.spawn(async move {
            let mut connection = shared.connection.clone();
            replicas::live(&mut connection, now_ms)
                .await
                .map_err(|error| replica_error(&shared, error))
        })
    }

    fn shutdown(&self) -> StoreFuture<()> {
        self.send(|reply| Command::Shutdown { reply })
    }
}
