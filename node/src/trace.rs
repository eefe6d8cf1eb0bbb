//! The Raft trace (`--trace FILE`, format in `docs/trace.md`): one JSON
//! object per line for every Raft step the `raft` checker replays.
//!
//! Events are formatted straight into a buffer (numbers and fixed names,
//! nothing to escape) and written with one `write(2)` per turn of the raft
//! loop and before any message leaves, never fsynced. On open the file is
//! cut back to its last complete line and `seq` / `lamport` carry on from
//! that line, so a node killed mid-line leaves a readable file.

use crate::fsm::StateDigest;
use raft::prelude::{Message, MessageType};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// How far back from the end a restart looks for the last complete line.
pub const TAIL_BYTES_MAX: u64 = 1 << 20;
/// Buffered bytes that force a write before the turn ends.
const BUFFER_BYTES_MAX: usize = 256 << 10;

/// Why the trace file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// An IO call failed.
    #[error("trace {path}: {source}")]
    Io {
        /// The trace file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The last complete line is not an event this node wrote.
    #[error("trace {path}: last complete line (byte offset {offset}): {problem}")]
    BadTail {
        /// The trace file.
        path: PathBuf,
        /// Where that line starts.
        offset: u64,
        /// What is wrong with it.
        problem: String,
    },
}

/// Where an event puts a node's role (`docs/trace.md`, `role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The node (re)started.
    Start,
    /// An election timeout started a pre-vote campaign.
    PreVote,
    /// A vote campaign started, or was won.
    Vote,
    /// A leader was heard at the same term.
    Heartbeat,
    /// A leader without a quorum of recent followers stepped down.
    CheckQuorum,
    /// A message with a higher term arrived.
    HigherTerm,
}

impl Reason {
    fn name(self) -> &'static str {
        match self {
            Reason::Start => "start",
            Reason::PreVote => "pre_vote",
            Reason::Vote => "vote",
            Reason::Heartbeat => "heartbeat",
            Reason::CheckQuorum => "check_quorum",
            Reason::HigherTerm => "higher_term",
        }
    }
}

/// Why a `digest` event was written (docs/trace.md, `digest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestCause {
    /// An entry whose index is a multiple of `--trace-digest-every` was applied.
    Apply,
    /// A snapshot taken at the index (the state it holds).
    SnapshotTaken,
    /// A leader's snapshot was installed (the state after it).
    SnapshotInstalled,
    /// The state recovered at start.
    Start,
}

impl DigestCause {
    fn name(self) -> &'static str {
        match self {
            DigestCause::Apply => "apply",
            DigestCause::SnapshotTaken => "snapshot_taken",
            DigestCause::SnapshotInstalled => "snapshot_installed",
            DigestCause::Start => "start",
        }
    }
}

/// Raft's persistent state and log bounds, as `start` and `persist` show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogState {
    /// Current term.
    pub term: u64,
    /// Vote in that term (0 for none).
    pub vote: u64,
    /// Commit index.
    pub commit: u64,
    /// First index in the log (after the snapshot).
    pub first_index: u64,
    /// Last index in the log.
    pub last_index: u64,
    /// Term of the last entry (or of the snapshot when the log is empty).
    pub last_term: u64,
}

/// The trace writer; [`Trace::off`] writes nothing and costs a branch.
#[derive(Debug)]
pub struct Trace {
    out: Option<(PathBuf, File)>,
    node: u64,
    seq: u64,
    lamport: u64,
    buf: Vec<u8>,
    /// Whether `open` cut a partial last line (reported by `start`).
    cut: bool,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The host's real wall clock, ms since the Unix epoch (0 if the call
/// fails): a raw `clock_gettime(CLOCK_REALTIME)` system call, not libc's
/// wrapper (nor the vDSO), so that libfaketime — which replaces the
/// wrapper — does not fake it under the harness's clock faults (the
/// trace's `real_ms`). A libfaketime built with `INTERCEPT_SYSCALL` would
/// fake this too; Debian's is not (the test
/// `real_ms_is_not_faked_by_libfaketime` checks the one installed).
pub fn real_unix_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one `timespec` through the pointer,
    // which points at a live, writable one of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clock_gettime,
            libc::CLOCK_REALTIME as libc::c_long,
            &mut ts as *mut libc::timespec,
        )
    };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// `null` or the number.
struct Opt(Option<u64>);

impl std::fmt::Display for Opt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("null"),
        }
    }
}

/// A JSON list of ids.
struct Ids<'a>(&'a [u64]);

impl std::fmt::Display for Ids<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[")?;
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{id}")?;
        }
        f.write_str("]")
    }
}

impl Trace {
    /// A trace that records nothing.
    pub fn off() -> Trace {
        Trace {
            out: None,
            node: 0,
            seq: 0,
            lamport: 0,
            buf: Vec::new(),
            cut: false,
        }
    }

    /// Opens (or creates) `path` for node `node`: cuts a partial last line
    /// and continues `seq` and `lamport` from the last complete one.
    pub fn open(path: &Path, node: u64) -> Result<Trace, TraceError> {
        let io = |source| TraceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let start = len.saturating_sub(TAIL_BYTES_MAX);
        let mut tail = Vec::with_capacity((len - start) as usize);
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        // Read what `len` said, no more: a file that grows (or a device
        // that never ends) must not keep the node from starting.
        (&mut file)
            .take(len - start)
            .read_to_end(&mut tail)
            .map_err(io)?;
        let (keep, last) = match tail.iter().rposition(|&b| b == b'\n') {
            Some(end) => {
                let from = tail[..end].iter().rposition(|&b| b == b'\n').map(|p| p + 1);
                if from.is_none() && start > 0 {
                    return Err(TraceError::BadTail {
                        path: path.to_path_buf(),
                        offset: start,
                        problem: format!("longer than {TAIL_BYTES_MAX} bytes"),
                    });
                }
                let from = from.unwrap_or(0);
                let line_at = start + from as u64;
                (start + end as u64 + 1, Some((line_at, &tail[from..end])))
            }
            None if start == 0 => (0, None),
            None => {
                return Err(TraceError::BadTail {
                    path: path.to_path_buf(),
                    offset: start,
                    problem: format!("no complete line in the last {TAIL_BYTES_MAX} bytes"),
                })
            }
        };
        if keep < len {
            tracing::warn!(file = %path.display(), cut_bytes = len - keep, "partial last line in the trace (killed mid-write), cutting it");
            file.set_len(keep).map_err(io)?;
        }
        let (seq, lamport) = match last {
            Some((offset, line)) => Self::resume_from(path, offset, line, node)?,
            None => (0, 0),
        };
        Ok(Trace {
            out: Some((path.to_path_buf(), file)),
            node,
            seq,
            lamport,
            buf: Vec::with_capacity(BUFFER_BYTES_MAX),
            cut: keep < len,
        })
    }

    /// The `seq` to write next and the Lamport clock, from the last line.
    fn resume_from(
        path: &Path,
        offset: u64,
        line: &[u8],
        node: u64,
    ) -> Result<(u64, u64), TraceError> {
        let bad = |problem: String| TraceError::BadTail {
            path: path.to_path_buf(),
            offset,
            problem,
        };
        let v: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let field = |name: &str| {
            v[name]
                .as_u64()
                .ok_or_else(|| bad(format!("field `{name}` missing or not a u64")))
        };
        let (seq, lamport, owner) = (field("seq")?, field("lamport")?, field("node")?);
        if owner != node {
            return Err(bad(format!("written by node {owner}, not node {node}")));
        }
        Ok((seq + 1, lamport))
    }

    /// Whether events are recorded.
    pub fn is_on(&self) -> bool {
        self.out.is_some()
    }

    /// The Lamport clock now.
    pub fn lamport(&self) -> u64 {
        self.lamport
    }

    /// Starts an event line with the common fields; `lamport` is the
    /// clock's new value.
    fn begin(&mut self, lamport: u64, ev: &str) {
        self.lamport = lamport;
        let _ = write!(
            self.buf,
            "{{\"node\":{},\"seq\":{},\"lamport\":{},\"time_ms\":{},\"ev\":\"{ev}\"",
            self.node,
            self.seq,
            lamport,
            unix_ms()
        );
        self.seq += 1;
    }

    /// [`Trace::begin`] and the real clock (`real_ms`).
    fn begin_real(&mut self, lamport: u64, ev: &str) {
        self.begin(lamport, ev);
        let _ = write!(self.buf, ",\"real_ms\":{}", real_unix_ms());
    }

    fn end(&mut self) {
        self.buf.extend_from_slice(b"}\n");
    }

    /// `start`: what recovery found (`applied`: the index the recovered
    /// state machine holds); `trace_cut` says whether `open` cut a partial
    /// last line (events of the previous run may be missing).
    pub fn start(
        &mut self,
        s: &LogState,
        snapshot: (u64, u64),
        applied: u64,
        voters: &[u64],
        learners: &[u64],
    ) {
        if !self.is_on() {
            return;
        }
        self.begin_real(self.lamport + 1, "start");
        self.log_state(s);
        let _ = write!(
            self.buf,
            ",\"snapshot_index\":{},\"snapshot_term\":{},\"applied\":{applied},\"pid\":{},\"voters\":{},\"learners\":{},\"trace_cut\":{}",
            snapshot.0,
            snapshot.1,
            std::process::id(),
            Ids(voters),
            Ids(learners),
            self.cut
        );
        self.cut = false;
        self.end();
    }

    fn log_state(&mut self, s: &LogState) {
        let _ = write!(
            self.buf,
            ",\"term\":{},\"vote\":{},\"commit\":{},\"first_index\":{},\"last_index\":{},\"last_term\":{}",
            s.term, s.vote, s.commit, s.first_index, s.last_index, s.last_term
        );
    }

    /// `persist`: after an fsync of entries and/or hard state, which took
    /// `duration_us` (the write and the fsync).
    pub fn persist(
        &mut self,
        s: &LogState,
        appended: &[(u64, u64)],
        truncated_from: Option<u64>,
        duration_us: u64,
    ) {
        if !self.is_on() {
            return;
        }
        self.begin_real(self.lamport + 1, "persist");
        let _ = write!(self.buf, ",\"duration_us\":{duration_us}");
        self.log_state(s);
        self.buf.extend_from_slice(b",\"appended\":[");
        for (i, (index, term)) in appended.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let _ = write!(self.buf, "{comma}[{index},{term}]");
        }
        let _ = write!(self.buf, "],\"truncated_from\":{}", Opt(truncated_from));
        self.end();
    }

    /// `role`: the node's role or known leader changed.
    pub fn role(&mut self, role: &str, term: u64, leader: u64, reason: Option<Reason>) {
        if !self.is_on() {
            return;
        }
        self.begin_real(self.lamport + 1, "role");
        let _ = write!(
            self.buf,
            ",\"role\":\"{role}\",\"term\":{term},\"leader\":{leader},\"reason\":"
        );
        match reason {
            Some(r) => {
                let _ = write!(self.buf, "\"{}\"", r.name());
            }
            None => self.buf.extend_from_slice(b"null"),
        }
        self.end();
    }

    /// `send`: returns the Lamport stamp the message carries.
    pub fn send(&mut self, m: &Message) -> u64 {
        if !self.is_on() {
            return 0;
        }
        self.begin(self.lamport + 1, "send");
        self.message(m);
        self.lamport
    }

    /// `recv`: the raft loop is about to step `m`, stamped `stamp` by its
    /// sender.
    pub fn recv(&mut self, m: &Message, stamp: u64) {
        if !self.is_on() {
            return;
        }
        self.begin(self.lamport.max(stamp) + 1, "recv");
        let _ = write!(self.buf, ",\"send_lamport\":{stamp}");
        self.message(m);
    }

    fn message(&mut self, m: &Message) {
        let snapshot = (m.get_msg_type() == MessageType::MsgSnapshot)
            .then(|| m.get_snapshot().get_metadata().index);
        let _ = write!(
            self.buf,
            ",\"msg_type\":\"{:?}\",\"from\":{},\"to\":{},\"term\":{},\"index\":{},\"log_term\":{},\"commit\":{},\"reject\":{},\"entries\":{},\"snapshot_index\":{}",
            m.get_msg_type(),
            m.from,
            m.to,
            m.term,
            m.index,
            m.log_term,
            m.commit,
            m.reject,
            m.entries.len(),
            Opt(snapshot)
        );
        self.end();
    }

    /// `snapshot`: `action` is `taken`, `sent` or `installed`.
    pub fn snapshot(&mut self, action: &str, index: u64, term: u64, to: Option<u64>) {
        if !self.is_on() {
            return;
        }
        self.begin_real(self.lamport + 1, "snapshot");
        let _ = write!(
            self.buf,
            ",\"action\":\"{action}\",\"index\":{index},\"term\":{term},\"to\":{}",
            Opt(to)
        );
        self.end();
    }

    /// `compact`: entries up to `index` were dropped from the log.
    pub fn compact(&mut self, index: u64) {
        if !self.is_on() {
            return;
        }
        self.begin(self.lamport + 1, "compact");
        let _ = write!(self.buf, ",\"index\":{index}");
        self.end();
    }

    /// `apply`: an entry applied, with the block it carried.
    pub fn apply(&mut self, index: u64, term: u64, block: Option<(u64, &[u8; 32])>) {
        if !self.is_on() {
            return;
        }
        self.begin(self.lamport + 1, "apply");
        let _ = write!(self.buf, ",\"index\":{index},\"term\":{term},\"block\":");
        match block {
            Some((number, hash)) => {
                let _ = write!(self.buf, "{number},\"hash\":\"{}\"", hex::encode(hash));
            }
            None => self.buf.extend_from_slice(b"null,\"hash\":null"),
        }
        self.end();
    }

    /// `conf`: a configuration change applied.
    pub fn conf(&mut self, index: u64, voters: &[u64], learners: &[u64], change: &str) {
        if !self.is_on() {
            return;
        }
        self.begin_real(self.lamport + 1, "conf");
        let change = serde_json::to_string(change).expect("a string encodes");
        let _ = write!(
            self.buf,
            ",\"index\":{index},\"voters\":{},\"learners\":{},\"change\":{change}",
            Ids(voters),
            Ids(learners),
        );
        self.end();
    }

    /// `digest`: the state machine's digest at applied index `index`.
    pub fn digest(&mut self, index: u64, d: &StateDigest, cause: DigestCause) {
        if !self.is_on() {
            return;
        }
        self.begin_real(self.lamport + 1, "digest");
        let _ = write!(
            self.buf,
            ",\"index\":{index},\"height\":{},\"head\":\"",
            d.height
        );
        if let Some(head) = &d.head {
            let mut hex = [0u8; 64];
            hex::encode_to_slice(head, &mut hex).expect("64 hex digits for 32 bytes");
            self.buf.extend_from_slice(&hex);
        }
        let _ = write!(
            self.buf,
            "\",\"registers\":\"{:016x}\",\"cause\":\"{}\"",
            d.registers,
            cause.name()
        );
        self.end();
    }

    /// Writes the buffered events out (one `write(2)`, no fsync).
    pub fn flush(&mut self) -> Result<(), TraceError> {
        let Some((path, file)) = &mut self.out else {
            return Ok(());
        };
        if self.buf.is_empty() {
            return Ok(());
        }
        let written = file.write_all(&self.buf);
        // Cleared either way: after a failed write the node stops, and a
        // retry would write the part that got out twice.
        self.buf.clear();
        written.map_err(|source| TraceError::Io {
            path: path.clone(),
            source,
        })
    }

    /// Writes out early when the buffer is large (called between events).
    pub fn flush_if_full(&mut self) -> Result<(), TraceError> {
        if self.buf.len() >= BUFFER_BYTES_MAX {
            self.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn heartbeat(from: u64, to: u64) -> Message {
        Message {
            msg_type: MessageType::MsgHeartbeat,
            from,
            to,
            term: 3,
            ..Default::default()
        }
    }

    #[test]
    fn events_are_json_lines_with_increasing_seq_and_lamport() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut t = Trace::open(&path, 2).unwrap();
        t.start(&LogState::default(), (0, 0), 0, &[1, 2, 3], &[]);
        t.persist(
            &LogState {
                term: 1,
                last_index: 2,
                ..LogState::default()
            },
            &[(1, 1), (2, 1)],
            Some(1),
            1234,
        );
        let stamp = t.send(&heartbeat(2, 1));
        t.recv(&heartbeat(1, 2), 10);
        t.apply(2, 1, Some((1, &[0xab; 32])));
        t.apply(3, 1, None);
        t.role("leader", 3, 2, Some(Reason::Vote));
        t.conf(4, &[1, 2], &[3], "add \"3\"");
        t.flush().unwrap();
        let v = lines(&path);
        assert_eq!(v.len(), 8);
        assert_eq!(stamp, 3);
        for (i, e) in v.iter().enumerate() {
            assert_eq!(e["seq"], i as u64);
            assert_eq!(e["node"], 2);
        }
        assert_eq!(v[1]["appended"], serde_json::json!([[1, 1], [2, 1]]));
        assert_eq!(v[1]["truncated_from"], 1);
        assert_eq!(v[2]["msg_type"], "MsgHeartbeat");
        assert_eq!(v[3]["lamport"], 11, "recv takes max(own, stamp) + 1");
        assert_eq!(v[3]["send_lamport"], 10);
        assert_eq!(v[4]["hash"], "ab".repeat(32));
        assert_eq!(v[5]["block"], Value::Null);
        assert_eq!(v[6]["reason"], "vote");
        assert_eq!(v[7]["change"], "add \"3\"");
    }

    /// The additions of issues 27 and 28 (docs/trace.md): `real_ms` on the
    /// events that carry it and only those, `duration_us`, `applied` and
    /// `pid`, and the `digest` event's fields.
    #[test]
    fn real_ms_duration_applied_pid_and_digest_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut t = Trace::open(&path, 1).unwrap();
        let before = real_unix_ms();
        t.start(&LogState::default(), (40, 2), 40, &[1], &[]);
        t.persist(&LogState::default(), &[], None, 77);
        t.role("follower", 2, 0, None);
        t.snapshot("taken", 48, 2, None);
        t.conf(49, &[1], &[], "add 2");
        let d = StateDigest {
            height: 9,
            head: Some([0x0f; 32]),
            registers: 0xab,
        };
        t.digest(48, &d, DigestCause::SnapshotTaken);
        let empty = StateDigest {
            height: 0,
            head: None,
            registers: u64::MAX,
        };
        t.digest(0, &empty, DigestCause::Start);
        t.send(&heartbeat(1, 2));
        t.apply(50, 2, None);
        t.compact(44);
        t.flush().unwrap();
        let after = real_unix_ms();
        let v = lines(&path);
        for e in &v[..7] {
            let real = e["real_ms"].as_u64().unwrap_or_else(|| panic!("{e}"));
            assert!(before <= real && real <= after, "{e}");
        }
        for e in &v[7..] {
            assert!(e.get("real_ms").is_none(), "{e}");
        }
        assert_eq!(v[0]["applied"], 40);
        assert_eq!(v[0]["pid"], std::process::id());
        assert_eq!(v[1]["duration_us"], 77);
        let expect = serde_json::json!({"index": 48, "height": 9, "head": "0f".repeat(32),
            "registers": "00000000000000ab", "cause": "snapshot_taken"});
        for (field, value) in expect.as_object().unwrap() {
            assert_eq!(&v[5][field], value, "{field}");
        }
        assert_eq!(v[6]["head"], "");
        assert_eq!(v[6]["registers"], "ffffffffffffffff");
        assert_eq!(v[6]["cause"], "start");
    }

    #[test]
    fn a_partial_last_line_is_cut_and_seq_and_lamport_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut t = Trace::open(&path, 1).unwrap();
        t.start(&LogState::default(), (0, 0), 0, &[1], &[]);
        t.recv(&heartbeat(2, 1), 41);
        t.flush().unwrap();
        drop(t);
        let whole = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"node\":1,\"seq\":2,\"lam").unwrap();
        drop(f);
        let mut t = Trace::open(&path, 1).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        t.start(&LogState::default(), (0, 0), 0, &[1], &[]);
        t.flush().unwrap();
        drop(t);
        let mut t = Trace::open(&path, 1).unwrap();
        t.start(&LogState::default(), (0, 0), 0, &[1], &[]);
        t.flush().unwrap();
        let v = lines(&path);
        assert_eq!(v.len(), 4);
        assert_eq!(v[0]["trace_cut"], false, "a new file cut nothing");
        assert_eq!(v[2]["seq"], 2);
        assert_eq!(v[2]["lamport"], 43);
        assert_eq!(v[2]["trace_cut"], true, "the start after the cut says so");
        assert_eq!(v[3]["trace_cut"], false, "a clean restart cut nothing");
    }

    #[test]
    fn a_file_of_one_partial_line_starts_over_and_a_foreign_tail_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, b"{\"node\":1,\"se").unwrap();
        let t = Trace::open(&path, 1).unwrap();
        assert_eq!((t.seq, t.lamport), (0, 0));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        std::fs::write(&path, b"{\"node\":3,\"seq\":4,\"lamport\":9}\n").unwrap();
        let err = Trace::open(&path, 1).unwrap_err().to_string();
        assert!(err.contains("t.jsonl") && err.contains("node 3"), "{err}");
        std::fs::write(&path, b"{\"node\":1,\"seq\":4,\"lamport\":9}\nnot json\n").unwrap();
        let err = Trace::open(&path, 1).unwrap_err().to_string();
        assert!(
            err.contains("offset 31") && err.contains("not JSON"),
            "{err}"
        );
    }

    #[test]
    fn off_writes_nothing() {
        let mut t = Trace::off();
        t.start(&LogState::default(), (0, 0), 0, &[1], &[]);
        assert_eq!(t.send(&heartbeat(1, 2)), 0);
        assert!(t.buf.is_empty());
        t.flush().unwrap();
    }
}
