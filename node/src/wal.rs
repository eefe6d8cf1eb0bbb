//! The write-ahead log of raft entries and hard state, and the snapshot
//! file beside it.
//!
//! The log is a sequence of segment files (`segment.rs`: `wal.log`,
//! `wal.log.1`, …) replayed in order; the raft thread appends to the last.
//! After a snapshot, compaction does not rewrite the log (etcd's and
//! Fabric's way): the raft thread moves on to a segment prepared ahead by
//! the `wal-segments` thread, and that thread removes the oldest segments
//! once every entry they hold is covered by the snapshot. A segment is
//! left only right after a sync, so every segment but the one being
//! written holds only fsynced records.
//!
//! The records' format and the torn-tail rule are `record.rs`'s: every
//! record carries a sequence number and a CRC, and every write batch after
//! an fsync begins with a sync marker saying which records that fsync made
//! durable. Recovery replays every record; damage nothing proves fsynced
//! (a later segment, a later marker) is a torn tail of never-fsynced data,
//! cut off with a warning; damage to fsynced records refuses to start,
//! naming the file and offset. Opening syncs what it recovered, and a
//! clean stop ([`Wal::close`]) ends with a marker, so only the last batch
//! before a crash is ever unproven. The directory is fsynced after a log
//! segment or the snapshot file is created or replaced, so the name
//! survives a crash as well as the data.

use crate::crash_points::{self, Point};
use crate::record::{self, End, Record, KIND_ENTRY, KIND_HARD_STATE, KIND_RESET, KIND_SYNCED};
use crate::segment::{self, Pipeline};
use protobuf::Message as PbMessage;
use raft::prelude::{Entry, HardState, Snapshot};
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Room a block's entry takes beyond its transactions' bytes: the batch
/// header and the entry's other protobuf fields, with much to spare. A
/// block holds transactions of at most `--absolute-max-bytes` in all.
const ENTRY_ROOM_BYTES: usize = 1 << 10;
const _: () = assert!(
    crate::tx::TX_BYTES_MAX + ENTRY_ROOM_BYTES + record::HEADER_BYTES <= record::RECORD_BYTES_MAX
);
/// The first log segment's file name in the data directory.
pub const WAL_FILE: &str = segment::FIRST_SEGMENT;
/// The snapshot's file name in the data directory.
pub const SNAPSHOT_FILE: &str = "snapshot.bin";

/// Errors of the log and snapshot files.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// An IO call failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A record before the tail is damaged.
    #[error("{path}: corrupt record at offset {offset}: {problem}; refusing to start: restore this data directory from a copy. Do not delete it and rejoin under the same raft id: that forgets this node's vote and acknowledged entries")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong.
        problem: String,
    },
    /// A file named as a log segment is not in this version's format.
    #[error("{path}: not a log segment this version reads: it does not start with the header of log format 2 ({magic:?}). A log an older ordeal-node wrote (format 1: no header, no sequence numbers) must be read by that version; this one starts only on a data directory it wrote. Nothing was changed")]
    Format {
        /// The file.
        path: PathBuf,
        /// The header expected.
        magic: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What recovery found in the log.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The last hard state written.
    pub hard_state: Option<HardState>,
    /// Entries in index order, later writes replacing earlier ones from
    /// their index on (raft's conflict truncation).
    pub entries: Vec<Entry>,
    /// Offset the segment being written was truncated at, when its tail
    /// was torn.
    pub truncated_at: Option<u64>,
}

/// One segment file of the log.
#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    /// The highest entry index written into it since its last reset
    /// record (0: none); it may be removed once a snapshot covers that.
    index_max: u64,
}

/// The open log, appending.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    /// The segment being written.
    active: Segment,
    writer: BufWriter<File>,
    /// Older segments, in replay order; each holds only fsynced records.
    closed: Vec<Segment>,
    /// Compacted segments the pipeline could not take yet.
    to_remove: Vec<PathBuf>,
    pipeline: Pipeline,
    /// A compaction asked to move on to a new segment at the next sync.
    cut_wanted: bool,
    /// The last hard state written (the first record of a new segment).
    hard_state: Option<HardState>,
    /// Whether the active segment holds a hard state a sync covered: only
    /// then may older segments (and their hard states) go.
    active_hard_state_synced: bool,
    /// A hard state was written since the last sync.
    hard_state_unsynced: bool,
    /// A hard state with a new term or vote was written since the last
    /// sync (the `wal.hard-state.*` crash points).
    term_vote_unsynced: bool,
    /// The commit index of the last hard state written since the last sync.
    unsynced_commit: Option<u64>,
    /// The commit index of the last hard state a sync covered.
    synced_commit: u64,
    /// A reused buffer for encoding entries.
    scratch: Vec<u8>,
    /// The sequence number of the next record written.
    next_seq: u64,
    /// Every record numbered below it was fsynced.
    durable_seq: u64,
    /// An fsync happened since the last record: the next record written
    /// is preceded by a sync marker saying `durable_seq`.
    marker_due: bool,
}

/// Largest encoding buffer kept between appends.
const SCRATCH_KEPT_BYTES: usize = 4 << 20;

/// Applies one entry with raft's rule: it replaces any entry at or after
/// its index.
fn push_entry(entries: &mut Vec<Entry>, e: Entry) {
    while entries.last().is_some_and(|last| last.index >= e.index) {
        entries.pop();
    }
    entries.push(e);
}

/// What replaying one segment found beyond the entries.
#[derive(Debug, Default)]
struct SegmentReplay {
    /// The highest entry index after its last reset record.
    index_max: u64,
    /// Whether it holds a reset record.
    reset: bool,
    /// Whether it holds a hard state.
    hard_state: bool,
}

/// Replaying the segments in order.
#[derive(Debug, Default)]
struct Replay {
    out: Recovered,
    /// The sequence number after the last record read.
    next_seq: Option<u64>,
    /// The last segment holding records.
    last_with_records: Option<PathBuf>,
}

impl Replay {
    /// Replays one segment (`closed`: a later one holds records), cutting
    /// off a torn tail; see `record.rs` for the rule.
    fn segment(&mut self, path: &Path, closed: bool) -> Result<SegmentReplay, WalError> {
        let bytes = fs::read(path).map_err(io(path))?;
        if !bytes.starts_with(record::SEGMENT_MAGIC) {
            return headerless(path, &bytes, closed);
        }
        let scan = record::scan(&bytes, self.next_seq, closed).map_err(|d| WalError::Corrupt {
            path: path.to_path_buf(),
            offset: d.offset,
            problem: d.problem,
        })?;
        let mut found = SegmentReplay::default();
        for r in &scan.records {
            apply_record(path, r, &mut self.out, &mut found)?;
        }
        if let Some(last) = scan.records.last() {
            self.next_seq = Some(last.seq + 1);
            self.last_with_records = Some(path.to_path_buf());
        }
        if let End::Torn { offset, problem } = scan.end {
            truncate_torn(path, bytes.len() as u64, offset as u64, &problem)?;
            self.out.truncated_at = Some(offset as u64);
        }
        Ok(found)
    }
}

/// A segment without the format's header: empty, or its header cut off
/// (created by a crash's victim before the header was fsynced) — then the
/// header is written again — or an older node's log, refused by name.
fn headerless(path: &Path, bytes: &[u8], closed: bool) -> Result<SegmentReplay, WalError> {
    let cut_off =
        bytes.len() < record::SEGMENT_MAGIC.len() && record::SEGMENT_MAGIC.starts_with(bytes);
    if !cut_off {
        return Err(WalError::Format {
            path: path.to_path_buf(),
            magic: String::from_utf8_lossy(record::SEGMENT_MAGIC).into_owned(),
        });
    }
    if closed {
        return Err(WalError::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            problem: "its header is cut off, yet a later segment holds records".into(),
        });
    }
    segment::write_header(path).map_err(io(path))?;
    Ok(SegmentReplay::default())
}

impl Wal {
    /// Opens (or creates) the log in `dir`, replaying what it holds.
    pub fn open(dir: &Path) -> Result<(Wal, Recovered), WalError> {
        crate::dirs::create_synced(dir).map_err(io(dir))?;
        let mut found = segment::list(dir).map_err(io(dir))?;
        if found.is_empty() {
            let first = segment::prepare(dir, 0).map_err(io(dir))?;
            found.push((0, first.path));
        }
        let mut replay = Replay::default();
        let mut segments: Vec<Segment> = Vec::with_capacity(found.len());
        let mut active_hard_state = false;
        for (i, (seq, path)) in found.iter().enumerate() {
            let closed = found[i + 1..]
                .iter()
                .any(|(_, p)| segment::holds_records(p));
            let replayed = replay.segment(path, closed)?;
            if replayed.reset {
                segments.iter_mut().for_each(|s| s.index_max = 0);
            }
            active_hard_state = replayed.hard_state;
            segments.push(Segment {
                seq: *seq,
                path: path.clone(),
                index_max: replayed.index_max,
            });
        }
        let active = segments.pop().expect("at least one segment");
        let file = open_synced(&active.path, replay.last_with_records.as_deref())?;
        let mut pipeline = Pipeline::start(dir.to_path_buf()).map_err(io(dir))?;
        pipeline.prepare(active.seq + 1);
        let recovered = replay.out;
        let next_seq = replay.next_seq.unwrap_or(0);
        let wal = Wal {
            dir: dir.to_path_buf(),
            active,
            writer: BufWriter::with_capacity(1 << 20, file),
            closed: segments,
            to_remove: Vec::new(),
            pipeline,
            cut_wanted: false,
            hard_state: recovered.hard_state.clone(),
            active_hard_state_synced: active_hard_state,
            hard_state_unsynced: false,
            term_vote_unsynced: false,
            unsynced_commit: None,
            synced_commit: recovered.hard_state.as_ref().map_or(0, |hs| hs.commit),
            scratch: Vec::new(),
            next_seq,
            durable_seq: next_seq,
            marker_due: true,
        };
        Ok((wal, recovered))
    }

    /// Buffers a record, after a sync marker when an fsync came before it.
    fn write_record(&mut self, kind: u8, body: &[u8]) -> Result<(), WalError> {
        if std::mem::take(&mut self.marker_due) {
            self.put(KIND_SYNCED, &record::synced_body(self.durable_seq))?;
        }
        self.put(kind, body)
    }

    fn put(&mut self, kind: u8, body: &[u8]) -> Result<(), WalError> {
        // Header and body straight into the buffer: no record copy.
        self.writer
            .write_all(&record::header(kind, self.next_seq, body))
            .and_then(|()| self.writer.write_all(body))
            .map_err(io(&self.active.path))?;
        self.next_seq += 1;
        Ok(())
    }

    /// Buffers entries (call [`Wal::sync`] before depending on them).
    pub fn append_entries(&mut self, entries: &[Entry]) -> Result<(), WalError> {
        let mut body = std::mem::take(&mut self.scratch);
        for e in entries {
            body.clear();
            e.write_to_vec(&mut body).expect("an entry always encodes");
            self.write_record(KIND_ENTRY, &body)?;
            self.active.index_max = self.active.index_max.max(e.index);
        }
        // Kept for the next entries, unless a large one made it huge.
        if body.capacity() <= SCRATCH_KEPT_BYTES {
            self.scratch = body;
        }
        Ok(())
    }

    /// Buffers a hard state.
    pub fn set_hard_state(&mut self, hs: &HardState) -> Result<(), WalError> {
        let body = hs.write_to_bytes().expect("a hard state always encodes");
        self.write_record(KIND_HARD_STATE, &body)?;
        let term_vote = |h: &HardState| (h.term, h.vote);
        if self.hard_state.as_ref().map(term_vote) != Some(term_vote(hs)) {
            self.term_vote_unsynced = true;
        }
        self.hard_state = Some(hs.clone());
        self.hard_state_unsynced = true;
        self.unsynced_commit = Some(hs.commit);
        Ok(())
    }

    /// Writes the buffer out and, when `fsync`, waits for the disk; then,
    /// when a compaction asked for it and the next segment is ready,
    /// moves on to it.
    /// (`fsync` false is the no-fsync bug: the node then believes, and
    /// reports, that the buffer is durable.)
    pub fn sync(&mut self, fsync: bool) -> Result<(), WalError> {
        self.sync_active(fsync)?;
        // Only after a real fsync: a segment left must hold only durable
        // records (with the no-fsync bug the log stays in one segment, and
        // a power loss tears its tail as it did before segments).
        if self.cut_wanted && fsync {
            self.cut()?;
        }
        Ok(())
    }

    fn sync_active(&mut self, fsync: bool) -> Result<(), WalError> {
        self.writer.flush().map_err(io(&self.active.path))?;
        let term_vote = std::mem::take(&mut self.term_vote_unsynced);
        if fsync {
            crash_points::at(Point::WalAppendBeforeFsync);
            if term_vote {
                crash_points::at(Point::WalHardStateBeforeFsync);
            }
            self.writer
                .get_ref()
                .sync_data()
                .map_err(io(&self.active.path))?;
            self.durable_seq = self.next_seq;
            self.marker_due = true;
            crash_points::at(Point::WalAppendAfterFsync);
            if term_vote {
                crash_points::at(Point::WalHardStateAfterFsync);
            }
        }
        if std::mem::take(&mut self.hard_state_unsynced) {
            self.active_hard_state_synced = true;
        }
        if let Some(commit) = self.unsynced_commit.take() {
            self.synced_commit = commit;
        }
        Ok(())
    }

    /// Moves on to the prepared segment, if it is ready (called right
    /// after a sync: the segment left holds only fsynced records). Its
    /// first record is the last hard state.
    fn cut(&mut self) -> Result<(), WalError> {
        let prepared = match self.pipeline.take() {
            None => return Ok(()),
            Some(p) => p.map_err(io(&self.dir))?,
        };
        crash_points::at(Point::WalSegmentBeforeSwitch);
        let next = Segment {
            seq: prepared.seq,
            path: prepared.path,
            index_max: 0,
        };
        self.writer = BufWriter::with_capacity(1 << 20, prepared.file);
        self.closed.push(std::mem::replace(&mut self.active, next));
        self.pipeline.prepare(self.active.seq + 1);
        self.cut_wanted = false;
        self.active_hard_state_synced = false;
        if let Some(hs) = self.hard_state.clone() {
            let body = hs.write_to_bytes().expect("a hard state always encodes");
            self.write_record(KIND_HARD_STATE, &body)?;
            self.hard_state_unsynced = true;
        }
        crash_points::at(Point::WalSegmentAfterSwitch);
        Ok(())
    }

    /// A clean stop: syncs what was written, then writes a sync marker
    /// saying so and syncs it, so that the next start can prove the last
    /// batch fsynced (after a crash nothing can: `record.rs`, residual).
    pub fn close(&mut self) -> Result<(), WalError> {
        self.sync_active(true)?;
        self.marker_due = false;
        self.put(KIND_SYNCED, &record::synced_body(self.durable_seq))?;
        self.sync_active(true)
    }

    /// The commit index of the last hard state a sync (or a rewrite)
    /// covered: what a restart would recover, unlike one only written.
    pub fn synced_commit(&self) -> u64 {
        self.synced_commit
    }

    /// Compaction after a snapshot at `snapshot_index` was put in place:
    /// the next sync moves on to a new segment, and the oldest segments
    /// holding only entries the snapshot covers are handed to the
    /// `wal-segments` thread to remove. Nothing is rewritten or fsynced
    /// here. Call only once the snapshot file is durable.
    pub fn compact(&mut self, snapshot_index: u64) {
        self.cut_wanted = true;
        if self.active_hard_state_synced {
            // A prefix only: a later segment's records override earlier
            // ones, so removing one from the middle could bring back
            // entries it had truncated.
            let covered = self
                .closed
                .iter()
                .take_while(|s| s.index_max <= snapshot_index)
                .count();
            self.to_remove
                .extend(self.closed.drain(..covered).map(|s| s.path));
        }
        self.hand_over_removals();
    }

    fn hand_over_removals(&mut self) {
        if !self.to_remove.is_empty() && self.pipeline.remove(self.to_remove.clone()) {
            self.to_remove.clear();
        }
    }

    /// Replaces the log with `hs` and `entries` (after installing a
    /// snapshot): a reset record, the entries and the hard state are
    /// appended and synced, so every earlier record is dropped on replay;
    /// the older segments are then removed.
    pub fn rewrite(&mut self, hs: &HardState, entries: &[Entry]) -> Result<(), WalError> {
        self.write_record(KIND_RESET, &[])?;
        self.active.index_max = 0;
        self.append_entries(entries)?;
        self.set_hard_state(hs)?;
        self.sync_active(true)?;
        self.to_remove.extend(self.closed.drain(..).map(|s| s.path));
        self.hand_over_removals();
        self.cut_wanted = true;
        Ok(())
    }

    /// The log's segment files, in replay order (for tests and tools).
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.closed.iter().map(|s| s.path.clone()).collect();
        out.push(self.active.path.clone());
        out
    }
}

/// Opens the segment to write for appending, its header written when it
/// has none yet, and fsyncs it and `last_with_records`: records a killed
/// process wrote sit in the page cache unsynced, and the first batch's
/// sync marker says that everything before it is durable.
fn open_synced(path: &Path, last_with_records: Option<&Path>) -> Result<File, WalError> {
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(io(path))?;
    if file.metadata().map_err(io(path))?.len() == 0 {
        file.write_all(record::SEGMENT_MAGIC).map_err(io(path))?;
    }
    file.seek(SeekFrom::End(0)).map_err(io(path))?;
    file.sync_data().map_err(io(path))?;
    if let Some(other) = last_with_records.filter(|&p| p != path) {
        File::open(other)
            .and_then(|f| f.sync_data())
            .map_err(io(other))?;
    }
    Ok(file)
}

fn truncate_torn(path: &Path, len: u64, offset: u64, problem: &str) -> Result<(), WalError> {
    tracing::warn!(file = %path.display(), offset, dropped_bytes = len - offset, %problem, "torn tail in write-ahead log (never fsynced: no later sync marker or segment), truncating");
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(path))?;
    file.set_len(offset).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

fn apply_record(
    path: &Path,
    r: &Record<'_>,
    out: &mut Recovered,
    found: &mut SegmentReplay,
) -> Result<(), WalError> {
    let corrupt = |problem: String| WalError::Corrupt {
        path: path.to_path_buf(),
        offset: r.offset as u64,
        problem,
    };
    match r.kind {
        KIND_ENTRY => {
            let e = Entry::parse_from_bytes(r.body)
                .map_err(|e| corrupt(format!("undecodable entry: {e}")))?;
            found.index_max = found.index_max.max(e.index);
            push_entry(&mut out.entries, e);
        }
        KIND_HARD_STATE => {
            let hs = HardState::parse_from_bytes(r.body)
                .map_err(|e| corrupt(format!("undecodable hard state: {e}")))?;
            out.hard_state = Some(hs);
            found.hard_state = true;
        }
        KIND_RESET if r.body.is_empty() => {
            out.entries.clear();
            found.index_max = 0;
            found.reset = true;
        }
        KIND_SYNCED => {}
        other => {
            return Err(corrupt(format!(
                "a record of kind {other} with {} bytes",
                r.body.len()
            )))
        }
    }
    Ok(())
}

/// Writes a snapshot atomically: `crc32 | protobuf Snapshot`.
pub fn save_snapshot(dir: &Path, snapshot: &Snapshot) -> Result<(), WalError> {
    let tmp = write_snapshot_file(dir, snapshot, "tmp", 0.0)?;
    publish(dir, &tmp, None)
}

/// Bytes of a snapshot written between two syncs: a whole ledger written
/// then synced at once makes every log fsync meanwhile wait behind it (on
/// ext4, a journal commit flushes the ordered data of other files too).
const SNAPSHOT_SYNC_CHUNK_BYTES: usize = 1 << 20;

/// After each chunk the snapshotter's thread rests this many times as
/// long as the chunk's write and sync took, leaving the disk to the log's
/// fsyncs in between (every node snapshots at about the same index, so three
/// snapshots reach a shared disk at once). A snapshot only has to be in
/// place before the next one is due. Measured (`ordeal-node bench
/// --rounds 3 --compare-exe OLD --snapshot-interval-bytes 8000000`, three
/// snapshots in each half-load phase, two such runs): half-load p99 median
/// 46.7 ms against 74.8 ms for 4 MiB chunks without rest, lower in all six
/// pairs.
pub const SNAPSHOT_PACE: f64 = 1.0;

/// Writes and fsyncs a snapshot beside the real one, as
/// `snapshot.bin.<suffix>`, for [`publish_snapshot`] to put in place; in
/// chunks of [`SNAPSHOT_SYNC_CHUNK_BYTES`], each synced and followed by a
/// rest of `rest` times its duration ([`SNAPSHOT_PACE`] off the raft
/// thread; 0 where the raft thread itself waits).
pub fn write_snapshot_file(
    dir: &Path,
    snapshot: &Snapshot,
    suffix: &str,
    rest: f64,
) -> Result<PathBuf, WalError> {
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.{suffix}"));
    let body = snapshot
        .write_to_bytes()
        .expect("a snapshot always encodes");
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&crc32fast::hash(&body).to_le_bytes())
        .map_err(io(&tmp))?;
    for chunk in body.chunks(SNAPSHOT_SYNC_CHUNK_BYTES) {
        let started = std::time::Instant::now();
        f.write_all(chunk)
            .and_then(|()| f.sync_data())
            .map_err(io(&tmp))?;
        if rest > 0.0 {
            std::thread::sleep(started.elapsed().mul_f64(rest));
        }
    }
    f.sync_all().map_err(io(&tmp))?;
    Ok(tmp)
}

/// Renames a snapshot this node took (written by
/// [`write_snapshot_file`]) over the real one and fsyncs the directory,
/// with the `snapshot.take.*` crash points around both.
pub fn publish_snapshot(dir: &Path, written: &Path) -> Result<(), WalError> {
    let points = [
        Point::SnapshotTakeBeforeRename,
        Point::SnapshotTakeBeforeDirFsync,
        Point::SnapshotTakeAfterDirFsync,
    ];
    publish(dir, written, Some(points))
}

/// Renames `written` over the snapshot file and fsyncs the directory,
/// reaching `points` (before the rename, between, after) when given.
fn publish(dir: &Path, written: &Path, points: Option<[Point; 3]>) -> Result<(), WalError> {
    let at = |i: usize| {
        if let Some(p) = points {
            crash_points::at(p[i]);
        }
    };
    let path = dir.join(SNAPSHOT_FILE);
    at(0);
    fs::rename(written, &path).map_err(io(&path))?;
    at(1);
    crate::dirs::sync_dir(dir).map_err(io(dir))?;
    at(2);
    Ok(())
}

/// Reads the snapshot, if one was saved. A damaged snapshot is an error:
/// the log before it was compacted away, so nothing can replace it.
pub fn load_snapshot(dir: &Path) -> Result<Option<Snapshot>, WalError> {
    let path = dir.join(SNAPSHOT_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(WalError::Io { path, source: e }),
    };
    let corrupt = |problem: &str| WalError::Corrupt {
        path: path.clone(),
        offset: 0,
        problem: problem.to_string(),
    };
    if bytes.len() < 4 {
        return Err(corrupt("shorter than its checksum"));
    }
    let crc = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    if crc32fast::hash(&bytes[4..]) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    Snapshot::parse_from_bytes(&bytes[4..])
        .map(Some)
        .map_err(|e| corrupt(&format!("undecodable: {e}")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::tests::garbage;

    /// An entry whose data names its index and term.
    pub(crate) fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: format!("data-{index}-{term}").into_bytes().into(),
            ..Default::default()
        }
    }

    fn hs(term: u64, vote: u64, commit: u64) -> HardState {
        HardState {
            term,
            vote,
            commit,
            ..Default::default()
        }
    }

    fn frame(kind: u8, seq: u64, body: &[u8]) -> Vec<u8> {
        let mut out = record::header(kind, seq, body).to_vec();
        out.extend_from_slice(body);
        out
    }

    /// The whole records of a segment file: (offset, kind).
    fn records_of(path: &Path) -> Vec<(usize, u8)> {
        let bytes = fs::read(path).unwrap();
        let scan = record::scan(&bytes, None, false).unwrap();
        scan.records.iter().map(|r| (r.offset, r.kind)).collect()
    }

    /// Where the `n`-th entry record (0-based) of a segment file starts.
    fn entry_offset(path: &Path, n: usize) -> usize {
        let entries = records_of(path).into_iter().filter(|r| r.1 == KIND_ENTRY);
        entries.map(|r| r.0).nth(n).expect("so many entries")
    }

    fn indexes(r: &Recovered) -> Vec<u64> {
        r.entries.iter().map(|e| e.index).collect()
    }

    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `f`, returning what it logged too.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let out = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
        (out, text)
    }

    /// Opens the log once and writes `batches` into its segment, each with
    /// a hard state and an fsync — the last one only flushed when
    /// `last_synced` is false; returns the segment.
    fn write_batches(dir: &Path, batches: &[&[Entry]], last_synced: bool) -> PathBuf {
        let (mut wal, _) = Wal::open(dir).unwrap();
        for (i, batch) in batches.iter().enumerate() {
            wal.append_entries(batch).unwrap();
            let commit = batch.last().map_or(0, |e| e.index);
            wal.set_hard_state(&hs(1, 1, commit)).unwrap();
            wal.sync(last_synced || i + 1 < batches.len()).unwrap();
        }
        wal.segment_paths().pop().unwrap()
    }

    fn write(dir: &Path, entries: &[Entry], h: &HardState) {
        let (mut wal, _) = Wal::open(dir).unwrap();
        wal.append_entries(entries).unwrap();
        wal.set_hard_state(h).unwrap();
        wal.sync(true).unwrap();
    }

    /// A commit index only written (raft's light ready) is not reported
    /// durable until a sync covers it; a rewrite is synced; a reopen
    /// starts from what the file holds.
    #[test]
    fn the_synced_commit_moves_only_with_a_sync() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[entry(1, 1), entry(2, 1)], &hs(1, 1, 1));
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        assert_eq!(wal.synced_commit(), 1);
        wal.set_hard_state(&hs(1, 1, 2)).unwrap();
        assert_eq!(wal.synced_commit(), 1, "written, not synced");
        wal.append_entries(&[entry(3, 1)]).unwrap();
        wal.sync(true).unwrap();
        assert_eq!(wal.synced_commit(), 2);
        wal.sync(true).unwrap();
        assert_eq!(wal.synced_commit(), 2, "a sync with no hard state keeps it");
        wal.set_hard_state(&hs(1, 1, 3)).unwrap();
        wal.rewrite(&hs(1, 1, 3), &[entry(3, 1)]).unwrap();
        assert_eq!(wal.synced_commit(), 3);
        let first = wal.dir.join(crate::segment::FIRST_SEGMENT);
        drop(wal);
        // The removal the rewrite handed over is done once the log is
        // dropped: opening it again never races with it (CI saw the
        // reopen fail with the segment vanishing under its replay).
        assert!(!first.exists(), "{} still there", first.display());
        let (wal, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(wal.synced_commit(), 3);
        assert_eq!(rec.hard_state.unwrap().commit, 3);
    }

    /// Syncs until the log moved on to a new segment (the pipeline
    /// prepares it on its own thread); bounded.
    fn sync_until_cut(wal: &mut Wal) {
        let before = wal.segment_paths().len();
        for _ in 0..400 {
            wal.sync(true).unwrap();
            if wal.segment_paths().len() != before {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("no new segment within 2 s");
    }

    /// Waits until the pipeline removed `path`; bounded.
    fn wait_removed(path: &Path) {
        for _ in 0..400 {
            if !path.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("{} not removed within 2 s", path.display());
    }

    /// Compaction never rewrites: it moves on to a new segment and removes
    /// only the oldest segments every entry of which the snapshot covers;
    /// every entry above the snapshot, and the last hard state, survive.
    #[test]
    fn compaction_moves_to_a_new_segment_and_removes_only_covered_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.append_entries(&[entry(1, 1), entry(2, 1), entry(3, 1)])
            .unwrap();
        wal.set_hard_state(&hs(1, 1, 3)).unwrap();
        wal.compact(2);
        sync_until_cut(&mut wal);
        let first = wal.segment_paths()[0].clone();
        assert!(first.ends_with(WAL_FILE));
        wal.append_entries(&[entry(4, 1), entry(5, 1)]).unwrap();
        wal.sync(true).unwrap();
        wal.compact(2);
        assert!(first.exists(), "entry 3 is above the snapshot at 2");
        wal.compact(3);
        wait_removed(&first);
        sync_until_cut(&mut wal);
        wal.append_entries(&[entry(5, 2)]).unwrap();
        wal.set_hard_state(&hs(2, 2, 4)).unwrap();
        wal.sync(true).unwrap();
        assert_eq!(wal.synced_commit(), 4);
        drop(wal);
        let (wal, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(r.entries, vec![entry(4, 1), entry(5, 2)]);
        assert_eq!(r.hard_state, Some(hs(2, 2, 4)));
        assert_eq!(wal.synced_commit(), 4);
        // Segments 1 and 2, and 3 when it was prepared ahead (empty) before
        // the drop: writing goes on in the last one.
        assert!(!first.exists());
        let paths = wal.segment_paths();
        assert!(paths[0].ends_with("wal.log.1") && paths[1].ends_with("wal.log.2"));
        assert!((2..=3).contains(&paths.len()), "{paths:?}");
    }

    /// Only the segment being written may end in a torn record: in a
    /// segment a non-empty one follows, every record was fsynced before
    /// the log moved on, so a cut-off one there is damage.
    #[test]
    fn a_cut_off_record_before_the_last_segment_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.append_entries(&[entry(1, 1)]).unwrap();
        wal.set_hard_state(&hs(1, 1, 1)).unwrap();
        wal.compact(0);
        sync_until_cut(&mut wal);
        wal.sync(true).unwrap();
        drop(wal);
        let first = dir.path().join(WAL_FILE);
        let whole = fs::metadata(&first).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&first).unwrap();
        f.write_all(&frame(KIND_ENTRY, 9, &entry(2, 1).write_to_bytes().unwrap())[..10])
            .unwrap();
        drop(f);
        let err = Wal::open(dir.path()).unwrap_err();
        assert!(
            matches!(&err, WalError::Corrupt { offset, .. } if *offset == whole),
            "{err}"
        );
        assert!(err.to_string().contains("wal.log"), "{err}");
    }

    /// After a snapshot is installed the log starts over: entries before
    /// the reset record, in this segment or older ones (even when their
    /// removal is undone by a crash), are not recovered.
    #[test]
    fn a_rewrite_drops_older_entries_even_if_old_segments_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.append_entries(&[entry(1, 1), entry(2, 1)]).unwrap();
        wal.set_hard_state(&hs(1, 1, 1)).unwrap();
        wal.compact(0);
        sync_until_cut(&mut wal);
        let first = dir.path().join(WAL_FILE);
        let kept = fs::read(&first).unwrap();
        wal.append_entries(&[entry(3, 1), entry(9, 1)]).unwrap();
        wal.rewrite(&hs(3, 2, 7), &[entry(8, 3)]).unwrap();
        wait_removed(&first);
        drop(wal);
        fs::write(&first, kept).unwrap(); // a crash undid the removal
        let (_, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(r.entries, vec![entry(8, 3)]);
        assert_eq!(r.hard_state, Some(hs(3, 2, 7)));
    }

    #[test]
    fn round_trip_with_conflict_truncation() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[entry(1, 1), entry(2, 1), entry(3, 1)],
            &hs(1, 1, 2),
        );
        write(dir.path(), &[entry(3, 2), entry(4, 2)], &hs(2, 2, 3));
        let (_, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(
            r.entries,
            vec![entry(1, 1), entry(2, 1), entry(3, 2), entry(4, 2)]
        );
        assert_eq!(r.hard_state, Some(hs(2, 2, 3)));
        assert_eq!(r.truncated_at, None);
    }

    #[test]
    fn a_torn_tail_is_truncated_and_the_log_stays_usable() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[entry(1, 1), entry(2, 1)], &hs(1, 1, 2));
        let path = dir.path().join(WAL_FILE);
        let full = fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&frame(KIND_ENTRY, 9, &entry(3, 1).write_to_bytes().unwrap())[..10])
            .unwrap();
        drop(f);
        let (mut wal, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(r.truncated_at, Some(full));
        assert_eq!(r.entries.len(), 2);
        assert_eq!(fs::metadata(&path).unwrap().len(), full);
        wal.append_entries(&[entry(3, 1)]).unwrap();
        wal.sync(true).unwrap();
        let (_, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(r.entries.len(), 3);
    }

    /// Issue 20, item 4: a zero-filled tail of never-fsynced data (a
    /// batch written, not fsynced, whose last sectors never reached the
    /// disk, and zeros where the file's size ran ahead of its data) is cut
    /// off with a warning, and the log stays usable. Before, it refused to
    /// start.
    #[test]
    fn a_zero_filled_tail_of_unsynced_data_is_cut_off_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let batches: [&[Entry]; 2] = [&[entry(1, 1), entry(2, 1)], &[entry(3, 1), entry(4, 1)]];
        let path = write_batches(dir.path(), &batches, false);
        // The batch's last record, its hard state, lost its last sectors.
        let last = records_of(&path).last().unwrap().0;
        let mut bytes = fs::read(&path).unwrap();
        let len = bytes.len();
        bytes[len - 10..].fill(0);
        bytes.extend_from_slice(&[0u8; 4096]);
        fs::write(&path, &bytes).unwrap();
        let ((mut wal, r), logs) = logged(|| Wal::open(dir.path()).unwrap());
        assert_eq!(r.truncated_at, Some(last as u64));
        assert_eq!(indexes(&r), [1, 2, 3, 4]);
        assert!(r.hard_state.is_some_and(|h| h.commit == 2));
        assert_eq!(fs::metadata(&path).unwrap().len(), last as u64);
        assert!(
            logs.contains("torn tail") && logs.contains("wal.log"),
            "{logs}"
        );
        wal.append_entries(&[entry(5, 2)]).unwrap();
        wal.sync(true).unwrap();
        drop(wal);
        let (_, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(r.entries.last(), Some(&entry(5, 2)));
        assert_eq!(r.truncated_at, None);
    }

    /// Issue 20, item 4: a random garbage tail is cut off too.
    #[test]
    fn a_garbage_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[entry(1, 1), entry(2, 1)], &hs(1, 1, 2));
        let path = dir.path().join(WAL_FILE);
        let synced = fs::metadata(&path).unwrap().len();
        for seed in 1..=20 {
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(&garbage(64 << 10, seed)).unwrap();
            drop(f);
            let (wal, r) = Wal::open(dir.path()).unwrap();
            assert_eq!(r.truncated_at, Some(synced), "seed {seed}");
            assert_eq!(indexes(&r), [1, 2], "seed {seed}");
            drop(wal);
            // The reopened log wrote its header-less nothing: same length.
            assert_eq!(fs::metadata(&path).unwrap().len(), synced);
        }
    }

    /// A batch not fsynced can reach the disk with a hole: whole records
    /// after sectors that never landed. No sync marker follows the hole,
    /// so nothing proves them fsynced: the log is cut at the hole.
    #[test]
    fn an_unsynced_batch_with_a_hole_is_cut_at_the_hole() {
        let dir = tempfile::tempdir().unwrap();
        let unsynced = [entry(3, 1), entry(4, 1), entry(5, 1)];
        let batches: [&[Entry]; 2] = [&[entry(1, 1), entry(2, 1)], &unsynced];
        let path = write_batches(dir.path(), &batches, false);
        let (third, fourth) = (entry_offset(&path, 2), entry_offset(&path, 3));
        let mut bytes = fs::read(&path).unwrap();
        bytes[third..fourth].fill(0);
        fs::write(&path, &bytes).unwrap();
        let (_, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(r.truncated_at, Some(third as u64));
        assert_eq!(indexes(&r), [1, 2]);
    }

    /// Issue 20, item 4: a flipped byte in the length or the payload of a
    /// fsynced record with fsynced records after it refuses to start,
    /// naming file and offset and the sync marker that proves it was
    /// fsynced. Before, a length running past the end of the file passed
    /// for a torn tail, and the fsynced records after it were dropped.
    #[test]
    fn damage_to_fsynced_records_followed_by_more_refuses_naming_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let batches: [&[Entry]; 3] = [&[entry(1, 1), entry(2, 1)], &[entry(3, 1)], &[entry(4, 1)]];
        let path = write_batches(dir.path(), &batches, true);
        let good = fs::read(&path).unwrap();
        let second = entry_offset(&path, 1);
        for (what, at, bit) in [
            ("length", second + 1, 0x20),
            ("length", second + 3, 0x01),
            ("payload", second + record::HEADER_BYTES + 3, 0x04),
            ("sequence number", second + 9, 0x01),
        ] {
            let mut bad = good.clone();
            bad[at] ^= bit;
            fs::write(&path, &bad).unwrap();
            let err = Wal::open(dir.path()).expect_err(what);
            let text = err.to_string();
            assert!(
                matches!(err, WalError::Corrupt { offset, .. } if offset == second as u64),
                "{what}: {text}"
            );
            let says = [WAL_FILE, &format!("offset {second}"), "sync marker", "vote"];
            assert!(says.iter().all(|s| text.contains(s)), "{what}: {text}");
            assert_eq!(fs::read(&path).unwrap(), bad, "{what}: nothing was cut");
        }
    }

    /// The residual case, pinned (record.rs): damage in the last batch
    /// fsynced before a crash, with nothing written after it, has no sync
    /// marker after it and cannot be told from a torn write of that batch:
    /// it is cut off. After a clean stop the closing marker proves the
    /// batch fsynced, and the same damage refuses to start.
    #[test]
    fn damage_in_the_last_batch_is_cut_after_a_crash_and_refused_after_a_clean_stop() {
        for clean in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            wal.append_entries(&[entry(1, 1), entry(2, 1)]).unwrap();
            wal.set_hard_state(&hs(1, 1, 2)).unwrap();
            wal.sync(true).unwrap();
            if clean {
                wal.close().unwrap();
            }
            drop(wal);
            let path = dir.path().join(WAL_FILE);
            let second = entry_offset(&path, 1);
            let mut bytes = fs::read(&path).unwrap();
            bytes[second + record::HEADER_BYTES + 2] ^= 0x10;
            fs::write(&path, &bytes).unwrap();
            let opened = Wal::open(dir.path());
            if clean {
                let err = opened.expect_err("a clean stop proves the batch");
                assert!(
                    matches!(err, WalError::Corrupt { offset, .. } if offset == second as u64),
                    "{err}"
                );
            } else {
                let (_, r) = opened.expect("after a crash: cut off");
                assert_eq!(r.truncated_at, Some(second as u64));
                assert_eq!(indexes(&r), [1]);
            }
        }
    }

    /// A log an older node wrote (format 1: no header) is refused by name,
    /// and left as it was.
    #[test]
    fn an_older_format_log_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WAL_FILE);
        let old = [9u8, 0, 0, 0, 1, 2, 3, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        fs::write(&path, old).unwrap();
        let err = Wal::open(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, WalError::Format { .. }), "{text}");
        assert!(
            text.contains(WAL_FILE) && text.contains("format 2"),
            "{text}"
        );
        assert_eq!(fs::read(&path).unwrap(), old);
    }

    /// A segment created by the pipeline whose header a crash cut off is
    /// empty: its header is written again and the log goes on in it.
    #[test]
    fn a_segment_with_its_header_cut_off_is_taken_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[entry(1, 1)], &hs(1, 1, 1));
        let next = dir.path().join(segment::segment_name(1));
        fs::write(&next, &record::SEGMENT_MAGIC[..3]).unwrap();
        let (mut wal, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(indexes(&r), [1]);
        assert_eq!(fs::read(&next).unwrap(), record::SEGMENT_MAGIC);
        wal.append_entries(&[entry(2, 1)]).unwrap();
        wal.sync(true).unwrap();
        drop(wal);
        assert!(segment::holds_records(&next));
        let (_, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(indexes(&r), [1, 2]);
    }

    #[test]
    fn rewrite_compacts_and_snapshot_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[entry(1, 1), entry(2, 1), entry(3, 1)],
            &hs(1, 1, 3),
        );
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.rewrite(&hs(1, 1, 3), &[entry(3, 1)]).unwrap();
        wal.append_entries(&[entry(4, 1)]).unwrap();
        wal.sync(true).unwrap();
        let (_, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(r.entries, vec![entry(3, 1), entry(4, 1)]);
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 2;
        snap.data = b"state".to_vec().into();
        save_snapshot(dir.path(), &snap).unwrap();
        assert_eq!(load_snapshot(dir.path()).unwrap(), Some(snap));
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes[6] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(load_snapshot(dir.path())
            .unwrap_err()
            .to_string()
            .contains("snapshot.bin"));
    }
}
