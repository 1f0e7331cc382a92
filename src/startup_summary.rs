//! The startup summary: one info line saying what this server is and how it runs (build,
//! store, experiments, watcher, environment, CORS, which keys are set — names only), and a
//! warning for every route group left open, louder when the socket is reachable from other
//! machines (the Docker image binds 0.0.0.0, and its keys are empty until an operator sets
//! them).

use std::net::SocketAddr;

use crate::engine::{Engine, WatchMode};
use crate::http::Keys;
use crate::startup::Config;
use crate::telemetry::JsonList;

/// The store as the summary names it: the sled data dir, or the Redis endpoint without its
/// credentials.
pub fn store_description(config: &Config) -> String {
    match &config.redis {
        Some(url) => format!("redis {}", redis_endpoint(url.expose())),
        None => format!("sled {}", config.data_dir.display()),
    }
}

/// `redis://user:password@host:6379/0?x=y` as `redis://host:6379/0`: the user information and
/// the query (which can carry a password too) are dropped; so for the Sentinel and Cluster
/// forms, whose hosts follow the one user information.
pub fn redis_endpoint(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    format!("{scheme}://{rest}")
}

/// The names of the keys that are set, in a fixed order.
fn keys_set(keys: &Keys) -> Vec<&'static str> {
    [
        ("admin", keys.admin.is_some()),
        ("events", keys.events.is_some()),
        ("assign", keys.assign.is_some()),
        ("metrics", keys.metrics.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

/// Logs the summary and the open-route warnings.
pub fn log(config: &Config, engine: &Engine, addr: SocketAddr) {
    let build = crate::build_info::current();
    let status = engine.config_status();
    let experiments: Vec<String> = engine
        .catalog()
        .all()
        .map(|live| live.spec.id.as_str().to_owned())
        .collect();
    let watch = engine.watch_status();
    let watcher = match (config.watch, watch.mode) {
        (false, _) => "off (--no-watch)",
        (true, WatchMode::Off) => "off (no watcher could start)",
        (true, WatchMode::Notify) => "on (notify)",
        (true, WatchMode::Poll) => "on (poll)",
    };
    let keys = keys_set(&config.keys);
    tracing::info!(
        version = build.version,
        commit = build.commit,
        profile = build.profile,
        addr = %addr,
        store = %store_description(config),
        experiments = %JsonList(&experiments),
        experiments_version = %status.version,
        watcher = %watcher,
        environment = config.environment.as_deref().unwrap_or("(all)"),
        origins = %JsonList(&config.cors_origins),
        keys_set = %JsonList(&keys),
        "banditd {} (commit {}): {} experiment(s) loaded (version {}), store {}, watcher {}",
        build.version,
        build.commit,
        experiments.len(),
        status.version,
        store_description(config),
        watcher,
    );
    warn_open_routes(&config.keys, addr);
    // An environment no file names is most likely a typo (`prod` for `production`): the
    // server then serves only the experiments that list no environment.
    let catalog = engine.catalog();
    let specs = catalog
        .all()
        .map(|live| &live.spec)
        .chain(catalog.all_elsewhere().map(AsRef::as_ref));
    if let Some(note) = crate::catalog::unknown_environment(specs, config.environment.as_deref()) {
        tracing::warn!(
            environment = config.environment.as_deref().unwrap_or_default(),
            "{note}"
        );
    }
}

/// One warning per open route group; the network-reachable case says who can use it.
fn warn_open_routes(keys: &Keys, addr: SocketAddr) {
    let exposed = !addr.ip().is_loopback();
    let open = [
        (
            "admin",
            keys.admin.is_none(),
            "BANDITD_ADMIN_KEY (--admin-key)",
            "reload experiments, read the config and the store",
        ),
        (
            "events",
            keys.events.is_none() && keys.admin.is_none(),
            "BANDITD_EVENTS_KEY (--events-key)",
            "post rewards and export data",
        ),
    ];
    for (routes, is_open, key, power) in open {
        if !is_open {
            continue;
        }
        if exposed {
            tracing::warn!(
                routes,
                addr = %addr,
                "OPEN TO THE NETWORK: the {routes} routes need no key and banditd listens on \
                 {addr}, which other machines can reach: anyone there can {power}. Set {key}, \
                 or bind 127.0.0.1"
            );
        } else {
            tracing::warn!(
                routes,
                addr = %addr,
                "the {routes} routes are open (no key): set {key} before exposing {addr}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_endpoint_is_shown_without_its_credentials() {
        for (url, shown) in [
            (
                "redis://user:s3cret@cache.internal:6379/2",
                "redis://cache.internal:6379/2",
            ),
            ("redis://:s3cret@cache:6379", "redis://cache:6379"),
            (
                "redis://cache:6379/0?password=s3cret",
                "redis://cache:6379/0",
            ),
            (
                "redis+unix:///run/redis.sock",
                "redis+unix:///run/redis.sock",
            ),
            ("cache:6379", "redis://cache:6379"),
            (
                "redis+cluster://:s3cret@n1:7000,n2:7001",
                "redis+cluster://n1:7000,n2:7001",
            ),
            (
                "redis+sentinel://u:s3cret@s1:26379,s2:26379/mymaster/1",
                "redis+sentinel://s1:26379,s2:26379/mymaster/1",
            ),
        ] {
            assert_eq!(redis_endpoint(url), shown, "{url}");
        }
    }

    #[test]
    fn only_the_names_of_set_keys_are_listed() {
        let keys = Keys {
            admin: Some("admin-secret-value".into()),
            metrics: Some("metrics-secret-value".into()),
            ..Keys::default()
        };
        assert_eq!(keys_set(&keys), ["admin", "metrics"]);
    }
}
