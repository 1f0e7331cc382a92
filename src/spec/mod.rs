//! Experiment YAML: typed, validated experiment definitions. Pure: no file system access
//! (see `crate::catalog` for reading a folder), so every rule is exactly testable.
