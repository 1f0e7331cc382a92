//! The wording of messages an analyst meets in the first hour: each says what to write, in
//! the file's own terms, once. Shared fixtures live in `parse_tests.rs`.

use super::tests::{VALID, assert_error, errors, with_line, without_lines};

#[test]
fn min_share_written_as_a_percentage_gets_the_fraction() {
    assert_error(
        &with_line(13, "  min_share: 5%"),
        13,
        14,
        &[
            "`min_share` must be a number, found the text \"5%\"; write percentages as fractions: 0.05",
        ],
    );
    assert_error(
        &with_line(13, "  min_share: 5"),
        13,
        14,
        &[
            "`min_share` must be at least 0 and below 1, found 5; it is the share of traffic every \
           variant keeps, so for 5% write 0.05",
        ],
    );
}

#[test]
fn a_stopping_field_under_policy_is_told_to_move() {
    assert_error(
        &with_line(13, "  min_share: 0.02\n  prob_best: 0.95"),
        14,
        3,
        &["`prob_best` is not a field of `policy`; it belongs under `stopping:`: move it there"],
    );
    let message = &errors(&with_line(13, "  min_share: 0.02\n  prob_best: 0.95"))[0].message;
    assert!(!message.contains("allowed fields"), "{message}");
    // And the other way round, and a top-level field indented by mistake.
    let text = with_line(
        13,
        "  min_share: 0.02\nstopping:\n  prob_best: 0.95\n  max_expected_loss: 0.001\n  burn_in: 5",
    );
    assert_error(
        &text,
        17,
        3,
        &["`burn_in` is not a field of `stopping`; it belongs under `policy:`: move it there"],
    );
    assert_error(
        &with_line(13, "  min_share: 0.02\n  owner: me"),
        14,
        3,
        &[
            "`owner` is not a field of `policy`; it belongs at the top level of the file, not indented",
        ],
    );
}

#[test]
fn a_missing_default_variant_suggests_one_of_the_files_own_variants() {
    // `VALID` without `default_variant: control`, its variants renamed.
    let text = without_lines(&[14])
        .replace("id: control", "id: red")
        .replace("id: bold", "id: blue");
    assert!(!text.contains("control"), "{text}");
    let found = errors(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].message,
        "`default_variant` is missing in the experiment; add e.g. `default_variant: red`"
    );
}

#[test]
fn a_tab_in_the_indentation_is_told_to_use_spaces() {
    for text in [
        VALID.replace("  burn_in: 100", "\tburn_in: 100"),
        VALID.replace("variants:\n  - id: control", "variants:\n\t- id: control"),
    ] {
        let found = errors(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .message
                .ends_with("; YAML indents with spaces only: replace the tab with spaces (2 per level, as in the bundled files)"),
            "{}",
            found[0]
        );
        assert!(
            !found[0]
                .message
                .contains("check the indentation and quoting"),
            "{}",
            found[0]
        );
    }
}
