//! What one delivery shows by itself: its numbers are contiguous from its
//! `from`, and, in a hashed chain, its hashes bind its blocks.

use crate::ordering::anomaly::{Anomalies, BROKEN_HASH_CHAIN, NON_CONTIGUOUS};
use crate::ordering::block::{data_hash, header_hash, Block, ChainKind};
use serde_json::json;

/// A delivery as it is checked, borrowing the completion's value.
pub(crate) struct Delivery<'a> {
    pub(crate) node: Option<&'a str>,
    pub(crate) kind: ChainKind,
    pub(crate) from: u64,
    pub(crate) blocks: Vec<Block<'a>>,
    pub(crate) is_final: bool,
}

impl Delivery<'_> {
    /// Whether it is a final read of a whole chain (from the chain's first
    /// number).
    pub(crate) fn is_whole_chain(&self) -> bool {
        self.is_final && self.from == self.kind.first_number()
    }
}

/// Contiguity, and the hash chain of a hashed delivery.
pub(crate) fn check_delivery(d: &Delivery, bad: &mut Anomalies) {
    let node = d.node;
    for (i, b) in d.blocks.iter().enumerate() {
        let expected_number = d.from + i as u64;
        if b.number != expected_number {
            bad.add(
                NON_CONTIGUOUS,
                json!({"node": node, "expected": expected_number, "got": b.number}),
            );
        }
        if d.kind == ChainKind::Hashes {
            check_hashes(d, i, bad);
        }
    }
}

/// Block `i` of a hashed delivery: its hash binds its contents and names
/// the block before it.
fn check_hashes(d: &Delivery, i: usize, bad: &mut Anomalies) {
    let (node, b) = (d.node, &d.blocks[i]);
    let Some(h) = &b.header else {
        return;
    };
    let data_matches = match &b.txs {
        Some(txs) => data_hash(txs) == h.data_hash,
        None if d.is_final => {
            bad.add(BROKEN_HASH_CHAIN, json!({"node": node, "block": b.number, "problem": "a final read's block carries no transactions"}));
            true
        }
        // A header: its hash binds data_hash, compared across deliveries.
        None => true,
    };
    if !data_matches || header_hash(b.number, h).as_deref() != Some(h.hash) {
        bad.add(BROKEN_HASH_CHAIN, json!({"node": node, "block": b.number, "problem": "hash does not match the block's contents"}));
    }
    let previous = i.checked_sub(1).map(|p| &d.blocks[p].header);
    let linked = match (previous, b.number) {
        (_, 0) => h.previous_hash.chars().all(|c| c == '0'),
        (None, _) => true,
        (Some(Some(p)), _) => p.hash == h.previous_hash,
        (Some(None), _) => false,
    };
    if !linked {
        bad.add(BROKEN_HASH_CHAIN, json!({"node": node, "block": b.number, "problem": "previous_hash does not name the block before"}));
    }
}
