//! Reading one node's trace file: untrusted NDJSON, checked line by line.

use super::event::{Event, Header, Kind, NodeId};
use super::ReplayError;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// The longest line accepted; a longer one is an error, not an allocation.
pub const LINE_BYTES_MAX: usize = 1 << 20;

/// The events of one node's trace file, in file order.
#[derive(Clone, Debug)]
pub struct Trace {
    /// Where the events were read from.
    pub file: PathBuf,
    /// The node that wrote them (`None` for a file without events).
    pub node: Option<NodeId>,
    pub(crate) events: Vec<Event>,
    /// Whether the file ended in a partial line (a node killed mid-write), which was skipped.
    pub truncated: bool,
    /// Events of kinds this reader does not know, by kind.
    pub unknown: BTreeMap<String, u64>,
}

impl Trace {
    /// Reads the trace file at `path`.
    pub fn read_file(path: &Path) -> Result<Trace, ReplayError> {
        let file = std::fs::File::open(path).map_err(|source| ReplayError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        Trace::read(path, file)
    }

    /// Reads a trace from `reader`; `file` names it in errors.
    ///
    /// Every complete line must be one event whose `node` is the file's, and whose `seq` and
    /// `lamport` rise strictly: anything else is an error naming the file and line. A last line
    /// without its newline is a partial write: it is skipped and the trace marked truncated.
    pub fn read(file: &Path, reader: impl Read) -> Result<Trace, ReplayError> {
        let mut trace = Trace {
            file: file.to_path_buf(),
            node: None,
            events: Vec::new(),
            truncated: false,
            unknown: BTreeMap::new(),
        };
        let mut reader = BufReader::new(reader);
        let mut buffer = Vec::new();
        for line in 1.. {
            buffer.clear();
            let limit = LINE_BYTES_MAX as u64 + 1;
            let read = (&mut reader)
                .take(limit)
                .read_until(b'\n', &mut buffer)
                .map_err(|source| ReplayError::Io {
                    file: file.to_path_buf(),
                    source,
                })?;
            if read == 0 {
                break;
            }
            if buffer.last() != Some(&b'\n') {
                if buffer.len() > LINE_BYTES_MAX {
                    let message = format!("line longer than {LINE_BYTES_MAX} bytes");
                    return Err(ReplayError::parse(file, line, message));
                }
                trace.truncated = true;
                break;
            }
            if buffer.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event = parse_line(&buffer).map_err(|m| ReplayError::parse(file, line, m))?;
            trace.push(event, line)?;
        }
        Ok(trace)
    }

    /// Appends an event after checking it continues the file's node, sequence and clock.
    fn push(&mut self, mut event: Event, line: usize) -> Result<(), ReplayError> {
        event.line = line;
        let header = event.header;
        let fail = |message: String| Err(ReplayError::parse(&self.file, line, message));
        match self.node {
            Some(node) if node != header.node => {
                return fail(format!("node {} in a trace of node {node}", header.node));
            }
            _ => self.node = Some(header.node),
        }
        if let Some(previous) = self.events.last().map(|e| e.header) {
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
        if let Kind::Unknown(name) = &event.kind {
            *self.unknown.entry(name.clone()).or_default() += 1;
        }
        self.events.push(event);
        Ok(())
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
