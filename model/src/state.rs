//! The model's state: every server's persistent and volatile state, the messages in flight and
//! a little history (ghost state) needed to state the Raft paper's properties.

use crate::bounds::SERVERS_MAX;
use crate::log::{Entry, Log, LOG_MAX};
use serde::Serialize;
use std::hash::{Hash, Hasher};

/// A server id, `0..servers`.
pub type ServerId = u8;

/// A server's role (Raft paper Figure 4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Role {
    /// Follows a leader and votes for candidates.
    #[default]
    Follower,
    /// Asks for votes in its current term.
    Candidate,
    /// Accepts client values and replicates its log.
    Leader,
}

/// One server. Persistent state survives a crash, volatile state does not.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Server {
    /// Persistent: the latest term this server has seen.
    pub term: u8,
    /// Persistent (unless `--bug forget-vote`): whom it voted for in `term`.
    pub voted_for: Option<ServerId>,
    /// Persistent: the log.
    pub log: Log,
    /// Volatile: the role.
    pub role: Role,
    /// Volatile: the highest index known committed. Invariant: never decreases while up.
    pub commit_index: u8,
    /// Volatile, candidates: bit `i` set when server `i` granted its vote in `term`.
    pub votes: u8,
    /// Volatile, leaders: the next index to send each server.
    pub next_index: [u8; SERVERS_MAX],
    /// Volatile, leaders: the highest index known replicated on each server.
    pub match_index: [u8; SERVERS_MAX],
}

impl Server {
    /// Loses volatile state, as after a crash and restart.
    pub fn restart(&mut self, forget_vote: bool) {
        *self = Server {
            term: self.term,
            voted_for: if forget_vote { None } else { self.voted_for },
            log: self.log,
            ..Server::default()
        };
    }
}

/// One line per server, for Explorer's state view and test failures.
impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let vote = self.voted_for.map_or("-".to_string(), |v| format!("s{v}"));
        write!(
            f,
            "{:?} term {} vote {vote} log {} commit {} votes {:#b} next {:?} match {:?}",
            self.role,
            self.term,
            self.log,
            self.commit_index,
            self.votes,
            self.next_index,
            self.match_index
        )
    }
}

/// What a message says (Raft paper Figure 2's RPCs and their replies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Body {
    /// A candidate asks for a vote.
    RequestVote {
        /// Index of the candidate's last entry.
        last_log_index: u8,
        /// Term of the candidate's last entry.
        last_log_term: u8,
    },
    /// A reply to RequestVote.
    RequestVoteResponse {
        /// Whether the vote was granted.
        granted: bool,
    },
    /// A leader replicates entries (or just its commit index, as a heartbeat).
    AppendEntries(AppendRequest),
    /// A reply to AppendEntries.
    AppendEntriesResponse {
        /// Whether the follower's log matched at `prev_log_index`.
        success: bool,
        /// On success, the index of the last entry the follower now matches.
        match_index: u8,
    },
}

/// What an AppendEntries request carries (Raft paper Figure 2).
///
/// Field order matters: the derived `Ord` sorts the network, so it is the order of the former
/// inline fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppendRequest {
    /// Index of the entry before `entries`.
    pub prev_log_index: u8,
    /// Term of that entry.
    pub prev_log_term: u8,
    /// The entries to store after `prev_log_index`.
    pub entries: Log,
    /// The leader's commit index.
    pub leader_commit: u8,
}

/// A message in flight.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Message {
    /// The sender.
    pub from: ServerId,
    /// The receiver.
    pub to: ServerId,
    /// The sender's current term.
    pub term: u8,
    /// The payload.
    pub body: Body,
}

/// One line per message, even in `{:#?}`.
impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = format!("{:?}", self.body);
        write!(
            f,
            "s{} -> s{} term {} {body}",
            self.from, self.to, self.term
        )
    }
}

/// History variables: not part of Raft, kept only to state properties about the past.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct History {
    /// The entries ever committed, index by index, as first committed by any server.
    pub committed: Log,
    /// For each committed index, the term of the server that first committed it.
    pub committed_in_term: [u8; LOG_MAX],
    /// Bit `t` set when a leader was elected in term `t`.
    pub elected: u16,
    /// Set when a second leader was elected in a term that already had one.
    pub second_leader_elected: bool,
    /// Set when a step changed a leader's log other than by appending (same term, still leader).
    pub leader_log_rewritten: bool,
}

impl History {
    /// Records a server's commit index advancing: the entries it newly covers become committed.
    pub fn observe_commit(&mut self, server: &Server) {
        while self.committed.len() < server.commit_index {
            let index = self.committed.len() + 1;
            let Some(entry) = server.log.get(index) else {
                return;
            };
            self.committed_in_term[index as usize - 1] = server.term;
            self.committed.push(entry);
        }
    }

    /// Records an election, noting a second leader in the same term.
    pub fn observe_election(&mut self, term: u8) {
        let bit = 1u16 << term;
        self.second_leader_elected |= self.elected & bit != 0;
        self.elected |= bit;
    }

    /// The entry committed at `index`, if any.
    pub fn committed_entry(&self, index: u8) -> Option<Entry> {
        self.committed.get(index)
    }
}

/// The whole system state.
///
/// Invariant: `network` is sorted (for ordered networks: stably, by channel, keeping each
/// channel's FIFO order), so that equal systems hash equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// Servers `0..servers`; the slots beyond are unused defaults.
    pub servers: [Server; SERVERS_MAX],
    /// Messages in flight.
    pub network: Vec<Message>,
    /// Crashes so far (bounded by `--max-crashes`).
    pub crashes: u8,
    /// Client values accepted so far (bounded by `--max-log`).
    pub values: u8,
    /// Membership changes started so far (bounded by `--max-changes`).
    pub changes: u8,
    /// Ghost state for the properties.
    pub history: History,
}

impl State {
    /// The initial state: all followers in term 0 with empty logs, nothing in flight.
    pub fn initial() -> Self {
        State {
            servers: [Server::default(); SERVERS_MAX],
            network: Vec::new(),
            crashes: 0,
            values: 0,
            changes: 0,
            history: History::default(),
        }
    }

    /// The servers that exist under `count` servers.
    pub fn active(&self, count: u8) -> &[Server] {
        &self.servers[..count as usize]
    }
}

/// Bytes of one encoded server.
const SERVER_BYTES: usize = 6 + 2 * LOG_MAX + 2 * SERVERS_MAX;
/// Bytes of one encoded message.
const MESSAGE_BYTES: usize = 8 + 2 * LOG_MAX;
/// Bytes of the encoded servers, counters and history.
const FIXED_BYTES: usize = SERVERS_MAX * SERVER_BYTES + 2 + (1 + 3 * LOG_MAX + 4);
/// Messages hashed in one buffer; more are hashed one by one.
const MESSAGES_BUFFERED_MAX: usize = 48;

fn encode_log(log: &Log, out: &mut [u8]) {
    out[0] = log.len();
    for (i, entry) in log.entries().iter().enumerate() {
        out[1 + 2 * i] = entry.term;
        out[2 + 2 * i] = entry.value;
    }
}

fn encode_server(server: &Server, out: &mut [u8]) {
    out[0] = server.term;
    out[1] = server.voted_for.map_or(u8::MAX, |v| v);
    out[2] = server.role as u8;
    out[3] = server.commit_index;
    out[4] = server.votes;
    encode_log(&server.log, &mut out[5..6 + 2 * LOG_MAX]);
    let rest = &mut out[6 + 2 * LOG_MAX..];
    rest[..SERVERS_MAX].copy_from_slice(&server.next_index);
    rest[SERVERS_MAX..2 * SERVERS_MAX].copy_from_slice(&server.match_index);
}

fn encode_message(message: &Message, out: &mut [u8]) {
    out[..3].copy_from_slice(&[message.from, message.to, message.term]);
    match message.body {
        Body::RequestVote {
            last_log_index,
            last_log_term,
        } => out[3..6].copy_from_slice(&[1, last_log_index, last_log_term]),
        Body::RequestVoteResponse { granted } => out[3..5].copy_from_slice(&[2, granted as u8]),
        Body::AppendEntries(request) => {
            let AppendRequest {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } = request;
            out[3..7].copy_from_slice(&[3, prev_log_index, prev_log_term, leader_commit]);
            encode_log(&entries, &mut out[7..]);
        }
        Body::AppendEntriesResponse {
            success,
            match_index,
        } => out[3..6].copy_from_slice(&[4, success as u8, match_index]),
    }
}

/// Hashes a packed byte encoding in one or a few writes: the derived field-by-field hash was
/// a third of the checker's time. Equal states encode equally, so this agrees with `Eq`.
impl Hash for State {
    fn hash<H: Hasher>(&self, hasher: &mut H) {
        let mut fixed = [0u8; FIXED_BYTES];
        for (i, server) in self.servers.iter().enumerate() {
            encode_server(server, &mut fixed[i * SERVER_BYTES..(i + 1) * SERVER_BYTES]);
        }
        let rest = &mut fixed[SERVERS_MAX * SERVER_BYTES..];
        rest[0] = self.crashes;
        rest[1] = self.values;
        let history = &self.history;
        encode_log(&history.committed, &mut rest[2..3 + 2 * LOG_MAX]);
        let tail = &mut rest[3 + 2 * LOG_MAX..];
        tail[..LOG_MAX].copy_from_slice(&history.committed_in_term);
        tail[LOG_MAX..LOG_MAX + 2].copy_from_slice(&history.elected.to_le_bytes());
        tail[LOG_MAX + 2] = history.second_leader_elected as u8;
        tail[LOG_MAX + 3] = history.leader_log_rewritten as u8;
        hasher.write(&fixed);
        hasher.write_u8(self.changes);
        hasher.write_usize(self.network.len());
        let mut buffer = [0u8; MESSAGES_BUFFERED_MAX * MESSAGE_BYTES];
        for chunk in self.network.chunks(MESSAGES_BUFFERED_MAX) {
            for (i, message) in chunk.iter().enumerate() {
                encode_message(
                    message,
                    &mut buffer[i * MESSAGE_BYTES..(i + 1) * MESSAGE_BYTES],
                );
            }
            hasher.write(&buffer[..chunk.len() * MESSAGE_BYTES]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_keeps_persistent_state_only() {
        let mut server = Server {
            term: 2,
            voted_for: Some(1),
            role: Role::Leader,
            commit_index: 1,
            votes: 0b11,
            ..Server::default()
        };
        server.log.push(Entry { term: 2, value: 1 });
        let mut forgetful = server;
        server.restart(false);
        assert_eq!(
            (server.term, server.voted_for, server.log.len()),
            (2, Some(1), 1)
        );
        assert_eq!(
            (server.role, server.commit_index, server.votes),
            (Role::Follower, 0, 0)
        );
        forgetful.restart(true);
        assert_eq!(forgetful.voted_for, None);
    }

    #[test]
    fn history_notes_a_second_election_in_a_term() {
        let mut history = History::default();
        history.observe_election(1);
        history.observe_election(2);
        assert!(!history.second_leader_elected);
        history.observe_election(1);
        assert!(history.second_leader_elected);
    }
}
