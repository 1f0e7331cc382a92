//! Experiment YAML files. Property: no panic (and, with `-timeout`, no runaway time); a refused
//! file gets errors that each name the file and a line:column inside it (lines end as YAML
//! ends them: LF, CRLF or a lone CR; 0:0 stands for the file as a whole); an accepted file
//! survives the trip through its own document form (`Experiment::to_document`, which
//! `banditd plan --server` relies on) unchanged.
#![no_main]

use std::path::Path;

use banditd::plan::document_text;
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
            let widths = line_widths(text);
            for error in errors {
                assert_eq!(error.file, file);
                assert!(!error.message.trim().is_empty(), "{error:?} for {text:?}");
                assert!(
                    error.position() == Position::FILE || is_place(&widths, error.position()),
                    "{error} is not a place in {text:?}"
                );
            }
        }
        Ok(experiment) => {
            // As `banditd plan --server` reads the server's configuration back.
            let json = document_text(&experiment.to_document()).expect("documents serialise");
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

/// Characters per line, lines ended as YAML ends them (LF, CRLF or a lone CR).
fn line_widths(text: &str) -> Vec<usize> {
    let mut widths = vec![0];
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                widths.push(0);
            }
            '\n' => widths.push(0),
            _ => *widths.last_mut().expect("never empty") += 1,
        }
    }
    widths
}

/// A 1-based line of the text, and a column on it or just after its last character.
fn is_place(widths: &[usize], pos: Position) -> bool {
    pos.line >= 1
        && pos.column >= 1
        && widths
            .get(pos.line - 1)
            .is_some_and(|&width| pos.column <= width + 1)
}
