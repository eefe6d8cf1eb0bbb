//! Raft's view of the log: an in-memory copy of the durable state (the
//! write-ahead log and snapshot are the truth; this is rebuilt from them on
//! start) plus the latest snapshot with its state-machine data.

use crate::wal::Recovered;
use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::storage::{MemStorage, RaftState, Storage};
use raft::GetEntriesContext;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// The storage handed to `RawNode`.
#[derive(Clone)]
pub struct NodeStorage {
    mem: MemStorage,
    snapshot: Arc<RwLock<Snapshot>>,
    /// Raft asked for a snapshot for a node the latest one does not name
    /// (added since): the raft loop takes a new one.
    snapshot_wanted: Arc<AtomicBool>,
}

impl NodeStorage {
    /// Rebuilds raft's state from the snapshot and the log's tail; a fresh
    /// node starts with every id in `voters` as a voter.
    pub fn recover(
        voters: Vec<u64>,
        snapshot: Option<Snapshot>,
        recovered: &Recovered,
    ) -> raft::Result<NodeStorage> {
        let mem = MemStorage::new();
        let mut snap_index = 0;
        match &snapshot {
            Some(s) => {
                snap_index = s.get_metadata().index;
                mem.wl().apply_snapshot(s.clone())?;
            }
            None => mem.initialize_with_conf_state(ConfState::from((voters, vec![]))),
        }
        let tail: Vec<Entry> = recovered
            .entries
            .iter()
            .filter(|e| e.index > snap_index)
            .cloned()
            .collect();
        if !tail.is_empty() {
            mem.wl().append(&tail)?;
        }
        if let Some(hs) = &recovered.hard_state {
            let mut hs = hs.clone();
            let last = mem.rl().hard_state().commit.max(snap_index);
            hs.commit = hs
                .commit
                .max(last)
                .min(tail.last().map_or(snap_index, |e| e.index));
            mem.wl().set_hardstate(hs);
        }
        Ok(NodeStorage {
            mem,
            snapshot: Arc::new(RwLock::new(snapshot.unwrap_or_default())),
            snapshot_wanted: Arc::default(),
        })
    }

    /// Appends persisted entries.
    pub fn append(&self, entries: &[Entry]) -> raft::Result<()> {
        self.mem.wl().append(entries)
    }

    /// Records a persisted hard state.
    pub fn set_hard_state(&self, hs: HardState) {
        self.mem.wl().set_hardstate(hs);
    }

    /// Records a new commit index.
    pub fn set_commit(&self, commit: u64) {
        self.mem.wl().mut_hard_state().commit = commit;
    }

    /// The hard state raft last handed over.
    pub fn hard_state(&self) -> HardState {
        self.mem.rl().hard_state().clone()
    }

    /// Installs a snapshot received from the leader.
    pub fn apply_snapshot(&self, snapshot: Snapshot) -> raft::Result<()> {
        self.mem.wl().apply_snapshot(snapshot.clone())?;
        *self.snapshot.write().expect("snapshot lock") = snapshot;
        Ok(())
    }

    /// Records a snapshot this node took at its index and drops the
    /// entries it covers but the last `catchup` (Fabric's
    /// SnapshotCatchUpEntries: a follower just behind still gets entries,
    /// not the snapshot). Returns the index compacted to (the new first
    /// index − 1).
    pub fn compact_to(&self, snapshot: Snapshot, catchup: u64) -> raft::Result<u64> {
        let index = snapshot.get_metadata().index;
        *self.snapshot.write().expect("snapshot lock") = snapshot;
        let keep_from = (index + 1).saturating_sub(catchup).max(1);
        self.mem.wl().compact(keep_from)?;
        Ok(self.mem.first_index()? - 1)
    }

    /// The latest snapshot's (index, term); (0, 0) when there is none.
    pub fn snapshot_meta(&self) -> (u64, u64) {
        let s = self.snapshot.read().expect("snapshot lock");
        (s.get_metadata().index, s.get_metadata().term)
    }

    /// The term of the entry at `idx` (0 when compacted away).
    pub fn term_of(&self, idx: u64) -> u64 {
        self.mem.term(idx).unwrap_or(0)
    }

    /// Records the configuration a committed conf change produced (what
    /// later snapshots carry).
    pub fn set_conf_state(&self, cs: ConfState) {
        self.mem.wl().set_conf_state(cs);
    }

    /// Whether a snapshot is wanted for a node added since the last one;
    /// clears the wish.
    pub fn take_snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.swap(false, Ordering::Relaxed)
    }

    /// The current voters, for snapshot metadata.
    pub fn conf_state(&self) -> raft::Result<ConfState> {
        Ok(self.mem.initial_state()?.conf_state)
    }
}

impl Storage for NodeStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let snapshot = self.snapshot.read().expect("snapshot lock").clone();
        let cs = snapshot.get_metadata().get_conf_state();
        let names_to = [
            &cs.voters,
            &cs.learners,
            &cs.voters_outgoing,
            &cs.learners_next,
        ]
        .iter()
        .any(|ids| ids.contains(&to));
        if !names_to {
            // A node restoring it would not find itself in the
            // configuration (raft refuses that): take a newer one.
            self.snapshot_wanted.store(true, Ordering::Relaxed);
        }
        if !names_to
            || snapshot.get_metadata().index < request_index
            || snapshot.get_metadata().index == 0
        {
            return Err(raft::Error::Store(
                raft::StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(snapshot)
    }
}
