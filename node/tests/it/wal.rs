//! The write-ahead log's torn-tail rule on the real node (issue 20,
//! item 4; `node/src/record.rs`): a tail of never-fsynced data, zeros or
//! garbage, is cut off and the node starts with every acknowledged
//! transaction; damage to fsynced records refuses to start, naming the
//! file and offset.

use super::{chain, http, submit_many, EXE};
use node::bench::LocalCluster;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The last log segment of node `i` that holds records (more than the
/// 8-byte header).
fn last_segment(c: &LocalCluster, i: usize) -> PathBuf {
    let mut segments: Vec<(u64, PathBuf)> = std::fs::read_dir(c.data_dir(i))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let seq = match name.as_str() {
                "wal.log" => 0,
                _ => name.strip_prefix("wal.log.")?.parse().ok()?,
            };
            Some((seq, p))
        })
        .filter(|(_, p)| std::fs::metadata(p).is_ok_and(|m| m.len() > 8))
        .collect();
    segments.sort();
    segments.pop().expect("a segment holding records").1
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// `n` bytes of garbage: a SHA-256 chain from `seed`.
fn garbage(n: usize, seed: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut block = Sha256::digest(seed);
    let mut out = Vec::with_capacity(n + 32);
    while out.len() < n {
        out.extend_from_slice(&block);
        block = Sha256::digest(block);
    }
    out.truncate(n);
    out
}

fn ids(blocks: &[node::ledger::Block]) -> Vec<String> {
    blocks
        .iter()
        .flat_map(|b| b.txs.iter().map(|t| t.id.clone()))
        .collect()
}

/// After a SIGKILL, a zero-filled tail (4 KiB of zeros, as a crash leaves
/// when a file's size reached the disk and its data did not) and then a
/// garbage tail are cut off: the node starts, says so, and keeps every
/// acknowledged transaction. Before, either refused to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_starts_past_a_zero_filled_or_garbage_log_tail() {
    let mut c = LocalCluster::start(Path::new(EXE), 1, &[]).unwrap();
    let http = http();
    c.wait_leader(&http).await.unwrap();
    submit_many(&http, &c, "a", 5).await;
    let mut acked = ids(&chain(&http, &c.url(0)).await);
    for (what, tail) in [
        ("zeros", vec![0u8; 4096]),
        ("garbage", garbage(65536, b"seed 7")),
    ] {
        c.kill(0);
        append(&last_segment(&c, 0), &tail);
        c.restart(0).unwrap();
        c.wait_leader(&http).await.unwrap();
        submit_many(&http, &c, what, 2).await;
        acked.extend((0..2).map(|k| format!("{what}{k}")));
        assert_eq!(ids(&chain(&http, &c.url(0)).await), acked, "{what}");
    }
    let log = c.log(0);
    assert_eq!(
        log.matches("torn tail in write-ahead log").count(),
        2,
        "{log}"
    );
}

/// A flipped byte in the length of a fsynced record, with fsynced records
/// after it: the node refuses to start, naming the file and the offset.
/// Before, the length running past the end of the file passed for a torn
/// tail and every acknowledged transaction after it was dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_to_start_on_damage_to_fsynced_log_records() {
    let mut c = LocalCluster::start(Path::new(EXE), 1, &[]).unwrap();
    let http = http();
    c.wait_leader(&http).await.unwrap();
    submit_many(&http, &c, "a", 10).await;
    c.kill(0);
    let segment = last_segment(&c, 0);
    let mut bytes = std::fs::read(&segment).unwrap();
    // The first record (after the 8-byte header): its length's second byte.
    bytes[8 + 1] ^= 0x40;
    std::fs::write(&segment, &bytes).unwrap();
    c.restart(0).unwrap();
    let exit = c.wait_exit(0, Duration::from_secs(10));
    let log = c.log(0);
    let exit = exit.unwrap_or_else(|| panic!("the node started on a damaged log\n{log}"));
    assert!(!exit.success(), "{exit:?}\n{log}");
    let name = segment.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        log.contains(&name)
            && log.contains("corrupt record at offset 8")
            && log.contains("sync marker"),
        "the error names the file, the offset and the proof\n{log}"
    );
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "nothing was cut");
}

/// A follower whose data directory is emptied and that is restarted under
/// its old id (Fabric #3639): the leader, which saw it acknowledge
/// entries, sends heartbeats committing past its empty log. The node
/// stops naming the lost state. Before, raft-rs panicked ("to_commit N is
/// out of range [last_index 0]").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_follower_stops_naming_its_lost_state_instead_of_panicking() {
    let mut c = LocalCluster::start(Path::new(EXE), 3, &[]).unwrap();
    let http = http();
    let leader = c.wait_leader(&http).await.unwrap();
    submit_many(&http, &c, "a", 10).await;
    let follower = (leader + 1) % 3;
    c.kill(follower);
    for entry in std::fs::read_dir(c.data_dir(follower)).unwrap().flatten() {
        std::fs::remove_file(entry.path()).unwrap();
    }
    c.restart(follower).unwrap();
    let exit = c.wait_exit(follower, Duration::from_secs(15));
    let log = c.log(follower);
    let exit = exit.unwrap_or_else(|| panic!("the wiped follower kept running\n{log}"));
    assert!(!exit.success(), "{exit:?}\n{log}");
    assert!(log.contains("lost acknowledged state"), "{log}");
    assert!(!log.contains("out of range"), "{log}");
}
