//! Delay-aware posteriors: conversions that have not arrived yet (README, "Reading the
//! results", delay-aware posterior).
//!
//! The metric is "converted within the reward window W of the assignment". An exposure of age
//! a < W has had only part of its chance: with G the delay law of conversions that come within
//! W (G(W) = 1), it has converted by now with probability θ·G(a). The naive posterior counts it
//! as a whole trial and is biased low by the share of recent exposures; the corrected one
//! counts it as G(a) of a trial, N_eff = N − Σ_i (1 − G(min(a_i, W))), the expectation step of
//! the EM view in Chapelle (2014, "Modeling delayed feedback in display advertising", KDD,
//! §4) and its standard Beta-conjugate approximation.
//!
//! G is estimated on a grid of delay bins (minutes apart in the first hour, [`DELAY_BIN_MS`]
//! after), from two histograms per arm: exposures by hourly assignment bin (their ages now,
//! spread uniformly within the bin) and conversions by delay bin. The likelihood is
//! Chapelle's mixture model with a piecewise-constant delay density, in its rare-event
//! (Poisson) form: conversions with delay in bin j number D_j ~ Poisson(θ·f_j·M_j), where
//! M_j is the exposure time already spent in bin j by all exposures (an exposure younger than
//! the bin's start has not yet had the chance to reveal such a delay: right-truncation is in
//! the denominators, as in an occurrence/exposure rate). Its maximum under a Dirichlet(κ·g)
//! prior on f solves f_j = (D_j + κ·g_j) / (θ·M_j + κ), θ = D / Σ_j f_j·M_j (Lagrange
//! conditions; at the fixed point Σ f_j = 1), computed by iterating those two equations.
//! Bins no exposure has reached yet (M_j = 0) keep the base law g: the tail of the delay law
//! is not in the data before W has elapsed, so it must come from a model.
//!
//! The base law is an exponential delay (Chapelle 2014's delay model), fitted by maximum
//! likelihood with the same truncation. The experiment's median is the fit to all arms
//! pooled (`auto`) or the analyst's cold-start model (`{median: 2d}`); each arm's median is
//! its own fit shrunk toward the experiment's on the log scale (κ =
//! [`ARM_POOLING_CONVERSIONS`] pseudo-conversions), so an arm with few conversions borrows
//! the experiment's law and an arm with many follows its own, tail included. On top of its
//! base, each law is the Dirichlet posterior mode above (κ = [`BASE_LAW_CONVERSIONS`] for
//! the experiment, [`ARM_POOLING_CONVERSIONS`] for an arm), so its shape follows the data
//! wherever the data reach.

use super::error::StatsError;

/// Width of one cohort bin (exposures by assignment time), and of the delay bins past the
/// first hour. Whoever keeps the histograms (today the simulator, src/sim/delay_posterior.rs)
/// keeps them on this grid.
pub const DELAY_BIN_MS: u64 = 3_600_000;

/// Edges of the delay bins inside the first hour, in milliseconds: fine, because many
/// conversions come within minutes, and a law that cannot tell a 1-minute delay from a
/// 59-minute one would discount the last hour's exposures when nothing is pending. Bin j < 8
/// is [FINE_EDGES_MS[j], FINE_EDGES_MS[j + 1]); bin 8 + h is [(h + 1) hours, (h + 2) hours).
pub const FINE_EDGES_MS: [u64; 9] = [
    0, 60_000, 120_000, 300_000, 600_000, 1_200_000, 1_800_000, 2_700_000, 3_600_000,
];

const FINE_BINS: usize = FINE_EDGES_MS.len() - 1;

/// The delay bin of a conversion that arrived `delay_ms` after its assignment.
pub fn delay_bin(delay_ms: u64) -> usize {
    if delay_ms >= DELAY_BIN_MS {
        FINE_BINS + (delay_ms / DELAY_BIN_MS) as usize - 1
    } else {
        FINE_EDGES_MS.partition_point(|&edge| edge <= delay_ms) - 1
    }
}

/// The start of delay bin j (not capped by any window).
fn bin_start_ms(j: usize) -> u64 {
    match FINE_EDGES_MS.get(j) {
        Some(&edge) => edge,
        None => ((j - FINE_BINS + 1) as u64).saturating_mul(DELAY_BIN_MS),
    }
}

/// Pseudo-conversions that pull an arm's delay law toward the experiment's: an arm with this
/// many observed conversions is halfway between the two in the bins both have observed.
pub const ARM_POOLING_CONVERSIONS: f64 = 20.0;

/// Pseudo-conversions of the base law (stated or fitted exponential) in the experiment's law.
pub const BASE_LAW_CONVERSIONS: f64 = 20.0;

/// Where the experiment's delay law starts from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BaseDelay {
    /// Fit an exponential to the pooled data (Chapelle 2014's delay model).
    Learn,
    /// The analyst's cold-start model: exponential with this median.
    ExponentialMedian { median_ms: u64 },
}

/// What the estimator reads of one arm: two histograms and the total.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DelayCounts {
    /// Exposures by assignment bin (`assigned_ms / DELAY_BIN_MS`), at least for the bins
    /// younger than the window; older exposures need not be listed.
    pub cohorts: Vec<(u64, f64)>,
    /// Conversions by delay bin ([`delay_bin`]); index j is bin j.
    pub delays: Vec<f64>,
    /// All exposures of the arm (the posterior's N), complete cohorts included.
    pub exposures: f64,
}

/// A delay law of conversions that come within the window: a piecewise-linear CDF on the
/// grid's bin edges (capped at W), G(0) = 0, G(W) = 1.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayLaw {
    window_ms: u64,
    cdf: Vec<f64>,
}

/// The fitted law of one arm and what it does to the arm's exposures now.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmDelayFit {
    pub law: DelayLaw,
    /// Σ over recent exposures of (1 − G(age)): the exposures whose conversion, if it comes,
    /// has not arrived yet. The corrected N is `exposures − pending_exposures`.
    pub pending_exposures: f64,
    /// Conversions the arm's own law rests on.
    pub observed_conversions: f64,
}

/// Number of delay bins that start inside a window (at least one).
pub fn bin_count(window_ms: u64) -> usize {
    delay_bin(window_ms.saturating_sub(1)) + 1
}

fn edge_ms(j: usize, window_ms: u64) -> f64 {
    bin_start_ms(j).min(window_ms) as f64
}

/// The mean over ages uniform on [a0, a1] of the ramp that rises from 0 at `e0` to 1 at `e1`:
/// the share of a delay bin [e0, e1) that a cohort of exposures spread over those ages has
/// already lived through. Exact integral of the piecewise-linear ramp.
fn ramp_mean(a0: f64, a1: f64, e0: f64, e1: f64) -> f64 {
    let ramp = |a: f64| ((a - e0) / (e1 - e0)).clamp(0.0, 1.0);
    if e1 <= e0 {
        return if a1 > e0 { 1.0 } else { 0.0 };
    }
    if a1 - a0 <= 0.0 {
        return ramp(a1);
    }
    // ∫ ramp = ∫ over [e0, e1] part (quadratic) + ∫ over the part above e1 (1).
    let integral_to = |a: f64| -> f64 {
        if a <= e0 {
            0.0
        } else if a <= e1 {
            (a - e0) * (a - e0) / (2.0 * (e1 - e0))
        } else {
            (e1 - e0) / 2.0 + (a - e1)
        }
    };
    (integral_to(a1) - integral_to(a0)) / (a1 - a0)
}

impl DelayLaw {
    /// Builds the law from bin probabilities (normalised here; negative or non-finite ones
    /// count as 0). All zero: the law puts everything in the first bin.
    pub fn from_bin_probabilities(window_ms: u64, probabilities: &[f64]) -> Self {
        let bins = bin_count(window_ms);
        let clean = |p: f64| if p.is_finite() { p.max(0.0) } else { 0.0 };
        let total: f64 = probabilities.iter().take(bins).map(|&p| clean(p)).sum();
        let mut cdf = Vec::with_capacity(bins + 1);
        cdf.push(0.0);
        let mut running = 0.0;
        for j in 0..bins {
            running += if total > 0.0 {
                clean(probabilities.get(j).copied().unwrap_or(0.0)) / total
            } else if j == 0 {
                1.0
            } else {
                0.0
            };
            cdf.push(running.min(1.0));
        }
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        Self { window_ms, cdf }
    }

    /// An exponential delay with this median, truncated to the window, on the grid.
    pub fn exponential(median_ms: f64, window_ms: u64) -> Self {
        let rate = std::f64::consts::LN_2 / median_ms.max(1.0);
        let probabilities = exponential_bin_probabilities(rate, window_ms);
        Self::from_bin_probabilities(window_ms, &probabilities)
    }

    /// The reward window the law is conditioned on.
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// Probability of each bin.
    pub fn bin_probabilities(&self) -> Vec<f64> {
        self.cdf.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// G(min(age, W)): the share of within-window conversions that have arrived by `age_ms`.
    pub fn completion(&self, age_ms: f64) -> f64 {
        if age_ms.is_nan() || age_ms <= 0.0 {
            return 0.0;
        }
        if age_ms >= self.window_ms as f64 {
            return 1.0;
        }
        let j = delay_bin(age_ms as u64);
        let (Some(&low), Some(&high)) = (self.cdf.get(j), self.cdf.get(j + 1)) else {
            return 1.0;
        };
        let start = edge_ms(j, self.window_ms);
        let width = edge_ms(j + 1, self.window_ms) - start;
        if width <= 0.0 {
            return high;
        }
        low + (high - low) * ((age_ms - start) / width).clamp(0.0, 1.0)
    }

    /// The mean of G over ages spread uniformly on [a0, a1]: the share of a cohort's
    /// within-window conversions that has arrived.
    pub fn mean_completion(&self, a0: f64, a1: f64) -> f64 {
        (0..self.cdf.len() - 1)
            .map(|j| {
                let p = self.cdf[j + 1] - self.cdf[j];
                if p == 0.0 {
                    0.0
                } else {
                    p * ramp_mean(
                        a0,
                        a1,
                        edge_ms(j, self.window_ms),
                        edge_ms(j + 1, self.window_ms),
                    )
                }
            })
            .sum::<f64>()
            .min(1.0)
    }

    /// The delay by which a share `p` of within-window conversions has arrived (the inverse of
    /// the piecewise-linear CDF), in milliseconds.
    pub fn quantile_ms(&self, p: f64) -> f64 {
        let p = p.clamp(0.0, 1.0);
        for j in 0..self.cdf.len() - 1 {
            let (low, high) = (self.cdf[j], self.cdf[j + 1]);
            if high >= p && high > low {
                let start = edge_ms(j, self.window_ms);
                let width = edge_ms(j + 1, self.window_ms) - start;
                return start + width * ((p - low) / (high - low)).clamp(0.0, 1.0);
            }
        }
        self.window_ms as f64
    }
}

/// P(delay in bin j | delay ≤ W) for an exponential with this rate: the increments of
/// F(x) = (1 − e^{−rate·x}) / (1 − e^{−rate·W}), written with `exp_m1` so that a rate near 0
/// (a law close to uniform on the window) keeps its digits.
fn exponential_bin_probabilities(rate: f64, window_ms: u64) -> Vec<f64> {
    let bins = bin_count(window_ms);
    let whole = (-rate * window_ms as f64).exp_m1();
    let cdf = |x: f64| (-rate * x).exp_m1() / whole;
    (0..bins)
        .map(|j| cdf(edge_ms(j + 1, window_ms)) - cdf(edge_ms(j, window_ms)))
        .collect()
}

/// The data of one arm (or of the pool) on the grid: D_j and M_j.
#[derive(Debug, Clone, Default)]
struct Binned {
    conversions: Vec<f64>,
    exposure_time: Vec<f64>,
}

impl Binned {
    fn total_conversions(&self) -> f64 {
        self.conversions.iter().sum()
    }

    fn add(&mut self, other: &Binned) {
        for (a, b) in self.conversions.iter_mut().zip(&other.conversions) {
            *a += b;
        }
        for (a, b) in self.exposure_time.iter_mut().zip(&other.exposure_time) {
            *a += b;
        }
    }
}

/// The span of ages at `now_ms` of an assignment bin's exposures, taken as spread uniformly
/// over the bin (the current bin only over its elapsed part).
fn cohort_ages_ms(bin: u64, now_ms: u64) -> (f64, f64) {
    let start = bin.saturating_mul(DELAY_BIN_MS).min(now_ms);
    let end = start.saturating_add(DELAY_BIN_MS).min(now_ms);
    (now_ms as f64 - end as f64, now_ms as f64 - start as f64)
}

fn clean(count: f64) -> f64 {
    if count.is_finite() {
        count.max(0.0)
    } else {
        0.0
    }
}

fn bin_data(counts: &DelayCounts, window_ms: u64, now_ms: u64) -> Binned {
    let bins = bin_count(window_ms);
    let mut conversions = vec![0.0; bins];
    for (j, &d) in counts.delays.iter().enumerate() {
        conversions[j.min(bins - 1)] += clean(d);
    }
    // Exposures of recent cohorts have spent part of the grid; every other exposure has
    // spent all of it.
    let mut exposure_time = vec![0.0; bins];
    let mut recent = 0.0;
    for &(bin, exposures) in &counts.cohorts {
        let exposures = clean(exposures);
        let (youngest, oldest) = cohort_ages_ms(bin, now_ms);
        if youngest >= window_ms as f64 {
            continue;
        }
        recent += exposures;
        for (j, time) in exposure_time.iter_mut().enumerate() {
            let share = ramp_mean(
                youngest,
                oldest,
                edge_ms(j, window_ms),
                edge_ms(j + 1, window_ms),
            );
            if share == 0.0 {
                break;
            }
            *time += exposures * share;
        }
    }
    let complete = (clean(counts.exposures) - recent).max(0.0);
    for time in &mut exposure_time {
        *time += complete;
    }
    Binned {
        conversions,
        exposure_time,
    }
}

/// Most iterations of the fixed point; it converges geometrically, in tens of steps for
/// conversion rates below 50%.
const MAX_ITERATIONS: usize = 2_000;

/// The Dirichlet(κ·base) posterior mode of the bin probabilities under the Poisson
/// likelihood (module docs). No conversions: the base law.
fn posterior_mode(data: &Binned, base: &[f64], kappa: f64) -> Vec<f64> {
    let total = data.total_conversions();
    if total <= 0.0 {
        return base.to_vec();
    }
    let mut f = base.to_vec();
    let spent = |f: &[f64]| -> f64 { f.iter().zip(&data.exposure_time).map(|(p, m)| p * m).sum() };
    let mut theta = total / spent(&f).max(f64::MIN_POSITIVE);
    for _ in 0..MAX_ITERATIONS {
        let mut next: Vec<f64> = (0..f.len())
            .map(|j| {
                let denominator = theta * data.exposure_time[j] + kappa;
                if denominator > 0.0 {
                    (data.conversions[j] + kappa * base[j]) / denominator
                } else {
                    base[j]
                }
            })
            .collect();
        let sum: f64 = next.iter().sum();
        if sum > 0.0 {
            next.iter_mut().for_each(|p| *p /= sum);
        }
        let next_theta = total / spent(&next).max(f64::MIN_POSITIVE);
        let change = next.iter().zip(&f).map(|(a, b)| (a - b).abs()).fold(
            (next_theta - theta).abs() / theta.max(f64::MIN_POSITIVE),
            f64::max,
        );
        f = next;
        theta = next_theta;
        if change < 1e-13 {
            break;
        }
    }
    f
}

/// Rates tried for the exponential fit span medians from one minute to 1000 windows (the
/// latter is the uniform law on the window to many digits).
const MIN_MEDIAN_MS: f64 = 60_000.0;

/// Maximum-likelihood median of an exponential delay law (Chapelle 2014, §4.1) under the
/// same truncated Poisson likelihood, profiled over θ: Σ_j D_j ln p_j(λ) − D ln Σ_j p_j(λ)·M_j
/// with p_j the law's bin probabilities (the conversions' bins are interval-censored
/// observations). Maximised over ln(median) by golden-section search (unimodal in practice;
/// the search is bracketed by the whole plausible range). `None`: no conversions.
pub fn fit_exponential_median(arms: &[DelayCounts], window_ms: u64, now_ms: u64) -> Option<f64> {
    let pooled = pool(arms, window_ms, now_ms);
    exponential_median(&pooled, window_ms)
}

fn exponential_median(data: &Binned, window_ms: u64) -> Option<f64> {
    let total = data.total_conversions();
    if total <= 0.0 {
        return None;
    }
    let log_likelihood = |log_median: f64| -> f64 {
        let rate = std::f64::consts::LN_2 / log_median.exp();
        let p = exponential_bin_probabilities(rate, window_ms);
        let spent: f64 = p.iter().zip(&data.exposure_time).map(|(p, m)| p * m).sum();
        let observed: f64 = p
            .iter()
            .zip(&data.conversions)
            .filter(|(_, d)| **d > 0.0)
            .map(|(p, d)| d * p.max(f64::MIN_POSITIVE).ln())
            .sum();
        observed - total * spent.max(f64::MIN_POSITIVE).ln()
    };
    let (mut low, mut high) = (MIN_MEDIAN_MS.ln(), (1000.0 * window_ms as f64).ln());
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut a = high - ratio * (high - low);
    let mut b = low + ratio * (high - low);
    let (mut fa, mut fb) = (log_likelihood(a), log_likelihood(b));
    while high - low > 1e-9 {
        if fa < fb {
            low = a;
            a = b;
            fa = fb;
            b = low + ratio * (high - low);
            fb = log_likelihood(b);
        } else {
            high = b;
            b = a;
            fb = fa;
            a = high - ratio * (high - low);
            fa = log_likelihood(a);
        }
    }
    Some(((low + high) / 2.0).exp())
}

fn pool(arms: &[DelayCounts], window_ms: u64, now_ms: u64) -> Binned {
    let bins = bin_count(window_ms);
    let mut pooled = Binned {
        conversions: vec![0.0; bins],
        exposure_time: vec![0.0; bins],
    };
    for arm in arms {
        pooled.add(&bin_data(arm, window_ms, now_ms));
    }
    pooled
}

/// The experiment's delay law and every arm's, fitted at `now_ms` (module docs). `None`:
/// `Learn` without a single conversion yet, so there is nothing to correct with (the
/// posterior stays naive until the first conversion arrives).
pub fn fit_delays(
    arms: &[DelayCounts],
    base: BaseDelay,
    window_ms: u64,
    now_ms: u64,
) -> Result<Option<(DelayLaw, Vec<ArmDelayFit>)>, StatsError> {
    if window_ms == 0 {
        return Err(StatsError::EmptyWindow);
    }
    let per_arm: Vec<Binned> = arms
        .iter()
        .map(|arm| bin_data(arm, window_ms, now_ms))
        .collect();
    let bins = bin_count(window_ms);
    let mut pooled = Binned {
        conversions: vec![0.0; bins],
        exposure_time: vec![0.0; bins],
    };
    per_arm.iter().for_each(|arm| pooled.add(arm));
    let base_median = match base {
        BaseDelay::ExponentialMedian { median_ms } => median_ms as f64,
        BaseDelay::Learn => match exponential_median(&pooled, window_ms) {
            Some(median) => median,
            None => return Ok(None),
        },
    };
    let base_law = exponential_bin_probabilities(std::f64::consts::LN_2 / base_median, window_ms);
    let experiment = posterior_mode(&pooled, &base_law, BASE_LAW_CONVERSIONS);
    let fits = arms
        .iter()
        .zip(&per_arm)
        .map(|(counts, data)| {
            let median = arm_median(data, window_ms, base_median);
            let arm_base =
                exponential_bin_probabilities(std::f64::consts::LN_2 / median, window_ms);
            let law = DelayLaw::from_bin_probabilities(
                window_ms,
                &posterior_mode(data, &arm_base, ARM_POOLING_CONVERSIONS),
            );
            ArmDelayFit {
                pending_exposures: pending_exposures(&law, counts, now_ms),
                observed_conversions: data.total_conversions(),
                law,
            }
        })
        .collect();
    Ok(Some((
        DelayLaw::from_bin_probabilities(window_ms, &experiment),
        fits,
    )))
}

/// The arm's exponential median, shrunk toward the experiment's on the log scale with the
/// weights of a conjugate normal update: its own maximum-likelihood fit counts with its
/// observed conversions, the experiment's with [`ARM_POOLING_CONVERSIONS`]. This is what lets
/// an arm whose users convert later keep a longer tail than the pooled law before the
/// window has elapsed, while an arm with a handful of conversions follows the experiment.
fn arm_median(data_conversions_and_time: &Binned, window_ms: u64, experiment_median: f64) -> f64 {
    let own = data_conversions_and_time.total_conversions();
    match exponential_median(data_conversions_and_time, window_ms) {
        Some(median) if own > 0.0 => {
            let weight = own / (own + ARM_POOLING_CONVERSIONS);
            (weight * median.ln() + (1.0 - weight) * experiment_median.ln()).exp()
        }
        _ => experiment_median,
    }
}

/// Σ over an arm's recent cohorts of exposures·(1 − mean G over the cohort's ages).
pub fn pending_exposures(law: &DelayLaw, counts: &DelayCounts, now_ms: u64) -> f64 {
    let pending: f64 = counts
        .cohorts
        .iter()
        .map(|&(bin, exposures)| {
            let (youngest, oldest) = cohort_ages_ms(bin, now_ms);
            clean(exposures) * (1.0 - law.mean_completion(youngest, oldest))
        })
        .sum();
    pending.min(clean(counts.exposures))
}

/// Σ over an arm's recent cohorts of exposures·mean over the cohort's ages of
/// (1 − G(a))·2^(−a/h): the pending exposures in the units of a posterior decayed with
/// half-life h (an exposure of age a counts 2^(−a/h) there, and its conversion, if any, would
/// count as much, since a reward decays from its assignment). Exact: G is linear on each bin,
/// so each piece is ∫(c0 + c1·a)·e^(−k·a) da in closed form. Without a half-life this is
/// [`pending_exposures`].
pub fn pending_decayed_exposures(
    law: &DelayLaw,
    counts: &DelayCounts,
    now_ms: u64,
    half_life_ms: Option<u64>,
) -> f64 {
    let Some(half_life_ms) = half_life_ms.filter(|h| *h > 0) else {
        return pending_exposures(law, counts, now_ms);
    };
    let k = std::f64::consts::LN_2 / half_life_ms as f64;
    let pending: f64 = counts
        .cohorts
        .iter()
        .map(|&(bin, exposures)| {
            let (youngest, oldest) = cohort_ages_ms(bin, now_ms);
            clean(exposures) * law.mean_weighted_pending(youngest, oldest, k)
        })
        .sum();
    pending.min(clean(counts.exposures))
}

/// ∫_0^L (c0 + c1·t)·e^(−k·t) dt, with series where k·L is small enough to cancel digits.
fn linear_times_exponential(c0: f64, c1: f64, k: f64, length: f64) -> f64 {
    let kl = k * length;
    let i0 = if kl < 1e-8 {
        length
    } else {
        -(-kl).exp_m1() / k
    };
    let i1 = if kl < 1e-4 {
        length * length * (0.5 - kl / 3.0 + kl * kl / 8.0)
    } else {
        (-(-kl).exp_m1() - kl * (-kl).exp()) / (k * k)
    };
    c0 * i0 + c1 * i1
}

impl DelayLaw {
    /// The mean over ages uniform on [a0, a1] of (1 − G(a))·e^(−k·a).
    fn mean_weighted_pending(&self, a0: f64, a1: f64, k: f64) -> f64 {
        let pending_at = |a: f64| (1.0 - self.completion(a)) * (-k * a).exp();
        if a1 - a0 <= 0.0 {
            return pending_at(a1);
        }
        let mut integral = 0.0;
        for j in 0..self.cdf.len() - 1 {
            let (e0, e1) = (edge_ms(j, self.window_ms), edge_ms(j + 1, self.window_ms));
            let (x0, x1) = (a0.max(e0), a1.min(e1));
            if x1 <= x0 || e1 <= e0 {
                continue;
            }
            // 1 − G on this bin, as c0 + c1·t with t = a − x0.
            let slope = (self.cdf[j + 1] - self.cdf[j]) / (e1 - e0);
            let c0 = 1.0 - (self.cdf[j] + slope * (x0 - e0));
            integral += (-k * x0).exp() * linear_times_exponential(c0, -slope, k, x1 - x0);
        }
        // Past the window, 1 − G = 0.
        integral / (a1 - a0)
    }
}

#[cfg(test)]
#[path = "delay_tests.rs"]
mod tests;
