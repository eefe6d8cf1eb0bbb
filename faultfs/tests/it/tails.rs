//! Torn tails that look like real disks: after `torn` or `lose-unfsynced`
//! with a tail shape, a file that unsynced appends grew reads back with
//! exactly that shape — kept prefix, then zeros or seeded garbage to the
//! length the process saw (issue 25 item 4).

use std::fs::OpenOptions;
use std::io::Write;

use faultfs::{TailRegion, TailShape};

use crate::{fuse_or_skip, read, write_durably, Mount};

const HEAD: &[u8] = b"head|";

/// A durable `HEAD`, then 40 records appended and not fsynced; returns
/// everything the process wrote.
fn append_unsynced(m: &Mount) -> Vec<u8> {
    write_durably(&m.path("wal"), HEAD, true);
    let mut f = OpenOptions::new().append(true).open(m.path("wal")).unwrap();
    let mut all = HEAD.to_vec();
    for i in 0..40u32 {
        let record = format!("<record {i:03} {}>", "r".repeat((i as usize * 11) % 50));
        f.write_all(record.as_bytes()).unwrap();
        all.extend_from_slice(record.as_bytes());
    }
    all
}

/// Checks the file reads as `all[..cut]` then the tail `tail` says, and
/// that the backing file (the durable image) holds the same bytes.
fn check_shape(m: &Mount, all: &[u8], tail: TailShape, tails: &[TailRegion], what: &str) -> usize {
    let got = read(&m.path("wal")).unwrap();
    assert_eq!(
        std::fs::read(m.backing().join("wal")).unwrap(),
        got,
        "{what}: what is read is what is durable"
    );
    let cut = match tails {
        [] => got.len(),
        [t] => {
            assert_eq!(t.path, "/wal", "{what}");
            assert_eq!(t.offset + t.length, all.len() as u64, "{what}: {t:?}");
            t.offset as usize
        }
        more => panic!("{what}: one file grew, tails {more:?}"),
    };
    assert!(cut >= HEAD.len(), "{what}: the durable head is kept");
    assert_eq!(
        &got[..cut],
        &all[..cut],
        "{what}: a prefix of what was written"
    );
    let rest = &got[cut..];
    match tail {
        TailShape::Keep => assert!(rest.is_empty() && tails.is_empty(), "{what}"),
        TailShape::Zero => {
            assert_eq!(got.len(), all.len(), "{what}: the length the process saw");
            assert!(rest.iter().all(|b| *b == 0), "{what}: zeros after {cut}");
        }
        TailShape::Garbage => {
            assert_eq!(got.len(), all.len(), "{what}: the length the process saw");
            let written = &all[cut..];
            let same = rest.iter().zip(written).filter(|(a, b)| a == b).count();
            let zeros = rest.iter().filter(|b| **b == 0).count();
            // Random bytes match a given byte 1 time in 256.
            assert!(
                same <= rest.len() / 16 + 1 && zeros <= rest.len() / 16 + 1,
                "{what}: {} garbage bytes, {same} as written, {zeros} zeros",
                rest.len()
            );
        }
    }
    cut
}

#[test]
fn torn_leaves_a_kept_prefix_then_the_tail_shape_asked_for() {
    if !fuse_or_skip("torn_leaves_a_kept_prefix_then_the_tail_shape_asked_for") {
        return;
    }
    let mut m = Mount::start(21);
    for tail in TailShape::ALL {
        let mut shaped = 0;
        for seed in 0..6u64 {
            let all = append_unsynced(&m);
            let torn = m.client().torn_with_tail(Some(seed), tail).unwrap();
            assert_eq!((torn.seed, torn.tail, torn.of), (seed, tail, 40));
            let what = format!("torn {seed} {}", tail.name());
            let cut = check_shape(&m, &all, tail, &torn.tails, &what);
            shaped += usize::from(cut < all.len());
        }
        assert!(
            shaped > 0,
            "{}: no seed lost part of the appends",
            tail.name()
        );
    }
    // The same seed gives the same garbage.
    let again = |m: &Mount| {
        append_unsynced(m);
        m.client()
            .torn_with_tail(Some(4), TailShape::Garbage)
            .unwrap();
        read(&m.path("wal")).unwrap()
    };
    assert_eq!(again(&m), again(&m));
    m.stop();
}

#[test]
fn a_power_loss_can_leave_a_grown_file_with_a_zero_or_garbage_tail() {
    if !fuse_or_skip("a_power_loss_can_leave_a_grown_file_with_a_zero_or_garbage_tail") {
        return;
    }
    let mut m = Mount::start(22);
    for tail in TailShape::ALL {
        let all = append_unsynced(&m);
        // A file whose create was never made durable goes whatever the shape.
        write_durably(&m.path("unnamed"), b"data", false);
        let lost = m.client().lose_unfsynced_with_tail(tail, Some(8)).unwrap();
        assert_eq!((lost.tail, lost.seed), (tail, 8));
        let what = format!("lose-unfsynced {}", tail.name());
        let cut = check_shape(&m, &all, tail, &lost.tails, &what);
        assert_eq!(cut, HEAD.len(), "{what}: nothing unsynced is kept");
        assert_eq!(read(&m.path("unnamed")), None, "{what}");
    }
    // A write inside the durable bytes is lost, not shaped.
    write_durably(&m.path("wal"), b"0123456789", true);
    let f = OpenOptions::new().write(true).open(m.path("wal")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"XXXX", 2).unwrap();
    drop(f);
    let lost = m
        .client()
        .lose_unfsynced_with_tail(TailShape::Garbage, None)
        .unwrap();
    assert!(lost.tails.is_empty(), "{lost:?}");
    assert_eq!(read(&m.path("wal")).unwrap(), b"0123456789");
    m.stop();
}
