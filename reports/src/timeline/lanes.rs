//! The timeline's lanes from a run's data: each node's facts (its trace's
//! roles, starts and configurations, else its sampled status; the fault
//! windows aimed at it; the `member` nemesis's configurations) turned into
//! intervals, and the ops that failed or timed out put on the lane of the
//! node they were sent to.

use super::{
    down_spans, paused_spans, sampled_roles, segments, standing, unanswered_spans, NodeFacts,
    Segment,
};
use crate::load::{Loaded, OpRecord, Outcome};
use crate::status::Sample;
use crate::trace::NodeTrace;

/// One lane of the timeline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lane {
    /// The node (or [`UNKNOWN_NODE`]).
    pub name: String,
    /// Its state over the run (empty for a lane of ops only).
    pub segments: Vec<Segment>,
    /// When its processes started, s.
    pub starts_s: Vec<f64>,
    /// Completion times of its ops that failed (`fail`), s.
    pub fails_s: Vec<f64>,
    /// Completion times of its ops that timed out (`info`), s.
    pub infos_s: Vec<f64>,
}

/// The lane of failed ops whose node neither the history nor `p mod n`
/// tells.
pub const UNKNOWN_NODE: &str = "ops ?";

/// What a run says of its nodes.
pub struct RunFacts<'a> {
    /// The run's node directories (`nodes/<name>`).
    pub nodes: &'a [String],
    /// Each node's trace, by name (`None`: it has none).
    pub traces: &'a [(String, Option<NodeTrace>)],
    /// `status.jsonl`.
    pub samples: &'a [Sample],
    /// The history.
    pub loaded: &'a Loaded,
    /// `test.json`'s `nodes`, in order: process `p` talks to `p mod n` of
    /// them (ARCHITECTURE.md), for histories that do not name the node.
    pub founders: &'a [String],
    /// `test.json`'s `concurrency`: processes from `concurrency × n` on
    /// moved under a fresh number and are not placed by `p mod n`.
    pub concurrency: Option<u64>,
}

/// `n12` → 12.
fn id_of(name: &str) -> Option<u64> {
    name.strip_prefix('n')?.parse().ok()
}

/// Node names in lane order: by id, then by name.
fn lane_order(r: &RunFacts<'_>) -> Vec<String> {
    let mut names: Vec<String> = r
        .nodes
        .iter()
        .cloned()
        .chain(r.founders.iter().cloned())
        .chain(r.samples.iter().map(|s| s.node.clone()))
        .collect();
    names.sort_by_key(|n| (id_of(n).unwrap_or(u64::MAX), n.clone()));
    names.dedup();
    names
}

/// The node an op was sent to: the history's `node`, else `p mod n` over
/// the founders for a process that never moved.
fn node_of<'a>(op: &'a OpRecord, r: &'a RunFacts<'_>) -> Option<&'a str> {
    if let Some(n) = &op.node {
        return Some(n);
    }
    let p = op.process?;
    let n = r.founders.len() as u64;
    let placed = n > 0 && r.concurrency.is_some_and(|c| p < c * n);
    placed.then(|| r.founders[(p % n) as usize].as_str())
}

/// One node's facts.
fn facts(r: &RunFacts<'_>, node: &str) -> (NodeFacts, Vec<f64>) {
    let trace = r
        .traces
        .iter()
        .find(|(n, _)| n == node)
        .and_then(|(_, t)| t.as_ref());
    let windows = &r.loaded.windows;
    let changes = &r.loaded.changes;
    let starts = trace.map(|t| t.starts_s.clone()).unwrap_or_default();
    let mut down = down_spans(windows, node, &starts);
    let id = trace.and_then(|t| t.id).or_else(|| id_of(node));
    let roles = match trace {
        Some(t) if !t.roles.is_empty() => {
            t.roles.iter().map(|(at, role, _)| (*at, *role)).collect()
        }
        _ => {
            down.extend(unanswered_spans(r.samples, node));
            sampled_roles(r.samples, node, id)
        }
    };
    let confs = trace.map(|t| t.confs.as_slice()).unwrap_or_default();
    let facts = NodeFacts {
        roles,
        standing: standing(node, id, confs, changes),
        down,
        paused: paused_spans(windows, node),
    };
    (facts, starts)
}

/// The lanes: one per node, then [`UNKNOWN_NODE`]'s when some failed op
/// has no node. The final reads are left out (they are not the load).
pub fn lanes(r: &RunFacts<'_>) -> Vec<Lane> {
    let end_s = r.loaded.end_s;
    let mut out: Vec<Lane> = lane_order(r)
        .into_iter()
        .map(|node| {
            let (f, starts_s) = facts(r, &node);
            Lane {
                segments: segments(&f, end_s),
                name: node,
                starts_s,
                ..Lane::default()
            }
        })
        .collect();
    let mut unknown = Lane {
        name: UNKNOWN_NODE.into(),
        ..Lane::default()
    };
    let failed = r
        .loaded
        .ops
        .iter()
        .filter(|o| o.outcome != Outcome::Ok && !o.final_read);
    for op in failed {
        let lane = match node_of(op, r).and_then(|n| out.iter().position(|l| l.name == n)) {
            Some(i) => &mut out[i],
            None => &mut unknown,
        };
        match op.outcome {
            Outcome::Fail => lane.fails_s.push(op.done_s()),
            _ => lane.infos_s.push(op.done_s()),
        }
    }
    if !unknown.fails_s.is_empty() || !unknown.infos_s.is_empty() {
        out.push(unknown);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::FaultWindow;
    use crate::timeline::State;

    fn op(process: u64, node: Option<&str>, outcome: Outcome, done_s: f64) -> OpRecord {
        OpRecord {
            f: "write".into(),
            outcome,
            invoke_s: done_s - 0.5,
            latency_ms: 500.0,
            node: node.map(String::from),
            process: Some(process),
            final_read: false,
        }
    }

    #[test]
    fn failed_ops_go_to_their_node_or_to_the_unknown_lane() {
        let loaded = Loaded {
            ops: vec![
                op(4, Some("n2"), Outcome::Info, 3.0),
                // p mod n: process 4 of 3 founders at concurrency 2 → n2.
                op(4, None, Outcome::Fail, 4.0),
                // Moved under a fresh number (≥ 2 × 3): not placed.
                op(7, None, Outcome::Fail, 5.0),
                op(1, None, Outcome::Ok, 6.0),
            ],
            windows: vec![FaultWindow {
                fault: "kill".into(),
                targets: vec!["n1".into()],
                start_s: 2.0,
                end_s: 5.0,
                label: String::new(),
                start: serde_json::Value::Null,
            }],
            end_s: 10.0,
            ..Loaded::default()
        };
        let founders = ["n1".to_string(), "n2".into(), "n3".into()];
        let samples = [
            Sample {
                t_s: 0.0,
                node: "n1".into(),
                status: Some(serde_json::json!({"role": "leader"})),
            },
            Sample {
                t_s: 0.0,
                node: "n10".into(),
                status: Some(serde_json::json!({"role": "follower"})),
            },
        ];
        let r = RunFacts {
            nodes: &founders,
            traces: &[],
            samples: &samples,
            loaded: &loaded,
            founders: &founders,
            concurrency: Some(2),
        };
        let lanes = lanes(&r);
        let names: Vec<&str> = lanes.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["n1", "n2", "n3", "n10", UNKNOWN_NODE]);
        assert_eq!(
            (lanes[1].infos_s.clone(), lanes[1].fails_s.clone()),
            (vec![3.0], vec![4.0])
        );
        assert_eq!(lanes[4].fails_s, vec![5.0]);
        // n1 from its samples, down through the kill (no trace: to the
        // window's end).
        let states: Vec<State> = lanes[0].segments.iter().map(|s| s.state).collect();
        assert_eq!(states, [State::Leader, State::Down, State::Leader]);
        assert!(lanes[2].segments.is_empty(), "n3 has nothing to show");
    }
}
