//! The write-ahead log's record format, and the scan of one segment's
//! bytes with the torn-tail rule (issue 20, item 4; ARCHITECTURE.md).
//!
//! A segment file starts with [`SEGMENT_MAGIC`] (the log format, 2), then
//! records: `len: u32 LE | crc32: u32 LE | kind: u8 | seq: u64 LE | body`,
//! `len` counting the body, the CRC covering `len`, `kind`, `seq` and the
//! body. `seq` numbers every record the log writes, one more each time,
//! across segments. A *sync marker* (kind [`KIND_SYNCED`], body
//! `durable: u64 LE`) is the first record of every write batch after an
//! fsync: every record numbered below `durable` was fsynced before the
//! marker was written. It costs no fsync of its own: it rides with the
//! batch.
//!
//! **The torn-tail rule.** A crash loses or garbles only data never
//! fsynced: a tail of the segment being written, the last batch, whose
//! sectors may land in any order (zeros, old bytes, garbage, with whole
//! records after a hole). So damage at offset `x` — a record that does not
//! decode whole, or out of sequence — is a torn tail, cut off with a
//! warning, unless the record at `x` is provably fsynced:
//! - a later segment holds records (the log moves on to a new segment only
//!   right after an fsync), or
//! - a sync marker decodes whole somewhere after `x`: it was written after
//!   an fsync that covered every byte before it in the file.
//!
//! Then it is damage to fsynced data: recovery refuses to start, naming
//! the file and offset, instead of dropping the fsynced records after it.
//! A damaged length hides where the next record starts, so the search for
//! a marker tries every later offset for one that decodes whole (kind,
//! length, plausible sequence numbers, CRC).
//!
//! **What the rule cannot tell apart (residual).** Damage inside the last
//! batch fsynced before a crash, when nothing was written after it: no
//! marker follows, so it looks exactly like a torn write of that batch and
//! is cut off, though those records were fsynced (and may have been
//! acknowledged). A clean stop (`Wal::close` in `wal.rs`) writes a
//! marker after its last fsync, so only a crash leaves a batch unproven.
//! Likewise damage that also destroys every marker after it (a tail zeroed
//! from inside fsynced records to the end of the file). And a garbage tail
//! holding, by chance, a whole marker (kind, length, sequence numbers and
//! a CRC-32 all matching) would be taken for proof: refused, not lost.

/// The first bytes of every segment file: the log's format, version 2.
/// Version 1 (nodes before issue 20) had no header and no sequence numbers.
pub const SEGMENT_MAGIC: &[u8; 8] = b"ORDWAL\x00\x02";

/// An entry (protobuf `Entry`).
pub const KIND_ENTRY: u8 = 1;
/// A hard state (protobuf `HardState`).
pub const KIND_HARD_STATE: u8 = 2;
/// Every entry before it is dropped (written after installing a snapshot:
/// the log then starts over above it).
pub const KIND_RESET: u8 = 3;
/// A sync marker: `durable: u64 LE`, every record numbered below it was
/// fsynced before this one was written.
pub const KIND_SYNCED: u8 = 4;
/// Bytes before a record's body.
pub const HEADER_BYTES: usize = 17;
/// Largest record body accepted on recovery (a block is at most 63 MiB).
pub const RECORD_BYTES_MAX: usize = 256 << 20;
/// A sync marker's body.
const SYNCED_BODY_BYTES: usize = 8;

/// A record's header for `body`.
pub fn header(kind: u8, seq: u64, body: &[u8]) -> [u8; HEADER_BYTES] {
    let mut out = [0u8; HEADER_BYTES];
    out[..4].copy_from_slice(&(body.len() as u32).to_le_bytes());
    out[8] = kind;
    out[9..].copy_from_slice(&seq.to_le_bytes());
    let crc = checksum(&out, body);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The CRC over a header's `len`, `kind` and `seq`, and the body.
fn checksum(header: &[u8], body: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[..4]);
    crc.update(&header[8..HEADER_BYTES]);
    crc.update(body);
    crc.finalize()
}

/// A sync marker's body.
pub fn synced_body(durable: u64) -> [u8; SYNCED_BODY_BYTES] {
    durable.to_le_bytes()
}

/// One whole record in a segment's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Where it starts.
    pub offset: usize,
    /// Its kind.
    pub kind: u8,
    /// Its sequence number.
    pub seq: u64,
    /// Its body.
    pub body: &'a [u8],
}

impl Record<'_> {
    fn end(&self) -> usize {
        self.offset + HEADER_BYTES + self.body.len()
    }

    /// A sync marker's durable sequence number, when it is a well-formed
    /// one (never above its own number).
    fn durable(&self) -> Option<u64> {
        let body: [u8; SYNCED_BODY_BYTES] = self.body.try_into().ok()?;
        let durable = u64::from_le_bytes(body);
        (self.kind == KIND_SYNCED && durable <= self.seq).then_some(durable)
    }
}

/// The record at `offset`, if it is whole: header in range, body in the
/// file, CRC right, kind known.
fn decode_at(bytes: &[u8], offset: usize) -> Result<Record<'_>, String> {
    let rest = &bytes[offset..];
    if rest.len() < HEADER_BYTES {
        return Err(format!("short header ({} bytes)", rest.len()));
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
    if len > RECORD_BYTES_MAX {
        return Err(format!("record length {len} out of range"));
    }
    if rest.len() < HEADER_BYTES + len {
        return Err(format!(
            "record of {len} bytes runs past the end of the file"
        ));
    }
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    let body = &rest[HEADER_BYTES..HEADER_BYTES + len];
    if checksum(&rest[..HEADER_BYTES], body) != crc {
        return Err("checksum mismatch".to_string());
    }
    let kind = rest[8];
    if !(KIND_ENTRY..=KIND_SYNCED).contains(&kind) {
        return Err(format!("unknown record kind {kind}"));
    }
    let seq = u64::from_le_bytes(rest[9..HEADER_BYTES].try_into().expect("8 bytes"));
    Ok(Record {
        offset,
        kind,
        seq,
        body,
    })
}

/// How a segment's scan ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// At the end of the file.
    Clean,
    /// At a torn tail: nothing proves the record at `offset` was fsynced.
    Torn {
        /// Where the tail starts (the segment is to be cut there).
        offset: usize,
        /// What is wrong with the record there.
        problem: String,
    },
}

/// What scanning a segment found.
#[derive(Debug)]
pub struct Scan<'a> {
    /// The whole records before the end, in order (sync markers too).
    pub records: Vec<Record<'a>>,
    /// How it ended.
    pub end: End,
}

/// Damage to fsynced records: the offset and what is wrong, with the proof
/// that it was fsynced.
#[derive(Debug, PartialEq, Eq)]
pub struct Damage {
    /// Where the damaged record starts.
    pub offset: u64,
    /// What is wrong, and why it was fsynced.
    pub problem: String,
}

/// Scans a segment's bytes (its magic checked by the caller). `expected`:
/// the sequence number the log's next record carries, as far as known; the
/// first record here may carry a higher one (segments an interrupted
/// removal brought back leave gaps between segments), each later one the
/// next. `closed`: a later segment holds records. See the module doc for
/// the rule; `Err` is damage to fsynced records.
pub fn scan(bytes: &[u8], expected: Option<u64>, closed: bool) -> Result<Scan<'_>, Damage> {
    let mut records: Vec<Record<'_>> = Vec::new();
    let mut at = SEGMENT_MAGIC.len();
    let mut next = expected;
    while at < bytes.len() {
        let problem = match decode_at(bytes, at) {
            Ok(r) => match out_of_place(&r, next, records.is_empty()) {
                None => {
                    records.push(r);
                    next = Some(r.seq + 1);
                    at = r.end();
                    continue;
                }
                Some(problem) => problem,
            },
            Err(problem) => problem,
        };
        return match fsynced_proof(bytes, at, next, closed) {
            None => Ok(Scan {
                records,
                end: End::Torn {
                    offset: at,
                    problem,
                },
            }),
            Some(proof) => Err(Damage {
                offset: at as u64,
                problem: format!("{problem}; {proof}"),
            }),
        };
    }
    Ok(Scan {
        records,
        end: End::Clean,
    })
}

/// Why a whole record cannot be where it is: out of sequence, or a
/// malformed sync marker.
fn out_of_place(r: &Record<'_>, next: Option<u64>, first: bool) -> Option<String> {
    let in_sequence = match next {
        None => true,
        Some(n) if first => r.seq >= n,
        Some(n) => r.seq == n,
    };
    if !in_sequence {
        let n = next.expect("checked");
        return Some(format!("sequence number {} where {n} was expected", r.seq));
    }
    if r.kind == KIND_SYNCED && r.durable().is_none() {
        return Some(format!(
            "a sync marker of {} bytes that is not one",
            r.body.len()
        ));
    }
    None
}

/// Why the record at `at` must have been fsynced, if anything says so.
fn fsynced_proof(bytes: &[u8], at: usize, next: Option<u64>, closed: bool) -> Option<String> {
    if closed {
        return Some(
            "a later segment holds records, so every record in this one was fsynced".to_string(),
        );
    }
    let marker = later_marker(bytes, at + 1, next)?;
    Some(format!(
        "it was fsynced: a sync marker at offset {} (sequence number {}) says the records before sequence number {} were",
        marker.offset,
        marker.seq,
        marker.durable().expect("a marker")
    ))
}

/// The first sync marker from `from` on that decodes whole and fits: its
/// sequence number at least `next` and no further from it than records
/// the bytes could hold, and its durable number above `next` (so it covers
/// the damaged record). Every offset is tried: a damaged length says
/// nothing about where the next record starts.
fn later_marker(bytes: &[u8], from: usize, next: Option<u64>) -> Option<Record<'_>> {
    let last_start = bytes.len().checked_sub(HEADER_BYTES + SYNCED_BODY_BYTES)?;
    let records_max = (bytes.len() / HEADER_BYTES) as u64 + 1;
    (from..=last_start).find_map(|at| {
        // Cheap filters before the CRC: garbage and zeros rarely pass.
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        if bytes[at + 8] != KIND_SYNCED || len as usize != SYNCED_BODY_BYTES {
            return None;
        }
        let r = decode_at(bytes, at).ok()?;
        let durable = r.durable()?;
        let fits = next.is_none_or(|n| r.seq >= n && r.seq - n <= records_max && durable > n);
        fits.then_some(r)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Seeded garbage bytes (xorshift).
    pub(crate) fn garbage(n: usize, mut x: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn put(out: &mut Vec<u8>, kind: u8, seq: u64, body: &[u8]) -> usize {
        let at = out.len();
        out.extend_from_slice(&header(kind, seq, body));
        out.extend_from_slice(body);
        at
    }

    /// A segment: entries 0..3, a marker (durable 3), entries 4..6.
    fn segment() -> (Vec<u8>, Vec<usize>) {
        let mut out = SEGMENT_MAGIC.to_vec();
        let mut offsets = Vec::new();
        for seq in 0..7u64 {
            let at = match seq {
                3 => put(&mut out, KIND_SYNCED, 3, &synced_body(3)),
                _ => put(&mut out, KIND_ENTRY, seq, format!("entry {seq}").as_bytes()),
            };
            offsets.push(at);
        }
        (out, offsets)
    }

    #[test]
    fn a_whole_segment_scans_clean_in_sequence() {
        let (bytes, offsets) = segment();
        let scan = scan(&bytes, Some(0), false).unwrap();
        assert_eq!(scan.end, End::Clean);
        let seqs: Vec<u64> = scan.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (0..7).collect::<Vec<_>>());
        assert_eq!(scan.records[3].offset, offsets[3]);
        // A gap before the first record of a segment is allowed, not after.
        assert!(super::scan(&bytes, None, false).is_ok());
        let mut gap = SEGMENT_MAGIC.to_vec();
        put(&mut gap, KIND_ENTRY, 9, b"a");
        let second = put(&mut gap, KIND_ENTRY, 11, b"b");
        let scan = super::scan(&gap, Some(5), false).unwrap();
        assert_eq!(scan.records.len(), 1);
        assert!(matches!(scan.end, End::Torn { offset, .. } if offset == second));
    }

    /// Damage after the last marker is a torn tail; before it, damage to
    /// fsynced records, found past a garbage length by trying every
    /// offset; in a closed segment, always damage.
    #[test]
    fn damage_is_torn_unless_a_later_marker_or_segment_proves_it_fsynced() {
        let (bytes, offsets) = segment();
        let mut tail = bytes.clone();
        tail[offsets[5] + 1] ^= 0x40; // entry 5's length
        let scan = scan(&tail, Some(0), false).unwrap();
        assert!(matches!(scan.end, End::Torn { offset, .. } if offset == offsets[5]));
        assert_eq!(scan.records.len(), 5);
        let closed = super::scan(&tail, Some(0), true).unwrap_err();
        assert_eq!(closed.offset, offsets[5] as u64);
        assert!(closed.problem.contains("later segment"), "{closed:?}");
        for (what, byte) in [("length", 2), ("payload", HEADER_BYTES + 1)] {
            let mut fsynced = bytes.clone();
            fsynced[offsets[1] + byte] ^= 0x08;
            let damage = super::scan(&fsynced, Some(0), false).unwrap_err();
            assert_eq!(damage.offset, offsets[1] as u64, "{what}");
            let says = format!("sync marker at offset {}", offsets[3]);
            assert!(damage.problem.contains(&says), "{what}: {damage:?}");
        }
    }

    /// A marker that does not cover the damaged record (stale, from before
    /// it) proves nothing; zeros and garbage are never taken for one.
    #[test]
    fn only_a_marker_covering_the_damage_proves_it_fsynced() {
        let mut bytes = SEGMENT_MAGIC.to_vec();
        put(&mut bytes, KIND_ENTRY, 0, b"a");
        let hole = put(&mut bytes, KIND_ENTRY, 1, b"b");
        bytes.truncate(hole);
        bytes.extend_from_slice(&[0u8; 40]);
        put(&mut bytes, KIND_SYNCED, 2, &synced_body(1)); // covers entry 0 only
        let scan = scan(&bytes, Some(0), false).unwrap();
        assert!(matches!(scan.end, End::Torn { offset, .. } if offset == hole));
        let mut tail = SEGMENT_MAGIC.to_vec();
        put(&mut tail, KIND_ENTRY, 0, b"a");
        tail.extend_from_slice(&garbage(100_000, 0x9e37_79b9_7f4a_7c15));
        let scan = super::scan(&tail, Some(0), false).unwrap();
        assert_eq!(scan.records.len(), 1);
        assert!(matches!(scan.end, End::Torn { .. }));
    }
}
