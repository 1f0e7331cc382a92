//! A throwaway `redis-server` for tests: its own temp dir, a free port on 127.0.0.1, AOF on
//! with `appendfsync always`, no RDB snapshots; killed by its PID when the guard drops. Shared
//! by the store's unit tests (`src/store/redis/tests.rs`) and the replica tests. Also a
//! three-node Redis Cluster ([`RedisCluster`]), a six-node one with a replica per primary
//! ([`RedisCluster::start_with_replicas`]), and a primary with a replica watched by one
//! Sentinel ([`RedisSentinel`], optionally password-protected: [`SentinelSetup`]), built from
//! the same servers.
//!
//! A missing `redis-server` fails the test with the install command: `scripts/test.sh`
//! installs it (Debian: `apt-get install -y redis-server`).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    /// Arguments after the defaults (a later one wins), or `None` for a Sentinel.
    extra: Option<Vec<String>>,
    /// The password `cli` sends (the server's `requirepass`).
    auth: Option<String>,
}

impl RedisServer {
    /// Starts a fresh server; panics with the install command if `redis-server` is missing.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A fresh server with more arguments (`["--replicaof", "127.0.0.1", "6379"]`).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::spawn(Some(extra.iter().map(|arg| (*arg).to_owned()).collect()))
    }

    fn spawn(extra: Option<Vec<String>>) -> Self {
        Self::spawn_on(free_port(), extra)
    }

    /// A fresh server that tries `port` first (a test gives one that is taken, to check the
    /// retry below).
    pub fn spawn_on(port: u16, extra: Option<Vec<String>>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for redis");
        let auth = extra.as_ref().and_then(|args| {
            let at = args.iter().position(|arg| arg == "--requirepass")?;
            args.get(at + 1).cloned()
        });
        let mut server = Self {
            dir,
            port,
            child: None,
            extra,
            auth,
        };
        // A free port is free only until someone binds it: a parallel test (or another
        // process) can take it, or a cluster node's bus port, between `free_port` and the
        // server's own bind. Such a start is retried on fresh ports; any other failure is not.
        for _ in 0..4 {
            match server.try_launch() {
                Ok(()) => return server,
                Err(log) if log.contains("Address already in use") => {
                    // The next try's failure is read from a log of its own.
                    let _ = std::fs::remove_file(server.dir.path().join("redis.log"));
                    let bus_at = server.extra.as_ref().and_then(|args| {
                        let at = args.iter().position(|arg| arg == "--cluster-port")? + 1;
                        (at < args.len()).then_some(at)
                    });
                    let mut given_up = vec![server.port];
                    if let (Some(args), Some(at)) = (server.extra.as_ref(), bus_at) {
                        given_up.extend(args[at].parse::<u16>().ok());
                    }
                    // The kernel may hand back a port just released: never the ones that
                    // failed.
                    server.port = free_port_other_than(&given_up);
                    if let (Some(args), Some(at)) = (server.extra.as_mut(), bus_at) {
                        given_up.push(server.port);
                        args[at] = free_port_other_than(&given_up).to_string();
                    }
                }
                Err(log) => panic!("{log}"),
            }
        }
        server.launch();
        server
    }

    /// A Sentinel watching `primary` as `master_name` (quorum 1, down after 1 s).
    pub fn sentinel(master_name: &str, primary: &RedisServer) -> Self {
        Self::sentinel_with(master_name, primary, &SentinelSetup::default())
    }

    /// A Sentinel watching `primary` as `master_name` (quorum 1), as `setup` says.
    pub fn sentinel_with(master_name: &str, primary: &RedisServer, setup: &SentinelSetup) -> Self {
        let mut server = Self::spawn_sentinel_dir();
        let mut conf = format!(
            "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile sentinel.log\n\
             sentinel monitor {master_name} 127.0.0.1 {primary} 1\n\
             sentinel down-after-milliseconds {master_name} {down_after}\n\
             sentinel failover-timeout {master_name} 10000\n",
            port = server.port,
            dir = server.dir.path().display(),
            primary = primary.port,
            down_after = setup.down_after_ms,
        );
        if let Some(password) = &primary.auth {
            conf.push_str(&format!("sentinel auth-pass {master_name} {password}\n"));
        }
        if let Some(password) = setup.sentinel_password {
            conf.push_str(&format!("requirepass {password}\n"));
            server.auth = Some(password.to_owned());
        }
        std::fs::write(server.dir.path().join("sentinel.conf"), conf).expect("sentinel.conf");
        server.launch();
        server
    }

    fn spawn_sentinel_dir() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir for redis"),
            port: free_port(),
            child: None,
            extra: None,
            auth: None,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) {
        if let Err(log) = self.try_launch() {
            panic!("{log}");
        }
    }

    /// Starts the process and waits until it listens; `Err` with its log's tail if it exited
    /// first.
    fn try_launch(&mut self) -> Result<(), String> {
        let mut command = Command::new("redis-server");
        match &self.extra {
            Some(extra) => {
                command
                    .args(["--port", &self.port.to_string()])
                    .args(["--bind", "127.0.0.1"])
                    .args(["--dir", &self.dir.path().display().to_string()])
                    .args(["--appendonly", "yes"])
                    .args(["--appendfsync", "always"])
                    .args(["--save", ""])
                    .args(["--daemonize", "no"])
                    .args(["--logfile", "redis.log"])
                    .args(extra);
            }
            None => {
                command
                    .arg(self.dir.path().join("sentinel.conf"))
                    .arg("--sentinel");
            }
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start redis-server ({error}); install it: apt-get install -y redis-server (scripts/test.sh does)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().and_then(|child| child.try_wait().ok()?) {
                self.child = None;
                return Err(format!(
                    "redis-server on port {} exited ({status}) before it listened: {}",
                    self.port,
                    self.log_tail()
                ));
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on port {} within 30 s: {}",
                self.port,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The last lines of the server's log (`redis.log` or `sentinel.log` in its dir), for a
    /// failure message.
    fn log_tail(&self) -> String {
        let name = if self.extra.is_some() {
            "redis.log"
        } else {
            "sentinel.log"
        };
        let log = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// `kill -9`, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and dir: it loads its AOF.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
        // The port answers before the AOF is loaded; PING answers LOADING until then.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.cli(&["PING"]) == "PONG" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not load its AOF in 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl RedisServer {
    /// Runs one command with `redis-cli` and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        self.cli_handle().run(args)
    }

    /// What [`RedisServer::cli`] needs, without the server: for a hook the store keeps. A hook
    /// that held the server itself would keep it alive as long as the store's background tasks
    /// (to the test process's end), and a process that ends without dropping it leaves its
    /// `redis-server` running.
    pub fn cli_handle(&self) -> Cli {
        Cli {
            port: self.port,
            auth: self.auth.clone(),
        }
    }
}

/// `redis-cli` on one server (see [`RedisServer::cli_handle`]).
#[derive(Clone)]
pub struct Cli {
    port: u16,
    auth: Option<String>,
}

impl Cli {
    /// Runs one command with `redis-cli` and returns its output.
    pub fn run(&self, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args(["-p", &self.port.to_string()]);
        if let Some(password) = &self.auth {
            command.args(["-a", password, "--no-auth-warning"]);
        }
        let out = command.args(args).output().expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// A free port that is none of `given_up`.
fn free_port_other_than(given_up: &[u16]) -> u16 {
    loop {
        let port = free_port();
        if !given_up.contains(&port) {
            return port;
        }
    }
}

/// Three primaries (`--cluster-enabled yes`, AOF on), joined by `redis-cli --cluster create`,
/// no replicas: every slot on exactly one node.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        Self::start_nodes(3, 0)
    }

    /// Six nodes, three primaries each with one replica (as `redis-cli` creates them): a primary
    /// that dies is replaced by its replica after the node timeout (2 s).
    pub fn start_with_replicas() -> Self {
        let cluster = Self::start_nodes(6, 1);
        // Every replica has synced: a failover needs one that is up to date.
        let deadline = Instant::now() + Duration::from_secs(30);
        while cluster
            .nodes
            .iter()
            .map(|node| node.cli(&["INFO", "replication"]))
            .filter(|info| info.contains("master_link_status:up"))
            .count()
            < 3
        {
            assert!(
                Instant::now() < deadline,
                "the cluster replicas did not sync"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    fn start_nodes(count: usize, replicas: usize) -> Self {
        let nodes: Vec<RedisServer> = (0..count)
            .map(|_| {
                // The bus port must be given: Redis's default, the port + 10,000, does not exist
                // for a free port above 55,535 (a fifth of Linux's ephemeral range), and such a
                // node exits at once ("Redis port number too high").
                let bus_port = free_port().to_string();
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus_port,
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(created.success(), "redis-cli --cluster create failed");
        let cluster = Self { nodes };
        cluster.wait_ok();
        cluster
    }

    /// The nodes that are primaries now (by `ROLE`), skipping dead ones.
    pub fn primaries(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].child.is_some())
            .filter(|&i| self.nodes[i].cli(&["ROLE"]).starts_with("master"))
            .collect()
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Waits until every live node says `cluster_state:ok` (all slots served).
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .nodes
            .iter()
            .filter(|node| node.child.is_some())
            .all(|node| node.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(
                Instant::now() < deadline,
                "the cluster did not become ok in 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9` of every node.
    pub fn kill(&mut self) {
        self.nodes.iter_mut().for_each(RedisServer::kill);
    }

    /// Every node again from its AOF and `nodes.conf`; waits until the cluster is ok.
    pub fn restart(&mut self) {
        self.nodes.iter_mut().for_each(RedisServer::restart);
        self.wait_ok();
    }
}

/// A primary, its replica, and one Sentinel watching them as `mymaster`.
pub struct RedisSentinel {
    pub primary: RedisServer,
    pub replica: RedisServer,
    pub sentinel: RedisServer,
}

pub const SENTINEL_MASTER: &str = "mymaster";

/// How a [`RedisSentinel`] is set up.
pub struct SentinelSetup {
    /// The Sentinel's `down-after-milliseconds`: how long the primary may be silent before
    /// it fails over. Long (30 s) when a test restarts the primary and wants no failover.
    pub down_after_ms: u64,
    /// The Sentinel's own `requirepass`.
    pub sentinel_password: Option<&'static str>,
    /// The data nodes' `requirepass` (and the replica's `masterauth`, the Sentinel's
    /// `auth-pass`).
    pub data_password: Option<&'static str>,
}

impl Default for SentinelSetup {
    fn default() -> Self {
        Self {
            down_after_ms: 1000,
            sentinel_password: None,
            data_password: None,
        }
    }
}

impl RedisSentinel {
    pub fn start() -> Self {
        Self::start_with(&SentinelSetup::default())
    }

    pub fn start_with(setup: &SentinelSetup) -> Self {
        let auth: Vec<&str> = match setup.data_password {
            Some(password) => vec!["--requirepass", password, "--masterauth", password],
            None => vec![],
        };
        let primary = RedisServer::start_with(&auth);
        let port = primary.port.to_string();
        let mut replica_args = vec!["--replicaof", "127.0.0.1", &port];
        replica_args.extend(&auth);
        let replica = RedisServer::start_with(&replica_args);
        let sentinel = RedisServer::sentinel_with(SENTINEL_MASTER, &primary, setup);
        let setup = Self {
            primary,
            replica,
            sentinel,
        };
        // The replica has synced, and the Sentinel knows it once it has asked the primary:
        // wait for both, a failover needs them.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !setup
            .replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
        {
            assert!(Instant::now() < deadline, "the replica did not sync");
            std::thread::sleep(Duration::from_millis(50));
        }
        while !setup
            .sentinel
            .cli(&["SENTINEL", "REPLICAS", SENTINEL_MASTER])
            .contains(&setup.replica.port.to_string())
        {
            assert!(
                Instant::now() < deadline,
                "the Sentinel did not find the replica"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        setup
    }

    pub fn url(&self) -> String {
        format!(
            "redis+sentinel://127.0.0.1:{}/{SENTINEL_MASTER}",
            self.sentinel.port
        )
    }

    /// The port of the node the Sentinel names as primary now.
    pub fn primary_port(&self) -> Option<u16> {
        let answer = self
            .sentinel
            .cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER]);
        answer.lines().nth(1)?.trim().parse().ok()
    }
}
