//! Assignment tokens: HMAC-SHA256-signed claims of (experiment, revision, variant, unit, issue
//! time, assignment id, propensity). A browser can carry one to the event pipeline; nobody can
//! forge a reward for a variant they were not shown, because the signature covers the variant.
//! The propensity rides along so that a per-request experiment, whose assignments are counted
//! but not stored, still knows the policy's probability of each credited assignment.
//!
//! Format: `base64url(claims JSON) "." base64url(HMAC-SHA256(secret, claims JSON))`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Room for the claims of a token without an allocation (~110–160 bytes with the usual ids).
const CLAIMS_BYTES: usize = 256;

/// A claims buffer grown past this (a long on_render allocation) is not kept.
const MAX_KEPT_CLAIMS_BYTES: usize = 4096;

thread_local! {
    /// [`TokenSigner::sign`]'s scratch buffer for the claims' JSON, one per thread.
    static CLAIMS_BUFFER: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(Vec::with_capacity(CLAIMS_BYTES));
}

/// `base64url(claims) "." base64url(tag)` in one buffer of its exact size: both parts are
/// encoded in place (`encode_slice`), where `encode_string` goes through base64's chunked
/// encoder and appends each chunk to the string after checking it is UTF-8 (~450 of the
/// ~1,900 instructions of the token's base64 per assign, benches/load/results/
/// preq5-2026-12-01-s10.md). A buffer too small cannot happen (its size is the encoded
/// length); `encode_string` is the fallback all the same, so a token is never cut.
fn token_text(claims: &[u8], tag: &[u8]) -> String {
    let claims_len = base64::encoded_len(claims.len(), false);
    let tag_len = base64::encoded_len(tag.len(), false);
    let in_place = claims_len.zip(tag_len).and_then(|(claims_len, tag_len)| {
        let mut out = vec![b'.'; claims_len + 1 + tag_len];
        let written = URL_SAFE_NO_PAD.encode_slice(claims, &mut out).ok()?;
        let rest = out.get_mut(written + 1..)?;
        let tag_written = URL_SAFE_NO_PAD.encode_slice(tag, rest).ok()?;
        out.truncate(written + 1 + tag_written);
        String::from_utf8(out).ok()
    });
    in_place.unwrap_or_else(|| {
        let mut out = String::new();
        URL_SAFE_NO_PAD.encode_string(claims, &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut out);
        out
    })
}

/// Minimum secret length accepted from `BANDITD_TOKEN_SECRET`: 32 bytes, the HMAC-SHA256 block
/// security level (RFC 2104 §3 recommends keys of at least the hash output length).
pub const MIN_SECRET_BYTES: usize = 32;

/// What a token asserts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(rename = "e")]
    pub experiment: String,
    #[serde(rename = "r")]
    pub revision: u32,
    #[serde(rename = "v")]
    pub variant: String,
    #[serde(rename = "u")]
    pub unit: String,
    /// Issue time, Unix milliseconds.
    #[serde(rename = "t")]
    pub issued_ms: u64,
    /// Unique per issued assignment: the at-most-once credit key for per-request experiments.
    #[serde(rename = "a")]
    pub assignment_id: String,
    /// The policy's probability of `variant` at issue time, for off-policy analysis.
    #[serde(rename = "p")]
    pub propensity: f64,
    /// `exposure: on_render` only: the whole allocation (variant id, probability) at the
    /// assignment, so that its confirmation credits the sample-ratio check's expected counts
    /// with the split the policy had then (see `engine::exposure`). Absent otherwise.
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub allocation: Option<Vec<(String, f64)>>,
}

/// The claims to sign, borrowed from the assignment at hand: signing is on the path of every
/// assign call, so it builds no owned copies. Serialises exactly like [`Claims`] (same names,
/// same order), which the tests check.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ClaimsRef<'a> {
    #[serde(rename = "e")]
    pub experiment: &'a str,
    #[serde(rename = "r")]
    pub revision: u32,
    #[serde(rename = "v")]
    pub variant: &'a str,
    #[serde(rename = "u")]
    pub unit: &'a str,
    #[serde(rename = "t")]
    pub issued_ms: u64,
    #[serde(rename = "a")]
    pub assignment_id: &'a str,
    #[serde(rename = "p")]
    pub propensity: f64,
    #[serde(rename = "x", skip_serializing_if = "Option::is_none")]
    pub allocation: Option<&'a [(String, f64)]>,
}

impl Claims {
    /// The borrowed form, for [`TokenSigner::sign`].
    pub fn as_ref(&self) -> ClaimsRef<'_> {
        ClaimsRef {
            experiment: &self.experiment,
            revision: self.revision,
            variant: &self.variant,
            unit: &self.unit,
            issued_ms: self.issued_ms,
            assignment_id: &self.assignment_id,
            propensity: self.propensity,
            allocation: self.allocation.as_deref(),
        }
    }
}

/// Why a token was refused. Deliberately coarse: a forger learns nothing from the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is not of the form <claims>.<signature>")]
    Malformed,
    #[error("token signature does not match")]
    BadSignature,
}

/// Signs tokens with the current secret; verifies them with it or with a previous one.
///
/// A previous secret makes rotation free of a flag day: tokens already handed to browsers
/// (valid for a reward window) keep verifying while every new token carries the new secret.
#[derive(Clone)]
pub struct TokenSigner {
    mac: HmacSha256,
    /// Secrets still accepted for verifying, never used for signing.
    previous: Vec<HmacSha256>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(..)")
    }
}

impl TokenSigner {
    /// A signer for `secret` (any length works for HMAC; callers enforce [`MIN_SECRET_BYTES`]).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            mac: hmac_for(secret),
            previous: Vec::new(),
        }
    }

    /// Also accepts tokens signed with `secret` (the one being rotated out).
    pub fn accepting_previous(mut self, secret: &[u8]) -> Self {
        self.previous.push(hmac_for(secret));
        self
    }

    /// A 32-byte key for another purpose, derived from the current secret:
    /// HMAC(secret, "banditd key derivation\0" purpose) (HKDF-Expand's one-block shape, RFC
    /// 5869 §2.3). The MAC of a token covers JSON that starts with `{`, so no derived key is
    /// ever a token's signature. The dashboard's session cookies are keyed this way.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(b"banditd key derivation\0");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    pub fn sign(&self, claims: &ClaimsRef<'_>) -> String {
        // The claims' JSON is only an intermediate (the token carries its base64), so it is
        // written into this thread's buffer, kept between calls: the token is the one
        // allocation of a signature. `try_with` fails only while the thread is being torn
        // down; a fresh buffer then does the same work.
        CLAIMS_BUFFER
            .try_with(|buffer| match buffer.try_borrow_mut() {
                Ok(mut body) => self.sign_into(&mut body, claims),
                Err(_) => self.sign_into(&mut Vec::new(), claims),
            })
            .unwrap_or_else(|_| self.sign_into(&mut Vec::new(), claims))
    }

    fn sign_into(&self, body: &mut Vec<u8>, claims: &ClaimsRef<'_>) -> String {
        body.clear();
        // The bytes serde_json writes for the claims, without its generic path
        // (src/engine/claims_json.rs).
        super::claims_json::write_claims(body, claims);
        let mut mac = self.mac.clone();
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        let token = token_text(body, &tag);
        if body.capacity() > MAX_KEPT_CLAIMS_BYTES {
            // An on_render token with a long allocation: not kept for every later call.
            *body = Vec::with_capacity(CLAIMS_BYTES);
        }
        token
    }

    /// Checks the signature (in constant time) before looking at the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let (body, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let body = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        let signed_with = |key: &HmacSha256| {
            let mut mac = key.clone();
            mac.update(&body);
            mac.verify_slice(&tag).is_ok()
        };
        if !(signed_with(&self.mac) || self.previous.iter().any(signed_with)) {
            return Err(TokenError::BadSignature);
        }
        serde_json::from_slice(&body).map_err(|_| TokenError::Malformed)
    }
}

fn hmac_for(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            experiment: "homepage".into(),
            revision: 2,
            variant: "bold".into(),
            unit: "user-1".into(),
            issued_ms: 1_700_000_000_000,
            assignment_id: "abc".into(),
            propensity: 0.25,
            allocation: None,
        }
    }

    #[test]
    fn a_signed_token_verifies_to_its_claims() {
        let signer = TokenSigner::new(&[7u8; 32]);
        assert_eq!(
            signer.verify(&signer.sign(&claims().as_ref())),
            Ok(claims())
        );
    }

    #[test]
    fn derived_keys_are_hmacs_of_the_purpose_and_differ_per_secret_and_purpose() {
        // RFC 4231 test case 2: HMAC-SHA256(key "Jefe", "what do ya want for nothing?").
        let signer = TokenSigner::new(b"Jefe");
        let mut mac = hmac_for(b"Jefe");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()),
            URL_SAFE_NO_PAD.encode([
                0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
                0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9,
                0x64, 0xec, 0x38, 0x43
            ])
        );
        let a = signer.derive_key("ui-session");
        assert_eq!(a, signer.derive_key("ui-session"));
        assert_ne!(a, signer.derive_key("other"));
        assert_ne!(a, TokenSigner::new(b"Jeff").derive_key("ui-session"));
    }

    #[test]
    fn borrowed_claims_serialise_exactly_like_owned_ones() {
        // The signature covers these bytes, so the two forms must never drift apart.
        let owned = serde_json::to_string(&claims()).unwrap();
        assert_eq!(serde_json::to_string(&claims().as_ref()).unwrap(), owned);
        assert_eq!(
            owned,
            r#"{"e":"homepage","r":2,"v":"bold","u":"user-1","t":1700000000000,"a":"abc","p":0.25}"#
        );
    }

    #[test]
    fn hmac_matches_the_rfc_4231_test_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut mac = <HmacSha256 as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_token_with_a_changed_variant_is_rejected() {
        let signer = TokenSigner::new(&[7u8; 32]);
        let token = signer.sign(&claims().as_ref());
        let (_, tag) = token.split_once('.').unwrap();
        let mut forged_claims = claims();
        forged_claims.variant = "control".into();
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap());
        let forged = format!("{forged_body}.{tag}");
        assert_eq!(signer.verify(&forged), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_rejected() {
        let token = TokenSigner::new(&[1u8; 32]).sign(&claims().as_ref());
        assert_eq!(
            TokenSigner::new(&[2u8; 32]).verify(&token),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn during_a_rotation_old_tokens_verify_and_new_ones_carry_the_current_secret() {
        let old = TokenSigner::new(&[1u8; 32]);
        let rotated = TokenSigner::new(&[2u8; 32]).accepting_previous(&[1u8; 32]);
        let issued_before = old.sign(&claims().as_ref());
        assert_eq!(rotated.verify(&issued_before), Ok(claims()));
        let issued_after = rotated.sign(&claims().as_ref());
        assert_eq!(
            TokenSigner::new(&[2u8; 32]).verify(&issued_after),
            Ok(claims())
        );
        assert_eq!(old.verify(&issued_after), Err(TokenError::BadSignature));
        let unrelated = TokenSigner::new(&[3u8; 32]).sign(&claims().as_ref());
        assert_eq!(rotated.verify(&unrelated), Err(TokenError::BadSignature));
    }

    /// The token as the format says, computed without the signer: base64url(serde_json of
    /// the claims) "." base64url(HMAC-SHA256(secret, those bytes)).
    fn token_by_the_format(secret: &[u8], claims: &Claims) -> String {
        let body = serde_json::to_vec(claims).unwrap();
        let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).unwrap();
        mac.update(&body);
        let tag = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&body),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    #[test]
    fn tokens_signed_one_after_another_on_a_thread_are_each_exactly_the_format() {
        // The claims' scratch buffer is reused: a short token after a long one (and after
        // one too long to keep the buffer) must carry none of the earlier bytes.
        let secret = [9u8; 32];
        let signer = TokenSigner::new(&secret);
        let mut long = claims();
        long.allocation = Some(vec![("a".repeat(300), 0.5); 20]);
        let mut medium = claims();
        medium.allocation = Some(vec![("b".into(), 0.25), ("c".into(), 0.75)]);
        for claims in [long.clone(), claims(), medium, claims(), long, claims()] {
            let token = signer.sign(&claims.as_ref());
            assert_eq!(token, token_by_the_format(&secret, &claims));
            assert_eq!(signer.verify(&token), Ok(claims));
        }
    }

    #[test]
    fn the_token_text_is_both_parts_in_base64url_for_every_length_of_the_claims() {
        // Every remainder of the length mod 3 (1 or 2 trailing bytes: shorter last groups),
        // the empty claims, and tags of 0, 1, 2 and 32 bytes.
        for claims_len in 0..200usize {
            let claims: Vec<u8> = (0..claims_len).map(|i| (i * 37 % 256) as u8).collect();
            for tag in [&[][..], &[0xff][..], &[0xfb, 0xef][..], &[0xa5; 32][..]] {
                assert_eq!(
                    token_text(&claims, tag),
                    format!(
                        "{}.{}",
                        URL_SAFE_NO_PAD.encode(&claims),
                        URL_SAFE_NO_PAD.encode(tag)
                    ),
                    "{claims_len} bytes of claims, {} of tag",
                    tag.len()
                );
            }
        }
    }

    #[test]
    fn tokens_signed_on_many_threads_at_once_are_each_exactly_the_format() {
        let secret = [4u8; 32];
        let signer = TokenSigner::new(&secret);
        std::thread::scope(|scope| {
            for thread in 0..4u32 {
                let signer = &signer;
                scope.spawn(move || {
                    for i in 0..200u32 {
                        let mut claims = claims();
                        claims.unit = format!("u-{thread}-{i}");
                        claims.revision = i;
                        let token = signer.sign(&claims.as_ref());
                        assert_eq!(token, token_by_the_format(&secret, &claims));
                    }
                });
            }
        });
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let signer = TokenSigner::new(&[7u8; 32]);
        for bad in ["", ".", "abc", "a.b.c", "!!!.???", "e30.AAAA"] {
            assert!(signer.verify(bad).is_err(), "{bad:?}");
        }
    }
}
