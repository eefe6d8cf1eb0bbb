//! The ordering checker: total-order broadcast (`docs/ordering-history.md`)
//! over either kind of chain a delivery names: ordeal-node's hash-chained
//! ledger (`hashes`, the default), or a totally ordered log of positions
//! with one transaction each and no hashes (`positions`: NATS JetStream's
//! stream sequences). Every delivered block is compared with every other
//! delivery of the same number; the longest final chain of a member is the
//! reference for loss, duplicates, order and acknowledged positions.
//!
//! Membership (issue 14): a final read marked `"member": false` (on its
//! invoke or its ok value) is of a node a committed configuration removed.
//! It halted, so its chain may be short, but it must be a prefix of the
//! reference (`removed-not-prefix` otherwise); it is never the reference.
//! Final reads without the mark are of members, so a history with no
//! membership change is judged exactly as before.
//!
//! A chain of positions, as the NATS client records it: `t2` was
//! acknowledged at sequence 2, which the server's copy gave to `x`.
//!
//! ```
//! let history = r#"{"process":0,"type":"invoke","f":"submit","value":"t1","time":1}
//! {"process":0,"type":"ok","f":"submit","value":{"id":"t1","position":1},"time":2}
//! {"process":1,"type":"invoke","f":"submit","value":"t2","time":3}
//! {"process":1,"type":"ok","f":"submit","value":{"id":"t2","position":2},"time":4}
//! {"process":9,"type":"invoke","f":"deliver","value":{"from":1,"final":true},"time":5,"node":"n1"}
//! {"process":9,"type":"ok","f":"deliver","value":{"from":1,"final":true,"chain":"positions","blocks":[
//!   {"number":1,"txs":[{"id":"t1","payload":"p1"}]},{"number":2,"txs":[{"id":"x","payload":"px"}]}]},"time":6,"node":"n1"}
//! "#.replace("\n  ", "");
//! let r = checker::ordering::check_reader(history.as_bytes()).unwrap();
//! let found: Vec<&str> = r.anomalies.iter().filter(|a| a.count > 0).map(|a| a.kind.as_str()).collect();
//! assert_eq!(found, ["lost", "unsubmitted", "ack-position-mismatch"]);
//! ```
//!
//! Layers, top to bottom: this module (the streaming [`Judge`]) over
//! `delivery` (one delivery by itself) and `reference` (the submits
//! against the reference chain), over `block` (reading values, refusing
//! what is not understood) and `anomaly` (the kinds and their tally).

mod anomaly;
mod block;
mod delivery;
mod reference;

pub use anomaly::{ACK_POSITION_MISMATCH, KINDS, REMOVED_NOT_PREFIX};
pub use block::{block_json, position_json};

use crate::history::{for_each_event, Event, EventType, History, HistoryError, Process};
use crate::ordering::anomaly::{Anomalies, BROKEN_HASH_CHAIN, FORK};
use crate::ordering::block::{acknowledged_position, parse_blocks, parse_from, ChainKind};
use crate::ordering::delivery::{check_delivery, Delivery};
use crate::ordering::reference::{
    check_against_chain, removed_prefixes, Chain, RemovedChain, Submit,
};
use crate::validate::{Validation, Vocabulary};
use crate::verdict::{CheckResult, Validity};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::time::Instant;

/// A client op between its invoke and its completion.
enum Open {
    /// Index into `Judge::submits`.
    Submit(usize),
    /// A deliver: its node, whether the invoke asked for a final read and
    /// whether it named the node a member.
    Deliver {
        node: Option<String>,
        is_final: bool,
        member: bool,
    },
}

/// What the checker keeps while a history streams through it: open ops,
/// submits, the identity first seen for each block number, and the longest
/// final chain's transaction ids. Deliveries are checked as they complete
/// and dropped, so memory grows with the number of submits and blocks, not
/// with the bytes of every delivered block (a 215,000-op run held every
/// final chain and every header as JSON values twice, 3.4 GB).
///
/// Forks are judged against the identity first seen for a number in the
/// order the deliveries completed.
#[derive(Default)]
struct Judge {
    open: HashMap<u64, Open>,
    submits: Vec<Submit>,
    /// Per number, the identity first delivered and the node it came from.
    seen: HashMap<u64, (Box<str>, Option<Box<str>>)>,
    /// Per number of a `positions` chain, the id first delivered (for the
    /// fork examples; kept apart so that a hashed chain's memory does not
    /// grow by it).
    first_ids: HashMap<u64, Box<str>>,
    deliveries: u64,
    /// The kind of chain the deliveries carry, and the line of the first.
    chain: Option<(ChainKind, u64)>,
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
    /// Takes the event read at `line`; refuses a value it does not
    /// understand (a submit's acknowledgement, a delivered block).
    fn feed(&mut self, line: u64, e: &Event) -> Result<(), HistoryError> {
        let Process::Client(p) = e.process else {
            return Ok(());
        };
        if e.kind == EventType::Invoke {
            let open = if e.f == "submit" {
                self.submits.push(Submit {
                    id: e.value.as_str().map(Box::from),
                    outcome: EventType::Info,
                    invoke_time: e.time,
                    complete_time: None,
                    node: e.node.as_deref().map(Box::from),
                    position: None,
                });
                Open::Submit(self.submits.len() - 1)
            } else {
                Open::Deliver {
                    node: e.node.clone(),
                    is_final: is_final(&e.value),
                    member: is_member(&e.value),
                }
            };
            self.open.insert(p, open);
            return Ok(());
        }
        match self.open.remove(&p) {
            Some(Open::Submit(i)) => {
                let s = &mut self.submits[i];
                s.outcome = e.kind;
                if e.kind != EventType::Info {
                    s.complete_time = Some(e.time);
                }
                if e.kind == EventType::Ok {
                    s.position = acknowledged_position(s.id.as_deref(), &e.value)
                        .map_err(|m| m.at_line(line))?;
                }
            }
            Some(Open::Deliver {
                node,
                is_final,
                member,
            }) if e.f == "deliver" && e.kind == EventType::Ok => {
                let member = member && is_member(&e.value);
                self.deliver(line, node.as_deref(), (is_final, member), &e.value)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The kind of chain the delivery on `line` carries, refused when it
    /// is not the kind of the deliveries before it.
    fn chain_kind(&mut self, line: u64, value: &Value) -> Result<ChainKind, HistoryError> {
        let kind = ChainKind::of(value).map_err(|m| m.at_line(line))?;
        match self.chain {
            None => self.chain = Some((kind, line)),
            Some((first, first_line)) if first != kind => {
                return Err(HistoryError::ValueField {
                    line,
                    path: "value.chain".into(),
                    problem: format!(
                        "a `{}` delivery in a history of `{}` deliveries (the first on line {first_line}): a history holds one kind of chain",
                        kind.name(),
                        first.name()
                    ),
                })
            }
            Some(_) => {}
        }
        Ok(kind)
    }

    /// Checks one completed delivery, read at `line`; `asked` is (the
    /// invoke asked for a final read, the node is a member).
    fn deliver(
        &mut self,
        line: u64,
        node: Option<&str>,
        asked: (bool, bool),
        value: &Value,
    ) -> Result<(), HistoryError> {
        let (asked_final, member) = asked;
        let kind = self.chain_kind(line, value)?;
        let blocks = parse_blocks(kind, value).map_err(|m| m.at_line(line))?;
        let from = parse_from(kind, value, &blocks).map_err(|m| m.at_line(line))?;
        let d = Delivery {
            node,
            kind,
            from,
            blocks,
            is_final: asked_final || is_final(value),
        };
        self.deliveries += 1;
        let bad = self.bad.get_or_insert_with(Anomalies::new);
        check_delivery(&d, bad);
        self.compare(&d);
        if d.is_whole_chain() {
            self.final_chain(&d, member);
        }
        Ok(())
    }

    /// Each block against the first delivery of its number: different
    /// contents are a fork.
    fn compare(&mut self, d: &Delivery) {
        let bad = self.bad.get_or_insert_with(Anomalies::new);
        for b in &d.blocks {
            let identity = b.identity();
            match self.seen.get(&b.number) {
                Some((first, first_node)) if **first != *identity => {
                    let nodes = json!([first_node, d.node]);
                    let example = match d.kind {
                        ChainKind::Hashes => {
                            json!({"block": b.number, "nodes": nodes, "hashes": [first, identity]})
                        }
                        ChainKind::Positions => {
                            let ids = [self.first_ids.get(&b.number).map(|i| &**i), b.only_id()];
                            json!({"block": b.number, "nodes": nodes, "ids": ids,
                                   "digests": [first, identity]})
                        }
                    };
                    bad.add(FORK, example);
                }
                Some(_) => {}
                None => {
                    let first = ((*identity).into(), d.node.map(Box::from));
                    self.seen.insert(b.number, first);
                    if let Some(id) = b.only_id() {
                        self.first_ids.insert(b.number, id.into());
                    }
                }
            }
        }
    }

    /// Keeps a whole final chain: a member's becomes the reference when it
    /// is the longest so far; a removed node's identities wait for the end.
    fn final_chain(&mut self, d: &Delivery, member: bool) {
        let hashes = || d.blocks.iter().map(|b| b.identity().into()).collect();
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
        let (valid, note) = match (bad.any(), valid) {
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
        let hashed = self.chain.is_none_or(|(k, _)| k == ChainKind::Hashes);
        let positions_acknowledged = self.submits.iter().any(|s| s.position.is_some());
        let listed = |k: &str| match k {
            BROKEN_HASH_CHAIN => hashed,
            REMOVED_NOT_PREFIX => !self.removed.is_empty(),
            ACK_POSITION_MISMATCH => positions_acknowledged,
            _ => true,
        };
        CheckResult {
            checker: "ordering".into(),
            valid,
            check_ms: started.elapsed().as_secs_f64() * 1e3,
            counts,
            anomalies: bad.into_listed(listed),
            artifacts: Vec::new(),
            note,
        }
    }
}

/// Judges an ordering history held in memory; refuses (with the line and
/// field) a delivered block or an acknowledgement it does not understand,
/// and a history whose deliveries mix the two kinds of chain.
pub fn check_history(history: &History) -> Result<CheckResult, HistoryError> {
    let started = Instant::now();
    let mut judge = Judge::default();
    for (position, e) in history.events.iter().enumerate() {
        judge.feed(history.line_of(position), e)?;
    }
    Ok(judge.finish(started))
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
        judge.feed(line, &e)
    })?;
    validation.finish()?;
    Ok(judge.finish(started))
}

#[cfg(test)]
mod positions_tests;
#[cfg(test)]
mod tests;
