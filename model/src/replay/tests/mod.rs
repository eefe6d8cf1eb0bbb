//! Table tests: small hand-written traces, one or two per rule (valid and violating), and the
//! reader's handling of truncated and malformed files.

use super::*;
use std::fmt::Write as _;

mod oracles;

/// Hand-written traces: events are appended per node with the Lamport clock given, so a test
/// states the causal order; `seq` counts per node and `time_ms` is ten times the clock.
#[derive(Default)]
struct Run {
    nodes: BTreeMap<NodeId, (u64, String)>,
}

impl Run {
    fn ev(&mut self, node: NodeId, lamport: u64, kind: &str, fields: &str) -> &mut Self {
        let (seq, text) = self.nodes.entry(node).or_default();
        let time_ms = lamport * 10;
        let _ = writeln!(
            text,
            r#"{{"node":{node},"seq":{seq},"lamport":{lamport},"time_ms":{time_ms},"ev":"{kind}",{fields}}}"#
        );
        *seq += 1;
        self
    }

    /// `start` with the recovered hard state and log.
    fn start(
        &mut self,
        node: NodeId,
        lamport: u64,
        hard: (u64, u64, u64),
        log: (u64, u64),
    ) -> &mut Self {
        let (term, vote, commit) = hard;
        let (last_index, last_term) = log;
        let fields = format!(
            r#""term":{term},"vote":{vote},"commit":{commit},"first_index":1,"last_index":{last_index},"last_term":{last_term},"snapshot_index":0,"snapshot_term":0,"voters":[1,2,3],"learners":[]"#
        );
        self.ev(node, lamport, "start", &fields)
    }

    /// `persist` of the hard state and the entries `appended`, after cutting from `cut`.
    fn persist(
        &mut self,
        node: NodeId,
        lamport: u64,
        hard: (u64, u64, u64),
        last: (u64, u64),
        appended: &[(u64, u64)],
        cut: Option<u64>,
    ) -> &mut Self {
        let (term, vote, commit) = hard;
        let (last_index, last_term) = last;
        let appended: Vec<String> = appended.iter().map(|(i, t)| format!("[{i},{t}]")).collect();
        let cut = cut.map_or("null".to_string(), |c| c.to_string());
        let fields = format!(
            r#""term":{term},"vote":{vote},"commit":{commit},"first_index":1,"last_index":{last_index},"last_term":{last_term},"appended":[{}],"truncated_from":{cut}"#,
            appended.join(",")
        );
        self.ev(node, lamport, "persist", &fields)
    }

    fn role(
        &mut self,
        node: NodeId,
        lamport: u64,
        role: &str,
        term: u64,
        reason: &str,
    ) -> &mut Self {
        let leader = if role == "leader" { node } else { 0 };
        let fields =
            format!(r#""role":"{role}","term":{term},"leader":{leader},"reason":{reason}"#);
        self.ev(node, lamport, "role", &fields)
    }

    fn apply(
        &mut self,
        node: NodeId,
        lamport: u64,
        index: u64,
        block: u64,
        hash: &str,
    ) -> &mut Self {
        let fields = format!(r#""index":{index},"term":1,"block":{block},"hash":"{hash}""#);
        self.ev(node, lamport, "apply", &fields)
    }

    fn traces(&self) -> Vec<Trace> {
        self.nodes
            .iter()
            .map(|(node, (_, text))| {
                let file = PathBuf::from(format!("n{node}.jsonl"));
                Trace::read(&file, text.as_bytes()).expect("well-formed test trace")
            })
            .collect()
    }

    fn check(&self) -> Report {
        check(&self.traces()).expect("checkable")
    }
}

/// The rules broken, in report order.
fn broken(report: &Report) -> Vec<Rule> {
    report.anomalies.iter().map(|a| a.rule).collect()
}

/// Three nodes start empty in term 0.
fn started() -> Run {
    let mut run = Run::default();
    for node in 1..=3 {
        run.start(node, 1, (0, 0, 0), (0, 0));
    }
    run
}

/// Node 1 wins term 1 with node 2's vote and commits index 1 (term 1) on nodes 1 and 2.
fn first_term() -> Run {
    let mut run = started();
    run.persist(1, 2, (1, 1, 0), (0, 0), &[], None)
        .persist(2, 3, (1, 1, 0), (0, 0), &[], None)
        .role(1, 4, "leader", 1, r#""vote""#)
        .persist(1, 5, (1, 1, 0), (1, 1), &[(1, 1)], None)
        .persist(2, 6, (1, 1, 0), (1, 1), &[(1, 1)], None)
        .persist(1, 7, (1, 1, 1), (1, 1), &[], None);
    run
}

#[test]
fn each_rule_on_a_valid_and_a_violating_trace() {
    type Case = (&'static str, fn(&mut Run), Vec<Rule>);
    let cases: Vec<Case> = vec![
        ("a correct term", |_| {}, vec![]),
        (
            "a second leader in term 1",
            |r| {
                r.persist(3, 8, (1, 3, 0), (0, 0), &[], None)
                    .role(3, 9, "leader", 1, "null");
            },
            vec![Rule::ElectionSafety],
        ),
        (
            "a leader in term 2",
            |r| {
                r.persist(2, 8, (2, 2, 1), (1, 1), &[], None)
                    .role(2, 9, "leader", 2, "null");
            },
            vec![],
        ),
        (
            "a vote changed within its term",
            |r| {
                r.persist(2, 8, (1, 3, 0), (1, 1), &[], None);
            },
            vec![Rule::VoteKept],
        ),
        (
            "a vote forgotten across a restart",
            |r| {
                r.start(2, 8, (1, 0, 0), (1, 1));
            },
            vec![Rule::VoteKept],
        ),
        (
            "a vote kept across a restart",
            |r| {
                r.start(2, 8, (1, 1, 0), (1, 1))
                    .persist(2, 9, (2, 3, 0), (1, 1), &[], None);
            },
            vec![],
        ),
        (
            "same term at index 2, different entries at index 1",
            |r| {
                r.persist(1, 8, (1, 1, 1), (2, 1), &[(2, 1)], None).persist(
                    3,
                    9,
                    (1, 1, 0),
                    (2, 1),
                    &[(1, 2), (2, 1)],
                    None,
                );
            },
            vec![Rule::LogMatching],
        ),
        (
            "a leader cuts its own log",
            |r| {
                r.persist(1, 8, (1, 1, 1), (1, 1), &[(1, 1)], Some(1));
                r.persist(1, 9, (1, 1, 1), (1, 2), &[(1, 2)], Some(1));
            },
            vec![Rule::LeaderAppendOnly],
        ),
        (
            "a leader appends",
            |r| {
                r.persist(1, 8, (1, 1, 1), (2, 1), &[(2, 1)], None);
            },
            vec![],
        ),
        (
            "a new leader without the committed entry",
            |r| {
                r.persist(3, 8, (2, 3, 0), (0, 0), &[], None)
                    .role(3, 9, "leader", 2, "null");
            },
            vec![Rule::LeaderCompleteness],
        ),
        (
            "a commit index that goes back across a restart",
            |r| {
                r.start(1, 8, (1, 1, 0), (1, 1));
            },
            vec![Rule::CommitMonotone],
        ),
        (
            "a commit index kept across a restart",
            |r| {
                r.start(1, 8, (1, 1, 1), (1, 1));
            },
            vec![],
        ),
        (
            "a persisted entry lost in a restart",
            |r| {
                r.start(2, 8, (1, 1, 0), (0, 0));
            },
            vec![Rule::Durability],
        ),
        (
            "a persisted entry recovered in another term",
            |r| {
                r.start(2, 8, (1, 1, 0), (1, 3));
            },
            vec![Rule::Durability],
        ),
        (
            "an entry received but never persisted may be lost",
            |r| {
                let append = r#""msg_type":"MsgAppend","from":1,"to":2,"term":1,"index":1,"log_term":1,"commit":1,"reject":false,"entries":1,"snapshot_index":null"#;
                r.ev(2, 8, "recv", append).start(2, 9, (1, 1, 0), (1, 1));
            },
            vec![],
        ),
        (
            "a snapshot replaces a persisted, uncommitted tail",
            |r| {
                r.persist(3, 8, (1, 1, 0), (2, 1), &[(1, 1), (2, 1)], None)
                    .ev(
                        3,
                        9,
                        "snapshot",
                        r#""action":"installed","index":1,"term":1,"to":null"#,
                    )
                    .start(3, 10, (1, 1, 1), (1, 1));
            },
            vec![],
        ),
        (
            "a persist lost from a cut trace is forgiven, not compared",
            |r| {
                let recovered = r#""term":2,"vote":3,"commit":0,"first_index":1,"last_index":0,"last_term":0,"trace_cut":true"#;
                r.ev(2, 8, "start", recovered);
            },
            vec![],
        ),
        (
            "two blocks applied at one index",
            |r| {
                r.apply(1, 8, 1, 1, "aa").apply(2, 9, 1, 1, "bb");
            },
            vec![Rule::StateMachineSafety],
        ),
        (
            "one block applied at one index on two nodes",
            |r| {
                r.apply(1, 8, 1, 1, "aa").apply(2, 9, 1, 1, "aa");
            },
            vec![],
        ),
        (
            "two entries committed at one index",
            |r| {
                r.persist(3, 8, (2, 3, 1), (1, 2), &[(1, 2)], None);
            },
            vec![Rule::StateMachineSafety],
        ),
    ];
    for (name, extend, expected) in cases {
        let mut run = first_term();
        extend(&mut run);
        let report = run.check();
        assert_eq!(broken(&report), expected, "{name}: {:#?}", report.anomalies);
        assert_eq!(report.valid, expected.is_empty(), "{name}");
    }
}

#[test]
fn an_anomaly_names_the_events_that_break_the_rule() {
    let mut run = first_term();
    run.persist(3, 8, (1, 3, 0), (0, 0), &[], None)
        .role(3, 9, "leader", 1, "null");
    let report = run.check();
    let events = &report.anomalies[0].events;
    let named: Vec<_> = events
        .iter()
        .map(|e| (e.node, e.seq, e.time_ms, e.ev.as_str()))
        .collect();
    assert_eq!(named, vec![(1, 2, 40, "role"), (3, 2, 90, "role")]);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["anomalies"][0]["rule"], "Election Safety");
    assert_eq!(json["valid"], false);
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back.anomalies, report.anomalies);
}

#[test]
fn events_replay_in_causal_order_not_file_order() {
    // Node 3's leader event is first in the causal order (lamport 2): node 1's is the second.
    let mut run = started();
    run.role(1, 9, "leader", 1, "null")
        .role(3, 2, "leader", 1, "null");
    let report = run.check();
    let events = &report.anomalies[0].events;
    assert_eq!((events[0].node, events[1].node), (3, 1));
}

#[test]
fn coverage_counts_the_situations_reached() {
    let mut run = first_term();
    run
        // Leader 1 appends three entries nobody else stores yet.
        .persist(1, 8, (1, 1, 1), (4, 1), &[(2, 1), (3, 1), (4, 1)], None)
        // Node 3 loses a pre-vote, then wins term 2 holding index 2 of term 1, and commits it
        // only with an entry of its own term: Figure 8's shape.
        .role(3, 9, "pre_candidate", 1, r#""pre_vote""#)
        .role(3, 10, "follower", 1, "null")
        .role(3, 11, "candidate", 2, r#""vote""#)
        .persist(3, 12, (2, 3, 0), (2, 1), &[(1, 1), (2, 1)], None)
        .role(3, 13, "leader", 2, r#""vote""#)
        .persist(3, 14, (2, 3, 3), (3, 2), &[(3, 2)], None)
        // Node 1 steps down and takes node 3's entry over its own two uncommitted ones.
        .role(1, 15, "follower", 1, r#""check_quorum""#)
        .persist(1, 16, (2, 3, 3), (3, 2), &[(3, 2)], Some(3))
        // Node 2 restarts holding an entry nobody committed.
        .persist(2, 17, (2, 3, 0), (4, 2), &[(2, 1), (3, 2), (4, 2)], None)
        .start(2, 18, (2, 3, 0), (4, 2))
        .ev(
            3,
            19,
            "snapshot",
            r#""action":"sent","index":2,"term":2,"to":2"#,
        )
        .ev(
            2,
            20,
            "snapshot",
            r#""action":"installed","index":2,"term":2,"to":null"#,
        )
        .ev(2, 21, "compact", r#""index":2"#)
        .ev(
            2,
            22,
            "conf",
            r#""index":3,"voters":[1,2,3,4],"learners":[],"change":"add 4""#,
        )
        .ev(
            2,
            23,
            "crash_point",
            r#""name":"wal.append.before-fsync","action":"abort","hit":1"#,
        );
    let report = run.check();
    assert!(report.valid, "{:#?}", report.anomalies);
    let expected = [
        ("elections_started", 1),
        ("pre_votes_lost", 1),
        ("votes_won", 2),
        ("check_quorum_step_downs", 1),
        ("leader_changes", 1),
        ("follower_truncations", 1),
        ("truncated_entries", 2),
        ("truncation_depth_max", 2),
        ("restarts", 1),
        ("restarts_with_uncommitted_tail", 1),
        ("earlier_term_commits", 1),
        ("snapshots_taken", 0),
        ("snapshots_sent", 1),
        ("snapshots_installed", 1),
        ("compactions", 1),
        ("conf_changes", 1),
        ("digests_compared", 0),
        ("digest_indices_across_nodes", 0),
        ("digests_across_restarts", 0),
        ("applies_checked", 0),
        ("sends_checked", 0),
        ("crash_points_fired", 1),
    ];
    let counted: Vec<_> = report
        .coverage
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(counted, expected);
    assert_eq!(COVERAGE.len(), report.coverage.len());
}

/// A file in a fresh directory under the system's temporary directory.
fn write_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("model-replay-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_partial_last_line_is_read_up_to_the_last_whole_event() {
    let mut run = first_term();
    run.role(2, 8, "candidate", 2, "null");
    let (_, text) = &run.nodes[&2];
    let cut = &text[..text.len() - 20];
    let path = write_file("truncated.jsonl", cut);
    let whole = write_file("whole.jsonl", &run.nodes[&1].1);
    let report = check_files(&[&path, &whole]).unwrap();
    assert_eq!(report.truncated, vec![path.clone()]);
    let read = |node: NodeId| run.nodes[&node].0;
    assert_eq!(report.events_read, read(1) + read(2) - 1);
    assert_eq!(report.coverage["elections_started"], 0);
    assert!(report.valid);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    std::fs::remove_dir_all(whole.parent().unwrap()).unwrap();
}

#[test]
fn bad_lines_are_errors_naming_file_and_line() {
    let good = r#"{"node":1,"seq":0,"lamport":1,"time_ms":1,"ev":"role","role":"leader","term":1,"reason":null}"#;
    let later = r#"{"node":1,"seq":1,"lamport":2,"time_ms":1,"ev":"role","role":"leader","term":1,"reason":null}"#;
    let cases = [
        (format!("{good}\nnot json\n"), "n.jsonl:2: not JSON"),
        (format!("{good}\n[1,2]\n"), "n.jsonl:2: not a JSON object"),
        (format!("{later}\n{good}\n"), "n.jsonl:2: seq 0 after seq 1"),
        (
            format!("{good}\n{}\n", later.replace("\"node\":1", "\"node\":2")),
            "n.jsonl:2: node 2 in a trace of node 1",
        ),
        (
            format!("{}\n", good.replace("\"leader\",", "\"boss\",")),
            "n.jsonl:1: bad `role` event",
        ),
        (
            format!("{}\n", good.replace(",\"seq\":0", "")),
            "n.jsonl:1: bad common fields: missing field `seq`",
        ),
    ];
    for (text, message) in cases {
        let path = write_file("n.jsonl", &text);
        let error = check_files(&[&path]).unwrap_err().to_string();
        let shown = error.replace(&format!("{}", path.parent().unwrap().display()), "");
        assert!(shown.starts_with(&format!("/{message}")), "{shown}");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
    let missing = check_files(&[Path::new("/nonexistent/n.jsonl")]).unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/n.jsonl"),
        "{missing}"
    );
}

#[test]
fn unknown_event_kinds_are_counted_not_judged() {
    let mut run = first_term();
    run.ev(2, 8, "gossip", r#""what":1"#)
        .ev(2, 9, "gossip", r#""what":2"#);
    let report = run.check();
    assert!(report.valid);
    assert_eq!(report.unknown_events["gossip"], 2);
}

#[test]
fn two_traces_of_one_node_are_refused() {
    let run = first_term();
    let mut traces = run.traces();
    traces.push(traces[0].clone());
    let error = check(&traces).unwrap_err().to_string();
    assert_eq!(error, "node 1 has two traces: n1.jsonl and n1.jsonl");
}

#[test]
fn a_start_after_a_cut_trace_is_counted_and_judged_afresh() {
    let mut run = first_term();
    let recovered = r#""term":1,"vote":1,"commit":0,"first_index":1,"last_index":0,"last_term":0,"trace_cut":true"#;
    run.ev(2, 8, "start", recovered)
        .persist(2, 9, (1, 3, 0), (0, 0), &[], None);
    let report = run.check();
    assert_eq!(report.starts_after_cut, 1);
    // The state after the cut start is judged as usual: the vote then changes in term 1.
    assert_eq!(broken(&report), vec![Rule::VoteKept]);
}

#[test]
fn a_forgotten_vote_shows_as_the_buggy_node_writes_it() {
    // The node's forget-vote bug persists a zero hard state: after a restart node 2 is back in
    // term 0, votes again in term 1, and node 3 leads term 1 beside node 1.
    let mut run = first_term();
    run.start(2, 8, (0, 0, 0), (1, 1))
        .persist(2, 9, (1, 3, 0), (1, 1), &[], None)
        .persist(3, 10, (1, 3, 0), (0, 0), &[], None)
        .role(3, 11, "leader", 1, r#""vote""#);
    let report = run.check();
    assert_eq!(broken(&report), vec![Rule::VoteKept, Rule::ElectionSafety]);
    assert!(report.anomalies[0]
        .message
        .contains("node 2 went from term 1 (vote for 1) to term 0 (no vote)"));
}
