//! A node process that ended without the runtime being asked to stop it
//! (`Runtime::exits` in `verbs.rs`): how it
//! ended and the last lines of its log, where a panic leaves its message.
//!
//! A runtime reports only what it did not do itself: its own `kill` and
//! `teardown` never show here. Whether an exit was expected (a fault that
//! stops the process by itself, such as a disk error) is decided above,
//! from the faults in force (`run/crashes.rs`, `judge/crashed.rs`).

use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// How many lines of a crashed node's log are kept.
pub const LOG_TAIL_LINES: usize = 30;
/// How many bytes at the end of a log are read for its last lines.
const LOG_TAIL_BYTES_MAX: u64 = 16 << 10;
/// A log line is cut to this many characters (a line can be a whole
/// dumped message).
const LOG_LINE_CHARS_MAX: usize = 400;

/// A node process that ended by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// The node.
    pub node: String,
    /// How it ended, in words: `exit status 101`, `killed by signal 6
    /// (SIGABRT)`, or what the runtime could learn.
    pub status: String,
    /// The last lines of its log, oldest first (the panic message).
    pub log_tail: Vec<String>,
}

/// A process's end in words.
pub fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(sig) => match nix::sys::signal::Signal::try_from(sig) {
            Ok(name) => format!("killed by signal {sig} ({name})"),
            Err(_) => format!("killed by signal {sig}"),
        },
        None => format!("{status}"),
    }
}

/// The last [`LOG_TAIL_LINES`] lines of `text` (lossy UTF-8), each cut to
/// a bounded length; a first line cut by where reading began is dropped.
pub fn tail_lines(text: &[u8], whole: bool) -> Vec<String> {
    let text = String::from_utf8_lossy(text);
    let mut lines: Vec<&str> = text.lines().collect();
    if !whole && lines.len() > 1 {
        lines.remove(0);
    }
    let from = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[from..]
        .iter()
        .map(|l| l.chars().take(LOG_LINE_CHARS_MAX).collect())
        .collect()
}

/// The last lines of the log file at `path` (empty when it cannot be read:
/// the exit is reported all the same).
pub fn log_tail(path: &Path) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(LOG_TAIL_BYTES_MAX);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    tail_lines(&bytes, from == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_whole_lines() {
        let text: String = (0..30).map(|i| format!("line {i}\n")).collect();
        let tail = tail_lines(text.as_bytes(), true);
        assert_eq!(tail.len(), LOG_TAIL_LINES);
        assert_eq!(tail.last().unwrap(), "line 29");
        assert_eq!(tail_lines(b"ne 3\nline 4\n", false), ["line 4"]);
        assert_eq!(tail_lines(b"only\n", true), ["only"]);
    }

    #[test]
    fn statuses_are_said_in_words() {
        use std::os::unix::process::ExitStatusExt;
        let exited = std::process::ExitStatus::from_raw(101 << 8);
        assert_eq!(describe(exited), "exit status 101");
        let aborted = std::process::ExitStatus::from_raw(6);
        assert_eq!(describe(aborted), "killed by signal 6 (SIGABRT)");
    }
}
