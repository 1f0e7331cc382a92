//! banditd: a multi-armed-bandit experimentation server.
//!
//! Layers, top to bottom (see docs/ARCHITECTURE.md, "Layers"): `cli` → `http` → `engine` →
//! `policy` + `stats` (pure math) → `spec` (experiment YAML) and `store` (persistence).
//! `catalog` reads the experiment folder from disk so that `spec` stays free of I/O; `startup`
//! wires a server; `watcher` reloads it when the folder changes. Beside the server: `sim`
//! (the simulator, on the same policy code), `plan` and `export_cli` (the CLI commands that
//! talk to a running server), `telemetry` (logging), `metrics` (the Prometheus instruments
//! behind `GET /metrics`), `secret` (values kept out of logs) and `ui` (the dashboard's pages,
//! mounted through `http`'s route list).

pub mod audit_cli;
pub mod build_info;
pub mod catalog;
pub mod cli;
pub mod engine;
pub mod export_cli;
pub mod http;
pub mod metrics;
pub mod plan;
pub mod policy;
pub mod secret;
pub mod sim;
pub mod spec;
pub mod startup;
pub mod startup_summary;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod ui;
pub mod watcher;
