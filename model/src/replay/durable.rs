//! Persist before send: a message that reports durable state leaves after the persist that
//! makes it true (the thesis's "flush before responding"; raft-rs's `Ready` contract).
//!
//! Which messages report durable state, in raft-rs 0.7:
//!
//! - `MsgAppendResponse` with `reject: false`: the sender holds its log up to `index`, in its
//!   current term (`term`);
//! - `MsgRequestVoteResponse` with `reject: false`: the sender voted for `to` in `term`;
//! - a candidate's own `MsgRequestVote`: it voted for itself in `term`.
//!
//! What may legitimately leave before a persist, and is not judged: everything a leader sends
//! (raft-rs hands a leader's messages out before its entries are persisted, thesis §10.2.1:
//! `MsgAppend`, heartbeats, snapshots, `MsgTimeoutNow`), pre-votes and their answers (no
//! durable state), `MsgHeartbeatResponse`, and refusals. Non-leaders' messages always come
//! after the persist of their `Ready` in raft-rs, so a correct follower or candidate never
//! trips the check.
//!
//! What counts as durable is what the process last reported: its `start` (the recovered hard
//! state and log), each `persist` (the hard state and the log's last index after it, which
//! already reflects a truncation), and an installed `snapshot` (the log rewritten and fsynced
//! up to its index). A vote granted for `term` is durable once the node durably holds that
//! term with that vote, or a later term (it can then never vote again in `term`). An append
//! response of an earlier term than the durable one is not judged: raft-rs may have made it
//! before a higher-term message in the same turn replaced the entries it acknowledges, and
//! the receiver ignores it once it learns the newer term.
//!
//! A send not covered when it leaves waits for the persist that covers it, so that the anomaly
//! names the persist it ran ahead of; one still waiting when its process ends (the next
//! `start`, or the end of the trace) was never covered.

use super::anomaly::{Anomaly, Detail, EarlySend, Rule};
use super::coverage::Coverage;
use super::event::{EventRef, Message, NodeId, Persist, Reported, Start};
use std::collections::{BTreeMap, VecDeque};

/// The most uncovered sends one node keeps waiting for a persist; beyond, the oldest is
/// reported as never covered.
pub const WAITING_MAX: usize = 256;

/// The hard state and log end a process last reported durable, and where.
#[derive(Clone, Debug)]
struct Durable {
    last_index: u64,
    term: u64,
    vote: NodeId,
    at: EventRef,
}

impl Durable {
    fn new(reported: &Reported, at: &EventRef) -> Self {
        Durable {
            last_index: reported.last_index,
            term: reported.term,
            vote: reported.vote,
            at: at.clone(),
        }
    }

    fn covers(&self, need: Need) -> bool {
        match need {
            Need::Log { index, term } => self.last_index >= index && self.term >= term,
            Need::Vote { term, vote } => {
                self.term > term || (self.term == term && self.vote == vote)
            }
        }
    }
}

/// What a message needs durable.
#[derive(Clone, Copy, Debug)]
enum Need {
    /// The log up to `index`, and the term `term`.
    Log { index: u64, term: u64 },
    /// The vote for `vote` in `term`.
    Vote { term: u64, vote: NodeId },
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Need::Log { index, term } => write!(f, "log to index {index} in term {term}"),
            Need::Vote { term, vote } => write!(f, "term {term} vote for {vote}"),
        }
    }
}

/// A checked send, as the anomaly names it.
#[derive(Clone, Debug)]
struct Sent {
    at: EventRef,
    msg_type: String,
    to: NodeId,
    term: u64,
    index: u64,
    need: Need,
    /// What was durable when it left.
    durable: Durable,
}

/// What the check knows of a node's current process.
#[derive(Debug, Default)]
struct Sender {
    /// `None` before the node's first `start`: nothing is known, nothing judged.
    durable: Option<Durable>,
    waiting: VecDeque<Sent>,
}

/// The check across all nodes.
#[derive(Debug, Default)]
pub(crate) struct PersistBeforeSend {
    senders: BTreeMap<NodeId, Sender>,
    /// Append responses of an earlier term than the durable one, not judged.
    pub stale: u64,
    /// Sends lacking a field the check needs, not judged.
    pub lacking_fields: u64,
    /// Sends before the node's first `start`, not judged.
    pub before_start: u64,
}

impl PersistBeforeSend {
    /// A new process: what still waits was never covered; what it recovered is durable.
    pub fn start(&mut self, node: NodeId, start: &Start, at: &EventRef) -> Vec<Anomaly> {
        let sender = self.senders.entry(node).or_default();
        let found = sender
            .waiting
            .drain(..)
            .map(|sent| early(node, &sent, Ending::ProcessEnded(at)))
            .collect();
        sender.durable = Some(Durable::new(&start.recovered, at));
        found
    }

    /// A persist: what it reports is durable; the sends it covers ran ahead of it.
    pub fn persist(&mut self, node: NodeId, persist: &Persist, at: &EventRef) -> Vec<Anomaly> {
        let sender = self.senders.entry(node).or_default();
        sender.durable = Some(Durable::new(&persist.persisted, at));
        sender.resolve(node, at)
    }

    /// A snapshot installed at `index`: the log was rewritten up to it and fsynced.
    pub fn installed(&mut self, node: NodeId, index: u64, at: &EventRef) -> Vec<Anomaly> {
        let sender = self.senders.entry(node).or_default();
        let Some(durable) = &mut sender.durable else {
            return Vec::new();
        };
        durable.last_index = index;
        durable.at = at.clone();
        sender.resolve(node, at)
    }

    /// A send: judged when it reports durable state.
    pub fn send(
        &mut self,
        node: NodeId,
        message: &Message,
        at: &EventRef,
        coverage: &mut Coverage,
    ) -> Option<Anomaly> {
        let (to, term, index, need) = match judged(node, message) {
            Judged::Not => return None,
            Judged::Lacking => {
                self.lacking_fields += 1;
                return None;
            }
            Judged::Needs(to, term, index, need) => (to, term, index, need),
        };
        let sender = self.senders.entry(node).or_default();
        let Some(durable) = &sender.durable else {
            self.before_start += 1;
            return None;
        };
        if matches!(need, Need::Log { .. }) && term < durable.term {
            self.stale += 1;
            return None;
        }
        coverage.add("sends_checked", 1);
        if durable.covers(need) {
            return None;
        }
        let sent = Sent {
            at: at.clone(),
            msg_type: message.msg_type.clone(),
            to,
            term,
            index,
            need,
            durable: durable.clone(),
        };
        sender.waiting.push_back(sent);
        if sender.waiting.len() > WAITING_MAX {
            let oldest = sender.waiting.pop_front().expect("over the bound");
            return Some(early(node, &oldest, Ending::TooManyWaiting));
        }
        None
    }

    /// The end of the traces: what still waits was never covered.
    pub fn finish(&mut self) -> Vec<Anomaly> {
        let mut found = Vec::new();
        for (&node, sender) in &mut self.senders {
            found.extend(
                sender
                    .waiting
                    .drain(..)
                    .map(|s| early(node, &s, Ending::TraceEnded)),
            );
        }
        found
    }
}

impl Sender {
    /// The waiting sends the durable state now covers, as anomalies naming `at`.
    fn resolve(&mut self, node: NodeId, at: &EventRef) -> Vec<Anomaly> {
        let durable = self.durable.as_ref().expect("set by the caller");
        let mut found = Vec::new();
        self.waiting.retain(|sent| {
            let covered = durable.covers(sent.need);
            if covered {
                found.push(early(node, sent, Ending::CoveredBy(at)));
            }
            !covered
        });
        found
    }
}

/// How the check sees a message.
enum Judged {
    /// It reports no durable state.
    Not,
    /// It does, but lacks a field the check needs.
    Lacking,
    /// It does: its receiver, term, index and what it needs durable.
    Needs(NodeId, u64, u64, Need),
}

/// Whether `node`'s message `m` is judged, and against what.
fn judged(node: NodeId, m: &Message) -> Judged {
    let need = match (m.msg_type.as_str(), m.reject) {
        ("MsgAppendResponse" | "MsgRequestVoteResponse", Some(true)) => return Judged::Not,
        ("MsgAppendResponse", Some(false)) => m
            .index
            .zip(m.term)
            .map(|(index, term)| Need::Log { index, term }),
        ("MsgRequestVoteResponse", Some(false)) => m
            .term
            .zip(m.to)
            .map(|(term, vote)| Need::Vote { term, vote }),
        ("MsgAppendResponse" | "MsgRequestVoteResponse", None) => None,
        ("MsgRequestVote", _) if m.from.is_none_or(|from| from == node) => {
            m.term.map(|term| Need::Vote { term, vote: node })
        }
        _ => return Judged::Not,
    };
    match (need, m.to, m.term) {
        (Some(need), Some(to), Some(term)) => Judged::Needs(to, term, m.index.unwrap_or(0), need),
        _ => Judged::Lacking,
    }
}

/// How the wait of a send that left uncovered ended.
#[derive(Clone, Copy)]
enum Ending<'a> {
    /// This persist (or installed snapshot) made it true.
    CoveredBy(&'a EventRef),
    /// This `start` began a new process first.
    ProcessEnded(&'a EventRef),
    /// The trace ended first.
    TraceEnded,
    /// More than [`WAITING_MAX`] sends of the node waited.
    TooManyWaiting,
}

/// The anomaly for a send that left before the persist covering it.
fn early(node: NodeId, sent: &Sent, ending: Ending<'_>) -> Anomaly {
    let durable = &sent.durable;
    let (after, last) = match ending {
        Ending::CoveredBy(persist) => (
            format!("the {} at seq {} made it true", persist.ev, persist.seq),
            Some(persist),
        ),
        Ending::ProcessEnded(start) => (
            format!(
                "no persist made it true before the process ended (next start at seq {})",
                start.seq
            ),
            Some(start),
        ),
        Ending::TraceEnded => (
            "no persist made it true before the trace ended".to_string(),
            None,
        ),
        Ending::TooManyWaiting => (
            format!("no persist made it true while {WAITING_MAX} later sends waited too"),
            None,
        ),
    };
    let message = format!(
        "node {node} sent {} to {} (term {}, index {}) needing {} durable, when its last {} \
         (seq {}) held log to index {} in term {} with {}; {after}",
        sent.msg_type,
        sent.to,
        sent.term,
        sent.index,
        sent.need,
        durable.at.ev,
        durable.at.seq,
        durable.last_index,
        durable.term,
        describe_vote((durable.vote != 0).then_some(durable.vote)),
    );
    let detail = EarlySend {
        node,
        send_seq: sent.at.seq,
        msg_type: sent.msg_type.clone(),
        to: sent.to,
        term: sent.term,
        index: sent.index,
        needs: sent.need.to_string(),
        durable_seq: durable.at.seq,
        durable_last_index: durable.last_index,
        durable_term: durable.term,
        durable_vote: durable.vote,
        covered_by_seq: match ending {
            Ending::CoveredBy(persist) => Some(persist.seq),
            _ => None,
        },
    };
    let events = [Some(&durable.at), Some(&sent.at), last]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    Anomaly {
        rule: Rule::PersistBeforeSend,
        message,
        events,
        detail: Some(Detail::EarlySend(detail)),
    }
}

/// A vote in words: `vote for 2`, `no vote`.
pub(crate) fn describe_vote(vote: Option<NodeId>) -> String {
    vote.map_or("no vote".to_string(), |node| format!("vote for {node}"))
}
