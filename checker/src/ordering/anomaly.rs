//! The ordering checker's anomaly kinds and their tally. A leaf: every
//! other part of the checker reports through it.

use crate::verdict::Anomaly;
use serde_json::Value;
use std::collections::BTreeMap;

/// Two deliveries of one number with different contents.
pub const FORK: &str = "fork";
/// A hashed chain's hashes do not bind its blocks (hashed chains only).
pub const BROKEN_HASH_CHAIN: &str = "broken-hash-chain";
/// A delivery's numbers are not `from`, `from + 1`, ….
pub const NON_CONTIGUOUS: &str = "non-contiguous";
/// One transaction id at two places of the reference chain.
pub const DUPLICATE: &str = "duplicate";
/// Acknowledged, absent from the reference chain.
pub const LOST: &str = "lost";
/// In the reference chain, never submitted.
pub const UNSUBMITTED: &str = "unsubmitted";
/// Recorded `fail`, yet in the reference chain.
pub const FAILED_PRESENT: &str = "failed-present";
/// Acknowledged before another was invoked, yet ordered after it.
pub const REALTIME_ORDER: &str = "realtime-order";
/// The anomaly kind of a removed node's final chain that is not a prefix
/// of the members' reference chain. Listed only for histories with a
/// removed node's final read.
pub const REMOVED_NOT_PREFIX: &str = "removed-not-prefix";
/// A submit acknowledged at a position (its `ok` value's `position`) that
/// the reference chain does not hold it at. Listed only for histories
/// whose acknowledgements record positions.
pub const ACK_POSITION_MISMATCH: &str = "ack-position-mismatch";

/// The anomaly kinds, in report order.
pub const KINDS: [&str; 10] = [
    FORK,
    BROKEN_HASH_CHAIN,
    NON_CONTIGUOUS,
    DUPLICATE,
    LOST,
    UNSUBMITTED,
    FAILED_PRESENT,
    REALTIME_ORDER,
    REMOVED_NOT_PREFIX,
    ACK_POSITION_MISMATCH,
];

/// Every kind's count and examples so far.
pub(crate) struct Anomalies(BTreeMap<&'static str, Anomaly>);

impl Anomalies {
    /// None found yet.
    pub(crate) fn new() -> Self {
        Anomalies(KINDS.iter().map(|k| (*k, Anomaly::new(k))).collect())
    }

    /// Counts one anomaly of `kind`, one of [`KINDS`].
    ///
    /// # Panics
    ///
    /// If `kind` is not one of [`KINDS`] (a programmer error).
    pub(crate) fn add(&mut self, kind: &'static str, example: Value) {
        self.0.get_mut(kind).expect("a known kind").add(example);
    }

    /// Whether any anomaly was found.
    pub(crate) fn any(&self) -> bool {
        self.0.values().any(|a| a.count > 0)
    }

    /// The kinds `listed` keeps, in report order.
    pub(crate) fn into_listed(mut self, listed: impl Fn(&str) -> bool) -> Vec<Anomaly> {
        KINDS
            .iter()
            .filter(|k| listed(k))
            .map(|k| self.0.remove(k).expect("every kind is present"))
            .collect()
    }

    /// The tally of one kind (tests).
    #[cfg(test)]
    pub(crate) fn get(&self, kind: &str) -> &Anomaly {
        &self.0[kind]
    }
}
