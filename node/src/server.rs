//! The raft loop: one thread owns the `RawNode`, the write-ahead log, the
//! block cutter and the state machine. Everything else talks to it through
//! a bounded event queue; it publishes what readers need in [`Shared`].
//!
//! Each turn: take events, tick, cut (by Fabric's rules, and on a leader
//! whose pipeline is idle: group commit) and propose blocks, then handle
//! `Ready` in raft's order — send the leader's messages, install a
//! snapshot, apply committed entries, persist entries and hard state with
//! one fsync, only then send the messages that depend on them, advance;
//! when that `Ready`'s applies emptied the pipeline, cut and handle one
//! more.

use crate::blockstore::StoreState;
use crate::config::{Bug, NodeConfig};
use crate::crash_points::{self, Point};
use crate::cutter::BlockCutter;
use crate::event::{Event, MemberReply, Origin, Outbox, SubmitReply};
use crate::forward::{self, Forwards};
use crate::fsm::{self, StateDigest, StateMachine};
use crate::kv::Kv;
use crate::metrics::{Gauges, Metrics};
use crate::slow_disk::{self, SlowDisk};
use crate::snapshotter::{SnapshotJob, Snapshotter, Written};
use crate::storage::NodeStorage;
use crate::trace::{DigestCause, LogState, Reason, Trace, TraceError};
use crate::transport::{Forward, ForwardReply, Frame, Transport};
use crate::tx::{Ack, Tx};
use crate::wal::{self, Wal};
use raft::prelude::{Entry, EntryType, HardState, Message, Snapshot};
use raft::{RawNode, StateRole, Storage};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[path = "members.rs"]
pub mod members;

/// Forwarded submits and waiters older than this are forgotten.
const WAITER_AGE_MAX: Duration = Duration::from_secs(60);

/// The answer to submits in flight when their leader lost leadership.
const IN_FLIGHT_UNKNOWN: &str = "leadership lost with the transaction in flight; outcome unknown";
/// The answer to forwarded submits when the leader changed.
const FORWARD_UNKNOWN: &str =
    "the leader changed before it answered the forwarded transaction; outcome unknown";

/// The node's state as readers see it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusView {
    /// Raft id.
    pub id: u64,
    /// `leader`, `follower`, `candidate` or `pre-candidate`.
    pub role: &'static str,
    /// Current term.
    pub term: u64,
    /// Known leader, 0 when none.
    pub leader: u64,
    /// Raft commit index.
    pub commit_index: u64,
    /// The last log index fsynced; above `commit_index` when the node
    /// holds an uncommitted tail.
    pub last_index: u64,
    /// Raft applied index.
    pub applied_index: u64,
    /// Ledger height.
    pub height: u64,
    /// Voters the leader heard from recently.
    pub active_nodes: u64,
    /// Voters.
    pub cluster_size: u64,
    /// Whether the applied configuration removed this node.
    pub removed: bool,
    /// The state machine's digest at `applied_index`, taken with it on
    /// the raft thread (`/status`'s `state`, docs/node-api.md).
    #[serde(skip)]
    pub state: Option<StateDigest>,
}

/// State shared between the raft loop and the API.
pub struct Shared {
    /// The configuration.
    pub config: NodeConfig,
    /// Status, refreshed every turn.
    pub status: Mutex<StatusView>,
    /// Ledger and registers.
    pub fsm: RwLock<StateMachine>,
    /// Metrics.
    pub metrics: Mutex<Metrics>,
    /// Ledger height, for waiting on local apply.
    pub height: watch::Sender<u64>,
    /// Times this data directory was opened before.
    pub restarts: u64,
    /// Process start (monotonic).
    pub started: Instant,
    /// Process start (wall clock, ms since the epoch).
    pub started_ms: u64,
    /// The applied configuration (`GET /members`).
    pub members: Mutex<members::MembersView>,
}

/// Why the raft loop stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    /// The write-ahead log or snapshot could not be written.
    #[error(transparent)]
    Wal(#[from] wal::WalError),
    /// The trace could not be written.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// Raft adopted a snapshot whose data this node cannot use.
    #[error("snapshot at index {0}: {1}")]
    Snapshot(u64, fsm::SnapshotDataError),
    /// A leader's heartbeat says entries are committed on this node that
    /// its log does not hold: the data directory lost what this node
    /// acknowledged (emptied, rolled back to an older copy, or a fsynced
    /// tail cut off as torn). Raft would panic here ("to_commit out of
    /// range", Fabric's #3639); the node stops naming it instead.
    #[error(
        "lost acknowledged state: leader {leader} (term {term}) says index {commit} is committed \
         on this node, but its log ends at {last_index}; the data directory lost entries this \
         node acknowledged (emptied, rolled back or damaged), and a node that forgot what it \
         acknowledged or voted must not rejoin under its id: restore its newest data, or remove \
         it (POST /members) and add a fresh node"
    )]
    LostState {
        /// The leader that sent the heartbeat.
        leader: u64,
        /// Its term.
        term: u64,
        /// The commit index it sent.
        commit: u64,
        /// This node's last log index.
        last_index: u64,
    },
}

/// What the raft loop is built from (recovered by `launch`).
pub struct LoopParts {
    /// Raft, on the recovered storage.
    pub raw: RawNode<NodeStorage>,
    /// The open write-ahead log.
    pub wal: Wal,
    /// The data directory (snapshot file).
    pub data_dir: PathBuf,
    /// Links to the peers.
    pub transport: Transport,
    /// Whether the data directory was empty.
    pub fresh: bool,
    /// The index the state machine holds.
    pub applied_index: u64,
    /// The Raft trace (possibly off).
    pub trace: Trace,
    /// The snapshot thread.
    pub snapshotter: Snapshotter,
    /// The block store the snapshot in place names (`None`: none, or the
    /// snapshot holds the whole state).
    pub block_store: Option<StoreState>,
    /// The block store generation after every one on disk.
    pub next_generation: u64,
}

struct Waiter {
    origin: Origin,
    since: Instant,
}

/// The raft loop's state.
pub struct RaftLoop {
    shared: std::sync::Arc<Shared>,
    raw: RawNode<NodeStorage>,
    wal: Wal,
    data_dir: PathBuf,
    transport: Transport,
    cutter: BlockCutter,
    /// Cut blocks waiting for an in-flight slot.
    /// Invariant: `queued_bytes` is the sum of their transactions' sizes.
    queued: VecDeque<Vec<Tx>>,
    queued_bytes: usize,
    inflight: VecDeque<u64>,
    waiters: HashMap<String, Vec<Waiter>>,
    forwards: Forwards,
    role: StateRole,
    leader: u64,
    /// The term at the last role change (for the trace's reasons).
    role_term: u64,
    campaigner: bool,
    ticks: u64,
    next_tick: Instant,
    applied_bytes: u64,
    applied_index: u64,
    /// The commit index a restart would recover (the trace's `commit`):
    /// raft's light ready commit index is written and not synced.
    durable_commit: u64,
    trace: Trace,
    snapshotter: Snapshotter,
    block_store: Option<StoreState>,
    next_generation: u64,
    /// The last snapshot a peer sent, decoded: (index, term, state).
    decoded_snapshot: Option<(u64, u64, StateMachine)>,
    /// The digest of the state handed to the snapshot thread, at its index
    /// (traced once the snapshot is in place).
    snapshot_digest: Option<(u64, StateDigest)>,
    /// A leader's snapshot was installed since this node last took one.
    installed_since_taken: bool,
    /// The membership request proposed at an index, waiting to be applied.
    pending_member: Option<(u64, tokio::sync::oneshot::Sender<MemberReply>)>,
    /// The index of the configuration that removed this node.
    removed: Option<u64>,
    /// Whether a configuration this node recovered or applied named it:
    /// only after that can one that leaves it out be its removal.
    was_member: bool,
    /// Nodes applied configurations removed, with the index (this run's).
    removed_peers: HashMap<u64, u64>,
    /// The watch over this node's own fsync durations.
    slow_disk: SlowDisk,
}

/// The node that campaigns first on a fresh cluster (Fabric's rule): the
/// `uvarint(sha256(channel)[24..]) % n`-th of the founders in id order
/// (`% n + 1` for founders 1..=n).
pub fn first_campaigner(channel: &str, founders: &[u64]) -> u64 {
    let mut ids = founders.to_vec();
    ids.sort_unstable();
    let n = ids.len().max(1) as u64;
    ids.get((campaign_hash(channel) % n) as usize)
        .copied()
        .unwrap_or(0)
}

fn campaign_hash(channel: &str) -> u64 {
    let digest = Sha256::digest(channel.as_bytes());
    let mut value: u64 = 0;
    for (i, byte) in digest[24..].iter().enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            break;
        }
    }
    value
}

/// Raft's role as the trace names it (docs/trace.md).
fn trace_role_name(role: StateRole) -> &'static str {
    match role {
        StateRole::Leader => "leader",
        StateRole::Follower => "follower",
        StateRole::Candidate => "candidate",
        StateRole::PreCandidate => "pre_candidate",
    }
}

/// Why the role changed, inferred from before and after (raft-rs does not
/// say; the rules are in docs/trace.md).
fn role_reason(
    before: StateRole,
    term_before: u64,
    after: StateRole,
    term: u64,
    leader: u64,
) -> Option<Reason> {
    match after {
        StateRole::PreCandidate => Some(Reason::PreVote),
        StateRole::Candidate | StateRole::Leader => Some(Reason::Vote),
        StateRole::Follower if term > term_before => Some(Reason::HigherTerm),
        StateRole::Follower if before == StateRole::Leader => Some(Reason::CheckQuorum),
        StateRole::Follower if leader != 0 => Some(Reason::Heartbeat),
        StateRole::Follower => None,
    }
}

fn role_name(role: StateRole) -> &'static str {
    match role {
        StateRole::Leader => "leader",
        StateRole::Follower => "follower",
        StateRole::Candidate => "candidate",
        StateRole::PreCandidate => "pre-candidate",
    }
}

impl RaftLoop {
    /// Builds the loop from recovered parts.
    pub fn new(shared: std::sync::Arc<Shared>, parts: LoopParts) -> RaftLoop {
        let cfg = &shared.config;
        let campaigner = parts.fresh
            && cfg.args.join.is_empty()
            && first_campaigner(&cfg.args.channel, &cfg.founders()) == cfg.args.id;
        let cutter = BlockCutter::new(cfg.batch);
        let durable_commit = parts.raw.store().hard_state().commit;
        let recovered_conf = parts.raw.store().conf_state().expect("memory storage");
        let was_member = members::members_of(&recovered_conf).contains(&cfg.args.id);
        RaftLoop {
            durable_commit,
            raw: parts.raw,
            wal: parts.wal,
            data_dir: parts.data_dir,
            transport: parts.transport,
            trace: parts.trace,
            decoded_snapshot: None,
            snapshot_digest: None,
            installed_since_taken: false,
            pending_member: None,
            removed: None,
            was_member,
            removed_peers: HashMap::new(),
            slow_disk: SlowDisk::new(cfg.args.slow_fsync_transfer_ms),
            snapshotter: parts.snapshotter,
            block_store: parts.block_store,
            next_generation: parts.next_generation,
            cutter,
            queued: VecDeque::new(),
            queued_bytes: 0,
            inflight: VecDeque::new(),
            waiters: HashMap::new(),
            forwards: Forwards::new(forward::start_nonce()),
            role: StateRole::Follower,
            leader: 0,
            role_term: 0,
            campaigner,
            ticks: 0,
            next_tick: Instant::now(),
            applied_bytes: snapshot_phase(cfg.args.id, cfg.args.snapshot_interval_bytes),
            applied_index: parts.applied_index,
            shared,
        }
    }

    fn tick_interval(&self) -> Duration {
        Duration::from_millis(self.shared.config.args.tick_ms)
    }

    /// Runs until a shutdown event or a fatal storage error.
    pub fn run(mut self, events: Outbox) -> Result<(), LoopError> {
        self.trace_start()?;
        self.publish_members();
        loop {
            // An untimed wait: timed waits take absolute deadlines from the
            // monotonic clock, which libfaketime (the clock nemesis) fakes
            // while the kernel does not. The waker thread's relative sleeps
            // stay correct under it, and scale with its rate.
            let Some(batch) = events.next_batch() else {
                return Ok(self.wal.close()?);
            };
            for ev in batch.events {
                self.handle(ev)?;
            }
            self.turn()?;
            if let Some(done) = batch.shutdown {
                self.wal.close()?;
                tracing::info!("write-ahead log synced, raft loop stopped");
                let _ = done.send(());
                return Ok(());
            }
        }
    }

    /// The trace's `start` event and a `role` event for the recovered role.
    fn trace_start(&mut self) -> Result<(), LoopError> {
        let state = self.log_state();
        let snap = self.raw.store().snapshot_meta();
        let conf = self
            .raw
            .store()
            .conf_state()
            .expect("memory storage never fails");
        self.trace.start(
            &state,
            snap,
            self.applied_index,
            conf.get_voters(),
            conf.get_learners(),
        );
        self.trace_digest(self.applied_index, DigestCause::Start);
        self.trace.role(
            trace_role_name(self.role),
            state.term,
            0,
            Some(Reason::Start),
        );
        self.role_term = state.term;
        Ok(self.trace.flush()?)
    }

    /// Raft's persistent state and log bounds as raft sees them now, but
    /// for the commit index: the one fsynced.
    fn log_state(&self) -> LogState {
        let store = self.raw.store();
        let hs = store.hard_state();
        let last_index = store.last_index().expect("memory storage never fails");
        LogState {
            term: hs.term,
            vote: hs.vote,
            commit: self.durable_commit,
            first_index: store.first_index().expect("memory storage never fails"),
            last_index,
            last_term: store.term(last_index).unwrap_or(0),
        }
    }

    fn turn(&mut self) -> Result<(), LoopError> {
        let now = Instant::now();
        if now >= self.next_tick {
            // A removed node's raft stops: no elections, no campaigns.
            if self.removed.is_none() {
                self.raw.tick();
            }
            self.ticks += 1;
            self.next_tick = (self.next_tick + self.tick_interval()).max(now);
            self.maybe_campaign();
            self.expire_waiters(now);
        }
        if let Some(written) = self.snapshotter.poll() {
            self.finish_snapshot(written?)?;
        }
        if let Some(batch) = self.cutter.cut_if_due(now) {
            self.enqueue(batch);
        }
        self.cut_if_idle();
        self.propose_queued();
        self.fail_member_if_not_leading();
        self.on_ready()?;
        // Applying in this Ready may have emptied the pipeline: what
        // gathered in the cutter meanwhile is proposed now, not at the
        // next event (up to the waker's period later).
        if self.cut_if_idle() {
            self.propose_queued();
            self.on_ready()?;
        }
        self.trace.flush()?;
        self.publish_status();
        Ok(())
    }

    fn maybe_campaign(&mut self) {
        let every = 2 * self.shared.config.args.heartbeat_tick as u64;
        if !self.campaigner || self.ticks % every != 0 {
            return;
        }
        if self.raw.raft.leader_id != 0 {
            self.campaigner = false;
            return;
        }
        tracing::info!(
            ticks = self.ticks,
            "fresh cluster and no leader yet: campaigning (Fabric's first-campaigner rule)"
        );
        if let Err(e) = self.raw.campaign() {
            tracing::warn!(error = %e, "campaign failed");
        }
    }

    fn handle(&mut self, ev: Event) -> Result<(), LoopError> {
        match ev {
            Event::Peer { msg, lamport } => {
                if !self.snapshot_usable(&msg) || self.tell_if_removed(msg.from) {
                    return Ok(());
                }
                self.refuse_commit_beyond_log(&msg)?;
                self.trace.recv(&msg, lamport);
                if let Err(e) = self.raw.step(msg) {
                    tracing::debug!(error = %e, "raft refused a peer message");
                }
            }
            Event::Submit { tx, ack, origin } => self.submit(tx, ack, origin),
            Event::ForwardReply {
                req_id,
                tx_id,
                reply,
            } => {
                self.forwards.resolve(req_id, &tx_id, reply);
            }
            Event::Unreachable { to } => self.raw.report_unreachable(to),
            Event::SnapshotStatus { to, delivered } => {
                let status = if delivered {
                    raft::SnapshotStatus::Finish
                } else {
                    raft::SnapshotStatus::Failure
                };
                tracing::debug!(to, delivered, "snapshot reported to raft");
                self.raw.report_snapshot(to, status);
            }
            Event::Member { changes, reply } => self.member_change(&changes, reply),
            Event::Transfer { to, reply } => {
                let _ = reply.send(self.transfer(to));
            }
            Event::Removed { from, index } => self.heard_removed(from, index),
            Event::Wake => {}
        }
        Ok(())
    }

    /// Stops the node when a leader's heartbeat commits past the end of
    /// its log (`LoopError::LostState`), before raft would panic on it. A
    /// leader only sends a commit as high as this node acknowledged
    /// (`min(matched, committed)`), so the log lost acknowledged entries.
    /// A heartbeat of an older term is ignored by raft, and checked here
    /// no more.
    fn refuse_commit_beyond_log(&self, msg: &Message) -> Result<(), LoopError> {
        let raft = &self.raw.raft;
        let last_index = raft.raft_log.last_index();
        let heartbeat = msg.get_msg_type() == raft::prelude::MessageType::MsgHeartbeat;
        if heartbeat && msg.term >= raft.term && msg.commit > last_index {
            return Err(LoopError::LostState {
                leader: msg.from,
                term: msg.term,
                commit: msg.commit,
                last_index,
            });
        }
        Ok(())
    }

    /// Decodes a snapshot before raft may adopt it (issue 13, defect 7):
    /// an undecodable one is refused here, with raft none the wiser; a good
    /// one is kept for `install_snapshot`, so it is decoded once.
    fn snapshot_usable(&mut self, msg: &Message) -> bool {
        if msg.get_msg_type() != raft::prelude::MessageType::MsgSnapshot {
            return true;
        }
        let meta = msg.get_snapshot().get_metadata();
        match StateMachine::from_snapshot_data(&msg.get_snapshot().data) {
            Ok(sm) => {
                self.decoded_snapshot = Some((meta.index, meta.term, sm));
                true
            }
            Err(e) => {
                tracing::error!(from = msg.from, index = meta.index, error = %e, "undecodable snapshot refused before raft saw it");
                false
            }
        }
    }

    fn reply(&self, origin: Origin, reply: SubmitReply) {
        match origin {
            Origin::Local(sender) => {
                let _ = sender.send(reply);
            }
            Origin::Peer {
                from,
                req_id,
                tx_id,
            } => {
                self.transport.send(
                    from,
                    Frame::ForwardReply(ForwardReply {
                        req_id,
                        tx_id,
                        reply,
                    }),
                );
            }
        }
    }

    fn submit(&mut self, tx: Tx, ack: Ack, origin: Origin) {
        self.shared
            .metrics
            .lock()
            .expect("metrics lock")
            .normal_proposals_received += 1;
        if let Some(index) = self.removed {
            let why = format!("this node was removed from the consenter set (configuration at index {index}); submit to a member (GET /members)");
            return self.reply(origin, SubmitReply::refused(410, &why, true));
        }
        if self.role == StateRole::Leader {
            return self.order(tx, ack, origin);
        }
        let leader = self.raw.raft.leader_id;
        match origin {
            Origin::Local(sender) if leader != 0 && leader != self.shared.config.args.id => {
                let req_id = self.forwards.add(&tx.id, sender);
                let tx_id = tx.id.clone();
                let forward = Frame::Forward(Forward { req_id, tx, ack });
                if !self.transport.send(leader, forward) {
                    // Dropped before it left: certainly not ordered.
                    let refused = SubmitReply::refused(503, "link to the leader full; retry", true);
                    self.forwards.resolve(req_id, &tx_id, refused);
                }
            }
            origin => self.reply(
                origin,
                SubmitReply::refused(503, "no leader known; retry", true),
            ),
        }
    }

    /// On the leader: enqueue into the block cutter.
    fn order(&mut self, tx: Tx, ack: Ack, origin: Origin) {
        let max = self.shared.config.args.absolute_max_bytes;
        if tx.size_bytes() > max {
            // A forwarded one: its follower allows more than this leader.
            let why = format!(
                "transaction of {} bytes exceeds absolute max bytes {max} (the leader's)",
                tx.size_bytes()
            );
            return self.reply(origin, SubmitReply::refused(413, &why, false));
        }
        let waiting = self.queued_bytes + self.cutter.pending_bytes();
        if waiting > 0 && waiting + tx.size_bytes() > self.backlog_bytes_max() {
            return self.reply(
                origin,
                SubmitReply::refused(
                    503,
                    "leader backlog full (as many bytes wait as may be in flight); retry",
                    true,
                ),
            );
        }
        let id = tx.id.clone();
        let early = ack == Ack::Accepted || self.shared.config.has_bug(Bug::AckBeforeCommit);
        if early {
            self.reply(origin, SubmitReply::Accepted { id: id.clone() });
        } else {
            self.waiters.entry(id).or_default().push(Waiter {
                origin,
                since: Instant::now(),
            });
        }
        for batch in self.cutter.ordered(tx, Instant::now()) {
            self.enqueue(batch);
        }
    }

    /// Bytes that may wait for an in-flight slot (cut or in the cutter):
    /// as many as `--max-inflight-blocks` blocks of preferred size, and
    /// one largest transaction at least (issue 13, defect 6; Fabric stops
    /// reading submissions at MaxInflightBlocks).
    fn backlog_bytes_max(&self) -> usize {
        let args = &self.shared.config.args;
        (args.max_inflight_blocks * args.preferred_max_bytes).max(args.absolute_max_bytes)
    }

    /// Group commit (`--cut-when-idle`): on a leader with no block
    /// proposed and not yet applied and none waiting for a slot, cuts what
    /// is pending; true when it cut. Blocks are still proposed in the
    /// order they were cut, and the cutter still takes transactions in the
    /// order they arrived: only when a block ends moves.
    fn cut_if_idle(&mut self) -> bool {
        let idle =
            self.role == StateRole::Leader && self.inflight.is_empty() && self.queued.is_empty();
        match self.cutter.cut_if_idle(idle) {
            Some(batch) => {
                self.enqueue(batch);
                true
            }
            None => false,
        }
    }

    fn enqueue(&mut self, batch: Vec<Tx>) {
        self.queued_bytes += batch.iter().map(Tx::size_bytes).sum::<usize>();
        self.queued.push_back(batch);
    }

    fn propose_queued(&mut self) {
        let max = self.shared.config.args.max_inflight_blocks;
        while self.role == StateRole::Leader && self.inflight.len() < max {
            let Some(batch) = self.queued.pop_front() else {
                return;
            };
            self.queued_bytes -= batch.iter().map(Tx::size_bytes).sum::<usize>();
            match self.raw.propose(Vec::new(), fsm::encode_batch(&batch)) {
                Ok(()) => self.inflight.push_back(self.raw.raft.raft_log.last_index()),
                Err(e) => {
                    self.shared
                        .metrics
                        .lock()
                        .expect("metrics lock")
                        .proposal_failures += 1;
                    tracing::warn!(error = %e, txs = batch.len(), "proposal failed");
                    self.refuse_batch(&batch, "proposal failed before ordering; retry");
                }
            }
        }
    }

    fn refuse_batch(&mut self, batch: &[Tx], why: &str) {
        for tx in batch {
            for w in self.waiters.remove(&tx.id).unwrap_or_default() {
                self.reply(w.origin, SubmitReply::refused(503, why, true));
            }
        }
    }

    fn expire_waiters(&mut self, now: Instant) {
        self.waiters.retain(|_, ws| {
            ws.retain(|w| now.duration_since(w.since) < WAITER_AGE_MAX);
            !ws.is_empty()
        });
        self.forwards.expire(now);
    }

    fn on_role_change(&mut self, role: StateRole, leader: u64) {
        if leader != self.leader && leader != 0 {
            self.shared
                .metrics
                .lock()
                .expect("metrics lock")
                .leader_changes += 1;
        }
        if self.role == StateRole::Leader && role != StateRole::Leader {
            // Fabric drops the pending batch on losing leadership: none of
            // it was proposed, so it certainly was not ordered.
            let mut dropped = self.cutter.cut();
            dropped.extend(self.queued.drain(..).flatten());
            self.queued_bytes = 0;
            tracing::warn!(
                txs = dropped.len(),
                new_leader = leader,
                "lost leadership, dropping the pending batch"
            );
            self.refuse_batch(
                &dropped,
                "leadership lost before the transaction was ordered; retry",
            );
            self.inflight.clear();
            // What was proposed may still commit under the next leader, or
            // not: unknown now, rather than at the submit timeout (issue 18).
            for (_, ws) in std::mem::take(&mut self.waiters) {
                for w in ws {
                    self.reply(
                        w.origin,
                        SubmitReply::refused(504, IN_FLIGHT_UNKNOWN, false),
                    );
                }
            }
        }
        if leader != self.leader {
            // Forwards went to the old leader, whose answer may never come.
            let n = self
                .forwards
                .abandon_all(&SubmitReply::refused(504, FORWARD_UNKNOWN, false));
            if n > 0 {
                tracing::info!(
                    forwards = n,
                    new_leader = leader,
                    "leader changed: forwarded submits answered as unknown"
                );
            }
        }
        if role != self.role || leader != self.leader {
            let term = self.raw.raft.term;
            let reason = role_reason(self.role, self.role_term, role, term, leader);
            self.trace.role(trace_role_name(role), term, leader, reason);
            self.role_term = term;
            tracing::info!(
                role = role_name(role),
                leader,
                term = self.raw.raft.term,
                "raft role"
            );
        }
        self.role = role;
        self.leader = leader;
    }

    fn on_ready(&mut self) -> Result<(), LoopError> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut rd = self.raw.ready();
        if let Some(ss) = rd.ss() {
            let (role, leader) = (ss.raft_state, ss.leader_id);
            self.on_role_change(role, leader);
        }
        self.send(rd.take_messages())?;
        if !rd.snapshot().is_empty() {
            self.install_snapshot(rd.snapshot().clone())?;
        }
        self.apply(rd.take_committed_entries())?;
        let after_persist = self.send_acks_early(rd.take_persisted_messages())?;
        self.persist(rd.entries(), rd.hs())?;
        self.send(after_persist)?;
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            // Written, not synced: the next persist's fsync covers it, and
            // only then does the trace report it (`durable_commit`).
            self.raw.mut_store().set_commit(commit);
            let hs = self.raw.store().hard_state();
            self.wal.set_hard_state(&self.hard_state_to_persist(&hs))?;
        }
        self.send(light.take_messages())?;
        self.apply(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.maybe_snapshot()
    }

    /// Traces the messages, writes the trace out, then sends them: a
    /// message never reaches a peer before the events it depends on.
    fn send(&mut self, msgs: Vec<Message>) -> Result<(), LoopError> {
        if msgs.is_empty() {
            return Ok(());
        }
        let mut stamps = Vec::with_capacity(msgs.len());
        for m in &msgs {
            stamps.push(self.trace.send(m));
            if m.get_msg_type() == raft::prelude::MessageType::MsgSnapshot {
                let meta = m.get_snapshot().get_metadata();
                self.trace
                    .snapshot("sent", meta.index, meta.term, Some(m.to));
            }
        }
        self.trace.flush()?;
        for (m, stamp) in msgs.iter().zip(stamps) {
            if !self.transport.send_raft(m, stamp) {
                self.raw.report_unreachable(m.to);
                if m.get_msg_type() == raft::prelude::MessageType::MsgSnapshot {
                    self.raw
                        .report_snapshot(m.to, raft::SnapshotStatus::Failure);
                }
            }
        }
        Ok(())
    }

    /// With the `ack-before-fsync` bug switch: sends the append responses
    /// among `msgs` now, before the persist that covers them, and returns
    /// the rest; without it, returns `msgs`.
    fn send_acks_early(&mut self, msgs: Vec<Message>) -> Result<Vec<Message>, LoopError> {
        if !self.shared.config.has_bug(Bug::AckBeforeFsync) {
            return Ok(msgs);
        }
        let (acks, rest): (Vec<Message>, Vec<Message>) = msgs.into_iter().partition(|m| {
            m.get_msg_type() == raft::prelude::MessageType::MsgAppendResponse && !m.reject
        });
        self.send(acks)?;
        Ok(rest)
    }

    fn hard_state_to_persist(&self, hs: &HardState) -> HardState {
        let mut hs = hs.clone();
        if self.shared.config.has_bug(Bug::ForgetVote) {
            hs.term = 0;
            hs.vote = 0;
        }
        hs
    }

    /// Writes entries and hard state, then one fsync (the `Ready` contract).
    fn persist(&mut self, entries: &[Entry], hs: Option<&HardState>) -> Result<(), LoopError> {
        if entries.is_empty() && hs.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        self.wal.append_entries(entries)?;
        if let Some(hs) = hs {
            self.wal.set_hard_state(&self.hard_state_to_persist(hs))?;
        }
        self.wal.sync(!self.shared.config.has_bug(Bug::NoFsync))?;
        self.note_synced();
        let bytes = entries.iter().map(|e| e.data.len()).sum();
        let took = started.elapsed();
        self.shared
            .metrics
            .lock()
            .expect("metrics lock")
            .record_persist(took, bytes);
        self.step_aside_if_slow(took);
        let last_before = self.raw.store().last_index().expect("memory storage");
        if !entries.is_empty() {
            self.raw
                .mut_store()
                .append(entries)
                .expect("entries raft handed over append");
        }
        if let Some(hs) = hs {
            self.raw.mut_store().set_hard_state(hs.clone());
        }
        if self.trace.is_on() {
            let appended: Vec<(u64, u64)> = entries.iter().map(|e| (e.index, e.term)).collect();
            let truncated_from = entries
                .first()
                .map(|e| e.index)
                .filter(|&first| first <= last_before);
            self.trace.persist(
                &self.log_state(),
                &appended,
                truncated_from,
                took.as_micros() as u64,
            );
        }
        Ok(())
    }

    /// A leader whose fsyncs stall hands leadership to its most
    /// caught-up voter (issue 18; `slow_disk.rs`).
    fn step_aside_if_slow(&mut self, took: Duration) {
        let now = Instant::now();
        if !self.slow_disk.observe(took, now) || self.role != StateRole::Leader {
            return;
        }
        let prs = self.raw.raft.prs();
        let voters = prs.conf().voters().ids();
        let matched = voters
            .iter()
            .filter_map(|id| prs.get(id).map(|p| (id, p.matched)));
        let Some(to) = slow_disk::successor(self.shared.config.args.id, matched) else {
            return;
        };
        tracing::warn!(
            fsync_ms = took.as_millis() as u64,
            to,
            "slow disk: fsyncs over the threshold; handing leadership away"
        );
        self.raw.transfer_leader(to);
        self.slow_disk.transferred(now);
        self.shared
            .metrics
            .lock()
            .expect("metrics lock")
            .slow_disk_transfers += 1;
    }

    /// After a sync or rewrite of the log: the commit index it covered.
    fn note_synced(&mut self) {
        self.durable_commit = self.durable_commit.max(self.wal.synced_commit());
    }

    /// Applies committed entries in order; after each whose index is a
    /// multiple of `--trace-digest-every`, the trace's `digest`.
    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), LoopError> {
        let every = self.shared.config.args.trace_digest_every;
        for e in entries {
            self.trace.flush_if_full()?;
            let index = e.index;
            self.apply_entry(e);
            if index % every == 0 {
                self.trace_digest(index, DigestCause::Apply);
            }
        }
        Ok(())
    }

    /// One committed entry: a block to the state machine (answering its
    /// waiters), a configuration change to raft, or nothing (empty).
    fn apply_entry(&mut self, e: Entry) {
        self.applied_index = e.index;
        while self.inflight.front().is_some_and(|&i| i <= e.index) {
            self.inflight.pop_front();
        }
        if e.get_entry_type() != EntryType::EntryNormal {
            self.trace.apply(e.index, e.term, None);
            self.apply_conf_change(&e);
            return;
        }
        if e.data.is_empty() {
            self.trace.apply(e.index, e.term, None);
            return;
        }
        let txs = match fsm::decode_batch(&e.data) {
            Ok(txs) => txs,
            Err(err) => {
                tracing::error!(index = e.index, error = %err, "undecodable committed entry skipped");
                self.trace.apply(e.index, e.term, None);
                return;
            }
        };
        self.applied_bytes += e.data.len() as u64;
        let applied = self.shared.fsm.write().expect("fsm lock").apply(txs);
        self.trace
            .apply(e.index, e.term, Some((applied.number, &applied.hash)));
        for (position, (id, results)) in applied.results.into_iter().enumerate() {
            for w in self.waiters.remove(&id).unwrap_or_default() {
                let reply = SubmitReply::Committed {
                    id: id.clone(),
                    block: applied.number,
                    position: position as u64,
                    results: results.clone(),
                };
                self.reply(w.origin, reply);
            }
        }
        self.shared.height.send_replace(applied.number + 1);
    }

    /// The trace's `digest` of the state machine as it is now, which holds
    /// applied index `index`.
    fn trace_digest(&mut self, index: u64, cause: DigestCause) {
        if !self.trace.is_on() {
            return;
        }
        let d = self.shared.fsm.read().expect("fsm lock").digest();
        self.trace.digest(index, &d, cause);
    }

    fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<(), LoopError> {
        let index = snapshot.get_metadata().index;
        let term = snapshot.get_metadata().term;
        let conf = snapshot.get_metadata().get_conf_state();
        self.was_member |= members::members_of(conf).contains(&self.shared.config.args.id);
        let mut restored = match self.decoded_snapshot.take() {
            Some((i, t, sm)) if (i, t) == (index, term) => sm,
            // Raft hands over only snapshots this node stepped, which
            // `snapshot_usable` decoded; anything else means raft and
            // storage would disagree, so stop (Fabric panics).
            _ => StateMachine::from_snapshot_data(&snapshot.data)
                .map_err(|e| LoopError::Snapshot(index, e))?,
        };
        if self.shared.config.has_bug(Bug::InstallDropsRegister) {
            let kept = restored.kv.registers().skip(1);
            restored.kv = Kv::from_registers(kept.map(|(k, v)| (k.to_string(), v)));
        }
        // The whole state, as the leader sent it: the next snapshot taken
        // here starts a new block store generation. Writing it and the
        // log's rewrite is a persist, timed as one (Fabric times the
        // snapshot's store with the entries').
        let started = Instant::now();
        let bytes = snapshot.data.len();
        crash_points::at(Point::SnapshotInstallBeforeSave);
        wal::save_snapshot(&self.data_dir, &snapshot)?;
        self.block_store = None;
        self.installed_since_taken = true;
        self.raw
            .mut_store()
            .apply_snapshot(snapshot)
            .expect("raft hands over snapshots newer than the log");
        let (height, digest) = (restored.ledger.height(), restored.digest());
        *self.shared.fsm.write().expect("fsm lock") = restored;
        self.shared.height.send_replace(height);
        self.applied_index = index;
        let hs = self.raw.store().hard_state();
        crash_points::at(Point::SnapshotInstallBeforeLogRewrite);
        self.wal.rewrite(&self.hard_state_to_persist(&hs), &[])?;
        crash_points::at(Point::SnapshotInstallAfterLogRewrite);
        self.note_synced();
        let took = started.elapsed();
        let mut metrics = self.shared.metrics.lock().expect("metrics lock");
        metrics.snapshots_installed += 1;
        metrics.record_persist(took, bytes);
        drop(metrics);
        self.trace.snapshot("installed", index, term, None);
        // The log was rewritten and fsynced: its new bounds.
        let duration_us = took.as_micros() as u64;
        self.trace
            .persist(&self.log_state(), &[], None, duration_us);
        self.trace
            .digest(index, &digest, DigestCause::SnapshotInstalled);
        tracing::info!(index, height, "installed snapshot from the leader");
        Ok(())
    }

    /// Hands a snapshot of the applied state to the snapshot thread once
    /// `--snapshot-interval-bytes` were applied since the last one.
    fn maybe_snapshot(&mut self) -> Result<(), LoopError> {
        if self.snapshotter.is_busy() {
            return Ok(());
        }
        let wanted = self.raw.store().take_snapshot_wanted();
        if self.applied_bytes < self.shared.config.args.snapshot_interval_bytes && !wanted {
            return Ok(());
        }
        let index = self.applied_index;
        if self.shared.config.has_bug(Bug::SnapshotAfterInstallPanics) {
            assert!(
                !self.installed_since_taken,
                "block store generation {} reused: the first snapshot after an installed one (bug switch snapshot-after-install-panics)",
                self.next_generation
            );
        }
        let job = SnapshotJob {
            index,
            term: self.raw.store().term_of(index),
            conf_state: self
                .raw
                .store()
                .conf_state()
                .expect("memory storage never fails"),
            state: self.shared.fsm.read().expect("fsm lock").capture(),
            store: self.block_store,
            next_generation: self.next_generation,
        };
        let digest = job.state.digest();
        if self.snapshotter.submit(job) {
            self.applied_bytes = 0;
            self.snapshot_digest = Some((index, digest));
        }
        Ok(())
    }

    /// Puts a snapshot the thread wrote in place and compacts the log,
    /// keeping `--snapshot-catchup-entries` entries behind it in memory.
    /// The log file is not rewritten here (`Wal::compact`): the next sync
    /// moves on to a segment prepared off this thread, and the segments
    /// the snapshot covers are removed off it too.
    fn finish_snapshot(&mut self, written: Written) -> Result<(), LoopError> {
        let meta = written.snapshot.get_metadata().clone();
        let digest = self.snapshot_digest.take();
        if meta.index <= self.raw.store().snapshot_meta().0 {
            // A snapshot from the leader was installed meanwhile.
            let _ = std::fs::remove_file(&written.file);
            return Ok(());
        }
        wal::publish_snapshot(&self.data_dir, &written.file)?;
        self.block_store = Some(written.store);
        self.next_generation = self.next_generation.max(written.store.generation + 1);
        self.installed_since_taken = false;
        self.trace.snapshot("taken", meta.index, meta.term, None);
        if let Some((index, d)) = digest.filter(|(index, _)| *index == meta.index) {
            self.trace.digest(index, &d, DigestCause::SnapshotTaken);
        }
        let catchup = self.shared.config.args.snapshot_catchup_entries;
        let compacted_to = self
            .raw
            .mut_store()
            .compact_to(written.snapshot, catchup)
            .expect("compacting below the applied index");
        self.wal.compact(meta.index);
        self.trace.compact(compacted_to);
        let block = written.height.saturating_sub(1);
        let mut metrics = self.shared.metrics.lock().expect("metrics lock");
        metrics.snapshot_block_number = block;
        metrics.snapshots_taken += 1;
        metrics.compactions += 1;
        drop(metrics);
        tracing::info!(
            index = meta.index,
            block,
            compacted_to,
            "snapshot taken, log compacted"
        );
        Ok(())
    }

    fn publish_status(&mut self) {
        let r = &self.raw.raft;
        let active = if r.state == StateRole::Leader {
            r.prs().iter().filter(|(_, p)| p.recent_active).count() as u64
        } else {
            0
        };
        let height = *self.shared.height.borrow();
        let state = self.shared.fsm.read().expect("fsm lock").digest();
        let mut s = self.shared.status.lock().expect("status lock");
        *s = StatusView {
            id: self.shared.config.args.id,
            role: role_name(r.state),
            term: r.term,
            leader: r.leader_id,
            commit_index: r.raft_log.committed,
            last_index: r.raft_log.persisted,
            applied_index: self.applied_index,
            height,
            active_nodes: active,
            cluster_size: r.prs().conf().voters().ids().len() as u64,
            removed: self.removed.is_some(),
            state: Some(state),
        };
    }
}

/// The index raft resumes applying after on start: `applied`, the one the
/// recovered state machine holds; with the `restart-skips-entry` bug
/// switch one more when a committed entry is there (`commit`) to skip.
pub fn resume_applied(config: &NodeConfig, applied: u64, commit: u64) -> u64 {
    if config.has_bug(Bug::RestartSkipsEntry) && commit > applied {
        applied + 1
    } else {
        applied
    }
}

/// Where in its snapshot interval a node starts counting, so that the
/// nodes of a cluster, which apply the same bytes at the same moments, do
/// not all snapshot at once: the fractional parts of `id` times the golden
/// ratio spread any set of ids over the interval (ids 1, 2, 3: 0.62, 0.24,
/// 0.85 of it). A quorum then always has members that are not writing a
/// snapshot, and commits do not wait on the one that is.
pub fn snapshot_phase(id: u64, interval_bytes: u64) -> u64 {
    const GOLDEN: f64 = 0.618_033_988_749_894_9;
    let phase = (id as f64 * GOLDEN).fract();
    (phase * interval_bytes as f64) as u64
}

/// Gauges for the Prometheus page from a status view.
pub fn gauges(s: &StatusView) -> Gauges {
    Gauges {
        is_leader: s.role == "leader",
        committed_block_number: s.height.saturating_sub(1),
        cluster_size: s.cluster_size,
        active_nodes: s.active_nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_phases_are_distinct_and_inside_the_interval() {
        let phases: Vec<u64> = (1..=7).map(|id| snapshot_phase(id, 20 << 20)).collect();
        assert!(phases.iter().all(|&p| p < 20 << 20), "{phases:?}");
        let distinct: std::collections::BTreeSet<u64> = phases.iter().copied().collect();
        assert_eq!(distinct.len(), phases.len(), "{phases:?}");
        // Three nodes: each pair at least a fifth of the interval apart.
        let mut three = phases[..3].to_vec();
        three.sort_unstable();
        let gaps = [
            three[1] - three[0],
            three[2] - three[1],
            (20 << 20) - three[2] + three[0],
        ];
        assert!(gaps.iter().all(|&g| g > (20 << 20) / 5), "{three:?}");
        assert_eq!(snapshot_phase(3, 0), 0);
    }

    #[test]
    fn the_first_campaigner_is_stable_and_in_range() {
        for n in 1..=7 {
            let founders: Vec<u64> = (1..=n).collect();
            let id = first_campaigner("ordeal", &founders);
            assert!((1..=n).contains(&id));
            assert_eq!(id, first_campaigner("ordeal", &founders));
            let shifted: Vec<u64> = founders.iter().map(|f| f + 10).rev().collect();
            assert_eq!(first_campaigner("ordeal", &shifted), id + 10);
        }
    }
}
