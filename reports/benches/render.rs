//! Renders a seeded synthetic run of 1,000,000 operations over 600 s with
//! three nodes' Raft traces (150 persists per second per live node, four
//! messages traced per persist: about 95 MB per node, in the proportions
//! of a real 60-second run's traces, at about three times its persist
//! rate), and prints how long the whole report took (goal: under 5 s in
//! release). Also times reading the traces as the report does (a byte scan
//! for `ev`, four kinds parsed into a typed event) against parsing every
//! line into a `serde_json::Value`, the obvious way, on the same files.

use std::io::BufRead;
use std::time::Instant;

/// Every line of every trace parsed into a `Value`: the baseline.
fn read_as_values(paths: &[std::path::PathBuf]) -> u64 {
    let mut persists = 0;
    for path in paths {
        let file = std::fs::File::open(path).expect("a trace");
        for line in std::io::BufReader::with_capacity(1 << 20, file).lines() {
            let v: serde_json::Value = serde_json::from_str(&line.expect("a line")).expect("json");
            if v["ev"] == "persist" && v["duration_us"].is_u64() {
                persists += 1;
            }
        }
    }
    persists
}

/// CPU seconds this process has used (user + system, all threads).
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|t| t.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let load = reports::synthetic::TraceLoad {
        persists_per_s: 150.0,
        messages_per_persist: 4,
    };
    let written = reports::synthetic::write(dir.path(), 1_000_000, 600.0, Some(load))
        .expect("writing the synthetic run");
    let paths: Vec<_> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| dir.path().join("nodes").join(n).join("trace.jsonl"))
        .collect();
    let trace_bytes: u64 = paths
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let (started, cpu_before) = (Instant::now(), cpu_s());
    let summary = reports::render(dir.path()).expect("rendering");
    let render_s = started.elapsed().as_secs_f64();
    let render_cpu_s = cpu_s() - cpu_before;
    let epoch = reports::epoch::Epoch {
        unix_ms: 0.0,
        source: reports::epoch::EpochSource::Recorded,
    };
    let started = Instant::now();
    let scanned: u64 = paths
        .iter()
        .map(|p| {
            reports::trace::read(p, &epoch)
                .expect("reading")
                .map_or(0, |t| t.persists.len() as u64)
        })
        .sum();
    let scan_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let parsed = read_as_values(&paths);
    let value_s = started.elapsed().as_secs_f64();
    assert_eq!(scanned, parsed, "both readers count the same persists");
    let written: u64 = written.persist_events.iter().map(|(_, n)| n).sum();
    let counted: u64 = summary.fsync.iter().map(|n| n.count).sum();
    println!(
        "{{\"ops\":{},\"render_s\":{render_s:.3},\"render_cpu_s\":{render_cpu_s:.2},\"trace_mb\":{:.1},\"persists_written\":{written},\"persists_counted\":{counted},\"trace_read_s\":{scan_s:.3},\"trace_read_as_values_s\":{value_s:.3},\"value_over_scan\":{:.2},\"plots\":6,\"page\":\"index.html\"}}",
        summary.ops,
        trace_bytes as f64 / 1e6,
        value_s / scan_s.max(1e-9)
    );
}
