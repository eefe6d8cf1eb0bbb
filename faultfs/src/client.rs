//! A client for the control socket, and a faultfs process the caller
//! starts and stops.

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::control::{Command, FsyncError, LINE_BYTES_MAX};
use crate::mount::{force_unmount, is_mounted, wait_unmounted};
use crate::overlay::{
    Checkpoint, CorruptKind, Corruption, Damage, Lost, Restored, TailShape, Torn,
};

/// How long a command may take, answer included (a `torn`, `flush`,
/// `checkpoint` or `restore` writes data; a delayed fsync does not hold
/// the control socket).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a started faultfs has to mount and answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a faultfs has to unmount and exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong talking to or running faultfs.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The socket could not be reached or used.
    #[error("control socket {socket}: {source}")]
    Io {
        /// The socket.
        socket: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// faultfs answered `error …`.
    #[error("faultfs refused {command:?}: {reason}")]
    Refused {
        /// The command sent.
        command: String,
        /// Its answer.
        reason: String,
    },
    /// The command cannot travel as one protocol line (a path with
    /// whitespace, a line over [`LINE_BYTES_MAX`]); nothing was sent.
    #[error("cannot send {command:?}: {reason}")]
    Unsendable {
        /// The command as it would have been sent.
        command: String,
        /// Why not.
        reason: &'static str,
    },
    /// The answer was not `ok …` or `error …`.
    #[error("faultfs answered {command:?} with {answer:?}")]
    BadAnswer {
        /// The command sent.
        command: String,
        /// What came back.
        answer: String,
    },
    /// The faultfs process could not be started, or did not mount in time.
    #[error("faultfs at {mountpoint}: {reason}")]
    Process {
        /// Its mount point.
        mountpoint: PathBuf,
        /// What happened.
        reason: String,
    },
}

/// Talks to one faultfs over its control socket, a connection per command.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client for the socket at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
        }
    }

    /// Sends one command; returns what followed `ok` (maybe empty).
    pub fn send(&self, command: &Command) -> Result<String, ClientError> {
        let line = command.line();
        let unsendable = |reason| ClientError::Unsendable {
            command: line.clone(),
            reason,
        };
        if line.len() >= LINE_BYTES_MAX {
            return Err(unsendable("longer than a protocol line"));
        }
        if Command::parse(&line).as_ref() != Ok(command) {
            return Err(unsendable(
                "it would not read back as sent (whitespace in a path or name?)",
            ));
        }
        let io = |source| ClientError::Io {
            socket: self.socket.clone(),
            source,
        };
        let mut stream = UnixStream::connect(&self.socket).map_err(io)?;
        stream.set_read_timeout(Some(COMMAND_TIMEOUT)).map_err(io)?;
        stream
            .set_write_timeout(Some(COMMAND_TIMEOUT))
            .map_err(io)?;
        stream
            .write_all(format!("{line}\n").as_bytes())
            .map_err(io)?;
        let answer = read_line_bounded_answer(&mut BufReader::new(stream)).map_err(io)?;
        if answer == "ok" {
            return Ok(String::new());
        }
        if let Some(rest) = answer.strip_prefix("ok ") {
            return Ok(rest.to_owned());
        }
        match answer.strip_prefix("error ") {
            Some(reason) => Err(ClientError::Refused {
                command: line,
                reason: reason.to_owned(),
            }),
            None => Err(ClientError::BadAnswer {
                command: line,
                answer,
            }),
        }
    }

    /// `lose-unfsynced`: power loss.
    pub fn lose_unfsynced(&self) -> Result<(), ClientError> {
        self.send(&Command::LoseUnfsynced {
            tail: TailShape::Keep,
            seed: None,
        })
        .map(drop)
    }

    /// `lose-unfsynced TAIL [SEED]`: power loss, files grown by lost writes
    /// left with a tail of that shape; returns the tails written.
    pub fn lose_unfsynced_with_tail(
        &self,
        tail: TailShape,
        seed: Option<u64>,
    ) -> Result<Lost, ClientError> {
        self.typed(&Command::LoseUnfsynced { tail, seed })
    }

    /// `flush`: pending data written back without fsync.
    pub fn flush(&self) -> Result<(), ClientError> {
        self.send(&Command::Flush).map(drop)
    }

    /// `torn`: a seeded prefix persisted, the rest lost; returns what was kept.
    pub fn torn(&self, seed: Option<u64>) -> Result<serde_json::Value, ClientError> {
        self.json(&Command::Torn {
            seed,
            tail: TailShape::Keep,
        })
    }

    /// `torn [SEED] TAIL`: a seeded prefix persisted, the rest lost, files
    /// grown by lost writes left with a tail of that shape.
    pub fn torn_with_tail(&self, seed: Option<u64>, tail: TailShape) -> Result<Torn, ClientError> {
        self.typed(&Command::Torn { seed, tail })
    }

    /// `corrupt …`: damage to the durable file `path` (from the mount's
    /// root) at the place `damage` names; returns exactly what was done.
    pub fn corrupt(&self, path: &str, damage: Damage) -> Result<Corruption, ClientError> {
        self.typed(&Command::Corrupt {
            path: path.to_owned(),
            damage,
        })
    }

    /// `corrupt-pick KIND GLOB SEED [LENGTH_MAX]`: damage to a non-empty
    /// durable file matching `glob` and a region in it, drawn from `seed`.
    pub fn corrupt_pick(
        &self,
        kind: CorruptKind,
        glob: &str,
        seed: u64,
        length_max: Option<u64>,
    ) -> Result<Corruption, ClientError> {
        self.typed(&Command::CorruptPick {
            kind,
            glob: glob.to_owned(),
            seed,
            length_max,
        })
    }

    /// `enospc on [BYTES]`: the disk is full, after `after_bytes` more
    /// written bytes when given.
    pub fn enospc_on(&self, after_bytes: Option<u64>) -> Result<(), ClientError> {
        self.send(&Command::EnospcOn { after_bytes }).map(drop)
    }

    /// `enospc off`: the disk has room again.
    pub fn enospc_off(&self) -> Result<(), ClientError> {
        self.send(&Command::EnospcOff).map(drop)
    }

    /// `checkpoint NAME`: the durable image copied aside.
    pub fn checkpoint(&self, name: &str) -> Result<Checkpoint, ClientError> {
        self.typed(&Command::Checkpoint {
            name: name.to_owned(),
        })
    }

    /// `restore NAME`: the durable image replaced by the checkpoint, every
    /// pending change dropped; refused while files are open on the mount.
    pub fn restore(&self, name: &str) -> Result<Restored, ClientError> {
        self.typed(&Command::Restore {
            name: name.to_owned(),
        })
    }

    /// `drop-checkpoint NAME`.
    pub fn drop_checkpoint(&self, name: &str) -> Result<(), ClientError> {
        self.send(&Command::DropCheckpoint {
            name: name.to_owned(),
        })
        .map(drop)
    }

    /// `delay fsync MS JITTER_MS`.
    pub fn delay_fsync(&self, delay: Duration, jitter: Duration) -> Result<(), ClientError> {
        self.send(&Command::DelayFsync {
            ms: delay.as_millis() as u64,
            jitter_ms: jitter.as_millis() as u64,
        })
        .map(drop)
    }

    /// `delay write MS`.
    pub fn delay_write(&self, delay: Duration) -> Result<(), ClientError> {
        self.send(&Command::DelayWrite {
            ms: delay.as_millis() as u64,
        })
        .map(drop)
    }

    /// `fail fsync ERROR [COUNT]`.
    pub fn fail_fsync(&self, error: FsyncError, count: Option<u64>) -> Result<(), ClientError> {
        self.send(&Command::FailFsync { error, count }).map(drop)
    }

    /// `heal`: every delay and failure removed.
    pub fn heal(&self) -> Result<(), ClientError> {
        self.send(&Command::Heal).map(drop)
    }

    /// `report`: pending bytes per file, pending namespace changes, faults.
    pub fn report(&self) -> Result<serde_json::Value, ClientError> {
        self.json(&Command::Report)
    }

    /// `ping`.
    pub fn ping(&self) -> Result<(), ClientError> {
        self.send(&Command::Ping).map(drop)
    }

    fn json(&self, command: &Command) -> Result<serde_json::Value, ClientError> {
        self.typed(command)
    }

    fn typed<T: DeserializeOwned>(&self, command: &Command) -> Result<T, ClientError> {
        let text = self.send(command)?;
        serde_json::from_str(&text).map_err(|_| ClientError::BadAnswer {
            command: command.line(),
            answer: text,
        })
    }
}

fn read_line_bounded_answer<R: std::io::BufRead>(r: &mut R) -> std::io::Result<String> {
    // Answers (a report) can be longer than a command: read up to a bound.
    let mut buf = Vec::new();
    std::io::Read::take(r, ANSWER_BYTES_MAX).read_until(b'\n', &mut buf)?;
    if buf.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "answer cut short or too long",
        ));
    }
    buf.pop();
    String::from_utf8(buf)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "answer is not UTF-8"))
}

use std::io::BufRead as _;

/// An answer's length limit in bytes.
pub const ANSWER_BYTES_MAX: u64 = 16 << 20;

/// A `faultfs mount` child process. It dies with the thread that started
/// it (PR_SET_PDEATHSIG), so start it from a thread that lives as long as
/// the mount should.
#[derive(Debug)]
pub struct FaultfsProcess {
    child: Option<Child>,
    mountpoint: PathBuf,
    client: Client,
}

impl FaultfsProcess {
    /// Starts `binary mount …` and waits until the mount answers `ping`
    /// and shows in `/proc/mounts`. `log` receives its stderr.
    pub fn start(
        binary: &Path,
        backing: &Path,
        mountpoint: &Path,
        control: &Path,
        seed: u64,
        log: Option<&Path>,
    ) -> Result<FaultfsProcess, ClientError> {
        let fail = |reason: String| ClientError::Process {
            mountpoint: mountpoint.to_path_buf(),
            reason,
        };
        let stderr = match log {
            Some(p) => Stdio::from(
                std::fs::File::create(p).map_err(|e| fail(format!("log {}: {e}", p.display())))?,
            ),
            None => Stdio::inherit(),
        };
        let mut command = std::process::Command::new(binary);
        command
            .arg("mount")
            .arg("--backing")
            .arg(backing)
            .arg("--mountpoint")
            .arg(mountpoint)
            .arg("--control")
            .arg(control)
            .arg("--seed")
            .arg(seed.to_string());
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // SAFETY: prctl is async-signal-safe; nothing else runs in the child before exec.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                    .map_err(std::io::Error::from)
            });
        }
        let child = command
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", binary.display())))?;
        let mut process = FaultfsProcess {
            child: Some(child),
            mountpoint: mountpoint.to_path_buf(),
            client: Client::new(control),
        };
        process.wait_ready().map_err(fail)?;
        Ok(process)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("faultfs exited before mounting ({status})"));
            }
            if self.client.ping().is_ok() && is_mounted(&self.mountpoint).unwrap_or(false) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("not mounted after {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The control client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, then waits for it to unmount and exit; after
    /// [`STOP_TIMEOUT`] it is SIGKILLed and the mount detached.
    pub fn stop(mut self) -> Result<(), ClientError> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), ClientError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let fail = |reason: String| ClientError::Process {
            mountpoint: self.mountpoint.clone(),
            reason,
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut clean = true;
        while child.try_wait().map_err(|e| fail(e.to_string()))?.is_none() {
            if Instant::now() >= deadline {
                tracing::warn!(mountpoint = %self.mountpoint.display(), "faultfs did not stop on SIGTERM: killing it");
                let _ = child.kill();
                let _ = child.wait();
                clean = false;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if wait_unmounted(&self.mountpoint, Duration::from_secs(2)).is_err() {
            force_unmount(&self.mountpoint).map_err(|e| fail(format!("detach: {e}")))?;
            wait_unmounted(&self.mountpoint, Duration::from_secs(2))
                .map_err(|e| fail(e.to_string()))?;
            clean = false;
        }
        if clean {
            Ok(())
        } else {
            Err(fail("had to be killed or detached".into()))
        }
    }
}

impl Drop for FaultfsProcess {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            tracing::warn!(error = %e, "stopping faultfs on drop");
        }
    }
}
