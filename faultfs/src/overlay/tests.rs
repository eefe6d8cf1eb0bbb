//! The overlay without FUSE: calls straight into the model, real backing
//! files in a scratch directory.

use std::ffi::OsStr;
use std::time::SystemTime;

use super::{CorruptKind, Damage, FaultError, Kind, Meta, Overlay, TailShape, ROOT};

fn meta() -> Meta {
    let now = SystemTime::now();
    Meta {
        perm: 0o644,
        uid: 0,
        gid: 0,
        mtime: now,
        ctime: now,
    }
}

fn name(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn content(o: &mut Overlay, path: &str) -> Option<Vec<u8>> {
    let ino = o.lookup(ROOT, name(path)).ok()?;
    Some(o.read(ino, 0, 1 << 20).unwrap())
}

#[test]
fn the_backing_directory_only_ever_holds_the_durable_state() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old"), b"kept").unwrap();
    let mut o = Overlay::open(dir.path(), 1 << 20).unwrap();
    let f = o.create(ROOT, name("wal"), Kind::File, meta()).unwrap();
    o.write(f, 0, b"abc", false).unwrap();
    o.sync_file(f, true, true).unwrap();
    assert!(
        !dir.path().join("wal").exists(),
        "no durable name before the directory fsync"
    );
    o.sync_dir(ROOT).unwrap();
    assert_eq!(std::fs::read(dir.path().join("wal")).unwrap(), b"abc");
    o.write(f, 3, b"def", true).unwrap();
    o.rename((ROOT, name("wal")), (ROOT, name("old")), false)
        .unwrap();
    assert_eq!(content(&mut o, "old").unwrap(), b"abcdef");
    assert_eq!(std::fs::read(dir.path().join("old")).unwrap(), b"kept");
    o.lose().unwrap();
    assert_eq!(content(&mut o, "old").unwrap(), b"kept");
    assert_eq!(content(&mut o, "wal").unwrap(), b"abc");
    assert_eq!(o.pending_bytes, 0);
}

#[test]
fn torn_cuts_the_global_order_of_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Overlay::open(dir.path(), 1 << 20).unwrap();
    let f = o.create(ROOT, name("f"), Kind::File, meta()).unwrap();
    o.sync_dir(ROOT).unwrap();
    for i in 0..10u8 {
        o.write(f, 0, &[b'a' + i; 4], true).unwrap();
    }
    let torn = o.torn(7, TailShape::Keep).unwrap();
    assert_eq!(torn.of, 10);
    let kept = content(&mut o, "f").unwrap();
    let expected: Vec<u8> = (0..10u8).flat_map(|i| [b'a' + i; 4]).collect();
    assert_eq!(kept.len() as u64, torn.kept as u64 * 4 + torn.partial_bytes);
    assert!(expected.starts_with(&kept));
}

#[test]
fn pending_data_over_its_bound_is_written_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Overlay::open(dir.path(), 8).unwrap();
    let f = o.create(ROOT, name("f"), Kind::File, meta()).unwrap();
    o.sync_dir(ROOT).unwrap();
    o.write(f, 0, b"12345", true).unwrap();
    assert_eq!(o.pending_bytes, 5);
    o.write(f, 0, b"6789", true).unwrap();
    assert_eq!(o.pending_bytes, 0, "written back once over 8 bytes");
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"123456789");
}

/// A durable file `name` holding `durable`, then `pending` appended and
/// not fsynced.
fn grown(o: &mut Overlay, name_: &str, durable: &[u8], pending: &[&[u8]]) -> super::Ino {
    let f = o.create(ROOT, name(name_), Kind::File, meta()).unwrap();
    o.write(f, 0, durable, false).unwrap();
    o.sync_file(f, true, true).unwrap();
    o.sync_dir(ROOT).unwrap();
    for chunk in pending {
        o.write(f, 0, chunk, true).unwrap();
    }
    f
}

#[test]
fn a_power_loss_with_a_zero_tail_keeps_the_grown_length_as_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Overlay::open(dir.path(), 1 << 20).unwrap();
    let f = grown(&mut o, "wal", b"durable", &[b"lost1", b"lost2"]);
    // An overwrite inside the durable bytes is simply lost.
    o.write(f, 0, b"D", false).unwrap();
    // A file whose create was never made durable is lost whole.
    let g = o.create(ROOT, name("new"), Kind::File, meta()).unwrap();
    o.write(g, 0, b"new bytes", false).unwrap();
    let lost = o.lose_shaped(TailShape::Zero, 1).unwrap();
    assert_eq!(lost.tails.len(), 1);
    assert_eq!(
        (
            lost.tails[0].path.as_str(),
            lost.tails[0].offset,
            lost.tails[0].length
        ),
        ("/wal", 7, 10)
    );
    assert_eq!(
        content(&mut o, "wal").unwrap(),
        b"durable\0\0\0\0\0\0\0\0\0\0"
    );
    assert_eq!(content(&mut o, "new"), None);
    assert_eq!(o.pending_bytes, 0);
}

#[test]
fn a_garbage_tail_is_seeded_and_covers_only_what_lost_writes_wrote() {
    let run = |seed| {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Overlay::open(dir.path(), 1 << 20).unwrap();
        let f = grown(&mut o, "wal", b"abc", &[b"0123456789"]);
        // A hole from 13 to 20, then 4 bytes written at 20.
        o.write(f, 20, b"wxyz", false).unwrap();
        o.lose_shaped(TailShape::Garbage, seed).unwrap();
        content(&mut o, "wal").unwrap()
    };
    let (a, b, c) = (run(5), run(5), run(6));
    assert_eq!(a.len(), 24);
    assert_eq!(&a[..3], b"abc");
    assert_eq!(
        &a[13..20],
        &[0u8; 7],
        "a hole the process never wrote reads zeros"
    );
    assert_ne!(&a[3..13], b"0123456789");
    assert_ne!(&a[3..13], &[0u8; 10]);
    assert_eq!(a, b, "the same seed, the same garbage");
    assert_ne!(a, c);
}

#[test]
fn torn_with_a_zero_tail_keeps_a_prefix_then_zeros_to_the_length_seen() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Overlay::open(dir.path(), 1 << 20).unwrap();
    let chunks: Vec<Vec<u8>> = (0..10u8).map(|i| vec![b'a' + i; 4]).collect();
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    grown(&mut o, "f", b"", &refs);
    let all: Vec<u8> = chunks.concat();
    for seed in 0..20 {
        let mut p = Overlay::open(dir.path(), 1 << 20).unwrap();
        let f = p.lookup(ROOT, name("f")).unwrap();
        p.truncate(f, 0).unwrap();
        p.sync_file(f, true, true).unwrap();
        for c in &refs {
            p.write(f, 0, c, true).unwrap();
        }
        let torn = p.torn(seed, TailShape::Zero).unwrap();
        let kept = (torn.kept * 4) as u64 + torn.partial_bytes;
        let got = content(&mut p, "f").unwrap();
        assert_eq!(
            got.len(),
            all.len(),
            "seed {seed}: the length the process saw"
        );
        assert_eq!(&got[..kept as usize], &all[..kept as usize], "seed {seed}");
        assert!(got[kept as usize..].iter().all(|b| *b == 0), "seed {seed}");
        if kept < all.len() as u64 {
            assert_eq!(
                (torn.tails[0].offset, torn.tails[0].length),
                (kept, 40 - kept)
            );
        } else {
            assert!(torn.tails.is_empty());
        }
    }
}

#[test]
fn corruption_damages_the_durable_bytes_and_reads_show_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Overlay::open(dir.path(), 1 << 20).unwrap();
    let f = grown(&mut o, "seg", &[0x55; 64], &[]);
    let done = o
        .corrupt(
            "/seg",
            Damage::Bitflip {
                offset: 8,
                length: 4,
                seed: Some(3),
            },
            0,
        )
        .unwrap();
    assert_eq!((done.offset, done.length, done.seed), (8, 4, Some(3)));
    let now = std::fs::read(dir.path().join("seg")).unwrap();
    for (i, b) in now.iter().enumerate() {
        let flipped = (b ^ 0x55).count_ones();
        assert_eq!(flipped, u32::from((8..12).contains(&i)), "byte {i}");
    }
    assert_eq!(content(&mut o, "seg").unwrap(), now);
    // A pending write over part of a zeroed region shadows it.
    o.write(f, 30, b"pp", false).unwrap();
    let done = o
        .corrupt(
            "seg",
            Damage::Zero {
                offset: 28,
                length: 8,
            },
            0,
        )
        .unwrap();
    assert_eq!(done.shadowed_bytes, 2);
    let seen = content(&mut o, "seg").unwrap();
    assert_eq!(&seen[28..36], b"\0\0pp\0\0\0\0");
    // Truncation below pending data: the size seen is replayed over the cut.
    let done = o
        .corrupt("seg", Damage::Truncate { offset: 10 }, 0)
        .unwrap();
    assert_eq!((done.length, done.size_after), (54, 10));
    assert_eq!(content(&mut o, "seg").unwrap().len(), 32);
    for (path, damage) in [
        ("/nope", Damage::Truncate { offset: 0 }),
        (
            "/seg",
            Damage::Zero {
                offset: 5,
                length: 6,
            },
        ),
        ("/seg", Damage::Truncate { offset: 10 }),
        ("/../x", Damage::Truncate { offset: 0 }),
    ] {
        let e = o.corrupt(path, damage, 0).unwrap_err();
        assert!(
            matches!(
                e,
                FaultError::NoFile { .. } | FaultError::Region { .. } | FaultError::BadPath { .. }
            ),
            "{e}"
        );
    }
}

#[test]
fn a_pick_is_seeded_and_skips_empty_and_unmatched_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Overlay::open(dir.path(), 1 << 20).unwrap();
    grown(&mut o, "wal.log", &[1; 100], &[]);
    grown(&mut o, "wal.log.1", b"", &[]);
    grown(&mut o, "snapshot.bin", &[2; 100], &[]);
    let mut picked = std::collections::BTreeSet::new();
    for seed in 0..10 {
        let c = o
            .corrupt_pick(CorruptKind::Zero, "wal.log*", seed, Some(16))
            .unwrap();
        assert_eq!(
            (c.path.as_str(), c.candidates, c.seed),
            ("/wal.log", Some(1), Some(seed))
        );
        assert!(c.length >= 1 && c.length <= 16 && c.offset + c.length <= 100);
        let c = o
            .corrupt_pick(CorruptKind::Bitflip, "*", seed, None)
            .unwrap();
        picked.insert(c.path);
    }
    assert_eq!(
        picked.len(),
        2,
        "both non-empty files get picked: {picked:?}"
    );
    assert!(matches!(
        o.corrupt_pick(CorruptKind::Truncate, "blocks.*", 1, None),
        Err(FaultError::NoMatch { .. })
    ));
}

#[test]
fn a_restore_brings_back_the_checkpointed_image_and_drops_what_is_pending() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Overlay::open(dir.path(), 1 << 20).unwrap();
    let f = grown(&mut o, "wal", b"v1", &[b"+pending"]);
    let cp = o.checkpoint("c1").unwrap();
    assert_eq!((cp.files, cp.bytes, cp.replaced), (1, 2, false));
    o.sync_file(f, true, true).unwrap();
    grown(&mut o, "later", b"x", &[]);
    assert_eq!(content(&mut o, "wal").unwrap(), b"v1+pending");
    o.write(f, 0, b"more", true).unwrap();
    let r = o.restore("c1").unwrap();
    assert_eq!((r.files, r.dropped_pending_bytes), (1, 4));
    assert_eq!(content(&mut o, "wal").unwrap(), b"v1");
    assert_eq!(content(&mut o, "later"), None);
    assert_eq!(o.pending_bytes, 0);
    assert!(
        o.lookup(ROOT, name(".faultfs-checkpoints")).is_err(),
        "hidden"
    );
    assert_eq!(o.checkpoints().unwrap(), ["c1"]);
    // The restored image is durable: a new mount sees it.
    drop(o);
    let mut o = Overlay::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(content(&mut o, "wal").unwrap(), b"v1");
    o.drop_checkpoint("c1").unwrap();
    assert!(matches!(
        o.restore("c1"),
        Err(FaultError::NoCheckpoint { .. })
    ));
}
