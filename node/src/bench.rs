//! `ordeal-node bench`, and [`LocalCluster`], a cluster of real node
//! processes on loopback used by the bench and the end-to-end tests.

use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
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
    /// Flags node `i` starts with instead of `extra`, when set.
    extra_of: Vec<Option<Vec<String>>>,
    trace: bool,
    children: Vec<Option<Child>>,
    /// Nodes started with the cluster (ids 1..=founders); later ones join.
    founders: usize,
}

/// A listening port for a node: from the pool below the ephemeral range
/// (`ports.rs`), so that a port found free is still free when the node
/// binds it, and again when it restarts.
fn free_port() -> Result<u16, BenchError> {
    crate::ports::free_port(std::net::Ipv4Addr::LOCALHOST).map_err(|source| BenchError::Io {
        what: "finding a free port".into(),
        source,
    })
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
            extra_of: vec![None; n],
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
        self.extra_of.push(None);
        let i = self.children.len() - 1;
        self.restart(i)?;
        Ok(i)
    }

    /// The base URL of node `i` (0-based).
    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.client_ports[i])
    }

    /// The data directory of node `i` (0-based).
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.root.join(format!("n{}", i + 1))
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
            .arg(self.data_dir(i))
            .args(self.extra_of[i].as_ref().unwrap_or(&self.extra))
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

    /// Node `i` starts with `extra` instead of the cluster's flags from its
    /// next (re)start on.
    pub fn set_flags(&mut self, i: usize, extra: &[&str]) {
        self.extra_of[i] = Some(extra.iter().map(|s| s.to_string()).collect());
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

    /// CPU time (user and system) the running nodes have used so far;
    /// `None` when `/proc` cannot tell.
    pub fn cpu_time(&self) -> Option<Duration> {
        // SAFETY: sysconf reads a constant of the system; no memory of ours.
        let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let ticks_per_s = u64::try_from(ticks_per_s).ok().filter(|&t| t > 0)?;
        let mut ticks = 0;
        for child in self.children.iter().flatten() {
            ticks += process_cpu_ticks(child.id())?;
        }
        Some(Duration::from_micros(ticks * 1_000_000 / ticks_per_s))
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

/// utime + stime of a process, in clock ticks, from `/proc/<pid>/stat`
/// (fields 14 and 15, counted after the command's closing parenthesis).
fn process_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_command = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_command.split_whitespace().collect();
    // `after_command` starts at field 3 (state): utime is field 14.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

/// Most rounds one bench runs.
pub const ROUNDS_MAX: usize = 20;

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
    /// Raft trace on the nodes: `off`, `on`, or `both` (each round
    /// measures an untraced and a traced cluster at saturation, in
    /// alternating order, and the ratio is reported).
    #[arg(long, value_enum, default_value_t = TraceMode::Off)]
    pub trace: TraceMode,
    /// Rounds, each on fresh clusters: the figures are the medians, and
    /// with two variants (`--trace both`, `--compare-exe`) each round
    /// measures both, A B then B A, so that a drift of a shared machine's
    /// load falls on both alike.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Another `ordeal-node` binary (a baseline, e.g. main's) measured in
    /// the same rounds as this one, both phases, for a same-run comparison.
    #[arg(long)]
    pub compare_exe: Option<PathBuf>,
    /// The nodes' `--snapshot-interval-bytes` (default: the node's own), to
    /// see what snapshots cost: a large one takes none during the bench.
    #[arg(long)]
    pub snapshot_interval_bytes: Option<u64>,
    /// The open loop's rate in tx/s instead of half the measured
    /// saturation, so that binaries of different throughput are compared
    /// at the same load.
    #[arg(long, value_parser = positive_rate)]
    pub half_load_tx_per_s: Option<f64>,
}

/// `--half-load-tx-per-s`: a finite rate of at least 1 tx/s.
fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 1.0 => Ok(r),
        _ => Err(format!("`{text}` is not a rate of at least 1 tx/s")),
    }
}

/// Whether the bench's nodes write the Raft trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceMode {
    /// No trace.
    Off,
    /// Every node traces.
    On,
    /// Measure without and with tracing, and report the ratio.
    Both,
}

/// One cluster's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Which variant (`this`, `baseline`, `trace-off`, `trace-on`).
    pub variant: &'static str,
    /// The round, from 1.
    pub round: usize,
    /// Committed transactions per second at saturation.
    pub tx_per_s: f64,
    /// Commit latency p50 at half the saturation rate, ms (with both
    /// phases).
    pub commit_latency_ms_p50: Option<f64>,
    /// Commit latency p99 at half the saturation rate, ms.
    pub commit_latency_ms_p99: Option<f64>,
    /// Half load: ms from the last submit to the last answer; far above
    /// the latencies when submits were still queued at the phase's end
    /// (the machine's other work took the cluster below the rate).
    pub half_load_drain_ms: Option<f64>,
    /// Snapshots the nodes took during the half-load phase (summed over
    /// the nodes): each serialises and writes the whole ledger.
    pub half_load_snapshots: Option<u64>,
    /// Commit latency p99 at saturation, ms.
    pub saturated_latency_ms_p99: f64,
    /// The nodes' CPU time (all of them, user and system) per committed
    /// transaction at saturation, µs: unlike tx/s, barely moved by other
    /// work on the machine.
    pub cpu_us_per_tx: Option<f64>,
    /// The leader's persist duration p50, ms.
    pub fsync_ms_p50: f64,
    /// The leader's persist duration p99, ms.
    pub fsync_ms_p99: f64,
}

/// Two variants measured in the same rounds.
#[derive(Debug, Serialize)]
pub struct Comparison {
    /// What was compared, in words.
    pub compared: String,
    /// Variant A (the reference) and B.
    pub a: &'static str,
    /// Variant B.
    pub b: &'static str,
    /// Median tx/s of A over its rounds.
    pub a_tx_per_s_median: f64,
    /// Median tx/s of B.
    pub b_tx_per_s_median: f64,
    /// B's median over A's.
    pub ratio_of_medians: f64,
    /// B over A within each round.
    pub paired_ratios: Vec<f64>,
    /// The median of `paired_ratios`.
    pub paired_ratio_median: f64,
    /// Median CPU µs per transaction of A.
    pub a_cpu_us_per_tx_median: Option<f64>,
    /// Median CPU µs per transaction of B.
    pub b_cpu_us_per_tx_median: Option<f64>,
    /// B's CPU per transaction over A's, within each round: the cost of
    /// B's difference, robust to the machine's load.
    pub cpu_paired_ratios: Vec<f64>,
    /// The median of `cpu_paired_ratios`.
    pub cpu_paired_ratio_median: Option<f64>,
    /// Median half-load p99 of A, ms (with both phases).
    pub a_latency_ms_p99_median: Option<f64>,
    /// Median half-load p99 of B, ms.
    pub b_latency_ms_p99_median: Option<f64>,
}

/// What the bench prints: this binary's medians over the rounds (the
/// untraced ones with `--trace both`), each run, and the comparison.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Committed transactions per second at saturation (median).
    pub tx_per_s: f64,
    /// Commit latency p50 at half the saturation rate, ms (median).
    pub commit_latency_ms_p50: f64,
    /// Commit latency p99 at half the saturation rate, ms (median).
    pub commit_latency_ms_p99: f64,
    /// Commit latency p99 at saturation, ms (median).
    pub saturated_latency_ms_p99: f64,
    /// The leader's persist duration p50, ms (median).
    pub fsync_ms_p50: f64,
    /// The leader's persist duration p99, ms (median).
    pub fsync_ms_p99: f64,
    /// Nodes.
    pub nodes: usize,
    /// Payload bytes.
    pub tx_bytes: usize,
    /// Whether the measured clusters traced.
    pub trace: TraceMode,
    /// Rounds.
    pub rounds: usize,
    /// With `--trace both`: the traced clusters' median tx/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traced_tx_per_s: Option<f64>,
    /// With `--trace both`: traced over untraced median tx/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_ratio: Option<f64>,
    /// With two variants: the comparison.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// Every cluster measured, in order.
    pub runs: Vec<Run>,
}

/// One thing measured in each round.
struct Variant {
    name: &'static str,
    exe: PathBuf,
    trace: bool,
    half: bool,
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
    let variants = variants(exe, &args)?;
    let mut runs = Vec::new();
    for round in 1..=args.rounds {
        // A B, then B A: a linear drift of the load cancels out.
        let mut order: Vec<&Variant> = variants.iter().collect();
        if round % 2 == 0 {
            order.reverse();
        }
        for v in order {
            let run = measure(&v.exe, &args, v, round).await?;
            let or_dash = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
            eprintln!(
                "round {round} {}: {:.0} tx/s, half-load p99 {} ms (drain {} ms, {} snapshots), saturated p99 {:.1} ms, {} CPU µs/tx",
                v.name,
                run.tx_per_s,
                or_dash(run.commit_latency_ms_p99),
                or_dash(run.half_load_drain_ms),
                run.half_load_snapshots.map_or("-".to_string(), |n| n.to_string()),
                run.saturated_latency_ms_p99,
                or_dash(run.cpu_us_per_tx),
            );
            runs.push(run);
        }
    }
    Ok(report(&args, &variants, runs))
}

fn variants(exe: &Path, args: &BenchArgs) -> Result<Vec<Variant>, BenchError> {
    if args.rounds == 0 || args.rounds > ROUNDS_MAX {
        return Err(BenchError::Cluster(format!(
            "--rounds {} is not in 1..={ROUNDS_MAX}",
            args.rounds
        )));
    }
    let this = |name, trace, half| Variant {
        name,
        exe: exe.to_path_buf(),
        trace,
        half,
    };
    match (&args.compare_exe, args.trace) {
        (Some(_), TraceMode::Both) => Err(BenchError::Cluster(
            "--compare-exe and --trace both each compare two variants; give one".into(),
        )),
        (Some(other), trace) => Ok(vec![
            Variant {
                name: "baseline",
                exe: other.clone(),
                trace: trace == TraceMode::On,
                half: true,
            },
            this("this", trace == TraceMode::On, true),
        ]),
        (None, TraceMode::Both) => Ok(vec![
            this("trace-off", false, false),
            this("trace-on", true, false),
        ]),
        (None, trace) => Ok(vec![this("this", trace == TraceMode::On, true)]),
    }
}

/// The median; NaN for none.
fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn of<'a>(runs: &'a [Run], name: &'a str) -> impl Iterator<Item = &'a Run> + 'a {
    runs.iter().filter(move |r| r.variant == name)
}

fn report(args: &BenchArgs, variants: &[Variant], runs: Vec<Run>) -> BenchReport {
    let main = variants.iter().rev().find(|v| v.name != "trace-on");
    let main = main.expect("one variant at least").name;
    let med = |f: &dyn Fn(&Run) -> Option<f64>| median(of(&runs, main).filter_map(f).collect());
    let comparison = match variants {
        [a, b] => Some(compare(a, b, &runs)),
        _ => None,
    };
    let traced = (args.trace == TraceMode::Both)
        .then(|| median(of(&runs, "trace-on").map(|r| r.tx_per_s).collect()));
    BenchReport {
        tx_per_s: med(&|r| Some(r.tx_per_s)),
        commit_latency_ms_p50: med(&|r| r.commit_latency_ms_p50),
        commit_latency_ms_p99: med(&|r| r.commit_latency_ms_p99),
        saturated_latency_ms_p99: med(&|r| Some(r.saturated_latency_ms_p99)),
        fsync_ms_p50: med(&|r| Some(r.fsync_ms_p50)),
        fsync_ms_p99: med(&|r| Some(r.fsync_ms_p99)),
        nodes: args.nodes,
        tx_bytes: args.tx_bytes,
        trace: args.trace,
        rounds: args.rounds,
        traced_tx_per_s: traced,
        trace_ratio: traced.and(comparison.as_ref().map(|c| c.ratio_of_medians)),
        comparison,
        runs,
    }
}

fn compare(a: &Variant, b: &Variant, runs: &[Run]) -> Comparison {
    let tx = |name| median(of(runs, name).map(|r| r.tx_per_s).collect());
    let p99 = |name| {
        let v: Vec<f64> = of(runs, name)
            .filter_map(|r| r.commit_latency_ms_p99)
            .collect();
        (!v.is_empty()).then(|| median(v))
    };
    let cpu = |name| {
        let v: Vec<f64> = of(runs, name).filter_map(|r| r.cpu_us_per_tx).collect();
        (!v.is_empty()).then(|| median(v))
    };
    let cpu_paired_ratios: Vec<f64> = of(runs, a.name)
        .zip(of(runs, b.name))
        .filter_map(|(ra, rb)| Some(rb.cpu_us_per_tx? / ra.cpu_us_per_tx?))
        .collect();
    let paired_ratios: Vec<f64> = of(runs, a.name)
        .zip(of(runs, b.name))
        .map(|(ra, rb)| rb.tx_per_s / ra.tx_per_s)
        .collect();
    let compared = if a.exe == b.exe {
        "tx/s at saturation, tracing on (b) over off (a), fresh clusters of this binary in each round".to_string()
    } else {
        format!(
            "this binary (b) against {} (a), fresh clusters of each in each round, both phases",
            a.exe.display()
        )
    };
    Comparison {
        compared,
        a: a.name,
        b: b.name,
        a_tx_per_s_median: tx(a.name),
        b_tx_per_s_median: tx(b.name),
        ratio_of_medians: tx(b.name) / tx(a.name),
        paired_ratio_median: median(paired_ratios.clone()),
        paired_ratios,
        a_cpu_us_per_tx_median: cpu(a.name),
        b_cpu_us_per_tx_median: cpu(b.name),
        cpu_paired_ratio_median: (!cpu_paired_ratios.is_empty())
            .then(|| median(cpu_paired_ratios.clone())),
        cpu_paired_ratios,
        a_latency_ms_p99_median: p99(a.name),
        b_latency_ms_p99_median: p99(b.name),
    }
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

/// An open loop at `rate` tx/s for `phase`; the latencies, and how long
/// the last answers took to come after the last submit (the drain).
async fn half_load(load: &Arc<Load>, rate: f64, phase: Duration) -> (Histogram<u64>, Duration) {
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
    let sending_ended = Instant::now();
    for t in tasks {
        let _ = t.await;
    }
    (load.reset().1, sending_ended.elapsed())
}

/// Snapshots taken so far, summed over the nodes (`/status`); `None` when
/// a node does not answer.
async fn snapshots_taken(http: &reqwest::Client, cluster: &LocalCluster) -> Option<u64> {
    let mut sum = 0;
    for i in 0..cluster.len() {
        let status: Value = http
            .get(format!("{}/status", cluster.url(i)))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        sum += status["snapshots_taken"].as_u64()?;
    }
    Some(sum)
}

/// One cluster: saturation, then (with `half`) half load.
async fn measure(
    exe: &Path,
    args: &BenchArgs,
    variant: &Variant,
    round: usize,
) -> Result<Run, BenchError> {
    let interval = args.snapshot_interval_bytes.map(|b| b.to_string());
    let extra: Vec<&str> = match &interval {
        Some(bytes) => vec!["--snapshot-interval-bytes", bytes],
        None => Vec::new(),
    };
    let cluster = LocalCluster::start_traced(exe, args.nodes, &extra, variant.trace)?;
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
    let cpu_before = cluster.cpu_time();
    let (tx_per_s, saturated) = saturate(&load, args.concurrency, phase).await;
    let cpu_us_per_tx = match (cpu_before, cluster.cpu_time()) {
        (Some(before), Some(after)) if tx_per_s > 0.0 => {
            Some(after.saturating_sub(before).as_micros() as f64 / (tx_per_s * phase.as_secs_f64()))
        }
        _ => None,
    };
    tracing::info!(
        tx_per_s,
        variant = variant.name,
        round,
        "saturation phase done"
    );
    let snapshots_before = snapshots_taken(&http, &cluster).await;
    let half = if variant.half {
        let rate = args.half_load_tx_per_s.unwrap_or(tx_per_s / 2.0);
        Some(half_load(&load, rate.max(1.0), phase).await)
    } else {
        None
    };
    let snapshots_after = snapshots_taken(&http, &cluster).await;
    let half_load_snapshots = match (variant.half, snapshots_before, snapshots_after) {
        (true, Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
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
    Ok(Run {
        variant: variant.name,
        round,
        tx_per_s,
        commit_latency_ms_p50: half.as_ref().map(|h| ms(&h.0, 0.5)),
        commit_latency_ms_p99: half.as_ref().map(|h| ms(&h.0, 0.99)),
        half_load_drain_ms: half.as_ref().map(|h| h.1.as_secs_f64() * 1e3),
        half_load_snapshots,
        saturated_latency_ms_p99: ms(&saturated, 0.99),
        cpu_us_per_tx,
        fsync_ms_p50: fsync["p50_ms"].as_f64().unwrap_or(f64::NAN),
        fsync_ms_p99: fsync["p99_ms"].as_f64().unwrap_or(f64::NAN),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }

    fn run(variant: &'static str, round: usize, tx_per_s: f64) -> Run {
        Run {
            variant,
            round,
            tx_per_s,
            commit_latency_ms_p50: None,
            commit_latency_ms_p99: None,
            half_load_drain_ms: None,
            half_load_snapshots: None,
            saturated_latency_ms_p99: 1.0,
            cpu_us_per_tx: Some(tx_per_s / 1000.0),
            fsync_ms_p50: 1.0,
            fsync_ms_p99: 1.0,
        }
    }

    /// Round-to-round swings of the whole machine fall on both variants:
    /// the paired ratios see through them, the medians too.
    #[test]
    fn the_trace_comparison_pairs_rounds_and_takes_medians() {
        let args = BenchArgs {
            nodes: 3,
            tx_bytes: 100,
            duration_s: 1,
            concurrency: 1,
            trace: TraceMode::Both,
            rounds: 3,
            compare_exe: None,
            snapshot_interval_bytes: None,
            half_load_tx_per_s: None,
        };
        let variants = variants(Path::new("x"), &args).unwrap();
        let runs = vec![
            run("trace-off", 1, 20_000.0),
            run("trace-on", 1, 19_000.0),
            run("trace-on", 2, 15_200.0),
            run("trace-off", 2, 16_000.0),
            run("trace-off", 3, 24_000.0),
            run("trace-on", 3, 21_600.0),
        ];
        let r = report(&args, &variants, runs);
        let c = r.comparison.unwrap();
        assert_eq!((c.a, c.b), ("trace-off", "trace-on"));
        assert_eq!(c.paired_ratios, vec![0.95, 0.95, 0.9]);
        assert_eq!(c.paired_ratio_median, 0.95);
        assert_eq!(c.cpu_paired_ratio_median, Some(0.95));
        assert_eq!(c.ratio_of_medians, 19_000.0 / 20_000.0);
        assert_eq!(r.tx_per_s, 20_000.0, "the untraced median");
        assert_eq!(r.trace_ratio, Some(0.95));
        assert!(r.commit_latency_ms_p99.is_nan(), "no half-load phase");
    }

    #[test]
    fn rounds_out_of_range_and_two_comparisons_are_refused() {
        let mut args = BenchArgs {
            nodes: 3,
            tx_bytes: 100,
            duration_s: 1,
            concurrency: 1,
            trace: TraceMode::Off,
            rounds: 0,
            compare_exe: None,
            snapshot_interval_bytes: None,
            half_load_tx_per_s: None,
        };
        assert!(variants(Path::new("x"), &args).is_err());
        args.rounds = ROUNDS_MAX + 1;
        assert!(variants(Path::new("x"), &args).is_err());
        args.rounds = 2;
        args.trace = TraceMode::Both;
        args.compare_exe = Some(PathBuf::from("y"));
        let err = variants(Path::new("x"), &args).err().unwrap();
        assert!(err.to_string().contains("--compare-exe"), "{err}");
    }

    #[test]
    fn a_half_load_rate_must_be_finite_and_at_least_one() {
        assert_eq!(positive_rate("9000"), Ok(9000.0));
        for bad in ["inf", "NaN", "0", "-5", "0.5", "fast"] {
            let err = positive_rate(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }
}
