//! Reading one node's trace file: untrusted NDJSON, checked line by line, streamed.
//!
//! A trace is never held in memory as events: a soak's files reach hundreds of MB. Each pass
//! (the replay, then the context of an anomaly) reads the file again, event by event.

use super::error::ReplayError;
use super::event::{Event, Header, Kind, NodeId};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The longest line accepted; a longer one is an error, not an allocation.
pub const LINE_BYTES_MAX: usize = 1 << 20;

/// The read buffer of a trace file on each pass.
const READ_BUFFER_BYTES: usize = 1 << 16;

/// One node's trace: where it is, whose it is, and whether it ends in a partial line. Its
/// events are read on each pass ([`super::check`]), which reports a bad line by file and line.
#[derive(Clone, Debug)]
pub struct Trace {
    /// Where the events are read from.
    pub file: PathBuf,
    /// The node that wrote them, from the first event (`None` for a file without events).
    pub node: Option<NodeId>,
    /// Whether the file ends in a partial line (a node killed mid-write), which is skipped.
    pub truncated: bool,
    source: Source,
}

/// Where a pass reads the events from.
#[derive(Clone, Debug)]
enum Source {
    /// The file, opened again on each pass.
    File,
    /// Bytes handed to [`Trace::read`].
    Memory(Arc<[u8]>),
}

impl Trace {
    /// The trace file at `path`: its first event is read (and checked) now, the rest on each
    /// pass.
    pub fn read_file(path: &Path) -> Result<Trace, ReplayError> {
        let mut file = File::open(path).map_err(|e| ReplayError::io(path, e))?;
        let truncated = ends_in_partial_line(&mut file).map_err(|e| ReplayError::io(path, e))?;
        let node = first_node(path, Box::new(BufReader::new(file)))?;
        Ok(Trace {
            file: path.to_path_buf(),
            node,
            truncated,
            source: Source::File,
        })
    }

    /// A trace read from `reader` into memory (tests, small traces); `file` names it in errors.
    ///
    /// Every complete line must be one event whose `node` is the file's, and whose `seq` and
    /// `lamport` rise strictly: anything else is an error naming the file and line (here for
    /// the first event, on each pass for the others). A last line without its newline is a
    /// partial write: it is skipped and the trace marked truncated.
    pub fn read(file: &Path, mut reader: impl Read) -> Result<Trace, ReplayError> {
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| ReplayError::io(file, e))?;
        let bytes: Arc<[u8]> = bytes.into();
        let truncated = bytes.last().is_some_and(|&b| b != b'\n');
        let node = first_node(file, Box::new(&bytes[..]))?;
        Ok(Trace {
            file: file.to_path_buf(),
            node,
            truncated,
            source: Source::Memory(bytes),
        })
    }

    /// A pass over the events, in file order.
    pub(crate) fn events(&self) -> Result<Events<'_>, ReplayError> {
        let reader: Box<dyn BufRead + '_> = match &self.source {
            Source::File => {
                let file = File::open(&self.file).map_err(|e| ReplayError::io(&self.file, e))?;
                Box::new(BufReader::with_capacity(READ_BUFFER_BYTES, file))
            }
            Source::Memory(bytes) => Box::new(&bytes[..]),
        };
        Ok(Events::new(&self.file, reader))
    }
}

/// Whether the file's last byte is not a newline (a line cut by a kill).
fn ends_in_partial_line(file: &mut File) -> std::io::Result<bool> {
    let length = file.metadata()?.len();
    if length == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(length - 1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(last[0] != b'\n')
}

/// The node of the first event, which is checked like any other.
fn first_node(file: &Path, reader: Box<dyn BufRead + '_>) -> Result<Option<NodeId>, ReplayError> {
    let first = Events::new(file, reader).next_event()?;
    Ok(first.map(|event| event.header.node))
}

/// The events of one pass over a trace, checked as they are read.
pub(crate) struct Events<'a> {
    file: &'a Path,
    reader: Box<dyn BufRead + 'a>,
    buffer: Vec<u8>,
    /// The 1-based line last read.
    line: usize,
    node: Option<NodeId>,
    previous: Option<Header>,
    done: bool,
    /// Events of kinds this reader does not know, by kind.
    pub unknown: BTreeMap<String, u64>,
}

impl<'a> Events<'a> {
    fn new(file: &'a Path, reader: Box<dyn BufRead + 'a>) -> Self {
        Events {
            file,
            reader,
            buffer: Vec::new(),
            line: 0,
            node: None,
            previous: None,
            done: false,
            unknown: BTreeMap::new(),
        }
    }

    /// The next event; `None` at the end of the file or at a partial last line.
    pub fn next_event(&mut self) -> Result<Option<Event>, ReplayError> {
        while !self.done {
            self.buffer.clear();
            self.line += 1;
            let limit = LINE_BYTES_MAX as u64 + 1;
            (&mut self.reader)
                .take(limit)
                .read_until(b'\n', &mut self.buffer)
                .map_err(|e| ReplayError::io(self.file, e))?;
            if self.buffer.last() != Some(&b'\n') {
                self.done = true;
                if self.buffer.len() > LINE_BYTES_MAX {
                    let message = format!("line longer than {LINE_BYTES_MAX} bytes");
                    return Err(ReplayError::parse(self.file, self.line, message));
                }
                // The end of the file, or a partial last line: skipped.
                break;
            }
            if self.buffer.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event = parse_line(&self.buffer)
                .map_err(|m| ReplayError::parse(self.file, self.line, m))?;
            return self.accept(event).map(Some);
        }
        Ok(None)
    }

    /// Checks that `event` continues the file's node, sequence and clock.
    fn accept(&mut self, mut event: Event) -> Result<Event, ReplayError> {
        event.line = self.line;
        let header = event.header;
        let fail = |message: String| Err(ReplayError::parse(self.file, self.line, message));
        match self.node {
            Some(node) if node != header.node => {
                return fail(format!("node {} in a trace of node {node}", header.node));
            }
            _ => self.node = Some(header.node),
        }
        if let Some(previous) = self.previous {
            if header.seq <= previous.seq {
                return fail(format!("seq {} after seq {}", header.seq, previous.seq));
            }
            if header.lamport <= previous.lamport {
                let lamport = previous.lamport;
                return fail(format!(
                    "lamport {} after lamport {lamport}",
                    header.lamport
                ));
            }
        }
        self.previous = Some(header);
        if let Kind::Unknown(name) = &event.kind {
            *self.unknown.entry(name.clone()).or_default() += 1;
        }
        Ok(event)
    }
}

/// The common fields and the kind's name, read before the kind's own fields.
#[derive(serde::Deserialize)]
struct Line {
    node: NodeId,
    seq: u64,
    lamport: u64,
    time_ms: u64,
    ev: String,
}

/// One line into an event, or a message saying what is wrong with it.
fn parse_line(line: &[u8]) -> Result<Event, String> {
    let start = line.iter().position(|b| !b.is_ascii_whitespace());
    if start.is_some_and(|at| line[at] != b'{') {
        serde_json::from_slice::<serde::de::IgnoredAny>(line)
            .map_err(|e| format!("not JSON: {}", without_position(&e)))?;
        return Err("not a JSON object".to_string());
    }
    let Line {
        node,
        seq,
        lamport,
        time_ms,
        ev,
    } = serde_json::from_slice(line).map_err(|e| {
        if e.is_data() {
            format!("bad common fields: {}", without_position(&e))
        } else {
            format!("not JSON: {}", without_position(&e))
        }
    })?;
    let kind = if Kind::KNOWN.contains(&ev.as_str()) {
        serde_json::from_slice(line)
            .map_err(|e| format!("bad `{ev}` event: {}", without_position(&e)))?
    } else {
        Kind::Unknown(ev)
    };
    Ok(Event {
        header: Header {
            node,
            seq,
            lamport,
            time_ms,
        },
        kind,
        line: 0,
    })
}

/// serde_json's message without its "at line 1 column N" (the caller names the file's line).
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}
