//! NATS JetStream (Debian's `nats-server` 2.9) as a system under test for
//! the ordering workload (docs/nats.md): a submit is a JetStream publish
//! whose `Nats-Msg-Id` is the transaction id, acknowledged with its stream
//! sequence (its position); reads return positions as one-transaction
//! blocks without hashes (the `positions` chain); the final reads read each
//! server's own copy of the stream.
//!
//! Layers, top to bottom: `client` (the [`NatsClient`]) over `replica`
//! (one server's copy) and `answer` (ok / fail / info), over `block` and
//! `server` (command lines and the stream's configuration).

mod answer;
mod block;
mod client;
mod replica;
mod server;

pub use answer::{ack_answer, settle, Attempt};
pub use block::NO_MESSAGE_ID;
pub use client::{NatsClient, Submission, SUBMIT_ATTEMPTS_MAX};
pub use replica::{delivery_positions, ReplicaReader, PLACEMENT_ATTEMPTS_MAX};
pub use server::{
    stream_config, NatsServer, CLUSTER_NAME, DUPLICATE_WINDOW_NS, STREAM_NAME, STREAM_SUBJECT,
};

use async_nats::{Client, Request};
use serde_json::Value;
use std::time::Duration;

/// The `chain` every NATS delivery carries: positions with one transaction
/// each and no hashes (docs/nats.md, "What the checker needs").
pub const CHAIN: &str = "positions";

/// What went wrong setting up or reaching a NATS cluster.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// An address that is not `host:port`.
    #[error("{field}: `{address}` is not host:port")]
    Address {
        /// The field it was given in.
        field: String,
        /// What was given.
        address: String,
    },
    /// A server could not be connected to.
    #[error("connecting to {server} at {address}: {reason}")]
    Connect {
        /// The server's name.
        server: String,
        /// Its client address.
        address: String,
        /// Why.
        reason: String,
    },
    /// The stream could not be created in time.
    #[error("creating stream `{STREAM_NAME}` through {server}: {reason}")]
    CreateStream {
        /// The server asked.
        server: String,
        /// The last answer or error.
        reason: String,
    },
}

/// A JetStream API request answered with JSON, bounded by `timeout`; any
/// failure is its text, naming the subject.
pub(crate) async fn api_request(
    client: &Client,
    subject: &str,
    body: String,
    timeout: Duration,
) -> Result<Value, String> {
    let request = Request::new().payload(body.into()).timeout(Some(timeout));
    let answer = client
        .send_request(subject.to_string(), request)
        .await
        .map_err(|e| format!("{subject}: {e}"))?;
    serde_json::from_slice(&answer.payload).map_err(|e| format!("{subject}: answer: {e}"))
}
