//! What an event of a history is, how one is built from a JSON object
//! (a JSON Lines line or a translated EDN map) and validated against those
//! before it, and the pairing of events into operations. The layer below
//! both readers (`jsonl`, `edn`).

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use std::collections::HashMap;

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
    /// A field inside an event's value is missing or has the wrong type or
    /// value (a delivered block the ordering checker does not understand).
    #[error("line {line}: field `{path}`: {problem}")]
    ValueField {
        /// 1-based line.
        line: u64,
        /// Where in the event, as a path: `value.blocks[2].txs`.
        path: String,
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
            | HistoryError::Field { line, .. }
            | HistoryError::ValueField { line, .. } => Some(*line),
            HistoryError::Open { .. } | HistoryError::Empty | HistoryError::NoOperations { .. } => {
                None
            }
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

/// Checks each event against those before it: times never decrease, a
/// process completes what it invoked, and is not used again after `info`.
#[derive(Default)]
pub(crate) struct Validator {
    pending: HashMap<u64, (u64, String)>,
    crashed: HashMap<u64, u64>,
    last_time: Option<(u64, u64)>,
}

impl Validator {
    /// Validates `e`, read at `line`, against the events before it.
    pub(crate) fn check(&mut self, line: u64, e: &Event) -> Result<(), HistoryError> {
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
