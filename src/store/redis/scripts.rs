//! The `apply` library (`apply.lua`, `apply_rewards.lua`, `apply_ops.lua`: every group
//! commit's writes) run as a Redis function where Redis has Functions (7.0 and later, Valkey),
//! by `EVALSHA` elsewhere.
//!
//! Why a function: `EVALSHA` runs a script's whole text at every call, so the library's ~60
//! functions and its constants were made again for every call (~139,000 of redis-server's
//! instructions per call, `benches/load/results/redis6-2026-12-01-s11.md`). Loaded once by
//! `FUNCTION LOAD`, they are made once per primary; `FCALL` makes only the call's own state
//! (`begin_apply`, `begin_rewards`).
//!
//! The library's name carries the hash of its text, so replicas of different builds sharing a
//! store each call their own code; a primary that lacks this build's library (a fresh node, a
//! failover to a replica that never had it, `FUNCTION FLUSH`) answers "Function not found", and
//! the call loads it (`FUNCTION LOAD REPLACE`: on every primary under Cluster) and is sent again,
//! as `EVALSHA` is after `NOSCRIPT`. A Redis without Functions (an unknown command), or a user
//! whose ACL denies them, switches this process to `EVALSHA` of the same text for good.

use std::sync::atomic::{AtomicBool, Ordering};

use redis::{Cmd, ErrorKind, RedisError, RedisResult, Script, ServerErrorKind};

use super::connect::Connection;

/// The library's text, in load order; `run` (apply_ops.lua) is what a call runs.
const LIBRARY: [&str; 3] = [
    include_str!("apply.lua"),
    include_str!("apply_rewards.lua"),
    include_str!("apply_ops.lua"),
];

/// The library as one function, and the same text as a script for `EVALSHA`.
pub struct ApplyLibrary {
    /// `FUNCTION LOAD` text: the shebang naming the library, the files, the registration.
    library: String,
    /// The function `FCALL` names (`banditd_apply_<hash>`).
    function: String,
    /// The script of the fallback: the files, then `return run(KEYS, ARGV)`.
    script: Script,
    /// Set once Redis has shown it has no Functions for this process (see the module doc).
    eval_only: AtomicBool,
}

impl ApplyLibrary {
    pub fn new() -> Self {
        let body = LIBRARY.concat();
        // In a script KEYS and ARGV are globals, which the library's own `local KEYS, ARGV`
        // hides: they are taken before it and handed to `run`.
        let script = Script::new(&format!(
            "local eval_keys, eval_argv = KEYS, ARGV\n{body}\nreturn run(eval_keys, eval_argv)\n"
        ));
        // The script's SHA-1 names this build's library (the same text but for its two ends).
        let version = &script.get_hash()[..16];
        let function = format!("banditd_apply_{version}");
        // `redis` is a local of the library, set per call; `redis_api()` is the global one.
        let library = format!(
            "#!lua name=banditd_{version}\n{body}\nredis_api().register_function('{function}', run)\n"
        );
        Self {
            library,
            function,
            script,
            eval_only: AtomicBool::new(false),
        }
    }

    /// Whether this process calls the library by `EVALSHA` (Redis has shown it has no
    /// Functions).
    pub fn eval_only(&self) -> bool {
        self.eval_only.load(Ordering::Relaxed)
    }

    /// Runs the library: `numkeys` keys then the arguments, written into the command by
    /// `fill` (called again for a call sent a second time).
    pub async fn call<T: redis::FromRedisValue>(
        &self,
        connection: &mut Connection,
        numkeys: usize,
        fill: impl Fn(&mut Cmd),
    ) -> RedisResult<T> {
        if !self.eval_only() {
            let fcall = || {
                let mut cmd = redis::cmd("FCALL");
                cmd.arg(&self.function).arg(numkeys);
                fill(&mut cmd);
                cmd
            };
            match fcall().query_async(connection).await {
                Err(error) if not_found(&error) => {
                    let loaded: RedisResult<String> = redis::cmd("FUNCTION")
                        .arg("LOAD")
                        .arg("REPLACE")
                        .arg(&self.library)
                        .query_async(connection)
                        .await;
                    match loaded {
                        Ok(_) => return fcall().query_async(connection).await,
                        Err(error) if unsupported(&error) => self.fall_back(&error),
                        Err(error) => return Err(error),
                    }
                }
                Err(error) if unsupported(&error) => self.fall_back(&error),
                result => return result,
            }
        }
        let evalsha = || {
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(self.script.get_hash()).arg(numkeys);
            fill(&mut cmd);
            cmd
        };
        match evalsha().query_async(connection).await {
            Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                let _: String = self.script.load_async(connection).await?;
                evalsha().query_async(connection).await
            }
            result => result,
        }
    }

    fn fall_back(&self, error: &RedisError) {
        tracing::info!(
            %error,
            "redis has no Functions for this replica: the apply library runs by EVALSHA"
        );
        self.eval_only.store(true, Ordering::Relaxed);
    }

    /// The function's name (tests look for it in `FUNCTION LIST` and `INFO commandstats`).
    #[cfg(test)]
    pub fn function(&self) -> &str {
        &self.function
    }
}

/// Redis has Functions but not this build's library.
fn not_found(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::ResponseError)
        && error.to_string().contains("Function not found")
}

/// Redis has no Functions (before 7.0), or refuses them to this user (ACL).
fn unsupported(error: &RedisError) -> bool {
    let text = error.to_string();
    error.kind() == ErrorKind::Server(ServerErrorKind::NoPerm)
        || text.contains("unknown command")
        || text.contains("NOPERM")
}
