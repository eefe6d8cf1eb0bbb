//! Histories (`shared/spec/history.md`): event types, a streaming JSON
//! Lines reader that validates as it goes, and the pairing of invokes with
//! their completions into operations.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use std::collections::HashMap;
use std::io::BufRead;

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

/// A history that cannot be read, naming the line and field.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
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
        /// The parser's message.
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
    /// The events in file order.
    pub events: Vec<Event>,
}

fn field_err(line: u64, field: &'static str, problem: impl Into<String>) -> HistoryError {
    HistoryError::Field {
        line,
        field,
        problem: problem.into(),
    }
}

fn parse_event(line_no: u64, text: &str, position: u64) -> Result<Event, HistoryError> {
    let mut v: Value = serde_json::from_str(text).map_err(|e| HistoryError::Json {
        line: line_no,
        problem: e.to_string(),
    })?;
    let obj = v.as_object_mut().ok_or_else(|| HistoryError::Json {
        line: line_no,
        problem: "expected an object".into(),
    })?;
    let process = match obj.get("process") {
        Some(Value::Number(n)) => Process::Client(n.as_u64().ok_or_else(|| {
            field_err(
                line_no,
                "process",
                format!("{n} is not a non-negative integer"),
            )
        })?),
        Some(Value::String(s)) if s == "nemesis" => Process::Nemesis,
        Some(other) => {
            return Err(field_err(
                line_no,
                "process",
                format!("expected an integer or \"nemesis\", got {other}"),
            ))
        }
        None => return Err(field_err(line_no, "process", "missing")),
    };
    let kind = match obj.get("type").and_then(Value::as_str) {
        Some("invoke") => EventType::Invoke,
        Some("ok") => EventType::Ok,
        Some("fail") => EventType::Fail,
        Some("info") => EventType::Info,
        Some(other) => {
            return Err(field_err(
                line_no,
                "type",
                format!("`{other}` is not invoke, ok, fail or info"),
            ))
        }
        None => return Err(field_err(line_no, "type", "missing or not a string")),
    };
    let f = obj
        .get("f")
        .and_then(Value::as_str)
        .ok_or_else(|| field_err(line_no, "f", "missing or not a string"))?
        .to_string();
    let time = obj
        .get("time")
        .and_then(Value::as_u64)
        .ok_or_else(|| field_err(line_no, "time", "missing or not a non-negative integer"))?;
    let key = match obj.get("key") {
        None | Some(Value::Null) => None,
        Some(k @ (Value::String(_) | Value::Number(_))) => Some(k.clone()),
        Some(other) => {
            return Err(field_err(
                line_no,
                "key",
                format!("expected a string or integer, got {other}"),
            ))
        }
    };
    let index = match obj.get("index") {
        None => position,
        Some(i) => i
            .as_u64()
            .ok_or_else(|| field_err(line_no, "index", "not a non-negative integer"))?,
    };
    let text_field = |name: &'static str| -> Result<Option<String>, HistoryError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Ok(Some(other.to_string())),
        }
    };
    Ok(Event {
        index,
        process,
        kind,
        f,
        key,
        time,
        node: text_field("node")?,
        error: text_field("error")?,
        value: obj.remove("value").unwrap_or(Value::Null), // moved: it may be a whole chain
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

/// Reads and validates a history line by line (blank lines are skipped).
pub fn read_history(reader: impl BufRead) -> Result<History, HistoryError> {
    let mut events = Vec::new();
    for_each_event(reader, |e| events.push(e))?;
    Ok(History { events })
}

/// Reads and validates a history line by line, handing each event to
/// `each` as soon as it is read and keeping none (for checkers that need
/// only a summary of each event: their memory stays far below the
/// history's).
pub fn for_each_event(
    mut reader: impl BufRead,
    mut each: impl FnMut(Event),
) -> Result<(), HistoryError> {
    let mut events = 0u64;
    let mut validator = Validator::default();
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
            break;
        }
        let text = buf.trim();
        if text.is_empty() {
            continue;
        }
        let e = parse_event(line_no, text, events)?;
        validator.check(line_no, &e)?;
        events += 1;
        each(e);
    }
    Ok(())
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
