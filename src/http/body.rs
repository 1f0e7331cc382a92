//! Request bodies read with an explicit size limit and deadline, so that an oversized body is a
//! 413 problem, a body that trickles in a 408 problem, and malformed JSON a 400 problem that
//! names the line and column.

use std::time::Duration;

use actix_web::{HttpRequest, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// Default of [`BodyReadTimeout`] (`--body-read-timeout`): an 8 MiB events batch needs under
/// 1 MB/s to make it.
pub const DEFAULT_BODY_READ_TIMEOUT_SECS: u64 = 10;

/// How long a whole request body may take to arrive, counted from when the handler starts
/// reading it. actix bounds only the request head (`client_request_timeout`); without this a
/// client sending 10 bytes a second holds a connection and a buffer for as long as it likes.
/// Registered as app data; a handler mounted without it gets the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyReadTimeout(pub Duration);

impl Default for BodyReadTimeout {
    fn default() -> Self {
        Self(Duration::from_secs(DEFAULT_BODY_READ_TIMEOUT_SECS))
    }
}

/// Most bytes reserved up front from a declared `Content-Length`: a client that declares a large
/// body and sends nothing holds at most this much per request; a larger body grows past it.
const MAX_BODY_PREALLOC_BYTES: usize = 1024 * 1024;

/// Reads the whole body, refusing more than `limit` bytes or a body that is not complete
/// within the [`BodyReadTimeout`].
pub async fn read_limited(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let BodyReadTimeout(timeout) = req
        .app_data::<BodyReadTimeout>()
        .copied()
        .unwrap_or_default();
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<usize>().ok())
        .unwrap_or(0);
    let capacity = declared.min(limit).min(MAX_BODY_PREALLOC_BYTES);
    tokio::time::timeout(timeout, read_all(payload, limit, capacity))
        .await
        .map_err(|_| {
            ApiError::RequestTimeout(format!(
                "the request body did not arrive within {} s; send it at full speed (the limit \
                 is the server's --body-read-timeout)",
                timeout.as_secs_f64()
            ))
        })?
}

/// `capacity`: the declared `Content-Length` (at most `limit`), so that a large body is one
/// allocation of its size rather than a doubling series of copies. Only a hint: the limit is
/// checked against the bytes that arrive.
async fn read_all(
    mut payload: web::Payload,
    limit: usize,
    capacity: usize,
) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::with_capacity(capacity);
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "the body exceeds {limit} bytes; split it into smaller requests"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Query parameters the handlers read as text, so that a bad value gets an error naming
/// the parameter (serde's query errors do not). `hint` says what a good value looks like.
pub fn query_param<T: std::str::FromStr>(
    name: &str,
    raw: Option<&str>,
    hint: &str,
) -> Result<Option<T>, ApiError> {
    raw.map(|text| {
        text.parse::<T>().map_err(|_| {
            ApiError::BadRequest(format!("query parameter `{name}` is {text:?}; {hint}"))
        })
    })
    .transpose()
}

/// Hint for a `level` query parameter.
pub const LEVEL_HINT: &str = "use a number between 0 and 1, e.g. 0.9";

/// Hint for a `revision` query parameter.
pub const REVISION_HINT: &str = "use a revision number, e.g. 1";

/// Decodes a JSON document; the error names the field path and the line and column.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            ApiError::BadRequest(format!("invalid JSON body: {}", e.inner()))
        } else {
            ApiError::BadRequest(format!("invalid JSON body: `{path}`: {}", e.inner()))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    Ok(value)
}
