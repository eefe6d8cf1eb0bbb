//! Why a control command on the durable image (corrupt, checkpoint,
//! restore) was refused or failed: each names the file, region or
//! checkpoint at fault.

use std::path::PathBuf;

use thiserror::Error;

/// A refused or failed command on the durable image.
#[derive(Debug, Error)]
pub enum FaultError {
    /// The path names nothing in the durable image.
    #[error("{path}: no such file in the durable image")]
    NoFile {
        /// The path asked for, from the mount's root.
        path: String,
    },
    /// The path names a directory.
    #[error("{path}: is a directory, not a file")]
    NotAFile {
        /// The path asked for.
        path: String,
    },
    /// The path has an empty, `.` or `..` component.
    #[error("{path:?}: not a plain path from the mount's root (no `.`, `..` or empty components)")]
    BadPath {
        /// The path asked for.
        path: String,
    },
    /// The region does not lie inside the file.
    #[error(
        "{path}: offset {offset} length {length} is not inside the file's {size} durable bytes"
    )]
    Region {
        /// The file.
        path: String,
        /// The region's start.
        offset: u64,
        /// The region's length.
        length: u64,
        /// The file's durable size.
        size: u64,
    },
    /// No file matches the pattern.
    #[error("no non-empty file in the durable image matches {glob:?}")]
    NoMatch {
        /// The pattern.
        glob: String,
    },
    /// A checkpoint name that is not allowed.
    #[error("checkpoint name {name:?}: 1 to 64 of A-Z a-z 0-9 . _ -, not starting with '.'")]
    BadName {
        /// The name given.
        name: String,
    },
    /// No checkpoint of that name.
    #[error("checkpoint {name:?}: no such checkpoint")]
    NoCheckpoint {
        /// The name given.
        name: String,
    },
    /// Too many checkpoints kept.
    #[error("checkpoint {name:?}: {max} checkpoints exist already; drop one first (drop-checkpoint NAME)")]
    TooManyCheckpoints {
        /// The name given.
        name: String,
        /// The bound.
        max: usize,
    },
    /// Files are open on the mount, so the durable image cannot be replaced.
    #[error("restore {name:?}: {open} file handles are still open on the mount ({paths}) after {waited_ms} ms; stop every process using the mount first")]
    Busy {
        /// The checkpoint.
        name: String,
        /// Open handles.
        open: usize,
        /// Some of the open paths.
        paths: String,
        /// How long the restore waited for them to close.
        waited_ms: u64,
    },
    /// The backing filesystem failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The backing path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// An [`FaultError::Io`] maker for `map_err`.
pub(crate) fn io_error(
    what: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> FaultError {
    let path = path.to_path_buf();
    move |source| FaultError::Io { what, path, source }
}
