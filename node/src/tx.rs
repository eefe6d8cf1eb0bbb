//! Transactions and the key-value operations they may carry, as clients
//! send them and as they are ordered into blocks.

use serde::{Deserialize, Serialize};

/// Longest transaction id accepted, in bytes.
pub const TX_ID_BYTES_MAX: usize = 256;

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

    fn key(&self) -> &str {
        match self {
            KvOp::Read { key } | KvOp::Write { key, .. } | KvOp::Cas { key, .. } => key,
        }
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
    /// The size the block cutter counts: id, payload and op keys.
    pub fn size_bytes(&self) -> usize {
        self.id.len()
            + self.payload.len()
            + self.ops.iter().map(|op| op.key().len() + 16).sum::<usize>()
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
}
