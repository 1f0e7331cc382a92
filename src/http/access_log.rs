//! The access log: one `info` line per request (target `banditd::access`) with its method,
//! route template, status, latency and request id, written when the response is ready
//! (`request_id::RequestSpan`). `--access-log` turns it off or samples it: at tens of
//! thousands of requests a second a line per request costs a syscall and a formatted line
//! each, and the metrics carry the rates anyway.

use std::str::FromStr;

use rand::{Rng, RngExt};

/// Which requests get an access log line (`--access-log`, `BANDITD_ACCESS_LOG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AccessLog {
    /// Every request.
    All,
    /// None.
    Off,
    /// Each request independently with this probability, in (0, 1).
    Sample(f64),
}

/// The default of `--access-log` (README "Logs and traces": why every request).
pub const DEFAULT_ACCESS_LOG: &str = "all";

impl FromStr for AccessLog {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let wrong = || {
            format!(
                "`{text}` is not an access log setting: use `all`, `off` or `sample:<rate>` with a rate between 0 and 1, e.g. `sample:0.01`"
            )
        };
        match text.trim() {
            "all" => Ok(Self::All),
            "off" => Ok(Self::Off),
            other => {
                let rate: f64 = other
                    .strip_prefix("sample:")
                    .and_then(|rate| rate.trim().parse().ok())
                    .ok_or_else(wrong)?;
                match rate {
                    _ if !(0.0..=1.0).contains(&rate) => Err(wrong()),
                    0.0 => Ok(Self::Off),
                    1.0 => Ok(Self::All),
                    _ => Ok(Self::Sample(rate)),
                }
            }
        }
    }
}

impl AccessLog {
    /// Whether this request gets a line; `rng` is only drawn from when sampling.
    pub fn wants(&self, rng: &mut impl Rng) -> bool {
        match *self {
            Self::All => true,
            Self::Off => false,
            Self::Sample(rate) => rng.random_bool(rate),
        }
    }
}

/// One request, as the access log writes it.
#[derive(Debug)]
pub struct AccessEntry<'a> {
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub latency_ms: f64,
    pub request_id: &'a str,
}

/// Writes the line (within the request's span, so the JSON format also nests it there).
pub fn write(entry: &AccessEntry<'_>) {
    tracing::info!(
        target: "banditd::access",
        method = entry.method,
        route = entry.route,
        status = entry.status,
        latency_ms = entry.latency_ms,
        request_id = entry.request_id,
        "request"
    );
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn the_settings_parse_and_a_bad_one_says_what_is_accepted() {
        assert_eq!("all".parse::<AccessLog>(), Ok(AccessLog::All));
        assert_eq!("off".parse::<AccessLog>(), Ok(AccessLog::Off));
        assert_eq!("sample:0.01".parse(), Ok(AccessLog::Sample(0.01)));
        assert_eq!("sample:0".parse(), Ok(AccessLog::Off));
        assert_eq!("sample:1".parse(), Ok(AccessLog::All));
        for bad in [
            "",
            "some",
            "sample:",
            "sample:1.5",
            "sample:-0.1",
            "sample:NaN",
            "0.5",
        ] {
            let error = bad.parse::<AccessLog>().unwrap_err();
            assert!(error.contains("sample:<rate>"), "{bad}: {error}");
        }
    }

    #[test]
    fn sampling_logs_about_its_rate_of_requests() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let draws = 200_000;
        let logged = (0..draws)
            .filter(|_| AccessLog::Sample(0.01).wants(&mut rng))
            .count();
        // Binomial(200k, 0.01): mean 2000, sd 44.5; ±5 sd.
        assert!((1778..=2222).contains(&logged), "{logged}");
        assert!((0..1000).all(|_| AccessLog::All.wants(&mut rng)));
        assert!((0..1000).all(|_| !AccessLog::Off.wants(&mut rng)));
    }
}
