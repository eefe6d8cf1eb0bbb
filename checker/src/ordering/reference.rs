//! What the reference chain (the longest final read of a member's whole
//! chain) shows against the submits: duplicates, loss, unsubmitted and
//! failed-but-present transactions, real-time order, the positions
//! acknowledgements named, and removed nodes' chains as its prefixes.

use crate::history::EventType;
use crate::ordering::anomaly::{
    Anomalies, ACK_POSITION_MISMATCH, DUPLICATE, FAILED_PRESENT, LOST, REALTIME_ORDER,
    REMOVED_NOT_PREFIX, UNSUBMITTED,
};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU64;
use std::ops::Range;

/// A submit as the checker keeps it.
pub(crate) struct Submit {
    /// The transaction id (`None` when the invoke's value is no string).
    pub(crate) id: Option<Box<str>>,
    pub(crate) outcome: EventType,
    pub(crate) invoke_time: u64,
    pub(crate) complete_time: Option<u64>,
    pub(crate) node: Option<Box<str>>,
    /// The number of the block its acknowledgement named (`ok` value
    /// `{"id", "position"}`): a stream sequence in a `positions` chain.
    /// Invariant: a position is at least 1 (`NonZeroU64` keeps the field
    /// as small as a plain number: one is kept per submit).
    pub(crate) position: Option<NonZeroU64>,
}

/// The reference chain (the longest final read of a whole chain of a
/// member): its transaction ids in order with their block numbers, and its
/// blocks' identities (hashes, or digests of a `positions` chain) to judge
/// removed nodes' chains against.
pub(crate) struct Chain {
    pub(crate) node: Option<Box<str>>,
    pub(crate) blocks: usize,
    pub(crate) txs: Vec<(u64, Box<str>)>,
    pub(crate) hashes: Vec<Box<str>>,
}

/// A removed node's final chain: its blocks' identities, judged at the end
/// against the reference (which may still grow while the history streams).
pub(crate) struct RemovedChain {
    pub(crate) node: Option<Box<str>>,
    pub(crate) hashes: Vec<Box<str>>,
}

/// Judges the submits against the reference chain, adding its counts.
pub(crate) fn check_against_chain(
    submits: &[Submit],
    reference: &Chain,
    bad: &mut Anomalies,
    counts: &mut BTreeMap<String, u64>,
) {
    let mut position: HashMap<&str, usize> = HashMap::with_capacity(reference.txs.len());
    for (n, (block, id)) in reference.txs.iter().enumerate() {
        if let Some(first) = position.get(&**id) {
            bad.add(
                DUPLICATE,
                json!({"id": id, "block": block, "first_position": first, "position": n}),
            );
        } else {
            position.insert(id, n);
        }
    }
    let submitted: HashSet<&str> = submits.iter().filter_map(|s| s.id.as_deref()).collect();
    let (mut ok, mut info_found, mut info_missing) = (0u64, 0u64, 0u64);
    for s in submits {
        let Some(id) = s.id.as_deref() else {
            continue;
        };
        let present = position.contains_key(id);
        match s.outcome {
            EventType::Ok => {
                ok += 1;
                if !present {
                    bad.add(
                        LOST,
                        json!({"id": id, "node": s.node, "acknowledged_ns": s.complete_time}),
                    );
                }
            }
            EventType::Fail if present => bad.add(
                FAILED_PRESENT,
                json!({"id": id, "node": s.node, "position": position[id],
                       "block": reference.txs[position[id]].0}),
            ),
            EventType::Info if present => info_found += 1,
            EventType::Info => info_missing += 1,
            _ => {}
        }
    }
    // In chain order, so that the examples are the same on every run.
    for (pos, (block, id)) in reference.txs.iter().enumerate() {
        if position.get(&**id) == Some(&pos) && !submitted.contains(&**id) {
            bad.add(
                UNSUBMITTED,
                json!({"id": id, "position": pos, "block": block}),
            );
        }
    }
    realtime_order(submits, &position, bad);
    let with_position = acknowledged_positions(submits, reference, &position, bad);
    if with_position > 0 {
        counts.insert("acknowledged-with-position".into(), with_position);
    }
    counts.insert("submitted".into(), submits.len() as u64);
    counts.insert("acknowledged".into(), ok);
    counts.insert("info-found".into(), info_found);
    counts.insert("info-not-found".into(), info_missing);
    counts.insert("chain-transactions".into(), reference.txs.len() as u64);
    counts.insert("chain-blocks".into(), reference.blocks as u64);
}

/// Each acknowledgement that named a position (the number of the block
/// holding it: a NATS stream sequence) must find its transaction there in
/// the reference chain. Anything else is an `ack-position-mismatch`: the
/// position holds other transactions (a sequence given to another message
/// after a loss), or it is beyond the chain's end while the transaction is
/// elsewhere. A transaction absent from the chain whose position is beyond
/// the end is `lost` only. Returns how many acknowledgements named one.
fn acknowledged_positions(
    submits: &[Submit],
    reference: &Chain,
    position: &HashMap<&str, usize>,
    bad: &mut Anomalies,
) -> u64 {
    let acks = submits
        .iter()
        .filter_map(|s| match (s.outcome, &s.id, s.position) {
            (EventType::Ok, Some(id), Some(p)) => Some((s, &**id, p.get())),
            _ => None,
        });
    let mut at: Option<HashMap<u64, Range<usize>>> = None;
    let mut named = 0;
    for (s, id, p) in acks {
        named += 1;
        let at = at.get_or_insert_with(|| block_ranges(&reference.txs));
        let held = at.get(&p).map_or(&[][..], |r| &reference.txs[r.clone()]);
        if held.iter().any(|(_, t)| **t == *id) {
            continue;
        }
        let found_at = position.get(id).map(|&i| reference.txs[i].0);
        if held.is_empty() && found_at.is_none() {
            continue;
        }
        let holds: Vec<&str> = held.iter().map(|(_, t)| &**t).collect();
        bad.add(
            ACK_POSITION_MISMATCH,
            json!({"id": id, "node": s.node, "acknowledged_position": p,
                   "acknowledged_ns": s.complete_time, "holds": holds, "found_at": found_at,
                   "chain_of": reference.node}),
        );
    }
    named
}

/// Where each block's transactions are in a chain's list (the first run of
/// a number that comes twice: a non-contiguous chain, reported already).
fn block_ranges(txs: &[(u64, Box<str>)]) -> HashMap<u64, Range<usize>> {
    let mut at: HashMap<u64, Range<usize>> = HashMap::new();
    let mut start = 0;
    for end in 1..=txs.len() {
        if end == txs.len() || txs[end].0 != txs[start].0 {
            at.entry(txs[start].0).or_insert(start..end);
            start = end;
        }
    }
    at
}

/// Each removed node's final chain must be a prefix of the members'
/// reference chain: no longer, and the same hash at every number.
pub(crate) fn removed_prefixes(removed: &[RemovedChain], reference: &Chain, bad: &mut Anomalies) {
    for r in removed {
        let differs = r
            .hashes
            .iter()
            .zip(&reference.hashes)
            .position(|(a, b)| a != b);
        let problem = match differs {
            Some(n) => format!("block {n} differs from the members' chain"),
            None if r.hashes.len() > reference.hashes.len() => format!(
                "{} blocks, longer than the members' longest chain of {}",
                r.hashes.len(),
                reference.hashes.len()
            ),
            None => continue,
        };
        bad.add(
            REMOVED_NOT_PREFIX,
            json!({"node": r.node, "blocks": r.hashes.len(), "member": reference.node,
                   "member_blocks": reference.hashes.len(), "first_difference": differs,
                   "problem": problem}),
        );
    }
}

/// Real-time order: if A was acknowledged before B was invoked, A comes
/// before B in the chain. Every submit found in the chain takes part: its
/// invoke bounds it whatever its outcome (it cannot take effect before it
/// was sent), but only an `ok` completion bounds (an `info` op may take
/// effect any time after its invoke; a `fail` found present is its own
/// anomaly). Each B placed before such an A is reported once, with the
/// earliest-acknowledged A after it in the chain as the witness.
///
/// One pass from the end of the chain keeps the earliest acknowledgement
/// among transactions ordered later: O(n log n) for the sort, never
/// quadratic.
pub(crate) fn realtime_order(
    submits: &[Submit],
    position: &HashMap<&str, usize>,
    bad: &mut Anomalies,
) {
    let mut found: Vec<(usize, &Submit)> = submits
        .iter()
        .filter_map(|s| {
            s.id.as_deref()
                .and_then(|id| position.get(id))
                .map(|p| (*p, s))
        })
        .collect();
    found.sort_by_key(|(p, _)| std::cmp::Reverse(*p));
    let mut earliest_later: Option<(u64, &Submit)> = None;
    let mut at = 0;
    while at < found.len() {
        // Submits of one id share a position: none is "later" than another.
        let pos = found[at].0;
        let same = found[at..].iter().take_while(|(p, _)| *p == pos).count();
        let group = &found[at..at + same];
        for (_, b) in group {
            if let Some((acked, a)) = earliest_later.filter(|(t, _)| *t < b.invoke_time) {
                bad.add(
                    REALTIME_ORDER,
                    json!({"acknowledged_first": a.id, "acknowledged_ns": acked,
                           "invoked_after": b.id, "invoked_ns": b.invoke_time,
                           "outcome_of_later_invoked": b.outcome,
                           "position_of_later_invoked": pos}),
                );
            }
        }
        for (_, a) in group {
            let acked = a.complete_time.filter(|_| a.outcome == EventType::Ok);
            if let Some(t) = acked.filter(|t| earliest_later.is_none_or(|(e, _)| *t < e)) {
                earliest_later = Some((t, a));
            }
        }
        at += same;
    }
}
