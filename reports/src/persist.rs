//! Each node's persist (write + fsync) figures over the whole run: from
//! its Raft trace's `persist` events, which every process of the node
//! appends to the same file, when they carry `duration_us`; else from its
//! `metrics.json` (its last process only: etcd, runs from before the
//! trace had durations). Which one was used is said per node (`source`).

use crate::stats::{self, FsyncSource, NodeFsync};
use crate::trace::NodeTrace;
use serde_json::Value;

/// Fabric's slow-disk threshold when no node said it: half the election
/// timeout of `test.json`, ms (`None` when it has none).
pub fn threshold_from_test(test: Option<&Value>) -> Option<f64> {
    test?["election_timeout_ms"].as_f64().map(|ms| ms / 2.0)
}

/// Per node (in `metrics`' order, the run's node directories): its
/// figures, from `traces` (by node name) where they have durations.
pub fn figures(
    metrics: &[(String, Value)],
    traces: &[(String, Option<NodeTrace>)],
    epoch_unix_ms: Option<f64>,
    threshold_ms: Option<f64>,
) -> Vec<NodeFsync> {
    let mut out = stats::fsync(metrics, epoch_unix_ms);
    for n in &mut out {
        if n.threshold_ms <= 0.0 {
            n.threshold_ms = threshold_ms.unwrap_or(0.0);
        }
        let trace = traces
            .iter()
            .find(|(name, _)| *name == n.node)
            .and_then(|(_, t)| t.as_ref());
        if let Some(t) = trace {
            from_trace(n, t);
        }
    }
    out
}

/// Replaces a node's metrics figures with its trace's, when the trace has
/// persist durations; says what the trace holds either way.
fn from_trace(n: &mut NodeFsync, t: &NodeTrace) {
    n.processes = Some(t.starts_s.len() as u64);
    n.persist_events = Some(t.persist_events);
    n.restarts_s = t.starts_s.iter().skip(1).copied().collect();
    if t.persists.is_empty() {
        return;
    }
    let h = &t.histogram;
    n.source = FsyncSource::Trace;
    n.available = true;
    n.count = t.persists.len() as u64;
    let q = stats::quantiles(h);
    n.p50_ms = q.p50;
    n.p99_ms = q.p99;
    n.max_ms = t.persists.iter().map(|p| p.1).fold(0.0, f64::max);
    n.over_threshold = if n.threshold_ms > 0.0 {
        t.persists.iter().filter(|p| p.1 > n.threshold_ms).count() as u64
    } else {
        0
    };
    n.samples = t.persists.clone();
    n.histogram = Some(h.clone());
    n.buckets.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trace(starts_s: Vec<f64>, persists: Vec<(f64, f64)>, events: u64) -> NodeTrace {
        let mut histogram = stats::histogram();
        for p in &persists {
            stats::record(&mut histogram, p.1);
        }
        NodeTrace {
            id: Some(1),
            starts_s,
            persist_events: events,
            persists,
            histogram,
            roles: vec![],
            confs: vec![],
            placed_by_node_clock: 0,
            bad_lines: 0,
            crash_points: vec![],
        }
    }

    #[test]
    fn the_trace_wins_when_it_has_durations_and_metrics_stay_otherwise() {
        let metrics = vec![
            (
                "n1".to_string(),
                json!({"fsync": {"count": 3, "threshold_ms": 500.0, "p50_ms": 0.5, "max_ms": 0.6}}),
            ),
            (
                "n2".to_string(),
                json!({"fsync": {"count": 7, "threshold_ms": 500.0, "p50_ms": 0.5}}),
            ),
            ("n3".to_string(), Value::Null),
        ];
        let traces = vec![
            (
                "n1".to_string(),
                Some(trace(
                    vec![-1.0, 10.0, 20.0],
                    vec![(1.0, 0.2), (12.0, 700.0), (25.0, 0.3)],
                    3,
                )),
            ),
            // A trace from before `duration_us`.
            ("n2".to_string(), Some(trace(vec![-1.0], vec![], 40))),
            (
                "n3".to_string(),
                Some(trace(vec![-1.0], vec![(2.0, 0.1)], 1)),
            ),
        ];
        let f = figures(&metrics, &traces, Some(0.0), Some(250.0));
        assert_eq!(f[0].source, FsyncSource::Trace);
        assert_eq!((f[0].count, f[0].over_threshold), (3, 1));
        assert_eq!(f[0].max_ms, 700.0);
        assert_eq!(f[0].restarts_s, vec![10.0, 20.0]);
        assert_eq!(f[0].processes, Some(3));
        assert_eq!(f[1].source, FsyncSource::Metrics);
        assert_eq!(f[1].count, 7);
        assert_eq!(f[1].persist_events, Some(40));
        // n3 did not answer at the end, but its trace has the figures; the
        // threshold comes from the test.
        assert!(f[2].available);
        assert_eq!((f[2].count, f[2].threshold_ms), (1, 250.0));
    }
}
