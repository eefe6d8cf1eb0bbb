//! The Docker runtime: each node a container of the locally built image
//! (`image.rs`) on a dedicated bridge network, started with testcontainers;
//! kill, restart, pause and resume through the engine API (bollard);
//! partitions as nftables rules inside each container's own network
//! namespace, applied with `docker exec` (the containers hold
//! `CAP_NET_ADMIN`, so a user who can use Docker needs no root); clocks
//! through libfaketime reading a file bind-mounted from the host.
//!
//! Each node's data directory is a labelled volume (or its faultfs mount),
//! so that a node restarted after another joined can get a new container,
//! whose command line names the new peer, on the same data.
//!
//! Everything is labelled `ordeal=1` and `ordeal.run=<label>`, and the
//! network is named `ordeal-<label>`, so that `harness clean` finds what a
//! killed harness left behind (volumes too); a reaper process
//! (`reaper.rs`) removes them by that label when the harness dies, even
//! by SIGKILL.

use crate::runtime::clock::{ClockSetting, FAKETIME_LIB};
use crate::runtime::disk::Disks;
use crate::runtime::exit::{tail_lines, Exit};
use crate::runtime::image::ensure_image;
use crate::runtime::label::owner_alive;
use crate::runtime::reaper::{
    container_gone_or_going, force_remove, gone_already, remove_network_patiently,
    remove_run_containers, Reaper, RUN_SWEEP_PAUSE,
};
use crate::runtime::verbs::{Added, ClusterSpec, Grudge, Runtime};
use crate::sut::{Ability, Launch, System};
use anyhow::{bail, Context};
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use testcontainers::bollard::container::{
    KillContainerOptions, ListContainersOptions, LogOutput, LogsOptions,
};
use testcontainers::bollard::network::{CreateNetworkOptions, ListNetworksOptions};
use testcontainers::bollard::volume::{CreateVolumeOptions, ListVolumesOptions};
use testcontainers::bollard::Docker;
use testcontainers::core::{CmdWaitFor, ExecCommand, Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// Peer port inside every container.
const PEER_PORT: u16 = 7001;
/// Client port inside every container.
const CLIENT_PORT: u16 = 8001;
/// Protocol port inside every container (`Launch::listen_protocol`).
const PROTOCOL_PORT: u16 = 4222;
/// Label on everything this runtime creates.
pub const LABEL: &str = "ordeal";
/// A node's log from the containers it had before the current one.
const EARLIER_LOG: &str = "earlier.log";
/// The nftables table holding partition rules.
const NFT_TABLE: &str = "ordeal_partition";

/// Nodes as containers.
pub struct DockerRuntime {
    spec: ClusterSpec,
    docker: Docker,
    network: String,
    containers: BTreeMap<String, ContainerAsync<GenericImage>>,
    /// Every node started, in start order (founders, then added nodes).
    names: Vec<String>,
    /// The image the nodes run (`name:tag`), once built.
    image: Option<String>,
    /// The command line each node's container was created with.
    launched: BTreeMap<String, Vec<String>>,
    /// The founders' ids of each node that joined during the run.
    joined: BTreeMap<String, Vec<usize>>,
    ips: BTreeMap<String, IpAddr>,
    partitioned: BTreeSet<String>,
    /// Nodes whose container stopped or started since their partition
    /// rules went in: their network namespace, rules included, is gone
    /// (a heal that cannot reach them has nothing to remove).
    namespace_lost: BTreeSet<String>,
    /// Nodes whose container is stopped, and known to be: killed by
    /// [`Runtime::kill`], or already reported by [`Runtime::exits`].
    /// Cleared when the node starts again.
    stopped_known: BTreeSet<String>,
    /// The nodes' faultfs mounts on the host, bound at `/data`.
    disks: Option<Disks>,
    torn_down: bool,
    /// Sweeps the run's label when the harness dies (`reaper.rs`); dropped
    /// after teardown.
    _reaper: Option<Reaper>,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("network", &self.network)
            .field("ips", &self.ips)
            .finish()
    }
}

impl DockerRuntime {
    /// The Docker runtime for a spec (nothing started yet).
    pub fn new(spec: ClusterSpec) -> anyhow::Result<DockerRuntime> {
        let docker =
            Docker::connect_with_local_defaults().context("connecting to the Docker daemon")?;
        let network = format!("ordeal-{}", spec.run_label);
        let reaper = Reaper::start(&spec.run_label);
        Ok(DockerRuntime {
            _reaper: reaper,
            spec,
            docker,
            network,
            containers: BTreeMap::new(),
            names: Vec::new(),
            image: None,
            launched: BTreeMap::new(),
            joined: BTreeMap::new(),
            ips: BTreeMap::new(),
            partitioned: BTreeSet::new(),
            namespace_lost: BTreeSet::new(),
            stopped_known: BTreeSet::new(),
            disks: None,
            torn_down: false,
        })
    }
}

/// Why a heal that could not remove `node`'s rules failed, or `None` when
/// the rules went with the container's network namespace (`namespace_lost`:
/// the container stopped, or was started again, since they went in).
fn heal_failure(node: &str, error: &anyhow::Error, namespace_lost: bool) -> Option<String> {
    (!namespace_lost).then(|| format!("could not remove the partition rules of {node}: {error:#}"))
}

/// Whether a Docker daemon answers on its socket.
pub fn daemon_answers() -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect("/var/run/docker.sock") else {
        return false;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.ends_with("OK")
}

fn clock_dir(spec: &ClusterSpec, node: &str) -> PathBuf {
    spec.work_dir.join(node).join("clock")
}

/// The host directory bind-mounted at [`TRACE_DIR`] in the node's
/// container: the trace outlives the container and is read from here.
fn trace_dir(spec: &ClusterSpec, node: &str) -> PathBuf {
    spec.work_dir.join(node).join("trace")
}

/// Where the Raft trace directory is inside a container.
const TRACE_DIR: &str = "/trace";
/// The trace file's name in that directory.
const TRACE_FILE_NAME: &str = "trace.jsonl";

impl DockerRuntime {
    fn container(&self, node: &str) -> anyhow::Result<&ContainerAsync<GenericImage>> {
        self.containers
            .get(node)
            .with_context(|| format!("no container for node {node}"))
    }

    fn container_name(&self, node: &str) -> String {
        format!("ordeal-{}-{node}", self.spec.run_label)
    }

    async fn create_network(&self) -> anyhow::Result<()> {
        let labels = HashMap::from([
            (LABEL.to_string(), "1".to_string()),
            ("ordeal.run".to_string(), self.spec.run_label.clone()),
        ]);
        let options = CreateNetworkOptions {
            name: self.network.clone(),
            driver: "bridge".to_string(),
            check_duplicate: true,
            labels,
            ..Default::default()
        };
        self.docker
            .create_network(options)
            .await
            .with_context(|| format!("creating the Docker network {}", self.network))?;
        Ok(())
    }

    /// The command line of node `i`, dialling the nodes `peers` (`join`:
    /// the founders, for a node added during the run, else empty): peers
    /// are named by container name, which Docker's DNS resolves on the
    /// run's network.
    fn node_args(&self, i: usize, peers: &[usize], join: &[usize]) -> Vec<String> {
        let node = format!("n{i}");
        let host = self.container_name(&node);
        let ids: BTreeSet<usize> = peers.iter().copied().chain([i]).collect();
        let peers: Vec<(usize, String)> = ids.into_iter().map(|j| (j, self.peer_addr(j))).collect();
        self.spec.sut.command(&Launch {
            name: &node,
            id: i,
            data_dir: "/data".into(),
            listen_peer: format!("0.0.0.0:{PEER_PORT}"),
            advertise_peer: format!("{host}:{PEER_PORT}"),
            listen_client: format!("0.0.0.0:{CLIENT_PORT}"),
            advertise_client: format!("{host}:{CLIENT_PORT}"),
            listen_protocol: format!("0.0.0.0:{PROTOCOL_PORT}"),
            peers,
            cluster_token: &self.spec.run_label,
            flags: &self.spec.node_args,
            trace_file: format!("{TRACE_DIR}/{TRACE_FILE_NAME}"),
            join: join.to_vec(),
        })
    }

    /// Where members dial node `id`: its container's name on the network.
    fn peer_addr(&self, id: usize) -> String {
        format!("{}:{PEER_PORT}", self.container_name(&format!("n{id}")))
    }

    async fn start_node(&mut self, i: usize, image: &str, args: Vec<String>) -> anyhow::Result<()> {
        let node = format!("n{i}");
        let clock = clock_dir(&self.spec, &node);
        std::fs::create_dir_all(&clock).with_context(|| format!("creating {}", clock.display()))?;
        std::fs::write(clock.join("faketime"), "+0 x1\n")?;
        let trace = trace_dir(&self.spec, &node);
        std::fs::create_dir_all(&trace).with_context(|| format!("creating {}", trace.display()))?;
        let (name, tag) = image.split_once(':').expect("image is name:tag");
        let request = GenericImage::new(name, tag)
            .with_wait_for(WaitFor::Nothing)
            .with_cmd(args.clone())
            .with_network(self.network.clone())
            .with_container_name(self.container_name(&node))
            .with_label(LABEL, "1")
            .with_label("ordeal.run", self.spec.run_label.clone())
            .with_cap_add("NET_ADMIN")
            .with_mount(Mount::bind_mount(
                clock.to_string_lossy().to_string(),
                "/clock",
            ))
            .with_mount(Mount::bind_mount(
                trace.to_string_lossy().to_string(),
                TRACE_DIR,
            ));
        let request = match self.disks.as_ref().and_then(|d| d.mountpoint(&node)) {
            Some(data) => request.with_mount(Mount::bind_mount(
                data.to_string_lossy().to_string(),
                "/data",
            )),
            None => {
                request.with_mount(Mount::volume_mount(self.data_volume(&node).await?, "/data"))
            }
        };
        let request = if self.spec.sut.reads_faketime() {
            request
                .with_env_var("LD_PRELOAD", FAKETIME_LIB)
                .with_env_var("FAKETIME_TIMESTAMP_FILE", "/clock/faketime")
                .with_env_var("FAKETIME_CACHE_DURATION", "1")
        } else {
            request
        };
        let request = self
            .spec
            .sut
            .container_env()
            .iter()
            .fold(request, |r, (k, v)| r.with_env_var(*k, *v));
        let container = request
            .start()
            .await
            .with_context(|| format!("starting the container of {node}"))?;
        let ip = container
            .get_bridge_ip_address()
            .await
            .with_context(|| format!("the address of {node}"))?;
        tracing::info!(node, %ip, id = container.id(), "container started");
        self.ips.insert(node.clone(), ip);
        if !self.names.contains(&node) {
            self.names.push(node.clone());
        }
        self.launched.insert(node.clone(), args);
        self.containers.insert(node, container);
        Ok(())
    }

    /// The node's data volume (labelled, created when missing): the data
    /// directory outlives the container, so that a container can be made
    /// anew with another command line on the same data.
    async fn data_volume(&self, node: &str) -> anyhow::Result<String> {
        let name = format!("{}-data", self.container_name(node));
        let labels = HashMap::from([
            (LABEL.to_string(), "1".to_string()),
            ("ordeal.run".to_string(), self.spec.run_label.clone()),
        ]);
        let options = CreateVolumeOptions {
            name: name.clone(),
            labels,
            ..Default::default()
        };
        self.docker
            .create_volume(options)
            .await
            .with_context(|| format!("creating the volume {name}"))?;
        Ok(name)
    }

    /// The command line a node should be (re)started with now: every node
    /// started in the run is a peer, so that a member restarted after an
    /// add can reach the added node even when its snapshot holds the add.
    fn current_args(&self, node: &str) -> Option<Vec<String>> {
        let id: usize = node.strip_prefix('n')?.parse().ok()?;
        let join = self.joined.get(node).cloned().unwrap_or_default();
        let mut peers: Vec<usize> = (1..=self.spec.nodes).collect();
        if !self.joined.is_empty() {
            peers = self
                .names
                .iter()
                .filter_map(|n| n.strip_prefix('n')?.parse().ok())
                .collect();
        }
        Some(self.node_args(id, &peers, &join))
    }

    /// Makes a stopped node's container anew with `args` on its data: its
    /// log so far is kept in `earlier.log` for [`Runtime::collect_log`].
    async fn recreate(&mut self, node: &str, args: Vec<String>) -> anyhow::Result<()> {
        let earlier = self.spec.work_dir.join(node).join(EARLIER_LOG);
        let mut log = std::fs::read(&earlier).unwrap_or_default();
        log.extend(self.container_log(node).await?);
        std::fs::write(&earlier, log).with_context(|| format!("writing {}", earlier.display()))?;
        if let Some(old) = self.containers.remove(node) {
            old.rm()
                .await
                .with_context(|| format!("removing the old container of {node}"))?;
        }
        let id: usize = node[1..].parse().context("a node name is n<id>")?;
        let image = self.image.clone().context("restart before start")?;
        tracing::info!(
            node,
            "container made anew with every started node as a peer"
        );
        self.start_node(id, &image, args).await
    }

    /// Everything the node's current container wrote to stdout and stderr.
    async fn container_log(&self, node: &str) -> anyhow::Result<Vec<u8>> {
        let id = self.container(node)?.id().to_string();
        let mut logs = self.docker.logs::<String>(
            &id,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        let mut bytes = Vec::new();
        while let Some(chunk) = logs.next().await {
            match chunk.with_context(|| format!("reading the log of {node}"))? {
                LogOutput::StdOut { message }
                | LogOutput::StdErr { message }
                | LogOutput::Console { message } => bytes.extend_from_slice(&message),
                LogOutput::StdIn { .. } => {}
            }
        }
        Ok(bytes)
    }

    async fn exec(&self, node: &str, cmd: Vec<String>) -> anyhow::Result<()> {
        let c = self.container(node)?;
        // The ready condition makes a non-zero exit an error.
        c.exec(ExecCommand::new(cmd.clone()).with_cmd_ready_condition(CmdWaitFor::exit_code(0)))
            .await
            .with_context(|| format!("docker exec {} in {node}", cmd.join(" ")))?;
        Ok(())
    }
}

impl Runtime for DockerRuntime {
    async fn start(&mut self) -> anyhow::Result<()> {
        let binary = self.spec.binary.clone();
        let (name, entrypoint) = self.spec.sut.image();
        let image =
            tokio::task::spawn_blocking(move || ensure_image(&binary, name, entrypoint)).await??;
        self.create_network().await?;
        if let Some(disk) = &self.spec.disk {
            let dirs: Vec<(String, PathBuf)> = (1..=self.spec.nodes)
                .map(|i| (format!("n{i}"), self.spec.work_dir.join(format!("n{i}"))))
                .collect();
            self.disks = Some(Disks::mount(disk, &dirs)?);
        }
        let founders: Vec<usize> = (1..=self.spec.nodes).collect();
        for i in 1..=self.spec.nodes {
            let args = self.node_args(i, &founders, &[]);
            self.start_node(i, &image, args).await?;
        }
        self.image = Some(image);
        Ok(())
    }

    fn nodes(&self) -> Vec<String> {
        self.names.clone()
    }

    /// A new container `n<id>` on the run's network, on an empty data
    /// volume (a faultfs mount when the run has them). A container keeps
    /// the command line it was created with, so a member restarted later
    /// gets a new container on its data, naming every started node
    /// ([`DockerRuntime::recreate`]).
    async fn add_node(
        &mut self,
        id: usize,
        founders: &[usize],
        peers: &[usize],
    ) -> anyhow::Result<Added> {
        let name = format!("n{id}");
        if id == 0 || self.containers.contains_key(&name) {
            bail!("cannot add {name}: ids start at 1 and are used once");
        }
        let image = self.image.clone().context("add_node before start")?;
        if let (Some(spec), Some(disks)) = (&self.spec.disk, self.disks.as_mut()) {
            let dir = self.spec.work_dir.join(&name);
            disks.mount_one(spec, id as u64 - 1, &name, &dir)?;
        }
        let args = self.node_args(id, peers, founders);
        self.joined.insert(name.clone(), founders.to_vec());
        self.start_node(id, &image, args).await?;
        Ok(Added {
            url: self.client_url(&name),
            peer_addr: self.peer_addr(id),
            name,
        })
    }

    fn client_url(&self, node: &str) -> String {
        match self.ips.get(node) {
            Some(ip) => format!("http://{ip}:{CLIENT_PORT}"),
            None => format!("http://invalid-node-{node}"),
        }
    }

    fn protocol_address(&self, node: &str) -> String {
        match self.ips.get(node) {
            Some(ip) => format!("{ip}:{PROTOCOL_PORT}"),
            None => format!("invalid-node-{node}:0"),
        }
    }

    async fn kill(&mut self, node: &str) -> anyhow::Result<()> {
        let id = self.container(node)?.id().to_string();
        self.docker
            .kill_container(&id, Some(KillContainerOptions { signal: "SIGKILL" }))
            .await
            .with_context(|| format!("killing {node}"))?;
        self.stopped_known.insert(node.to_string());
        self.namespace_lost.insert(node.to_string());
        tracing::info!(node, "container killed");
        Ok(())
    }

    async fn restart(&mut self, node: &str) -> anyhow::Result<()> {
        let id = self.container(node)?.id().to_string();
        let running = self
            .docker
            .inspect_container(&id, None)
            .await?
            .state
            .and_then(|s| s.running)
            .unwrap_or(false);
        if running {
            return Ok(());
        }
        self.stopped_known.remove(node);
        self.namespace_lost.insert(node.to_string());
        if let Some(args) = self.current_args(node) {
            if self.launched.get(node) != Some(&args) {
                return self.recreate(node, args).await;
            }
        }
        self.docker
            .start_container::<String>(&id, None)
            .await
            .with_context(|| format!("restarting {node}"))?;
        match self.container(node)?.get_bridge_ip_address().await {
            Ok(ip) => _ = self.ips.insert(node.to_string(), ip),
            // A node that refuses its data (a storage fault) exits at once
            // and has no address; it keeps its last one, for the restart
            // after its repair.
            Err(e) if !self.running(node).await => {
                tracing::warn!(node, error = %e, "the node stopped right after its start");
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    async fn pause(&mut self, node: &str) -> anyhow::Result<()> {
        let id = self.container(node)?.id().to_string();
        self.docker
            .pause_container(&id)
            .await
            .with_context(|| format!("pausing {node}"))
    }

    async fn resume(&mut self, node: &str) -> anyhow::Result<()> {
        let id = self.container(node)?.id().to_string();
        let paused = self
            .docker
            .inspect_container(&id, None)
            .await?
            .state
            .and_then(|s| s.paused)
            .unwrap_or(false);
        if paused {
            self.docker
                .unpause_container(&id)
                .await
                .with_context(|| format!("resuming {node}"))?;
        }
        Ok(())
    }

    /// The rules reach every container at once (one `docker exec` each,
    /// concurrently): applied one after another they took 0.3–0.7 s, and a
    /// follower cut off later than the others still held the leader's lease
    /// and refused the first pre-vote (issue 18).
    async fn partition(&mut self, grudge: &Grudge) -> anyhow::Result<()> {
        self.heal().await?;
        let mut scripts = Vec::new();
        for (node, dropped) in grudge.iter().filter(|(_, d)| !d.is_empty()) {
            let ips: Vec<String> = dropped
                .iter()
                .filter_map(|d| self.ips.get(d))
                .map(|ip| ip.to_string())
                .collect();
            if ips.is_empty() {
                continue;
            }
            let set = ips.join(", ");
            let script = format!(
                "add table inet {NFT_TABLE}; add chain inet {NFT_TABLE} input {{ type filter hook input priority -10; policy accept; }}; add chain inet {NFT_TABLE} output {{ type filter hook output priority -10; policy accept; }}; add rule inet {NFT_TABLE} input ip saddr {{ {set} }} drop; add rule inet {NFT_TABLE} output ip daddr {{ {set} }} drop"
            );
            scripts.push((node.clone(), script));
        }
        let applied =
            futures_util::future::join_all(scripts.iter().map(|(node, script)| {
                self.exec(node, vec!["/usr/sbin/nft".into(), script.clone()])
            }))
            .await;
        let mut failed = None;
        for ((node, _), result) in scripts.into_iter().zip(applied) {
            match result {
                // Rules that went in are healed later even when another
                // node's failed.
                Ok(()) => {
                    self.namespace_lost.remove(&node);
                    self.partitioned.insert(node);
                }
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Removes every node's rules at once, as [`Runtime::partition`] puts
    /// them. A node whose rules could not be removed is an error of the
    /// run (its partition would go on after the history says it ended),
    /// unless its namespace went with its container (stopped, or started
    /// since: [`heal_failure`]); it is kept for the next heal.
    async fn heal(&mut self) -> anyhow::Result<()> {
        let nodes: Vec<String> = std::mem::take(&mut self.partitioned).into_iter().collect();
        let removed = futures_util::future::join_all(nodes.iter().map(|node| {
            let delete = format!("delete table inet {NFT_TABLE}");
            self.exec(node, vec!["/usr/sbin/nft".into(), delete])
        }))
        .await;
        let mut failures = Vec::new();
        for (node, result) in nodes.into_iter().zip(removed) {
            let Err(e) = result else { continue };
            let lost = self.namespace_lost.contains(&node) || !self.running(&node).await;
            match heal_failure(&node, &e, lost) {
                Some(failure) => {
                    failures.push(failure);
                    self.partitioned.insert(node);
                }
                None => {
                    tracing::debug!(node, error = %e, "partition rules gone with the container's namespace")
                }
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        bail!("healing the partition: {}", failures.join("; "))
    }

    async fn set_clock(&mut self, node: &str, setting: ClockSetting) -> anyhow::Result<()> {
        if let Some(why) = self.spec.sut.lacks(Ability::Faketime) {
            bail!("clock faults cannot reach {}: {why}", self.spec.sut.name());
        }
        let dir = clock_dir(&self.spec, node);
        let tmp = dir.join("faketime.tmp");
        std::fs::write(&tmp, format!("{}\n", setting.faketime()))?;
        std::fs::rename(&tmp, dir.join("faketime")).context("replacing the clock file")
    }

    async fn reset_clock(&mut self, node: &str) -> anyhow::Result<()> {
        self.set_clock(node, ClockSetting::REAL).await
    }

    async fn disk(&mut self, node: &str, command: faultfs::Command) -> anyhow::Result<String> {
        crate::runtime::disk::command_on(self.disks.as_ref(), node, command).await
    }

    async fn empty_disk(&mut self, node: &str) -> anyhow::Result<crate::runtime::disk::Emptied> {
        crate::runtime::disk::empty_on(self.disks.as_ref(), node).await
    }

    async fn running(&mut self, node: &str) -> bool {
        let Ok(id) = self.container(node).map(|c| c.id().to_string()) else {
            return false;
        };
        self.docker
            .inspect_container(&id, None)
            .await
            .ok()
            .and_then(|i| i.state)
            .and_then(|s| s.running)
            .unwrap_or(false)
    }

    async fn exits(&mut self) -> Vec<Exit> {
        let mut exits = Vec::new();
        let nodes: Vec<String> = self
            .containers
            .keys()
            .filter(|n| !self.stopped_known.contains(*n))
            .cloned()
            .collect();
        for node in nodes {
            let Ok(id) = self.container(&node).map(|c| c.id().to_string()) else {
                continue;
            };
            let Ok(info) = self.docker.inspect_container(&id, None).await else {
                continue;
            };
            let Some(state) = info.state.filter(|s| s.running == Some(false)) else {
                continue;
            };
            let mut status = format!("exit status {}", state.exit_code.unwrap_or(-1));
            if state.oom_killed == Some(true) {
                status.push_str(" (killed for lack of memory)");
            }
            let log = self.container_log(&node).await.unwrap_or_default();
            tracing::warn!(node, status, "node exited by itself");
            self.stopped_known.insert(node.clone());
            self.namespace_lost.insert(node.clone());
            exits.push(Exit {
                log_tail: tail_lines(&log, true),
                node,
                status,
            });
        }
        exits
    }

    async fn collect_log(&mut self, node: &str, dest: &Path) -> anyhow::Result<()> {
        let earlier = self.spec.work_dir.join(node).join(EARLIER_LOG);
        let mut bytes = std::fs::read(earlier).unwrap_or_default();
        bytes.extend(self.container_log(node).await?);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(dest, bytes).with_context(|| format!("writing {}", dest.display()))
    }

    async fn collect_trace(&mut self, node: &str, dest: &Path) -> anyhow::Result<()> {
        let source = trace_dir(&self.spec, node).join(TRACE_FILE_NAME);
        std::fs::copy(&source, dest)
            .with_context(|| format!("copying {} to {}", source.display(), dest.display()))?;
        Ok(())
    }

    async fn teardown(&mut self) -> anyhow::Result<()> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        for (node, c) in std::mem::take(&mut self.containers) {
            let id = c.id().to_string();
            let _ = self.docker.unpause_container(&id).await;
            if let Err(e) = c.rm().await {
                tracing::warn!(node, error = %e, "could not remove the container");
            }
        }
        // A container whose start was in flight when the harness was
        // interrupted (the start's future dropped) is in no map: swept by
        // its run label, twice, the second after the engine has had time
        // to finish a create it had already received.
        for pause in [std::time::Duration::ZERO, RUN_SWEEP_PAUSE] {
            tokio::time::sleep(pause).await;
            remove_run_containers(&self.docker, &self.spec.run_label).await;
        }
        if let Err(e) = self.docker.remove_network(&self.network).await {
            tracing::warn!(network = %self.network, error = %e, "could not remove the network");
        }
        for node in self.names.clone() {
            let volume = format!("{}-data", self.container_name(&node));
            let removed = self.docker.remove_volume(&volume, None).await;
            // A node on faultfs has a bind mount and no volume: 404 is gone.
            if gone_already(&removed) {
                continue;
            }
            if let Err(e) = removed {
                tracing::warn!(volume, error = %e, "could not remove the data volume");
            }
        }
        if let Some(mut disks) = self.disks.take() {
            disks.unmount()?;
        }
        if self.spec.work_dir.exists() {
            std::fs::remove_dir_all(&self.spec.work_dir)
                .with_context(|| format!("removing {}", self.spec.work_dir.display()))?;
        }
        Ok(())
    }
}

impl Drop for DockerRuntime {
    fn drop(&mut self) {
        if self.torn_down {
            return;
        }
        // Last resort when teardown could not run (a panic): the CLI, since
        // Drop cannot wait on the engine API.
        for c in self.containers.values() {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", "-v", c.id()])
                .output();
        }
        let _ = std::process::Command::new("docker")
            .args(["network", "rm", &self.network])
            .output();
        for node in &self.names {
            let _ = std::process::Command::new("docker")
                .args([
                    "volume",
                    "rm",
                    &format!("{}-data", self.container_name(node)),
                ])
                .output();
        }
        drop(self.disks.take());
        let _ = std::fs::remove_dir_all(&self.spec.work_dir);
    }
}

/// Removes the labelled data volumes of harnesses no longer running.
async fn clean_volumes(docker: &Docker) -> anyhow::Result<Vec<String>> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL}=1")])]);
    let volumes = docker
        .list_volumes(Some(ListVolumesOptions { filters }))
        .await
        .context("listing volumes")?;
    let mut removed = Vec::new();
    for v in volumes.volumes.unwrap_or_default() {
        if owner_alive(v.labels.get("ordeal.run").map_or("", String::as_str)) {
            continue;
        }
        // A volume still held (by a container another clean is removing)
        // is left for the next clean, not an error of this one.
        match docker.remove_volume(&v.name, None).await {
            Ok(()) => removed.push(format!("volume {}", v.name)),
            Err(e) => tracing::warn!(volume = %v.name, error = %e, "could not remove the volume"),
        }
    }
    Ok(removed)
}

/// Removes every container and network labelled by ordeal (what a killed
/// harness left behind). Returns what was removed.
pub async fn clean_leftovers() -> anyhow::Result<Vec<String>> {
    let docker =
        Docker::connect_with_local_defaults().context("connecting to the Docker daemon")?;
    let mut removed = Vec::new();
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL}=1")])]);
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: filters.clone(),
            ..Default::default()
        }))
        .await
        .context("listing containers")?;
    for c in containers {
        let run = c
            .labels
            .as_ref()
            .and_then(|l| l.get("ordeal.run"))
            .cloned()
            .unwrap_or_default();
        if owner_alive(&run) {
            continue;
        }
        let id = c.id.unwrap_or_default();
        let result = force_remove(&docker, &id).await;
        if container_gone_or_going(&result) {
            continue; // the run's reaper was first
        }
        result.with_context(|| format!("removing container {id}"))?;
        removed.push(format!(
            "container {}",
            c.names.unwrap_or_default().join(",")
        ));
    }
    let networks = docker
        .list_networks(Some(ListNetworksOptions { filters }))
        .await
        .context("listing networks")?;
    for n in networks {
        let name = n.name.unwrap_or_default();
        if owner_alive(name.strip_prefix("ordeal-").unwrap_or("")) {
            continue;
        }
        if remove_network_patiently(&docker, &name).await? {
            removed.push(format!("network {name}"));
        }
    }
    removed.extend(clean_volumes(&docker).await?);
    if removed.is_empty() && !daemon_answers() {
        bail!("the Docker daemon does not answer");
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heal_that_left_rules_in_a_live_namespace_is_an_error_naming_the_node() {
        let error = anyhow::anyhow!("docker exec /usr/sbin/nft delete table in n2: exit code 1");
        let failure = heal_failure("n2", &error, false).expect("an error of the run");
        assert!(
            failure.contains("n2") && failure.contains("exit code 1"),
            "{failure}"
        );
        // Killed or restarted since the rules went in: nothing left to remove.
        assert_eq!(heal_failure("n2", &error, true), None);
    }
}
