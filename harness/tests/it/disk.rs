//! Disk faults on faultfs (process runtime): `--bug no-fsync` caught by
//! power losses, the correct node valid under power and torn writes, slow
//! disks warned about and counted, a failing disk stopping its node, and no
//! mount left behind by a run, a Ctrl-C or a killed harness.

use super::{node_binary, run, Run, HARNESS};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Whether FUSE tests can run; with `ORDEAL_REQUIRE_FUSE=1` (CI) a missing
/// FUSE is a failure, otherwise the test says loudly it skipped.
pub(super) fn fuse_available(test: &str) -> bool {
    let root =
        std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    let ok = Path::new("/dev/fuse").exists() && root.unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("ORDEAL_REQUIRE_FUSE").is_err(),
            "{test}: FUSE is required (ORDEAL_REQUIRE_FUSE) but /dev/fuse or root is missing"
        );
        eprintln!("SKIPPED {test}: needs /dev/fuse and root");
    }
    ok
}

/// The debug faultfs beside the test binaries (built if missing), given to
/// the harness through `ORDEAL_FAULTFS_BIN`.
pub(super) fn faultfs_binary() -> PathBuf {
    super::workspace_binary("faultfs", "faultfs")
}

/// faultfs mounts whose mount point is under `root`.
pub(super) fn mounts_under(root: &Path) -> Vec<PathBuf> {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .filter(|l| l.contains("faultfs"))
        .filter_map(|l| l.split(' ').nth(1).map(PathBuf::from))
        .filter(|m| m.starts_with(&root))
        .collect()
}

pub(super) fn disk_run(args: &[&str]) -> Run {
    std::env::set_var("ORDEAL_FAULTFS_BIN", faultfs_binary());
    let r = run(args);
    assert!(
        mounts_under(r._store.path()).is_empty(),
        "no faultfs mount is left after a run"
    );
    r
}

/// Whether the run's disk faults happened: a start and an end each, and for
/// power and torn faultfs's answer.
pub(super) fn assert_disk_faults(r: &Run, fault: &str) {
    let starts = r.nemesis(fault, "start");
    assert!(!starts.is_empty(), "{fault} was injected\n{}", r.explain());
    assert_eq!(
        starts.len(),
        r.nemesis(fault, "end").len(),
        "{fault} healed"
    );
}

#[test]
fn no_fsync_is_caught_by_power_losses_in_k_of_n_seeded_runs() {
    if !fuse_available("no_fsync_is_caught_by_power_losses_in_k_of_n_seeded_runs") {
        return;
    }
    // Three power losses in 16 s, every other one of every node: each run
    // loses every node's unsynced log at least once.
    let seeds = ["11", "12"];
    let mut caught = 0;
    for seed in seeds {
        let r = disk_run(&["--nemesis", "power", "--bug", "no-fsync", "--seed", seed]);
        assert_disk_faults(&r, "power");
        let every = r
            .nemesis("power", "start")
            .iter()
            .filter(|e| e["value"]["scope"] == "every node")
            .count();
        assert!(
            every >= 1,
            "seed {seed}: a correlated loss\n{}",
            r.explain()
        );
        if r.code() == 1 {
            caught += 1;
        }
        eprintln!("seed {seed}: exit {}", r.code());
    }
    assert!(
        caught >= 1,
        "no-fsync caught in {caught} of {} runs",
        seeds.len()
    );
}

#[test]
fn the_correct_node_survives_power_losses_and_torn_writes() {
    if !fuse_available("the_correct_node_survives_power_losses_and_torn_writes") {
        return;
    }
    let r = disk_run(&[
        "--nemesis",
        "power,torn",
        "--seed",
        "21",
        "--time-limit-s",
        "20",
    ]);
    assert_eq!(r.code(), 0, "valid\n{}", r.explain());
    assert_disk_faults(&r, "power");
    assert_disk_faults(&r, "torn");
    let torn: Vec<Value> = r
        .history()
        .into_iter()
        .filter(|e| e["f"] == "torn" && e["value"]["phase"] == "disk")
        .collect();
    assert!(
        torn.iter()
            .all(|e| e["value"]["faultfs"].as_str().unwrap().contains("kept")),
        "faultfs said what torn kept: {torn:?}"
    );
}

#[test]
fn a_slow_disk_is_warned_about_and_the_report_counts_the_warnings() {
    if !fuse_available("a_slow_disk_is_warned_about_and_the_report_counts_the_warnings") {
        return;
    }
    let r = disk_run(&["--nemesis", "slow-disk", "--seed", "31"]);
    assert_ne!(r.code(), 1, "not invalid\n{}", r.explain());
    assert_disk_faults(&r, "slow-disk");
    let targets: Vec<Value> = r
        .nemesis("slow-disk", "start")
        .iter()
        .flat_map(|e| e["value"]["targets"].as_array().unwrap().clone())
        .collect();
    let summary = r.json("summary.json");
    let warned: Vec<(String, u64)> = summary["fsync"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let name = n["node"].as_str().unwrap().to_string();
            (name, n["slow_disk_warnings"].as_u64().unwrap_or(0))
        })
        .collect();
    for t in &targets {
        let count = warned.iter().find(|(n, _)| t == n).map_or(0, |w| w.1);
        assert!(count > 0, "{t} warned of its slow disk: {warned:?}");
    }
    let page = std::fs::read_to_string(r.dir.join("index.html")).unwrap();
    assert!(page.contains("slow-disk warnings (log)"));
}

#[test]
fn a_failing_disk_stops_its_node_and_nothing_unpersisted_is_acknowledged() {
    if !fuse_available("a_failing_disk_stops_its_node_and_nothing_unpersisted_is_acknowledged") {
        return;
    }
    let r = disk_run(&["--nemesis", "disk-error", "--seed", "41"]);
    assert_eq!(r.code(), 0, "valid\n{}", r.explain());
    assert_disk_faults(&r, "disk-error");
    let target = r.nemesis("disk-error", "start")[0]["value"]["targets"][0]
        .as_str()
        .unwrap()
        .to_string();
    let log = std::fs::read_to_string(r.dir.join("nodes").join(&target).join("node.log")).unwrap();
    assert!(
        log.contains("the raft loop stopped"),
        "{target} stopped on the failed fsync:\n{}",
        &log[log.len().saturating_sub(3000)..]
    );
}

#[test]
fn disk_faults_are_refused_by_name_where_faultfs_cannot_reach() {
    let out = Command::new(HARNESS)
        .args([
            "--swarm",
            "off",
            "--sut",
            "etcd",
            "--workload",
            "register",
            "--nemesis",
            "power",
        ])
        .args(["--runtime", "process", "--store", "/nonexistent-store"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("--nemesis power") && err.contains("mmap"),
        "{err}"
    );
}

/// Starts a long power run in the background; returns it once its mounts
/// are up.
fn start_long_run(store: &Path) -> std::process::Child {
    std::env::set_var("ORDEAL_FAULTFS_BIN", faultfs_binary());
    let child = Command::new(HARNESS)
        .args([
            "--swarm",
            "off",
            "--runtime",
            "process",
            "--time-limit-s",
            "120",
            "--nemesis",
            "power",
        ])
        .arg("--store")
        .arg(store)
        .arg("--node-binary")
        .arg(node_binary())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while mounts_under(store).len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(mounts_under(store).len(), 3, "one mount per node");
    // Past the start: the workload runs.
    std::thread::sleep(Duration::from_secs(3));
    child
}

fn wait_no_mounts(store: &Path, within: Duration) -> Vec<PathBuf> {
    let deadline = Instant::now() + within;
    while !mounts_under(store).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    mounts_under(store)
}

#[test]
fn ctrl_c_unmounts_every_disk() {
    if !fuse_available("ctrl_c_unmounts_every_disk") {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let mut child = start_long_run(store.path());
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(
        wait_no_mounts(store.path(), Duration::from_secs(5)),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn a_killed_harness_leaves_no_mount_and_clean_finds_leftovers() {
    if !fuse_available("a_killed_harness_leaves_no_mount_and_clean_finds_leftovers") {
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let mut child = start_long_run(store.path());
    child.kill().unwrap();
    child.wait().unwrap();
    // Each faultfs gets SIGTERM when its thread dies with the harness.
    assert_eq!(
        wait_no_mounts(store.path(), Duration::from_secs(15)),
        Vec::<PathBuf>::new()
    );
    // A leftover (a faultfs whose parent was not the harness, so nothing
    // took it down) is found and removed by `clean`.
    let work = store.path().join(".work").join("ordeal-1-1").join("n1");
    std::fs::create_dir_all(work.join("backing")).unwrap();
    std::fs::create_dir_all(work.join("data")).unwrap();
    let mut stray = Command::new(faultfs_binary())
        .arg("mount")
        .arg("--backing")
        .arg(work.join("backing"))
        .arg("--mountpoint")
        .arg(work.join("data"))
        .arg("--control")
        .arg(work.join("faultfs.sock"))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while mounts_under(store.path()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(mounts_under(store.path()).len(), 1, "the stray mount is up");
    let out = Command::new(HARNESS)
        .arg("clean")
        .arg("--store")
        .arg(store.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}{errors}");
    assert!(text.contains("faultfs mount"), "{text}");
    let _ = stray.wait();
    assert_eq!(
        wait_no_mounts(store.path(), Duration::from_secs(5)),
        Vec::<PathBuf>::new()
    );
    assert!(!store.path().join(".work").join("ordeal-1-1").exists());
}
