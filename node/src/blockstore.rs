//! The block store: the ledger's blocks in an append-only file beside the
//! snapshot, so that a snapshot writes the blocks applied since the last
//! one and a small manifest (`fsm::Manifest`), not the whole ledger again
//! (Fabric keeps blocks in its block store; its snapshots carry the last
//! block only). Written by the snapshot thread only, never by the raft
//! thread.
//!
//! `blocks.<generation>` holds records `len: u32 | crc32: u32 | block`
//! (the snapshot form's block encoding, `fsm::put_block`), block 0 first.
//! A manifest names a generation and a height; recovery reads that many
//! blocks and ignores what follows (blocks of a snapshot that never got in
//! place; the next append cuts them). A generation is appended to while the
//! snapshots that follow each other extend it; anything else (the first
//! snapshot, one after installing a leader's snapshot or recovering from a
//! whole one) starts the next generation with every block, and files of
//! other generations are removed once a manifest naming a newer one is in
//! place.

use crate::crash_points::{self, Point};
use crate::dirs;
use crate::fsm;
use crate::ledger::Block;
use crate::tx::bin;
use crate::wal::WalError;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The file name prefix (`blocks.<generation>`).
const PREFIX: &str = "blocks.";

/// Bytes written between two syncs (as the snapshot file's chunks).
const SYNC_CHUNK_BYTES: usize = 1 << 20;

/// Where a block store stands after a sync: the state a manifest names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreState {
    /// Its generation.
    pub generation: u64,
    /// Blocks in it.
    pub height: u64,
    /// Bytes those blocks take.
    pub len: u64,
}

/// The path of generation `generation` in `dir`.
pub fn path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{generation}"))
}

fn generation_of(name: &str) -> Option<u64> {
    let rest = name.strip_prefix(PREFIX)?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Makes the store hold `blocks`, durably: appends the blocks after
/// `from`'s height to its generation when `from` is a prefix of them,
/// else writes all of them as generation `next_generation`. Syncs every
/// [`SYNC_CHUNK_BYTES`] and rests `rest` times as long as each chunk took.
pub fn store(
    dir: &Path,
    from: Option<StoreState>,
    next_generation: u64,
    blocks: &[Arc<Block>],
    rest: f64,
) -> Result<StoreState, WalError> {
    let (mut state, mut file, fresh) = match from {
        Some(s) if s.height <= blocks.len() as u64 => {
            let p = path(dir, s.generation);
            let mut f = OpenOptions::new().write(true).open(&p).map_err(io(&p))?;
            f.set_len(s.len).map_err(io(&p))?;
            f.seek(SeekFrom::Start(s.len)).map_err(io(&p))?;
            (s, f, false)
        }
        _ => {
            let p = path(dir, next_generation);
            let f = File::create(&p).map_err(io(&p))?;
            let s = StoreState {
                generation: next_generation,
                height: 0,
                len: 0,
            };
            (s, f, true)
        }
    };
    let p = path(dir, state.generation);
    let mut chunk = Vec::with_capacity(SYNC_CHUNK_BYTES + 64 * 1024);
    for b in &blocks[state.height as usize..] {
        put_record(&mut chunk, b);
        if chunk.len() >= SYNC_CHUNK_BYTES {
            write_synced(&mut file, &chunk, rest).map_err(io(&p))?;
            state.len += chunk.len() as u64;
            chunk.clear();
        }
    }
    write_synced(&mut file, &chunk, 0.0).map_err(io(&p))?;
    state.len += chunk.len() as u64;
    state.height = blocks.len() as u64;
    if fresh {
        dirs::sync_dir(dir).map_err(io(dir))?;
    }
    crash_points::at(Point::BlockstoreAppendAfterSync);
    Ok(state)
}

fn put_record(out: &mut Vec<u8>, b: &Block) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    fsm::put_block(out, b);
    let body_len = (out.len() - start - 8) as u32;
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn write_synced(file: &mut File, bytes: &[u8], rest: f64) -> std::io::Result<()> {
    let started = Instant::now();
    file.write_all(bytes)?;
    crash_points::at(Point::BlockstoreAppendBeforeSync);
    file.sync_data()?;
    if rest > 0.0 {
        std::thread::sleep(started.elapsed().mul_f64(rest));
    }
    Ok(())
}

/// Reads the first `height` blocks of generation `generation`. Fewer
/// blocks, or a damaged one among them, is an error naming the file and
/// offset: the log before the snapshot was compacted away.
pub fn read(
    dir: &Path,
    generation: u64,
    height: u64,
) -> Result<(Vec<Block>, StoreState), WalError> {
    let p = path(dir, generation);
    let bytes = fs::read(&p).map_err(io(&p))?;
    let corrupt = |offset: usize, problem: String| WalError::Corrupt {
        path: p.clone(),
        offset: offset as u64,
        problem,
    };
    let mut blocks = Vec::new();
    let mut offset = 0usize;
    while (blocks.len() as u64) < height {
        let n = blocks.len();
        let Some(header) = bytes.get(offset..offset + 8) else {
            return Err(corrupt(
                offset,
                format!("holds {n} whole blocks; the snapshot names {height}"),
            ));
        };
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let Some(body) = bytes.get(offset + 8..offset + 8 + len) else {
            return Err(corrupt(
                offset,
                format!("block {n} is cut off; the snapshot names {height} blocks"),
            ));
        };
        if crc32fast::hash(body) != crc {
            return Err(corrupt(offset, format!("block {n}: checksum mismatch")));
        }
        let mut r = bin::Reader::new(body);
        let block = fsm::read_block(&mut r)
            .and_then(|b| r.finish("block").map(|()| b))
            .map_err(|e| corrupt(offset, format!("block {n}: {e}")))?;
        blocks.push(block);
        offset += 8 + len;
    }
    let state = StoreState {
        generation,
        height,
        len: offset as u64,
    };
    Ok((blocks, state))
}

/// Removes the store files of generations other than `keep` (none with
/// `None`). Failures are logged: a stale file wastes space, nothing more.
pub fn remove_others(dir: &Path, keep: Option<u64>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(generation) = name.to_str().and_then(generation_of) else {
            continue;
        };
        if Some(generation) != keep {
            if let Err(error) = fs::remove_file(entry.path()) {
                tracing::warn!(%error, file = %entry.path().display(), "could not remove an old block store");
            }
        }
    }
}

/// The generation after every one in `dir` (0 when there is none).
pub fn next_generation(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(generation_of))
        .max()
        .map_or(0, |g| g + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Ledger;
    use crate::tx::Tx;

    fn ledger(n: usize) -> Ledger {
        let mut l = Ledger::default();
        for i in 0..n {
            let tx = Tx {
                id: format!("t{i}"),
                payload: "x".repeat(i % 7),
                ops: Vec::new(),
            };
            l.append(vec![tx]);
        }
        l
    }

    #[test]
    fn appends_extend_a_generation_and_read_returns_the_named_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(30);
        let first = store(dir.path(), None, 4, &l.blocks()[..10], 0.0).unwrap();
        assert_eq!((first.generation, first.height), (4, 10));
        let second = store(dir.path(), Some(first), 5, &l.blocks()[..30], 0.0).unwrap();
        assert_eq!((second.generation, second.height), (4, 30));
        let (blocks, state) = read(dir.path(), 4, 10).unwrap();
        assert_eq!(state, first);
        assert_eq!(
            blocks,
            l.blocks()[..10]
                .iter()
                .map(|b| (**b).clone())
                .collect::<Vec<_>>()
        );
        assert_eq!(read(dir.path(), 4, 30).unwrap().1, second);
        assert_eq!(next_generation(dir.path()), 5);
    }

    #[test]
    fn an_append_cuts_what_an_unpublished_one_left() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(20);
        let first = store(dir.path(), None, 0, &l.blocks()[..5], 0.0).unwrap();
        // A snapshot written after `first` never got in place.
        store(dir.path(), Some(first), 1, &l.blocks()[..20], 0.0).unwrap();
        let again = store(dir.path(), Some(first), 1, &l.blocks()[..8], 0.0).unwrap();
        assert_eq!(fs::metadata(path(dir.path(), 0)).unwrap().len(), again.len);
        assert_eq!(read(dir.path(), 0, 8).unwrap().1, again);
    }

    #[test]
    fn a_shorter_ledger_starts_a_new_generation_and_old_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(12);
        let first = store(dir.path(), None, 0, &l.blocks()[..12], 0.0).unwrap();
        let second = store(dir.path(), Some(first), 1, &l.blocks()[..6], 0.0).unwrap();
        assert_eq!((second.generation, second.height), (1, 6));
        remove_others(dir.path(), Some(1));
        assert!(!path(dir.path(), 0).exists());
        assert!(path(dir.path(), 1).exists());
    }

    #[test]
    fn damage_and_missing_blocks_name_the_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let l = ledger(6);
        assert_eq!(l.height(), 7, "genesis and six");
        let s = store(dir.path(), None, 0, l.blocks(), 0.0).unwrap();
        let err = read(dir.path(), 0, 8).unwrap_err().to_string();
        assert!(
            err.contains("blocks.0") && err.contains("holds 7 whole blocks"),
            "{err}"
        );
        let p = path(dir.path(), 0);
        let mut bytes = fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&p, &bytes).unwrap();
        let err = read(dir.path(), 0, 7).unwrap_err().to_string();
        assert!(err.contains("block 6: checksum mismatch"), "{err}");
        assert!(read(dir.path(), 0, 6).is_ok());
        bytes.truncate(s.len as usize - 3);
        fs::write(&p, &bytes).unwrap();
        let err = read(dir.path(), 0, 7).unwrap_err().to_string();
        assert!(err.contains("block 6 is cut off"), "{err}");
    }
}
