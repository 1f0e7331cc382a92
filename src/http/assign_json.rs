//! The assign routes' answer (`AssignmentDto`) written straight into bytes.
//!
//! Every known-unit and per-request assign answers one of these, so its JSON is on the path of
//! the busiest requests. serde's derived path escapes each of the ten field names on every
//! call, checks the ~250-byte token for characters to escape, and grows its buffer from 128
//! bytes as it goes; here the names are literals, the token (our own base64url text and one
//! `.`) is copied after a check, and the buffer is sized once. The values keep serde_json's own
//! formatting (strings, numbers, the raw payload), and the tests compare the bytes with
//! serde's for every shape the answer takes, so the body is the same.

use actix_web::HttpResponse;
use actix_web::http::header::HeaderValue;

use super::assign::AssignmentDto;

/// Room for a typical answer (the token alone is ~250 bytes) without growing.
const TYPICAL_ANSWER_BYTES: usize = 512;

impl AssignmentDto<'_> {
    /// Appends the answer's JSON to `out`: the bytes `serde_json::to_vec(self)` makes.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"experiment\":");
        json_str(out, self.experiment);
        out.extend_from_slice(b",\"variant\":");
        json_str(out, self.variant);
        out.extend_from_slice(b",\"payload\":");
        match self.payload {
            // serde_json writes a `RawValue` verbatim.
            Some(raw) => out.extend_from_slice(raw.get().as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"token\":");
        match self.token {
            Some(token) if is_plain(token) => {
                out.push(b'"');
                out.extend_from_slice(token.as_bytes());
                out.push(b'"');
            }
            Some(token) => json_str(out, token),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"propensity\":");
        json_value(out, &self.propensity);
        json_bool(out, b",\"counted\":", self.counted);
        json_bool(out, b",\"degraded\":", self.degraded);
        json_bool(out, b",\"sticky\":", self.sticky);
        out.extend_from_slice(b",\"reward_until_ms\":");
        match self.reward_until_ms {
            Some(ms) => json_value(out, &ms),
            None => out.extend_from_slice(b"null"),
        }
        if self.confirm {
            out.extend_from_slice(b",\"confirm\":true");
        }
        out.push(b'}');
    }

    /// The 200 answer of `GET /v1/experiments/{id}/assign`: what `HttpResponse::Ok().json(self)`
    /// answers (the same `Content-Type: application/json` and body).
    pub fn ok_response(&self) -> HttpResponse {
        let mut body = Vec::with_capacity(TYPICAL_ANSWER_BYTES);
        self.write_json(&mut body);
        // The header `ContentType::json()` gives, from a static string: that one is made by
        // formatting the mime type into a fresh buffer on every answer.
        HttpResponse::Ok()
            .content_type(HeaderValue::from_static("application/json"))
            .body(body)
    }
}

/// Text JSON carries without escapes: a token is base64url, `.` and base64url. Checked without
/// branching per byte (a fold of range checks, which the compiler turns into vector code): a
/// byte-by-byte early-exit check of the ~250-byte token cost more than serde's own escaping
/// scan in the profile (benches/load/results/hot2-2026-11-30.md).
fn is_plain(text: &str) -> bool {
    text.bytes().fold(true, |plain, b| plain & is_plain_byte(b))
}

fn is_plain_byte(b: u8) -> bool {
    (b.wrapping_sub(b'0') < 10)
        | (b.wrapping_sub(b'A') < 26)
        | (b.wrapping_sub(b'a') < 26)
        | (b == b'-')
        | (b == b'_')
        | (b == b'.')
}

/// A JSON string exactly as serde_json escapes it.
fn json_str(out: &mut Vec<u8>, text: &str) {
    json_value(out, text);
}

/// A value exactly as serde_json writes it. Writing into a `Vec` cannot fail, and neither can
/// serialising what the answers hold: strings, numbers, maps of names to numbers, the derived
/// rejections (also `events_json`'s).
pub(super) fn json_value<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(out, value);
}

/// `,"name":true` or `,"name":false`; `field` is the `,"name":` prefix.
pub(super) fn json_bool(out: &mut Vec<u8>, field: &[u8], value: bool) {
    out.extend_from_slice(field);
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    fn dto<'a>(payload: Option<&'a RawValue>) -> AssignmentDto<'a> {
        AssignmentDto {
            experiment: "homepage-headline",
            variant: "bold",
            payload,
            token: Some("eyJlIjoiaG9tZSJ9.AbC-d_9"),
            propensity: 0.5,
            counted: true,
            degraded: false,
            sticky: true,
            reward_until_ms: Some(1_767_225_600_000),
            confirm: false,
        }
    }

    fn same_as_serde(dto: &AssignmentDto<'_>) {
        let mut ours = Vec::new();
        dto.write_json(&mut ours);
        let serde = serde_json::to_vec(dto).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&serde)
        );
    }

    #[test]
    fn the_answer_is_the_bytes_serde_writes_for_every_shape_it_takes() {
        let nested = RawValue::from_string(
            r#"{"headline":"Ship \"fast\"\n","n":[1,2.5e-7,null],"é":true}"#.to_owned(),
        )
        .unwrap();
        let scalar = RawValue::from_string("42".to_owned()).unwrap();
        same_as_serde(&dto(None));
        same_as_serde(&dto(Some(&nested)));
        same_as_serde(&dto(Some(&scalar)));
        let odd_texts = [
            "",
            "quote\"back\\slash",
            "tab\tnew\nline\u{1}\u{1f}",
            "naïve ☃ 🎉",
            "slash/ok",
            "\u{7f}del",
        ];
        for text in odd_texts {
            let mut d = dto(Some(&nested));
            d.experiment = text;
            d.variant = text;
            same_as_serde(&d);
            d.token = Some(text);
            same_as_serde(&d);
        }
        for propensity in [
            0.0,
            1.0,
            1.0 / 3.0,
            1e-7,
            0.123_456_789_012_345_68,
            5e-324,
            1e21,
            -0.0,
            f64::NAN,
            f64::INFINITY,
        ] {
            let mut d = dto(None);
            d.propensity = propensity;
            same_as_serde(&d);
        }
        for (counted, degraded, sticky, confirm) in [
            (false, false, false, false),
            (true, true, true, true),
            (false, true, false, true),
            (true, false, true, false),
        ] {
            let mut d = dto(None);
            (d.counted, d.degraded, d.sticky, d.confirm) = (counted, degraded, sticky, confirm);
            same_as_serde(&d);
        }
        for until in [None, Some(0), Some(u64::MAX)] {
            let mut d = dto(None);
            d.reward_until_ms = until;
            d.token = until.map(|_| "a.b");
            same_as_serde(&d);
        }
    }

    #[test]
    fn only_base64url_and_dots_count_as_plain() {
        for b in 0..=u8::MAX {
            let expected = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
            assert_eq!(is_plain_byte(b), expected, "byte {b}");
        }
        assert!(is_plain("eyJlIjoiaCJ9.AbC-d_9"));
        assert!(!is_plain("eyJlIjoiaCJ9.AbC-d_9\""));
        assert!(!is_plain("a b"));
    }

    #[test]
    fn the_response_is_the_one_actix_json_makes() {
        let d = dto(None);
        let ours = d.ok_response();
        let theirs = HttpResponse::Ok().json(&d);
        assert_eq!(ours.status(), theirs.status());
        assert_eq!(
            ours.headers().iter().collect::<Vec<_>>(),
            theirs.headers().iter().collect::<Vec<_>>()
        );
        let body = |r: HttpResponse| {
            actix_web::body::to_bytes(r.into_body())
                .now_or_never()
                .and_then(Result::ok)
                .unwrap()
        };
        assert_eq!(body(ours), body(theirs));
    }

    #[test]
    fn a_typical_answer_is_these_bytes() {
        // Written out by hand, not by any serializer: the bytes clients parse.
        let payload = RawValue::from_string(r#"{"headline":"Ship in a day"}"#.to_owned()).unwrap();
        let expected = concat!(
            r#"{"experiment":"homepage-headline","variant":"bold","#,
            r#""payload":{"headline":"Ship in a day"},"token":"eyJlIjoiaG9tZSJ9.AbC-d_9","#,
            r#""propensity":0.5,"counted":true,"degraded":false,"sticky":true,"#,
            r#""reward_until_ms":1767225600000}"#
        );
        let body = actix_web::body::to_bytes(dto(Some(&payload)).ok_response().into_body())
            .now_or_never()
            .and_then(Result::ok)
            .unwrap();
        assert_eq!(String::from_utf8(body.to_vec()).unwrap(), expected);
    }

    /// Polls a future that is ready at once.
    trait NowOrNever: std::future::Future + Sized {
        fn now_or_never(self) -> Option<Self::Output> {
            let mut future = std::pin::pin!(self);
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            match future.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(output) => Some(output),
                std::task::Poll::Pending => None,
            }
        }
    }

    impl<F: std::future::Future> NowOrNever for F {}
}
