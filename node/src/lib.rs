//! `ordeal-node`: the system under test, an ordering service modelled on
//! Hyperledger Fabric's etcdraft orderer, on the `raft` crate.
//!
//! Transactions submitted to any node reach the leader, whose block cutter
//! batches them into blocks; each block is one raft entry; committed
//! entries are applied to a hash-chained ledger and a key-value state
//! machine on every node. See `docs/node-api.md` for the client API.
//!
//! ```
//! use node::ledger::Ledger;
//! let mut ledger = Ledger::default();
//! ledger.append(vec![]);
//! assert_eq!(ledger.height(), 2);
//! ```
#![deny(missing_docs)]

pub mod api;
pub mod bench;
pub mod blockstore;
pub mod config;
pub mod crash_points;
pub mod cutter;
mod dirs;
pub mod event;
pub mod forward;
pub mod fsm;
pub mod kv;
pub mod launch;
pub mod ledger;
pub mod metrics;
pub mod ports;
mod record;
mod segment;
pub mod server;
mod slog_bridge;
pub mod slow_disk;
pub mod snapshotter;
pub mod storage;
pub mod trace;
pub mod transport;
pub mod tx;
pub mod uptime;
pub mod wal;
