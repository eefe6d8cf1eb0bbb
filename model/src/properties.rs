//! The Raft paper's safety properties (Figure 3) and sometimes-properties that show the model
//! is not vacuous.

use crate::bounds::{Bug, TERM_MAX};
use crate::rules;
use crate::state::{Role, State};
use stateright::Expectation;

/// At most one leader can be elected in a given term.
pub const ELECTION_SAFETY: &str = "Election Safety";
/// A leader never overwrites or deletes entries in its log; it only appends new entries.
pub const LEADER_APPEND_ONLY: &str = "Leader Append-Only";
/// If two logs contain an entry with the same index and term, the logs are identical in all
/// entries up through that index.
pub const LOG_MATCHING: &str = "Log Matching";
/// If an entry is committed in a term, it is present in the logs of the leaders of all
/// higher-numbered terms.
pub const LEADER_COMPLETENESS: &str = "Leader Completeness";
/// If a server has applied an entry at an index, no other server ever applies a different
/// entry at that index.
pub const STATE_MACHINE_SAFETY: &str = "State Machine Safety";
/// Some server becomes leader.
pub const LEADER_ELECTED: &str = "Leader Elected";
/// Some entry is committed.
pub const ENTRY_COMMITTED: &str = "Entry Committed";
/// A leader of term 2 or later exists after a crash.
pub const LEADER_ELECTED_AFTER_CRASH: &str = "Leader Elected After Crash";

/// One of the model's properties. The discriminant is the property's position in
/// [`Property::ALL`], which the search uses to report each discovery once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Property {
    /// [`ELECTION_SAFETY`].
    ElectionSafety,
    /// [`LEADER_APPEND_ONLY`].
    LeaderAppendOnly,
    /// [`LOG_MATCHING`].
    LogMatching,
    /// [`LEADER_COMPLETENESS`].
    LeaderCompleteness,
    /// [`STATE_MACHINE_SAFETY`].
    StateMachineSafety,
    /// [`LEADER_ELECTED`].
    LeaderElected,
    /// [`ENTRY_COMMITTED`].
    EntryCommitted,
    /// [`LEADER_ELECTED_AFTER_CRASH`].
    LeaderElectedAfterCrash,
}

/// The number of properties in [`Property::ALL`].
pub const PROPERTY_COUNT: usize = Property::ALL.len();

impl Property {
    /// Every property, always-properties first, in discriminant order.
    pub const ALL: [Property; 8] = [
        Property::ElectionSafety,
        Property::LeaderAppendOnly,
        Property::LogMatching,
        Property::LeaderCompleteness,
        Property::StateMachineSafety,
        Property::LeaderElected,
        Property::EntryCommitted,
        Property::LeaderElectedAfterCrash,
    ];

    /// The property's position in [`Property::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The property's name, as in the Raft paper.
    pub fn name(self) -> &'static str {
        match self {
            Property::ElectionSafety => ELECTION_SAFETY,
            Property::LeaderAppendOnly => LEADER_APPEND_ONLY,
            Property::LogMatching => LOG_MATCHING,
            Property::LeaderCompleteness => LEADER_COMPLETENESS,
            Property::StateMachineSafety => STATE_MACHINE_SAFETY,
            Property::LeaderElected => LEADER_ELECTED,
            Property::EntryCommitted => ENTRY_COMMITTED,
            Property::LeaderElectedAfterCrash => LEADER_ELECTED_AFTER_CRASH,
        }
    }

    /// Whether the property must hold in every reachable state or in some.
    pub fn expectation(self) -> Expectation {
        match self {
            Property::LeaderElected
            | Property::EntryCommitted
            | Property::LeaderElectedAfterCrash => Expectation::Sometimes,
            _ => Expectation::Always,
        }
    }

    /// Whether the property's condition holds in `state`, a state of `servers` servers.
    pub fn holds(self, state: &State, servers: u8) -> bool {
        match self {
            Property::ElectionSafety => election_safety(state, servers),
            Property::LeaderAppendOnly => leader_append_only(state),
            Property::LogMatching => log_matching(state, servers),
            Property::LeaderCompleteness => leader_completeness(state, servers),
            Property::StateMachineSafety => state_machine_safety(state, servers),
            Property::LeaderElected => leader_elected(state, servers),
            Property::EntryCommitted => entry_committed(state),
            Property::LeaderElectedAfterCrash => leader_elected_after_crash(state, servers),
        }
    }
}

impl Bug {
    /// The property this bug is expected to break first (on a shortest path).
    pub fn expected_violation(self) -> &'static str {
        match self {
            Bug::VoteAnyLog | Bug::CommitOldTerm | Bug::TwoChanges => LEADER_COMPLETENESS,
            Bug::ForgetVote => ELECTION_SAFETY,
            Bug::NoTruncate => STATE_MACHINE_SAFETY,
        }
    }
}

fn leader_elected(state: &State, servers: u8) -> bool {
    leaders(state, servers).next().is_some()
}

fn entry_committed(state: &State) -> bool {
    !state.history.committed.is_empty()
}

fn leader_elected_after_crash(state: &State, servers: u8) -> bool {
    state.crashes > 0 && leaders(state, servers).any(|(_, term)| term >= 2)
}

/// (id, term) of every current leader.
fn leaders(state: &State, servers: u8) -> impl Iterator<Item = (usize, u8)> + '_ {
    state
        .active(servers)
        .iter()
        .enumerate()
        .filter(|(_, s)| s.role == Role::Leader)
        .map(|(id, s)| (id, s.term))
}

/// Checked on the current leaders and on the history: a second election in a term sets a
/// flag, so two leaders of one term are caught even when the first has crashed before the
/// second wins.
fn election_safety(state: &State, servers: u8) -> bool {
    let mut known: [Option<usize>; TERM_MAX as usize + 1] = [None; TERM_MAX as usize + 1];
    for (id, term) in leaders(state, servers) {
        let known = &mut known[usize::from(term)];
        if !rules::election_safety(*known, id) {
            return false;
        }
        *known = Some(id);
    }
    !state.history.second_leader_elected
}

/// Checked on the history: a step that changes a leader's log other than by appending, while
/// it stays leader in the same term, sets a flag (with [`rules::leader_append_only`]).
fn leader_append_only(state: &State) -> bool {
    !state.history.leader_log_rewritten
}

fn log_matching(state: &State, servers: u8) -> bool {
    let servers = state.active(servers);
    servers.iter().enumerate().all(|(i, a)| {
        servers[i + 1..].iter().all(|b| {
            let common = a.log.len().min(b.log.len());
            (1..=u64::from(common)).all(|index| rules::log_matching_at(&a.log, &b.log, index))
        })
    })
}

fn leader_completeness(state: &State, servers: u8) -> bool {
    let history = &state.history;
    let committed = history.committed.entries().iter().enumerate();
    let committed = committed.map(|(position, entry)| {
        let in_term = history.committed_in_term[position];
        (position as u64 + 1, *entry, u64::from(in_term))
    });
    leaders(state, servers).all(|(id, term)| {
        let log = &state.servers[id].log;
        rules::leader_completeness(log, u64::from(term), committed.clone()).is_none()
    })
}

/// A server's commit index marks what it has applied: every applied entry must be the one
/// first committed at that index.
fn state_machine_safety(state: &State, servers: u8) -> bool {
    let history = &state.history;
    state.active(servers).iter().all(|server| {
        (1..=server.commit_index).all(|index| {
            rules::state_machine_safety(server.log.get(index), history.committed_entry(index))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Entry;

    const SERVERS: u8 = 3;

    #[test]
    fn properties_enumerate_themselves_in_order() {
        for (position, property) in Property::ALL.into_iter().enumerate() {
            assert_eq!(property.index(), position, "{}", property.name());
        }
        let always = Property::ALL
            .iter()
            .take_while(|p| p.expectation() == Expectation::Always)
            .count();
        assert_eq!(always, 5, "always-properties come first");
    }

    #[test]
    fn log_matching_compares_prefixes_up_to_a_shared_term() {
        let mut state = State::initial();
        state.servers[0].log.push(Entry { term: 1, value: 1 });
        state.servers[0].log.push(Entry { term: 3, value: 3 });
        state.servers[1].log.push(Entry { term: 2, value: 2 });
        assert!(log_matching(&state, SERVERS));
        // Same term at index 2, different entries at index 1: the no-truncate outcome.
        state.servers[1].log.push(Entry { term: 3, value: 3 });
        assert!(!log_matching(&state, SERVERS));
    }

    #[test]
    fn leader_completeness_ignores_entries_committed_in_its_own_term() {
        let mut state = State::initial();
        state.servers[0].role = Role::Leader;
        state.servers[0].term = 2;
        state.history.committed.push(Entry { term: 1, value: 1 });
        state.history.committed_in_term[0] = 2;
        assert!(leader_completeness(&state, SERVERS));
        state.history.committed_in_term[0] = 1;
        assert!(!leader_completeness(&state, SERVERS));
    }

    #[test]
    fn state_machine_safety_needs_applied_entries_to_match_history() {
        let mut state = State::initial();
        state.history.committed.push(Entry { term: 1, value: 1 });
        state.servers[2].commit_index = 1;
        assert!(
            !state_machine_safety(&state, SERVERS),
            "applied entry missing"
        );
        state.servers[2].log.push(Entry { term: 1, value: 1 });
        assert!(state_machine_safety(&state, SERVERS));
    }
}
