//! Tail shapes: what a lost write that grew a file leaves behind after a
//! power loss or a torn write. A real filesystem may have made the file's
//! new size durable (its journal, a preallocated segment) while the data
//! blocks never reached the disk: the file then has its new length and the
//! lost bytes read as zeros (blocks allocated, never written: what etcd
//! treats as a torn write) or as whatever the blocks held before.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use fuser::Errno;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{io_errno, DataOp, Ino, Overlay};

/// What the lost part of an unsynced write that grew a file looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TailShape {
    /// The file keeps its durable length: the lost bytes are gone.
    Keep,
    /// The file keeps the length the process last saw; the lost bytes
    /// past its durable length read as zeros.
    Zero,
    /// The same length; the bytes lost writes covered past the durable
    /// length read as seeded random bytes (the rest, holes the process
    /// never wrote, as zeros).
    Garbage,
}

impl TailShape {
    /// Every shape, in protocol order.
    pub const ALL: [TailShape; 3] = [TailShape::Keep, TailShape::Zero, TailShape::Garbage];

    /// The name used in the protocol.
    pub fn name(self) -> &'static str {
        match self {
            TailShape::Keep => "keep",
            TailShape::Zero => "zero",
            TailShape::Garbage => "garbage",
        }
    }

    /// The shape a protocol word names.
    pub fn from_name(name: &str) -> Option<TailShape> {
        TailShape::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// The part of a file a tail shape wrote: `length` bytes from `offset`
/// (the file's durable length before), zeros or garbage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailRegion {
    /// The file's durable path from the mount's root.
    pub path: String,
    /// Where the tail starts: the file's durable length before.
    pub offset: u64,
    /// The tail's length; the file's new length is `offset + length`.
    pub length: u64,
}

/// What `lose-unfsynced` with a tail shape did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lost {
    /// The shape.
    pub tail: TailShape,
    /// The seed the garbage was drawn from.
    pub seed: u64,
    /// The tails written, one per file that grew.
    pub tails: Vec<TailRegion>,
}

/// Garbage is drawn and written this many bytes at a time.
const GARBAGE_CHUNK_BYTES: u64 = 64 << 10;

impl Overlay {
    /// Power loss with a tail shape: every file with a durable name that
    /// the lost writes grew is given its tail, then every pending change
    /// is dropped as [`Overlay::lose`] does.
    pub fn lose_shaped(&mut self, tail: TailShape, seed: u64) -> Result<Lost, Errno> {
        let mut lost: Vec<(u64, Ino, DataOp)> = self
            .objects
            .iter()
            .flat_map(|(ino, o)| o.pending.iter().map(|(s, op)| (*s, *ino, op.clone())))
            .collect();
        lost.sort_by_key(|(seq, _, _)| *seq);
        let lost = lost.into_iter().map(|(_, ino, op)| (ino, op)).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let tails = self.shape_tails(lost, tail, &mut rng);
        // Dropped whatever happened: the model must match the backing files.
        self.lose()?;
        Ok(Lost {
            tail,
            seed,
            tails: tails?,
        })
    }

    /// Gives every file the `lost` data changes grew past its durable
    /// length the tail `tail` says (nothing for [`TailShape::Keep`]).
    /// Files with no durable name are skipped: they are lost with their name.
    pub(crate) fn shape_tails(
        &mut self,
        lost: Vec<(Ino, DataOp)>,
        tail: TailShape,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<TailRegion>, Errno> {
        if tail == TailShape::Keep {
            return Ok(Vec::new());
        }
        let mut by_file: BTreeMap<Ino, Vec<DataOp>> = BTreeMap::new();
        for (ino, op) in lost {
            by_file.entry(ino).or_default().push(op);
        }
        let mut regions = Vec::new();
        for (ino, ops) in by_file {
            if let Some(region) = self.shape_tail(ino, &ops, tail, rng)? {
                regions.push(region);
            }
        }
        Ok(regions)
    }

    fn shape_tail(
        &mut self,
        ino: Ino,
        ops: &[DataOp],
        tail: TailShape,
        rng: &mut ChaCha8Rng,
    ) -> Result<Option<TailRegion>, Errno> {
        let (Some(path), Some(name)) = (self.durable_path(ino), self.durable_name(ino)) else {
            return Ok(None);
        };
        let grown_to = self.get(ino)?.size;
        let file = self.content(ino)?;
        let kept = file
            .metadata()
            .map_err(|e| io_errno("stat", &path, e))?
            .len();
        if grown_to <= kept {
            return Ok(None);
        }
        if tail == TailShape::Garbage {
            for op in ops {
                if let DataOp::Write { offset, data } = op {
                    let from = (*offset).max(kept);
                    let to = (offset + data.len() as u64).min(grown_to);
                    write_garbage(file, from, to, rng)
                        .map_err(|e| io_errno("write garbage", &path, e))?;
                }
            }
        }
        file.set_len(grown_to)
            .map_err(|e| io_errno("extend", &path, e))?;
        Ok(Some(TailRegion {
            path: name,
            offset: kept,
            length: grown_to - kept,
        }))
    }
}

/// Writes seeded random bytes over `from..to` of `file` (nothing when empty).
fn write_garbage(file: &File, from: u64, to: u64, rng: &mut ChaCha8Rng) -> std::io::Result<()> {
    let mut at = from;
    let mut chunk = Vec::new();
    while at < to {
        let n = (to - at).min(GARBAGE_CHUNK_BYTES);
        chunk.resize(n as usize, 0);
        rng.fill_bytes(&mut chunk);
        file.write_all_at(&chunk, at)?;
        at += n;
    }
    Ok(())
}
