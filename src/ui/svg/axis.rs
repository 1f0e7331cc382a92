//! Scales and tick marks: where a value lands on the plot, and which values get a labelled tick.
//!
//! Numeric ticks are Heckbert's "nice numbers" (P. S. Heckbert, "Nice numbers for graph
//! labels", Graphics Gems, 1990, pp. 61–63): steps of 1, 2 or 5 × 10^k, the axis widened to
//! whole steps, labels with exactly as many decimals as the step needs. Time ticks step by
//! whole seconds, minutes, hours or days, aligned to UTC.

use crate::ui::numbers;

/// A linear map from a data interval onto a pixel interval (either may be reversed: SVG's y
/// grows downwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub domain: (f64, f64),
    pub range: (f64, f64),
}

impl Scale {
    pub fn new(domain: (f64, f64), range: (f64, f64)) -> Self {
        Self { domain, range }
    }

    /// Where `value` lands; an empty domain maps everything to the middle of the range.
    pub fn map(&self, value: f64) -> f64 {
        let (d0, d1) = self.domain;
        let (r0, r1) = self.range;
        if d1 == d0 {
            return (r0 + r1) / 2.0;
        }
        r0 + (value - d0) / (d1 - d0) * (r1 - r0)
    }
}

/// Labelled tick positions of an axis, and the (possibly widened) interval they cover.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticks {
    /// Ascending tick values, the first at `lo` and the last at `hi`.
    pub values: Vec<f64>,
    pub labels: Vec<String>,
    pub lo: f64,
    pub hi: f64,
}

/// Heckbert's nice number near `x` (> 0): 1, 2, 5 or 10 × 10^k, rounded or the next above.
fn nice_number(x: f64, round: bool) -> f64 {
    let exponent = x.log10().floor();
    let base = 10f64.powf(exponent);
    let fraction = x / base;
    let nice = match (round, fraction) {
        (true, f) if f < 1.5 => 1.0,
        (true, f) if f < 3.0 => 2.0,
        (true, f) if f < 7.0 => 5.0,
        (true, _) => 10.0,
        (false, f) if f <= 1.0 => 1.0,
        (false, f) if f <= 2.0 => 2.0,
        (false, f) if f <= 5.0 => 5.0,
        (false, _) => 10.0,
    };
    nice * base
}

/// About `target` (≥ 2) nice ticks covering [`lo`, `hi`]. An empty or reversed interval is
/// widened around its value, so a constant series still gets an axis.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Ticks {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo.min(hi), lo.max(hi))
    } else {
        (0.0, 1.0)
    };
    let (lo, hi) = if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - pad * f64::from(u8::from(lo != 0.0)), hi + pad)
    } else {
        (lo, hi)
    };
    let target = target.max(2);
    let range = nice_number(hi - lo, false);
    let step = nice_number(range / (target - 1) as f64, true);
    let first = (lo / step).floor();
    let last = (hi / step).ceil();
    let places = usize::try_from((-step.log10().floor()).max(0.0) as i64).unwrap_or(0);
    // Multiples of the step, each computed from its index so that no error accumulates.
    let count = (last - first).round() as i64;
    let values: Vec<f64> = (0..=count)
        .map(|i| {
            let value = (first + i as f64) * step;
            // Snap to the labelled decimal so that 0.30000000000000004 is 0.3.
            numbers::fixed(value, places).parse().unwrap_or(value)
        })
        .collect();
    let labels = values.iter().map(|v| numbers::fixed(*v, places)).collect();
    Ticks {
        lo: values.first().copied().unwrap_or(lo),
        hi: values.last().copied().unwrap_or(hi),
        values,
        labels,
    }
}

/// Ticks of a proportion axis: always 0 to 1 by 0.2, so that plots of shares compare at a
/// glance.
pub fn unit_ticks() -> Ticks {
    nice_ticks(0.0, 1.0, 6)
}

const SECOND_MS: u64 = 1_000;
const MINUTE_MS: u64 = 60 * SECOND_MS;
const HOUR_MS: u64 = 60 * MINUTE_MS;
const DAY_MS: u64 = 24 * HOUR_MS;

/// Time steps a tick may take, shortest first.
const TIME_STEPS_MS: [u64; 22] = [
    SECOND_MS,
    2 * SECOND_MS,
    5 * SECOND_MS,
    10 * SECOND_MS,
    15 * SECOND_MS,
    30 * SECOND_MS,
    MINUTE_MS,
    2 * MINUTE_MS,
    5 * MINUTE_MS,
    10 * MINUTE_MS,
    15 * MINUTE_MS,
    30 * MINUTE_MS,
    HOUR_MS,
    2 * HOUR_MS,
    3 * HOUR_MS,
    6 * HOUR_MS,
    12 * HOUR_MS,
    DAY_MS,
    2 * DAY_MS,
    7 * DAY_MS,
    14 * DAY_MS,
    28 * DAY_MS,
];

/// Ticks of a time axis over [`lo_ms`, `hi_ms`] (Unix milliseconds): the shortest step from
/// the list that gives at most `target` ticks, at whole multiples of it since the epoch (so
/// on whole minutes, hours, UTC midnights). Labels are UTC: `HH:MM:SS` under a minute,
/// `HH:MM` under a day, `MM-DD` from a day. The interval is not widened: the plot spans the
/// data and the ticks fall inside it.
pub fn time_ticks(lo_ms: u64, hi_ms: u64, target: usize) -> Ticks {
    let (lo_ms, hi_ms) = (lo_ms.min(hi_ms), lo_ms.max(hi_ms));
    let span = hi_ms - lo_ms;
    let target = target.max(2) as u64;
    let step = TIME_STEPS_MS
        .iter()
        .copied()
        .find(|step| span / step < target)
        .unwrap_or_else(|| span.div_ceil(target).max(1));
    let first = lo_ms.div_ceil(step) * step;
    let values: Vec<u64> = (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= hi_ms)
        .collect();
    let format = |ms: u64| {
        let text = numbers::utc(ms);
        // text is `YYYY-MM-DDTHH:MM:SSZ`.
        match step {
            s if s < MINUTE_MS => text.get(11..19),
            s if s < DAY_MS => text.get(11..16),
            _ => text.get(5..10),
        }
        .unwrap_or(&text)
        .to_owned()
    };
    Ticks {
        labels: values.iter().map(|v| format(*v)).collect(),
        values: values.iter().map(|v| *v as f64).collect(),
        lo: lo_ms as f64,
        hi: hi_ms as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scale_maps_the_domain_ends_onto_the_range_ends_even_reversed() {
        let y = Scale::new((0.0, 1.0), (300.0, 20.0));
        assert_eq!(y.map(0.0), 300.0);
        assert_eq!(y.map(1.0), 20.0);
        assert_eq!(y.map(0.25), 230.0);
        assert_eq!(Scale::new((2.0, 2.0), (0.0, 10.0)).map(7.0), 5.0);
    }

    #[test]
    fn ticks_of_the_unit_interval_are_tenths_times_two() {
        let ticks = unit_ticks();
        assert_eq!(ticks.values, vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(ticks.labels, vec!["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
    }

    #[test]
    fn ticks_widen_the_interval_to_whole_nice_steps() {
        // Heckbert's worked shape: 0..137 with about 5 ticks steps by 50 (range 200, 200/4=50).
        let ticks = nice_ticks(0.0, 137.0, 5);
        assert_eq!(ticks.values, vec![0.0, 50.0, 100.0, 150.0]);
        assert_eq!(ticks.labels, vec!["0", "50", "100", "150"]);
        // 0.031..0.087: range 0.1, 0.1/5 = 0.02, so 0.02..0.10.
        let ticks = nice_ticks(0.031, 0.087, 6);
        assert_eq!(ticks.values, vec![0.02, 0.04, 0.06, 0.08, 0.1]);
        assert_eq!(ticks.labels, vec!["0.02", "0.04", "0.06", "0.08", "0.10"]);
        assert_eq!((ticks.lo, ticks.hi), (0.02, 0.1));
    }

    #[test]
    fn tick_values_carry_no_floating_point_residue() {
        let ticks = nice_ticks(0.0, 0.7, 8);
        assert!(ticks.values.contains(&0.3), "{:?}", ticks.values);
        assert!(
            ticks.labels.iter().all(|l| l.len() <= 3),
            "{:?}",
            ticks.labels
        );
    }

    #[test]
    fn a_constant_series_still_gets_an_axis_around_its_value() {
        let ticks = nice_ticks(0.0, 0.0, 5);
        assert!(ticks.lo <= 0.0 && ticks.hi >= 1.0, "{ticks:?}");
        let ticks = nice_ticks(40.0, 40.0, 5);
        assert!(ticks.lo < 40.0 && ticks.hi > 40.0, "{ticks:?}");
        let ticks = nice_ticks(f64::NAN, 1.0, 5);
        assert_eq!((ticks.lo, ticks.hi), (0.0, 1.0));
    }

    #[test]
    fn time_ticks_fall_on_whole_utc_units_inside_the_span() {
        // 2026-11-26T10:00:00Z plus 0..50 minutes: 10-minute steps, labelled HH:MM.
        let start = 1_795_687_200_000;
        let ticks = time_ticks(start + 7_000, start + 50 * MINUTE_MS, 6);
        assert_eq!(
            ticks.labels,
            vec!["10:10", "10:20", "10:30", "10:40", "10:50"]
        );
        assert!(
            ticks
                .values
                .iter()
                .all(|v| *v >= ticks.lo && *v <= ticks.hi)
        );
        // Three days: daily ticks at UTC midnight, labelled MM-DD.
        let ticks = time_ticks(start, start + 3 * DAY_MS, 6);
        assert_eq!(ticks.labels, vec!["11-27", "11-28", "11-29"]);
        // Forty seconds: 10-second steps, labelled HH:MM:SS.
        let ticks = time_ticks(start, start + 40 * SECOND_MS, 6);
        assert_eq!(ticks.labels[1], "10:00:10");
    }
}
