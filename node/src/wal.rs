//! The write-ahead log of raft entries and hard state, and the snapshot
//! file beside it.
//!
//! A record is `len: u32 LE | crc32: u32 LE | kind: u8 | body` where `len`
//! counts `kind` and `body` and the CRC covers them. Recovery replays every
//! record. Only a *short* last record — a header cut off, or a record whose
//! (in range) length runs past the end of the file: what a crash mid-write
//! leaves — is a torn tail, truncated with a warning. Any other damage (a
//! bad checksum, a length out of range, an undecodable record), even in
//! the last record, was fsynced data and refuses to start, naming the file
//! and offset. The directory is fsynced after the log or snapshot file is
//! created or replaced, so the name survives a crash as well as the data.

use protobuf::Message as PbMessage;
use raft::prelude::{Entry, HardState, Snapshot};
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Record kinds.
const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
/// Bytes before a record's body.
const HEADER_BYTES: usize = 9;
/// Largest record accepted on recovery (a block is at most tens of MiB).
pub const RECORD_BYTES_MAX: usize = 256 << 20;
/// The log's file name in the data directory.
pub const WAL_FILE: &str = "wal.log";
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
    /// Offset the log was truncated at, when its tail was torn.
    pub truncated_at: Option<u64>,
}

/// The open log, appending.
#[derive(Debug)]
pub struct Wal {
    path: PathBuf,
    dir: PathBuf,
    writer: BufWriter<File>,
    /// The commit index of the last hard state written since the last sync.
    unsynced_commit: Option<u64>,
    /// The commit index of the last hard state a sync covered.
    synced_commit: u64,
}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(body);
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(&((body.len() + 1) as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

/// Applies one entry with raft's rule: it replaces any entry at or after
/// its index.
fn push_entry(entries: &mut Vec<Entry>, e: Entry) {
    while entries.last().is_some_and(|last| last.index >= e.index) {
        entries.pop();
    }
    entries.push(e);
}

impl Wal {
    /// Opens (or creates) the log in `dir`, replaying what it holds.
    pub fn open(dir: &Path) -> Result<(Wal, Recovered), WalError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(WAL_FILE);
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io(&path))?;
        if created {
            sync_dir(dir)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(&path))?;
        let recovered = replay(&path, &bytes)?;
        if let Some(offset) = recovered.truncated_at {
            tracing::warn!(file = %path.display(), offset, dropped_bytes = bytes.len() as u64 - offset, "torn tail in write-ahead log, truncating");
            file.set_len(offset).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        file.seek(SeekFrom::End(0)).map_err(io(&path))?;
        let wal = Wal {
            path,
            dir: dir.to_path_buf(),
            writer: BufWriter::with_capacity(1 << 20, file),
            unsynced_commit: None,
            synced_commit: recovered.hard_state.as_ref().map_or(0, |hs| hs.commit),
        };
        Ok((wal, recovered))
    }

    /// Buffers entries (call [`Wal::sync`] before depending on them).
    pub fn append_entries(&mut self, entries: &[Entry]) -> Result<(), WalError> {
        for e in entries {
            let body = e.write_to_bytes().expect("an entry always encodes");
            self.writer
                .write_all(&frame(KIND_ENTRY, &body))
                .map_err(io(&self.path))?;
        }
        Ok(())
    }

    /// Buffers a hard state.
    pub fn set_hard_state(&mut self, hs: &HardState) -> Result<(), WalError> {
        let body = hs.write_to_bytes().expect("a hard state always encodes");
        self.writer
            .write_all(&frame(KIND_HARD_STATE, &body))
            .map_err(io(&self.path))?;
        self.unsynced_commit = Some(hs.commit);
        Ok(())
    }

    /// Writes the buffer out and, when `fsync`, waits for the disk.
    /// (`fsync` false is the no-fsync bug: the node then believes, and
    /// reports, that the buffer is durable.)
    pub fn sync(&mut self, fsync: bool) -> Result<(), WalError> {
        self.writer.flush().map_err(io(&self.path))?;
        if fsync {
            self.writer.get_ref().sync_data().map_err(io(&self.path))?;
        }
        if let Some(commit) = self.unsynced_commit.take() {
            self.synced_commit = commit;
        }
        Ok(())
    }

    /// The commit index of the last hard state a sync (or a rewrite)
    /// covered: what a restart would recover, unlike one only written.
    pub fn synced_commit(&self) -> u64 {
        self.synced_commit
    }

    /// Replaces the log with `hs` and `entries` (compaction after a
    /// snapshot): written to a temporary file, synced, renamed over.
    pub fn rewrite(&mut self, hs: &HardState, entries: &[Entry]) -> Result<(), WalError> {
        self.sync(true)?;
        let tmp = self.dir.join(format!("{WAL_FILE}.tmp"));
        {
            let mut w = BufWriter::new(File::create(&tmp).map_err(io(&tmp))?);
            for e in entries {
                let body = e.write_to_bytes().expect("an entry always encodes");
                w.write_all(&frame(KIND_ENTRY, &body)).map_err(io(&tmp))?;
            }
            w.write_all(&frame(
                KIND_HARD_STATE,
                &hs.write_to_bytes().expect("encodes"),
            ))
            .map_err(io(&tmp))?;
            w.flush().map_err(io(&tmp))?;
            w.get_ref().sync_all().map_err(io(&tmp))?;
        }
        fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        sync_dir(&self.dir)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io(&self.path))?;
        self.writer = BufWriter::with_capacity(1 << 20, file);
        self.unsynced_commit = None;
        self.synced_commit = hs.commit;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Replays log bytes; see the module doc for the torn-tail rule.
fn replay(path: &Path, bytes: &[u8]) -> Result<Recovered, WalError> {
    let mut out = Recovered::default();
    let mut offset = 0usize;
    while offset < bytes.len() {
        match decode_at(bytes, offset) {
            Ok((kind, body, next)) => {
                apply_record(path, offset, kind, body, &mut out)?;
                offset = next;
            }
            Err(problem) => {
                if is_cut_off(bytes, offset) {
                    out.truncated_at = Some(offset as u64);
                    return Ok(out);
                }
                return Err(WalError::Corrupt {
                    path: path.to_path_buf(),
                    offset: offset as u64,
                    problem,
                });
            }
        }
    }
    Ok(out)
}

/// Whether the record at `offset` is a write cut off: a short header, or a
/// length in range that runs past the end of the file.
fn is_cut_off(bytes: &[u8], offset: usize) -> bool {
    if bytes.len() - offset < HEADER_BYTES {
        return true;
    }
    let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes")) as usize;
    (1..=RECORD_BYTES_MAX).contains(&len) && offset + 8 + len > bytes.len()
}

fn decode_at(bytes: &[u8], offset: usize) -> Result<(u8, &[u8], usize), String> {
    let rest = &bytes[offset..];
    if rest.len() < HEADER_BYTES {
        return Err(format!("short header ({} bytes)", rest.len()));
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    if len == 0 || len > RECORD_BYTES_MAX {
        return Err(format!("record length {len} out of range"));
    }
    if rest.len() < 8 + len {
        return Err(format!(
            "record of {len} bytes runs past the end of the file"
        ));
    }
    let payload = &rest[8..8 + len];
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch".to_string());
    }
    Ok((payload[0], &payload[1..], offset + 8 + len))
}

fn apply_record(
    path: &Path,
    offset: usize,
    kind: u8,
    body: &[u8],
    out: &mut Recovered,
) -> Result<(), WalError> {
    let corrupt = |problem: String| WalError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        problem,
    };
    match kind {
        KIND_ENTRY => {
            let e = Entry::parse_from_bytes(body)
                .map_err(|e| corrupt(format!("undecodable entry: {e}")))?;
            push_entry(&mut out.entries, e);
        }
        KIND_HARD_STATE => {
            let hs = HardState::parse_from_bytes(body)
                .map_err(|e| corrupt(format!("undecodable hard state: {e}")))?;
            out.hard_state = Some(hs);
        }
        other => return Err(corrupt(format!("unknown record kind {other}"))),
    }
    Ok(())
}

/// Writes a snapshot atomically: `crc32 | protobuf Snapshot`.
pub fn save_snapshot(dir: &Path, snapshot: &Snapshot) -> Result<(), WalError> {
    let tmp = write_snapshot_file(dir, snapshot, "tmp")?;
    publish_snapshot(dir, &tmp)
}

/// Writes and fsyncs a snapshot beside the real one, as
/// `snapshot.bin.<suffix>`, for [`publish_snapshot`] to put in place.
pub fn write_snapshot_file(
    dir: &Path,
    snapshot: &Snapshot,
    suffix: &str,
) -> Result<PathBuf, WalError> {
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.{suffix}"));
    let body = snapshot
        .write_to_bytes()
        .expect("a snapshot always encodes");
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&crc32fast::hash(&body).to_le_bytes())
        .and_then(|()| f.write_all(&body))
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp))?;
    Ok(tmp)
}

/// Renames a written snapshot over the real one and fsyncs the directory.
pub fn publish_snapshot(dir: &Path, written: &Path) -> Result<(), WalError> {
    let path = dir.join(SNAPSHOT_FILE);
    fs::rename(written, &path).map_err(io(&path))?;
    sync_dir(dir)
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
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
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
        drop(wal);
        let (wal, rec) = Wal::open(dir.path()).unwrap();
        assert_eq!(wal.synced_commit(), 3);
        assert_eq!(rec.hard_state.unwrap().commit, 3);
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
        f.write_all(&frame(KIND_ENTRY, &entry(3, 1).write_to_bytes().unwrap())[..10])
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

    /// Defect 3 (issue 13): a whole last record with a bad checksum, or a
    /// length field out of range, was fsynced data damaged later, not a
    /// write cut off: recovery refuses to start instead of dropping it.
    #[test]
    fn a_damaged_last_record_refuses_to_start_and_never_invites_deleting_the_log() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[entry(1, 1), entry(2, 1)], &hs(1, 1, 2));
        let path = dir.path().join(WAL_FILE);
        let good = fs::read(&path).unwrap();
        let last_record =
            good.len() - frame(KIND_HARD_STATE, &hs(1, 1, 2).write_to_bytes().unwrap()).len();
        let mut bad_crc = good.clone();
        let end = bad_crc.len() - 1;
        bad_crc[end] ^= 0xff;
        let mut bad_len = good.clone();
        bad_len[last_record..last_record + 4].copy_from_slice(&0u32.to_le_bytes());
        let mut huge_len = good.clone();
        huge_len[last_record..last_record + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        for (what, bytes) in [
            ("checksum", bad_crc),
            ("length 0", bad_len),
            ("length max", huge_len),
        ] {
            fs::write(&path, &bytes).unwrap();
            let err = Wal::open(dir.path()).expect_err(what);
            let text = err.to_string();
            assert!(
                matches!(err, WalError::Corrupt { offset, .. } if offset == last_record as u64),
                "{what}: {text}"
            );
            assert!(!text.contains("remove"), "{what}: {text}");
            assert!(text.contains("vote"), "{what}: {text}");
            assert_eq!(fs::read(&path).unwrap(), bytes, "{what}: nothing was cut");
        }
    }

    #[test]
    fn corruption_before_the_tail_refuses_to_start_naming_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[entry(1, 1), entry(2, 1), entry(3, 1)],
            &hs(1, 1, 3),
        );
        let path = dir.path().join(WAL_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER_BYTES + 2] ^= 0x55; // inside the first record's body
        fs::write(&path, &bytes).unwrap();
        let err = Wal::open(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, WalError::Corrupt { offset: 0, .. }), "{text}");
        assert!(
            text.contains("wal.log") && text.contains("offset 0"),
            "{text}"
        );
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
