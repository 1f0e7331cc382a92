//! The delay histograms in sled (the rule: `delay_histograms`): one record per arm, histogram
//! and bin, `KIND_DELAY (epoch) len(variant) variant ('c' | 'd') bin BE`, so one epoch's bins
//! are one range. Values are 8 bytes: a cohort's exposures as a big-endian u64, a delay bin's
//! reward mass as the bits of an f64. They change inside the request that changes the counters
//! (`apply`), so both land in the same atomic commit.

use std::collections::HashMap;

use super::codec;
use super::delay_histograms::{DelayHistograms, cohort_bin, conversion_delay_bin};
use super::error::StoreError;
use super::keys::{self, KIND_DELAY, corrupt, io};
use super::overlay::{Reads, Txn};
use super::types::Epoch;

const COHORT: u8 = b'c';
const DELAY: u8 = b'd';

fn bin_key(epoch: &Epoch, variant: &str, histogram: u8, bin: u64) -> Vec<u8> {
    let mut key = keys::epoch_key(KIND_DELAY, epoch, "");
    keys::put_bytes(&mut key, variant.as_bytes());
    key.push(histogram);
    key.extend_from_slice(&bin.to_be_bytes());
    key
}

/// The key of the delay bin a reward of `variant` assigned at `assigned_ms` and arriving at
/// `arrived_ms` is counted in: tests corrupt it to make a request fail half-way.
#[cfg(test)]
pub fn delay_bin_key(epoch: &Epoch, variant: &str, assigned_ms: u64, arrived_ms: u64) -> Vec<u8> {
    let bin = u64::from(conversion_delay_bin(assigned_ms, arrived_ms));
    bin_key(epoch, variant, DELAY, bin)
}

/// The key of the cohort bin of exposures of `variant` counted at `counted_ms` (for tests, as
/// [`delay_bin_key`]).
#[cfg(test)]
pub fn cohort_key(epoch: &Epoch, variant: &str, counted_ms: u64) -> Vec<u8> {
    bin_key(epoch, variant, COHORT, cohort_bin(counted_ms))
}

/// Counts `n` exposures of `variant` counted at `counted_ms` in their cohort. The bin is read
/// once per request and summed in the request's layer (`Txn::add_to_cohort`): a run of new
/// units sharing one txn counts every unit in a few bins. Fails only on reading the bin, before
/// it changes anything.
pub fn count_cohort(
    txn: &mut Txn<'_>,
    epoch: &Epoch,
    variant: &str,
    counted_ms: u64,
    n: u64,
) -> Result<(), StoreError> {
    let bin = cohort_bin(counted_ms);
    txn.add_to_cohort(epoch, variant, bin, n, |txn| {
        let key = bin_key(epoch, variant, COHORT, bin);
        let held = match txn.get(&key)? {
            Some(bytes) => codec::decode_u64(&bytes, "delay cohort")?,
            None => 0,
        };
        Ok((key, held))
    })
}

/// The delay bins one run of rewards (`apply::RewardRun`) credits, each read from the
/// request's view once, summed in memory in the rewards' order and written once at the end
/// ([`DelayCounts::write`]): a bulk request credits a handful of bins a thousand times, and
/// building each bin's key, reading it and writing it back per reward was ~1,000 instructions
/// of a bulk event's ~10,000 on the writer (`benches/load/bulk_cost.sh`); a run of
/// single-event requests sharing one txn (`writer_apply`) reads each bin once per run, not
/// once per request. The sums are the same floating-point additions in the same order, so the
/// stored bits are those a write per reward gave. Written by the run that credited them
/// (dropped with its txn if it fails).
#[derive(Debug, Default)]
pub struct DelayCounts {
    /// One entry per epoch and arm credited (a batch names few), with its bins.
    arms: Vec<ArmDelays>,
}

#[derive(Debug)]
struct ArmDelays {
    epoch: Epoch,
    variant: String,
    /// Delay bin → its key and its reward mass so far (read from the view, plus this run's).
    bins: std::collections::BTreeMap<u64, (Vec<u8>, f64)>,
}

impl DelayCounts {
    /// Counts a credited reward of `variant` in the bin of its delay. Fails only on reading
    /// the bin (its first count in the run), and then changes nothing: a reward of a shared
    /// run makes this read before it writes anything (`apply::RewardRun`).
    pub fn count(
        &mut self,
        reads: &Reads<'_>,
        epoch: &Epoch,
        variant: &str,
        reward: f64,
        assigned_ms: u64,
        arrived_ms: u64,
    ) -> Result<(), StoreError> {
        let bin = u64::from(conversion_delay_bin(assigned_ms, arrived_ms));
        let found = self
            .arms
            .iter()
            .position(|arm| arm.variant == variant && arm.epoch == *epoch);
        if let Some(mass) = found.and_then(|at| self.arms[at].bins.get_mut(&bin)) {
            mass.1 += reward;
            return Ok(());
        }
        let key = bin_key(epoch, variant, DELAY, bin);
        let held = match reads.get(&key)? {
            Some(bytes) => f64::from_bits(codec::decode_u64(&bytes, "delay bin")?),
            None => 0.0,
        };
        let at = found.unwrap_or_else(|| {
            self.arms.push(ArmDelays {
                epoch: epoch.clone(),
                variant: variant.to_owned(),
                bins: std::collections::BTreeMap::new(),
            });
            self.arms.len() - 1
        });
        self.arms[at].bins.insert(bin, (key, held + reward));
        Ok(())
    }

    /// Writes every bin counted into the request's changes.
    pub fn write(self, txn: &mut Txn<'_>) {
        for arm in self.arms {
            for (key, mass) in arm.bins.into_values() {
                txn.put(key, codec::encode_u64(mass.to_bits()).to_vec());
            }
        }
    }
}

/// Every arm's histograms of the epoch as sled holds them now.
pub fn read(db: &sled::Db, epoch: &Epoch) -> Result<HashMap<String, DelayHistograms>, StoreError> {
    let prefix = keys::epoch_key(KIND_DELAY, epoch, "");
    let mut arms: HashMap<String, DelayHistograms> = HashMap::new();
    for entry in db.scan_prefix(&prefix) {
        let (key, value) = entry.map_err(io)?;
        let (variant, rest) = keys::take_bytes(&key[prefix.len()..])?;
        let variant = keys::utf8(variant, "variant")?;
        let (&histogram, rest) = rest
            .split_first()
            .ok_or_else(|| corrupt("delay key lacks its histogram"))?;
        let (bin, _) = keys::take_u64(rest)?;
        let value = codec::decode_u64(&value, "delay histogram")?;
        let arm = arms.entry(variant).or_default();
        match histogram {
            COHORT => {
                arm.cohorts.insert(bin, value);
            }
            DELAY => {
                let bin = u32::try_from(bin).map_err(|_| corrupt("delay bin out of range"))?;
                arm.delays.insert(bin, f64::from_bits(value));
            }
            _ => return Err(corrupt("unknown delay histogram")),
        }
    }
    Ok(arms)
}

/// The audit of every epoch's histograms that has counters (`delay_histograms::audit_epoch`):
/// reads each epoch's records again, since the counters' audit keeps no per-record times.
pub fn audit(
    db: &sled::Db,
    stored: &HashMap<(Epoch, String), super::types::ArmCounters>,
    sticky: &std::collections::BTreeMap<Vec<u8>, super::types::StickyRecord>,
) -> Result<Vec<super::audit_report::DelayMismatch>, StoreError> {
    let mut by_epoch: std::collections::BTreeMap<
        Epoch,
        HashMap<String, super::types::ArmCounters>,
    > = std::collections::BTreeMap::new();
    for ((epoch, variant), counters) in stored {
        by_epoch
            .entry(epoch.clone())
            .or_default()
            .insert(variant.clone(), *counters);
    }
    let mut mismatches = Vec::new();
    for (epoch, counters) in by_epoch {
        let histograms = read(db, &epoch)?;
        if histograms.is_empty() {
            continue;
        }
        // The epoch's sticky keys share its prefix (see `keys`).
        let prefix = super::keys::epoch_key(super::keys::KIND_STICKY, &epoch, "");
        let records = sticky
            .range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(&prefix))
            .map(|(_, record)| record);
        let marks = super::mark_log::epoch_marks(db, &epoch)?;
        let recorded = super::delay_histograms::recorded(records, &marks);
        mismatches.extend(super::delay_histograms::audit_epoch(
            &epoch,
            &histograms,
            &counters,
            &recorded,
        ));
    }
    Ok(mismatches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::test_support::{T0_MS, block_on, epoch, open, raw_db, record, tally};

    #[test]
    fn a_format_3_store_without_histograms_opens_with_none_and_audits_clean() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            block_on(store.insert_sticky(&epoch(), "u1", record("a", T0_MS), tally(T0_MS)))
                .unwrap();
            block_on(store.shutdown()).unwrap();
        }
        {
            // What the previous build wrote: the same records, no histograms, format 3.
            let db = raw_db(dir.path());
            let prefix = keys::epoch_key(KIND_DELAY, &epoch(), "");
            for key in db.scan_prefix(&prefix).keys() {
                db.remove(key.unwrap()).unwrap();
            }
            db.insert(keys::META_FORMAT, codec::encode_u64(3).to_vec())
                .unwrap();
            db.flush().unwrap();
        }
        let store = open(dir.path());
        assert!(
            block_on(store.delay_histograms(&epoch()))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            block_on(store.counters(&epoch())).unwrap()["a"].exposures,
            1
        );
        assert!(store.audit().unwrap().is_clean());
        // New writes start the histograms; the old exposure reads as complete.
        block_on(store.insert_sticky(&epoch(), "u2", record("a", T0_MS), tally(T0_MS))).unwrap();
        let arm = &block_on(store.delay_histograms(&epoch())).unwrap()["a"];
        assert_eq!(arm.cohort_total(), 1);
        assert!(store.audit().unwrap().is_clean());
    }

    #[test]
    fn the_audit_finds_a_cohort_whose_exposure_moved_to_another_hour() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            for unit in ["u1", "u2"] {
                block_on(store.insert_sticky(&epoch(), unit, record("a", T0_MS), tally(T0_MS)))
                    .unwrap();
            }
            assert!(store.audit().unwrap().is_clean());
            block_on(store.shutdown()).unwrap();
        }
        {
            let db = raw_db(dir.path());
            let key = bin_key(&epoch(), "a", COHORT, cohort_bin(T0_MS));
            db.insert(key, codec::encode_u64(1).to_vec()).unwrap();
            let next = bin_key(&epoch(), "a", COHORT, cohort_bin(T0_MS) + 1);
            db.insert(next, codec::encode_u64(1).to_vec()).unwrap();
            db.flush().unwrap();
        }
        let store = open(dir.path());
        let report = store.audit().unwrap();
        assert!(!report.is_clean());
        assert_eq!(report.delay_mismatches.len(), 1, "{report:?}");
        assert_eq!(report.delay_mismatches[0].variant, "a");
    }
}
