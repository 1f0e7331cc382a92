//! Every request's identity: the caller's `X-Request-Id` when it is sane, else a generated
//! UUID. The request span middleware (`request_span`) gives it to the request, its span and
//! its `X-Request-Id` response header; the problem bodies carry it as `request_id`
//! (`problem_bodies`).

use std::borrow::Cow;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpMessage, HttpRequest};

/// The header a request id arrives and leaves in.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming request id kept (a UUID is 36 bytes, a W3C trace id 32; load balancers'
/// ids fit). A longer one is replaced: it would bloat every log line of the request.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// Route of a request no route matched (the span's and the access log's `route`): the raw
/// path would put unbounded, caller-chosen text in every log line and trace.
pub const UNMATCHED_ROUTE: &str = "(unmatched)";

/// A request's id: visible ASCII, 1 to [`MAX_REQUEST_ID_BYTES`] bytes, so it is safe in a
/// header, a log line and a JSON body as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Repr);

/// A generated id lives on the stack until the response header needs it: a `HeaderValue`
/// made from text is a unique buffer that its first clone turns into a shared, counted one
/// (one more allocation, and atomic counts on every later clone and drop), and the id is
/// cloned into the request's context and its span's end.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Repr {
    Given(HeaderValue),
    /// A hyphenated lowercase UUID, always ASCII.
    Generated([u8; uuid::fmt::Hyphenated::LENGTH]),
}

impl RequestId {
    /// The caller's id, when it is one we can echo: anything else (empty, too long, spaces,
    /// control or non-ASCII bytes) is replaced by a generated id rather than refused, since a
    /// request id is a courtesy, never a reason to fail a request.
    pub fn parse(value: &HeaderValue) -> Option<Self> {
        let bytes = value.as_bytes();
        let sane = !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID_BYTES
            && bytes.iter().all(|byte| byte.is_ascii_graphic());
        sane.then(|| Self(Repr::Given(value.clone())))
    }

    /// The id of a request that came without a usable one: a UUID (v4) from the thread's
    /// `rand` generator (no syscall per request).
    pub(super) fn generated() -> Self {
        let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        // Encoded on the stack; the response header's value is the one allocation.
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid.hyphenated().encode_lower(&mut text);
        Self(Repr::Generated(text))
    }

    /// The id as the `X-Request-Id` header's value.
    pub(super) fn header_value(&self) -> HeaderValue {
        match &self.0 {
            Repr::Given(value) => value.clone(),
            // A UUID's text is visible ASCII, which `HeaderValue` always takes.
            Repr::Generated(text) => {
                HeaderValue::from_bytes(text).unwrap_or(HeaderValue::from_static("unknown"))
            }
        }
    }

    pub fn as_str(&self) -> &str {
        // Checked to be visible ASCII when it was made.
        match &self.0 {
            Repr::Given(value) => value.to_str().unwrap_or_default(),
            Repr::Generated(text) => std::str::from_utf8(text).unwrap_or_default(),
        }
    }

    /// The id the middleware gave this request (`None` outside the `request_span` middleware).
    pub fn of(req: &HttpRequest) -> Option<Self> {
        req.extensions()
            .get::<RequestContext>()
            .map(|context| context.id.clone())
    }
}

/// What the request span middleware found out about a request before routing, kept in its
/// extensions for the layers inside.
#[derive(Debug)]
pub struct RequestContext {
    pub id: RequestId,
    /// The route template the path matches, or [`UNMATCHED_ROUTE`].
    pub route: Cow<'static, str>,
}

impl RequestContext {
    /// `f` of the request's route template; `None` outside the middleware.
    pub fn with_route<T>(req: &HttpRequest, f: impl FnOnce(&str) -> T) -> Option<T> {
        req.extensions()
            .get::<RequestContext>()
            .map(|context| f(&context.route))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Option<String> {
        let value = HeaderValue::from_str(text).ok()?;
        RequestId::parse(&value).map(|id| id.as_str().to_owned())
    }

    #[test]
    fn a_sane_incoming_id_is_kept_and_any_other_is_refused() {
        assert_eq!(parsed("abc-123_x.y:z"), Some("abc-123_x.y:z".to_owned()));
        let longest = "a".repeat(MAX_REQUEST_ID_BYTES);
        assert_eq!(parsed(&longest), Some(longest.clone()));
        assert_eq!(parsed(&format!("{longest}a")), None);
        assert_eq!(parsed(""), None);
        assert_eq!(parsed("has space"), None);
        assert_eq!(parsed("tab\there"), None);
        let non_ascii = HeaderValue::from_bytes("caf\u{e9}".as_bytes()).unwrap();
        assert_eq!(RequestId::parse(&non_ascii), None);
    }

    #[test]
    fn a_generated_id_is_a_lowercase_uuid_v4_in_its_text_and_its_header() {
        let id = RequestId::generated();
        let uuid = uuid::Uuid::parse_str(id.as_str()).unwrap();
        assert_eq!(uuid.get_version(), Some(uuid::Version::Random));
        assert_eq!(id.as_str(), uuid.hyphenated().to_string());
        assert_eq!(id.header_value().to_str().unwrap(), id.as_str());
        assert_ne!(RequestId::generated(), id);
        // What the problem bodies and the access log echo is the same text.
        assert_eq!(
            RequestId::parse(&id.header_value()).unwrap().as_str(),
            id.as_str()
        );
    }
}
