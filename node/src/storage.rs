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
    /// SnapshotCatchUpEntries: a follower at most `catchup` entries behind
    /// the snapshot still gets entries, not the snapshot). Returns the
    /// index compacted to (the new first index − 1), whose term the
    /// storage keeps answering.
    ///
    /// Raft sends a follower the entries after its match index only when
    /// it can read that index's term, and reads the log's bounds from
    /// here: so the compacted-to entry stays as the log's base (etcd's
    /// dummy entry), which `MemStorage` can only hold as its snapshot
    /// metadata. Plain `MemStorage::compact` kept no base: the real margin
    /// was one entry short, and with `catchup` 0 an emptied log fell back
    /// to the old base (`last_index` below the snapshot).
    pub fn compact_to(&self, snapshot: Snapshot, catchup: u64) -> raft::Result<u64> {
        let index = snapshot.get_metadata().index;
        *self.snapshot.write().expect("snapshot lock") = snapshot;
        let base = index.saturating_sub(catchup);
        let first = self.mem.first_index()?;
        if base < first {
            return Ok(first - 1);
        }
        let last = self.mem.last_index()?;
        let kept = if base < last {
            let context = GetEntriesContext::empty(false);
            self.mem.entries(base + 1, last + 1, None, context)?
        } else {
            Vec::new()
        };
        let mut marker = Snapshot::default();
        let meta = marker.mut_metadata();
        meta.index = base;
        meta.term = self.mem.term(base)?;
        meta.set_conf_state(self.conf_state()?);
        let mut core = self.mem.wl();
        // `apply_snapshot` drops every entry and resets the commit index:
        // the entries above the base and the hard state are put back.
        let hard_state = core.hard_state().clone();
        core.apply_snapshot(marker)?;
        core.set_hardstate(hard_state);
        core.append(&kept)?;
        Ok(base)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::tests::entry;
    use raft::prelude::{Message, MessageType};
    use raft::RawNode;

    /// A storage holding entries `1..=last` (term 1 up to 5, then 2),
    /// committed through `last`, with `voters`.
    fn storage(voters: Vec<u64>, last: u64) -> NodeStorage {
        let s = NodeStorage::recover(voters, None, &Recovered::default()).unwrap();
        let entries: Vec<Entry> = (1..=last)
            .map(|i| entry(i, if i <= 5 { 1 } else { 2 }))
            .collect();
        s.append(&entries).unwrap();
        s.set_hard_state(HardState {
            term: 2,
            vote: 1,
            commit: last,
            ..Default::default()
        });
        s
    }

    fn snapshot(s: &NodeStorage, index: u64) -> Snapshot {
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = index;
        snap.mut_metadata().term = s.term_of(index);
        snap.mut_metadata().set_conf_state(s.conf_state().unwrap());
        snap
    }

    /// Issue 20, item 2: after compaction raft's view is consistent for
    /// every catch-up margin — `last_index` never falls back below the
    /// snapshot, the entry before `first_index` still answers its term
    /// (raft needs it to send the entries after it: without it the real
    /// margin was one entry smaller than configured), the kept entries
    /// read back, and the hard state and configuration stay.
    #[test]
    fn compaction_keeps_raft_view_consistent_for_every_catch_up_margin() {
        // (entries, snapshot index, catch-up margin)
        for (last, at, catchup) in [
            (12u64, 10u64, 0u64),
            (10, 10, 0),
            (12, 10, 1),
            (12, 10, 4),
            (10, 10, 4),
            (12, 10, 10),
            (12, 10, 50),
        ] {
            let case = format!("{last} entries, snapshot at {at}, catch-up {catchup}");
            let s = storage(vec![1, 2, 3], last);
            let hs = s.hard_state();
            let boundary = at.saturating_sub(catchup);
            let compacted_to = s.compact_to(snapshot(&s, at), catchup).unwrap();
            assert_eq!(compacted_to, boundary, "{case}");
            assert_eq!(s.first_index().unwrap(), boundary + 1, "{case}");
            assert_eq!(s.last_index().unwrap(), last, "{case}");
            let want_term = match boundary {
                0 => 0,
                1..=5 => 1,
                _ => 2,
            };
            assert_eq!(s.term(boundary), Ok(want_term), "{case}");
            if boundary >= 2 {
                assert!(s.term(boundary - 1).is_err(), "{case}: compacted");
            }
            if boundary < last {
                let context = GetEntriesContext::empty(false);
                let kept = s.entries(boundary + 1, last + 1, None, context).unwrap();
                assert_eq!(kept.len() as u64, last - boundary, "{case}");
            }
            assert_eq!(s.hard_state(), hs, "{case}");
            assert_eq!(s.conf_state().unwrap().voters, vec![1, 2, 3], "{case}");
            assert_eq!(s.snapshot_meta(), (at, 2), "{case}");
        }
    }

    /// Drives a raw node's `Ready`s as the raft loop does (persist, then
    /// advance), without applying; returns every message it sent.
    fn drive(raw: &mut RawNode<NodeStorage>) -> Vec<Message> {
        let mut sent = Vec::new();
        while raw.has_ready() {
            let mut rd = raw.ready();
            sent.extend(rd.take_messages());
            let _ = rd.take_committed_entries();
            raw.store().append(rd.entries()).unwrap();
            if let Some(hs) = rd.hs() {
                raw.store().set_hard_state(hs.clone());
            }
            sent.extend(rd.take_persisted_messages());
            let mut light = raw.advance(rd);
            if let Some(commit) = light.commit_index() {
                raw.store().set_commit(commit);
            }
            sent.extend(light.take_messages());
            let _ = light.take_committed_entries();
            raw.advance_apply();
        }
        sent
    }

    fn raw_node(id: u64, storage: NodeStorage, applied: u64) -> RawNode<NodeStorage> {
        let config = raft::Config {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            applied,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        RawNode::new(&config, storage, &logger).unwrap()
    }

    /// Issue 20, item 2: a leader that compacted everything it applied
    /// (`--snapshot-catchup-entries 0`) proposes at the index after its
    /// last one. Before, its log looked empty and raft stopped the node
    /// ("after 0 is out of range [committed …]").
    #[test]
    fn a_leader_proposes_after_compacting_all_it_applied() {
        let s = NodeStorage::recover(vec![1], None, &Recovered::default()).unwrap();
        let mut raw = raw_node(1, s, 0);
        raw.campaign().unwrap();
        drive(&mut raw);
        for _ in 0..3 {
            raw.propose(vec![], b"block".to_vec()).unwrap();
            drive(&mut raw);
        }
        let last = raw.raft.raft_log.last_index();
        assert_eq!(raw.raft.raft_log.committed, last);
        let snap = snapshot(raw.store(), last);
        raw.store().compact_to(snap, 0).unwrap();
        raw.propose(vec![], b"after".to_vec()).unwrap();
        drive(&mut raw);
        assert_eq!(raw.raft.raft_log.last_index(), last + 1);
        assert_eq!(raw.raft.raft_log.committed, last + 1);
        assert_eq!(raw.store().last_index().unwrap(), last + 1);
    }

    /// Issue 20, item 2: a follower that compacted everything it applied
    /// accepts the leader's next append (raft matches the entry before
    /// it against the snapshot's term). Before, it rejected every append.
    #[test]
    fn a_follower_appends_after_compacting_all_it_applied() {
        let s = storage(vec![1, 2, 3], 10);
        let mut raw = raw_node(2, s, 10);
        let snap = snapshot(raw.store(), 10);
        raw.store().compact_to(snap, 0).unwrap();
        let mut append = Message {
            msg_type: MessageType::MsgAppend,
            from: 1,
            to: 2,
            term: 2,
            index: 10,
            log_term: 2,
            commit: 11,
            ..Default::default()
        };
        append.entries = vec![entry(11, 2)].into();
        raw.step(append).unwrap();
        let sent = drive(&mut raw);
        let answer = sent
            .iter()
            .find(|m| m.get_msg_type() == MessageType::MsgAppendResponse)
            .expect("an append response");
        assert!(!answer.reject, "{answer:?}");
        assert_eq!(answer.index, 11);
        assert_eq!(raw.store().last_index().unwrap(), 11);
        assert_eq!(raw.raft.raft_log.committed, 11);
    }
}
