//! The dashboard's routes. Each is a `#[utoipa::path]` handler mounted through the one route
//! list (`http::routes`), so the pages are in the OpenAPI document (tag `ui`) and fuzzed by the
//! contract test like every other route. Handlers are thin: check access, read through the
//! engine (the same calls as the JSON API), render.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use actix_web::{HttpRequest, HttpResponse, web};
use maud::Markup;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::access::{Access, UiAccess, has_session, parts};
use super::error::{UiError, UiResult};
use super::pages::{config, experiment, layout, list, login};
use super::session::{
    LOGIN_COOKIE, LOGIN_FORM_SECS, SESSION_COOKIE, clear_cookie, cookie_value, login_nonce,
    same_nonce, set_cookie,
};
use crate::http::openapi::Routes;
use crate::http::{ApiError, Problem};

/// Most bytes of a login form: a key, a nonce and a path.
const MAX_LOGIN_FORM_BYTES: usize = 8 * 1024;

/// Longest `next` path kept after login.
const MAX_NEXT_BYTES: usize = 2048;

const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");
const REFRESH_JS: &str = include_str!("assets/refresh.js");

pub fn routes(api: &mut impl Routes) {
    api.route::<__path_root_redirect, _, _>(root_redirect)
        .route::<__path_experiments, _, _>(experiments)
        .route::<__path_experiment_page, _, _>(experiment_page)
        .route::<__path_config_page, _, _>(config_page)
        .route::<__path_login_form, _, _>(login_form)
        .route::<__path_login, _, _>(login)
        .route::<__path_logout, _, _>(logout)
        .route::<__path_stylesheet, _, _>(stylesheet)
        .route::<__path_refresh_script, _, _>(refresh_script);
}

/// `next` for a query string.
pub fn encode_next(next: &str) -> String {
    utf8_percent_encode(next, NON_ALPHANUMERIC).to_string()
}

/// Where to go after login: a dashboard path, or the experiments list. Anything else (another
/// site, `//host`, a backslash, control characters) would make the login page an open
/// redirect.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with("/ui/")
                && next.len() <= MAX_NEXT_BYTES
                && !next.contains("//")
                && !next.contains('\\')
                && !next.chars().any(char::is_control) =>
        {
            next.to_owned()
        }
        _ => "/ui/".to_owned(),
    }
}

fn page_response(status: StatusCode, markup: Markup) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response.insert_header((CONTENT_TYPE, layout::HTML));
    for header in layout::security_headers() {
        response.insert_header(header);
    }
    response.body(markup.into_string())
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, location.to_owned()))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

fn chrome(req: &HttpRequest, access: Access) -> UiResult<layout::Chrome> {
    let (state, settings) = parts(req)?;
    Ok(layout::Chrome {
        access,
        refresh_secs: settings.refresh.as_secs(),
        now_ms: state.engine.now_ms(),
    })
}

/// `/ui` without the slash: to the dashboard.
#[utoipa::path(
    get,
    path = "/ui",
    tag = "ui",
    operation_id = "ui_root",
    responses(
        (status = 308, description = "To `/ui/`",
         headers(("Location" = String, description = "`/ui/`"))),
    ),
)]
async fn root_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((LOCATION, "/ui/"))
        .finish()
}

/// The dashboard: every loaded experiment with its status, traffic, leader, stopping state,
/// sample-ratio alert and history staleness. Needs a session (sign in at `/ui/login`) or the
/// admin key while `BANDITD_ADMIN_KEY` is set; open otherwise.
#[utoipa::path(
    get,
    path = "/ui/",
    tag = "ui",
    operation_id = "ui_experiments",
    responses(
        (status = 200, description = "The experiments page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to the login page",
         headers(("Location" = String, description = "`/ui/login?next=…`"))),
        (status = 503, description = "The store cannot be read", content_type = "text/html", body = String,
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn experiments(access: UiAccess, req: HttpRequest) -> UiResult<HttpResponse> {
    let (state, settings) = parts(&req)?;
    let rows = list::load(&state.engine, settings.history_interval).await?;
    let chrome = chrome(&req, access.0)?;
    Ok(page_response(
        StatusCode::OK,
        layout::page(&chrome, "Experiments", list::render(&rows)),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ExperimentQuery {
    /// An earlier revision, whose data stays readable after a revision bump; default: the
    /// loaded one. Text, so that a bad value gets a page that names it; documented as the
    /// whole range of a revision (1 to 2^32 − 1), which an `int32` would cut in half.
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 1, maximum = 4_294_967_295.0)]
    revision: Option<String>,
}

/// One experiment: the per-arm table, the stopping decision, the sample-ratio check and the
/// plots (posterior densities, P(best) and traffic over time, cumulative exposures and
/// rewards). Access as for `/ui/`.
#[utoipa::path(
    get,
    path = "/ui/experiments/{id}",
    tag = "ui",
    operation_id = "ui_experiment",
    params(("id" = String, Path, description = "Experiment id", example = "homepage-headline"), ExperimentQuery),
    responses(
        (status = 200, description = "The experiment page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to the login page",
         headers(("Location" = String, description = "`/ui/login?next=…`"))),
        (status = 400, description = "A malformed query parameter", content(
            (String = "text/html"), (Problem = "application/problem+json"))),
        (status = 404, description = "Unknown experiment or revision", content_type = "text/html", body = String),
        (status = 503, description = "The store cannot be read", content_type = "text/html", body = String,
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
)]
async fn experiment_page(
    query: web::Query<ExperimentQuery>,
    access: Result<UiAccess, UiError>,
    req: HttpRequest,
    id: web::Path<String>,
) -> UiResult<HttpResponse> {
    // A malformed address is refused before the sign-in check (found by schemathesis: a
    // revision out of range was sent on to the login page). It reveals nothing about the data.
    let revision = match query.revision.as_deref() {
        None => None,
        Some(text) => Some(
            text.parse::<u32>()
                .ok()
                .filter(|r| *r >= 1 && text.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    UiError::BadRequest(format!(
                        "`revision` is {text:?}; use a revision number, e.g. 1"
                    ))
                })?,
        ),
    };
    let access = access?;
    let (state, settings) = parts(&req)?;
    let page = experiment::load(&state.engine, &id, revision, settings.history_interval).await?;
    let chrome = chrome(&req, access.0)?;
    Ok(page_response(
        StatusCode::OK,
        layout::page(&chrome, &page.report.summary.id, experiment::render(&page)),
    ))
}

/// What the server runs: the loaded version, load time, files, the last refused reload with
/// each `file:line:col`, and every live replica's version. Access as for `/ui/`.
#[utoipa::path(
    get,
    path = "/ui/config",
    tag = "ui",
    operation_id = "ui_config",
    responses(
        (status = 200, description = "The configuration page", content_type = "text/html", body = String),
        (status = 303, description = "Not signed in: to the login page",
         headers(("Location" = String, description = "`/ui/login?next=…`"))),
    ),
)]
async fn config_page(access: UiAccess, req: HttpRequest) -> UiResult<HttpResponse> {
    let (state, _) = parts(&req)?;
    let status = state.engine.config_status();
    let watch = state.engine.watch_status();
    // A store that cannot list the replicas does not break the page: the section says so.
    let replicas = state.engine.replica_set(&state.replica).await.ok();
    let chrome = chrome(&req, access.0)?;
    Ok(page_response(
        StatusCode::OK,
        layout::page(
            &chrome,
            "Configuration",
            config::render(&status, &watch, replicas.as_ref()),
        ),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LoginQuery {
    /// The dashboard page to show after signing in (a path under `/ui/`); default `/ui/`.
    #[serde(default)]
    next: Option<String>,
}

/// A login page with a fresh anti-forgery cookie for its form.
fn login_page(
    req: &HttpRequest,
    status: StatusCode,
    next: &str,
    notice: login::Notice,
) -> HttpResponse {
    let nonce = login_nonce();
    let mut response = page_response(status, login::render(&nonce, next, notice));
    let cookie = set_cookie(
        LOGIN_COOKIE,
        &nonce,
        "/ui/login",
        LOGIN_FORM_SECS,
        is_https(req),
    );
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(SET_COOKIE, value);
    }
    if status == StatusCode::UNAUTHORIZED {
        // RFC 9110 §15.5.2: a 401 names a scheme; the admin key also works as a bearer token.
        response.headers_mut().insert(
            actix_web::http::header::WWW_AUTHENTICATE,
            actix_web::http::header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

fn is_https(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// The login page: asks for the admin key. Without an admin key, or with a valid session,
/// it sends the browser on to `next`.
#[utoipa::path(
    get,
    path = "/ui/login",
    tag = "ui",
    operation_id = "ui_login_form",
    params(LoginQuery),
    responses(
        (status = 200, description = "The login form; sets the form's anti-forgery cookie",
         content_type = "text/html", body = String,
         headers(("Set-Cookie" = String, description = "`banditd_login`: HttpOnly, SameSite=Strict, 10 minutes"))),
        (status = 303, description = "No admin key is set, or already signed in: to `next`",
         headers(("Location" = String, description = "`next`, or `/ui/`"))),
    ),
)]
async fn login_form(req: HttpRequest, query: web::Query<LoginQuery>) -> UiResult<HttpResponse> {
    let (state, settings) = parts(&req)?;
    let next = safe_next(query.next.as_deref());
    if state.keys.admin.is_none() || has_session(&req, state, settings) {
        return Ok(see_other(&next));
    }
    Ok(login_page(&req, StatusCode::OK, &next, login::Notice::None))
}

/// The login form's fields.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginForm {
    /// The admin key (`BANDITD_ADMIN_KEY`).
    pub key: String,
    /// The anti-forgery value of the form, equal to the `banditd_login` cookie.
    pub csrf: String,
    /// The dashboard path to go to afterwards.
    #[serde(default)]
    pub next: Option<String>,
}

/// Whether the request came from a page of this server: a browser's `Origin` (sent with
/// every form POST by current browsers) must name this host, and `Sec-Fetch-Site`, when
/// sent, must not say another site. The scheme is not compared: behind a TLS proxy that does
/// not send `X-Forwarded-Proto` the server sees `http` while the page was `https`, and the
/// host alone is what tells this site from another.
fn same_origin(req: &HttpRequest) -> bool {
    let headers = req.headers();
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site == "cross-site" || site == "same-site")
    {
        return false;
    }
    match headers.get("origin").map(|v| v.to_str()) {
        None => true,
        Some(Ok(origin)) => {
            let host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            host.is_some_and(|host| host.eq_ignore_ascii_case(req.connection_info().host()))
        }
        Some(Err(_)) => false,
    }
}

/// Signs in: checks the form's anti-forgery value and the key, then sets the session cookie
/// (HttpOnly, SameSite=Strict, signed, expiring after `--ui-session-lifetime`) and goes to
/// `next`. A wrong key gets the form again (401); a form without its cookie or from another
/// site gets it again too (403).
#[utoipa::path(
    post,
    path = "/ui/login",
    tag = "ui",
    operation_id = "ui_login",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in (or no admin key is set): to `next`",
         headers(("Location" = String, description = "`next`, or `/ui/`"))),
        (status = 400, description = "The form is malformed", body = Problem,
         content_type = "application/problem+json"),
        (status = 401, description = "Wrong key: the form again", content_type = "text/html", body = String,
         headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "The form's anti-forgery value is missing, wrong or from \
                                      another site: the form again",
         content_type = "text/html", body = String),
        (status = 408, description = "The body did not arrive in time", body = Problem,
         content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = Problem,
         content_type = "application/problem+json"),
        (status = 415, description = "Not `application/x-www-form-urlencoded`", body = Problem,
         content_type = "application/problem+json"),
    ),
)]
async fn login(req: HttpRequest, payload: web::Payload) -> UiResult<HttpResponse> {
    let form_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(ApiError::UnsupportedMediaType(
            "the login form is `application/x-www-form-urlencoded`".to_owned(),
        )
        .into());
    }
    let body = crate::http::body::read_limited(&req, payload, MAX_LOGIN_FORM_BYTES).await?;
    let form: LoginForm = serde_urlencoded::from_bytes(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid login form: {e}")))?;
    let (state, settings) = parts(&req)?;
    let next = safe_next(form.next.as_deref());
    let Some(admin_key) = state.keys.admin.as_ref() else {
        return Ok(see_other(&next));
    };
    let cookie_nonce = req
        .headers()
        .get_all(COOKIE)
        .filter_map(|v| v.to_str().ok())
        .find_map(|header| cookie_value(header, LOGIN_COOKIE));
    let genuine = cookie_nonce.is_some_and(|nonce| same_nonce(nonce, &form.csrf));
    if !genuine || !same_origin(&req) {
        return Ok(login_page(
            &req,
            StatusCode::FORBIDDEN,
            &next,
            login::Notice::Expired,
        ));
    }
    if !crate::http::auth::is_admin_key(&state.keys, &form.key) {
        tracing::info!("dashboard login refused: wrong key");
        return Ok(login_page(
            &req,
            StatusCode::UNAUTHORIZED,
            &next,
            login::Notice::WrongKey,
        ));
    }
    let lifetime_ms = settings.session_lifetime_ms();
    let session = settings
        .session_key
        .issue(admin_key, state.engine.now_ms(), lifetime_ms);
    let mut response = see_other(&next);
    let headers = response.headers_mut();
    for cookie in [
        set_cookie(
            SESSION_COOKIE,
            &session,
            "/ui",
            lifetime_ms / 1000,
            is_https(&req),
        ),
        clear_cookie(LOGIN_COOKIE, "/ui/login"),
    ] {
        if let Ok(value) = cookie.parse() {
            headers.append(SET_COOKIE, value);
        }
    }
    tracing::info!("dashboard login");
    Ok(response)
}

/// Signs out: removes the session cookie and goes to the login page.
#[utoipa::path(
    post,
    path = "/ui/logout",
    tag = "ui",
    operation_id = "ui_logout",
    responses(
        (status = 303, description = "Signed out: to the login page",
         headers(("Location" = String, description = "`/ui/login`"))),
    ),
)]
async fn logout() -> HttpResponse {
    let mut response = see_other("/ui/login");
    if let Ok(value) = clear_cookie(SESSION_COOKIE, "/ui").parse() {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        .insert_header(("Cache-Control", "public, max-age=300"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}

/// The dashboard's stylesheet.
#[utoipa::path(
    get,
    path = "/ui/assets/dashboard.css",
    tag = "ui",
    operation_id = "ui_stylesheet",
    responses((status = 200, description = "CSS", content_type = "text/css", body = String)),
)]
async fn stylesheet() -> HttpResponse {
    asset("text/css; charset=utf-8", DASHBOARD_CSS)
}

/// The pages' optional script: reloads a page's data once per interval while its tab is
/// visible. The pages work without it.
#[utoipa::path(
    get,
    path = "/ui/assets/refresh.js",
    tag = "ui",
    operation_id = "ui_refresh_script",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)),
)]
async fn refresh_script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", REFRESH_JS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_dashboard() {
        assert_eq!(
            safe_next(Some("/ui/experiments/a?revision=2")),
            "/ui/experiments/a?revision=2"
        );
        for hostile in [
            None,
            Some(""),
            Some("https://evil.example/ui/"),
            Some("//evil.example/ui/"),
            Some("/ui//evil.example"),
            Some("/ui/\\evil"),
            Some("/ui/\nSet-Cookie: x"),
            Some("/v1/admin/reload"),
            Some("/uix"),
        ] {
            assert_eq!(safe_next(hostile), "/ui/", "{hostile:?}");
        }
    }

    #[test]
    fn a_form_from_this_host_passes_whatever_the_scheme_and_one_from_another_site_does_not() {
        let request = |headers: &[(&str, &str)]| {
            let mut request = actix_web::test::TestRequest::post()
                .uri("/ui/login")
                .insert_header(("host", "banditd.internal:8080"));
            for header in headers {
                request = request.insert_header(*header);
            }
            request.to_http_request()
        };
        assert!(same_origin(&request(&[])));
        assert!(same_origin(&request(&[(
            "origin",
            "http://banditd.internal:8080"
        )])));
        assert!(same_origin(&request(&[(
            "origin",
            "https://banditd.internal:8080"
        )])));
        for hostile in [
            &[("origin", "https://evil.example")][..],
            &[("origin", "null")][..],
            &[("origin", "https://banditd.internal:8080.evil.example")][..],
            &[("sec-fetch-site", "cross-site")][..],
            &[("sec-fetch-site", "same-site")][..],
        ] {
            assert!(!same_origin(&request(hostile)), "{hostile:?}");
        }
    }

    #[test]
    fn next_is_percent_encoded_for_the_query_string() {
        assert_eq!(
            encode_next("/ui/experiments/a?revision=2"),
            "%2Fui%2Fexperiments%2Fa%3Frevision%3D2"
        );
    }
}
