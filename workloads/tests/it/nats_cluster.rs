//! A NATS cluster of real `nats-server` processes on loopback for tests and
//! the publish bench: each server in a temporary directory, every route
//! through a fault proxy of this process (one per ordered pair, as the
//! harness's process runtime puts them), killed on drop.
//!
//! Routes: server `i` dials server `j` at the proxy `(i, j)`, and advertises
//! a cluster address where nothing listens, so that it is never dialled
//! past the proxies when the servers gossip each other's addresses
//! (docs/nats.md, "Routes through fault proxies").

#![allow(dead_code)] // shared by the tests and the bench, which use parts

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use workloads::nats::NatsServer;

/// Where Debian installs the server.
const DEBIAN_BINARY: &str = "/usr/sbin/nats-server";

/// The `nats-server` to run: `$NATS_SERVER`, Debian's, or none. Without
/// one the caller skips, loudly, unless `ORDEAL_REQUIRE_NATS=1`, which
/// makes a missing server a failure (CI).
pub fn binary_or_skip(test: &str) -> Option<PathBuf> {
    let candidate = std::env::var_os("NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEBIAN_BINARY));
    if candidate.is_file() {
        return Some(candidate);
    }
    let why = format!(
        "{test}: no nats-server at {} (apt-get install nats-server, or set NATS_SERVER)",
        candidate.display()
    );
    if std::env::var("ORDEAL_REQUIRE_NATS").as_deref() == Ok("1") {
        panic!("{why}; ORDEAL_REQUIRE_NATS=1 requires it");
    }
    // Straight to stderr, not `eprintln!`, which the test harness keeps
    // to itself unless the test fails: a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {why} (set ORDEAL_REQUIRE_NATS=1 to make this a failure)"
    );
    None
}

/// The cluster address each server advertises to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advertised {
    /// An address where a connection is refused, so that routes go only
    /// through the proxies (what the harness must do).
    Refused,
    /// Its real cluster listener (nats-server's default), which gossip
    /// hands to servers that then dial it past the proxies.
    Listener,
}

/// One route proxy: forwards connections from `from` to `to`'s cluster
/// listener until the pair is cut.
struct RouteProxy {
    from: usize,
    to: usize,
    task: tokio::task::JoinHandle<()>,
}

/// The servers, their processes and their route proxies.
pub struct LocalNatsCluster {
    binary: PathBuf,
    root: tempfile::TempDir,
    pub servers: Vec<NatsServer>,
    children: Vec<Option<Child>>,
    proxies: Vec<RouteProxy>,
    /// The cut pairs (both orders), watched by the proxies.
    cut: watch::Sender<BTreeSet<(usize, usize)>>,
    /// Bound, never listening: the advertised cluster addresses, where a
    /// connection is refused; held so that nothing else takes their ports.
    dead: Vec<socket2::Socket>,
}

fn free_port() -> u16 {
    node::ports::free_port(Ipv4Addr::LOCALHOST).expect("a free loopback port")
}

impl LocalNatsCluster {
    /// Starts `n` servers (JetStream on, routed through proxies), each
    /// advertising a refused address. Needs a tokio runtime (the proxies
    /// are its tasks).
    pub async fn start(binary: &Path, n: usize) -> std::io::Result<Self> {
        Self::start_advertising(binary, n, Advertised::Refused).await
    }

    /// [`LocalNatsCluster::start`], advertising as `advertised` says.
    pub async fn start_advertising(
        binary: &Path,
        n: usize,
        advertised: Advertised,
    ) -> std::io::Result<Self> {
        let root = tempfile::Builder::new().prefix("ordeal-nats-").tempdir()?;
        let cluster_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let (cut, _) = watch::channel(BTreeSet::new());
        let mut proxies = Vec::new();
        let mut routes = vec![Vec::new(); n];
        for (from, from_routes) in routes.iter_mut().enumerate() {
            for (to, port) in cluster_ports
                .iter()
                .enumerate()
                .filter(|(to, _)| *to != from)
            {
                let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
                from_routes.push(listener.local_addr()?.to_string());
                let target = SocketAddr::from((Ipv4Addr::LOCALHOST, *port));
                let task = tokio::spawn(run_proxy(listener, target, (from, to), cut.subscribe()));
                proxies.push(RouteProxy { from, to, task });
            }
        }
        let mut dead = Vec::new();
        let mut servers = Vec::new();
        for (i, routes) in routes.into_iter().enumerate() {
            let held = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            held.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
            let advertise = held
                .local_addr()?
                .as_socket()
                .map(|a| a.to_string())
                .ok_or_else(|| std::io::Error::other("an IPv4 socket without an address"))?;
            dead.push(held);
            servers.push(NatsServer {
                name: format!("n{}", i + 1),
                listen_client: format!("127.0.0.1:{}", free_port()),
                http_port: free_port(),
                listen_cluster: format!("127.0.0.1:{}", cluster_ports[i]),
                advertise_cluster: (advertised == Advertised::Refused).then_some(advertise),
                routes,
                store_dir: root
                    .path()
                    .join(format!("n{}", i + 1))
                    .display()
                    .to_string(),
            });
        }
        let mut cluster = LocalNatsCluster {
            binary: binary.to_path_buf(),
            root,
            servers,
            children: (0..n).map(|_| None).collect(),
            proxies,
            cut,
            dead,
        };
        for i in 0..n {
            cluster.restart(i)?;
        }
        Ok(cluster)
    }

    /// (name, client address) of every server, for `NatsClient::new`.
    pub fn client_addresses(&self) -> Vec<(String, String)> {
        self.servers
            .iter()
            .map(|s| (s.name.clone(), s.listen_client.clone()))
            .collect()
    }

    /// Server `i`'s log (stderr, every start appended).
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.root.path().join(format!("n{}.log", i + 1))
    }

    /// Starts server `i` (again) on its data directory.
    pub fn restart(&mut self, i: usize) -> std::io::Result<()> {
        self.kill(i);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))?;
        let args = self.servers[i]
            .command_args()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let mut command = Command::new(&self.binary);
        command.args(args).stdout(Stdio::null()).stderr(log);
        // SAFETY: prctl only, async-signal-safe, no allocation: a server
        // must not outlive a test process that was killed.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        self.children[i] = Some(command.spawn()?);
        Ok(())
    }

    /// SIGKILLs server `i` (no-op when it is not running).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Cuts every route between server `i` and the others (both
    /// directions): open connections close, new ones are refused.
    pub fn isolate(&self, i: usize) {
        self.cut.send_modify(|cut| {
            for p in &self.proxies {
                if p.from == i || p.to == i {
                    cut.insert((p.from, p.to));
                }
            }
        });
    }

    /// Cuts the route between servers `a` and `b` (both directions).
    pub fn cut(&self, a: usize, b: usize) {
        self.cut.send_modify(|cut| {
            cut.insert((a, b));
            cut.insert((b, a));
        });
    }

    /// How many routes server `i` has now (its monitoring's `/routez`).
    pub async fn routes_of(&self, i: usize) -> Result<u64, String> {
        let url = format!(
            "{}/routez",
            self.servers[i].monitor_url().map_err(|e| e.to_string())?
        );
        let answer: serde_json::Value = reqwest::get(&url)
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        answer["num_routes"]
            .as_u64()
            .ok_or(format!("{url}: no num_routes in {answer}"))
    }

    /// Lets every route through again.
    pub fn heal(&self) {
        self.cut.send_modify(BTreeSet::clear);
    }
}

impl Drop for LocalNatsCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
        for p in &self.proxies {
            p.task.abort();
        }
    }
}

/// Forwards each accepted connection to `target` until `pair` is cut;
/// while cut, new connections are closed at once.
async fn run_proxy(
    listener: TcpListener,
    target: SocketAddr,
    pair: (usize, usize),
    cut: watch::Receiver<BTreeSet<(usize, usize)>>,
) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        let mut cut = cut.clone();
        tokio::spawn(async move {
            if cut.borrow().contains(&pair) {
                return;
            }
            let connect = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(target));
            let Ok(Ok(mut outbound)) = connect.await else {
                return;
            };
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = cut.wait_for(|set| set.contains(&pair)) => {}
            }
        });
    }
}
