//! Process runtime: every node is a local process on its own loopback
//! address (`127.0.0.1`, `127.0.0.2`, …) with its own data directory, and
//! every peer link goes through a fault proxy inside the harness.
//!
//! ordeal-node: node `i` dials peer `j` at the proxy `(i, j)`, which
//! forwards to `j`'s real peer port. etcd advertises one peer URL per
//! member to everyone, so each member gets one inbound proxy instead, which
//! tells the sender of a connection by the `X-PeerURLs` header that etcd's
//! peer transport puts on every request (the sender's advertised URL, i.e.
//! its own inbound proxy). A partition makes the proxies of the cut links
//! close their connections and refuse new ones; heal lets traffic through
//! again. An etcd connection whose sender cannot be told (no raft traffic
//! lacks the header) is refused while its target has any grudge.
//! Raft traffic is TCP, and a TCP connection whose one direction drops every
//! packet stalls in both (acks never return), so a link is cut as a whole
//! when either of its directions is in the grudge.
//!
//! Every process gets `PR_SET_PDEATHSIG = SIGKILL`, is killed on Drop, and
//! is listed in a pid file under the work directory so that `harness clean`
//! can kill what a SIGKILLed harness left behind.

use crate::runtime::clock::ClockSetting;
use crate::runtime::disk::Disks;
use crate::runtime::exit::{describe, log_tail, Exit};
use crate::runtime::verbs::{Added, ClusterSpec, Grudge, Runtime};
use crate::sut::{Ability, Launch, PeerLinks, System};
use anyhow::{bail, Context};
use nix::sys::signal::{kill as send_signal, Signal};
use nix::unistd::Pid;
use node::ports::free_port;
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The largest raft id a node added during a run may have (its loopback
/// address is `127.0.0.<id>`).
const ADDED_ID_MAX: usize = 254;

/// Name of the pid file inside the work directory.
pub const PID_FILE_NAME: &str = "pids";

/// Options of the process runtime that the common [`ClusterSpec`] does not
/// carry.
#[derive(Debug, Clone, Default)]
pub struct ProcessOptions {
    /// The libfaketime preload library; `None` runs nodes on the real clock
    /// (then [`Runtime::set_clock`] fails).
    pub faketime_lib: Option<PathBuf>,
}

/// The addresses of one node.
#[derive(Debug, Clone)]
struct NodeAddrs {
    ip: Ipv4Addr,
    peer_port: u16,
    client_port: u16,
    /// [`Launch::listen_protocol`] (NATS's client port).
    protocol_port: u16,
}

impl NodeAddrs {
    /// Three ports free on `ip`, from the pool below the ephemeral range.
    fn on(ip: Ipv4Addr) -> anyhow::Result<NodeAddrs> {
        Ok(NodeAddrs {
            ip,
            peer_port: free_port(ip)?,
            client_port: free_port(ip)?,
            protocol_port: free_port(ip)?,
        })
    }
}

/// One node's process and files.
#[derive(Debug)]
struct NodeProc {
    name: String,
    id: usize,
    addrs: NodeAddrs,
    dir: PathBuf,
    child: Option<Child>,
    paused: bool,
    /// Every member's id and the address (a proxy) this node dials it at.
    peers: Vec<(usize, String)>,
    /// [`PeerLinks::Advertised`]: the address other members dial (this
    /// node's inbound proxy), `host:port`.
    advertised_peer: String,
    /// The founders' ids when this node joined a running cluster.
    join: Vec<usize>,
}

/// One fault proxy: node `from` (or, with [`PeerLinks::Advertised`], any
/// node) dials node `to`
/// through it.
#[derive(Debug)]
struct Proxy {
    to: String,
    /// The senders whose connections to `to` are cut.
    blocked: watch::Sender<BTreeSet<String>>,
    task: JoinHandle<()>,
}

/// Who is on the other end of a proxied connection.
#[derive(Debug, Clone)]
enum Sender {
    /// Known by construction (one proxy per link).
    Fixed(String),
    /// Told from the `X-PeerURLs` header: (advertised URL, node name).
    Sniffed(Arc<Vec<(String, String)>>),
    /// Told from the hello frame that begins each ordeal-node peer link
    /// (it names the sender's raft id): the inbound proxy of a node added
    /// during the run, whose one `addr` every member dials.
    Hello,
}

/// Nodes as local processes with a fault proxy on every peer link.
#[derive(Debug)]
pub struct ProcessRuntime {
    spec: ClusterSpec,
    options: ProcessOptions,
    nodes: Vec<NodeProc>,
    proxies: Vec<Proxy>,
    /// The nodes' faultfs mounts, when the spec asks for them.
    disks: Option<Disks>,
    /// Nodes found ended by themselves by [`Runtime::kill`], for the next
    /// [`Runtime::exits`].
    ended_unreported: Vec<Exit>,
    torn_down: bool,
}

impl ProcessRuntime {
    /// A runtime for the spec; nothing is started until [`Runtime::start`].
    pub fn new(spec: ClusterSpec, options: ProcessOptions) -> Self {
        Self {
            spec,
            options,
            nodes: Vec::new(),
            proxies: Vec::new(),
            disks: None,
            ended_unreported: Vec::new(),
            torn_down: false,
        }
    }

    fn find(&self, node: &str) -> anyhow::Result<&NodeProc> {
        self.nodes
            .iter()
            .find(|n| n.name == node)
            .with_context(|| format!("no node named {node}"))
    }

    fn find_mut(&mut self, node: &str) -> anyhow::Result<&mut NodeProc> {
        self.nodes
            .iter_mut()
            .find(|n| n.name == node)
            .with_context(|| format!("no node named {node}"))
    }

    fn node_command(&self, node: &NodeProc) -> anyhow::Result<Command> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("node.log"))
            .with_context(|| format!("opening the log of {}", node.name))?;
        let mut cmd = Command::new(&self.spec.binary);
        cmd.args(self.spec.sut.command(&self.launch(node)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cloning a log handle")?)
            .stderr(log);
        if let Some(lib) = self
            .options
            .faketime_lib
            .as_ref()
            .filter(|_| self.spec.sut.reads_faketime())
        {
            cmd.env("LD_PRELOAD", lib)
                .env("FAKETIME_TIMESTAMP_FILE", clock_file(&node.dir))
                // Reread once a second. Not FAKETIME_XRESET: measured here,
                // it stops libfaketime from rereading the file at all.
                .env("FAKETIME_CACHE_DURATION", "1");
        }
        set_pdeathsig(&mut cmd);
        Ok(cmd)
    }

    /// Where the node listens and whom it dials, for the system's command
    /// line.
    fn launch<'a>(&'a self, node: &'a NodeProc) -> Launch<'a> {
        let (ip, peer, client) = (node.addrs.ip, node.addrs.peer_port, node.addrs.client_port);
        Launch {
            name: &node.name,
            id: node.id,
            data_dir: node.dir.join("data").to_string_lossy().into_owned(),
            listen_peer: format!("{ip}:{peer}"),
            advertise_peer: node.advertised_peer.clone(),
            listen_client: format!("{ip}:{client}"),
            advertise_client: format!("{ip}:{client}"),
            listen_protocol: format!("{ip}:{}", node.addrs.protocol_port),
            peers: node.peers.clone(),
            cluster_token: &self.spec.run_label,
            flags: &self.spec.node_args,
            trace_file: trace_file(&node.dir).to_string_lossy().into_owned(),
            join: node.join.clone(),
        }
    }

    fn spawn(&mut self, index: usize) -> anyhow::Result<()> {
        let mut cmd = self.node_command(&self.nodes[index])?;
        let node = &mut self.nodes[index];
        let child = cmd.spawn().with_context(|| {
            format!("starting {} from {}", node.name, self.spec.binary.display())
        })?;
        tracing::info!(node = %node.name, pid = child.id(), "node started");
        node.child = Some(child);
        node.paused = false;
        self.write_pid_file()
    }

    fn write_pid_file(&self) -> anyhow::Result<()> {
        let mut text = String::new();
        for node in &self.nodes {
            if let Some(child) = &node.child {
                text.push_str(&format!("{} {}\n", child.id(), node.name));
            }
        }
        let path = self.spec.work_dir.join(PID_FILE_NAME);
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    fn signal(&self, node: &str, signal: Signal) -> anyhow::Result<()> {
        let proc = self.find(node)?;
        let child = proc
            .child
            .as_ref()
            .with_context(|| format!("{node} is not running"))?;
        send_signal(Pid::from_raw(child.id() as i32), signal)
            .with_context(|| format!("sending {signal} to {node}"))
    }

    fn kill_all_now(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for proxy in &self.proxies {
            proxy.task.abort();
        }
    }
}

/// The child dies with the harness (`PR_SET_PDEATHSIG = SIGKILL`).
fn set_pdeathsig(cmd: &mut Command) {
    // SAFETY: the closure only calls prctl, which is async-signal-safe,
    // and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

fn clock_file(dir: &Path) -> PathBuf {
    dir.join("faketime")
}

/// The node's Raft trace: beside its data directory, never inside it.
fn trace_file(dir: &Path) -> PathBuf {
    dir.join("trace.jsonl")
}

/// Bytes of request head read at most to find `X-PeerURLs`.
const SNIFF_BYTES_MAX: usize = 16 * 1024;
/// Time allowed for the request head to arrive.
const SNIFF_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads the head of the first HTTP request on `inbound` and names its
/// sender from `X-PeerURLs`; returns the bytes read (to be forwarded).
async fn sniff_sender(
    inbound: &mut TcpStream,
    senders: &[(String, String)],
) -> (Option<String>, Vec<u8>) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    let read_head = async {
        while head.len() < SNIFF_BYTES_MAX && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match inbound.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(SNIFF_TIMEOUT, read_head).await;
    (peer_urls_sender(&head, senders), head)
}

/// ordeal-node's hello frame: length 9 (u32 LE), kind 1, the sender's raft
/// id (u64 LE) (`node/src/transport.rs`).
const HELLO_BYTES: usize = 13;

/// Reads the hello frame that opens an ordeal-node peer link and names
/// its sender `n<id>`; returns the bytes read (to be forwarded).
async fn sniff_hello(inbound: &mut TcpStream) -> (Option<String>, Vec<u8>) {
    let mut head = vec![0u8; HELLO_BYTES];
    let read = tokio::time::timeout(SNIFF_TIMEOUT, inbound.read_exact(&mut head)).await;
    if !matches!(read, Ok(Ok(_))) {
        return (None, Vec::new());
    }
    (hello_sender(&head), head)
}

/// The sender a hello frame names, `n<id>`.
fn hello_sender(head: &[u8]) -> Option<String> {
    let frame: &[u8; HELLO_BYTES] = head.try_into().ok()?;
    if frame[..5] != [9, 0, 0, 0, 1] {
        return None;
    }
    let id = u64::from_le_bytes(frame[5..].try_into().ok()?);
    Some(format!("n{id}"))
}

/// The node whose advertised URL the request head's `X-PeerURLs` lists.
fn peer_urls_sender(head: &[u8], senders: &[(String, String)]) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    let urls = text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("x-peerurls")
            .then(|| value.trim().to_string())
    })?;
    urls.split(',').find_map(|url| {
        senders
            .iter()
            .find(|(advertised, _)| advertised == url.trim())
            .map(|(_, name)| name.clone())
    })
}

/// Whether the sender's connections are cut; an unknown sender is cut
/// while any is.
fn is_cut(sender: &Option<String>, blocked: &BTreeSet<String>) -> bool {
    match sender {
        Some(s) => blocked.contains(s),
        None => !blocked.is_empty(),
    }
}

/// Forwards every accepted connection to `target` until its sender is cut;
/// while cut, new connections from it are closed at once.
async fn run_proxy(
    listener: TcpListener,
    target: SocketAddr,
    sender: Sender,
    blocked: watch::Receiver<BTreeSet<String>>,
) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        let mut blocked = blocked.clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            let (from, head) = match sender {
                Sender::Fixed(name) => (Some(name), Vec::new()),
                Sender::Sniffed(senders) => sniff_sender(&mut inbound, &senders).await,
                Sender::Hello => sniff_hello(&mut inbound).await,
            };
            if is_cut(&from, &blocked.borrow()) {
                return;
            }
            let Ok(Ok(mut outbound)) = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                TcpStream::connect(target),
            )
            .await
            else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            if outbound.write_all(&head).await.is_err() {
                return;
            }
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = blocked.wait_for(|set| is_cut(&from, set)) => {}
            }
        });
    }
}

impl ProcessRuntime {
    /// [`PeerLinks::Advertised`]: one inbound proxy per node, which tells
    /// senders by their `X-PeerURLs` header; returns each node's advertised
    /// address (`host:port`).
    async fn inbound_proxies(&mut self, addrs: &[NodeAddrs]) -> anyhow::Result<Vec<String>> {
        let mut advertised: Vec<String> = Vec::new();
        let mut listeners = Vec::new();
        for (to, a) in (1..).zip(addrs) {
            let listener = TcpListener::bind((a.ip, 0))
                .await
                .with_context(|| format!("binding the inbound proxy of n{to}"))?;
            advertised.push(listener.local_addr()?.to_string());
            listeners.push(listener);
        }
        let senders: Arc<Vec<(String, String)>> = Arc::new(
            advertised
                .iter()
                .enumerate()
                .map(|(i, addr)| (format!("http://{addr}"), format!("n{}", i + 1)))
                .collect(),
        );
        for (i, listener) in listeners.into_iter().enumerate() {
            let target = SocketAddr::from((addrs[i].ip, addrs[i].peer_port));
            let sender = Sender::Sniffed(senders.clone());
            self.add_proxy(listener, target, sender, format!("n{}", i + 1));
        }
        Ok(advertised)
    }

    /// [`PeerLinks::PerPair`]: one proxy per ordered pair of nodes; returns
    /// each node's peers, (id, address it dials), itself at its own port.
    async fn pair_proxies(
        &mut self,
        addrs: &[NodeAddrs],
    ) -> anyhow::Result<Vec<Vec<(usize, String)>>> {
        let n = addrs.len();
        let mut peers = vec![Vec::new(); n];
        for from in 1..=n {
            for to in 1..=n {
                let target = SocketAddr::from((addrs[to - 1].ip, addrs[to - 1].peer_port));
                if from == to {
                    peers[from - 1].push((to, target.to_string()));
                    continue;
                }
                let listener = TcpListener::bind((addrs[from - 1].ip, 0))
                    .await
                    .with_context(|| format!("binding the proxy n{from}->n{to}"))?;
                peers[from - 1].push((to, listener.local_addr()?.to_string()));
                let sender = Sender::Fixed(format!("n{from}"));
                self.add_proxy(listener, target, sender, format!("n{to}"));
            }
        }
        Ok(peers)
    }

    fn add_proxy(&mut self, listener: TcpListener, target: SocketAddr, sender: Sender, to: String) {
        let (tx, rx) = watch::channel(BTreeSet::new());
        let task = tokio::spawn(run_proxy(listener, target, sender, rx));
        self.proxies.push(Proxy {
            to,
            blocked: tx,
            task,
        });
    }
}

impl ProcessRuntime {
    /// [`Runtime::add_node`]: `n<id>` on `127.0.0.<id>`, behind one
    /// inbound proxy that tells senders by their hello frame (its address
    /// is the `addr` every member dials); it dials each started node
    /// through a proxy of its own link; restarted nodes are given it.
    async fn add_process(
        &mut self,
        id: usize,
        founders: &[usize],
        peers: &[usize],
    ) -> anyhow::Result<Added> {
        let name = format!("n{id}");
        if self.spec.sut.peer_links() != PeerLinks::PerPair {
            bail!(
                "{} cannot take nodes added during a run",
                self.spec.sut.name()
            );
        }
        if id == 0 || id > ADDED_ID_MAX || self.find(&name).is_ok() {
            bail!("cannot add {name}: ids run from 1 to {ADDED_ID_MAX} and are used once");
        }
        let ip = Ipv4Addr::new(127, 0, 0, id as u8);
        let addrs = NodeAddrs::on(ip)?;
        let own = SocketAddr::from((ip, addrs.peer_port));
        let inbound = TcpListener::bind((ip, 0))
            .await
            .with_context(|| format!("binding the inbound proxy of {name}"))?;
        let peer_addr = inbound.local_addr()?.to_string();
        self.add_proxy(inbound, own, Sender::Hello, name.clone());
        let mut links = vec![(id, own.to_string())];
        for (peer_id, target) in self.dial_targets(peers) {
            let listener = TcpListener::bind((ip, 0))
                .await
                .with_context(|| format!("binding the proxy {name}->n{peer_id}"))?;
            links.push((peer_id, listener.local_addr()?.to_string()));
            self.add_proxy(
                listener,
                target,
                Sender::Fixed(name.clone()),
                format!("n{peer_id}"),
            );
        }
        for node in &mut self.nodes {
            node.peers.push((id, peer_addr.clone()));
        }
        let dir = self.spec.work_dir.join(&name);
        fs::create_dir_all(dir.join("data"))
            .with_context(|| format!("creating {}", dir.display()))?;
        fs::write(clock_file(&dir), "+0 x1\n").context("writing the clock file")?;
        if let (Some(spec), Some(disks)) = (&self.spec.disk, self.disks.as_mut()) {
            disks.mount_one(spec, id as u64 - 1, &name, &dir)?;
        }
        self.nodes.push(NodeProc {
            name: name.clone(),
            id,
            addrs,
            dir,
            child: None,
            paused: false,
            peers: links,
            advertised_peer: String::new(),
            join: founders.to_vec(),
        });
        self.spawn(self.nodes.len() - 1)?;
        let url = self.client_url(&name);
        Ok(Added {
            name,
            url,
            peer_addr,
        })
    }

    /// The real peer address of each started node among `ids`.
    fn dial_targets(&self, ids: &[usize]) -> Vec<(usize, SocketAddr)> {
        self.nodes
            .iter()
            .filter(|n| ids.contains(&n.id))
            .map(|n| (n.id, SocketAddr::from((n.addrs.ip, n.addrs.peer_port))))
            .collect()
    }
}

impl Runtime for ProcessRuntime {
    async fn start(&mut self) -> anyhow::Result<()> {
        let n = self.spec.nodes;
        tracing::info!(label = %self.spec.run_label, nodes = n, "starting a cluster of local processes");
        fs::create_dir_all(&self.spec.work_dir)
            .with_context(|| format!("creating {}", self.spec.work_dir.display()))?;
        let mut addrs = Vec::new();
        for i in 1..=n {
            let ip = Ipv4Addr::new(127, 0, 0, i as u8);
            addrs.push(NodeAddrs::on(ip)?);
        }
        let (peers, advertised) = match self.spec.sut.peer_links() {
            PeerLinks::Advertised => {
                let advertised = self.inbound_proxies(&addrs).await?;
                let all: Vec<(usize, String)> = (1..=n).zip(advertised.iter().cloned()).collect();
                (vec![all; n], advertised)
            }
            PeerLinks::PerPair => (self.pair_proxies(&addrs).await?, Vec::new()),
        };
        for (i, peers) in (1..=n).zip(peers) {
            let dir = self.spec.work_dir.join(format!("n{i}"));
            fs::create_dir_all(dir.join("data"))
                .with_context(|| format!("creating {}", dir.display()))?;
            fs::write(clock_file(&dir), "+0 x1\n").context("writing the clock file")?;
            self.nodes.push(NodeProc {
                name: format!("n{i}"),
                id: i,
                addrs: addrs[i - 1].clone(),
                dir,
                child: None,
                paused: false,
                peers,
                advertised_peer: advertised.get(i - 1).cloned().unwrap_or_default(),
                join: Vec::new(),
            });
        }
        if let Some(disk) = &self.spec.disk {
            let dirs: Vec<(String, PathBuf)> = self
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.dir.clone()))
                .collect();
            self.disks = Some(Disks::mount(disk, &dirs)?);
        }
        for index in 0..n {
            self.spawn(index)?;
        }
        Ok(())
    }

    fn nodes(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    fn client_url(&self, node: &str) -> String {
        match self.find(node) {
            Ok(n) => format!("http://{}:{}", n.addrs.ip, n.addrs.client_port),
            Err(_) => format!("http://invalid-node-{node}"),
        }
    }

    fn protocol_address(&self, node: &str) -> String {
        match self.find(node) {
            Ok(n) => format!("{}:{}", n.addrs.ip, n.addrs.protocol_port),
            Err(_) => format!("invalid-node-{node}:0"),
        }
    }

    async fn add_node(
        &mut self,
        id: usize,
        founders: &[usize],
        peers: &[usize],
    ) -> anyhow::Result<Added> {
        self.add_process(id, founders, peers).await
    }

    async fn kill(&mut self, node: &str) -> anyhow::Result<()> {
        let proc = self.find_mut(node)?;
        let Some(mut child) = proc.child.take() else {
            return Ok(());
        };
        if let Ok(Some(status)) = child.try_wait() {
            // It ended by itself before this kill: still reported.
            let exit = Exit {
                node: node.to_string(),
                status: describe(status),
                log_tail: log_tail(&proc.dir.join("node.log")),
            };
            self.ended_unreported.push(exit);
            return self.write_pid_file();
        }
        child.kill().with_context(|| format!("killing {node}"))?;
        child.wait().with_context(|| format!("reaping {node}"))?;
        proc.paused = false;
        tracing::info!(node, "node killed");
        self.write_pid_file()
    }

    async fn restart(&mut self, node: &str) -> anyhow::Result<()> {
        let index = self
            .nodes
            .iter()
            .position(|n| n.name == node)
            .context("no such node")?;
        if self.nodes[index].child.is_some() {
            return Ok(());
        }
        self.spawn(index)
    }

    async fn pause(&mut self, node: &str) -> anyhow::Result<()> {
        self.signal(node, Signal::SIGSTOP)?;
        self.find_mut(node)?.paused = true;
        Ok(())
    }

    async fn resume(&mut self, node: &str) -> anyhow::Result<()> {
        if self.find(node)?.child.is_none() {
            return Ok(());
        }
        self.signal(node, Signal::SIGCONT)?;
        self.find_mut(node)?.paused = false;
        Ok(())
    }

    async fn partition(&mut self, grudge: &Grudge) -> anyhow::Result<()> {
        let cut = |a: &str, b: &str| grudge.get(a).is_some_and(|s| s.contains(b));
        for proxy in &self.proxies {
            let blocked: BTreeSet<String> = self
                .nodes()
                .into_iter()
                .filter(|from| cut(&proxy.to, from) || cut(from, &proxy.to))
                .collect();
            proxy.blocked.send_replace(blocked);
        }
        Ok(())
    }

    async fn heal(&mut self) -> anyhow::Result<()> {
        for proxy in &self.proxies {
            proxy.blocked.send_replace(BTreeSet::new());
        }
        Ok(())
    }

    async fn set_clock(&mut self, node: &str, setting: ClockSetting) -> anyhow::Result<()> {
        if let Some(why) = self.spec.sut.lacks(Ability::Faketime) {
            bail!("clock faults cannot reach {}: {why}", self.spec.sut.name());
        }
        if self.options.faketime_lib.is_none() {
            bail!("clock faults need libfaketime (apt-get install libfaketime)");
        }
        let dir = self.find(node)?.dir.clone();
        write_atomically(&clock_file(&dir), &format!("{}\n", setting.faketime()))
    }

    async fn reset_clock(&mut self, node: &str) -> anyhow::Result<()> {
        let dir = self.find(node)?.dir.clone();
        write_atomically(&clock_file(&dir), "+0 x1\n")
    }

    async fn disk(&mut self, node: &str, command: faultfs::Command) -> anyhow::Result<String> {
        crate::runtime::disk::command_on(self.disks.as_ref(), node, command).await
    }

    async fn empty_disk(&mut self, node: &str) -> anyhow::Result<crate::runtime::disk::Emptied> {
        crate::runtime::disk::empty_on(self.disks.as_ref(), node).await
    }

    async fn running(&mut self, node: &str) -> bool {
        let Ok(proc) = self.find_mut(node) else {
            return false;
        };
        proc.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    async fn exits(&mut self) -> Vec<Exit> {
        let mut exits = std::mem::take(&mut self.ended_unreported);
        for node in &mut self.nodes {
            // `kill` takes the child before it signals: a child still here
            // that has ended, ended by itself.
            let Some(Ok(Some(status))) = node.child.as_mut().map(|c| c.try_wait()) else {
                continue;
            };
            node.child = None;
            node.paused = false;
            tracing::warn!(node = %node.name, status = %status, "node exited by itself");
            exits.push(Exit {
                node: node.name.clone(),
                status: describe(status),
                log_tail: log_tail(&node.dir.join("node.log")),
            });
        }
        if !exits.is_empty() {
            if let Err(e) = self.write_pid_file() {
                tracing::warn!(error = %e, "could not rewrite the pid file");
            }
        }
        exits
    }

    async fn collect_log(&mut self, node: &str, dest: &Path) -> anyhow::Result<()> {
        let src = self.find(node)?.dir.join("node.log");
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::copy(&src, dest)
            .with_context(|| format!("copying {} to {}", src.display(), dest.display()))?;
        Ok(())
    }

    async fn collect_trace(&mut self, node: &str, dest: &Path) -> anyhow::Result<()> {
        let source = trace_file(&self.spec.work_dir.join(node));
        std::fs::copy(&source, dest)
            .with_context(|| format!("copying {} to {}", source.display(), dest.display()))?;
        Ok(())
    }

    async fn teardown(&mut self) -> anyhow::Result<()> {
        if self.torn_down {
            return Ok(());
        }
        for node in &self.nodes {
            if node.paused {
                if let Some(child) = &node.child {
                    let _ = send_signal(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
                }
            }
        }
        self.kill_all_now();
        self.torn_down = true;
        if let Some(mut disks) = self.disks.take() {
            disks.unmount()?;
        }
        if self.spec.work_dir.exists() {
            fs::remove_dir_all(&self.spec.work_dir)
                .with_context(|| format!("removing {}", self.spec.work_dir.display()))?;
        }
        Ok(())
    }
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

impl Drop for ProcessRuntime {
    fn drop(&mut self) {
        self.kill_all_now();
        // Unmounted before the work directory goes.
        drop(self.disks.take());
        if !self.torn_down && self.spec.work_dir.exists() {
            let _ = fs::remove_dir_all(&self.spec.work_dir);
        }
    }
}

/// Kills every process listed in the pid files of work directories under
/// `root` (one per run, left behind by a killed harness) and removes the
/// directories. A pid is only killed when its command line names the
/// work directory, so a recycled pid is never hit. Returns what was killed.
pub fn clean_leftovers(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut cleaned = Vec::new();
    let Ok(entries) = fs::read_dir(root) else {
        return Ok(cleaned);
    };
    for entry in entries {
        let dir = entry
            .with_context(|| format!("listing {}", root.display()))?
            .path();
        if dir
            .file_name()
            .is_some_and(|n| crate::runtime::label::owner_alive(&n.to_string_lossy()))
        {
            continue;
        }
        let pids = fs::read_to_string(dir.join(PID_FILE_NAME)).unwrap_or_default();
        for line in pids.lines() {
            let Some(pid) = line
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&*dir.to_string_lossy()) {
                let _ = send_signal(Pid::from_raw(pid), Signal::SIGKILL);
                cleaned.push(format!("process {pid} ({})", line));
            }
        }
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        cleaned.push(format!("directory {}", dir.display()));
    }
    Ok(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordeal_senders_are_told_by_their_hello_frame() {
        let mut hello = vec![9, 0, 0, 0, 1];
        hello.extend_from_slice(&12u64.to_le_bytes());
        assert_eq!(hello_sender(&hello), Some("n12".into()));
        let mut raft = hello.clone();
        raft[4] = 2;
        assert_eq!(hello_sender(&raft), None, "not a hello frame");
        assert_eq!(hello_sender(&hello[..12]), None, "cut short");
    }

    #[test]
    fn etcd_senders_are_told_by_their_peer_urls_header() {
        let senders = vec![
            ("http://127.0.0.1:4001".to_string(), "n1".to_string()),
            ("http://127.0.0.2:4002".to_string(), "n2".to_string()),
        ];
        let head = b"GET /raft/stream/msgapp/8e9e05c52164694d HTTP/1.1\r\nHost: 127.0.0.1:4001\r\nX-Server-From: 91bc3c398fb3c146\r\nx-peerurls: http://127.0.0.2:4002\r\n\r\n";
        assert_eq!(peer_urls_sender(head, &senders), Some("n2".into()));
        let none = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(peer_urls_sender(none, &senders), None);
        let stranger = b"POST /raft HTTP/1.1\r\nX-PeerURLs: http://10.0.0.9:1\r\n\r\n";
        assert_eq!(peer_urls_sender(stranger, &senders), None);
        let cut: BTreeSet<String> = ["n2".to_string()].into();
        assert!(is_cut(&Some("n2".into()), &cut));
        assert!(!is_cut(&Some("n1".into()), &cut));
        assert!(is_cut(&None, &cut));
        assert!(!is_cut(&None, &BTreeSet::new()));
    }
}
