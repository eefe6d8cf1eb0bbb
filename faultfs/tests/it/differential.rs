//! A seeded random sequence of file operations applied to a plain directory
//! and to the mount must leave both with the same names and bytes; after
//! everything is fsynced, a power loss must change nothing.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{fsync_dir, fuse_or_skip, Mount};

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// One random operation on `dir`; returns whether it succeeded.
fn step(dir: &Path, op: u32, name: &str, other: &str, offset: u64, len: usize, byte: u8) -> bool {
    let path = dir.join(name);
    let data = vec![byte; len];
    let done = match op {
        0 | 1 => OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .and_then(|mut f| {
                f.seek(SeekFrom::Start(offset))?;
                f.write_all(&data)
            }),
        2 | 3 => OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&data)),
        4 => OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(offset)),
        5 => std::fs::rename(&path, dir.join(other)),
        6 => std::fs::remove_file(&path),
        7 => OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.sync_data()),
        _ => std::fs::File::open(dir).and_then(|d| d.sync_all()),
    };
    done.is_ok()
}

#[test]
fn random_operations_read_back_as_on_a_plain_directory_and_survive_once_synced() {
    if !fuse_or_skip("random_operations_read_back_as_on_a_plain_directory_and_survive_once_synced")
    {
        return;
    }
    // FAULTFS_DIFF_SEED reruns another sequence.
    let seed = std::env::var("FAULTFS_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00fa_17f5);
    eprintln!("differential seed {seed}");
    let mut m = Mount::start(12);
    let plain = tempfile::tempdir_in("/var/tmp").unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in 0..600 {
        let (op, a, b) = (
            rng.gen_range(0..9),
            NAMES[rng.gen_range(0..4)],
            NAMES[rng.gen_range(0..4)],
        );
        let (offset, len, byte) = (rng.gen_range(0..6000), rng.gen_range(1..3000), rng.gen());
        let on_plain = step(plain.path(), op, a, b, offset, len, byte);
        let on_mount = step(&m.mnt(), op, a, b, offset, len, byte);
        assert_eq!(
            on_plain, on_mount,
            "step {i}: op {op} on {a} ({b}) succeeded on one side only"
        );
        assert_eq!(
            snapshot(plain.path()),
            snapshot(&m.mnt()),
            "step {i}: op {op} on {a} ({b})"
        );
        if i % 100 == 99 {
            // Make everything durable, lose power: nothing may change.
            for name in NAMES {
                if let Ok(f) = OpenOptions::new().write(true).open(m.path(name)) {
                    f.sync_all().unwrap();
                }
            }
            fsync_dir(&m.mnt());
            m.client().lose_unfsynced().unwrap();
            assert_eq!(
                snapshot(plain.path()),
                snapshot(&m.mnt()),
                "after a power loss at step {i}"
            );
            assert_eq!(m.client().report().unwrap()["bytes_total"], 0);
        }
    }
    m.stop();
}

/// Random operations with random fsyncs, then a power loss: every name
/// whose last change was followed by an fsync of the file (when it exists)
/// and of the directory reads back as it was; nothing else is promised.
#[test]
fn what_was_fsynced_with_its_directory_survives_a_power_loss() {
    if !fuse_or_skip("what_was_fsynced_with_its_directory_survives_a_power_loss") {
        return;
    }
    let mut m = Mount::start(13);
    let plain = tempfile::tempdir_in("/var/tmp").unwrap();
    let mut checked = 0;
    for round in 0..40u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(0xd00d + round);
        let mut last_change: BTreeMap<&str, u32> = BTreeMap::new();
        let mut data_synced: BTreeMap<&str, u32> = BTreeMap::new();
        let mut dir_synced = None;
        for i in 1..=25u32 {
            let (op, a, b) = (
                rng.gen_range(0..9),
                NAMES[rng.gen_range(0..4)],
                NAMES[rng.gen_range(0..4)],
            );
            let (offset, len, byte) = (rng.gen_range(0..6000), rng.gen_range(1..3000), rng.gen());
            let ok = step(plain.path(), op, a, b, offset, len, byte);
            assert_eq!(
                ok,
                step(&m.mnt(), op, a, b, offset, len, byte),
                "round {round} step {i}"
            );
            match (op, ok) {
                (7, true) => {
                    data_synced.insert(a, i);
                }
                (8, _) => dir_synced = Some(i),
                (5, true) => {
                    last_change.insert(a, i);
                    last_change.insert(b, i);
                }
                (_, true) => {
                    last_change.insert(a, i);
                }
                (_, false) => {}
            }
        }
        let expected = snapshot(plain.path());
        m.client().lose_unfsynced().unwrap();
        let after = snapshot(&m.mnt());
        for (name, changed) in &last_change {
            let dir_ok = dir_synced.is_some_and(|d| d > *changed);
            let data_ok = data_synced.get(name).is_some_and(|s| s > changed);
            match expected.get(*name) {
                Some(bytes) if dir_ok && data_ok => {
                    assert_eq!(
                        after.get(*name),
                        Some(bytes),
                        "round {round}: {name} was fsynced with its directory"
                    );
                    checked += 1;
                }
                None if dir_ok => {
                    assert_eq!(
                        after.get(*name),
                        None,
                        "round {round}: {name} was removed and the directory fsynced"
                    );
                    checked += 1;
                }
                _ => {}
            }
        }
        // Start the next round from the same state on both sides.
        for name in NAMES {
            let _ = std::fs::remove_file(plain.path().join(name));
            if let Some(bytes) = after.get(name) {
                std::fs::write(plain.path().join(name), bytes).unwrap();
            }
        }
        assert_eq!(snapshot(plain.path()), snapshot(&m.mnt()));
    }
    eprintln!("{checked} names checked after power losses");
    assert!(
        checked >= 10,
        "only {checked} names were durable enough to check"
    );
    m.stop();
}
