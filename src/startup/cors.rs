//! CORS for browser pages: the allowed origins, checked at startup, and the middleware.
//!
//! An origin is compared byte for byte with the `Origin` header a browser sends, which is
//! always `scheme://host[:port]` in lowercase: an origin written any other way
//! (`http://a.example/`, `127.0.0.1:3000`, `*`) would silently never match, so it is refused
//! before the server starts.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

/// The expected form, quoted in every refusal.
const ORIGIN_FORM: &str =
    "scheme://host[:port], e.g. https://shop.example or http://localhost:3000";

/// Why a configured CORS origin was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--cors-origin (BANDITD_CORS_ORIGINS) {origin:?} is not a browser origin: {reason}; \
     write it as {ORIGIN_FORM}"
)]
pub struct BadOrigin {
    pub origin: String,
    pub reason: &'static str,
}

/// Checks each configured origin and returns them as browsers send them (scheme and host in
/// lowercase, which is how a browser writes them).
pub fn allowed_origins(configured: &[String]) -> Result<Vec<String>, BadOrigin> {
    configured
        .iter()
        .map(|origin| {
            check_origin(origin.trim()).map_err(|reason| BadOrigin {
                origin: origin.clone(),
                reason,
            })
        })
        .collect()
}

fn check_origin(origin: &str) -> Result<String, &'static str> {
    if origin == "*" {
        return Err(
            "a wildcard is not accepted (credentials and tokens would go to any page); \
                    list each origin",
        );
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return Err("it has no scheme");
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err("the scheme must be http or https");
    }
    if authority.is_empty() {
        return Err("it has no host");
    }
    if authority.contains(['/', '?', '#']) {
        return Err("an origin has no path, query or trailing slash");
    }
    if authority.contains('@') {
        return Err("an origin has no user name or password");
    }
    if authority.contains('*') {
        return Err("wildcards are not accepted; list each origin");
    }
    let authority = authority.to_ascii_lowercase();
    let parsed: actix_web::http::uri::Authority = authority
        .parse()
        .map_err(|_| "its host or port is malformed")?;
    if parsed.host().is_empty() {
        return Err("it has no host");
    }
    if authority.ends_with(':') || (authority.contains(':') && parsed.port_u16().is_none()) {
        // `Authority` takes `host:` and an IPv6 literal; a port must be a number.
        if !(authority.starts_with('[') && authority.ends_with(']')) {
            return Err("its port is not a number");
        }
    }
    Ok(format!("{scheme}://{authority}"))
}

/// The CORS middleware for the checked `origins` ([`allowed_origins`]).
pub fn cors(origins: &[String]) -> actix_cors::Cors {
    origins
        .iter()
        .fold(actix_cors::Cors::default(), |cors, origin| {
            cors.allowed_origin(origin)
        })
        .allowed_methods(["GET", "POST"])
        .allowed_headers([
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::AUTHORIZATION,
            crate::http::request_id::REQUEST_ID_HEADER,
        ])
        // A page's script can read the id of a failed call and quote it in a bug report.
        .expose_headers([crate::http::request_id::REQUEST_ID_HEADER])
        .max_age(3600)
}

/// Logs a request the CORS middleware refused, at debug level: a refusal is the page's
/// problem, not the server's, but whoever wires a page needs to see why (the answer itself
/// is a problem+json made further out).
pub async fn log_refusals(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let answer = next.call(req).await;
    // actix-cors answers a refusal itself (an error response carrying the `CorsError`); the
    // request is read back from that answer, so an allowed request costs nothing here.
    if let Ok(response) = &answer
        && let Some(refusal) = response
            .response()
            .error()
            .and_then(|e| e.as_error::<actix_cors::CorsError>())
    {
        let request = response.request();
        tracing::debug!(
            origin = request
                .headers()
                .get(actix_web::http::header::ORIGIN)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none"),
            method = %request.method(),
            path = request.path(),
            reason = %refusal,
            "CORS refused a request"
        );
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_a_scheme_a_host_and_an_optional_port() {
        for ok in [
            "https://shop.example",
            "http://localhost:3000",
            "http://127.0.0.1:8080",
            "http://[::1]:3000",
        ] {
            assert_eq!(check_origin(ok).as_deref(), Ok(ok));
        }
        assert_eq!(
            check_origin("HTTPS://Shop.Example").as_deref(),
            Ok("https://shop.example")
        );
    }

    #[test]
    fn a_path_a_missing_scheme_a_wildcard_or_a_bad_port_is_refused_with_its_reason() {
        for (bad, reason) in [
            ("http://a.example/", "trailing slash"),
            ("http://a.example/app", "no path"),
            ("127.0.0.1:3000", "no scheme"),
            ("*", "wildcard"),
            ("https://*.example", "wildcard"),
            ("ftp://a.example", "http or https"),
            ("http://", "no host"),
            ("http://a.example:port", "port"),
            ("http://a b.example", "malformed"),
            ("http://a.example:", "port"),
            ("http://user@a.example", "user name"),
        ] {
            let error = check_origin(bad).unwrap_err();
            assert!(error.contains(reason), "{bad}: {error}");
        }
    }

    #[test]
    fn the_startup_error_quotes_the_origin_and_the_expected_form() {
        let error = allowed_origins(&["https://ok.example".into(), "http://a.example/".into()])
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"http://a.example/\""), "{error}");
        assert!(error.contains("scheme://host[:port]"), "{error}");
    }
}
