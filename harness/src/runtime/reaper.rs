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
use testcontainers::bollard::container::{ListContainersOptions, RemoveContainerOptions};
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
    let mut removed = remove_run_containers(docker, run_label).await;
    let network = format!("ordeal-{run_label}");
    if remove_network_patiently(docker, &network)
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

/// How long teardown waits before its second sweep of the run's containers.
pub const RUN_SWEEP_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// Force-removes every container labelled with this run (`ordeal.run`);
/// the names of those removed. A container already gone is skipped.
pub async fn remove_run_containers(docker: &Docker, run_label: &str) -> Vec<String> {
    let filters = HashMap::from([("label".to_string(), vec![format!("ordeal.run={run_label}")])]);
    let options = ListContainersOptions {
        all: true,
        filters,
        ..Default::default()
    };
    let Ok(containers) = docker.list_containers(Some(options)).await else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for c in containers {
        let id = c.id.unwrap_or_default();
        let result = force_remove(docker, &id).await;
        if container_gone_or_going(&result) {
            continue;
        }
        match result {
            Ok(()) => removed.push(format!(
                "container {}",
                c.names.unwrap_or_default().join(",")
            )),
            Err(e) => tracing::warn!(container = id, error = %e, "could not remove the container"),
        }
    }
    removed
}

/// Unpauses and force-removes a container with its anonymous volumes.
pub async fn force_remove(
    docker: &Docker,
    id: &str,
) -> Result<(), testcontainers::bollard::errors::Error> {
    let _ = docker.unpause_container(id).await;
    let force = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    docker.remove_container(id, Some(force)).await
}

/// How long a network whose containers another remover (a run's reaper,
/// another `clean`) is still taking away is retried.
const NETWORK_REMOVE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Removes a network; while it still has endpoints (403) or the engine is
/// busy with it (409), retries for [`NETWORK_REMOVE_PATIENCE`]. `Ok(false)`:
/// it was gone already.
pub async fn remove_network_patiently(docker: &Docker, name: &str) -> anyhow::Result<bool> {
    let deadline = tokio::time::Instant::now() + NETWORK_REMOVE_PATIENCE;
    loop {
        let result = docker.remove_network(name).await;
        if gone_already(&result) {
            return Ok(false);
        }
        let busy = matches!(
            &result,
            Err(
                testcontainers::bollard::errors::Error::DockerResponseServerError {
                    status_code: 403 | 409,
                    ..
                }
            )
        );
        if !busy || tokio::time::Instant::now() >= deadline {
            result.with_context(|| format!("removing network {name}"))?;
            return Ok(true);
        }
        tokio::time::sleep(RUN_SWEEP_PAUSE).await;
    }
}

/// Whether the engine answered 404: what was to be removed is gone.
pub fn gone_already<T>(result: &Result<T, testcontainers::bollard::errors::Error>) -> bool {
    matches!(
        result,
        Err(
            testcontainers::bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            }
        )
    )
}

/// [`gone_already`], or a 409: another remover is taking the container
/// away (`removal … is already in progress`).
pub fn container_gone_or_going<T>(
    result: &Result<T, testcontainers::bollard::errors::Error>,
) -> bool {
    gone_already(result)
        || matches!(
            result,
            Err(
                testcontainers::bollard::errors::Error::DockerResponseServerError {
                    status_code: 409,
                    ..
                }
            )
        )
}
