//! The configured API keys (from `BANDITD_*_KEY`). Checking them is `auth`'s job.

use crate::secret::SecretString;

/// Which key guards which routes. An unset key leaves its routes open.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// Guards `/v1/events` and the exports.
    pub events: Option<SecretString>,
    /// Guards the admin routes, and opens every other guarded route too.
    pub admin: Option<SecretString>,
    /// Guards the assign routes (open by default: browsers call them).
    pub assign: Option<SecretString>,
    /// Guards `GET /metrics`, for a scraper that should hold no admin power. Unset, the
    /// admin key guards it (open when neither is set).
    pub metrics: Option<SecretString>,
}
