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
    children: Vec<Option<Child>>,
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
            children: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            c.restart(i)?;
        }
        Ok(c)
    }

    /// The base URL of node `i` (0-based).
    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.client_ports[i])
    }

    /// The peer address of node `i` (0-based).
    pub fn peer_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.peer_ports[i])
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
        let child = Command::new(&self.exe)
            .arg("run")
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
    let cluster = LocalCluster::start(exe, args.nodes, &[])?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(1024)
        .build()
        .map_err(|e| BenchError::Cluster(e.to_string()))?;
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
    // Saturation: closed loop.
    let stop = Instant::now() + phase;
    let workers: Vec<_> = (0..args.concurrency)
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
    let tx_per_s = ok as f64 / phase.as_secs_f64();
    tracing::info!(tx_per_s, "saturation phase done");
    // Half load: open loop at half the measured rate.
    let rate = (tx_per_s / 2.0).max(1.0);
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
    let (_, half) = load.reset();
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
    })
}
