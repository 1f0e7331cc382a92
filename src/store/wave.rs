//! How long the writer waits for the rest of a wave of requests before it commits.
//!
//! Under load, clients send their next request when their last one is answered, and one
//! commit answers many of them at once: the next requests come back as a wave, spread over the
//! time the HTTP workers take to answer the previous ones. A writer that commits as soon as the
//! first of them arrives splits the wave into a commit of a few requests and one of the rest,
//! and every commit costs the same fixed work whatever it carries (sled's flush, which wakes
//! its I/O threads, the `fdatasync`, the publication of counters). Measured under new-unit load
//! with 64 connections (`benches/load/results/commit-2026-11-30.md`): 29% of the commits carried
//! one request and 44% carried 33–64.
//!
//! So when the previous commit carried at least [`WAVE_MIN`] requests and the writer has
//! gathered fewer than half as many, it sleeps once, a time proportional to what is missing and
//! at most [`WAVE_LINGER_MAX_US`], then takes what arrived. At low load (the previous commit
//! carried fewer than [`WAVE_MIN`]) it never waits, so a lone request is not delayed; a sleep
//! costs the writer's core nothing, which the HTTP workers use meanwhile.

use std::time::Duration;

use super::command::Command;

/// The smallest previous commit (in requests somebody waits for) that counts as load.
pub const WAVE_MIN: usize = 4;

/// The longest single wait for the rest of a wave.
pub const WAVE_LINGER_MAX_US: u64 = 300;

/// The wait per missing request: about what the HTTP worker spends answering one.
pub const WAVE_LINGER_PER_REQUEST_US: u64 = 10;

/// How long to wait before committing `gathered` requests when the previous commit carried
/// `previous`; `None`: commit now.
pub fn linger(previous: usize, gathered: usize) -> Option<Duration> {
    if previous < WAVE_MIN || gathered == 0 || gathered * 2 >= previous {
        return None;
    }
    let missing = (previous - gathered) as u64;
    Some(Duration::from_micros(
        missing
            .saturating_mul(WAVE_LINGER_PER_REQUEST_US)
            .min(WAVE_LINGER_MAX_US),
    ))
}

/// Requests in `batch` that somebody waits for (a per-request exposure's wake-up is not one).
pub fn waited_for(batch: &[Command]) -> usize {
    batch
        .iter()
        .filter(|command| !matches!(command, Command::WakeForExposures))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_at_low_load_commits_at_once() {
        assert_eq!(linger(0, 1), None);
        assert_eq!(linger(1, 1), None);
        assert_eq!(linger(WAVE_MIN - 1, 1), None);
    }

    #[test]
    fn a_writer_that_gathered_half_the_previous_commit_commits_at_once() {
        assert_eq!(linger(10, 5), None);
        assert_eq!(linger(10, 9), None);
        assert_eq!(linger(10, 40), None);
    }

    #[test]
    fn a_batch_of_only_exposures_is_left_to_the_exposure_linger() {
        assert_eq!(linger(64, 0), None);
    }

    #[test]
    fn the_head_of_a_wave_waits_in_proportion_to_what_is_missing_up_to_the_cap() {
        assert_eq!(linger(10, 1), Some(Duration::from_micros(90)));
        assert_eq!(linger(4, 1), Some(Duration::from_micros(30)));
        assert_eq!(
            linger(1000, 1),
            Some(Duration::from_micros(WAVE_LINGER_MAX_US))
        );
    }
}
