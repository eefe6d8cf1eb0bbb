//! What the nodes said of themselves during the run: the harness's
//! `status.jsonl` (every node's `/status`, sampled on the history's clock,
//! docs/store.md). From it: how long each node took to catch up with the
//! leader after each fault was healed, the leader changes of each fault
//! window, and each node's snapshot counters summed over its restarts.

use crate::load::FaultWindow;
use crate::members::ConfigChange;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::Path;

/// Slack on the sampling period when asking whether samples reach a
/// deadline, s (the harness samples every 250 ms).
const SAMPLE_SLACK_S: f64 = 0.5;

/// One node's status at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the test began (the history's clock).
    pub t_s: f64,
    /// Node name.
    pub node: String,
    /// Its `/status` in ordeal-node's shape, `None` when it did not answer.
    pub status: Option<Value>,
}

/// Reads `status.jsonl`, in file (time) order; lines that are not samples
/// are skipped. An absent file (runs from before the sampler) reads as
/// no samples.
pub fn read(path: &Path) -> Vec<Sample> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| {
            let v: Value = serde_json::from_str(&line).ok()?;
            Some(Sample {
                t_s: v["time"].as_u64()? as f64 / 1e9,
                node: v["node"].as_str()?.to_string(),
                status: Some(v["status"].clone()).filter(|s| s.is_object()),
            })
        })
        .collect()
}

fn height(s: &Sample) -> Option<u64> {
    s.status.as_ref()?["height"].as_u64()
}

/// How a node came out of a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CatchUpState {
    /// It reached the leader's height at the heal.
    CaughtUp,
    /// It had not within `recovery_s` of the heal: a liveness anomaly.
    Behind,
    /// The next fault began first, within `recovery_s` of the heal.
    Interrupted,
    /// The samples end before `recovery_s` had passed (a run cut short).
    Unmeasured,
    /// A configuration change removed it by the heal: it halted and is
    /// not expected to catch up (issue 14).
    Removed,
    /// It was not in the configuration at the heal (started, its addition
    /// not yet or never committed): not expected to catch up.
    NotMember,
}

/// One node after one fault's heal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatchUp {
    /// Node name.
    pub node: String,
    /// How it came out.
    pub state: CatchUpState,
    /// From the heal to the first sample at the leader's height, s.
    pub after_heal_s: Option<f64>,
    /// Its height then, or at the last sample that counted.
    pub height: Option<u64>,
    /// The height to reach: the highest any node reported up to the heal.
    pub target_height: u64,
}

/// Per window: each node's catch-up after its heal. A node has caught up
/// at its first sample, from the heal on, whose height is at least the
/// highest height any node reported up to the heal (the leader's then).
/// It is measured until `recovery_s` after the heal or the next window's
/// start, whichever is first.
///
/// With configuration changes (`changes`, issue 14), only the members at
/// the heal are expected to catch up — a node added by the change the
/// window is, from its end — and the others are shown as `Removed` or
/// `NotMember`, not judged.
pub fn catch_up(
    samples: &[Sample],
    windows: &[FaultWindow],
    changes: &[ConfigChange],
    recovery_s: f64,
) -> Vec<Vec<CatchUp>> {
    let nodes: BTreeSet<&str> = samples.iter().map(|s| s.node.as_str()).collect();
    let last_s = samples.last().map_or(0.0, |s| s.t_s);
    windows
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let heal = w.end_s;
            let Some(target) = samples
                .iter()
                .filter(|s| s.t_s <= heal)
                .filter_map(height)
                .max()
            else {
                return Vec::new();
            };
            let deadline = heal + recovery_s;
            let next = windows.get(i + 1).map_or(f64::INFINITY, |n| n.start_s);
            let cut = deadline.min(next);
            nodes
                .iter()
                .map(|node| {
                    if let Some(c) = outside(samples, changes, node, heal, target) {
                        return c;
                    }
                    let mine = samples
                        .iter()
                        .filter(|s| s.node == *node && s.t_s >= heal && s.t_s <= cut);
                    let mut last = None;
                    for s in mine {
                        last = height(s).or(last);
                        if height(s).is_some_and(|h| h >= target) {
                            return CatchUp {
                                node: node.to_string(),
                                state: CatchUpState::CaughtUp,
                                after_heal_s: Some(s.t_s - heal),
                                height: height(s),
                                target_height: target,
                            };
                        }
                    }
                    let state = if next < deadline {
                        CatchUpState::Interrupted
                    } else if last_s + SAMPLE_SLACK_S < deadline {
                        CatchUpState::Unmeasured
                    } else {
                        CatchUpState::Behind
                    };
                    CatchUp {
                        node: node.to_string(),
                        state,
                        after_heal_s: None,
                        height: last,
                        target_height: target,
                    }
                })
                .collect()
        })
        .collect()
}

/// A node outside the configuration at `heal` (removed, or never added):
/// shown as such, at its last height up to the heal, and not judged.
/// `None` for a member, or for every node without configuration changes.
fn outside(
    samples: &[Sample],
    changes: &[ConfigChange],
    node: &str,
    heal: f64,
    target: u64,
) -> Option<CatchUp> {
    let standing = crate::members::standing_at(changes, heal)?;
    let state = if standing.members.contains(node) {
        return None;
    } else if standing.removed.contains(node) {
        CatchUpState::Removed
    } else {
        CatchUpState::NotMember
    };
    Some(CatchUp {
        node: node.to_string(),
        state,
        after_heal_s: None,
        height: samples
            .iter()
            .filter(|s| s.node == node && s.t_s <= heal)
            .filter_map(height)
            .next_back(),
        target_height: target,
    })
}

/// Per window: leader changes from its start until `recovery_s` after its
/// heal (or the next window's start): the (term, leader) pairs any node
/// reported in that span that no node had reported before it. `None`
/// without samples.
pub fn leader_changes(
    samples: &[Sample],
    windows: &[FaultWindow],
    recovery_s: f64,
) -> Vec<Option<u64>> {
    let reign = |s: &Sample| {
        let st = s.status.as_ref()?;
        let leader = st["leader"].as_u64().filter(|&l| l != 0)?;
        Some((st["term"].as_u64().unwrap_or(0), leader))
    };
    windows
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if samples.is_empty() {
                return None;
            }
            let next = windows.get(i + 1).map_or(f64::INFINITY, |n| n.start_s);
            let cut = (w.end_s + recovery_s).min(next);
            let before: BTreeSet<(u64, u64)> = samples
                .iter()
                .filter(|s| s.t_s < w.start_s)
                .filter_map(reign)
                .collect();
            let during: BTreeSet<(u64, u64)> = samples
                .iter()
                .filter(|s| s.t_s >= w.start_s && s.t_s <= cut)
                .filter_map(reign)
                .filter(|r| !before.contains(r))
                .collect();
            Some(during.len() as u64)
        })
        .collect()
}

/// One node's snapshot counters over the whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeSnapshots {
    /// Node name.
    pub node: String,
    /// Snapshots the node took.
    pub taken: u64,
    /// Snapshots it installed from the leader.
    pub installed: u64,
    /// Log compactions.
    pub compactions: u64,
    /// Processes the counters were summed over (1 + restarts seen).
    pub processes: u64,
}

/// Each node's counters summed over its processes: the node counts since
/// its process started, so each process (told apart by the status's
/// `restarts`) contributes the largest count it reported. `finals` are the
/// statuses of `metrics.json`, read after the last sample. A process that
/// was killed between samples may have counted a little more than seen.
pub fn snapshots(samples: &[Sample], finals: &[(String, Value)]) -> Vec<NodeSnapshots> {
    // node → restarts → (taken, installed, compactions), each the largest.
    let mut seen: BTreeMap<&str, BTreeMap<u64, [u64; 3]>> = BTreeMap::new();
    let finals = finals.iter().map(|(n, m)| (n.as_str(), Some(&m["status"])));
    let sampled = samples.iter().map(|s| (s.node.as_str(), s.status.as_ref()));
    for (node, status) in sampled.chain(finals) {
        let process = seen.entry(node).or_default();
        let Some(st) = status.filter(|s| s.is_object()) else {
            continue;
        };
        let counts = process
            .entry(st["restarts"].as_u64().unwrap_or(0))
            .or_default();
        for (slot, field) in ["snapshots_taken", "snapshots_installed", "compactions"]
            .iter()
            .enumerate()
        {
            counts[slot] = counts[slot].max(st[*field].as_u64().unwrap_or(0));
        }
    }
    seen.into_iter()
        .map(|(node, processes)| {
            let sum = |slot: usize| processes.values().map(|c| c[slot]).sum();
            NodeSnapshots {
                node: node.to_string(),
                taken: sum(0),
                installed: sum(1),
                compactions: sum(2),
                processes: processes.len() as u64,
            }
        })
        .collect()
}

/// The recovery table's cell: `n1 0.2 · n2 4.1 · n3 behind (120 of 300)`.
pub fn catch_up_cell(catch_up: &[CatchUp]) -> String {
    if catch_up.is_empty() {
        return "—".into();
    }
    let cells: Vec<String> = catch_up
        .iter()
        .map(|c| match (c.state, c.after_heal_s) {
            (CatchUpState::CaughtUp, Some(s)) => format!("{} {s:.2}", c.node),
            (CatchUpState::Behind, _) => format!(
                "{} BEHIND (height {} of {})",
                c.node,
                c.height.map_or("?".into(), |h| h.to_string()),
                c.target_height
            ),
            (CatchUpState::Interrupted, _) => format!("{} next fault first", c.node),
            (CatchUpState::Removed, _) => format!("{} removed", c.node),
            (CatchUpState::NotMember, _) => format!("{} not a member", c.node),
            _ => format!("{} unmeasured", c.node),
        })
        .collect();
    cells.join(" · ")
}

/// Each node's snapshot counters as an HTML table (nothing without them).
pub fn snapshots_table(nodes: &[NodeSnapshots]) -> String {
    if nodes.is_empty() {
        return String::new();
    }
    let mut out = String::from("<table><tr><th>node</th><th>snapshots taken</th><th>snapshots installed</th><th>compactions</th><th>processes</th></tr>");
    for n in nodes {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            n.node.replace('<', "&lt;"),
            n.taken,
            n.installed,
            n.compactions,
            n.processes
        ));
    }
    out + "</table>"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(t_s: f64, node: &str, status: Value) -> Sample {
        Sample {
            t_s,
            node: node.into(),
            status: Some(status).filter(|s| s.is_object()),
        }
    }

    fn window(start_s: f64, end_s: f64) -> FaultWindow {
        FaultWindow {
            fault: "lag".into(),
            targets: vec!["n2".into()],
            start_s,
            end_s,
            label: String::new(),
            start: Value::Null,
        }
    }

    #[test]
    fn a_node_catches_up_when_it_reaches_the_height_at_the_heal() {
        let st = |h: u64| json!({"height": h, "leader": 1, "term": 2});
        let samples = vec![
            sample(1.0, "n1", st(10)),
            sample(1.0, "n2", st(10)),
            sample(5.0, "n1", st(50)),
            sample(5.0, "n2", st(10)),
            sample(5.5, "n1", st(55)),
            sample(5.5, "n2", st(12)),
            sample(7.0, "n1", st(70)),
            sample(7.0, "n2", st(52)),
            sample(20.0, "n1", st(90)),
            sample(20.0, "n2", st(90)),
        ];
        let got = catch_up(&samples, &[window(2.0, 5.0)], &[], 10.0);
        assert_eq!(got[0][0].state, CatchUpState::CaughtUp);
        assert_eq!(got[0][0].after_heal_s, Some(0.0));
        assert_eq!(got[0][1].after_heal_s, Some(2.0));
        assert_eq!(got[0][1].target_height, 50);
        // Measured for one second only: n2 is still at 12, behind.
        let got = catch_up(&samples[..8], &[window(2.0, 5.0)], &[], 1.0);
        assert_eq!(
            (got[0][1].state, got[0][1].height),
            (CatchUpState::Behind, Some(12))
        );
        // The next fault began half a second after the heal.
        let got = catch_up(&samples, &[window(2.0, 5.0), window(5.6, 6.0)], &[], 1.0);
        assert_eq!(got[0][1].state, CatchUpState::Interrupted);
        // The samples stop before the recovery window is over.
        let got = catch_up(&samples[..6], &[window(2.0, 5.0)], &[], 10.0);
        assert_eq!(got[0][1].state, CatchUpState::Unmeasured);
    }

    #[test]
    fn removed_nodes_are_shown_removed_and_added_ones_are_expected_once_added() {
        let st = |h: u64| json!({"height": h, "leader": 1, "term": 2});
        let mut c = crate::members::Collector::default();
        c.event("member", 2.0, &json!({"phase": "start", "change": "replace", "targets": ["n2", "n4"], "before": {"voters": ["n1", "n2", "n3"], "learners": []}}));
        c.event("member", 5.0, &json!({"phase": "end", "change": "replace", "committed": true, "after": {"voters": ["n1", "n3", "n4"], "learners": []}}));
        let changes = c.finish();
        let mut member = window(2.0, 5.0);
        member.fault = "member".into();
        let later = window(8.0, 9.0);
        let samples = vec![
            sample(1.0, "n1", st(10)),
            sample(1.0, "n2", st(10)),
            sample(1.0, "n3", st(10)),
            sample(4.0, "n4", st(0)),
            sample(4.5, "n2", st(20)),
            sample(5.0, "n1", st(30)),
            sample(5.0, "n3", st(30)),
            sample(5.5, "n4", st(30)),
            sample(6.0, "n2", st(20)),
            sample(9.0, "n1", st(40)),
            sample(9.0, "n3", st(40)),
            sample(9.2, "n4", st(40)),
            sample(30.0, "n2", st(20)),
        ];
        let got = catch_up(&samples, &[member, later], &changes, 3.0);
        let state = |w: usize, n: &str| {
            let c = got[w].iter().find(|c| c.node == n).unwrap();
            (c.state, c.after_heal_s)
        };
        assert_eq!(state(0, "n2"), (CatchUpState::Removed, None), "{got:?}");
        assert_eq!(state(0, "n4"), (CatchUpState::CaughtUp, Some(0.5)));
        assert_eq!(state(1, "n2"), (CatchUpState::Removed, None));
        assert_eq!(state(1, "n4").0, CatchUpState::CaughtUp);
        assert!(got
            .iter()
            .flatten()
            .all(|c| c.state != CatchUpState::Behind));
        // Without the configuration changes, n2 is left behind.
        let got = catch_up(&samples, &[window(2.0, 5.0)], &[], 3.0);
        let n2 = got[0].iter().find(|c| c.node == "n2").unwrap();
        assert_eq!(n2.state, CatchUpState::Behind);
        // A node started whose addition is not in the configuration.
        let got = catch_up(&samples, &[window(0.5, 1.5)], &changes, 3.0);
        let n4 = got[0].iter().find(|c| c.node == "n4").unwrap();
        assert_eq!(n4.state, CatchUpState::NotMember);
        assert!(catch_up_cell(&got[0]).contains("n4 not a member"));
    }

    #[test]
    fn leader_changes_are_new_reigns_in_the_window_and_its_recovery() {
        let st = |term: u64, leader: u64| json!({"height": 1, "leader": leader, "term": term});
        let samples = vec![
            sample(1.0, "n1", st(2, 1)),
            sample(3.0, "n2", st(2, 0)),
            sample(4.0, "n2", st(3, 2)),
            sample(6.0, "n1", st(2, 1)),
            sample(8.0, "n3", st(4, 3)),
            sample(30.0, "n3", st(5, 1)),
        ];
        let got = leader_changes(&samples, &[window(2.0, 5.0)], 5.0);
        assert_eq!(
            got,
            vec![Some(2)],
            "terms 3 and 4; the old reign and the one after recovery do not count"
        );
        assert_eq!(leader_changes(&[], &[window(2.0, 5.0)], 5.0), vec![None]);
    }

    #[test]
    fn snapshot_counters_are_summed_over_processes() {
        let st = |restarts: u64, taken: u64| json!({"restarts": restarts, "snapshots_taken": taken, "snapshots_installed": 1, "compactions": taken});
        let samples = vec![
            sample(1.0, "n1", st(0, 2)),
            sample(2.0, "n1", st(0, 3)),
            sample(3.0, "n1", Value::Null),
            sample(4.0, "n1", st(1, 1)),
        ];
        let finals = vec![("n1".to_string(), json!({"status": st(1, 4)}))];
        let got = snapshots(&samples, &finals);
        assert_eq!(
            got,
            vec![NodeSnapshots {
                node: "n1".into(),
                taken: 7,
                installed: 2,
                compactions: 7,
                processes: 2
            }]
        );
    }
}
