//! Symmetry reduction over server identities: servers are interchangeable, so a state and any
//! renaming of its servers behave alike and need exploring once.
//!
//! stateright 0.31 applies `CheckerBuilder::symmetry` only in its depth-first and simulation
//! checkers, so the model itself renames servers into a canonical order after each step
//! (see [`crate::RaftModel::canonicalize`]); this works with breadth-first search too.

use crate::action::Action;
use crate::bounds::{Bounds, SERVERS_MAX};
use crate::log::Log;
use crate::network;
use crate::state::{Body, Message, Role, Server, ServerId, State};

/// A renaming of servers: server `i` becomes `permutation[i]`.
pub type Permutation = [ServerId; SERVERS_MAX];

/// The identity renaming.
pub const IDENTITY: Permutation = [0, 1, 2, 3, 4];

/// What orders servers: everything about a server, and about the messages and servers that
/// refer to it, that does not depend on server ids. Equal keys are broken by [`canonical_permutation`].
type Key = (u8, Role, Log, u8, u8, u32, u64);

fn keys(state: &State, count: usize) -> [Key; SERVERS_MAX] {
    let mut keys = [(0, Role::Follower, Log::default(), 0, 0, 0, 0); SERVERS_MAX];
    let mut seen = [0u64; SERVERS_MAX];
    for message in &state.network {
        let digest = digest(message);
        seen[message.from as usize] = seen[message.from as usize].wrapping_add(digest);
        seen[message.to as usize] =
            seen[message.to as usize].wrapping_add(digest.rotate_left(17) ^ 0x9e37);
    }
    for (id, server) in state.servers[..count].iter().enumerate() {
        let vote = match server.voted_for {
            None => 0,
            Some(v) if v as usize == id => 1,
            Some(_) => 2,
        };
        // How the others see this server (votes it received, a leader's view of its log),
        // summed so that the others' own ids do not matter.
        let mut regard = 0u64;
        for other in &state.servers[..count] {
            let seen_by = u64::from(other.voted_for == Some(id as ServerId)) << 40
                | u64::from(other.role as u8) << 32
                | u64::from(other.term) << 24
                | u64::from(other.votes >> id & 1) << 16
                | u64::from(other.match_index[id]) << 8
                | u64::from(other.next_index[id]);
            regard =
                regard.wrapping_add(seen_by.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29));
        }
        keys[id] = (
            server.term,
            server.role,
            server.log,
            server.commit_index,
            vote,
            server.votes.count_ones(),
            seen[id] ^ regard.rotate_left(32),
        );
    }
    keys
}

/// A mix of a message's id-free content (its term and body).
fn digest(message: &Message) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut mix = |x: u64| h = (h ^ x).wrapping_mul(0x0100_0000_01b3).rotate_left(5);
    mix(u64::from(message.term));
    match message.body {
        Body::RequestVote {
            last_log_index,
            last_log_term,
        } => mix(1 << 32 | u64::from(last_log_index) << 8 | u64::from(last_log_term)),
        Body::RequestVoteResponse { granted } => mix(2 << 32 | u64::from(granted)),
        Body::AppendEntries(request) => {
            mix(3 << 32
                | u64::from(request.prev_log_index) << 16
                | u64::from(request.prev_log_term) << 8
                | u64::from(request.leader_commit));
            for entry in request.entries.entries() {
                mix(u64::from(entry.term) << 8 | u64::from(entry.value));
            }
        }
        Body::AppendEntriesResponse {
            success,
            match_index,
        } => mix(4 << 32 | u64::from(success) << 8 | u64::from(match_index)),
    }
    h
}

/// The most renamings tried to break ties between servers equal under their keys; beyond it
/// the first one is taken, which is still sound (only less reducing).
const TIE_RENAMINGS_MAX: usize = 120;
const _: () = assert!(
    TIE_RENAMINGS_MAX >= 120,
    "5! renamings: ties are always broken exactly"
);

/// The renaming to the representative of `state`'s class: servers sorted by their keys, ties
/// broken by trying every order of the tied servers and keeping the smallest renamed state.
pub fn canonical_permutation(state: &State, bounds: Bounds) -> Permutation {
    let count = bounds.servers as usize;
    let keys = keys(state, count);
    let mut order: Vec<usize> = (0..count).collect();
    order.sort_by_key(|&id| keys[id]);
    let mut tied_groups = Vec::new();
    let mut renamings = 1;
    let mut start = 0;
    for end in 1..=count {
        if end == count || keys[order[end]] != keys[order[start]] {
            if end - start > 1 {
                tied_groups.push(start..end);
                renamings *= (1..=end - start).product::<usize>();
            }
            start = end;
        }
    }
    if renamings == 1 || renamings > TIE_RENAMINGS_MAX {
        return permutation_of(&order);
    }
    orders_within(&order, &tied_groups)
        .iter()
        .map(|o| permutation_of(o))
        .min_by_key(|p| {
            let renamed = rename_state(state, p, bounds);
            (renamed.servers, renamed.network)
        })
        .unwrap_or(IDENTITY)
}

/// Every order obtained from `order` by permuting inside each tied group.
fn orders_within(order: &[usize], groups: &[std::ops::Range<usize>]) -> Vec<Vec<usize>> {
    let mut orders = vec![order.to_vec()];
    for group in groups {
        let mut next = Vec::new();
        for base in &orders {
            for arrangement in arrangements(&base[group.clone()]) {
                let mut o = base.clone();
                o[group.clone()].copy_from_slice(&arrangement);
                next.push(o);
            }
        }
        orders = next;
    }
    orders
}

/// All arrangements of a few ids.
fn arrangements(ids: &[usize]) -> Vec<Vec<usize>> {
    if ids.len() <= 1 {
        return vec![ids.to_vec()];
    }
    let mut all = Vec::new();
    for (i, &first) in ids.iter().enumerate() {
        let mut rest = ids.to_vec();
        rest.remove(i);
        for mut tail in arrangements(&rest) {
            tail.insert(0, first);
            all.push(tail);
        }
    }
    all
}

/// The renaming that puts server `order[k]` at position `k`.
fn permutation_of(order: &[usize]) -> Permutation {
    let mut permutation = IDENTITY;
    for (new, &old) in order.iter().enumerate() {
        permutation[old] = new as ServerId;
    }
    permutation
}

/// The inverse renaming.
pub fn invert(permutation: &Permutation) -> Permutation {
    let mut inverse = IDENTITY;
    for (old, &new) in permutation.iter().enumerate() {
        inverse[new as usize] = old as ServerId;
    }
    inverse
}

/// `second` after `first`.
pub fn compose(first: &Permutation, second: &Permutation) -> Permutation {
    let mut composed = IDENTITY;
    for (i, &mid) in first.iter().enumerate() {
        composed[i] = second[mid as usize];
    }
    composed
}

fn rename_server(server: &Server, p: &Permutation) -> Server {
    let mut renamed = *server;
    renamed.voted_for = server.voted_for.map(|v| p[v as usize]);
    renamed.votes = (0..SERVERS_MAX)
        .filter(|&i| server.votes & (1 << i) != 0)
        .fold(0, |votes, i| votes | 1 << p[i]);
    for (i, &to) in p.iter().enumerate() {
        renamed.next_index[to as usize] = server.next_index[i];
        renamed.match_index[to as usize] = server.match_index[i];
    }
    renamed
}

fn rename_message(message: &Message, p: &Permutation) -> Message {
    Message {
        from: p[message.from as usize],
        to: p[message.to as usize],
        ..*message
    }
}

/// Renames every server id in `state` by `p`.
pub fn rename_state(state: &State, p: &Permutation, bounds: Bounds) -> State {
    let mut renamed = rename_state_with(state, p);
    network::normalize(&mut renamed.network, bounds.network);
    renamed
}

/// Renames ids without restoring the network's order.
fn rename_state_with(state: &State, p: &Permutation) -> State {
    let mut renamed = state.clone();
    for (i, server) in state.servers.iter().enumerate() {
        renamed.servers[p[i] as usize] = rename_server(server, p);
    }
    for message in renamed.network.iter_mut() {
        *message = rename_message(message, p);
    }
    renamed
}

/// Renames every server id in `action` by `p`.
pub fn rename_action(action: &Action, p: &Permutation) -> Action {
    match *action {
        Action::Timeout(id) => Action::Timeout(p[id as usize]),
        Action::ClientRequest(id) => Action::ClientRequest(p[id as usize]),
        Action::AppendEntries { leader, follower } => Action::AppendEntries {
            leader: p[leader as usize],
            follower: p[follower as usize],
        },
        Action::ChangeMembership { leader, server } => Action::ChangeMembership {
            leader: p[leader as usize],
            server: p[server as usize],
        },
        Action::Restart(id) => Action::Restart(p[id as usize]),
        Action::Deliver(message) => Action::Deliver(rename_message(&message, p)),
        Action::Drop(message) => Action::Drop(rename_message(&message, p)),
    }
}

/// Replaces `state` by its representative; returns the renaming applied.
pub fn canonicalize(state: &mut State, bounds: Bounds) -> Permutation {
    let permutation = canonical_permutation(state, bounds);
    if permutation != IDENTITY {
        *state = rename_state(state, &permutation, bounds);
    }
    permutation
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::RaftModel;
    use crate::state::{Body, Role};

    #[test]
    fn renaming_is_consistent_across_servers_and_messages() {
        let bounds = Bounds::default();
        let mut state = State::initial();
        state.servers[2] = Server {
            term: 1,
            voted_for: Some(2),
            role: Role::Candidate,
            votes: 0b100,
            ..Server::default()
        };
        state.network.push(Message {
            from: 2,
            to: 0,
            term: 1,
            body: Body::RequestVote {
                last_log_index: 0,
                last_log_term: 0,
            },
        });
        let mut canonical = state.clone();
        let p = canonicalize(&mut canonical, bounds);
        // The candidate sorts last (higher term); its self-vote and message follow it.
        let candidate = p[2] as usize;
        assert_eq!(candidate, 2);
        assert_eq!(
            canonical.servers[candidate].voted_for,
            Some(candidate as u8)
        );
        assert_eq!(canonical.network[0].from, candidate as u8);
        // Two equivalent states share a representative.
        let swapped = rename_state(&state, &[1, 0, 2, 3, 4], bounds);
        assert_eq!(RaftModel::new(bounds).representative(&swapped), canonical);
        assert_eq!(compose(&p, &invert(&p)), IDENTITY);
    }
}
