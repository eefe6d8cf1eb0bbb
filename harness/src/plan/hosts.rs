//! The hosts of the ssh runtime as the flags name them, and `--runtime`
//! resolved (`auto`: ssh when hosts are named, docker when a daemon
//! answers, else process).

use crate::plan::args::{HostArgs, TestArgs};
use crate::runtime::ssh::hosts::{parse_hosts_list, read_hosts_file, HostSpec};
use crate::runtime::RuntimeKind;
use anyhow::bail;

/// The hosts the flags name (`--hosts` or `--hosts-file`), `None` when
/// neither is given.
pub fn hosts_from(args: &HostArgs) -> anyhow::Result<Option<Vec<HostSpec>>> {
    match (&args.hosts, &args.hosts_file) {
        (Some(_), Some(_)) => bail!("--hosts and --hosts-file: give one of them, not both"),
        (Some(list), None) => parse_hosts_list(list).map(Some),
        (None, Some(file)) => read_hosts_file(file).map(Some),
        (None, None) => Ok(None),
    }
}

/// The flags that name the same hosts again (for rerun commands).
pub fn host_flags(args: &HostArgs) -> String {
    let mut flags = String::new();
    if let Some(list) = &args.hosts {
        flags.push_str(&format!(" --hosts {list}"));
    }
    if let Some(file) = &args.hosts_file {
        flags.push_str(&format!(" --hosts-file {}", file.display()));
    }
    if let Some(file) = &args.ssh_known_hosts {
        flags.push_str(&format!(" --ssh-known-hosts {}", file.display()));
    }
    flags
}

/// `--runtime` (`auto`: ssh when hosts are named, docker when a daemon
/// answers, else process) and the hosts of the ssh runtime.
pub fn resolve_runtime(
    args: &TestArgs,
    docker_answers: bool,
) -> anyhow::Result<(RuntimeKind, Vec<HostSpec>)> {
    let hosts = hosts_from(&args.ssh)?;
    let runtime = match args.runtime.as_str() {
        "auto" if hosts.is_some() => RuntimeKind::Ssh,
        "ssh" => RuntimeKind::Ssh,
        "auto" if docker_answers => RuntimeKind::Docker,
        "auto" | "process" => RuntimeKind::Process,
        "docker" => RuntimeKind::Docker,
        other => {
            bail!("--runtime: unknown runtime `{other}` (expected auto, docker, process or ssh)")
        }
    };
    let hosts = check_hosts(runtime, hosts, args.nodes)?;
    Ok((runtime, hosts))
}

/// Hosts go with `--runtime ssh` alone, one per node (the faults the ssh
/// runtime cannot inject are refused by `faults.rs`).
fn check_hosts(
    runtime: RuntimeKind,
    hosts: Option<Vec<HostSpec>>,
    nodes: Option<usize>,
) -> anyhow::Result<Vec<HostSpec>> {
    let Some(hosts) = hosts else {
        if runtime == RuntimeKind::Ssh {
            bail!("--runtime ssh needs its hosts: --hosts HOST[,HOST…] or --hosts-file FILE");
        }
        return Ok(Vec::new());
    };
    if runtime != RuntimeKind::Ssh {
        bail!("--hosts and --hosts-file apply to --runtime ssh only");
    }
    if let Some(nodes) = nodes.filter(|n| *n != hosts.len()) {
        bail!(
            "--hosts: {} hosts for --nodes {nodes} (one host per node; a host may be listed twice)",
            hosts.len()
        );
    }
    Ok(hosts)
}
