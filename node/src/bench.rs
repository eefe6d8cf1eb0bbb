//! `ordeal-node bench`, and [`LocalCluster`], a cluster of real node
//! processes on loopback used by the bench and the end-to-end tests.

use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long to wait for a leader at most.
pub const LEADER_WAIT_MAX: Duration = Duration::from_secs(20);

/// Why a local cluster or bench failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A process or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The cluster did not become usable.
    #[error("{0}")]
    Cluster(String),
}

/// Real `ordeal-node` processes on loopback, killed on drop.
pub struct LocalCluster {
    exe: PathBuf,
    _dir: tempfile::TempDir,
    root: PathBuf,
    peer_ports: Vec<u16>,
    client_ports: Vec<u16>,
    extra: Vec<String>,
    trace: bool,
    children: Vec<Option<Child>>,
    /// Nodes started with the cluster (ids 1..=founders); later ones join.
    founders: usize,
}

fn free_port() -> Result<u16, BenchError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|source| BenchError::Io {
        what: "finding a free port".into(),
        source,
    })?;
    Ok(l.local_addr()
        .map_err(|source| BenchError::Io {
            what: "finding a free port".into(),
            source,
        })?
        .port())
}

impl LocalCluster {
    /// Starts `n` nodes with `extra` flags each.
    pub fn start(exe: &Path, n: usize, extra: &[&str]) -> Result<LocalCluster, BenchError> {
        LocalCluster::start_traced(exe, n, extra, false)
    }

    /// Starts `n` nodes with `extra` flags each; with `trace`, node `i`
    /// writes its Raft trace to [`LocalCluster::trace_path`].
    pub fn start_traced(
        exe: &Path,
        n: usize,
        extra: &[&str],
        trace: bool,
    ) -> Result<LocalCluster, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("ordeal-cluster-")
            .tempdir()
            .map_err(|source| BenchError::Io {
                what: "temp dir".into(),
                source,
            })?;
        let mut c = LocalCluster {
            exe: exe.to_path_buf(),
            root: dir.path().to_path_buf(),
            _dir: dir,
            peer_ports: (0..n).map(|_| free_port()).collect::<Result<_, _>>()?,
            client_ports: (0..n).map(|_| free_port()).collect::<Result<_, _>>()?,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            trace,
            children: (0..n).map(|_| None).collect(),
            founders: n,
        };
        for i in 0..n {
            c.restart(i)?;
        }
        Ok(c)
    }

    /// Starts one more node (id `len() + 1`) on an empty data directory,
    /// joining the cluster (`--join`); a member must still add it
    /// (`POST /members`). Returns its index.
    pub fn add_node(&mut self) -> Result<usize, BenchError> {
        self.peer_ports.push(free_port()?);
        self.client_ports.push(free_port()?);
        self.children.push(None);
        let i = self.children.len() - 1;
        self.restart(i)?;
        Ok(i)
    }

    /// The base URL of node `i` (0-based).
    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.client_ports[i])
    }

    /// The peer address of node `i` (0-based).
    pub fn peer_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.peer_ports[i])
    }

    /// Where node `i` (0-based) writes its Raft trace when tracing.
    pub fn trace_path(&self, i: usize) -> PathBuf {
        self.root.join(format!("n{}.trace.jsonl", i + 1))
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// (Re)starts node `i` on its data directory.
    pub fn restart(&mut self, i: usize) -> Result<(), BenchError> {
        let peers: Vec<String> = self
            .peer_ports
            .iter()
            .enumerate()
            .map(|(j, p)| format!("{}=127.0.0.1:{p}", j + 1))
            .collect();
        let log_path = self.root.join(format!("n{}.log", i + 1));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| BenchError::Io {
                what: format!("open {}", log_path.display()),
                source,
            })?;
        let mut command = Command::new(&self.exe);
        command.arg("run");
        if self.trace {
            command.arg("--trace").arg(self.trace_path(i));
        }
        if i >= self.founders {
            let founders: Vec<String> = (1..=self.founders).map(|f| f.to_string()).collect();
            command.args(["--join", &founders.join(",")]);
        }
        let child = command
            .args(["--id", &(i + 1).to_string(), "--peers", &peers.join(",")])
            .args([
                "--listen-peer",
                &format!("127.0.0.1:{}", self.peer_ports[i]),
            ])
            .args([
                "--listen-client",
                &format!("127.0.0.1:{}", self.client_ports[i]),
            ])
            .arg("--data-dir")
            .arg(self.root.join(format!("n{}", i + 1)))
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| BenchError::Io {
                what: format!("spawn {}", self.exe.display()),
                source,
            })?;
        self.children[i] = Some(child);
        Ok(())
    }

    /// SIGKILLs node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERMs node `i` and returns its exit status.
    pub fn terminate(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let mut c = self.children[i].take()?;
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        c.wait().ok()
    }

    /// Waits up to `timeout` for node `i` to exit on its own; its status,
    /// or `None` while it still runs.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.children[i].as_mut()?.try_wait().ok().flatten();
            if let Some(status) = status {
                self.children[i] = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The stderr log of node `i`.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.root.join(format!("n{}.log", i + 1))).unwrap_or_default()
    }

    /// Waits until every running node agrees on a leader; returns its index.
    pub async fn wait_leader(&self, http: &reqwest::Client) -> Result<usize, BenchError> {
        let deadline = Instant::now() + LEADER_WAIT_MAX;
        while Instant::now() < deadline {
            let mut leaders = Vec::new();
            for i in (0..self.len()).filter(|&i| self.children[i].is_some()) {
                let s: Option<Value> =
                    match http.get(format!("{}/status", self.url(i))).send().await {
                        Ok(r) => r.json().await.ok(),
                        Err(_) => None,
                    };
                leaders.push(s.and_then(|s| s["leader"].as_u64()).unwrap_or(0));
            }
            if leaders[0] != 0 && leaders.iter().all(|&l| l == leaders[0]) {
                return Ok(leaders[0] as usize - 1);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(BenchError::Cluster(format!(
            "no leader within {LEADER_WAIT_MAX:?}; logs under {}",
            self.root.display()
        )))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

/// `ordeal-node bench` flags.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Payload bytes per transaction.
    #[arg(long, default_value_t = 100)]
    pub tx_bytes: usize,
    /// Seconds of each phase (saturation, then half load).
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// Concurrent clients in the saturation phase.
    #[arg(long, default_value_t = 512)]
    pub concurrency: usize,
    /// Raft trace on the nodes: `off`, `on`, or `both` (after the first,
    /// untraced cluster, two traced clusters and one more untraced one are
    /// measured at saturation, and the ratio is reported).
    #[arg(long, value_enum, default_value_t = TraceMode::Off)]
    pub trace: TraceMode,
}

/// Whether the bench's nodes write the Raft trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceMode {
    /// No trace.
    Off,
    /// Every node traces.
    On,
    /// Measure without, then with tracing, and report the ratio.
    Both,
}

/// What the bench prints.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Committed transactions per second at saturation.
    pub tx_per_s: f64,
    /// Commit latency p50 at half the saturation rate, ms.
    pub commit_latency_ms_p50: f64,
    /// Commit latency p99 at half the saturation rate, ms.
    pub commit_latency_ms_p99: f64,
    /// Commit latency p99 at saturation, ms.
    pub saturated_latency_ms_p99: f64,
    /// The leader's persist duration p50, ms.
    pub fsync_ms_p50: f64,
    /// The leader's persist duration p99, ms.
    pub fsync_ms_p99: f64,
    /// Nodes.
    pub nodes: usize,
    /// Payload bytes.
    pub tx_bytes: usize,
    /// Whether the measured cluster traced (`on`) or not (`off`); `both`
    /// when the traced figures below are filled in.
    pub trace: TraceMode,
    /// With `--trace both`: tx/s at saturation with tracing on (the mean
    /// of two clusters measured after the first untraced one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traced_tx_per_s: Option<f64>,
    /// With `--trace both`: tx/s at saturation of a last untraced cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untraced_rerun_tx_per_s: Option<f64>,
    /// With `--trace both`: traced over untraced tx/s, both summed over
    /// the order untraced, traced, traced, untraced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_ratio: Option<f64>,
}

struct Load {
    http: reqwest::Client,
    urls: Vec<String>,
    payload: String,
    next: AtomicU64,
    ok: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
}

impl Load {
    async fn one(&self) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let url = &self.urls[n as usize % self.urls.len()];
        let body = json!({"id": format!("b{n}"), "payload": self.payload, "ack": "committed"});
        let started = Instant::now();
        let ok = matches!(self.http.post(format!("{url}/submit")).json(&body).send().await, Ok(r) if r.status().is_success());
        if ok {
            self.ok.fetch_add(1, Ordering::Relaxed);
            let us = (started.elapsed().as_micros() as u64).max(1);
            let _ = self.latency_us.lock().expect("histogram lock").record(us);
        }
    }

    fn reset(&self) -> (u64, Histogram<u64>) {
        let mut h = self.latency_us.lock().expect("histogram lock");
        let taken = h.clone();
        h.reset();
        (self.ok.swap(0, Ordering::Relaxed), taken)
    }
}

/// Runs the bench.
pub async fn run(exe: &Path, args: BenchArgs) -> Result<BenchReport, BenchError> {
    let mut report = measure(exe, &args, args.trace == TraceMode::On, true).await?;
    if args.trace == TraceMode::Both {
        // A B B A: the machine's load drifts during a bench (it is
        // shared); this order cancels a linear drift in the ratio.
        let traced_1 = measure(exe, &args, true, false).await?.tx_per_s;
        let traced_2 = measure(exe, &args, true, false).await?.tx_per_s;
        let untraced_2 = measure(exe, &args, false, false).await?.tx_per_s;
        report.traced_tx_per_s = Some((traced_1 + traced_2) / 2.0);
        report.untraced_rerun_tx_per_s = Some(untraced_2);
        report.trace_ratio = Some((traced_1 + traced_2) / (report.tx_per_s + untraced_2));
    }
    Ok(report)
}

fn http_client() -> Result<reqwest::Client, BenchError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(1024)
        .build()
        .map_err(|e| BenchError::Cluster(e.to_string()))
}

/// Saturation with a closed loop of `concurrency` clients for `phase`.
async fn saturate(load: &Arc<Load>, concurrency: usize, phase: Duration) -> (f64, Histogram<u64>) {
    let stop = Instant::now() + phase;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let load = load.clone();
            tokio::spawn(async move {
                while Instant::now() < stop {
                    load.one().await;
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let (ok, saturated) = load.reset();
    (ok as f64 / phase.as_secs_f64(), saturated)
}

/// An open loop at `rate` tx/s for `phase`.
async fn half_load(load: &Arc<Load>, rate: f64, phase: Duration) -> Histogram<u64> {
    let started = Instant::now();
    let mut sent = 0u64;
    let mut tasks = Vec::new();
    while started.elapsed() < phase {
        let due = (started.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            let load = load.clone();
            tasks.push(tokio::spawn(async move { load.one().await }));
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for t in tasks {
        let _ = t.await;
    }
    load.reset().1
}

/// One cluster: saturation, then (with `half`) half load.
async fn measure(
    exe: &Path,
    args: &BenchArgs,
    trace: bool,
    half: bool,
) -> Result<BenchReport, BenchError> {
    let cluster = LocalCluster::start_traced(exe, args.nodes, &[], trace)?;
    let http = http_client()?;
    let leader = cluster.wait_leader(&http).await?;
    let load = Arc::new(Load {
        http: http.clone(),
        urls: (0..cluster.len()).map(|i| cluster.url(i)).collect(),
        payload: "x".repeat(args.tx_bytes),
        next: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        latency_us: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds")),
    });
    let phase = Duration::from_secs(args.duration_s);
    let (tx_per_s, saturated) = saturate(&load, args.concurrency, phase).await;
    tracing::info!(tx_per_s, trace, "saturation phase done");
    let half = if half {
        half_load(&load, (tx_per_s / 2.0).max(1.0), phase).await
    } else {
        Histogram::new(3).expect("bounds")
    };
    let fsync: Value = match http
        .get(format!("{}/fsync", cluster.url(leader)))
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e3;
    Ok(BenchReport {
        tx_per_s,
        commit_latency_ms_p50: ms(&half, 0.5),
        commit_latency_ms_p99: ms(&half, 0.99),
        saturated_latency_ms_p99: ms(&saturated, 0.99),
        fsync_ms_p50: fsync["p50_ms"].as_f64().unwrap_or(f64::NAN),
        fsync_ms_p99: fsync["p99_ms"].as_f64().unwrap_or(f64::NAN),
        nodes: args.nodes,
        tx_bytes: args.tx_bytes,
        trace: args.trace,
        traced_tx_per_s: None,
        untraced_rerun_tx_per_s: None,
        trace_ratio: None,
    })
}
