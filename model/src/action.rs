//! The steps the model takes (its stateright actions).

use crate::state::{Message, ServerId};

/// A step of the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A follower or candidate's election timer fires: it starts an election in the next term.
    Timeout(ServerId),
    /// A client hands a fresh value to a leader, which appends it to its log.
    ClientRequest(ServerId),
    /// A leader sends AppendEntries (entries from `nextIndex`, or a heartbeat) to a follower.
    AppendEntries {
        /// The sender.
        leader: ServerId,
        /// The receiver.
        follower: ServerId,
    },
    /// A leader starts a membership change: it appends a configuration that adds `server`
    /// when it is not a voter, or removes it when it is (Raft dissertation §4.1).
    ChangeMembership {
        /// The leader.
        leader: ServerId,
        /// The server added or removed; never the leader itself.
        server: ServerId,
    },
    /// A server crashes and restarts: volatile state lost, persistent state kept.
    Restart(ServerId),
    /// The network delivers a message.
    Deliver(Message),
    /// The network loses a message (offered on ordered networks, where a stuck channel head
    /// would otherwise block the rest; elsewhere a message may simply never be delivered).
    Drop(Message),
}
