//! Building the running service from a [`Config`]: open the store, load the experiments, bind
//! the socket. `banditd serve` (`cli::serve`) starts the server through [`Application`]; the
//! integration tests spawn that same binary (`tests/api/helpers.rs`), so they run exactly what
//! an operator runs.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use rand::RngExt;

use crate::engine::{
    ANNOUNCE_EVERY_MS, Engine, ExperimentSource, ReplicaIdentity, SystemClock, TokenSigner,
    token::MIN_SECRET_BYTES,
};
use crate::http::{self, AppState, Keys};
use crate::secret::SecretString;
use crate::spec::SpecError;
use crate::store::{self, Store, StoreConfig, StoreError, StoreOptions};

mod cors;

/// How often expired event ids and token marks are swept from the store.
pub const EXPIRE_INTERVAL_SECS: u64 = 60;

/// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
pub const SHUTDOWN_GRACE_SECS: u64 = 30;

/// Seconds a new connection gets to send its first request head (actix's
/// `client_request_timeout`, here made explicit): later, actix answers 408 with an empty body
/// and closes. actix times only a connection's first head; bodies are timed by
/// `http::BodyReadTimeout`.
pub const REQUEST_HEAD_TIMEOUT_SECS: u64 = 5;

/// Everything `banditd serve` is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: String,
    pub data_dir: PathBuf,
    pub experiments: PathBuf,
    pub environment: Option<String>,
    pub workers: usize,
    pub cors_origins: Vec<String>,
    /// API keys (redacted in `Debug`, like every secret here).
    pub keys: Keys,
    /// The token HMAC secret; unset: generated once and kept in the data dir.
    pub token_secret: Option<SecretString>,
    /// A secret being rotated out: still accepted when verifying tokens, never used to sign.
    pub token_secret_previous: Option<SecretString>,
    /// How often a history point of every experiment is stored.
    pub history_interval: Duration,
    /// Reload when a file in the experiment folder changes.
    pub watch: bool,
    /// Capacity of the store's in-memory cache of durable sticky records (0: off).
    pub sticky_cache_entries: usize,
    /// sled's page cache in MiB (see `StoreOptions::page_cache_mb`).
    pub store_cache_mb: u64,
    /// See `StoreOptions::compact_min_entries`.
    pub store_compact_min_entries: u64,
    /// See `StoreOptions::checkpoint_bytes`.
    pub store_checkpoint_bytes: u64,
    /// See `StoreOptions::sled_commit_bytes`.
    pub store_sled_commit_bytes: u64,
    /// See `StoreOptions::sched_batch`.
    pub store_sched_batch: bool,
    /// After SIGTERM, how long the server keeps serving (with `/readyz` at 503) before it
    /// stops accepting and drains: time for a load balancer's probe to see it leave.
    pub shutdown_delay: Duration,
    /// How long a request body may take to arrive (see `http::BodyReadTimeout`).
    pub body_read_timeout: Duration,
    /// Which requests get an access log line (see `http::access_log`).
    pub access_log: http::access_log::AccessLog,
    /// Serve `GET /metrics` and keep the instruments up to date (see `metrics`).
    pub metrics: bool,
    /// `--redis URL`: share state with other replicas in Redis instead of the data dir. A
    /// secret (the URL may carry a password), like the separate password.
    pub redis: Option<SecretString>,
    pub redis_password: Option<SecretString>,
    pub redis_sentinel_password: Option<SecretString>,
    /// `--redis-wait-replicas` and `--redis-wait-timeout-ms` (see `store::ReplicaWait`).
    pub redis_wait: crate::store::ReplicaWait,
    /// `--redis-commit-gather-us` (see `store::CommitGather`).
    pub redis_commit_gather: crate::store::CommitGather,
    /// How long a dashboard login lasts.
    pub ui_session_lifetime: Duration,
    /// How often an open dashboard page reloads its data (zero: never).
    pub ui_refresh: Duration,
}

impl Config {
    /// The store this configuration selects (see `store::open`).
    pub fn store(&self) -> StoreConfig {
        if let Some(url) = &self.redis {
            return StoreConfig::Redis(crate::store::RedisOptions {
                url: url.clone(),
                password: self.redis_password.clone(),
                sentinel_password: self.redis_sentinel_password.clone(),
                sticky_cache_entries: self.sticky_cache_entries,
                history_interval_ms: u64::try_from(self.history_interval.as_millis())
                    .unwrap_or(u64::MAX),
                wait: self.redis_wait,
                commit_gather: self.redis_commit_gather,
            });
        }
        StoreConfig::Sled {
            dir: self.data_dir.clone(),
            options: StoreOptions {
                page_cache_mb: self.store_cache_mb,
                compact_min_entries: self.store_compact_min_entries,
                checkpoint_bytes: self.store_checkpoint_bytes,
                sled_commit_bytes: self.store_sled_commit_bytes,
                sched_batch: self.store_sched_batch,
                seal_event_log: true,
            },
        }
    }
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("the experiment folder is invalid:\n{}", format_spec_errors(.0))]
    Experiments(Vec<SpecError>),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("{variable} is {len} bytes; use at least {MIN_SECRET_BYTES} random bytes")]
    WeakSecret { variable: &'static str, len: usize },
    /// The decoder's reason is left out: it quotes a character of the secret.
    #[error("{variable} starts with `base64:` but the rest is not standard base64")]
    SecretNotBase64 { variable: &'static str },
    #[error(transparent)]
    CorsOrigin(#[from] cors::BadOrigin),
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
    #[error("cannot listen on {bind}: {source}{hint}")]
    Bind {
        bind: String,
        /// What to write instead, when the address is malformed (empty otherwise).
        hint: String,
        source: std::io::Error,
    },
}

fn format_spec_errors(errors: &[SpecError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The configured token secrets, checked before anything is created on disk.
struct CheckedSecrets {
    current: Option<Vec<u8>>,
    previous: Option<Vec<u8>>,
}

fn check_secrets(config: &Config) -> Result<CheckedSecrets, StartupError> {
    let current = match &config.token_secret {
        Some(secret) => {
            let len = secret.expose().len();
            if len < MIN_SECRET_BYTES {
                return Err(StartupError::WeakSecret {
                    variable: "--token-secret (BANDITD_TOKEN_SECRET)",
                    len,
                });
            }
            Some(secret.expose().as_bytes().to_vec())
        }
        None => None,
    };
    let previous = match &config.token_secret_previous {
        Some(secret) => Some(previous_secret(secret)?),
        None => None,
    };
    Ok(CheckedSecrets { current, previous })
}

/// The token signer: the configured secret, or the one generated once and kept by the store
/// (in its own 0600 file); plus the previous secret of a rotation, for verifying only.
async fn token_signer(
    secrets: CheckedSecrets,
    store: &dyn Store,
) -> Result<TokenSigner, StartupError> {
    let current = match secrets.current {
        Some(current) => current,
        None => store.secret("token", Box::new(generated_secret)).await?,
    };
    let signer = TokenSigner::new(&current);
    Ok(match secrets.previous {
        Some(previous) => signer.accepting_previous(&previous),
        None => signer,
    })
}

/// Prefix of a previous secret given in base64: a binary key (one a banditd from before issue
/// 9 generated and kept in its database, now in `token.secret`) cannot be put in an environment
/// variable as it is. Only the previous secret takes it: it is a new flag, so no existing
/// secret that happens to start with `base64:` changes meaning.
pub const BASE64_SECRET_PREFIX: &str = "base64:";

/// The bytes of `--token-secret-previous`: its text, or the bytes its `base64:` form encodes;
/// at least [`MIN_SECRET_BYTES`] either way.
fn previous_secret(secret: &SecretString) -> Result<Vec<u8>, StartupError> {
    use base64::Engine as _;
    const VARIABLE: &str = "--token-secret-previous (BANDITD_TOKEN_SECRET_PREVIOUS)";
    let bytes = match secret.expose().strip_prefix(BASE64_SECRET_PREFIX) {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| StartupError::SecretNotBase64 { variable: VARIABLE })?,
        None => secret.expose().as_bytes().to_vec(),
    };
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(StartupError::WeakSecret {
            variable: VARIABLE,
            len: bytes.len(),
        });
    }
    Ok(bytes)
}

/// 32 random bytes as 64 hex characters: the same entropy as raw bytes, and text, so the file's
/// content can be handed to `BANDITD_TOKEN_SECRET_PREVIOUS` when the secret is rotated.
fn generated_secret() -> Vec<u8> {
    let mut key = [0u8; 32];
    rand::rng().fill(&mut key[..]);
    key.iter()
        .flat_map(|byte| format!("{byte:02x}").into_bytes())
        .collect()
}

/// Binds `--bind`. An address without a port (`localhost`, `0.0.0.0`) gets a hint with the
/// `host:port` form, as the OS's "invalid socket address" does not say what is missing.
fn bind(address: &str) -> Result<TcpListener, StartupError> {
    TcpListener::bind(address).map_err(|source| {
        let hint = if source.kind() == std::io::ErrorKind::InvalidInput {
            let host = address.trim().trim_end_matches(':');
            let host = if host.is_empty() { "127.0.0.1" } else { host };
            format!("; --bind takes host:port, e.g. {host}:8080")
        } else {
            String::new()
        };
        StartupError::Bind {
            bind: address.to_owned(),
            hint,
            source,
        }
    })
}

/// A bound, not yet running, server.
pub struct Application {
    server: Server,
    addr: SocketAddr,
    state: web::Data<AppState>,
    store: Arc<dyn Store>,
    history_interval: Duration,
    watch: Option<crate::watcher::FolderWatch>,
    /// SIGHUP, listened for from before the server says it listens: a SIGHUP that arrived
    /// in between used to meet the default action and end the process.
    hangups: Hangups,
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

#[cfg(unix)]
fn listen_for_hangups() -> Hangups {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(hangups) => Some(hangups),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reload with POST /v1/admin/reload");
            None
        }
    }
}

#[cfg(not(unix))]
fn listen_for_hangups() -> Hangups {}

impl Application {
    /// Loads the experiments, checks the secrets, binds, then opens the store. Refuses to
    /// start on an invalid folder. Everything that can be refused without touching the disk
    /// is checked before the store opens, so a refused start leaves no new data dir behind.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let origins = cors::allowed_origins(&config.cors_origins)?;
        let version = crate::catalog::fingerprint(&config.experiments)
            .map_err(|e| StartupError::Experiments(vec![e]))?;
        let folder =
            crate::catalog::read_folder(&config.experiments, config.environment.as_deref())
                .map_err(StartupError::Experiments)?;
        let secrets = check_secrets(&config)?;
        let listener = bind(&config.bind)?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            bind: config.bind.clone(),
            hint: String::new(),
            source,
        })?;
        let experiments = folder.experiments;
        // Before the store and the experiments exist, so that both find the instruments.
        let metrics = config.metrics.then(crate::metrics::install);
        let store = store::open(&config.store()).await?;
        let signer = token_signer(secrets, store.as_ref()).await?;
        let ui_settings = web::Data::new(crate::ui::UiSettings {
            session_key: crate::ui::SessionKey::new(
                signer.derive_key(crate::ui::SESSION_KEY_PURPOSE),
            ),
            session_lifetime: config.ui_session_lifetime,
            refresh: config.ui_refresh,
            history_interval: config.history_interval,
        });
        let engine = Arc::new(
            Engine::start(experiments, store.clone(), signer, Arc::new(SystemClock))
                .await?
                .with_source_and_elsewhere(
                    ExperimentSource {
                        dir: config.experiments.clone(),
                        environment: config.environment.clone(),
                    },
                    version,
                    folder.elsewhere,
                ),
        );
        let watch = config
            .watch
            .then(|| crate::watcher::FolderWatch::start(engine.clone()))
            .flatten();
        let exporter = metrics
            .map(|metrics| web::Data::new(crate::metrics::Exporter::new(metrics, engine.clone())));
        let state = web::Data::new(AppState {
            engine,
            keys: config.keys.clone(),
            draining: false.into(),
            replica: ReplicaIdentity::of_process(addr),
        });
        tracing::info!(
            origins = %crate::telemetry::JsonList(&origins),
            "CORS allows these browser origins (none: browser pages of other origins cannot call)"
        );
        let app_state = state.clone();
        let body_read_timeout = http::BodyReadTimeout(config.body_read_timeout);
        let access_log = config.access_log;
        let server = HttpServer::new(move || {
            let app = match &exporter {
                Some(exporter) => App::new().app_data(exporter.clone()),
                None => App::new(),
            };
            app.wrap(http::RequestLayers)
                .wrap(actix_web::middleware::Condition::new(
                    !origins.is_empty(),
                    cors::cors(&origins),
                ))
                .wrap(actix_web::middleware::Condition::new(
                    !origins.is_empty(),
                    actix_web::middleware::from_fn(cors::log_refusals),
                ))
                .wrap(http::problem_bodies())
                .wrap(http::RequestSpan)
                // Outermost, so that answers the other middleware make are counted too.
                .wrap(actix_web::middleware::Condition::new(
                    exporter.is_some(),
                    crate::metrics::RecordRequests,
                ))
                .app_data(access_log)
                .app_data(app_state.clone())
                .app_data(ui_settings.clone())
                .app_data(body_read_timeout)
                .configure(http::configure)
        })
        .workers(config.workers.max(1))
        .client_request_timeout(Duration::from_secs(REQUEST_HEAD_TIMEOUT_SECS))
        .disable_signals()
        .shutdown_signal(shutdown_requested(state.clone(), config.shutdown_delay))
        .shutdown_timeout(SHUTDOWN_GRACE_SECS)
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            bind: config.bind.clone(),
            hint: String::new(),
            source,
        })?
        .run();
        let hangups = listen_for_hangups();
        crate::startup_summary::log(&config, &state.engine, addr);
        Ok(Self {
            hangups,
            server,
            addr,
            state,
            store,
            history_interval: config.history_interval.max(Duration::from_millis(100)),
            watch,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until SIGTERM/SIGINT, lets in-flight requests finish, then flushes the store.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let engine = self.state.engine.clone();
        let history_interval = self.history_interval;
        let historian = actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(history_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(error) = engine.record_history().await {
                    tracing::warn!(%error, "history snapshot failed");
                }
            }
        });
        let engine = self.state.engine.clone();
        let sweeper = actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(EXPIRE_INTERVAL_SECS));
            loop {
                tick.tick().await;
                match engine.expire().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "expired event ids"),
                    Err(error) => tracing::warn!(%error, "expiry sweep failed"),
                }
            }
        });
        let announcer = actix_web::rt::spawn(announce_replica(self.state.clone()));
        let reloader =
            actix_web::rt::spawn(reload_on_sighup(self.state.engine.clone(), self.hangups));
        let watcher = self.watch.map(|watch| actix_web::rt::spawn(watch.run()));
        let served = self.server.await;
        sweeper.abort();
        historian.abort();
        announcer.abort();
        if let Err(error) = self.state.engine.withdraw(&self.state.replica).await {
            tracing::warn!(%error, "cannot withdraw this replica's report; it expires by itself");
        }
        reloader.abort();
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        self.state.draining.store(true, Ordering::Release);
        if let Err(error) = self.store.shutdown().await {
            tracing::error!(%error, "final flush failed");
            return Err(std::io::Error::other(error.to_string()));
        }
        tracing::info!("stopped; store flushed");
        served
    }
}

/// Keeps this replica's report (the experiment-folder version it runs) fresh in the store,
/// so every replica's `GET /v1/admin/config` shows it; a failure is logged once per episode
/// (the store's health already says why) and retried at the next tick.
async fn announce_replica(state: web::Data<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_millis(ANNOUNCE_EVERY_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        match state.engine.announce(&state.replica).await {
            Ok(()) => failing = false,
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "cannot announce this replica's configuration version");
            }
            Err(_) => {}
        }
    }
}

#[cfg(unix)]
async fn reload_on_sighup(engine: Arc<Engine>, hangups: Hangups) {
    let Some(mut hangups) = hangups else {
        return;
    };
    while hangups.recv().await.is_some() {
        // A change or a refusal is logged and kept in the config status by `reload`; a
        // folder that did not change is logged here, so the operator sees the signal landed.
        if let Ok(outcome) = engine.reload("sighup").await
            && outcome.result == "unchanged"
        {
            tracing::info!(
                trigger = "sighup",
                version = %outcome.version,
                "SIGHUP: checked the experiment folder; unchanged"
            );
        }
    }
}

#[cfg(not(unix))]
async fn reload_on_sighup(_engine: Arc<Engine>, _hangups: Hangups) {}

/// Resolves on SIGTERM or SIGINT; marks the node as draining first so `/readyz` fails, then
/// keeps serving for `delay` (`--shutdown-delay`): actix closes idle keep-alive connections
/// and refuses new ones as soon as it stops, so without the delay no client, load balancer
/// probes included, could ever see the 503.
async fn shutdown_requested(state: web::Data<AppState>, delay: Duration) {
    let reason = wait_for_signal().await;
    state.draining.store(true, Ordering::Release);
    if !delay.is_zero() {
        tracing::info!(
            signal = reason,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "shutting down: /readyz answers 503; still serving for {delay:?} (--shutdown-delay)"
        );
        tokio::time::sleep(delay).await;
    }
    tracing::info!(
        signal = reason,
        "shutting down: finishing in-flight requests"
    );
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "ctrl-c"
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "ctrl-c"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_previous_secret_is_its_text_or_the_bytes_of_its_base64_form() {
        let text = "t".repeat(32);
        assert_eq!(
            previous_secret(&text.as_str().into()).unwrap(),
            text.as_bytes()
        );
        let binary: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(151)).collect();
        let encoded = format!(
            "base64:{}\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &binary)
        );
        assert_eq!(previous_secret(&encoded.as_str().into()).unwrap(), binary);
    }

    #[test]
    fn a_previous_secret_that_is_short_or_not_base64_is_refused_without_being_shown() {
        let short = previous_secret(&"base64:AAAA".into()).unwrap_err();
        assert!(
            matches!(short, StartupError::WeakSecret { len: 3, .. }),
            "{short}"
        );
        let garbled = previous_secret(&"base64:not base64 at all!".into()).unwrap_err();
        let message = garbled.to_string();
        assert!(
            message.contains("BANDITD_TOKEN_SECRET_PREVIOUS"),
            "{message}"
        );
        assert!(!message.contains("not base64 at all"), "{message}");
        let short_text = previous_secret(&"short".into()).unwrap_err();
        assert!(
            short_text.to_string().contains("at least 32"),
            "{short_text}"
        );
    }
}
