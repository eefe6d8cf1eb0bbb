//! What the harness knows of the running cluster, below the nemesis and
//! the run that use it: which nodes were started and where they stand
//! (`membership.rs`, the registry the `member` nemesis changes), and what
//! they say of themselves (`probe.rs`: status, leader, clocks, metrics,
//! through the system's shaping).

pub mod membership;
pub mod probe;
