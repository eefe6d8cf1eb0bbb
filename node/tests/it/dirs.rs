//! The data directory's own name is made durable (issue 20, smaller item),
//! observed on the real binary's system calls with strace.

use super::{http, status, EXE};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The directories a traced process fsynced: `openat` paths matched to the
/// descriptors `fsync` was called on, per thread, from `strace -f` output.
fn fsynced_paths(strace_out: &str) -> HashSet<PathBuf> {
    let mut open: HashMap<(String, String), String> = HashMap::new();
    let mut synced = HashSet::new();
    for line in strace_out.lines() {
        // strace pads the pid to five columns: `9453  fsync(9)`.
        let Some((tid, call)) = line.split_once(' ') else {
            continue;
        };
        let call = call.trim_start();
        if let Some(rest) = call.strip_prefix("openat(AT_FDCWD, \"") {
            let (path, tail) = rest.split_once('"').unwrap_or_default();
            if let Some(fd) = tail.rsplit_once(" = ").map(|(_, fd)| fd.trim()) {
                open.insert((tid.to_string(), fd.to_string()), path.to_string());
            }
        } else if let Some(rest) = call.strip_prefix("fsync(") {
            let fd = rest.split(')').next().unwrap_or_default();
            if let Some(path) = open.get(&(tid.to_string(), fd.to_string())) {
                synced.insert(PathBuf::from(path));
            }
        }
    }
    synced
}

/// The pid of `parent`'s first child, from `/proc`.
fn child_of(parent: u32) -> Option<i32> {
    let path = format!("/proc/{parent}/task/{parent}/children");
    let text = std::fs::read_to_string(path).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// A node started on a data directory two levels below an existing one
/// fsyncs the parent of each directory it created: the existing one and
/// the new one in between (before, only the data directory itself, after
/// creating the log in it: a power loss could take the whole directory
/// away on a filesystem that does not order metadata).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_data_directory_is_fsynced_in_its_parent() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("SKIPPED a_new_data_directory_is_fsynced_in_its_parent: needs strace on PATH");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("new").join("data");
    let port = || node::ports::free_port(Ipv4Addr::LOCALHOST).unwrap();
    let (peer, client) = (port(), port());
    let out = root.path().join("strace.txt");
    let mut strace = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=openat,fsync", "-o"])
        .arg(&out)
        .arg(EXE)
        .args([
            "run",
            "--id",
            "1",
            "--peers",
            &format!("1=127.0.0.1:{peer}"),
        ])
        .args(["--listen-peer", &format!("127.0.0.1:{peer}")])
        .args(["--listen-client", &format!("127.0.0.1:{client}")])
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = http();
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://127.0.0.1:{client}");
    while status(&http, &url).await.is_none() {
        assert!(Instant::now() < deadline, "the node never served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let node = child_of(strace.id()).expect("the traced node's pid");
    let term = nix::sys::signal::Signal::SIGTERM;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(node), term).unwrap();
    assert!(strace.wait().unwrap().success());
    let synced = fsynced_paths(&std::fs::read_to_string(&out).unwrap());
    for dir in [root.path(), &root.path().join("new"), &data] {
        assert!(
            synced.contains(Path::new(dir)),
            "{} never fsynced; fsynced: {synced:?}",
            dir.display()
        );
    }
}
