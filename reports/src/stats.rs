//! Figures: latency quantiles per op kind (HdrHistogram over every op,
//! never a sample), throughput and quantiles per time bucket, recovery per
//! fault window, fsync per node.

use crate::load::{FaultWindow, Loaded, OpRecord, Outcome};
use base64::Engine as _;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Quantiles of a latency distribution, ms.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Default)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

/// A histogram of latencies in µs (1 µs .. 1 h, 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// Records a latency in ms.
pub fn record(h: &mut Histogram<u64>, ms: f64) {
    let _ = h.record(((ms * 1e3) as u64).clamp(1, 3_600_000_000));
}

/// Quantiles of a histogram, ms.
pub fn quantiles(h: &Histogram<u64>) -> Quantiles {
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1e3;
    Quantiles {
        p50: q(0.5),
        p90: q(0.9),
        p95: q(0.95),
        p99: q(0.99),
        p999: q(0.999),
        max: h.max() as f64 / 1e3,
    }
}

/// Per op kind.
#[derive(Debug, Clone, Serialize)]
pub struct KindStats {
    /// The operation.
    pub f: String,
    /// Completed ops.
    pub count: u64,
    /// `ok` ops.
    pub ok: u64,
    /// `fail` ops.
    pub fail: u64,
    /// `info` ops.
    pub info: u64,
    /// Latency of `ok` ops.
    pub latency_ms: Quantiles,
}

/// Per fault window: how the system felt it.
#[derive(Debug, Clone, Serialize)]
pub struct FaultStats {
    /// The fault.
    pub fault: String,
    /// Grudge kind, clock mode or target choice.
    pub label: String,
    /// Nodes touched.
    pub targets: Vec<String>,
    /// Window start, s.
    pub start_s: f64,
    /// Window end, s.
    pub end_s: f64,
    /// From the start to the first op that failed or timed out within the
    /// window (`null`: none did before the heal), s.
    pub first_failure_after_s: Option<f64>,
    /// From the end (heal) to the first op that succeeded, s.
    pub first_ok_after_heal_s: Option<f64>,
    /// Leader changes from the window's start until `recovery_s` after its
    /// heal or the next fault, from the nodes' sampled status (`null`:
    /// the run has no `status.jsonl`).
    pub leader_changes: Option<u64>,
    /// Each node's catch-up with the leader after the heal (empty without
    /// `status.jsonl`).
    pub catch_up: Vec<crate::status::CatchUp>,
}

/// Per node: persist (write + fsync) durations.
#[derive(Debug, Clone, Serialize)]
pub struct NodeFsync {
    /// Node name.
    pub node: String,
    /// Whether the node answered at the end of the run.
    pub available: bool,
    /// Persists.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
    /// Fabric's slow-disk threshold (half the election timeout), ms.
    pub threshold_ms: f64,
    /// Persists over the threshold.
    pub over_threshold: u64,
    /// Leader changes the node counted over the run.
    pub leader_changes: Option<u64>,
    /// Slow-disk warnings in the node's log over the run (`None`: no log).
    pub slow_disk_warnings: Option<u64>,
    /// Where the figures come from (`trace` or `metrics`).
    pub source: FsyncSource,
    /// Processes its trace shows (its `start` events; `null` without a
    /// trace).
    pub processes: Option<u64>,
    /// `persist` events in its trace, with a duration or not (`null`
    /// without a trace).
    pub persist_events: Option<u64>,
    /// When each process after the first started, s (from its trace).
    pub restarts_s: Vec<f64>,
    /// (seconds since the test began, ms) of recent persists.
    #[serde(skip)]
    pub samples: Vec<(f64, f64)>,
    /// The full distribution, if the node sent it.
    #[serde(skip)]
    pub histogram: Option<Histogram<u64>>,
    /// Cumulative bucket counts (upper bound ms, persists at or below),
    /// when the node exposes buckets instead (etcd's Prometheus histogram).
    #[serde(skip)]
    pub buckets: Vec<(f64, u64)>,
}

/// Where a node's persist figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncSource {
    /// Its Raft trace's `persist` events: every process over the whole run.
    Trace,
    /// Its `metrics.json`: the last process only, as the node answered at
    /// the end of the run (etcd, or a trace without `duration_us`).
    Metrics,
}

/// Latency per op kind.
pub fn kinds(ops: &[OpRecord]) -> Vec<KindStats> {
    let mut by: BTreeMap<&str, (KindStats, Histogram<u64>)> = BTreeMap::new();
    for op in ops {
        let (k, h) = by.entry(&op.f).or_insert_with(|| {
            (
                KindStats {
                    f: op.f.clone(),
                    count: 0,
                    ok: 0,
                    fail: 0,
                    info: 0,
                    latency_ms: Quantiles::default(),
                },
                histogram(),
            )
        });
        k.count += 1;
        match op.outcome {
            Outcome::Ok => {
                k.ok += 1;
                record(h, op.latency_ms);
            }
            Outcome::Fail => k.fail += 1,
            Outcome::Info => k.info += 1,
        }
    }
    by.into_values()
        .map(|(mut k, h)| {
            if !h.is_empty() {
                k.latency_ms = quantiles(&h);
            }
            k
        })
        .collect()
}

/// Recovery figures per fault window.
pub fn faults(loaded: &Loaded) -> Vec<FaultStats> {
    loaded
        .windows
        .iter()
        .map(|w: &FaultWindow| {
            let done = |op: &OpRecord| op.invoke_s + op.latency_ms / 1e3;
            let first_failure = loaded
                .ops
                .iter()
                .filter(|o| o.outcome != Outcome::Ok)
                .filter(|o| done(o) >= w.start_s && done(o) <= w.end_s)
                .map(done)
                .fold(f64::INFINITY, f64::min);
            let first_ok = loaded
                .ops
                .iter()
                .filter(|o| o.outcome == Outcome::Ok && done(o) >= w.end_s)
                .map(done)
                .fold(f64::INFINITY, f64::min);
            FaultStats {
                fault: w.fault.clone(),
                label: w.label.clone(),
                targets: w.targets.clone(),
                start_s: w.start_s,
                end_s: w.end_s,
                first_failure_after_s: first_failure
                    .is_finite()
                    .then_some(first_failure - w.start_s),
                first_ok_after_heal_s: first_ok.is_finite().then_some(first_ok - w.end_s),
                leader_changes: None,
                catch_up: Vec::new(),
            }
        })
        .collect()
}

/// Recovery after each fault from the nodes' sampled status: leader
/// changes and each node's catch-up, measured for `recovery_s` (10 s when
/// the test does not say) after each heal.
pub fn recovery(
    faults: &mut [FaultStats],
    loaded: &Loaded,
    samples: &[crate::status::Sample],
    recovery_s: Option<f64>,
) {
    let recovery_s = recovery_s.unwrap_or(10.0);
    let changes = crate::status::leader_changes(samples, &loaded.windows, recovery_s);
    let catch_up = crate::status::catch_up(samples, &loaded.windows, &loaded.changes, recovery_s);
    for ((f, c), u) in faults.iter_mut().zip(changes).zip(catch_up) {
        f.leader_changes = c;
        f.catch_up = u;
    }
}

/// Persist figures of each node from its `metrics.json`; `epoch_unix_ms`
/// puts its samples' wall-clock times on the run's time axis.
pub fn fsync(nodes: &[(String, Value)], epoch_unix_ms: Option<f64>) -> Vec<NodeFsync> {
    nodes
        .iter()
        .map(|(name, m)| {
            let f = &m["fsync"];
            let histogram = f["histogram_v2_deflate_base64"]
                .as_str()
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .and_then(|raw| {
                    Deserializer::new()
                        .deserialize::<u64, _>(&mut raw.as_slice())
                        .ok()
                });
            let origin = epoch_unix_ms
                .or_else(|| f["samples"].get(0).and_then(|s| s[0].as_f64()))
                .unwrap_or(0.0);
            let samples = f["samples"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| {
                            Some(((s[0].as_f64()? - origin) / 1e3, s[1].as_f64()? / 1e3))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let leader_changes = m["prometheus"]
                .as_str()
                .and_then(|text| {
                    text.lines()
                        // ordeal-node's (Fabric's) name, or etcd's.
                        .find_map(|l| {
                            l.strip_prefix("consensus_etcdraft_leader_changes ")
                                .or_else(|| {
                                    l.strip_prefix("etcd_server_leader_changes_seen_total ")
                                })
                        })
                        .and_then(|v| v.trim().parse::<f64>().ok())
                })
                .map(|v| v as u64);
            NodeFsync {
                node: name.clone(),
                available: !f.is_null(),
                count: f["count"].as_u64().unwrap_or(0),
                p50_ms: f["p50_ms"].as_f64().unwrap_or(0.0),
                p99_ms: f["p99_ms"].as_f64().unwrap_or(0.0),
                max_ms: f["max_ms"].as_f64().unwrap_or(0.0),
                threshold_ms: f["threshold_ms"].as_f64().unwrap_or(0.0),
                over_threshold: f["over_threshold"].as_u64().unwrap_or(0),
                leader_changes,
                slow_disk_warnings: None,
                source: FsyncSource::Metrics,
                processes: None,
                persist_events: None,
                restarts_s: Vec::new(),
                samples,
                histogram,
                buckets: f["buckets"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|b| Some((b[0].as_f64()?, b[1].as_u64()?)))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// One time bucket: per kind, counts per outcome (ok, fail, info) and the
/// latency of `ok` ops.
pub type Cell = BTreeMap<String, ([u64; 3], Histogram<u64>)>;

/// Ops bucketed by invoke time: per bucket, per (kind, outcome), count
/// and (for `ok`) a latency histogram.
pub struct Buckets {
    /// Bucket width, s.
    pub width_s: f64,
    /// Per bucket index: per kind: (count per outcome, ok latency).
    pub cells: Vec<Cell>,
}

/// Buckets of about `end_s / 120` seconds (at least 1 s).
pub fn buckets(ops: &[OpRecord], end_s: f64) -> Buckets {
    let width_s = (end_s / 120.0).max(1.0);
    let n = (end_s / width_s).ceil() as usize + 1;
    let mut cells: Vec<Cell> = (0..n).map(|_| BTreeMap::new()).collect();
    for op in ops {
        let i = ((op.invoke_s / width_s) as usize).min(n - 1);
        let cell = cells[i]
            .entry(op.f.clone())
            .or_insert_with(|| ([0; 3], histogram()));
        let slot = match op.outcome {
            Outcome::Ok => 0,
            Outcome::Fail => 1,
            Outcome::Info => 2,
        };
        cell.0[slot] += 1;
        if op.outcome == Outcome::Ok {
            record(&mut cell.1, op.latency_ms);
        }
    }
    Buckets { width_s, cells }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_of_a_window_is_one_within_it() {
        let op = |invoke_s: f64, latency_ms: f64, outcome| OpRecord {
            f: "write".into(),
            outcome,
            invoke_s,
            latency_ms,
            node: None,
            process: None,
            final_read: false,
        };
        let window = |start_s, end_s| FaultWindow {
            fault: "clock".into(),
            targets: vec!["n1".into()],
            start_s,
            end_s,
            label: "bump".into(),
            start: serde_json::Value::Null,
        };
        let loaded = Loaded {
            // A timeout that began in the window and ended after it, then
            // a failure within the second window.
            ops: vec![
                op(11.0, 5000.0, Outcome::Info),
                op(20.5, 1.0, Outcome::Fail),
            ],
            windows: vec![window(10.0, 14.5), window(20.0, 24.0)],
            skipped_lines: 0,
            end_s: 30.0,
            changes: vec![],
        };
        let f = faults(&loaded);
        assert_eq!(f[0].first_failure_after_s, None);
        assert!((f[1].first_failure_after_s.unwrap() - 0.501).abs() < 1e-9);
    }

    #[test]
    fn quantiles_agree_with_sorting_within_hdr_precision() {
        let ops: Vec<OpRecord> = (1..=10_000)
            .map(|i| OpRecord {
                f: "read".into(),
                outcome: Outcome::Ok,
                invoke_s: i as f64 / 1000.0,
                latency_ms: (i % 997) as f64 * 0.37 + 0.05,
                node: None,
                process: None,
                final_read: false,
            })
            .collect();
        let mut sorted: Vec<f64> = ops.iter().map(|o| o.latency_ms).collect();
        sorted.sort_by(f64::total_cmp);
        let exact = |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).max(1) - 1];
        let k = &kinds(&ops)[0];
        for (got, p) in [
            (k.latency_ms.p50, 0.5),
            (k.latency_ms.p90, 0.9),
            (k.latency_ms.p99, 0.99),
            (k.latency_ms.p999, 0.999),
            (k.latency_ms.max, 1.0),
        ] {
            let want = exact(p);
            assert!(
                (got - want).abs() <= want * 0.002 + 0.002,
                "p{p}: hdr {got} vs sorted {want}"
            );
        }
        assert_eq!(k.count, 10_000);
    }
}
