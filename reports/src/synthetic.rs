//! A seeded synthetic run directory, for tests and the render benchmark.

use serde_json::json;
use std::io::Write;
use std::path::Path;

/// Writes a run of `ops` operations over `seconds`, with a partition and a
/// kill window, three nodes' metrics and a results file.
pub fn write_run(dir: &Path, ops: u64, seconds: f64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
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
    let mut line =
        |h: &mut std::io::BufWriter<std::fs::File>, v: serde_json::Value| -> std::io::Result<()> {
            let mut v = v;
            v["index"] = json!(index);
            index += 1;
            writeln!(h, "{v}")
        };
    for i in 0..ops {
        let t = i as f64 * step;
        if (t - p_start).abs() < step / 2.0 {
            line(
                &mut h,
                json!({"process": "nemesis", "type": "info", "f": "partition", "time": (t * 1e9) as u64, "value": {"phase": "start", "targets": ["n1"], "grudge_kind": "isolate-one"}}),
            )?;
        }
        if (t - p_end).abs() < step / 2.0 {
            line(
                &mut h,
                json!({"process": "nemesis", "type": "info", "f": "partition", "time": (t * 1e9) as u64, "value": {"phase": "end", "targets": ["n1"]}}),
            )?;
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
            json!({"process": p, "type": "invoke", "f": f, "value": null, "time": (t * 1e9) as u64}),
        )?;
        line(
            &mut h,
            json!({"process": p, "type": outcome, "f": f, "value": 1, "time": ((t + latency_ms / 1e3) * 1e9) as u64}),
        )?;
    }
    h.flush()?;
    std::fs::write(dir.join("test.json"), json!({"name": "ordeal-register-partition", "seed": 7, "workload": "register", "started_unix_ms": 1_000_000}).to_string())?;
    std::fs::write(dir.join("results.json"), json!({"valid": true, "results": [{"checker": "linearizability", "valid": true, "check_ms": 3.5, "counts": {"ops": ops}, "anomalies": [], "artifacts": []}]}).to_string())?;
    for (n, node) in ["n1", "n2", "n3"].iter().enumerate() {
        let d = dir.join("nodes").join(node);
        std::fs::create_dir_all(&d)?;
        let samples: Vec<serde_json::Value> = (0..2000)
            .map(|i| json!([1_000_000 + i * 10, 150 + (i * 37 + n as u64 * 11) % 900]))
            .collect();
        let fsync = if n == 2 {
            serde_json::Value::Null
        } else {
            json!({"count": 2000, "threshold_ms": 500.0, "over_threshold": 0, "p50_ms": 0.4, "p99_ms": 1.0, "max_ms": 1.05, "samples": samples})
        };
        std::fs::write(d.join("metrics.json"), json!({"status": null, "fsync": fsync, "prometheus": "consensus_etcdraft_leader_changes 2\n"}).to_string())?;
        std::fs::write(d.join("node.log"), "log\n")?;
    }
    Ok(())
}
