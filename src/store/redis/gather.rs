//! How long the commit task waits for the rest of a wave of requests before it commits.
//!
//! Each group commit is one pass of Redis's event loop, and a pass costs a fixed part whatever
//! it carries: the `fdatasync` of `appendfsync always` and the script's work per shard. Under
//! load the clients answered by one commit send their next requests as a wave, spread over the
//! time the HTTP worker takes to answer them. A commit task that commits whatever is queued
//! when the previous commit ends sends the wave's first few requests (or the stragglers of the
//! one before) on their own, and the rest waits for that pass: measured with 64 connections of
//! new units (`benches/load/results/rnew2-2026-11-30-s7.md`), 35-43% of the commits carried
//! 0-7 units and 29-41% carried 56-63, two passes and two fsyncs per wave.
//!
//! So when the previous commit carried at least [`GATHER_MIN`] requests and fewer are queued,
//! the task waits for the wave in steps of [`STEP_US`]: until as many requests as the previous
//! commit carried are queued, or a step brings none once half of them are (the wave ended
//! short), or the wait reaches half the previous commit's round (longer and the wait costs
//! more than the pass it saves) or [`LINGER_MAX_US`]. At low load (the previous commit carried
//! fewer than [`GATHER_MIN`]) it never waits, so a lone request is not delayed.
//!
//! Benches compare with and without the wait in one build: `BANDITD_REDIS_LINGER_MAX_US` in the
//! environment when the store opens replaces [`LINGER_MAX_US`] (0: never wait).
//!
//! The wait is a thread sleep, not a tokio timer: tokio's timers tick in milliseconds, longer
//! than a step. It holds up the store thread's other tasks (reads of unknown units, the
//! posterior refresh) by at most the wait; the HTTP worker uses the core meanwhile.

use std::time::Duration;

use super::commit::Command;

/// The smallest previous commit (in requests somebody waits for) that counts as load.
pub const GATHER_MIN: usize = 4;

/// The longest wait for the rest of a wave.
pub const LINGER_MAX_US: u64 = 2_000;

/// One step of the wait: the HTTP worker answers a few requests and takes a few new ones.
pub const STEP_US: u64 = 50;

/// The environment variable that replaces [`LINGER_MAX_US`] (benches only).
pub const LINGER_MAX_ENV: &str = "BANDITD_REDIS_LINGER_MAX_US";

/// The longest wait this process uses: [`LINGER_MAX_US`] unless a bench set another.
pub fn linger_max_from_env() -> u64 {
    std::env::var(LINGER_MAX_ENV)
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(LINGER_MAX_US)
}

/// The most to wait for the rest of a wave after a commit whose round took `last_round`:
/// half of it, at most `max_us`.
pub fn cap(last_round: Duration, max_us: u64) -> Duration {
    (last_round / 2).min(Duration::from_micros(max_us))
}

/// Whether to start waiting, with `gathered` requests queued after a commit that carried
/// `previous`.
pub fn should_wait(previous: usize, gathered: usize) -> bool {
    previous >= GATHER_MIN && gathered > 0 && gathered < previous
}

/// Whether to wait one more step, with `gathered` requests queued and `arrived` of them in the
/// last step (the cap is the caller's).
pub fn keep_waiting(previous: usize, gathered: usize, arrived: usize) -> bool {
    gathered < previous && (arrived > 0 || gathered * 2 < previous)
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
        assert!(!should_wait(0, 1));
        assert!(!should_wait(1, 1));
        assert!(!should_wait(GATHER_MIN - 1, 1));
    }

    #[test]
    fn a_commit_task_with_the_whole_wave_queued_commits_at_once() {
        assert!(!should_wait(10, 10));
        assert!(!should_wait(10, 40));
    }

    #[test]
    fn a_commit_task_with_nothing_queued_waits_for_a_command_not_a_wave() {
        assert!(!should_wait(64, 0));
    }

    #[test]
    fn a_commit_task_with_part_of_a_wave_queued_waits_for_the_rest() {
        assert!(should_wait(62, 2));
        assert!(keep_waiting(62, 2, 0));
        assert!(keep_waiting(62, 40, 3));
        assert!(!keep_waiting(62, 62, 5));
        assert!(!keep_waiting(62, 63, 5));
    }

    #[test]
    fn a_wave_that_ended_short_is_committed_once_a_step_brings_nothing() {
        assert!(!keep_waiting(62, 40, 0));
        assert!(keep_waiting(62, 30, 0));
    }

    #[test]
    fn the_wait_is_at_most_half_the_last_round_and_the_cap() {
        assert_eq!(
            cap(Duration::from_micros(1_200), LINGER_MAX_US),
            Duration::from_micros(600)
        );
        assert_eq!(
            cap(Duration::from_millis(11), LINGER_MAX_US),
            Duration::from_micros(LINGER_MAX_US)
        );
        assert_eq!(cap(Duration::from_millis(11), 0), Duration::ZERO);
    }
}
