//! The control commands carried out on a mounted faultfs: each takes the
//! overlay's lock (so no kernel request runs in the middle of one) and
//! answers with what it did.

use std::fmt::Display;
use std::time::{Duration, Instant};

use fuser::Errno;
use serde::Serialize;

use crate::control::{Command, Handler};
use crate::fs::{lock, FaultFs};
use crate::overlay::{Damage, FaultError, TailShape};

/// How long `restore` waits for open handles to close (the kernel releases
/// a killed process's files shortly after it dies) before refusing.
pub const RESTORE_WAIT: Duration = Duration::from_secs(3);

/// Open paths named in a refused `restore`, at most.
const BUSY_PATHS_MAX: usize = 5;

fn json<T: Serialize, E: Display>(done: Result<T, E>) -> Result<String, String> {
    let done = done.map_err(|e| e.to_string())?;
    serde_json::to_string(&done).map_err(|e| e.to_string())
}

fn errno(e: Errno) -> String {
    format!("errno {}", i32::from(e))
}

impl Handler for FaultFs {
    fn handle(&self, command: Command) -> Result<String, String> {
        match command {
            Command::LoseUnfsynced {
                tail: TailShape::Keep,
                seed: None,
            } => lock(&self.state)
                .overlay
                .lose()
                .map(|()| String::new())
                .map_err(errno),
            Command::LoseUnfsynced { tail, seed } => {
                let seed = seed.unwrap_or_else(|| self.draw_seed());
                let lost = lock(&self.state).overlay.lose_shaped(tail, seed);
                json(lost.map_err(errno))
            }
            Command::Flush => lock(&self.state)
                .overlay
                .flush_all()
                .map(|()| String::new())
                .map_err(errno),
            Command::Torn { seed, tail } => {
                let seed = seed.unwrap_or_else(|| self.draw_seed());
                json(lock(&self.state).overlay.torn(seed, tail).map_err(errno))
            }
            Command::Corrupt { path, damage } => {
                let seed = match damage {
                    Damage::Bitflip { seed: None, .. } => self.draw_seed(),
                    _ => 0,
                };
                json(lock(&self.state).overlay.corrupt(&path, damage, seed))
            }
            Command::CorruptPick {
                kind,
                glob,
                seed,
                length_max,
            } => json(
                lock(&self.state)
                    .overlay
                    .corrupt_pick(kind, &glob, seed, length_max),
            ),
            Command::Checkpoint { name } => json(lock(&self.state).overlay.checkpoint(&name)),
            Command::Restore { name } => json(self.restore(&name)),
            Command::DropCheckpoint { name } => lock(&self.state)
                .overlay
                .drop_checkpoint(&name)
                .map(|()| String::new())
                .map_err(|e| e.to_string()),
            Command::Report => self.report(),
            Command::Ping => Ok(String::new()),
            other => {
                self.set_fault(other);
                Ok(String::new())
            }
        }
    }
}

impl FaultFs {
    fn draw_seed(&self) -> u64 {
        lock(&self.faults).draw_seed()
    }

    /// The commands that only set or clear a fault in force.
    fn set_fault(&self, command: Command) {
        let mut faults = lock(&self.faults);
        match command {
            Command::DelayFsync { ms, jitter_ms } => faults.delay_fsync(ms, jitter_ms),
            Command::DelayWrite { ms } => faults.delay_write(ms),
            Command::FailFsync { error, count } => faults.fail_fsync(error, count),
            Command::EnospcOn { after_bytes } => faults.enospc_on(after_bytes),
            Command::EnospcOff => faults.enospc_off(),
            Command::Heal => faults.heal(),
            other => unreachable!("{} is not a fault setting", other.line()),
        }
    }

    /// Restores the checkpoint once no handle is open on the mount,
    /// waiting up to [`RESTORE_WAIT`] for the last ones to close.
    fn restore(&self, name: &str) -> Result<crate::overlay::Restored, FaultError> {
        lock(&self.state).overlay.checkpoint_path(name)?;
        let start = Instant::now();
        loop {
            {
                let mut s = lock(&self.state);
                if s.handles.is_empty() {
                    return s.overlay.restore(name);
                }
                if start.elapsed() >= RESTORE_WAIT {
                    let mut paths: Vec<String> = s
                        .handles
                        .values()
                        .map(|h| {
                            s.overlay
                                .visible_path(h.ino)
                                .unwrap_or_else(|| format!("(unlinked inode {})", h.ino))
                        })
                        .collect();
                    paths.sort();
                    paths.dedup();
                    paths.truncate(BUSY_PATHS_MAX);
                    return Err(FaultError::Busy {
                        name: name.to_owned(),
                        open: s.handles.len(),
                        paths: paths.join(", "),
                        waited_ms: start.elapsed().as_millis() as u64,
                    });
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn report(&self) -> Result<String, String> {
        let (report, checkpoints) = {
            let s = lock(&self.state);
            (s.overlay.report(), s.overlay.checkpoints())
        };
        let checkpoints = checkpoints.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "listing checkpoints");
            Vec::new()
        });
        let faults = lock(&self.faults).view();
        let json = serde_json::json!({
            "files": report.files,
            "bytes_total": report.bytes_total,
            "namespace": report.namespace,
            "faults": faults,
            "checkpoints": checkpoints,
        });
        Ok(json.to_string())
    }
}
