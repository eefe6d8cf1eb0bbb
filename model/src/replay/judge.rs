//! Replaying merged events through each node's state and the shared rules.

use super::anomaly::{Anomalies, Anomaly, Rule};
use super::context::Window;
use super::continuity::ApplyOrder;
use super::coverage::Coverage;
use super::digest::Digests;
use super::durable::{describe_vote, PersistBeforeSend};
use super::event::{
    Apply, Event, EventRef, Kind, NodeId, Persist, Reported, Role, RoleChange, Snapshot,
    SnapshotAction, Start,
};
use crate::rules::{self, LogView, Vote};
use std::collections::BTreeMap;

/// A node's log as its trace reveals it: the terms of the entries it reported.
///
/// Invariant: every known index is in `first_index - 1 ..= last_index` (the entry just before
/// `first_index` is the snapshot's last).
#[derive(Clone, Debug, Default)]
pub(crate) struct TraceLog {
    first_index: u64,
    last_index: u64,
    terms: BTreeMap<u64, u64>,
}

impl LogView for TraceLog {
    type Entry = u64;

    fn last_index(&self) -> u64 {
        self.last_index
    }

    fn entry(&self, index: u64) -> Option<u64> {
        self.terms.get(&index).copied()
    }

    fn term(entry: u64) -> u64 {
        entry
    }
}

impl TraceLog {
    /// Sets the bounds, forgetting entries outside them (cut, or replaced by a snapshot).
    fn bound(&mut self, first_index: u64, last_index: u64) {
        self.first_index = first_index;
        self.last_index = last_index;
        self.terms.split_off(&(last_index + 1));
        self.terms = self.terms.split_off(&first_index.saturating_sub(1));
    }

    /// Records the term at `index` (0 terms, the empty prefix's, are not entries).
    fn know(&mut self, index: u64, term: u64) {
        if index > 0 && term > 0 {
            self.terms.insert(index, term);
        }
    }

    /// The known entries from `from` on, as a log of its own (what a leader held before a
    /// persist, to compare with after).
    fn window(&self, from: u64) -> TraceLog {
        TraceLog {
            first_index: from,
            last_index: self.last_index,
            terms: self.terms.range(from..).map(|(&i, &t)| (i, t)).collect(),
        }
    }
}

/// What the replay knows of one node.
#[derive(Debug, Default)]
struct NodeState {
    /// The last term and vote reported (persisted or recovered), and where.
    vote: Option<(Vote<NodeId>, EventRef)>,
    /// The last commit index reported (persisted or recovered), and where.
    commit: Option<(u64, EventRef)>,
    log: TraceLog,
    /// The event that last changed `log`.
    log_at: Option<EventRef>,
    /// The log as last reported persisted: (last index, last term, where).
    persisted: Option<(u64, u64, EventRef)>,
    role: Option<Role>,
    role_term: u64,
    /// The `role` event that made the node leader of `role_term`, while it leads.
    leading: Option<EventRef>,
    started: bool,
}

impl NodeState {
    /// Whether the node leads `term`.
    fn leads(&self, term: u64) -> bool {
        self.role == Some(Role::Leader) && self.role_term == term
    }
}

/// An index known committed: the term of its entry, the term of the node that first reported
/// it committed, and that report.
#[derive(Debug)]
struct Committed {
    term: u64,
    in_term: u64,
    at: EventRef,
}

/// The replay's state across nodes.
#[derive(Debug, Default)]
pub(crate) struct Judge {
    nodes: BTreeMap<NodeId, NodeState>,
    /// Per term, its leader and the event that made it leader.
    leaders: BTreeMap<u64, (NodeId, EventRef)>,
    committed: BTreeMap<u64, Committed>,
    /// Per index, the first entry applied there: ((term, block, hash), where).
    applied: BTreeMap<u64, (AppliedEntry, EventRef)>,
    last_leader: Option<NodeId>,
    anomalies: Anomalies,
    starts_after_cut: u64,
    coverage: Coverage,
    /// The oracles of issue 22, each with its own state.
    digests: Digests,
    apply_order: ApplyOrder,
    sends: PersistBeforeSend,
    /// The context each listed state divergence wants, by its position in the list.
    windows: Vec<(usize, Window)>,
}

type AppliedEntry = (u64, Option<u64>, Option<String>);

/// What a replay found, for the report.
pub(crate) struct Findings {
    pub anomalies: Vec<Anomaly>,
    pub anomalies_not_listed: u64,
    pub starts_after_cut: u64,
    pub coverage: BTreeMap<String, u64>,
    /// Checks skipped for lack of data, in words.
    pub notes: Vec<String>,
    /// The context windows of listed anomalies, by position.
    pub windows: Vec<(usize, Window)>,
}

impl Judge {
    /// Replays one event, in causal order.
    pub fn replay(&mut self, event: &Event) {
        let at = event.at();
        let node = event.header.node;
        self.watch(event, &at);
        match &event.kind {
            Kind::Start(start) => self.start(node, start, at),
            Kind::Persist(persist) => self.persist(node, persist, at),
            Kind::Role(change) => self.role(node, change, at),
            Kind::Apply(apply) => self.apply(apply, at),
            Kind::Snapshot(snapshot) => self.snapshot(node, snapshot, at),
            Kind::Compact(compact) => {
                self.coverage.add("compactions", 1);
                let log = &mut self.nodes.entry(node).or_default().log;
                log.bound(compact.index + 1, log.last_index.max(compact.index));
            }
            Kind::Conf(_) => self.coverage.add("conf_changes", 1),
            Kind::CrashPoint(_) => self.coverage.add("crash_points_fired", 1),
            Kind::Send(_) | Kind::Recv(_) | Kind::Digest(_) | Kind::Unknown(_) => {}
        }
    }

    /// The oracles that watch one node's state machine and disk: state digests, apply
    /// continuity, persist before send.
    fn watch(&mut self, event: &Event, at: &EventRef) {
        let node = event.header.node;
        let found = match &event.kind {
            Kind::Start(start) => {
                self.digests.start(node, start, at);
                self.apply_order.start(node, start, at);
                self.sends.start(node, start, at)
            }
            Kind::Persist(persist) => self.sends.persist(node, persist, at),
            Kind::Snapshot(s) if s.action == SnapshotAction::Installed => {
                self.apply_order.installed(node, s.index, at);
                self.sends.installed(node, s.index, at)
            }
            Kind::Apply(apply) => {
                let found = self
                    .apply_order
                    .apply(node, apply.index, at, &mut self.coverage);
                found.into_iter().collect()
            }
            Kind::Send(message) => {
                let found = self.sends.send(node, message, at, &mut self.coverage);
                found.into_iter().collect()
            }
            Kind::Digest(digest) => {
                let found = self
                    .digests
                    .digest(event.header, digest, &mut self.coverage);
                if let Some((anomaly, windows)) = found {
                    if let Some(position) = self.anomalies.push(anomaly) {
                        self.windows.extend(windows.map(|w| (position, w)));
                    }
                }
                Vec::new()
            }
            _ => Vec::new(),
        };
        for anomaly in found {
            self.anomalies.push(anomaly);
        }
    }

    /// What the replay found.
    pub fn finish(mut self) -> Findings {
        for anomaly in self.sends.finish() {
            self.anomalies.push(anomaly);
        }
        let notes = self.notes();
        Findings {
            anomalies: self.anomalies.listed,
            anomalies_not_listed: self.anomalies.not_listed,
            starts_after_cut: self.starts_after_cut,
            coverage: self.coverage.into_map(),
            notes,
            windows: self.windows,
        }
    }

    /// The oracles' checks skipped for lack of data, in words.
    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.digests.read == 0 {
            notes.push(
                "no `digest` event in any trace: the state machines were not compared \
                 (nodes older than the digest trace)"
                    .to_string(),
            );
        }
        let skipped = [
            (
                self.apply_order.unchecked,
                "first applies of a process not checked for continuity: its `start` has no \
                 `applied` (a node older than the field) or the trace has no `start` before \
                 them, so the index to follow is not known",
            ),
            (
                self.sends.lacking_fields,
                "sends not checked for persist-before-send: they lack `to`, `term`, `index` or \
                 `reject`",
            ),
            (
                self.sends.before_start,
                "sends not checked for persist-before-send: the trace has no `start` before them",
            ),
            (
                self.sends.stale,
                "append responses not checked for persist-before-send: their term is older \
                 than the node's durable term (raft-rs may have made them before a newer \
                 leader's append in the same turn; their receiver ignores them)",
            ),
        ];
        for (count, what) in skipped {
            if count > 0 {
                notes.push(format!("{count} {what}"));
            }
        }
        notes
    }

    /// A node's start: checked against what it reported before it stopped.
    ///
    /// After a cut trace (`trace_cut`), the node's earlier state is forgotten instead of
    /// compared: the lost event may have been a persist the node did make.
    fn start(&mut self, id: NodeId, start: &Start, at: EventRef) {
        let snapshot = (start.snapshot_index, start.snapshot_term);
        let cut = start.trace_cut;
        let start = &start.recovered;
        let committed_max = self.committed.last_key_value().map_or(0, |(&i, _)| i);
        let node = self.nodes.entry(id).or_default();
        if cut {
            self.starts_after_cut += 1;
            *node = NodeState {
                started: node.started,
                ..NodeState::default()
            };
        }
        if node.started {
            self.coverage.add("restarts", 1);
            if start.last_index > start.commit.max(committed_max) {
                self.coverage.add("restarts_with_uncommitted_tail", 1);
            }
        }
        self.durability(id, start, &at);
        self.hard_state(id, start, &at);
        let node = self.nodes.entry(id).or_default();
        node.log.bound(start.first_index, start.last_index);
        node.log.know(snapshot.0, snapshot.1);
        node.log.know(start.last_index, start.last_term);
        node.log_at = Some(at.clone());
        node.persisted = Some((start.last_index, start.last_term, at));
        node.role = Some(Role::Follower);
        node.leading = None;
        node.started = true;
    }

    /// Durability: the recovered log holds at least what the node last reported persisted.
    /// (A lost term, vote or commit index is reported by its own rule, across the restart.)
    fn durability(&mut self, id: NodeId, start: &Reported, at: &EventRef) {
        let node = &self.nodes[&id];
        let Some((last_index, last_term, persisted_at)) = node.persisted.clone() else {
            return;
        };
        let lost = if start.last_index < last_index {
            format!(
                "node {id} persisted entries up to index {last_index} but recovered only up to {}",
                start.last_index
            )
        } else if start.last_index == last_index && last_index > 0 && start.last_term != last_term {
            format!(
                "node {id} persisted index {last_index} in term {last_term} but recovered it in term {}",
                start.last_term
            )
        } else {
            return;
        };
        self.anomalies
            .rule(Rule::Durability, lost, vec![persisted_at, at.clone()]);
    }

    /// The term, vote and commit index of a persist or a start: checked, then recorded.
    fn hard_state(&mut self, id: NodeId, reported: &Reported, at: &EventRef) {
        let node = self.nodes.entry(id).or_default();
        let after = Vote {
            term: reported.term,
            voted_for: (reported.vote != 0).then_some(reported.vote),
        };
        let commit = reported.commit;
        let mut found = Vec::new();
        if let Some((before, before_at)) = node.vote.replace((after, at.clone())) {
            if !rules::vote_kept(&before, &after) {
                let message = format!(
                    "node {id} went from term {} ({}) to term {} ({})",
                    before.term,
                    describe_vote(before.voted_for),
                    after.term,
                    describe_vote(after.voted_for)
                );
                found.push((Rule::VoteKept, message, vec![before_at, at.clone()]));
            }
        }
        if let Some((before, before_at)) = node.commit.replace((commit, at.clone())) {
            if !rules::commit_monotone(before, commit) {
                let message = format!("node {id}'s commit index went from {before} to {commit}");
                found.push((Rule::CommitMonotone, message, vec![before_at, at.clone()]));
            }
        }
        for (rule, message, events) in found {
            self.anomalies.rule(rule, message, events);
        }
    }

    /// A persist: hard state, then the log change, then what it newly commits.
    fn persist(&mut self, id: NodeId, persist: &Persist, at: EventRef) {
        let old_commit = self.nodes.get(&id).and_then(|n| n.commit.as_ref());
        let old_commit = old_commit.map_or(0, |(commit, _)| *commit);
        self.hard_state(id, &persist.persisted, &at);
        let written = self.write_log(id, persist, &at);
        self.log_matching(id, &written, &at);
        self.commit(id, persist, old_commit, &at);
        let node = self.nodes.get_mut(&id).expect("created by hard_state");
        let reported = &persist.persisted;
        node.persisted = Some((reported.last_index, reported.last_term, at));
    }

    /// Applies a persist's log change, checking Leader Append-Only when the node leads the
    /// persist's term; returns the indices written.
    fn write_log(&mut self, id: NodeId, persist: &Persist, at: &EventRef) -> Vec<u64> {
        let reported = &persist.persisted;
        let node = self.nodes.get_mut(&id).expect("created by hard_state");
        let first_written = persist.appended.first().map(|&(index, _)| index);
        let from = match (persist.truncated_from, first_written) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let old_last = node.log.last_index;
        let leading = node.leads(reported.term).then(|| node.leading.clone());
        let before = from.map(|from| node.log.window(from));
        if let Some(cut) = persist.truncated_from.filter(|&cut| cut <= old_last) {
            node.log.terms.split_off(&cut);
            if leading.is_none() {
                let depth = old_last - cut + 1;
                self.coverage.add("follower_truncations", 1);
                self.coverage.add("truncated_entries", depth);
                self.coverage.raise("truncation_depth_max", depth);
            }
        }
        for &(index, term) in &persist.appended {
            node.log.know(index, term);
        }
        node.log.bound(reported.first_index, reported.last_index);
        node.log.know(reported.last_index, reported.last_term);
        node.log_at = Some(at.clone());
        if let (Some(leading), Some(before), Some(from)) = (leading, before, from) {
            if let Some(index) = rules::leader_append_only(&before, &node.log, from) {
                let message = format!(
                    "leader {id} of term {} rewrote its log at index {index}",
                    reported.term
                );
                let events = leading.into_iter().chain([at.clone()]).collect();
                self.anomalies.rule(Rule::LeaderAppendOnly, message, events);
            }
        }
        let mut written: Vec<u64> = persist.appended.iter().map(|&(i, _)| i).collect();
        written.extend(written.last().map(|&last| last + 1));
        written
    }

    /// Log Matching between this node's log and every other node's, at the indices written
    /// (and the one after, whose predecessor changed).
    fn log_matching(&mut self, id: NodeId, written: &[u64], at: &EventRef) {
        let mut found = Vec::new();
        let this = &self.nodes[&id];
        for (&other_id, other) in self.nodes.iter().filter(|(&other, _)| other != id) {
            let Some(index) = written
                .iter()
                .copied()
                .find(|&index| !rules::log_matching_at(&this.log, &other.log, index))
            else {
                continue;
            };
            let message = format!(
                "nodes {id} and {other_id} hold term {} at index {index} but differ at index {}",
                this.log.entry(index).unwrap_or_default(),
                index - 1
            );
            let events = other.log_at.iter().cloned().chain([at.clone()]).collect();
            found.push((message, events));
        }
        for (message, events) in found {
            self.anomalies.rule(Rule::LogMatching, message, events);
        }
    }

    /// Records the entries a persist newly commits, counting a leader's commit of an earlier
    /// term's entry (Figure 8's shape) and checking that every node commits the same entry.
    fn commit(&mut self, id: NodeId, persist: &Persist, old_commit: u64, at: &EventRef) {
        let reported = &persist.persisted;
        let node = &self.nodes[&id];
        if reported.commit <= old_commit {
            return;
        }
        let leading = node.leads(reported.term);
        let newly: Vec<(u64, u64)> = node
            .log
            .terms
            .range(old_commit + 1..=reported.commit)
            .map(|(&index, &term)| (index, term))
            .collect();
        let mut earlier_term = false;
        for (index, term) in newly {
            match self.committed.get(&index) {
                None => {
                    earlier_term |= leading && term < reported.term;
                    let committed = Committed {
                        term,
                        in_term: reported.term,
                        at: at.clone(),
                    };
                    self.committed.insert(index, committed);
                }
                Some(first) if first.term != term => {
                    let message = format!(
                        "index {index} committed in term {} and, by node {id}, in term {term}",
                        first.term
                    );
                    let events = vec![first.at.clone(), at.clone()];
                    self.anomalies
                        .rule(Rule::StateMachineSafety, message, events);
                }
                Some(_) => {}
            }
        }
        if earlier_term {
            self.coverage.add("earlier_term_commits", 1);
        }
    }

    /// A snapshot taken, sent or installed. An installed snapshot replaces the node's log
    /// (raft-rs restores only a snapshot its log does not already match), including what it
    /// had persisted: a restart may then recover less than an earlier persist reported.
    fn snapshot(&mut self, id: NodeId, snapshot: &Snapshot, at: EventRef) {
        let name = match snapshot.action {
            SnapshotAction::Taken => "snapshots_taken",
            SnapshotAction::Sent => "snapshots_sent",
            SnapshotAction::Installed => "snapshots_installed",
        };
        self.coverage.add(name, 1);
        if snapshot.action == SnapshotAction::Installed {
            let node = self.nodes.entry(id).or_default();
            node.log.bound(snapshot.index + 1, snapshot.index);
            node.log.know(snapshot.index, snapshot.term);
            node.log_at = Some(at.clone());
            node.persisted = Some((snapshot.index, snapshot.term, at));
        }
    }

    /// A role change: elections, Election Safety and Leader Completeness for a new leader.
    fn role(&mut self, id: NodeId, change: &RoleChange, at: EventRef) {
        let node = self.nodes.entry(id).or_default();
        let previous = node.role.replace(change.role);
        node.role_term = change.term;
        node.leading = (change.role == Role::Leader).then(|| at.clone());
        match (previous, change.role) {
            (_, Role::Candidate) => self.coverage.add("elections_started", 1),
            (Some(Role::PreCandidate), Role::Follower) => self.coverage.add("pre_votes_lost", 1),
            (Some(Role::Leader), Role::Follower)
                if change.reason.as_deref() == Some("check_quorum") =>
            {
                self.coverage.add("check_quorum_step_downs", 1)
            }
            _ => {}
        }
        if change.role == Role::Leader {
            self.new_leader(id, change.term, at);
        }
    }

    fn new_leader(&mut self, id: NodeId, term: u64, at: EventRef) {
        self.coverage.add("votes_won", 1);
        if self.last_leader.is_some_and(|last| last != id) {
            self.coverage.add("leader_changes", 1);
        }
        self.last_leader = Some(id);
        let known = self.leaders.get(&term).map(|(leader, _)| *leader);
        if !rules::election_safety(known, id) {
            let (known, known_at) = self.leaders[&term].clone();
            let message = format!("nodes {known} and {id} both led term {term}");
            self.anomalies
                .rule(Rule::ElectionSafety, message, vec![known_at, at.clone()]);
        } else {
            self.leaders.insert(term, (id, at.clone()));
        }
        let log = &self.nodes[&id].log;
        let committed = self
            .committed
            .range(log.first_index..)
            .map(|(&index, c)| (index, c.term, c.in_term));
        if let Some(index) = rules::leader_completeness(log, term, committed) {
            let first = &self.committed[&index];
            let message = format!(
                "leader {id} of term {term} lacks index {index} (term {}), committed in term {}",
                first.term, first.in_term
            );
            let events = vec![first.at.clone(), at];
            self.anomalies
                .rule(Rule::LeaderCompleteness, message, events);
        }
    }

    /// State Machine Safety: every node applies the same entry at an index.
    fn apply(&mut self, apply: &Apply, at: EventRef) {
        let entry: AppliedEntry = (apply.term, apply.block, apply.hash.clone());
        match self.applied.get(&apply.index) {
            None => {
                self.applied.insert(apply.index, (entry, at));
            }
            Some((first, first_at)) => {
                if !rules::state_machine_safety(Some(&entry), Some(first)) {
                    let message = format!(
                        "index {} applied as {} and as {}",
                        apply.index,
                        describe_applied(first),
                        describe_applied(&entry)
                    );
                    let events = vec![first_at.clone(), at];
                    self.anomalies
                        .rule(Rule::StateMachineSafety, message, events);
                }
            }
        }
    }
}

/// An applied entry in words: `term 1 block 7 hash ab12…`.
fn describe_applied((term, block, hash): &AppliedEntry) -> String {
    let block = block.map_or("no block".to_string(), |b| format!("block {b}"));
    let hash = hash
        .as_deref()
        .map_or(String::new(), |h| format!(" hash {h}"));
    format!("term {term} {block}{hash}")
}
