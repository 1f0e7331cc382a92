//! Integration tests: the real binary, real HTTP, real sled files in temp dirs.

mod assign;
mod audit;
mod clients;
mod contract;
mod crash_loop;
mod delay;
mod dockerfile;
mod docs_readme;
mod docs_refs;
mod docs_text;
mod drift;
mod durability;
mod errors;
mod events;
mod events_batch;
mod export;
mod exposures;
mod exposures_per_request;
mod failsafe;
mod fill;
mod folder;
mod framing;
mod guardrails;
mod helpers;
mod metrics;
mod metrics_on_render;
mod metrics_redis;
mod operators;
/// Shared with the store's unit tests, which use other parts of it.
#[allow(dead_code)]
mod redis_harness;
mod regret;
mod reload;
mod replicas;
mod replicas_failover;
mod replicas_modes;
mod replicas_wait;
mod revisions;
mod security;
mod statistics;
mod tracing;
mod ui;
mod validate;
mod watch;
