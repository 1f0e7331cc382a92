//! API keys as extractors: a handler names the key it needs in its signature
//! (`_: AdminAuth`), and the extractor answers 401 problem+json before the body or the query is
//! read. The check lives in one place, so no route can get it subtly different.
//!
//! Credentials are `Authorization: Bearer <key>` (RFC 6750 §2.1); the scheme name is
//! case-insensitive (RFC 7235 §2.1), so `bearer` and `BEARER` work too. A scope whose key is
//! unset is open; the admin key opens every scope, so an operator needs only one secret.

use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use actix_web::{FromRequest, HttpRequest, web};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::keys::Keys;
use super::problem::ApiError;
use super::state::AppState;
use crate::secret::SecretString;

/// A set of routes guarded by one key.
pub trait KeyScope {
    /// The environment variable that sets the key, named in the 401 detail.
    const VARIABLE: &'static str;
    fn key(keys: &Keys) -> Option<&SecretString>;
}

/// `/v1/admin/*`.
pub enum Admin {}
/// `POST /v1/events` and the exports.
pub enum Events {}
/// The assign routes.
pub enum Assign {}
/// `GET /metrics`: its own key when set, else the admin key (the figures show experiment ids
/// and traffic, which an open admin-keyed server should not hand out).
pub enum Metrics {}

impl KeyScope for Admin {
    const VARIABLE: &'static str = "BANDITD_ADMIN_KEY";
    fn key(keys: &Keys) -> Option<&SecretString> {
        keys.admin.as_ref()
    }
}

impl KeyScope for Events {
    const VARIABLE: &'static str = "BANDITD_EVENTS_KEY";
    fn key(keys: &Keys) -> Option<&SecretString> {
        keys.events.as_ref()
    }
}

impl KeyScope for Metrics {
    const VARIABLE: &'static str = "BANDITD_METRICS_KEY (or BANDITD_ADMIN_KEY)";
    fn key(keys: &Keys) -> Option<&SecretString> {
        keys.metrics.as_ref().or(keys.admin.as_ref())
    }
}

impl KeyScope for Assign {
    const VARIABLE: &'static str = "BANDITD_ASSIGN_KEY";
    fn key(keys: &Keys) -> Option<&SecretString> {
        keys.assign.as_ref()
    }
}

/// Proof that the request carried the key of scope `S` (or that `S` is open). Put it first in
/// a handler's arguments: extractors run in order, so a caller without the key learns nothing
/// from the errors of the others.
pub struct Authorized<S>(PhantomData<S>);

pub type AdminAuth = Authorized<Admin>;
pub type EventsAuth = Authorized<Events>;
pub type AssignAuth = Authorized<Assign>;
pub type MetricsAuth = Authorized<Metrics>;

impl<S: KeyScope> FromRequest for Authorized<S> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let checked = match req.app_data::<web::Data<AppState>>() {
            Some(state) => check::<S>(&state.keys, req.headers()),
            // Fails closed: a server wired without its state guards everything.
            None => Err(ApiError::Unavailable(
                "the server's keys are not configured".to_owned(),
            )),
        };
        std::future::ready(checked.map(|()| Authorized(PhantomData)))
    }
}

/// `POST /v1/events`: the events key (or the admin key), or no credentials at all with a body
/// of token events only. A browser cannot hold the events key, but a token from assign already
/// proves the assignment it credits; the handler must then call [`EventsPost::admit`] on the
/// decoded batch before anything is applied. A request that presents a wrong key is refused
/// here, as on every route.
pub enum EventsPost {
    /// The key was presented, or no events key is set.
    Keyed,
    /// No `Authorization` header while an events key is set: only verified tokens may pass.
    TokensOnly,
}

impl EventsPost {
    /// In [`EventsPost::TokensOnly`], refuses (401, as without this path) unless `tokens_ok`:
    /// the caller's verdict that every event of the batch decoded and carries a valid token.
    pub fn admit(&self, tokens_ok: impl FnOnce() -> bool) -> Result<(), ApiError> {
        match self {
            Self::Keyed => Ok(()),
            Self::TokensOnly if tokens_ok() => Ok(()),
            Self::TokensOnly => Err(tokens_only_refusal()),
        }
    }
}

/// The 401 of a keyless events request that is not all valid token events.
pub fn tokens_only_refusal() -> ApiError {
    ApiError::Unauthorized(format!(
        "this route needs `Authorization: Bearer <key>` with the key set in {}; without it, \
         every event must carry a valid `token` from assign for its experiment",
        Events::VARIABLE
    ))
}

impl FromRequest for EventsPost {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let checked = match req.app_data::<web::Data<AppState>>() {
            Some(state)
                if Events::key(&state.keys).is_some()
                    && !req.headers().contains_key(AUTHORIZATION) =>
            {
                Ok(Self::TokensOnly)
            }
            Some(state) => check::<Events>(&state.keys, req.headers()).map(|()| Self::Keyed),
            None => Err(ApiError::Unavailable(
                "the server's keys are not configured".to_owned(),
            )),
        };
        std::future::ready(checked)
    }
}

/// Accepts the request if the scope's key is unset, or if its key or the admin key is
/// presented.
pub fn check<S: KeyScope>(keys: &Keys, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = S::key(keys) else {
        return Ok(());
    };
    let name = S::VARIABLE;
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_credentials);
    let Some(presented) = presented else {
        return Err(ApiError::Unauthorized(format!(
            "this route needs `Authorization: Bearer <key>` with the key set in {name}"
        )));
    };
    let admin = keys
        .admin
        .as_ref()
        .map_or(Choice::from(0), |admin| same_key(admin, presented));
    if bool::from(same_key(expected, presented) | admin) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(format!(
            "the presented key does not match {name}"
        )))
    }
}

/// Whether `presented` is the admin key, compared in constant time; false while none is set.
/// For the dashboard's login form, where the key arrives in a form field.
pub fn is_admin_key(keys: &Keys, presented: &str) -> bool {
    keys.admin
        .as_ref()
        .is_some_and(|admin| bool::from(same_key(admin, presented)))
}

/// The credentials of a `Bearer` authorization value: the scheme name in any case, one or more
/// spaces, then the token (RFC 7235 §2.1: `credentials = auth-scheme [ 1*SP token68 ]`).
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.split_once(' ')?;
    let credentials = credentials.trim_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty()).then_some(credentials)
}

/// Compares in constant time. Hashing first gives both sides one length, so not even the
/// key's length shows in the timing.
fn same_key(expected: &SecretString, presented: &str) -> Choice {
    Sha256::digest(expected.expose().as_bytes())
        .as_slice()
        .ct_eq(Sha256::digest(presented.as_bytes()).as_slice())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn keys() -> Keys {
        Keys {
            events: Some("events-key".into()),
            admin: Some("admin-key".into()),
            assign: None,
            metrics: None,
        }
    }

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_bearer_scheme_name_matches_in_any_case() {
        for value in [
            "Bearer events-key",
            "bearer events-key",
            "BEARER events-key",
            "bEaReR   events-key ",
        ] {
            assert!(
                check::<Events>(&keys(), &with_authorization(value)).is_ok(),
                "{value:?}"
            );
        }
    }

    #[test]
    fn other_schemes_missing_and_wrong_keys_are_refused() {
        for value in [
            "Basic events-key",
            "Bearerevents-key",
            "Bearer",
            "Bearer ",
            "Bearer events-keyx",
            "Bearer EVENTS-KEY",
            "events-key",
        ] {
            assert!(
                matches!(
                    check::<Events>(&keys(), &with_authorization(value)),
                    Err(ApiError::Unauthorized(_))
                ),
                "{value:?}"
            );
        }
        assert!(check::<Events>(&keys(), &HeaderMap::new()).is_err());
    }

    #[test]
    fn the_admin_key_opens_every_scope_and_an_unset_key_leaves_its_scope_open() {
        let admin = with_authorization("Bearer admin-key");
        assert!(check::<Events>(&keys(), &admin).is_ok());
        assert!(check::<Admin>(&keys(), &admin).is_ok());
        assert!(check::<Assign>(&keys(), &HeaderMap::new()).is_ok());
        let events = with_authorization("Bearer events-key");
        assert!(check::<Admin>(&keys(), &events).is_err());
    }

    #[test]
    fn metrics_take_their_own_key_or_the_admin_key_and_are_open_with_neither() {
        let admin = with_authorization("Bearer admin-key");
        let scraper = with_authorization("Bearer scrape-key");
        let events = with_authorization("Bearer events-key");
        // Only the admin key set: it guards the metrics.
        assert!(check::<Metrics>(&keys(), &admin).is_ok());
        assert!(check::<Metrics>(&keys(), &HeaderMap::new()).is_err());
        assert!(check::<Metrics>(&keys(), &events).is_err());
        // A metrics key: it or the admin key, and it opens nothing else.
        let with_metrics_key = Keys {
            metrics: Some("scrape-key".into()),
            ..keys()
        };
        assert!(check::<Metrics>(&with_metrics_key, &scraper).is_ok());
        assert!(check::<Metrics>(&with_metrics_key, &admin).is_ok());
        assert!(check::<Metrics>(&with_metrics_key, &HeaderMap::new()).is_err());
        assert!(check::<Admin>(&with_metrics_key, &scraper).is_err());
        assert!(check::<Events>(&with_metrics_key, &scraper).is_err());
        // Neither key: open.
        assert!(check::<Metrics>(&Keys::default(), &HeaderMap::new()).is_ok());
    }

    #[actix_web::test]
    async fn a_server_wired_without_its_state_refuses_rather_than_opens() {
        let (req, mut payload) = actix_web::test::TestRequest::default()
            .insert_header((AUTHORIZATION, "Bearer anything"))
            .to_http_parts();
        let outcome = AdminAuth::from_request(&req, &mut payload).await;
        assert!(matches!(outcome, Err(ApiError::Unavailable(_))));
    }

    #[test]
    fn a_refusal_names_the_variable_and_never_the_key() {
        let Err(error) = check::<Admin>(&keys(), &with_authorization("Bearer nope")) else {
            panic!("a wrong key was accepted");
        };
        let detail = error.to_string();
        assert!(detail.contains("BANDITD_ADMIN_KEY"), "{detail}");
        assert!(
            !detail.contains("admin-key") && !detail.contains("nope"),
            "{detail}"
        );
    }
}
