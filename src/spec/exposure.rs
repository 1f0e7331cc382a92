//! The top-level `exposure` and `confirm_within` fields: when an assignment counts as an
//! exposure. `on_assign` (the default) counts it when the server hands it out; `on_render`
//! records the assignment and counts the exposure only when the page confirms that the
//! variant was shown, within `confirm_within` of the assignment (README, "Exposure modes").

use super::duration::HumanDuration;
use super::fields::{self, Report};
use super::model::{ExposureMode, ExposureSpec};
use super::node::Node;

/// How long after an assignment its confirmation is accepted, when the file does not say.
pub const DEFAULT_CONFIRM_WITHIN_SECONDS: u64 = 600;

pub(super) const EXPOSURE_MODES: &[(&str, ExposureMode)] = &[
    ("on_assign", ExposureMode::OnAssign),
    ("on_render", ExposureMode::OnRender),
];

/// Reads `exposure` and `confirm_within` (either may be absent). `confirm_within` only means
/// something with `on_render`, so giving it otherwise is an error rather than silently
/// ignored. Both assignment modes take either exposure mode: a sticky confirmation names the
/// unit's remembered assignment, a per-request one the token's assignment id.
pub(super) fn exposure(
    report: &mut Report<'_>,
    mode_node: Option<&Node>,
    within_node: Option<&Node>,
) -> Option<ExposureSpec> {
    let mode = match mode_node {
        None => Some(ExposureMode::OnAssign),
        Some(n) => fields::choice(report, n, "exposure", EXPOSURE_MODES),
    };
    let confirm_within = match within_node {
        None => Some(HumanDuration::from_std(std::time::Duration::from_secs(
            DEFAULT_CONFIRM_WITHIN_SECONDS,
        ))),
        Some(n) => fields::duration(report, n, "confirm_within"),
    };
    if let (Some(ExposureMode::OnAssign), Some(n)) = (mode, within_node) {
        report.error(
            n.pos,
            "`confirm_within` only applies with `exposure: on_render` (assignments are \
             counted when handed out otherwise); remove it, or add `exposure: on_render`",
        );
        return None;
    }
    Some(ExposureSpec {
        mode: mode?,
        confirm_within: confirm_within?,
    })
}
