//! Lists in JSON log lines as JSON arrays. `tracing` records a field as a string, a number, a
//! bool or a `Debug` text; nested values need its unstable `valuable` support (a
//! rustc `--cfg tracing_unstable` build of every crate), so a list logged as `?experiments` arrives
//! as the string `"[\"a\", \"b\"]"`, which a log shipper cannot filter on. Here a list is
//! logged as [`JsonList`] (its JSON text) under one of [`JSON_LIST_FIELDS`], and the JSON
//! formatter's line is amended to carry that text as the array it is. Lines without such a
//! field (the access log, nearly everything) are written by tracing-subscriber untouched.

use std::fmt;

use serde::Serialize;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Event fields that hold a [`JsonList`]: their text becomes a JSON array in the JSON format.
pub const JSON_LIST_FIELDS: &[&str] = &["experiments", "errors", "files", "origins", "keys_set"];

/// A list as a log field: `experiments = %JsonList(&ids)`. Its text is the list's JSON, which
/// reads well in the pretty format too (`experiments=["a","b"]`).
pub struct JsonList<'a, T: Serialize>(pub &'a [T]);

impl<T: Serialize> fmt::Display for JsonList<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(self.0).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

/// Event formatter around tracing-subscriber's JSON one (see the module doc).
pub struct ListsAsArrays<F> {
    inner: F,
}

impl<F> ListsAsArrays<F> {
    pub fn new(inner: F) -> Self {
        Self { inner }
    }
}

impl<S, N, F> FormatEvent<S, N> for ListsAsArrays<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let has_list = event
            .metadata()
            .fields()
            .iter()
            .any(|field| JSON_LIST_FIELDS.contains(&field.name()));
        if !has_list {
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&lists_as_arrays(&line))
    }
}

/// The JSON line with every list field's text replaced by the array it holds; the line as it
/// was when it is not JSON or a field's text is not an array.
fn lists_as_arrays(line: &str) -> String {
    let Ok(mut object) = serde_json::from_str::<serde_json::Value>(line) else {
        return line.to_owned();
    };
    // tracing-subscriber nests the event's fields under "fields" unless they are flattened.
    let mut changed = false;
    if let Some(serde_json::Value::Object(fields)) = object.get_mut("fields") {
        changed |= amend(fields);
    }
    if let serde_json::Value::Object(top) = &mut object {
        changed |= amend(top);
    }
    if !changed {
        return line.to_owned();
    }
    let mut amended = object.to_string();
    if line.ends_with('\n') {
        amended.push('\n');
    }
    amended
}

/// Replaces the text of each list field that holds a JSON array with the array.
fn amend(fields: &mut serde_json::Map<String, serde_json::Value>) -> bool {
    let mut changed = false;
    for name in JSON_LIST_FIELDS {
        let Some(serde_json::Value::String(text)) = fields.get(*name) else {
            continue;
        };
        if let Ok(list @ serde_json::Value::Array(_)) = serde_json::from_str(text) {
            fields.insert((*name).to_owned(), list);
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::captured::Captured;

    fn json_lines(log: impl FnOnce()) -> Vec<serde_json::Value> {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .event_format(ListsAsArrays::new(tracing_subscriber::fmt::format().json()))
            .with_writer(captured.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        captured.lines()
    }

    #[test]
    fn a_logged_list_is_a_json_array_in_the_json_format() {
        let ids = vec!["headline".to_owned(), "ranking \"b\"".to_owned()];
        let errors: Vec<String> = Vec::new();
        let lines = json_lines(|| {
            tracing::info!(trigger = "sighup", experiments = %JsonList(&ids), errors = %JsonList(&errors), "reloaded");
        });
        let fields = &lines[0]["fields"];
        assert_eq!(
            fields["experiments"],
            serde_json::json!(["headline", "ranking \"b\""])
        );
        assert_eq!(fields["errors"], serde_json::json!([]));
        assert_eq!(fields["trigger"], "sighup");
        assert_eq!(fields["message"], "reloaded");
    }

    #[test]
    fn a_list_field_that_holds_no_array_and_other_lines_are_left_as_they_are() {
        let lines = json_lines(|| {
            tracing::warn!(errors = "[not json", "odd");
            tracing::info!(count = 3, "plain");
        });
        assert_eq!(lines[0]["fields"]["errors"], "[not json");
        assert_eq!(lines[1]["fields"]["count"], 3);
    }

    #[test]
    fn a_json_list_reads_as_json_in_the_pretty_format_too() {
        assert_eq!(JsonList(&["a", "b"]).to_string(), r#"["a","b"]"#);
    }
}
