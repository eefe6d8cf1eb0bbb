//! `harness shrink` (issue 32) interrupted: Ctrl-C while a candidate runs
//! keeps the best schedule so far in `shrunk.json` and leaves no node and
//! no faultfs mount behind. Short on purpose (one 12 s failing run, its
//! baseline replay, the first candidate's start; about 45 s): the
//! shrinker's steps are tested with a fake oracle (`nemesis/shrink.rs`,
//! `nemesis/shrink_config.rs`).

use super::disk::{faultfs_binary, fuse_available, mounts_under};
use super::{node_binary, ordeal_processes, run, HARNESS};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shrinking harness, killed if the test fails before it ends (its
/// nodes die with it: PR_SET_PDEATHSIG).
struct Shrinking(Child);

impl Drop for Shrinking {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Waits until `done` or `within` has passed; false when the harness
/// exited first (its status is then in `child`).
fn wait_for(child: &mut Child, within: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

/// The file's text, or a placeholder (for failure messages).
fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()))
}

#[test]
fn ctrl_c_keeps_the_best_schedule_so_far_and_leaves_nothing_running() {
    let fuse = fuse_available("ctrl_c_keeps_the_best_schedule_so_far (its faultfs half)");
    // forget-vote shows at a killed node's first restart: each of the
    // three kills of this 12 s run makes one (`Vote Kept ×3`).
    let mut args = vec![
        "--bug",
        "forget-vote",
        "--nemesis",
        "kill",
        "--time-limit-s",
        "12",
        "--nemesis-interval-s",
        "3",
        "--seed",
        "31",
    ];
    if fuse {
        std::env::set_var("ORDEAL_FAULTFS_BIN", faultfs_binary());
        args.push("--faultfs");
    }
    let original = run(&args);
    assert_eq!(original.code(), 1, "{}", original.explain());
    let store = original._store.path().to_path_buf();
    let marker = store.to_string_lossy().to_string();
    let shrunk = original.dir.join("shrunk.json");
    let log = tempfile::NamedTempFile::new().unwrap();
    let started = Instant::now();
    let mut shrinking = Shrinking(
        Command::new(HARNESS)
            .arg("shrink")
            .arg(&original.dir)
            .args(["--reruns", "2", "--confirm", "0", "--budget-s", "600"])
            .arg("--node-binary")
            .arg(node_binary())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap(),
    );
    let child = &mut shrinking.0;
    // shrunk.json appears once the baseline reproduced; then the first
    // candidate's cluster starts.
    let baseline = wait_for(child, Duration::from_secs(90), || shrunk.is_file());
    assert!(baseline, "no shrunk.json:\n{}", text(log.path()));
    let candidate = wait_for(child, Duration::from_secs(30), || {
        ordeal_processes(&marker) >= 3
    });
    assert!(candidate, "no candidate started:\n{}", text(log.path()));
    if fuse {
        let mounts = mounts_under(&store);
        assert!(mounts.len() >= 3, "the candidate's disks: {mounts:?}");
    }

    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let interrupted = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if interrupted.elapsed() > Duration::from_secs(30) {
            panic!("still running 30 s after SIGINT:\n{}", text(log.path()));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = interrupted.elapsed();
    assert_eq!(status.code(), Some(130), "{}", text(log.path()));

    let doc: Value = serde_json::from_str(&text(&shrunk)).expect("shrunk.json is JSON");
    assert_eq!(doc["finished"], false, "{doc:#}");
    assert_eq!(doc["original_faults"], 3);
    let faults = doc["schedule"]["faults"].as_array().expect("a schedule");
    assert_eq!(faults.len(), 3, "the best so far is the original");
    assert!(faults.iter().all(|f| f["name"] == "kill"));
    assert!(doc["schedule"]["command_line"]
        .as_str()
        .unwrap()
        .contains("--bug forget-vote"));
    assert!(doc["config"]["untried"].is_object(), "{doc:#}");
    let progress = text(log.path());
    assert!(progress.contains("baseline: reproduced"), "{progress}");
    assert!(progress.contains("remove: trying"), "{progress}");

    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ordeal_processes(&marker), 0, "a node outlived the shrink");
    assert_eq!(mounts_under(&store), Vec::<std::path::PathBuf>::new());
    eprintln!(
        "ctrl_c_keeps_the_best_schedule_so_far: {:?} in all, stopped in {took:?}",
        started.elapsed()
    );
}
