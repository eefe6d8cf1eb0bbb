//! The hash-chained ledger: blocks of ordered transactions, numbered from
//! the genesis block 0, each naming its predecessor's header hash
//! (docs/node-api.md gives the exact hash scheme).

use crate::tx::Tx;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// One block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Position in the chain; genesis is 0.
    pub number: u64,
    /// Header hash of block `number - 1` (zeros for genesis).
    #[serde(with = "hex_hash")]
    pub previous_hash: Hash,
    /// Hash over the transactions.
    #[serde(with = "hex_hash")]
    pub data_hash: Hash,
    /// Hash of this block's header.
    #[serde(with = "hex_hash")]
    pub hash: Hash,
    /// The transactions, in order.
    pub txs: Vec<Tx>,
}

mod hex_hash {
    use super::Hash;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(D::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| D::Error::custom("hash must be 32 bytes"))
    }
}

/// sha256 over each transaction's length-prefixed id and payload.
pub fn data_hash(txs: &[Tx]) -> Hash {
    let mut h = Sha256::new();
    for tx in txs {
        h.update((tx.id.len() as u32).to_be_bytes());
        h.update(tx.id.as_bytes());
        h.update((tx.payload.len() as u32).to_be_bytes());
        h.update(tx.payload.as_bytes());
    }
    h.finalize().into()
}

/// sha256(number ‖ previous_hash ‖ data_hash).
pub fn header_hash(number: u64, previous_hash: &Hash, data_hash: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(number.to_be_bytes());
    h.update(previous_hash);
    h.update(data_hash);
    h.finalize().into()
}

impl Block {
    /// The block following `previous` (or genesis when `None`) holding `txs`.
    pub fn next(previous: Option<&Block>, txs: Vec<Tx>) -> Block {
        let (number, previous_hash) = match previous {
            Some(p) => (p.number + 1, p.hash),
            None => (0, [0u8; 32]),
        };
        let data_hash = data_hash(&txs);
        let hash = header_hash(number, &previous_hash, &data_hash);
        Block {
            number,
            previous_hash,
            data_hash,
            hash,
            txs,
        }
    }

    /// Whether the stored hashes match the contents.
    pub fn is_consistent(&self) -> bool {
        self.data_hash == data_hash(&self.txs)
            && self.hash == header_hash(self.number, &self.previous_hash, &self.data_hash)
    }
}

/// The chain of blocks, genesis first.
///
/// Invariant: `blocks[i].number == i` and `blocks[i+1].previous_hash ==
/// blocks[i].hash`. Blocks are shared (`Arc`): they never change once
/// appended, so a snapshot copies pointers, not transactions, and is
/// serialised off the raft thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    blocks: Vec<Arc<Block>>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            blocks: vec![Arc::new(Block::next(None, Vec::new()))],
        }
    }
}

/// A chain that does not link up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("block {number}: {problem}")]
pub struct ChainError {
    /// The first bad block.
    pub number: u64,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl Ledger {
    /// Rebuilds a ledger from blocks, verifying numbering and hashes.
    pub fn from_blocks(blocks: Vec<Block>) -> Result<Ledger, ChainError> {
        for (i, b) in blocks.iter().enumerate() {
            let number = i as u64;
            if b.number != number {
                return Err(ChainError {
                    number: b.number,
                    problem: "number out of sequence",
                });
            }
            if !b.is_consistent() {
                return Err(ChainError {
                    number,
                    problem: "hash does not match contents",
                });
            }
            let expected = if i == 0 {
                [0u8; 32]
            } else {
                blocks[i - 1].hash
            };
            if b.previous_hash != expected {
                return Err(ChainError {
                    number,
                    problem: "previous hash does not link",
                });
            }
        }
        if blocks.is_empty() {
            return Ok(Ledger::default());
        }
        Ok(Ledger {
            blocks: blocks.into_iter().map(Arc::new).collect(),
        })
    }

    /// Appends a block holding `txs` and returns it.
    pub fn append(&mut self, txs: Vec<Tx>) -> &Block {
        let block = Block::next(self.blocks.last().map(|b| &**b), txs);
        self.blocks.push(Arc::new(block));
        self.blocks.last().expect("just pushed")
    }

    /// Number of the last block + 1.
    pub fn height(&self) -> u64 {
        self.blocks.len() as u64
    }

    /// Blocks `from .. from + limit` that exist.
    pub fn range(&self, from: u64, limit: u64) -> &[Arc<Block>] {
        let start = (from.min(self.height())) as usize;
        let end = (from.saturating_add(limit).min(self.height())) as usize;
        &self.blocks[start..end]
    }

    /// Every block.
    pub fn blocks(&self) -> &[Arc<Block>] {
        &self.blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(id: &str) -> Tx {
        Tx {
            id: id.into(),
            payload: format!("p-{id}"),
            ops: vec![],
        }
    }

    #[test]
    fn blocks_chain_by_header_hash() {
        let mut l = Ledger::default();
        l.append(vec![tx("a"), tx("b")]);
        l.append(vec![tx("c")]);
        assert_eq!(l.height(), 3);
        let b = l.blocks();
        assert_eq!(b[0].previous_hash, [0u8; 32]);
        assert_eq!(b[1].previous_hash, b[0].hash);
        assert_eq!(b[2].previous_hash, b[1].hash);
        assert!(Ledger::from_blocks(b.iter().map(|b| (**b).clone()).collect()).is_ok());
    }

    #[test]
    fn tampering_is_detected() {
        let mut l = Ledger::default();
        l.append(vec![tx("a")]);
        l.append(vec![tx("b")]);
        let mut blocks: Vec<Block> = l.blocks().iter().map(|b| (**b).clone()).collect();
        blocks[1].txs[0].payload = "evil".into();
        assert_eq!(Ledger::from_blocks(blocks.clone()).unwrap_err().number, 1);
        blocks[1] = Block::next(Some(&blocks[0]), vec![tx("evil")]);
        let e = Ledger::from_blocks(blocks).unwrap_err();
        assert_eq!(
            e,
            ChainError {
                number: 2,
                problem: "previous hash does not link"
            }
        );
    }

    #[test]
    fn the_hash_scheme_is_the_documented_one() {
        // sha256 of nothing, as docs/node-api.md says for an empty block.
        assert_eq!(
            hex::encode(data_hash(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let json = serde_json::to_value(&*Ledger::default().blocks()[0]).unwrap();
        assert_eq!(json["previous_hash"], "0".repeat(64));
    }
}
