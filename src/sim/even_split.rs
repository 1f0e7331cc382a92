//! The baseline an analyst compares a bandit with: a fixed-horizon A/B(/n) test that splits
//! the same horizon evenly and, at the end, ships the arm with the most conversions. Both of
//! its figures are exact, not simulated:
//!
//! - its regret is T/K × Σ_k (μ* − μ_k): every arm gets T/K of the traffic whatever the data
//!   say (expected regret of a uniform random split; a round-robin split has exactly this
//!   regret when K divides T);
//! - the probability that it ships a best arm is a sum over the binomial distributions of the
//!   arms' conversion counts, n = ⌊T/K⌋ assignments each, ties broken uniformly at random:
//!   P(ship j) = Σ_x P(X_j = x) · E[1{X_k ≤ x ∀k ≠ j} / (1 + #{k ≠ j : X_k = x})], the
//!   expectation read off the coefficients c_m of Π_{k≠j} (P(X_k < x) + P(X_k = x)·z) as
//!   Σ_m c_m / (1 + m). Conversions are assumed to have all arrived when the test is read.

use serde::Serialize;
use statrs::function::gamma::ln_gamma;

/// How far from its mean a binomial count is looked at, in standard deviations (plus one
/// count): beyond 40 sd the probability is below e^-800, far under f64's resolution of 1.
const TAIL_SDS: f64 = 40.0;

/// The even split of the same horizon, for comparison with the bandit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvenSplit {
    /// Assignments per arm when the test is read: ⌊T/K⌋.
    pub per_arm: u64,
    /// Expected regret over the horizon: T/K × Σ_k (μ* − μ_k), in conversions.
    pub regret: f64,
    /// The same as a percentage of what always showing the best arm earns (T·μ*); `None`
    /// when the best rate is 0.
    pub regret_percent_of_best: Option<f64>,
    /// Probability that the arm with the most conversions (ties at random) is a best arm.
    pub picks_best: f64,
}

/// The even split of `horizon` assignments over arms with true `rates`.
pub fn even_split(rates: &[f64], horizon: u64) -> EvenSplit {
    let arms = rates.len().max(1) as f64;
    let best = rates.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let gaps: f64 = rates.iter().map(|rate| best - rate).sum();
    let regret = horizon as f64 / arms * gaps;
    let per_arm = horizon / rates.len().max(1) as u64;
    // Only the best arms' chances are needed: the cost is O(window · K²) per arm asked.
    let best_arms: Vec<usize> = (0..rates.len()).filter(|&k| rates[k] == best).collect();
    EvenSplit {
        per_arm,
        regret,
        regret_percent_of_best: percent_of(regret, horizon as f64 * best),
        picks_best: ship_probabilities(rates, per_arm, &best_arms).iter().sum(),
    }
}

/// `100 × part / whole`, `None` when `whole` is not positive.
pub fn percent_of(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| 100.0 * part / whole)
}

/// The distribution of one arm's conversion count, Binomial(n, p), where it is not
/// negligible: counts `first ..= first + pmf.len() − 1`.
struct Counts {
    first: u64,
    pmf: Vec<f64>,
    /// `below[i]` = P(X < first + i).
    below: Vec<f64>,
}

impl Counts {
    fn new(n: u64, p: f64) -> Self {
        let (first, last) = if p <= 0.0 {
            (0, 0)
        } else if p >= 1.0 {
            (n, n)
        } else {
            let mean = n as f64 * p;
            let spread = TAIL_SDS * (mean * (1.0 - p)).sqrt() + TAIL_SDS;
            (
                (mean - spread).floor().max(0.0) as u64,
                ((mean + spread).ceil() as u64).min(n),
            )
        };
        let pmf: Vec<f64> = (first..=last).map(|x| binomial_pmf(n, p, x)).collect();
        let mut below = Vec::with_capacity(pmf.len());
        let mut running = 0.0;
        for mass in &pmf {
            below.push(running);
            running += mass;
        }
        Self { first, pmf, below }
    }

    /// (P(X < x), P(X = x)).
    fn at(&self, x: u64) -> (f64, f64) {
        if x < self.first {
            return (0.0, 0.0);
        }
        let i = (x - self.first) as usize;
        match (self.below.get(i), self.pmf.get(i)) {
            (Some(below), Some(mass)) => (*below, *mass),
            // Above the window: every count is below x.
            _ => (1.0, 0.0),
        }
    }
}

/// P(X = x) for X ~ Binomial(n, p), in log space so that large n does not overflow.
fn binomial_pmf(n: u64, p: f64, x: u64) -> f64 {
    if p <= 0.0 {
        return if x == 0 { 1.0 } else { 0.0 };
    }
    if p >= 1.0 {
        return if x == n { 1.0 } else { 0.0 };
    }
    let (n, x) = (n as f64, x as f64);
    let ln_choose = ln_gamma(n + 1.0) - ln_gamma(x + 1.0) - ln_gamma(n - x + 1.0);
    // ln(1 − p) as ln_1p(−p): accurate for the small rates conversions have.
    (ln_choose + x * p.ln() + (n - x) * (-p).ln_1p()).exp()
}

/// P(the even split ships arm j) for each j of `arms`: n assignments per arm, the most
/// conversions win, ties at random.
fn ship_probabilities(rates: &[f64], n: u64, arms: &[usize]) -> Vec<f64> {
    let counts: Vec<Counts> = rates.iter().map(|&p| Counts::new(n, p)).collect();
    arms.iter()
        .map(|&j| {
            let own = &counts[j];
            own.pmf
                .iter()
                .enumerate()
                .map(|(i, &mass)| {
                    let x = own.first + i as u64;
                    // Coefficients of Π_{k≠j} (below_k + equal_k · z).
                    let mut poly = vec![1.0];
                    for (k, other) in counts.iter().enumerate() {
                        if k == j {
                            continue;
                        }
                        let (below, equal) = other.at(x);
                        let mut next = vec![0.0; poly.len() + 1];
                        for (m, c) in poly.iter().enumerate() {
                            next[m] += c * below;
                            next[m + 1] += c * equal;
                        }
                        poly = next;
                    }
                    let share: f64 = poly
                        .iter()
                        .enumerate()
                        .map(|(m, c)| c / (1 + m) as f64)
                        .sum();
                    mass * share
                })
                .sum()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use statrs::distribution::{Binomial, Discrete};

    /// P(arm 0 ships) for two arms by enumerating every pair of counts with statrs'
    /// binomial: an independent computation of the same quantity.
    fn two_arm_enumeration(n: u64, p0: f64, p1: f64) -> f64 {
        let a = Binomial::new(p0, n).unwrap();
        let b = Binomial::new(p1, n).unwrap();
        let mut total = 0.0;
        for x in 0..=n {
            for y in 0..=n {
                let joint = a.pmf(x) * b.pmf(y);
                total += match x.cmp(&y) {
                    std::cmp::Ordering::Greater => joint,
                    std::cmp::Ordering::Equal => joint / 2.0,
                    std::cmp::Ordering::Less => 0.0,
                };
            }
        }
        total
    }

    #[test]
    fn the_even_splits_regret_is_t_over_k_times_the_summed_gaps() {
        // 30,000 assignments over three arms: 10,000 × ((0.06 − 0.05) + 0 + (0.06 − 0.04)).
        let split = even_split(&[0.05, 0.06, 0.04], 30_000);
        assert!((split.regret - 300.0).abs() < 1e-9, "{split:?}");
        assert_eq!(split.per_arm, 10_000);
        // 300 of the 1,800 conversions the best arm alone would bring: 16.67%.
        let percent = split.regret_percent_of_best.unwrap();
        assert!((percent - 100.0 / 6.0).abs() < 1e-9, "{percent}");
        assert_eq!(even_split(&[0.0, 0.0], 10).regret_percent_of_best, None);
    }

    #[test]
    fn the_chance_of_shipping_the_best_arm_matches_an_enumeration_of_both_counts() {
        for (n, p0, p1) in [
            (1_000, 0.06, 0.05),
            (200, 0.3, 0.25),
            (50, 0.5, 0.5),
            (400, 0.01, 0.012),
        ] {
            let expected = two_arm_enumeration(n, p0, p1);
            let ship = ship_probabilities(&[p0, p1], n, &[0, 1]);
            assert!(
                (ship[0] - expected).abs() < 1e-10,
                "{n} {p0} {p1}: {ship:?} vs {expected}"
            );
            assert!((ship[0] + ship[1] - 1.0).abs() < 1e-10, "{ship:?}");
        }
    }

    #[test]
    fn identical_arms_are_shipped_equally_often_and_certain_ones_always() {
        // Symmetry: K identical arms, ties at random, 1/K each.
        let ship = ship_probabilities(&[0.2, 0.2, 0.2, 0.2], 300, &[0, 1, 2, 3]);
        for p in &ship {
            assert!((p - 0.25).abs() < 1e-10, "{ship:?}");
        }
        // A certain arm converts 10 of 10; the 0.5 arm ties it with probability 2^-10, and
        // wins half of those ties; the 0 arm never.
        let ship = ship_probabilities(&[1.0, 0.0, 0.5], 10, &[0, 1, 2]);
        let tie = 0.5 / 1024.0;
        assert!((ship[0] - (1.0 - tie)).abs() < 1e-12, "{ship:?}");
        assert_eq!(ship[1], 0.0);
        assert!((ship[2] - tie).abs() < 1e-12, "{ship:?}");
        // Fewer assignments than arms: nobody converts, a uniform tie.
        let split = even_split(&[0.9, 0.1, 0.1], 2);
        assert_eq!(split.per_arm, 0);
        assert!((split.picks_best - 1.0 / 3.0).abs() < 1e-12, "{split:?}");
    }

    #[test]
    fn a_large_test_is_computed_without_overflow_near_the_normal_approximation() {
        // 50,000 per arm at 5% vs 5.2%: z = 0.002 / √((0.05·0.95 + 0.052·0.948)/50,000)
        // = 1.4345, Φ(z) = 0.9243 (the normal approximation, good to ~0.005 here).
        let split = even_split(&[0.05, 0.052], 100_000);
        assert!((split.picks_best - 0.9243).abs() < 0.005, "{split:?}");
    }
}
