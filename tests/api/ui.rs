//! The dashboard over real HTTP, without a browser (tests/browser/ drives it in Chromium):
//! who may see it, the login form and its session cookie, and the headers every page carries.

use std::time::Duration;

use crate::helpers::{STICKY, TestApp};

const ADMIN_KEY: &str = "ui-test-admin-key-0123456789";

/// A raw answer: status, headers, body text.
struct Page {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// An agent that neither follows redirects nor treats statuses as errors.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn page(mut response: ureq::http::Response<ureq::Body>) -> Page {
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    Page {
        status: response.status().as_u16(),
        headers,
        body: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> Page {
    let mut request = agent().get(format!("{}{path}", app.address));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    page(request.call().expect("GET"))
}

fn post_form(app: &TestApp, path: &str, cookie: Option<&str>, form: &str) -> Page {
    let mut request = agent()
        .post(format!("{}{path}", app.address))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    page(request.send(form).expect("POST"))
}

/// `name=value` of the `Set-Cookie` for `name`.
fn cookie_pair<'a>(page: &'a Page, name: &str) -> Option<&'a str> {
    page.set_cookies()
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
}

/// The value of the hidden form field `name` of a login page.
fn field<'a>(html: &'a str, name: &str) -> &'a str {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("the field") + marker.len();
    &html[start..start + html[start..].find('"').expect("a closing quote")]
}

fn keyed(extra_env: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("BANDITD_ADMIN_KEY", ADMIN_KEY)];
    env.extend_from_slice(extra_env);
    TestApp::spawn_with_env(&[("headline.yaml", STICKY)], &env)
}

/// Signs in through the form; returns the `banditd_session=…` pair.
fn sign_in(app: &TestApp) -> String {
    let form = get(app, "/ui/login?next=/ui/config", None);
    assert_eq!(form.status, 200, "{}", form.body);
    let nonce_cookie = cookie_pair(&form, "banditd_login").expect("the form's cookie");
    let csrf = field(&form.body, "csrf");
    let signed = post_form(
        app,
        "/ui/login",
        Some(nonce_cookie),
        &format!("key={ADMIN_KEY}&csrf={csrf}&next=%2Fui%2Fconfig"),
    );
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert_eq!(signed.header("location"), Some("/ui/config"));
    cookie_pair(&signed, "banditd_session")
        .expect("a session cookie")
        .to_owned()
}

#[test]
fn without_an_admin_key_the_pages_are_open_like_the_read_routes() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    for path in ["/ui/", "/ui/experiments/headline", "/ui/config"] {
        let reply = get(&app, path, None);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert!(
            reply
                .header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
    }
    // Nothing to sign in to: the login page sends the browser on.
    let login = get(&app, "/ui/login?next=/ui/config", None);
    assert_eq!(
        (login.status, login.header("location")),
        (303, Some("/ui/config"))
    );
    assert_eq!(get(&app, "/ui", None).header("location"), Some("/ui/"));
}

#[test]
fn with_an_admin_key_a_page_without_a_session_goes_to_the_login_page() {
    let app = keyed(&[]);
    let reply = get(&app, "/ui/experiments/headline?revision=1", None);
    assert_eq!(reply.status, 303);
    assert_eq!(
        reply.header("location"),
        Some("/ui/login?next=%2Fui%2Fexperiments%2Fheadline%3Frevision%3D1")
    );
    assert!(!reply.body.contains("control"), "no data before signing in");
    // The admin key as a bearer token opens the pages (a script, a proxy).
    let mut request = agent().get(format!("{}/ui/", app.address));
    request = request.header("authorization", format!("Bearer {ADMIN_KEY}"));
    assert_eq!(page(request.call().unwrap()).status, 200);
}

#[test]
fn signing_in_sets_a_strict_http_only_expiring_session_that_opens_every_page() {
    let app = keyed(&[]);
    let form = get(&app, "/ui/login", None);
    let login_cookie = form
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("banditd_login="))
        .expect("the form's cookie")
        .to_owned();
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"));
    assert!(!form.body.contains(ADMIN_KEY));
    let session = sign_in(&app);
    assert!(!session.contains(ADMIN_KEY));
    for path in ["/ui/", "/ui/experiments/headline", "/ui/config"] {
        let reply = get(&app, path, Some(&session));
        assert_eq!(reply.status, 200, "{path}");
        assert!(!reply.body.contains(ADMIN_KEY), "{path} shows the key");
        assert!(reply.body.contains("Sign out"), "{path}");
    }
    // The cookie's attributes, as the browser gets them.
    let form = get(&app, "/ui/login", None);
    let signed = post_form(
        &app,
        "/ui/login",
        cookie_pair(&form, "banditd_login"),
        &format!("key={ADMIN_KEY}&csrf={}", field(&form.body, "csrf")),
    );
    let set = signed
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("banditd_session="))
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    // Signing out removes it.
    let out = post_form(&app, "/ui/logout", Some(&session), "");
    assert_eq!(out.status, 303);
    assert!(cookie_pair(&out, "banditd_session").is_some_and(|c| c == "banditd_session="));
}

#[test]
fn a_wrong_key_a_forged_form_and_a_forged_cookie_are_refused() {
    let app = keyed(&[]);
    let form = get(&app, "/ui/login", None);
    let nonce_cookie = cookie_pair(&form, "banditd_login").unwrap().to_owned();
    let csrf = field(&form.body, "csrf").to_owned();
    let wrong = post_form(
        &app,
        "/ui/login",
        Some(&nonce_cookie),
        &format!("key=not-it&csrf={csrf}"),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.header("www-authenticate"), Some("Bearer"));
    assert!(wrong.body.contains("not the admin key"));
    assert!(cookie_pair(&wrong, "banditd_session").is_none());
    // The right key without the form's cookie (a page of another site posting the form).
    let forged = post_form(
        &app,
        "/ui/login",
        None,
        &format!("key={ADMIN_KEY}&csrf={csrf}"),
    );
    assert_eq!(forged.status, 403);
    assert!(cookie_pair(&forged, "banditd_session").is_none());
    // The right key and cookie, but sent by a page of another origin.
    let request = agent()
        .post(format!("{}/ui/login", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &nonce_cookie)
        .header("origin", "https://evil.example");
    let cross = page(
        request
            .send(format!("key={ADMIN_KEY}&csrf={csrf}"))
            .unwrap(),
    );
    assert_eq!(cross.status, 403);
    // A session cookie not signed by this server.
    let fake = "banditd_session=v1.99999999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(get(&app, "/ui/", Some(fake)).status, 303);
}

#[test]
fn a_session_ends_at_its_lifetime() {
    let app = keyed(&[("BANDITD_UI_SESSION_LIFETIME", "1s")]);
    let session = sign_in(&app);
    assert_eq!(get(&app, "/ui/", Some(&session)).status, 200);
    std::thread::sleep(Duration::from_millis(1_300));
    assert_eq!(get(&app, "/ui/", Some(&session)).status, 303);
}

#[test]
fn the_login_page_never_sends_the_browser_off_the_dashboard() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    for next in [
        "https%3A%2F%2Fevil.example%2F",
        "%2F%2Fevil.example%2Fui%2F",
        "%2Fv1%2Fadmin%2Freload",
    ] {
        let reply = get(&app, &format!("/ui/login?next={next}"), None);
        assert_eq!(reply.header("location"), Some("/ui/"), "{next}");
    }
}

/// Found by schemathesis: with an admin key set, a malformed `revision` went to the login
/// page (303) instead of being refused as the document says.
#[test]
fn a_malformed_revision_is_refused_before_the_sign_in_check() {
    let app = keyed(&[]);
    for revision in ["abc", "0", "-1", "4294967296", "99999999999"] {
        let reply = get(
            &app,
            &format!("/ui/experiments/headline?revision={revision}"),
            None,
        );
        assert_eq!(reply.status, 400, "{revision}: {}", reply.body);
        assert!(reply.body.contains("revision"), "{}", reply.body);
    }
    // The largest revision the document allows is well-formed: it goes to the login page.
    let largest = get(&app, "/ui/experiments/headline?revision=4294967295", None);
    assert_eq!(largest.status, 303);
}

#[test]
fn pages_are_html_with_a_strict_content_security_policy_and_are_never_cached() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    for path in [
        "/ui/",
        "/ui/experiments/headline",
        "/ui/config",
        "/ui/experiments/nope",
    ] {
        let reply = get(&app, path, None);
        let policy = reply.header("content-security-policy").unwrap_or("");
        assert!(policy.contains("default-src 'none'"), "{path}: {policy}");
        assert!(policy.contains("script-src 'self'"), "{path}: {policy}");
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        // Nothing is loaded from elsewhere.
        for external in ["http://", "https://", "//cdn"] {
            let linked = reply.body.contains(&format!("src=\"{external}"))
                || reply.body.contains(&format!("href=\"{external}"));
            assert!(!linked, "{path} links {external}");
        }
    }
    // An unknown experiment is a page a person can read, with its status.
    let missing = get(&app, "/ui/experiments/nope", None);
    assert_eq!(missing.status, 404);
    assert!(
        missing
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(missing.body.contains("nope"));
    // The assets are served by the binary.
    let css = get(&app, "/ui/assets/dashboard.css", None);
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    let js = get(&app, "/ui/assets/refresh.js", None);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(js.body.contains("visibilitychange"));
}

#[test]
fn the_arm_table_carries_the_reports_exact_numbers() {
    let app = TestApp::spawn(&[("headline.yaml", &crate::helpers::naive(STICKY))]);
    for i in 0..30 {
        app.assign("headline", &format!("u{i}"));
    }
    app.post_events(&serde_json::json!([
        {"id": "e1", "experiment": "headline", "unit": "u1"},
        {"id": "e2", "experiment": "headline", "unit": "u2", "reward": 0.5},
    ]));
    let arms = app.arms("headline");
    let html = get(&app, "/ui/experiments/headline", None).body;
    for arm in &arms {
        let variant = arm["variant"].as_str().unwrap();
        let row_start = html
            .find(&format!("<tr data-variant=\"{variant}\">"))
            .expect("a row per arm");
        let row = &html[row_start..row_start + html[row_start..].find("</tr>").unwrap()];
        for (field, value) in [
            ("prob_best", &arm["prob_best"]),
            ("expected_loss", &arm["expected_loss"]),
            ("traffic_share", &arm["traffic_share"]),
            ("mean", &arm["posterior"]["mean"]),
        ] {
            let cell = &row[row.find(&format!("data-field=\"{field}\"")).unwrap()..];
            let exact = field_value(cell);
            assert_eq!(
                exact.parse::<f64>().unwrap(),
                value.as_f64().unwrap(),
                "{variant} {field}"
            );
        }
    }
}

/// The `value` of the first `<data>` element in `html`.
fn field_value(html: &str) -> &str {
    let start = html.find("<data value=\"").unwrap() + "<data value=\"".len();
    &html[start..start + html[start..].find('"').unwrap()]
}
