//! Hot-path costs of the pure policy layer: one Beta draw, and one Thompson `decide` for
//! K = 2, 10 and 100 arms (the target is K = 10 in ≤ 1 µs). `rand_distr::Beta` is measured
//! alongside as the baseline `sample_beta` replaces.

use banditd::policy::{ArmView, Mode, Params, decide};
use banditd::stats::{BetaSampler, sample_beta};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::{SeedableRng, rngs::SmallRng};
use rand_distr::Distribution;
use std::hint::black_box;

fn beta_draws(c: &mut Criterion) {
    let mut group = c.benchmark_group("beta_draw");
    let mut rng = SmallRng::seed_from_u64(1);
    for (alpha, beta) in [
        (0.5, 0.5),
        (2.0, 40.0),
        (101.0, 901.0),
        (1e6 + 1.0, 9e6 + 1.0),
    ] {
        let label = format!("{alpha}_{beta}");
        group.bench_function(BenchmarkId::new("sample_beta", &label), |b| {
            b.iter(|| sample_beta(&mut rng, black_box(alpha), black_box(beta)))
        });
        let sampler = BetaSampler::new(alpha, beta).expect("valid constant shapes");
        group.bench_function(BenchmarkId::new("cached_sampler", &label), |b| {
            b.iter(|| black_box(&sampler).sample(&mut rng))
        });
        group.bench_function(
            BenchmarkId::new("rand_distr_beta_new_and_sample", &label),
            |b| {
                b.iter(|| {
                    rand_distr::Beta::new(black_box(alpha), black_box(beta))
                        .map(|d| d.sample(&mut rng))
                        .unwrap_or(0.0)
                })
            },
        );
    }
    group.finish();
}

fn thompson_decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide_thompson");
    let mut rng = SmallRng::seed_from_u64(2);
    // No floor and past burn-in: every call takes the Thompson branch, K Beta draws.
    let params = Params {
        burn_in: 100,
        min_share: 0.0,
    };
    for k in [2usize, 10, 100] {
        let arms: Vec<ArmView> = (0..k)
            .map(|i| ArmView {
                alpha: 1.0 + 50.0 + i as f64,
                beta: 1.0 + 950.0 - i as f64,
                exposures: 1_000.0,
                active: true,
            })
            .collect();
        let shares = vec![1.0 / k as f64; k];
        group.bench_function(BenchmarkId::from_parameter(k), |b| {
            b.iter(|| decide(Mode::Adaptive, params, black_box(&arms), &shares, &mut rng))
        });
    }
    group.finish();
}

criterion_group!(benches, beta_draws, thompson_decide);
criterion_main!(benches);
