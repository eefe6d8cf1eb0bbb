//! Apply continuity: within one process of a node (from one `start` to the next), the first
//! `apply` follows the start's `applied`, each next one follows the one before, and a
//! `snapshot` `installed` at `s` moves the next to `s + 1`. A skipped index is an `apply-gap`,
//! an index applied again (or one the process already held) an `apply-repeat`.

use super::anomaly::{Anomaly, Continuity, Detail, Rule};
use super::coverage::Coverage;
use super::event::{EventRef, NodeId, Start};
use std::collections::BTreeMap;

/// What the check knows of a node's current process.
#[derive(Debug, Default)]
struct Process {
    /// Its `start` event (`None`: the trace has none before these applies).
    start: Option<EventRef>,
    pid: Option<u32>,
    /// The index the next apply must have, once known.
    ///
    /// Unknown after a start without `applied` (a node older than the field): then the first
    /// apply is not judged, only the ones after it.
    expected: Option<u64>,
    /// The event that set `expected`.
    last: Option<EventRef>,
}

/// The check across all nodes.
#[derive(Debug, Default)]
pub(crate) struct ApplyOrder {
    processes: BTreeMap<NodeId, Process>,
    /// First applies not judged, since the index they had to follow was not known.
    pub unchecked: u64,
}

impl ApplyOrder {
    /// A new process: its first apply must follow what it recovered.
    pub fn start(&mut self, node: NodeId, start: &Start, at: &EventRef) {
        let process = Process {
            start: Some(at.clone()),
            pid: start.pid,
            expected: start.applied.map(|applied| applied + 1),
            last: Some(at.clone()),
        };
        self.processes.insert(node, process);
    }

    /// A snapshot installed at `index`: the state machine now holds everything up to it.
    pub fn installed(&mut self, node: NodeId, index: u64, at: &EventRef) {
        let process = self.processes.entry(node).or_default();
        process.expected = Some(index + 1);
        process.last = Some(at.clone());
    }

    /// An entry applied at `index`: checked against the index expected next.
    pub fn apply(
        &mut self,
        node: NodeId,
        index: u64,
        at: &EventRef,
        coverage: &mut Coverage,
    ) -> Option<Anomaly> {
        let process = self.processes.entry(node).or_default();
        let before = process.last.replace(at.clone());
        let Some(expected) = process.expected.replace(index + 1) else {
            self.unchecked += 1;
            return None;
        };
        coverage.add("applies_checked", 1);
        if index == expected {
            return None;
        }
        let (rule, what) = if index > expected {
            let missing = if index == expected + 1 {
                format!("index {expected} was never applied")
            } else {
                format!("indices {expected}..={} were never applied", index - 1)
            };
            (Rule::ApplyGap, missing)
        } else {
            (
                Rule::ApplyRepeat,
                format!("index {index} was applied (or held) already"),
            )
        };
        let message = format!(
            "node {node} ({}) applied index {index} where {expected} was next: {what}",
            describe_process(process)
        );
        let mut events: Vec<EventRef> = process.start.iter().chain(&before).cloned().collect();
        events.dedup_by_key(|e| e.seq);
        events.push(at.clone());
        let detail = Continuity {
            node,
            start_seq: process.start.as_ref().map(|s| s.seq),
            pid: process.pid,
            expected,
            applied: index,
        };
        Some(Anomaly {
            rule,
            message,
            events,
            detail: Some(Detail::Continuity(detail)),
        })
    }
}

/// A process in words: `process started at seq 17, pid 4567`.
fn describe_process(process: &Process) -> String {
    match (&process.start, process.pid) {
        (None, _) => "no start in its trace before".to_string(),
        (Some(start), None) => format!("process started at seq {}", start.seq),
        (Some(start), Some(pid)) => format!("process started at seq {}, pid {pid}", start.seq),
    }
}
