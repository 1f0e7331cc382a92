//! RFC 7807 `application/problem+json` errors: every failure a client can cause gets a 4xx with
//! a `detail` that says what was wrong and where; only store failures are 5xx.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

use crate::engine::EngineError;
use crate::store::StoreError;

/// `Retry-After` of every 503, in seconds: a store that fails retries its reopen about once a
/// second, and a draining server is gone by then (the client's retry reaches another replica).
pub const RETRY_AFTER_SECS: u64 = 1;

/// The media type of every error body (RFC 7807).
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The problem document (RFC 7807), the body of every 4xx and 5xx answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "https://banditd.dev/problems/bad-request",
    "title": "Bad request",
    "status": 400,
    "detail": "`unit`: the unit is empty"
}))]
pub struct Problem {
    /// A URI naming the kind of problem (`https://banditd.dev/problems/<slug>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The kind of problem in a few words; the same for every problem of one `type`.
    pub title: &'static str,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What was wrong and where, for this request.
    pub detail: String,
    /// Individual problems (e.g. every `file:line:col` of a refused reload).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub errors: Vec<String>,
    /// The request's id (its `X-Request-Id`), to find its log lines and trace; set by the
    /// `problem_bodies` middleware, which every answer of the application passes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Errors of the HTTP boundary.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{detail}")]
    Unprocessable { detail: String, errors: Vec<String> },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Handler result alias.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            Self::BadRequest(_) => ("bad-request", "Bad request"),
            Self::Unauthorized(_) => ("unauthorized", "Missing or wrong API key"),
            Self::NotFound(_) => ("not-found", "Not found"),
            Self::MethodNotAllowed(_) => ("method-not-allowed", "Method not allowed"),
            Self::RequestTimeout(_) => ("request-timeout", "Request timeout"),
            Self::PayloadTooLarge(_) => ("payload-too-large", "Payload too large"),
            Self::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            Self::Unavailable(_) => ("unavailable", "Service unavailable"),
            Self::Unprocessable { .. } => ("unprocessable", "Refused"),
            Self::Engine(EngineError::UnknownExperiment(_)) => {
                ("unknown-experiment", "Unknown experiment")
            }
            Self::Engine(EngineError::Draft(_)) => {
                ("experiment-not-served", "Experiment not served")
            }
            Self::Engine(EngineError::NotInEnvironment { .. }) => (
                "not-in-environment",
                "Experiment not live in this environment",
            ),
            Self::Engine(EngineError::UnknownRevision { .. }) => {
                ("unknown-revision", "Unknown revision")
            }
            Self::Engine(EngineError::BadLevel(_)) => ("bad-level", "Bad credible level"),
            Self::Engine(EngineError::Store(_)) => ("store-unavailable", "Storage unavailable"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Engine(EngineError::BadLevel(_)) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_)
            | Self::Engine(
                EngineError::UnknownExperiment(_)
                | EngineError::Draft(_)
                | EngineError::NotInEnvironment { .. }
                | EngineError::UnknownRevision { .. },
            ) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) | Self::Engine(EngineError::Store(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            // The store logs a failure episode once, with its cause; its requests do not.
            Self::Unavailable(_) | Self::Engine(EngineError::Store(StoreError::Unavailable(_))) => {
                tracing::debug!(error = %self, "request refused");
            }
            _ if status.is_server_error() => tracing::error!(error = %self, "request failed"),
            _ => {}
        }
        let (slug, title) = self.slug_and_title();
        let problem = Problem {
            kind: format!("https://banditd.dev/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            errors: match self {
                Self::Unprocessable { errors, .. } => errors.clone(),
                _ => Vec::new(),
            },
            request_id: None,
        };
        let mut response = HttpResponse::build(status);
        response.content_type(PROBLEM_CONTENT_TYPE);
        if let Self::Unauthorized(_) = self {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if let Self::RequestTimeout(_) = self {
            // The rest of the body may still be on its way: the connection cannot be reused.
            response.force_close();
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // The store retries its reopen at least this often (RECOVERY_BACKOFF_MAX_MS).
            response.insert_header(("Retry-After", RETRY_AFTER_SECS.to_string()));
        }
        let mut response = response.body(serde_json::to_string(&problem).unwrap_or_default());
        // Kept for `problem_bodies`, which adds the request id without re-parsing the body.
        response.extensions_mut().insert(problem);
        response
    }
}

/// Query-string decoding errors (`?count=maybe`) as problems.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _req: &HttpRequest,
) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid query string: {err}")).into()
}

/// Unknown routes.
pub async fn no_route(req: HttpRequest) -> ApiResult<HttpResponse> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// Known routes, wrong method: a 405 problem with the `Allow` header RFC 9110 §15.5.6
/// requires, naming the methods the route does serve (`allow`, e.g. `GET, HEAD`).
pub fn wrong_method(req: &HttpRequest, allow: &str) -> HttpResponse {
    let mut response = ApiError::MethodNotAllowed(format!(
        "{} is not allowed on {}; use {allow}",
        req.method(),
        req.path()
    ))
    .error_response();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(allow) {
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    response
}
