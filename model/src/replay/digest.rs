//! State digests across replicas: every `digest` event at an index is compared with the first
//! one the replay met at that index, whichever node or process wrote it. Founders, added nodes
//! and restarted processes are all compared alike, so a node's digest recomputed after a
//! restart is checked against its own earlier one (or another node's) too.
//!
//! Memory: one digest per index seen, never the events.

use super::anomaly::{Anomaly, Detail, DigestSeen, Divergence, Rule};
use super::context::Window;
use super::coverage::Coverage;
use super::event::{Digest, EventRef, Header, NodeId, Start};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The most agreeing nodes an index remembers (for the anomaly's detail).
const AGREEING_MAX: usize = 16;

/// What a digest says; a field the trace lacks is `None` and is not compared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    height: Option<u64>,
    head: Option<Box<str>>,
    registers: Option<Box<str>>,
}

impl State {
    /// Whether every field both digests have is equal.
    fn agrees(&self, other: &State) -> bool {
        fn same<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
        }
        same(&self.height, &other.height)
            && same(&self.head, &other.head)
            && same(&self.registers, &other.registers)
    }
}

/// One digest event, as much of it as the comparison and the anomaly need.
#[derive(Debug, Clone)]
struct Seen {
    header: Header,
    /// The `seq` of its process's `start` (`None`: no start before it in the trace).
    process: Option<u64>,
    pid: Option<u32>,
    cause: Option<Box<str>>,
    state: State,
    /// The node's digest event before this one, where the window of its context starts.
    previous_seq: Option<u64>,
}

impl Seen {
    fn at(&self) -> EventRef {
        EventRef {
            node: self.header.node,
            seq: self.header.seq,
            lamport: self.header.lamport,
            time_ms: self.header.time_ms,
            ev: "digest".to_string(),
        }
    }

    fn detail(&self) -> DigestSeen {
        let text = |s: &Option<Box<str>>| s.as_deref().map(str::to_string);
        DigestSeen {
            node: self.header.node,
            seq: self.header.seq,
            pid: self.pid,
            cause: text(&self.cause),
            height: self.state.height,
            head: text(&self.state.head),
            registers: text(&self.state.registers),
        }
    }

    fn window(&self) -> Window {
        Window {
            node: self.header.node,
            from_seq: self.previous_seq.unwrap_or(0),
            to_seq: self.header.seq,
        }
    }
}

/// The first digest at an index, and who agreed with it.
#[derive(Debug)]
struct First {
    seen: Seen,
    agreeing: Vec<NodeId>,
    /// Whether a digest of another node was compared with it (counted once per index).
    across_nodes: bool,
}

/// What the check knows of a node.
#[derive(Debug, Default)]
struct NodeDigests {
    process: Option<u64>,
    pid: Option<u32>,
    last_digest_seq: Option<u64>,
}

/// The check across all nodes.
#[derive(Debug, Default)]
pub(crate) struct Digests {
    first: HashMap<u64, First>,
    nodes: BTreeMap<NodeId, NodeDigests>,
    /// Pairs of nodes (or a node with itself) reported diverged and not seen agreeing since:
    /// a divergence that lasts is reported once, not at every index after it.
    diverged: BTreeSet<(NodeId, NodeId)>,
    /// Digest events read.
    pub read: u64,
}

/// A state divergence found, and the windows of its context.
pub(crate) type Found = (Anomaly, [Window; 2]);

impl Digests {
    /// A new process of `node`: later digests are its.
    pub fn start(&mut self, node: NodeId, start: &Start, at: &EventRef) {
        let state = self.nodes.entry(node).or_default();
        state.process = Some(at.seq);
        state.pid = start.pid;
    }

    /// A digest: the first at its index is kept, any later one compared with it.
    pub fn digest(
        &mut self,
        header: Header,
        digest: &Digest,
        coverage: &mut Coverage,
    ) -> Option<Found> {
        self.read += 1;
        let node = self.nodes.entry(header.node).or_default();
        let seen = Seen {
            header,
            process: node.process,
            pid: node.pid,
            cause: digest.cause.as_deref().map(Box::from),
            state: State {
                height: digest.height,
                head: digest.head.as_deref().map(Box::from),
                registers: digest.registers.as_deref().map(Box::from),
            },
            previous_seq: node.last_digest_seq.replace(header.seq),
        };
        let Some(first) = self.first.get_mut(&digest.index) else {
            let first = First {
                seen,
                agreeing: Vec::new(),
                across_nodes: false,
            };
            self.first.insert(digest.index, first);
            return None;
        };
        coverage.add("digests_compared", 1);
        let (a, b) = (first.seen.header.node, header.node);
        if a != b && !first.across_nodes {
            first.across_nodes = true;
            coverage.add("digest_indices_across_nodes", 1);
        }
        if a == b && first.seen.process != seen.process {
            coverage.add("digests_across_restarts", 1);
        }
        let pair = (a.min(b), a.max(b));
        if first.seen.state.agrees(&seen.state) {
            if a != b && !first.agreeing.contains(&b) && first.agreeing.len() < AGREEING_MAX {
                first.agreeing.push(b);
            }
            self.diverged.remove(&pair);
            return None;
        }
        if !self.diverged.insert(pair) {
            return None;
        }
        Some(divergence(digest.index, first, &seen))
    }
}

/// The anomaly for `seen` differing from the first digest at `index`.
fn divergence(index: u64, first: &First, seen: &Seen) -> Found {
    let message = format!(
        "index {index}: node {} holds {} but node {} holds {}",
        first.seen.header.node,
        describe(&first.seen),
        seen.header.node,
        describe(seen)
    );
    let detail = Divergence {
        index,
        digests: vec![first.seen.detail(), seen.detail()],
        agreeing: first.agreeing.clone(),
    };
    let anomaly = Anomaly {
        rule: Rule::StateDivergence,
        message,
        events: vec![first.seen.at(), seen.at()],
        detail: Some(Detail::Divergence(detail)),
    };
    (anomaly, [first.seen.window(), seen.window()])
}

/// A digest in words: `height 5 head ab12… registers 00ff… (apply, seq 40)`.
fn describe(seen: &Seen) -> String {
    let unknown = || "?".to_string();
    let state = &seen.state;
    format!(
        "height {} head {:?} registers {} ({}, seq {})",
        state.height.map_or_else(unknown, |h| h.to_string()),
        state.head.as_deref().unwrap_or("?"),
        state.registers.as_deref().unwrap_or("?"),
        seen.cause.as_deref().unwrap_or("no cause"),
        seen.header.seq
    )
}
