//! Request bodies read with an explicit size limit, so that an oversized body is a 413 problem
//! and malformed JSON a 400 problem that names the line and column.

use actix_web::web;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read_limited(
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
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
