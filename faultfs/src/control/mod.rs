//! The control protocol: one command a line, one answer a line, over a
//! unix socket. Parsing is pure ([`Command::parse`]); [`serve`] runs it.
//!
//! Answers are `ok`, `ok <json>` or `error <reason>`.

mod command;

pub use command::{Command, FsyncError, ParseError, DELAY_MS_MAX};

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A command line's length limit in bytes (newline included).
pub const LINE_BYTES_MAX: usize = 256;

/// Connections served at once, at most.
pub const CONNECTIONS_MAX: usize = 16;

/// How long a connection may stay idle before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

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
    fn long_lines_are_cut_and_the_next_line_still_read() {
        let mut input = "x".repeat(LINE_BYTES_MAX * 3);
        input.push_str("\nping\n");
        let mut r = std::io::Cursor::new(input.into_bytes());
        assert!(read_line_bounded(&mut r).unwrap().unwrap().is_err());
        assert_eq!(read_line_bounded(&mut r).unwrap().unwrap().unwrap(), "ping");
        assert!(read_line_bounded(&mut r).unwrap().is_none());
    }
}
