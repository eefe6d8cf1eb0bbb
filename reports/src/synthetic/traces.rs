//! The synthetic run's Raft traces (`docs/trace.md`, with `real_ms` and
//! `duration_us`): n1 leads until the partition isolates it, n2 then leads
//! until it is killed, n3 after; n2 is killed twice and restarts (three
//! processes). Between persists, `send` / `recv` lines in the proportion a
//! real node writes them give the files a real trace's size.

use super::Written;
use std::io::Write;
use std::path::Path;

/// n2's kill windows, as fractions of the run.
pub(super) const KILLS_OF_N2: [(f64, f64); 2] = [(0.6, 0.65), (0.8, 0.85)];
/// From a kill's end to the restarted process's `start`, s.
const RESTART_S: f64 = 0.2;
/// When the founders' first processes started, s (before the history).
const FIRST_START_S: f64 = -1.5;

/// How much a synthetic trace holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceLoad {
    /// `persist` events per second of a live node.
    pub persists_per_s: f64,
    /// `send` and `recv` lines per persist.
    pub messages_per_persist: u32,
}

/// One trace file being written, in ordeal-node's field order.
struct TraceFile {
    out: std::io::BufWriter<std::fs::File>,
    node: u64,
    seq: u64,
    epoch_ms: u64,
}

impl TraceFile {
    fn event(&mut self, t_s: f64, ev: &str, rest: std::fmt::Arguments<'_>) -> std::io::Result<()> {
        let ms = (self.epoch_ms as f64 + t_s * 1e3).max(0.0) as u64;
        writeln!(
            self.out,
            "{{\"node\":{},\"seq\":{},\"lamport\":{},\"time_ms\":{ms},\"ev\":\"{ev}\",\"real_ms\":{ms}{rest}}}",
            self.node,
            self.seq,
            self.seq + 1
        )?;
        self.seq += 1;
        Ok(())
    }
}

/// A node's scripted life: starts and role changes, `(t_s, role, leader)`.
struct Script {
    starts_s: Vec<f64>,
    roles: Vec<(f64, &'static str, u64)>,
    down: Vec<(f64, f64)>,
}

fn script(node: u64, seconds: f64) -> Script {
    let (p, k1, k2) = (seconds * 0.3, KILLS_OF_N2[0], KILLS_OF_N2[1]);
    let s0 = FIRST_START_S;
    match node {
        1 => Script {
            starts_s: vec![s0],
            roles: vec![
                (s0, "follower", 0),
                (-1.0, "leader", 1),
                (p + 1.0, "follower", 2),
            ],
            down: vec![],
        },
        2 => Script {
            starts_s: vec![s0, seconds * k1.1 + RESTART_S, seconds * k2.1 + RESTART_S],
            roles: vec![
                (s0, "follower", 0),
                (-1.0, "follower", 1),
                (p + 0.9, "pre_candidate", 0),
                (p + 0.95, "candidate", 0),
                (p + 1.0, "leader", 2),
                (seconds * k1.1 + RESTART_S, "follower", 3),
                (seconds * k2.1 + RESTART_S, "follower", 3),
            ],
            down: vec![
                (seconds * k1.0, seconds * k1.1 + RESTART_S),
                (seconds * k2.0, seconds * k2.1 + RESTART_S),
            ],
        },
        _ => Script {
            starts_s: vec![s0],
            roles: vec![
                (s0, "follower", 0),
                (-1.0, "follower", 1),
                (p + 1.0, "follower", 2),
                (seconds * k1.0 + 1.0, "candidate", 0),
                (seconds * k1.0 + 1.1, "leader", 3),
            ],
            down: vec![],
        },
    }
}

/// Writes `nodes/n1..n3/trace.jsonl`.
pub(super) fn write_all(
    dir: &Path,
    seconds: f64,
    epoch_ms: u64,
    load: TraceLoad,
) -> std::io::Result<Written> {
    let mut written = Written::default();
    for node in 1..=3u64 {
        let name = format!("n{node}");
        let path = dir.join("nodes").join(&name).join("trace.jsonl");
        let mut file = TraceFile {
            out: std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?),
            node,
            seq: 0,
            epoch_ms,
        };
        let s = script(node, seconds);
        let persists = write_node(&mut file, &s, seconds, load)?;
        file.out.flush()?;
        written.persist_events.push((name.clone(), persists));
        written.starts_s.push((name, s.starts_s));
    }
    Ok(written)
}

/// A node's events in time order; returns its persists.
fn write_node(
    f: &mut TraceFile,
    s: &Script,
    seconds: f64,
    load: TraceLoad,
) -> std::io::Result<u64> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ f.node;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let step = 1.0 / load.persists_per_s;
    let (mut starts, mut roles) = (s.starts_s.iter().peekable(), s.roles.iter().peekable());
    let mut persists = 0;
    let mut t = FIRST_START_S;
    while t < seconds + 0.5 {
        while let Some(at) = starts.next_if(|at| **at <= t) {
            let pid = 100 + f.seq;
            f.event(*at, "start", format_args!(",\"term\":1,\"vote\":0,\"commit\":0,\"first_index\":1,\"last_index\":0,\"last_term\":0,\"snapshot_index\":0,\"snapshot_term\":0,\"voters\":[1,2,3],\"learners\":[],\"trace_cut\":false,\"applied\":0,\"pid\":{pid}"))?;
        }
        while let Some((at, role, leader)) = roles.next_if(|r| r.0 <= t) {
            f.event(
                *at,
                "role",
                format_args!(",\"role\":\"{role}\",\"term\":2,\"leader\":{leader},\"reason\":null"),
            )?;
        }
        if !s.down.iter().any(|(a, b)| *a <= t && t < *b) {
            let r = next();
            // Mostly 0.1–2 ms; one in 4096 over the 500 ms threshold.
            let duration_us = if r % 4096 == 0 {
                650_000
            } else {
                100 + r % 1_900
            };
            f.event(t, "persist", format_args!(",\"term\":2,\"vote\":1,\"commit\":{persists},\"first_index\":1,\"last_index\":{},\"last_term\":2,\"appended\":[[{},2]],\"truncated_from\":null,\"duration_us\":{duration_us}", persists + 1, persists + 1))?;
            persists += 1;
            let me = f.node;
            for m in 0..load.messages_per_persist {
                let (ev, to) = if m % 2 == 0 {
                    ("send", me % 3 + 1)
                } else {
                    ("recv", me)
                };
                f.event(t, ev, format_args!(",\"msg_type\":\"MsgAppend\",\"from\":{me},\"to\":{to},\"term\":2,\"index\":{persists},\"log_term\":2,\"commit\":{persists},\"reject\":false,\"entries\":1,\"snapshot_index\":null"))?;
            }
        }
        t += step;
    }
    Ok(persists)
}
