//! Injected fsync delays and failures.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use faultfs::FsyncError;

use crate::{fuse_or_skip, read, write_durably, Mount};

fn timed_fsync(file: &std::fs::File) -> Duration {
    let start = Instant::now();
    file.sync_data().unwrap();
    start.elapsed()
}

#[test]
fn a_delay_shows_in_measured_fsync_time_until_heal() {
    if !fuse_or_skip("a_delay_shows_in_measured_fsync_time_until_heal") {
        return;
    }
    let mut m = Mount::start(6);
    write_durably(&m.path("f"), b"", true);
    let mut f = OpenOptions::new().append(true).open(m.path("f")).unwrap();
    m.client()
        .delay_fsync(Duration::from_millis(300), Duration::from_millis(100))
        .unwrap();
    for _ in 0..3 {
        f.write_all(b"x").unwrap();
        let took = timed_fsync(&f);
        assert!(
            took >= Duration::from_millis(300),
            "fsync took {took:?} under a 300 ms delay"
        );
    }
    // A write is not delayed by `delay fsync`; `delay write` delays it.
    m.client().delay_write(Duration::from_millis(200)).unwrap();
    let start = Instant::now();
    f.write_all(b"y").unwrap();
    assert!(start.elapsed() >= Duration::from_millis(200));
    m.client().heal().unwrap();
    f.write_all(b"z").unwrap();
    let took = timed_fsync(&f);
    // Generous: the machine is shared; the delay was 300 ms.
    assert!(
        took < Duration::from_millis(250),
        "fsync took {took:?} after heal"
    );
    drop(f);
    m.stop();
}

#[test]
fn a_failing_fsync_returns_the_error_and_keeps_nothing() {
    if !fuse_or_skip("a_failing_fsync_returns_the_error_and_keeps_nothing") {
        return;
    }
    let mut m = Mount::start(7);
    write_durably(&m.path("f"), b"base", true);
    let mut f = OpenOptions::new().append(true).open(m.path("f")).unwrap();
    f.write_all(b"+lost").unwrap();
    m.client().fail_fsync(FsyncError::Eio, Some(2)).unwrap();
    assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
    assert_eq!(f.sync_all().unwrap_err().raw_os_error(), Some(libc::EIO));
    assert_eq!(
        m.client().report().unwrap()["faults"]["fsync_error"],
        serde_json::Value::Null,
        "the count ran out"
    );
    drop(f);
    m.client().lose_unfsynced().unwrap();
    assert_eq!(
        read(&m.path("f")).unwrap(),
        b"base",
        "what a failed fsync covered was not made durable"
    );

    m.client().fail_fsync(FsyncError::Enospc, None).unwrap();
    let f = OpenOptions::new().append(true).open(m.path("f")).unwrap();
    for _ in 0..3 {
        assert_eq!(f.sync_all().unwrap_err().raw_os_error(), Some(libc::ENOSPC));
    }
    let dir = std::fs::File::open(m.mnt()).unwrap();
    assert_eq!(
        dir.sync_all().unwrap_err().raw_os_error(),
        Some(libc::ENOSPC),
        "a directory fsync fails too"
    );
    m.client().heal().unwrap();
    f.sync_all().unwrap();
    drop((f, dir));
    m.stop();
}
