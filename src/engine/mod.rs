//! Live experiments: assignment, event ingestion, stats snapshots.
