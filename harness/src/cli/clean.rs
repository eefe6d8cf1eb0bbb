//! `harness clean`: what a killed harness left behind — faultfs mounts
//! first (removing a work directory must not walk into one), then node
//! processes and work directories, Docker objects, and the run
//! directories and nft tables on ssh hosts — never a live run's.

use crate::plan::args::HostArgs;
use crate::plan::hosts::hosts_from;
use crate::runtime::ssh::session::Trust;
use crate::runtime::{disk, docker, process, ssh};
use std::path::Path;

/// Removes the leftovers under `store` (and on the hosts `ssh` names),
/// printing each; returns how many.
pub async fn clean(store: &Path, ssh: &HostArgs) -> anyhow::Result<usize> {
    let mut cleaned = disk::clean_leftovers(&store.join(".work"))?;
    cleaned.extend(process::clean_leftovers(&store.join(".work"))?);
    if docker::daemon_answers() {
        cleaned.extend(docker::clean_leftovers().await?);
    }
    if let Some(hosts) = hosts_from(ssh)? {
        let trust = Trust {
            known_hosts: ssh.ssh_known_hosts.clone(),
        };
        cleaned.extend(ssh::clean_leftovers(&hosts, &trust).await?);
    }
    for c in &cleaned {
        println!("removed {c}");
    }
    println!("clean: {} leftovers removed", cleaned.len());
    Ok(cleaned.len())
}
