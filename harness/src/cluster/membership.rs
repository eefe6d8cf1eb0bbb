//! The cluster's membership as the harness knows it: every node started in
//! this run — the founders and the nodes the `member` nemesis added — in
//! the order they were started, with its client URL, its raft id and its
//! standing. The `member` nemesis writes it; workers, final reads, the
//! recovery table and the report read it.
//!
//! Node names are `n<id>`: founders `n1..=nN`, added nodes take the next
//! unused id, so a name is never reused within a run.

use std::sync::{Arc, RwLock};

/// Where a node stands in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Standing {
    /// A voter.
    Voter,
    /// Started and added as a learner, not yet promoted.
    Learner,
    /// Started but its `add` is not (yet) known to be committed.
    Joining,
    /// A committed configuration removed it: it halts, its chain must be a
    /// prefix of the members' chains.
    Removed,
}

impl Standing {
    /// Whether the node is in the configuration (voter or learner).
    pub fn is_member(self) -> bool {
        matches!(self, Standing::Voter | Standing::Learner)
    }
}

/// One node started in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `n<id>`.
    pub name: String,
    /// Base URL of its client API.
    pub url: String,
    /// Its raft id.
    pub id: u64,
    /// Where it stands now.
    pub standing: Standing,
}

/// The shared registry (cheap to clone: one lock inside).
#[derive(Debug, Clone, Default)]
pub struct Membership(Arc<RwLock<Vec<Entry>>>);

impl Membership {
    /// The founders, voters all: `(name, url)` with names `n1..=nN`.
    pub fn founders(nodes: &[(String, String)]) -> Membership {
        let entries = nodes
            .iter()
            .enumerate()
            .map(|(i, (name, url))| Entry {
                name: name.clone(),
                url: url.clone(),
                id: i as u64 + 1,
                standing: Standing::Voter,
            })
            .collect();
        Membership(Arc::new(RwLock::new(entries)))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Entry>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Entry>> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Every node started in this run, in start order.
    pub fn all(&self) -> Vec<Entry> {
        self.read().clone()
    }

    /// Names of the nodes in the configuration now (voters and learners).
    pub fn members(&self) -> Vec<String> {
        self.read()
            .iter()
            .filter(|e| e.standing.is_member())
            .map(|e| e.name.clone())
            .collect()
    }

    /// Names of the voters now.
    #[cfg(test)]
    pub fn voters(&self) -> Vec<String> {
        self.with_standing(Standing::Voter)
    }

    /// Names of the nodes with `standing`.
    #[cfg(test)]
    pub fn with_standing(&self, standing: Standing) -> Vec<String> {
        self.read()
            .iter()
            .filter(|e| e.standing == standing)
            .map(|e| e.name.clone())
            .collect()
    }

    /// A node's entry.
    pub fn get(&self, name: &str) -> Option<Entry> {
        self.read().iter().find(|e| e.name == name).cloned()
    }

    /// The id the next added node gets: one above every id used so far.
    pub fn next_id(&self) -> u64 {
        self.read().iter().map(|e| e.id).max().unwrap_or(0) + 1
    }

    /// Records a node just started to join (`Joining`).
    pub fn started(&self, name: &str, url: &str, id: u64) {
        let mut all = self.write();
        if all.iter().all(|e| e.name != name) {
            all.push(Entry {
                name: name.to_string(),
                url: url.to_string(),
                id,
                standing: Standing::Joining,
            });
        }
    }

    /// Sets a node's standing; false when the node is unknown.
    pub fn set(&self, name: &str, standing: Standing) -> bool {
        let mut all = self.write();
        match all.iter_mut().find(|e| e.name == name) {
            Some(e) => {
                e.standing = standing;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Membership {
        Membership::founders(&[
            ("n1".into(), "http://a".into()),
            ("n2".into(), "http://b".into()),
            ("n3".into(), "http://c".into()),
        ])
    }

    #[test]
    fn founders_are_voters_and_ids_follow_names() {
        let m = three();
        assert_eq!(m.voters(), ["n1", "n2", "n3"]);
        assert_eq!(m.get("n2").unwrap().id, 2);
        assert_eq!(m.next_id(), 4);
    }

    #[test]
    fn a_joining_node_is_not_a_member_until_added_and_removed_ones_leave() {
        let m = three();
        m.started("n4", "http://d", 4);
        assert_eq!(m.members(), ["n1", "n2", "n3"]);
        assert!(m.set("n4", Standing::Learner));
        assert!(m.set("n1", Standing::Removed));
        assert_eq!(m.members(), ["n2", "n3", "n4"]);
        assert_eq!(m.voters(), ["n2", "n3"]);
        assert_eq!(m.with_standing(Standing::Removed), ["n1"]);
        assert_eq!(m.next_id(), 5, "ids are never reused");
        assert!(!m.set("n9", Standing::Voter));
        assert_eq!(m.all().len(), 4);
    }
}
