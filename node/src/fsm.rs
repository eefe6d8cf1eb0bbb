//! The state machine applied from committed entries: the ledger and the
//! key-value registers, and its snapshot form.

use crate::kv::{Kv, OpResult};
use crate::ledger::{Block, Ledger};
use crate::tx::Tx;
use serde::{Deserialize, Serialize};

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
#[derive(Debug, Default, Serialize, Deserialize)]
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
        serde_json::to_vec(self).expect("the state machine always encodes")
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
