//! Grudges: who drops whose packets in a partition (Jepsen's word).
//! Pure functions of node names; the partition and lag faults pick one and
//! the runtime enforces it.

use crate::runtime::verbs::Grudge;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The shapes of partition the nemesis draws from (named in the history's
/// `grudge_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrudgeKind {
    /// One node, drawn at random, cut off from everyone else.
    IsolateOne,
    /// The leader cut off (a random node when there is none).
    IsolateLeader,
    /// [`halves`].
    Halves,
    /// [`majorities_ring`] (5 nodes or more).
    MajoritiesRing,
    /// [`bridge`] (5 nodes or more).
    Bridge,
}

impl GrudgeKind {
    /// The kinds that fit a cluster of `nodes`, in the order the nemesis
    /// draws from (the order is part of the seeded schedule).
    pub fn for_nodes(nodes: usize) -> Vec<GrudgeKind> {
        let mut kinds = vec![
            GrudgeKind::IsolateOne,
            GrudgeKind::IsolateLeader,
            GrudgeKind::Halves,
        ];
        if nodes >= 5 {
            kinds.extend([GrudgeKind::MajoritiesRing, GrudgeKind::Bridge]);
        }
        kinds
    }
}

fn cut(grudge: &mut Grudge, a: &[String], b: &[String]) {
    for x in a {
        for y in b {
            grudge.entry(x.clone()).or_default().insert(y.clone());
            grudge.entry(y.clone()).or_default().insert(x.clone());
        }
    }
}

/// `node` cut off from everyone else.
pub fn isolate(node: &str, nodes: &[String]) -> Grudge {
    let others: Vec<String> = nodes.iter().filter(|n| *n != node).cloned().collect();
    let mut g = Grudge::new();
    cut(&mut g, &[node.to_string()], &others);
    g
}

/// The first `len / 2` nodes of `order` against the rest.
pub fn halves(order: &[String]) -> Grudge {
    let (a, b) = order.split_at(order.len() / 2);
    let mut g = Grudge::new();
    cut(&mut g, a, b);
    g
}

/// Every node sees a majority (itself and its ring neighbours), but no two
/// nodes see the same majority. Needs at least 5 nodes.
pub fn majorities_ring(order: &[String]) -> Grudge {
    let n = order.len();
    // A node sees itself and `reach` neighbours each way: 1 + 2 * reach
    // must be a majority.
    let reach = (n / 2).div_ceil(2).max(1);
    let mut g = Grudge::new();
    for i in 0..n {
        for j in 0..n {
            let d = (i + n - j) % n;
            let ring = d.min(n - d);
            if i != j && ring > reach {
                g.entry(order[i].clone())
                    .or_default()
                    .insert(order[j].clone());
            }
        }
    }
    g
}

/// Two halves that cannot talk, and one node in the middle that talks to
/// both. Needs at least 3 nodes.
pub fn bridge(order: &[String]) -> Grudge {
    let mid = order.len() / 2;
    let mut g = Grudge::new();
    cut(&mut g, &order[..mid], &order[mid + 1..]);
    g
}

/// The nodes any rule of the grudge touches.
pub fn targets(g: &Grudge) -> BTreeSet<String> {
    g.iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, _)| k.clone())
        .collect()
}

/// The isolated side of a partition: the nodes that no longer see a
/// majority of `nodes` (themselves included). When every node still sees
/// a majority (a ring of majorities, a bridge), every node the grudge
/// touches.
pub fn isolated_side(g: &Grudge, nodes: &[String]) -> Vec<String> {
    let minority: Vec<String> = nodes
        .iter()
        .filter(|a| {
            let dropped = g.get(*a).map_or(0, |s| s.len());
            nodes.len() - dropped <= nodes.len() / 2
        })
        .cloned()
        .collect();
    if minority.is_empty() {
        targets(g).into_iter().collect()
    } else {
        minority
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    fn sees(g: &Grudge, a: &str, b: &str) -> bool {
        !g.get(a).is_some_and(|s| s.contains(b))
    }

    #[test]
    fn isolate_cuts_both_directions() {
        let g = isolate("n2", &names(3));
        assert!(!sees(&g, "n2", "n1") && !sees(&g, "n1", "n2") && !sees(&g, "n3", "n2"));
        assert!(sees(&g, "n1", "n3"));
    }

    #[test]
    fn every_node_in_a_majorities_ring_sees_a_distinct_majority() {
        for n in [5, 7] {
            let order = names(n);
            let g = majorities_ring(&order);
            let mut views = BTreeSet::new();
            for a in &order {
                let view: BTreeSet<&String> = order.iter().filter(|b| sees(&g, a, b)).collect();
                assert!(view.len() > n / 2, "{a} sees {} of {n}", view.len());
                assert!(views.insert(view), "two nodes see the same majority");
            }
        }
    }

    #[test]
    fn a_bridge_connects_two_halves_through_one_node() {
        let order = names(5);
        let g = bridge(&order);
        assert!(!sees(&g, "n1", "n4") && !sees(&g, "n5", "n2"));
        assert!(order.iter().all(|b| sees(&g, "n3", b)));
        assert_eq!(halves(&order).get("n1").unwrap().len(), 3);
    }

    #[test]
    fn the_isolated_side_is_the_minority_or_everyone_touched() {
        assert_eq!(isolated_side(&isolate("n2", &names(3)), &names(3)), ["n2"]);
        assert_eq!(isolated_side(&halves(&names(5)), &names(5)), ["n1", "n2"]);
        assert_eq!(isolated_side(&halves(&names(4)), &names(4)).len(), 4);
        assert_eq!(isolated_side(&bridge(&names(5)), &names(5)).len(), 4);
        assert_eq!(
            isolated_side(&majorities_ring(&names(5)), &names(5)).len(),
            5
        );
    }
}
