//! End-to-end tests of faultfs: the real binary mounted through /dev/fuse,
//! real files, real fsync, a real ordeal-node cluster on it.
//!
//! They need root and /dev/fuse. Without them they skip loudly; with
//! `ORDEAL_REQUIRE_FUSE=1` (CI) they fail instead.

mod control;
mod corrupt;
mod differential;
mod durability;
mod enospc;
mod faults;
mod node;
mod posix;
mod rollback;
mod tails;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use faultfs::{is_mounted, Client, ClientError, FaultfsProcess};

const EXE: &str = env!("CARGO_BIN_EXE_faultfs");

/// Whether FUSE tests can run here; panics when they must and cannot.
pub fn fuse_or_skip(test: &str) -> bool {
    let why = if !Path::new("/dev/fuse").exists() {
        Some("no /dev/fuse")
    } else if unsafe { libc::geteuid() } != 0 {
        Some("not root")
    } else {
        None
    };
    match why {
        None => true,
        Some(why) if std::env::var("ORDEAL_REQUIRE_FUSE").as_deref() == Ok("1") => {
            panic!("{test}: FUSE required (ORDEAL_REQUIRE_FUSE=1) but {why}")
        }
        Some(why) => {
            eprintln!("SKIPPED {test}: {why} (set ORDEAL_REQUIRE_FUSE=1 to make this a failure)");
            false
        }
    }
}

/// One faultfs mount in a scratch directory; stopped on drop, and the test
/// fails if the mount outlives it.
pub struct Mount {
    pub process: Option<FaultfsProcess>,
    pub dir: tempfile::TempDir,
}

impl Mount {
    pub fn start(seed: u64) -> Mount {
        let dir = tempfile::Builder::new()
            .prefix("faultfs-it-")
            .tempdir_in("/var/tmp")
            .unwrap();
        std::fs::create_dir(dir.path().join("backing")).unwrap();
        std::fs::create_dir(dir.path().join("mnt")).unwrap();
        let process = Self::spawn(dir.path(), seed, "faultfs.log");
        Mount {
            process: Some(process),
            dir,
        }
    }

    fn spawn(dir: &Path, seed: u64, log: &str) -> FaultfsProcess {
        FaultfsProcess::start(
            Path::new(EXE),
            &dir.join("backing"),
            &dir.join("mnt"),
            &dir.join("control.sock"),
            seed,
            Some(&dir.join(log)),
        )
        .unwrap()
    }

    /// Stops faultfs and starts a new one on the same backing directory
    /// and mount point: it sees the durable image only.
    pub fn restart(&mut self, seed: u64) {
        self.stop();
        self.process = Some(Self::spawn(self.dir.path(), seed, "faultfs-restarted.log"));
    }

    pub fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    pub fn backing(&self) -> PathBuf {
        self.dir.path().join("backing")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.mnt().join(name)
    }

    pub fn client(&self) -> Client {
        self.process.as_ref().unwrap().client().clone()
    }

    /// Stops faultfs and checks `/proc/mounts` no longer lists the mount.
    pub fn stop(&mut self) {
        if let Some(p) = self.process.take() {
            p.stop().unwrap();
            assert!(
                !is_mounted(&self.mnt()).unwrap(),
                "{} still mounted after stop",
                self.mnt().display()
            );
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop();
        } else if let Some(p) = self.process.take() {
            let _ = p.stop();
        }
    }
}

pub fn fsync_dir(dir: &Path) {
    File::open(dir).unwrap().sync_all().unwrap();
}

pub fn read(path: &Path) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut out).unwrap();
            Some(out)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("open {}: {e}", path.display()),
    }
}

/// Creates `path` with `data`, fsyncs it and (when `dir_too`) its directory.
pub fn write_durably(path: &Path, data: &[u8], dir_too: bool) {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
    if dir_too {
        fsync_dir(path.parent().unwrap());
    }
}

/// The reason faultfs gave for refusing a command; panics when it did not.
pub fn refused<T: std::fmt::Debug>(answer: Result<T, ClientError>) -> String {
    match answer {
        Err(ClientError::Refused { reason, .. }) => reason,
        other => panic!("not refused: {other:?}"),
    }
}
