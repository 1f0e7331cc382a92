//! Shared helpers for the statistical tests of `stats` and `policy`.

/// Asymptotic Kolmogorov critical value at significance 0.001: reject when
/// √n·D ≥ 1.95 (the 0.999 quantile of the Kolmogorov distribution is 1.9495; Marsaglia, Tsang
/// & Wang 2003, "Evaluating Kolmogorov's distribution", J. Stat. Softw. 8(18)). With a fixed
/// seed a correct sampler fails a given test with probability 0.001 once, then never.
pub(crate) const KS_CRITICAL_0_001: f64 = 1.95;

/// One-sample Kolmogorov–Smirnov statistic D = sup |F_n(x) − F(x)| of `draws` against `cdf`.
/// Sorts `draws` in place.
pub(crate) fn ks_statistic(draws: &mut [f64], cdf: impl Fn(f64) -> f64) -> f64 {
    draws.sort_by(f64::total_cmp);
    let n = draws.len() as f64;
    draws
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            let above = (i as f64 + 1.0) / n - f;
            let below = f - i as f64 / n;
            above.max(below)
        })
        .fold(0.0, f64::max)
}

/// Sample mean and (unbiased) sample variance.
pub(crate) fn mean_and_variance(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, variance)
}
