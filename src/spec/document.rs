//! An [`Experiment`] back to the document an analyst would write, as a JSON value.
//!
//! Why: the server hands its running configuration to `banditd plan` (`GET /v1/admin/config`),
//! and the client must rebuild exactly the `Experiment` the server runs. Emitting the YAML
//! document shape (JSON is YAML) and re-reading it with `spec::parse_experiment` means there
//! is one reader and one set of rules, instead of a second serde model that could drift from
//! the YAML one. Every field is written explicitly, defaults included, so the document does
//! not depend on the reader's defaults staying the same.

use serde_json::{Map, Value, json};

use super::model::{Experiment, Guardrail, Prior, StoppingSpec, Variant};

impl Experiment {
    /// The experiment as its YAML document, field names and spellings as in the files
    /// (`reward.window: "7d"`, `assignment: "per_request"`). `spec::parse_experiment`
    /// reads the JSON text of this value back to an equal `Experiment` (apart from
    /// `source` and `id_position`, which describe where it was read from).
    pub fn to_document(&self) -> Value {
        let mut doc = Map::new();
        doc.insert("id".into(), json!(self.id.as_str()));
        doc.insert("description".into(), json!(self.description));
        doc.insert("owner".into(), json!(self.owner));
        doc.insert("status".into(), json!(self.status.as_str()));
        if let Some(environments) = &self.environments {
            doc.insert("environments".into(), json!(environments));
        }
        doc.insert("revision".into(), json!(self.revision));
        doc.insert("assignment".into(), json!(self.assignment.as_str()));
        doc.insert("exposure".into(), json!(self.exposure.mode.as_str()));
        if self.exposure.mode == super::model::ExposureMode::OnRender {
            doc.insert(
                "confirm_within".into(),
                json!(self.exposure.confirm_within.to_string()),
            );
        }
        doc.insert(
            "reward".into(),
            json!({ "window": self.reward.window.to_string(), "delay": delay(self.reward.delay) }),
        );
        doc.insert("prior".into(), prior(self.prior));
        let mut policy = Map::new();
        policy.insert("burn_in".into(), json!(self.policy.burn_in));
        policy.insert("min_share".into(), json!(self.policy.min_share));
        if let Some(half_life) = self.policy.half_life {
            policy.insert("half_life".into(), json!(half_life.to_string()));
        }
        doc.insert("policy".into(), Value::Object(policy));
        if let Some(stopping) = &self.stopping {
            doc.insert("stopping".into(), stopping_document(stopping));
        }
        if !self.guardrails.is_empty() {
            doc.insert(
                "guardrails".into(),
                Value::Array(self.guardrails.iter().map(guardrail).collect()),
            );
        }
        doc.insert(
            "default_variant".into(),
            json!(self.default_variant.as_str()),
        );
        if let Some(winner) = &self.winner {
            doc.insert("winner".into(), json!(winner.as_str()));
        }
        doc.insert(
            "variants".into(),
            Value::Array(self.variants.iter().map(variant).collect()),
        );
        Value::Object(doc)
    }
}

/// `reward.delay` as written: `auto`, `off` or `{median: 2d}`.
fn delay(model: super::model::DelayModel) -> Value {
    match model {
        super::model::DelayModel::Prior { median } => json!({ "median": median.to_string() }),
        other => json!(other.to_string()),
    }
}

/// Parameters are finite by construction (`parse_experiment` refuses anything else), so
/// `json!` never meets a NaN here.
fn prior(prior: Prior) -> Value {
    json!({ "alpha": prior.alpha, "beta": prior.beta })
}

fn stopping_document(stopping: &StoppingSpec) -> Value {
    let mut block = Map::new();
    block.insert("prob_best".into(), json!(stopping.prob_best));
    block.insert(
        "max_expected_loss".into(),
        json!(stopping.max_expected_loss),
    );
    block.insert("min_exposures".into(), json!(stopping.min_exposures));
    if let Some(min_duration) = stopping.min_duration {
        block.insert("min_duration".into(), json!(min_duration.to_string()));
    }
    block.insert("on_winner".into(), json!(stopping.on_winner.as_str()));
    block.insert(
        "allow_prior_only_decision".into(),
        json!(stopping.allow_prior_only_decision),
    );
    Value::Object(block)
}

/// `against` only when set: unset means "the `default_variant`", which the reader restores.
fn guardrail(guardrail: &Guardrail) -> Value {
    let mut entry = Map::new();
    entry.insert("metric".into(), json!(guardrail.metric.as_str()));
    entry.insert("direction".into(), json!(guardrail.direction.as_str()));
    entry.insert(
        "max_relative_change".into(),
        json!(guardrail.max_relative_change),
    );
    entry.insert("confidence".into(), json!(guardrail.confidence));
    entry.insert("min_exposures".into(), json!(guardrail.min_exposures));
    if let Some(against) = &guardrail.against {
        entry.insert("against".into(), json!(against.as_str()));
    }
    Value::Object(entry)
}

/// `payload` is always written, `null` included: the reader requires the key.
fn variant(variant: &Variant) -> Value {
    let mut entry = Map::new();
    entry.insert("id".into(), json!(variant.id.as_str()));
    entry.insert("payload".into(), variant.payload.clone());
    if let Some(own) = variant.prior {
        entry.insert("prior".into(), prior(own));
    }
    if let Some(halted_ms) = variant.resume_after_halt {
        entry.insert("resume_after_halt".into(), json!(halted_ms));
    }
    Value::Object(entry)
}

#[cfg(test)]
#[path = "document_tests.rs"]
mod tests;
