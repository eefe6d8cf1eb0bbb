//! The `raft` checker: replays the Raft traces that real nodes write (`docs/trace.md`)
//! against the same rules the model checks ([`crate::rules`]), and counts which Raft
//! situations the run reached.
//!
//! Each node's file is named on its own ([`Trace::read_file`]); [`check`] reads the files
//! together, merging the nodes' events into one causal order (Lamport clock, then node, then
//! sequence number) as they are read, and replays them. No event is kept once judged, so
//! memory follows the run's indices, not the size of its traces. The result is data: a
//! [`Report`] whose anomalies each name their rule and the events (node, seq, time) that
//! break it.
//!
//! Besides the Raft paper's rules, three oracles watch each node's state machine and disk
//! (issue 22): state digests compared across replicas and restarts (`state-divergence`),
//! apply continuity within a process (`apply-gap`, `apply-repeat`), and persist before send
//! (`persist-before-send`).
//!
//! ```
//! use std::path::Path;
//! let trace = concat!(
//!     r#"{"node":1,"seq":0,"lamport":1,"time_ms":5,"ev":"start","term":0,"vote":0,"commit":0,"first_index":1,"last_index":0,"last_term":0}"#, "\n",
//!     r#"{"node":1,"seq":1,"lamport":2,"time_ms":6,"ev":"role","role":"leader","term":1,"leader":1,"reason":"vote"}"#, "\n",
//! );
//! let trace = model::replay::Trace::read(Path::new("n1.jsonl"), trace.as_bytes()).unwrap();
//! let report = model::replay::check(&[trace]).unwrap();
//! assert!(report.valid);
//! assert_eq!(report.coverage["votes_won"], 1);
//! ```

mod anomaly;
mod context;
mod continuity;
mod coverage;
mod digest;
mod durable;
mod error;
mod event;
mod judge;
mod merge;
mod read;
#[cfg(test)]
mod tests;

pub use anomaly::{
    Anomaly, Continuity, Detail, DigestSeen, Divergence, EarlySend, Rule, ANOMALIES_MAX,
};
pub use context::CONTEXT_EVENTS_MAX;
pub use coverage::COVERAGE;
pub use durable::WAITING_MAX;
pub use error::ReplayError;
pub use event::{EventRef, NodeId};
pub use read::{Trace, LINE_BYTES_MAX};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What replaying a run's traces found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// True when no rule was broken.
    pub valid: bool,
    /// The broken rules, in replay order (at most [`ANOMALIES_MAX`]).
    pub anomalies: Vec<Anomaly>,
    /// Anomalies found beyond [`ANOMALIES_MAX`], counted only.
    pub anomalies_not_listed: u64,
    /// How often each Raft situation was reached, by name ([`COVERAGE`]); every name is present.
    pub coverage: BTreeMap<String, u64>,
    /// Starts after which the node had cut a partial last line from its trace (`trace_cut`):
    /// its state before them was forgotten, not compared.
    pub starts_after_cut: u64,
    /// Events replayed, over all files.
    pub events_read: u64,
    /// The nodes whose traces were read.
    pub nodes: Vec<NodeId>,
    /// Files that ended in a partial line (read up to their last whole event).
    pub truncated: Vec<PathBuf>,
    /// Events of kinds the checker does not know, by kind: counted, never judged.
    pub unknown_events: BTreeMap<String, u64>,
    /// Checks the oracles skipped for lack of data (traces of older nodes), in words.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Reads each trace file and checks them together.
pub fn check_files<P: AsRef<Path>>(paths: &[P]) -> Result<Report, ReplayError> {
    let traces = paths
        .iter()
        .map(|path| Trace::read_file(path.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    check(&traces)
}

/// Merges the nodes' traces into one causal order and replays them against the rules.
///
/// Each file is read once for the replay, and those holding the context of a state divergence
/// once more ([`CONTEXT_EVENTS_MAX`]).
pub fn check(traces: &[Trace]) -> Result<Report, ReplayError> {
    let mut owners: BTreeMap<NodeId, &Path> = BTreeMap::new();
    for trace in traces {
        let Some(node) = trace.node else { continue };
        if let Some(first) = owners.insert(node, &trace.file) {
            return Err(ReplayError::DuplicateNode {
                node,
                first: first.to_path_buf(),
                second: trace.file.clone(),
            });
        }
    }
    let streams = traces
        .iter()
        .map(Trace::events)
        .collect::<Result<Vec<_>, _>>()?;
    let mut merged = merge::Merged::new(streams)?;
    let mut judge = judge::Judge::default();
    let mut events_read = 0;
    while let Some(event) = merged.next_event()? {
        judge.replay(&event);
        events_read += 1;
    }
    let unknown_events = merged.unknown();
    drop(merged);
    let mut findings = judge.finish();
    context::add(traces, &mut findings.anomalies, &findings.windows)?;
    Ok(Report {
        valid: findings.anomalies.is_empty(),
        anomalies: findings.anomalies,
        anomalies_not_listed: findings.anomalies_not_listed,
        coverage: findings.coverage,
        starts_after_cut: findings.starts_after_cut,
        events_read,
        nodes: owners.into_keys().collect(),
        truncated: traces
            .iter()
            .filter(|t| t.truncated)
            .map(|t| t.file.clone())
            .collect(),
        unknown_events,
        notes: findings.notes,
    })
}
