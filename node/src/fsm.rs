//! The state machine applied from committed entries: the ledger and the
//! key-value registers, and its snapshot form.

use crate::kv::{Kv, OpResult};
use crate::ledger::{Block, Ledger};
use crate::tx::{bin, Tx};
use serde::Deserialize;
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

/// What the trace's `digest` event shows of a state (docs/trace.md): cheap
/// to take, O(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateDigest {
    /// Blocks in the chain.
    pub height: u64,
    /// The last block's header hash (`None` for an empty chain).
    pub head: Option<[u8; 32]>,
    /// [`Kv::digest`] of the registers.
    pub registers: u64,
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

    /// The state's digest: chain height and head, registers' digest.
    pub fn digest(&self) -> StateDigest {
        StateDigest {
            height: self.ledger.height(),
            head: self.ledger.blocks().last().map(|b| b.hash),
            registers: self.kv.digest(),
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

    /// Rebuilds from snapshot data (the binary form, or the JSON one
    /// nodes before it wrote), verifying the chain. Untrusted input: any
    /// damage is an error naming it, never a panic.
    pub fn from_snapshot_data(data: &[u8]) -> Result<StateMachine, SnapshotDataError> {
        let blocks_and_kv = match data.strip_prefix(SNAPSHOT_MAGIC) {
            Some(body) => decode_snapshot(body).map_err(SnapshotDataError)?,
            None => from_json_snapshot(data)?,
        };
        let (blocks, kv) = blocks_and_kv;
        let ledger = Ledger::from_blocks(blocks).map_err(|e| SnapshotDataError(e.to_string()))?;
        Ok(StateMachine { ledger, kv })
    }
}

/// The first bytes of binary snapshot data (JSON snapshot data, from nodes
/// before it, starts with `{`).
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"\0ordsnp1";

/// The first bytes of a binary batch in an entry (a JSON one, from nodes
/// before it, starts with `[`).
pub const BATCH_MAGIC: &[u8; 8] = b"\0ordbat1";

/// Smallest encoded block: number, three hashes, transaction count.
const BLOCK_BYTES_MIN: usize = 8 + 3 * 32 + 4;

fn decode_snapshot(body: &[u8]) -> Result<(Vec<Block>, Kv), String> {
    let mut r = bin::Reader::new(body);
    let n = r.count(BLOCK_BYTES_MIN, "block count")?;
    let mut blocks = Vec::with_capacity(n);
    for _ in 0..n {
        blocks.push(read_block(&mut r)?);
    }
    let kv = read_registers(&mut r)?;
    r.finish("snapshot")?;
    Ok((blocks, kv))
}

/// One block in the snapshot's (and the block store's) encoding.
pub(crate) fn read_block(r: &mut bin::Reader<'_>) -> Result<Block, String> {
    let number = r.u64("block number")?;
    let previous_hash = r.hash("previous hash")?;
    let data_hash = r.hash("data hash")?;
    let hash = r.hash("header hash")?;
    let txs = decode_txs(r)?;
    Ok(Block {
        number,
        previous_hash,
        data_hash,
        hash,
        txs,
    })
}

/// Appends `b` in the encoding [`read_block`] reads.
pub(crate) fn put_block(out: &mut Vec<u8>, b: &Block) {
    bin::put_u64(out, b.number);
    out.extend_from_slice(&b.previous_hash);
    out.extend_from_slice(&b.data_hash);
    out.extend_from_slice(&b.hash);
    put_txs(out, &b.txs);
}

/// The encoded size of `b`.
pub(crate) fn block_len(b: &Block) -> usize {
    BLOCK_BYTES_MIN + b.txs.iter().map(bin::tx_len).sum::<usize>()
}

fn read_registers(r: &mut bin::Reader<'_>) -> Result<Kv, String> {
    let n = r.count(12, "register count")?;
    let mut registers = Vec::with_capacity(n);
    for _ in 0..n {
        let key = r.str("register key")?;
        registers.push((key, r.u64("register value")? as i64));
    }
    if registers.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err("register keys are not in strictly increasing order".into());
    }
    Ok(Kv::from_registers(registers))
}

fn put_registers(out: &mut Vec<u8>, kv: &Kv) {
    bin::put_u32(out, kv.registers().count() as u32);
    for (key, value) in kv.registers() {
        bin::put_str(out, key);
        bin::put_u64(out, value as u64);
    }
}

/// The first bytes of a manifest: snapshot data on disk whose blocks are
/// in the block store (`blockstore.rs`).
pub const MANIFEST_MAGIC: &[u8; 8] = b"\0ordman1";

/// What a snapshot file holds when its blocks are in the block store:
/// [`MANIFEST_MAGIC`] | `generation: u64 | height: u64 | last block hash
/// (32 bytes) | registers` (as in the snapshot form). The snapshot raft
/// ships to a follower is the whole form ([`Captured::to_snapshot_data`]).
#[derive(Debug, PartialEq)]
pub struct Manifest {
    /// The block store file's generation (`blocks.<generation>`).
    pub generation: u64,
    /// Blocks the snapshot holds: the store's first `height`.
    pub height: u64,
    /// The hash of block `height - 1` (zeros at height 0).
    pub last_hash: [u8; 32],
    /// The registers.
    pub kv: Kv,
}

impl Manifest {
    /// Decodes snapshot data that is a manifest; `None` when it is another
    /// form (the whole state).
    pub fn decode(data: &[u8]) -> Option<Result<Manifest, SnapshotDataError>> {
        let body = data.strip_prefix(MANIFEST_MAGIC)?;
        let mut r = bin::Reader::new(body);
        let parsed = (|| {
            let generation = r.u64("generation")?;
            let height = r.u64("height")?;
            let last_hash = r.hash("last block hash")?;
            let kv = read_registers(&mut r)?;
            r.finish("manifest")?;
            Ok(Manifest {
                generation,
                height,
                last_hash,
                kv,
            })
        })();
        Some(parsed.map_err(|e: String| SnapshotDataError(format!("manifest: {e}"))))
    }

    /// Rebuilds the state from the manifest and the store's blocks.
    pub fn restore(self, blocks: Vec<Block>) -> Result<StateMachine, SnapshotDataError> {
        let last = blocks.last().map_or([0; 32], |b| b.hash);
        if blocks.len() as u64 != self.height || last != self.last_hash {
            return Err(SnapshotDataError(format!(
                "the block store's first {} blocks do not end in the manifest's last block hash",
                self.height
            )));
        }
        let ledger = Ledger::from_blocks(blocks).map_err(|e| SnapshotDataError(e.to_string()))?;
        Ok(StateMachine {
            ledger,
            kv: self.kv,
        })
    }
}

fn decode_txs(r: &mut bin::Reader<'_>) -> Result<Vec<Tx>, String> {
    let n = r.count(bin::TX_BYTES_MIN, "transaction count")?;
    let mut txs = Vec::with_capacity(n);
    for _ in 0..n {
        txs.push(r.tx()?);
    }
    Ok(txs)
}

fn put_txs(out: &mut Vec<u8>, txs: &[Tx]) {
    bin::put_u32(out, txs.len() as u32);
    for tx in txs {
        bin::put_tx(out, tx);
    }
}

fn from_json_snapshot(data: &[u8]) -> Result<(Vec<Block>, Kv), SnapshotDataError> {
    {
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
        Ok((raw.ledger.blocks, raw.kv))
    }
}

/// The state at one index, its blocks shared with the live ledger.
#[derive(Debug, Clone)]
pub struct Captured {
    blocks: Vec<Arc<Block>>,
    kv: Kv,
}

impl Captured {
    /// The snapshot form, binary (ARCHITECTURE.md): [`SNAPSHOT_MAGIC`],
    /// `blocks: u32 count`, each block `number: u64 | previous_hash |
    /// data_hash | hash (32 bytes each) | txs: u32 count | tx...` (the
    /// encoding of `tx::bin`), then `registers: u32 count`, each `key:
    /// string | value: i64`, keys in increasing order. Sized first, so the
    /// buffer is allocated once.
    pub fn to_snapshot_data(&self) -> Vec<u8> {
        let blocks: usize = self.blocks.iter().map(|b| block_len(b)).sum();
        let mut out = Vec::with_capacity(SNAPSHOT_MAGIC.len() + 4 + blocks + self.registers_len());
        out.extend_from_slice(SNAPSHOT_MAGIC);
        bin::put_u32(&mut out, self.blocks.len() as u32);
        for b in &self.blocks {
            put_block(&mut out, b);
        }
        put_registers(&mut out, &self.kv);
        out
    }

    fn registers_len(&self) -> usize {
        4 + self
            .kv
            .registers()
            .map(|(k, _)| 12 + k.len())
            .sum::<usize>()
    }

    /// The manifest form ([`Manifest`]) naming block store `generation`.
    pub fn to_manifest(&self, generation: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(MANIFEST_MAGIC.len() + 48 + self.registers_len());
        out.extend_from_slice(MANIFEST_MAGIC);
        bin::put_u64(&mut out, generation);
        bin::put_u64(&mut out, self.blocks.len() as u64);
        out.extend_from_slice(&self.blocks.last().map_or([0; 32], |b| b.hash));
        put_registers(&mut out, &self.kv);
        out
    }

    /// The captured state's digest ([`StateMachine::digest`]).
    pub fn digest(&self) -> StateDigest {
        StateDigest {
            height: self.height(),
            head: self.blocks.last().map(|b| b.hash),
            registers: self.kv.digest(),
        }
    }

    /// The blocks captured.
    pub fn blocks(&self) -> &[Arc<Block>] {
        &self.blocks
    }

    /// The ledger height captured.
    pub fn height(&self) -> u64 {
        self.blocks.len() as u64
    }
}

/// Encodes a proposal (a cut batch) as entry data: [`BATCH_MAGIC`], then
/// `txs: u32 count | tx...` (the encoding of `tx::bin`).
pub fn encode_batch(txs: &[Tx]) -> Vec<u8> {
    let len = BATCH_MAGIC.len() + 4 + txs.iter().map(bin::tx_len).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(BATCH_MAGIC);
    put_txs(&mut out, txs);
    out
}

/// Decodes entry data into a batch: the binary form, or the JSON array
/// nodes before it wrote (their logs still replay).
pub fn decode_batch(data: &[u8]) -> Result<Vec<Tx>, String> {
    match data.strip_prefix(BATCH_MAGIC) {
        Some(body) => {
            let mut r = bin::Reader::new(body);
            let txs = decode_txs(&mut r)?;
            r.finish("batch")?;
            Ok(txs)
        }
        None => serde_json::from_slice(data).map_err(|e| e.to_string()),
    }
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

    fn sample() -> StateMachine {
        let mut sm = StateMachine::default();
        for b in 0..3 {
            let txs = (0..4)
                .map(|i| Tx {
                    id: format!("t{b}-{i}"),
                    payload: "p".repeat(i),
                    ops: vec![KvOp::Write {
                        key: format!("k{i}"),
                        value: i as i64 - 2,
                    }],
                })
                .collect();
            sm.apply(txs);
        }
        sm
    }

    /// A state restored from any snapshot form has the digest of the state
    /// it was taken from (docs/trace.md: digests at one index are equal on
    /// every node, whichever way it got there).
    #[test]
    fn every_restored_form_keeps_the_digest() {
        let sm = sample();
        let d = sm.digest();
        assert_eq!(d.height, 4);
        assert_eq!(d.head, Some(sm.ledger.blocks()[3].hash));
        assert_eq!(d.registers, sm.kv.digest());
        assert_ne!(d.registers, 0);
        assert_eq!(sm.capture().digest(), d);
        let binary = StateMachine::from_snapshot_data(&sm.to_snapshot_data()).unwrap();
        assert_eq!(binary.digest(), d);
        let blocks: Vec<&Block> = sm.ledger.blocks().iter().map(|b| &**b).collect();
        let json = serde_json::json!({"ledger": {"blocks": blocks}, "kv": sm.kv});
        let from_json =
            StateMachine::from_snapshot_data(&serde_json::to_vec(&json).unwrap()).unwrap();
        assert_eq!(from_json.digest(), d);
        let m = Manifest::decode(&sm.capture().to_manifest(1))
            .unwrap()
            .unwrap();
        let owned = sm.ledger.blocks().iter().map(|b| (**b).clone()).collect();
        assert_eq!(m.restore(owned).unwrap().digest(), d);
    }

    #[test]
    fn a_manifest_restores_with_its_blocks_and_refuses_others() {
        let sm = sample();
        let captured = sm.capture();
        let data = captured.to_manifest(7);
        let m = Manifest::decode(&data).unwrap().unwrap();
        assert_eq!((m.generation, m.height), (7, sm.ledger.height()));
        let blocks = |n: usize| -> Vec<Block> {
            sm.ledger.blocks()[..n]
                .iter()
                .map(|b| (**b).clone())
                .collect()
        };
        let back = m.restore(blocks(sm.ledger.blocks().len())).unwrap();
        assert_eq!((back.ledger, back.kv), (sm.ledger.clone(), sm.kv.clone()));
        let m = Manifest::decode(&data).unwrap().unwrap();
        let short = m.restore(blocks(2)).unwrap_err().to_string();
        assert!(short.contains("last block hash"), "{short}");
        // The whole form is not a manifest; a cut manifest is an error.
        assert!(Manifest::decode(&sm.to_snapshot_data()).is_none());
        for cut in MANIFEST_MAGIC.len()..data.len() {
            assert!(
                Manifest::decode(&data[..cut]).unwrap().is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn the_binary_snapshot_is_exactly_sized_and_refuses_damage() {
        let sm = sample();
        let data = sm.to_snapshot_data();
        assert!(data.starts_with(SNAPSHOT_MAGIC));
        assert_eq!(data.capacity(), data.len(), "sized once");
        let back = StateMachine::from_snapshot_data(&data).unwrap();
        assert_eq!((back.ledger, back.kv), (sm.ledger.clone(), sm.kv.clone()));
        // Cut anywhere: an error, never a panic.
        for cut in SNAPSHOT_MAGIC.len()..data.len() {
            let e = StateMachine::from_snapshot_data(&data[..cut]).unwrap_err();
            assert!(e.to_string().starts_with("snapshot data: "), "{e}");
        }
        let mut longer = data.clone();
        longer.push(0);
        let e = StateMachine::from_snapshot_data(&longer).unwrap_err();
        assert!(e.to_string().contains("after the end"), "{e}");
        // A flipped payload byte breaks the chain check.
        let mut flipped = data.clone();
        let at = data.windows(3).position(|w| w == b"ppp").unwrap();
        flipped[at] = b'q';
        let e = StateMachine::from_snapshot_data(&flipped).unwrap_err();
        assert!(e.to_string().contains("hash does not match"), "{e}");
        // A count far beyond the bytes is refused before allocating.
        let mut huge = SNAPSHOT_MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        let e = StateMachine::from_snapshot_data(&huge).unwrap_err();
        assert!(e.to_string().contains("cannot fit"), "{e}");
    }

    /// Snapshots and log entries written by nodes before the binary
    /// encoding still load.
    #[test]
    fn json_snapshots_and_batches_of_older_nodes_still_decode() {
        let sm = sample();
        let blocks: Vec<&Block> = sm.ledger.blocks().iter().map(|b| &**b).collect();
        let json = serde_json::json!({"ledger": {"blocks": blocks}, "kv": sm.kv});
        let back = StateMachine::from_snapshot_data(&serde_json::to_vec(&json).unwrap()).unwrap();
        assert_eq!((back.ledger, back.kv), (sm.ledger.clone(), sm.kv.clone()));
        let txs = sm.ledger.blocks()[1].txs.clone();
        assert_eq!(
            decode_batch(&serde_json::to_vec(&txs).unwrap()).unwrap(),
            txs
        );
        let binary = encode_batch(&txs);
        assert!(binary.starts_with(BATCH_MAGIC));
        assert_eq!(decode_batch(&binary).unwrap(), txs);
        assert!(decode_batch(&binary[..binary.len() - 1]).is_err());
        assert!(decode_batch(b"garbage").is_err());
    }
}
