//! The Raft paper's safety properties (Figure 3) and sometimes-properties that show the model
//! is not vacuous.

use crate::raft::RaftModel;
use crate::state::{Role, State};
use stateright::Property;

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

/// Every property, always-properties first.
///
/// stateright 0.31 records a discovery every time a state shows it, so the path it reports is
/// the last one found, not the first (shortest, under one-thread BFS). Each condition therefore
/// goes through [`RaftModel::first_discovery`], which reports a property's discovery once per
/// search and hides later ones.
pub fn all() -> Vec<Property<RaftModel>> {
    type M = RaftModel;
    vec![
        Property::always(ELECTION_SAFETY, |m: &M, s: &State| {
            !m.first_discovery(0, !election_safety(m, s))
        }),
        Property::always(LEADER_APPEND_ONLY, |m: &M, s: &State| {
            !m.first_discovery(1, !leader_append_only(m, s))
        }),
        Property::always(LOG_MATCHING, |m: &M, s: &State| {
            !m.first_discovery(2, !log_matching(m, s))
        }),
        Property::always(LEADER_COMPLETENESS, |m: &M, s: &State| {
            !m.first_discovery(3, !leader_completeness(m, s))
        }),
        Property::always(STATE_MACHINE_SAFETY, |m: &M, s: &State| {
            !m.first_discovery(4, !state_machine_safety(m, s))
        }),
        Property::sometimes(LEADER_ELECTED, |m: &M, s: &State| {
            m.first_discovery(5, leader_elected(m, s))
        }),
        Property::sometimes(ENTRY_COMMITTED, |m: &M, s: &State| {
            m.first_discovery(6, entry_committed(m, s))
        }),
        Property::sometimes(LEADER_ELECTED_AFTER_CRASH, |m: &M, s: &State| {
            m.first_discovery(7, leader_elected_after_crash(m, s))
        }),
    ]
}

/// The number of properties in [`all`].
pub const PROPERTY_COUNT: usize = 8;

fn leader_elected(model: &RaftModel, state: &State) -> bool {
    leaders(model, state).next().is_some()
}

fn entry_committed(_: &RaftModel, state: &State) -> bool {
    !state.history.committed.is_empty()
}

fn leader_elected_after_crash(model: &RaftModel, state: &State) -> bool {
    state.crashes > 0 && leaders(model, state).any(|(_, term)| term >= 2)
}

/// (id, term) of every current leader.
fn leaders<'a>(model: &RaftModel, state: &'a State) -> impl Iterator<Item = (usize, u8)> + 'a {
    state
        .active(model.bounds.servers)
        .iter()
        .enumerate()
        .filter(|(_, s)| s.role == Role::Leader)
        .map(|(id, s)| (id, s.term))
}

/// Checked on the history: a second election in a term sets a flag, so two leaders of one term
/// are caught even when the first has crashed before the second wins.
fn election_safety(model: &RaftModel, state: &State) -> bool {
    let mut seen = 0u16;
    for (_, term) in leaders(model, state) {
        if seen & (1 << term) != 0 {
            return false;
        }
        seen |= 1 << term;
    }
    !state.history.second_leader_elected
}

/// Checked on the history: a step that changes a leader's log other than by appending, while
/// it stays leader in the same term, sets a flag.
fn leader_append_only(_: &RaftModel, state: &State) -> bool {
    !state.history.leader_log_rewritten
}

fn log_matching(model: &RaftModel, state: &State) -> bool {
    let servers = state.active(model.bounds.servers);
    servers.iter().enumerate().all(|(i, a)| {
        servers[i + 1..].iter().all(|b| {
            let common = a.log.len().min(b.log.len());
            // The highest index where both logs hold an entry of the same term.
            let agree = (1..=common)
                .rev()
                .find(|&index| a.log.term_at(index) == b.log.term_at(index));
            match agree {
                None => true,
                Some(index) => {
                    a.log.entries()[..index as usize] == b.log.entries()[..index as usize]
                }
            }
        })
    })
}

fn leader_completeness(model: &RaftModel, state: &State) -> bool {
    let history = &state.history;
    leaders(model, state).all(|(id, term)| {
        let log = &state.servers[id].log;
        (1..=history.committed.len()).all(|index| {
            history.committed_in_term[index as usize - 1] >= term
                || log.get(index) == history.committed_entry(index)
        })
    })
}

/// A server's commit index marks what it has applied: every applied entry must be the one
/// first committed at that index.
fn state_machine_safety(model: &RaftModel, state: &State) -> bool {
    let history = &state.history;
    state.active(model.bounds.servers).iter().all(|server| {
        (1..=server.commit_index).all(|index| {
            server.log.get(index).is_some()
                && server.log.get(index) == history.committed_entry(index)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounds::Bounds;
    use crate::log::Entry;

    fn model() -> RaftModel {
        RaftModel::new(Bounds::default())
    }

    #[test]
    fn log_matching_compares_prefixes_up_to_a_shared_term() {
        let mut state = State::initial();
        state.servers[0].log.push(Entry { term: 1, value: 1 });
        state.servers[0].log.push(Entry { term: 3, value: 3 });
        state.servers[1].log.push(Entry { term: 2, value: 2 });
        assert!(log_matching(&model(), &state));
        // Same term at index 2, different entries at index 1: the no-truncate outcome.
        state.servers[1].log.push(Entry { term: 3, value: 3 });
        assert!(!log_matching(&model(), &state));
    }

    #[test]
    fn leader_completeness_ignores_entries_committed_in_its_own_term() {
        let mut state = State::initial();
        state.servers[0].role = Role::Leader;
        state.servers[0].term = 2;
        state.history.committed.push(Entry { term: 1, value: 1 });
        state.history.committed_in_term[0] = 2;
        assert!(leader_completeness(&model(), &state));
        state.history.committed_in_term[0] = 1;
        assert!(!leader_completeness(&model(), &state));
    }

    #[test]
    fn state_machine_safety_needs_applied_entries_to_match_history() {
        let mut state = State::initial();
        state.history.committed.push(Entry { term: 1, value: 1 });
        state.servers[2].commit_index = 1;
        assert!(
            !state_machine_safety(&model(), &state),
            "applied entry missing"
        );
        state.servers[2].log.push(Entry { term: 1, value: 1 });
        assert!(state_machine_safety(&model(), &state));
    }
}
