//! What the replay reports: the rules it checks and each broken one, with the events and (for
//! the oracles of issue 22) the figures that show it.

use super::event::{EventRef, NodeId};
use serde::{Deserialize, Serialize};

/// The most anomalies a report lists; beyond, they are only counted.
pub const ANOMALIES_MAX: usize = 1000;

/// A rule the replay checks: the Raft paper's (Figure 3) or Figure 2's, named as the paper
/// names them, and the oracles that watch one node's state machine and disk, named as the
/// anomalies they report (`state-divergence`, ...).
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
    /// Every node's state machine digest at an applied index is the same, across nodes and
    /// across one node's restarts (`digest` events).
    StateDivergence,
    /// A process applies each index after the one before it: none skipped.
    ApplyGap,
    /// A process applies each index once: none again, none it already held.
    ApplyRepeat,
    /// A message that reports durable state leaves after the persist that makes it true.
    PersistBeforeSend,
}

impl Rule {
    /// Every rule, in the order the replay checks an event.
    pub const ALL: [Rule; 12] = [
        Rule::ElectionSafety,
        Rule::VoteKept,
        Rule::LogMatching,
        Rule::LeaderAppendOnly,
        Rule::LeaderCompleteness,
        Rule::CommitMonotone,
        Rule::Durability,
        Rule::StateMachineSafety,
        Rule::StateDivergence,
        Rule::ApplyGap,
        Rule::ApplyRepeat,
        Rule::PersistBeforeSend,
    ];

    /// The rule's name; the paper's own for its Figure 3 properties, the anomaly's kind for
    /// the oracles.
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
            Rule::StateDivergence => "state-divergence",
            Rule::ApplyGap => "apply-gap",
            Rule::ApplyRepeat => "apply-repeat",
            Rule::PersistBeforeSend => "persist-before-send",
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
    /// The figures behind the message, for the oracles' rules (absent for the paper's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Detail>,
}

/// An oracle's figures, by its rule (serialised without a tag: `rule` says which).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Detail {
    /// `state-divergence`.
    Divergence(Divergence),
    /// `apply-gap`, `apply-repeat`.
    Continuity(Continuity),
    /// `persist-before-send`.
    EarlySend(EarlySend),
}

/// Two digests of the state machine at one applied index that differ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    /// The applied index both digests cover.
    pub index: u64,
    /// The first digest the replay met at `index`, then the one that differs from it.
    pub digests: Vec<DigestSeen>,
    /// The other nodes whose digest at `index` equalled the first one, so far.
    pub agreeing: Vec<NodeId>,
}

/// One `digest` event's figures; a field the trace lacks is `null` and is not compared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestSeen {
    /// The node.
    pub node: NodeId,
    /// The digest event's sequence number.
    pub seq: u64,
    /// The pid of the node's process, from its `start` event (newer traces only).
    pub pid: Option<u32>,
    /// Why it was taken: `apply`, `snapshot_taken`, `snapshot_installed`, `start`.
    pub cause: Option<String>,
    /// Blocks in the chain.
    pub height: Option<u64>,
    /// Hex header hash of the last block (`""` for an empty chain).
    pub head: Option<String>,
    /// The 64-bit digest of the register map, 16 hex characters.
    pub registers: Option<String>,
}

/// An apply that does not follow the one before it, within one process of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Continuity {
    /// The node.
    pub node: NodeId,
    /// The `seq` of the process's `start` event (`null`: the trace has no start before it).
    pub start_seq: Option<u64>,
    /// The process's pid, from its `start` event (newer traces only).
    pub pid: Option<u32>,
    /// The index the process should have applied next.
    pub expected: u64,
    /// The index it applied.
    pub applied: u64,
}

/// A message that reports durable state sent before the persist that makes it true.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlySend {
    /// The sender.
    pub node: NodeId,
    /// The `send` event's sequence number.
    pub send_seq: u64,
    /// `MsgAppendResponse`, `MsgRequestVoteResponse` or `MsgRequestVote`.
    pub msg_type: String,
    /// The receiver.
    pub to: NodeId,
    /// The message's term.
    pub term: u64,
    /// The message's index (for an append response, the last index it acknowledges).
    pub index: u64,
    /// What had to be durable, in words: `log to index 35`, `term 4 vote for 2`.
    pub needs: String,
    /// The last persist (or start) before the send: its sequence number, log end, term and
    /// vote.
    pub durable_seq: u64,
    /// The durable log's last index then.
    pub durable_last_index: u64,
    /// The durable term then.
    pub durable_term: u64,
    /// The durable vote then (0 for none).
    pub durable_vote: NodeId,
    /// The persist that made it true, later (`null`: none did before the process ended).
    pub covered_by_seq: Option<u64>,
}

/// The anomalies found so far: the first [`ANOMALIES_MAX`] listed, the rest counted.
#[derive(Debug, Default)]
pub(crate) struct Anomalies {
    pub listed: Vec<Anomaly>,
    pub not_listed: u64,
}

impl Anomalies {
    /// Adds `anomaly`; returns its position when it is listed.
    pub fn push(&mut self, anomaly: Anomaly) -> Option<usize> {
        if self.listed.len() < ANOMALIES_MAX {
            self.listed.push(anomaly);
            Some(self.listed.len() - 1)
        } else {
            self.not_listed += 1;
            None
        }
    }

    /// Adds a rule of the paper's, which has no detail.
    pub fn rule(&mut self, rule: Rule, message: String, events: Vec<EventRef>) {
        self.push(Anomaly {
            rule,
            message,
            events,
            detail: None,
        });
    }
}
