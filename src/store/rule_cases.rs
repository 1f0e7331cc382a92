//! Worked cases of the shared rules (`rules`), with their expected answers written out by hand:
//! the agreement test for a backend that mirrors a rule outside Rust (a Lua script) runs its
//! mirror on every case here and compares with `expected`, and `rules` itself is checked
//! against the same cases below, so the two cannot drift apart unnoticed.

use std::sync::Arc;

use super::confirmations::{ConfirmOp, ConfirmOutcome};
use super::rules::{Credit, TOKEN_MARK_SLACK_MS};
use super::types::{
    ArmCounters, Epoch, RewardOp, RewardOutcome, RewardTarget, StickyRecord, Tally,
};

pub const T0_MS: u64 = 1_700_000_000_000;
pub const WINDOW_MS: u64 = 7 * 24 * 60 * 60 * 1000;
pub const HALF_LIFE_MS: u64 = 24 * 60 * 60 * 1000;

/// What the backend found for a reward's target (an owned `rules::TargetState`).
#[derive(Debug, Clone)]
pub enum Found {
    Unit(Option<StickyRecord>),
    /// `confirmed`: whether the token's confirmation mark is held (read for a token that
    /// needs one, `exposure: on_render`).
    Token {
        marked: bool,
        expired_through: u64,
        confirmed: bool,
    },
}

/// One reward decision and its answer.
#[derive(Debug, Clone)]
pub struct RewardCase {
    pub name: &'static str,
    pub op: RewardOp,
    pub event_id_seen: bool,
    pub found: Found,
    pub expected: Result<Credit, RewardOutcome>,
}

fn op(target: RewardTarget, now_ms: u64, occurred_ms: Option<u64>) -> RewardOp {
    RewardOp {
        epoch: Epoch {
            experiment: "exp".to_owned(),
            revision: 1,
        },
        event_id: "e1".to_owned(),
        target,
        reward: 1.0,
        occurred_ms,
        now_ms,
        window_ms: WINDOW_MS,
        half_life_ms: Some(HALF_LIFE_MS),
    }
}

fn unit() -> RewardTarget {
    RewardTarget::Unit("u1".to_owned())
}

fn token() -> RewardTarget {
    RewardTarget::Token {
        assignment_id: "a1".to_owned(),
        variant: "b".to_owned(),
        issued_ms: T0_MS,
        propensity: 0.5,
        confirmed_only: false,
    }
}

fn assigned(reward: Option<f64>) -> Found {
    Found::Unit(Some(StickyRecord {
        variant: "a".to_owned(),
        assigned_ms: T0_MS,
        propensity: 0.5,
        reward,
        rewarded_ms: None,
    }))
}

fn unmarked(expired_through: u64) -> Found {
    Found::Token {
        marked: false,
        expired_through,
        confirmed: false,
    }
}

fn credit(variant: &str, now_ms: u64, mark: bool) -> Result<Credit, RewardOutcome> {
    Ok(Credit {
        variant: variant.to_owned(),
        assigned_ms: T0_MS,
        event_id_retained_until_ms: now_ms + WINDOW_MS,
        mark_retained_until_ms: mark.then_some(T0_MS + WINDOW_MS + TOKEN_MARK_SLACK_MS),
    })
}

/// Every branch of `rules::judge_reward`, and both edges of each time limit.
pub fn reward_cases() -> Vec<RewardCase> {
    let skew = super::rules::MAX_CLOCK_SKEW_MS;
    let mark_end = T0_MS + WINDOW_MS + TOKEN_MARK_SLACK_MS;
    let case = |name, op, event_id_seen, found, expected| RewardCase {
        name,
        op,
        event_id_seen,
        found,
        expected,
    };
    vec![
        case(
            "unit credited",
            op(unit(), T0_MS + 5, None),
            false,
            assigned(None),
            credit("a", T0_MS + 5, false),
        ),
        case(
            "retry of a kept id",
            op(unit(), T0_MS + 5, None),
            true,
            assigned(Some(1.0)),
            Err(RewardOutcome::Duplicate),
        ),
        case(
            "kept id wins over a closed window",
            op(unit(), T0_MS + 2 * WINDOW_MS, None),
            true,
            assigned(None),
            Err(RewardOutcome::Duplicate),
        ),
        case(
            "unit never assigned",
            op(unit(), T0_MS + 5, None),
            false,
            Found::Unit(None),
            Err(RewardOutcome::UnitNotAssigned),
        ),
        case(
            "unit already rewarded",
            op(unit(), T0_MS + 5, None),
            false,
            assigned(Some(0.5)),
            Err(RewardOutcome::AlreadyRewarded),
        ),
        case(
            "window closes after its last millisecond",
            op(unit(), T0_MS + WINDOW_MS, None),
            false,
            assigned(None),
            credit("a", T0_MS + WINDOW_MS, false),
        ),
        case(
            "one millisecond late",
            op(unit(), T0_MS + WINDOW_MS + 1, None),
            false,
            assigned(None),
            Err(RewardOutcome::OutsideWindow),
        ),
        case(
            "late beats already rewarded for a unit",
            op(unit(), T0_MS + WINDOW_MS + 1, None),
            false,
            assigned(Some(1.0)),
            Err(RewardOutcome::OutsideWindow),
        ),
        case(
            "a backdated timestamp reopens nothing",
            op(unit(), T0_MS + WINDOW_MS + 1, Some(T0_MS)),
            false,
            assigned(None),
            Err(RewardOutcome::OutsideWindow),
        ),
        case(
            "timestamp at the skew limit",
            op(unit(), T0_MS + 5, Some(T0_MS - skew)),
            false,
            assigned(None),
            credit("a", T0_MS + 5, false),
        ),
        case(
            "timestamp beyond the skew limit",
            op(unit(), T0_MS + 5, Some(T0_MS - skew - 1)),
            false,
            assigned(None),
            Err(RewardOutcome::TimestampBeforeAssignment),
        ),
        case(
            "token credited",
            op(token(), T0_MS + 5, None),
            false,
            unmarked(0),
            credit("b", T0_MS + 5, true),
        ),
        case(
            "token already credited, even after its window",
            op(token(), T0_MS + 2 * WINDOW_MS, None),
            false,
            Found::Token {
                marked: true,
                expired_through: 0,
                confirmed: false,
            },
            Err(RewardOutcome::AlreadyRewarded),
        ),
        case(
            "token late",
            op(token(), T0_MS + WINDOW_MS + 1, None),
            false,
            unmarked(0),
            Err(RewardOutcome::OutsideWindow),
        ),
        case(
            "token whose mark a sweep passed",
            op(token(), T0_MS + 5, None),
            false,
            unmarked(mark_end),
            Err(RewardOutcome::OutsideWindow),
        ),
        case(
            "token just before the sweep",
            op(token(), T0_MS + 5, None),
            false,
            unmarked(mark_end - 1),
            credit("b", T0_MS + 5, true),
        ),
        case(
            "on_render token confirmed",
            op(rendered_token(), T0_MS + 5, None),
            false,
            confirmed(true, 0),
            credit("b", T0_MS + 5, true),
        ),
        case(
            "on_render token never confirmed",
            op(rendered_token(), T0_MS + 5, None),
            false,
            confirmed(false, 0),
            Err(RewardOutcome::NotConfirmed),
        ),
        case(
            "on_render token credited before wins over its confirmation",
            op(rendered_token(), T0_MS + 5, None),
            false,
            Found::Token {
                marked: true,
                expired_through: 0,
                confirmed: false,
            },
            Err(RewardOutcome::AlreadyRewarded),
        ),
        case(
            "late beats unconfirmed",
            op(rendered_token(), T0_MS + WINDOW_MS + 1, None),
            false,
            confirmed(false, 0),
            Err(RewardOutcome::OutsideWindow),
        ),
        case(
            "a sweep past the marks beats unconfirmed",
            op(rendered_token(), T0_MS + 5, None),
            false,
            confirmed(false, mark_end),
            Err(RewardOutcome::OutsideWindow),
        ),
        case(
            "retry of an on_render token",
            op(rendered_token(), T0_MS + 5, None),
            true,
            confirmed(false, 0),
            Err(RewardOutcome::Duplicate),
        ),
    ]
}

/// A per-request token of an `exposure: on_render` experiment: credited only if confirmed.
fn rendered_token() -> RewardTarget {
    match token() {
        RewardTarget::Token {
            assignment_id,
            variant,
            issued_ms,
            propensity,
            ..
        } => RewardTarget::Token {
            assignment_id,
            variant,
            issued_ms,
            propensity,
            confirmed_only: true,
        },
        unit => unit,
    }
}

fn confirmed(confirmed: bool, expired_through: u64) -> Found {
    Found::Token {
        marked: false,
        expired_through,
        confirmed,
    }
}

/// `confirm_within` of the confirmation cases.
pub const CONFIRM_WITHIN_MS: u64 = 10 * 60 * 1000;

/// One per-request confirmation decision (`rules::judge_confirmation`) and its answer: `Ok`
/// holds the mark's deadline.
#[derive(Debug, Clone)]
pub struct ConfirmCase {
    pub name: &'static str,
    pub op: ConfirmOp,
    /// The assignment id was confirmed before.
    pub marked: bool,
    /// The expiry sweep's watermark.
    pub expired_through: u64,
    pub expected: Result<u64, ConfirmOutcome>,
}

/// A confirmation of token `a1` (variant `b`, issued at [`T0_MS`]) arriving at `now_ms`,
/// with a reward window of `reward_window_ms`.
pub fn confirm_op(now_ms: u64, reward_window_ms: u64) -> ConfirmOp {
    ConfirmOp {
        epoch: Epoch {
            experiment: "exp".to_owned(),
            revision: 1,
        },
        assignment_id: "a1".to_owned(),
        variant: "b".to_owned(),
        issued_ms: T0_MS,
        propensity: 0.5,
        now_ms,
        confirm_within_ms: CONFIRM_WITHIN_MS,
        reward_window_ms,
        tally: Tally {
            now_ms: T0_MS,
            half_life_ms: None,
            allocation: Arc::from(vec![("a".to_owned(), 0.5), ("b".to_owned(), 0.5)]),
        },
    }
}

/// Every branch of `rules::judge_confirmation`, both edges of the window and of the sweep.
pub fn confirmation_cases() -> Vec<ConfirmCase> {
    // The mark outlives the longer of the two windows, plus the slack.
    let deadline = T0_MS + WINDOW_MS + TOKEN_MARK_SLACK_MS;
    let short_deadline = T0_MS + CONFIRM_WITHIN_MS + TOKEN_MARK_SLACK_MS;
    let case = |name, op, marked, expired_through, expected| ConfirmCase {
        name,
        op,
        marked,
        expired_through,
        expected,
    };
    vec![
        case(
            "first confirmation",
            confirm_op(T0_MS + 5, WINDOW_MS),
            false,
            0,
            Ok(deadline),
        ),
        case(
            "a reward window shorter than confirm_within keeps the mark for confirm_within",
            confirm_op(T0_MS + 5, 60 * 1000),
            false,
            0,
            Ok(short_deadline),
        ),
        case(
            "repeated",
            confirm_op(T0_MS + 5, WINDOW_MS),
            true,
            0,
            Err(ConfirmOutcome::AlreadyConfirmed),
        ),
        case(
            "repeated after the window is still a repeat",
            confirm_op(T0_MS + CONFIRM_WITHIN_MS + 1, WINDOW_MS),
            true,
            0,
            Err(ConfirmOutcome::AlreadyConfirmed),
        ),
        case(
            "at the last millisecond of confirm_within",
            confirm_op(T0_MS + CONFIRM_WITHIN_MS, WINDOW_MS),
            false,
            0,
            Ok(deadline),
        ),
        case(
            "one millisecond late",
            confirm_op(T0_MS + CONFIRM_WITHIN_MS + 1, WINDOW_MS),
            false,
            0,
            Err(ConfirmOutcome::OutsideWindow),
        ),
        case(
            "a sweep passed the mark's deadline",
            confirm_op(T0_MS + 5, WINDOW_MS),
            false,
            deadline,
            Err(ConfirmOutcome::OutsideWindow),
        ),
        case(
            "just before the sweep",
            confirm_op(T0_MS + 5, WINDOW_MS),
            false,
            deadline - 1,
            Ok(deadline),
        ),
    ]
}

/// One counting step and the counters it must leave.
#[derive(Debug, Clone)]
pub struct CountingCase {
    pub name: &'static str,
    pub before: ArmCounters,
    pub step: Step,
    pub after: ArmCounters,
}

/// What happens to the arm.
#[derive(Debug, Clone)]
pub enum Step {
    /// `rules::add_exposures(counters, tally, n)`.
    Exposures { tally: Tally, n: u64 },
    /// `rules::add_reward(counters, reward, assigned_ms, now_ms, half_life_ms)`.
    Reward {
        reward: f64,
        assigned_ms: u64,
        now_ms: u64,
        half_life_ms: Option<u64>,
    },
}

fn tally(now_ms: u64, half_life_ms: Option<u64>) -> Tally {
    Tally {
        now_ms,
        half_life_ms,
        allocation: Arc::from(Vec::new()),
    }
}

/// The decay arithmetic on closed forms: D(T) = Σ wᵢ · 2^(−(T − tᵢ)/h), kept as of the latest
/// write time, never inflated by a lagging clock.
pub fn counting_cases() -> Vec<CountingCase> {
    let counters =
        |exposures, reward_sum, decayed_exposures, decayed_reward_sum, decayed_at_ms| ArmCounters {
            exposures,
            reward_sum,
            decayed_exposures,
            decayed_reward_sum,
            decayed_at_ms,
            expected_exposures: 0.0,
        };
    vec![
        CountingCase {
            name: "no half-life: decayed equals raw",
            before: counters(3, 1.0, 3.0, 1.0, T0_MS),
            step: Step::Exposures {
                tally: tally(T0_MS + 10, None),
                n: 2,
            },
            after: counters(5, 1.0, 5.0, 1.0, T0_MS + 10),
        },
        CountingCase {
            name: "one half-life later: old evidence halves, new counts whole",
            before: counters(4, 2.0, 4.0, 2.0, T0_MS),
            step: Step::Exposures {
                tally: tally(T0_MS + HALF_LIFE_MS, Some(HALF_LIFE_MS)),
                n: 1,
            },
            after: counters(5, 2.0, 3.0, 1.0, T0_MS + HALF_LIFE_MS),
        },
        CountingCase {
            name: "a reward ages from its assignment",
            before: counters(1, 0.0, 1.0, 0.0, T0_MS),
            step: Step::Reward {
                reward: 1.0,
                assigned_ms: T0_MS,
                now_ms: T0_MS + 2 * HALF_LIFE_MS,
                half_life_ms: Some(HALF_LIFE_MS),
            },
            after: counters(1, 1.0, 0.25, 0.25, T0_MS + 2 * HALF_LIFE_MS),
        },
        CountingCase {
            name: "a lagging clock decays the new evidence, not the old upwards",
            before: counters(2, 0.0, 2.0, 0.0, T0_MS + HALF_LIFE_MS),
            step: Step::Exposures {
                tally: tally(T0_MS, Some(HALF_LIFE_MS)),
                n: 2,
            },
            after: counters(4, 0.0, 3.0, 0.0, T0_MS + HALF_LIFE_MS),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rules::{self, TargetState};

    #[test]
    fn the_rules_give_every_worked_reward_answer() {
        for case in reward_cases() {
            let target = match &case.found {
                Found::Unit(record) => TargetState::Unit(record.as_ref()),
                Found::Token {
                    marked,
                    expired_through,
                    confirmed,
                } => TargetState::Token {
                    marked: *marked,
                    expired_through: *expired_through,
                    confirmed: *confirmed,
                },
            };
            assert_eq!(
                rules::judge_reward(&case.op, case.event_id_seen, target),
                case.expected,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn the_rules_give_every_worked_confirmation_answer() {
        for case in confirmation_cases() {
            assert_eq!(
                rules::judge_confirmation(&case.op, case.marked, case.expired_through),
                case.expected,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn the_rules_give_every_worked_counting_answer() {
        for case in counting_cases() {
            let mut counters = case.before;
            match &case.step {
                Step::Exposures { tally, n } => rules::add_exposures(&mut counters, tally, *n),
                Step::Reward {
                    reward,
                    assigned_ms,
                    now_ms,
                    half_life_ms,
                } => {
                    rules::add_reward(&mut counters, *reward, *assigned_ms, *now_ms, *half_life_ms)
                }
            }
            let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
            assert_eq!(
                (counters.exposures, counters.decayed_at_ms),
                (case.after.exposures, case.after.decayed_at_ms),
                "{}",
                case.name
            );
            assert!(
                close(counters.reward_sum, case.after.reward_sum)
                    && close(counters.decayed_exposures, case.after.decayed_exposures)
                    && close(counters.decayed_reward_sum, case.after.decayed_reward_sum),
                "{}: {counters:?}",
                case.name
            );
        }
    }
}

/// One reward's delay bin (`delay_histograms::conversion_delay_bin`) and its answer.
#[derive(Debug, Clone)]
pub struct DelayBinCase {
    pub name: &'static str,
    pub assigned_ms: u64,
    pub arrived_ms: u64,
    pub expected_bin: u32,
}

/// The delay bins at and around every edge of the grid (`stats::FINE_EDGES_MS`, then hours),
/// worked out by hand.
pub fn delay_bin_cases() -> Vec<DelayBinCase> {
    let case = |name, delay_ms: u64, expected_bin| DelayBinCase {
        name,
        assigned_ms: T0_MS,
        arrived_ms: T0_MS + delay_ms,
        expected_bin,
    };
    vec![
        case("at once", 0, 0),
        case("just under a minute", 59_999, 0),
        case("one minute", 60_000, 1),
        case("just under two minutes", 119_999, 1),
        case("two minutes", 120_000, 2),
        case("five minutes", 300_000, 3),
        case("ten minutes", 600_000, 4),
        case("twenty minutes", 1_200_000, 5),
        case("half an hour", 1_800_000, 6),
        case("three quarters of an hour", 2_700_000, 7),
        case("just under an hour", 3_599_999, 7),
        case("one hour", 3_600_000, 8),
        case("just under two hours", 7_199_999, 8),
        case("two hours", 7_200_000, 9),
        case("two days", 48 * 3_600_000, 55),
        case("a window", WINDOW_MS, 8 + 168 - 1),
        DelayBinCase {
            name: "arrival before the assignment (clock skew)",
            assigned_ms: T0_MS,
            arrived_ms: T0_MS - 1_000,
            expected_bin: 0,
        },
    ]
}
