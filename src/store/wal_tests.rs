//! The redo log's own format: records, segments, the replay's stopping rules.
