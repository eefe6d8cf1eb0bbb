//! The ordering checker: total-order broadcast over a hash-chained ledger
//! (`docs/ordering-history.md`). Every delivered block is compared with
//! every other delivery of the same number; the longest final chain of a
//! member is the reference for loss, duplicates and order.
//!
//! Membership (issue 14): a final read marked `"member": false` (on its
//! invoke or its ok value) is of a node a committed configuration removed.
//! It halted, so its chain may be short, but it must be a prefix of the
//! reference (`removed-not-prefix` otherwise); it is never the reference.
//! Final reads without the mark are of members, so a history with no
//! membership change is judged exactly as before.

use crate::history::{for_each_event, Event, EventType, History, HistoryError, Process};
use crate::validate::{Validation, Vocabulary};
use crate::verdict::{Anomaly, CheckResult, Validity};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;
use std::time::Instant;

/// The anomaly kind of a removed node's final chain that is not a prefix
/// of the members' reference chain. Listed only for histories with a
/// removed node's final read.
pub const REMOVED_NOT_PREFIX: &str = "removed-not-prefix";

/// The anomaly kinds, in report order.
pub const KINDS: [&str; 9] = [
    "fork",
    "broken-hash-chain",
    "non-contiguous",
    "duplicate",
    "lost",
    "unsubmitted",
    "failed-present",
    "realtime-order",
    REMOVED_NOT_PREFIX,
];

/// A transaction as delivered, borrowed from the history.
struct Tx<'a> {
    id: &'a str,
    payload: &'a str,
}

/// A delivered block, borrowed from the history. `txs` is `None` for a
/// header-only block (reads during the run record headers only).
struct Block<'a> {
    number: u64,
    previous_hash: &'a str,
    data_hash: &'a str,
    hash: &'a str,
    txs: Option<Vec<Tx<'a>>>,
}

fn parse_block(v: &Value) -> Option<Block<'_>> {
    let s = |name: &str| v.get(name).and_then(Value::as_str);
    let txs = match v.get("txs") {
        None => None,
        Some(txs) => Some(
            txs.as_array()?
                .iter()
                .map(|t| {
                    Some(Tx {
                        id: t.get("id")?.as_str()?,
                        payload: t.get("payload").and_then(Value::as_str).unwrap_or(""),
                    })
                })
                .collect::<Option<Vec<_>>>()?,
        ),
    };
    Some(Block {
        number: v.get("number")?.as_u64()?,
        previous_hash: s("previous_hash")?,
        data_hash: s("data_hash")?,
        hash: s("hash")?,
        txs,
    })
}

fn data_hash(txs: &[Tx]) -> String {
    let mut h = Sha256::new();
    for tx in txs {
        h.update((tx.id.len() as u32).to_be_bytes());
        h.update(tx.id.as_bytes());
        h.update((tx.payload.len() as u32).to_be_bytes());
        h.update(tx.payload.as_bytes());
    }
    hex::encode(h.finalize())
}

fn header_hash(b: &Block) -> Option<String> {
    let prev = hex::decode(b.previous_hash)
        .ok()
        .filter(|p| p.len() == 32)?;
    let data = hex::decode(b.data_hash).ok().filter(|p| p.len() == 32)?;
    let mut h = Sha256::new();
    h.update(b.number.to_be_bytes());
    h.update(prev);
    h.update(data);
    Some(hex::encode(h.finalize()))
}

/// A block as `GET /blocks` returns it (`docs/node-api.md`), with its
/// hashes computed from `txs` (id, payload): for tests and generated
/// histories.
pub fn block_json(number: u64, previous_hash: &str, txs: &[(String, String)]) -> Value {
    let borrowed: Vec<Tx> = txs.iter().map(|(id, payload)| Tx { id, payload }).collect();
    let data = data_hash(&borrowed);
    let block = Block {
        number,
        previous_hash,
        data_hash: &data,
        hash: "",
        txs: None,
    };
    let hash = header_hash(&block).unwrap_or_default();
    json!({"number": number, "previous_hash": previous_hash, "data_hash": data, "hash": hash,
           "txs": txs.iter().map(|(id, payload)| json!({"id": id, "payload": payload})).collect::<Vec<_>>()})
}

struct Anomalies(BTreeMap<&'static str, Anomaly>);

impl Anomalies {
    fn new() -> Self {
        Anomalies(KINDS.iter().map(|k| (*k, Anomaly::new(k))).collect())
    }
    fn add(&mut self, kind: &'static str, example: Value) {
        self.0.get_mut(kind).expect("a known kind").add(example);
    }
}

/// A delivery as it is checked, borrowing the completion's value.
struct Delivery<'a> {
    node: Option<&'a str>,
    from: u64,
    blocks: Vec<Block<'a>>,
    is_final: bool,
}

/// Hash chain and contiguity inside one delivery.
fn check_delivery(d: &Delivery, bad: &mut Anomalies) {
    let node = d.node;
    for (i, b) in d.blocks.iter().enumerate() {
        let expected_number = d.from + i as u64;
        if b.number != expected_number {
            bad.add(
                "non-contiguous",
                json!({"node": node, "expected": expected_number, "got": b.number}),
            );
        }
        let data_matches = match &b.txs {
            Some(txs) => data_hash(txs) == b.data_hash,
            None if d.is_final => {
                bad.add("broken-hash-chain", json!({"node": node, "block": b.number, "problem": "a final read's block carries no transactions"}));
                true
            }
            // A header: its hash binds data_hash, compared across deliveries.
            None => true,
        };
        if !data_matches || header_hash(b).as_deref() != Some(b.hash) {
            bad.add("broken-hash-chain", json!({"node": node, "block": b.number, "problem": "hash does not match the block's contents"}));
        }
        let linked = match (i, b.number) {
            (_, 0) => b.previous_hash.chars().all(|c| c == '0'),
            (0, _) => true,
            _ => d.blocks[i - 1].hash == b.previous_hash,
        };
        if !linked {
            bad.add("broken-hash-chain", json!({"node": node, "block": b.number, "problem": "previous_hash does not name the block before"}));
        }
    }
}

/// A submit as the checker keeps it.
struct Submit {
    /// The transaction id (`None` when the invoke's value is no string).
    id: Option<Box<str>>,
    outcome: EventType,
    invoke_time: u64,
    complete_time: Option<u64>,
    node: Option<Box<str>>,
}

/// A client op between its invoke and its completion.
enum Open {
    /// Index into `Judge::submits`.
    Submit(usize),
    /// A deliver: its op id, node, whether the invoke asked for a final
    /// read and whether it named the node a member.
    Deliver {
        op: usize,
        node: Option<String>,
        is_final: bool,
        member: bool,
    },
}

/// The reference chain (the longest final read of a whole chain of a
/// member): its transaction ids in order with their block numbers, and its
/// block hashes (to judge removed nodes' chains against).
struct Chain {
    node: Option<Box<str>>,
    blocks: usize,
    txs: Vec<(u64, Box<str>)>,
    hashes: Vec<Box<str>>,
}

/// A removed node's final chain: its block hashes, judged at the end
/// against the reference (which may still grow while the history streams).
struct RemovedChain {
    node: Option<Box<str>>,
    hashes: Vec<Box<str>>,
}

/// What the checker keeps while a history streams through it: open ops,
/// submits, the hash first seen for each block number, and the longest
/// final chain's transaction ids. Deliveries are checked as they complete
/// and dropped, so memory grows with the number of submits and blocks, not
/// with the bytes of every delivered block (a 215,000-op run held every
/// final chain and every header as JSON values twice, 3.4 GB).
///
/// Forks are judged against the hash first seen for a number in the order
/// the deliveries completed.
#[derive(Default)]
struct Judge {
    ops: usize,
    open: HashMap<u64, Open>,
    submits: Vec<Submit>,
    seen: HashMap<u64, (Box<str>, Option<Box<str>>)>,
    deliveries: u64,
    reference: Option<Chain>,
    removed: Vec<RemovedChain>,
    bad: Option<Anomalies>,
}

fn is_final(v: &Value) -> bool {
    v.get("final").and_then(Value::as_bool).unwrap_or(false)
}

/// Whether a deliver's value names its node a member: only an explicit
/// `"member": false` says it is not (a removed node's final read).
fn is_member(v: &Value) -> bool {
    v.get("member").and_then(Value::as_bool).unwrap_or(true)
}

impl Judge {
    fn feed(&mut self, e: &Event) {
        let Process::Client(p) = e.process else {
            return;
        };
        if e.kind == EventType::Invoke {
            let open = if e.f == "submit" {
                self.submits.push(Submit {
                    id: e.value.as_str().map(Box::from),
                    outcome: EventType::Info,
                    invoke_time: e.time,
                    complete_time: None,
                    node: e.node.as_deref().map(Box::from),
                });
                Open::Submit(self.submits.len() - 1)
            } else {
                Open::Deliver {
                    op: self.ops,
                    node: e.node.clone(),
                    is_final: is_final(&e.value),
                    member: is_member(&e.value),
                }
            };
            self.ops += 1;
            self.open.insert(p, open);
            return;
        }
        match self.open.remove(&p) {
            Some(Open::Submit(i)) => {
                let s = &mut self.submits[i];
                s.outcome = e.kind;
                if e.kind != EventType::Info {
                    s.complete_time = Some(e.time);
                }
            }
            Some(Open::Deliver {
                op,
                node,
                is_final,
                member,
            }) if e.f == "deliver" && e.kind == EventType::Ok => {
                let member = member && is_member(&e.value);
                self.deliver(op, node.as_deref(), (is_final, member), &e.value);
            }
            _ => {}
        }
    }

    /// Checks one completed delivery; `asked` is (the invoke asked for a
    /// final read, the node is a member).
    fn deliver(&mut self, op: usize, node: Option<&str>, asked: (bool, bool), value: &Value) {
        let (asked_final, member) = asked;
        let bad = self.bad.get_or_insert_with(Anomalies::new);
        let blocks: Option<Vec<Block>> = value
            .get("blocks")
            .and_then(Value::as_array)
            .map(|bs| bs.iter().filter_map(parse_block).collect());
        let Some(blocks) = blocks else {
            bad.add(
                "non-contiguous",
                json!({"node": node, "problem": "deliver result without a blocks list", "op": op}),
            );
            return;
        };
        let from = value
            .get("from")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| blocks.first().map_or(0, |b| b.number));
        let d = Delivery {
            node,
            from,
            blocks,
            is_final: asked_final || is_final(value),
        };
        self.deliveries += 1;
        check_delivery(&d, bad);
        for b in &d.blocks {
            match self.seen.get(&b.number) {
                Some((hash, first)) if **hash != *b.hash => {
                    bad.add("fork", json!({"block": b.number, "nodes": [first, d.node], "hashes": [hash, b.hash]}));
                }
                Some(_) => {}
                None => {
                    self.seen
                        .insert(b.number, (b.hash.into(), d.node.map(Box::from)));
                }
            }
        }
        if d.is_final && d.from == 0 {
            self.final_chain(&d, member);
        }
    }

    /// Keeps a whole final chain: a member's becomes the reference when it
    /// is the longest so far; a removed node's hashes wait for the end.
    fn final_chain(&mut self, d: &Delivery, member: bool) {
        let hashes = || d.blocks.iter().map(|b| Box::from(b.hash)).collect();
        if !member {
            self.removed.push(RemovedChain {
                node: d.node.map(Box::from),
                hashes: hashes(),
            });
            return;
        }
        let longest = self
            .reference
            .as_ref()
            .is_none_or(|r| d.blocks.len() >= r.blocks);
        if longest {
            let txs = d
                .blocks
                .iter()
                .flat_map(|b| b.txs.iter().flatten().map(|t| (b.number, Box::from(t.id))));
            self.reference = Some(Chain {
                node: d.node.map(Box::from),
                blocks: d.blocks.len(),
                txs: txs.collect(),
                hashes: hashes(),
            });
        }
    }

    fn finish(mut self, started: Instant) -> CheckResult {
        let mut bad = self.bad.take().unwrap_or_else(Anomalies::new);
        let mut counts = BTreeMap::new();
        counts.insert("deliveries".to_string(), self.deliveries);
        let valid = self
            .reference
            .as_ref()
            .map(|chain| check_against_chain(&self.submits, chain, &mut bad, &mut counts));
        if let Some(chain) = &self.reference {
            removed_prefixes(&self.removed, chain, &mut bad);
        }
        if !self.removed.is_empty() {
            counts.insert("removed-final-reads".into(), self.removed.len() as u64);
        }
        let any_bad = bad.0.values().any(|a| a.count > 0);
        let (valid, note) = match (any_bad, valid) {
            (true, _) => (Validity::Invalid, None),
            (false, Some(())) => (Validity::Valid, None),
            (false, None) => (
                Validity::Unknown,
                Some(
                    "no final read of a member's whole chain succeeded, so loss and order cannot be judged"
                        .to_string(),
                ),
            ),
        };
        let listed = |k: &&&str| **k != REMOVED_NOT_PREFIX || !self.removed.is_empty();
        CheckResult {
            checker: "ordering".into(),
            valid,
            check_ms: started.elapsed().as_secs_f64() * 1e3,
            counts,
            anomalies: KINDS
                .iter()
                .filter(listed)
                .map(|k| bad.0.remove(k).expect("every kind is present"))
                .collect(),
            artifacts: Vec::new(),
            note,
        }
    }
}

/// Judges an ordering history held in memory.
pub fn check_history(history: &History) -> CheckResult {
    let started = Instant::now();
    let mut judge = Judge::default();
    history.events.iter().for_each(|e| judge.feed(e));
    judge.finish(started)
}

/// Judges an ordering history as it is read, keeping only what the
/// verdict needs (see [`Judge`]); `check_ms` includes reading.
/// The history is validated as it is read (`validate::Validation`), so a
/// history the ordering checker does not understand is refused, not judged.
pub fn check_reader(reader: impl BufRead) -> Result<CheckResult, HistoryError> {
    let started = Instant::now();
    let mut judge = Judge::default();
    let mut validation = Validation::new(Vocabulary::Ordering);
    for_each_event(reader, |line, e| {
        validation.event(line, &e)?;
        judge.feed(&e);
        Ok(())
    })?;
    validation.finish()?;
    Ok(judge.finish(started))
}

fn check_against_chain(
    submits: &[Submit],
    reference: &Chain,
    bad: &mut Anomalies,
    counts: &mut BTreeMap<String, u64>,
) {
    let mut position: HashMap<&str, usize> = HashMap::with_capacity(reference.txs.len());
    for (n, (block, id)) in reference.txs.iter().enumerate() {
        if let Some(first) = position.get(&**id) {
            bad.add(
                "duplicate",
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
                        "lost",
                        json!({"id": id, "node": s.node, "acknowledged_ns": s.complete_time}),
                    );
                }
            }
            EventType::Fail if present => bad.add(
                "failed-present",
                json!({"id": id, "node": s.node, "position": position[id]}),
            ),
            EventType::Info if present => info_found += 1,
            EventType::Info => info_missing += 1,
            _ => {}
        }
    }
    for (id, pos) in &position {
        if !submitted.contains(id) {
            bad.add("unsubmitted", json!({"id": id, "position": pos}));
        }
    }
    realtime_order(submits, &position, bad);
    counts.insert("submitted".into(), submits.len() as u64);
    counts.insert("acknowledged".into(), ok);
    counts.insert("info-found".into(), info_found);
    counts.insert("info-not-found".into(), info_missing);
    counts.insert("chain-transactions".into(), reference.txs.len() as u64);
    counts.insert("chain-blocks".into(), reference.blocks as u64);
}

/// Each removed node's final chain must be a prefix of the members'
/// reference chain: no longer, and the same hash at every number.
fn removed_prefixes(removed: &[RemovedChain], reference: &Chain, bad: &mut Anomalies) {
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
fn realtime_order(submits: &[Submit], position: &HashMap<&str, usize>, bad: &mut Anomalies) {
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
                    "realtime-order",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::read_history;

    fn block(number: u64, prev: &str, ids: &[&str]) -> Value {
        let txs: Vec<(String, String)> = ids
            .iter()
            .map(|i| (i.to_string(), format!("p{i}")))
            .collect();
        block_json(number, prev, &txs)
    }

    fn chain(batches: &[&[&str]]) -> Vec<Value> {
        let mut out = vec![block(0, &"0".repeat(64), &[])];
        for (i, ids) in batches.iter().enumerate() {
            let prev = out[i]["hash"].as_str().unwrap().to_string();
            out.push(block(i as u64 + 1, &prev, ids));
        }
        out
    }

    /// Builds a history: submits as (process, id, outcome) sequentially,
    /// then a final deliver per chain.
    fn history(submits: &[(u64, &str, &str)], chains: &[(&str, Vec<Value>)]) -> History {
        let mut lines = Vec::new();
        let mut t = 0;
        for (p, id, outcome) in submits {
            t += 10;
            lines.push(
                json!({"process": p, "type": "invoke", "f": "submit", "value": id, "time": t}),
            );
            t += 10;
            lines.push(
                json!({"process": p, "type": outcome, "f": "submit", "value": id, "time": t}),
            );
        }
        for (i, (node, blocks)) in chains.iter().enumerate() {
            t += 10;
            let p = 1000 + i;
            lines.push(json!({"process": p, "type": "invoke", "f": "deliver", "value": {"from": 0, "final": true}, "time": t, "node": node}));
            lines.push(json!({"process": p, "type": "ok", "f": "deliver", "value": {"from": 0, "blocks": blocks, "final": true}, "time": t + 1, "node": node}));
        }
        let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
        read_history(text.as_bytes()).unwrap()
    }

    fn kinds(r: &CheckResult) -> Vec<&str> {
        r.anomalies
            .iter()
            .filter(|a| a.count > 0)
            .map(|a| a.kind.as_str())
            .collect()
    }

    #[test]
    fn a_table_of_histories_and_their_anomalies() {
        let ok = [(0, "a", "ok"), (1, "b", "ok")];
        let good = chain(&[&["a"], &["b"]]);
        let mut tampered = good.clone();
        tampered[1]["txs"][0]["payload"] = json!("evil");
        let mut gap = good.clone();
        gap.remove(1);
        let cases: Vec<(&str, History, Vec<&str>)> = vec![
            (
                "valid",
                history(&ok, &[("n1", good.clone()), ("n2", good.clone())]),
                vec![],
            ),
            (
                "lagging node is a prefix",
                history(&ok, &[("n1", good.clone()), ("n2", chain(&[&["a"]]))]),
                vec![],
            ),
            (
                "fork",
                history(
                    &ok,
                    &[("n1", good.clone()), ("n2", chain(&[&["b"], &["a"]]))],
                ),
                vec!["fork", "realtime-order"],
            ),
            (
                "broken hash chain",
                history(&ok, &[("n1", tampered)]),
                vec!["broken-hash-chain"],
            ),
            (
                "gap",
                history(&ok, &[("n1", gap)]),
                vec!["broken-hash-chain", "non-contiguous", "lost"],
            ),
            (
                "duplicate",
                history(&ok, &[("n1", chain(&[&["a"], &["b", "a"]]))]),
                vec!["duplicate"],
            ),
            (
                "lost",
                history(&ok, &[("n1", chain(&[&["a"]]))]),
                vec!["lost"],
            ),
            (
                "unsubmitted",
                history(&ok, &[("n1", chain(&[&["a"], &["b", "ghost"]]))]),
                vec!["unsubmitted"],
            ),
            (
                "failed present",
                history(&[(0, "a", "ok"), (1, "b", "fail")], &[("n1", good.clone())]),
                vec!["failed-present"],
            ),
            (
                "realtime order",
                history(&ok, &[("n1", chain(&[&["b"], &["a"]]))]),
                vec!["realtime-order"],
            ),
            (
                "info found or not is no error",
                history(
                    &[(0, "a", "ok"), (1, "b", "info"), (2, "c", "info")],
                    &[("n1", good.clone())],
                ),
                vec![],
            ),
        ];
        for (name, h, expected) in cases {
            let r = check_history(&h);
            let text: String = h
                .events
                .iter()
                .map(|e| serde_json::to_string(e).unwrap() + "\n")
                .collect();
            let mut streamed = check_reader(text.as_bytes()).unwrap();
            streamed.check_ms = r.check_ms;
            assert_eq!(streamed, r, "{name}: read as a stream, the same result");
            assert_eq!(kinds(&r), expected, "{name}: {:?}", r.anomalies);
            assert_eq!(r.valid == Validity::Valid, expected.is_empty(), "{name}");
        }
        let r = check_history(&history(
            &[(0, "a", "ok"), (1, "b", "info"), (2, "c", "info")],
            &[("n1", good)],
        ));
        assert_eq!(r.counts["info-found"], 1);
        assert_eq!(r.counts["info-not-found"], 1);
    }

    /// Strips the transactions from blocks, as `GET /blocks?headers=true` does.
    fn headers(blocks: &[Value]) -> Vec<Value> {
        blocks
            .iter()
            .map(|b| {
                let mut h = b.clone();
                h.as_object_mut().unwrap().remove("txs");
                h
            })
            .collect()
    }

    /// `history` plus one read of headers during the run, before the final reads.
    fn with_recent_read(base: &History, node: &str, from: u64, blocks: Vec<Value>) -> History {
        let mut lines = vec![
            json!({"process": 500, "type": "invoke", "f": "deliver", "value": {"recent": 20}, "time": 1, "node": node}),
            json!({"process": 500, "type": "ok", "f": "deliver", "value": {"from": from, "blocks": blocks}, "time": 2, "node": node}),
        ];
        for op in base.ops() {
            let final_read = op.f == "deliver";
            let p = op.process;
            lines.push(json!({"process": p, "type": "invoke", "f": op.f, "value": op.input, "time": op.invoke_time + 10, "node": op.node}));
            let kind = match op.outcome {
                EventType::Ok => "ok",
                EventType::Fail => "fail",
                _ => "info",
            };
            let value = if final_read { &op.output } else { &op.input };
            lines.push(json!({"process": p, "type": kind, "f": op.f, "value": value, "time": op.complete_time.unwrap() + 10, "node": op.node}));
        }
        let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
        read_history(text.as_bytes()).unwrap()
    }

    #[test]
    fn header_only_reads_are_compared_with_the_final_chains() {
        let ok = [(0, "a", "ok"), (1, "b", "ok")];
        let good = chain(&[&["a"], &["b"]]);
        let base = history(&ok, &[("n1", good.clone())]);
        let agreeing = with_recent_read(&base, "n2", 1, headers(&good[1..]));
        let r = check_history(&agreeing);
        assert_eq!(r.valid, Validity::Valid, "{:?}", r.anomalies);

        let other = chain(&[&["b"], &["a"]]);
        let forked = with_recent_read(&base, "n2", 1, headers(&other[1..]));
        assert_eq!(kinds(&check_history(&forked)), vec!["fork"]);

        let mut forged = headers(&good[1..2]);
        forged[0]["data_hash"] = json!("00".repeat(32));
        let r = check_history(&with_recent_read(&base, "n2", 1, forged));
        assert!(
            kinds(&r).contains(&"broken-hash-chain"),
            "{:?}",
            r.anomalies
        );

        let stripped = history(&ok, &[("n1", headers(&good))]);
        let r = check_history(&stripped);
        assert!(
            kinds(&r).contains(&"broken-hash-chain"),
            "{:?}",
            r.anomalies
        );
        assert_eq!(r.valid, Validity::Invalid);
    }

    #[test]
    fn a_streamed_history_with_a_bad_line_names_it() {
        let text = "{\"process\":0,\"type\":\"invoke\",\"f\":\"submit\",\"value\":\"a\",\"time\":1}\n{\"process\":0,\"type\":\"ok\",\"f\":\"submit\",\"time\":\"soon\"}\n";
        let e = check_reader(text.as_bytes()).unwrap_err().to_string();
        assert!(e.starts_with("line 2: field `time`"), "{e}");
    }

    /// `history`, with a `member` nemesis change that removed `n3`
    /// before the final reads, and the final reads of `removed` nodes
    /// marked `"member": false` (on the invoke, as the harness writes it).
    fn with_removed(base: &History, removed: &[&str]) -> History {
        let start = json!({"process": "nemesis", "type": "info", "f": "member", "time": 0,
            "value": {"phase": "start", "change": "remove", "targets": ["n3"], "add": [], "remove": ["n3"],
                      "leader": false, "before": {"voters": ["n1", "n2", "n3"], "learners": []}}});
        let end = json!({"process": "nemesis", "type": "info", "f": "member", "time": 1,
            "value": {"phase": "end", "change": "remove", "targets": ["n3"], "committed": true,
                      "after": {"voters": ["n1", "n2"], "learners": []}}});
        let mut lines = vec![start, end];
        for e in &base.events {
            let mut v = serde_json::to_value(e).unwrap();
            v.as_object_mut().unwrap().remove("index");
            v["time"] = json!(e.time + 2);
            let named = e.node.as_deref().is_some_and(|n| removed.contains(&n));
            if e.f == "deliver" && named && e.kind == EventType::Invoke {
                v["value"]["member"] = json!(false);
            }
            lines.push(v);
        }
        let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
        read_history(text.as_bytes()).unwrap()
    }

    #[test]
    fn a_removed_nodes_chain_must_be_a_prefix_of_the_members_chain() {
        let ok = [(0, "a", "ok"), (1, "b", "ok")];
        let good = chain(&[&["a"], &["b"]]);
        let short = chain(&[&["a"]]);
        let diverged = chain(&[&["b"]]);
        let cases: Vec<(&str, History, Vec<&str>, Validity)> = vec![
            (
                "a removed node's shorter chain is a prefix",
                with_removed(
                    &history(&ok, &[("n1", good.clone()), ("n3", short.clone())]),
                    &["n3"],
                ),
                vec![],
                Validity::Valid,
            ),
            (
                "a removed node's diverging chain",
                with_removed(
                    &history(&ok, &[("n1", good.clone()), ("n3", diverged.clone())]),
                    &["n3"],
                ),
                vec!["fork", "removed-not-prefix"],
                Validity::Invalid,
            ),
            (
                "loss is judged against the members, not a removed node's longer chain",
                with_removed(
                    &history(&ok, &[("n3", good.clone()), ("n1", short.clone())]),
                    &["n3"],
                ),
                vec!["lost", "removed-not-prefix"],
                Validity::Invalid,
            ),
            (
                "only a removed node was read: loss cannot be judged",
                with_removed(&history(&ok, &[("n3", good.clone())]), &["n3"]),
                vec![],
                Validity::Unknown,
            ),
            (
                "members' chains still must agree",
                with_removed(
                    &history(&ok, &[("n1", good.clone()), ("n2", diverged.clone())]),
                    &[],
                ),
                vec!["fork"],
                Validity::Invalid,
            ),
        ];
        for (name, h, expected, validity) in cases {
            let r = check_history(&h);
            let text: String = h
                .events
                .iter()
                .map(|e| serde_json::to_string(e).unwrap() + "\n")
                .collect();
            let mut streamed = check_reader(text.as_bytes()).expect(name);
            streamed.check_ms = r.check_ms;
            assert_eq!(streamed, r, "{name}: read as a stream, the same result");
            assert_eq!(kinds(&r), expected, "{name}: {:?}", r.anomalies);
            assert_eq!(r.valid, validity, "{name}: {:?}", r.note);
        }
        let r = check_history(&with_removed(
            &history(&ok, &[("n1", good.clone()), ("n3", diverged)]),
            &["n3"],
        ));
        let a = r
            .anomalies
            .iter()
            .find(|a| a.kind == REMOVED_NOT_PREFIX)
            .unwrap();
        assert_eq!(a.examples[0]["node"], "n3");
        assert_eq!(a.examples[0]["first_difference"], 1);
        assert_eq!(a.examples[0]["member"], "n1");
        let r = check_history(&with_removed(
            &history(&ok, &[("n1", good.clone()), ("n3", short)]),
            &["n3"],
        ));
        assert_eq!(r.counts["removed-final-reads"], 1);
        assert_eq!(
            r.counts["chain-blocks"], 3,
            "the member's chain is the reference"
        );
    }

    #[test]
    fn without_a_removed_node_the_results_are_those_of_before_membership() {
        let ok = [(0, "a", "ok"), (1, "b", "ok")];
        let good = chain(&[&["a"], &["b"]]);
        let plain = check_history(&history(&ok, &[("n1", good.clone())]));
        assert!(plain.anomalies.iter().all(|a| a.kind != REMOVED_NOT_PREFIX));
        assert_eq!(plain.anomalies.len(), KINDS.len() - 1);
        assert!(!plain.counts.contains_key("removed-final-reads"));
        // Member events alone change nothing.
        let mut evented = check_history(&with_removed(&history(&ok, &[("n1", good)]), &[]));
        evented.check_ms = plain.check_ms;
        assert_eq!(evented, plain);
    }

    #[test]
    fn a_member_mark_on_the_ok_value_counts_too() {
        let good = chain(&[&["a"]]);
        let text = [
            json!({"process": 0, "type": "invoke", "f": "submit", "value": "a", "time": 1}),
            json!({"process": 0, "type": "ok", "f": "submit", "value": "a", "time": 2}),
            json!({"process": 9, "type": "invoke", "f": "deliver", "value": {"from": 0, "final": true}, "time": 3, "node": "n1"}),
            json!({"process": 9, "type": "ok", "f": "deliver", "value": {"from": 0, "final": true, "member": false, "blocks": good}, "time": 4, "node": "n1"}),
        ]
        .iter()
        .map(|l| l.to_string() + "\n")
        .collect::<String>();
        let r = check_reader(text.as_bytes()).unwrap();
        assert_eq!(
            r.valid,
            Validity::Unknown,
            "the only chain read is a removed node's"
        );
    }

    /// A history of submits with their own times, (process, id, invoke
    /// ns, outcome, completion ns), then one final read of `chain`.
    fn timed(submits: &[(u64, &str, u64, &str, u64)], chain: Vec<Value>) -> History {
        let mut events: Vec<(u64, Value)> = Vec::new();
        for (p, id, invoked, outcome, completed) in submits {
            events.push((
                *invoked,
                json!({"process": p, "type": "invoke", "f": "submit", "value": id, "time": invoked}),
            ));
            events.push((
                *completed,
                json!({"process": p, "type": outcome, "f": "submit", "value": id, "time": completed}),
            ));
        }
        events.sort_by_key(|(t, _)| *t);
        let t = events.last().map_or(0, |(t, _)| *t);
        events.push((t + 1, json!({"process": 1000, "type": "invoke", "f": "deliver", "value": {"from": 0, "final": true}, "time": t + 1, "node": "n1"})));
        events.push((t + 2, json!({"process": 1000, "type": "ok", "f": "deliver", "value": {"from": 0, "blocks": chain, "final": true}, "time": t + 2, "node": "n1"})));
        let text: String = events.iter().map(|(_, l)| l.to_string() + "\n").collect();
        read_history(text.as_bytes()).unwrap()
    }

    /// Real-time order (issue 25 item 5): if A was acknowledged before B
    /// was invoked, A comes before B in the chain, for every B found in the
    /// chain whatever its outcome; an `info` completion bounds nothing.
    #[test]
    fn real_time_order_holds_for_every_submit_found_in_the_chain() {
        // (name, submits, chain, the (acknowledged first, invoked after)
        // pairs reported, other anomaly kinds)
        type Case<'a> = (
            &'a str,
            Vec<(u64, &'a str, u64, &'a str, u64)>,
            Vec<Value>,
            Vec<(&'a str, &'a str)>,
            Vec<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                "an info submit invoked after an ack, placed before it",
                vec![(0, "a", 10, "ok", 20), (1, "b", 30, "info", 40)],
                chain(&[&["b"], &["a"]]),
                vec![("a", "b")],
                vec![],
            ),
            (
                "an info submit invoked after an ack, placed after it",
                vec![(0, "a", 10, "ok", 20), (1, "b", 30, "info", 40)],
                chain(&[&["a"], &["b"]]),
                vec![],
                vec![],
            ),
            (
                "the same in one block: the order inside a block counts",
                vec![(0, "a", 10, "ok", 20), (1, "b", 30, "info", 40)],
                chain(&[&["b", "a"]]),
                vec![("a", "b")],
                vec![],
            ),
            (
                "an info submit invoked before the ack may come first",
                vec![(0, "a", 10, "ok", 40), (1, "b", 30, "info", 50)],
                chain(&[&["b"], &["a"]]),
                vec![],
                vec![],
            ),
            (
                "an info completion bounds nothing",
                vec![(0, "a", 10, "info", 20), (1, "b", 30, "ok", 40)],
                chain(&[&["b"], &["a"]]),
                vec![],
                vec![],
            ),
            (
                "an info submit's invoke still bounds: an ack before it, after it",
                vec![
                    (0, "a", 10, "info", 20),
                    (1, "b", 30, "ok", 40),
                    (2, "c", 50, "ok", 60),
                ],
                chain(&[&["c"], &["a"], &["b"]]),
                vec![("b", "c")],
                vec![],
            ),
            (
                "a failed submit found in the chain is bounded by its invoke too",
                vec![(0, "a", 10, "ok", 20), (1, "b", 30, "fail", 40)],
                chain(&[&["b"], &["a"]]),
                vec![("a", "b")],
                vec!["failed-present"],
            ),
            (
                "acknowledged submits, as before",
                vec![(0, "a", 10, "ok", 20), (1, "b", 30, "ok", 40)],
                chain(&[&["b"], &["a"]]),
                vec![("a", "b")],
                vec![],
            ),
            (
                "every submit placed too early is named",
                vec![
                    (0, "a", 10, "ok", 20),
                    (1, "x", 5, "info", 25),
                    (2, "b", 30, "info", 40),
                    (3, "c", 50, "ok", 60),
                    (4, "d", 70, "info", 80),
                ],
                chain(&[&["d", "b"], &["x", "c"], &["a"]]),
                vec![("a", "d"), ("a", "b"), ("a", "c")],
                vec![],
            ),
            (
                "an info submit not found in the chain takes no part",
                vec![(0, "a", 10, "ok", 20), (1, "b", 30, "info", 40)],
                chain(&[&["a"]]),
                vec![],
                vec![],
            ),
        ];
        for (name, submits, blocks, pairs, others) in cases {
            let h = timed(&submits, blocks);
            let r = check_history(&h);
            let order = r
                .anomalies
                .iter()
                .find(|a| a.kind == "realtime-order")
                .unwrap();
            let mut named: Vec<(&str, &str)> = order
                .examples
                .iter()
                .map(|e| {
                    (
                        e["acknowledged_first"].as_str().unwrap(),
                        e["invoked_after"].as_str().unwrap(),
                    )
                })
                .collect();
            let (mut expected, mut got) = (pairs.clone(), std::mem::take(&mut named));
            expected.sort_unstable();
            got.sort_unstable();
            assert_eq!(got, expected, "{name}: {:?}", order.examples);
            assert_eq!(order.count, pairs.len() as u64, "{name}");
            let mut kinds_expected = others.clone();
            if !pairs.is_empty() {
                kinds_expected.push("realtime-order");
            }
            assert_eq!(kinds(&r), kinds_expected, "{name}: {:?}", r.anomalies);
            let validity = if kinds_expected.is_empty() {
                Validity::Valid
            } else {
                Validity::Invalid
            };
            assert_eq!(r.valid, validity, "{name}");
        }
    }

    /// The one-pass real-time check flags exactly the submits a check of
    /// every pair flags, on random small histories.
    #[test]
    fn real_time_order_flags_what_every_pair_would() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(25);
        for case in 0..2_000 {
            let n = rng.gen_range(1..12);
            let outcomes = [EventType::Ok, EventType::Info, EventType::Fail];
            let submits: Vec<Submit> = (0..n)
                .map(|i| {
                    let invoke_time = rng.gen_range(0..100);
                    let outcome = outcomes[rng.gen_range(0..3)];
                    Submit {
                        id: Some(format!("t{i}").into()),
                        outcome,
                        invoke_time,
                        complete_time: (outcome != EventType::Info)
                            .then(|| invoke_time + rng.gen_range(0..30)),
                        node: None,
                    }
                })
                .collect();
            let ids: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
            // A random order of a random subset: the chain.
            let mut chain: Vec<usize> = (0..n).filter(|_| rng.gen_bool(0.8)).collect();
            for i in (1..chain.len()).rev() {
                chain.swap(i, rng.gen_range(0..=i));
            }
            let position: HashMap<&str, usize> = chain
                .iter()
                .enumerate()
                .map(|(p, &i)| (ids[i].as_str(), p))
                .collect();
            let mut bad = Anomalies::new();
            realtime_order(&submits, &position, &mut bad);
            let a = &bad.0["realtime-order"];
            let mut flagged: Vec<&str> = a
                .examples
                .iter()
                .map(|e| e["invoked_after"].as_str().unwrap())
                .collect();
            let mut expected: Vec<&str> = Vec::new();
            for b in &submits {
                let Some(pb) = position.get(b.id.as_deref().unwrap()) else {
                    continue;
                };
                let before_some_ack = submits.iter().any(|a| {
                    let acked = a.outcome == EventType::Ok && a.complete_time < Some(b.invoke_time);
                    acked
                        && position
                            .get(a.id.as_deref().unwrap())
                            .is_some_and(|pa| pa > pb)
                });
                if before_some_ack {
                    expected.push(b.id.as_deref().unwrap());
                }
            }
            flagged.sort_unstable();
            expected.sort_unstable();
            assert_eq!(flagged, expected, "case {case}");
            assert_eq!(a.count as usize, expected.len(), "case {case}");
        }
    }

    #[test]
    fn without_a_final_read_the_verdict_is_unknown() {
        let r = check_history(&history(&[(0, "a", "ok")], &[]));
        assert_eq!(r.valid, Validity::Unknown);
        assert!(r.note.is_some());
    }
}
