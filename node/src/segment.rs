//! The write-ahead log's segment files and the thread that prepares and
//! removes them (etcd's `filePipeline`): the raft thread never creates,
//! fsyncs the directory for, or deletes a log file itself.
//!
//! Segment `0` is `wal.log`, segment `n` is `wal.log.<n>`; replay goes in
//! segment order. A segment is prepared ahead of use: created holding only
//! the format's header (`record::SEGMENT_MAGIC`), fsynced, and the
//! directory fsynced, so that once the raft thread starts
//! writing into it its name is already durable and the only fsync the
//! raft thread pays is the one each persist pays anyway.

use crate::crash_points::{self, Point};
use crate::dirs::sync_dir;
use crate::record::SEGMENT_MAGIC;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};

/// The first segment's file name; later ones add `.<seq>`.
pub const FIRST_SEGMENT: &str = "wal.log";

/// The file name of segment `seq`.
pub fn segment_name(seq: u64) -> String {
    if seq == 0 {
        FIRST_SEGMENT.to_string()
    } else {
        format!("{FIRST_SEGMENT}.{seq}")
    }
}

/// The segment number a file name stands for, if it names one.
fn segment_seq(name: &str) -> Option<u64> {
    if name == FIRST_SEGMENT {
        return Some(0);
    }
    let rest = name.strip_prefix(FIRST_SEGMENT)?.strip_prefix('.')?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// The segments in `dir`, in replay order.
pub fn list(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(seq) = entry.file_name().to_str().and_then(segment_seq) {
            out.push((seq, entry.path()));
        }
    }
    out.sort_unstable_by_key(|(seq, _)| *seq);
    Ok(out)
}

/// Whether the segment at `path` holds records (more than its header);
/// false when it cannot be read (then it holds none this node can use).
pub fn holds_records(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.len() > SEGMENT_MAGIC.len() as u64)
}

/// A segment file prepared by the pipeline: its header only, its name
/// durable.
#[derive(Debug)]
pub struct Prepared {
    /// Its number.
    pub seq: u64,
    /// Its path.
    pub path: PathBuf,
    /// Open for appending.
    pub file: File,
}

enum Job {
    Prepare(u64),
    Remove(Vec<PathBuf>),
}

/// The pipeline thread's handle. At most one segment is prepared ahead.
#[derive(Debug)]
pub struct Pipeline {
    jobs: SyncSender<Job>,
    prepared: Receiver<std::io::Result<Prepared>>,
    /// The number of the segment asked for and not yet taken.
    pending: Option<u64>,
    /// The thread, joined on drop.
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Pipeline {
    /// Lets the thread finish the jobs it was given and joins it, so that
    /// no removal handed over goes on after the log is closed (a log
    /// opened again in the same directory would see a segment vanish
    /// while it replays it). A segment prepared after this is left for
    /// the next open, as one a crash left.
    fn drop(&mut self) {
        drop(std::mem::replace(&mut self.jobs, mpsc::sync_channel(0).0));
        drop(std::mem::replace(
            &mut self.prepared,
            mpsc::sync_channel(1).1,
        ));
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the wal-segments thread had panicked");
            }
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Prepare(seq) => write!(f, "Prepare({seq})"),
            Job::Remove(paths) => write!(f, "Remove({} files)", paths.len()),
        }
    }
}

/// Bounds the pipeline's queue (one prepare and a few removals).
const JOBS_MAX: usize = 8;

impl Pipeline {
    /// Starts the thread for `dir`.
    pub fn start(dir: PathBuf) -> std::io::Result<Pipeline> {
        let (jobs, jobs_rx) = mpsc::sync_channel::<Job>(JOBS_MAX);
        let (prepared_tx, prepared) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("wal-segments".into())
            .spawn(move || {
                for job in jobs_rx {
                    match job {
                        // Nobody to take it (the log was dropped): the
                        // file stays, as after a crash, and the jobs
                        // after it still run.
                        Job::Prepare(seq) => {
                            let _ = prepared_tx.send(prepare(&dir, seq));
                        }
                        Job::Remove(paths) => remove(&dir, &paths),
                    }
                }
            })?;
        Ok(Pipeline {
            jobs,
            prepared,
            pending: None,
            thread: Some(thread),
        })
    }

    /// Asks for segment `seq` to be prepared (once; later asks while one
    /// is pending are ignored).
    pub fn prepare(&mut self, seq: u64) {
        if self.pending.is_some() {
            return;
        }
        if self.jobs.try_send(Job::Prepare(seq)).is_ok() {
            self.pending = Some(seq);
        }
    }

    /// The prepared segment, when it is ready; never waits.
    pub fn take(&mut self) -> Option<std::io::Result<Prepared>> {
        match self.prepared.try_recv() {
            Ok(result) => {
                self.pending = None;
                Some(result)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.pending = None;
                Some(Err(std::io::Error::other("the wal-segments thread ended")))
            }
        }
    }

    /// Hands segments to remove to the thread; false when its queue is
    /// full (the caller keeps them and tries again later).
    pub fn remove(&mut self, paths: Vec<PathBuf>) -> bool {
        self.jobs.try_send(Job::Remove(paths)).is_ok()
    }
}

/// Creates segment `seq` holding its header, fsynced, its name fsynced in
/// `dir`.
pub fn prepare(dir: &Path, seq: u64) -> std::io::Result<Prepared> {
    let path = dir.join(segment_name(seq));
    let mut file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)?;
    crash_points::at(Point::WalPrepareAfterCreate);
    file.write_all(SEGMENT_MAGIC)?;
    file.sync_all()?;
    crash_points::at(Point::WalPrepareBeforeDirFsync);
    sync_dir(dir)?;
    Ok(Prepared { seq, path, file })
}

/// Writes a segment's header again over one cut off (a crash during
/// [`prepare`]), fsynced.
pub fn write_header(path: &Path) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).truncate(true).open(path)?;
    file.write_all(SEGMENT_MAGIC)?;
    file.sync_all()
}

/// Removes compacted segments, then fsyncs the directory (off the raft
/// thread, so it costs that thread nothing). A removal a crash undoes
/// brings back only records that later ones override or the snapshot
/// covers; the fsync makes each batch durable before the next one starts,
/// so a segment holding a reset record never goes while the older
/// segments it resets could still come back.
fn remove(dir: &Path, paths: &[PathBuf]) {
    crash_points::at(Point::WalCompactBeforeRemove);
    for path in paths {
        if let Err(e) = fs::remove_file(path) {
            tracing::warn!(file = %path.display(), error = %e, "could not remove a compacted log segment");
        }
    }
    crash_points::at(Point::WalCompactAfterRemove);
    if let Err(e) = sync_dir(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not fsync the directory after removing log segments");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_not_segments() {
        for seq in [0, 1, 17, u64::MAX] {
            assert_eq!(segment_seq(&segment_name(seq)), Some(seq));
        }
        for other in [
            "wal.log.tmp",
            "wal.log.",
            "wal.logx",
            "snapshot.bin",
            "wal.log.1x",
        ] {
            assert_eq!(segment_seq(other), None, "{other}");
        }
    }

    #[test]
    fn a_prepared_segment_exists_empty_and_lists_in_order() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FIRST_SEGMENT), b"x").unwrap();
        let mut pipeline = Pipeline::start(dir.path().to_path_buf()).unwrap();
        pipeline.prepare(10);
        pipeline.prepare(11); // ignored: one is pending
        let prepared = loop {
            if let Some(p) = pipeline.take() {
                break p.unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(prepared.seq, 10);
        assert_eq!(fs::read(&prepared.path).unwrap(), SEGMENT_MAGIC);
        pipeline.prepare(2);
        while pipeline.take().is_none() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let seqs: Vec<u64> = list(dir.path()).unwrap().into_iter().map(|s| s.0).collect();
        assert_eq!(seqs, vec![0, 2, 10]);
    }
}
