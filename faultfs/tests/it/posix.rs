//! The file operations a node relies on work on the mount.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use crate::{fsync_dir, fuse_or_skip, read, write_durably, Mount};

#[test]
fn handles_append_rename_over_dir_fsync_readdir_stat_truncate_and_unlink_of_an_open_file() {
    if !fuse_or_skip(
        "handles_append_rename_over_dir_fsync_readdir_stat_truncate_and_unlink_of_an_open_file",
    ) {
        return;
    }
    let mut m = Mount::start(4);
    // O_APPEND from two handles: every write lands at the end.
    let mut a = OpenOptions::new()
        .create(true)
        .append(true)
        .open(m.path("app"))
        .unwrap();
    let mut b = OpenOptions::new().append(true).open(m.path("app")).unwrap();
    a.write_all(b"one,").unwrap();
    b.write_all(b"two,").unwrap();
    a.write_all(b"three").unwrap();
    assert_eq!(read(&m.path("app")).unwrap(), b"one,two,three");

    // Positioned writes past the end leave a zero-filled hole; stat agrees.
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.path("rw"))
        .unwrap();
    f.seek(SeekFrom::Start(4)).unwrap();
    f.write_all(b"xy").unwrap();
    assert_eq!(read(&m.path("rw")).unwrap(), b"\0\0\0\0xy");
    assert_eq!(std::fs::metadata(m.path("rw")).unwrap().len(), 6);
    // ftruncate shrinks and grows (zeros), truncate by path too.
    f.set_len(5).unwrap();
    f.set_len(7).unwrap();
    assert_eq!(read(&m.path("rw")).unwrap(), b"\0\0\0\0x\0\0");
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(m.path("rw"))
        .unwrap();
    assert_eq!(std::fs::metadata(m.path("rw")).unwrap().len(), 0);

    // Permissions are kept and enforced by the kernel (default_permissions).
    std::fs::set_permissions(m.path("rw"), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        std::fs::metadata(m.path("rw")).unwrap().mode() & 0o777,
        0o600
    );

    // Rename over an existing file; fsync on a directory descriptor.
    std::fs::write(m.path("target"), b"old").unwrap();
    std::fs::write(m.path("source"), b"new").unwrap();
    std::fs::rename(m.path("source"), m.path("target")).unwrap();
    assert_eq!(read(&m.path("target")).unwrap(), b"new");
    fsync_dir(&m.mnt());

    // readdir lists what is visible, in a subdirectory too.
    std::fs::create_dir(m.path("d")).unwrap();
    std::fs::write(m.path("d/inner"), b"i").unwrap();
    let mut names: Vec<String> = std::fs::read_dir(m.mnt())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["app", "d", "rw", "target"]);
    assert!(std::fs::metadata(m.path("d")).unwrap().is_dir());
    assert_eq!(std::fs::read_dir(m.path("d")).unwrap().count(), 1);
    assert_eq!(
        std::fs::remove_dir(m.path("d")).unwrap_err().raw_os_error(),
        Some(libc::ENOTEMPTY)
    );

    // Unlink of an open file: the handle still reads and writes it.
    let mut open = OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path("target"))
        .unwrap();
    std::fs::remove_file(m.path("target")).unwrap();
    assert!(read(&m.path("target")).is_none());
    open.seek(SeekFrom::End(0)).unwrap();
    open.write_all(b"+more").unwrap();
    open.sync_all().unwrap();
    fsync_dir(&m.mnt());
    open.seek(SeekFrom::Start(0)).unwrap();
    let mut back = String::new();
    open.read_to_string(&mut back).unwrap();
    assert_eq!(back, "new+more");
    drop(open);
    assert!(!m.backing().join("target").exists());
    assert_eq!(
        std::fs::read_dir(m.backing().join(".faultfs-stage"))
            .unwrap()
            .count(),
        0,
        "nothing staged once the unlinked file is closed"
    );
    drop((a, b, f));
    let _ = File::open(m.mnt()).unwrap();
    m.stop();
}

#[test]
fn a_killed_faultfs_leaves_no_mount_behind() {
    if !fuse_or_skip("a_killed_faultfs_leaves_no_mount_behind") {
        return;
    }
    let mut m = Mount::start(5);
    let pid = m.process.as_ref().unwrap().pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    faultfs::wait_unmounted(&m.mnt(), std::time::Duration::from_secs(5))
        .expect("the watchdog detaches the mount of a SIGKILLed faultfs");
    // stop() reaps the process and finds nothing mounted.
    let _ = m.process.take().unwrap().stop();
    assert!(!faultfs::is_mounted(&m.mnt()).unwrap());
}

#[test]
fn a_busy_mount_is_detached_on_stop() {
    if !fuse_or_skip("a_busy_mount_is_detached_on_stop") {
        return;
    }
    let mut m = Mount::start(9);
    std::fs::write(m.path("held"), b"x").unwrap();
    // A process with its working directory and a file open in the mount.
    let mut holder = std::process::Command::new("sh")
        .args(["-c", "exec 3<held; sleep 30"])
        .current_dir(m.mnt())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let start = std::time::Instant::now();
    m.stop();
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "stop took {:?}",
        start.elapsed()
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn faultfs_unmounts_when_its_parent_dies() {
    if !fuse_or_skip("faultfs_unmounts_when_its_parent_dies") {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("faultfs-it-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let (backing, mnt) = (dir.path().join("backing"), dir.path().join("mnt"));
    std::fs::create_dir(&backing).unwrap();
    std::fs::create_dir(&mnt).unwrap();
    // The parent is a shell that starts faultfs in the background and waits.
    let mut parent = std::process::Command::new("sh")
        .args([
            "-c",
            "\"$0\" mount --backing \"$1\" --mountpoint \"$2\" --control \"$3\" 2>/dev/null & wait",
        ])
        .arg(crate::EXE)
        .arg(&backing)
        .arg(&mnt)
        .arg(dir.path().join("control.sock"))
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !faultfs::is_mounted(&mnt).unwrap() {
        assert!(std::time::Instant::now() < deadline, "never mounted");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    parent.kill().unwrap();
    parent.wait().unwrap();
    faultfs::wait_unmounted(&mnt, std::time::Duration::from_secs(5))
        .expect("faultfs unmounts when its parent dies");
}

#[test]
fn a_restart_on_the_same_mount_point_is_left_alone() {
    if !fuse_or_skip("a_restart_on_the_same_mount_point_is_left_alone") {
        return;
    }
    let mut m = Mount::start(10);
    assert!(faultfs::faultfs_mounts().unwrap().contains(&m.mnt()));
    write_durably(&m.path("f"), b"kept", true);
    m.stop();
    // The first faultfs's watchdog must not detach the second mount.
    let again = faultfs::FaultfsProcess::start(
        std::path::Path::new(crate::EXE),
        &m.backing(),
        &m.mnt(),
        &m.dir.path().join("control.sock"),
        11,
        Some(&m.dir.path().join("faultfs-again.log")),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(faultfs::is_mounted(&m.mnt()).unwrap());
    assert_eq!(
        read(&m.path("f")).unwrap(),
        b"kept",
        "a new mount starts from the durable image"
    );
    again.stop().unwrap();
    assert!(!faultfs::is_mounted(&m.mnt()).unwrap());
}
