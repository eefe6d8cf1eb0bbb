//! `summary.json`'s `crash_points` (issue 29): for each of ordeal-node's
//! crash points (docs/crash-points.md), how often the run's nodes reached
//! it and how often it crashed one.
//!
//! `reached` sums, over the nodes, the hits each node's last process
//! counted (its `GET /crash-points` at the end of the run, `metrics.json`'s
//! `crash_points`) and, for each process a point ended (an `abort` or
//! `panic` in its trace's `crash_point` event), that event's `reached`;
//! the hits of a process killed otherwise are not counted. `crashed`
//! counts the `abort` and `panic` events; a `sleep` crashes nothing.

use crate::trace::NodeTrace;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One crash point's counts over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PointCounts {
    /// Hits (see the module doc).
    pub reached: u64,
    /// Times it ended a node's process.
    pub crashed: u64,
}

/// Every crash point any node listed or fired, by name; `None` when no
/// node listed its crash points and none fired (a system without them,
/// or nodes that did not answer).
pub fn crash_points(
    metrics: &[(String, Value)],
    traces: &[(String, Option<NodeTrace>)],
) -> Option<BTreeMap<String, PointCounts>> {
    let mut points: BTreeMap<String, PointCounts> = BTreeMap::new();
    let mut listed = false;
    for (_, m) in metrics {
        let Some(list) = m["crash_points"]["points"].as_array() else {
            continue;
        };
        listed = true;
        for p in list {
            if let Some(name) = p["name"].as_str() {
                points.entry(name.to_string()).or_default().reached +=
                    p["reached"].as_u64().unwrap_or(0);
            }
        }
    }
    let mut fired = false;
    for (_, trace) in traces {
        for (name, action, reached) in trace.iter().flat_map(|t| &t.crash_points) {
            fired = true;
            let counts = points.entry(name.clone()).or_default();
            if action != "sleep" {
                counts.crashed += 1;
                counts.reached += reached;
            }
        }
    }
    (listed || fired).then_some(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trace(points: Vec<(&str, &str, u64)>) -> Option<NodeTrace> {
        Some(NodeTrace {
            id: Some(1),
            starts_s: vec![],
            persist_events: 0,
            persists: vec![],
            histogram: crate::stats::histogram(),
            roles: vec![],
            confs: vec![],
            placed_by_node_clock: 0,
            bad_lines: 0,
            crash_points: points
                .into_iter()
                .map(|(n, a, r)| (n.to_string(), a.to_string(), r))
                .collect(),
        })
    }

    #[test]
    fn reached_sums_last_processes_and_crashed_ones_and_sleeps_crash_nothing() {
        let listing = |a: u64, b: u64| {
            json!({"crash_points": {"points": [
                {"name": "wal.append.before-fsync", "reached": a},
                {"name": "snapshot.take.after-write", "reached": b}]}})
        };
        let metrics = vec![
            ("n1".to_string(), listing(100, 2)),
            ("n2".to_string(), listing(50, 0)),
            ("n3".to_string(), json!({"crash_points": null})),
        ];
        let traces = vec![
            (
                "n1".to_string(),
                trace(vec![("wal.append.before-fsync", "sleep", 7)]),
            ),
            (
                "n2".to_string(),
                trace(vec![("snapshot.take.after-write", "abort", 3)]),
            ),
            ("n3".to_string(), None),
        ];
        let points = crash_points(&metrics, &traces).unwrap();
        assert_eq!(
            points["wal.append.before-fsync"],
            PointCounts {
                reached: 150,
                crashed: 0
            }
        );
        assert_eq!(
            points["snapshot.take.after-write"],
            PointCounts {
                reached: 5,
                crashed: 1
            }
        );
        let none = vec![("n1".to_string(), json!({"crash_points": null}))];
        assert_eq!(crash_points(&none, &[]), None);
    }
}
