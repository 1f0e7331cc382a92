//! A token's claims (`ClaimsRef`) written straight into bytes, for `TokenSigner::sign`.
//!
//! Every counted assign signs a token, so these bytes are on the path of the busiest requests.
//! serde's derived path escapes each one-letter field name on every call; here the names are
//! literals, a string with nothing to escape is copied between quotes, and only the other
//! values go through serde_json (numbers, strings to escape, the allocation), so
//! the bytes are the ones `serde_json::to_writer(claims)` writes, which the tests check for
//! every shape the claims take. The signature covers these bytes: they must never drift from
//! what `Claims` parses.

use super::token::ClaimsRef;

/// Appends the claims' JSON to `out`: the bytes `serde_json::to_vec(claims)` makes.
pub(super) fn write_claims(out: &mut Vec<u8>, claims: &ClaimsRef<'_>) {
    out.extend_from_slice(b"{\"e\":");
    json_str(out, claims.experiment);
    out.extend_from_slice(b",\"r\":");
    json_value(out, &claims.revision);
    out.extend_from_slice(b",\"v\":");
    json_str(out, claims.variant);
    out.extend_from_slice(b",\"u\":");
    json_str(out, claims.unit);
    out.extend_from_slice(b",\"t\":");
    json_value(out, &claims.issued_ms);
    out.extend_from_slice(b",\"a\":");
    json_str(out, claims.assignment_id);
    out.extend_from_slice(b",\"p\":");
    json_value(out, &claims.propensity);
    if let Some(allocation) = claims.allocation {
        out.extend_from_slice(b",\"x\":");
        json_value(out, allocation);
    }
    out.push(b'}');
}

/// A string exactly as serde_json writes it. serde_json escapes only `"`, `\\` and the
/// control characters below U+0020; a string without them (ids, units, the assignment id
/// nearly always) is copied between quotes, without serde's serializer and its per-byte
/// escape table (76–229 fewer instructions per token, benches/load/results/
/// preq5-2026-12-01-s10.md).
fn json_str(out: &mut Vec<u8>, text: &str) {
    let plain = text.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        json_value(out, text);
    }
}

/// A value exactly as serde_json writes it. Writing into a `Vec` cannot fail, and neither can
/// serialising strings, numbers and a list of (string, number) pairs.
fn json_value<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_as_serde(claims: &ClaimsRef<'_>) {
        let mut ours = Vec::new();
        write_claims(&mut ours, claims);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&serde_json::to_vec(claims).unwrap())
        );
    }

    #[test]
    fn the_claims_are_the_bytes_serde_writes_for_every_shape_they_take() {
        let allocation = vec![
            ("bold".to_owned(), 0.25),
            ("quo\"te\\".to_owned(), 1.0 / 3.0),
            ("☃".to_owned(), 5e-324),
        ];
        let base = ClaimsRef {
            experiment: "homepage",
            revision: 2,
            variant: "bold",
            unit: "user-1",
            issued_ms: 1_700_000_000_000,
            assignment_id: "AbCdEfGhIjKlMnOp",
            propensity: 0.25,
            allocation: None,
        };
        same_as_serde(&base);
        same_as_serde(&ClaimsRef {
            allocation: Some(&allocation),
            ..base
        });
        same_as_serde(&ClaimsRef {
            allocation: Some(&[]),
            ..base
        });
        for text in [
            "",
            "quote\"back\\slash",
            "tab\tnew\nline\u{1}\u{1f}",
            "naïve ☃ 🎉",
            "</script>",
            "\u{7f}\u{80} del and c1",
            "\u{1f}",
            " ",
            "\\",
            "\"",
            "k-123",
        ] {
            same_as_serde(&ClaimsRef {
                experiment: text,
                variant: text,
                unit: text,
                assignment_id: text,
                ..base
            });
        }
        for (revision, issued_ms, propensity) in [
            (0, 0, 0.0),
            (u32::MAX, u64::MAX, 1.0),
            (7, 1, 1e-7),
            (7, 1, 0.123_456_789_012_345_68),
            (7, 1, f64::NAN),
            (7, 1, -0.0),
        ] {
            same_as_serde(&ClaimsRef {
                revision,
                issued_ms,
                propensity,
                ..base
            });
        }
    }
}
