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
//!
//! The writer's other wait lives here too: a batch of nothing but per-request exposures (which
//! nobody waits for) lingers up to [`EXPOSURE_LINGER_MS`] for more work.

use std::time::Duration;

use std::sync::mpsc;

use super::command::Command;
use super::writer::MAX_BATCH_WEIGHT;
use super::writer_state::Writer;

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

/// How long a batch of only per-request exposures may wait to be folded with more work.
pub const EXPOSURE_LINGER_MS: u64 = 10;

/// Extends an exposures-only batch with what arrives within [`EXPOSURE_LINGER_MS`], stopping
/// early at the weight cap or at the first command that somebody waits for.
pub(super) fn linger_for_exposures(
    batch: &mut Vec<Command>,
    weight: &mut usize,
    commands: &mpsc::Receiver<Command>,
) {
    if !batch.iter().all(|c| matches!(c, Command::WakeForExposures)) {
        return;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(EXPOSURE_LINGER_MS);
    while *weight < MAX_BATCH_WEIGHT {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match commands.recv_timeout(left) {
            Ok(command) => {
                let waited_for = !matches!(command, Command::WakeForExposures);
                *weight += command.weight();
                batch.push(command);
                if waited_for {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

impl Writer {
    /// Sleeps once for the rest of a wave of requests if `wave::linger` says so, then takes
    /// what arrived meanwhile (up to the weight cap, stopping at a barrier).
    pub(super) fn gather_rest_of_wave(
        &self,
        batch: &mut Vec<Command>,
        weight: &mut usize,
        commands: &mpsc::Receiver<Command>,
    ) {
        if matches!(
            batch.last(),
            Some(Command::Audit { .. } | Command::Shutdown { .. })
        ) {
            return;
        }
        let Some(wait) = linger(self.previous_waited_for, waited_for(batch)) else {
            return;
        };
        std::thread::sleep(wait);
        while *weight < MAX_BATCH_WEIGHT {
            let Ok(command) = commands.try_recv() else {
                return;
            };
            let barrier = matches!(command, Command::Audit { .. } | Command::Shutdown { .. });
            *weight += command.weight();
            batch.push(command);
            if barrier {
                return;
            }
        }
    }
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
