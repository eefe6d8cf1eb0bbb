//! The overlay without FUSE: calls straight into the model, real backing
//! files in a scratch directory.

use std::ffi::OsStr;
use std::time::SystemTime;

use super::{Kind, Meta, Overlay, ROOT};

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
    let torn = o.torn(7).unwrap();
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
