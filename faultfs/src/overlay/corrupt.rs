//! Damage to the durable image (`corrupt`, `corrupt-pick`): bits flipped,
//! bytes zeroed or a file cut short in a backing file, as a failing disk or
//! a careless operator leaves it. The damage is made durable at once
//! (fsynced). Pending writes the process has not fsynced stay laid over
//! it, as dirty pages in a page cache would: the process sees the damage
//! wherever it reads durable bytes, at once (files are opened with direct
//! I/O, so the kernel keeps no copy), and everywhere after a power loss.

use std::fs::File;
use std::os::unix::fs::FileExt;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::error::io_error;
use super::{DataOp, FaultError, Ino, Kind, Overlay, ROOT};
use crate::glob;

/// What `corrupt` does to a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CorruptKind {
    /// One seeded bit flipped in every byte of the region.
    Bitflip,
    /// The region's bytes set to zero.
    Zero,
    /// The file cut where the region starts.
    Truncate,
}

impl CorruptKind {
    /// Every kind, in protocol order.
    pub const ALL: [CorruptKind; 3] = [
        CorruptKind::Bitflip,
        CorruptKind::Zero,
        CorruptKind::Truncate,
    ];

    /// The name used in the protocol.
    pub fn name(self) -> &'static str {
        match self {
            CorruptKind::Bitflip => "bitflip",
            CorruptKind::Zero => "zero",
            CorruptKind::Truncate => "truncate",
        }
    }

    /// The kind a protocol word names.
    pub fn from_name(name: &str) -> Option<CorruptKind> {
        CorruptKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Damage at a place the caller chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// One bit flipped in each of `length` bytes from `offset`, which bit
    /// drawn from `seed` (from the mount's seed when `None`).
    Bitflip {
        /// The region's start.
        offset: u64,
        /// The region's length (at least 1).
        length: u64,
        /// Draws the bits.
        seed: Option<u64>,
    },
    /// `length` bytes from `offset` set to zero.
    Zero {
        /// The region's start.
        offset: u64,
        /// The region's length (at least 1).
        length: u64,
    },
    /// The file cut at `offset` (below its durable size).
    Truncate {
        /// The new length.
        offset: u64,
    },
}

impl Damage {
    /// Its kind.
    pub fn kind(&self) -> CorruptKind {
        match self {
            Damage::Bitflip { .. } => CorruptKind::Bitflip,
            Damage::Zero { .. } => CorruptKind::Zero,
            Damage::Truncate { .. } => CorruptKind::Truncate,
        }
    }
}

/// What `corrupt` did, exactly, for the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Corruption {
    /// The damage done.
    pub kind: CorruptKind,
    /// The file's durable path from the mount's root.
    pub path: String,
    /// The region's start (for `truncate`, the new length).
    pub offset: u64,
    /// The region's length (for `truncate`, the bytes cut off).
    pub length: u64,
    /// The seed the flipped bits were drawn from (`bitflip`), or that
    /// picked the file and region (`corrupt-pick`); `None` otherwise.
    pub seed: Option<u64>,
    /// The file's durable size before.
    pub size_before: u64,
    /// The file's durable size after.
    pub size_after: u64,
    /// Bytes of the region that pending (unsynced) changes cover: the
    /// process reads those from its own writes until they are lost or made
    /// durable (which overwrites the damage there).
    pub shadowed_bytes: u64,
    /// For `corrupt-pick`: how many files matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates: Option<usize>,
}

/// `corrupt-pick bitflip` damages at most this many bytes unless told.
pub const BITFLIP_LENGTH_MAX_DEFAULT: u64 = 8;

/// `corrupt-pick zero` zeroes at most this many bytes unless told (a
/// sector's worth of a 4 KiB-page disk).
pub const ZERO_LENGTH_MAX_DEFAULT: u64 = 4096;

/// Damage is read and written this many bytes at a time.
const CHUNK_BYTES: u64 = 64 << 10;

impl Overlay {
    /// Damages the durable file `path` (from the mount's root) as `damage`
    /// says; `seed` draws the flipped bits when a bitflip names no seed.
    pub fn corrupt(
        &mut self,
        path: &str,
        damage: Damage,
        seed: u64,
    ) -> Result<Corruption, FaultError> {
        let ino = self.resolve_durable(path)?;
        self.damage(ino, damage, seed)
    }

    /// Picks, from `seed`, a non-empty durable file matching `pattern`
    /// (see [`crate::glob`]) and a region in it of at most `length_max`
    /// bytes (by default 8 for `bitflip`, 4096 for `zero`, the whole file
    /// for `truncate`), then damages it as [`Overlay::corrupt`] does.
    pub fn corrupt_pick(
        &mut self,
        kind: CorruptKind,
        pattern: &str,
        seed: u64,
        length_max: Option<u64>,
    ) -> Result<Corruption, FaultError> {
        let mut candidates = Vec::new();
        for (path, ino) in self.durable_files() {
            if !glob::matches(pattern, &path) {
                continue;
            }
            let size = self.durable_size(ino)?;
            if size > 0 {
                candidates.push((ino, size));
            }
        }
        if candidates.is_empty() {
            return Err(FaultError::NoMatch {
                glob: pattern.to_owned(),
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (ino, size) = candidates[rng.gen_range(0..candidates.len())];
        let damage = pick_region(kind, size, length_max, seed, &mut rng);
        let mut done = self.damage(ino, damage, seed)?;
        done.seed = Some(seed);
        done.candidates = Some(candidates.len());
        Ok(done)
    }

    fn damage(&mut self, ino: Ino, damage: Damage, seed: u64) -> Result<Corruption, FaultError> {
        let path = self
            .durable_path(ino)
            .expect("resolved in the durable tree");
        let name = self
            .durable_name(ino)
            .expect("resolved in the durable tree");
        let size_before = self.durable_size(ino)?;
        let (offset, length) = match damage {
            Damage::Bitflip { offset, length, .. } | Damage::Zero { offset, length } => {
                (offset, length)
            }
            Damage::Truncate { offset } => (offset, size_before.saturating_sub(offset)),
        };
        if length == 0
            || offset
                .checked_add(length)
                .is_none_or(|end| end > size_before)
        {
            return Err(FaultError::Region {
                path: name,
                offset,
                length,
                size: size_before,
            });
        }
        let file = self.content(ino).map_err(|e| FaultError::Io {
            what: "open",
            path: path.clone(),
            source: std::io::Error::from_raw_os_error(i32::from(e)),
        })?;
        let (done, bits_seed) = match damage {
            Damage::Bitflip { seed: s, .. } => {
                let s = s.unwrap_or(seed);
                (flip_bits(file, offset, length, s), Some(s))
            }
            Damage::Zero { .. } => (zero(file, offset, length), None),
            Damage::Truncate { .. } => (file.set_len(offset), None),
        };
        done.and_then(|()| file.sync_all())
            .map_err(io_error("damage", &path))?;
        let size_after = self.durable_size(ino)?;
        self.resize_visible(ino, size_after);
        Ok(Corruption {
            kind: damage.kind(),
            path: name,
            offset,
            length,
            seed: bits_seed,
            size_before,
            size_after,
            shadowed_bytes: shadowed_bytes(
                &self.get(ino).expect("resolved").pending,
                offset,
                length,
            ),
            candidates: None,
        })
    }

    /// The file whose durable name is `path`.
    fn resolve_durable(&self, path: &str) -> Result<Ino, FaultError> {
        let trimmed = path.trim_start_matches('/');
        let bad = || FaultError::BadPath {
            path: path.to_owned(),
        };
        let mut ino = ROOT;
        for part in trimmed.split('/') {
            if part.is_empty() || part == "." || part == ".." {
                return Err(bad());
            }
            let dir = self.objects.get(&ino).ok_or_else(bad)?;
            ino = *dir
                .durable_children
                .get(std::ffi::OsStr::new(part))
                .ok_or_else(|| FaultError::NoFile {
                    path: format!("/{trimmed}"),
                })?;
        }
        match self.objects.get(&ino).map(|o| o.kind) {
            Some(Kind::File) => Ok(ino),
            _ => Err(FaultError::NotAFile {
                path: format!("/{trimmed}"),
            }),
        }
    }

    /// Every file in the durable image with its path from the mount's
    /// root (no leading `/`), in path order.
    fn durable_files(&self) -> Vec<(String, Ino)> {
        let mut out = Vec::new();
        let mut dirs = vec![(String::new(), ROOT)];
        while let Some((prefix, dir)) = dirs.pop() {
            let Some(d) = self.objects.get(&dir) else {
                continue;
            };
            for (name, child) in &d.durable_children {
                let path = format!("{prefix}{}", name.to_string_lossy());
                match self.objects.get(child).map(|o| o.kind) {
                    Some(Kind::File) => out.push((path, *child)),
                    Some(Kind::Dir) => dirs.push((format!("{path}/"), *child)),
                    None => {}
                }
            }
        }
        out.sort();
        out
    }

    fn durable_size(&self, ino: Ino) -> Result<u64, FaultError> {
        let path = self.durable_path(ino).expect("a durable file");
        std::fs::metadata(&path)
            .map(|m| m.len())
            .map_err(io_error("stat", &path))
    }

    /// The size the process sees, replayed over a new durable length.
    fn resize_visible(&mut self, ino: Ino, durable_len: u64) {
        let Some(obj) = self.objects.get_mut(&ino) else {
            return;
        };
        obj.size = obj
            .pending
            .iter()
            .fold(durable_len, |size, (_, op)| match op {
                DataOp::Write { offset, data } => size.max(offset + data.len() as u64),
                DataOp::Truncate { len } => *len,
            });
    }
}

/// A seeded region of a `size`-byte file for `kind` (`size` > 0).
fn pick_region(
    kind: CorruptKind,
    size: u64,
    length_max: Option<u64>,
    seed: u64,
    rng: &mut ChaCha8Rng,
) -> Damage {
    let default_max = match kind {
        CorruptKind::Bitflip => BITFLIP_LENGTH_MAX_DEFAULT,
        CorruptKind::Zero => ZERO_LENGTH_MAX_DEFAULT,
        CorruptKind::Truncate => size,
    };
    let max = length_max.unwrap_or(default_max).clamp(1, size);
    let length = rng.gen_range(1..=max);
    match kind {
        CorruptKind::Truncate => Damage::Truncate {
            offset: size - length,
        },
        CorruptKind::Bitflip | CorruptKind::Zero => {
            let offset = rng.gen_range(0..=size - length);
            if kind == CorruptKind::Zero {
                Damage::Zero { offset, length }
            } else {
                Damage::Bitflip {
                    offset,
                    length,
                    seed: Some(seed),
                }
            }
        }
    }
}

/// Flips one bit, drawn from `seed`, in every byte of the region.
fn flip_bits(file: &File, offset: u64, length: u64, seed: u64) -> std::io::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut buf = Vec::new();
    let mut at = offset;
    while at < offset + length {
        let n = (offset + length - at).min(CHUNK_BYTES);
        buf.resize(n as usize, 0);
        file.read_exact_at(&mut buf, at)?;
        for b in buf.iter_mut() {
            *b ^= 1 << rng.gen_range(0..8);
        }
        file.write_all_at(&buf, at)?;
        at += n;
    }
    Ok(())
}

fn zero(file: &File, offset: u64, length: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; length.min(CHUNK_BYTES) as usize];
    let mut at = offset;
    while at < offset + length {
        let n = (offset + length - at).min(CHUNK_BYTES);
        file.write_all_at(&zeros[..n as usize], at)?;
        at += n;
    }
    Ok(())
}

/// Bytes of `offset..offset+length` that a pending change covers: a
/// write over them, or a truncation below them.
fn shadowed_bytes(pending: &[(u64, DataOp)], offset: u64, length: u64) -> u64 {
    let (from, to) = (offset, offset + length);
    let mut spans: Vec<(u64, u64)> = pending
        .iter()
        .map(|(_, op)| match op {
            DataOp::Write { offset, data } => (*offset, offset + data.len() as u64),
            DataOp::Truncate { len } => (*len, u64::MAX),
        })
        .map(|(a, b)| (a.max(from), b.min(to)))
        .filter(|(a, b)| a < b)
        .collect();
    spans.sort();
    let (mut total, mut reached) = (0, from);
    for (a, b) in spans {
        let a = a.max(reached);
        if a < b {
            total += b - a;
            reached = b;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadowed_bytes_counts_the_union_of_what_pending_changes_cover() {
        let w = |offset: u64, n: usize| {
            (
                0,
                DataOp::Write {
                    offset,
                    data: vec![1; n],
                },
            )
        };
        assert_eq!(shadowed_bytes(&[], 0, 10), 0);
        assert_eq!(shadowed_bytes(&[w(2, 3), w(4, 3)], 0, 10), 5);
        assert_eq!(shadowed_bytes(&[w(8, 10)], 0, 10), 2);
        let t = (0, DataOp::Truncate { len: 6 });
        assert_eq!(shadowed_bytes(&[w(0, 2), t], 0, 10), 6);
    }

    #[test]
    fn a_picked_region_lies_inside_the_file() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for size in [1u64, 2, 9, 5000] {
            for kind in CorruptKind::ALL {
                for _ in 0..50 {
                    match pick_region(kind, size, None, 3, &mut rng) {
                        Damage::Bitflip { offset, length, .. } => {
                            assert!((1..=8).contains(&length) && offset + length <= size)
                        }
                        Damage::Zero { offset, length } => {
                            assert!((1..=4096).contains(&length) && offset + length <= size)
                        }
                        Damage::Truncate { offset } => assert!(offset < size),
                    }
                }
            }
        }
    }
}
