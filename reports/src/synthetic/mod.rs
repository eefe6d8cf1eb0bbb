//! A seeded synthetic run directory, for tests and the render benchmark.

mod traces;

pub use traces::TraceLoad;

use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// The wall clock at the synthetic test's start (`started_unix_ms`), ms.
const STARTED_UNIX_MS: u64 = 1_000_000;
/// The synthetic history's time 0 (`history_epoch_unix_ms`): the cluster
/// took 2 s to start and elect a leader, ms.
const HISTORY_EPOCH_UNIX_MS: u64 = STARTED_UNIX_MS + 2_000;

/// What [`write`] wrote that a test can compare the report with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Written {
    /// Per node (`n1`..`n3`): the `persist` events its trace holds (empty
    /// without traces).
    pub persist_events: Vec<(String, u64)>,
    /// Per node: when each of its processes started, s.
    pub starts_s: Vec<(String, Vec<f64>)>,
}

/// Writes a run of `ops` operations over `seconds`, with a partition
/// window, three nodes' metrics and a results file (no traces).
pub fn write_run(dir: &Path, ops: u64, seconds: f64) -> std::io::Result<()> {
    write(dir, ops, seconds, None).map(|_| ())
}

/// Writes a run as [`write_run`] does; with `traces`, also two kills of
/// `n2` (three processes), the nodes' Raft traces with persist durations,
/// roles and starts at `traces`' rates, and `history_epoch_unix_ms`.
pub fn write(
    dir: &Path,
    ops: u64,
    seconds: f64,
    traces: Option<TraceLoad>,
) -> std::io::Result<Written> {
    std::fs::create_dir_all(dir)?;
    let mut nemesis = vec![
        window(
            "partition",
            seconds * 0.3,
            "start",
            json!({"grudge_kind": "isolate-one"}),
        ),
        window("partition", seconds * 0.5, "end", json!({})),
    ];
    if traces.is_some() {
        for (from, to) in traces::KILLS_OF_N2 {
            nemesis.push(window("kill", seconds * from, "start", json!({})));
            nemesis.push(window("kill", seconds * to, "end", json!({})));
        }
    }
    nemesis.sort_by(|a, b| a.0.total_cmp(&b.0));
    history(dir, ops, seconds, &nemesis)?;
    let mut test = json!({"name": "ordeal-register-partition", "seed": 7, "workload": "register", "started_unix_ms": STARTED_UNIX_MS, "nodes": ["n1", "n2", "n3"], "concurrency": 64, "election_timeout_ms": 1000});
    if traces.is_some() {
        test["history_epoch_unix_ms"] = json!(HISTORY_EPOCH_UNIX_MS);
    }
    std::fs::write(dir.join("test.json"), test.to_string())?;
    std::fs::write(dir.join("results.json"), json!({"valid": true, "results": [{"checker": "linearizability", "valid": true, "check_ms": 3.5, "counts": {"ops": ops}, "anomalies": [], "artifacts": []}]}).to_string())?;
    metrics(dir)?;
    match traces {
        Some(load) => traces::write_all(dir, seconds, HISTORY_EPOCH_UNIX_MS, load),
        None => Ok(Written::default()),
    }
}

/// A nemesis event: (time s, the line without its index).
fn window(f: &str, t: f64, phase: &str, extra: Value) -> (f64, Value) {
    let target = if f == "kill" { "n2" } else { "n1" };
    let mut value = json!({"phase": phase, "targets": [target]});
    value
        .as_object_mut()
        .expect("an object")
        .extend(extra.as_object().expect("an object").clone());
    (
        t,
        json!({"process": "nemesis", "type": "info", "f": f, "time": (t * 1e9) as u64, "value": value}),
    )
}

/// `history.jsonl`: `ops` ops of 64 processes, slow and failing inside the
/// first nemesis window, with the nemesis events in time order.
fn history(dir: &Path, ops: u64, seconds: f64, nemesis: &[(f64, Value)]) -> std::io::Result<()> {
    let mut h = std::io::BufWriter::new(std::fs::File::create(dir.join("history.jsonl"))?);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let step = seconds / ops as f64;
    let (p_start, p_end) = (seconds * 0.3, seconds * 0.5);
    let mut index = 0u64;
    let mut line = |h: &mut std::io::BufWriter<std::fs::File>, v: &Value| -> std::io::Result<()> {
        let mut v = v.clone();
        v["index"] = json!(index);
        index += 1;
        writeln!(h, "{v}")
    };
    let mut pending = nemesis.iter().peekable();
    for i in 0..ops {
        let t = i as f64 * step;
        while let Some((_, e)) = pending.next_if(|(at, _)| *at < t + step / 2.0) {
            line(&mut h, e)?;
        }
        let faulty = t > p_start && t < p_end;
        let r = next();
        let f = if r % 3 == 0 { "read" } else { "write" };
        let latency_ms = if faulty {
            50.0 + (r % 5000) as f64
        } else {
            0.5 + (r % 400) as f64 / 40.0
        };
        let outcome = if faulty && r % 4 == 0 {
            "info"
        } else if faulty && r % 4 == 1 {
            "fail"
        } else {
            "ok"
        };
        let p = i % 64;
        line(
            &mut h,
            &json!({"process": p, "type": "invoke", "f": f, "value": null, "time": (t * 1e9) as u64}),
        )?;
        line(
            &mut h,
            &json!({"process": p, "type": outcome, "f": f, "value": 1, "time": ((t + latency_ms / 1e3) * 1e9) as u64}),
        )?;
    }
    for (_, e) in pending {
        line(&mut h, e)?;
    }
    h.flush()
}

/// Each node's `metrics.json` (n3 did not answer at the end) and log.
fn metrics(dir: &Path) -> std::io::Result<()> {
    for (n, node) in ["n1", "n2", "n3"].iter().enumerate() {
        let d = dir.join("nodes").join(node);
        std::fs::create_dir_all(&d)?;
        let samples: Vec<Value> = (0..2000)
            .map(|i| {
                json!([
                    STARTED_UNIX_MS + i * 10,
                    150 + (i * 37 + n as u64 * 11) % 900
                ])
            })
            .collect();
        let fsync = if n == 2 {
            Value::Null
        } else {
            json!({"count": 2000, "threshold_ms": 500.0, "over_threshold": 0, "p50_ms": 0.4, "p99_ms": 1.0, "max_ms": 1.05, "samples": samples})
        };
        std::fs::write(d.join("metrics.json"), json!({"status": null, "fsync": fsync, "prometheus": "consensus_etcdraft_leader_changes 2\n"}).to_string())?;
        std::fs::write(d.join("node.log"), "log\n")?;
    }
    Ok(())
}
