//! The control protocol: one command a line, one answer a line, over a
//! unix socket. Parsing is pure ([`Command::parse`]); [`serve`] runs it.
//!
//! Answers are `ok`, `ok <json>` or `error <reason>`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

/// A command line's length limit in bytes (newline included).
pub const LINE_BYTES_MAX: usize = 256;

/// A delay's limit, in milliseconds.
pub const DELAY_MS_MAX: u64 = 600_000;

/// Connections served at once, at most.
pub const CONNECTIONS_MAX: usize = 16;

/// How long a connection may stay idle before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// The error `fail fsync` makes fsync return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncError {
    /// EIO: the disk failed.
    Eio,
    /// ENOSPC: the disk is full.
    Enospc,
}

impl FsyncError {
    /// The errno value.
    pub fn errno(self) -> i32 {
        match self {
            FsyncError::Eio => libc::EIO,
            FsyncError::Enospc => libc::ENOSPC,
        }
    }

    /// The name used in the protocol.
    pub fn name(self) -> &'static str {
        match self {
            FsyncError::Eio => "EIO",
            FsyncError::Enospc => "ENOSPC",
        }
    }
}

/// A control command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `lose-unfsynced`: power loss; every pending change dropped.
    LoseUnfsynced,
    /// `flush`: pending data written to the backing files, no fsync.
    Flush,
    /// `torn [SEED]`: a seeded prefix of the pending changes persisted,
    /// the rest dropped. Without a seed, one is drawn from the mount's.
    Torn {
        /// The seed, when given.
        seed: Option<u64>,
    },
    /// `delay fsync MS [JITTER_MS]`: every fsync waits MS plus up to
    /// JITTER_MS (seeded). Undone by `heal`.
    DelayFsync {
        /// The fixed part.
        ms: u64,
        /// The random part's bound.
        jitter_ms: u64,
    },
    /// `delay write MS`: every write waits MS. Undone by `heal`.
    DelayWrite {
        /// The delay.
        ms: u64,
    },
    /// `fail fsync EIO|ENOSPC [COUNT]`: the next COUNT fsyncs (all, without
    /// COUNT) fail with the error; what they would have made durable stays
    /// pending. Undone by `heal`.
    FailFsync {
        /// The error.
        error: FsyncError,
        /// How many fsyncs fail; `None` for all until `heal`.
        count: Option<u64>,
    },
    /// `heal`: delays and failures removed (pending changes stay).
    Heal,
    /// `report`: pending bytes per file, as JSON.
    Report,
    /// `ping`: answers `ok` (a readiness probe).
    Ping,
}

/// Why a command line was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    /// The line was empty.
    #[error("empty command")]
    Empty,
    /// The first words name no command.
    #[error("unknown command {0:?}")]
    Unknown(String),
    /// A command got the wrong number of arguments.
    #[error("{command}: expected {expected}")]
    Arity {
        /// The command.
        command: &'static str,
        /// Its usage.
        expected: &'static str,
    },
    /// An argument is not what it should be.
    #[error("{command}: bad {what} {value:?}")]
    Bad {
        /// The command.
        command: &'static str,
        /// The argument's name.
        what: &'static str,
        /// What was given.
        value: String,
    },
}

fn number(
    command: &'static str,
    what: &'static str,
    value: &str,
    max: u64,
) -> Result<u64, ParseError> {
    match value.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(ParseError::Bad {
            command,
            what,
            value: value.to_owned(),
        }),
    }
}

impl Command {
    /// Parses one line (without its newline).
    pub fn parse(line: &str) -> Result<Command, ParseError> {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let arity = |command, expected| ParseError::Arity { command, expected };
        match words.as_slice() {
            [] => Err(ParseError::Empty),
            ["lose-unfsynced"] => Ok(Command::LoseUnfsynced),
            ["flush"] => Ok(Command::Flush),
            ["heal"] => Ok(Command::Heal),
            ["report"] => Ok(Command::Report),
            ["ping"] => Ok(Command::Ping),
            ["torn"] => Ok(Command::Torn { seed: None }),
            ["torn", s] => Ok(Command::Torn {
                seed: Some(number("torn", "seed", s, u64::MAX)?),
            }),
            ["delay", "fsync", ms] => Ok(Command::DelayFsync {
                ms: number("delay fsync", "MS", ms, DELAY_MS_MAX)?,
                jitter_ms: 0,
            }),
            ["delay", "fsync", ms, j] => Ok(Command::DelayFsync {
                ms: number("delay fsync", "MS", ms, DELAY_MS_MAX)?,
                jitter_ms: number("delay fsync", "JITTER_MS", j, DELAY_MS_MAX)?,
            }),
            ["delay", "write", ms] => Ok(Command::DelayWrite {
                ms: number("delay write", "MS", ms, DELAY_MS_MAX)?,
            }),
            ["fail", "fsync", e, rest @ ..] if rest.len() <= 1 => {
                let error = match *e {
                    "EIO" => FsyncError::Eio,
                    "ENOSPC" => FsyncError::Enospc,
                    other => {
                        return Err(ParseError::Bad {
                            command: "fail fsync",
                            what: "error (EIO or ENOSPC)",
                            value: other.to_owned(),
                        })
                    }
                };
                let count = rest
                    .first()
                    .map(|c| number("fail fsync", "COUNT", c, u64::from(u32::MAX)))
                    .transpose()?;
                Ok(Command::FailFsync { error, count })
            }
            ["torn", ..] => Err(arity("torn", "torn [SEED]")),
            ["delay", "fsync", ..] => Err(arity("delay fsync", "delay fsync MS [JITTER_MS]")),
            ["delay", "write", ..] => Err(arity("delay write", "delay write MS")),
            ["fail", "fsync", ..] => Err(arity("fail fsync", "fail fsync EIO|ENOSPC [COUNT]")),
            [w, ..] if ["lose-unfsynced", "flush", "heal", "report", "ping"].contains(w) => {
                Err(ParseError::Arity {
                    command: "this command",
                    expected: "no arguments",
                })
            }
            _ => Err(ParseError::Unknown(line.chars().take(64).collect())),
        }
    }

    /// The command as a protocol line (without newline).
    pub fn line(&self) -> String {
        match self {
            Command::LoseUnfsynced => "lose-unfsynced".into(),
            Command::Flush => "flush".into(),
            Command::Torn { seed: None } => "torn".into(),
            Command::Torn { seed: Some(s) } => format!("torn {s}"),
            Command::DelayFsync { ms, jitter_ms } => format!("delay fsync {ms} {jitter_ms}"),
            Command::DelayWrite { ms } => format!("delay write {ms}"),
            Command::FailFsync { error, count: None } => format!("fail fsync {}", error.name()),
            Command::FailFsync {
                error,
                count: Some(c),
            } => format!("fail fsync {} {c}", error.name()),
            Command::Heal => "heal".into(),
            Command::Report => "report".into(),
            Command::Ping => "ping".into(),
        }
    }
}

/// Something that carries out commands (the mounted filesystem).
pub trait Handler: Send + Sync + 'static {
    /// Carries out one command; `Ok` holds what follows `ok` (may be empty).
    fn handle(&self, command: Command) -> Result<String, String>;
}

/// Reads one line of at most [`LINE_BYTES_MAX`] bytes. `Ok(None)` at end of
/// stream; `Err` (with the rest of the line skipped) when it is too long.
pub fn read_line_bounded<R: BufRead>(
    reader: &mut R,
) -> std::io::Result<Option<Result<String, String>>> {
    let mut buf = Vec::new();
    let n = reader
        .by_ref()
        .take(LINE_BYTES_MAX as u64)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        if n < LINE_BYTES_MAX {
            // End of stream without a newline: take the line as it is.
            return Ok(Some(
                String::from_utf8(buf).map_err(|_| "command is not UTF-8".to_owned()),
            ));
        }
        skip_line(reader)?;
        return Ok(Some(Err(format!(
            "line longer than {LINE_BYTES_MAX} bytes"
        ))));
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(
        String::from_utf8(buf).map_err(|_| "command is not UTF-8".to_owned()),
    ))
}

/// Consumes the rest of a line without keeping it.
fn skip_line<R: BufRead>(reader: &mut R) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            reader.consume(i + 1);
            return Ok(());
        }
        let n = buf.len();
        reader.consume(n);
    }
}

/// Answers commands on `listener` until the process ends: a thread per
/// connection, at most [`CONNECTIONS_MAX`] at once.
pub fn serve(listener: UnixListener, handler: Arc<dyn Handler>) {
    let live = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if live.fetch_add(1, Ordering::SeqCst) >= CONNECTIONS_MAX {
            live.fetch_sub(1, Ordering::SeqCst);
            let _ = writeln!(
                stream,
                "error more than {CONNECTIONS_MAX} control connections"
            );
            continue;
        }
        let (handler, live) = (handler.clone(), live.clone());
        let spawned = std::thread::Builder::new()
            .name("faultfs-control".into())
            .spawn(move || {
                if let Err(e) = connection(stream, handler.as_ref()) {
                    tracing::debug!(error = %e, "control connection ended");
                }
                live.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a control connection thread");
        }
    }
}

fn connection(stream: UnixStream, handler: &dyn Handler) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    while let Some(line) = read_line_bounded(&mut reader)? {
        let answer = match line.and_then(|l| Command::parse(&l).map_err(|e| e.to_string())) {
            Ok(command) => {
                tracing::info!(command = %command.line(), "control command");
                match handler.handle(command) {
                    Ok(s) if s.is_empty() => "ok".to_owned(),
                    Ok(s) => format!("ok {s}"),
                    Err(e) => format!("error {e}"),
                }
            }
            Err(e) => format!("error {e}"),
        };
        writer.write_all(answer.replace('\n', " ").as_bytes())?;
        writer.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_parses_and_prints_back() {
        let table = [
            ("lose-unfsynced", Command::LoseUnfsynced),
            ("flush", Command::Flush),
            ("torn", Command::Torn { seed: None }),
            ("torn 42", Command::Torn { seed: Some(42) }),
            (
                "delay fsync 100 0",
                Command::DelayFsync {
                    ms: 100,
                    jitter_ms: 0,
                },
            ),
            (
                "delay fsync 100 20",
                Command::DelayFsync {
                    ms: 100,
                    jitter_ms: 20,
                },
            ),
            ("delay write 5", Command::DelayWrite { ms: 5 }),
            (
                "fail fsync EIO",
                Command::FailFsync {
                    error: FsyncError::Eio,
                    count: None,
                },
            ),
            (
                "fail fsync ENOSPC 3",
                Command::FailFsync {
                    error: FsyncError::Enospc,
                    count: Some(3),
                },
            ),
            ("heal", Command::Heal),
            ("report", Command::Report),
            ("ping", Command::Ping),
        ];
        for (line, command) in table {
            assert_eq!(Command::parse(line), Ok(command.clone()), "{line}");
            assert_eq!(Command::parse(&command.line()), Ok(command), "{line}");
        }
        assert_eq!(
            Command::parse("delay fsync 7"),
            Ok(Command::DelayFsync {
                ms: 7,
                jitter_ms: 0
            })
        );
    }

    #[test]
    fn bad_lines_are_refused_with_a_reason() {
        let table = [
            ("", "empty command"),
            ("explode", "unknown command \"explode\""),
            (
                "delay fsync",
                "delay fsync: expected delay fsync MS [JITTER_MS]",
            ),
            ("delay fsync -1", "delay fsync: bad MS \"-1\""),
            ("delay fsync 999999999", "delay fsync: bad MS \"999999999\""),
            (
                "fail fsync EBADF",
                "fail fsync: bad error (EIO or ENOSPC) \"EBADF\"",
            ),
            (
                "fail fsync EIO 1 2",
                "fail fsync: expected fail fsync EIO|ENOSPC [COUNT]",
            ),
            ("torn x", "torn: bad seed \"x\""),
            ("heal now", "this command: expected no arguments"),
        ];
        for (line, reason) in table {
            assert_eq!(
                Command::parse(line).unwrap_err().to_string(),
                reason,
                "{line}"
            );
        }
    }

    #[test]
    fn long_lines_are_cut_and_the_next_line_still_read() {
        let mut input = "x".repeat(LINE_BYTES_MAX * 3);
        input.push_str("\nping\n");
        let mut r = std::io::Cursor::new(input.into_bytes());
        assert!(read_line_bounded(&mut r).unwrap().unwrap().is_err());
        assert_eq!(read_line_bounded(&mut r).unwrap().unwrap().unwrap(), "ping");
        assert!(read_line_bounded(&mut r).unwrap().is_none());
    }
}
