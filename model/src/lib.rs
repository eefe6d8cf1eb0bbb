//! A [stateright] model of Raft's leader election and log replication, checked against the
//! safety properties of the Raft paper (Figure 3), with switches that break one rule each.
//!
//! The rules themselves live in [`rules`], as pure functions over small views; the same
//! functions judge real nodes' Raft traces in [`replay`].
//!
//! ```
//! use model::{Bounds, RaftModel, properties};
//! use stateright::{Checker, Model};
//!
//! let bounds = Bounds { servers: 3, max_term: 1, max_log: 0, max_crashes: 0, ..Bounds::default() };
//! let checker = RaftModel::new(bounds).checker().spawn_bfs().join();
//! assert!(checker.discovery(properties::ELECTION_SAFETY).is_none());
//! assert!(checker.discovery(properties::LEADER_ELECTED).is_some());
//! ```
#![deny(missing_docs)]

mod action;
mod bounds;
mod check;
mod describe;
mod log;
mod network;
pub mod properties;
mod raft;
pub mod replay;
pub mod rules;
mod state;
mod symmetry;
mod trace;

pub use action::Action;
pub use bounds::{Bounds, BoundsError, Bug, Network, SERVERS_MAX, TERM_MAX};
pub use check::{check, CheckOptions, CheckReport, PropertyReport, Strategy, Verdict};
pub use describe::describe_action;
pub use log::{Entry, Log, LOG_MAX};
pub use raft::RaftModel;
pub use state::{AppendRequest, Body, History, Message, Role, Server, ServerId, State};
pub use trace::{describe_path, describe_state, describe_state_in_full};
