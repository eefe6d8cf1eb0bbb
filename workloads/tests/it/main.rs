//! The workloads crate's end-to-end tests: its clients against real
//! systems. They need the system's server installed and skip loudly
//! without it (`ORDEAL_REQUIRE_NATS=1` makes a missing `nats-server` a
//! failure).

mod nats;
mod nats_cluster;
