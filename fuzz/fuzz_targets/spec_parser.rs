//! Experiment YAML files. Property: no panic (and, with `-timeout`, no runaway time); a refused
//! file gets errors that each name the file and a line:column inside it (or 0:0 for the file
//! as a whole); an accepted file survives the trip through its own document form
//! (`Experiment::to_document`, which `banditd plan --server` relies on) unchanged.
#![no_main]

use std::path::Path;

use banditd::spec::{Position, parse_experiment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The catalog refuses non-UTF-8 files before the parser sees them.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("experiments/fuzz.yaml");
    match parse_experiment(file, text) {
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without a reason: {text:?}");
            let last_line = text.split('\n').count();
            for error in errors {
                assert_eq!(error.file, file);
                assert!(!error.message.trim().is_empty(), "{error:?} for {text:?}");
                let whole_file = error.position() == Position::FILE;
                assert!(
                    whole_file || (error.line >= 1 && error.column >= 1 && error.line <= last_line),
                    "{error} is not a place in {text:?}"
                );
            }
        }
        Ok(experiment) => {
            let json = experiment.to_document().to_string();
            let again = parse_experiment(file, &json)
                .unwrap_or_else(|e| panic!("document form {json} refused: {e:?}"));
            assert_eq!(
                again.to_document(),
                experiment.to_document(),
                "{text:?} → {json}"
            );
        }
    }
});
