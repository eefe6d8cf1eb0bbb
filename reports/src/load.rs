//! Reading a run directory leniently: a report must be drawn even from a
//! history the checker rejects or a run cut short.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

/// One completed client operation.
#[derive(Debug, Clone, PartialEq)]
pub struct OpRecord {
    /// The operation (`submit`, `read`, …).
    pub f: String,
    /// `ok`, `fail` or `info`.
    pub outcome: Outcome,
    /// Invoke time, seconds since the test began.
    pub invoke_s: f64,
    /// Completion time minus invoke time, ms (`info`: until it was given up).
    pub latency_ms: f64,
    /// The node the client talked to, when the history names it.
    pub node: Option<String>,
    /// The client process (`null` for a process that is not a number).
    pub process: Option<u64>,
    /// One of the final reads after the workload (`deliver` with
    /// `"final": true`), not part of the load.
    pub final_read: bool,
}

impl OpRecord {
    /// When it completed, s since the test began.
    pub fn done_s(&self) -> f64 {
        self.invoke_s + self.latency_ms / 1e3
    }
}

/// How an op ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Took effect.
    Ok,
    /// Did not.
    Fail,
    /// Unknown.
    Info,
}

impl Outcome {
    /// The history's word for it.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        }
    }
}

/// A fault window from the nemesis's start and end events.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    /// `kill`, `pause`, `partition`, `clock`.
    pub fault: String,
    /// Nodes it touched.
    pub targets: Vec<String>,
    /// Seconds since the test began.
    pub start_s: f64,
    /// Seconds since the test began (the history's end if never closed).
    pub end_s: f64,
    /// A short label (grudge kind or clock mode when known).
    pub label: String,
    /// The start event's `value` (its grudge, mode, …).
    pub start: Value,
}

/// What a history holds for reports.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Completed client ops, in completion order.
    pub ops: Vec<OpRecord>,
    /// Fault windows, in start order.
    pub windows: Vec<FaultWindow>,
    /// Lines that could not be used.
    pub skipped_lines: u64,
    /// Time of the last event, s.
    pub end_s: f64,
    /// The `member` and `transfer` changes, in start order (also fault
    /// windows).
    pub changes: Vec<crate::members::ConfigChange>,
}

/// The fields of a history line the reports read, each left unparsed
/// until used: an op's `value` (a delivered chain can be large) is never
/// parsed into a tree, only looked into for `final`.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    process: Option<&'a RawValue>,
    #[serde(rename = "type", borrow)]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    f: Option<&'a RawValue>,
    #[serde(borrow)]
    time: Option<&'a RawValue>,
    #[serde(borrow)]
    node: Option<&'a RawValue>,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
}

/// An invoke's `value.final`.
#[derive(Deserialize)]
struct FinalFlag<'a> {
    #[serde(rename = "final", borrow)]
    is_final: Option<&'a RawValue>,
}

/// A field that is a JSON string, as text (`None` for anything else).
fn text(raw: Option<&RawValue>) -> Option<Cow<'_, str>> {
    serde_json::from_str(raw?.get()).ok()
}

/// Whether an invoke's value is an object with `"final": true`.
fn is_final(value: Option<&RawValue>) -> bool {
    value
        .and_then(|v| serde_json::from_str::<FinalFlag>(v.get()).ok())
        .and_then(|f| f.is_final)
        .is_some_and(|f| f.get() == "true")
}

/// Reads `history.jsonl` line by line.
pub fn history(path: &Path) -> std::io::Result<Loaded> {
    let mut reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut out = Loaded::default();
    let mut open_ops: HashMap<String, (f64, String, bool)> = HashMap::new();
    let mut open_windows: HashMap<String, FaultWindow> = HashMap::new();
    let mut changes = crate::members::Collector::default();
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        let Ok(e) = serde_json::from_slice::<Line>(&buf) else {
            out.skipped_lines += 1;
            continue;
        };
        let time = e
            .time
            .and_then(|t| serde_json::from_str::<u64>(t.get()).ok());
        let (Some(kind), Some(time)) = (text(e.kind), time) else {
            out.skipped_lines += 1;
            continue;
        };
        let t = time as f64 / 1e9;
        out.end_s = out.end_s.max(t);
        let f = text(e.f).map_or_else(|| "?".to_string(), Cow::into_owned);
        if text(e.process).as_deref() == Some("nemesis") {
            let value = e
                .value
                .and_then(|v| serde_json::from_str(v.get()).ok())
                .unwrap_or(Value::Null);
            changes.event(&f, t, &value);
            nemesis_event(&value, f, t, &mut open_windows, &mut out.windows);
            continue;
        }
        let process = e.process.map_or("null", RawValue::get).to_string();
        let outcome = match kind.as_ref() {
            "invoke" => {
                open_ops.insert(process, (t, f, is_final(e.value)));
                continue;
            }
            "ok" => Outcome::Ok,
            "fail" => Outcome::Fail,
            "info" => Outcome::Info,
            _ => {
                out.skipped_lines += 1;
                continue;
            }
        };
        match open_ops.remove(&process) {
            Some((start, f, final_read)) => out.ops.push(OpRecord {
                f,
                outcome,
                invoke_s: start,
                latency_ms: (t - start) * 1e3,
                node: text(e.node).map(Cow::into_owned),
                process: e.process.and_then(|p| serde_json::from_str(p.get()).ok()),
                final_read,
            }),
            None => out.skipped_lines += 1,
        }
    }
    for (_, mut w) in open_windows {
        w.end_s = out.end_s;
        out.windows.push(w);
    }
    out.windows.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    out.changes = changes.finish();
    Ok(out)
}

fn nemesis_event(
    v: &Value,
    f: String,
    t: f64,
    open: &mut HashMap<String, FaultWindow>,
    done: &mut Vec<FaultWindow>,
) {
    match v["phase"].as_str() {
        Some("start") => {
            let targets = v["targets"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let label = v["grudge_kind"]
                .as_str()
                .or(v["mode"].as_str())
                .or(v["choice"].as_str())
                .or(v["kind"].as_str())
                .unwrap_or("")
                .to_string();
            open.insert(
                f.clone(),
                FaultWindow {
                    fault: f,
                    targets,
                    start_s: t,
                    end_s: t,
                    label,
                    start: v.clone(),
                },
            );
        }
        Some("end") => {
            if let Some(mut w) = open.remove(&f) {
                w.end_s = t;
                done.push(w);
            }
        }
        _ => {}
    }
}

/// A JSON file, or `None` when absent or unreadable.
pub fn json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// `nodes/<name>/metrics.json` of every node, by name.
pub fn node_metrics(run_dir: &Path) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(run_dir.join("nodes"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().to_string(),
                        json(&e.path().join("metrics.json")).unwrap_or(Value::Null),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_and_windows_are_paired_and_bad_lines_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let text = [
            r#"{"process":0,"type":"invoke","f":"read","time":1000000000}"#,
            r#"{"process":"nemesis","type":"info","f":"kill","time":1500000000,"value":{"phase":"start","targets":["n1"]}}"#,
            r#"{"process":0,"type":"ok","f":"read","time":1250000000}"#,
            "garbage",
            r#"{"process":"nemesis","type":"info","f":"kill","time":3000000000,"value":{"phase":"end","targets":["n1"]}}"#,
            r#"{"process":1,"type":"invoke","f":"write","time":3100000000}"#,
            r#"{"process":1,"type":"info","f":"write","time":4100000000}"#,
        ]
        .join("\n");
        // A line that is not UTF-8 is skipped like any other bad line.
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"\n{\"process\":2,\"type\":\"invoke\",\"f\":\"\xff\"}\n");
        std::fs::write(&path, bytes).unwrap();
        let l = history(&path).unwrap();
        assert_eq!(l.ops.len(), 2);
        assert_eq!(
            l.ops[0],
            OpRecord {
                f: "read".into(),
                outcome: Outcome::Ok,
                invoke_s: 1.0,
                latency_ms: 250.0,
                node: None,
                process: Some(0),
                final_read: false,
            }
        );
        assert_eq!(l.ops[1].outcome, Outcome::Info);
        assert_eq!(
            l.windows,
            vec![FaultWindow {
                fault: "kill".into(),
                targets: vec!["n1".into()],
                start_s: 1.5,
                end_s: 3.0,
                label: String::new(),
                start: serde_json::json!({"phase": "start", "targets": ["n1"]}),
            }]
        );
        assert_eq!(l.skipped_lines, 2);
    }

    #[test]
    fn final_reads_processes_and_nodes_are_read_from_their_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let text = [
            r#"{"process":1000000,"type":"invoke","f":"deliver","time":1,"value":{"final":true,"node":"n1"},"node":"n1"}"#,
            r#"{"process":1000000,"type":"ok","f":"deliver","time":2,"value":{"blocks":[{"n":1}]},"node":"n1"}"#,
            r#"{"process":4,"type":"invoke","f":"submit","time":3,"value":{"final":1},"node":"n2"}"#,
            r#"{"process":4,"type":"fail","f":"submit","time":4,"value":null,"node":"n2"}"#,
            r#"{"process":"p","type":"invoke","f":"submit","time":5,"value":[1]}"#,
            r#"{"process":"p","type":"info","f":"submit","time":6}"#,
        ]
        .join("\n");
        std::fs::write(&path, text).unwrap();
        let l = history(&path).unwrap();
        let got: Vec<(bool, Option<u64>, Option<&str>)> = l
            .ops
            .iter()
            .map(|o| (o.final_read, o.process, o.node.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (true, Some(1_000_000), Some("n1")),
                (false, Some(4), Some("n2")),
                (false, None, None)
            ]
        );
        assert_eq!(l.skipped_lines, 0);
    }
}
