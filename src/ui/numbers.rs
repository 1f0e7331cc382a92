//! How the dashboard prints numbers. One rule, stated on every page (`ROUNDING_RULE`), so that
//! a number on screen is the API's number rounded, never a second computation of it:
//! proportions (rates, posterior means and intervals, P(best), traffic shares, p-values) to
//! [`PROPORTION_PLACES`] decimals, expected loss to [`LOSS_PLACES`], reward sums to
//! [`PROPORTION_PLACES`] with trailing zeros dropped, counts exactly.
//!
//! Rounding is half-up on the exact binary value, the rule of JavaScript's
//! `Number.prototype.toFixed` (ECMA-262, "Number.prototype.toFixed": the larger of two equally
//! near results) and of Python's `Decimal(x).quantize(…, ROUND_HALF_UP)`, so a reader can
//! check a figure against the JSON with either. Rust's own `{:.4}` rounds exact ties to even
//! (0.125 → "0.12"), which would differ from both on the rare exact tie.

/// Decimals of proportions.
pub const PROPORTION_PLACES: usize = 4;
/// Decimals of expected loss: the stopping rule's thresholds are of the order of 1e-3.
pub const LOSS_PLACES: usize = 6;
/// Decimals of the exposures the allocation predicts (the sample-ratio check).
pub const EXPECTED_PLACES: usize = 1;

/// The rounding rule, in words, for the pages' footers.
pub const ROUNDING_RULE: &str = "Numbers are the API's (GET /v1/experiments/{id}), rounded half \
     up: rates, means, intervals, P(best), traffic shares and p-values to 4 decimals, expected \
     loss to 6, reward sums to 4 (trailing zeros dropped), expected exposures to 1; counts are \
     exact.";

/// Digits after the point that print any `f64` exactly: the smallest subnormal, 2^-1074, has
/// 1074 of them.
const EXACT_PLACES: usize = 1074;

/// `value` with `places` decimals, rounded half-up (away from zero) on its exact binary value.
/// Not-a-number prints as "n/a" and infinities as "∞"/"−∞".
pub fn fixed(value: f64, places: usize) -> String {
    if value.is_nan() {
        return "n/a".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "∞" } else { "−∞" }.to_owned();
    }
    // Rust prints the exact decimal expansion when asked for enough digits.
    let exact = format!("{:.*}", EXACT_PLACES, value.abs());
    let (whole, fraction) = exact.split_once('.').unwrap_or((&exact, ""));
    let mut digits: Vec<u8> = whole
        .bytes()
        .chain(fraction.bytes().take(places))
        .map(|b| b - b'0')
        .collect();
    if fraction.as_bytes().get(places).is_some_and(|&b| b >= b'5') {
        let mut at = digits.len();
        loop {
            if at == 0 {
                digits.insert(0, 1);
                break;
            }
            at -= 1;
            if digits[at] == 9 {
                digits[at] = 0;
            } else {
                digits[at] += 1;
                break;
            }
        }
    }
    let split = digits.len() - places;
    let text: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
    let (int, frac) = text.split_at(split);
    let negative = value < 0.0 && text.bytes().any(|b| b != b'0');
    let sign = if negative { "-" } else { "" };
    if places == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// A proportion in [0, 1] with [`PROPORTION_PLACES`] decimals.
pub fn proportion(value: f64) -> String {
    fixed(value, PROPORTION_PLACES)
}

/// An expected loss with [`LOSS_PLACES`] decimals.
pub fn loss(value: f64) -> String {
    fixed(value, LOSS_PLACES)
}

/// A reward sum: [`PROPORTION_PLACES`] decimals without trailing zeros (`12`, `12.5`).
pub fn reward_sum(value: f64) -> String {
    let text = fixed(value, PROPORTION_PLACES);
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A count with thin-space-free thousands separators (`12,345`), for reading at a glance.
pub fn count(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The exact value as the API's JSON carries it (shortest text that reads back to the same
/// `f64`), for `<data value=…>`: a script or a test reads the exact number, a person the
/// rounded one.
pub fn exact(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else {
        String::new()
    }
}

/// Unix milliseconds as RFC 3339 UTC to the second (`2026-11-30T01:02:03Z`).
pub fn utc(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.replace_nanosecond(0).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// A span of milliseconds in the largest whole unit (`45 s`, `12 min`, `3 h`, `2 d`).
pub fn age(ms: u64) -> String {
    let seconds = ms / 1000;
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_ties_round_up_like_javascripts_to_fixed() {
        // 0.125 and 0.03125 are exact binary ties; (0.125).toFixed(2) is "0.13" in JavaScript.
        assert_eq!(fixed(0.125, 2), "0.13");
        assert_eq!(fixed(0.03125, 4), "0.0313");
        assert_eq!(fixed(2.5, 0), "3");
        // Rust's formatter would print these as "0.12" and "0.0312" (ties to even).
        assert_eq!(format!("{:.2}", 0.125), "0.12");
    }

    #[test]
    fn values_just_under_a_tie_round_down_because_the_binary_value_is_under_it() {
        // 1.005 is stored as 1.00499999999999989…; (1.005).toFixed(2) is "1.00".
        assert_eq!(fixed(1.005, 2), "1.00");
        // 0.15 is 0.1499999999999999944…
        assert_eq!(fixed(0.15, 1), "0.1");
    }

    #[test]
    fn carries_run_through_every_digit() {
        assert_eq!(fixed(0.99996, 4), "1.0000");
        assert_eq!(fixed(9.99996, 4), "10.0000");
        assert_eq!(fixed(0.0, 4), "0.0000");
        assert_eq!(fixed(1.0, 0), "1");
    }

    #[test]
    fn negatives_round_away_from_zero_and_negative_zero_prints_without_a_sign() {
        assert_eq!(fixed(-0.125, 2), "-0.13");
        assert_eq!(fixed(-0.00001, 4), "0.0000");
        assert_eq!(fixed(-0.0, 2), "0.00");
    }

    #[test]
    fn not_a_number_and_infinities_print_as_words_and_symbols() {
        assert_eq!(fixed(f64::NAN, 4), "n/a");
        assert_eq!(fixed(f64::INFINITY, 4), "∞");
        assert_eq!(exact(f64::NAN), "");
    }

    #[test]
    fn reward_sums_drop_trailing_zeros_and_counts_get_separators() {
        assert_eq!(reward_sum(12.0), "12");
        assert_eq!(reward_sum(12.5), "12.5");
        assert_eq!(reward_sum(0.33333), "0.3333");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn the_exact_text_reads_back_to_the_same_number() {
        for value in [0.1, 1.0 / 3.0, 1e-7, 0.123_456_789_012_345_67] {
            assert_eq!(exact(value).parse::<f64>().unwrap(), value);
        }
    }

    #[test]
    fn times_are_utc_to_the_second_and_ages_use_the_largest_whole_unit() {
        assert_eq!(utc(1_795_687_200_250), "2026-11-26T10:00:00Z");
        assert_eq!(age(45_000), "45 s");
        assert_eq!(age(12 * 60_000), "12 min");
        assert_eq!(age(3 * 3_600_000), "3 h");
        assert_eq!(age(3 * 86_400_000), "3 d");
    }
}
