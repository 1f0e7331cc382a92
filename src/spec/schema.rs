//! A JSON Schema (draft 2020-12) of the experiment file, for editors: with it, VS Code,
//! IntelliJ and vim (through yaml-language-server) complete field names, show every
//! field's meaning on hover and underline most mistakes while the analyst types.
//!
//! The parser stays the authority; the schema mirrors it wherever a schema can, and the
//! tests check both against one corpus of files, so a file the editor accepts and
//! `banditd validate` refuses (or the reverse) is a failing test, not a surprise in review.
//! What a schema cannot express (rules that compare two places of the file, and the
//! limits of YAML itself) is listed in the top-level description, which editors show on
//! hover over the file.
//!
//! Optional fields accept `null` because the parser reads an empty value (`window:`) as
//! "use the default"; required ones do not, because an empty required field is an error.
//! The repository ships the output as `schema/experiment.schema.json` (see
//! [`json_schema_text`]); a test keeps the two identical.

use serde_json::{Value, json};

use super::duration::HumanDuration;
use super::exposure::{DEFAULT_CONFIRM_WITHIN_SECONDS, EXPOSURE_MODES};
use super::guardrails::{
    DEFAULT_GUARDRAIL_CONFIDENCE, DEFAULT_GUARDRAIL_MIN_EXPOSURES, DIRECTIONS,
};
use super::node::MAX_NESTING;
use super::parse::{
    ASSIGNMENTS, DEFAULT_BURN_IN, DEFAULT_MIN_SHARE, DEFAULT_REVISION, MAX_VARIANTS, STATUSES,
};
use super::stopping::{DEFAULT_MIN_EXPOSURES, DEFAULT_ON_WINNER, ON_WINNER};

/// Experiment, variant and environment ids (`ExperimentId::parse`): what URLs and store
/// keys can carry unescaped.
pub(crate) const ID_PATTERN: &str = "^[a-z0-9_-]{1,64}$";

/// `HumanDuration::parse`: one positive whole number (leading zeros allowed, `0007d`) and
/// one unit, no space between; the parser trims the text first. Rust's and ECMAScript's
/// `\s` both mean Unicode white space, what `str::trim` removes.
pub(crate) const DURATION_PATTERN: &str = r"^\s*0*[1-9][0-9]*[smhdw]\s*$";

/// The reward window written in the schema as the default. A test checks that it parses to
/// `DEFAULT_REWARD_WINDOW_SECONDS`; the text is the spelling analysts see in the bundled
/// files (`HumanDuration`'s own `Display` would print `1w`).
pub(crate) const DEFAULT_REWARD_WINDOW_TEXT: &str = "7d";

/// Where the shipped copy lives, relative to the repository root.
pub const SCHEMA_FILE: &str = "schema/experiment.schema.json";

/// The JSON Schema of an experiment file. Pure and deterministic (keys sorted), so the
/// shipped file and `banditd schema` can be compared byte for byte.
pub fn json_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "banditd experiment",
        "description": top_level_description(),
        "type": "object",
        "additionalProperties": false,
        "required": ["id", "description", "owner", "status", "default_variant", "variants"],
        "properties": {
            "$schema": {
                "description": "Optional: where editors find this schema. The comment line \
                    `# yaml-language-server: $schema=../schema/experiment.schema.json` does the \
                    same without adding a field.",
                "type": ["string", "null"]
            },
            "id": {
                "description": "The experiment's name in URLs, the store and the dashboard: \
                    lowercase letters, digits, '-' and '_', at most 64 characters, unique across \
                    the folder. Renaming a running experiment starts it with no data.",
                "$ref": "#/$defs/id",
                "examples": ["homepage-headline"]
            },
            "description": {
                "description": "Required: one sentence saying what the experiment decides, for \
                    reviewers and whoever is on call.",
                "type": "string",
                "pattern": r"\S"
            },
            "owner": {
                "description": "Required: the team or person to ask about the experiment.",
                "type": "string",
                "pattern": r"\S"
            },
            "status": {
                "description": "draft: not served yet (assign answers 404). running: traffic is \
                    allocated by the bandit. paused: everybody gets `default_variant`, nothing is \
                    counted. concluded: everybody gets `winner`, which is then required.",
                "enum": names(STATUSES)
            },
            "environments": {
                "description": "Where the experiment is live, matching `banditd serve \
                    --environment`; names follow the id rules. Leave the field out to run \
                    everywhere.",
                "type": ["array", "null"],
                "minItems": 1,
                "uniqueItems": true,
                "items": {"$ref": "#/$defs/id"},
                "examples": [["staging", "production"]]
            },
            "revision": {
                "description": format!(
                    "The data epoch. Bump it to start from zero (fresh counts, fresh sticky \
                     assignments), e.g. after changing a payload so much that old results no \
                     longer describe it. Optional, default {DEFAULT_REVISION}."
                ),
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": u32::MAX,
                "default": DEFAULT_REVISION
            },
            "assignment": {
                "description": "sticky: a unit (user, session) keeps its variant for the whole \
                    revision and is counted once. per_request: a fresh draw and a new exposure \
                    on every call; rewards come back with the assign token. Optional, default \
                    sticky.",
                "enum": nullable_names(ASSIGNMENTS),
                "default": ASSIGNMENTS[0].0
            },
            "exposure": {
                "description": "on_assign: an assignment counts as an exposure when the server \
                    hands it out. on_render: it is recorded then, and counted only when the page \
                    confirms that the variant was shown (POST /v1/exposures with the assign \
                    token), which lets the sample-ratio check see a frontend that drops a \
                    variant; works with either assignment mode. Optional, default on_assign.",
                "enum": nullable_names(EXPOSURE_MODES),
                "default": EXPOSURE_MODES[0].0
            },
            "confirm_within": {
                "description": format!(
                    "With exposure: on_render, confirmations arriving later than this after \
                     the assignment are refused. Only allowed with on_render. \
                     {DURATION_HELP} Optional, default {}.",
                    HumanDuration::from_std(std::time::Duration::from_secs(
                        DEFAULT_CONFIRM_WITHIN_SECONDS
                    ))
                ),
                "$ref": "#/$defs/duration",
                "examples": ["10m"]
            },
            "reward": {
                "description": "How rewards (conversions) are accepted.",
                "type": ["object", "null"],
                "additionalProperties": false,
                "properties": {
                    "window": {
                        "description": format!(
                            "Rewards arriving later than this after the assignment are \
                             rejected. {DURATION_HELP} Optional, default \
                             {DEFAULT_REWARD_WINDOW_TEXT}."
                        ),
                        "$ref": "#/$defs/duration",
                        "default": DEFAULT_REWARD_WINDOW_TEXT
                    },
                    "delay": {
                        "description": "How the posterior counts exposures whose conversion may \
                            still come (younger than the window). auto: learn the delay law \
                            from the data; off: count every exposure as a whole trial at once \
                            (the naive posterior); {median: 2d}: learn, starting from an \
                            exponential delay with this median. Optional, default auto. \
                            Changing it changes no stored data.",
                        "anyOf": [
                            { "enum": ["auto", "off"] },
                            {
                                "type": "object",
                                "additionalProperties": false,
                                "required": ["median"],
                                "properties": {
                                    "median": {
                                        "description": "Median delay of the cold-start \
                                            exponential model, e.g. 2d.",
                                        "$ref": "#/$defs/duration"
                                    }
                                }
                            }
                        ],
                        "default": "auto"
                    }
                }
            },
            "prior": {
                "description": "What we believe about every variant's conversion rate before \
                    any data: Beta(alpha, beta). alpha: 1, beta: 1 means any rate is equally \
                    likely. Optional, default { alpha: 1, beta: 1 }.",
                "$ref": "#/$defs/prior",
                "default": {"alpha": 1, "beta": 1}
            },
            "policy": {
                "description": "How traffic is allocated.",
                "type": ["object", "null"],
                "additionalProperties": false,
                "properties": {
                    "burn_in": {
                        "description": format!(
                            "Traffic is split evenly until every variant has been shown this \
                             many times; only then does the bandit favour the leaders. \
                             Optional, default {DEFAULT_BURN_IN}."
                        ),
                        "type": ["integer", "null"],
                        "minimum": 0,
                        "maximum": u64::MAX,
                        "default": DEFAULT_BURN_IN
                    },
                    "min_share": {
                        "description": format!(
                            "Every variant keeps at least this share of traffic (0.02 = 2%), \
                             so a slow starter can still recover. At least 0 and below 1; with \
                             K variants, min_share × K must stay below 1. Optional, default \
                             {DEFAULT_MIN_SHARE} (no floor)."
                        ),
                        "type": ["number", "null"],
                        "minimum": 0,
                        "exclusiveMaximum": 1,
                        "default": DEFAULT_MIN_SHARE
                    },
                    "half_life": {
                        "description": format!(
                            "Old evidence loses half its weight every half_life, so the bandit \
                             follows rates that drift (season, catalogue). {DURATION_HELP} \
                             Optional, default none: every exposure and reward counts fully."
                        ),
                        "$ref": "#/$defs/duration",
                        "examples": ["14d"]
                    }
                }
            },
            "stopping": {
                "description": "When the server may declare a winner on its own. Without this \
                    block it never does; an analyst ends the experiment with `status: \
                    concluded`.",
                "type": ["object", "null"],
                "additionalProperties": false,
                "required": ["prob_best", "max_expected_loss"],
                "properties": {
                    "prob_best": {
                        "description": "Required: declare a winner once its probability of \
                            being the best variant reaches this (0.95 = 95% sure). Above 0.5 \
                            (only one variant can be more likely best than not) and below 1 (no \
                            amount of data makes it certain).",
                        "type": "number",
                        "exclusiveMinimum": 0.5,
                        "exclusiveMaximum": 1,
                        "examples": [0.95]
                    },
                    "max_expected_loss": {
                        "description": "Required: ... and the conversion rate we expect to lose \
                            by picking it now, if it is not the best after all, is at most this \
                            (0.001 = 0.1 percentage points). Above 0 and at most 1.",
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "maximum": 1,
                        "examples": [0.001]
                    },
                    "min_exposures": {
                        "description": format!(
                            "No winner before every variant has been shown at least this many \
                             times. Optional, default {DEFAULT_MIN_EXPOSURES}."
                        ),
                        "type": ["integer", "null"],
                        "minimum": 0,
                        "maximum": u64::MAX,
                        "default": DEFAULT_MIN_EXPOSURES
                    },
                    "min_duration": {
                        "description": format!(
                            "No winner before this long after the current revision started, so \
                             weekly cycles are in the data. {DURATION_HELP} Optional, default \
                             none."
                        ),
                        "$ref": "#/$defs/duration",
                        "examples": ["2w"]
                    },
                    "on_winner": {
                        "description": format!(
                            "exploit: the winner gets all traffic except the min_share floor \
                             of the others, which keeps measuring them. report: nothing changes, \
                             the winner is only flagged. Optional, default {DEFAULT_ON_WINNER}."
                        ),
                        "enum": nullable_names(ON_WINNER),
                        "default": DEFAULT_ON_WINNER.as_str()
                    },
                    "allow_prior_only_decision": {
                        "description": "false: every variant needs at least one exposure \
                            before a winner is declared, whatever min_exposures says, so the \
                            priors alone never decide. true: a strong prior may decide before \
                            any data (banditd validate warns when it would). Optional, default \
                            false.",
                        "type": ["boolean", "null"],
                        "default": false
                    }
                }
            },
            "guardrails": {
                "description": "Second metrics that must not get worse (refunds, errors): an \
                    arm worse than the comparison arm by more than max_relative_change, with \
                    posterior probability at least confidence, is halted. Checked by `banditd \
                    validate` and `banditd simulate`; `banditd serve` refuses experiments \
                    with guardrails until the server enforces them.",
                "type": ["array", "null"],
                "items": {"$ref": "#/$defs/guardrail"}
            },
            "default_variant": {
                "description": "Required: the variant served while paused, or when anything \
                    fails; usually the current production experience. Must be one of the \
                    variant ids.",
                "$ref": "#/$defs/id"
            },
            "winner": {
                "description": "The variant everybody gets once `status: concluded`; required \
                    then, and not allowed otherwise. Must be one of the variant ids.",
                "type": ["string", "null"],
                "pattern": ID_PATTERN
            },
            "variants": {
                "description": format!(
                    "The variants to compare: at least two and at most {MAX_VARIANTS}, each \
                     with its own id."
                ),
                "type": "array",
                "minItems": 2,
                "maxItems": MAX_VARIANTS,
                "items": {"$ref": "#/$defs/variant"}
            }
        },
        "if": {
            "properties": {"status": {"const": "concluded"}},
            "required": ["status"]
        },
        "then": {
            "required": ["winner"],
            "properties": {"winner": {"type": "string"}}
        },
        "else": {
            "properties": {"winner": {"type": "null"}}
        },
        "$defs": {
            "id": {
                "description": "Lowercase letters, digits, '-' and '_'; 1 to 64 characters.",
                "type": "string",
                "pattern": ID_PATTERN
            },
            "duration": {
                "description": DURATION_HELP,
                "type": ["string", "null"],
                "pattern": DURATION_PATTERN
            },
            "prior": {
                "description": "A Beta(alpha, beta) prior; both parameters above 0. Its mean \
                    is alpha / (alpha + beta), and it weighs as much as alpha + beta \
                    observations.",
                "type": ["object", "null"],
                "additionalProperties": false,
                "required": ["alpha", "beta"],
                "properties": {
                    "alpha": {
                        "description": "Prior successes: how many conversions the prior is \
                            worth; a larger alpha pulls the expected rate up. Above 0.",
                        "type": "number",
                        "exclusiveMinimum": 0
                    },
                    "beta": {
                        "description": "Prior failures: how many visits without a conversion \
                            the prior is worth; a larger beta pulls the expected rate down. \
                            Above 0.",
                        "type": "number",
                        "exclusiveMinimum": 0
                    }
                }
            },
            "guardrail": {
                "description": "One guardrail metric and its halt rule.",
                "type": "object",
                "additionalProperties": false,
                "required": ["metric", "direction", "max_relative_change"],
                "properties": {
                    "metric": {
                        "description": "Required: the metric's name in guardrail events; \
                            id rules, unique within the file, and not `reward` (the primary \
                            reward's name).",
                        "$ref": "#/$defs/id",
                        "examples": ["refunds"]
                    },
                    "direction": {
                        "description": "Required: lower_is_better for a cost (refunds, \
                            errors), higher_is_better for a benefit (retention).",
                        "enum": names(DIRECTIONS)
                    },
                    "max_relative_change": {
                        "description": "Required: the relative worsening tolerated (0.1 = an \
                            arm may be 10% worse than the comparison arm). At least 0; below 1 \
                            with higher_is_better.",
                        "type": "number",
                        "minimum": 0,
                        "examples": [0.1]
                    },
                    "confidence": {
                        "description": format!(
                            "Halt once the probability that the arm is worse by more than \
                             max_relative_change reaches this. Above 0.5 and below 1. \
                             Optional, default {DEFAULT_GUARDRAIL_CONFIDENCE}."
                        ),
                        "type": ["number", "null"],
                        "exclusiveMinimum": 0.5,
                        "exclusiveMaximum": 1,
                        "default": DEFAULT_GUARDRAIL_CONFIDENCE
                    },
                    "min_exposures": {
                        "description": format!(
                            "No halt before both the arm and the comparison arm have been \
                             shown this many times. Optional, default \
                             {DEFAULT_GUARDRAIL_MIN_EXPOSURES}."
                        ),
                        "type": ["integer", "null"],
                        "minimum": 0,
                        "maximum": u64::MAX,
                        "default": DEFAULT_GUARDRAIL_MIN_EXPOSURES
                    },
                    "against": {
                        "description": "The comparison arm: one of the variant ids. \
                            Optional, default the experiment's default_variant.",
                        "type": ["string", "null"],
                        "pattern": ID_PATTERN
                    }
                }
            },
            "variant": {
                "description": "One arm of the experiment.",
                "type": "object",
                "additionalProperties": false,
                "required": ["id", "payload"],
                "properties": {
                    "id": {
                        "description": "The variant's name, unique within the file; same rules \
                            as the experiment id.",
                        "$ref": "#/$defs/id"
                    },
                    "payload": {
                        "description": "Required: any YAML value (mapping, list, text, number, \
                            true/false, null), handed to the frontend as the same JSON."
                    },
                    "prior": {
                        "description": "Optional: a prior for this variant only, overriding \
                            the experiment's `prior`, e.g. from an earlier test.",
                        "$ref": "#/$defs/prior"
                    },
                    "resume_after_halt": {
                        "description": "Optional: lets this arm back in after a guardrail \
                            halt, naming the halt by its `halted_ms` (Unix milliseconds, as the \
                            stats show it). Overrides only that halt; a later halt still stops \
                            the arm.",
                        "type": "integer",
                        "minimum": 1
                    }
                }
            }
        }
    })
}

/// The schema as shipped in [`SCHEMA_FILE`] and printed by `banditd schema`: pretty-printed
/// with two-space indents and a final newline.
pub fn json_schema_text() -> String {
    format!("{:#}\n", json_schema())
}

const DURATION_HELP: &str = "A whole number and one unit: s, m, h, d or w (45s, 30m, 12h, \
    7d, 2w); no decimals, no spaces, not zero.";

/// What `banditd validate` checks beyond this schema: rules that compare two places of the
/// file, and limits of numbers and of YAML that JSON cannot see.
fn top_level_description() -> String {
    format!(
        "One banditd experiment: the variants to compare and how traffic is split between \
         them. `banditd validate` checks everything this schema checks, and also: \
         `default_variant` and `winner` must name one of the variants; variant ids must be \
         unique within the file; a guardrail's `against` must name one of the variants, its \
         metric must be unique within the file, and its max_relative_change must be below 1 \
         with higher_is_better; min_share × the number of variants must stay below 1; \
         experiment ids must be unique across the folder; numbers must be finite (no .inf or \
         .nan); a duration is at most 18446744073709551 seconds (about 584 million years); a \
         whole number written with a decimal point or an exponent (100.0, 1e3) must be at \
         most 2^53; payload mapping keys must stay distinct once turned into JSON text; one \
         YAML document per file, no duplicate keys, at most {MAX_NESTING} levels of \
         nesting, and YAML 1.2 values (`yes`, `no` and `on` are text, not true/false)."
    )
}

/// The YAML spellings of an enumeration, in the parser's order.
fn names<T>(choices: &[(&str, T)]) -> Vec<Value> {
    choices.iter().map(|(name, _)| json!(name)).collect()
}

/// The spellings plus `null`, for an optional field whose empty value means the default.
fn nullable_names<T>(choices: &[(&str, T)]) -> Vec<Value> {
    let mut values = names(choices);
    values.push(Value::Null);
    values
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "schema_corpus_tests.rs"]
mod corpus_tests;
