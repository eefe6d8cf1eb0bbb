//! `enospc on|off` (issue 30's disk-full): a process writing sees ENOSPC
//! on writes, fsyncs and creates while the disk is full, succeeds after
//! `enospc off`, and nothing it had written before is lost.

use std::fs::{File, OpenOptions};
use std::io::Write;

use crate::{fsync_dir, fuse_or_skip, read, write_durably, Mount};

fn errno(r: std::io::Result<impl Sized>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

#[test]
fn a_full_disk_refuses_writes_fsyncs_and_creates_until_off_and_loses_nothing() {
    if !fuse_or_skip("a_full_disk_refuses_writes_fsyncs_and_creates_until_off_and_loses_nothing") {
        return;
    }
    let mut m = Mount::start(50);
    write_durably(&m.path("log"), b"synced|", true);
    let mut f = OpenOptions::new().append(true).open(m.path("log")).unwrap();
    f.write_all(b"pending|").unwrap();
    m.client().enospc_on(None).unwrap();
    assert_eq!(errno(f.write(b"refused")), Some(libc::ENOSPC));
    assert_eq!(errno(f.sync_data()), Some(libc::ENOSPC));
    assert_eq!(errno(File::create(m.path("new"))), Some(libc::ENOSPC));
    assert_eq!(
        errno(std::fs::create_dir(m.path("dir"))),
        Some(libc::ENOSPC)
    );
    assert_eq!(
        errno(File::open(m.mnt()).unwrap().sync_all()),
        Some(libc::ENOSPC)
    );
    let statvfs = nix::sys::statvfs::statvfs(&m.mnt()).unwrap();
    assert_eq!(statvfs.blocks_available(), 0, "df shows the disk full");
    let report = m.client().report().unwrap();
    assert_eq!(report["faults"]["enospc"], true);
    assert_eq!(report["faults"]["enospc_bytes_left"], 0);
    // Reads, and what needs no room, still work.
    assert_eq!(read(&m.path("log")).unwrap(), b"synced|pending|");
    std::fs::rename(m.path("log"), m.path("log2")).unwrap();
    std::fs::rename(m.path("log2"), m.path("log")).unwrap();

    m.client().enospc_off().unwrap();
    f.write_all(b"after").unwrap();
    f.sync_data().unwrap();
    File::create(m.path("new")).unwrap().sync_all().unwrap();
    fsync_dir(&m.mnt());
    assert_eq!(read(&m.path("log")).unwrap(), b"synced|pending|after");
    drop(f);
    m.client().lose_unfsynced().unwrap();
    assert_eq!(
        read(&m.path("log")).unwrap(),
        b"synced|pending|after",
        "what was written before the disk filled, and after, survives"
    );
    assert_eq!(read(&m.path("new")).unwrap(), b"");
    m.stop();
}

#[test]
fn a_disk_filling_up_takes_the_bytes_left_then_refuses() {
    if !fuse_or_skip("a_disk_filling_up_takes_the_bytes_left_then_refuses") {
        return;
    }
    let mut m = Mount::start(51);
    write_durably(&m.path("log"), b"", true);
    let mut f = OpenOptions::new().append(true).open(m.path("log")).unwrap();
    m.client().enospc_on(Some(10)).unwrap();
    assert_eq!(f.write(b"abcd").unwrap(), 4);
    f.sync_data().expect("an fsync succeeds while room is left");
    assert_eq!(
        f.write(b"efghijkl").unwrap(),
        6,
        "a short write fills the disk"
    );
    assert_eq!(errno(f.write(b"z")), Some(libc::ENOSPC));
    assert_eq!(errno(f.sync_data()), Some(libc::ENOSPC));
    // write_all of a larger buffer stops at the first ENOSPC.
    assert_eq!(errno(f.write_all(b"more")), Some(libc::ENOSPC));
    assert_eq!(
        m.client().report().unwrap()["faults"]["enospc_bytes_left"],
        0
    );
    m.client().heal().unwrap();
    f.write_all(b"!").unwrap();
    f.sync_data().unwrap();
    drop(f);
    m.client().lose_unfsynced().unwrap();
    assert_eq!(read(&m.path("log")).unwrap(), b"abcdefghij!");
    m.stop();
}
