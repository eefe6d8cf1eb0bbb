//! Transactions and the key-value operations they may carry, as clients
//! send them and as they are ordered into blocks.

use serde::{Deserialize, Serialize};

/// Longest transaction id accepted, in bytes.
pub const TX_ID_BYTES_MAX: usize = 256;

/// The largest transaction any node carries, in bytes of its encoding
/// ([`Tx::size_bytes`]); `--absolute-max-bytes` may not exceed it. A block
/// of transactions up to it fits a write-ahead log record and a forwarded
/// one a peer frame: `wal.rs` and `transport.rs` assert it at compile time.
pub const TX_BYTES_MAX: usize = 63 << 20;

/// One operation on the key-value state machine, executed when the block
/// holding its transaction is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum KvOp {
    /// Read a key (`null` when never written).
    Read {
        /// The key.
        key: String,
    },
    /// Set a key.
    Write {
        /// The key.
        key: String,
        /// The new value.
        value: i64,
    },
    /// Set a key to `new` if it holds `old` (`null` = never written).
    Cas {
        /// The key.
        key: String,
        /// The value expected.
        old: Option<i64>,
        /// The value written when the expectation holds.
        new: i64,
    },
}

impl KvOp {
    /// Whether the operation only reads.
    pub fn is_read(&self) -> bool {
        matches!(self, KvOp::Read { .. })
    }
}

/// A client transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tx {
    /// Client-chosen id, 1..=[`TX_ID_BYTES_MAX`] bytes.
    pub id: String,
    /// Opaque payload.
    #[serde(default)]
    pub payload: String,
    /// Key-value operations, possibly none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<KvOp>,
}

impl Tx {
    /// The size the block cutter and `--absolute-max-bytes` count: the
    /// transaction's encoded length ([`bin::tx_len`]: id, payload and ops
    /// with their length prefixes and tags), what it takes in a block, a
    /// log record and a forwarded frame (Fabric counts an envelope's
    /// marshalled bytes the same way).
    pub fn size_bytes(&self) -> usize {
        bin::tx_len(self)
    }

    /// Whether every op only reads (and there is at least one).
    pub fn is_read_only(&self) -> bool {
        !self.ops.is_empty() && self.ops.iter().all(KvOp::is_read)
    }
}

/// When a submit is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Ack {
    /// When the block holding it is committed and applied on this node.
    #[default]
    Committed,
    /// When the leader enqueued it into the block cutter.
    Accepted,
}

/// The body of `POST /submit`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// The transaction id.
    pub id: String,
    /// The payload.
    #[serde(default)]
    pub payload: String,
    /// The acknowledgement mode.
    #[serde(default)]
    pub ack: Ack,
    /// Key-value operations.
    #[serde(default)]
    pub ops: Vec<KvOp>,
}

/// Why a submit was refused before it reached the cluster.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TxError {
    /// The body is not a valid submit request.
    #[error("malformed submit request: {0}")]
    Malformed(String),
    /// The id is empty or too long.
    #[error("field `id`: must be 1..={max} bytes, got {got}")]
    BadId {
        /// Bytes given.
        got: usize,
        /// Bytes allowed.
        max: usize,
    },
    /// The transaction exceeds the absolute maximum size.
    #[error("transaction of {got} bytes exceeds absolute max bytes {max}")]
    TooLarge {
        /// Size of the transaction.
        got: usize,
        /// The limit.
        max: usize,
    },
}

impl SubmitRequest {
    /// Parses and validates a request body into a transaction and its ack.
    pub fn parse(body: &[u8], absolute_max_bytes: usize) -> Result<(Tx, Ack), TxError> {
        let request: SubmitRequest =
            serde_json::from_slice(body).map_err(|e| TxError::Malformed(e.to_string()))?;
        if request.id.is_empty() || request.id.len() > TX_ID_BYTES_MAX {
            return Err(TxError::BadId {
                got: request.id.len(),
                max: TX_ID_BYTES_MAX,
            });
        }
        let tx = Tx {
            id: request.id,
            payload: request.payload,
            ops: request.ops,
        };
        if tx.size_bytes() > absolute_max_bytes {
            return Err(TxError::TooLarge {
                got: tx.size_bytes(),
                max: absolute_max_bytes,
            });
        }
        Ok((tx, request.ack))
    }
}

/// The compact binary encoding of transactions, shared by the block
/// entries, the snapshot and the forwarded submits (ARCHITECTURE.md):
/// integers little-endian, a string as `len: u32 | UTF-8 bytes`, a
/// transaction as `id | payload | ops: u32 count | op...`, an op as a tag
/// (1 read, 2 write, 3 cas) then `key`, then for write `value: i64`, for
/// cas `old: u8 (0 none, 1 some) [i64] | new: i64`. Decoding never trusts a
/// count or length beyond the bytes left, and never panics.
pub mod bin {
    use super::{KvOp, Tx};

    /// Appends `v`.
    pub fn put_u32(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends `v`.
    pub fn put_u64(out: &mut Vec<u8>, v: u64) {
        out.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a length-prefixed string.
    pub fn put_str(out: &mut Vec<u8>, s: &str) {
        put_u32(out, s.len() as u32);
        out.extend_from_slice(s.as_bytes());
    }

    /// Appends a transaction.
    pub fn put_tx(out: &mut Vec<u8>, tx: &Tx) {
        put_str(out, &tx.id);
        put_str(out, &tx.payload);
        put_u32(out, tx.ops.len() as u32);
        for op in &tx.ops {
            match op {
                KvOp::Read { key } => {
                    out.push(1);
                    put_str(out, key);
                }
                KvOp::Write { key, value } => {
                    out.push(2);
                    put_str(out, key);
                    put_u64(out, *value as u64);
                }
                KvOp::Cas { key, old, new } => {
                    out.push(3);
                    put_str(out, key);
                    match old {
                        None => out.push(0),
                        Some(v) => {
                            out.push(1);
                            put_u64(out, *v as u64);
                        }
                    }
                    put_u64(out, *new as u64);
                }
            }
        }
    }

    /// Bytes [`put_tx`] appends.
    pub fn tx_len(tx: &Tx) -> usize {
        let op_len = |op: &KvOp| match op {
            KvOp::Read { key } => 5 + key.len(),
            KvOp::Write { key, .. } => 13 + key.len(),
            KvOp::Cas { key, old, .. } => 14 + key.len() + if old.is_some() { 8 } else { 0 },
        };
        12 + tx.id.len() + tx.payload.len() + tx.ops.iter().map(op_len).sum::<usize>()
    }

    /// Smallest encoded transaction (empty id, payload and ops).
    pub const TX_BYTES_MIN: usize = 12;

    /// A cursor over bytes to decode.
    pub struct Reader<'a> {
        bytes: &'a [u8],
        at: usize,
    }

    impl<'a> Reader<'a> {
        /// A reader at the start of `bytes`.
        pub fn new(bytes: &'a [u8]) -> Reader<'a> {
            Reader { bytes, at: 0 }
        }

        /// Bytes not read yet.
        pub fn remaining(&self) -> usize {
            self.bytes.len() - self.at
        }

        /// The next `n` bytes.
        pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
            if n > self.remaining() {
                return Err(format!(
                    "{what} at byte {} needs {n} bytes, {} left",
                    self.at,
                    self.remaining()
                ));
            }
            let out = &self.bytes[self.at..self.at + n];
            self.at += n;
            Ok(out)
        }

        /// The next byte.
        pub fn u8(&mut self, what: &str) -> Result<u8, String> {
            Ok(self.take(1, what)?[0])
        }

        /// The next u32.
        pub fn u32(&mut self, what: &str) -> Result<u32, String> {
            let b = self.take(4, what)?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }

        /// The next u64.
        pub fn u64(&mut self, what: &str) -> Result<u64, String> {
            let mut a = [0u8; 8];
            a.copy_from_slice(self.take(8, what)?);
            Ok(u64::from_le_bytes(a))
        }

        /// The next 32 bytes.
        pub fn hash(&mut self, what: &str) -> Result<[u8; 32], String> {
            let mut a = [0u8; 32];
            a.copy_from_slice(self.take(32, what)?);
            Ok(a)
        }

        /// A count of items of at least `min_bytes` each, refused when the
        /// bytes left cannot hold that many.
        pub fn count(&mut self, min_bytes: usize, what: &str) -> Result<usize, String> {
            let n = self.u32(what)? as usize;
            if n.saturating_mul(min_bytes.max(1)) > self.remaining() {
                return Err(format!(
                    "{what}: {n} items cannot fit in the {} bytes left",
                    self.remaining()
                ));
            }
            Ok(n)
        }

        /// The next length-prefixed UTF-8 string.
        pub fn str(&mut self, what: &str) -> Result<String, String> {
            let n = self.u32(what)? as usize;
            let at = self.at;
            let bytes = self.take(n, what)?;
            std::str::from_utf8(bytes)
                .map(str::to_string)
                .map_err(|e| format!("{what} at byte {at}: not UTF-8: {e}"))
        }

        /// The next transaction.
        pub fn tx(&mut self) -> Result<Tx, String> {
            let id = self.str("transaction id")?;
            let payload = self.str("transaction payload")?;
            let n = self.count(5, "transaction ops")?;
            let mut ops = Vec::with_capacity(n);
            for _ in 0..n {
                let at = self.at;
                let op = match self.u8("op tag")? {
                    1 => KvOp::Read {
                        key: self.str("op key")?,
                    },
                    2 => KvOp::Write {
                        key: self.str("op key")?,
                        value: self.u64("write value")? as i64,
                    },
                    3 => {
                        let key = self.str("op key")?;
                        let old = match self.u8("cas old flag")? {
                            0 => None,
                            1 => Some(self.u64("cas old")? as i64),
                            f => return Err(format!("cas old flag {f} is neither 0 nor 1")),
                        };
                        KvOp::Cas {
                            key,
                            old,
                            new: self.u64("cas new")? as i64,
                        }
                    }
                    tag => return Err(format!("unknown op tag {tag} at byte {at}")),
                };
                ops.push(op);
            }
            Ok(Tx { id, payload, ops })
        }

        /// Refuses bytes left over.
        pub fn finish(&self, what: &str) -> Result<(), String> {
            match self.remaining() {
                0 => Ok(()),
                n => Err(format!("{n} bytes after the end of the {what}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_request_parses() {
        let body = br#"{"id":"a","payload":"p","ack":"accepted","ops":[{"op":"cas","key":"k","old":null,"new":2}]}"#;
        let (tx, ack) = SubmitRequest::parse(body, 1000).unwrap();
        assert_eq!(ack, Ack::Accepted);
        assert_eq!(
            tx.ops,
            vec![KvOp::Cas {
                key: "k".into(),
                old: None,
                new: 2
            }]
        );
    }

    #[test]
    fn bad_requests_name_the_problem() {
        let e = SubmitRequest::parse(br#"{"payload":"p"}"#, 1000).unwrap_err();
        assert!(e.to_string().contains("missing field `id`"), "{e}");
        let e = SubmitRequest::parse(br#"{"id":""}"#, 1000).unwrap_err();
        assert!(e.to_string().contains("field `id`"), "{e}");
        let e = SubmitRequest::parse(br#"{"id":"x","ack":"maybe"}"#, 1000).unwrap_err();
        assert!(e.to_string().contains("maybe"), "{e}");
        let e = SubmitRequest::parse(br#"{"id":"x","payload":"0123456789"}"#, 5).unwrap_err();
        assert!(matches!(e, TxError::TooLarge { .. }), "{e}");
        assert!(SubmitRequest::parse(b"\xff\x00garbage", 1000).is_err());
    }

    #[test]
    fn the_binary_encoding_round_trips_and_refuses_garbage() {
        let tx = Tx {
            id: "é1".into(),
            payload: "p".repeat(10),
            ops: vec![
                KvOp::Read { key: "a".into() },
                KvOp::Write {
                    key: "b".into(),
                    value: -3,
                },
                KvOp::Cas {
                    key: "c".into(),
                    old: None,
                    new: 1,
                },
                KvOp::Cas {
                    key: "d".into(),
                    old: Some(i64::MIN),
                    new: i64::MAX,
                },
            ],
        };
        let mut out = Vec::new();
        bin::put_tx(&mut out, &tx);
        assert_eq!(out.len(), bin::tx_len(&tx));
        let mut r = bin::Reader::new(&out);
        assert_eq!(r.tx().unwrap(), tx);
        r.finish("tx").unwrap();
        // Every truncation is an error, never a panic.
        for cut in 0..out.len() {
            let mut r = bin::Reader::new(&out[..cut]);
            assert!(r.tx().is_err(), "cut at {cut}");
        }
        // A huge count is refused before anything is allocated for it.
        let mut huge = Vec::new();
        bin::put_str(&mut huge, "i");
        bin::put_str(&mut huge, "");
        bin::put_u32(&mut huge, u32::MAX);
        let e = bin::Reader::new(&huge).tx().unwrap_err();
        assert!(e.contains("cannot fit"), "{e}");
        let mut bad_utf8 = Vec::new();
        bin::put_u32(&mut bad_utf8, 2);
        bad_utf8.extend_from_slice(&[0xff, 0xfe]);
        let e = bin::Reader::new(&bad_utf8).tx().unwrap_err();
        assert!(e.contains("UTF-8"), "{e}");
    }
}
