//! The events the raft loop is sent (by the API, the transport and the
//! waker) and the answers to submits. A leaf module: the raft loop and the
//! transport both use it, and neither imports the other for it.

use crate::kv::OpResult;
use crate::tx::{Ack, Tx};
use raft::prelude::Message;
use serde::{Deserialize, Serialize};
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
        /// The answer.
        reply: SubmitReply,
    },
    /// Sync the log and stop; the sender is told when done.
    Shutdown(oneshot::Sender<()>),
    /// Nothing: the waker's periodic nudge, so that ticks and batch
    /// timeouts are noticed without a timed wait.
    Wake,
}
