//! What a transaction (`tx`) watches and reads, how it judges the rewards, and the plain
//! commands it writes: exactly what `apply.lua`'s op `B` (`judge_packed` in
//! `apply_rewards.lua`) leaves for the same rewards without a half-life: the credited records,
//! the applied ids' digests in their shard's digest set and hour list (with the lists' index
//! and the expiries `keep_at_least` sets), the raw reward counters and delay bins in
//! micro-units (`HINCRBY`: integers, as the script keeps them), the arm's decay time and
//! marker, the epoch's start and the change counter.

use std::collections::{HashMap, HashSet};

use redis::{Pipeline, Value};

use super::call::{MAX_MS, Unhashed, retention, unrewarded};
use super::layout::{self, ShardKeys};
use super::rewards::{Job, OpRef};
use crate::store::delay_histograms::conversion_delay_bin;
use crate::store::event_ids::Digester;
use crate::store::{Epoch, RewardOp, RewardOutcome, RewardTarget, rules};

/// `keep_at_least` in `apply_rewards.lua` sets this past the least it keeps.
const HOUR_MS: u64 = 3_600_000;

/// What one commit's transaction names, built before anything is read.
pub struct Plan<'a> {
    rewards: Vec<Planned<'a>>,
    epochs: Vec<EpochKeys<'a>>,
    reads: Vec<ShardRead<'a>>,
    homes: Vec<Home<'a>>,
    lists: Vec<List>,
}

/// One reward: its op, its epoch, its unit's place (read, unit), its id's home and list, its
/// digest.
struct Planned<'a> {
    op: &'a RewardOp,
    epoch: usize,
    record: (usize, usize),
    home: usize,
    list: usize,
    digest: u64,
}

/// An epoch's counters: the shard of its first reward's, as the script's call keeps them
/// (`Call::new`).
struct EpochKeys<'a> {
    epoch: &'a Epoch,
    keys: ShardKeys,
    /// Per records shard and per event-id shard: its read's and its home's place in the plan
    /// (`NONE`: not named yet). Found by index, not hashed per reward.
    reads: [usize; SHARDS],
    homes: [usize; SHARDS],
}

const SHARDS: usize = layout::SHARDS as usize;
const NONE: usize = usize::MAX;

/// One records shard's units (each once), read by one `HMGET`; `index`: a unit's place by
/// its FNV-1a (`layout::fnv1a`), used as it is (SipHash of the names cost ~800 instructions
/// per event, `benches/load/bulk_cost.sh`), a collision told apart by the names.
struct ShardRead<'a> {
    keys: ShardKeys,
    units: Vec<&'a str>,
    index: HashMap<u64, usize, Unhashed>,
}

impl<'a> ShardRead<'a> {
    fn place(&mut self, unit: &'a str) -> usize {
        let hash = layout::fnv1a(unit);
        let found = match self.index.get(&hash) {
            Some(&at) if self.units[at] == unit => return at,
            // Another unit of the same hash: this one by its name, if named before.
            Some(_) => self.units.iter().position(|named| *named == unit),
            None => None,
        };
        found.unwrap_or_else(|| {
            self.units.push(unit);
            self.index.entry(hash).or_insert(self.units.len() - 1);
            self.units.len() - 1
        })
    }
}

/// An event-id shard (`direct`'s directory): its digest set, its directory of whole ids and
/// legacy due index (either present: the script's), its lists' index, the digests in reward
/// order, and the longest any of its rewards keeps the set (op `Q`'s `keep`).
struct Home<'a> {
    experiment: &'a str,
    shard: u32,
    set: String,
    directory: String,
    due: String,
    index: String,
    digests: Vec<u64>,
    keep: u64,
}

/// A digest list (one home, one hour's end), and the longest any reward naming it keeps it.
struct List {
    home: usize,
    end: u64,
    key: String,
    keep: u64,
}

impl<'a> Plan<'a> {
    pub fn of(jobs: &'a [Job], open: &[OpRef], digester: &Digester) -> Self {
        let mut plan = Plan {
            rewards: Vec::with_capacity(open.len()),
            epochs: Vec::new(),
            reads: Vec::new(),
            homes: Vec::new(),
            lists: Vec::new(),
        };
        for &(job, at) in open {
            let op = &jobs[job].ops[at];
            let RewardTarget::Unit(unit) = &op.target else {
                continue;
            };
            let shard = layout::shard_of(unit);
            // A bulk request is one epoch's: the last one is checked first.
            let epoch = match plan.epochs.iter().rposition(|e| *e.epoch == op.epoch) {
                Some(epoch) => epoch,
                None => {
                    plan.epochs.push(EpochKeys {
                        epoch: &op.epoch,
                        keys: ShardKeys::of(&op.epoch, shard),
                        reads: [NONE; SHARDS],
                        homes: [NONE; SHARDS],
                    });
                    plan.epochs.len() - 1
                }
            };
            let read = plan.read_of(epoch, shard);
            let place = plan.reads[read].place(unit);
            let id_shard = layout::shard_of(&op.event_id);
            let home = plan.home_of(epoch, id_shard);
            let experiment = op.epoch.experiment.as_str();
            let digest = digester.digest(experiment, &op.event_id);
            let (end, keep) = retention(op);
            let home_at = &mut plan.homes[home];
            home_at.digests.push(digest);
            home_at.keep = home_at.keep.max(keep);
            let list = match plan
                .lists
                .iter()
                .rposition(|list| (list.home, list.end) == (home, end))
            {
                Some(list) => list,
                None => {
                    plan.lists.push(List {
                        home,
                        end,
                        key: layout::event_digest_list_key(experiment, id_shard, end),
                        keep: 0,
                    });
                    plan.lists.len() - 1
                }
            };
            plan.lists[list].keep = plan.lists[list].keep.max(keep);
            plan.rewards.push(Planned {
                op,
                epoch,
                record: (read, place),
                home,
                list,
                digest,
            });
        }
        plan
    }

    /// The read of `epoch`'s records shard `shard`, made when first named.
    fn read_of(&mut self, epoch: usize, shard: u32) -> usize {
        let at = shard as usize % SHARDS;
        if self.epochs[epoch].reads[at] == NONE {
            self.reads.push(ShardRead {
                keys: ShardKeys::of(self.epochs[epoch].epoch, shard),
                units: Vec::new(),
                index: HashMap::default(),
            });
            self.epochs[epoch].reads[at] = self.reads.len() - 1;
        }
        self.epochs[epoch].reads[at]
    }

    /// The home of `epoch`'s experiment's event-id shard `shard` (the epochs of one experiment
    /// share it), made when first named.
    fn home_of(&mut self, epoch: usize, shard: u32) -> usize {
        let at = shard as usize % SHARDS;
        if self.epochs[epoch].homes[at] == NONE {
            let named: &'a Epoch = self.epochs[epoch].epoch;
            let experiment = named.experiment.as_str();
            let found = self
                .homes
                .iter()
                .position(|home| (home.experiment, home.shard) == (experiment, shard));
            self.epochs[epoch].homes[at] = found.unwrap_or_else(|| {
                self.homes.push(Home {
                    experiment,
                    shard,
                    set: layout::event_digest_key(experiment, shard),
                    directory: layout::event_dir_key(experiment, shard),
                    due: layout::event_due_key(experiment, shard),
                    index: layout::event_digest_index_key(experiment, shard),
                    digests: Vec::new(),
                    keep: 0,
                });
                self.homes.len() - 1
            });
        }
        self.epochs[epoch].homes[at]
    }

    pub fn epoch(&self, at: usize) -> &'a Epoch {
        self.epochs[at].epoch
    }

    /// `WATCH` of every key a decision reads, then those reads, in one pipeline: the legacy
    /// records, directories and due indexes (any present: the script's), the records, the
    /// ids' digests, the expiries `keep_at_least` compares, the arms' counters.
    pub fn read(&self) -> Pipeline {
        let mut pipe = redis::pipe();
        pipe.cmd("UNWATCH").ignore();
        let watch = pipe.cmd("WATCH");
        for read in &self.reads {
            watch.arg(&read.keys.records).arg(&read.keys.sticky);
        }
        for home in &self.homes {
            watch.arg(&home.set).arg(&home.directory).arg(&home.due);
        }
        for list in &self.lists {
            watch.arg(&list.key);
        }
        for epoch in &self.epochs {
            watch.arg(&epoch.keys.arms);
        }
        watch.ignore();
        let exists = pipe.cmd("EXISTS");
        for read in &self.reads {
            exists.arg(&read.keys.sticky);
        }
        for home in &self.homes {
            exists.arg(&home.directory).arg(&home.due);
        }
        for read in &self.reads {
            pipe.cmd("HMGET").arg(&read.keys.records).arg(&read.units);
        }
        for home in &self.homes {
            let members = pipe.cmd("SMISMEMBER").arg(&home.set);
            for digest in &home.digests {
                members.arg(&digest.to_le_bytes()[..]);
            }
            pipe.cmd("PTTL").arg(&home.set);
        }
        for list in &self.lists {
            pipe.cmd("PTTL").arg(&list.key);
        }
        for epoch in &self.epochs {
            pipe.cmd("HGETALL").arg(&epoch.keys.arms);
        }
        pipe
    }

    /// Judges every reward against what `read` (the answers of `Plan::read`) holds, in order:
    /// an id seen (in Redis, or applied earlier in the commit) is a duplicate; a unit's record
    /// is judged with `rules::judge_unit_record`, a unit's second reward against the record
    /// its first one wrote. None: something only the script judges (a legacy layout, a
    /// directory of whole ids, a record or a counter not as banditd writes them).
    pub fn judge(&self, read: Vec<Value>) -> Option<Judgment> {
        let mut read = read.into_iter();
        let mut next = || read.next();
        let legacy: i64 = redis::from_redis_value(next()?).ok()?;
        if legacy != 0 {
            return None;
        }
        let mut records: Vec<Vec<Option<String>>> = Vec::with_capacity(self.reads.len());
        for _ in &self.reads {
            records.push(redis::from_redis_value(next()?).ok()?);
        }
        let mut seen: Vec<HashSet<u64, Unhashed>> = Vec::with_capacity(self.homes.len());
        let mut set_ttl = Vec::with_capacity(self.homes.len());
        for home in &self.homes {
            let found: Vec<bool> = redis::from_redis_value(next()?).ok()?;
            let mut held =
                HashSet::with_capacity_and_hasher(home.digests.len(), Unhashed::default());
            held.extend(
                home.digests
                    .iter()
                    .zip(&found)
                    .filter_map(|(&digest, &found)| found.then_some(digest)),
            );
            seen.push(held);
            set_ttl.push(redis::from_redis_value::<i64>(next()?).ok()?);
        }
        let mut list_ttl = Vec::with_capacity(self.lists.len());
        for _ in &self.lists {
            list_ttl.push(redis::from_redis_value::<i64>(next()?).ok()?);
        }
        let mut arms = Vec::with_capacity(self.epochs.len());
        for _ in &self.epochs {
            arms.push(redis::from_redis_value::<HashMap<String, String>>(next()?).ok()?);
        }
        let mut judged = Judgment {
            outcomes: Vec::with_capacity(self.rewards.len()),
            epochs: Vec::with_capacity(self.rewards.len()),
            records,
            written: vec![Vec::new(); self.reads.len()],
            kept: vec![Vec::new(); self.lists.len()],
            credits: self.epochs.iter().map(|_| Credits::default()).collect(),
            arms,
            set_ttl,
            list_ttl,
            micro_text: None,
            now_text: None,
        };
        for planned in &self.rewards {
            let outcome = judged.judge(planned, &mut seen)?;
            judged.outcomes.push(outcome);
            judged.epochs.push(planned.epoch);
        }
        judged.check_counters()?;
        Some(judged)
    }
}

/// The judging of one commit's rewards, and what it leaves to write.
pub struct Judgment {
    /// Per reward, in the plan's order: its outcome and its epoch (the plan's index).
    pub outcomes: Vec<RewardOutcome>,
    pub epochs: Vec<usize>,
    /// Per records shard read, per unit: its record as the commit leaves it.
    records: Vec<Vec<Option<String>>>,
    /// Per records shard read: the units credited (their places).
    written: Vec<Vec<usize>>,
    /// Per list: the applied ids' digests, concatenated in order.
    kept: Vec<Vec<u8>>,
    credits: Vec<Credits>,
    /// Per epoch: its arms hash as read.
    arms: Vec<HashMap<String, String>>,
    /// The digest sets' and lists' expiries as read (`PTTL`: -2 none, -1 none set).
    set_ttl: Vec<i64>,
    list_ttl: Vec<i64>,
    /// The last amount and arrival written into a credited record, as text: a bulk request's
    /// rewards share them, formatted once (a `format!` per record cost ~450 instructions).
    micro_text: Option<(i64, String)>,
    now_text: Option<(u64, String)>,
}

/// `value` as text, from `last` if it holds it, else formatted and kept there.
fn text_of<T: Copy + PartialEq + std::fmt::Display>(
    last: &mut Option<(T, String)>,
    value: T,
) -> &str {
    if last.as_ref().is_none_or(|(held, _)| *held != value) {
        *last = Some((value, value.to_string()));
    }
    last.as_ref().map_or("", |(_, text)| text.as_str())
}

/// An epoch's credits: per variant its micro-units and latest arrival, per (delay bin,
/// variant) its micro-units, and the arrival of its first credit (the epoch's start if none
/// is set).
#[derive(Default)]
struct Credits {
    variants: Vec<(String, i64, u64)>,
    bins: Vec<(u32, usize, i64)>,
    first: Option<u64>,
}

impl Credits {
    fn add(&mut self, variant: &str, micro: i64, bin: u32, now: u64) {
        let at = match self.variants.iter().position(|(v, ..)| v == variant) {
            Some(at) => at,
            None => {
                self.variants.push((variant.to_owned(), 0, 0));
                self.variants.len() - 1
            }
        };
        let entry = &mut self.variants[at];
        entry.1 = entry.1.saturating_add(micro);
        entry.2 = entry.2.max(now);
        match self.bins.iter_mut().find(|(b, v, _)| (*b, *v) == (bin, at)) {
            Some(entry) => entry.2 = entry.2.saturating_add(micro),
            None => self.bins.push((bin, at, micro)),
        }
        self.first.get_or_insert(now);
    }
}

impl Judgment {
    /// One reward, as `judge_packed` and `judge_unit` in `apply_rewards.lua` judge it; None:
    /// a record this path leaves to the script.
    fn judge(
        &mut self,
        planned: &Planned<'_>,
        seen: &mut [HashSet<u64, Unhashed>],
    ) -> Option<RewardOutcome> {
        let op = planned.op;
        if seen[planned.home].contains(&planned.digest) {
            return Some(RewardOutcome::Duplicate);
        }
        let (read, place) = planned.record;
        let Some(text) = self.records[read][place].as_deref() else {
            return Some(RewardOutcome::UnitNotAssigned);
        };
        // Only an unrewarded record (`v \t assigned \t propensity \t`) is credited, as the
        // script appends the reward to it; a rewarded one is refused; any other text is the
        // script's to read.
        let (variant, assigned, rewarded) = match unrewarded(text) {
            Some((variant, assigned)) => (variant.to_owned(), assigned.parse::<u64>().ok()?, false),
            None => {
                let record = layout::decode_sticky(text)?;
                record.reward?;
                (record.variant, record.assigned_ms, true)
            }
        };
        if assigned >= MAX_MS {
            return None;
        }
        if let Err(refused) = rules::judge_unit_record(op, assigned, rewarded) {
            return Some(refused);
        }
        let micro = layout::to_micro(op.reward);
        let micro_text = text_of(&mut self.micro_text, micro);
        let now_text = text_of(&mut self.now_text, op.now_ms);
        let mut credited =
            String::with_capacity(text.len() + micro_text.len() + now_text.len() + 1);
        credited.push_str(text);
        credited.push_str(micro_text);
        credited.push('\t');
        credited.push_str(now_text);
        self.records[read][place] = Some(credited);
        self.written[read].push(place);
        seen[planned.home].insert(planned.digest);
        self.kept[planned.list].extend(planned.digest.to_le_bytes());
        let bin = conversion_delay_bin(assigned, op.now_ms);
        self.credits[planned.epoch].add(&variant, micro, bin, op.now_ms);
        Some(RewardOutcome::Applied { variant })
    }

    /// The counters `HINCRBY` adds to and the decay time compared are integers as banditd
    /// writes them, with room for the sums (else the script's: `HINCRBY` would fail inside
    /// `EXEC`, after the commands before it).
    fn check_counters(&self) -> Option<()> {
        for (credits, arms) in self.credits.iter().zip(&self.arms) {
            if credits.first.is_none() {
                continue;
            }
            let int = |field: &str| arms.get(field).map_or(Some(0), |v| v.parse::<i64>().ok());
            int("v")?.checked_add(1)?;
            for (variant, micro, _) in &credits.variants {
                int(&format!("r|{variant}"))?.checked_add(*micro)?;
                decayed_at(arms, variant)?;
            }
        }
        Some(())
    }

    /// `MULTI`, the writes, `EXEC` (`write_all` in `apply_rewards.lua`, for what op `B`
    /// changes): nothing else runs in between, and nothing runs at all if a watched key
    /// changed since `Plan::read`.
    pub fn writes(&self, plan: &Plan<'_>) -> Pipeline {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for ((read, written), records) in plan.reads.iter().zip(&self.written).zip(&self.records) {
            if written.is_empty() {
                continue;
            }
            let hset = pipe.cmd("HSET").arg(&read.keys.records);
            for &place in written {
                let record = records[place].as_deref().unwrap_or_default();
                hset.arg(read.units[place]).arg(record);
            }
            hset.ignore();
        }
        for (at, home) in plan.homes.iter().enumerate() {
            let lists: Vec<usize> = (0..plan.lists.len())
                .filter(|&list| plan.lists[list].home == at && !self.kept[list].is_empty())
                .collect();
            if lists.is_empty() {
                continue;
            }
            let members = pipe.cmd("SADD").arg(&home.set);
            for &list in &lists {
                for digest in self.kept[list].chunks_exact(8) {
                    members.arg(digest);
                }
            }
            members.ignore();
            for &list in &lists {
                let named = &plan.lists[list];
                pipe.cmd("APPEND")
                    .arg(&named.key)
                    .arg(self.kept[list].as_slice())
                    .ignore();
                pipe.cmd("ZADD")
                    .arg(&home.index)
                    .arg(named.end)
                    .arg(&named.key)
                    .ignore();
                keep_at_least(&mut pipe, &named.key, self.list_ttl[list], named.keep);
            }
            keep_at_least(&mut pipe, &home.set, self.set_ttl[at], home.keep);
        }
        for ((epoch, credits), arms) in plan.epochs.iter().zip(&self.credits).zip(&self.arms) {
            let Some(first) = credits.first else {
                continue;
            };
            let (counters, delays) = (&epoch.keys.arms, &epoch.keys.delays);
            for (variant, micro, latest) in &credits.variants {
                pipe.cmd("HINCRBY")
                    .arg(counters)
                    .arg(format!("r|{variant}"))
                    .arg(*micro)
                    .ignore();
                // `decay` without a half-life: the marker, and the time moved forward only.
                let marks = pipe
                    .cmd("HSET")
                    .arg(counters)
                    .arg(format!("h|{variant}"))
                    .arg("-");
                if *latest > decayed_at(arms, variant).unwrap_or(0) {
                    marks.arg(format!("dt|{variant}")).arg(*latest);
                }
                marks.ignore();
            }
            for (bin, variant, micro) in &credits.bins {
                let field = format!("d|{bin}|{}", credits.variants[*variant].0);
                pipe.cmd("HINCRBY")
                    .arg(delays)
                    .arg(field)
                    .arg(*micro)
                    .ignore();
            }
            pipe.cmd("HSETNX")
                .arg(counters)
                .arg("s")
                .arg(first)
                .ignore();
            // The change counter (`fresh`).
            pipe.cmd("HINCRBY").arg(counters).arg("v").arg(1).ignore();
        }
        pipe
    }
}

/// An arm's decay time as read (0: none); None if it is not a whole millisecond.
fn decayed_at(arms: &HashMap<String, String>, variant: &str) -> Option<u64> {
    arms.get(&format!("dt|{variant}"))
        .map_or(Some(0), |t| t.parse().ok())
}

/// `keep_at_least` in `apply_rewards.lua`: an expiry shorter than `keep` (or none) is set to
/// `keep` and an hour. Compared with the expiry read after `WATCH` (an expiry only shrinks
/// until someone sets it, which the `WATCH` sees).
fn keep_at_least(pipe: &mut Pipeline, key: &str, ttl: i64, keep: u64) {
    if ttl < i64::try_from(keep).unwrap_or(i64::MAX) {
        pipe.cmd("PEXPIRE")
            .arg(key)
            .arg(keep.saturating_add(HOUR_MS))
            .ignore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::epoch_of;

    /// A unit whose hash another unit holds in the index (an FNV-1a collision, forged here)
    /// is told apart by its name: a place of its own, found again by name.
    #[test]
    fn units_of_one_hash_keep_places_of_their_own() {
        let mut read = ShardRead {
            keys: ShardKeys::of(&epoch_of("x", 1), 0),
            units: Vec::new(),
            index: HashMap::default(),
        };
        assert_eq!(read.place("a"), 0);
        assert_eq!(read.place("a"), 0);
        read.index.insert(layout::fnv1a("b"), 0);
        assert_eq!(read.place("b"), 1);
        assert_eq!(read.place("b"), 1);
        assert_eq!(read.place("a"), 0);
        assert_eq!(read.units, ["a", "b"]);
    }
}
