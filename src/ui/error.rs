//! The dashboard's error boundary: what a page answers when it cannot show what was asked.
//! A person reads these in a browser, so they are HTML pages with the right status (the
//! `problem_bodies` middleware leaves the dashboard's HTML as it is); failures before a
//! handler runs (a malformed query string, a body too large) stay problem+json, as everywhere.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, LOCATION};
use actix_web::{HttpResponse, ResponseError};

use super::pages::layout;
use crate::engine::EngineError;
use crate::http::ApiError;

/// `Retry-After` of a 503 page, as the API's (`http::problem`).
const RETRY_AFTER_SECS: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// An admin key is set and the request has no valid session: to the login page, which
    /// comes back to `next` afterwards.
    #[error("sign in to see the dashboard")]
    LoginRequired { next: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    /// Errors that keep the API's problem+json form.
    #[error(transparent)]
    Api(#[from] ApiError),
}

pub type UiResult<T> = Result<T, UiError>;

impl From<EngineError> for UiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::UnknownExperiment(_)
            | EngineError::Draft(_)
            | EngineError::NotInEnvironment { .. }
            | EngineError::UnknownRevision { .. } => Self::NotFound(error.to_string()),
            EngineError::BadLevel(_) => Self::BadRequest(error.to_string()),
            EngineError::Store(_) => Self::Unavailable(error.to_string()),
        }
    }
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::LoginRequired { .. } => StatusCode::SEE_OTHER,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Api(error) => error.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (title, hint) = match self {
            Self::LoginRequired { next } => {
                let location = format!("/ui/login?next={}", super::routes::encode_next(next));
                return HttpResponse::SeeOther()
                    .insert_header((LOCATION, location))
                    .insert_header(("Cache-Control", "no-store"))
                    .finish();
            }
            Self::Api(error) => return error.error_response(),
            Self::BadRequest(_) => ("Bad request", "Check the address."),
            Self::NotFound(_) => ("Not found", "Pick an experiment from the list."),
            Self::Unavailable(_) => (
                "Store unavailable",
                "The store cannot be read right now; this page retries when you reload it.",
            ),
        };
        tracing::debug!(error = %self, "dashboard page refused");
        let body = layout::error_page(status.as_u16(), title, &self.to_string(), hint);
        let mut response = HttpResponse::build(status);
        response.insert_header((CONTENT_TYPE, layout::HTML));
        for (name, value) in layout::security_headers() {
            response.insert_header((name, value));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header(("Retry-After", RETRY_AFTER_SECS));
        }
        response.body(body.into_string())
    }
}
