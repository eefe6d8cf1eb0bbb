//! The events the raft loop is sent (by the API, the transport and the
//! waker) and the answers to submits. A leaf module: the raft loop and the
//! transport both use it, and neither imports the other for it.

use crate::kv::OpResult;
use crate::tx::{Ack, Tx};
use raft::prelude::Message;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The answer to a submit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SubmitReply {
    /// Ordered in `block` at `position`; applied where this was produced.
    Committed {
        /// The transaction id.
        id: String,
        /// Block number.
        block: u64,
        /// Index in the block.
        position: u64,
        /// One result per op.
        results: Vec<OpResult>,
    },
    /// Enqueued by the leader.
    Accepted {
        /// The transaction id.
        id: String,
    },
    /// Refused; `retryable` means it certainly was not ordered.
    Refused {
        /// HTTP status.
        status: u16,
        /// Why.
        error: String,
        /// Whether it certainly was not ordered.
        retryable: bool,
    },
}

impl SubmitReply {
    pub(crate) fn refused(status: u16, error: &str, retryable: bool) -> SubmitReply {
        SubmitReply::Refused {
            status,
            error: error.to_string(),
            retryable,
        }
    }
}

/// One change of the consenter set (docs/node-api.md, `POST /members`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MemberChange {
    /// What to do.
    pub op: MemberOp,
    /// The node's raft id.
    pub id: u64,
    /// Its peer address (`host:port`), for `add`.
    #[serde(default)]
    pub addr: Option<String>,
}

/// What a [`MemberChange`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberOp {
    /// Add a new node as a learner.
    Add,
    /// Make a learner that has the log a voter.
    Promote,
    /// Remove a voter or learner.
    Remove,
}

/// The answer to a membership request or a transfer: a JSON body, or an
/// HTTP status and why.
pub type MemberReply = Result<serde_json::Value, (u16, String)>;

/// Where an answer goes.
#[derive(Debug)]
pub enum Origin {
    /// A client of this node.
    Local(oneshot::Sender<SubmitReply>),
    /// A follower that forwarded it.
    Peer {
        /// The follower's raft id.
        from: u64,
        /// The follower's request id.
        req_id: u64,
        /// The transaction's id, echoed so the follower can check it.
        tx_id: String,
    },
}

/// What the raft loop is asked to do.
#[derive(Debug)]
pub enum Event {
    /// A raft message from a peer.
    Peer {
        /// The message.
        msg: Message,
        /// The sender's Lamport clock at its `send` (docs/trace.md).
        lamport: u64,
    },
    /// A transaction to order.
    Submit {
        /// The transaction.
        tx: Tx,
        /// When to answer.
        ack: Ack,
        /// Who to answer.
        origin: Origin,
    },
    /// The leader's answer to a submit this node forwarded.
    ForwardReply {
        /// This node's request id.
        req_id: u64,
        /// The transaction the answer is for.
        tx_id: String,
        /// The answer.
        reply: SubmitReply,
    },
    /// The transport cannot reach a peer (raft's `report_unreachable`).
    Unreachable {
        /// The peer.
        to: u64,
    },
    /// A snapshot was written to a peer's connection, or lost on the way
    /// (raft's `report_snapshot`).
    SnapshotStatus {
        /// The peer.
        to: u64,
        /// Whether it got out.
        delivered: bool,
    },
    /// A change of the consenter set (`POST /members`).
    Member {
        /// The changes, applied together (joint consensus when there is
        /// more than one).
        changes: Vec<MemberChange>,
        /// Who to answer.
        reply: oneshot::Sender<MemberReply>,
    },
    /// Hand leadership to a voter (`POST /transfer`).
    Transfer {
        /// The voter.
        to: u64,
        /// Who to answer.
        reply: oneshot::Sender<MemberReply>,
    },
    /// A peer says the configuration at `index` removed this node (the
    /// eviction notice).
    Removed {
        /// The peer.
        from: u64,
        /// The configuration's index.
        index: u64,
    },
    /// Nothing: the waker's periodic nudge, so that ticks and batch
    /// timeouts are noticed without a timed wait.
    Wake,
}

/// Events taken per batch at most, so that ticks are never starved.
pub const EVENTS_PER_BATCH_MAX: usize = 20_000;

/// Peer events (raft messages, transport reports) queued at most. Apart
/// from the client queue, so that raft traffic never waits behind client
/// load (issue 13, defect 5).
pub const PEER_EVENTS_MAX: usize = 16_384;

/// The senders into the raft loop; cheap to clone.
#[derive(Debug, Clone)]
pub struct Inbox {
    /// Client submits, forwarded answers and wake-ups; the loop blocks on it.
    client: SyncSender<Event>,
    /// Raft messages and transport reports, drained first every turn.
    peer: SyncSender<Event>,
    /// The shutdown request: a slot, not a queued event, so that a full
    /// queue cannot lose it (issue 13, defect 4).
    stop: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    stopping: Arc<AtomicBool>,
}

/// The raft loop's receiving side.
#[derive(Debug)]
pub struct Outbox {
    client: Receiver<Event>,
    peer: Receiver<Event>,
    stop: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    stopping: Arc<AtomicBool>,
}

/// What the raft loop takes in one turn.
#[derive(Debug, Default)]
pub struct Batch {
    /// Events in the order they are to be handled: peers' first.
    pub events: Vec<Event>,
    /// Set when the node is stopping: sync, answer, return.
    pub shutdown: Option<oneshot::Sender<()>>,
}

/// An inbox of at most `capacity` client events and [`PEER_EVENTS_MAX`]
/// peer events.
pub fn inbox(capacity: usize) -> (Inbox, Outbox) {
    let (client, client_rx) = std::sync::mpsc::sync_channel(capacity);
    let (peer, peer_rx) = std::sync::mpsc::sync_channel(PEER_EVENTS_MAX);
    let stop = Arc::new(Mutex::new(None));
    let stopping = Arc::new(AtomicBool::new(false));
    (
        Inbox {
            client,
            peer,
            stop: stop.clone(),
            stopping: stopping.clone(),
        },
        Outbox {
            client: client_rx,
            peer: peer_rx,
            stop,
            stopping,
        },
    )
}

/// Why a client event was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full: retry later.
    Full,
    /// The raft loop is gone.
    Stopped,
}

impl Inbox {
    /// Queues a peer's raft message (or a transport report) and nudges the
    /// loop; false when it was dropped (raft tolerates loss).
    pub fn peer(&self, ev: Event) -> bool {
        let queued = self.peer.try_send(ev).is_ok();
        // A full client queue means the loop is busy and will look anyway.
        let _ = self.client.try_send(Event::Wake);
        queued
    }

    /// Queues a client's event.
    pub fn client(&self, ev: Event) -> Result<(), Refused> {
        self.client.try_send(ev).map_err(|e| match e {
            TrySendError::Full(_) => Refused::Full,
            TrySendError::Disconnected(_) => Refused::Stopped,
        })
    }

    /// Nudges the loop; false when the loop is gone.
    pub fn wake(&self) -> bool {
        !matches!(
            self.client.try_send(Event::Wake),
            Err(TrySendError::Disconnected(_))
        )
    }

    /// Asks the loop to sync and stop; `done` is told when it has. Never
    /// blocks and is never lost: the loop checks the slot every batch, and
    /// the waker's nudges end any wait.
    pub fn shutdown(&self, done: oneshot::Sender<()>) {
        *self.stop.lock().expect("stop lock") = Some(done);
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.client.try_send(Event::Wake);
    }
}

impl Outbox {
    /// Waits (untimed: see `server.rs`) for the next events; `None` when
    /// every sender is gone. Peer events come first.
    pub fn next_batch(&self) -> Option<Batch> {
        let mut batch = Batch::default();
        // Gone senders: still hand out what is left, and the shutdown.
        let first = self.client.recv().ok();
        while batch.events.len() < EVENTS_PER_BATCH_MAX {
            match self.peer.try_recv() {
                Ok(ev) => batch.events.push(ev),
                Err(_) => break,
            }
        }
        let gone = first.is_none();
        batch.events.extend(first);
        let mut yielded = false;
        while batch.events.len() < EVENTS_PER_BATCH_MAX {
            match self.client.try_recv() {
                Ok(ev) => batch.events.push(ev),
                // Woken for one event: let the threads that submit run
                // once before the turn, so that a turn takes what they
                // were about to queue rather than the loop parking and
                // being woken per submit.
                Err(_) if !yielded && !gone => {
                    yielded = true;
                    std::thread::yield_now();
                }
                Err(_) => break,
            }
        }
        if self.stopping.load(Ordering::SeqCst) {
            batch.shutdown = self.stop.lock().expect("stop lock").take();
        }
        if gone && batch.events.is_empty() && batch.shutdown.is_none() {
            return None;
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submit(n: usize) -> Event {
        Event::Submit {
            tx: Tx {
                id: format!("t{n}"),
                payload: String::new(),
                ops: vec![],
            },
            ack: Ack::Committed,
            origin: Origin::Peer {
                from: 2,
                req_id: n as u64,
                tx_id: format!("t{n}"),
            },
        }
    }

    fn fill(inbox: &Inbox) -> usize {
        let mut n = 0;
        while inbox.client(submit(n)).is_ok() {
            n += 1;
        }
        assert_eq!(inbox.client(submit(n)), Err(Refused::Full));
        n
    }

    /// Defect 5 (issue 13): client load never crowds out raft traffic.
    #[test]
    fn raft_messages_get_in_when_client_submits_fill_the_queue() {
        let (inbox, outbox) = inbox(64);
        fill(&inbox);
        let heartbeat = Message {
            msg_type: raft::prelude::MessageType::MsgHeartbeat,
            ..Default::default()
        };
        assert!(inbox.peer(Event::Peer {
            msg: heartbeat,
            lamport: 1
        }));
        let batch = outbox.next_batch().unwrap();
        assert!(
            matches!(batch.events.first(), Some(Event::Peer { .. })),
            "raft traffic is handled before client submits"
        );
    }

    /// Defect 4 (issue 13): a full queue cannot lose the shutdown.
    #[test]
    fn shutdown_gets_through_a_full_queue() {
        let (inbox, outbox) = inbox(64);
        let queued = fill(&inbox);
        let (done, _done_rx) = oneshot::channel();
        inbox.shutdown(done);
        drop(inbox);
        let mut seen = 0;
        let mut stopped = false;
        while let Some(batch) = outbox.next_batch() {
            seen += batch.events.len();
            stopped |= batch.shutdown.is_some();
        }
        assert!(stopped, "the loop was never told to stop");
        assert_eq!(seen, queued);
    }
}
