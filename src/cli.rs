//! The command line: `banditd serve`, `validate`, `schema`, `plan`, `simulate`, `export`, `audit`. Every flag also reads a
//! `BANDITD_*` environment variable, so containers are configured without arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::http::Keys;
use crate::secret::SecretString;
use crate::startup::{Application, Config};
use crate::telemetry::{self, LogFormat, TelemetryConfig};

/// Multi-armed-bandit experimentation server.
#[derive(Debug, Parser)]
#[command(name = "banditd", version = crate::build_info::LONG_VERSION, about)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "BANDITD_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the experiments over HTTP with the embedded store.
    Serve(Box<ServeArgs>),
    /// Check experiment files; prints every error (file:line:col) and exits 1 if any.
    Validate(ValidateArgs),
    /// Print the JSON Schema of the experiment YAML (the repo ships it as
    /// schema/experiment.schema.json for editors).
    Schema,
    /// Show what shipping an experiment folder would change, and whether the running
    /// server would accept it (exit 0 safe, 1 refused, 2 error).
    Plan(crate::plan::PlanArgs),
    /// Forecast an experiment before launch: regret, traffic and stopping decisions of the
    /// server's own policy against true conversion rates.
    Simulate(crate::sim::SimulateArgs),
    /// Stream an experiment's assignments, credited events or stats from a running server as
    /// CSV or NDJSON, to stdout or a file (exit 0 done, 2 error).
    Export(crate::export_cli::ExportArgs),
    /// Recompute every counter of a stopped server's store from its records and print the
    /// mismatches (exit 0 clean, 1 mismatches, 2 error such as a data dir in use).
    Audit(crate::audit_cli::AuditArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (use 0.0.0.0:8080 in containers).
    #[arg(long, env = "BANDITD_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Where the embedded store keeps its files.
    #[arg(long, env = "BANDITD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Folder of experiment YAML files.
    #[arg(long, env = "BANDITD_EXPERIMENTS", default_value = "./experiments")]
    pub experiments: PathBuf,
    /// Load only experiments whose `environments` include this name (absent: all).
    #[arg(long, env = "BANDITD_ENVIRONMENT")]
    pub environment: Option<String>,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "BANDITD_WORKERS")]
    pub workers: Option<usize>,
    /// Browser origin allowed by CORS, e.g. https://www.example.com (repeat or comma-separate).
    #[arg(
        long = "cors-origin",
        env = "BANDITD_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Key required on /v1/events as `Authorization: Bearer <key>` (unset: open).
    #[arg(long, env = "BANDITD_EVENTS_KEY", hide_env_values = true)]
    pub events_key: Option<SecretString>,
    /// Key required on admin routes; it also opens every other route.
    #[arg(long, env = "BANDITD_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<SecretString>,
    /// Key required on assign routes (unset: open, as browsers call them).
    #[arg(long, env = "BANDITD_ASSIGN_KEY", hide_env_values = true)]
    pub assign_key: Option<SecretString>,
    /// How often a history point of every experiment is stored (`30s`, `1m`, `1h`).
    #[arg(long, env = "BANDITD_HISTORY_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub history_interval: crate::spec::HumanDuration,
    /// Do not reload when a file in the experiment folder changes (SIGHUP and
    /// POST /v1/admin/reload still work).
    #[arg(long, env = "BANDITD_NO_WATCH", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_watch: bool,
    /// HMAC secret for assign tokens (≥ 32 bytes). Unset: generated once, kept in the data dir
    /// as `token.secret` (mode 0600).
    #[arg(long, env = "BANDITD_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<SecretString>,
    /// Keep state in Redis, shared by every replica, instead of the data dir:
    /// `redis://[user[:password]@]host[:port][/db]` or `redis+unix:///path` (one primary),
    /// `redis+sentinel://[user[:password]@]host:port[,host:port…]/<master>[/db]` (the primary
    /// Sentinel names), `redis+cluster://[user[:password]@]host:port[,host:port…]` (Redis
    /// Cluster); no TLS.
    #[arg(long, env = "BANDITD_REDIS", hide_env_values = true)]
    pub redis: Option<SecretString>,
    /// The Redis password, if not in the URL.
    #[arg(long, env = "BANDITD_REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<SecretString>,
    /// The Sentinels' own password (their `requirepass`), for a `redis+sentinel://` URL; the
    /// data nodes' password stays the URL's or `--redis-password`.
    #[arg(long, env = "BANDITD_REDIS_SENTINEL_PASSWORD", hide_env_values = true)]
    pub redis_sentinel_password: Option<SecretString>,
    /// With --redis: a write is acknowledged only once this many Redis replicas hold it
    /// (`WAIT` after each group commit); fewer within --redis-wait-timeout-ms and its callers
    /// get a store error (events 503, assign degraded). 0: off.
    #[arg(long, env = "BANDITD_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,
    /// How long a group commit waits for --redis-wait-replicas, in ms (1–1000).
    #[arg(
        long,
        env = "BANDITD_REDIS_WAIT_TIMEOUT_MS",
        default_value_t = 100,
        value_parser = clap::value_parser!(u64).range(1..=1000)
    )]
    pub redis_wait_timeout_ms: u64,
    /// With --redis: how long (µs) a group commit may wait, after the last one answered, for
    /// those requests to come back so that one Redis round carries them all; never longer
    /// than the last rounds took, and not at all with one request in flight. 0: off.
    #[arg(
        long,
        env = "BANDITD_REDIS_COMMIT_GATHER_US",
        default_value_t = crate::store::CommitGather::default().cap_us,
        value_parser = clap::value_parser!(u64).range(0..=100_000)
    )]
    pub redis_commit_gather_us: u64,
    /// The secret being rotated out (≥ 32 bytes; `base64:<…>` for a binary one): tokens signed
    /// with it still verify, new tokens are signed with the current secret. Remove it once a
    /// reward window has passed.
    #[arg(long, env = "BANDITD_TOKEN_SECRET_PREVIOUS", hide_env_values = true)]
    pub token_secret_previous: Option<SecretString>,
    /// Redis backend: sticky assignments kept in memory so returning units skip the store
    /// read (about 340 bytes each; 0 disables the cache). The embedded store keeps every
    /// assignment in memory and ignores it.
    #[arg(
        long,
        env = "BANDITD_STICKY_CACHE_ENTRIES",
        default_value_t = crate::store::DEFAULT_STICKY_CACHE_ENTRIES
    )]
    pub sticky_cache_entries: usize,
    /// MiB of the embedded store's page cache. A soft limit: the store's memory use runs a few
    /// times higher. Sticky reads are served from memory instead (the sticky table).
    #[arg(
        long,
        env = "BANDITD_STORE_CACHE_MB",
        default_value_t = crate::store::DEFAULT_PAGE_CACHE_MB
    )]
    pub store_cache_mb: u64,
    /// Superseded entries the embedded store's unit log may hold beyond half its units before
    /// the writer compacts it (each credited reward supersedes its unit's entry).
    #[arg(
        long,
        env = "BANDITD_STORE_COMPACT_MIN_ENTRIES",
        default_value_t = crate::store::DEFAULT_COMPACT_MIN_ENTRIES
    )]
    pub store_compact_min_entries: u64,
    /// KiB of the embedded store's redo log after which it flushes its database in the
    /// background and frees the log's segments (a checkpoint): smaller means shorter replays
    /// at restart and more flushes.
    #[arg(
        long,
        env = "BANDITD_STORE_CHECKPOINT_KIB",
        default_value_t = crate::store::DEFAULT_CHECKPOINT_BYTES >> 10,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub store_checkpoint_kib: u64,
    /// KiB of a commit's changes from which the embedded store makes it durable by flushing
    /// its database instead of writing it to its redo log, so it is written once instead of
    /// twice (one 1,000-event bulk request's commit is 16–20 KiB: only a group of many reaches
    /// the default).
    #[arg(
        long,
        env = "BANDITD_STORE_SLED_COMMIT_KIB",
        default_value_t = crate::store::DEFAULT_SLED_COMMIT_BYTES >> 10,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub store_sled_commit_kib: u64,
    /// Run the embedded store's writer thread and sled's I/O threads as Linux's `SCHED_BATCH`,
    /// so that their wake-ups wait for the HTTP worker to block instead of preempting it
    /// (fewer context switches per commit, but a commit waits for whatever else runs on the
    /// core: measured slower on a shared, loaded machine).
    #[arg(
        long,
        env = "BANDITD_STORE_SCHED_BATCH",
        default_value = "off",
        value_name = "on|off",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub store_sched_batch: bool,
    /// After SIGTERM, keep serving this long with /readyz answering 503 before the server
    /// stops accepting (`0s`: stop at once); set it to your load balancer's probe interval.
    #[arg(long, env = "BANDITD_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_delay)]
    pub shutdown_delay: std::time::Duration,
    /// How long a request body may take to arrive in full (`10s`, `1m`); slower is a 408.
    #[arg(long, env = "BANDITD_BODY_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub body_read_timeout: crate::spec::HumanDuration,
    /// Which requests get an access log line: `all`, `off`, or `sample:<rate>` (e.g.
    /// `sample:0.01` logs about one request in a hundred).
    #[arg(long, env = "BANDITD_ACCESS_LOG", default_value = crate::http::access_log::DEFAULT_ACCESS_LOG)]
    pub access_log: crate::http::access_log::AccessLog,
    /// Export spans over OTLP/HTTP to this collector (e.g. http://localhost:4318); needs a
    /// binary built by `cargo build --features otel`.
    #[arg(long, env = "BANDITD_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Serve Prometheus metrics at GET /metrics (`on`/`off`, `true`/`false`); off, the
    /// request and store paths record nothing and /metrics answers 404.
    #[arg(
        long,
        env = "BANDITD_METRICS",
        default_value = "on",
        value_name = "on|off",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub metrics: bool,
    /// Key required on GET /metrics, for a scraper that should not hold the admin key.
    /// Unset: the admin key guards /metrics (open when neither is set).
    #[arg(long, env = "BANDITD_METRICS_KEY", hide_env_values = true)]
    pub metrics_key: Option<SecretString>,
    /// How long a dashboard login lasts (`30m`, `12h`, `7d`) while an admin key is set; then
    /// /ui/ asks for the key again.
    #[arg(long, env = "BANDITD_UI_SESSION_LIFETIME", default_value = crate::ui::DEFAULT_SESSION_LIFETIME, value_parser = parse_duration)]
    pub ui_session_lifetime: crate::spec::HumanDuration,
    /// How often an open dashboard page reloads its data while its tab is visible (`0s`:
    /// never).
    #[arg(long, env = "BANDITD_UI_REFRESH", default_value = crate::ui::DEFAULT_REFRESH, value_parser = parse_delay)]
    pub ui_refresh: std::time::Duration,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Experiment files or folders.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Check the set that this environment would load.
    #[arg(long, env = "BANDITD_ENVIRONMENT")]
    pub environment: Option<String>,
    /// Exit 0 even when no experiment would be loaded (by default an empty set fails: a
    /// wrong path or environment should not pass CI).
    #[arg(long, env = "BANDITD_VALIDATE_ALLOW_EMPTY")]
    pub allow_empty: bool,
}

/// Runs the parsed command line; the exit code is the process's.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Validate(args) => validate(&args),
        Command::Schema => {
            print!("{}", crate::spec::json_schema_text());
            ExitCode::SUCCESS
        }
        Command::Plan(args) => crate::plan::main(&args),
        Command::Simulate(args) => crate::sim::run_simulate(&args),
        Command::Export(args) => crate::export_cli::main(&args),
        Command::Audit(args) => crate::audit_cli::main(&args),
        Command::Serve(args) => {
            let telemetry = TelemetryConfig {
                format: cli.log_format,
                otlp_endpoint: args.otlp_endpoint.clone().filter(|e| !e.trim().is_empty()),
            };
            // Held until the server has stopped: dropping it flushes the exporter.
            let _telemetry = match telemetry::init(&telemetry) {
                Ok(guard) => guard,
                Err(error) => {
                    eprintln!("banditd serve: {error}");
                    return ExitCode::from(1);
                }
            };
            serve(*args)
        }
    }
}

fn validate(args: &ValidateArgs) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let options = crate::catalog::ValidateOptions {
        environment: args.environment.as_deref(),
        allow_empty: args.allow_empty,
    };
    match crate::catalog::validate_report(&args.paths, options, &mut out) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("banditd validate: cannot write the report: {error}");
            ExitCode::from(2)
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = serve_config(args);
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(config.clone()).await?;
        tracing::info!(
            addr = %app.addr(),
            experiments = %config.experiments.display(),
            data_dir = %config.data_dir.display(),
            environment = config.environment.as_deref().unwrap_or("(all)"),
            "banditd listening on http://{}",
            app.addr()
        );
        app.run_until_stopped()
            .await
            .map_err(crate::startup::StartupError::Serve)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Once: as a log line (in the log format the operator chose, to the same stderr),
            // or on stderr as it is when the filter hides errors.
            if tracing::enabled!(tracing::Level::ERROR) {
                tracing::error!("banditd serve: {error}");
            } else {
                eprintln!("banditd serve: {error}");
            }
            ExitCode::from(1)
        }
    }
}

/// The server's configuration from its flags.
fn serve_config(args: ServeArgs) -> Config {
    // An empty variable (e.g. `BANDITD_EVENTS_KEY=` in a compose file) means "unset".
    let set = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
    let set_secret = |value: Option<SecretString>| value.filter(|v| !v.expose().trim().is_empty());
    Config {
        bind: args.bind,
        data_dir: args.data_dir,
        experiments: args.experiments,
        environment: set(args.environment),
        workers: args
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        cors_origins: args
            .cors_origins
            .into_iter()
            .filter(|o| !o.trim().is_empty())
            .collect(),
        keys: Keys {
            events: set_secret(args.events_key),
            admin: set_secret(args.admin_key),
            assign: set_secret(args.assign_key),
            metrics: set_secret(args.metrics_key),
        },
        token_secret: set_secret(args.token_secret),
        redis: set_secret(args.redis),
        redis_password: set_secret(args.redis_password),
        redis_sentinel_password: set_secret(args.redis_sentinel_password),
        redis_wait: crate::store::ReplicaWait {
            replicas: args.redis_wait_replicas,
            timeout_ms: args.redis_wait_timeout_ms,
        },
        redis_commit_gather: crate::store::CommitGather {
            cap_us: args.redis_commit_gather_us,
        },
        token_secret_previous: set_secret(args.token_secret_previous),
        history_interval: args.history_interval.as_std(),
        watch: !args.no_watch,
        sticky_cache_entries: args.sticky_cache_entries,
        store_cache_mb: args.store_cache_mb,
        store_compact_min_entries: args.store_compact_min_entries,
        store_checkpoint_bytes: args.store_checkpoint_kib.saturating_mul(1024),
        store_sled_commit_bytes: args.store_sled_commit_kib.saturating_mul(1024),
        store_sched_batch: args.store_sched_batch,
        body_read_timeout: args.body_read_timeout.as_std(),
        shutdown_delay: args.shutdown_delay,
        access_log: args.access_log,
        metrics: args.metrics,
        ui_session_lifetime: args.ui_session_lifetime.as_std(),
        ui_refresh: args.ui_refresh,
    }
}

fn parse_duration(text: &str) -> Result<crate::spec::HumanDuration, String> {
    crate::spec::HumanDuration::parse(text)
}

/// A duration that may be zero (`0`, `0s`: none), unlike the durations of an experiment.
fn parse_delay(text: &str) -> Result<std::time::Duration, String> {
    match text.trim() {
        "0" | "0s" | "0ms" => Ok(std::time::Duration::ZERO),
        text => parse_duration(text).map(|d| d.as_std()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(extra: &[&str]) -> ServeArgs {
        let argv = ["banditd", "serve"].iter().chain(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(args) => *args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_config_debug_output_shows_no_key_and_no_secret() {
        let secrets = [
            "admin-key-value",
            "events-key-value",
            "assign-key-value",
            "metrics-key-value",
            "current-token-secret-0123456789abcdef",
            "previous-token-secret-0123456789abcdef",
        ];
        let args = serve_args(&[
            "--admin-key",
            secrets[0],
            "--events-key",
            secrets[1],
            "--assign-key",
            secrets[2],
            "--metrics-key",
            secrets[3],
            "--token-secret",
            secrets[4],
            "--token-secret-previous",
            secrets[5],
        ]);
        let shown_args = format!("{args:?}");
        let config = serve_config(args);
        assert_eq!(
            config.token_secret_previous.as_ref().map(|s| s.expose()),
            Some(secrets[5])
        );
        let shown = format!("{config:?} {config:#?} {shown_args}");
        for secret in secrets {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("[redacted]"), "{shown}");
    }

    #[test]
    fn the_sticky_cache_flag_reaches_the_server_config() {
        let config = serve_config(serve_args(&["--sticky-cache-entries", "0"]));
        assert_eq!(config.sticky_cache_entries, 0);
        let config = serve_config(serve_args(&["--sticky-cache-entries=1000"]));
        assert_eq!(config.sticky_cache_entries, 1000);
    }

    #[test]
    fn the_store_cache_flag_reaches_the_server_config() {
        let config = serve_config(serve_args(&["--store-cache-mb", "256"]));
        assert_eq!(config.store_cache_mb, 256);
        if std::env::var_os("BANDITD_STORE_CACHE_MB").is_none() {
            let config = serve_config(serve_args(&[]));
            assert_eq!(config.store_cache_mb, crate::store::DEFAULT_PAGE_CACHE_MB);
        }
        let argv = ["banditd", "serve", "--store-cache-mb", "lots"];
        assert!(Cli::try_parse_from(argv).is_err());
    }

    #[test]
    fn the_store_sched_batch_flag_reaches_the_server_config() {
        use crate::store::StoreConfig;
        let sched_batch = |args: &[&str]| match serve_config(serve_args(args)).store() {
            StoreConfig::Sled { options, .. } => options.sched_batch,
            StoreConfig::Redis(_) => panic!("no --redis was given"),
        };
        assert!(!sched_batch(&["--store-sched-batch", "off"]));
        assert!(sched_batch(&["--store-sched-batch=on"]));
        if std::env::var_os("BANDITD_STORE_SCHED_BATCH").is_none() {
            assert!(!sched_batch(&[]));
        }
        let argv = ["banditd", "serve", "--store-sched-batch", "sometimes"];
        assert!(Cli::try_parse_from(argv).is_err());
    }

    #[test]
    fn the_body_read_timeout_flag_reaches_the_server_config() {
        let config = serve_config(serve_args(&["--body-read-timeout", "3s"]));
        assert_eq!(config.body_read_timeout, std::time::Duration::from_secs(3));
        if std::env::var_os("BANDITD_BODY_READ_TIMEOUT").is_none() {
            let config = serve_config(serve_args(&[]));
            let default = crate::http::DEFAULT_BODY_READ_TIMEOUT_SECS;
            assert_eq!(config.body_read_timeout.as_secs(), default);
        }
        let argv = ["banditd", "serve", "--body-read-timeout", "forever"];
        assert!(Cli::try_parse_from(argv).is_err());
    }

    #[test]
    fn metrics_are_on_by_default_and_the_flag_takes_on_off_true_false() {
        if std::env::var_os("BANDITD_METRICS").is_none() {
            assert!(serve_config(serve_args(&[])).metrics);
        }
        for (value, on) in [
            ("off", false),
            ("false", false),
            ("on", true),
            ("true", true),
        ] {
            let config = serve_config(serve_args(&["--metrics", value]));
            assert_eq!(config.metrics, on, "--metrics {value}");
        }
        let argv = ["banditd", "serve", "--metrics", "sometimes"];
        assert!(Cli::try_parse_from(argv).is_err());
    }

    #[test]
    fn the_shutdown_delay_takes_zero_or_a_duration_and_refuses_anything_else() {
        if std::env::var_os("BANDITD_SHUTDOWN_DELAY").is_none() {
            assert!(serve_config(serve_args(&[])).shutdown_delay.is_zero());
        }
        let config = serve_config(serve_args(&["--shutdown-delay", "5s"]));
        assert_eq!(config.shutdown_delay, std::time::Duration::from_secs(5));
        let config = serve_config(serve_args(&["--shutdown-delay", "0"]));
        assert!(config.shutdown_delay.is_zero());
        let argv = ["banditd", "serve", "--shutdown-delay", "soon"];
        assert!(Cli::try_parse_from(argv).is_err());
    }

    #[test]
    fn the_redis_wait_flags_reach_the_store_and_refuse_a_timeout_that_would_block() {
        let config = serve_config(serve_args(&[
            "--redis-wait-replicas",
            "2",
            "--redis-wait-timeout-ms",
            "250",
        ]));
        assert_eq!(
            config.redis_wait,
            crate::store::ReplicaWait {
                replicas: 2,
                timeout_ms: 250
            }
        );
        if std::env::var_os("BANDITD_REDIS_WAIT_REPLICAS").is_none() {
            assert!(!serve_config(serve_args(&[])).redis_wait.is_on());
        }
        // `WAIT n 0` blocks until n replicas answer; past a second it meets the connection's
        // response timeout.
        for timeout in ["0", "1001", "-1"] {
            let argv = ["banditd", "serve", "--redis-wait-timeout-ms", timeout];
            assert!(Cli::try_parse_from(argv).is_err(), "{timeout} accepted");
        }
    }

    #[test]
    fn the_commit_gather_flag_reaches_the_store_and_zero_turns_it_off() {
        if std::env::var_os("BANDITD_REDIS_COMMIT_GATHER_US").is_none() {
            let config = serve_config(serve_args(&[]));
            assert_eq!(config.redis_commit_gather, Default::default());
            assert!(config.redis_commit_gather.is_on());
        }
        let config = serve_config(serve_args(&["--redis-commit-gather-us", "750"]));
        assert_eq!(config.redis_commit_gather.cap_us, 750);
        let config = serve_config(serve_args(&["--redis-commit-gather-us", "0"]));
        assert!(!config.redis_commit_gather.is_on());
        let argv = ["banditd", "serve", "--redis-commit-gather-us", "-1"];
        assert!(Cli::try_parse_from(argv).is_err());
    }

    #[test]
    fn the_sticky_cache_is_on_by_default_and_refuses_a_negative_size() {
        if std::env::var_os("BANDITD_STICKY_CACHE_ENTRIES").is_none() {
            let config = serve_config(serve_args(&[]));
            assert_eq!(
                config.sticky_cache_entries,
                crate::store::DEFAULT_STICKY_CACHE_ENTRIES
            );
        }
        let argv = ["banditd", "serve", "--sticky-cache-entries", "-1"];
        assert!(Cli::try_parse_from(argv).is_err());
    }
}
