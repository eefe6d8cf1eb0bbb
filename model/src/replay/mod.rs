//! The `raft` checker: replays the Raft traces that real nodes write (`docs/trace.md`)
//! against the same rules the model checks ([`crate::rules`]), and counts which Raft
//! situations the run reached.
//!
//! Each node's file is read on its own ([`Trace::read_file`]), the nodes' events are merged
//! into one causal order (Lamport clock, then node, then sequence number) and replayed
//! ([`check`]). The result is data: a [`Report`] whose anomalies each name their rule and the
//! events (node, seq, time) that break it.
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

mod coverage;
mod event;
mod judge;
mod read;
#[cfg(test)]
mod tests;

pub use coverage::COVERAGE;
pub use event::{EventRef, NodeId};
pub use read::{Trace, LINE_BYTES_MAX};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The most anomalies a report lists; beyond, they are only counted.
pub const ANOMALIES_MAX: usize = 1000;

/// Why traces could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A trace file could not be read.
    #[error("cannot read trace {}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A complete line is not a valid event, or does not continue its file.
    #[error("{}:{line}: {message}", file.display())]
    Parse {
        /// The file.
        file: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Two files hold events of the same node.
    #[error("node {node} has two traces: {} and {}", first.display(), second.display())]
    DuplicateNode {
        /// The node.
        node: NodeId,
        /// The first file.
        first: PathBuf,
        /// The second file.
        second: PathBuf,
    },
}

impl ReplayError {
    fn parse(file: &Path, line: usize, message: String) -> Self {
        ReplayError::Parse {
            file: file.to_path_buf(),
            line,
            message,
        }
    }
}

/// A rule the replay checks, named as the Raft paper (Figure 3) or Figure 2 state it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// At most one leader per term.
    ElectionSafety,
    /// A node's term never goes back and its vote never changes within a term, across restarts.
    VoteKept,
    /// Logs holding an entry of the same term at an index hold the same prefix up to it.
    LogMatching,
    /// A leader only appends to its log while it leads its term.
    LeaderAppendOnly,
    /// A new leader holds every entry committed before its term.
    LeaderCompleteness,
    /// A node's commit index never goes back, across restarts too.
    CommitMonotone,
    /// After a restart a node holds at least the log it reported persisted.
    Durability,
    /// Every node applies (and commits) the same entry at each index.
    StateMachineSafety,
}

impl Rule {
    /// Every rule, in the order the replay checks an event.
    pub const ALL: [Rule; 8] = [
        Rule::ElectionSafety,
        Rule::VoteKept,
        Rule::LogMatching,
        Rule::LeaderAppendOnly,
        Rule::LeaderCompleteness,
        Rule::CommitMonotone,
        Rule::Durability,
        Rule::StateMachineSafety,
    ];

    /// The rule's name; the paper's own for its Figure 3 properties.
    pub fn name(self) -> &'static str {
        use crate::properties as paper;
        match self {
            Rule::ElectionSafety => paper::ELECTION_SAFETY,
            Rule::VoteKept => "Vote Kept",
            Rule::LogMatching => paper::LOG_MATCHING,
            Rule::LeaderAppendOnly => paper::LEADER_APPEND_ONLY,
            Rule::LeaderCompleteness => paper::LEADER_COMPLETENESS,
            Rule::CommitMonotone => "Commit Monotone",
            Rule::Durability => "Durability",
            Rule::StateMachineSafety => paper::STATE_MACHINE_SAFETY,
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Serialised as its name.
impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Rule::ALL
            .into_iter()
            .find(|rule| rule.name() == name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown rule {name:?}")))
    }
}

/// One broken rule and the events that break it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// The rule.
    pub rule: Rule,
    /// What happened, in words.
    pub message: String,
    /// The events involved, earliest first.
    pub events: Vec<EventRef>,
}

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
    let mut events: Vec<_> = traces.iter().flat_map(|t| &t.events).collect();
    events.sort_by_key(|e| (e.header.lamport, e.header.node, e.header.seq));
    let mut judge = judge::Judge::default();
    for event in &events {
        judge.replay(event);
    }
    let mut unknown_events = BTreeMap::new();
    for (kind, count) in traces.iter().flat_map(|t| &t.unknown) {
        *unknown_events.entry(kind.clone()).or_default() += count;
    }
    let findings = judge.finish();
    Ok(Report {
        valid: findings.anomalies.is_empty(),
        anomalies: findings.anomalies,
        anomalies_not_listed: findings.anomalies_not_listed,
        coverage: findings.coverage,
        starts_after_cut: findings.starts_after_cut,
        events_read: events.len() as u64,
        nodes: owners.into_keys().collect(),
        truncated: traces
            .iter()
            .filter(|t| t.truncated)
            .map(|t| t.file.clone())
            .collect(),
        unknown_events,
    })
}
