//! Every node's data directory on its own faultfs mount
//! (`docs/faultfs.md`), for the disk faults (`nemesis/faults/power.rs`,
//! `torn.rs`, `slow_disk.rs`, `disk_error.rs`), which reach a node's
//! faultfs through the runtime's `disk` verb (`verbs.rs`, above this file).
//!
//! The mounts are made on the host in both runtimes: the process runtime
//! runs each node on its mount, the Docker runtime binds the mount into the
//! container at `/data`. Each `faultfs mount` process is started from a
//! thread of its own that lives as long as the mount (PR_SET_PDEATHSIG fires
//! when the spawning thread ends), so a killed harness takes its mounts with
//! it; `harness clean` detaches any left under the store.

use anyhow::{bail, Context};
use faultfs::Command as FsCommand;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

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
        // Said before cargo runs: a build (or a wait for another cargo's
        // lock on the target directory) takes minutes with nothing else
        // on the terminal.
        tracing::info!(profile, "building faultfs");
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

    /// Empties the node's data directory through its mount, as an
    /// operator's `rm -rf data/*` would, then fsyncs the directory so the
    /// emptiness is durable (faultfs commits the removals with it); the
    /// node must be stopped. Returns what was removed.
    pub async fn empty(&self, node: &str) -> anyhow::Result<Emptied> {
        let dir = self.find(node)?.mountpoint.clone();
        let node = node.to_string();
        tokio::task::spawn_blocking(move || {
            empty_dir(&dir)
                .with_context(|| format!("emptying {node}'s data directory {}", dir.display()))
        })
        .await
        .context("the emptying thread panicked")?
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

/// What emptying a data directory removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Emptied {
    /// Files removed (in subdirectories too).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Removes everything in `dir` and fsyncs it.
fn empty_dir(dir: &Path) -> anyhow::Result<Emptied> {
    let mut emptied = Emptied::default();
    count_files(dir, &mut emptied)?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("removing {}", path.display()))?;
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsyncing {}", dir.display()))?;
    Ok(emptied)
}

fn count_files(dir: &Path, into: &mut Emptied) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            count_files(&entry.path(), into)?;
        } else {
            into.files += 1;
            into.bytes += meta.len();
        }
    }
    Ok(())
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
        if owner
            .as_deref()
            .is_some_and(crate::runtime::label::owner_alive)
        {
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

/// A runtime's `Runtime::empty_disk` (`verbs.rs`): the node's data
/// directory emptied, or an error when the run has no faultfs mounts.
pub async fn empty_on(disks: Option<&Disks>, node: &str) -> anyhow::Result<Emptied> {
    disks
        .context("this run has no faultfs mounts")?
        .empty(node)
        .await
}

/// A runtime's `Runtime::disk` (`verbs.rs`): the
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
