//! Mounting faultfs in this process, and what is mounted where.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use fuser::{BackgroundSession, Config, MountOption, SessionACL};

use crate::fs::FaultFs;
use crate::overlay::Overlay;

/// Kernel request threads per mount: a delayed fsync holds one, the others
/// keep serving reads and writes.
pub const REQUEST_THREADS: usize = 4;

/// Pending write bytes kept in memory by default before they are written
/// back (not fsynced), as a page cache under memory pressure would.
pub const PENDING_BYTES_MAX_DEFAULT: u64 = 256 << 20;

/// What to mount.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// The backing directory: the durable image.
    pub backing: PathBuf,
    /// Where the filesystem appears.
    pub mountpoint: PathBuf,
    /// Seeds fsync jitter and `torn` without a seed.
    pub seed: u64,
    /// Pending write bytes kept before writing back.
    pub pending_bytes_max: u64,
}

/// A mounted faultfs; unmounted by [`Mounted::unmount`] or on drop.
#[derive(Debug)]
pub struct Mounted {
    fs: FaultFs,
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
}

/// Mounts `config.backing` at `config.mountpoint` (directly through
/// `/dev/fuse`: this needs root). A SIGKILL of this process leaves the
/// mount behind: `faultfs mount` forks a watchdog that detaches it (see
/// `docs/faultfs.md`); [`force_unmount`] does it by hand.
pub fn mount(config: &MountConfig) -> io::Result<Mounted> {
    let named = |what: &str, path: &Path| {
        let what = what.to_owned();
        let path = path.to_path_buf();
        move |e: io::Error| io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
    };
    let backing = config
        .backing
        .canonicalize()
        .map_err(named("backing directory", &config.backing))?;
    let mountpoint = config
        .mountpoint
        .canonicalize()
        .map_err(named("mountpoint", &config.mountpoint))?;
    if mountpoint.starts_with(&backing) || backing.starts_with(&mountpoint) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "mountpoint {} and backing {} must not contain one another",
                mountpoint.display(),
                backing.display()
            ),
        ));
    }
    let overlay = Overlay::open(&backing, config.pending_bytes_max)?;
    let fs = FaultFs::new(overlay, config.seed);
    let options = vec![
        MountOption::FSName(format!("faultfs:{}", backing.display())),
        MountOption::Subtype("faultfs".into()),
        MountOption::DefaultPermissions,
    ];
    let mut fuse_config = Config::default();
    fuse_config.mount_options = options;
    fuse_config.acl = SessionACL::All;
    fuse_config.n_threads = Some(REQUEST_THREADS);
    fuse_config.clone_fd = true;
    let session = fuser::spawn_mount(fs.clone(), &mountpoint, &fuse_config)?;
    tracing::info!(backing = %backing.display(), mountpoint = %mountpoint.display(), seed = config.seed, "mounted");
    Ok(Mounted {
        fs,
        session: Some(session),
        mountpoint,
    })
}

impl Mounted {
    /// The filesystem, to hand control commands to.
    pub fn handler(&self) -> std::sync::Arc<dyn crate::control::Handler> {
        std::sync::Arc::new(self.fs.clone())
    }

    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Whether the session ended on its own (someone unmounted it).
    pub fn ended(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.guard.is_finished())
    }

    /// Unmounts and waits up to `timeout` for the request threads to end.
    pub fn unmount(mut self, timeout: Duration) -> io::Result<()> {
        self.unmount_inner(timeout)
    }

    fn unmount_inner(&mut self, timeout: Duration) -> io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let (tx, rx) = mpsc::sync_channel(1);
        std::thread::spawn(move || {
            let _ = tx.send(session.umount_and_join());
        });
        let outcome = match rx.recv_timeout(timeout) {
            Ok(outcome) => outcome,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the filesystem's threads did not end",
            )),
        };
        if let Err(e) = &outcome {
            // Busy (a process still has a file or its working directory
            // there): detach it, so that no mount outlives faultfs; the
            // kernel drops it once the last user lets go.
            tracing::warn!(mountpoint = %self.mountpoint.display(), error = %e, "unmount failed: detaching");
            if is_mounted(&self.mountpoint)? {
                force_unmount(&self.mountpoint)?;
            }
        }
        wait_unmounted(&self.mountpoint, timeout)?;
        tracing::info!(mountpoint = %self.mountpoint.display(), "unmounted");
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_inner(Duration::from_secs(10)) {
            tracing::warn!(mountpoint = %self.mountpoint.display(), error = %e, "unmount on drop failed");
        }
    }
}

/// Waits up to `timeout` for `path` to leave `/proc/mounts`.
pub fn wait_unmounted(path: &Path, timeout: Duration) -> io::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    while is_mounted(path)? {
        if std::time::Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{} still mounted", path.display()),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Decodes `/proc/mounts`' octal escapes (`\040` for a space).
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points of every faultfs mount on this machine (from `/proc/mounts`).
pub fn faultfs_mounts() -> io::Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string("/proc/mounts")?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (source, target, fstype) = (f.next()?, f.next()?, f.next()?);
            (source.starts_with("faultfs") || fstype.ends_with(".faultfs"))
                .then(|| PathBuf::from(unescape_mount_field(target)))
        })
        .collect())
}

/// Whether `path` is a mount point in `/proc/mounts`.
pub fn is_mounted(path: &Path) -> io::Result<bool> {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let text = std::fs::read_to_string("/proc/mounts")?;
    Ok(text.lines().any(|l| {
        l.split(' ')
            .nth(1)
            .is_some_and(|t| Path::new(&unescape_mount_field(t)) == path)
    }))
}

/// Detaches a mount left behind (a faultfs killed without `fusermount3`).
/// A mount already gone (its faultfs's watchdog detached it first: the
/// kernel answers EINVAL for a path that is no mount point) is done, not an
/// error.
pub fn force_unmount(path: &Path) -> io::Result<()> {
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) if !is_mounted(path)? => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mount_fields_unescape() {
        assert_eq!(super::unescape_mount_field(r"/a\040b\134c"), r"/a b\c");
        assert_eq!(super::unescape_mount_field(r"/plain\0"), r"/plain\0");
    }
}
