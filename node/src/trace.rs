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
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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
///
/// The file, the buffer and the clocks sit behind a lock shared with
/// [`CrashSink`], so that a crash point fired on any thread writes its
/// event after the raft loop's buffered ones, in `seq` order, and flushes
/// them all (the raft loop is its only other user: the lock is
/// uncontended but for that moment).
#[derive(Debug)]
pub struct Trace {
    out: Option<Arc<Mutex<Writer>>>,
    /// Whether `open` cut a partial last line (reported by `start`).
    cut: bool,
}

/// The open file, its buffer of events not yet written, and the clocks.
#[derive(Debug)]
struct Writer {
    path: PathBuf,
    file: File,
    node: u64,
    seq: u64,
    lamport: u64,
    buf: Vec<u8>,
}

/// Writes the `crash_point` event from any thread (`crash_points.rs`).
#[derive(Debug, Clone)]
pub struct CrashSink(Arc<Mutex<Writer>>);

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
        let writer = Writer {
            path: path.to_path_buf(),
            file,
            node,
            seq,
            lamport,
            buf: Vec::with_capacity(BUFFER_BYTES_MAX),
        };
        Ok(Trace {
            out: Some(Arc::new(Mutex::new(writer))),
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

    /// The Lamport clock now (0 when off).
    pub fn lamport(&self) -> u64 {
        self.writer().map_or(0, |w| w.lamport)
    }

    /// The writer, locked; `None` when the trace is off. A thread that
    /// panicked holding it left whole events or a partial one the next
    /// start cuts: the lock's poison is ignored.
    fn writer(&self) -> Option<MutexGuard<'_, Writer>> {
        let out = self.out.as_ref()?;
        Some(out.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The handle crash points write through (`None` when off).
    pub fn crash_sink(&self) -> Option<CrashSink> {
        self.out.clone().map(CrashSink)
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
        let cut = std::mem::take(&mut self.cut);
        let Some(mut w) = self.writer() else {
            return;
        };
        w.begin_real("start");
        w.log_state(s);
        let _ = write!(
            w.buf,
            ",\"snapshot_index\":{},\"snapshot_term\":{},\"applied\":{applied},\"pid\":{},\"voters\":{},\"learners\":{},\"trace_cut\":{}",
            snapshot.0,
            snapshot.1,
            std::process::id(),
            Ids(voters),
            Ids(learners),
            cut
        );
        w.end();
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
        let Some(mut w) = self.writer() else {
            return;
        };
        w.begin_real("persist");
        let _ = write!(w.buf, ",\"duration_us\":{duration_us}");
        w.log_state(s);
        w.buf.extend_from_slice(b",\"appended\":[");
        for (i, (index, term)) in appended.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let _ = write!(w.buf, "{comma}[{index},{term}]");
        }
        let _ = write!(w.buf, "],\"truncated_from\":{}", Opt(truncated_from));
        w.end();
    }

    /// `role`: the node's role or known leader changed.
    pub fn role(&mut self, role: &str, term: u64, leader: u64, reason: Option<Reason>) {
        let Some(mut w) = self.writer() else {
            return;
        };
        w.begin_real("role");
        let _ = write!(
            w.buf,
            ",\"role\":\"{role}\",\"term\":{term},\"leader\":{leader},\"reason\":"
        );
        match reason {
            Some(r) => {
                let _ = write!(w.buf, "\"{}\"", r.name());
            }
            None => w.buf.extend_from_slice(b"null"),
        }
        w.end();
    }

    /// `send`: returns the Lamport stamp the message carries.
    pub fn send(&mut self, m: &Message) -> u64 {
        let Some(mut w) = self.writer() else {
            return 0;
        };
        w.begin("send");
        w.message(m);
        w.lamport
    }

    /// `recv`: the raft loop is about to step `m`, stamped `stamp` by its
    /// sender.
    pub fn recv(&mut self, m: &Message, stamp: u64) {
        let Some(mut w) = self.writer() else {
            return;
        };
        let lamport = w.lamport.max(stamp) + 1;
        w.begin_at(lamport, "recv");
        let _ = write!(w.buf, ",\"send_lamport\":{stamp}");
        w.message(m);
    }

    /// `snapshot`: `action` is `taken`, `sent` or `installed`.
    pub fn snapshot(&mut self, action: &str, index: u64, term: u64, to: Option<u64>) {
        let Some(mut w) = self.writer() else {
            return;
        };
        w.begin_real("snapshot");
        let _ = write!(
            w.buf,
            ",\"action\":\"{action}\",\"index\":{index},\"term\":{term},\"to\":{}",
            Opt(to)
        );
        w.end();
    }

    /// `compact`: entries up to `index` were dropped from the log.
    pub fn compact(&mut self, index: u64) {
        let Some(mut w) = self.writer() else {
            return;
        };
        w.begin("compact");
        let _ = write!(w.buf, ",\"index\":{index}");
        w.end();
    }

    /// `apply`: an entry applied, with the block it carried.
    pub fn apply(&mut self, index: u64, term: u64, block: Option<(u64, &[u8; 32])>) {
        let Some(mut w) = self.writer() else {
            return;
        };
        w.begin("apply");
        let _ = write!(w.buf, ",\"index\":{index},\"term\":{term},\"block\":");
        match block {
            Some((number, hash)) => {
                let _ = write!(w.buf, "{number},\"hash\":\"{}\"", hex::encode(hash));
            }
            None => w.buf.extend_from_slice(b"null,\"hash\":null"),
        }
        w.end();
    }

    /// `conf`: a configuration change applied.
    pub fn conf(&mut self, index: u64, voters: &[u64], learners: &[u64], change: &str) {
        let Some(mut w) = self.writer() else {
            return;
        };
        w.begin_real("conf");
        let change = serde_json::to_string(change).expect("a string encodes");
        let _ = write!(
            w.buf,
            ",\"index\":{index},\"voters\":{},\"learners\":{},\"change\":{change}",
            Ids(voters),
            Ids(learners),
        );
        w.end();
    }

    /// `digest`: the state machine's digest at applied index `index`.
    pub fn digest(&mut self, index: u64, d: &StateDigest, cause: DigestCause) {
        let Some(mut w) = self.writer() else {
            return;
        };
        w.begin_real("digest");
        let _ = write!(
            w.buf,
            ",\"index\":{index},\"height\":{},\"head\":\"",
            d.height
        );
        if let Some(head) = &d.head {
            let mut hex = [0u8; 64];
            hex::encode_to_slice(head, &mut hex).expect("64 hex digits for 32 bytes");
            w.buf.extend_from_slice(&hex);
        }
        let _ = write!(
            w.buf,
            "\",\"registers\":\"{:016x}\",\"cause\":\"{}\"",
            d.registers,
            cause.name()
        );
        w.end();
    }

    /// Writes the buffered events out (one `write(2)`, no fsync).
    pub fn flush(&mut self) -> Result<(), TraceError> {
        match self.writer() {
            Some(mut w) => w.flush(),
            None => Ok(()),
        }
    }

    /// Writes out early when the buffer is large (called between events).
    pub fn flush_if_full(&mut self) -> Result<(), TraceError> {
        match self.writer() {
            Some(mut w) if w.buf.len() >= BUFFER_BYTES_MAX => w.flush(),
            _ => Ok(()),
        }
    }
}

impl Writer {
    /// Starts an event line with the common fields, the clock one on.
    fn begin(&mut self, ev: &str) {
        self.begin_at(self.lamport + 1, ev);
    }

    /// Starts an event line with the common fields; `lamport` is the
    /// clock's new value.
    fn begin_at(&mut self, lamport: u64, ev: &str) {
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

    /// [`Writer::begin`] and the real clock (`real_ms`).
    fn begin_real(&mut self, ev: &str) {
        self.begin(ev);
        let _ = write!(self.buf, ",\"real_ms\":{}", real_unix_ms());
    }

    fn end(&mut self) {
        self.buf.extend_from_slice(b"}\n");
    }

    fn log_state(&mut self, s: &LogState) {
        let _ = write!(
            self.buf,
            ",\"term\":{},\"vote\":{},\"commit\":{},\"first_index\":{},\"last_index\":{},\"last_term\":{}",
            s.term, s.vote, s.commit, s.first_index, s.last_index, s.last_term
        );
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

    fn flush(&mut self) -> Result<(), TraceError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let written = self.file.write_all(&self.buf);
        // Cleared either way: after a failed write the node stops, and a
        // retry would write the part that got out twice.
        self.buf.clear();
        written.map_err(|source| TraceError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

impl CrashSink {
    /// `crash_point`: appends the event after every buffered one and
    /// writes them all out. With `hold`, the lock is kept for good, so
    /// that nothing is written after it before the process dies (an
    /// abort); the thread must then not write to the trace again.
    pub fn crash_point(&self, f: &CrashPointFired<'_>, hold: bool) -> Result<(), TraceError> {
        let mut w = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        w.begin_real("crash_point");
        let thread = serde_json::to_string(f.thread).expect("a string encodes");
        let _ = write!(
            w.buf,
            ",\"name\":\"{}\",\"action\":\"{}\",\"sleep_ms\":{},\"hit\":{},\"reached\":{},\"thread\":{thread}",
            f.name,
            f.action,
            Opt(f.sleep_ms),
            f.hit,
            f.reached
        );
        w.end();
        let written = w.flush();
        if hold {
            std::mem::forget(w);
        }
        written
    }
}

/// What the `crash_point` event says (docs/trace.md).
#[derive(Debug, Clone, Copy)]
pub struct CrashPointFired<'a> {
    /// The point's name (from the catalogue: nothing to escape).
    pub name: &'a str,
    /// `abort`, `panic` or `sleep`.
    pub action: &'a str,
    /// The sleep's length, for `sleep`.
    pub sleep_ms: Option<u64>,
    /// The hit after arming it fired on.
    pub hit: u64,
    /// Hits since the process started.
    pub reached: u64,
    /// The thread that reached it.
    pub thread: &'a str,
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
        assert_eq!(t.writer().map(|w| (w.seq, w.lamport)), Some((0, 0)));
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

    /// A crash point fired on another thread writes its event after the
    /// raft loop's buffered ones, flushing them, in `seq` and `lamport`
    /// order; with `hold` (an abort) nothing can be written after it.
    #[test]
    fn a_crash_point_follows_the_buffered_events_from_any_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut t = Trace::open(&path, 3).unwrap();
        t.start(&LogState::default(), (0, 0), 0, &[3], &[]);
        t.apply(1, 1, None);
        let sink = t.crash_sink().unwrap();
        let fired = CrashPointFired {
            name: "blockstore.append.after-sync",
            action: "sleep",
            sleep_ms: Some(20),
            hit: 2,
            reached: 7,
            thread: "snapshot",
        };
        let other = sink.clone();
        std::thread::spawn(move || other.crash_point(&fired, false).unwrap())
            .join()
            .unwrap();
        let v = lines(&path);
        assert_eq!(v.len(), 3, "the buffered events went out first");
        let expect = serde_json::json!({"seq": 2, "lamport": 3, "ev": "crash_point",
            "name": "blockstore.append.after-sync", "action": "sleep", "sleep_ms": 20,
            "hit": 2, "reached": 7, "thread": "snapshot"});
        for (field, value) in expect.as_object().unwrap() {
            assert_eq!(&v[2][field], value, "{field}");
        }
        assert!(v[2]["real_ms"].as_u64().is_some());
        t.apply(2, 1, None);
        t.flush().unwrap();
        let v = lines(&path);
        assert_eq!(
            (&v[3]["seq"], &v[3]["lamport"]),
            (&serde_json::json!(3), &serde_json::json!(4))
        );
        let abort = CrashPointFired {
            action: "abort",
            sleep_ms: None,
            ..fired
        };
        sink.crash_point(&abort, true).unwrap();
        assert_eq!(lines(&path).last().unwrap()["action"], "abort");
        assert!(sink.0.try_lock().is_err(), "held until the process is gone");
    }

    #[test]
    fn off_writes_nothing() {
        let mut t = Trace::off();
        t.start(&LogState::default(), (0, 0), 0, &[1], &[]);
        assert_eq!(t.send(&heartbeat(1, 2)), 0);
        assert!(t.writer().is_none());
        t.flush().unwrap();
    }
}
