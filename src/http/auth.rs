//! API keys: `Authorization: Bearer <key>`. A route guarded by an unset key is open.

use actix_web::HttpRequest;
use sha2::{Digest, Sha256};

use super::problem::ApiError;

/// The configured keys (from `BANDITD_*_KEY`).
#[derive(Clone, Default)]
pub struct Keys {
    /// Guards `/v1/events`.
    pub events: Option<String>,
    /// Guards admin routes.
    pub admin: Option<String>,
    /// Guards assign routes (open by default: browsers call them).
    pub assign: Option<String>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("events", &self.events.is_some())
            .field("admin", &self.admin.is_some())
            .field("assign", &self.assign.is_some())
            .finish()
    }
}

/// Which key a route needs.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Events,
    Admin,
    Assign,
}

impl Keys {
    /// Accepts the request if the scope's key is unset or presented. The admin key opens every
    /// scope, so an operator needs only one secret.
    pub fn authorize(&self, req: &HttpRequest, scope: Scope) -> Result<(), ApiError> {
        let (expected, name) = match scope {
            Scope::Events => (&self.events, "BANDITD_EVENTS_KEY"),
            Scope::Admin => (&self.admin, "BANDITD_ADMIN_KEY"),
            Scope::Assign => (&self.assign, "BANDITD_ASSIGN_KEY"),
        };
        let Some(expected) = expected else {
            return Ok(());
        };
        let presented = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(presented) = presented else {
            return Err(ApiError::Unauthorized(format!(
                "this route needs `Authorization: Bearer <key>` with the key set in {name}"
            )));
        };
        // Comparing digests keeps the comparison time independent of where the keys differ.
        let matches =
            |key: &str| Sha256::digest(key.as_bytes()) == Sha256::digest(presented.as_bytes());
        if matches(expected) || self.admin.as_deref().is_some_and(matches) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized(format!(
                "the presented key does not match {name}"
            )))
        }
    }
}
