//! How requests arrive on a connection: a head a byte at a time, several heads in one write,
//! and a connection whose request waits for the store's commit before the next one comes.
//! `vendor/actix-http` returns early from decoding an empty read buffer; these guard that every
//! non-empty buffer, however little it holds, is still decoded as before.

use std::io::Write;
use std::time::Duration;

use crate::helpers::{STICKY, TestApp, raw_exchange};

/// The complete responses in `answer`, each as its status line and body.
fn split_answers(answer: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(answer);
    let mut text: &str = &text;
    let mut answers = Vec::new();
    while let Some((head, rest)) = text.split_once("\r\n\r\n") {
        let Some(length) = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .and_then(|n| n.trim().parse::<usize>().ok())
        else {
            break;
        };
        if rest.len() < length {
            break;
        }
        let status = head.lines().next().unwrap_or_default();
        answers.push(format!("{status} {}", &rest[..length]));
        text = &rest[length..];
    }
    answers
}

fn assign_head(unit: &str) -> String {
    format!("GET /v1/experiments/headline/assign?unit={unit} HTTP/1.1\r\nHost: banditd\r\n\r\n")
}

#[test]
fn a_request_head_that_arrives_a_byte_at_a_time_is_answered() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    let head = assign_head("bytewise");
    let (first, rest) = head.as_bytes().split_at(1);
    let mut sent = false;
    let answer = raw_exchange(&app, first, Duration::from_secs(20), |stream, answer| {
        if !sent {
            stream.set_nodelay(true).unwrap();
            for byte in rest {
                stream.write_all(&[*byte]).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
            sent = true;
        }
        split_answers(answer).is_empty()
    });
    let answers = split_answers(answer.as_bytes());
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert!(answers[0].starts_with("HTTP/1.1 200"), "{answers:?}");
    assert!(answers[0].contains(r#""counted":true"#), "{answers:?}");
}

#[test]
fn pipelined_requests_in_one_write_are_each_answered_in_order() {
    let app = TestApp::spawn(&[("headline.yaml", STICKY)]);
    app.assign("headline", "known");
    // A new unit (answered after the store's commit), a known one, a new one again, and a
    // single event: each waits behind the one before it on the connection.
    let event = r#"[{"id":"pipelined-1","experiment":"headline","unit":"known"}]"#;
    let requests = format!(
        "{}{}{}POST /v1/events HTTP/1.1\r\nHost: banditd\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{event}",
        assign_head("pipelined-new-1"),
        assign_head("known"),
        assign_head("pipelined-new-2"),
        event.len()
    );
    let answer = raw_exchange(
        &app,
        requests.as_bytes(),
        Duration::from_secs(20),
        |_, answer| split_answers(answer).len() < 4,
    );
    let answers = split_answers(answer.as_bytes());
    assert_eq!(answers.len(), 4, "{answers:?}");
    assert!(
        answers.iter().all(|a| a.starts_with("HTTP/1.1 200")),
        "{answers:?}"
    );
    assert!(answers[0].contains(r#""counted":true"#), "{answers:?}");
    assert!(answers[1].contains(r#""counted":false"#), "{answers:?}");
    assert!(answers[2].contains(r#""counted":true"#), "{answers:?}");
    assert!(answers[3].contains(r#""applied":1"#), "{answers:?}");
}
