//! The spec each data epoch is served under, kept in the store (`store::EpochSpec`), so that an
//! earlier revision's report, export and history use its own variants, priors and stopping
//! rule, and a retired arm keeps the prior it was counted under.
//!
//! Why the store rather than the folder: the folder holds only today's files (a server's copy
//! is rarely a git checkout, and a ConfigMap has no history at all), so what revision 1 looked
//! like once revision 2 shipped is known only to whoever served it. Every replica sharing a
//! store sees the same record. The document is `Experiment::to_document`, read back with
//! `spec::parse_experiment`: one reader and one set of rules, as for `banditd plan`.
//!
//! The record is rewritten at every load that changes it (startup, reload), so it describes the
//! epoch as it was last served: within an epoch only compatible edits happen, and those apply
//! to the whole epoch's data (docs/ARCHITECTURE.md, "A reload"). Priors are merged, not
//! replaced: a variant removed from the file keeps the prior it had in the last spec that
//! listed it.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::live::LiveExperiment;
use super::{Engine, EngineError};
use crate::spec::{Experiment, Prior};
use crate::store::{ArmPrior, Epoch, EpochSpec};

/// The record of `spec`'s epoch: its document, and the priors of every variant served in the
/// epoch (the stored ones, updated with the spec's own).
pub(crate) fn record_of(spec: &Experiment, stored: Option<&EpochSpec>) -> EpochSpec {
    let mut priors = stored.map(|s| s.priors.clone()).unwrap_or_default();
    for (k, variant) in spec.variants.iter().enumerate() {
        let prior = spec.arm_prior(k);
        priors.insert(
            variant.id.as_str().to_owned(),
            ArmPrior {
                alpha: prior.alpha,
                beta: prior.beta,
            },
        );
    }
    EpochSpec {
        document: spec.to_document(),
        priors,
    }
}

/// The priors of the variants `record` knows that `spec` no longer lists (retired ones).
pub(crate) fn retired_priors(spec: &Experiment, record: &EpochSpec) -> BTreeMap<String, Prior> {
    record
        .priors
        .iter()
        .filter(|(variant, _)| spec.variant_index(variant).is_none())
        .map(|(variant, prior)| {
            let prior = Prior {
                alpha: prior.alpha,
                beta: prior.beta,
            };
            (variant.clone(), prior)
        })
        .collect()
}

/// The experiment a stored record describes, or `None` if this build cannot read it back
/// (a document written by a build with other rules): its numbers are then unknown.
pub(crate) fn experiment_of(record: &EpochSpec, like: &Experiment) -> Option<Experiment> {
    let text = record.document.to_string();
    match crate::spec::parse_experiment(&like.source, &text) {
        Ok(experiment) if experiment.id == like.id => Some(experiment),
        Ok(_) => None,
        Err(errors) => {
            tracing::warn!(
                experiment = %like.id,
                errors = errors.len(),
                "a stored epoch spec does not parse with this build's rules"
            );
            None
        }
    }
}

/// An earlier epoch as it was served: its experiment and its retired arms' priors.
pub(crate) struct ArchivedSpec {
    pub spec: Experiment,
    pub retired: BTreeMap<String, Prior>,
}

impl Engine {
    /// Reads the stored record of `spec`'s epoch and writes the updated one if it changed.
    /// Returns the retired arms' priors, and whether the write is still to be made (it failed;
    /// [`Engine::record_pending_specs`] retries it).
    pub(crate) async fn load_epoch_spec(
        &self,
        spec: &Experiment,
        epoch: &Epoch,
    ) -> Result<(BTreeMap<String, Prior>, bool), EngineError> {
        let stored = self.store.epoch_spec(epoch).await?;
        let record = record_of(spec, stored.as_ref());
        let retired = retired_priors(spec, &record);
        if stored.as_ref() == Some(&record) {
            return Ok((retired, false));
        }
        match self.store.record_epoch_spec(epoch, record).await {
            Ok(()) => Ok((retired, false)),
            Err(error) => {
                tracing::warn!(experiment = %epoch.experiment, revision = epoch.revision, %error,
                    "the epoch's spec could not be stored; retrying with the next history point");
                Ok((retired, true))
            }
        }
    }

    /// Writes the spec records that a load could not write. Run with every history point.
    pub(crate) async fn record_pending_specs(&self) -> Result<(), EngineError> {
        let catalog = self.catalog();
        for live in catalog.all() {
            if live.spec_unrecorded.load(Ordering::Acquire) {
                let stored = self.store.epoch_spec(&live.epoch).await?;
                let record = record_of(&live.spec, stored.as_ref());
                self.store.record_epoch_spec(&live.epoch, record).await?;
                live.spec_unrecorded.store(false, Ordering::Release);
            }
        }
        Ok(())
    }

    /// Revision `revision` of `live`'s experiment as it was served, if the store kept its spec
    /// and this build can read it; the loaded revision is the live spec itself.
    pub(crate) async fn archived_spec(
        &self,
        live: &LiveExperiment,
        revision: u32,
    ) -> Result<Option<ArchivedSpec>, EngineError> {
        if revision == live.epoch.revision {
            return Ok(Some(ArchivedSpec {
                spec: live.spec.clone(),
                retired: live.retired.clone(),
            }));
        }
        let epoch = self.epoch_of(live, revision)?;
        let Some(record) = self.store.epoch_spec(&epoch).await? else {
            return Ok(None);
        };
        Ok(experiment_of(&record, &live.spec).map(|spec| {
            let retired = retired_priors(&spec, &record);
            ArchivedSpec { spec, retired }
        }))
    }

    /// The epoch of `revision` of `live`'s experiment: the loaded one or an earlier one (later
    /// revisions do not exist yet).
    pub(crate) fn epoch_of(
        &self,
        live: &LiveExperiment,
        revision: u32,
    ) -> Result<Epoch, EngineError> {
        if revision > live.epoch.revision || revision == 0 {
            return Err(EngineError::UnknownRevision {
                experiment: live.epoch.experiment.clone(),
                revision,
                current: live.epoch.revision,
            });
        }
        Ok(Epoch {
            experiment: live.epoch.experiment.clone(),
            revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml_variants: &str) -> Experiment {
        let text = format!(
            "id: home\ndescription: d\nowner: o\nstatus: running\nprior: {{alpha: 2, beta: 3}}\n\
             default_variant: a\nvariants:\n{yaml_variants}"
        );
        crate::spec::parse_experiment(std::path::Path::new("home.yaml"), &text).unwrap()
    }

    #[test]
    fn a_removed_variant_keeps_the_prior_it_last_had_and_the_document_reads_back() {
        let first = spec(
            "  - id: a\n    payload: 1\n  - id: b\n    payload: 2\n    prior: {alpha: 25, beta: 75}\n  - id: c\n    payload: 3\n",
        );
        let record = record_of(&first, None);
        assert_eq!(
            experiment_of(&record, &first).unwrap().variants,
            first.variants
        );
        let second = spec("  - id: a\n    payload: 1\n  - id: d\n    payload: 4\n");
        let record = record_of(&second, Some(&record));
        let retired = retired_priors(&second, &record);
        assert_eq!(
            retired.into_iter().collect::<Vec<_>>(),
            vec![
                (
                    "b".to_owned(),
                    Prior {
                        alpha: 25.0,
                        beta: 75.0
                    }
                ),
                (
                    "c".to_owned(),
                    Prior {
                        alpha: 2.0,
                        beta: 3.0
                    }
                ),
            ],
            "b its own prior, c the experiment's it was counted under"
        );
        assert_eq!(experiment_of(&record, &second).unwrap().variants.len(), 2);
    }

    #[test]
    fn a_record_this_build_cannot_read_is_unknown_not_guessed() {
        let home = spec("  - id: a\n    payload: 1\n  - id: b\n    payload: 2\n");
        let mut record = record_of(&home, None);
        record.document["variants"] = serde_json::json!([]);
        assert!(experiment_of(&record, &home).is_none());
        let mut other = record_of(&home, None);
        other.document["id"] = serde_json::json!("elsewhere");
        assert!(experiment_of(&other, &home).is_none());
    }
}
