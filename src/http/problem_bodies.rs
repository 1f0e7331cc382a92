//! The safety net that keeps every error the application answers `application/problem+json`:
//! the handlers' own errors already are ([`ApiError`](super::ApiError)), but middleware answers
//! with its own bodies (actix-cors refuses a preflight with plain text). Whatever reaches the
//! client through the `App` with a 4xx/5xx status and another content type is rewritten as a
//! problem whose `detail` is the original text. (Errors of actix's HTTP/1 parser, answered
//! before the `App` runs, cannot be reached from here; the README lists them.) Every problem
//! that passes here gets the request's id as `request_id` (see `request_id`).

use actix_web::body::{MessageBody, to_bytes_limited};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpResponse, Result};

use super::problem::{PROBLEM_CONTENT_TYPE, Problem};
use super::request_id::RequestId;

/// Longest original body quoted in the rewritten problem's `detail`.
const MAX_QUOTED_DETAIL_BYTES: usize = 512;

/// Middleware: `App::new().wrap(problem_bodies())`, outermost so it sees every other
/// middleware's answers.
pub fn problem_bodies<B: MessageBody + 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(as_problem)
}

fn as_problem<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| {
            value
                .as_bytes()
                .starts_with(PROBLEM_CONTENT_TYPE.as_bytes())
        });
    if is_dashboard_page(&res) {
        // A page the dashboard rendered on purpose (its 401 login form, its 404 page): a
        // person reads it in a browser, and it is documented as `text/html`.
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let request_id = RequestId::of(res.request()).map(|id| id.as_str().to_owned());
    if is_problem {
        // An `ApiError`'s answer: the same problem, now with the request's id.
        let (req, mut res) = res.into_parts();
        let problem = res.extensions_mut().remove::<Problem>();
        let res = match (problem, request_id) {
            (Some(mut problem), Some(request_id)) => {
                problem.request_id = Some(request_id);
                let body = serde_json::to_string(&problem).unwrap_or_default();
                res.set_body(body)
                    .map_into_boxed_body()
                    .map_into_right_body()
            }
            _ => res.map_into_left_body(),
        };
        return Ok(ErrorHandlerResponse::Response(ServiceResponse::new(
            req, res,
        )));
    }
    Ok(ErrorHandlerResponse::Future(Box::pin(async move {
        let (req, res) = res.into_parts();
        let status = res.status();
        let mut headers = res.headers().clone();
        let original = match to_bytes_limited(res.into_body(), MAX_QUOTED_DETAIL_BYTES).await {
            Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).trim().to_owned(),
            _ => String::new(),
        };
        let reason = status.canonical_reason().unwrap_or("Error");
        let problem = Problem {
            kind: format!(
                "https://banditd.dev/problems/{}",
                reason.to_ascii_lowercase().replace(' ', "-")
            ),
            title: reason,
            status: status.as_u16(),
            detail: if original.is_empty() {
                reason.to_owned()
            } else {
                original.escape_debug().to_string()
            },
            errors: Vec::new(),
            request_id,
        };
        let mut rewritten = HttpResponse::build(status);
        headers.remove(header::CONTENT_LENGTH);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        for (name, value) in &headers {
            rewritten.append_header((name.clone(), value.clone()));
        }
        let body = serde_json::to_string(&problem).unwrap_or_default();
        let res = ServiceResponse::new(req, rewritten.body(body));
        Ok(res.map_into_boxed_body().map_into_right_body())
    })))
}

/// An HTML answer under `/ui/`: only the dashboard's handlers (src/ui/) make those.
fn is_dashboard_page<B>(res: &ServiceResponse<B>) -> bool {
    res.request().path().starts_with("/ui/")
        && res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"text/html"))
}

#[cfg(test)]
mod tests {
    use actix_web::{App, HttpResponse, test, web};

    use super::*;
    use crate::http::ApiError;

    #[actix_web::test]
    async fn plain_error_bodies_become_problems_and_problems_and_successes_pass_unchanged() {
        let app = test::init_service(
            App::new()
                .wrap(problem_bodies())
                .route(
                    "/plain",
                    web::get().to(|| async {
                        HttpResponse::Forbidden()
                            .insert_header(("x-kept", "yes"))
                            .body("not \"you\"")
                    }),
                )
                .route(
                    "/empty",
                    web::get().to(|| async { HttpResponse::Conflict().finish() }),
                )
                .route(
                    "/problem",
                    web::get().to(|| async {
                        Err::<HttpResponse, _>(ApiError::BadRequest("own words".to_owned()))
                    }),
                )
                .route(
                    "/ok",
                    web::get().to(|| async { HttpResponse::Ok().body("fine") }),
                ),
        )
        .await;
        let call = |path: &'static str| test::TestRequest::get().uri(path).to_request();
        let plain = test::call_service(&app, call("/plain")).await;
        assert_eq!(plain.status(), 403);
        assert_eq!(
            plain.headers().get("content-type").unwrap(),
            PROBLEM_CONTENT_TYPE
        );
        assert_eq!(plain.headers().get("x-kept").unwrap(), "yes");
        let body: serde_json::Value = test::read_body_json(plain).await;
        assert_eq!(body["status"], 403);
        assert_eq!(body["detail"], r#"not \"you\""#);
        let empty: serde_json::Value = test::call_and_read_body_json(&app, call("/empty")).await;
        assert_eq!(
            (empty["status"].clone(), empty["detail"].clone()),
            (409.into(), "Conflict".into())
        );
        let own: serde_json::Value = test::call_and_read_body_json(&app, call("/problem")).await;
        assert_eq!(own["detail"], "own words");
        let ok = test::call_and_read_body(&app, call("/ok")).await;
        assert_eq!(ok, "fine");
    }

    #[actix_web::test]
    async fn dashboard_html_pages_pass_and_html_elsewhere_is_still_rewritten() {
        let page = || async {
            HttpResponse::NotFound()
                .content_type("text/html; charset=utf-8")
                .body("<p>no such experiment</p>")
        };
        let app = test::init_service(
            App::new()
                .wrap(problem_bodies())
                .route("/ui/experiments/x", web::get().to(page))
                .route("/v1/html", web::get().to(page)),
        )
        .await;
        let call = |path: &'static str| test::TestRequest::get().uri(path).to_request();
        let ui = test::call_service(&app, call("/ui/experiments/x")).await;
        assert_eq!(ui.status(), 404);
        assert_eq!(
            ui.headers().get("content-type").unwrap(),
            "text/html; charset=utf-8"
        );
        assert_eq!(test::read_body(ui).await, "<p>no such experiment</p>");
        let api = test::call_service(&app, call("/v1/html")).await;
        assert_eq!(
            api.headers().get("content-type").unwrap(),
            PROBLEM_CONTENT_TYPE
        );
    }
}
