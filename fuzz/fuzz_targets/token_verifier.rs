//! Assignment tokens. The first byte picks the mode: even, the rest is a token as a client
//! would send it (forgeries, truncations, bad base64); odd, the rest is a claims body that is
//! signed with the fuzzing key first, so the claims decoder behind the signature is reached.
//! Property: no panic; a refusal is one of the typed `TokenError`s; a forged token (no valid
//! signature) is never accepted; a signed body is accepted exactly when it is a claims object.
#![no_main]

use banditd::engine::token::{Claims, TokenError, TokenSigner};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const FUZZ_SECRET: [u8; 32] = [7; 32];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let signer = TokenSigner::new(&FUZZ_SECRET);
    if mode % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        match signer.verify(token) {
            Ok(_) => assert!(
                independently_signed(token),
                "accepted a token without a valid signature: {token:?}"
            ),
            Err(TokenError::Malformed | TokenError::BadSignature) => {}
        }
    } else {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&FUZZ_SECRET).expect("any key length");
        mac.update(rest);
        let token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(rest),
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        let expected = serde_json::from_slice::<Claims>(rest).ok();
        match signer.verify(&token) {
            Ok(claims) => assert_eq!(Some(claims), expected, "{rest:?}"),
            Err(TokenError::Malformed) => assert!(expected.is_none(), "{rest:?}"),
            Err(TokenError::BadSignature) => panic!("own signature refused for {rest:?}"),
        }
    }
});

/// The signature check re-done from the format in `src/engine/token.rs`, without its code.
fn independently_signed(token: &str) -> bool {
    let Some((body, tag)) = token.split_once('.') else {
        return false;
    };
    let (Ok(body), Ok(tag)) = (URL_SAFE_NO_PAD.decode(body), URL_SAFE_NO_PAD.decode(tag)) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&FUZZ_SECRET).expect("any key length");
    mac.update(&body);
    mac.verify_slice(&tag).is_ok()
}
