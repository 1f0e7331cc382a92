//! Query strings are decoded strictly. actix's `web::Query` (serde_urlencoded) decodes
//! percent-escapes lossily: `?unit=x%FF` and `?unit=x%EF%BF%BD` both became the unit `x�`,
//! so two clients' distinct ids could share one assignment. Every request passes this check
//! before routing (`layers::RequestLayers`), so no handler can read a query string that was not
//! UTF-8: the refusal is a 400 problem naming the parameter, answered as a response rather than
//! an `Err` so that outer middleware (CORS) still decorates it.

use percent_encoding::percent_decode_str;

use super::problem::ApiError;

/// Checks every `name=value` pair of a raw query string.
pub fn check_query(query: &str) -> Result<(), ApiError> {
    // Without a percent-escape the decoded text is the raw text, which is a `str` already.
    if !query.contains('%') {
        return Ok(());
    }
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
