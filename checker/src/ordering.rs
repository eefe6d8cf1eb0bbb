//! The ordering checker: total-order broadcast over a hash-chained ledger
//! (`docs/ordering-history.md`). Every delivered block is compared with
//! every other delivery of the same number; the longest final chain is the
//! reference for loss, duplicates and order.

use crate::history::{EventType, History, Op};
use crate::verdict::{Anomaly, CheckResult, Validity};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// The anomaly kinds, in report order.
pub const KINDS: [&str; 8] = [
    "fork",
    "broken-hash-chain",
    "non-contiguous",
    "duplicate",
    "lost",
    "unsubmitted",
    "failed-present",
    "realtime-order",
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

struct Delivery<'a> {
    op: &'a Op,
    from: u64,
    blocks: Vec<Block<'a>>,
    is_final: bool,
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

fn deliveries<'a>(ops: &'a [Op], bad: &mut Anomalies) -> Vec<Delivery<'a>> {
    let mut out = Vec::new();
    for op in ops
        .iter()
        .filter(|o| o.f == "deliver" && o.outcome == EventType::Ok)
    {
        let blocks: Option<Vec<Block>> = op
            .output
            .get("blocks")
            .and_then(Value::as_array)
            .map(|bs| bs.iter().filter_map(parse_block).collect());
        let Some(blocks) = blocks else {
            bad.add("non-contiguous", json!({"node": op.node, "problem": "deliver result without a blocks list", "op": op.id}));
            continue;
        };
        let from = op
            .output
            .get("from")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| blocks.first().map_or(0, |b| b.number));
        let is_final = op
            .output
            .get("final")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || op
                .input
                .get("final")
                .and_then(Value::as_bool)
                .unwrap_or(false);
        out.push(Delivery {
            op,
            from,
            blocks,
            is_final,
        });
    }
    out
}

/// Hash chain and contiguity inside one delivery.
fn check_delivery(d: &Delivery, bad: &mut Anomalies) {
    let node = d.op.node.clone();
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

/// Judges an ordering history.
pub fn check_history(history: &History) -> CheckResult {
    let started = Instant::now();
    let ops = history.ops();
    let mut bad = Anomalies::new();
    let delivered = deliveries(&ops, &mut bad);
    let mut seen: HashMap<u64, (&str, Option<&String>)> = HashMap::new();
    for d in &delivered {
        check_delivery(d, &mut bad);
        for b in &d.blocks {
            match seen.get(&b.number) {
                Some((hash, node)) if *hash != b.hash => {
                    bad.add("fork", json!({"block": b.number, "nodes": [node, d.op.node], "hashes": [hash, b.hash]}));
                }
                Some(_) => {}
                None => {
                    seen.insert(b.number, (b.hash, d.op.node.as_ref()));
                }
            }
        }
    }
    let reference = delivered
        .iter()
        .filter(|d| d.is_final && d.from == 0)
        .max_by_key(|d| d.blocks.len());
    let mut counts = BTreeMap::new();
    counts.insert("deliveries".to_string(), delivered.len() as u64);
    let valid =
        reference.map(|reference| check_against_chain(&ops, reference, &mut bad, &mut counts));
    let any_bad = bad.0.values().any(|a| a.count > 0);
    let (valid, note) = match (any_bad, valid) {
        (true, _) => (Validity::Invalid, None),
        (false, Some(())) => (Validity::Valid, None),
        (false, None) => (
            Validity::Unknown,
            Some(
                "no final read of a whole chain succeeded, so loss and order cannot be judged"
                    .to_string(),
            ),
        ),
    };
    CheckResult {
        checker: "ordering".into(),
        valid,
        check_ms: started.elapsed().as_secs_f64() * 1e3,
        counts,
        anomalies: KINDS
            .iter()
            .map(|k| bad.0.remove(k).expect("every kind is present"))
            .collect(),
        artifacts: Vec::new(),
        note,
    }
}

fn check_against_chain(
    ops: &[Op],
    reference: &Delivery,
    bad: &mut Anomalies,
    counts: &mut BTreeMap<String, u64>,
) {
    let mut position: HashMap<&str, usize> = HashMap::new();
    let mut n = 0usize;
    for b in &reference.blocks {
        for tx in b.txs.iter().flatten() {
            if let Some(first) = position.get(tx.id) {
                bad.add(
                    "duplicate",
                    json!({"id": tx.id, "block": b.number, "first_position": first, "position": n}),
                );
            } else {
                position.insert(tx.id, n);
            }
            n += 1;
        }
    }
    let submits: Vec<&Op> = ops.iter().filter(|o| o.f == "submit").collect();
    let submitted: HashMap<&str, &Op> = submits
        .iter()
        .filter_map(|o| o.input.as_str().map(|id| (id, *o)))
        .collect();
    let (mut ok, mut info_found, mut info_missing) = (0u64, 0u64, 0u64);
    for op in &submits {
        let Some(id) = op.input.as_str() else {
            continue;
        };
        let present = position.contains_key(id);
        match op.outcome {
            EventType::Ok => {
                ok += 1;
                if !present {
                    bad.add(
                        "lost",
                        json!({"id": id, "node": op.node, "acknowledged_ns": op.complete_time}),
                    );
                }
            }
            EventType::Fail if present => bad.add(
                "failed-present",
                json!({"id": id, "node": op.node, "position": position[id]}),
            ),
            EventType::Info if present => info_found += 1,
            EventType::Info => info_missing += 1,
            _ => {}
        }
    }
    for (id, pos) in &position {
        if !submitted.contains_key(id) {
            bad.add("unsubmitted", json!({"id": id, "position": pos}));
        }
    }
    realtime_order(&submits, &position, bad);
    counts.insert("submitted".into(), submits.len() as u64);
    counts.insert("acknowledged".into(), ok);
    counts.insert("info-found".into(), info_found);
    counts.insert("info-not-found".into(), info_missing);
    counts.insert("chain-transactions".into(), n as u64);
    counts.insert("chain-blocks".into(), reference.blocks.len() as u64);
}

/// A acknowledged before B was invoked, yet B ordered before A.
fn realtime_order(submits: &[&Op], position: &HashMap<&str, usize>, bad: &mut Anomalies) {
    let mut acked: Vec<(usize, &Op)> = submits
        .iter()
        .filter(|o| o.outcome == EventType::Ok)
        .filter_map(|o| {
            o.input
                .as_str()
                .and_then(|id| position.get(id))
                .map(|p| (*p, *o))
        })
        .collect();
    acked.sort_by_key(|(p, _)| std::cmp::Reverse(*p));
    // Walking from the end of the chain, keep the earliest acknowledgement
    // among transactions ordered later.
    let mut earliest_later: Option<&Op> = None;
    for (pos, b) in acked {
        if let Some(a) = earliest_later {
            if a.complete_time.is_some_and(|t| t < b.invoke_time) {
                bad.add("realtime-order", json!({"acknowledged_first": a.input, "invoked_after": b.input, "position_of_later_invoked": pos}));
            }
        }
        if earliest_later.is_none_or(|a| b.complete_time < a.complete_time) {
            earliest_later = Some(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::read_history;

    fn block(number: u64, prev: &str, ids: &[&str]) -> Value {
        let payloads: Vec<String> = ids.iter().map(|i| format!("p{i}")).collect();
        let txs: Vec<Tx> = ids
            .iter()
            .zip(&payloads)
            .map(|(id, payload)| Tx { id, payload })
            .collect();
        let d = data_hash(&txs);
        let mut b = Block {
            number,
            previous_hash: prev,
            data_hash: &d,
            hash: "",
            txs: None,
        };
        let hash = header_hash(&b).unwrap();
        b.hash = &hash;
        json!({"number": number, "previous_hash": b.previous_hash, "data_hash": b.data_hash, "hash": b.hash,
               "txs": txs.iter().map(|t| json!({"id": t.id, "payload": t.payload})).collect::<Vec<_>>()})
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
    fn without_a_final_read_the_verdict_is_unknown() {
        let r = check_history(&history(&[(0, "a", "ok")], &[]));
        assert_eq!(r.valid, Validity::Unknown);
        assert!(r.note.is_some());
    }
}
