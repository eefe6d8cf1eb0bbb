//! The JSON Lines reader (`docs/history.md`): one event object per line,
//! validated as it is read.

use crate::history::event::{
    event_from_object, Collector, Event, History, HistoryError, Validator,
};
use serde_json::Value;
use std::io::BufRead;

/// Why a line that is not a JSON object may be something else, in words a
/// user can act on.
fn shape_hint(text: &str) -> Option<&'static str> {
    let after_brace = text.strip_prefix('{').map(str::trim_start);
    if text.starts_with('[') && text.contains("{:")
        || after_brace.is_some_and(|t| t.starts_with(':'))
        || text.starts_with(';')
    {
        Some("this looks like EDN (Jepsen's history format): name the file `.edn` or pass `--format edn`")
    } else if text.starts_with('[') {
        Some("this file looks like one JSON array; a history is JSON Lines, one event object per line (`jq -c '.[]'` converts it)")
    } else if text == "{" {
        Some("an event spread over several lines; each event must be one whole JSON object on one line")
    } else {
        None
    }
}

/// Parses one JSON Lines line into an object, translating the parser's
/// "line 1 column N" into the file's line.
fn parse_json_line(line: u64, text: &str) -> Result<serde_json::Map<String, Value>, HistoryError> {
    let problem = |what: String| {
        let problem = match shape_hint(text) {
            Some(hint) => format!("{hint} (parser: {what})"),
            None => what,
        };
        HistoryError::Json { line, problem }
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(other) => Err(problem(format!(
            "expected an object, got {}",
            json_kind(&other)
        ))),
        Err(e) => {
            let message = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = message.strip_suffix(&suffix).unwrap_or(&message);
            Err(problem(format!("{message} at column {}", e.column())))
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads and validates a JSON Lines history line by line (blank lines are
/// skipped).
pub fn read_history(reader: impl BufRead) -> Result<History, HistoryError> {
    let mut collector = Collector::default();
    json_lines(reader, |line, mut obj| {
        let e = event_from_object(line, &mut obj, collector.position())?;
        collector.push(line, e)
    })?;
    Ok(collector.finish())
}

/// Reads and validates a JSON Lines history, handing each event and its
/// line to `each` as soon as it is read and keeping none: for checkers that
/// need only a summary of each event, so that their memory stays far below
/// the history's (a long ordering run's final chains).
pub fn for_each_event(
    reader: impl BufRead,
    mut each: impl FnMut(u64, Event) -> Result<(), HistoryError>,
) -> Result<(), HistoryError> {
    let mut validator = Validator::default();
    let mut position = 0u64;
    json_lines(reader, |line, mut obj| {
        let e = event_from_object(line, &mut obj, position)?;
        validator.check(line, &e)?;
        position += 1;
        each(line, e)
    })
}

/// The JSON Lines loop: each non-blank line parsed into an object, with its
/// line number.
fn json_lines(
    mut reader: impl BufRead,
    mut each: impl FnMut(u64, serde_json::Map<String, Value>) -> Result<(), HistoryError>,
) -> Result<(), HistoryError> {
    let mut buf = String::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        line_no += 1;
        let n = reader
            .read_line(&mut buf)
            .map_err(|source| HistoryError::Io {
                line: line_no,
                source,
            })?;
        if n == 0 {
            return Ok(());
        }
        let text = buf.trim();
        if text.is_empty() {
            continue;
        }
        each(line_no, parse_json_line(line_no, text)?)?;
    }
}
