//! One simulated run: the server's policy and stopping rule, step by step, against true
//! Bernoulli rates. Pure: the only state is the run's own generator.
//!
//! Per assignment i (at time i/rate when a clock is given):
//! 1. every `update_every` assignments the snapshot is rebuilt, as the server rebuilds its
//!    posterior snapshot: conversions whose delay has elapsed are credited, and every arm's
//!    view is Beta(prior + R, prior + N − R) with N all exposures so far (exposures are
//!    counted when assigned, as the server counts them) and R the credited conversions,
//!    both decayed with a half-life; with `reward.delay` on, N less the exposures whose
//!    conversion may still come (`stats::fit_delays`; the server does not apply it yet).
//!    On every `evaluate_every`-th refresh, until a winner is declared,
//!    `stats::compare_arms` + `stats::evaluate` apply the stopping rule;
//! 2. `policy::decide` picks the arm (adaptive, or exploiting a declared winner);
//! 3. the visitor converts with the arm's true rate; the conversion is credited at the next
//!    refresh, or once its delay has elapsed (and never if the delay exceeds the reward
//!    window: the server rejects such events).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};

use super::confirm::SrmTally;
use super::delay_posterior::DelayTracker;
use super::error::SimError;
use super::guardrail::{ArmHalt, DEFAULT_CHECK_EVERY, GuardrailRun};
use super::scenario::{Scenario, Settings};
use crate::policy::{self, ArmView, Mode};
use crate::spec::OnWinner;
use crate::stats::{self, DecayedCounts, Posterior, Verdict};

/// The first winner the stopping rule declared in a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeclaredWinner {
    pub arm: usize,
    /// Assignments made before the decision.
    pub assignments: u64,
    /// Simulated time of the decision (0 without a clock).
    pub time_ms: u64,
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// Cumulative pseudo-regret Σ_i (p* − p_{arm_i}) after each checkpoint's number of
    /// assignments.
    pub regret_at: Vec<f64>,
    /// Assignments per arm.
    pub arm_assignments: Vec<u64>,
    /// Assignments to an arm with the highest true rate, overall and in the last tenth of
    /// the horizon.
    pub best_assignments: u64,
    pub best_assignments_last_tenth: u64,
    pub winner: Option<DeclaredWinner>,
    /// The arm with the highest P(best) on the posterior the server holds at the horizon
    /// (conversions arrived by then), ties to the first: what an analyst reading the stats
    /// at the end would call the leader. `None` if the comparison failed.
    pub leader_at_end: Option<usize>,
    pub conversions: u64,
    /// Conversions the server would reject because their delay exceeds the reward window.
    pub conversions_outside_window: u64,
    /// With a clock: every arm's P(best) under the posterior the policy used, at the start of
    /// each simulated day after the first (for the reliability of P(best)).
    pub daily_prob_best: Vec<Vec<f64>>,
    /// Arms halted by a guardrail, in the order halted.
    pub halts: Vec<ArmHalt>,
    /// Confirmed exposures per arm (all assignments when every confirmation rate is 1).
    pub arm_exposures: Vec<u64>,
    /// The sample-ratio check's p-value at the end of the run (`None`: too little data).
    pub srm_p_value: Option<f64>,
}

/// Milliseconds per simulated day, the spacing of [`RunOutcome::daily_prob_best`].
const MS_PER_DAY: u64 = 86_400_000;

/// The generator of run `run` of a simulation seeded with `seed`: a fixed algorithm
/// (xoshiro256++, so the numbers do not change with the platform or with what `SmallRng`
/// means in a later rand), keyed by both values through SplitMix64 so that nearby seeds and
/// run indices give unrelated streams (Steele, Lea & Flood 2014, "Fast splittable
/// pseudorandom number generators", OOPSLA).
pub fn run_rng(seed: u64, run: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(splitmix64(splitmix64(seed) ^ run))
}

fn splitmix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A conversion on its way: (arrival time, assignment index, arm, assignment time), ordered
/// by arrival. The index makes the order total, so equal arrival times pop
/// deterministically.
type Pending = Reverse<(u64, u64, usize, u64)>;

/// The counters the server keeps for one arm.
#[derive(Debug, Clone, Copy)]
struct ArmCounters {
    exposures: u64,
    credited: u64,
    /// The same, decayed, when the experiment has a half-life.
    decayed: DecayedCounts,
}

/// Runs `scenario` once for `settings.horizon` assignments. `checkpoints` must be
/// increasing; the regret is recorded after each. `settings` must have passed
/// [`Settings::check`].
pub fn run_once(
    scenario: &Scenario,
    settings: &Settings,
    checkpoints: &[u64],
    run: u64,
) -> Result<RunOutcome, SimError> {
    let mut rng = run_rng(settings.seed, run);
    let arm_count = scenario.arms.len();
    let best_rate = scenario.best_rate();
    let gaps: Vec<f64> = scenario.arms.iter().map(|a| best_rate - a.rate).collect();
    let horizon = settings.horizon;
    let last_tenth_start = horizon - horizon / 10;
    let update_every = settings.update_every.max(1);
    let evaluate_every = settings.evaluate_every();
    let half_life_ms = scenario.half_life_ms;
    let has_clock = settings.arrival_rate_per_hour.is_some();
    // `Settings::check` refuses a `min_duration` without a clock, so the rule applies as
    // written.
    let stopping = scenario.stopping;

    let mut counters = vec![
        ArmCounters {
            exposures: 0,
            credited: 0,
            decayed: DecayedCounts::new(0),
        };
        arm_count
    ];
    let mut views: Vec<ArmView> = Vec::with_capacity(arm_count);
    let uniform = 1.0 / arm_count as f64;
    let mut shares = vec![uniform; arm_count];
    let mut mode = Mode::Adaptive;
    let mut pending: BinaryHeap<Pending> = BinaryHeap::new();
    let mut outcome = RunOutcome {
        regret_at: Vec::with_capacity(checkpoints.len()),
        arm_assignments: vec![0; arm_count],
        best_assignments: 0,
        best_assignments_last_tenth: 0,
        winner: None,
        leader_at_end: None,
        conversions: 0,
        conversions_outside_window: 0,
        daily_prob_best: Vec::new(),
        halts: Vec::new(),
        arm_exposures: vec![0; arm_count],
        srm_p_value: None,
    };
    let mut tracker = match (scenario.delay_correction, scenario.reward_window_ms) {
        (Some(base), Some(window_ms)) if has_clock => {
            Some(DelayTracker::new(base, window_ms, arm_count))
        }
        _ => None,
    };
    let mut pending_exposures = vec![0.0; arm_count];
    let mut next_day_ms = MS_PER_DAY;
    let mut guardrails = GuardrailRun::new(&scenario.guardrails, arm_count);
    let mut srm = SrmTally::new(arm_count);
    // The allocation the policy realises under the current views (what the server hands the
    // store with every exposure); recomputed whenever the views or the mode change.
    let mut allocation = vec![uniform; arm_count];
    // Only confirmation rates draw from the generator, so runs without them keep their
    // streams (and their published numbers).
    let confirm_rates: Option<Vec<f64>> = scenario.arms.iter().map(|a| a.confirm_rate).collect();
    let mut checkpoint = checkpoints.iter().copied().peekable();

    for index in 0..horizon {
        let now_ms = settings.time_ms(index);
        let check_guardrails = !scenario.guardrails.is_empty() && index % DEFAULT_CHECK_EVERY == 0;
        if check_guardrails {
            let exposures: Vec<u64> = counters.iter().map(|c| c.exposures).collect();
            guardrails.check(&exposures, index);
        }
        if index % update_every == 0 {
            arrive_until(
                now_ms,
                &mut pending,
                &mut counters,
                &mut tracker,
                half_life_ms,
                &mut pending_exposures,
            );
            refresh_views(
                scenario,
                &counters,
                &pending_exposures,
                now_ms,
                half_life_ms,
                &mut views,
            );
            guardrails.retire_halted(&mut views);
            if has_clock && now_ms >= next_day_ms {
                next_day_ms += MS_PER_DAY;
                let shapes: Vec<(f64, f64)> = views.iter().map(|v| (v.alpha, v.beta)).collect();
                if let Ok(comparison) = stats::compare_arms(&shapes) {
                    outcome.daily_prob_best.push(comparison.prob_best);
                }
            }
            if let Some(stopping) = stopping
                && outcome.winner.is_none()
                && index % evaluate_every == 0
            {
                let shapes: Vec<(f64, f64)> = views.iter().map(|v| (v.alpha, v.beta)).collect();
                // The engine also falls back to "no verdict" when the comparison fails.
                if let Ok(comparison) = stats::compare_arms(&shapes) {
                    let exposures: Vec<u64> = counters.iter().map(|c| c.exposures).collect();
                    let verdict =
                        stats::evaluate(&stopping.rule, &comparison, &exposures, 0, now_ms);
                    shares.copy_from_slice(&comparison.prob_best);
                    if let Verdict::Winner { arm, .. } = verdict {
                        outcome.winner = Some(DeclaredWinner {
                            arm,
                            assignments: index,
                            time_ms: now_ms,
                        });
                        if stopping.on_winner == OnWinner::Exploit {
                            mode = Mode::Exploit { winner: arm };
                        }
                    }
                }
            }
        }

        if check_guardrails {
            guardrails.retire_halted(&mut views);
        }
        if confirm_rates.is_some() && index % update_every == 0 {
            allocation = allocation_now(mode, scenario, &views)?;
        }
        let arm = policy::decide(mode, scenario.params, &views, &shares, &mut rng)?.arm;
        outcome.arm_assignments[arm] += 1;
        if gaps[arm] == 0.0 {
            outcome.best_assignments += 1;
            if index >= last_tenth_start {
                outcome.best_assignments_last_tenth += 1;
            }
        }
        if let Some(rates) = &confirm_rates
            && rng.random::<f64>() >= rates[arm]
        {
            // Never shown: no exposure, nothing to convert.
            record_regret(
                &mut checkpoint,
                index,
                &outcome.arm_assignments,
                &gaps,
                &mut outcome.regret_at,
            );
            continue;
        }
        outcome.arm_exposures[arm] += 1;
        if confirm_rates.is_some() {
            srm.record(arm, &allocation);
        }
        let state = &mut counters[arm];
        state.exposures += 1;
        if let Some(tracker) = &mut tracker {
            tracker.expose(arm, now_ms);
        }
        if let Some(half_life_ms) = half_life_ms {
            state.decayed = state.decayed.add(now_ms, half_life_ms, 1.0, 0.0);
        }
        if rng.random::<f64>() < scenario.arms[arm].rate {
            outcome.conversions += 1;
            match scenario.delay_of(arm, settings) {
                None => {
                    credit(state, now_ms, half_life_ms);
                    if let Some(tracker) = &mut tracker {
                        tracker.convert(arm, now_ms, now_ms);
                    }
                }
                Some(delay) => {
                    let delay_ms = delay.sample_ms(&mut rng);
                    if scenario.reward_window_ms.is_some_and(|w| delay_ms > w) {
                        outcome.conversions_outside_window += 1;
                    } else {
                        let arrival_ms = now_ms.saturating_add(delay_ms);
                        pending.push(Reverse((arrival_ms, index, arm, now_ms)));
                    }
                }
            }
        }
        guardrails.observe(arm, &mut rng);
        record_regret(
            &mut checkpoint,
            index,
            &outcome.arm_assignments,
            &gaps,
            &mut outcome.regret_at,
        );
    }
    let end_ms = settings.time_ms(horizon);
    arrive_until(
        end_ms,
        &mut pending,
        &mut counters,
        &mut tracker,
        half_life_ms,
        &mut pending_exposures,
    );
    refresh_views(
        scenario,
        &counters,
        &pending_exposures,
        end_ms,
        half_life_ms,
        &mut views,
    );
    guardrails.retire_halted(&mut views);
    let shapes: Vec<(f64, f64)> = views.iter().map(|v| (v.alpha, v.beta)).collect();
    outcome.leader_at_end = stats::compare_arms(&shapes).ok().and_then(|comparison| {
        comparison
            .prob_best
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.is_nan())
            .fold(None, |best: Option<(usize, f64)>, (k, &p)| match best {
                Some((_, top)) if top >= p => best,
                _ => Some((k, p)),
            })
            .map(|(k, _)| k)
    });
    outcome.halts = guardrails.halts;
    outcome.srm_p_value = srm.p_value();
    Ok(outcome)
}

/// The allocation the policy realises under `views`, with the exact Thompson probabilities
/// as the engine's snapshot has them (uniform if the comparison fails, as there).
fn allocation_now(
    mode: Mode,
    scenario: &Scenario,
    views: &[ArmView],
) -> Result<Vec<f64>, SimError> {
    let shapes: Vec<(f64, f64)> = views.iter().map(|v| (v.alpha, v.beta)).collect();
    let thompson = stats::compare_arms(&shapes)
        .map(|c| c.prob_best)
        .unwrap_or_else(|_| vec![1.0 / views.len().max(1) as f64; views.len()]);
    Ok(policy::allocation(mode, scenario.params, views, &thompson)?)
}

/// At a checkpoint (after assignment `index`), the cumulative regret so far.
fn record_regret(
    checkpoint: &mut std::iter::Peekable<impl Iterator<Item = u64>>,
    index: u64,
    arm_assignments: &[u64],
    gaps: &[f64],
    regret_at: &mut Vec<f64>,
) {
    if checkpoint.peek() == Some(&(index + 1)) {
        checkpoint.next();
        // Σ_k N_k·Δ_k: the exact sum of per-assignment gaps, without accumulated rounding.
        let regret = arm_assignments
            .iter()
            .zip(gaps)
            .map(|(&n, &gap)| n as f64 * gap)
            .sum();
        regret_at.push(regret);
    }
}

/// Credits every pending conversion that has arrived by `now_ms` (telling the delay tracker,
/// when the delay-aware posterior is on, and updating its count of exposures whose
/// conversion may still come).
fn arrive_until(
    now_ms: u64,
    pending: &mut BinaryHeap<Pending>,
    counters: &mut [ArmCounters],
    tracker: &mut Option<DelayTracker>,
    half_life_ms: Option<u64>,
    pending_exposures: &mut Vec<f64>,
) {
    while let Some(&Reverse((arrival_ms, _, arm, assigned_ms))) = pending.peek() {
        if arrival_ms > now_ms {
            break;
        }
        pending.pop();
        credit(&mut counters[arm], assigned_ms, half_life_ms);
        if let Some(tracker) = tracker.as_mut() {
            tracker.convert(arm, assigned_ms, arrival_ms);
        }
    }
    if let Some(tracker) = tracker.as_mut() {
        tracker.pending(now_ms, pending_exposures);
    }
}

/// Credits one conversion of an assignment made at `assigned_ms` (a reward ages from its
/// assignment, as in the server's decayed counters).
fn credit(state: &mut ArmCounters, assigned_ms: u64, half_life_ms: Option<u64>) {
    state.credited += 1;
    if let Some(half_life_ms) = half_life_ms {
        state.decayed = state.decayed.add(assigned_ms, half_life_ms, 0.0, 1.0);
    }
}

/// The arms as the policy sees them at `now_ms`: posterior shapes from the effective
/// (decayed, if a half-life is set) counts less the exposures whose conversion may still
/// come (`pending`, all 0 for the naive posterior), burn-in from the raw exposures, as in
/// the engine's snapshot.
fn refresh_views(
    scenario: &Scenario,
    counters: &[ArmCounters],
    pending: &[f64],
    now_ms: u64,
    half_life_ms: Option<u64>,
    views: &mut Vec<ArmView>,
) {
    views.clear();
    views.extend(
        scenario
            .arms
            .iter()
            .zip(counters)
            .zip(pending)
            .map(|((arm, c), pending)| {
                let (exposures, reward_sum) = match half_life_ms {
                    Some(half_life_ms) => {
                        let decayed = c.decayed.decayed_to(now_ms, half_life_ms);
                        (decayed.exposures, decayed.reward_sum)
                    }
                    None => (c.exposures as f64, c.credited as f64),
                };
                let posterior = Posterior::from_counts(
                    arm.prior.alpha,
                    arm.prior.beta,
                    exposures - pending,
                    reward_sum,
                );
                ArmView {
                    alpha: posterior.alpha,
                    beta: posterior.beta,
                    exposures: c.exposures as f64,
                    active: true,
                }
            }),
    );
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "regret_tests.rs"]
mod regret_tests;
