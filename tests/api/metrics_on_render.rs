//! The assign metric's `outcome` for `exposure: on_render`: a new assignment is not counted
//! until the page confirms it, yet it is no returning unit either; it is labelled `new`.

use crate::helpers::TestApp;

fn on_render(id: &str, assignment: &str) -> String {
    format!(
        r#"
id: {id}
description: Which hero image keeps people reading?
owner: growth
status: running
assignment: {assignment}
exposure: on_render
confirm_within: 10m
policy: {{ burn_in: 1000000 }}
default_variant: a
variants:
  - id: a
    payload: {{}}
  - id: b
    payload: {{}}
"#
    )
}

/// The value of `banditd_assignments_total` for one label set, 0 when absent.
fn assignments(app: &TestApp, experiment: &str, variant: &str, outcome: &str) -> f64 {
    let text = app
        .agent
        .get(format!("{}/metrics", app.address))
        .call()
        .expect("GET /metrics")
        .body_mut()
        .read_to_string()
        .expect("a text scrape");
    let series = format!(
        "banditd_assignments_total{{experiment=\"{experiment}\",variant=\"{variant}\",outcome=\"{outcome}\"}} "
    );
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_new_on_render_assignment_is_labelled_new_and_its_return_returning() {
    let sticky = on_render("hero", "sticky");
    let per_request = on_render("banner", "per_request");
    let app = TestApp::spawn(&[("hero.yaml", &sticky), ("banner.yaml", &per_request)]);

    let first = app.assign("hero", "user-1");
    assert_eq!(first["counted"], false, "{first}");
    assert_eq!(first["confirm"], true, "{first}");
    let variant = first["variant"].as_str().unwrap().to_owned();
    assert_eq!(assignments(&app, "hero", &variant, "new"), 1.0);
    assert_eq!(assignments(&app, "hero", &variant, "returning"), 0.0);

    let again = app.assign("hero", "user-1");
    assert_eq!(again["variant"], variant.as_str(), "{again}");
    assert_eq!(assignments(&app, "hero", &variant, "new"), 1.0);
    assert_eq!(assignments(&app, "hero", &variant, "returning"), 1.0);

    // Every per-request draw is a new assignment.
    for unit in ["u-1", "u-1", "u-2"] {
        let drawn = app.assign("banner", unit);
        assert_eq!(drawn["confirm"], true, "{drawn}");
    }
    let new = assignments(&app, "banner", "a", "new") + assignments(&app, "banner", "b", "new");
    let returning = assignments(&app, "banner", "a", "returning")
        + assignments(&app, "banner", "b", "returning");
    assert_eq!((new, returning), (3.0, 0.0));
}
