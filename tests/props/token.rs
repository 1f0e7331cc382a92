//! Assignment tokens through `TokenSigner::verify`.

use banditd::engine::token::{Claims, TokenError, TokenSigner};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use sha2::Sha256;

use crate::hostile::{config, fuzz_seeds, mutated, nested, text};

const SECRET: [u8; 32] = [7; 32];

fn claims() -> impl Strategy<Value = Claims> {
    (
        text(),
        any::<u32>(),
        text(),
        text(),
        any::<u64>(),
        text(),
        prop_oneof![Just(0.0), Just(1.0), 0.0f64..=1.0],
    )
        .prop_map(
            |(experiment, revision, variant, unit, issued_ms, assignment_id, propensity)| Claims {
                experiment,
                revision,
                variant,
                unit,
                issued_ms,
                assignment_id,
                propensity,
                allocation: None,
            },
        )
}

/// A claims body as JSON text: the real fields with values of any type, unknown and repeated
/// keys, deep nesting, numbers out of every range.
fn claims_body() -> impl Strategy<Value = Vec<u8>> {
    let key = prop::sample::select(&["e", "r", "v", "u", "t", "a", "p", "x", ""][..]);
    let value = prop_oneof![
        3 => text().prop_map(|t| serde_json::json!(t).to_string()),
        2 => prop::sample::select(
            &["0", "1", "-1", "0.25", "4294967296", "18446744073709551616", "1e400", "null", "[]"][..]
        ).prop_map(str::to_owned),
        1 => (100usize..300).prop_map(|depth| nested(depth, "[", "]", true)),
    ];
    let field = (key, value).prop_map(|(key, value)| format!("\"{key}\":{value}"));
    prop_oneof![
        3 => prop::collection::vec(field, 0..10)
            .prop_map(|fields| format!("{{{}}}", fields.join(",")).into_bytes()),
        1 => claims().prop_map(|c| serde_json::to_vec(&c).expect("claims serialise")),
    ]
}

/// A token over any bytes, signed with `SECRET` following the format in
/// `src/engine/token.rs`, but not with its code.
fn sign_bytes(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&SECRET).expect("any key length");
    mac.update(body);
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(body),
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn a_signed_token_verifies_to_exactly_its_claims(claims in claims()) {
        let signer = TokenSigner::new(&SECRET);
        prop_assert_eq!(signer.verify(&signer.sign(&claims.as_ref())), Ok(claims));
    }

    /// Truncated, flipped, spliced tokens: refused with a typed reason, or (only when the
    /// edit left the signed bytes intact) verified to the original claims. A changed claim is
    /// never accepted.
    #[test]
    fn an_edited_token_never_verifies_to_other_claims(
        (claims, edited) in claims().prop_flat_map(|claims| {
            let token = TokenSigner::new(&SECRET).sign(&claims.as_ref());
            (Just(claims), mutated(Just(token.into_bytes()), 4))
        }),
    ) {
        let signer = TokenSigner::new(&SECRET);
        let edited = String::from_utf8_lossy(&edited);
        match signer.verify(&edited) {
            Ok(verified) => prop_assert_eq!(verified, claims),
            Err(TokenError::Malformed | TokenError::BadSignature) => {}
        }
    }

    /// Bodies that carry a valid signature reach the claims decoder: anything that is not a
    /// claims object is `Malformed`, never a panic and never `BadSignature`.
    #[test]
    fn a_signed_body_is_accepted_only_as_claims(body in mutated(claims_body(), 2)) {
        let signer = TokenSigner::new(&SECRET);
        match signer.verify(&sign_bytes(&body)) {
            Ok(claims) => {
                // Accepted claims are a fixed point: signing them again verifies to them.
                prop_assert_eq!(signer.verify(&signer.sign(&claims.as_ref())), Ok(claims));
            }
            Err(e) => prop_assert_eq!(e, TokenError::Malformed),
        }
    }

    /// A token signed with another secret is refused, whatever its claims.
    #[test]
    fn a_token_from_another_secret_is_refused(claims in claims(), other in any::<[u8; 32]>()) {
        prop_assume!(other != SECRET);
        let token = TokenSigner::new(&other).sign(&claims.as_ref());
        prop_assert_eq!(TokenSigner::new(&SECRET).verify(&token), Err(TokenError::BadSignature));
    }
}

/// The `token_verifier` fuzz target's input: the first byte picks the mode (even: a token as a
/// client sends it; odd: a claims body signed with `SECRET` first).
fn check_fuzz_input(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let signer = TokenSigner::new(&SECRET);
    if mode % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        if signer.verify(token).is_ok() {
            // Only a token whose signature is right: re-signing its body gives its own tag.
            let body = token
                .split_once('.')
                .map(|(body, _)| body)
                .unwrap_or_default();
            let body = URL_SAFE_NO_PAD
                .decode(body)
                .expect("an accepted body is base64url");
            assert_eq!(
                sign_bytes(&body),
                token,
                "accepted without a valid signature"
            );
        }
    } else {
        let verified = signer.verify(&sign_bytes(rest));
        let expected = serde_json::from_slice::<Claims>(rest).ok();
        match verified {
            Ok(claims) => assert_eq!(Some(claims), expected),
            Err(e) => assert_eq!((e, expected), (TokenError::Malformed, None)),
        }
    }
}

#[test]
fn the_committed_fuzz_inputs_are_verified_or_refused_with_a_type() {
    for (name, data) in fuzz_seeds("token_verifier") {
        eprintln!("{name}");
        check_fuzz_input(&data);
    }
}
