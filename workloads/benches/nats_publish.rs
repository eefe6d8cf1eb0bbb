//! How fast a real three-server NATS JetStream cluster takes the ordering
//! workload's submits through `NatsClient`: `PUBLISHERS` concurrent
//! publishers, each submitting one transaction at a time for
//! `DURATION`, spread over the servers. Prints what it measured.
//! Informal, for planning `harness bench --sut nats`; skips (exit 0) when
//! `nats-server` is missing.
//!
//! ```text
//! cargo bench -p workloads --bench nats_publish
//! ```

#[path = "../tests/it/nats_cluster.rs"]
mod nats_cluster;

use nats_cluster::{binary_or_skip, LocalNatsCluster};
use std::sync::Arc;
use std::time::{Duration, Instant};
use workloads::nats::NatsClient;
use workloads::Outcome;

const SERVERS: usize = 3;
const PUBLISHERS: usize = 64;
const DURATION: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// One publisher's tally: (ok latencies in µs, info, fail).
type Tally = (Vec<u64>, u64, u64);

async fn publisher(client: Arc<NatsClient>, p: usize, until: Instant) -> Tally {
    let (mut latencies_us, mut info, mut fail) = (Vec::new(), 0, 0);
    let mut t = 0u64;
    while Instant::now() < until {
        let started = Instant::now();
        let s = client.submit(p % SERVERS, &format!("b{p}-t{t}")).await;
        t += 1;
        match s.outcome {
            Outcome::Ok(_) => latencies_us.push(started.elapsed().as_micros() as u64),
            Outcome::Info(_) => info += 1,
            _ => fail += 1,
        }
    }
    (latencies_us, info, fail)
}

fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() - 1) as f64 * p).round() as usize;
    sorted_us[i] as f64 / 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(binary) = binary_or_skip("nats_publish bench") else {
        return;
    };
    let cluster = LocalNatsCluster::start(&binary, SERVERS)
        .await
        .expect("a local NATS cluster");
    let client = Arc::new(NatsClient::new(cluster.client_addresses(), REQUEST_TIMEOUT));
    client.create_stream(0, SERVERS).await.expect("the stream");
    let started = Instant::now();
    let until = started + DURATION;
    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|p| tokio::spawn(publisher(client.clone(), p, until)))
        .collect();
    let (mut latencies_us, mut info, mut fail) = (Vec::new(), 0, 0);
    for task in tasks {
        let (l, i, f) = task.await.expect("a publisher");
        latencies_us.extend(l);
        info += i;
        fail += f;
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    println!(
        "nats-server {SERVERS} servers, stream R{SERVERS}, file storage, {PUBLISHERS} publishers, {elapsed_s:.1} s: \
         ok {} ({:.0} ops/s), info {info}, fail {fail}, latency ms p50 {:.2} p99 {:.2} max {:.2}",
        latencies_us.len(),
        latencies_us.len() as f64 / elapsed_s,
        percentile_ms(&latencies_us, 0.50),
        percentile_ms(&latencies_us, 0.99),
        percentile_ms(&latencies_us, 1.0),
    );
    drop(cluster);
}
