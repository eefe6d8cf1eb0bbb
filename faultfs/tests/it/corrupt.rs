//! `corrupt` and `corrupt-pick` (issue 30): damage to a durable file, seen
//! by a process that holds the file open (no kernel cache hides it) and
//! after a restart on what the disk kept; the answer says exactly what was
//! done.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use faultfs::{CorruptKind, Corruption, Damage};

use crate::{fsync_dir, fuse_or_skip, read, refused, write_durably, Mount};

/// 4 KiB of a recognisable pattern (no zero bytes).
fn pattern() -> Vec<u8> {
    (0..4096u32).map(|i| (i % 251) as u8 + 1).collect()
}

/// Checks that `now` differs from `before` exactly as `c` says.
fn check_damage(before: &[u8], now: &[u8], c: &Corruption) {
    let (from, to) = (c.offset as usize, (c.offset + c.length) as usize);
    assert_eq!(c.size_before, before.len() as u64, "{c:?}");
    match c.kind {
        CorruptKind::Truncate => {
            assert_eq!(now, &before[..from], "{c:?}");
            assert_eq!(to, before.len());
        }
        CorruptKind::Zero => {
            assert_eq!(now.len(), before.len());
            assert_eq!(&now[..from], &before[..from], "{c:?}");
            assert!(now[from..to].iter().all(|b| *b == 0), "{c:?}");
            assert_eq!(&now[to..], &before[to..], "{c:?}");
        }
        CorruptKind::Bitflip => {
            assert_eq!(now.len(), before.len());
            for (i, (a, b)) in before.iter().zip(now).enumerate() {
                let flipped = (a ^ b).count_ones();
                assert_eq!(
                    flipped,
                    u32::from((from..to).contains(&i)),
                    "byte {i}: {c:?}"
                );
            }
        }
    }
    assert_eq!(c.size_after, now.len() as u64);
}

#[test]
fn damage_to_a_stopped_nodes_file_is_what_it_reads_after_a_restart() {
    if !fuse_or_skip("damage_to_a_stopped_nodes_file_is_what_it_reads_after_a_restart") {
        return;
    }
    let mut m = Mount::start(40);
    std::fs::create_dir(m.path("wal")).unwrap();
    fsync_dir(&m.mnt());
    write_durably(&m.path("wal/seg"), &pattern(), true);
    let before = pattern();
    let damages = [
        Damage::Bitflip {
            offset: 100,
            length: 8,
            seed: Some(9),
        },
        Damage::Zero {
            offset: 1000,
            length: 600,
        },
        Damage::Truncate { offset: 3000 },
    ];
    let mut expected = before.clone();
    for (i, damage) in damages.into_iter().enumerate() {
        let c = m.client().corrupt("/wal/seg", damage).unwrap();
        assert_eq!((c.kind, c.path.as_str()), (damage.kind(), "/wal/seg"));
        assert_eq!(c.shadowed_bytes, 0);
        let now = read(&m.path("wal/seg")).unwrap();
        check_damage(&expected, &now, &c);
        // What the process reads after a restart on the durable image.
        m.restart(41 + i as u64);
        assert_eq!(read(&m.path("wal/seg")).unwrap(), now, "{c:?}");
        expected = now;
    }
    // Replaying the answer of a bitflip flips the same bits back.
    let c = m
        .client()
        .corrupt(
            "wal/seg",
            Damage::Bitflip {
                offset: 100,
                length: 8,
                seed: Some(9),
            },
        )
        .unwrap();
    assert_eq!(c.seed, Some(9));
    assert_eq!(
        &read(&m.path("wal/seg")).unwrap()[100..108],
        &before[100..108]
    );
    m.stop();
}

#[test]
fn a_running_process_reads_the_damage_through_the_file_it_holds_open() {
    if !fuse_or_skip("a_running_process_reads_the_damage_through_the_file_it_holds_open") {
        return;
    }
    let mut m = Mount::start(42);
    write_durably(&m.path("seg"), &pattern(), true);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path("seg"))
        .unwrap();
    // Read it whole first, as a node replaying its log would: a page cache
    // would now hold every page.
    let mut first = Vec::new();
    f.read_to_end(&mut first).unwrap();
    assert_eq!(first, pattern());
    let c = m
        .client()
        .corrupt(
            "seg",
            Damage::Zero {
                offset: 512,
                length: 512,
            },
        )
        .unwrap();
    let mut now = vec![0u8; 4096];
    f.read_exact_at(&mut now, 0).unwrap();
    check_damage(&first, &now, &c);

    // Bytes the process wrote and has not fsynced stay over the damage
    // (a dirty page), and the answer counts them; a power loss uncovers it.
    f.write_all_at(b"0123456789", 2000).unwrap();
    let c = m
        .client()
        .corrupt(
            "seg",
            Damage::Zero {
                offset: 1990,
                length: 30,
            },
        )
        .unwrap();
    assert_eq!(c.shadowed_bytes, 10);
    f.read_exact_at(&mut now[..40], 1985).unwrap();
    assert_eq!(&now[..5], &first[1985..1990]);
    assert_eq!(&now[5..15], &[0; 10]);
    assert_eq!(&now[15..25], b"0123456789");
    assert_eq!(&now[25..35], &[0; 10]);

    // A truncation shows in the open file's size and reads.
    let c = m
        .client()
        .corrupt("seg", Damage::Truncate { offset: 1500 })
        .unwrap();
    assert_eq!((c.offset, c.length, c.size_after), (1500, 2596, 1500));
    assert_eq!(
        f.metadata().unwrap().len(),
        2010,
        "the pending write at 2000..2010 still ends the file"
    );
    let mut tail = Vec::new();
    f.seek(SeekFrom::Start(1490)).unwrap();
    f.read_to_end(&mut tail).unwrap();
    assert_eq!(&tail[..10], &first[1490..1500]);
    assert!(
        tail[10..510].iter().all(|b| *b == 0),
        "cut bytes read as zeros"
    );
    assert_eq!(&tail[510..], b"0123456789");
    drop(f);
    m.client().lose_unfsynced().unwrap();
    let mut durable = first[..1500].to_vec();
    durable[512..1024].fill(0);
    assert_eq!(read(&m.path("seg")).unwrap(), durable);
    m.stop();
}

#[test]
fn a_pick_takes_a_matching_non_empty_file_and_a_region_from_the_seed() {
    if !fuse_or_skip("a_pick_takes_a_matching_non_empty_file_and_a_region_from_the_seed") {
        return;
    }
    let mut m = Mount::start(43);
    write_durably(&m.path("wal.log"), &pattern(), true);
    write_durably(&m.path("wal.log.1"), b"", true);
    write_durably(&m.path("snapshot.bin"), &pattern()[..2000], true);
    std::fs::create_dir(m.path("blocks")).unwrap();
    fsync_dir(&m.mnt());
    write_durably(&m.path("blocks/blocks.0"), &pattern()[..100], true);
    for seed in 0..8u64 {
        for kind in CorruptKind::ALL {
            let names = ["wal.log", "snapshot.bin", "blocks/blocks.0"];
            let before: Vec<Vec<u8>> = names.iter().map(|n| read(&m.path(n)).unwrap()).collect();
            let glob = if seed % 2 == 0 { "wal.log*" } else { "**" };
            let c = m.client().corrupt_pick(kind, glob, seed, None).unwrap();
            assert_eq!(c.seed, Some(seed));
            assert_eq!(
                c.candidates,
                Some(if seed % 2 == 0 { 1 } else { 3 }),
                "{c:?}"
            );
            let i = names
                .iter()
                .position(|n| c.path == format!("/{n}"))
                .unwrap_or_else(|| panic!("picked {c:?}"));
            check_damage(&before[i], &read(&m.path(names[i])).unwrap(), &c);
            // Put it back for the next round.
            write_durably(&m.path(names[i]), &before[i], false);
        }
    }
    // Errors name what is wrong.
    let c = m.client();
    assert_eq!(
        refused(c.corrupt("/nope", Damage::Truncate { offset: 0 })),
        "/nope: no such file in the durable image"
    );
    assert_eq!(
        refused(c.corrupt(
            "/snapshot.bin",
            Damage::Zero {
                offset: 1990,
                length: 20
            }
        )),
        "/snapshot.bin: offset 1990 length 20 is not inside the file's 2000 durable bytes"
    );
    assert_eq!(
        refused(c.corrupt_pick(CorruptKind::Zero, "wal.log.1", 1, None)),
        "no non-empty file in the durable image matches \"wal.log.1\""
    );
    assert_eq!(
        refused(c.corrupt("/blocks", Damage::Truncate { offset: 0 })),
        "/blocks: is a directory, not a file"
    );
    // A file not yet durable under its name is not in the durable image.
    write_durably(&m.path("fresh"), b"data", false);
    assert_eq!(
        refused(c.corrupt("fresh", Damage::Truncate { offset: 1 })),
        "/fresh: no such file in the durable image"
    );
    m.stop();
}
