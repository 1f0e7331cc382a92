//! The `assignments` export of a per-request `exposure: on_render` experiment: one row per
//! retained confirmation mark, i.e. per confirmed exposure (with its propensity, for
//! inverse-propensity evaluation), as the sticky on_render export lists the confirmed units.
//! Marks are kept until the later of `confirm_within` and the reward window has passed since
//! the draw, plus a day (`store::rules::confirmation_mark_retained_until`).

use super::export::{Cell, rfc3339_utc};
use crate::store::TokenConfirmation;

/// Columns of the confirmed-exposure export.
pub const CONFIRMATION_COLUMNS: &[&str] = &[
    "assignment_id",
    "variant",
    "issued_ms",
    "issued_at",
    "propensity",
    "confirmed_ms",
    "confirmed_at",
    "retained_until_ms",
];

pub fn confirmation_cells(mark: &TokenConfirmation) -> Vec<Cell> {
    vec![
        Cell::Text(mark.assignment_id.clone()),
        Cell::Text(mark.variant.clone()),
        Cell::Int(mark.issued_ms),
        rfc3339_utc(mark.issued_ms).map_or(Cell::Null, Cell::Text),
        Cell::Num(mark.propensity),
        Cell::Int(mark.confirmed_ms),
        rfc3339_utc(mark.confirmed_ms).map_or(Cell::Null, Cell::Text),
        Cell::Int(mark.retained_until_ms),
    ]
}
