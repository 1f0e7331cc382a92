//! Integration tests: the real binary, real HTTP, real sled files in temp dirs.

mod assign;
mod audit;
mod contract;
mod docs_readme;
mod docs_refs;
mod docs_text;
mod durability;
mod errors;
mod events;
mod events_batch;
mod export;
mod exposures;
mod failsafe;
mod folder;
mod helpers;
mod metrics;
mod operators;
mod redis_harness;
mod reload;
mod replicas;
mod security;
mod statistics;
mod tracing;
mod validate;
mod watch;
