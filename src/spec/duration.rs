//! Human durations as analysts write them: `45s`, `30m`, `12h`, `7d`, `2w`.
//!
//! One whole number and one unit, nothing else: `1.5d`, `1d12h` or `7 days` are refused
//! with a message that shows the accepted spelling. A single unit keeps a reviewed file
//! unambiguous (is `1m` a month or a minute? here always a minute, and months, whose length
//! varies, are deliberately absent).

use std::time::Duration;

use super::error::{excerpt, quoted};

/// A positive duration written with one unit suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(std::time::Duration);

/// The accepted units, longest first so `Display` picks the largest exact one.
const UNITS: [(&str, u64, &str); 5] = [
    ("w", 7 * 24 * 3600, "weeks"),
    ("d", 24 * 3600, "days"),
    ("h", 3600, "hours"),
    ("m", 60, "minutes"),
    ("s", 1, "seconds"),
];

/// Longest accepted duration in seconds: the whole duration must fit in `u64` milliseconds,
/// the unit the store and tokens use for timestamps (about 584 million years).
const MAX_SECONDS: u64 = u64::MAX / 1000;

const UNIT_HELP: &str = "s (seconds), m (minutes), h (hours), d (days) or w (weeks)";

impl HumanDuration {
    pub fn from_std(d: std::time::Duration) -> Self {
        Self(d)
    }
    pub fn as_std(self) -> std::time::Duration {
        self.0
    }
    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }

    /// Parses `<whole number><unit>`, unit one of `s m h d w`. The error says what to write
    /// instead, so it can be shown to an analyst as is.
    pub fn parse(text: &str) -> Result<HumanDuration, String> {
        let s = text.trim();
        if s.is_empty() {
            return Err("is empty; write a number and a unit, e.g. 7d".to_owned());
        }
        // What the messages quote of the text: escaped and bounded, as every excerpt of a file.
        let shown = quoted(s);
        if s.starts_with('-') {
            return Err(format!(
                "{shown} is negative; a duration must be positive, e.g. 7d"
            ));
        }
        let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(digits_end);
        if digits.is_empty() {
            return Err(format!(
                "{shown} does not start with a number; write e.g. 7d or 12h"
            ));
        }
        if unit.is_empty() {
            return Err(format!(
                "{shown} has no unit; write e.g. {}d, with the unit {UNIT_HELP}",
                excerpt(digits)
            ));
        }
        if unit.starts_with('.') || unit.starts_with(',') {
            return Err(format!(
                "{shown} is not a whole number; use a smaller unit instead, e.g. 36h rather than 1.5d"
            ));
        }
        let unit = unit.trim_start();
        let Some(&(_, unit_seconds, _)) = UNITS.iter().find(|(suffix, _, _)| *suffix == unit)
        else {
            return Err(format!(
                "{shown} has the unknown unit {}; use one of {UNIT_HELP}, e.g. 7d",
                quoted(unit)
            ));
        };
        if s[digits_end..].starts_with(char::is_whitespace) {
            return Err(format!(
                "{shown} has a space before the unit; write it as {}{unit}",
                excerpt(digits)
            ));
        }
        let too_large = || {
            format!(
                "{shown} is too large; the longest accepted duration is {MAX_SECONDS}s, \
                 and a reward window of a few weeks is typical"
            )
        };
        let count: u64 = digits.parse().map_err(|_| too_large())?;
        let seconds = count.checked_mul(unit_seconds).ok_or_else(too_large)?;
        if seconds > MAX_SECONDS {
            return Err(too_large());
        }
        if seconds == 0 {
            return Err(format!(
                "{shown} is zero; a duration must be positive, e.g. 7d"
            ));
        }
        Ok(HumanDuration(Duration::from_secs(seconds)))
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Prints the largest unit that divides the duration exactly (`14d` prints as `2w`), so
/// the text parses back to the same value. Sub-second durations (only reachable through
/// `from_std`) print in milliseconds, e.g. `1500ms`.
impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.subsec_nanos() != 0 {
            return write!(f, "{}ms", self.0.as_millis());
        }
        let seconds = self.0.as_secs();
        if seconds == 0 {
            return f.write_str("0s");
        }
        for (suffix, unit_seconds, _) in UNITS {
            if seconds.is_multiple_of(unit_seconds) {
                return write!(f, "{}{suffix}", seconds / unit_seconds);
            }
        }
        // Unreachable in practice: the last unit (seconds) divides everything.
        write!(f, "{seconds}s")
    }
}

impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        HumanDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> HumanDuration {
        HumanDuration::from_std(Duration::from_secs(n))
    }

    #[test]
    fn every_unit_parses_to_its_length_in_seconds() {
        let table = [
            ("45s", 45),
            ("30m", 30 * 60),
            ("12h", 12 * 3600),
            ("7d", 7 * 86_400),
            ("2w", 14 * 86_400),
            ("1s", 1),
            (" 3h ", 3 * 3600),
            ("0007d", 7 * 86_400),
        ];
        for (text, expected) in table {
            assert_eq!(HumanDuration::parse(text), Ok(secs(expected)), "{text}");
        }
    }

    #[test]
    fn bad_durations_are_refused_with_a_hint() {
        let table = [
            ("", "is empty"),
            ("0d", "is zero"),
            ("0s", "is zero"),
            ("-3d", "is negative"),
            ("7", "has no unit"),
            ("7y", "unknown unit \"y\""),
            ("7days", "unknown unit \"days\""),
            ("7ms", "unknown unit \"ms\""),
            ("7D", "unknown unit \"D\""),
            ("1.5d", "not a whole number"),
            ("d", "does not start with a number"),
            ("7 d", "space before the unit"),
            ("1d12h", "unknown unit \"d12h\""),
            ("99999999999999999999999d", "too large"),
            ("30500000000000w", "too large"),
            ("18446744073709552s", "too large"),
        ];
        for (text, phrase) in table {
            match HumanDuration::parse(text) {
                Ok(d) => panic!("{text:?} parsed as {d:?}"),
                Err(msg) => assert!(msg.contains(phrase), "{text:?}: {msg}"),
            }
        }
    }

    #[test]
    fn the_longest_duration_fits_in_u64_milliseconds() {
        let max = HumanDuration::parse(&format!("{MAX_SECONDS}s"));
        assert_eq!(max.map(HumanDuration::as_millis), Ok(MAX_SECONDS * 1000));
    }

    #[test]
    fn display_uses_the_largest_exact_unit() {
        let table = [
            (45, "45s"),
            (90, "90s"),
            (120, "2m"),
            (7200, "2h"),
            (86_400, "1d"),
            (7 * 86_400, "1w"),
            (10 * 86_400, "10d"),
            (14 * 86_400, "2w"),
        ];
        for (seconds, text) in table {
            assert_eq!(secs(seconds).to_string(), text);
        }
        let sub_second = HumanDuration::from_std(Duration::from_millis(1500));
        assert_eq!(sub_second.to_string(), "1500ms");
    }

    #[test]
    fn display_parses_back_to_the_same_duration() {
        for text in ["45s", "30m", "12h", "7d", "2w", "36h", "90m"] {
            let parsed = HumanDuration::parse(text).map_err(|e| e.to_string());
            let reparsed = parsed
                .clone()
                .and_then(|d| HumanDuration::parse(&d.to_string()));
            assert_eq!(parsed, reparsed, "{text}");
        }
    }

    #[test]
    fn serde_reads_and_writes_the_text_form() {
        let d: HumanDuration = serde_json::from_str("\"12h\"").unwrap();
        assert_eq!(d, secs(12 * 3600));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"12h\"");
        let bad: Result<HumanDuration, _> = serde_json::from_str("\"12\"");
        assert!(bad.unwrap_err().to_string().contains("has no unit"));
    }
}
