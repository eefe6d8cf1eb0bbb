//! The state machine applied from committed entries: the ledger and the
//! key-value registers, and its snapshot form.

use crate::kv::{Kv, OpResult};
use crate::ledger::{Block, Ledger};
use crate::tx::Tx;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What one applied block produced.
#[derive(Debug)]
pub struct Applied {
    /// The block's number.
    pub number: u64,
    /// The block's header hash.
    pub hash: [u8; 32],
    /// Transaction ids with their op results, in block order.
    pub results: Vec<(String, Vec<OpResult>)>,
}

/// Ledger + registers.
#[derive(Debug, Default)]
pub struct StateMachine {
    /// The chain.
    pub ledger: Ledger,
    /// The registers.
    pub kv: Kv,
}

/// A snapshot's data that does not describe a valid state.
#[derive(Debug, thiserror::Error)]
#[error("snapshot data: {0}")]
pub struct SnapshotDataError(String);

impl StateMachine {
    /// Applies a block of transactions.
    pub fn apply(&mut self, txs: Vec<Tx>) -> Applied {
        let results = txs
            .iter()
            .map(|tx| (tx.id.clone(), self.kv.apply(&tx.ops)))
            .collect();
        let block = self.ledger.append(txs);
        Applied {
            number: block.number,
            hash: block.hash,
            results,
        }
    }

    /// The snapshot form (the whole ledger and the registers).
    pub fn to_snapshot_data(&self) -> Vec<u8> {
        self.capture().to_snapshot_data()
    }

    /// A copy of the state that shares the ledger's blocks: cheap to take
    /// on the raft thread, serialised elsewhere.
    pub fn capture(&self) -> Captured {
        Captured {
            blocks: self.ledger.blocks().to_vec(),
            kv: self.kv.clone(),
        }
    }

    /// Rebuilds from snapshot data, verifying the chain.
    pub fn from_snapshot_data(data: &[u8]) -> Result<StateMachine, SnapshotDataError> {
        #[derive(Deserialize)]
        struct Raw {
            ledger: RawLedger,
            kv: Kv,
        }
        #[derive(Deserialize)]
        struct RawLedger {
            blocks: Vec<Block>,
        }
        let raw: Raw =
            serde_json::from_slice(data).map_err(|e| SnapshotDataError(e.to_string()))?;
        let ledger =
            Ledger::from_blocks(raw.ledger.blocks).map_err(|e| SnapshotDataError(e.to_string()))?;
        Ok(StateMachine { ledger, kv: raw.kv })
    }
}

/// The state at one index, its blocks shared with the live ledger.
#[derive(Debug, Clone)]
pub struct Captured {
    blocks: Vec<Arc<Block>>,
    kv: Kv,
}

impl Captured {
    /// The snapshot form: `{"ledger": {"blocks": [...]}, "kv": ...}`.
    pub fn to_snapshot_data(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct View<'a> {
            ledger: LedgerView<'a>,
            kv: &'a Kv,
        }
        #[derive(Serialize)]
        struct LedgerView<'a> {
            blocks: Vec<&'a Block>,
        }
        let view = View {
            ledger: LedgerView {
                blocks: self.blocks.iter().map(|b| &**b).collect(),
            },
            kv: &self.kv,
        };
        serde_json::to_vec(&view).expect("the state machine always encodes")
    }

    /// The ledger height captured.
    pub fn height(&self) -> u64 {
        self.blocks.len() as u64
    }
}

/// Encodes a proposal (a cut batch) as entry data.
pub fn encode_batch(txs: &[Tx]) -> Vec<u8> {
    serde_json::to_vec(txs).expect("transactions always encode")
}

/// Decodes entry data into a batch.
pub fn decode_batch(data: &[u8]) -> Result<Vec<Tx>, serde_json::Error> {
    serde_json::from_slice(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::KvOp;

    #[test]
    fn snapshot_round_trip_keeps_chain_and_registers() {
        let mut sm = StateMachine::default();
        let tx = Tx {
            id: "a".into(),
            payload: "p".into(),
            ops: vec![KvOp::Write {
                key: "k".into(),
                value: 3,
            }],
        };
        let applied = sm.apply(vec![tx.clone()]);
        assert_eq!(applied.number, 1);
        let back = StateMachine::from_snapshot_data(&sm.to_snapshot_data()).unwrap();
        assert_eq!(back.ledger, sm.ledger);
        assert_eq!(back.kv, sm.kv);
        assert_eq!(
            decode_batch(&encode_batch(std::slice::from_ref(&tx))).unwrap(),
            vec![tx]
        );
        assert!(StateMachine::from_snapshot_data(b"{}").is_err());
    }
}
