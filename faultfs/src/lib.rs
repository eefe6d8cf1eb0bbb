//! faultfs: a FUSE filesystem that forgets what was never made durable.
//!
//! It passes through to a backing directory, which is kept as the durable
//! image, and holds in memory what the process changed since: file data
//! written and not fsynced, and creates, renames and removals whose
//! directory was not fsynced. A power loss (`lose-unfsynced`) drops all of
//! it; `torn` keeps a seeded prefix; either can leave the tail of a grown
//! file as zeros or garbage. fsync can be slowed or made to fail, the disk
//! made full (ENOSPC); a durable file can be corrupted (bits flipped,
//! zeroed, truncated); the durable image can be checkpointed and restored
//! (a rollback). `docs/faultfs.md` states the model.
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
pub mod glob;
mod handler;
mod mount;
pub mod overlay;

pub use client::{
    Client, ClientError, FaultfsProcess, COMMAND_TIMEOUT, START_TIMEOUT, STOP_TIMEOUT,
};
pub use control::{Command, FsyncError};
pub use faults::FaultsView;
pub use fs::FaultFs;
pub use handler::RESTORE_WAIT;
pub use mount::{
    faultfs_mounts, force_unmount, is_mounted, mount, wait_unmounted, MountConfig, Mounted,
    PENDING_BYTES_MAX_DEFAULT,
};
pub use overlay::{
    Checkpoint, CorruptKind, Corruption, Damage, FaultError, Lost, Restored, TailRegion, TailShape,
    Torn,
};
