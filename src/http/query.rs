//! Query strings are decoded strictly. actix's `web::Query` (serde_urlencoded) decodes
//! percent-escapes lossily: `?unit=x%FF` and `?unit=x%EF%BF%BD` both became the unit `x�`,
//! so two clients' distinct ids could share one assignment. Every request passes this check
//! before routing, so no handler can read a query string that was not UTF-8.

use actix_web::Error;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use percent_encoding::percent_decode_str;

use super::problem::ApiError;

/// Middleware (`actix_web::middleware::from_fn`): a query whose names or values are not UTF-8
/// after percent-decoding is a 400 problem naming the parameter. It is a response, not an
/// `Err`, so that outer middleware (CORS) still decorates it.
pub async fn require_utf8_query<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    if let Err(problem) = check_query(req.query_string()) {
        return Ok(req.error_response(problem).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Checks every `name=value` pair of a raw query string.
pub fn check_query(query: &str) -> Result<(), ApiError> {
    let decodes = |text: &str| percent_decode_str(text).decode_utf8().is_ok();
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !decodes(name) {
            return Err(ApiError::BadRequest(
                "a query parameter name is not UTF-8 after percent-decoding".to_owned(),
            ));
        }
        if !decodes(value) {
            let name = percent_decode_str(name).decode_utf8_lossy();
            return Err(ApiError::BadRequest(format!(
                "query parameter `{}` is not UTF-8 after percent-decoding; percent-encode the \
                 UTF-8 bytes of the text",
                name.escape_debug()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(query: &str) -> String {
        check_query(query).unwrap_err().to_string()
    }

    #[test]
    fn utf8_queries_pass_whatever_their_escapes() {
        for ok in [
            "",
            "unit=x",
            "unit=x%EF%BF%BD&count=0",
            "unit=s%C3%A9ance+42",
            "flag",
            "a=%",
        ] {
            assert!(check_query(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn a_value_that_is_not_utf8_is_refused_naming_its_parameter() {
        assert!(detail("count=1&unit=x%FF").contains("`unit`"));
        assert!(detail("u%6Eit=%C3").contains("`unit`"));
        assert!(detail("%FF=1").contains("name"));
    }
}
