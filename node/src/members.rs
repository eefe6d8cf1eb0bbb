//! Consenter-set changes and leader transfer on the raft loop (issue 14,
//! docs/node-api.md `POST /members`, `POST /transfer`).
//!
//! A change goes through the log as a `ConfChangeV2` (raft's joint
//! consensus when it holds more than one change, left automatically), its
//! context the added nodes' addresses as JSON `{"id": "host:port"}`. Every
//! node applies it when committed: raft's configuration, the storage's
//! `ConfState` (which snapshots carry), the transport's links, the trace's
//! `conf` event. A node a configuration leaves out after naming it stops:
//! raft no longer lets it campaign, and it refuses submits. A node being
//! added applies configurations from before it joined (they do not name it
//! yet): those do not stop it (issue 20, item 1).

use super::RaftLoop;
use crate::crash_points::{self, Point};
use crate::event::{MemberChange, MemberOp, MemberReply};
use crate::transport::Frame;
use protobuf::Message as PbMessage;
use raft::prelude::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
    Entry, EntryType,
};
use raft::StateRole;
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::oneshot;

/// Changes one request may carry at most.
pub const CHANGES_MAX: usize = 8;

/// The applied configuration as `GET /members` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MembersView {
    /// Voters (the incoming ones during a joint configuration).
    pub voters: Vec<u64>,
    /// The outgoing voters while joint, else empty.
    pub voters_outgoing: Vec<u64>,
    /// Learners.
    pub learners: Vec<u64>,
    /// The index of the configuration that removed this node, if any.
    pub removed_at: Option<u64>,
}

type Refusal = (u16, String);

fn refusal(status: u16, message: String) -> Refusal {
    (status, message)
}

/// Every id the configuration names.
pub(super) fn members_of(cs: &ConfState) -> BTreeSet<u64> {
    cs.voters
        .iter()
        .chain(&cs.voters_outgoing)
        .chain(&cs.learners)
        .chain(&cs.learners_next)
        .copied()
        .collect()
}

/// `add 4, remove 2` — the trace's `change` text.
fn describe(cc: &ConfChangeV2) -> String {
    if cc.changes.is_empty() {
        return "leave joint".to_string();
    }
    let words: Vec<String> = cc
        .changes
        .iter()
        .map(|c| {
            let op = match c.get_change_type() {
                ConfChangeType::AddNode => "promote",
                ConfChangeType::AddLearnerNode => "add",
                ConfChangeType::RemoveNode => "remove",
            };
            format!("{op} {}", c.node_id)
        })
        .collect();
    words.join(", ")
}

impl RaftLoop {
    /// `POST /members` on this node: proposes the change (leader only) and
    /// answers once it is applied, or at once with why it cannot be.
    pub(super) fn member_change(
        &mut self,
        changes: &[MemberChange],
        reply: oneshot::Sender<MemberReply>,
    ) {
        match self.propose_member(changes) {
            Ok(index) => self.pending_member = Some((index, reply)),
            Err(refused) => {
                let _ = reply.send(Err(refused));
            }
        }
    }

    fn leading(&self) -> Result<(), Refusal> {
        if self.role == StateRole::Leader {
            return Ok(());
        }
        let leader = self.raw.raft.leader_id;
        Err(refusal(
            421,
            format!("this node does not lead; the leader is node {leader} (0: none known); send the request there"),
        ))
    }

    fn propose_member(&mut self, changes: &[MemberChange]) -> Result<u64, Refusal> {
        self.leading()?;
        if changes.is_empty() || changes.len() > CHANGES_MAX {
            return Err(refusal(
                400,
                format!("`changes` must hold 1 to {CHANGES_MAX} changes"),
            ));
        }
        if let Some((index, _)) = &self.pending_member {
            return Err(refusal(409, format!("a configuration change is in flight (proposed at index {index}); retry once it is applied")));
        }
        if self.raw.raft.has_pending_conf() {
            return Err(refusal(409, "a configuration change is in flight (or the joint configuration is being left); retry once it is applied".to_string()));
        }
        let (singles, addrs) = self.validate(changes)?;
        let mut cc = ConfChangeV2::default();
        cc.set_changes(singles.into());
        cc.set_transition(ConfChangeTransition::Auto);
        let context = serde_json::to_vec(&addrs).expect("a map of strings encodes");
        self.raw
            .propose_conf_change(context, cc)
            .map_err(|e| refusal(409, format!("raft refused the change: {e}")))?;
        Ok(self.raw.raft.raft_log.last_index())
    }

    /// Checks each change against the applied configuration; returns raft's
    /// changes and the added nodes' addresses.
    fn validate(
        &self,
        changes: &[MemberChange],
    ) -> Result<(Vec<ConfChangeSingle>, BTreeMap<u64, String>), Refusal> {
        let conf = self.raw.raft.prs().conf();
        let mut voters: BTreeSet<u64> = conf.voters().ids().iter().collect();
        let learners: BTreeSet<u64> = conf.learners().iter().copied().collect();
        let me = self.shared.config.args.id;
        let committed = self.raw.raft.raft_log.committed;
        let mut singles = Vec::new();
        let mut addrs = BTreeMap::new();
        for (i, c) in changes.iter().enumerate() {
            let at = |problem: String| refusal(400, format!("changes[{i}]: {problem}"));
            let member = voters.contains(&c.id) || learners.contains(&c.id);
            let kind = match c.op {
                MemberOp::Add => {
                    if c.id == 0 || member {
                        return Err(at(format!("node {} is already a member (or 0)", c.id)));
                    }
                    let addr = c.addr.as_deref().filter(|a| a.contains(':'));
                    let addr = addr.ok_or_else(|| at("`add` needs `addr` (host:port)".into()))?;
                    addrs.insert(c.id, addr.to_string());
                    ConfChangeType::AddLearnerNode
                }
                MemberOp::Promote => {
                    if !learners.contains(&c.id) {
                        return Err(at(format!("node {} is not a learner", c.id)));
                    }
                    let matched = self.raw.raft.prs().get(c.id).map_or(0, |p| p.matched);
                    if matched < committed {
                        return Err(refusal(409, format!("changes[{i}]: learner {} has the log up to index {matched} of {committed} committed; promote it once it caught up", c.id)));
                    }
                    voters.insert(c.id);
                    ConfChangeType::AddNode
                }
                MemberOp::Remove => {
                    if !member {
                        return Err(refusal(
                            404,
                            format!("changes[{i}]: node {} is not a member", c.id),
                        ));
                    }
                    if c.id == me {
                        return Err(refusal(409, format!("changes[{i}]: node {me} leads; transfer leadership first (POST /transfer)")));
                    }
                    voters.remove(&c.id);
                    ConfChangeType::RemoveNode
                }
            };
            let mut single = ConfChangeSingle::default();
            single.set_change_type(kind);
            single.node_id = c.id;
            singles.push(single);
        }
        if voters.is_empty() {
            return Err(refusal(
                400,
                "the change would remove the last voter".into(),
            ));
        }
        Ok((singles, addrs))
    }

    /// Answers a waiting membership request once this node stops leading:
    /// its outcome is then unknown.
    pub(super) fn fail_member_if_not_leading(&mut self) {
        if self.role == StateRole::Leader {
            return;
        }
        if let Some((index, reply)) = self.pending_member.take() {
            let why = format!("leadership lost with the change at index {index} uncommitted; it may still be applied: check GET /members");
            let _ = reply.send(Err((503, why)));
        }
    }

    /// `POST /transfer`: asks raft to hand leadership to voter `to`.
    pub(super) fn transfer(&mut self, to: u64) -> MemberReply {
        self.leading()?;
        if to == self.shared.config.args.id {
            return Err(refusal(400, format!("node {to} already leads")));
        }
        if !self.raw.raft.prs().conf().voters().ids().contains(to) {
            return Err(refusal(404, format!("node {to} is not a voter")));
        }
        self.raw.transfer_leader(to);
        tracing::info!(to, "leader transfer asked");
        Ok(json!({"transferring_to": to, "term": self.raw.raft.term}))
    }

    /// A committed conf change: raft, storage, links, trace, the waiter.
    pub(super) fn apply_conf_change(&mut self, e: &Entry) {
        let decoded = match e.get_entry_type() {
            EntryType::EntryConfChange => ConfChange::parse_from_bytes(&e.data).map(|c| {
                let mut single = ConfChangeSingle::default();
                single.set_change_type(c.get_change_type());
                single.node_id = c.node_id;
                let mut v2 = ConfChangeV2::default();
                v2.set_changes(vec![single].into());
                v2
            }),
            _ => ConfChangeV2::parse_from_bytes(&e.data),
        };
        let cc = match decoded {
            Ok(cc) => cc,
            Err(err) => {
                tracing::error!(index = e.index, error = %err, "undecodable conf change skipped");
                return;
            }
        };
        crash_points::at(Point::ConfApplyBefore);
        let cs = match self.raw.apply_conf_change(&cc) {
            Ok(mut cs) => {
                for ids in [
                    &mut cs.voters,
                    &mut cs.voters_outgoing,
                    &mut cs.learners,
                    &mut cs.learners_next,
                ] {
                    ids.sort_unstable();
                }
                cs
            }
            Err(err) => {
                tracing::error!(index = e.index, error = %err, "raft refused a committed conf change");
                return;
            }
        };
        self.raw.mut_store().set_conf_state(cs.clone());
        self.relink(&cc, &e.context, &cs, e.index);
        self.note_membership(&cs, e.index);
        let change = describe(&cc);
        self.trace.conf(e.index, &cs.voters, &cs.learners, &change);
        crash_points::at(Point::ConfApplyAfter);
        tracing::info!(index = e.index, %change, voters = ?cs.voters, learners = ?cs.learners, "configuration applied");
        self.publish_members();
        if self
            .pending_member
            .as_ref()
            .is_some_and(|(i, _)| *i == e.index)
        {
            let (_, reply) = self.pending_member.take().expect("checked");
            let body = json!({"index": e.index, "change": change, "voters": cs.voters, "learners": cs.learners});
            let _ = reply.send(Ok(body));
        }
    }

    /// The removal rule: a configuration that leaves this node out removes
    /// it only when an earlier one named it. A node that joined replays
    /// the log from its start (or from a snapshot taken before it was
    /// added) and applies configurations from before it was added, which
    /// do not name it yet: those are not its removal.
    fn note_membership(&mut self, cs: &ConfState, index: u64) {
        let me = self.shared.config.args.id;
        if members_of(cs).contains(&me) {
            self.was_member = true;
        } else if !self.was_member {
            tracing::debug!(
                index,
                "a configuration from before this node was added: not its removal"
            );
        } else if self.removed.is_none() {
            self.removed = Some(index);
            tracing::warn!(index, "removed from the consenter set: halting this chain (no campaigns, submits refused)");
        }
    }

    /// Links to added nodes (addresses from the context), none to removed.
    fn relink(&mut self, cc: &ConfChangeV2, context: &[u8], cs: &ConfState, index: u64) {
        if !context.is_empty() {
            match serde_json::from_slice::<BTreeMap<u64, String>>(context) {
                Ok(addrs) => {
                    for (id, addr) in addrs {
                        self.transport.add_peer(id, &addr);
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "conf change context is not an address map")
                }
            }
        }
        // The link to a removed node stays (raft sends it nothing): it is
        // how the node hears that it was removed (`tell_if_removed`).
        let members = members_of(cs);
        for c in cc.changes.iter() {
            if c.get_change_type() == ConfChangeType::RemoveNode && !members.contains(&c.node_id) {
                self.removed_peers.insert(c.node_id, index);
            }
        }
    }

    /// On the leader: a raft message from a node a configuration removed
    /// is answered with the eviction notice and not stepped (Fabric's
    /// eviction suspicion, from the other side). True when it was.
    pub(super) fn tell_if_removed(&mut self, from: u64) -> bool {
        if self.role != StateRole::Leader {
            return false;
        }
        let Some(&index) = self.removed_peers.get(&from) else {
            return false;
        };
        if self.transport.send(from, Frame::Removed(index)) {
            tracing::info!(
                peer = from,
                index,
                "told a removed node that it was removed"
            );
        }
        true
    }

    /// A member says the configuration at `index` removed this node: halt
    /// (no ticks, submits refused), as if this node had applied it.
    pub(super) fn heard_removed(&mut self, from: u64, index: u64) {
        if self.removed.is_some() {
            return;
        }
        tracing::warn!(from, index, "a member says the configuration at this index removed this node (eviction): halting this chain");
        self.removed = Some(index);
        // Back from a pre-vote campaign, if it was in one (the term is kept).
        let term = self.raw.raft.term;
        self.raw.raft.become_follower(term, 0);
        self.publish_members();
    }

    /// Publishes the applied configuration for `GET /members`.
    pub(super) fn publish_members(&self) {
        let cs = self
            .raw
            .store()
            .conf_state()
            .expect("memory storage never fails");
        let view = MembersView {
            voters: cs.voters,
            voters_outgoing: cs.voters_outgoing,
            learners: cs.learners,
            removed_at: self.removed,
        };
        *self.shared.members.lock().expect("members lock") = view;
    }
}
