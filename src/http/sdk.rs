//! `GET /v1/sdk.js`: the browser client (`clients/js/src/banditd.js`), served by the server it
//! talks to so a page needs no package registry or build step, and the client a server hands
//! out always speaks that server's API. The file is compiled into the binary.

use std::sync::OnceLock;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use super::openapi::Routes;

/// The browser client, byte for byte the file of the npm package.
pub const SDK_JS: &str = include_str!("../../clients/js/src/banditd.js");

/// A page loads the client on every view: caches keep it for five minutes, then revalidate it
/// with the `ETag` (a 304 costs a few bytes), so an upgraded server's client is picked up
/// within minutes without a versioned URL.
const SDK_CACHE_CONTROL: &str = "public, max-age=300, must-revalidate";

pub fn routes(api: &mut impl Routes) {
    api.route::<__path_sdk_js, _, _>(sdk_js);
}

/// A strong validator of the served bytes: the first 16 bytes of their SHA-256, quoted.
fn etag() -> &'static str {
    static ETAG_VALUE: OnceLock<String> = OnceLock::new();
    ETAG_VALUE.get_or_init(|| {
        let digest = Sha256::digest(SDK_JS.as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    })
}

/// Whether an `If-None-Match` value (a list of entity tags, or `*`) names the current client.
/// Weak tags compare by their opaque part, as RFC 9110 §13.1.2 has it for this header.
fn matches(if_none_match: &str, current: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == current)
}

/// The browser client: an ES module (`import { createClient } from ".../v1/sdk.js"`).
#[utoipa::path(
    get,
    path = "/v1/sdk.js",
    tag = "meta",
    operation_id = "sdk_js",
    params(("If-None-Match" = Option<String>, Header,
            description = "The `ETag` of a cached copy: answered 304 when it is still current")),
    responses(
        (status = 200, description = "The browser client (ES module, the npm package's \
                                      `src/banditd.js`)",
         content_type = "text/javascript", body = String,
         headers(("ETag" = String, description = "Validator of this version of the client"),
                 ("Cache-Control" = String, description = "Cacheable for five minutes, then revalidated"))),
        (status = 304, description = "The cached copy named by `If-None-Match` is current",
         headers(("ETag" = String, description = "Validator of this version of the client"))),
    ),
)]
async fn sdk_js(req: HttpRequest) -> HttpResponse {
    let current = etag();
    let cached = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| matches(value, current));
    let mut response = if cached {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((ETAG, current))
        .insert_header((CACHE_CONTROL, SDK_CACHE_CONTROL));
    if cached {
        response.finish()
    } else {
        response
            .insert_header((CONTENT_TYPE, "text/javascript; charset=utf-8"))
            .body(SDK_JS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_if_none_match_list_naming_the_current_tag_matches() {
        let current = etag();
        assert!(matches(current, current));
        assert!(matches(&format!("\"other\", W/{current}"), current));
        assert!(matches("*", current));
        assert!(!matches("\"other\"", current));
        assert!(!matches("", current));
    }

    #[test]
    fn the_etag_is_a_quoted_hex_digest() {
        let tag = etag();
        assert_eq!(tag.len(), 34);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert!(tag[1..33].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
