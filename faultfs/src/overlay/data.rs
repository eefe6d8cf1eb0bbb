//! Pending file data: writes and truncations not yet on the backing file,
//! kept in the order the process issued them.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// One change to a file's bytes that the process made and the disk has not
/// yet been told about.
#[derive(Debug, Clone)]
pub(crate) enum DataOp {
    /// `data` written at `offset`.
    Write {
        /// Byte offset in the file.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The file cut or extended to `len` bytes.
    Truncate {
        /// The new length.
        len: u64,
    },
}

impl DataOp {
    /// Bytes of file data this change holds in memory.
    pub(crate) fn bytes(&self) -> u64 {
        match self {
            DataOp::Write { data, .. } => data.len() as u64,
            DataOp::Truncate { .. } => 0,
        }
    }

    /// Writes this change to the backing file (no fsync).
    pub(crate) fn apply_to(&self, file: &File) -> io::Result<()> {
        match self {
            DataOp::Write { offset, data } => file.write_all_at(data, *offset),
            DataOp::Truncate { len } => file.set_len(*len),
        }
    }

    /// Overlays this change on `window`, which holds the file's bytes from
    /// `start` on: written bytes are copied in, bytes past a truncation read
    /// as zeros from then on (a later extension shows zeros, as in POSIX).
    pub(crate) fn overlay(&self, start: u64, window: &mut [u8]) {
        let end = start + window.len() as u64;
        match self {
            DataOp::Write { offset, data } => {
                let from = (*offset).max(start);
                let to = (offset + data.len() as u64).min(end);
                if from < to {
                    let dst = &mut window[(from - start) as usize..(to - start) as usize];
                    dst.copy_from_slice(&data[(from - offset) as usize..(to - offset) as usize]);
                }
            }
            DataOp::Truncate { len } => {
                if *len < end {
                    let from = (*len).max(start);
                    window[(from - start) as usize..].fill(0);
                }
            }
        }
    }

    /// The first `keep` bytes of a write (a torn write), or `None` when this
    /// is not a write.
    pub(crate) fn prefix(&self, keep: usize) -> Option<DataOp> {
        match self {
            DataOp::Write { offset, data } => Some(DataOp::Write {
                offset: *offset,
                data: data[..keep.min(data.len())].to_vec(),
            }),
            DataOp::Truncate { .. } => None,
        }
    }

    /// What a torn write did not keep: the bytes of a write from `keep` on,
    /// or `None` when this is not a write.
    pub(crate) fn suffix(&self, keep: usize) -> Option<DataOp> {
        match self {
            DataOp::Write { offset, data } => {
                let keep = keep.min(data.len());
                Some(DataOp::Write {
                    offset: offset + keep as u64,
                    data: data[keep..].to_vec(),
                })
            }
            DataOp::Truncate { .. } => None,
        }
    }
}

/// Reads `window.len()` bytes at `start` from `file`; what lies past the
/// end of the file is left as it is (zeros, for a fresh window).
pub(crate) fn read_durable(file: &File, start: u64, window: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < window.len() {
        match file.read_at(&mut window[done..], start + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(ops: &[DataOp], base: &[u8], start: u64, len: usize) -> Vec<u8> {
        let mut w = vec![0u8; len];
        for (i, b) in w.iter_mut().enumerate() {
            *b = base.get(start as usize + i).copied().unwrap_or(0);
        }
        for op in ops {
            op.overlay(start, &mut w);
        }
        w
    }

    #[test]
    fn later_writes_win_and_truncation_zeroes_what_follows() {
        let ops = [
            DataOp::Write {
                offset: 2,
                data: b"abcd".to_vec(),
            },
            DataOp::Truncate { len: 4 },
            DataOp::Write {
                offset: 5,
                data: b"Z".to_vec(),
            },
        ];
        // base 0..8 = "01234567"; after: "01ab" then zero at 4, "Z" at 5.
        assert_eq!(view(&ops, b"01234567", 0, 6), b"01ab\0Z");
        assert_eq!(view(&ops, b"01234567", 3, 2), b"b\0");
    }

    #[test]
    fn a_torn_write_keeps_a_prefix() {
        let op = DataOp::Write {
            offset: 7,
            data: b"hello".to_vec(),
        };
        match op.prefix(2).unwrap() {
            DataOp::Write { offset, data } => {
                assert_eq!((offset, data.as_slice()), (7, &b"he"[..]))
            }
            DataOp::Truncate { .. } => unreachable!(),
        }
        assert!(DataOp::Truncate { len: 1 }.prefix(1).is_none());
        match op.suffix(2).unwrap() {
            DataOp::Write { offset, data } => {
                assert_eq!((offset, data.as_slice()), (9, &b"llo"[..]))
            }
            DataOp::Truncate { .. } => unreachable!(),
        }
    }
}
