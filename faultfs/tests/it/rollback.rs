//! `checkpoint` / `restore` (issue 30's rollback): the durable image copied
//! aside and later put back, as a disk restored from a backup; refused
//! while a file is open on the mount.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Instant;

use faultfs::{ClientError, RESTORE_WAIT};

use crate::{fsync_dir, fuse_or_skip, refused, write_durably, Mount};

/// Every file under `dir` (relative path → bytes), and every directory
/// (relative path → empty, with a trailing `/`).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            if e.file_type().unwrap().is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                todo.push(e.path());
            } else {
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

#[test]
fn a_restore_puts_back_the_checkpointed_image_and_drops_what_is_pending() {
    if !fuse_or_skip("a_restore_puts_back_the_checkpointed_image_and_drops_what_is_pending") {
        return;
    }
    let mut m = Mount::start(60);
    write_durably(&m.path("wal.log"), b"term 1 vote 2|entry 1|", true);
    std::fs::create_dir(m.path("snap")).unwrap();
    fsync_dir(&m.mnt());
    write_durably(&m.path("snap/snapshot.bin"), b"snapshot at 1", true);
    std::fs::set_permissions(m.path("wal.log"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(m.path("snap/snapshot.bin"), Some(4321), Some(4321)).unwrap();
    // Unsynced at the checkpoint: not part of it.
    let mut f = OpenOptions::new()
        .append(true)
        .open(m.path("wal.log"))
        .unwrap();
    f.write_all(b"entry 2 (unsynced)|").unwrap();
    drop(f);
    let at_checkpoint = tree(&m.backing());
    let cp = m.client().checkpoint("before").unwrap();
    assert_eq!(
        (cp.name.as_str(), cp.files, cp.dirs, cp.bytes),
        ("before", 2, 1, 35)
    );
    assert!(!cp.replaced);

    // The node goes on: a later term and vote made durable, a new file, a
    // removed one, and more pending.
    write_durably(
        &m.path("wal.log"),
        b"term 3 vote 1|entry 1|entry 2|entry 3|",
        true,
    );
    std::fs::remove_file(m.path("snap/snapshot.bin")).unwrap();
    write_durably(&m.path("snap/snapshot.bin.new"), b"snapshot at 3", true);
    fsync_dir(&m.path("snap"));
    write_durably(&m.path("pending-create"), b"x", false);
    let restored = m.client().restore("before").unwrap();
    assert_eq!((restored.files, restored.dirs, restored.bytes), (2, 1, 35));
    assert_eq!(restored.dropped_namespace_changes, 1);

    let mut expected = at_checkpoint.clone();
    expected.remove(".faultfs-stage/");
    assert_eq!(tree(&m.mnt()), expected, "the mount shows the checkpoint");
    let mut backing = tree(&m.backing());
    backing.retain(|k, _| !k.starts_with(".faultfs-"));
    assert_eq!(backing, expected, "the durable image is the checkpoint");
    assert_eq!(
        std::fs::metadata(m.path("wal.log")).unwrap().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(m.path("snap/snapshot.bin"))
            .unwrap()
            .uid(),
        4321
    );
    let report = m.client().report().unwrap();
    assert_eq!(report["bytes_total"], 0);
    assert_eq!(report["namespace"].as_array().unwrap().len(), 0);
    assert_eq!(report["checkpoints"][0], "before");
    // Durable: a restarted faultfs (a restarted machine) sees it too, and
    // the checkpoint is still there to restore again.
    m.restart(61);
    assert_eq!(tree(&m.mnt()), expected);
    write_durably(&m.path("wal.log"), b"overwritten", true);
    m.client().restore("before").unwrap();
    assert_eq!(tree(&m.mnt()), expected);
    m.stop();
}

#[test]
fn a_restore_waits_for_open_files_then_refuses_naming_them() {
    if !fuse_or_skip("a_restore_waits_for_open_files_then_refuses_naming_them") {
        return;
    }
    let mut m = Mount::start(62);
    write_durably(&m.path("wal.log"), b"v1", true);
    m.client().checkpoint("c1").unwrap();
    let held = std::fs::File::open(m.path("wal.log")).unwrap();
    let start = Instant::now();
    let reason = refused(m.client().restore("c1"));
    assert!(
        start.elapsed() >= RESTORE_WAIT,
        "waited {:?}",
        start.elapsed()
    );
    assert!(
        reason.contains("1 file handles are still open on the mount (/wal.log)"),
        "{reason}"
    );
    // A handle closed during the wait lets the restore go on.
    let closer = std::thread::spawn(move || {
        std::thread::sleep(RESTORE_WAIT / 3);
        drop(held);
    });
    write_durably(&m.path("wal.log"), b"v2", true);
    m.client().restore("c1").unwrap();
    closer.join().unwrap();
    assert_eq!(std::fs::read(m.path("wal.log")).unwrap(), b"v1");
    m.stop();
}

#[test]
fn checkpoints_are_named_bounded_replaceable_and_hidden_from_the_mount() {
    if !fuse_or_skip("checkpoints_are_named_bounded_replaceable_and_hidden_from_the_mount") {
        return;
    }
    let mut m = Mount::start(63);
    let c = m.client();
    write_durably(&m.path("f"), b"1", true);
    assert_eq!(
        refused(c.checkpoint(".hidden")),
        "checkpoint name \".hidden\": 1 to 64 of A-Z a-z 0-9 . _ -, not starting with '.'"
    );
    assert_eq!(
        refused(c.restore("nope")),
        "checkpoint \"nope\": no such checkpoint"
    );
    for i in 0..faultfs::overlay::CHECKPOINTS_MAX {
        assert!(!c.checkpoint(&format!("c{i}")).unwrap().replaced);
    }
    assert!(refused(c.checkpoint("one-more")).contains("16 checkpoints exist already"));
    assert!(c.checkpoint("c3").unwrap().replaced, "a name is reused");
    c.drop_checkpoint("c0").unwrap();
    c.checkpoint("one-more").unwrap();
    assert_eq!(
        refused(c.drop_checkpoint("c0")),
        "checkpoint \"c0\": no such checkpoint"
    );
    let names: Vec<String> = std::fs::read_dir(m.mnt())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        ["f"],
        "faultfs's own directories are not in the mount"
    );
    assert_eq!(
        std::fs::create_dir(m.path(".faultfs-checkpoints"))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EPERM)
    );
    // A name with whitespace cannot travel on one line: refused before sending.
    assert!(matches!(
        c.checkpoint("a b"),
        Err(ClientError::Unsendable { .. })
    ));
    m.stop();
}
