//! Workloads: seeded operation generators and the clients that carry their
//! operations to a system under test.
//!
//! A generator is pure: it hands out the next [`Invocation`] from its seeded
//! random stream and never sleeps, reads a clock or does IO; the harness owns
//! time and workers, and binds each process to a node. A client turns an
//! invocation into requests against that node and reports a [`Completion`]: `ok`, `fail` (certainly no effect) or
//! `info` (unknown).
//!
//! ```
//! use workloads::{Generator, OrderingGenerator};
//! let mut generator = OrderingGenerator::new(42);
//! let first = generator.next_invocation().unwrap();
//! assert!(first.f == "submit" || first.f == "deliver");
//! ```
#![deny(missing_docs)]

mod client;
mod etcd;
pub mod nats;
mod ordering;
mod register;

pub use client::{Ack, OrdealClient, REQUEST_TIMEOUT_DEFAULT};
pub use etcd::{EtcdClient, ReadMode};
pub use nats::NatsClient;
pub use ordering::OrderingGenerator;
pub use register::{RegisterGenerator, KEY_OPS_MAX};

use serde_json::Value;

/// The operations of the workloads (the history's `f` of client ops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Ordering: submit a transaction.
    Submit,
    /// Ordering: read blocks.
    Deliver,
    /// Register: read a key.
    Read,
    /// Register: write a key.
    Write,
    /// Register: compare-and-set a key.
    Cas,
}

impl Op {
    /// The name in the history (history.md).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Submit => "submit",
            Op::Deliver => "deliver",
            Op::Read => "read",
            Op::Write => "write",
            Op::Cas => "cas",
        }
    }
}

impl PartialEq<&str> for Op {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One operation the generator asks for, before it is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The operation.
    pub f: Op,
    /// The object it acts on, when the workload has several.
    pub key: Option<String>,
    /// The argument, as recorded on `invoke` (history.md).
    pub value: Value,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It took effect exactly once; the value recorded on `ok`.
    Ok(Value),
    /// It certainly did not take effect; why.
    Fail(String),
    /// It certainly did not take effect, because the node cannot serve any
    /// op now: it refused the connection, knows no leader, or is
    /// overloaded. Recorded as `fail`; the worker backs off before its
    /// process tries that node again.
    Unavailable(String),
    /// It certainly did not take effect, because a committed configuration
    /// removed the node (ordeal-node's `410`, issue 14): it will never
    /// serve again. Recorded as `fail`, with an error starting `removed:`;
    /// the worker leaves the node for a live member.
    Removed(String),
    /// Unknown whether it took effect; why.
    Info(String),
}

/// The result of carrying out one invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// How it ended.
    pub outcome: Outcome,
    /// The value to record on the completion when it differs from the
    /// invocation's (for `fail`/`info`, the invocation's value is kept).
    pub node: String,
}

/// A seeded, pure source of operations.
pub trait Generator: Send {
    /// The next operation, or `None` when the generator is exhausted.
    fn next_invocation(&mut self) -> Option<Invocation>;
}

/// The HTTP client every workload client uses: bounded requests, a short
/// connect timeout (a refused connection is a definite `fail`), and enough
/// idle connections for every worker.
pub(crate) fn http_client(
    request_timeout: std::time::Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(request_timeout)
        .connect_timeout(std::time::Duration::from_secs(1))
        .pool_max_idle_per_host(64)
        .build()
}

/// The client of whichever system is under test.
#[derive(Debug)]
pub enum SutClient {
    /// `ordeal-node` (every workload).
    Ordeal(OrdealClient),
    /// etcd (the register workload).
    Etcd(EtcdClient),
    /// NATS JetStream (the ordering workload).
    Nats(NatsClient),
}

impl SutClient {
    /// The index of the node named `name`, for [`SutClient::invoke`]
    /// (nodes the `member` nemesis started included).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        match self {
            SutClient::Ordeal(c) => c.index_of(name),
            SutClient::Etcd(c) => c.index_of(name),
            SutClient::Nats(c) => c.index_of(name),
        }
    }

    /// Carries out one invocation against node `node_index` (0-based).
    pub async fn invoke(&self, inv: &Invocation, node_index: usize) -> Completion {
        match self {
            SutClient::Ordeal(c) => c.invoke(inv, node_index).await,
            SutClient::Etcd(c) => c.invoke(inv, node_index).await,
            SutClient::Nats(c) => c.invoke(inv, node_index).await,
        }
    }

    /// The final read of node `node_index`'s whole chain (the ordering
    /// workload's final `deliver`s): ordeal-node's blocks from block 0, or
    /// a NATS server's own copy of the stream from position 1. `Fail` when
    /// it cannot be read, or for a system without the ordering workload.
    pub async fn deliver_chain(&self, node_index: usize) -> Outcome {
        match self {
            SutClient::Ordeal(c) => c.deliver_chain(node_index).await,
            SutClient::Nats(c) => c.deliver_chain(node_index).await,
            SutClient::Etcd(_) => Outcome::Fail("etcd has no ordering workload".to_string()),
        }
    }

    /// Appends a node the `member` nemesis started and returns its index;
    /// `None` for a system whose nodes are fixed (etcd, NATS: the harness
    /// does not change their membership).
    pub fn add_node(&self, name: &str, url: &str) -> Option<usize> {
        match self {
            SutClient::Ordeal(c) => Some(c.add_node(name, url)),
            SutClient::Etcd(_) | SutClient::Nats(_) => None,
        }
    }
}
