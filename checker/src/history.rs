//! Histories (`docs/history.md`): event types, a streaming JSON Lines
//! reader that validates as it goes (EDN is read by [`crate::edn`] into the
//! same events), and the pairing of invokes with their completions into
//! operations.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::path::Path;
use std::str::FromStr;

/// Who issued an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    /// A client's logical process.
    Client(u64),
    /// The nemesis.
    Nemesis,
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(p) => s.serialize_u64(*p),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

/// The kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// An operation begins.
    Invoke,
    /// It took effect exactly once.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Unknown whether it took effect.
    Info,
}

/// One line of a history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Position in the file.
    pub index: u64,
    /// Who.
    pub process: Process,
    /// What kind.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The operation.
    pub f: String,
    /// The object acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    /// Argument or result.
    pub value: Value,
    /// Nanoseconds, monotonic.
    pub time: u64,
    /// The node the client talked to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why, on fail / info.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A history that cannot be read or judged, naming the line and field.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be opened or read whole.
    #[error("cannot read: {source}")]
    Open {
        /// The cause.
        source: std::io::Error,
    },
    /// Reading failed.
    #[error("line {line}: read error: {source}")]
    Io {
        /// 1-based line.
        line: u64,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not a JSON object.
    #[error("line {line}: not a JSON object: {problem}")]
    Json {
        /// 1-based line.
        line: u64,
        /// What is wrong, in file lines and columns.
        problem: String,
    },
    /// An EDN form is not a map, or not EDN.
    #[error("line {line}: not an EDN map: {problem}")]
    Edn {
        /// 1-based line where the form starts (or the parser stopped).
        line: u64,
        /// What is wrong.
        problem: String,
    },
    /// A field is missing or has the wrong type or value.
    #[error("line {line}: field `{field}`: {problem}")]
    Field {
        /// 1-based line.
        line: u64,
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The file holds no event.
    #[error("the history is empty: there is nothing to judge")]
    Empty,
    /// No event is an operation of the checker's model.
    #[error("no operation of the {model} model ({ops}): the history holds only nemesis events")]
    NoOperations {
        /// The model's name.
        model: &'static str,
        /// The operations it defines, comma-separated.
        ops: String,
    },
}

impl HistoryError {
    /// The 1-based file line the error is about, when there is one.
    pub fn line(&self) -> Option<u64> {
        match self {
            HistoryError::Io { line, .. }
            | HistoryError::Json { line, .. }
            | HistoryError::Edn { line, .. }
            | HistoryError::Field { line, .. } => Some(*line),
            HistoryError::Open { .. } | HistoryError::Empty | HistoryError::NoOperations { .. } => {
                None
            }
        }
    }
}

/// How a history file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON Lines, one event object per line (`docs/history.md`).
    Jsonl,
    /// Jepsen's EDN: one map per line, or one vector of maps.
    Edn,
}

impl Format {
    /// The format a file's name implies: `.edn` is EDN, anything else JSON
    /// Lines.
    pub fn of_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("edn") => Format::Edn,
            _ => Format::Jsonl,
        }
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "edn" => Ok(Format::Edn),
            other => Err(format!("unknown format `{other}` (expected jsonl or edn)")),
        }
    }
}

/// A complete operation: an invoke and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    /// Position among the history's operations.
    pub id: usize,
    /// Who.
    pub process: u64,
    /// The operation.
    pub f: String,
    /// The object.
    pub key: Option<Value>,
    /// The argument (invoke's value).
    pub input: Value,
    /// The result (ok's value), `Null` otherwise.
    pub output: Value,
    /// How it ended; `Info` also for an invoke that never completed.
    pub outcome: EventType,
    /// Invoke time, ns.
    pub invoke_time: u64,
    /// Completion time, ns; `None` for `info` (it may take effect later).
    pub complete_time: Option<u64>,
    /// Index of the invoke event.
    pub invoke_index: u64,
    /// Index of the completion event, if any.
    pub complete_index: Option<u64>,
    /// The node named on the invoke.
    pub node: Option<String>,
}

/// A validated history.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The events in file order; `events[i].index == i`.
    pub events: Vec<Event>,
    /// The 1-based file line of each event (where its form starts, in EDN).
    lines: Vec<u64>,
}

pub(crate) fn field_err(
    line: u64,
    field: &'static str,
    problem: impl Into<String>,
) -> HistoryError {
    HistoryError::Field {
        line,
        field,
        problem: problem.into(),
    }
}

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

fn parse_process(line: u64, v: Option<&Value>) -> Result<Process, HistoryError> {
    match v {
        Some(Value::Number(n)) => Ok(Process::Client(n.as_u64().ok_or_else(|| {
            field_err(
                line,
                "process",
                format!("{n} is not a non-negative integer"),
            )
        })?)),
        Some(Value::String(s)) if s == "nemesis" => Ok(Process::Nemesis),
        Some(other) => Err(field_err(
            line,
            "process",
            format!("expected an integer or \"nemesis\", got {other}"),
        )),
        None => Err(field_err(line, "process", "missing")),
    }
}

fn parse_kind(line: u64, v: Option<&Value>) -> Result<EventType, HistoryError> {
    match v.and_then(Value::as_str) {
        Some("invoke") => Ok(EventType::Invoke),
        Some("ok") => Ok(EventType::Ok),
        Some("fail") => Ok(EventType::Fail),
        Some("info") => Ok(EventType::Info),
        Some(other) => Err(field_err(
            line,
            "type",
            format!("`{other}` is not invoke, ok, fail or info"),
        )),
        None => Err(field_err(line, "type", "missing or not a string")),
    }
}

/// The event's position; a given `index` must be it, since the checker
/// orders operations by position and a renumbered or reordered file would
/// otherwise change the verdict.
fn check_index(line: u64, v: Option<&Value>, position: u64) -> Result<u64, HistoryError> {
    match v {
        None | Some(Value::Null) => Ok(position),
        Some(i) => match i.as_u64() {
            Some(i) if i == position => Ok(position),
            Some(i) => Err(field_err(
                line,
                "index",
                format!("{i} is not the event's position {position} (indexes count the events from 0 in file order; omit `index` to have them counted)"),
            )),
            None => Err(field_err(line, "index", format!("{i} is not a non-negative integer"))),
        },
    }
}

/// Builds an event from a JSON object (a JSON Lines line, or an EDN map
/// translated to JSON) at `position` among the file's events.
pub(crate) fn event_from_object(
    line: u64,
    obj: &mut serde_json::Map<String, Value>,
    position: u64,
) -> Result<Event, HistoryError> {
    let process = parse_process(line, obj.get("process"))?;
    let kind = parse_kind(line, obj.get("type"))?;
    let f = obj
        .get("f")
        .and_then(Value::as_str)
        .ok_or_else(|| field_err(line, "f", "missing or not a string"))?
        .to_string();
    let time = obj
        .get("time")
        .and_then(Value::as_u64)
        .ok_or_else(|| field_err(line, "time", "missing or not a non-negative integer"))?;
    let key = match obj.get("key") {
        None | Some(Value::Null) => None,
        Some(k @ (Value::String(_) | Value::Number(_))) => Some(k.clone()),
        Some(other) => {
            return Err(field_err(
                line,
                "key",
                format!("expected a string or integer, got {other}"),
            ))
        }
    };
    let index = check_index(line, obj.get("index"), position)?;
    let text_field = |name: &str| match obj.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    Ok(Event {
        index,
        process,
        kind,
        f,
        key,
        time,
        node: text_field("node"),
        error: text_field("error"),
        // Moved, not copied: a final read's value is a whole chain.
        value: obj.remove("value").unwrap_or(Value::Null),
    })
}

#[derive(Default)]
struct Validator {
    pending: HashMap<u64, (u64, String)>,
    crashed: HashMap<u64, u64>,
    last_time: Option<(u64, u64)>,
}

impl Validator {
    fn check(&mut self, line: u64, e: &Event) -> Result<(), HistoryError> {
        if let Some((t, l)) = self.last_time {
            if e.time < t {
                return Err(field_err(
                    line,
                    "time",
                    format!(
                        "{} is earlier than {t} on line {l}: times must not decrease",
                        e.time
                    ),
                ));
            }
        }
        self.last_time = Some((e.time, line));
        let Process::Client(p) = e.process else {
            return Ok(());
        };
        if let Some(l) = self.crashed.get(&p) {
            return Err(field_err(
                line,
                "process",
                format!("process {p} is used again after its `info` on line {l}"),
            ));
        }
        match e.kind {
            EventType::Invoke => {
                if let Some((l, _)) = self.pending.get(&p) {
                    return Err(field_err(
                        line,
                        "process",
                        format!(
                            "process {p} invokes again without completing its invoke on line {l}"
                        ),
                    ));
                }
                self.pending.insert(p, (line, e.f.clone()));
            }
            kind => {
                let Some((_, f)) = self.pending.remove(&p) else {
                    return Err(field_err(
                        line,
                        "type",
                        format!("`{kind:?}` completion by process {p} with no invoke pending")
                            .to_lowercase(),
                    ));
                };
                if f != e.f {
                    return Err(field_err(
                        line,
                        "f",
                        format!(
                            "completion `{}` does not match the pending invoke `{f}`",
                            e.f
                        ),
                    ));
                }
                if kind == EventType::Info {
                    self.crashed.insert(p, line);
                }
            }
        }
        Ok(())
    }
}

/// Collects events as a reader produces them, validating each against
/// those before it.
#[derive(Default)]
pub(crate) struct Collector {
    history: History,
    validator: Validator,
}

impl Collector {
    /// The position the next event will have.
    pub(crate) fn position(&self) -> u64 {
        self.history.events.len() as u64
    }

    /// Validates and appends an event read at `line`.
    pub(crate) fn push(&mut self, line: u64, event: Event) -> Result<(), HistoryError> {
        self.validator.check(line, &event)?;
        self.history.events.push(event);
        self.history.lines.push(line);
        Ok(())
    }

    /// The history collected.
    pub(crate) fn finish(self) -> History {
        self.history
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

/// Reads and validates a history in the given format.
pub fn read_history_as(reader: impl BufRead, format: Format) -> Result<History, HistoryError> {
    match format {
        Format::Jsonl => read_history(reader),
        Format::Edn => {
            let mut text = String::new();
            let read = reader
                .take(crate::edn::EDN_BYTES_MAX + 1)
                .read_to_string(&mut text)
                .map_err(|source| HistoryError::Open { source })?;
            if read as u64 > crate::edn::EDN_BYTES_MAX {
                return Err(HistoryError::Open {
                    source: std::io::Error::other(format!(
                        "an EDN history is read whole, and this one is larger than {} bytes",
                        crate::edn::EDN_BYTES_MAX
                    )),
                });
            }
            crate::edn::read_edn_history(&text)
        }
    }
}

/// Opens and reads a history file; `format` defaults to the one its name
/// implies ([`Format::of_path`]).
pub fn read_history_file(path: &Path, format: Option<Format>) -> Result<History, HistoryError> {
    let file = std::fs::File::open(path).map_err(|source| HistoryError::Open { source })?;
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    read_history_as(reader, format.unwrap_or_else(|| Format::of_path(path)))
}

impl History {
    /// Pairs invokes with completions into operations of client processes,
    /// in invoke order. `fail` ops are kept (checkers drop them).
    pub fn ops(&self) -> Vec<Op> {
        let mut ops: Vec<Op> = Vec::new();
        let mut open: HashMap<u64, usize> = HashMap::new();
        for e in &self.events {
            let Process::Client(p) = e.process else {
                continue;
            };
            if e.kind == EventType::Invoke {
                open.insert(p, ops.len());
                ops.push(Op {
                    id: ops.len(),
                    process: p,
                    f: e.f.clone(),
                    key: e.key.clone(),
                    input: e.value.clone(),
                    output: Value::Null,
                    outcome: EventType::Info,
                    invoke_time: e.time,
                    complete_time: None,
                    invoke_index: e.index,
                    complete_index: None,
                    node: e.node.clone(),
                });
            } else if let Some(i) = open.remove(&p) {
                let op = &mut ops[i];
                op.outcome = e.kind;
                op.complete_index = Some(e.index);
                if e.kind != EventType::Info {
                    op.complete_time = Some(e.time);
                }
                if e.kind == EventType::Ok {
                    op.output = e.value.clone();
                }
            }
        }
        ops
    }

    /// The 1-based file line of the event at `position`.
    pub fn line_of(&self, position: usize) -> u64 {
        self.lines
            .get(position)
            .copied()
            .unwrap_or(position as u64 + 1)
    }

    /// The nemesis events.
    pub fn nemesis_events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(|e| e.process == Process::Nemesis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<History, HistoryError> {
        read_history(text.as_bytes())
    }

    #[test]
    fn the_spec_example_reads_and_pairs() {
        let text = r#"{"index":0,"process":0,"type":"invoke","f":"write","key":"x","value":3,"time":1000}
{"index":1,"process":1,"type":"invoke","f":"read","key":"x","value":null,"time":1200}
{"index":2,"process":0,"type":"ok","f":"write","key":"x","value":3,"time":5100}
{"index":3,"process":1,"type":"ok","f":"read","key":"x","value":3,"time":5300,"extra":"ignored"}
{"index":4,"process":"nemesis","type":"info","f":"partition","value":{"grudge":[["n1"],["n2","n3"]]},"time":6000}
"#;
        let h = read(text).unwrap();
        assert_eq!(h.events.len(), 5);
        let ops = h.ops();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[1].output, serde_json::json!(3));
        assert_eq!(ops[0].complete_time, Some(5100));
        let line = serde_json::to_string(&h.events[4]).unwrap();
        assert!(
            line.contains(r#""process":"nemesis""#) && !line.contains("node"),
            "{line}"
        );
    }

    #[test]
    fn indexes_are_positions_and_lines_are_file_lines() {
        let text = "\n{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"w\",\"time\":1}\n\n{\"process\":0,\"type\":\"ok\",\"f\":\"w\",\"time\":2}\n";
        let h = read(text).unwrap();
        assert_eq!(h.events[1].index, 1, "a missing index is the position");
        assert_eq!((h.line_of(0), h.line_of(1)), (2, 4));
    }

    #[test]
    fn every_malformation_names_line_and_field() {
        let cases = [
            (r#"{"process":0,"type":"ok","f":"read","value":1,"time":1}"#, "line 1: field `type`"),
            ("{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"time\":1}\n{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"time\":2}", "line 2: field `process`"),
            ("{\"process\":0,\"type\":\"invoke\",\"f\":\"w\",\"time\":1}\n{\"process\":0,\"type\":\"info\",\"f\":\"w\",\"time\":2}\n{\"process\":0,\"type\":\"invoke\",\"f\":\"w\",\"time\":3}", "line 3: field `process`"),
            (r#"{"process":0,"type":"maybe","f":"read","time":1}"#, "line 1: field `type`"),
            ("{\"process\":0,\"type\":\"invoke\",\"f\":\"r\",\"time\":5}\n{\"process\":0,\"type\":\"ok\",\"f\":\"r\",\"time\":4}", "line 2: field `time`"),
            (r#"{"process":-1,"type":"invoke","f":"read","time":1}"#, "line 1: field `process`"),
            (r#"{"process":0,"type":"invoke","time":1}"#, "line 1: field `f`"),
            ("not json", "line 1: not a JSON object"),
            ("{\"process\":0,\"type\":\"invoke\",\"f\":\"r\",\"time\":1}\n\n{\"process\": 1, \"type\" \"ok\"}", "line 3: not a JSON object: expected `:` at column 23"),
            (r#"{"index":7,"process":0,"type":"invoke","f":"read","time":1}"#, "line 1: field `index`: 7 is not the event's position 0"),
            (r#"[{"process":0,"type":"invoke","f":"read","time":1}]"#, "line 1: not a JSON object: this file looks like one JSON array"),
            ("[\n{\"process\":0}\n]", "line 1: not a JSON object: this file looks like one JSON array"),
            ("{:process 0, :type :invoke, :f :read, :time 1}", "line 1: not a JSON object: this looks like EDN"),
            ("{\n\"process\": 0}", "line 1: not a JSON object: an event spread over several lines"),
        ];
        for (text, expected) in cases {
            let e = read(text).unwrap_err().to_string();
            assert!(
                e.starts_with(expected),
                "{text}\n  gave: {e}\n  want: {expected}"
            );
        }
    }
}
