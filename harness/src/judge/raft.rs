//! The `raft` checker: every node's Raft trace (`nodes/<n>/trace.jsonl`,
//! `docs/trace.md`) replayed against the model's rules by
//! [`model::replay`], beside the checkers of client histories.
//!
//! It writes `raft.json` (the anomalies with the full trace lines of the
//! events they name, and the coverage table) for the report and the soak,
//! and gives `results.json` its verdict. A system that writes no trace
//! (etcd) is skipped, and the result says so.

use crate::store::write_json;
use crate::sut::{Sut, System};
use anyhow::Context;
use checker::verdict::{Anomaly, CheckResult, Results, Validity};
use model::replay::{self, EventRef, Report, COVERAGE};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The checker's name in `results.json`.
pub const CHECKER: &str = "raft";
/// The checker's artifact in the run directory.
pub const RAFT_JSON: &str = reports::raft::RAFT_JSON;
/// A node's trace in its store directory, `nodes/<n>/trace.jsonl`.
pub const TRACE_FILE_NAME: &str = "trace.jsonl";
/// Why a node's trace could not be collected, beside where it would be.
pub const TRACE_ERROR_FILE_NAME: &str = "trace.error";
/// The coverage name of the situation the nemesis can aim at.
pub const UNCOMMITTED_TAIL: &str = "restarts_with_uncommitted_tail";
/// Below this share of restarts, restarts with an uncommitted tail are
/// rare and the soak asks the nemesis to aim at them.
pub const UNCOMMITTED_TAIL_SHARE_MIN: f64 = 0.2;

/// Nodes the `member` nemesis started during the run (not in `test.json`'s
/// founders) that left a trace under `nodes/<n>/`, in name order.
fn added_nodes(run_dir: &Path, founders: &[String]) -> Vec<String> {
    let Ok(dirs) = std::fs::read_dir(run_dir.join("nodes")) else {
        return Vec::new();
    };
    let mut added: Vec<String> = dirs
        .filter_map(|d| d.ok())
        .filter(|d| d.path().join(TRACE_FILE_NAME).is_file())
        .filter_map(|d| d.file_name().into_string().ok())
        .filter(|n| !founders.contains(n))
        .collect();
    added.sort();
    added
}

/// The checker (an entry of `judge::checks`): replays the stored traces.
pub fn check(run_dir: &Path, _history: &Path) -> anyhow::Result<CheckResult> {
    let started = Instant::now();
    // A re-judged run must not show an earlier replay's findings.
    let _ = std::fs::remove_file(run_dir.join(RAFT_JSON));
    // A run directory made by hand may have no test.json: nothing to replay.
    let test = if run_dir.join("test.json").exists() {
        read_test(run_dir)?
    } else {
        Value::Null
    };
    let sut = test["sut"].as_str().unwrap_or("ordeal");
    let sut: Sut = sut.parse().map_err(|e| {
        anyhow::anyhow!("{}: field `sut`: {e}", run_dir.join("test.json").display())
    })?;
    if !sut.traces() {
        let note = format!("skipped: {} writes no Raft trace", sut.name());
        return Ok(result(Validity::Valid, started, Some(note)));
    }
    let mut nodes: Vec<String> = test["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(String::from))
        .collect();
    nodes.extend(added_nodes(run_dir, &nodes));
    let files: Vec<PathBuf> = nodes
        .iter()
        .map(|n| run_dir.join("nodes").join(n).join(TRACE_FILE_NAME))
        .collect();
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !f.is_file())
        .map(|f| relative(run_dir, f))
        .collect();
    let collected = nodes.iter().any(|n| run_dir.join("nodes").join(n).is_dir());
    if missing.len() == files.len() && !collected {
        // A history judged without its run (`harness check --history`, an
        // EDN file from Jepsen): no node left anything to replay. A run
        // that collected its nodes but lost traces is `unknown` below.
        let note = "skipped: no Raft trace in this run directory (nodes/<n>/trace.jsonl)";
        return Ok(result(Validity::Valid, started, Some(note.to_string())));
    }
    if !missing.is_empty() {
        let why = collect_errors(run_dir, &nodes);
        let note = format!(
            "no Raft trace for every node: missing {}{why}",
            missing.join(", ")
        );
        return Ok(result(Validity::Unknown, started, Some(note)));
    }
    let traces = match files
        .iter()
        .map(|f| replay::Trace::read_file(f))
        .collect::<Result<Vec<_>, _>>()
        .and_then(|traces| replay::check(&traces).map(|report| (traces, report)))
    {
        Ok(done) => done,
        Err(e) => {
            let note = format!("the traces cannot be replayed: {e}");
            return Ok(result(Validity::Unknown, started, Some(note)));
        }
    };
    let (traces, report) = traces;
    if report.events_read == 0 {
        // Trace files with no whole event say nothing about Raft's rules.
        let note = "the traces hold no whole event: nothing was replayed".to_string();
        return Ok(result(Validity::Unknown, started, Some(note)));
    }
    let lines = event_lines(&traces, &report)?;
    write_json(
        &run_dir.join(RAFT_JSON),
        &artifact(run_dir, &report, &lines),
    )?;
    Ok(to_result(run_dir, &report, &lines, started))
}

/// Why collecting the traces failed, from each node's
/// `nodes/<n>/trace.error` (written by the run's collect phase), as a
/// clause to append to a note; empty when none says.
fn collect_errors(run_dir: &Path, nodes: &[String]) -> String {
    let errors: Vec<String> = nodes
        .iter()
        .filter_map(|n| {
            let text =
                std::fs::read_to_string(run_dir.join("nodes").join(n).join(TRACE_ERROR_FILE_NAME))
                    .ok()?;
            Some(format!("{n}: {}", text.trim()))
        })
        .collect();
    if errors.is_empty() {
        String::new()
    } else {
        format!(" (collecting failed: {})", errors.join("; "))
    }
}

fn read_test(run_dir: &Path) -> anyhow::Result<Value> {
    let path = run_dir.join("test.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
}

fn relative(run_dir: &Path, file: &Path) -> String {
    file.strip_prefix(run_dir)
        .unwrap_or(file)
        .display()
        .to_string()
}

/// A result without replay figures (skipped, or unknown with its reason).
fn result(valid: Validity, started: Instant, note: Option<String>) -> CheckResult {
    CheckResult {
        checker: CHECKER.into(),
        valid,
        check_ms: started.elapsed().as_secs_f64() * 1e3,
        counts: BTreeMap::new(),
        anomalies: Vec::new(),
        artifacts: Vec::new(),
        note,
    }
}

/// The full trace line of each event an anomaly names, by (node, seq).
type Lines = BTreeMap<(u64, u64), Value>;

/// Reads back the lines of the events the anomalies name, one pass per
/// file that holds any.
fn event_lines(traces: &[replay::Trace], report: &Report) -> anyhow::Result<Lines> {
    let wanted: BTreeSet<(u64, u64)> = report
        .anomalies
        .iter()
        .flat_map(|a| &a.events)
        .map(|e| (e.node, e.seq))
        .collect();
    let mut lines = Lines::new();
    for trace in traces {
        let Some(node) = trace.node else { continue };
        let seqs: BTreeSet<u64> = wanted
            .iter()
            .filter(|(n, _)| *n == node)
            .map(|(_, s)| *s)
            .collect();
        if seqs.is_empty() {
            continue;
        }
        let file = std::fs::File::open(&trace.file)
            .with_context(|| format!("opening {}", trace.file.display()))?;
        for line in BufReader::new(file).split(b'\n') {
            let line = line.with_context(|| format!("reading {}", trace.file.display()))?;
            let Some(seq) = seq_of(&line).filter(|s| seqs.contains(s)) else {
                continue;
            };
            if let Ok(value) = serde_json::from_slice::<Value>(&line) {
                lines.insert((node, seq), value);
            }
        }
    }
    Ok(lines)
}

/// The `seq` field of a trace line, found without parsing the whole line.
fn seq_of(line: &[u8]) -> Option<u64> {
    let key = b"\"seq\":";
    let at = line.windows(key.len()).position(|w| w == key)? + key.len();
    let digits: Vec<u8> = line[at..]
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// An event as results.json and raft.json show it: node, seq, time, kind
/// and the full trace line.
fn event_json(event: &EventRef, lines: &Lines) -> Value {
    json!({
        "node": event.node,
        "seq": event.seq,
        "time_ms": event.time_ms,
        "ev": event.ev,
        "line": lines.get(&(event.node, event.seq)),
    })
}

fn anomaly_json(anomaly: &replay::Anomaly, lines: &Lines) -> Value {
    let events: Vec<Value> = anomaly
        .events
        .iter()
        .map(|e| event_json(e, lines))
        .collect();
    let mut value = json!({"rule": anomaly.rule, "message": anomaly.message, "events": events});
    if let Some(detail) = &anomaly.detail {
        // The oracle's figures: index, nodes and digests; node, process
        // and indices; the message and the persist it ran ahead of.
        value["detail"] = json!(detail);
    }
    value
}

/// `raft.json`: what the report draws and the soak sums.
fn artifact(run_dir: &Path, report: &Report, lines: &Lines) -> Value {
    let coverage: Vec<Value> = COVERAGE
        .iter()
        .map(|(name, meaning)| {
            json!({"name": name, "count": report.coverage.get(*name).copied().unwrap_or(0), "meaning": meaning})
        })
        .collect();
    let anomalies: Vec<Value> = report
        .anomalies
        .iter()
        .map(|a| anomaly_json(a, lines))
        .collect();
    let truncated: Vec<String> = report
        .truncated
        .iter()
        .map(|f| relative(run_dir, f))
        .collect();
    json!({
        "valid": report.valid,
        "nodes": report.nodes,
        "events_read": report.events_read,
        "truncated": truncated,
        "starts_after_cut": report.starts_after_cut,
        "unknown_events": report.unknown_events,
        "anomalies_not_listed": report.anomalies_not_listed,
        "notes": report.notes,
        "anomalies": anomalies,
        "coverage": coverage,
    })
}

/// The replay as an entry of `results.json`: anomalies by rule, each
/// example with the events it names.
fn to_result(run_dir: &Path, report: &Report, lines: &Lines, started: Instant) -> CheckResult {
    let mut by_rule: BTreeMap<String, Anomaly> = BTreeMap::new();
    for a in &report.anomalies {
        by_rule
            .entry(a.rule.name().to_string())
            .or_insert_with(|| Anomaly::new(a.rule.name()))
            .add(anomaly_json(a, lines));
    }
    let counts = BTreeMap::from([
        ("nodes".to_string(), report.nodes.len() as u64),
        ("events".to_string(), report.events_read),
        (
            "traces_truncated".to_string(),
            report.truncated.len() as u64,
        ),
        ("starts_after_cut".to_string(), report.starts_after_cut),
        (
            "anomalies_not_listed".to_string(),
            report.anomalies_not_listed,
        ),
        (
            "unknown_events".to_string(),
            report.unknown_events.values().sum(),
        ),
    ]);
    let mut notes: Vec<String> = report.notes.clone();
    if !report.truncated.is_empty() {
        let files: Vec<String> = report
            .truncated
            .iter()
            .map(|f| relative(run_dir, f))
            .collect();
        notes.push(format!(
            "read up to the last whole event (a partial last line, from a node killed mid-write): {}",
            files.join(", ")
        ));
    }
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    CheckResult {
        checker: CHECKER.into(),
        valid: if report.valid {
            Validity::Valid
        } else {
            Validity::Invalid
        },
        check_ms: started.elapsed().as_secs_f64() * 1e3,
        counts,
        anomalies: by_rule.into_values().collect(),
        artifacts: vec![RAFT_JSON.to_string()],
        note,
    }
}

/// A run's coverage from its `raft.json`, `None` when it has none
/// (skipped, unknown or not judged).
pub fn coverage(run_dir: &Path) -> Option<BTreeMap<String, u64>> {
    reports::raft::coverage(&reports::raft::load(run_dir)?)
}

/// Coverage summed over runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoverageSum {
    /// Runs whose coverage was added.
    pub runs: u64,
    /// Counts by name ([`COVERAGE`]); maxima (`*_max`) are maxima, not sums.
    pub counts: BTreeMap<String, u64>,
}

impl CoverageSum {
    /// Adds one run's coverage.
    pub fn add(&mut self, run: &BTreeMap<String, u64>) {
        self.runs += 1;
        for (name, count) in run {
            let slot = self.counts.entry(name.clone()).or_default();
            *slot = if name.ends_with("_max") {
                (*slot).max(*count)
            } else {
                *slot + count
            };
        }
    }

    /// Adds the coverage of the run stored in `run_dir`, if it has one.
    pub fn add_run(&mut self, run_dir: &Path) {
        if let Some(run) = coverage(run_dir) {
            self.add(&run);
        }
    }

    /// The situations of [`COVERAGE`] no run reached.
    pub fn never_reached(&self) -> Vec<&'static str> {
        COVERAGE
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| self.counts.get(*name).copied().unwrap_or(0) == 0)
            .collect()
    }

    /// Whether restarts with an uncommitted tail are rare among restarts
    /// (the nemesis is then asked to aim at nodes holding such a tail).
    pub fn uncommitted_tail_rare(&self) -> bool {
        let restarts = self.counts.get("restarts").copied().unwrap_or(0);
        let tails = self.counts.get(UNCOMMITTED_TAIL).copied().unwrap_or(0);
        restarts > 0 && (tails as f64) < restarts as f64 * UNCOMMITTED_TAIL_SHARE_MIN
    }

    /// The summed table, one line per situation in [`COVERAGE`]'s order.
    pub fn table(&self) -> String {
        let mut out = format!("{:<34} {:>10}  meaning\n", "raft situation", "count");
        for (name, meaning) in COVERAGE {
            let count = self.counts.get(name).copied().unwrap_or(0);
            out.push_str(&format!("{name:<34} {count:>10}  {meaning}\n"));
        }
        out
    }

    /// Prints the summed table and the situations never reached.
    pub fn print(&self) {
        println!(
            "\nraft coverage summed over {} runs:\n{}",
            self.runs,
            self.table()
        );
        println!("never reached: {}", self.never_reached().join(", "));
    }

    /// As soak-summary.json holds it.
    pub fn to_json(&self) -> Value {
        json!({"runs": self.runs, "counts": self.counts, "never_reached": self.never_reached()})
    }
}

/// The raft checker's lines under the verdict table: why it was skipped
/// or unknown, files read up to a partial line, and each anomaly with
/// its events.
pub fn print_details(results: &Results) {
    for r in results.results.iter().filter(|r| r.checker == CHECKER) {
        if let Some(note) = &r.note {
            println!("raft: {note}");
        }
        for example in r.anomalies.iter().flat_map(|a| &a.examples) {
            println!(
                "raft: {}: {}",
                example["rule"].as_str().unwrap_or("?"),
                example["message"].as_str().unwrap_or("?")
            );
            for e in example["events"].as_array().into_iter().flatten() {
                println!(
                    "        node {} seq {} time_ms {} {}",
                    e["node"], e["seq"], e["time_ms"], e["ev"]
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = r#"{"node":NODE,"seq":SEQ,"lamport":LAMPORT,"time_ms":1000,"ev":"start","term":TERM,"vote":VOTE,"commit":0,"first_index":1,"last_index":0,"last_term":0}"#;

    fn start(node: u64, seq: u64, term: u64, vote: u64) -> String {
        START
            .replace("NODE", &node.to_string())
            .replace("SEQ", &seq.to_string())
            .replace("LAMPORT", &(seq + 1).to_string())
            .replace("TERM", &term.to_string())
            .replace("VOTE", &vote.to_string())
            + "\n"
    }

    /// A run directory of `sut` with nodes n1, n2 and their trace texts.
    fn run_dir(sut: &str, traces: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let test = json!({"sut": sut, "nodes": ["n1", "n2"]});
        std::fs::write(dir.path().join("test.json"), test.to_string()).unwrap();
        for (node, text) in traces {
            let node_dir = dir.path().join("nodes").join(node);
            std::fs::create_dir_all(&node_dir).unwrap();
            std::fs::write(node_dir.join(TRACE_FILE_NAME), text).unwrap();
        }
        dir
    }

    fn judge(dir: &tempfile::TempDir) -> CheckResult {
        // The raft checker reads the traces, never the history.
        check(dir.path(), &dir.path().join("history.jsonl")).unwrap()
    }

    #[test]
    fn a_forgotten_vote_is_invalid_with_its_events_and_a_partial_line_is_said() {
        let n1 = start(1, 0, 2, 1) + &start(1, 1, 0, 0) + r#"{"node":1,"seq":2"#;
        let dir = run_dir("ordeal", &[("n1", &n1), ("n2", &start(2, 0, 2, 1))]);
        let result = judge(&dir);
        assert_eq!(result.valid, Validity::Invalid);
        assert_eq!(result.anomalies[0].kind, "Vote Kept");
        let events = &result.anomalies[0].examples[0]["events"];
        assert_eq!(events[1]["seq"], 1);
        assert_eq!(events[1]["line"]["term"], 0, "the full line: {events}");
        assert_eq!(result.counts["traces_truncated"], 1);
        assert!(result.note.unwrap().contains("nodes/n1/trace.jsonl"));
        let raft = reports::raft::load(dir.path()).unwrap();
        assert_eq!(raft["coverage"].as_array().unwrap().len(), COVERAGE.len());
        assert_eq!(coverage(dir.path()).unwrap()["restarts"], 1);
    }

    #[test]
    fn an_oracle_s_figures_reach_results_and_raft_json() {
        let start = r#"{"node":1,"seq":0,"lamport":1,"time_ms":10,"ev":"start","term":1,"vote":1,"commit":0,"first_index":1,"last_index":0,"last_term":0,"snapshot_index":0,"snapshot_term":0,"voters":[1,2,3],"learners":[],"pid":101,"applied":0}"#;
        let apply = |seq: u64, index: u64| {
            format!(
                r#"{{"node":1,"seq":{seq},"lamport":{},"time_ms":{},"ev":"apply","index":{index},"term":1,"block":{index},"hash":"h{index}"}}"#,
                seq + 1,
                (seq + 1) * 10
            )
        };
        let n1 = format!("{start}\n{}\n{}\n", apply(1, 1), apply(2, 4));
        let dir = run_dir(
            "ordeal",
            &[("n1", &n1), ("n2", &super::tests::start(2, 0, 1, 1))],
        );
        let result = judge(&dir);
        assert_eq!(result.valid, Validity::Invalid);
        let gap = result
            .anomalies
            .iter()
            .find(|a| a.kind == "apply-gap")
            .unwrap();
        let detail = &gap.examples[0]["detail"];
        assert_eq!(
            (&detail["expected"], &detail["applied"]),
            (&json!(2), &json!(4)),
            "{gap:?}"
        );
        let raft = reports::raft::load(dir.path()).unwrap();
        assert_eq!(raft["anomalies"][0]["detail"]["pid"], 101);
        // Node 2's trace has no pid nor applied: the replay's notes say
        // what it could not check, in raft.json and the result's note.
        let notes = raft["notes"].as_array().unwrap();
        assert!(!notes.is_empty(), "{raft}");
        assert!(result.note.unwrap().contains(notes[0].as_str().unwrap()));
    }

    #[test]
    fn consistent_traces_are_valid() {
        let dir = run_dir(
            "ordeal",
            &[("n1", &start(1, 0, 1, 1)), ("n2", &start(2, 0, 1, 1))],
        );
        let result = judge(&dir);
        assert_eq!((result.valid, result.counts["nodes"]), (Validity::Valid, 2));
        assert!(result.anomalies.is_empty(), "{result:?}");
        // Start events alone: the note says only what the oracles could
        // not check (no digests, no pids), never that a file was cut.
        assert!(!result.note.unwrap_or_default().contains("partial"));
    }

    #[test]
    fn etcd_is_skipped_and_missing_or_bad_traces_are_unknown_by_name() {
        let skipped = judge(&run_dir("etcd", &[]));
        assert_eq!(skipped.valid, Validity::Valid);
        assert_eq!(skipped.note.unwrap(), "skipped: etcd writes no Raft trace");
        // A history judged without its run: no trace at all, nothing to replay.
        let none = judge(&run_dir("ordeal", &[]));
        assert_eq!(none.valid, Validity::Valid);
        assert!(none.note.unwrap().starts_with("skipped: no Raft trace"));
        // Traces with no whole event (a node killed in its first line).
        let empty = judge(&run_dir("ordeal", &[("n1", ""), ("n2", "{\"node\":2")]));
        assert_eq!(empty.valid, Validity::Unknown);
        assert!(empty.note.unwrap().contains("no whole event"));
        // A run whose every trace failed to collect is not a history
        // without its run: unknown, naming the traces and why.
        let lost = run_dir("ordeal", &[]);
        for n in ["n1", "n2"] {
            let node = lost.path().join("nodes").join(n);
            std::fs::create_dir_all(&node).unwrap();
            std::fs::write(node.join("node.log"), "").unwrap();
        }
        std::fs::write(
            lost.path().join("nodes/n2").join(TRACE_ERROR_FILE_NAME),
            "copying: no such file",
        )
        .unwrap();
        let lost = judge(&lost);
        assert_eq!(lost.valid, Validity::Unknown);
        let note = lost.note.unwrap();
        assert!(
            note.contains("nodes/n1/trace.jsonl, nodes/n2/trace.jsonl")
                && note.contains("n2: copying: no such file"),
            "{note}"
        );
        let dir = run_dir("ordeal", &[("n1", &start(1, 0, 1, 1))]);
        std::fs::write(dir.path().join(RAFT_JSON), "{}").unwrap();
        let missing = judge(&dir);
        assert_eq!(missing.valid, Validity::Unknown);
        assert!(
            !dir.path().join(RAFT_JSON).exists(),
            "a stale raft.json is removed"
        );
        assert!(missing.note.unwrap().contains("nodes/n2/trace.jsonl"));
        let bad = start(1, 0, 1, 1) + "not json\n";
        let bad = judge(&run_dir(
            "ordeal",
            &[("n1", &bad), ("n2", &start(2, 0, 1, 1))],
        ));
        assert_eq!(bad.valid, Validity::Unknown);
        let note = bad.note.unwrap();
        assert!(note.contains("n1/trace.jsonl:2"), "{note}");
    }

    #[test]
    fn seq_is_found_without_parsing_the_line() {
        assert_eq!(seq_of(br#"{"node":1,"seq":42,"lamport":3}"#), Some(42));
        assert_eq!(seq_of(br#"{"node":1,"seq": 7}"#), Some(7));
        assert_eq!(seq_of(br#"{"node":1}"#), None);
    }

    #[test]
    fn sums_add_counts_keep_maxima_and_name_what_was_never_reached() {
        let run = |restarts, tails, depth| {
            BTreeMap::from([
                ("restarts".to_string(), restarts),
                (UNCOMMITTED_TAIL.to_string(), tails),
                ("truncation_depth_max".to_string(), depth),
            ])
        };
        let mut sum = CoverageSum::default();
        sum.add(&run(4, 0, 3));
        sum.add(&run(6, 1, 2));
        assert_eq!(sum.runs, 2);
        assert_eq!(sum.counts["restarts"], 10);
        assert_eq!(sum.counts["truncation_depth_max"], 3);
        assert!(sum.uncommitted_tail_rare(), "1 of 10 restarts");
        sum.add(&run(0, 5, 0));
        assert!(!sum.uncommitted_tail_rare(), "6 of 10 restarts");
        let never = sum.never_reached();
        assert!(never.contains(&"votes_won") && !never.contains(&"restarts"));
        assert_eq!(never.len(), COVERAGE.len() - 3);
        assert!(!CoverageSum::default().uncommitted_tail_rare());
    }
}
