//! The dashboard's session cookie: proof that this browser presented the admin key on the login
//! page, so that the key itself is typed once and never stored in the browser.
//!
//! Value: `v1.<expires, Unix ms>.<base64url HMAC-SHA256>`, the MAC over the version, the expiry
//! and a SHA-256 digest of the admin key. It is keyed by [`SessionKey`], derived from the
//! server's token secret (`TokenSigner::derive_key`), so every replica that shares the secret
//! accepts it, nobody without the secret can mint one, and a stolen cookie gives no handle on
//! the admin key (an HMAC keyed by the admin key itself would let a thief test guesses of a
//! weak key offline). Changing the admin key or the token secret ends every session; each
//! session ends by itself at its expiry (`--ui-session-lifetime`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::secret::SecretString;

type HmacSha256 = Hmac<Sha256>;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "banditd_session";

/// The login form's anti-forgery cookie (double submit: the form carries the same value).
pub const LOGIN_COOKIE: &str = "banditd_login";

/// How long a login form stays valid, in seconds.
pub const LOGIN_FORM_SECS: u64 = 600;

const VERSION: &str = "v1";

/// The MAC key of session cookies. `Debug` shows no bytes.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

/// Why a session cookie was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the session cookie is not of the form v1.<expiry>.<mac>")]
    Malformed,
    #[error("the session cookie's signature does not match")]
    BadSignature,
    #[error("the session has expired")]
    Expired,
}

impl SessionKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self(key)
    }

    fn mac(&self, expires_ms: u64, admin_key: &SecretString) -> HmacSha256 {
        // HMAC takes keys of any length; 32 bytes cannot be refused.
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(VERSION.as_bytes());
        mac.update(b"|");
        mac.update(expires_ms.to_string().as_bytes());
        mac.update(b"|");
        mac.update(&Sha256::digest(admin_key.expose().as_bytes()));
        mac
    }

    /// A cookie value valid until `now_ms + lifetime_ms`.
    pub fn issue(&self, admin_key: &SecretString, now_ms: u64, lifetime_ms: u64) -> String {
        let expires_ms = now_ms.saturating_add(lifetime_ms);
        let tag = self.mac(expires_ms, admin_key).finalize().into_bytes();
        format!("{VERSION}.{expires_ms}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Checks the signature (in constant time) and then the expiry. An expiry further ahead
    /// than `lifetime_ms` is refused too: shortening the lifetime shortens running sessions.
    pub fn verify(
        &self,
        value: &str,
        admin_key: &SecretString,
        now_ms: u64,
        lifetime_ms: u64,
    ) -> Result<(), SessionError> {
        let mut parts = value.split('.');
        let (Some(VERSION), Some(expires), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SessionError::Malformed);
        };
        if expires.is_empty() || !expires.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SessionError::Malformed);
        }
        let expires_ms: u64 = expires.parse().map_err(|_| SessionError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| SessionError::Malformed)?;
        self.mac(expires_ms, admin_key)
            .verify_slice(&tag)
            .map_err(|_| SessionError::BadSignature)?;
        if now_ms >= expires_ms || expires_ms - now_ms > lifetime_ms {
            return Err(SessionError::Expired);
        }
        Ok(())
    }
}

/// The value of cookie `name` in a `Cookie` request header (RFC 6265 §5.4: `name=value`
/// pairs separated by `; `).
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then(|| value.trim_matches('"'))
    })
}

/// A `Set-Cookie` value: HttpOnly (no script reads it), SameSite=Strict (no other site's
/// page sends it, which is what makes the dashboard's forms safe from cross-site forgery),
/// scoped to `path`, `Secure` when the request came over HTTPS.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}"
    )
}

/// A `Set-Cookie` value that removes cookie `name`.
pub fn clear_cookie(name: &str, path: &str) -> String {
    format!("{name}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Strict")
}

/// A fresh random value for the login form's anti-forgery cookie (128 bits).
pub fn login_nonce() -> String {
    use rand::RngExt as _;
    let mut bytes = [0u8; 16];
    rand::rng().fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether two nonces are equal, in constant time.
pub fn same_nonce(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(Sha256::digest(a.as_bytes()).ct_eq(&Sha256::digest(b.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: u64 = 3_600_000;

    fn key() -> SessionKey {
        SessionKey::new([9; 32])
    }

    fn admin() -> SecretString {
        SecretString::from("the-admin-key")
    }

    #[test]
    fn a_session_verifies_until_it_expires_and_not_after() {
        let cookie = key().issue(&admin(), 1_000, HOUR_MS);
        assert_eq!(key().verify(&cookie, &admin(), 1_000, HOUR_MS), Ok(()));
        assert_eq!(
            key().verify(&cookie, &admin(), 1_000 + HOUR_MS - 1, HOUR_MS),
            Ok(())
        );
        assert_eq!(
            key().verify(&cookie, &admin(), 1_000 + HOUR_MS, HOUR_MS),
            Err(SessionError::Expired)
        );
    }

    #[test]
    fn the_value_names_its_expiry_and_holds_no_key() {
        let cookie = key().issue(&admin(), 1_000, HOUR_MS);
        assert!(
            cookie.starts_with(&format!("v1.{}.", 1_000 + HOUR_MS)),
            "{cookie}"
        );
        assert!(!cookie.contains("the-admin-key"));
    }

    #[test]
    fn an_extended_expiry_a_changed_signature_or_another_secret_is_refused() {
        let cookie = key().issue(&admin(), 1_000, HOUR_MS);
        let (head, tag) = cookie.rsplit_once('.').unwrap();
        // Moving the expiry later breaks the signature.
        let extended = format!("v1.{}.{tag}", 1_000 + 10 * HOUR_MS);
        assert_eq!(
            key().verify(&extended, &admin(), 2_000, 100 * HOUR_MS),
            Err(SessionError::BadSignature)
        );
        let mut forged = tag.as_bytes().to_vec();
        forged[0] = if forged[0] == b'A' { b'B' } else { b'A' };
        let forged = format!("{head}.{}", String::from_utf8(forged).unwrap());
        assert_eq!(
            key().verify(&forged, &admin(), 2_000, HOUR_MS),
            Err(SessionError::BadSignature)
        );
        assert_eq!(
            SessionKey::new([8; 32]).verify(&cookie, &admin(), 2_000, HOUR_MS),
            Err(SessionError::BadSignature)
        );
    }

    #[test]
    fn a_new_admin_key_ends_every_session() {
        let cookie = key().issue(&admin(), 1_000, HOUR_MS);
        let rotated = SecretString::from("a-new-admin-key");
        assert_eq!(
            key().verify(&cookie, &rotated, 2_000, HOUR_MS),
            Err(SessionError::BadSignature)
        );
    }

    #[test]
    fn a_shorter_lifetime_shortens_running_sessions() {
        let cookie = key().issue(&admin(), 1_000, 12 * HOUR_MS);
        assert_eq!(
            key().verify(&cookie, &admin(), 2_000, HOUR_MS),
            Err(SessionError::Expired)
        );
    }

    #[test]
    fn malformed_values_are_refused_without_panicking() {
        for value in [
            "",
            "v1",
            "v1.",
            "v1..",
            "v2.5.AAAA",
            "v1.-5.AAAA",
            "v1.+5.AAAA",
            "v1.99999999999999999999999.AAAA",
            "v1.5.!!!",
            "v1.5.AAAA.extra",
        ] {
            assert_eq!(
                key().verify(value, &admin(), 1, HOUR_MS),
                Err(SessionError::Malformed),
                "{value:?}"
            );
        }
    }

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let header = "a=1; banditd_session=v1.5.x; banditd_login=\"n\"";
        assert_eq!(cookie_value(header, SESSION_COOKIE), Some("v1.5.x"));
        assert_eq!(cookie_value(header, LOGIN_COOKIE), Some("n"));
        assert_eq!(cookie_value(header, "b"), None);
        assert_eq!(cookie_value("banditd_sessionx=1", SESSION_COOKIE), None);
    }

    #[test]
    fn set_cookie_is_http_only_strict_and_secure_over_https() {
        let plain = set_cookie(SESSION_COOKIE, "v", "/ui", 60, false);
        assert_eq!(
            plain,
            "banditd_session=v; Path=/ui; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie(SESSION_COOKIE, "v", "/ui", 60, true).ends_with("; Secure"));
        assert!(clear_cookie(SESSION_COOKIE, "/ui").contains("Max-Age=0"));
    }

    #[test]
    fn nonces_are_fresh_and_compared_exactly() {
        let (a, b) = (login_nonce(), login_nonce());
        assert_ne!(a, b);
        assert_eq!(a.len(), 22);
        assert!(same_nonce(&a, &a.clone()));
        assert!(!same_nonce(&a, &b));
    }
}
