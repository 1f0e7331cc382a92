//! `POST /v1/events`' answer (`EventBatchReport`) written straight into bytes.
//!
//! Every events request answers one, so its JSON is on the path of every single-event POST.
//! `HttpResponse::Ok().json(..)` formats the mime type into a fresh header value, and serde's
//! derived path escapes each of the nine field names and grows its buffer from 128 bytes on
//! every call; here the names are literals and the buffer is sized once. The values keep
//! serde_json's own formatting (numbers, the reasons' names, each rejection through serde),
//! and the tests compare the bytes with serde's for every shape the report takes, so the body
//! is the same.

use actix_web::HttpResponse;
use actix_web::http::header::HeaderValue;

use super::assign_json::{json_bool, json_value};
use crate::engine::EventBatchReport;

/// Room for a report without rejections (~160 bytes) and a few listed ones without growing.
const TYPICAL_REPORT_BYTES: usize = 256;

/// Appends the report's JSON to `out`: the bytes `serde_json::to_vec(report)` makes.
pub fn write_report(report: &EventBatchReport, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"received\":");
    json_value(out, &report.received);
    out.extend_from_slice(b",\"applied\":");
    json_value(out, &report.applied);
    out.extend_from_slice(b",\"duplicate\":");
    json_value(out, &report.duplicate);
    out.extend_from_slice(b",\"already_rewarded\":");
    json_value(out, &report.already_rewarded);
    out.extend_from_slice(b",\"rejected\":");
    json_value(out, &report.rejected);
    json_bool(out, b",\"all_rejected\":", report.all_rejected);
    out.extend_from_slice(b",\"rejected_by_reason\":");
    json_value(out, &report.rejected_by_reason);
    out.extend_from_slice(b",\"rejections\":");
    json_value(out, &report.rejections);
    out.extend_from_slice(b",\"rejections_omitted\":");
    json_value(out, &report.rejections_omitted);
    out.push(b'}');
}

/// The 200 answer of `POST /v1/events`: what `HttpResponse::Ok().json(report)` answers (the
/// same `Content-Type: application/json` and body).
pub fn ok_response(report: &EventBatchReport) -> HttpResponse {
    let mut body = Vec::with_capacity(TYPICAL_REPORT_BYTES);
    write_report(report, &mut body);
    HttpResponse::Ok()
        .content_type(HeaderValue::from_static("application/json"))
        .body(body)
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;
    use actix_web::http::header::CONTENT_TYPE;

    use super::*;
    use crate::engine::{Rejection, RejectionReason};

    fn rejection(index: usize, line: Option<usize>, id: Option<&str>) -> Rejection {
        Rejection {
            index,
            line,
            id: id.map(str::to_owned),
            reason: RejectionReason::OutsideWindow,
            detail: "the reward arrived after the \"7d\" window\n\u{7f}\u{1}é".to_owned(),
        }
    }

    fn reports() -> Vec<EventBatchReport> {
        let one = EventBatchReport {
            received: 1,
            applied: 1,
            ..EventBatchReport::default()
        };
        let mut mixed = EventBatchReport {
            received: 10_000,
            applied: 9_990,
            duplicate: 3,
            already_rewarded: 2,
            rejected: 5,
            all_rejected: false,
            rejections_omitted: usize::MAX,
            ..EventBatchReport::default()
        };
        mixed.rejected_by_reason.insert("outside_window", 4);
        mixed.rejected_by_reason.insert("invalid_event", 1);
        mixed.rejections = vec![
            rejection(0, None, None),
            rejection(17, Some(19), Some("evt-\u{2028}\"x\"")),
        ];
        let all = EventBatchReport {
            received: 2,
            rejected: 2,
            all_rejected: true,
            rejections: vec![rejection(1, Some(2), Some("evt-2"))],
            ..EventBatchReport::default()
        };
        vec![EventBatchReport::default(), one, mixed, all]
    }

    #[test]
    fn the_report_is_the_bytes_serde_writes_for_every_shape() {
        for report in reports() {
            let mut ours = Vec::new();
            write_report(&report, &mut ours);
            let serde = serde_json::to_vec(&report).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
    }

    #[test]
    fn the_answer_is_what_json_answers() {
        for report in reports() {
            let ours = ok_response(&report);
            let theirs = HttpResponse::Ok().json(&report);
            assert_eq!(ours.status(), theirs.status());
            assert_eq!(
                ours.headers().get(CONTENT_TYPE),
                theirs.headers().get(CONTENT_TYPE)
            );
            assert_eq!(ours.headers().len(), theirs.headers().len());
            let ours = ours.into_body().try_into_bytes().ok();
            let theirs = theirs.into_body().try_into_bytes().ok();
            assert!(ours.is_some());
            assert_eq!(ours, theirs);
        }
    }
}
