//! The Redis (or Valkey) backend: many stateless replicas sharing one store
//! (`banditd serve --redis URL`).
//!
//! Layout and encodings: `layout`. Writes: `commit` (one group commit per replica, one
//! call of the `apply` library per epoch, or per epoch shard under Cluster, built by `call`; a
//! Redis function where Redis has Functions, `scripts`), and for rewards the claim, apply and
//! settle steps of `rewards`. Reads go straight to Redis, except known sticky units,
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
//! Modes (`connect`): a standalone primary, the primary that Sentinels name (followed across a
//! failover), or a Redis Cluster. Every script call touches one slot (`layout`, "the slot
//! rule"), so the store code is the same in every mode.

mod call;
#[cfg(test)]
mod call_pack_tests;
#[cfg(test)]
mod cluster_tests;
mod commit;
mod confirm;
#[cfg(test)]
mod confirm_rules_tests;
mod connect;
#[cfg(test)]
mod contract_tests;
#[cfg(test)]
mod cost_tests;
mod delays;
#[cfg(test)]
mod digest_tests;
mod direct;
#[cfg(test)]
mod direct_reply_tests;
#[cfg(test)]
mod direct_tests;
mod event_digest;
mod exposure_key;
mod fresh;
#[cfg(test)]
mod fresh_tests;
mod gather;
#[cfg(test)]
mod gather_tests;
mod halts;
mod judged;
#[cfg(test)]
mod judged_tests;
mod layout;
#[cfg(test)]
mod legacy_tests;
#[cfg(test)]
mod pending_index_tests;
mod read;
mod record_cache;
mod replicas;
#[cfg(test)]
mod replication_tests;
mod rewards;
#[cfg(test)]
mod rules_tests;
mod scripts;
#[cfg(test)]
mod scripts_tests;
#[cfg(test)]
mod sentinel_contract_tests;
#[cfg(test)]
mod sentinel_tests;
#[cfg(test)]
mod share_set_tests;
#[cfg(test)]
mod sticky_layout_tests;
mod sticky_read;
mod store_impl;
#[cfg(test)]
mod tests;
mod timeline;
mod tx;
mod tx_plan;
#[cfg(test)]
mod tx_tests;
mod wait;
#[cfg(test)]
mod wait_tests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Script;
use tokio::sync::{mpsc, oneshot};

pub use self::commit::FLUSH_EVERY_MS as EXPOSURE_FLUSH_EVERY_MS;
use self::commit::FLUSH_EVERY_MS;
use self::commit::{Command, ExposureGroup, Queued};
use self::connect::{KindName, Link};
pub use self::connect::{RedisUrlError, Topology, topology};
pub use self::gather::CommitGather;
use self::record_cache::RecordCache;
pub use self::wait::ReplicaWait;
use super::health::HealthState;
use super::{
    ArmCounters, AuditReport, BackendStats, ConfirmOp, ConfirmOutcome, Decision, DelayHistograms,
    Epoch, EpochInfo, EpochSpec, HistoryPoint, RedisCommitStats, ReplicaReport, RewardOp,
    RewardOutcome, SecretMaker, StickyCacheStats, StickyRecord, Store, StoreError, StoreFuture,
    StoreHealth, StoreStats, Tally, TokenConfirmation, TokenCreditPage,
};
use crate::secret::SecretString;

/// How to reach Redis and how this replica uses it.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[user[:password]@]host[:port][/db]`, `redis+unix:///path/to/socket`,
    /// `redis+sentinel://…` or `redis+cluster://…` (see `connect`). A secret: it may carry the
    /// password.
    pub url: SecretString,
    /// The password, if not in the URL (`BANDITD_REDIS_PASSWORD`).
    pub password: Option<SecretString>,
    /// Under Sentinel, the Sentinels' own password (their `requirepass`;
    /// `BANDITD_REDIS_SENTINEL_PASSWORD`); ignored in the other modes.
    pub sentinel_password: Option<SecretString>,
    /// Known sticky units cached in this replica (0: off).
    pub sticky_cache_entries: usize,
    /// History points are kept one per this interval, whichever replica writes first
    /// (0: one per distinct time).
    pub history_interval_ms: u64,
    /// Replicas that must hold a write before it is acknowledged (`wait`; off by default).
    pub wait: ReplicaWait,
    /// How long a group commit may wait for the requests the last one answered (`gather`).
    pub commit_gather: CommitGather,
}

struct Scripts {
    /// Every group commit's writes: a Redis function where Redis has them (`scripts`).
    apply: scripts::ApplyLibrary,
    claim: Script,
    settle: Script,
    expire: Script,
    expire_events: Script,
    history: Script,
    /// A first-write-wins epoch fact (decision, start).
    first: Script,
    /// New units' names moved into their shard's unit index (`sticky_read::index_pending`).
    index: Script,
}

/// What the commit task, the store handle and the read futures share.
pub(crate) struct Shared {
    link: Link,
    scripts: Scripts,
    health: HealthState,
    /// Names this replica's exposure flushes and reward claims (unique per process start).
    replica_id: String,
    claims: AtomicU64,
    /// Members of `layout::EPOCHS_KEY` this process has written (they are never removed).
    registered: Mutex<HashSet<String>>,
    /// Epochs whose start this process has seen fixed (`read::fix_start`).
    started: Mutex<HashMap<Epoch, u64>>,
    /// When a reader last looked for an unfixed start, by epoch.
    start_looked: Mutex<HashMap<Epoch, std::time::Instant>>,
    exposures: Mutex<HashMap<ExposureKey, ExposureGroup>>,
    cache: RecordCache,
    /// The counters and delay histograms last read, by shard (`fresh`).
    arm_copies: fresh::ShardCopies<read::ShardArms, HashMap<String, ArmCounters>>,
    delay_copies:
        fresh::ShardCopies<HashMap<String, DelayHistograms>, HashMap<String, DelayHistograms>>,
    hits: AtomicU64,
    misses: AtomicU64,
    commits: AtomicU64,
    /// Commands sent to the commit task, and its gather (`gather`).
    arrivals: gather::Arrivals,
    history_interval_ms: u64,
    wait: ReplicaWait,
    /// The deployment's event-id digest key, once read (`event_digest`).
    digest_key: event_digest::DigestKey,
    /// Whether unit rewards are judged here before their call (`judged`; op `B`'s kind
    /// `V`): always in service; tests turn it off to compare with the script's judging.
    judge_rewards: std::sync::atomic::AtomicBool,
    /// Unit rewards applied as a transaction of plain commands (`tx`): its switch (on in
    /// service), connection and back-off.
    tx: tx::TxState,
    /// Run between `judged::fetch`'s read and the call (tests: another replica's write
    /// in between).
    #[cfg(test)]
    after_judged_read: Mutex<Option<Box<dyn Fn() + Send>>>,
    /// Rewards answered `V` (tests: which path a reward took).
    #[cfg(test)]
    predicted: AtomicU64,
    /// Rewards sent as kind `V` and answered otherwise (tests: judgments taken back).
    #[cfg(test)]
    taken_back: AtomicU64,
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
    /// A claim id no other claim (of any replica) has, naming the hour of `now_ms`
    /// (`layout::claim_outcome`).
    fn next_claim(&self, now_ms: u64) -> String {
        let n = self.claims.fetch_add(1, Ordering::Relaxed);
        format!(
            "o{}:{}:{n}",
            now_ms / layout::CLAIM_HOUR_MS,
            self.replica_id
        )
    }

    /// Whether a reader that found no start should look at the shards now (once a second).
    fn should_look_for_start(&self, epoch: &Epoch) -> bool {
        let now = std::time::Instant::now();
        let mut looked = lock(&self.start_looked);
        match looked.get(epoch) {
            Some(at) if now.duration_since(*at) < START_LOOK_EVERY => false,
            _ => {
                looked.insert(epoch.clone(), now);
                true
            }
        }
    }

    fn take_exposures(&self) -> Vec<ExposureGroup> {
        let taken = std::mem::take(&mut *lock(&self.exposures));
        taken.into_values().collect()
    }

    fn judges_rewards(&self) -> bool {
        self.judge_rewards.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    fn after_judged_read(&self) {
        if let Some(hook) = lock(&self.after_judged_read).as_ref() {
            hook();
        }
    }

    /// Which way the commits went (`BackendStats::Redis`).
    fn commit_stats(&self) -> RedisCommitStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RedisCommitStats {
            transactions_applied: read(&self.tx.transacted),
            transaction_conflicts: read(&self.tx.aborted),
            transactions_discarded: read(&self.tx.discarded),
            gather_delayed: read(&self.arrivals.delayed),
            gather_waited_us: read(&self.arrivals.waited_us),
            gather_pauses: read(&self.arrivals.pauses),
        }
    }

    fn commit_succeeded(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        if !self.health.writable() {
            self.health.end();
        }
    }

    fn cache_get(&self, epoch: &Epoch, unit: &str) -> Option<StickyRecord> {
        if self.cache.capacity() == 0 {
            return None;
        }
        let found = self.cache.get(epoch, unit);
        match found {
            Some(_) => self.hits.fetch_add(1, Ordering::Relaxed),
            None => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        found
    }

    fn cache_put(&self, epoch: &Epoch, unit: &str, record: &StickyRecord) {
        self.cache.put(epoch, unit, record);
    }

    fn cache_forget(&self, epoch: &Epoch, unit: &str) {
        self.cache.forget(epoch, unit);
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
    use redis::{ErrorKind, ServerErrorKind};
    let bug = match error.kind() {
        ErrorKind::Server(ServerErrorKind::ResponseError) => !error.to_string().contains("MISCONF"),
        ErrorKind::Server(ServerErrorKind::CrossSlot) => true,
        _ => false,
    };
    if bug {
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
    commands: mpsc::UnboundedSender<Queued>,
    /// Dropping it stops the runtime thread.
    _stop: oneshot::Sender<()>,
}

/// How often a reader may look for an epoch start left unfixed by a replica that died.
const START_LOOK_EVERY: Duration = Duration::from_secs(1);

/// How often the store probes Redis while it is failing.
const PROBE_EVERY: Duration = Duration::from_millis(200);

impl RedisStore {
    /// Connects in the URL's mode (refusing to start if Redis cannot be reached, or is a
    /// Cluster node named by a plain `redis://` URL) and starts the commit task.
    pub fn open(options: RedisOptions) -> Result<Self, StoreError> {
        let topology = topology(
            &options.url,
            options.password.as_ref(),
            options.sentinel_password.as_ref(),
        )
        .map_err(|error| StoreError::Incompatible(error.to_string()))?;
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
                    match connect(topology, &options).await {
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

    /// Turns the judging of unit rewards before their call on or off (`judged`).
    #[cfg(test)]
    pub(crate) fn set_judging(&self, on: bool) {
        self.shared.judge_rewards.store(on, Ordering::Relaxed);
    }

    /// Turns the transaction of plain commands on or off (`tx`; on by default).
    #[cfg(test)]
    pub(crate) fn set_transactions(&self, on: bool) {
        self.shared.tx.set(on);
    }

    /// How many commits were applied by a transaction, and how many transactions aborted
    /// (as the stats report them).
    #[cfg(test)]
    pub(crate) fn transactions(&self) -> (u64, u64) {
        let stats = self.shared.commit_stats();
        (stats.transactions_applied, stats.transaction_conflicts)
    }

    /// How many transactions Redis discarded (`EXECABORT`), as the stats report it.
    #[cfg(test)]
    pub(crate) fn discarded_transactions(&self) -> u64 {
        self.shared.commit_stats().transactions_discarded
    }

    /// The next transaction queues a command Redis refuses, so that Redis discards it.
    #[cfg(test)]
    pub(crate) fn refuse_next_transaction(&self) {
        self.shared.tx.refuse_next.store(true, Ordering::Relaxed);
    }

    /// How many rewards were answered `V` (applied as this replica judged them).
    #[cfg(test)]
    pub(crate) fn predicted(&self) -> u64 {
        self.shared.predicted.load(Ordering::Relaxed)
    }

    /// How many rewards sent as kind `V` were answered otherwise (the script judged them).
    #[cfg(test)]
    pub(crate) fn taken_back(&self) -> u64 {
        self.shared.taken_back.load(Ordering::Relaxed)
    }

    /// Runs `hook` after each read of `judged::fetch` or of a transaction (`tx`), before the
    /// call or `EXEC` (None: nothing).
    #[cfg(test)]
    pub(crate) fn on_judged_read(&self, hook: Option<Box<dyn Fn() + Send>>) {
        *lock(&self.shared.after_judged_read) = hook;
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
        let command = make(reply);
        let urgent = matches!(command, Command::Shutdown { .. });
        let count = self.shared.arrivals.counting(urgent);
        let sent = self.commands.send((command, std::time::Instant::now()));
        self.shared.arrivals.queued(count, urgent);
        Box::pin(async move {
            sent.map_err(|_| StoreError::Closed)?;
            result.await.map_err(|_| StoreError::Closed)?
        })
    }
}

type Connected = (
    Arc<Shared>,
    mpsc::UnboundedSender<Queued>,
    mpsc::UnboundedReceiver<Queued>,
);

async fn connect(topology: Topology, options: &RedisOptions) -> Result<Connected, StoreError> {
    let mode = topology.mode();
    let link = Link::open(topology).await.map_err(|error| {
        if error.kind() == redis::ErrorKind::InvalidClientConfig {
            StoreError::Incompatible(format!("redis ({mode}): {error}"))
        } else if error.kind() == redis::ErrorKind::AuthenticationFailed {
            StoreError::Unavailable(format!("redis ({mode}) refused the login: {error}"))
        } else {
            StoreError::Unavailable(format!("cannot reach redis ({mode}): {error}"))
        }
    })?;
    let (commands, receiver) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        link,
        scripts: Scripts {
            apply: scripts::ApplyLibrary::new(),
            claim: Script::new(include_str!("claim.lua")),
            settle: Script::new(include_str!("settle.lua")),
            expire: Script::new(include_str!("expire.lua")),
            expire_events: Script::new(include_str!("expire_events.lua")),
            history: Script::new(include_str!("history.lua")),
            first: Script::new(include_str!("first.lua")),
            index: Script::new(include_str!("index.lua")),
        },
        health: HealthState::default(),
        replica_id: replica_id(),
        claims: AtomicU64::new(0),
        registered: Mutex::new(HashSet::new()),
        started: Mutex::new(HashMap::new()),
        start_looked: Mutex::new(HashMap::new()),
        exposures: Mutex::new(HashMap::new()),
        cache: RecordCache::new(options.sticky_cache_entries),
        arm_copies: fresh::ShardCopies::default(),
        delay_copies: fresh::ShardCopies::default(),
        hits: AtomicU64::new(0),
        misses: AtomicU64::new(0),
        commits: AtomicU64::new(0),
        arrivals: gather::Arrivals::new(options.commit_gather),
        history_interval_ms: options.history_interval_ms,
        wait: options.wait,
        digest_key: event_digest::DigestKey::default(),
        judge_rewards: std::sync::atomic::AtomicBool::new(true),
        tx: tx::TxState::default(),
        #[cfg(test)]
        after_judged_read: Mutex::new(None),
        #[cfg(test)]
        predicted: AtomicU64::new(0),
        #[cfg(test)]
        taken_back: AtomicU64::new(0),
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

/// While the store is failing, checks Redis (`Link::check`; under Sentinel, first asks the
/// Sentinels which node is the primary now, and follows it); the first success ends the
/// episode.
async fn probe(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    loop {
        tick.tick().await;
        if shared.health.writable() {
            continue;
        }
        if let Err(error) = shared.link.follow_primary().await {
            shared.health.retry_failed(&error.kind_name());
            continue;
        }
        match shared.link.check().await {
            // With --redis-wait-replicas, a write is acknowledged again only once replicas
            // hold it: until then the store stays unready.
            Ok(_) => match wait::probe(&shared).await {
                Ok(true) => shared.health.end(),
                Ok(false) => shared.health.retry_failed("too few replicas acknowledged"),
                Err(error) => shared.health.retry_failed(&error.kind_name()),
            },
            Err(error) => shared.health.retry_failed(&error.kind_name()),
        }
    }
}
