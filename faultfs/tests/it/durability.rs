//! What survives a power loss (`lose-unfsynced`) and a torn write (`torn`).

use std::fs::OpenOptions;
use std::io::Write;

use crate::{fsync_dir, fuse_or_skip, read, write_durably, Mount};

#[test]
fn an_unsynced_write_is_lost_and_a_synced_one_survives() {
    if !fuse_or_skip("an_unsynced_write_is_lost_and_a_synced_one_survives") {
        return;
    }
    let mut m = Mount::start(1);
    write_durably(&m.path("log"), b"durable|", true);
    let mut f = OpenOptions::new().append(true).open(m.path("log")).unwrap();
    f.write_all(b"volatile").unwrap();
    assert_eq!(
        read(&m.path("log")).unwrap(),
        b"durable|volatile",
        "reads see what the process wrote"
    );
    assert_eq!(
        std::fs::read(m.backing().join("log")).unwrap(),
        b"durable|",
        "the backing file holds only the durable part"
    );
    let report = m.client().report().unwrap();
    assert_eq!(report["files"][0]["path"], "/log");
    assert_eq!(report["files"][0]["bytes"], 8);
    drop(f);
    m.client().lose_unfsynced().unwrap();
    assert_eq!(read(&m.path("log")).unwrap(), b"durable|");

    // Synced by fdatasync this time: survives.
    let mut f = OpenOptions::new().append(true).open(m.path("log")).unwrap();
    f.write_all(b"second").unwrap();
    f.sync_data().unwrap();
    drop(f);
    m.client().lose_unfsynced().unwrap();
    assert_eq!(read(&m.path("log")).unwrap(), b"durable|second");
    assert_eq!(m.client().report().unwrap()["bytes_total"], 0);
    m.stop();
}

#[test]
fn an_unsynced_create_or_rename_is_rolled_back_until_its_directory_is_fsynced() {
    if !fuse_or_skip("an_unsynced_create_or_rename_is_rolled_back_until_its_directory_is_fsynced") {
        return;
    }
    let mut m = Mount::start(2);
    // Created and its data fsynced, but the directory never: gone.
    write_durably(&m.path("wal"), b"entries", false);
    assert!(m.client().report().unwrap()["namespace"][0]
        .as_str()
        .unwrap()
        .starts_with("create /wal"));
    m.client().lose_unfsynced().unwrap();
    assert_eq!(
        read(&m.path("wal")),
        None,
        "a create whose directory was never fsynced must not survive"
    );

    // With the directory fsynced: kept, data included.
    write_durably(&m.path("wal"), b"entries", true);
    m.client().lose_unfsynced().unwrap();
    assert_eq!(read(&m.path("wal")).unwrap(), b"entries");

    // Rename over an existing file (the snapshot pattern): the old content
    // comes back until the directory is fsynced.
    write_durably(&m.path("snap"), b"old", true);
    write_durably(&m.path("snap.tmp"), b"new", false);
    std::fs::rename(m.path("snap.tmp"), m.path("snap")).unwrap();
    assert_eq!(read(&m.path("snap")).unwrap(), b"new");
    m.client().lose_unfsynced().unwrap();
    assert_eq!(read(&m.path("snap")).unwrap(), b"old");
    assert_eq!(read(&m.path("snap.tmp")), None);
    write_durably(&m.path("snap.tmp"), b"new", false);
    std::fs::rename(m.path("snap.tmp"), m.path("snap")).unwrap();
    fsync_dir(&m.mnt());
    m.client().lose_unfsynced().unwrap();
    assert_eq!(read(&m.path("snap")).unwrap(), b"new");

    // An unlink is rolled back too; a new subdirectory and its file need
    // the subdirectory's fsync and the parent's.
    std::fs::remove_file(m.path("wal")).unwrap();
    std::fs::create_dir(m.path("sub")).unwrap();
    write_durably(&m.path("sub/f"), b"x", true);
    m.client().lose_unfsynced().unwrap();
    assert_eq!(
        read(&m.path("wal")).unwrap(),
        b"entries",
        "an unsynced unlink is undone"
    );
    assert!(
        m.path("sub/f").exists(),
        "fsync of sub makes its entry and sub's own creation durable"
    );
    let mut names: Vec<String> = std::fs::read_dir(m.backing())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [".faultfs-stage", "snap", "sub", "wal"]);
    m.stop();
}

#[test]
fn torn_keeps_a_prefix_of_the_pending_writes() {
    if !fuse_or_skip("torn_keeps_a_prefix_of_the_pending_writes") {
        return;
    }
    let mut m = Mount::start(3);
    let mut all = Vec::new();
    let mut partial_seen = false;
    for seed in 0..8u64 {
        write_durably(&m.path("log"), b"", true);
        let mut f = OpenOptions::new().append(true).open(m.path("log")).unwrap();
        all.clear();
        for i in 0..50u32 {
            let chunk = format!("<record {i:04} {}>", "x".repeat((i as usize * 7) % 40));
            f.write_all(chunk.as_bytes()).unwrap();
            all.extend_from_slice(chunk.as_bytes());
        }
        drop(f);
        let torn = m.client().torn(Some(seed)).unwrap();
        let kept = read(&m.path("log")).unwrap();
        assert!(
            all.starts_with(&kept),
            "seed {seed}: {} bytes kept are not a prefix of what was written ({torn})",
            kept.len()
        );
        assert_eq!(torn["seed"], seed);
        assert_eq!(torn["of"], 50);
        partial_seen |= !kept.is_empty() && kept.len() < all.len();
    }
    assert!(partial_seen, "no seed kept a strict, non-empty prefix");
    // The same seed cuts at the same place.
    let again = |m: &Mount| {
        write_durably(&m.path("log"), b"", true);
        let mut f = OpenOptions::new().append(true).open(m.path("log")).unwrap();
        f.write_all(&all).unwrap();
        drop(f);
        m.client().torn(Some(99)).unwrap();
        read(&m.path("log")).unwrap()
    };
    assert_eq!(again(&m), again(&m));
    m.stop();
}
