//! The Raft situations a run reached, counted from its traces.

use std::collections::BTreeMap;

/// Every coverage name a report holds, with what it counts.
pub const COVERAGE: [(&str, &str); 22] = [
    ("elections_started", "a node became candidate"),
    ("pre_votes_lost", "a pre-candidate went back to follower"),
    ("votes_won", "a node became leader"),
    (
        "check_quorum_step_downs",
        "a leader stepped down for lack of a quorum",
    ),
    ("leader_changes", "a leader other than the previous one"),
    (
        "follower_truncations",
        "a persist cut a conflicting suffix of a node's log",
    ),
    ("truncated_entries", "entries cut, summed over truncations"),
    (
        "truncation_depth_max",
        "the most entries one truncation cut",
    ),
    ("restarts", "a node started again after its first start"),
    (
        "restarts_with_uncommitted_tail",
        "a restarted node held entries beyond every commit seen",
    ),
    (
        "earlier_term_commits",
        "a leader committed an entry of an earlier term (Figure 8's shape)",
    ),
    ("snapshots_taken", "a node took a snapshot"),
    ("snapshots_sent", "a leader sent a snapshot"),
    ("snapshots_installed", "a node installed a snapshot"),
    ("compactions", "a node compacted its log"),
    ("conf_changes", "a configuration change was applied"),
    (
        "digests_compared",
        "a state digest compared with the first one at its index",
    ),
    (
        "digest_indices_across_nodes",
        "an index whose digests from two or more nodes were compared",
    ),
    (
        "digests_across_restarts",
        "a node's digest compared with its own from an earlier process",
    ),
    (
        "applies_checked",
        "an apply checked to follow the one before (or the start's, or a snapshot's index)",
    ),
    (
        "crash_points_fired",
        "an armed crash point fired in a node (docs/crash-points.md)",
    ),
    (
        "sends_checked",
        "an append response, vote granted or vote request checked against the persists before it",
    ),
];

/// Counts by name; every name of [`COVERAGE`] is present.
#[derive(Debug)]
pub(crate) struct Coverage(BTreeMap<String, u64>);

impl Default for Coverage {
    fn default() -> Self {
        Coverage(
            COVERAGE
                .iter()
                .map(|(name, _)| (name.to_string(), 0))
                .collect(),
        )
    }
}

impl Coverage {
    /// Adds `count` to `name`.
    ///
    /// # Panics
    ///
    /// When `name` is not in [`COVERAGE`]: a programmer error.
    pub fn add(&mut self, name: &str, count: u64) {
        let slot = self.0.get_mut(name);
        *slot.unwrap_or_else(|| panic!("coverage name {name:?} not in COVERAGE")) += count;
    }

    /// Raises `name` to at least `value`.
    pub fn raise(&mut self, name: &str, value: u64) {
        self.add(name, 0);
        let slot = self.0.get_mut(name).expect("checked by add");
        *slot = (*slot).max(value);
    }

    /// The counts.
    pub fn into_map(self) -> BTreeMap<String, u64> {
        self.0
    }
}
