//! Whether the store accepts writes, and the history of its failure episodes.
//!
//! An episode starts at the first failed commit and ends when a reopened database has taken a
//! probe write (see `recovery`). The writer alone moves the state; readers (`/readyz`, the
//! engine's assign path, `GET /v1/admin/store`) only look. The engine asks on every counting
//! assign, so "is it writable" is one atomic load; the details behind a mutex are read only by
//! operator routes and by requests that are already failing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// The store's health as an operator reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StoreHealth {
    /// True while commits reach the disk; false from the first failed commit of an episode
    /// until the store has reopened and a probe write reached the disk again.
    pub writable: bool,
    /// The current episode, while one lasts.
    pub failing: Option<FailureEpisode>,
    /// Failure episodes since the store was opened (the current one included).
    pub episodes: u64,
    /// The last episode that ended, if any.
    pub last_episode: Option<FailureEpisode>,
}

/// One stretch of time in which writes failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FailureEpisode {
    /// Wall-clock milliseconds since the Unix epoch of the first failed commit.
    pub started_ms: u64,
    /// When writes were accepted again; `None` while the episode lasts.
    pub ended_ms: Option<u64>,
    /// The error that started the episode (e.g. the disk is full).
    pub cause: String,
    /// The latest error of a failed reopen or probe write, if one failed after the first.
    pub latest_error: Option<String>,
}

/// The writer's record of the store's health, shared with the readers.
#[derive(Default)]
pub struct HealthState {
    /// Set at the start of an episode, cleared at its end: the hot path's one load.
    failing: AtomicBool,
    detail: Mutex<Detail>,
}

#[derive(Default)]
struct Detail {
    current: Option<FailureEpisode>,
    episodes: u64,
    last: Option<FailureEpisode>,
}

impl HealthState {
    /// True unless an episode is under way. One atomic load.
    pub fn writable(&self) -> bool {
        !self.failing.load(Ordering::Acquire)
    }

    pub fn snapshot(&self) -> StoreHealth {
        let detail = self.lock();
        StoreHealth {
            writable: detail.current.is_none(),
            failing: detail.current.clone(),
            episodes: detail.episodes,
            last_episode: detail.last.clone(),
        }
    }

    /// The error a request gets while the store is failing: the episode's cause, so that a
    /// client (and `/readyz`) can say what is wrong.
    pub fn unavailable(&self) -> super::error::StoreError {
        let cause = self
            .lock()
            .current
            .as_ref()
            .map_or_else(|| "the store is recovering".to_owned(), |e| e.cause.clone());
        super::error::StoreError::Unavailable(cause)
    }

    /// Starts an episode with `cause`; logged once, at error level, here and nowhere else.
    pub fn begin(&self, cause: &str) {
        let mut detail = self.lock();
        detail.episodes += 1;
        detail.current = Some(FailureEpisode {
            started_ms: wall_clock_ms(),
            ended_ms: None,
            cause: cause.to_owned(),
            latest_error: None,
        });
        self.failing.store(true, Ordering::Release);
        tracing::error!(
            cause,
            episode = detail.episodes,
            "store write failed: refusing writes and reopening the store until the disk accepts writes again"
        );
    }

    /// Records a failed recovery attempt of the current episode (not logged per attempt).
    pub fn retry_failed(&self, error: &str) {
        if let Some(current) = self.lock().current.as_mut() {
            current.latest_error = Some(error.to_owned());
        }
    }

    /// Ends the current episode: writes are accepted again.
    pub fn end(&self) {
        let mut detail = self.lock();
        if let Some(mut episode) = detail.current.take() {
            let ended_ms = wall_clock_ms();
            episode.ended_ms = Some(ended_ms);
            tracing::warn!(
                cause = %episode.cause,
                failed_for_ms = ended_ms.saturating_sub(episode.started_ms),
                "store recovered: writes are accepted again"
            );
            detail.last = Some(episode);
        }
        self.failing.store(false, Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Detail> {
        self.detail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The wall clock in milliseconds since the Unix epoch (0 before it): the time of health
/// episodes, and the time a sealed generation's due time is compared with (`sealed_log`).
pub(crate) fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}
