//! Snapshots taken off the raft thread (Fabric's way): the raft loop
//! captures the state at an applied index (pointers to the shared blocks),
//! a thread of its own appends the blocks applied since the last snapshot
//! to the block store (`blockstore.rs`), writes and fsyncs a small
//! manifest naming them as the snapshot file, and serialises the whole
//! state in memory for raft to ship to a follower; the raft loop then puts
//! the file in place and compacts the log.

use crate::blockstore::{self, StoreState};
use crate::crash_points::{self, Point};
use crate::fsm::Captured;
use crate::wal::{self, WalError};
use raft::prelude::{ConfState, Snapshot};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};

/// The temporary file's suffix (`snapshot.bin.<suffix>`).
const WRITTEN_SUFFIX: &str = "taken";

/// What to snapshot.
#[derive(Debug)]
pub struct SnapshotJob {
    /// The applied index the state is at.
    pub index: u64,
    /// The term of the entry at `index`.
    pub term: u64,
    /// The configuration at `index`.
    pub conf_state: ConfState,
    /// The state machine at `index`.
    pub state: Captured,
    /// The block store the last snapshot in place named (`None`: start a
    /// new generation with every block).
    pub store: Option<StoreState>,
    /// The generation to start if one is started.
    pub next_generation: u64,
}

/// A snapshot written and fsynced, not yet in place.
#[derive(Debug)]
pub struct Written {
    /// The snapshot (metadata and the whole state), as raft will serve it.
    pub snapshot: Snapshot,
    /// The block store the written manifest names.
    pub store: StoreState,
    /// The ledger height it holds.
    pub height: u64,
    /// The file to rename into place.
    pub file: PathBuf,
}

/// The snapshot thread's handle; one job at a time.
#[derive(Debug)]
pub struct Snapshotter {
    jobs: SyncSender<SnapshotJob>,
    done: Receiver<Result<Written, WalError>>,
    busy: bool,
    /// The directory it writes into (named when the thread is gone).
    dir: PathBuf,
}

impl Snapshotter {
    /// Starts the thread writing into `dir`.
    pub fn start(dir: PathBuf) -> std::io::Result<Snapshotter> {
        let (jobs, jobs_rx) = mpsc::sync_channel::<SnapshotJob>(1);
        let (done_tx, done) = mpsc::sync_channel(1);
        let thread_dir = dir.clone();
        std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                lower_priority();
                for job in jobs_rx {
                    if done_tx.send(write(&thread_dir, job)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Snapshotter {
            jobs,
            done,
            busy: false,
            dir,
        })
    }

    /// Whether a job is being written.
    pub fn is_busy(&self) -> bool {
        self.busy
    }

    /// Hands over a job; false (and nothing done) while one is running.
    pub fn submit(&mut self, job: SnapshotJob) -> bool {
        if self.busy || self.jobs.try_send(job).is_err() {
            return false;
        }
        self.busy = true;
        true
    }

    /// The finished job, if there is one; an error once the thread is
    /// gone (it ends only with this handle, so it panicked): the node must
    /// stop rather than run on without snapshots (Fabric panics).
    pub fn poll(&mut self) -> Option<Result<Written, WalError>> {
        match self.done.try_recv() {
            Ok(result) => {
                self.busy = false;
                Some(result)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.busy = false;
                let why = "the snapshot thread ended (it panicked: see the log above)";
                Some(Err(WalError::Io {
                    path: self.dir.clone(),
                    source: std::io::Error::other(why),
                }))
            }
        }
    }
}

/// The snapshot thread's nice value: serialising a whole ledger (for raft
/// to ship) and writing the interval's blocks takes hundreds of
/// milliseconds of CPU, and on a small machine the raft and API threads
/// must come first (a snapshot only needs to finish before the next one is
/// due).
const SNAPSHOT_NICE: libc::c_int = 10;

/// Lowers the calling thread's CPU priority to [`SNAPSHOT_NICE`] (Linux
/// keeps a nice value per thread); a failure is logged, not fatal.
fn lower_priority() {
    let tid = nix::unistd::gettid().as_raw();
    // SAFETY: setpriority takes plain integers and touches no memory of
    // ours; `tid` is this thread's id.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, SNAPSHOT_NICE) };
    if rc != 0 {
        let error = std::io::Error::last_os_error();
        tracing::warn!(%error, "could not lower the snapshot thread's priority");
    }
}

fn write(dir: &Path, job: SnapshotJob) -> Result<Written, WalError> {
    // Generations other than the one in place: a new one only replaces it
    // once its manifest is in place, which it is by the next job.
    blockstore::remove_others(dir, job.store.map(|s| s.generation));
    let store = blockstore::store(
        dir,
        job.store,
        job.next_generation,
        job.state.blocks(),
        wal::SNAPSHOT_PACE,
    )?;
    let mut manifest = Snapshot {
        data: job.state.to_manifest(store.generation).into(),
        ..Default::default()
    };
    let meta = manifest.mut_metadata();
    meta.index = job.index;
    meta.term = job.term;
    meta.set_conf_state(job.conf_state);
    let file = wal::write_snapshot_file(dir, &manifest, WRITTEN_SUFFIX, wal::SNAPSHOT_PACE)?;
    crash_points::at(Point::SnapshotTakeAfterWrite);
    let mut snapshot = manifest;
    snapshot.data = job.state.to_snapshot_data().into();
    Ok(Written {
        snapshot,
        store,
        height: job.state.height(),
        file,
    })
}
