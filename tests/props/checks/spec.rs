//! The YAML-spec property, written once: `tests/props/spec.rs` runs it on generated files and
//! the `spec_parser` fuzz target (`fuzz/fuzz_targets/`) on libFuzzer's, both by including
//! this file.

use std::path::Path;

use banditd::plan::document_text;
use banditd::spec::{Position, parse_experiment};

/// Refused: at least one error, each naming the file and a line:column that exists in the
/// text (a column on the line or just after its end; or 0:0, the file as a whole). Accepted: the experiment's document form (what
/// `GET /v1/admin/config` hands to `banditd plan`) reads back to the same experiment.
pub fn check(file: &Path, text: &str) {
    match parse_experiment(file, text) {
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without a reason");
            let widths = line_widths(text);
            for error in errors {
                assert_eq!(error.file, file);
                assert!(!error.message.trim().is_empty(), "{error:?}");
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
}

/// Characters per line, lines ended as YAML ends them (LF, CRLF or a lone CR).
pub fn line_widths(text: &str) -> Vec<usize> {
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
pub fn is_place(widths: &[usize], pos: Position) -> bool {
    pos.line >= 1
        && pos.column >= 1
        && widths
            .get(pos.line - 1)
            .is_some_and(|&width| pos.column <= width + 1)
}
