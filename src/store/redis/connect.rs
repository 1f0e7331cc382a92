//! Which Redis to talk to, and the one connection handle the rest of the backend uses.
//!
//! Three URL forms select the mode (README, "Scaling out"):
//!
//! - `redis://[user[:password]@]host[:port][/db]` or `redis+unix:///path`: one primary;
//! - `redis+sentinel://[user[:password]@]host:port[,host:port…]/<master-name>[/db]`: the
//!   primary that the Sentinels name (the credentials and db are the primary's; the Sentinels
//!   are asked with the separate Sentinel password when one is given — Sentinel's own
//!   `requirepass` — and without credentials otherwise);
//! - `redis+cluster://[user[:password]@]host:port[,host:port…]`: a Redis Cluster, found from
//!   any of the seed nodes (db 0 only, as Cluster has no other).
//!
//! The backend sees one [`Connection`] whatever the mode: every script call names keys of one
//! slot, so the cluster client routes it, and a standalone or Sentinel primary takes it as is.
//! Under Sentinel the handle is re-pointed when the Sentinels name another primary
//! ([`Link::follow_primary`]).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture, Value,
};

use crate::secret::SecretString;

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

/// How the Redis deployment is reached, as the URL says.
#[derive(Clone)]
pub enum Topology {
    Standalone(ConnectionInfo),
    Sentinel {
        sentinels: Vec<ConnectionInfo>,
        master: String,
        /// Credentials and db of the primary (and of nothing else).
        primary: redis::RedisConnectionInfo,
    },
    Cluster(Vec<ConnectionInfo>),
}

impl Topology {
    /// The mode's name, for errors and the startup line.
    pub fn mode(&self) -> &'static str {
        match self {
            Topology::Standalone(_) => "standalone",
            Topology::Sentinel { .. } => "sentinel",
            Topology::Cluster(_) => "cluster",
        }
    }
}

const SENTINEL_SCHEME: &str = "redis+sentinel://";
const CLUSTER_SCHEME: &str = "redis+cluster://";

/// Parses the URL (any of the three forms) and applies a separate password (the data nodes')
/// and, under Sentinel, the Sentinels' password; refuses TLS.
pub fn topology(
    url: &SecretString,
    password: Option<&SecretString>,
    sentinel_password: Option<&SecretString>,
) -> Result<Topology, RedisUrlError> {
    let text = url.expose().trim();
    if ["rediss://", "valkeys://", "rediss+"]
        .iter()
        .any(|tls| text.starts_with(tls))
    {
        return Err(RedisUrlError::Tls);
    }
    if let Some(rest) = text.strip_prefix(SENTINEL_SCHEME) {
        let (userinfo, hosts, path) = split_multi_host(rest)?;
        let mut path = path.split('/').filter(|part| !part.is_empty());
        let master = path
            .next()
            .ok_or_else(|| invalid("a sentinel URL names the master after the hosts: /<name>"))?;
        let db = path.next().unwrap_or("0");
        if path.next().is_some() {
            return Err(invalid("a sentinel URL's path is /<master-name>[/db]"));
        }
        let sentinels = hosts
            .iter()
            .map(|host| {
                parse(&format!("redis://{host}")).map(|s| with_password(s, sentinel_password))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let primary = parse(&format!("redis://{userinfo}{}/{db}", hosts[0]))?;
        let primary = with_password(primary, password);
        return Ok(Topology::Sentinel {
            sentinels,
            master: master.to_owned(),
            primary: primary.redis_settings().clone(),
        });
    }
    if let Some(rest) = text.strip_prefix(CLUSTER_SCHEME) {
        let (userinfo, hosts, path) = split_multi_host(rest)?;
        if !matches!(path, "" | "/" | "/0") {
            return Err(invalid("a Redis Cluster has only db 0"));
        }
        let nodes = hosts
            .iter()
            .map(|host| {
                parse(&format!("redis://{userinfo}{host}")).map(|n| with_password(n, password))
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Topology::Cluster(nodes));
    }
    Ok(Topology::Standalone(with_password(parse(text)?, password)))
}

/// `[userinfo@]host[,host…][/path]` → (`userinfo@` or empty, hosts, path).
fn split_multi_host(rest: &str) -> Result<(&str, Vec<&str>, &str), RedisUrlError> {
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
    if hosts.iter().any(|host| host.is_empty()) {
        return Err(invalid("list at least one host:port, comma-separated"));
    }
    Ok((userinfo, hosts, path))
}

fn invalid(why: &str) -> RedisUrlError {
    RedisUrlError::Invalid(why.to_owned())
}

fn parse(url: &str) -> Result<ConnectionInfo, RedisUrlError> {
    url.into_connection_info()
        .map_err(|error| RedisUrlError::Invalid(error.kind_name()))
}

fn with_password(info: ConnectionInfo, password: Option<&SecretString>) -> ConnectionInfo {
    match password {
        Some(password) => {
            let settings = info
                .redis_settings()
                .clone()
                .set_password(password.expose());
            info.set_redis_settings(settings)
        }
        None => info,
    }
}

pub(crate) trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for redis::RedisError {
    /// The error's category only: the message of a URL parse error may quote the URL.
    fn kind_name(&self) -> String {
        format!("{:?}", self.kind())
    }
}

/// One connection, whatever the mode; cheap to clone (all share one multiplexed link).
#[derive(Clone)]
pub enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// The live connection and, under Sentinel, how to find the primary again.
pub struct Link {
    current: ArcSwap<Connection>,
    sentinel: Option<tokio::sync::Mutex<SentinelState>>,
    /// A standalone primary's client, for connections of their own (`Link::dedicated`).
    standalone: Option<redis::Client>,
}

struct SentinelState {
    client: SentinelClient,
    /// The address the current connection goes to (`host:port`).
    primary: String,
}

/// The key a failing store writes to learn whether writes go through again (see
/// [`Link::check`]); it expires by itself.
pub const PROBE_KEY: &str = "bd:probe";

/// How long one Redis request may take before the store counts Redis as unreachable.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500))
}

fn address(info: &ConnectionInfo) -> String {
    info.addr().to_string()
}

impl Link {
    /// Connects in the URL's mode. Refuses a Cluster node reached by a plain `redis://` URL:
    /// the cluster client must route by slot.
    pub async fn open(topology: Topology) -> Result<Self, redis::RedisError> {
        match topology {
            Topology::Standalone(info) => {
                let client = redis::Client::open(info)?;
                let standalone = client.clone();
                let mut connection =
                    ConnectionManager::new_with_config(client, manager_config()).await?;
                let cluster: String = redis::cmd("INFO")
                    .arg("cluster")
                    .query_async(&mut connection)
                    .await?;
                if cluster.contains("cluster_enabled:1") {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "this Redis is a Cluster node: use a redis+cluster:// URL",
                    )));
                }
                let mut link = Self::single(Connection::Single(connection), None);
                link.standalone = Some(standalone);
                Ok(link)
            }
            Topology::Cluster(nodes) => {
                let client = redis::cluster::ClusterClient::builder(nodes)
                    .connection_timeout(RESPONSE_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(2)
                    .max_retry_wait(500)
                    .build()?;
                let connection = client.get_async_connection().await?;
                Ok(Self::single(Connection::Cluster(connection), None))
            }
            Topology::Sentinel {
                sentinels,
                master,
                primary,
            } => {
                let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(primary);
                let mut client = SentinelClient::build(
                    sentinels.clone(),
                    master,
                    Some(node),
                    SentinelServerType::Master,
                )?;
                let (connection, primary) = match primary_connection(&mut client).await {
                    Ok(found) => found,
                    Err(error) => return Err(explain_sentinel_failure(error, &sentinels).await),
                };
                Ok(Self::single(
                    Connection::Single(connection),
                    Some(SentinelState { client, primary }),
                ))
            }
        }
    }

    fn single(connection: Connection, sentinel: Option<SentinelState>) -> Self {
        Self {
            current: ArcSwap::from_pointee(connection),
            sentinel: sentinel.map(tokio::sync::Mutex::new),
            standalone: None,
        }
    }

    /// A connection of its own to the single primary (standalone, or the one the Sentinels
    /// name now), for state Redis keeps per connection (`WATCH`, `tx`): the shared link is
    /// multiplexed, and its manager reconnects behind its users' backs, where a `MULTI` sent
    /// on a new connection would run without the `WATCH` of the old. This one is never
    /// reconnected: its user drops it on any error and asks for another. None under Cluster.
    pub async fn dedicated(&self) -> Result<Option<MultiplexedConnection>, redis::RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(RESPONSE_TIMEOUT));
        let client = match (&self.standalone, &self.sentinel) {
            (Some(client), _) => client.clone(),
            (None, Some(sentinel)) => sentinel.lock().await.client.async_get_client().await?,
            (None, None) => return Ok(None),
        };
        let connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok(Some(connection))
    }

    /// Whether every script call must keep to one slot (Cluster). A single primary
    /// (standalone or Sentinel's) takes calls over several slots.
    pub fn is_cluster(&self) -> bool {
        matches!(**self.current.load(), Connection::Cluster(_))
    }

    /// The connection to use now.
    pub fn get(&self) -> Connection {
        (**self.current.load()).clone()
    }

    /// Whether writes can go through now: PING (every primary, under Cluster) and, under
    /// Cluster, `cluster_state:ok` (every slot served): nodes answer PING a while before
    /// their cluster is whole again. A single primary (standalone or Sentinel's) must also take
    /// a write ([`PROBE_KEY`], gone after a second): it answers PING while it refuses every
    /// write as a replica (READONLY), short of replicas under `min-replicas-to-write`
    /// (NOREPLICAS) or after a failed fsync (MISCONF).
    pub async fn check(&self) -> Result<(), redis::RedisError> {
        let mut connection = self.get();
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        if let Connection::Single(_) = connection {
            let () = redis::cmd("SET")
                .arg(PROBE_KEY)
                .arg(1)
                .arg("PX")
                .arg(1000)
                .query_async(&mut connection)
                .await?;
        }
        if let Connection::Cluster(_) = connection {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut connection)
                .await?;
            if !info.contains("cluster_state:ok") {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown),
                    "the cluster is not ok yet",
                )));
            }
        }
        Ok(())
    }

    /// Under Sentinel: asks the Sentinels which node is the primary now (they check its
    /// `ROLE`), and re-points the connection when it moved. Elsewhere: nothing to do.
    pub async fn follow_primary(&self) -> Result<(), redis::RedisError> {
        let Some(sentinel) = &self.sentinel else {
            return Ok(());
        };
        let mut state = sentinel.lock().await;
        let client = state.client.async_get_client().await?;
        let found = address(client.get_connection_info());
        if found != state.primary {
            let connection = ConnectionManager::new_with_config(client, manager_config()).await?;
            self.current.store(Arc::new(Connection::Single(connection)));
            tracing::warn!(primary = %found, "redis: following the primary named by Sentinel");
            state.primary = found;
        }
        Ok(())
    }
}

impl Link {
    /// Every key matching `pattern`, on every primary (Cluster: each primary in turn), by SCAN.
    /// For the audit, which is not on the request path.
    pub async fn scan(&self, pattern: &str) -> Result<Vec<String>, redis::RedisError> {
        use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
        let connection = self.get();
        let nodes = match &connection {
            Connection::Single(_) => vec![None],
            Connection::Cluster(cluster) => primaries(cluster.clone()).await?,
        };
        let mut found = Vec::new();
        for node in nodes {
            let mut cursor: u64 = 0;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000);
                let (next, keys): (u64, Vec<String>) = match (&node, &connection) {
                    (Some((host, port)), Connection::Cluster(cluster)) => {
                        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        });
                        let value = cluster.clone().route_command(scan, routing).await?;
                        redis::from_redis_value(value)?
                    }
                    _ => scan.query_async(&mut connection.clone()).await?,
                };
                found.extend(keys);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(found)
    }
}

/// The addresses of the Cluster's primaries that serve slots, from `CLUSTER NODES`
/// (`<id> <ip:port@cport[,hostname]> <flags> <primary> … <slots…>`).
async fn primaries(
    mut cluster: ClusterConnection,
) -> Result<Vec<Option<(String, u16)>>, redis::RedisError> {
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut cluster)
        .await?;
    Ok(nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            if !flags.split(',').any(|flag| flag == "master") || flags.contains("fail") {
                return None;
            }
            let address = fields.get(1)?.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some(Some((host.to_owned(), port.parse().ok()?)))
        })
        .collect())
}

/// Whether Redis refused the credentials (a wrong password, or none where one is required).
fn refused_credentials(error: &redis::RedisError) -> bool {
    error.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(error.code(), Some("NOAUTH" | "WRONGPASS"))
}

/// Names which password was refused when the primary could not be found through the
/// Sentinels: the Sentinels' own (asked here, one PING each) or, failing that, the data
/// nodes'. Never quotes a password: only which setting holds the wrong one.
async fn explain_sentinel_failure(
    error: redis::RedisError,
    sentinels: &[ConnectionInfo],
) -> redis::RedisError {
    for sentinel in sentinels {
        let refused = match redis::Client::open(sentinel.clone()) {
            Ok(client) => match client.get_multiplexed_async_connection().await {
                Ok(mut connection) => redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .err(),
                Err(error) => Some(error),
            },
            Err(error) => Some(error),
        };
        if refused.as_ref().is_some_and(refused_credentials) {
            let why = if sentinel.redis_settings().password().is_some() {
                "a Sentinel refused the Sentinel password (--redis-sentinel-password, BANDITD_REDIS_SENTINEL_PASSWORD)"
            } else {
                "a Sentinel requires a password: set --redis-sentinel-password (BANDITD_REDIS_SENTINEL_PASSWORD)"
            };
            return redis::RedisError::from((redis::ErrorKind::AuthenticationFailed, why));
        }
    }
    if refused_credentials(&error) {
        return redis::RedisError::from((
            redis::ErrorKind::AuthenticationFailed,
            "the primary the Sentinels name refused the password (the URL's, or --redis-password, BANDITD_REDIS_PASSWORD)",
        ));
    }
    error
}

async fn primary_connection(
    client: &mut SentinelClient,
) -> Result<(ConnectionManager, String), redis::RedisError> {
    let primary = client.async_get_client().await?;
    let found = address(primary.get_connection_info());
    let connection = ConnectionManager::new_with_config(primary, manager_config()).await?;
    Ok((connection, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(url: &str) -> Result<Topology, RedisUrlError> {
        topology(&url.into(), None, None)
    }

    #[test]
    fn each_url_form_selects_its_mode() {
        assert_eq!(
            mode("redis://127.0.0.1:6379/2").unwrap().mode(),
            "standalone"
        );
        assert_eq!(
            mode("redis+unix:///run/redis.sock").unwrap().mode(),
            "standalone"
        );
        let Ok(Topology::Cluster(nodes)) =
            mode("redis+cluster://:s3cret@10.0.0.1:7000,10.0.0.2:7001")
        else {
            panic!("a cluster URL selects Cluster");
        };
        assert_eq!(nodes.len(), 2);
        assert_eq!(address(&nodes[1]), "10.0.0.2:7001");
        assert!(
            nodes
                .iter()
                .all(|node| node.redis_settings().password() == Some("s3cret")),
            "the credentials apply to every seed node"
        );
        let Ok(Topology::Sentinel {
            sentinels,
            master,
            primary,
        }) = topology(
            &"redis+sentinel://h1:26379,h2:26380/mymaster/3".into(),
            Some(&"pw".into()),
            None,
        )
        else {
            panic!("a sentinel URL selects Sentinel");
        };
        assert_eq!(sentinels.len(), 2);
        assert_eq!(master, "mymaster");
        assert_eq!((primary.db(), primary.password()), (3, Some("pw")));
        assert!(
            sentinels
                .iter()
                .all(|s| s.redis_settings().password().is_none()),
            "Sentinels are asked without the primary's password"
        );
    }

    #[test]
    fn the_sentinel_password_goes_to_the_sentinels_only() {
        let Ok(Topology::Sentinel {
            sentinels, primary, ..
        }) = topology(
            &"redis+sentinel://:data-pw@h1:26379,h2:26380/mymaster".into(),
            None,
            Some(&"sentinel-pw".into()),
        )
        else {
            panic!("a sentinel URL selects Sentinel");
        };
        assert!(
            sentinels
                .iter()
                .all(|s| s.redis_settings().password() == Some("sentinel-pw")),
            "every Sentinel is asked with the Sentinel password"
        );
        assert_eq!(primary.password(), Some("data-pw"));
        let Ok(Topology::Standalone(info)) = topology(
            &"redis://:data-pw@h1:6379".into(),
            None,
            Some(&"sentinel-pw".into()),
        ) else {
            panic!("a redis URL selects standalone");
        };
        assert_eq!(info.redis_settings().password(), Some("data-pw"));
    }

    #[test]
    fn malformed_multi_host_urls_are_refused_without_quoting_them() {
        for url in [
            "redis+sentinel://:hunter2@h1:26379",
            "redis+sentinel://:hunter2@h1:26379/m/0/x",
            "redis+cluster://:hunter2@h1:7000,,h2:7001",
            "redis+cluster://:hunter2@h1:7000/3",
            "redis+cluster://:hunter2@[bad",
        ] {
            let error = mode(url).err().unwrap_or_else(|| panic!("{url} refused"));
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
        assert_eq!(
            mode("rediss+cluster://h:7000").err(),
            Some(RedisUrlError::Tls)
        );
    }
}
