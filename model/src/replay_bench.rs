//! `model replay-bench`: what the raft checker costs on a synthetic run of a known size.
//!
//! A consistent three-node trace is written into a fresh temporary directory: node 1 wins
//! term 1 and replicates `indices` entries one at a time (it sends each to both followers and
//! persists it; each follower receives, persists and acknowledges it, and node 1 receives the
//! acknowledgements), every node applies each entry and digests every 16th index. The files
//! are replayed with `model::replay::check_files`, and one JSON line says what was replayed
//! and what it cost: trace bytes, events, wall time, and the process's peak resident memory
//! (`VmHWM`) before and after the replay. Writing holds nothing, so the rise is the replay's.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The most indices a bench writes (about 3 KB of trace per index).
pub const INDICES_MAX: u64 = 10_000_000;

/// Indices between two digests of a node, as `ordeal-node --trace-digest-every` defaults.
const DIGEST_EVERY: u64 = 16;

/// Writes, replays and measures; removes the trace files afterwards.
pub fn run(indices: u64) -> Result<Value> {
    if indices == 0 || indices > INDICES_MAX {
        bail!("--indices must be between 1 and {INDICES_MAX}, got {indices}");
    }
    let dir = std::env::temp_dir().join(format!("model-replay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let measured = write_and_replay(&dir, indices);
    let removed = std::fs::remove_dir_all(&dir);
    let measured = measured?;
    removed.with_context(|| format!("removing {}", dir.display()))?;
    Ok(measured)
}

fn write_and_replay(dir: &Path, indices: u64) -> Result<Value> {
    let files = Cluster::write(dir, indices)?;
    let trace_bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;
    let before_kb = peak_resident_kb();
    let started = Instant::now();
    let report = model::replay::check_files(&files)?;
    let replay_s = started.elapsed().as_secs_f64();
    let after_kb = peak_resident_kb();
    if !report.valid {
        bail!(
            "the synthetic trace should be valid: {:?}",
            report.anomalies
        );
    }
    Ok(json!({
        "indices": indices,
        "nodes": files.len(),
        "trace_bytes": trace_bytes,
        "events": report.events_read,
        "replay_s": replay_s,
        "events_per_s": report.events_read as f64 / replay_s,
        "peak_resident_kb_before": before_kb,
        "peak_resident_kb_after": after_kb,
        "digests_compared": report.coverage["digests_compared"],
        "applies_checked": report.coverage["applies_checked"],
        "sends_checked": report.coverage["sends_checked"],
    }))
}

/// The process's peak resident memory in kB (`VmHWM`), `None` where `/proc` has none.
fn peak_resident_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Three nodes' trace writers, with each node's sequence number and Lamport clock.
struct Cluster {
    files: Vec<BufWriter<File>>,
    seq: [u64; 3],
    lamport: [u64; 3],
    line: String,
}

impl Cluster {
    /// Writes the whole run; returns the files, node 1's first.
    fn write(dir: &Path, indices: u64) -> Result<Vec<PathBuf>> {
        let paths: Vec<PathBuf> = (1..=3).map(|n| dir.join(format!("n{n}.jsonl"))).collect();
        let files = paths
            .iter()
            .map(|p| File::create(p).map(BufWriter::new))
            .collect::<std::io::Result<_>>()?;
        let mut cluster = Cluster {
            files,
            seq: [0; 3],
            lamport: [0; 3],
            line: String::new(),
        };
        cluster.elect()?;
        for index in 1..=indices {
            cluster.replicate(index)?;
        }
        for file in &mut cluster.files {
            file.flush()?;
        }
        Ok(paths)
    }

    /// One event of `node` after Lamport time `after`; returns its Lamport time.
    fn ev(&mut self, node: u64, kind: &str, fields: &str, after: u64) -> Result<u64> {
        let at = (node - 1) as usize;
        self.lamport[at] = self.lamport[at].max(after) + 1;
        let (seq, lamport) = (self.seq[at], self.lamport[at]);
        self.line.clear();
        let time_ms = 1_700_000_000_000 + lamport;
        let _ = writeln!(
            self.line,
            r#"{{"node":{node},"seq":{seq},"lamport":{lamport},"time_ms":{time_ms},"ev":"{kind}",{fields}}}"#
        );
        self.files[at].write_all(self.line.as_bytes())?;
        self.seq[at] += 1;
        Ok(lamport)
    }

    fn elect(&mut self) -> Result<()> {
        for node in 1..=3 {
            let fields = format!(
                r#"{},"snapshot_index":0,"snapshot_term":0,"voters":[1,2,3],"learners":[],"trace_cut":false,"applied":0,"pid":{}"#,
                hard_state(0, 0, 0, 0),
                100 + node
            );
            self.ev(node, "start", &fields, 0)?;
        }
        for node in 1..=3 {
            let fields = format!(
                r#"{},"appended":[],"truncated_from":null"#,
                hard_state(1, 1, 0, 0)
            );
            self.ev(node, "persist", &fields, 0)?;
        }
        let leader = r#""role":"leader","term":1,"leader":1,"reason":"vote""#;
        self.ev(1, "role", leader, 0)?;
        Ok(())
    }

    /// Entry `index` from node 1 to both followers, acknowledged, applied everywhere.
    fn replicate(&mut self, index: u64) -> Result<()> {
        let persisted = format!(
            r#"{},"appended":[[{index},1]],"truncated_from":null"#,
            hard_state(1, 1, index - 1, index)
        );
        let mut stamps = [0; 2];
        for (stamp, to) in stamps.iter_mut().zip([2, 3]) {
            *stamp = self.ev(1, "send", &message("MsgAppend", 1, to, index), 0)?;
        }
        self.ev(1, "persist", &persisted, 0)?;
        let mut acks = [0; 2];
        for ((ack, stamp), follower) in acks.iter_mut().zip(stamps).zip([2, 3]) {
            let append = message("MsgAppend", 1, follower, index);
            let recv = format!(r#""send_lamport":{stamp},{append}"#);
            self.ev(follower, "recv", &recv, stamp)?;
            self.ev(follower, "persist", &persisted, 0)?;
            let response = message("MsgAppendResponse", follower, 1, index);
            *ack = self.ev(follower, "send", &response, 0)?;
        }
        for (ack, follower) in acks.into_iter().zip([2, 3]) {
            let response = message("MsgAppendResponse", follower, 1, index);
            self.ev(
                1,
                "recv",
                &format!(r#""send_lamport":{ack},{response}"#),
                ack,
            )?;
        }
        let hash = "ab".repeat(32);
        for node in 1..=3 {
            let apply = format!(r#""index":{index},"term":1,"block":{index},"hash":"{hash}""#);
            self.ev(node, "apply", &apply, 0)?;
            if index % DIGEST_EVERY == 0 {
                let digest = format!(
                    r#""index":{index},"height":{index},"head":"{hash}","registers":"00ff00ff00ff00ff","cause":"apply","real_ms":1"#
                );
                self.ev(node, "digest", &digest, 0)?;
            }
        }
        Ok(())
    }
}

/// A hard state, and a log of `last_index` entries of term 1.
fn hard_state(term: u64, vote: u64, commit: u64, last_index: u64) -> String {
    let last_term = u64::from(last_index > 0);
    format!(
        r#""term":{term},"vote":{vote},"commit":{commit},"first_index":1,"last_index":{last_index},"last_term":{last_term}"#
    )
}

/// A message of term 1 at `index`, accepted.
fn message(msg_type: &str, from: u64, to: u64, index: u64) -> String {
    format!(
        r#""msg_type":"{msg_type}","from":{from},"to":{to},"term":1,"index":{index},"log_term":1,"commit":{},"reject":false,"entries":1,"snapshot_index":null"#,
        index - 1
    )
}
