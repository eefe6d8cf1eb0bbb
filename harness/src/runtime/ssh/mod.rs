//! The SSH runtime: node `i` runs on the `i`-th host given with `--hosts`
//! or `--hosts-file`, reached over one multiplexed SSH master per host
//! (`session.rs`). The harness uploads the node binary (and libfaketime
//! when a clock fault needs it and the host lacks it) into a run directory
//! `<dir>/<label>-<node>` on the host, and drives every fault there:
//!
//! - kill / pause by signal to the node's pid;
//! - partitions by `nft` rules in one table per run, `ordeal_<pid>_<seed>`,
//!   so that heal and cleanup delete exactly ours;
//! - clocks by libfaketime reading a file in the run directory.
//!
//! Each node runs under a small shell wrapper whose stdin is the SSH
//! channel: when the harness hangs up, on purpose or because it died, the
//! wrapper SIGKILLs the node (the remote counterpart of
//! `PR_SET_PDEATHSIG`). Teardown kills the nodes, deletes the table and
//! removes the run directories; `harness clean --hosts …` removes what a
//! killed harness left. Disk and membership faults are refused
//! (`RuntimeKind::lacks` in `runtime/mod.rs`).

pub mod hosts;
pub mod session;

use crate::runtime::clock::{ClockSetting, FAKETIME_LIB};
use crate::runtime::exit::{tail_lines, Exit, LOG_TAIL_LINES};
use crate::runtime::label::owner_alive;
use crate::runtime::ssh::hosts::HostSpec;
use crate::runtime::ssh::session::{quote, Remote, Trust, COMMAND_TIMEOUT};
use crate::runtime::verbs::{Added, ClusterSpec, Grudge, Runtime, Verb};
use crate::sut::{Ability, Launch, System};
use anyhow::{bail, Context};
use openssh::Session;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// Node `i` listens for peers on `PEER_PORT_BASE + i` (distinct, so that
/// two nodes can share a host).
const PEER_PORT_BASE: u16 = 7100;
/// Node `i` listens for clients on `CLIENT_PORT_BASE + i`.
const CLIENT_PORT_BASE: u16 = 8100;
/// Node `i` listens for its protocol's clients (`Launch::listen_protocol`)
/// on `PROTOCOL_PORT_BASE + i`.
const PROTOCOL_PORT_BASE: u16 = 9100;
/// The run directory's file naming the node's pid.
const PID_FILE: &str = "node.pid";
/// Prefix of every nft table the runtime creates.
pub const NFT_TABLE_PREFIX: &str = "ordeal_";

/// What the SSH runtime needs beyond the [`ClusterSpec`].
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// One host per node, in node order.
    pub hosts: Vec<HostSpec>,
    /// How host keys are checked.
    pub trust: Trust,
    /// The verbs the run's faults use: decide which tools each host must
    /// have.
    pub verbs: BTreeSet<Verb>,
}

/// One node on its host.
#[derive(Debug)]
struct SshNode {
    name: String,
    id: usize,
    remote: Remote,
    /// The run directory on the host.
    dir: String,
    /// The libfaketime to preload, when clock faults are planned.
    faketime: Option<String>,
    wrapper: Option<openssh::Child<Arc<Session>>>,
    pid: Option<u32>,
    paused: bool,
}

impl SshNode {
    fn peer_port(&self) -> u16 {
        PEER_PORT_BASE + self.id as u16
    }
    fn client_port(&self) -> u16 {
        CLIENT_PORT_BASE + self.id as u16
    }
    fn protocol_port(&self) -> u16 {
        PROTOCOL_PORT_BASE + self.id as u16
    }
    fn host(&self) -> &str {
        self.remote.name()
    }
}

/// Nodes on remote hosts over SSH.
#[derive(Debug)]
pub struct SshRuntime {
    spec: ClusterSpec,
    options: SshOptions,
    nodes: Vec<SshNode>,
    partitioned: BTreeSet<String>,
    torn_down: bool,
}

/// The nft table of a run: `ordeal-<pid>-<seed>` → `ordeal_<pid>_<seed>`.
pub fn nft_table(label: &str) -> String {
    label.replace('-', "_")
}

/// The address family keyword nft uses for an address.
fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "ip"
    } else {
        "ip6"
    }
}

/// The nft script making `table` drop every packet from and to `dropped`,
/// counting what it drops.
fn partition_script(table: &str, dropped: &[IpAddr]) -> String {
    let mut script = format!(
        "add table inet {table}; \
         add chain inet {table} input {{ type filter hook input priority -10; policy accept; }}; \
         add chain inet {table} output {{ type filter hook output priority -10; policy accept; }}"
    );
    for fam in ["ip", "ip6"] {
        let set: Vec<String> = dropped
            .iter()
            .filter(|ip| family(ip) == fam)
            .map(|ip| ip.to_string())
            .collect();
        if !set.is_empty() {
            let set = set.join(", ");
            script.push_str(&format!(
                "; add rule inet {table} input {fam} saddr {{ {set} }} counter drop; add rule inet {table} output {fam} daddr {{ {set} }} counter drop"
            ));
        }
    }
    script
}

/// Deletes the run's table if the host has it, listing it first (a shell
/// line).
fn delete_table_line(table: &str) -> String {
    format!("if nft list table inet {table} 2>/dev/null; then nft delete table inet {table}; fi")
}

/// Packets the rules of a listed table dropped (the sum of its counters).
fn dropped_packets(listing: &str) -> u64 {
    listing
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "packets")
        .filter_map(|w| w[1].parse::<u64>().ok())
        .sum()
}

/// The wrapper that runs a node: starts it in the background, prints its
/// pid, and SIGKILLs it when its stdin (the SSH channel) closes.
fn node_script(dir: &str, env: &[(String, String)], args: &[String]) -> String {
    let env: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect();
    let args: Vec<String> = args.iter().map(|a| quote(a)).collect();
    let dir = quote(dir);
    format!(
        "cd {dir} || exit 1\n\
         env {env} {dir}/node {args} >>{dir}/node.log 2>&1 </dev/null &\n\
         pid=$!\n\
         echo $pid > {dir}/{PID_FILE}\n\
         echo $pid\n\
         cat >/dev/null\n\
         kill -KILL $pid 2>/dev/null\n\
         wait $pid 2>/dev/null\n\
         rm -f {dir}/{PID_FILE}\n",
        env = env.join(" "),
        args = args.join(" ")
    )
}

impl SshRuntime {
    /// A runtime for the spec; nothing is contacted until [`Runtime::start`].
    pub fn new(spec: ClusterSpec, options: SshOptions) -> anyhow::Result<SshRuntime> {
        if options.hosts.len() != spec.nodes {
            bail!(
                "--hosts: {} hosts for {} nodes (one host per node; a host may be listed twice)",
                options.hosts.len(),
                spec.nodes
            );
        }
        Ok(SshRuntime {
            spec,
            options,
            nodes: Vec::new(),
            partitioned: BTreeSet::new(),
            torn_down: false,
        })
    }

    fn table(&self) -> String {
        nft_table(&self.spec.run_label)
    }

    fn find(&self, node: &str) -> anyhow::Result<&SshNode> {
        self.nodes
            .iter()
            .find(|n| n.name == node)
            .with_context(|| format!("no node named {node}"))
    }

    fn find_mut(&mut self, node: &str) -> anyhow::Result<&mut SshNode> {
        self.nodes
            .iter_mut()
            .find(|n| n.name == node)
            .with_context(|| format!("no node named {node}"))
    }

    /// The tools the planned faults need on a host, refused by name.
    async fn check_tools(&self, remote: &Remote) -> anyhow::Result<()> {
        if self.options.verbs.contains(&Verb::Partition) {
            if !remote.has_tool("nft").await? {
                bail!(
                    "host {} lacks nft, which partitions need (apt-get install nftables there)",
                    remote.name()
                );
            }
            remote
                .run("nft list tables >/dev/null")
                .await
                .with_context(|| {
                    format!(
                        "host {}: partitions need nft to run (as root)",
                        remote.name()
                    )
                })?;
        }
        Ok(())
    }

    /// The libfaketime a node preloads: the host's, else a copy uploaded
    /// from here; `None` without clock faults.
    async fn faketime(&self, remote: &Remote, dir: &str) -> anyhow::Result<Option<String>> {
        if !self.options.verbs.contains(&Verb::Clock) {
            return Ok(None);
        }
        let host_has = remote
            .run(&format!("test -f {FAKETIME_LIB} && echo yes || echo no"))
            .await?;
        if host_has.trim() == "yes" {
            return Ok(Some(FAKETIME_LIB.to_string()));
        }
        if !Path::new(FAKETIME_LIB).is_file() {
            bail!(
                "clock faults cannot reach host {}: it lacks libfaketime ({FAKETIME_LIB}) and this machine has none to upload (apt-get install libfaketime)",
                remote.name()
            );
        }
        let copy = format!("{dir}/libfaketime.so.1");
        remote.upload(Path::new(FAKETIME_LIB), &copy).await?;
        Ok(Some(copy))
    }

    /// Connects to node `i`'s host and prepares its run directory; on
    /// failure removes what it made there.
    async fn prepare(&self, i: usize) -> anyhow::Result<SshNode> {
        let host = &self.options.hosts[i - 1];
        let name = format!("n{i}");
        let remote = Remote::connect(host, &self.options.trust).await?;
        let dir = format!("{}/{}-{name}", host.dir, self.spec.run_label);
        let faketime = match self.set_up(&remote, &dir).await {
            Ok(faketime) => faketime,
            Err(e) => {
                let _ = remote.run(&format!("rm -rf {}", quote(&dir))).await;
                remote.close().await;
                return Err(e.context(format!("preparing {name}")));
            }
        };
        tracing::info!(node = %name, host = %remote.name(), dir, "node prepared");
        Ok(SshNode {
            name,
            id: i,
            remote,
            dir,
            faketime,
            wrapper: None,
            pid: None,
            paused: false,
        })
    }

    /// The run directory with its clock file and binary; returns the
    /// libfaketime to preload.
    async fn set_up(&self, remote: &Remote, dir: &str) -> anyhow::Result<Option<String>> {
        self.check_tools(remote).await?;
        remote
            .run(&format!(
                "mkdir -p {0}/data && printf '+0 x1\\n' > {0}/faketime",
                quote(dir)
            ))
            .await?;
        remote
            .upload(&self.spec.binary, &format!("{dir}/node"))
            .await?;
        self.faketime(remote, dir).await
    }

    fn launch<'a>(&'a self, node: &'a SshNode) -> Launch<'a> {
        let addr = |n: &SshNode, port: u16| match n.remote.address {
            IpAddr::V4(ip) => format!("{ip}:{port}"),
            IpAddr::V6(ip) => format!("[{ip}]:{port}"),
        };
        let any = if node.remote.address.is_ipv4() {
            "0.0.0.0"
        } else {
            "[::]"
        };
        let peers = self
            .nodes
            .iter()
            .map(|n| (n.id, addr(n, n.peer_port())))
            .collect();
        Launch {
            name: &node.name,
            id: node.id,
            data_dir: format!("{}/data", node.dir),
            listen_peer: format!("{any}:{}", node.peer_port()),
            advertise_peer: addr(node, node.peer_port()),
            listen_client: format!("{any}:{}", node.client_port()),
            advertise_client: addr(node, node.client_port()),
            listen_protocol: format!("{any}:{}", node.protocol_port()),
            peers,
            cluster_token: &self.spec.run_label,
            flags: &self.spec.node_args,
            trace_file: format!("{}/trace.jsonl", node.dir),
            join: Vec::new(),
        }
    }

    async fn spawn(&mut self, index: usize) -> anyhow::Result<()> {
        let node = &self.nodes[index];
        let mut env: Vec<(String, String)> = self
            .spec
            .sut
            .container_env()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(lib) = node
            .faketime
            .as_ref()
            .filter(|_| self.spec.sut.reads_faketime())
        {
            env.push(("LD_PRELOAD".into(), lib.clone()));
            env.push((
                "FAKETIME_TIMESTAMP_FILE".into(),
                format!("{}/faketime", node.dir),
            ));
            env.push(("FAKETIME_CACHE_DURATION".into(), "1".into()));
        }
        let script = node_script(&node.dir, &env, &self.spec.sut.command(&self.launch(node)));
        let (wrapper, first) = node.remote.spawn(&script).await?;
        let pid: u32 = first.parse().with_context(|| {
            format!(
                "host {}: starting {} printed `{first}`, not a pid",
                node.host(),
                node.name
            )
        })?;
        tracing::info!(node = %node.name, host = %node.host(), pid, "node started");
        let node = &mut self.nodes[index];
        node.wrapper = Some(wrapper);
        node.pid = Some(pid);
        node.paused = false;
        Ok(())
    }

    async fn signal(&self, node: &str, signal: &str) -> anyhow::Result<()> {
        let n = self.find(node)?;
        let pid = n.pid.with_context(|| format!("{node} is not running"))?;
        n.remote
            .run(&format!("kill -{signal} {pid}"))
            .await
            .with_context(|| format!("sending SIG{signal} to {node}"))?;
        Ok(())
    }
}

/// Hangs up a node's wrapper (which SIGKILLs the node) and waits for it.
async fn hang_up(node: &mut SshNode) {
    let Some(mut wrapper) = node.wrapper.take() else {
        return;
    };
    node.pid = None;
    node.paused = false;
    drop(wrapper.stdin().take());
    match tokio::time::timeout(COMMAND_TIMEOUT, wrapper.wait()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(node = %node.name, error = %e, "the node's wrapper failed"),
        Err(_) => tracing::warn!(node = %node.name, "the node's wrapper did not end"),
    }
}

impl Runtime for SshRuntime {
    async fn start(&mut self) -> anyhow::Result<()> {
        tracing::info!(label = %self.spec.run_label, nodes = self.spec.nodes, "starting a cluster over ssh");
        // All hosts at once: a master never idles while others upload.
        let prepared =
            futures_util::future::join_all((1..=self.spec.nodes).map(|i| self.prepare(i))).await;
        let mut first_error = None;
        for result in prepared {
            match result {
                // Kept even when another host failed, for teardown to clean.
                Ok(node) => self.nodes.push(node),
                Err(e) => _ = first_error.get_or_insert(e),
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        for index in 0..self.nodes.len() {
            self.spawn(index).await?;
        }
        Ok(())
    }

    fn nodes(&self) -> Vec<String> {
        (1..=self.spec.nodes).map(|i| format!("n{i}")).collect()
    }

    fn client_url(&self, node: &str) -> String {
        match self.find(node) {
            Ok(n) => format!("http://{}", self.launch(n).advertise_client),
            Err(_) => format!("http://invalid-node-{node}"),
        }
    }

    fn protocol_address(&self, node: &str) -> String {
        match self.find(node) {
            Ok(n) => match n.remote.address {
                IpAddr::V4(ip) => format!("{ip}:{}", n.protocol_port()),
                IpAddr::V6(ip) => format!("[{ip}]:{}", n.protocol_port()),
            },
            Err(_) => format!("invalid-node-{node}:0"),
        }
    }

    async fn add_node(
        &mut self,
        id: usize,
        _founders: &[usize],
        _peers: &[usize],
    ) -> anyhow::Result<Added> {
        bail!("the ssh runtime cannot start n{id}: it runs one node per host named before the run (--hosts), and has no host for a node added during it")
    }

    async fn kill(&mut self, node: &str) -> anyhow::Result<()> {
        if self.find(node)?.wrapper.is_none() {
            return Ok(());
        }
        self.signal(node, "KILL").await?;
        hang_up(self.find_mut(node)?).await;
        tracing::info!(node, "node killed");
        Ok(())
    }

    async fn restart(&mut self, node: &str) -> anyhow::Result<()> {
        let index = self
            .nodes
            .iter()
            .position(|n| n.name == node)
            .with_context(|| format!("no node named {node}"))?;
        if self.nodes[index].wrapper.is_some() {
            return Ok(());
        }
        self.spawn(index).await
    }

    async fn pause(&mut self, node: &str) -> anyhow::Result<()> {
        self.signal(node, "STOP").await?;
        self.find_mut(node)?.paused = true;
        Ok(())
    }

    async fn resume(&mut self, node: &str) -> anyhow::Result<()> {
        if self.find(node)?.wrapper.is_none() {
            return Ok(());
        }
        self.signal(node, "CONT").await?;
        self.find_mut(node)?.paused = false;
        Ok(())
    }

    async fn partition(&mut self, grudge: &Grudge) -> anyhow::Result<()> {
        self.heal().await?;
        let table = self.table();
        for (name, dropped) in grudge.iter().filter(|(_, d)| !d.is_empty()) {
            let node = self.find(name)?;
            let mut addresses = Vec::new();
            for other in dropped {
                let other = self.find(other)?;
                if other.remote.address == node.remote.address {
                    bail!(
                        "partition: {} and {} share the address {}; partitions over ssh need one address per node",
                        node.name,
                        other.name,
                        node.remote.address
                    );
                }
                addresses.push(other.remote.address);
            }
            let script = partition_script(&table, &addresses);
            node.remote
                .run(&format!("nft {}", quote(&script)))
                .await
                .with_context(|| format!("partitioning {name}"))?;
            self.partitioned.insert(name.clone());
        }
        Ok(())
    }

    async fn heal(&mut self) -> anyhow::Result<()> {
        let line = delete_table_line(&self.table());
        for name in std::mem::take(&mut self.partitioned) {
            let listing = self
                .find(&name)?
                .remote
                .run(&line)
                .await
                .with_context(|| format!("healing {name}"))?;
            let dropped = dropped_packets(&listing);
            tracing::info!(node = %name, dropped_packets = dropped, "partition healed");
        }
        Ok(())
    }

    async fn set_clock(&mut self, node: &str, setting: ClockSetting) -> anyhow::Result<()> {
        if let Some(why) = self.spec.sut.lacks(Ability::Faketime) {
            bail!("clock faults cannot reach {}: {why}", self.spec.sut.name());
        }
        let n = self.find(node)?;
        if n.faketime.is_none() {
            bail!("clock faults on {node} (host {}) need libfaketime, which was not set up for this run", n.host());
        }
        let file = quote(&format!("{}/faketime", n.dir));
        n.remote
            .run(&format!(
                "printf '%s\\n' {} > {file}.tmp && mv {file}.tmp {file}",
                quote(&setting.faketime())
            ))
            .await
            .with_context(|| format!("setting the clock of {node}"))?;
        Ok(())
    }

    async fn reset_clock(&mut self, node: &str) -> anyhow::Result<()> {
        self.set_clock(node, ClockSetting::REAL).await
    }

    async fn disk(&mut self, node: &str, _command: faultfs::Command) -> anyhow::Result<String> {
        // The plan refuses disk faults over ssh; nothing should ask.
        anyhow::bail!("{node}: the ssh runtime has no faultfs mounts (disk faults are not supported over ssh)")
    }

    async fn empty_disk(&mut self, node: &str) -> anyhow::Result<crate::runtime::disk::Emptied> {
        // The plan refuses disk faults over ssh; nothing should ask.
        anyhow::bail!("{node}: the ssh runtime has no faultfs mounts (disk faults are not supported over ssh)")
    }

    async fn running(&mut self, node: &str) -> bool {
        let Ok(n) = self.find(node) else {
            return false;
        };
        match n.pid {
            Some(pid) => n.remote.run(&format!("kill -0 {pid}")).await.is_ok(),
            None => false,
        }
    }

    /// One command per running node: `kill -0` on its pid, and the log's
    /// tail when it is gone. Its status is not seen over ssh (the node
    /// runs in the background of its wrapper).
    async fn exits(&mut self) -> Vec<Exit> {
        let mut exits = Vec::new();
        for node in self.nodes.iter_mut().filter(|n| n.wrapper.is_some()) {
            let Some(pid) = node.pid else { continue };
            let script = format!(
                "kill -0 {pid} 2>/dev/null && echo running || {{ echo ended; tail -n {LOG_TAIL_LINES} {}/node.log; }}",
                quote(&node.dir)
            );
            let Ok(answer) = node.remote.run(&script).await else {
                continue;
            };
            let Some(tail) = answer.trim_start().strip_prefix("ended") else {
                continue;
            };
            tracing::warn!(node = %node.name, "node exited by itself");
            exits.push(Exit {
                node: node.name.clone(),
                status: "ended (its exit status is not seen over ssh)".into(),
                log_tail: tail_lines(tail.as_bytes(), true),
            });
            hang_up(node).await;
        }
        exits
    }

    async fn collect_log(&mut self, node: &str, dest: &Path) -> anyhow::Result<()> {
        let n = self.find(node)?;
        let log = n
            .remote
            .run(&format!("cat {}/node.log", quote(&n.dir)))
            .await
            .with_context(|| format!("reading the log of {node}"))?;
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(dest, log).with_context(|| format!("writing {}", dest.display()))
    }

    async fn collect_trace(&mut self, node: &str, dest: &Path) -> anyhow::Result<()> {
        let n = self.find(node)?;
        let trace = n
            .remote
            .run(&format!("cat {}/trace.jsonl", quote(&n.dir)))
            .await
            .with_context(|| format!("reading the Raft trace of {node}"))?;
        std::fs::write(dest, trace).with_context(|| format!("writing {}", dest.display()))
    }

    async fn teardown(&mut self) -> anyhow::Result<()> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let line = delete_table_line(&self.table());
        let mut failures = Vec::new();
        for node in &mut self.nodes {
            if let Some(pid) = node.pid {
                // SIGCONT first is not needed: SIGKILL ends a stopped process.
                let _ = node
                    .remote
                    .run(&format!("kill -KILL {pid} 2>/dev/null; true"))
                    .await;
            }
            hang_up(node).await;
            let cleanup = format!("{line}; rm -rf {}", quote(&node.dir));
            if let Err(e) = node.remote.run(&cleanup).await {
                failures.push(format!("{}: {e:#}", node.name));
            }
        }
        for node in std::mem::take(&mut self.nodes) {
            node.remote.close().await;
        }
        if self.spec.work_dir.exists() {
            std::fs::remove_dir_all(&self.spec.work_dir)
                .with_context(|| format!("removing {}", self.spec.work_dir.display()))?;
        }
        if !failures.is_empty() {
            bail!("cleaning the hosts: {}", failures.join("; "));
        }
        Ok(())
    }
}

/// Removes from each host what killed harnesses left: nodes of run
/// directories named `ordeal-<pid>-<seed>-<node>` under the host's
/// directory, the directories, and `ordeal_*` nft tables — only of runs
/// whose harness no longer runs here. Returns what was removed.
pub async fn clean_leftovers(hosts: &[HostSpec], trust: &Trust) -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    let mut seen = BTreeSet::new();
    for host in hosts {
        if !seen.insert((host.destination.clone(), host.dir.clone())) {
            continue;
        }
        let remote = Remote::connect(host, trust).await?;
        removed.extend(clean_host(&remote).await?);
        remote.close().await;
    }
    Ok(removed)
}

/// The label of a run directory name `ordeal-<pid>-<seed>-<node>`.
fn dir_label(name: &str) -> Option<&str> {
    let (label, node) = name.rsplit_once('-')?;
    let parts: Vec<&str> = label.split('-').collect();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (parts.len() == 3
        && parts[0] == "ordeal"
        && numeric(parts[1])
        && numeric(parts[2])
        && node.starts_with('n'))
    .then_some(label)
}

async fn clean_host(remote: &Remote) -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    let dir = quote(&remote.host.dir);
    let listing = remote
        .run(&format!(
            "cd {dir} && for d in ordeal-*; do [ -d \"$d\" ] && echo \"$d\"; done; true"
        ))
        .await?;
    for name in listing.lines() {
        let Some(label) = dir_label(name) else {
            continue;
        };
        if owner_alive(label) {
            continue;
        }
        let path = quote(&format!("{}/{name}", remote.host.dir));
        // Only a pid whose command line names the directory is killed, so a
        // recycled pid is never hit.
        remote
            .run(&format!(
                "p=$(cat {path}/{PID_FILE} 2>/dev/null); \
                 if [ -n \"$p\" ] && tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -qF {path}; then kill -KILL $p; fi; \
                 rm -rf {path}"
            ))
            .await?;
        removed.push(format!("host {}: directory {name}", remote.name()));
    }
    if remote.has_tool("nft").await? {
        let tables = remote.run("nft list tables 2>/dev/null; true").await?;
        for table in tables.lines().filter_map(|l| l.strip_prefix("table inet ")) {
            let label = table.trim().replace('_', "-");
            if !table.starts_with(NFT_TABLE_PREFIX) || dir_label(&format!("{label}-n")).is_none() {
                continue;
            }
            if owner_alive(&label) {
                continue;
            }
            remote.run(&delete_table_line(table.trim())).await?;
            removed.push(format!(
                "host {}: nft table {}",
                remote.name(),
                table.trim()
            ));
        }
    }
    Ok(removed)
}

impl Drop for SshRuntime {
    fn drop(&mut self) {
        // Last resort when teardown could not run: dropping a wrapper kills
        // its local ssh client, the host closes the channel, and the
        // wrapper SIGKILLs the node. Directories and rules stay for
        // `harness clean --hosts`.
        for node in &mut self.nodes {
            node.wrapper.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_partition_rules_and_run_names_are_ours_alone() {
        let a: IpAddr = "10.1.0.2".parse().unwrap();
        let b: IpAddr = "fd00::3".parse().unwrap();
        let script = partition_script("ordeal_12_34", &[a, b]);
        assert!(script.starts_with("add table inet ordeal_12_34;"));
        assert!(script.contains("input ip saddr { 10.1.0.2 } counter drop"));
        assert!(script.contains("output ip6 daddr { fd00::3 } counter drop"));
        let listing = "table inet t {\n chain input {\n ip saddr { 10.1.0.2 } counter packets 12 bytes 800 drop\n }\n chain output {\n ip daddr { 10.1.0.2 } counter packets 3 bytes 180 drop\n }\n}\n";
        assert_eq!(dropped_packets(listing), 15);
        assert_eq!(nft_table("ordeal-12-34"), "ordeal_12_34");
        assert_eq!(dir_label("ordeal-12-34-n3"), Some("ordeal-12-34"));
        assert_eq!(dir_label("ordeal-12-n3"), None);
        assert_eq!(dir_label("ordeal-x-34-n3"), None);
        assert_eq!(dir_label("ordeal-ssh-test"), None);
        let wrapper = node_script(
            "/tmp/ordeal-1-2-n1",
            &[("K".into(), "v w".into())],
            &["--id".into()],
        );
        assert!(wrapper.contains("env K='v w' '/tmp/ordeal-1-2-n1'/node '--id'"));
        assert!(wrapper.contains("cat >/dev/null\nkill -KILL $pid"));
    }
}
