//! SSH sessions to the hosts of the `ssh` runtime, through the `openssh`
//! crate: the system's `ssh` with one multiplexed master connection per
//! host, so `~/.ssh/config`, agents and known hosts work as they do for the
//! user. Host keys are checked strictly (never added on first use). The
//! hosts are named as `hosts.rs` reads them.
//!
//! Every error names the host, and a command's error carries its stderr.

use crate::runtime::ssh::hosts::HostSpec;
use anyhow::{bail, Context};
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Time allowed to reach a host and authenticate.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Time allowed for one remote command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed to upload one file.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// Seconds an idle master connection outlives its last session (so a
/// SIGKILLed harness leaves no `ssh` master behind for long).
pub const MASTER_IDLE_S: usize = 30;
/// A string quoted for the remote POSIX shell.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// One connected host.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The host as the user named it.
    pub host: HostSpec,
    /// The address nodes on this host are reached at (harness and peers).
    pub address: IpAddr,
    session: Arc<Session>,
}

/// How a connection checks host keys.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// A known-hosts file used instead of the user's (tests).
    pub known_hosts: Option<PathBuf>,
}

impl Remote {
    /// Opens the master connection to a host and resolves its address.
    pub async fn connect(host: &HostSpec, trust: &Trust) -> anyhow::Result<Remote> {
        let mut builder = SessionBuilder::default();
        builder
            .known_hosts_check(KnownHosts::Strict)
            .connect_timeout(CONNECT_TIMEOUT)
            .server_alive_interval(Duration::from_secs(5))
            .control_directory(std::env::temp_dir())
            .control_persist(ControlPersist::IdleFor(
                MASTER_IDLE_S.try_into().expect("non-zero"),
            ));
        if let Some(user) = &host.user {
            builder.user(user.clone());
        }
        if let Some(port) = host.port {
            builder.port(port);
        }
        if let Some(key) = &host.key {
            builder.keyfile(key);
        }
        if let Some(file) = &trust.known_hosts {
            builder.user_known_hosts_file(file);
        }
        let address = resolve(&host.destination).await?;
        let session = tokio::time::timeout(
            CONNECT_TIMEOUT + Duration::from_secs(5),
            builder.connect(&host.destination),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "host {}: no answer within {CONNECT_TIMEOUT:?}",
                host.destination
            )
        })?
        .with_context(|| format!("host {}: cannot connect over ssh", host.destination))?;
        tracing::info!(host = %host.destination, %address, "ssh master connected");
        Ok(Remote {
            host: host.clone(),
            address,
            session: Arc::new(session),
        })
    }

    /// The host's name for messages.
    pub fn name(&self) -> &str {
        &self.host.destination
    }

    /// Runs a shell script on the host; its stdout, or an error naming the
    /// host, the command and its stderr.
    pub async fn run(&self, script: &str) -> anyhow::Result<String> {
        let output = tokio::time::timeout(
            COMMAND_TIMEOUT,
            self.session.command("sh").arg("-c").arg(script).output(),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "host {}: `{script}` took over {COMMAND_TIMEOUT:?}",
                self.name()
            )
        })?
        .with_context(|| format!("host {}: running `{script}`", self.name()))?;
        if !output.status.success() {
            bail!(
                "host {} refused `{script}` (exit {}): {}",
                self.name(),
                output
                    .status
                    .code()
                    .map_or("signal".into(), |c| c.to_string()),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Whether a command exists on the host (`command -v`).
    pub async fn has_tool(&self, tool: &str) -> anyhow::Result<bool> {
        let found = self
            .run(&format!(
                "command -v {tool} >/dev/null 2>&1 && echo yes || echo no"
            ))
            .await?;
        Ok(found.trim() == "yes")
    }

    /// Copies a local file to `remote` on the host, mode 0755.
    pub async fn upload(&self, local: &Path, remote: &str) -> anyhow::Result<()> {
        let bytes = tokio::fs::read(local)
            .await
            .with_context(|| format!("reading {}", local.display()))?;
        let script = format!("cat > {0} && chmod 755 {0}", quote(remote));
        let send = async {
            let mut child = self
                .session
                .command("sh")
                .arg("-c")
                .arg(&script)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .await?;
            let mut stdin = child.stdin().take().expect("stdin was piped");
            stdin
                .write_all(&bytes)
                .await
                .map_err(openssh::Error::ChildIo)?;
            stdin.shutdown().await.map_err(openssh::Error::ChildIo)?;
            drop(stdin);
            child.wait_with_output().await
        };
        let output = tokio::time::timeout(UPLOAD_TIMEOUT, send)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "host {}: uploading {} took over {UPLOAD_TIMEOUT:?}",
                    self.name(),
                    local.display()
                )
            })?
            .with_context(|| {
                format!(
                    "host {}: uploading {} to {remote}",
                    self.name(),
                    local.display()
                )
            })?;
        if !output.status.success() {
            bail!(
                "host {} refused the upload of {} to {remote}: {}",
                self.name(),
                local.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// Starts a long-running shell script whose stdin stays open to the
    /// harness; returns the child and the first line it prints.
    pub async fn spawn(
        &self,
        script: &str,
    ) -> anyhow::Result<(openssh::Child<Arc<Session>>, String)> {
        let mut child = self
            .session
            .clone()
            .arc_command("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .await
            .with_context(|| format!("host {}: starting `{script}`", self.name()))?;
        let stdout = child.stdout().take().expect("stdout was piped");
        let mut lines = tokio::io::BufReader::new(stdout);
        let mut first = String::new();
        let read = tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut first);
        tokio::time::timeout(COMMAND_TIMEOUT, read)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "host {}: `{script}` printed nothing within {COMMAND_TIMEOUT:?}",
                    self.name()
                )
            })?
            .with_context(|| format!("host {}: reading from `{script}`", self.name()))?;
        Ok((child, first.trim().to_string()))
    }

    /// Closes the master connection.
    pub async fn close(self) {
        if let Ok(session) = Arc::try_unwrap(self.session) {
            if let Err(e) = session.close().await {
                tracing::warn!(host = %self.host.destination, error = %e, "closing the ssh master");
            }
        }
    }
}

/// The address of a destination as `ssh` would reach it: its `hostname`
/// after `~/.ssh/config` (`ssh -G`), resolved here.
async fn resolve(destination: &str) -> anyhow::Result<IpAddr> {
    let ask = tokio::process::Command::new("ssh")
        .arg("-G")
        .arg(destination)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(COMMAND_TIMEOUT, ask)
        .await
        .map_err(|_| anyhow::anyhow!("host {destination}: `ssh -G` took over {COMMAND_TIMEOUT:?}"))?
        .context("running `ssh -G` (is openssh-client installed?)")?;
    if !output.status.success() {
        bail!(
            "host {destination}: `ssh -G` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let hostname = text
        .lines()
        .find_map(|l| l.strip_prefix("hostname "))
        .map(str::trim)
        .with_context(|| format!("host {destination}: `ssh -G` names no hostname"))?;
    if let Ok(ip) = hostname.parse::<IpAddr>() {
        return Ok(ip);
    }
    let lookup = tokio::net::lookup_host((hostname, 22));
    let mut addrs: Vec<IpAddr> = tokio::time::timeout(COMMAND_TIMEOUT, lookup)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "host {destination}: resolving {hostname} took over {COMMAND_TIMEOUT:?}"
            )
        })?
        .with_context(|| format!("host {destination}: resolving {hostname}"))?
        .map(|a| a.ip())
        .collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs
        .into_iter()
        .next()
        .with_context(|| format!("host {destination}: {hostname} has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_remote_shell() {
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
