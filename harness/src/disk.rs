//! Disk faults: every node's data directory on its own faultfs mount
//! (`docs/faultfs.md`), and the nemeses that use it — `power` (SIGKILL and
//! `lose-unfsynced`, one node or all at once), `torn` (the same with
//! `torn`), `slow-disk` (fsync delayed past half the election timeout) and
//! `disk-error` (fsync fails with EIO).
//!
//! The mounts are made on the host in both runtimes: the process runtime
//! runs each node on its mount, the Docker runtime binds the mount into the
//! container at `/data`. Each `faultfs mount` process is started from a
//! thread of its own that lives as long as the mount (PR_SET_PDEATHSIG fires
//! when the spawning thread ends), so a killed harness takes its mounts with
//! it; `harness clean` detaches any left under the store.

use crate::history::Recorder;
use crate::plan::Fault;
use crate::runtime::{AnyRuntime, Runtime};
use anyhow::{bail, Context};
use faultfs::{Command as FsCommand, FsyncError, TailShape};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::Mutex;

/// The faults that need faultfs.
pub const DISK_FAULTS: [Fault; 4] = [Fault::Power, Fault::Torn, Fault::SlowDisk, Fault::DiskError];

/// How long a mount may take to come up (faultfs's own start timeout plus
/// a margin for the thread).
const MOUNT_WAIT_MAX: Duration = Duration::from_secs(20);
/// How long unmounting one node's disk may take (faultfs's stop timeout,
/// then the detach).
const UNMOUNT_WAIT_MAX: Duration = Duration::from_secs(20);
/// The mount's control socket, inside the node's work directory.
const SOCKET_NAME: &str = "faultfs.sock";
/// Longest unix socket path the kernel accepts (`sun_path` less its NUL).
const SOCKET_PATH_BYTES_MAX: usize = 107;

/// Whether the fault needs faultfs.
pub fn is_disk(fault: Fault) -> bool {
    DISK_FAULTS.contains(&fault)
}

/// Why FUSE mounts cannot be made here, or `None` when they can: faultfs
/// needs `/dev/fuse` and root (CAP_SYS_ADMIN) to mount.
pub fn fuse_unavailable() -> Option<String> {
    let dev = Path::new("/dev/fuse");
    if !dev.exists() {
        return Some("/dev/fuse does not exist (no FUSE in this kernel or container)".into());
    }
    // /proc/self belongs to the process's effective user.
    let euid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").ok()?);
    if euid != 0 {
        return Some(
            "faultfs mounts need root (CAP_SYS_ADMIN); the harness runs as another user".into(),
        );
    }
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(dev) {
        return Some(format!("/dev/fuse cannot be opened: {e}"));
    }
    None
}

/// The faultfs binary: `ORDEAL_FAULTFS_BIN` when set; otherwise built
/// from this workspace with cargo in `profile`; otherwise beside this
/// program.
pub fn faultfs_binary(profile: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("ORDEAL_FAULTFS_BIN").map(PathBuf::from) {
        if !path.is_file() {
            bail!("ORDEAL_FAULTFS_BIN={}: no such file", path.display());
        }
        return Ok(path);
    }
    let beside = std::env::current_exe()?.with_file_name("faultfs");
    let root = crate::binary::workspace_root();
    if root.join("Cargo.toml").is_file() {
        let mut cmd =
            std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.current_dir(&root)
            .args(["build", "-q", "-p", "faultfs", "--bin", "faultfs"]);
        if profile == "release" {
            cmd.arg("--release");
        }
        let status = cmd.status().context("running cargo to build faultfs")?;
        let built = crate::binary::target_dir().join(profile).join("faultfs");
        if status.success() && built.is_file() {
            return Ok(built);
        }
    }
    if beside.is_file() {
        return Ok(beside);
    }
    bail!("cannot find the faultfs binary: set ORDEAL_FAULTFS_BIN or build it (cargo build -p faultfs)")
}

/// What a runtime needs to put data directories on faultfs.
#[derive(Debug, Clone)]
pub struct DiskSpec {
    /// The faultfs binary.
    pub binary: PathBuf,
    /// Seeds each mount (node `i` gets `seed + i`): `torn` without a seed
    /// draws from it.
    pub seed: u64,
}

/// One node's mount: the thread that owns the faultfs process and the way
/// to tell it to stop.
#[derive(Debug)]
struct NodeDisk {
    node: String,
    mountpoint: PathBuf,
    socket: PathBuf,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

/// Every node's faultfs mount. Unmounted by [`Disks::unmount`] or on drop.
#[derive(Debug, Default)]
pub struct Disks {
    disks: Vec<NodeDisk>,
}

impl Disks {
    /// Mounts `<dir>/backing` at `<dir>/data` for every `(node, dir)`;
    /// the control socket is `<dir>/faultfs.sock`, the log
    /// `<dir>/faultfs.log`. On an error, what was mounted is unmounted.
    pub fn mount(spec: &DiskSpec, nodes: &[(String, PathBuf)]) -> anyhow::Result<Disks> {
        let mut disks = Disks::default();
        for (i, (node, dir)) in nodes.iter().enumerate() {
            let disk = mount_node(spec, spec.seed.wrapping_add(i as u64), node, dir)?;
            disks.disks.push(disk);
        }
        Ok(disks)
    }

    /// Mounts one more node's data directory (a node added during the
    /// run), seeded as node `index` of [`Disks::mount`] would be.
    pub fn mount_one(
        &mut self,
        spec: &DiskSpec,
        index: u64,
        node: &str,
        dir: &Path,
    ) -> anyhow::Result<()> {
        let disk = mount_node(spec, spec.seed.wrapping_add(index), node, dir)?;
        self.disks.push(disk);
        Ok(())
    }

    /// The node's data directory (the mount point) on the host.
    pub fn mountpoint(&self, node: &str) -> Option<&Path> {
        self.find(node).ok().map(|d| d.mountpoint.as_path())
    }

    fn find(&self, node: &str) -> anyhow::Result<&NodeDisk> {
        self.disks
            .iter()
            .find(|d| d.node == node)
            .with_context(|| format!("{node} has no faultfs mount"))
    }

    /// Sends one command to the node's faultfs; returns its answer (`ok`
    /// and any JSON after it).
    pub async fn command(&self, node: &str, command: FsCommand) -> anyhow::Result<String> {
        let socket = self.find(node)?.socket.clone();
        let line = command.line();
        let node = node.to_string();
        tokio::task::spawn_blocking(move || faultfs::Client::new(socket).send(&command))
            .await
            .context("the faultfs client thread panicked")?
            .with_context(|| format!("faultfs of {node}: `{line}`"))
    }

    /// Stops every faultfs process and waits until its mount is gone.
    pub fn unmount(&mut self) -> anyhow::Result<()> {
        let mut failed = Vec::new();
        for mut disk in self.disks.drain(..) {
            // Detached first: a container's copy of the mount can keep a
            // plain unmount busy until faultfs's stop times out.
            let _ = faultfs::force_unmount(&disk.mountpoint);
            drop(disk.stop.take());
            let ended = disk.thread.take().map(|t| t.join());
            match ended {
                Some(Ok(Err(e))) => failed.push(format!("{}: {e}", disk.node)),
                Some(Err(_)) => failed.push(format!("{}: the mount thread panicked", disk.node)),
                _ => {}
            }
            if faultfs::wait_unmounted(&disk.mountpoint, Duration::from_secs(2)).is_err() {
                let _ = faultfs::force_unmount(&disk.mountpoint);
                if let Err(e) = faultfs::wait_unmounted(&disk.mountpoint, Duration::from_secs(2)) {
                    failed.push(format!("{}: {e}", disk.node));
                }
            }
        }
        if !failed.is_empty() {
            bail!("unmounting faultfs: {}", failed.join("; "));
        }
        Ok(())
    }
}

impl Drop for Disks {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            tracing::warn!(error = %e, "unmounting faultfs on drop");
        }
    }
}

/// Starts one node's faultfs from a thread that keeps it until told to
/// stop (or until the sender is dropped).
fn mount_node(spec: &DiskSpec, seed: u64, node: &str, dir: &Path) -> anyhow::Result<NodeDisk> {
    let backing = dir.join("backing");
    let mountpoint = dir.join("data");
    let socket = dir.join(SOCKET_NAME);
    let log = dir.join("faultfs.log");
    for d in [&backing, &mountpoint] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    if socket.as_os_str().len() > SOCKET_PATH_BYTES_MAX {
        bail!(
            "the faultfs control socket path {} is longer than {SOCKET_PATH_BYTES_MAX} bytes: use a shorter --store",
            socket.display()
        );
    }
    let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), String>>(1);
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let binary = spec.binary.clone();
    let (mp, sock) = (mountpoint.clone(), socket.clone());
    let thread = std::thread::Builder::new()
        .name(format!("faultfs-{node}"))
        .spawn(move || {
            match faultfs::FaultfsProcess::start(&binary, &backing, &mp, &sock, seed, Some(&log)) {
                Ok(process) => {
                    let _ = ready_tx.send(Ok(()));
                    // Until told to stop, or until the harness drops us.
                    let _ = stop_rx.recv();
                    process.stop().map_err(|e| e.to_string())
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    Ok(())
                }
            }
        })
        .context("spawning a faultfs thread")?;
    let disk = NodeDisk {
        node: node.to_string(),
        mountpoint,
        socket,
        stop: Some(stop_tx),
        thread: Some(thread),
    };
    match ready_rx.recv_timeout(MOUNT_WAIT_MAX) {
        Ok(Ok(())) => {
            tracing::info!(node, mountpoint = %disk.mountpoint.display(), "faultfs mounted");
            Ok(disk)
        }
        Ok(Err(e)) => bail!("mounting faultfs for {node}: {e}"),
        Err(_) => bail!("mounting faultfs for {node}: no answer within {MOUNT_WAIT_MAX:?}"),
    }
}

/// Detaches every faultfs mount under `root` (a store's work directories)
/// that no live harness owns, and kills the faultfs processes serving them.
/// Returns what was removed.
pub fn clean_leftovers(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut cleaned = Vec::new();
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let mounts = faultfs::faultfs_mounts().context("reading /proc/mounts")?;
    for mount in mounts.into_iter().filter(|m| m.starts_with(&root)) {
        let owner = mount
            .strip_prefix(&root)
            .ok()
            .and_then(|rest| rest.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        if owner.as_deref().is_some_and(crate::runtime::owner_alive) {
            continue;
        }
        kill_faultfs_serving(&mount);
        faultfs::force_unmount(&mount)
            .with_context(|| format!("detaching the faultfs mount {}", mount.display()))?;
        faultfs::wait_unmounted(&mount, UNMOUNT_WAIT_MAX)
            .with_context(|| format!("waiting for {} to unmount", mount.display()))?;
        cleaned.push(format!("faultfs mount {}", mount.display()));
    }
    Ok(cleaned)
}

/// SIGKILLs `faultfs mount` processes whose command line names `mountpoint`.
fn kill_faultfs_serving(mountpoint: &Path) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let needle = mountpoint.to_string_lossy().into_owned();
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_faultfs = args.first().is_some_and(|a| a.ends_with("faultfs"))
            && args.get(1).is_some_and(|a| a == "mount");
        if is_faultfs && args.contains(&needle) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// A disk fault in force: what to undo at its end.
#[derive(Debug)]
pub struct DiskActive {
    /// The fault.
    pub fault: Fault,
    /// Its nodes.
    pub targets: Vec<String>,
}

/// Injects a disk fault, recording its start: `power` and `torn` SIGKILL
/// one node or (every other power loss, which of the two seeded) every
/// node, then drop (`lose-unfsynced`) or tear (`torn SEED`) what each had
/// not fsynced; `slow-disk` delays one node's fsyncs past half the
/// election timeout; `disk-error` makes one node's fsyncs fail with EIO.
pub async fn inject(
    fault: Fault,
    rng: &mut ChaCha8Rng,
    losses: &mut u64,
    runtime: &Mutex<AnyRuntime>,
    recorder: &Recorder,
    nodes: &[String],
    election_timeout_ms: u64,
) -> anyhow::Result<DiskActive> {
    let one = vec![nodes.choose(rng).expect("nodes").clone()];
    let mut rt = runtime.lock().await;
    let targets = match fault {
        Fault::Power | Fault::Torn => {
            // Every other loss takes every node (the first or the second,
            // seeded), so any two power faults hold a correlated loss.
            if *losses == 0 {
                *losses = rng.gen_range(1..=2);
            }
            let every = *losses % 2 == 0 && nodes.len() > 1;
            *losses += 1;
            let targets = if every { nodes.to_vec() } else { one };
            let seed: u64 = rng.gen();
            let scope = if every { "every node" } else { "one node" };
            recorder.nemesis(
                fault,
                json!({"phase": "start", "targets": targets, "scope": scope}),
            );
            for t in &targets {
                rt.kill(t).await?;
            }
            for t in &targets {
                let command = if fault == Fault::Torn {
                    FsCommand::Torn {
                        seed: Some(seed),
                        tail: TailShape::Keep,
                    }
                } else {
                    FsCommand::LoseUnfsynced {
                        tail: TailShape::Keep,
                        seed: None,
                    }
                };
                let answer = rt.disk(t, command).await?;
                recorder.nemesis(
                    fault,
                    json!({"phase": "disk", "targets": [t], "faultfs": answer}),
                );
            }
            targets
        }
        Fault::SlowDisk => {
            let ms = election_timeout_ms / 2 + election_timeout_ms / 4;
            let jitter_ms = election_timeout_ms / 2;
            recorder.nemesis(fault, json!({"phase": "start", "targets": one, "delay_fsync_ms": ms, "jitter_ms": jitter_ms}));
            rt.disk(&one[0], FsCommand::DelayFsync { ms, jitter_ms })
                .await?;
            one
        }
        Fault::DiskError => {
            recorder.nemesis(
                fault,
                json!({"phase": "start", "targets": one, "fail_fsync": "EIO"}),
            );
            let error = FsyncError::Eio;
            rt.disk(&one[0], FsCommand::FailFsync { error, count: None })
                .await?;
            one
        }
        other => bail!("{} is not a disk fault", other.name()),
    };
    Ok(DiskActive { fault, targets })
}

/// Undoes a disk fault: power losses restart their nodes on what the disk
/// kept; slow and failing disks are healed, and a node that stopped on a
/// failed fsync loses what it had not persisted (its process is gone, as in
/// a crash) and is restarted on the healed disk.
pub async fn heal(active: &DiskActive, rt: &mut AnyRuntime) -> anyhow::Result<()> {
    for node in &active.targets {
        match active.fault {
            Fault::Power | Fault::Torn => rt.restart(node).await?,
            Fault::SlowDisk => _ = rt.disk(node, FsCommand::Heal).await?,
            _ => {
                rt.disk(node, FsCommand::Heal).await?;
                heal_stopped(rt, node).await?;
            }
        }
    }
    Ok(())
}

/// Restarts a node that may have stopped itself on a disk error: killed
/// (reaped, if it already ended), its unpersisted changes dropped, started.
async fn heal_stopped(rt: &mut AnyRuntime, node: &str) -> anyhow::Result<()> {
    if let Err(e) = rt.kill(node).await {
        tracing::debug!(node, error = %e, "the node had already stopped");
    }
    rt.disk(
        node,
        FsCommand::LoseUnfsynced {
            tail: TailShape::Keep,
            seed: None,
        },
    )
    .await?;
    rt.restart(node).await
}

/// The final heal of disk faults: every disk's delays and failures
/// removed, and every node that is not running (one stopped by a disk
/// error) restarted on what its disk kept.
pub async fn heal_all(rt: &mut AnyRuntime, nodes: &[String]) -> anyhow::Result<()> {
    for node in nodes {
        rt.disk(node, FsCommand::Heal).await?;
        if !rt.running(node).await {
            heal_stopped(rt, node).await?;
        }
    }
    Ok(())
}

/// The runtime's disk spec for a plan: faultfs mounts when the plan has a
/// disk fault or asks for them (`--faultfs`); faultfs built in release,
/// as the node is.
pub fn spec_for(plan: &crate::plan::Plan) -> anyhow::Result<Option<DiskSpec>> {
    if !plan.faultfs && !plan.nemesis.iter().any(|f| is_disk(*f)) {
        return Ok(None);
    }
    if let Some(why) = fuse_unavailable() {
        bail!("faultfs cannot be mounted here: {why}");
    }
    Ok(Some(DiskSpec {
        binary: faultfs_binary("release")?,
        seed: plan.seed,
    }))
}

/// Rounds of `harness bench --compare-faultfs`, each a plain run and a
/// faultfs run (their order alternating between rounds).
const BENCH_ROUNDS: usize = 2;

/// `harness bench --compare-faultfs`: the max-rate benchmark with every
/// data directory plain and on faultfs, alternately, in one command;
/// prints each run's ops/s and the ratio of the medians (faultfs / plain).
pub async fn bench_compare(
    args: &crate::cli::TestArgs,
    slot: &crate::run::RuntimeSlot,
) -> anyhow::Result<u8> {
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut worst = checker::verdict::Validity::Valid;
    for round in 0..BENCH_ROUNDS {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for faultfs in order {
            let mut a = args.clone();
            a.nemesis = "none".into();
            a.rate = 0.0;
            a.faultfs = faultfs;
            let plan = crate::plan::Plan::resolve(&a)?;
            let binary = crate::sut::System::binary(&plan.sut, &plan)?;
            let outcome = crate::run::run_test(&plan, &binary, slot).await?;
            let (ok, fail, info) = outcome.counts;
            let rate = (ok + fail + info) as f64 / outcome.workload_s.max(1e-9);
            let side = if faultfs { "faultfs" } else { "plain" };
            println!(
                "{}",
                json!({"round": round, "disk": side, "ops_per_s": rate, "ok": ok, "seed": plan.seed})
            );
            rates[usize::from(faultfs)].push(rate);
            worst = crate::verdict::worst(worst, outcome.results.valid);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2.0
    };
    let (plain, fs) = (median(&mut rates[0]), median(&mut rates[1]));
    println!(
        "{}",
        json!({"plain_ops_per_s": plain, "faultfs_ops_per_s": fs, "ratio": fs / plain.max(1e-9), "rounds": BENCH_ROUNDS})
    );
    Ok(crate::verdict::exit_code(worst))
}

/// A runtime's [`Runtime::disk`](crate::runtime::Runtime::disk): the
/// command sent to the node's faultfs, or an error when the run has none.
pub async fn command_on(
    disks: Option<&Disks>,
    node: &str,
    command: FsCommand,
) -> anyhow::Result<String> {
    disks
        .context("this run has no faultfs mounts")?
        .command(node, command)
        .await
}
