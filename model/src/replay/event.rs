//! The events of a node's Raft trace, as `docs/trace.md` specifies them.

use serde::{Deserialize, Serialize};

/// A raft node id.
pub type NodeId = u64;

/// The fields every event carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub node: NodeId,
    pub seq: u64,
    pub lamport: u64,
    pub time_ms: u64,
}

/// One event read from a trace: its header, what happened, and where it was read.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Event {
    pub header: Header,
    pub kind: Kind,
    /// 1-based line in the trace file.
    pub line: usize,
}

impl Event {
    /// How an anomaly names this event.
    pub fn at(&self) -> EventRef {
        EventRef {
            node: self.header.node,
            seq: self.header.seq,
            lamport: self.header.lamport,
            time_ms: self.header.time_ms,
            ev: self.kind.name(),
        }
    }
}

/// An event as an anomaly names it: node, sequence number, Lamport clock (for ordering a
/// timeline), the node's wall clock and kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRef {
    /// The node that wrote the event.
    pub node: NodeId,
    /// Its per-node sequence number.
    pub seq: u64,
    /// Its Lamport clock: events of different nodes order by it.
    pub lamport: u64,
    /// The node's wall clock, ms since the Unix epoch.
    pub time_ms: u64,
    /// The event kind (`persist`, `role`, ...).
    pub ev: String,
}

/// A node's role, as `role` events name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// What happened, by the `ev` field; unknown kinds are kept by name.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub(crate) enum Kind {
    Start(Start),
    Persist(Persist),
    Role(RoleChange),
    Send(Message),
    Recv(Message),
    Snapshot(Snapshot),
    Compact(Compact),
    Apply(Apply),
    Conf(Conf),
    Digest(Digest),
    CrashPoint(CrashPoint),
    /// An `ev` this reader does not know; counted, never judged.
    #[serde(skip)]
    Unknown(String),
}

impl Kind {
    /// The `ev` name.
    pub fn name(&self) -> String {
        match self {
            Kind::Start(_) => "start",
            Kind::Persist(_) => "persist",
            Kind::Role(_) => "role",
            Kind::Send(_) => "send",
            Kind::Recv(_) => "recv",
            Kind::Snapshot(_) => "snapshot",
            Kind::Compact(_) => "compact",
            Kind::Apply(_) => "apply",
            Kind::Conf(_) => "conf",
            Kind::Digest(_) => "digest",
            Kind::CrashPoint(_) => "crash_point",
            Kind::Unknown(name) => name,
        }
        .to_string()
    }

    /// Every `ev` this reader knows.
    pub const KNOWN: [&'static str; 11] = [
        "start",
        "persist",
        "role",
        "send",
        "recv",
        "snapshot",
        "compact",
        "apply",
        "conf",
        "digest",
        "crash_point",
    ];
}

/// A node's hard state and log bounds, as `start` and `persist` events report them.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub(crate) struct Reported {
    pub term: u64,
    /// The vote in `term`; 0 for none.
    pub vote: NodeId,
    pub commit: u64,
    pub first_index: u64,
    pub last_index: u64,
    pub last_term: u64,
}

/// `start`: what the node recovered.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub(crate) struct Start {
    #[serde(flatten)]
    pub recovered: Reported,
    #[serde(default)]
    pub snapshot_index: u64,
    #[serde(default)]
    pub snapshot_term: u64,
    /// Set when the node found a partial last line in its trace and cut it: the event lost
    /// may have been a persist, so what the node held before is not known.
    #[serde(default)]
    pub trace_cut: bool,
    /// The last index the state machine holds after recovery (the restored snapshot's, 0
    /// without one); absent from the traces of older nodes.
    #[serde(default)]
    pub applied: Option<u64>,
    /// The process id; absent from the traces of older nodes.
    #[serde(default)]
    pub pid: Option<u32>,
}

/// `persist`: the hard state and log after an fsync.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub(crate) struct Persist {
    #[serde(flatten)]
    pub persisted: Reported,
    /// (index, term) of each entry written, in order.
    pub appended: Vec<(u64, u64)>,
    pub truncated_from: Option<u64>,
}

/// `role`: a role change.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub(crate) struct RoleChange {
    pub role: Role,
    pub term: u64,
    pub reason: Option<String>,
}

/// `send` / `recv`: a Raft message. Every field but the type may be missing (`null`): what a
/// check needs and does not find, it does not judge.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub(crate) struct Message {
    pub msg_type: String,
    #[serde(default)]
    pub from: Option<NodeId>,
    #[serde(default)]
    pub to: Option<NodeId>,
    #[serde(default)]
    pub term: Option<u64>,
    #[serde(default)]
    pub index: Option<u64>,
    #[serde(default)]
    pub reject: Option<bool>,
}

/// What a `snapshot` event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SnapshotAction {
    Taken,
    Sent,
    Installed,
}

/// `snapshot`: taken, sent or installed.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub(crate) struct Snapshot {
    pub action: SnapshotAction,
    pub index: u64,
    pub term: u64,
}

/// `crash_point`: an armed crash point fired (docs/crash-points.md); with
/// `abort` or `panic` it is the process's last event, and the next `start`
/// recovers from what was durable at that point.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub(crate) struct CrashPoint {
    pub name: String,
}

/// `compact`: the log was compacted up to `index`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub(crate) struct Compact {
    pub index: u64,
}

/// `apply`: an entry applied to the state machine.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub(crate) struct Apply {
    pub index: u64,
    pub term: u64,
    pub block: Option<u64>,
    pub hash: Option<String>,
}

/// `conf`: a configuration change applied.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub(crate) struct Conf {
    pub index: u64,
}

/// `digest`: the state machine's digest at an applied index (`docs/trace.md`). A field
/// missing from the line is `None` and is not compared.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub(crate) struct Digest {
    /// The applied index the state covers.
    pub index: u64,
    #[serde(default)]
    pub height: Option<u64>,
    #[serde(default)]
    pub head: Option<String>,
    #[serde(default)]
    pub registers: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
}
