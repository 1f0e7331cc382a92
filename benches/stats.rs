//! Cost of `compare_arms` (P(best) and expected loss of every arm from one quadrature grid)
//! for K = 2, 10 and 50 arms, at small counts (every arm near Beta(3, 7)) and at large
//! counts (10^6 exposures per arm, rates 0.05–0.06). Target: K = 10 in ≤ 100 µs.

use banditd::stats::compare_arms;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;

/// Arms near Beta(3, 7): shapes nudged so that no two arms are identical.
fn small_counts(arms: usize) -> Vec<(f64, f64)> {
    (0..arms)
        .map(|k| {
            let nudge = k as f64 / arms as f64;
            (3.0 + 0.5 * nudge, 7.0 - 0.3 * nudge)
        })
        .collect()
}

/// 10^6 exposures per arm, true rates spread evenly over [0.05, 0.06], uniform prior.
fn large_counts(arms: usize) -> Vec<(f64, f64)> {
    let exposures = 1e6;
    (0..arms)
        .map(|k| {
            let rate = 0.05 + 0.01 * k as f64 / (arms - 1) as f64;
            let rewards = (rate * exposures).round();
            (1.0 + rewards, 1.0 + exposures - rewards)
        })
        .collect()
}

fn compare(c: &mut Criterion) {
    let mut group = c.benchmark_group("compare_arms");
    for arms in [2, 10, 50] {
        for (label, shapes) in [
            ("small_counts", small_counts(arms)),
            ("large_counts", large_counts(arms)),
        ] {
            group.bench_function(BenchmarkId::new(label, arms), |b| {
                b.iter(|| compare_arms(black_box(&shapes)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, compare);
criterion_main!(benches);
