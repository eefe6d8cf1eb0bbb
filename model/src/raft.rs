//! The Raft model: its actions and how each changes the state (Raft paper Figure 2).

use crate::action::Action;
use crate::bounds::{Bounds, Bug, Network};
use crate::describe;
use crate::log::Entry;
use crate::network;
use crate::properties::{Property, PROPERTY_COUNT};
use crate::rules;
use crate::state::{AppendRequest, Body, Message, Role, Server, ServerId, State};
use crate::symmetry;
use stateright::Expectation;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A model of Raft's leader election and log replication under the given bounds.
#[derive(Clone, Debug)]
pub struct RaftModel {
    /// The size of the explored world.
    pub bounds: Bounds,
    /// The rule deliberately broken, if any.
    pub bug: Option<Bug>,
    /// Rename servers into a canonical order after every step (symmetry reduction that works
    /// with every search strategy, including breadth-first search).
    ///
    /// Invariant: false when membership changes are explored, since configurations name
    /// servers and renaming would have to rewrite them.
    pub canonicalize: bool,
    /// Once set, no new state is within the boundary, so a running search drains and ends:
    /// stateright 0.31's BFS checks its own timeout only when threads trade work.
    stop: Arc<AtomicBool>,
    /// Per property, whether this search has already reported a discovery (see
    /// [`RaftModel::observe`]); `None` reports every discovery (for Explorer).
    discovered: Option<Arc<[AtomicBool; PROPERTY_COUNT]>>,
}

impl RaftModel {
    /// A model of correct Raft with symmetry reduction on.
    pub fn new(bounds: Bounds) -> Self {
        RaftModel {
            bounds,
            bug: None,
            canonicalize: bounds.max_changes == 0,
            stop: Arc::default(),
            discovered: None,
        }
    }

    /// The same model with a rule broken.
    pub fn with_bug(self, bug: Option<Bug>) -> Self {
        RaftModel { bug, ..self }
    }

    /// The representative of `state` under server renaming.
    pub fn representative(&self, state: &State) -> State {
        let mut representative = state.clone();
        symmetry::canonicalize(&mut representative, self.bounds);
        representative
    }

    /// The same model with symmetry reduction switched on or off (always off with membership
    /// changes).
    pub fn with_canonicalize(self, canonicalize: bool) -> Self {
        RaftModel {
            canonicalize: canonicalize && self.bounds.max_changes == 0,
            ..self
        }
    }

    /// A copy for one search: fresh stop flag, and each property's discovery reported once.
    pub fn for_search(&self) -> Self {
        RaftModel {
            stop: Arc::default(),
            discovered: Some(Arc::default()),
            ..self.clone()
        }
    }

    /// Passes `found` through the first time it is true for `property` in this search, and
    /// hides it afterwards.
    pub fn first_discovery(&self, property: Property, found: bool) -> bool {
        match &self.discovered {
            Some(discovered) if found => {
                !discovered[property.index()].swap(true, Ordering::Relaxed)
            }
            _ => found,
        }
    }

    /// The stateright condition of `property` in `state`: a violation (always) or an example
    /// (sometimes) is reported once per search.
    ///
    /// stateright 0.31 records a discovery every time a state shows it, so the path it reports
    /// is the last one found, not the first (shortest, under one-thread BFS); hence the
    /// once-only filter.
    pub fn observe(&self, property: Property, state: &State) -> bool {
        let holds = property.holds(state, self.bounds.servers);
        if property.expectation() == Expectation::Always {
            !self.first_discovery(property, !holds)
        } else {
            self.first_discovery(property, holds)
        }
    }

    /// Asks any search over this model (or its clones) to stop taking new states.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether [`RaftModel::stop`] was called.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn has_bug(&self, bug: Bug) -> bool {
        self.bug == Some(bug)
    }

    fn ids(&self) -> std::ops::Range<ServerId> {
        0..self.bounds.servers
    }

    /// The actions enabled in `state`, in a deterministic order.
    pub fn enabled(&self, state: &State, actions: &mut Vec<Action>) {
        for id in self.ids() {
            let server = &state.servers[id as usize];
            // A server that knows it is not a voter does not campaign.
            let voter = self.members(server) & 1 << id != 0;
            if server.role != Role::Leader && server.term < self.bounds.max_term && voter {
                actions.push(Action::Timeout(id));
            }
            if server.role == Role::Leader {
                if state.values < self.bounds.max_log {
                    actions.push(Action::ClientRequest(id));
                }
                // Nothing to replicate and no commit to announce: a heartbeat would only make
                // same-term candidates step down, which no safety property depends on.
                let idle = |f: ServerId| {
                    server.match_index[f as usize] >= server.log.len() && server.commit_index == 0
                };
                for follower in self.ids().filter(|&f| f != id && !idle(f)) {
                    actions.push(Action::AppendEntries {
                        leader: id,
                        follower,
                    });
                }
            }
            if server.role == Role::Leader && self.may_change_membership(state, server) {
                for other in self.ids().filter(|&other| other != id) {
                    actions.push(Action::ChangeMembership {
                        leader: id,
                        server: other,
                    });
                }
            }
            if state.crashes < self.bounds.max_crashes {
                actions.push(Action::Restart(id));
            }
        }
        let mode = self.bounds.network;
        for position in network::deliverable(&state.network, mode) {
            actions.push(Action::Deliver(state.network[position]));
            if mode == Network::Ordered {
                actions.push(Action::Drop(state.network[position]));
            }
        }
    }

    /// The state after `action`, or `None` when the action changes nothing. The result is
    /// neither canonicalized nor checked against history (see [`RaftModel::step`]).
    pub fn apply(&self, state: &State, action: Action) -> Option<State> {
        let mut next = state.clone();
        let changed = match action {
            Action::Timeout(id) => {
                self.timeout(&mut next, id);
                true
            }
            Action::ClientRequest(id) => {
                next.values += 1;
                let server = &mut next.servers[id as usize];
                let value = next.values;
                server.log.push(Entry {
                    term: server.term,
                    value,
                });
                // A single server is its own majority.
                self.advance_commit(server, id);
                true
            }
            Action::AppendEntries { leader, follower } => {
                self.send_append_entries(&mut next, leader, follower)
            }
            Action::ChangeMembership { leader, server } => {
                next.changes += 1;
                let initial = self.bounds.all_members();
                let leading = &mut next.servers[leader as usize];
                let members = leading.log.members(initial) ^ 1 << server;
                leading.log.push(Entry::config(leading.term, members));
                self.advance_commit(leading, leader);
                true
            }
            Action::Restart(id) => {
                let before = next.servers[id as usize];
                next.servers[id as usize].restart(self.has_bug(Bug::ForgetVote));
                next.crashes += 1;
                next.servers[id as usize] != before
            }
            Action::Deliver(message) => self.deliver(&mut next, message),
            Action::Drop(message) => {
                let position = next.network.iter().position(|m| *m == message)?;
                network::remove(&mut next.network, self.bounds.network, position, true);
                true
            }
        };
        changed.then_some(next)
    }

    /// The state after `action` including history bookkeeping and (when on) canonicalization.
    pub fn step(&self, state: &State, action: Action) -> Option<State> {
        let mut next = self.apply(state, action)?;
        self.record_history(state, &mut next, action);
        collect_garbage(&mut next, self.has_bug(Bug::NoTruncate));
        if self.canonicalize {
            symmetry::canonicalize(&mut next, self.bounds);
        }
        Some(next)
    }

    /// Updates the history variables from what changed between `before` and `after`, the
    /// state after `action`.
    fn record_history(&self, before: &State, after: &mut State, action: Action) {
        for id in self.ids() {
            let (old, new) = (&before.servers[id as usize], after.servers[id as usize]);
            let still_leading =
                old.role == Role::Leader && new.role == Role::Leader && old.term == new.term;
            if still_leading && rules::leader_append_only(&old.log, &new.log, 1).is_some() {
                after.history.leader_log_rewritten = true;
            }
            after.history.observe_commit(&new);
            self.assert_hard_state_rules(old, &new, action == Action::Restart(id));
        }
    }

    /// The rules the trace checker also applies to a server's own history, asserted here for
    /// every step of the search: a vote stays within its term (unless `--bug forget-vote`),
    /// and the commit index, volatile in the model, only goes back in a restart.
    fn assert_hard_state_rules(&self, old: &Server, new: &Server, restarted: bool) {
        let vote = |server: &Server| rules::Vote {
            term: u64::from(server.term),
            voted_for: server.voted_for,
        };
        debug_assert!(
            self.has_bug(Bug::ForgetVote) || rules::vote_kept(&vote(old), &vote(new)),
            "vote changed within a term: {old:?} -> {new:?}"
        );
        debug_assert!(
            restarted || rules::commit_monotone(old.commit_index.into(), new.commit_index.into()),
            "commit index went back: {old:?} -> {new:?}"
        );
    }

    fn send(&self, state: &mut State, message: Message) -> bool {
        network::send(&mut state.network, self.bounds.network, message)
    }

    fn timeout(&self, state: &mut State, id: ServerId) {
        let server = &mut state.servers[id as usize];
        *server = Server {
            term: server.term + 1,
            voted_for: Some(id),
            log: server.log,
            role: Role::Candidate,
            commit_index: server.commit_index,
            votes: 1 << id,
            ..Server::default()
        };
        let (term, log) = (server.term, server.log);
        for to in self.ids().filter(|&to| to != id) {
            let body = Body::RequestVote {
                last_log_index: log.len(),
                last_log_term: log.last_term(),
            };
            self.send(
                state,
                Message {
                    from: id,
                    to,
                    term,
                    body,
                },
            );
        }
        self.count_votes(state, id);
    }

    /// The voters by `server`'s latest configuration.
    fn members(&self, server: &Server) -> u8 {
        server.log.members(self.bounds.all_members())
    }

    /// Whether `leader` may start a membership change: changes remain, and (unless
    /// `--bug two-changes`) its latest configuration is committed, so that at most one change
    /// is in flight and any two consecutive configurations share a majority.
    fn may_change_membership(&self, state: &State, leader: &Server) -> bool {
        state.changes < self.bounds.max_changes
            && (self.has_bug(Bug::TwoChanges)
                || leader.log.last_config_index() <= leader.commit_index)
    }

    /// Whether the servers in `granted` (a bit mask) form a majority of `members`.
    fn is_majority(members: u8, granted: u8) -> bool {
        2 * (granted & members).count_ones() > members.count_ones()
    }

    fn count_votes(&self, state: &mut State, id: ServerId) {
        let members = self.members(&state.servers[id as usize]);
        let server = &mut state.servers[id as usize];
        if !Self::is_majority(members, server.votes) {
            return;
        }
        server.role = Role::Leader;
        server.votes = 0;
        let next_index = server.log.len() + 1;
        for peer in self.ids().map(usize::from) {
            server.next_index[peer] = next_index;
            server.match_index[peer] = 0;
        }
        state.history.observe_election(server.term);
    }

    fn send_append_entries(&self, state: &mut State, leader: ServerId, to: ServerId) -> bool {
        let server = &state.servers[leader as usize];
        let prev_log_index = server.next_index[to as usize] - 1;
        let body = Body::AppendEntries(AppendRequest {
            prev_log_index,
            prev_log_term: server.log.term_at(prev_log_index),
            entries: server.log.suffix(prev_log_index),
            leader_commit: server.commit_index,
        });
        let term = server.term;
        self.send(
            state,
            Message {
                from: leader,
                to,
                term,
                body,
            },
        )
    }

    fn deliver(&self, state: &mut State, message: Message) -> bool {
        let Some(position) = state.network.iter().position(|m| *m == message) else {
            return false;
        };
        network::remove(&mut state.network, self.bounds.network, position, false);
        let server = &mut state.servers[message.to as usize];
        if message.term > server.term {
            // Figure 2, all servers: a higher term makes any server a follower in that term.
            *server = Server {
                term: message.term,
                voted_for: None,
                log: server.log,
                commit_index: server.commit_index,
                ..Server::default()
            };
        }
        match message.body {
            Body::RequestVote {
                last_log_index,
                last_log_term,
            } => self.handle_request_vote(state, message, last_log_index, last_log_term),
            Body::RequestVoteResponse { granted } => {
                let server = &mut state.servers[message.to as usize];
                if granted && message.term == server.term && server.role == Role::Candidate {
                    server.votes |= 1 << message.from;
                    self.count_votes(state, message.to);
                }
            }
            Body::AppendEntries(request) => self.handle_append_entries(state, message, request),
            Body::AppendEntriesResponse {
                success,
                match_index,
            } => self.handle_append_response(state, message, success, match_index),
        }
        true
    }

    fn handle_request_vote(&self, state: &mut State, request: Message, index: u8, term: u8) {
        let voter = &mut state.servers[request.to as usize];
        let up_to_date = self.has_bug(Bug::VoteAnyLog) || voter.log.is_behind_or_equal(term, index);
        let free = !matches!(voter.voted_for, Some(v) if v != request.from);
        let granted = request.term == voter.term && free && up_to_date;
        if !granted {
            // A refusal changes nothing at the candidate, and a stale request's answer would
            // only make a stale candidate step down: neither is sent (see `collect_garbage`).
            return;
        }
        voter.voted_for = Some(request.from);
        let reply = Message {
            from: request.to,
            to: request.from,
            term: voter.term,
            body: Body::RequestVoteResponse { granted },
        };
        self.send(state, reply);
    }

    fn handle_append_entries(&self, state: &mut State, message: Message, request: AppendRequest) {
        let no_truncate = self.has_bug(Bug::NoTruncate);
        let follower = &mut state.servers[message.to as usize];
        let (success, match_index) = if message.term < follower.term {
            // A stale leader's request is ignored (see `collect_garbage`).
            return;
        } else {
            if follower.role != Role::Follower {
                // Same term: another server won this term's election.
                *follower = Server {
                    role: Role::Follower,
                    votes: 0,
                    next_index: Default::default(),
                    match_index: Default::default(),
                    ..*follower
                };
            }
            accept_entries(follower, &request, no_truncate)
        };
        let reply = Message {
            from: message.to,
            to: message.from,
            term: follower.term,
            body: Body::AppendEntriesResponse {
                success,
                match_index,
            },
        };
        self.send(state, reply);
    }

    fn handle_append_response(
        &self,
        state: &mut State,
        message: Message,
        success: bool,
        index: u8,
    ) {
        let leader = &mut state.servers[message.to as usize];
        if message.term != leader.term || leader.role != Role::Leader {
            return;
        }
        let peer = message.from as usize;
        if success {
            leader.match_index[peer] = leader.match_index[peer].max(index);
            leader.next_index[peer] = leader.next_index[peer].max(leader.match_index[peer] + 1);
            self.advance_commit(leader, message.to);
        } else {
            let back = leader.next_index[peer].saturating_sub(1);
            leader.next_index[peer] = back.max(leader.match_index[peer] + 1);
        }
    }

    /// Figure 2, rules for leaders: commit the highest index replicated on a majority whose
    /// entry is from the current term (§5.4.2); `--bug commit-old-term` drops the term test.
    fn advance_commit(&self, leader: &mut Server, id: ServerId) {
        let any_term = self.has_bug(Bug::CommitOldTerm);
        let members = self.members(leader);
        for index in (leader.commit_index + 1..=leader.log.len()).rev() {
            if !any_term && leader.log.term_at(index) != leader.term {
                continue;
            }
            let replicas = self
                .ids()
                .filter(|&peer| peer == id || leader.match_index[peer as usize] >= index)
                .fold(0u8, |mask, peer| mask | 1 << peer);
            if Self::is_majority(members, replicas) {
                leader.commit_index = index;
                return;
            }
        }
    }
}

/// Removes messages whose delivery can change nothing, now or later: terms only grow, a server
/// is candidate or leader at most once per term, a leader's match index only grows and its
/// next index never drops below match + 1, and a follower's log changes within a term only
/// by that term's leader.
///
/// This relies on two choices above: stale requests (lower term) are ignored rather than
/// answered with the newer term, and refused votes are not answered. Both answers could only
/// make an outdated candidate or leader step down, which a newer-term request also does; no
/// safety property depends on it. Without the collection, every subset of useless messages
/// would be a distinct state.
fn collect_garbage(state: &mut State, no_truncate: bool) {
    let servers = state.servers;
    state.network.retain(|message| {
        let receiver = &servers[message.to as usize];
        if message.term != receiver.term {
            return message.term > receiver.term;
        }
        match message.body {
            Body::RequestVote { .. } => true,
            Body::AppendEntries(request) => {
                append_is_live(&servers, message, &request, no_truncate)
            }
            Body::RequestVoteResponse { .. } => {
                receiver.role == Role::Candidate && receiver.votes & (1 << message.from) == 0
            }
            Body::AppendEntriesResponse {
                success,
                match_index,
            } => response_is_live(receiver, message.from, success, match_index, message.term),
        }
    });
}

/// Whether an AppendEntriesResponse could still change its receiver.
fn response_is_live(leader: &Server, from: ServerId, success: bool, index: u8, term: u8) -> bool {
    let peer = from as usize;
    leader.role == Role::Leader
        && leader.term == term
        && if success {
            index > leader.match_index[peer]
        } else {
            leader.next_index[peer] > leader.match_index[peer] + 1
        }
}

/// Whether a current-term AppendEntries could still change its receiver or, through the
/// reply, its sender.
fn append_is_live(
    servers: &[Server],
    message: &Message,
    request: &AppendRequest,
    no_truncate: bool,
) -> bool {
    let receiver = servers[message.to as usize];
    if receiver.role != Role::Follower {
        return true;
    }
    let mut after = receiver;
    let (success, index) = accept_entries(&mut after, request, no_truncate);
    let leader = &servers[message.from as usize];
    after != receiver || response_is_live(leader, message.to, success, index, message.term)
}

/// Figure 2, AppendEntries receiver steps 2–5; returns (success, match index).
fn accept_entries(follower: &mut Server, request: &AppendRequest, no_truncate: bool) -> (bool, u8) {
    let prev = request.prev_log_index;
    if prev > 0 && follower.log.term_at(prev) != request.prev_log_term {
        return (false, 0);
    }
    for (offset, entry) in request.entries.entries().iter().enumerate() {
        let index = prev + 1 + offset as u8;
        match follower.log.get(index) {
            Some(existing) if existing.term == entry.term => {}
            Some(_) if no_truncate => {}
            Some(_) => {
                follower.log.truncate(index - 1);
                follower.log.push(*entry);
            }
            None => follower.log.push(*entry),
        }
    }
    let last_new = prev + request.entries.len();
    if request.leader_commit > follower.commit_index {
        let commit = request.leader_commit.min(last_new);
        follower.commit_index = follower.commit_index.max(commit);
    }
    (true, last_new)
}

impl stateright::Model for RaftModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State::initial()]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        self.enabled(state, actions);
    }

    fn next_state(&self, state: &State, action: Action) -> Option<State> {
        self.step(state, action)
    }

    fn within_boundary(&self, _: &State) -> bool {
        !self.stopped()
    }

    fn format_action(&self, action: &Action) -> String {
        describe::describe_action(action)
    }

    fn format_step(&self, state: &State, action: Action) -> Option<String> {
        self.step(state, action)
            .map(|next| describe::describe_state_in_full(self.bounds.servers, &next))
    }

    fn properties(&self) -> Vec<stateright::Property<Self>> {
        Property::ALL.into_iter().map(stateright_property).collect()
    }
}

/// `property` as stateright wants it: a name, an expectation and a plain function.
fn stateright_property(property: Property) -> stateright::Property<RaftModel> {
    type Condition = fn(&RaftModel, &State) -> bool;
    // stateright takes a function pointer, so each property's condition is its own closure.
    macro_rules! observing {
        ($property:expr) => {
            |model: &RaftModel, state: &State| model.observe($property, state)
        };
    }
    let condition: Condition = match property {
        Property::ElectionSafety => observing!(Property::ElectionSafety),
        Property::LeaderAppendOnly => observing!(Property::LeaderAppendOnly),
        Property::LogMatching => observing!(Property::LogMatching),
        Property::LeaderCompleteness => observing!(Property::LeaderCompleteness),
        Property::StateMachineSafety => observing!(Property::StateMachineSafety),
        Property::LeaderElected => observing!(Property::LeaderElected),
        Property::EntryCommitted => observing!(Property::EntryCommitted),
        Property::LeaderElectedAfterCrash => observing!(Property::LeaderElectedAfterCrash),
    };
    stateright::Property {
        expectation: property.expectation(),
        name: property.name(),
        condition,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Log;

    fn model(bug: Option<Bug>) -> RaftModel {
        let bounds = Bounds {
            max_term: 4,
            max_log: 2,
            ..Bounds::default()
        };
        RaftModel::new(bounds).with_bug(bug)
    }

    /// Figure 8 (c), with three servers: s0 leads term 3 with an entry from term 1 that s2
    /// also holds, so it is on a majority.
    fn figure_8_leader() -> Server {
        let mut leader = Server {
            term: 3,
            role: Role::Leader,
            voted_for: Some(0),
            ..Server::default()
        };
        leader.log.push(Entry { term: 1, value: 1 });
        leader.match_index[2] = 1;
        leader
    }

    #[test]
    fn commit_counts_replicas_only_of_current_term_entries() {
        // §5.4.2: an entry from an earlier term is not committed by counting replicas.
        let mut leader = figure_8_leader();
        model(None).advance_commit(&mut leader, 0);
        assert_eq!(leader.commit_index, 0);
        model(Some(Bug::CommitOldTerm)).advance_commit(&mut leader, 0);
        assert_eq!(leader.commit_index, 1);
        // Once an entry of its own term is on a majority, the earlier ones commit with it.
        let mut leader = figure_8_leader();
        leader.log.push(Entry { term: 3, value: 2 });
        leader.match_index[2] = 2;
        model(None).advance_commit(&mut leader, 0);
        assert_eq!(leader.commit_index, 2);
    }

    fn append(prev: (u8, u8), entries: &[Entry], commit: u8) -> AppendRequest {
        let mut log = Log::default();
        entries.iter().for_each(|e| log.push(*e));
        AppendRequest {
            prev_log_index: prev.0,
            prev_log_term: prev.1,
            entries: log,
            leader_commit: commit,
        }
    }

    #[test]
    fn append_entries_truncates_only_on_conflict() {
        let old = Entry { term: 1, value: 1 };
        let new = Entry { term: 2, value: 2 };
        let mut follower = Server::default();
        follower.log.push(old);
        // Figure 2 step 3: a conflicting entry and all that follow it are deleted.
        let mut truncating = follower;
        assert_eq!(
            accept_entries(&mut truncating, &append((0, 0), &[new], 1), false),
            (true, 1)
        );
        assert_eq!(truncating.log.entries(), &[new]);
        assert_eq!(truncating.commit_index, 1);
        // The no-truncate bug keeps the conflicting entry but still reports success.
        let mut keeping = follower;
        assert_eq!(
            accept_entries(&mut keeping, &append((0, 0), &[new], 1), true),
            (true, 1)
        );
        assert_eq!(keeping.log.entries(), &[old]);
        // Step 2: a missing or mismatching previous entry fails the consistency check.
        assert_eq!(
            accept_entries(&mut follower, &append((1, 2), &[], 0), false),
            (false, 0)
        );
        assert_eq!(
            accept_entries(&mut follower, &append((2, 1), &[], 0), false),
            (false, 0)
        );
        // A stale, shorter request does not truncate matching entries.
        assert_eq!(
            accept_entries(&mut follower, &append((0, 0), &[], 0), false),
            (true, 0)
        );
        assert_eq!(follower.log.len(), 1);
    }

    #[test]
    fn votes_need_an_up_to_date_log_and_one_per_term() {
        let model = model(None).with_canonicalize(false);
        let mut state = State::initial();
        state.servers[1].log.push(Entry { term: 1, value: 1 });
        model.timeout(&mut state, 0);
        let request = |to| state.network.iter().copied().find(|m| m.to == to).unwrap();
        let (to_1, to_2) = (request(1), request(2));
        // §5.4.1: s1's log is more up-to-date than the candidate's; it refuses (silently).
        let after = model.step(&state, Action::Deliver(to_1)).unwrap();
        assert_eq!(after.servers[1].voted_for, None);
        // s2 grants, and the candidate wins on the reply.
        let after = model
            .clone()
            .with_canonicalize(false)
            .step(&state, Action::Deliver(to_2))
            .unwrap();
        assert_eq!(after.servers[2].voted_for, Some(0));
        let reply = *after.network.iter().find(|m| m.to == 0).unwrap();
        let won = model
            .clone()
            .with_canonicalize(false)
            .step(&after, Action::Deliver(reply))
            .unwrap();
        assert_eq!(won.servers[0].role, Role::Leader);
        assert_eq!(won.history.elected, 1 << 1);
        // With vote-any-log, s1 grants too.
        let buggy = RaftModel::new(model.bounds)
            .with_bug(Some(Bug::VoteAnyLog))
            .with_canonicalize(false);
        let after = buggy.step(&state, Action::Deliver(to_1)).unwrap();
        assert_eq!(after.servers[1].voted_for, Some(0));
    }

    #[test]
    fn one_membership_change_at_a_time() {
        // Dissertation §4.1: a leader starts a change only once its latest one is committed.
        let bounds = Bounds {
            max_changes: 2,
            ..model(None).bounds
        };
        let correct = RaftModel::new(bounds);
        assert!(
            !correct.canonicalize,
            "configurations name servers: no renaming"
        );
        let mut state = State::initial();
        state.servers[0] = Server {
            term: 1,
            role: Role::Leader,
            voted_for: Some(0),
            ..Server::default()
        };
        let changes = |model: &RaftModel, state: &State| {
            let mut actions = Vec::new();
            model.enabled(state, &mut actions);
            let changes = actions
                .iter()
                .filter(|a| matches!(a, Action::ChangeMembership { .. }));
            changes.count()
        };
        assert_eq!(changes(&correct, &state), 2, "remove s1 or s2");
        let remove_2 = Action::ChangeMembership {
            leader: 0,
            server: 2,
        };
        let after = correct.apply(&state, remove_2).unwrap();
        assert_eq!(after.servers[0].log.members(0b111), 0b011);
        assert_eq!(after.servers[0].commit_index, 0, "{{s0, s1}} needs s1 too");
        assert_eq!(changes(&correct, &after), 0, "a change is in flight");
        let buggy = RaftModel::new(bounds).with_bug(Some(Bug::TwoChanges));
        assert_eq!(changes(&buggy, &after), 2);
        // Removing s1 as well leaves s0 alone, a majority of itself: it commits at once.
        let remove_1 = Action::ChangeMembership {
            leader: 0,
            server: 1,
        };
        let alone = buggy.apply(&after, remove_1).unwrap();
        assert_eq!(alone.servers[0].commit_index, 2);
        // s1 and s2 still hold the initial configuration, and s0 is no longer a voter for s0's
        // majority count: votes of s1 and s2 form a majority of {s0, s1, s2}.
        assert!(RaftModel::is_majority(0b111, 0b110));
        assert!(!RaftModel::is_majority(0b001, 0b110));
    }
}
