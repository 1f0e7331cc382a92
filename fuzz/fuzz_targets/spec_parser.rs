//! Experiment YAML files. Property: no panic (and, with `-timeout`, no runaway time); a refused
//! file gets errors that each name the file and a line:column inside it (lines end as YAML
//! ends them: LF, CRLF or a lone CR; 0:0 stands for the file as a whole); an accepted file
//! survives the trip through its own document form (`Experiment::to_document`, which
//! `banditd plan --server` relies on) unchanged. Written once in `tests/props/checks/spec.rs`,
//! shared with the property tests.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/props/checks/spec.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    // The catalog refuses non-UTF-8 files before the parser sees them.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    checks::check(Path::new("experiments/fuzz.yaml"), text);
});
