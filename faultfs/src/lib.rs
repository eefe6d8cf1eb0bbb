//! faultfs: a FUSE filesystem that forgets what was never made durable.
//!
//! It passes through to a backing directory, which is kept as the durable
//! image, and holds in memory what the process changed since: file data
//! written and not fsynced, and creates, renames and removals whose
//! directory was not fsynced. A power loss (`lose-unfsynced`) drops all of
//! it; `torn` keeps a seeded prefix; fsync can be slowed or made to fail.
//! `docs/faultfs.md` states the model.
//!
//! ```no_run
//! use std::path::Path;
//! use faultfs::{Client, FaultfsProcess};
//! let fs = FaultfsProcess::start(
//!     Path::new("target/debug/faultfs"),
//!     Path::new("/var/tmp/n1-backing"),
//!     Path::new("/var/tmp/n1"),
//!     Path::new("/var/tmp/n1.sock"),
//!     42,
//!     None,
//! )?;
//! // … a node runs with --data-dir /var/tmp/n1 and is SIGKILLed …
//! fs.client().lose_unfsynced()?;
//! fs.stop()?;
//! # Ok::<(), faultfs::ClientError>(())
//! ```
#![deny(missing_docs)]

mod client;
pub mod control;
mod faults;
mod fs;
mod mount;
pub mod overlay;

pub use client::{
    Client, ClientError, FaultfsProcess, COMMAND_TIMEOUT, START_TIMEOUT, STOP_TIMEOUT,
};
pub use control::{Command, FsyncError};
pub use faults::FaultsView;
pub use fs::FaultFs;
pub use mount::{
    faultfs_mounts, force_unmount, is_mounted, mount, wait_unmounted, MountConfig, Mounted,
    PENDING_BYTES_MAX_DEFAULT,
};
