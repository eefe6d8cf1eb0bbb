//! Node metrics: the persist (write + fsync) duration histogram, Fabric's
//! etcdraft counters, and their Prometheus text form.

use base64::Engine as _;
use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Persist samples kept for plotting over time.
pub const FSYNC_SAMPLES_MAX: usize = 10_000;
/// Largest duration the histogram tracks, in µs (an hour).
const PERSIST_US_MAX: u64 = 3_600_000_000;
/// Prometheus buckets of `data_persist_duration`, in seconds.
const PERSIST_BUCKETS_S: [f64; 13] = [
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Counters and histograms of one node.
#[derive(Debug)]
pub struct Metrics {
    persist_us: Histogram<u64>,
    persist_sum_us: u64,
    samples: VecDeque<(u64, u64)>,
    threshold: Duration,
    over_threshold: u64,
    /// Times the known leader changed to a new one.
    pub leader_changes: u64,
    /// Proposals raft refused.
    pub proposal_failures: u64,
    /// Submits received (local or forwarded).
    pub normal_proposals_received: u64,
    /// Number of the block the last snapshot covers.
    pub snapshot_block_number: u64,
    /// Snapshots this node took.
    pub snapshots_taken: u64,
    /// Snapshots from the leader this node installed.
    pub snapshots_installed: u64,
    /// Times the log was compacted.
    pub compactions: u64,
    /// Times this node, leading, handed leadership away because its own
    /// fsyncs were slow (`slow_disk.rs`).
    pub slow_disk_transfers: u64,
}

/// What the metrics need of the node's state to render.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Whether this node leads.
    pub is_leader: bool,
    /// Last block number applied.
    pub committed_block_number: u64,
    /// Voters.
    pub cluster_size: u64,
    /// Voters the leader heard from recently (0 on followers).
    pub active_nodes: u64,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Metrics {
    /// Empty metrics warning about persists over `threshold`.
    pub fn new(threshold: Duration) -> Self {
        Metrics {
            persist_us: Histogram::new_with_bounds(1, PERSIST_US_MAX, 3).expect("valid bounds"),
            persist_sum_us: 0,
            samples: VecDeque::with_capacity(FSYNC_SAMPLES_MAX),
            threshold,
            over_threshold: 0,
            leader_changes: 0,
            slow_disk_transfers: 0,
            proposal_failures: 0,
            normal_proposals_received: 0,
            snapshot_block_number: 0,
            snapshots_taken: 0,
            snapshots_installed: 0,
            compactions: 0,
        }
    }

    /// Records one persist; warns as Fabric does when it is slow.
    pub fn record_persist(&mut self, took: Duration, bytes: usize) {
        let us = (took.as_micros() as u64).clamp(1, PERSIST_US_MAX);
        self.persist_us.record(us).expect("clamped into range");
        self.persist_sum_us += us;
        if took > self.threshold {
            self.over_threshold += 1;
            tracing::warn!(
                took_ms = took.as_secs_f64() * 1e3,
                threshold_ms = self.threshold.as_secs_f64() * 1e3,
                bytes,
                "WAL sync took longer than half the election timeout (slow disk)"
            );
        }
        if self.samples.len() == FSYNC_SAMPLES_MAX {
            self.samples.pop_front();
        }
        self.samples.push_back((unix_ms(), us));
    }

    /// The `/fsync` document (docs/node-api.md).
    pub fn fsync_json(&self) -> Value {
        let h = &self.persist_us;
        let mut buf = Vec::new();
        V2DeflateSerializer::new()
            .serialize(h, &mut buf)
            .expect("serialising into memory");
        let ms = |us: u64| us as f64 / 1e3;
        json!({
            "count": h.len(),
            "threshold_ms": self.threshold.as_secs_f64() * 1e3,
            "over_threshold": self.over_threshold,
            "p50_ms": ms(h.value_at_quantile(0.5)),
            "p99_ms": ms(h.value_at_quantile(0.99)),
            "max_ms": ms(h.max()),
            "histogram_v2_deflate_base64": base64::engine::general_purpose::STANDARD.encode(&buf),
            "samples": self.samples.iter().map(|(t, us)| json!([t, us])).collect::<Vec<_>>(),
        })
    }

    /// Persist duration quantile in ms.
    pub fn persist_ms_at(&self, q: f64) -> f64 {
        self.persist_us.value_at_quantile(q) as f64 / 1e3
    }

    /// Each plain series: name, kind, help, value.
    fn series(&self, g: Gauges) -> [(&'static str, &'static str, &'static str, f64); 12] {
        [
            (
                "is_leader",
                "gauge",
                "1 if this node is the leader.",
                g.is_leader as u8 as f64,
            ),
            (
                "committed_block_number",
                "gauge",
                "Number of the last block applied.",
                g.committed_block_number as f64,
            ),
            (
                "snapshot_block_number",
                "gauge",
                "Block number of the latest snapshot.",
                self.snapshot_block_number as f64,
            ),
            (
                "cluster_size",
                "gauge",
                "Number of voters.",
                g.cluster_size as f64,
            ),
            (
                "active_nodes",
                "gauge",
                "Voters the leader heard from recently.",
                g.active_nodes as f64,
            ),
            (
                "leader_changes",
                "counter",
                "Times the leader changed.",
                self.leader_changes as f64,
            ),
            (
                "proposal_failures",
                "counter",
                "Proposals that failed.",
                self.proposal_failures as f64,
            ),
            (
                "normal_proposals_received",
                "counter",
                "Transactions received.",
                self.normal_proposals_received as f64,
            ),
            (
                "snapshots_taken",
                "counter",
                "Snapshots this node took.",
                self.snapshots_taken as f64,
            ),
            (
                "snapshots_installed",
                "counter",
                "Snapshots from the leader this node installed.",
                self.snapshots_installed as f64,
            ),
            (
                "compactions",
                "counter",
                "Times the log was compacted.",
                self.compactions as f64,
            ),
            (
                "slow_disk_transfers",
                "counter",
                "Times this leader handed leadership away for its slow fsyncs.",
                self.slow_disk_transfers as f64,
            ),
        ]
    }

    /// Prometheus text format with Fabric's metric names (and ordeal's
    /// snapshot counters under the same prefix).
    pub fn prometheus(&self, g: Gauges) -> String {
        let mut out = String::new();
        let series = self.series(g);
        for (name, kind, help, v) in series {
            let _ = writeln!(out, "# HELP consensus_etcdraft_{name} {help}\n# TYPE consensus_etcdraft_{name} {kind}\nconsensus_etcdraft_{name} {v}");
        }
        let name = "consensus_etcdraft_data_persist_duration";
        let _ = writeln!(out, "# HELP {name} Time to persist (write + fsync) raft data, seconds.\n# TYPE {name} histogram");
        for le in PERSIST_BUCKETS_S {
            let count = self.persist_us.count_between(0, (le * 1e6) as u64);
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {}",
            self.persist_us.len()
        );
        let _ = writeln!(out, "{name}_sum {}", self.persist_sum_us as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {}", self.persist_us.len());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn persists_are_counted_and_exported() {
        let mut m = Metrics::new(Duration::from_millis(500));
        m.record_persist(Duration::from_micros(200), 10);
        m.record_persist(Duration::from_millis(600), 10);
        let j = m.fsync_json();
        assert_eq!(j["count"], 2);
        assert_eq!(j["over_threshold"], 1);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(j["histogram_v2_deflate_base64"].as_str().unwrap())
            .unwrap();
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut raw.as_slice())
            .unwrap();
        assert_eq!(h.len(), 2);
        let text = m.prometheus(Gauges {
            is_leader: true,
            ..Gauges::default()
        });
        assert!(text.contains("consensus_etcdraft_is_leader 1"));
        assert!(
            text.contains("consensus_etcdraft_data_persist_duration_bucket{le=\"0.001\"} 1"),
            "{text}"
        );
        assert!(text.contains("consensus_etcdraft_data_persist_duration_count 2"));
    }
}
