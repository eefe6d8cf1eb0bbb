//! Delivered blocks as the ordering checker reads them, from a deliver's
//! `ok` value, in either kind of chain (`docs/ordering-history.md`):
//!
//! - `hashes` (the default): ordeal-node's ledger, blocks from 0 bound by
//!   `previous_hash`, `data_hash` and `hash`; reads during a run may carry
//!   headers only.
//! - `positions`: a totally ordered log without blocks or hashes (NATS
//!   JetStream's stream): each position from 1 is a "block" of exactly one
//!   transaction, compared across reads by a digest of its contents.
//!
//! A block this module does not understand is refused by name (path and
//! problem, [`Malformed`]), never dropped: a dropped block would make every
//! transaction in it look lost.

use crate::history::HistoryError;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::num::NonZeroU64;

/// Which kind of chain a delivery carries: its `ok` value's `"chain"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChainKind {
    /// ordeal-node's hash-chained blocks from 0 (`"chain"` absent or
    /// `"hashes"`).
    Hashes,
    /// Positions from 1, one transaction each, no hashes (`"chain":
    /// "positions"`).
    Positions,
}

impl ChainKind {
    /// The kind a deliver's `ok` value names.
    pub(crate) fn of(value: &Value) -> Result<ChainKind, Malformed> {
        match value.get("chain") {
            None => Ok(ChainKind::Hashes),
            Some(Value::String(s)) if s == "hashes" => Ok(ChainKind::Hashes),
            Some(Value::String(s)) if s == "positions" => Ok(ChainKind::Positions),
            Some(other) => Err(Malformed::new(
                "value.chain".into(),
                format!(
                    "{} is not a kind of chain this checker judges (`hashes`, the default, or `positions`)",
                    shown(other)
                ),
            )),
        }
    }

    /// Its name as `"chain"` spells it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ChainKind::Hashes => "hashes",
            ChainKind::Positions => "positions",
        }
    }

    /// The number a whole chain starts at: the genesis block 0, or a
    /// stream's first sequence 1.
    pub(crate) fn first_number(self) -> u64 {
        match self {
            ChainKind::Hashes => 0,
            ChainKind::Positions => 1,
        }
    }
}

/// A part of a deliver's value the checker does not understand: where (a
/// path from the event, `value.blocks[2].txs`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed {
    path: String,
    problem: String,
}

impl Malformed {
    pub(crate) fn new(path: String, problem: String) -> Malformed {
        Malformed { path, problem }
    }

    /// The refusal of the event on `line`.
    pub(crate) fn at_line(self, line: u64) -> HistoryError {
        HistoryError::ValueField {
            line,
            path: self.path,
            problem: self.problem,
        }
    }
}

/// A transaction as delivered, borrowed from the history.
pub(crate) struct Tx<'a> {
    pub(crate) id: &'a str,
    pub(crate) payload: &'a str,
}

/// A hashed chain's block header.
pub(crate) struct Header<'a> {
    pub(crate) previous_hash: &'a str,
    pub(crate) data_hash: &'a str,
    pub(crate) hash: &'a str,
}

/// A delivered block, borrowed from the history.
pub(crate) struct Block<'a> {
    pub(crate) number: u64,
    /// `None` for a header-only block of a hashed chain (reads during the
    /// run); always one transaction in a `positions` chain.
    pub(crate) txs: Option<Vec<Tx<'a>>>,
    /// The hashes; `None` in a `positions` chain.
    pub(crate) header: Option<Header<'a>>,
}

impl<'a> Block<'a> {
    /// What deliveries of one number are compared by: the block's hash, or
    /// in a `positions` chain a digest of its transaction.
    pub(crate) fn identity(&self) -> Cow<'a, str> {
        match &self.header {
            Some(h) => Cow::Borrowed(h.hash),
            None => Cow::Owned(data_hash(self.txs.as_deref().unwrap_or(&[]))),
        }
    }

    /// The id of a `positions` block's one transaction.
    pub(crate) fn only_id(&self) -> Option<&'a str> {
        match (&self.header, self.txs.as_deref()) {
            (None, Some([tx])) => Some(tx.id),
            _ => None,
        }
    }
}

/// The blocks of a deliver's `ok` value, every one understood, or the
/// first one that is not.
pub(crate) fn parse_blocks(kind: ChainKind, value: &Value) -> Result<Vec<Block<'_>>, Malformed> {
    let Some(blocks) = value.get("blocks").and_then(Value::as_array) else {
        return Err(Malformed::new(
            "value.blocks".into(),
            expected("an array of blocks", value.get("blocks")),
        ));
    };
    blocks
        .iter()
        .enumerate()
        .map(|(i, b)| parse_block(kind, i, b))
        .collect()
}

/// The first number a delivery claims to hold: its `from`, else its first
/// block's number, else the first number of a whole chain.
pub(crate) fn parse_from(
    kind: ChainKind,
    value: &Value,
    blocks: &[Block],
) -> Result<u64, Malformed> {
    let from = match value.get("from") {
        None => blocks.first().map_or(kind.first_number(), |b| b.number),
        Some(v) => v.as_u64().ok_or_else(|| {
            Malformed::new(
                "value.from".into(),
                expected("a non-negative integer", Some(v)),
            )
        })?,
    };
    if from < kind.first_number() {
        return Err(Malformed::new(
            "value.from".into(),
            "0: a `positions` chain starts at 1 (a stream's first sequence)".into(),
        ));
    }
    Ok(from)
}

/// The position a submit's `ok` value names: `None` for the plain id (the
/// ordeal-node client's), `Some` for `{"id": <the submitted id>,
/// "position": n >= 1}` (the number of the block that holds it: a stream
/// sequence in a `positions` chain); anything else in an object is refused.
pub(crate) fn acknowledged_position(
    submitted: Option<&str>,
    value: &Value,
) -> Result<Option<NonZeroU64>, Malformed> {
    let Some(ack) = value.as_object() else {
        return Ok(None);
    };
    let id = ack.get("id");
    if id.and_then(Value::as_str) != submitted || submitted.is_none() {
        let wanted = match submitted {
            Some(s) => format!("the submitted id {}", Value::from(s)),
            None => "a string".into(),
        };
        return Err(Malformed::new("value.id".into(), expected(&wanted, id)));
    }
    let position = ack.get("position");
    match position.and_then(Value::as_u64).and_then(NonZeroU64::new) {
        Some(p) => Ok(Some(p)),
        None => Err(Malformed::new(
            "value.position".into(),
            expected("the position acknowledged, an integer >= 1", position),
        )),
    }
}

fn parse_block(kind: ChainKind, i: usize, v: &Value) -> Result<Block<'_>, Malformed> {
    let at = |field: &str| format!("value.blocks[{i}].{field}");
    let Some(obj) = v.as_object() else {
        return Err(Malformed::new(
            format!("value.blocks[{i}]"),
            expected("a block object", Some(v)),
        ));
    };
    let number = obj.get("number");
    let number = number
        .and_then(Value::as_u64)
        .ok_or_else(|| Malformed::new(at("number"), expected("a non-negative integer", number)))?;
    match kind {
        ChainKind::Hashes => {
            let header = parse_header(obj, &at)?;
            let txs = match obj.get("txs") {
                None => None,
                Some(txs) => Some(parse_txs(txs, &at("txs"))?),
            };
            Ok(Block {
                number,
                txs,
                header: Some(header),
            })
        }
        ChainKind::Positions => {
            if number == 0 {
                return Err(Malformed::new(
                    at("number"),
                    "0: positions start at 1 (a stream's first sequence)".into(),
                ));
            }
            let txs = obj.get("txs").ok_or_else(|| {
                Malformed::new(
                    at("txs"),
                    "missing: a `positions` block carries its one transaction (there are no headers to read instead)".into(),
                )
            })?;
            let txs = parse_txs(txs, &at("txs"))?;
            if txs.len() != 1 {
                return Err(Malformed::new(
                    at("txs"),
                    format!(
                        "a `positions` block holds exactly one transaction, got {}",
                        txs.len()
                    ),
                ));
            }
            Ok(Block {
                number,
                txs: Some(txs),
                header: None,
            })
        }
    }
}

/// A hashed block's three hashes, each a string.
fn parse_header<'a>(
    obj: &'a Map<String, Value>,
    at: &dyn Fn(&str) -> String,
) -> Result<Header<'a>, Malformed> {
    let hash = |name: &str| {
        let v = obj.get(name);
        v.and_then(Value::as_str).ok_or_else(|| {
            let hint = if v.is_none() {
                "; a block of a `hashes` chain carries `previous_hash`, `data_hash` and `hash` (a chain without hashes is marked `\"chain\": \"positions\"` on the deliver's ok value)"
            } else {
                ""
            };
            Malformed::new(at(name), expected("a hex string", v) + hint)
        })
    };
    Ok(Header {
        previous_hash: hash("previous_hash")?,
        data_hash: hash("data_hash")?,
        hash: hash("hash")?,
    })
}

/// A block's `txs`: an array of `{"id": string, "payload": string}`.
fn parse_txs<'a>(txs: &'a Value, path: &str) -> Result<Vec<Tx<'a>>, Malformed> {
    let Some(txs) = txs.as_array() else {
        return Err(Malformed::new(
            path.into(),
            expected("an array of transactions", Some(txs)),
        ));
    };
    txs.iter()
        .enumerate()
        .map(|(j, t)| {
            let Some(tx) = t.as_object() else {
                return Err(Malformed::new(
                    format!("{path}[{j}]"),
                    expected("a transaction object", Some(t)),
                ));
            };
            let field = |name: &str| {
                let v = tx.get(name);
                v.and_then(Value::as_str).ok_or_else(|| {
                    Malformed::new(format!("{path}[{j}].{name}"), expected("a string", v))
                })
            };
            Ok(Tx {
                id: field("id")?,
                payload: field("payload")?,
            })
        })
        .collect()
}

/// "missing" or "expected …, got …".
fn expected(what: &str, got: Option<&Value>) -> String {
    match got {
        None => format!("missing: expected {what}"),
        Some(v) => format!("expected {what}, got {}", shown(v)),
    }
}

/// A value as an error shows it, cut at 80 characters (a block may be long).
fn shown(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The digest of a block's transactions (`docs/node-api.md`): sha256 over,
/// for each in order, the id's length as u32 big-endian, the id, the
/// payload's length, the payload.
pub(crate) fn data_hash(txs: &[Tx]) -> String {
    let mut h = Sha256::new();
    for tx in txs {
        h.update((tx.id.len() as u32).to_be_bytes());
        h.update(tx.id.as_bytes());
        h.update((tx.payload.len() as u32).to_be_bytes());
        h.update(tx.payload.as_bytes());
    }
    hex::encode(h.finalize())
}

/// A hashed block's hash from its header: sha256(number ‖ previous_hash ‖
/// data_hash); `None` when a hash is not 32 bytes of hex.
pub(crate) fn header_hash(number: u64, h: &Header) -> Option<String> {
    let prev = hex::decode(h.previous_hash)
        .ok()
        .filter(|p| p.len() == 32)?;
    let data = hex::decode(h.data_hash).ok().filter(|p| p.len() == 32)?;
    let mut sha = Sha256::new();
    sha.update(number.to_be_bytes());
    sha.update(prev);
    sha.update(data);
    Some(hex::encode(sha.finalize()))
}

/// A block as `GET /blocks` returns it (`docs/node-api.md`), with its
/// hashes computed from `txs` (id, payload): for tests and generated
/// histories.
pub fn block_json(number: u64, previous_hash: &str, txs: &[(String, String)]) -> Value {
    let borrowed: Vec<Tx> = txs.iter().map(|(id, payload)| Tx { id, payload }).collect();
    let data = data_hash(&borrowed);
    let header = Header {
        previous_hash,
        data_hash: &data,
        hash: "",
    };
    let hash = header_hash(number, &header).unwrap_or_default();
    json!({"number": number, "previous_hash": previous_hash, "data_hash": data, "hash": hash,
           "txs": txs.iter().map(|(id, payload)| json!({"id": id, "payload": payload})).collect::<Vec<_>>()})
}

/// A position of a `positions` chain as NATS's client records it: `number`
/// holding the one transaction `id` with `payload`.
pub fn position_json(number: u64, id: &str, payload: &str) -> Value {
    json!({"number": number, "txs": [{"id": id, "payload": payload}]})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each malformed block of either kind, and the path and problem its
    /// refusal names.
    #[test]
    fn a_block_not_understood_is_refused_by_path() {
        let h = "00".repeat(32);
        let hashed = |b: Value| json!({"blocks": [block_json(0, &h, &[]), b]});
        let positions =
            |b: Value| json!({"chain": "positions", "blocks": [position_json(1, "a", "p"), b]});
        let cases: Vec<(ChainKind, Value, &str, &str)> = vec![
            (
                ChainKind::Hashes,
                hashed(json!({"number": 1, "txs": [{"id": "a", "payload": "p"}]})),
                "value.blocks[1].previous_hash",
                "missing: expected a hex string; a block of a `hashes` chain carries",
            ),
            (
                ChainKind::Hashes,
                hashed(json!({"number": 1, "previous_hash": h, "data_hash": h, "hash": 7})),
                "value.blocks[1].hash",
                "expected a hex string, got 7",
            ),
            (
                ChainKind::Hashes,
                hashed(json!({"number": -1, "previous_hash": h, "data_hash": h, "hash": h})),
                "value.blocks[1].number",
                "expected a non-negative integer, got -1",
            ),
            (
                ChainKind::Hashes,
                hashed(
                    json!({"number": 1, "previous_hash": h, "data_hash": h, "hash": h, "txs": [{"id": "a"}]}),
                ),
                "value.blocks[1].txs[0].payload",
                "missing: expected a string",
            ),
            (
                ChainKind::Hashes,
                hashed(
                    json!({"number": 1, "previous_hash": h, "data_hash": h, "hash": h, "txs": {"id": "a"}}),
                ),
                "value.blocks[1].txs",
                "expected an array of transactions",
            ),
            (
                ChainKind::Hashes,
                hashed(json!("block 1")),
                "value.blocks[1]",
                "expected a block object, got \"block 1\"",
            ),
            (
                ChainKind::Positions,
                positions(json!({"number": 2})),
                "value.blocks[1].txs",
                "missing: a `positions` block carries its one transaction",
            ),
            (
                ChainKind::Positions,
                positions(json!({"number": 2, "txs": []})),
                "value.blocks[1].txs",
                "exactly one transaction, got 0",
            ),
            (
                ChainKind::Positions,
                positions(
                    json!({"number": 2, "txs": [{"id": "b", "payload": ""}, {"id": "c", "payload": ""}]}),
                ),
                "value.blocks[1].txs",
                "exactly one transaction, got 2",
            ),
            (
                ChainKind::Positions,
                positions(json!({"number": 0, "txs": [{"id": "b", "payload": ""}]})),
                "value.blocks[1].number",
                "0: positions start at 1",
            ),
            (
                ChainKind::Positions,
                positions(json!({"number": "2", "txs": [{"id": "b", "payload": ""}]})),
                "value.blocks[1].number",
                "expected a non-negative integer, got \"2\"",
            ),
            (
                ChainKind::Positions,
                positions(json!({"number": 2, "txs": [{"id": 2, "payload": ""}]})),
                "value.blocks[1].txs[0].id",
                "expected a string, got 2",
            ),
            (
                ChainKind::Positions,
                positions(json!({"number": 2, "txs": ["b"]})),
                "value.blocks[1].txs[0]",
                "expected a transaction object, got \"b\"",
            ),
            (
                ChainKind::Positions,
                json!({"chain": "positions", "blocks": 3}),
                "value.blocks",
                "expected an array of blocks, got 3",
            ),
        ];
        for (kind, value, path, problem) in cases {
            let Err(e) = parse_blocks(kind, &value) else {
                panic!("{value} was read");
            };
            assert_eq!(e.path, path, "{value}");
            assert!(e.problem.contains(problem), "{value}: {}", e.problem);
        }
    }

    #[test]
    fn the_chain_mark_and_from_are_read_or_refused() {
        assert_eq!(ChainKind::of(&json!({})), Ok(ChainKind::Hashes));
        assert_eq!(
            ChainKind::of(&json!({"chain": "hashes"})),
            Ok(ChainKind::Hashes)
        );
        assert_eq!(
            ChainKind::of(&json!({"chain": "positions"})),
            Ok(ChainKind::Positions)
        );
        let e = ChainKind::of(&json!({"chain": "log"})).unwrap_err();
        assert_eq!(e.path, "value.chain");
        assert!(
            e.problem.starts_with("\"log\" is not a kind of chain"),
            "{}",
            e.problem
        );
        let p = ChainKind::Positions;
        assert_eq!(parse_from(p, &json!({"from": 1}), &[]), Ok(1));
        assert_eq!(parse_from(p, &json!({}), &[]), Ok(1));
        assert_eq!(parse_from(ChainKind::Hashes, &json!({}), &[]), Ok(0));
        assert_eq!(
            parse_from(p, &json!({"from": 0}), &[]).unwrap_err().path,
            "value.from"
        );
        let e = parse_from(ChainKind::Hashes, &json!({"from": "0"}), &[]).unwrap_err();
        assert_eq!(e.problem, "expected a non-negative integer, got \"0\"");
        let long = "x".repeat(200);
        let e = ChainKind::of(&json!({"chain": long})).unwrap_err();
        assert!(e.problem.len() < 200, "a long value is cut: {}", e.problem);
    }

    #[test]
    fn a_positions_block_is_compared_by_its_contents() {
        let a = json!({"chain": "positions", "blocks": [position_json(1, "a", "p"), position_json(2, "a", "q")]});
        let blocks = parse_blocks(ChainKind::Positions, &a).unwrap();
        assert_ne!(
            blocks[0].identity(),
            blocks[1].identity(),
            "the payload counts"
        );
        assert_eq!(blocks[0].only_id(), Some("a"));
        let other = json!({"blocks": [position_json(5, "a", "p")]});
        let same = parse_blocks(ChainKind::Positions, &other).unwrap();
        assert_eq!(
            blocks[0].identity(),
            same[0].identity(),
            "the number does not"
        );
        let h = "00".repeat(32);
        let hashed = json!({"blocks": [block_json(0, &h, &[])]});
        let blocks = parse_blocks(ChainKind::Hashes, &hashed).unwrap();
        assert_eq!(
            blocks[0].identity(),
            hashed["blocks"][0]["hash"].as_str().unwrap()
        );
        assert_eq!(blocks[0].only_id(), None);
    }
}
