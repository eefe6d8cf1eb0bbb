//! Why traces could not be checked.

use super::event::NodeId;
use std::path::{Path, PathBuf};

/// Why traces could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A trace file could not be read.
    #[error("cannot read trace {}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A complete line is not a valid event, or does not continue its file.
    #[error("{}:{line}: {message}", file.display())]
    Parse {
        /// The file.
        file: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Two files hold events of the same node.
    #[error("node {node} has two traces: {} and {}", first.display(), second.display())]
    DuplicateNode {
        /// The node.
        node: NodeId,
        /// The first file.
        first: PathBuf,
        /// The second file.
        second: PathBuf,
    },
}

impl ReplayError {
    pub(crate) fn parse(file: &Path, line: usize, message: String) -> Self {
        ReplayError::Parse {
            file: file.to_path_buf(),
            line,
            message,
        }
    }

    pub(crate) fn io(file: &Path, source: std::io::Error) -> Self {
        ReplayError::Io {
            file: file.to_path_buf(),
            source,
        }
    }
}
