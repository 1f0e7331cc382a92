//! A throwaway `redis-server` for tests: its own temp dir, a free port on 127.0.0.1, AOF on
//! with `appendfsync always`, no RDB snapshots; killed by its PID when the guard drops. Shared
//! by the store's unit tests (`src/store/redis/tests.rs`) and the replica tests.
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
}

impl RedisServer {
    /// Starts a fresh server; panics with the install command if `redis-server` is missing.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for redis");
        let port = free_port();
        let mut server = Self {
            dir,
            port,
            child: None,
        };
        server.launch();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--dir", &self.dir.path().display().to_string()])
            .args(["--appendonly", "yes"])
            .args(["--appendfsync", "always"])
            .args(["--save", ""])
            .args(["--daemonize", "no"])
            .args(["--logfile", "redis.log"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start redis-server ({error}); install it: apt-get install -y redis-server (scripts/test.sh does)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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
            let out = Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "PING"])
                .output();
            if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG") {
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
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
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
