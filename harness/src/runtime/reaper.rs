//! The Docker runtime's reaper: what a SIGKILLed harness leaves behind is
//! removed without anyone running `harness clean`.
//!
//! Containers are not children of the harness, so `PR_SET_PDEATHSIG` (the
//! process runtime's guard) cannot reach them. When a Docker cluster
//! starts, the harness starts itself again as `harness reap --run-label L`
//! in a session of its own (a Ctrl-C to the terminal's process group does
//! not stop it) with a pipe on its stdin whose write end only the harness
//! holds. The reaper blocks reading it; the kernel closes the write end
//! however the harness ends, so end of file is the harness gone, or the
//! runtime dropped after its teardown. Then the reaper removes whatever
//! still carries the run's label (containers, the network, data volumes)
//! and exits: after a normal teardown it finds nothing.

use anyhow::Context;
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use testcontainers::bollard::volume::ListVolumesOptions;
use testcontainers::bollard::Docker;

/// Set to any value, no reaper is started (a test of `harness clean` on
/// its own, which a reaper would race).
pub const NO_REAPER_ENV: &str = "ORDEAL_NO_REAPER";

/// The harness's end of the reaper's pipe: dropping it (or the harness
/// dying) lets the reaper sweep.
#[derive(Debug)]
pub struct Reaper {
    stdin: Option<ChildStdin>,
    child: Child,
}

impl Reaper {
    /// Starts `<this executable> reap --run-label <run_label>`; `None`
    /// (with a warning) when it cannot, or when [`NO_REAPER_ENV`] is set.
    pub fn start(run_label: &str) -> Option<Reaper> {
        if std::env::var_os(NO_REAPER_ENV).is_some() {
            return None;
        }
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                tracing::warn!(error = %e, "no reaper: cannot name this executable");
                return None;
            }
        };
        let mut cmd = Command::new(exe);
        cmd.args(["reap", "--run-label", run_label])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: the closure only calls setsid, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
        }
        match cmd.spawn() {
            Ok(mut child) => Some(Reaper {
                stdin: child.stdin.take(),
                child,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "no reaper: could not start it");
                None
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // End of file: the reaper sweeps (nothing, after a teardown) and
        // exits; waited for, so it is never left running behind a run.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// `harness reap`: waits for end of file on stdin, then removes what
/// carries `run_label`. Returns what it removed.
pub async fn reap(run_label: &str) -> anyhow::Result<Vec<String>> {
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await
    .context("waiting for the harness")?;
    let docker =
        Docker::connect_with_local_defaults().context("connecting to the Docker daemon")?;
    sweep(&docker, run_label).await
}

/// Removes the containers, network and volumes labelled `ordeal.run=L`.
/// One already gone (another sweep, `harness clean`) is not an error.
pub async fn sweep(docker: &Docker, run_label: &str) -> anyhow::Result<Vec<String>> {
    let filters = HashMap::from([("label".to_string(), vec![format!("ordeal.run={run_label}")])]);
    let mut removed = super::docker::remove_run_containers(docker, run_label).await;
    let network = format!("ordeal-{run_label}");
    if super::docker::remove_network_patiently(docker, &network)
        .await
        .unwrap_or(false)
    {
        removed.push(format!("network {network}"));
    }
    let volumes = docker
        .list_volumes(Some(ListVolumesOptions { filters }))
        .await
        .context("listing volumes")?;
    for v in volumes.volumes.unwrap_or_default() {
        if docker.remove_volume(&v.name, None).await.is_ok() {
            removed.push(format!("volume {}", v.name));
        }
    }
    Ok(removed)
}
