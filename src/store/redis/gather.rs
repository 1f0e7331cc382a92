//! How long the commit task waits for the rest of a wave of requests before it commits.
//!
//! Each group commit is one pass of Redis's event loop, and a pass costs a fixed part whatever
//! it carries: the `fdatasync` of `appendfsync always`, the AOF write, and the script's work
//! per shard (reading and writing each shard's records, index and counters). Under load the
//! clients answered by one commit send their next requests as a wave, spread over the time the
//! HTTP worker takes to answer them; a commit task that commits as soon as the first of them
//! is queued splits the wave into a small commit and the rest, and pays the fixed part twice.
//!
//! So, like the sled writer's (`store/wave.rs`), when the previous commit carried at least
//! [`GATHER_MIN`] requests and fewer than half as many are queued, the task waits once, a time
//! proportional to what is missing and at most [`LINGER_MAX_US`], then takes what arrived. At
//! low load (the previous commit carried fewer than [`GATHER_MIN`]) it never waits, so a lone
//! request is not delayed.
//!
//! Benches compare with and without the wait in one build: `BANDITD_REDIS_LINGER_MAX_US` in the
//! environment when the store opens replaces [`LINGER_MAX_US`] (0: never wait).
//!
//! The wait is a thread sleep, not a tokio timer: tokio's timers tick in milliseconds, several
//! times the wait. It holds up the store thread's other tasks (reads of unknown units, the
//! posterior refresh) by at most [`LINGER_MAX_US`]; the HTTP worker uses the core meanwhile.

use std::time::Duration;

use super::commit::Command;

/// The smallest previous commit (in requests somebody waits for) that counts as load.
pub const GATHER_MIN: usize = 4;

/// The longest single wait for the rest of a wave.
pub const LINGER_MAX_US: u64 = 300;

/// The wait per missing request: about what the HTTP worker spends answering one and taking
/// the next.
pub const LINGER_PER_REQUEST_US: u64 = 10;

/// The environment variable that replaces [`LINGER_MAX_US`] (benches only).
pub const LINGER_MAX_ENV: &str = "BANDITD_REDIS_LINGER_MAX_US";

/// The longest wait this process uses: [`LINGER_MAX_US`] unless a bench set another.
pub fn linger_max_from_env() -> u64 {
    std::env::var(LINGER_MAX_ENV)
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(LINGER_MAX_US)
}

/// How long to wait before committing `gathered` requests when the previous commit carried
/// `previous`, waiting at most `max_us`; `None`: commit now.
pub fn linger(previous: usize, gathered: usize, max_us: u64) -> Option<Duration> {
    if max_us == 0 || previous < GATHER_MIN || gathered == 0 || gathered * 2 >= previous {
        return None;
    }
    let missing = (previous - gathered) as u64;
    Some(Duration::from_micros(
        missing.saturating_mul(LINGER_PER_REQUEST_US).min(max_us),
    ))
}

/// Requests in `batch` that somebody waits for (a shutdown is not one).
pub fn waited_for<'a>(batch: impl IntoIterator<Item = &'a Command>) -> usize {
    batch
        .into_iter()
        .filter(|command| !matches!(command, Command::Shutdown { .. }))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_task_at_low_load_commits_at_once() {
        assert_eq!(linger(0, 1, LINGER_MAX_US), None);
        assert_eq!(linger(1, 1, LINGER_MAX_US), None);
        assert_eq!(linger(GATHER_MIN - 1, 1, LINGER_MAX_US), None);
    }

    #[test]
    fn a_commit_task_that_gathered_half_the_previous_commit_commits_at_once() {
        assert_eq!(linger(10, 5, LINGER_MAX_US), None);
        assert_eq!(linger(10, 9, LINGER_MAX_US), None);
        assert_eq!(linger(10, 40, LINGER_MAX_US), None);
    }

    #[test]
    fn a_commit_task_with_nothing_queued_waits_for_a_command_not_a_linger() {
        assert_eq!(linger(64, 0, LINGER_MAX_US), None);
    }

    #[test]
    fn a_commit_task_waits_in_proportion_to_the_missing_requests_up_to_the_cap() {
        assert_eq!(
            linger(10, 2, LINGER_MAX_US),
            Some(Duration::from_micros(8 * LINGER_PER_REQUEST_US))
        );
        assert_eq!(
            linger(1000, 1, LINGER_MAX_US),
            Some(Duration::from_micros(LINGER_MAX_US))
        );
    }

    #[test]
    fn a_bench_can_switch_the_wait_off() {
        assert_eq!(linger(64, 2, 0), None);
    }
}
