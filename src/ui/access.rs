//! Who may see the dashboard: everybody while no admin key is set (like the API's read
//! routes); otherwise a browser with a valid session cookie (from the login page), or a
//! client that sends the admin key as `Authorization: Bearer` (a script, a proxy).

use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header::COOKIE;
use actix_web::{FromRequest, HttpRequest, web};

use super::error::UiError;
use super::session::{SESSION_COOKIE, SessionKey, cookie_value};
use crate::http::AppState;
use crate::http::auth::{Admin, check};

/// Default of `--ui-session-lifetime`.
pub const DEFAULT_SESSION_LIFETIME: &str = "12h";
/// Default of `--ui-refresh`.
pub const DEFAULT_REFRESH: &str = "30s";

/// The dashboard's configuration, registered as app data beside `AppState`.
#[derive(Debug, Clone)]
pub struct UiSettings {
    pub session_key: SessionKey,
    /// How long a login lasts.
    pub session_lifetime: Duration,
    /// How often an open page reloads its data (zero: never).
    pub refresh: Duration,
    /// How often the server stores a history point (for the staleness note).
    pub history_interval: Duration,
}

impl UiSettings {
    pub fn session_lifetime_ms(&self) -> u64 {
        u64::try_from(self.session_lifetime.as_millis()).unwrap_or(u64::MAX)
    }
}

/// How a request got in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No admin key is set: the dashboard is open.
    Open,
    /// A valid session cookie: the page offers to sign out.
    Session,
    /// The admin key itself, as a bearer token.
    Key,
}

/// Proof that the request may see the dashboard. Put it first in a handler's arguments.
#[derive(Debug, Clone, Copy)]
pub struct UiAccess(pub Access);

/// The app data every page needs.
pub fn parts(req: &HttpRequest) -> Result<(&web::Data<AppState>, &web::Data<UiSettings>), UiError> {
    match (
        req.app_data::<web::Data<AppState>>(),
        req.app_data::<web::Data<UiSettings>>(),
    ) {
        (Some(state), Some(settings)) => Ok((state, settings)),
        // Fails closed: a server wired without its state shows nothing.
        _ => Err(UiError::Unavailable(
            "the dashboard is not configured on this server".to_owned(),
        )),
    }
}

/// Whether the request carries a valid session cookie.
pub fn has_session(req: &HttpRequest, state: &AppState, settings: &UiSettings) -> bool {
    let Some(admin_key) = state.keys.admin.as_ref() else {
        return false;
    };
    req.headers()
        .get_all(COOKIE)
        .filter_map(|value| value.to_str().ok())
        .filter_map(|header| cookie_value(header, SESSION_COOKIE))
        .any(|value| {
            settings
                .session_key
                .verify(
                    value,
                    admin_key,
                    state.engine.now_ms(),
                    settings.session_lifetime_ms(),
                )
                .is_ok()
        })
}

fn access(req: &HttpRequest) -> Result<Access, UiError> {
    let (state, settings) = parts(req)?;
    if state.keys.admin.is_none() {
        return Ok(Access::Open);
    }
    if has_session(req, state, settings) {
        return Ok(Access::Session);
    }
    if req.headers().contains_key("authorization")
        && check::<Admin>(&state.keys, req.headers()).is_ok()
    {
        return Ok(Access::Key);
    }
    let next = match req.query_string() {
        "" => req.path().to_owned(),
        query => format!("{}?{query}", req.path()),
    };
    Err(UiError::LoginRequired { next })
}

impl FromRequest for UiAccess {
    type Error = UiError;
    type Future = std::future::Ready<Result<Self, UiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        std::future::ready(access(req).map(UiAccess))
    }
}
