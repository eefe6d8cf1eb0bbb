//! Starting a node: recover durable state, bind the ports, run the raft
//! loop and the API until SIGTERM / SIGINT, then sync and stop.

use crate::api::{self, ApiState};
use crate::blockstore::{self, StoreState};
use crate::config::NodeConfig;
use crate::crash_points;
use crate::dirs;
use crate::event::{self, Inbox};
use crate::fsm::Manifest;
use crate::fsm::StateMachine;
use crate::metrics::Metrics;
use crate::server::{self, LoopError, LoopParts, RaftLoop, Shared, StatusView};
use crate::slog_bridge;
use crate::snapshotter::Snapshotter;
use crate::storage::NodeStorage;
use crate::trace::{CrashPointFired, CrashSink, Trace, TraceError};
use crate::transport::{self, Transport};
use crate::wal::{self, Wal};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, watch};

/// Client events queued for the raft loop at most.
pub const EVENT_QUEUE_MAX: usize = 65_536;
/// The file counting how often the data directory was opened.
const RESTARTS_FILE: &str = "restarts";

/// Why a node could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The log or snapshot is unusable.
    #[error(transparent)]
    Storage(#[from] wal::WalError),
    /// The snapshot's contents are unusable.
    #[error("{path}: {source}")]
    SnapshotData {
        /// The snapshot file.
        path: String,
        /// What is wrong.
        source: crate::fsm::SnapshotDataError,
    },
    /// The trace file is unusable.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The raft loop stopped on an error.
    #[error("raft loop: {0}")]
    Loop(#[from] LoopError),
    /// The raft thread panicked (its message is in the log above).
    #[error("the raft thread panicked")]
    RaftPanicked,
    /// Raft refused the recovered state.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Another IO failure.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// The founders' ids in the data directory (`founders`).
const FOUNDERS_FILE: &str = "founders";

fn count_restart(dir: &Path) -> Result<u64, LaunchError> {
    let path = dir.join(RESTARTS_FILE);
    let before = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let opened = before.map_or(0, |n| n + 1);
    std::fs::write(&path, opened.to_string()).map_err(|source| LaunchError::Io {
        what: format!("write {}", path.display()),
        source,
    })?;
    Ok(opened)
}

/// The founders a data directory was first started with: the
/// configuration at index 0, which a log replayed from its start builds on
/// (later `--peers` or `--join` lists may differ). Written, and fsynced,
/// on the first start.
fn founders(dir: &Path, config: &NodeConfig, fresh: bool) -> Result<Vec<u64>, LaunchError> {
    let path = dir.join(FOUNDERS_FILE);
    let io = |what: &str, source| LaunchError::Io {
        what: format!("{what} {}", path.display()),
        source,
    };
    if fresh {
        let ids: Vec<String> = config.founders().iter().map(u64::to_string).collect();
        let mut f = std::fs::File::create(&path).map_err(|e| io("create", e))?;
        std::io::Write::write_all(&mut f, ids.join(",").as_bytes()).map_err(|e| io("write", e))?;
        f.sync_all().map_err(|e| io("fsync", e))?;
        dirs::sync_dir(dir).map_err(|e| io("fsync the directory of", e))?;
        return Ok(config.founders());
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .split(',')
            .map(|id| id.trim().parse::<u64>())
            .collect::<Result<Vec<u64>, _>>()
            .map_err(|e| {
                io(
                    "parse",
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
            }),
        // A data directory from before membership changes: --peers.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(config.founders()),
        Err(e) => Err(io("read", e)),
    }
}

/// What recovery rebuilt from the data directory.
struct Recovery {
    raw: raft::RawNode<NodeStorage>,
    wal: Wal,
    fsm: StateMachine,
    applied: u64,
    fresh: bool,
    restarts: u64,
    block_store: Option<StoreState>,
    next_generation: u64,
}

/// Reads the snapshot and the log and builds raft on them.
fn recover(config: &NodeConfig) -> Result<Recovery, LaunchError> {
    let args = &config.args;
    let dir = &args.data_dir;
    let created = dirs::create_synced(dir).map_err(|source| LaunchError::Io {
        what: format!("create {} (and fsync its parent)", dir.display()),
        source,
    })?;
    if !created.is_empty() {
        tracing::info!(created = ?created, "created the data directory, its name fsynced in its parent");
    }
    let restarts = count_restart(dir)?;
    let mut snapshot = wal::load_snapshot(dir)?;
    let (wal, recovered) = Wal::open(dir)?;
    let fresh =
        snapshot.is_none() && recovered.entries.is_empty() && recovered.hard_state.is_none();
    let mut fsm = StateMachine::default();
    let mut applied = 0;
    let mut block_store = None;
    if let Some(s) = &mut snapshot {
        let (restored, store) = restore_snapshot(dir, s)?;
        fsm = restored;
        block_store = store;
        applied = s.get_metadata().index;
    }
    let voters = founders(dir, config, fresh)?;
    let storage = NodeStorage::recover(voters, snapshot, &recovered)?;
    let resume = server::resume_applied(config, applied, storage.hard_state().commit);
    let raw = raft::RawNode::new(
        &raft_config(config, resume)?,
        storage,
        &slog_bridge::logger(),
    )?;
    tracing::info!(
        id = args.id,
        restarts,
        fresh,
        applied,
        entries = recovered.entries.len(),
        height = fsm.ledger.height(),
        "recovered"
    );
    Ok(Recovery {
        raw,
        wal,
        fsm,
        applied,
        fresh,
        restarts,
        block_store,
        next_generation: blockstore::next_generation(dir),
    })
}

/// The state a snapshot file holds: a manifest's blocks are read from the
/// block store it names, and the snapshot's data becomes the whole state
/// (what raft ships to a follower); older files hold the whole state.
fn restore_snapshot(
    dir: &Path,
    s: &mut raft::prelude::Snapshot,
) -> Result<(StateMachine, Option<StoreState>), LaunchError> {
    let data_error = |source| LaunchError::SnapshotData {
        path: dir.join(wal::SNAPSHOT_FILE).display().to_string(),
        source,
    };
    let Some(manifest) = Manifest::decode(&s.data) else {
        let fsm = StateMachine::from_snapshot_data(&s.data).map_err(data_error)?;
        return Ok((fsm, None));
    };
    let manifest = manifest.map_err(data_error)?;
    let (blocks, store) = blockstore::read(dir, manifest.generation, manifest.height)?;
    let fsm = manifest
        .restore(blocks)
        .map_err(|source| LaunchError::SnapshotData {
            path: blockstore::path(dir, store.generation)
                .display()
                .to_string(),
            source,
        })?;
    s.data = fsm.to_snapshot_data().into();
    Ok((fsm, Some(store)))
}

fn raft_config(config: &NodeConfig, applied: u64) -> Result<raft::Config, LaunchError> {
    let args = &config.args;
    let raft_config = raft::Config {
        id: args.id,
        election_tick: args.election_tick,
        heartbeat_tick: args.heartbeat_tick,
        pre_vote: !args.no_pre_vote,
        check_quorum: !args.no_check_quorum,
        applied,
        max_size_per_msg: 4 << 20,
        max_inflight_msgs: 256,
        ..Default::default()
    };
    raft_config.validate()?;
    Ok(raft_config)
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, LaunchError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| LaunchError::Bind { addr, source })
}

fn shared_state(config: &NodeConfig, fsm: StateMachine, restarts: u64) -> Arc<Shared> {
    let (height, _) = watch::channel(fsm.ledger.height());
    Arc::new(Shared {
        metrics: Mutex::new(Metrics::new(config.fsync_warn_threshold())),
        status: Mutex::new(StatusView {
            id: config.args.id,
            role: "follower",
            ..StatusView::default()
        }),
        fsm: RwLock::new(fsm),
        members: Mutex::default(),
        height,
        restarts,
        started: Instant::now(),
        started_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        config: config.clone(),
    })
}

/// Runs a node until it is told to stop.
pub async fn run(config: NodeConfig) -> Result<(), LaunchError> {
    let args = &config.args;
    // Before recovery, so that a crash point armed by flag and reached
    // while recovering is traced too.
    let trace = match &args.trace {
        Some(path) => Trace::open(path, args.id)?,
        None => Trace::off(),
    };
    arm_crash_points(&config, &trace);
    let rec = recover(&config)?;
    let peer_listener = bind(args.listen_peer).await?;
    let client_listener = bind(args.listen_client).await?;
    let shared = shared_state(&config, rec.fsm, rec.restarts);
    let (events, events_rx) = event::inbox(EVENT_QUEUE_MAX);
    let transport = Transport::start(args.id, &config.peers, &events);
    tokio::spawn(transport::serve(
        peer_listener,
        args.id,
        transport.known(),
        events.clone(),
    ));
    let raft_loop = RaftLoop::new(
        shared.clone(),
        LoopParts {
            raw: rec.raw,
            wal: rec.wal,
            data_dir: args.data_dir.clone(),
            transport,
            fresh: rec.fresh,
            applied_index: rec.applied,
            trace,
            block_store: rec.block_store,
            next_generation: rec.next_generation,
            snapshotter: Snapshotter::start(args.data_dir.clone()).map_err(|source| {
                LaunchError::Io {
                    what: "spawn snapshot thread".into(),
                    source,
                }
            })?,
        },
    );
    // Fires when the raft thread ends for any reason (an error, a panic):
    // the API must not outlive it (issue 13, defect 2; Fabric panics).
    let (ended_tx, ended_rx) = oneshot::channel::<()>();
    let raft_thread = std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || {
            let _ended = EndSignal(Some(ended_tx));
            raft_loop.run(events_rx)
        })
        .map_err(|source| LaunchError::Io {
            what: "spawn raft thread".into(),
            source,
        })?;
    spawn_waker(events.clone())?;
    let app = api::router(ApiState {
        shared: shared.clone(),
        events: events.clone(),
    });
    tracing::info!(client = %args.listen_client, peer = %args.listen_peer, "serving");
    let served = axum::serve(client_listener, app)
        .with_graceful_shutdown(async {
            tokio::select! {
                _ = stop_signal() => {}
                _ = ended_rx => tracing::error!("the raft loop stopped; stopping the node"),
            }
        })
        .await;
    stop_raft(events, raft_thread).await?;
    served.map_err(|source| LaunchError::Io {
        what: "client API".into(),
        source,
    })
}

/// Points the crash points' reporter at the trace, and arms those
/// `--crash-point` named.
fn arm_crash_points(config: &NodeConfig, trace: &Trace) {
    if let Some(sink) = trace.crash_sink() {
        crash_points::REGISTRY.set_reporter(Box::new(move |f| report_crash_point(&sink, f)));
    }
    for (point, arming) in &config.crash_points {
        match crash_points::REGISTRY.arm(point.name(), *arming) {
            Ok(view) => tracing::warn!(
                point = view.name,
                action = arming.action.name(),
                hit = arming.hit,
                "crash point armed by --crash-point"
            ),
            Err(e) => tracing::error!(error = %e, "crash point not armed"),
        }
    }
}

/// The trace's `crash_point` event; for an abort the trace stays locked
/// until the process is gone, so that it is the file's last line.
fn report_crash_point(sink: &CrashSink, f: &crash_points::Fired) {
    let event = CrashPointFired {
        name: f.point.name(),
        action: f.action.name(),
        sleep_ms: f.action.sleep_ms(),
        hit: f.hit,
        reached: f.reached,
        thread: &f.thread,
    };
    let hold = f.action == crash_points::Action::Abort;
    if let Err(error) = sink.crash_point(&event, hold) {
        tracing::error!(%error, "could not write the crash_point event to the trace");
    }
}

/// Asks the raft loop to sync and stop, and waits for its thread.
async fn stop_raft(
    events: Inbox,
    raft_thread: std::thread::JoinHandle<Result<(), LoopError>>,
) -> Result<(), LaunchError> {
    let (done_tx, done_rx) = oneshot::channel();
    events.shutdown(done_tx);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), done_rx).await;
    drop(events);
    match raft_thread.join() {
        Ok(result) => Ok(result?),
        Err(_) => Err(LaunchError::RaftPanicked),
    }
}

/// Sends on drop, so that the thread's end is noticed however it ends.
struct EndSignal(Option<oneshot::Sender<()>>);

impl Drop for EndSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// How often the waker nudges the raft loop (well under the batch timeout).
const WAKE_PERIOD: std::time::Duration = std::time::Duration::from_millis(5);

/// Nudges the raft loop every [`WAKE_PERIOD`] with a relative sleep.
fn spawn_waker(events: Inbox) -> Result<(), LaunchError> {
    std::thread::Builder::new()
        .name("waker".into())
        .spawn(move || loop {
            std::thread::sleep(WAKE_PERIOD);
            if !events.wake() {
                return;
            }
        })
        .map(|_| ())
        .map_err(|source| LaunchError::Io {
            what: "spawn waker thread".into(),
            source,
        })
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
