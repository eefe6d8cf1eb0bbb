//! What the report takes from a node's Raft trace (`nodes/<n>/trace.jsonl`,
//! `docs/trace.md`): every process's `start`, every `persist` with its
//! `duration_us`, the `role` changes, the `conf` changes and the
//! `crash_point` events, placed on the
//! run's time axis by their `real_ms` (the host's real clock), or by
//! `time_ms` (the node's own clock, skewed under a clock fault) when an
//! event has no `real_ms`.
//!
//! A soak's trace is hundreds of MB, mostly `send` and `recv`: the file is
//! streamed line by line, each line's `ev` is found by a byte scan, and
//! only the five kinds above are parsed, into a typed event (no map per
//! line).

use crate::epoch::Epoch;
use crate::stats;
use hdrhistogram::Histogram;
use serde::Deserialize;
use std::io::BufRead;
use std::path::Path;

/// A node's role, as its trace's `role` events say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// `leader`.
    Leader,
    /// `follower`.
    Follower,
    /// `candidate` or `pre_candidate`.
    Candidate,
}

impl Role {
    /// From the trace's (and `/status`'s) word.
    pub fn parse(word: &str) -> Option<Role> {
        match word {
            "leader" => Some(Role::Leader),
            "follower" => Some(Role::Follower),
            "candidate" | "pre_candidate" | "precandidate" | "pre-candidate" => {
                Some(Role::Candidate)
            }
            _ => None,
        }
    }
}

/// A configuration as one node applied it (`start` or `conf`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfView {
    /// Seconds since the test began.
    pub t_s: f64,
    /// Voter ids.
    pub voters: Vec<u64>,
    /// Learner ids.
    pub learners: Vec<u64>,
}

/// The report's part of one node's trace.
#[derive(Debug)]
pub struct NodeTrace {
    /// The raft id the events carry (`None`: no event had one).
    pub id: Option<u64>,
    /// Each process's `start`, s.
    pub starts_s: Vec<f64>,
    /// Every `persist` event, with a duration or not.
    pub persist_events: u64,
    /// `(t_s, duration ms)` of each persist that has `duration_us`, in
    /// file order.
    pub persists: Vec<(f64, f64)>,
    /// Their durations, µs (1 µs .. 1 h).
    pub histogram: Histogram<u64>,
    /// `(t_s, role, known leader id)` at each `role` event.
    pub roles: Vec<(f64, Role, u64)>,
    /// The configuration at each `start` and `conf` event.
    pub confs: Vec<ConfView>,
    /// Events placed by `time_ms` because they had no `real_ms`.
    pub placed_by_node_clock: u64,
    /// Lines that are not events (the last one cut by a kill included).
    pub bad_lines: u64,
    /// Every `crash_point` event: the point, its action, and its hits
    /// in that process (`reached`).
    pub crash_points: Vec<(String, String, u64)>,
}

impl NodeTrace {
    /// Moves every event `by_s` seconds along the time axis.
    pub fn shift(&mut self, by_s: f64) {
        self.starts_s.iter_mut().for_each(|t| *t += by_s);
        self.persists.iter_mut().for_each(|p| p.0 += by_s);
        self.roles.iter_mut().for_each(|r| r.0 += by_s);
        self.confs.iter_mut().for_each(|c| c.t_s += by_s);
    }
}

/// Why a trace could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct TraceError {
    /// The file.
    pub path: String,
    /// The cause.
    pub source: std::io::Error,
}

/// The fields the report reads; everything else is skipped by serde.
#[derive(Deserialize)]
struct Event<'a> {
    node: Option<u64>,
    time_ms: Option<f64>,
    real_ms: Option<f64>,
    duration_us: Option<u64>,
    #[serde(borrow)]
    role: Option<&'a str>,
    leader: Option<u64>,
    voters: Option<Vec<u64>>,
    learners: Option<Vec<u64>>,
    #[serde(borrow)]
    name: Option<&'a str>,
    #[serde(borrow)]
    action: Option<&'a str>,
    reached: Option<u64>,
}

/// The event kinds the report reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Start,
    Persist,
    Role,
    Conf,
    CrashPoint,
}

const EV_KEY: &[u8] = b"\"ev\":\"";

/// The value of a line's `"ev":"…"`, found without parsing the line
/// (ordeal-node writes it fifth, within the first 100 bytes; any place is
/// found).
fn ev_of(line: &[u8]) -> Option<&[u8]> {
    let mut from = 0;
    while let Some(i) = line[from..].iter().position(|&b| b == b'"') {
        let at = from + i;
        if line[at..].starts_with(EV_KEY) {
            let rest = &line[at + EV_KEY.len()..];
            let end = rest.iter().position(|&b| b == b'"')?;
            return Some(&rest[..end]);
        }
        from = at + 1;
    }
    None
}

fn kind_of(line: &[u8]) -> Option<Kind> {
    match ev_of(line)? {
        b"persist" => Some(Kind::Persist),
        b"role" => Some(Kind::Role),
        b"start" => Some(Kind::Start),
        b"conf" => Some(Kind::Conf),
        b"crash_point" => Some(Kind::CrashPoint),
        _ => None,
    }
}

/// Reads `path`; `Ok(None)` when the node has no trace.
pub fn read(path: &Path, epoch: &Epoch) -> Result<Option<NodeTrace>, TraceError> {
    let error = |source| TraceError {
        path: path.display().to_string(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(error(e)),
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut out = NodeTrace {
        id: None,
        starts_s: Vec::new(),
        persist_events: 0,
        persists: Vec::new(),
        histogram: stats::histogram(),
        roles: Vec::new(),
        confs: Vec::new(),
        placed_by_node_clock: 0,
        bad_lines: 0,
        crash_points: Vec::new(),
    };
    let mut line = Vec::with_capacity(512);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(error)? == 0 {
            break;
        }
        if let Some(kind) = kind_of(&line) {
            take(&mut out, kind, &line, epoch);
        } else if ev_of(&line).is_none() && !line.trim_ascii().is_empty() {
            out.bad_lines += 1;
        }
    }
    Ok(Some(out))
}

/// Adds one line of a kind the report reads.
fn take(out: &mut NodeTrace, kind: Kind, line: &[u8], epoch: &Epoch) {
    let Ok(e) = serde_json::from_slice::<Event>(line) else {
        out.bad_lines += 1;
        return;
    };
    let Some(ms) = e.real_ms.or(e.time_ms) else {
        out.bad_lines += 1;
        return;
    };
    if e.real_ms.is_none() {
        out.placed_by_node_clock += 1;
    }
    out.id = out.id.or(e.node);
    let t_s = epoch.seconds(ms);
    match kind {
        Kind::Persist => {
            out.persist_events += 1;
            if let Some(us) = e.duration_us {
                let ms = us as f64 / 1e3;
                out.persists.push((t_s, ms));
                stats::record(&mut out.histogram, ms);
            }
        }
        Kind::CrashPoint => match (e.name, e.action) {
            (Some(name), Some(action)) => {
                let reached = e.reached.unwrap_or(0);
                out.crash_points
                    .push((name.to_string(), action.to_string(), reached));
            }
            _ => out.bad_lines += 1,
        },
        Kind::Role => match e.role.and_then(Role::parse) {
            Some(role) => out.roles.push((t_s, role, e.leader.unwrap_or(0))),
            None => out.bad_lines += 1,
        },
        Kind::Start | Kind::Conf => {
            if kind == Kind::Start {
                out.starts_s.push(t_s);
            }
            if let Some(voters) = e.voters {
                out.confs.push(ConfView {
                    t_s,
                    voters,
                    learners: e.learners.unwrap_or_default(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoch::EpochSource;

    const EPOCH: Epoch = Epoch {
        unix_ms: 1_000_000.0,
        source: EpochSource::Recorded,
    };

    #[test]
    fn the_four_kinds_are_read_and_the_rest_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.jsonl");
        let text = [
            r#"{"node":2,"seq":0,"lamport":1,"time_ms":999000,"ev":"start","real_ms":999500,"term":0,"vote":0,"voters":[1,2,3],"learners":[],"applied":0,"pid":7}"#,
            r#"{"node":2,"seq":1,"lamport":2,"time_ms":999001,"ev":"role","real_ms":999501,"role":"follower","term":0,"leader":0,"reason":"start"}"#,
            r#"{"node":2,"seq":2,"lamport":3,"time_ms":1001000,"ev":"send","msg_type":"MsgHeartbeat","from":2,"to":1}"#,
            r#"{"node":2,"seq":3,"lamport":4,"time_ms":1001500,"ev":"persist","real_ms":1002000,"duration_us":1500,"term":1,"appended":[[1,1],[2,1]]}"#,
            // Before the trace additions: placed by its own clock, counted
            // as a persist without a duration.
            r#"{"node":2,"seq":4,"lamport":5,"time_ms":1003000,"ev":"persist","term":1,"appended":[]}"#,
            r#"{"ev":"role","node":2,"real_ms":1004000,"role":"pre_candidate","leader":0}"#,
            r#"{"node":2,"seq":6,"lamport":7,"time_ms":1005000,"ev":"conf","real_ms":1005000,"index":9,"voters":[1,2,3],"learners":[4],"change":"add 4"}"#,
            r#"{"node":2,"seq":7,"lamport":8,"time_ms":1006000,"ev":"persist","real_ms":1006000,"dura"#,
        ]
        .join("\n");
        std::fs::write(&path, text).unwrap();
        let t = read(&path, &EPOCH).unwrap().unwrap();
        assert_eq!(t.id, Some(2));
        assert_eq!(t.starts_s, vec![-0.5]);
        assert_eq!(t.persist_events, 2);
        assert_eq!(t.persists, vec![(2.0, 1.5)]);
        assert_eq!(t.histogram.len(), 1);
        assert_eq!(
            t.roles,
            vec![(-0.499, Role::Follower, 0), (4.0, Role::Candidate, 0)]
        );
        assert_eq!(t.confs.len(), 2);
        assert_eq!(t.confs[1].learners, vec![4]);
        assert_eq!(t.placed_by_node_clock, 1);
        assert_eq!(t.bad_lines, 1, "the cut last line");
        assert!(read(&dir.path().join("none.jsonl"), &EPOCH)
            .unwrap()
            .is_none());
    }

    #[test]
    fn ev_is_found_anywhere_and_only_as_a_key() {
        assert_eq!(ev_of(br#"{"node":1,"ev":"role"}"#), Some(&b"role"[..]));
        assert_eq!(ev_of(br#"{"x":"ev","ev":"conf"}"#), Some(&b"conf"[..]));
        assert_eq!(ev_of(br#"{"node":1}"#), None);
        assert_eq!(ev_of(br#"{"ev":"persi"#), None);
    }
}
