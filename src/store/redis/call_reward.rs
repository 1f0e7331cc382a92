//! `Reward`: a reward of the three-step protocol (`rewards`), as the apply step takes it
//! (`Call::reward`) and as a pending claim spells it.

use super::{MAX_MS, half_life};
use crate::store::redis::layout;
use crate::store::{Epoch, RewardOp, RewardTarget, TOKEN_MARK_SLACK_MS};

/// A reward as the apply step takes it, and as a pending claim spells it (so that whoever
/// meets the claim can finish it): `revision \t shard \t U|T|K \t fields…` (`K`: a token
/// credited only if it was confirmed, `exposure: on_render`). Fields never hold a
/// tab: units and assignment ids have no control characters (`engine::unit`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reward {
    pub epoch: Epoch,
    pub shard: u32,
    pub kind: char,
    pub fields: Vec<String>,
}

impl Reward {
    pub fn of(op: &RewardOp) -> Self {
        let micro = layout::to_micro(op.reward).to_string();
        let occurred = op
            .occurred_ms
            .map_or_else(String::new, |ms| ms.min(MAX_MS).to_string());
        let window = op.window_ms.min(MAX_MS);
        // Kept the reward window plus the clock slack of token marks (in Redis's clock).
        let keep = window
            .saturating_add(TOKEN_MARK_SLACK_MS)
            .max(1)
            .to_string();
        let timing = [
            micro,
            occurred,
            op.now_ms.min(MAX_MS).to_string(),
            window.to_string(),
            half_life(op.half_life_ms),
            keep,
        ];
        let (kind, shard) = Self::kind_and_shard(&op.target);
        let mut fields = match &op.target {
            RewardTarget::Unit(unit) => vec![unit.clone()],
            RewardTarget::Token {
                assignment_id,
                variant,
                issued_ms,
                propensity,
                ..
            } => vec![
                assignment_id.clone(),
                variant.clone(),
                (*issued_ms).min(MAX_MS).to_string(),
                propensity.to_string(),
            ],
        };
        fields.extend(timing);
        Self {
            epoch: op.epoch.clone(),
            shard,
            kind,
            fields,
        }
    }

    /// A reward's kind (`U`: a unit's; `T`: a token's; `K`: a token credited only once
    /// confirmed) and the shard of the records it changes.
    pub fn kind_and_shard(target: &RewardTarget) -> (char, u32) {
        match target {
            RewardTarget::Unit(unit) => ('U', layout::shard_of(unit)),
            RewardTarget::Token {
                assignment_id,
                confirmed_only,
                ..
            } => (
                if *confirmed_only { 'K' } else { 'T' },
                layout::shard_of(assignment_id),
            ),
        }
    }

    /// A timing field, counted from the end: the engine's now (4), the window (3).
    fn timing(&self, from_end: usize) -> u64 {
        self.fields
            .len()
            .checked_sub(from_end)
            .and_then(|at| self.fields.get(at))
            .and_then(|field| field.parse().ok())
            .unwrap_or(0)
    }

    /// The engine's clock when the reward arrived (ms).
    pub fn now_ms(&self) -> u64 {
        self.timing(4)
    }

    pub fn window_ms(&self) -> u64 {
        self.timing(3)
    }

    /// Until when, by the engine's clock, the reward's event id is kept: arrival + window.
    pub fn retain_ms(&self) -> u64 {
        self.now_ms().saturating_add(self.window_ms()).min(MAX_MS)
    }

    /// The end of the list the event id joins for the sweep (`layout::event_list_end`).
    pub fn list_end_ms(&self) -> u64 {
        layout::event_list_end(self.retain_ms())
    }

    pub fn encode(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}",
            self.epoch.revision,
            self.shard,
            self.kind,
            self.fields.join("\t")
        )
    }

    pub fn decode(experiment: &str, text: &str) -> Option<Self> {
        let mut parts = text.split('\t');
        let revision = parts.next()?.parse().ok()?;
        let shard: u32 = parts.next()?.parse().ok()?;
        let kind = match parts.next()? {
            "U" => 'U',
            "T" => 'T',
            "K" => 'K',
            _ => return None,
        };
        let fields: Vec<String> = parts.map(str::to_owned).collect();
        let expected = if kind == 'U' { 7 } else { 10 };
        (fields.len() == expected && shard < layout::SHARDS).then(|| Self {
            epoch: Epoch {
                experiment: experiment.to_owned(),
                revision,
            },
            shard,
            kind,
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{T0_MS, token_reward, unit_reward};

    #[test]
    fn a_pending_reward_round_trips_through_its_claim() {
        for op in [
            unit_reward("e1", "user 1", 0.25, T0_MS),
            token_reward("e2", "as-1", "bold", T0_MS, 1.0, T0_MS + 5),
        ] {
            let reward = Reward::of(&op);
            assert_eq!(
                Reward::decode(&op.epoch.experiment, &reward.encode()),
                Some(reward)
            );
        }
        assert_eq!(Reward::decode("x", "1\t9\tU\ta\t1\t\t1\t1\t\t1"), None);
        assert_eq!(Reward::decode("x", "1\t0\tU\ta"), None);
    }
}
