//! Table tests of the oracles that watch one node's state machine and disk: state digests
//! across replicas and restarts, apply continuity, persist before send. Each case is a small
//! hand-written trace: a clean one finds nothing, each violation exactly its anomaly.

use super::*;

impl Run {
    /// `start` of a process that recovered `applied` (`None`: an older node without the field).
    fn start_applied(
        &mut self,
        node: NodeId,
        lamport: u64,
        log: (u64, u64),
        applied: Option<u64>,
    ) -> &mut Self {
        let (last_index, last_term) = log;
        let applied = applied.map_or(String::new(), |a| format!(r#","applied":{a}"#));
        let fields = format!(
            r#""term":1,"vote":1,"commit":{last_index},"first_index":1,"last_index":{last_index},"last_term":{last_term},"snapshot_index":0,"snapshot_term":0,"voters":[1,2,3],"learners":[],"pid":{}{applied}"#,
            100 + lamport
        );
        self.ev(node, lamport, "start", &fields)
    }

    /// An entry of term 1 applied at `index`, carrying block `index`.
    fn applied(&mut self, node: NodeId, lamport: u64, index: u64) -> &mut Self {
        self.apply(node, lamport, index, index, &format!("h{index}"))
    }

    fn installed(&mut self, node: NodeId, lamport: u64, index: u64) -> &mut Self {
        let fields = format!(r#""action":"installed","index":{index},"term":1,"to":null"#);
        self.ev(node, lamport, "snapshot", &fields)
    }

    /// A `digest` at `index` whose registers digest is `registers`.
    fn digest(
        &mut self,
        node: NodeId,
        lamport: u64,
        index: u64,
        registers: &str,
        cause: &str,
    ) -> &mut Self {
        let fields = format!(
            r#""index":{index},"height":{index},"head":"h{index}","registers":"{registers}","cause":"{cause}","real_ms":1"#
        );
        self.ev(node, lamport, "digest", &fields)
    }

    /// A `send` of `msg_type` with `reject`.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        node: NodeId,
        lamport: u64,
        msg_type: &str,
        to: NodeId,
        term: u64,
        index: u64,
        reject: bool,
    ) -> &mut Self {
        let fields = format!(
            r#""msg_type":"{msg_type}","from":{node},"to":{to},"term":{term},"index":{index},"log_term":0,"commit":0,"reject":{reject},"entries":0,"snapshot_index":null"#
        );
        self.ev(node, lamport, "send", &fields)
    }
}

/// The events an anomaly names: (node, seq, kind).
fn named(anomaly: &Anomaly) -> Vec<(NodeId, u64, &str)> {
    anomaly
        .events
        .iter()
        .map(|e| (e.node, e.seq, e.ev.as_str()))
        .collect()
}

/// One node that starts having applied nothing.
fn fresh() -> Run {
    let mut run = Run::default();
    run.start_applied(1, 1, (0, 0), Some(0));
    run
}

#[test]
fn apply_continuity_on_clean_and_broken_traces() {
    type Case = (&'static str, fn(&mut Run), Vec<Rule>);
    let cases: Vec<Case> = vec![
        (
            "in order",
            |r| {
                r.applied(1, 2, 1).applied(1, 3, 2).applied(1, 4, 3);
            },
            vec![],
        ),
        (
            "an index skipped",
            |r| {
                r.applied(1, 2, 1).applied(1, 3, 3);
            },
            vec![Rule::ApplyGap],
        ),
        (
            "an index applied twice",
            |r| {
                r.applied(1, 2, 1).applied(1, 3, 2).applied(1, 4, 2);
            },
            vec![Rule::ApplyRepeat],
        ),
        (
            "the first apply skips the start's next index",
            |r| {
                r.applied(1, 2, 2);
            },
            vec![Rule::ApplyGap],
        ),
        (
            "a restart resumes right after its snapshot, re-applying what it did not hold",
            |r| {
                r.applied(1, 2, 1).applied(1, 3, 2).applied(1, 4, 3);
                r.start_applied(1, 5, (3, 1), Some(2))
                    .applied(1, 6, 3)
                    .applied(1, 7, 4);
            },
            vec![],
        ),
        (
            "a restart skips committed entries",
            |r| {
                r.applied(1, 2, 1).applied(1, 3, 2).applied(1, 4, 3);
                r.start_applied(1, 5, (3, 1), Some(2)).applied(1, 6, 4);
            },
            vec![Rule::ApplyGap],
        ),
        (
            "a restart applies an entry its snapshot holds",
            |r| {
                r.applied(1, 2, 1).applied(1, 3, 2);
                r.start_applied(1, 4, (2, 1), Some(2)).applied(1, 5, 2);
            },
            vec![Rule::ApplyRepeat],
        ),
        (
            "an installed snapshot moves the next index",
            |r| {
                r.applied(1, 2, 1)
                    .installed(1, 3, 10)
                    .applied(1, 4, 11)
                    .applied(1, 5, 12);
            },
            vec![],
        ),
        (
            "an apply skips past an installed snapshot",
            |r| {
                r.applied(1, 2, 1).installed(1, 3, 10).applied(1, 4, 12);
            },
            vec![Rule::ApplyGap],
        ),
        (
            "a start after a cut trace is judged by what it recovered",
            |r| {
                let cut = r#""term":1,"vote":1,"commit":3,"first_index":1,"last_index":3,"last_term":1,"trace_cut":true,"applied":3,"pid":7"#;
                r.applied(1, 2, 1).ev(1, 3, "start", cut).applied(1, 4, 4);
            },
            vec![],
        ),
    ];
    for (name, extend, expected) in cases {
        let mut run = fresh();
        extend(&mut run);
        let report = run.check();
        assert_eq!(broken(&report), expected, "{name}: {:#?}", report.anomalies);
        assert!(
            report.notes.iter().all(|n| !n.contains("continuity")),
            "{name}"
        );
    }
}

#[test]
fn an_apply_gap_names_the_process_and_the_indices() {
    let mut run = fresh();
    run.applied(1, 2, 1).applied(1, 3, 4);
    let report = run.check();
    let anomaly = &report.anomalies[0];
    assert_eq!(
        anomaly.message,
        "node 1 (process started at seq 0, pid 101) applied index 4 where 2 was next: \
         indices 2..=3 were never applied"
    );
    assert_eq!(
        named(anomaly),
        vec![(1, 0, "start"), (1, 1, "apply"), (1, 2, "apply")]
    );
    let detail = serde_json::to_value(&anomaly.detail).unwrap();
    let expected = serde_json::json!({
        "node": 1, "start_seq": 0, "pid": 101, "expected": 2, "applied": 4
    });
    assert_eq!(detail, expected);
    assert_eq!(report.coverage["applies_checked"], 2);
}

#[test]
fn an_older_trace_without_applied_skips_only_the_first_apply_and_says_so() {
    let mut run = Run::default();
    run.start_applied(1, 1, (0, 0), None)
        .applied(1, 2, 5)
        .applied(1, 3, 6)
        .applied(1, 4, 8);
    let report = run.check();
    assert_eq!(broken(&report), vec![Rule::ApplyGap]);
    assert_eq!(report.coverage["applies_checked"], 2);
    let note = report.notes.iter().find(|n| n.contains("continuity"));
    assert!(
        note.is_some_and(|n| n.starts_with("1 first applies")),
        "{:?}",
        report.notes
    );
}

/// Nodes 1, 2 and 3 apply indices 1..=3 and digest index 2, node 3 with `registers`.
fn digests(registers: &str) -> Run {
    let mut run = Run::default();
    for node in 1..=3 {
        run.start_applied(node, 1, (0, 0), Some(0));
    }
    for node in 1..=3 {
        let at = 10 * node;
        run.applied(node, at, 1).applied(node, at + 1, 2);
        let registers = if node == 3 {
            registers
        } else {
            "00ff00ff00ff00ff"
        };
        run.digest(node, at + 2, 2, registers, "apply")
            .applied(node, at + 3, 3);
    }
    run
}

#[test]
fn digests_are_compared_across_nodes() {
    let clean = digests("00ff00ff00ff00ff").check();
    assert!(clean.valid, "{:#?}", clean.anomalies);
    assert_eq!(clean.coverage["digests_compared"], 2);
    assert_eq!(clean.coverage["digest_indices_across_nodes"], 1);
    assert!(clean.notes.is_empty(), "{:?}", clean.notes);

    let report = digests("00ff00ff00ff0000").check();
    assert_eq!(broken(&report), vec![Rule::StateDivergence]);
    let anomaly = &report.anomalies[0];
    assert_eq!(
        anomaly.message,
        "index 2: node 1 holds height 2 head \"h2\" registers 00ff00ff00ff00ff (apply, seq 3) \
         but node 3 holds height 2 head \"h2\" registers 00ff00ff00ff0000 (apply, seq 3)"
    );
    // The digests, and the starts and applies that led each node to its digest.
    assert_eq!(
        named(anomaly),
        vec![
            (1, 0, "start"),
            (3, 0, "start"),
            (1, 1, "apply"),
            (1, 2, "apply"),
            (1, 3, "digest"),
            (3, 1, "apply"),
            (3, 2, "apply"),
            (3, 3, "digest"),
        ]
    );
    let detail = serde_json::to_value(&anomaly.detail).unwrap();
    let digest = |node: u64, registers: &str| {
        serde_json::json!({"node": node, "seq": 3, "pid": 101, "cause": "apply", "height": 2,
            "head": "h2", "registers": registers})
    };
    let expected = serde_json::json!({
        "index": 2,
        "digests": [digest(1, "00ff00ff00ff00ff"), digest(3, "00ff00ff00ff0000")],
        "agreeing": [2],
    });
    assert_eq!(detail, expected);
}

#[test]
fn a_digest_recomputed_after_a_restart_must_equal_the_earlier_one() {
    for (registers, expected) in [("aa", vec![]), ("bb", vec![Rule::StateDivergence])] {
        let mut run = fresh();
        run.applied(1, 2, 1)
            .digest(1, 3, 1, "aa", "snapshot_taken")
            .start_applied(1, 4, (1, 1), Some(1))
            .digest(1, 5, 1, registers, "start");
        let report = run.check();
        assert_eq!(broken(&report), expected, "{registers}");
        assert_eq!(report.coverage["digests_across_restarts"], 1);
        assert_eq!(report.coverage["digest_indices_across_nodes"], 0);
    }
}

#[test]
fn a_lasting_divergence_is_reported_once_until_the_nodes_agree_again() {
    let mut run = Run::default();
    for node in 1..=2 {
        run.start_applied(node, 1, (0, 0), Some(0));
    }
    let mut lamport = 2;
    for (index, second) in [(1, "bb"), (2, "bb"), (3, "aa"), (4, "bb")] {
        run.digest(1, lamport, index, "aa", "apply")
            .digest(2, lamport + 1, index, second, "apply");
        lamport += 2;
    }
    let report = run.check();
    let indices: Vec<_> = report
        .anomalies
        .iter()
        .map(|a| match &a.detail {
            Some(Detail::Divergence(d)) => d.index,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(indices, vec![1, 4]);
    assert_eq!(report.coverage["digests_compared"], 4);
}

#[test]
fn a_digest_field_missing_is_not_compared() {
    let mut run = fresh();
    run.start_applied(2, 2, (0, 0), Some(0))
        .digest(1, 3, 1, "aa", "apply")
        .ev(2, 4, "digest", r#""index":1,"height":1,"head":"h1""#);
    let report = run.check();
    assert!(report.valid, "{:#?}", report.anomalies);
    assert_eq!(report.coverage["digests_compared"], 1);
}

#[test]
fn traces_without_digests_say_the_states_were_not_compared() {
    let report = first_term().check();
    assert!(report
        .notes
        .iter()
        .any(|n| n.starts_with("no `digest` event")));
}

#[test]
fn the_context_of_a_divergence_is_bounded() {
    let mut run = Run::default();
    run.start_applied(1, 1, (0, 0), Some(0))
        .start_applied(2, 1, (0, 0), Some(0));
    let applies = CONTEXT_EVENTS_MAX as u64 + 10;
    for index in 1..=applies {
        run.applied(1, 1 + index, index);
    }
    run.digest(1, applies + 2, applies, "aa", "apply")
        .installed(2, applies + 3, applies)
        .digest(2, applies + 4, applies, "bb", "snapshot_installed");
    let report = run.check();
    let anomaly = &report.anomalies[0];
    let of_node = |node| anomaly.events.iter().filter(|e| e.node == node).count();
    assert_eq!(of_node(1), CONTEXT_EVENTS_MAX);
    let first: Vec<_> = named(anomaly)
        .into_iter()
        .filter(|e| e.0 == 1)
        .take(3)
        .collect();
    assert_eq!(
        first,
        [(1, 12, "apply"), (1, 13, "apply"), (1, 14, "apply")]
    );
    assert_eq!(
        of_node(2),
        3,
        "start, install, digest: {:?}",
        named(anomaly)
    );
}

/// Nodes 1 and 2 start in term 1 (node 2 voted for 1) with index 1 of term 1 persisted.
fn follower() -> Run {
    let mut run = Run::default();
    run.start(1, 1, (1, 1, 0), (1, 1))
        .start(2, 1, (1, 1, 0), (1, 1));
    run
}

#[test]
fn persist_before_send_on_clean_and_broken_traces() {
    type Case = (&'static str, fn(&mut Run), Vec<Rule>);
    let cases: Vec<Case> = vec![
        (
            "an ack after the persist of its entry",
            |r| {
                r.persist(2, 3, (1, 1, 0), (2, 1), &[(2, 1)], None).send(
                    2,
                    4,
                    "MsgAppendResponse",
                    1,
                    1,
                    2,
                    false,
                );
            },
            vec![],
        ),
        (
            "an ack of an entry already durable",
            |r| {
                r.send(2, 3, "MsgAppendResponse", 1, 1, 1, false);
            },
            vec![],
        ),
        (
            "an ack before the persist of its entry",
            |r| {
                r.send(2, 3, "MsgAppendResponse", 1, 1, 2, false).persist(
                    2,
                    4,
                    (1, 1, 0),
                    (2, 1),
                    &[(2, 1)],
                    None,
                );
            },
            vec![Rule::PersistBeforeSend],
        ),
        (
            "an ack whose entry is never persisted before a restart",
            |r| {
                r.send(2, 3, "MsgAppendResponse", 1, 1, 2, false)
                    .start(2, 4, (1, 1, 0), (1, 1));
            },
            vec![Rule::PersistBeforeSend],
        ),
        (
            "an ack whose entry is never persisted before the trace ends",
            |r| {
                r.send(2, 3, "MsgAppendResponse", 1, 1, 2, false);
            },
            vec![Rule::PersistBeforeSend],
        ),
        (
            "an ack in a term not yet durable",
            |r| {
                r.send(2, 3, "MsgAppendResponse", 1, 2, 1, false).persist(
                    2,
                    4,
                    (2, 0, 0),
                    (1, 1),
                    &[],
                    None,
                );
            },
            vec![Rule::PersistBeforeSend],
        ),
        (
            "an ack of an entry a truncation removed",
            |r| {
                r.persist(2, 3, (1, 1, 0), (3, 1), &[(2, 1), (3, 1)], None)
                    .persist(2, 4, (2, 3, 0), (2, 2), &[(2, 2)], Some(2))
                    .send(2, 5, "MsgAppendResponse", 3, 2, 3, false);
            },
            vec![Rule::PersistBeforeSend],
        ),
        (
            "an ack of an older term after a newer leader's truncation in the same turn",
            |r| {
                r.persist(2, 3, (1, 1, 0), (3, 1), &[(2, 1), (3, 1)], None)
                    .persist(2, 4, (2, 3, 0), (2, 2), &[(2, 2)], Some(2))
                    .send(2, 5, "MsgAppendResponse", 1, 1, 3, false)
                    .send(2, 6, "MsgAppendResponse", 3, 2, 2, false);
            },
            vec![],
        ),
        (
            "an ack covered by an installed snapshot",
            |r| {
                r.installed(2, 3, 10)
                    .send(2, 4, "MsgAppendResponse", 1, 1, 10, false);
            },
            vec![],
        ),
        (
            "refusals, heartbeat answers and pre-votes before any persist",
            |r| {
                r.send(2, 3, "MsgAppendResponse", 1, 1, 5, true)
                    .send(2, 4, "MsgHeartbeatResponse", 1, 1, 0, false)
                    .send(2, 5, "MsgRequestVoteResponse", 3, 2, 0, true)
                    .send(2, 6, "MsgRequestPreVoteResponse", 3, 2, 0, false)
                    .send(2, 7, "MsgRequestPreVote", 3, 2, 1, false);
            },
            vec![],
        ),
        (
            "a leader's appends before the persist of their entries",
            |r| {
                r.send(1, 3, "MsgAppend", 2, 1, 1, false)
                    .send(1, 4, "MsgHeartbeat", 2, 1, 0, false)
                    .persist(1, 5, (1, 1, 0), (2, 1), &[(2, 1)], None);
            },
            vec![],
        ),
        (
            "a vote granted after its persist",
            |r| {
                r.persist(2, 3, (2, 3, 0), (1, 1), &[], None).send(
                    2,
                    4,
                    "MsgRequestVoteResponse",
                    3,
                    2,
                    0,
                    false,
                );
            },
            vec![],
        ),
        (
            "a vote granted before its persist",
            |r| {
                r.send(2, 3, "MsgRequestVoteResponse", 3, 2, 0, false)
                    .persist(2, 4, (2, 3, 0), (1, 1), &[], None);
            },
            vec![Rule::PersistBeforeSend],
        ),
        (
            "a vote granted whose term the node durably left in the same turn",
            |r| {
                r.persist(2, 3, (3, 1, 0), (1, 1), &[], None).send(
                    2,
                    4,
                    "MsgRequestVoteResponse",
                    3,
                    2,
                    0,
                    false,
                );
            },
            vec![],
        ),
        (
            "a vote granted to another than the durable vote",
            |r| {
                r.persist(2, 3, (2, 1, 0), (1, 1), &[], None).send(
                    2,
                    4,
                    "MsgRequestVoteResponse",
                    3,
                    2,
                    0,
                    false,
                );
            },
            vec![Rule::PersistBeforeSend],
        ),
        (
            "a candidate's vote requests after its persist",
            |r| {
                r.persist(2, 3, (2, 2, 0), (1, 1), &[], None)
                    .send(2, 4, "MsgRequestVote", 1, 2, 1, false)
                    .send(2, 5, "MsgRequestVote", 3, 2, 1, false);
            },
            vec![],
        ),
        (
            "a candidate's vote request before its persist",
            |r| {
                r.send(2, 3, "MsgRequestVote", 1, 2, 1, false).persist(
                    2,
                    4,
                    (2, 2, 0),
                    (1, 1),
                    &[],
                    None,
                );
            },
            vec![Rule::PersistBeforeSend],
        ),
        (
            "a start after a cut trace knows only what it recovered",
            |r| {
                let cut = r#""term":1,"vote":1,"commit":0,"first_index":1,"last_index":1,"last_term":1,"trace_cut":true"#;
                r.persist(2, 3, (1, 1, 0), (2, 1), &[(2, 1)], None)
                    .ev(2, 4, "start", cut)
                    .send(2, 5, "MsgAppendResponse", 1, 1, 1, false)
                    .send(2, 6, "MsgAppendResponse", 1, 1, 2, false)
                    .persist(2, 7, (1, 1, 0), (2, 1), &[(2, 1)], None);
            },
            vec![Rule::PersistBeforeSend],
        ),
    ];
    for (name, extend, expected) in cases {
        let mut run = follower();
        extend(&mut run);
        let report = run.check();
        assert_eq!(broken(&report), expected, "{name}: {:#?}", report.anomalies);
    }
}

#[test]
fn an_early_ack_names_the_persist_it_ran_ahead_of() {
    let mut run = follower();
    run.send(2, 3, "MsgAppendResponse", 1, 1, 2, false).persist(
        2,
        4,
        (1, 1, 0),
        (2, 1),
        &[(2, 1)],
        None,
    );
    let report = run.check();
    let anomaly = &report.anomalies[0];
    assert_eq!(
        anomaly.message,
        "node 2 sent MsgAppendResponse to 1 (term 1, index 2) needing log to index 2 in term 1 \
         durable, when its last start (seq 0) held log to index 1 in term 1 with vote for 1; \
         the persist at seq 2 made it true"
    );
    assert_eq!(
        named(anomaly),
        vec![(2, 0, "start"), (2, 1, "send"), (2, 2, "persist")]
    );
    let detail = serde_json::to_value(&anomaly.detail).unwrap();
    let expected = serde_json::json!({
        "node": 2, "send_seq": 1, "msg_type": "MsgAppendResponse", "to": 1, "term": 1,
        "index": 2, "needs": "log to index 2 in term 1", "durable_seq": 0,
        "durable_last_index": 1, "durable_term": 1, "durable_vote": 1, "covered_by_seq": 2
    });
    assert_eq!(detail, expected);
    assert_eq!(report.coverage["sends_checked"], 1);

    let mut ended = follower();
    ended
        .send(2, 3, "MsgAppendResponse", 1, 1, 2, false)
        .start(2, 4, (1, 1, 0), (1, 1));
    let report = ended.check();
    assert!(report.anomalies[0]
        .message
        .ends_with("no persist made it true before the process ended (next start at seq 2)"));
    assert_eq!(
        named(&report.anomalies[0]),
        vec![(2, 0, "start"), (2, 1, "send"), (2, 2, "start")]
    );
}

#[test]
fn sends_of_older_traces_without_the_fields_are_not_judged() {
    let mut run = follower();
    run.ev(
        2,
        3,
        "send",
        r#""msg_type":"MsgAppendResponse","to":1,"term":1,"index":9"#,
    )
    .ev(
        2,
        4,
        "send",
        r#""msg_type":"MsgRequestVote","from":2,"to":1"#,
    );
    let report = run.check();
    assert!(report.valid, "{:#?}", report.anomalies);
    assert_eq!(report.coverage["sends_checked"], 0);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.starts_with("2 sends not checked")),
        "{:?}",
        report.notes
    );
}

#[test]
fn every_anomaly_kind_survives_json() {
    let mut run = digests("0000000000000000");
    run.applied(1, 40, 5)
        .send(2, 41, "MsgRequestVoteResponse", 3, 2, 0, false);
    let report = run.check();
    let kinds: Vec<_> = report.anomalies.iter().map(|a| a.rule.name()).collect();
    assert_eq!(
        kinds,
        vec!["state-divergence", "apply-gap", "persist-before-send"]
    );
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["anomalies"][0]["detail"]["digests"].is_array());
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back.anomalies, report.anomalies);
}

#[test]
fn sends_waiting_for_a_persist_are_bounded() {
    let mut run = follower();
    let sends = WAITING_MAX as u64 + 1;
    for lamport in 0..sends {
        run.send(2, 3 + lamport, "MsgAppendResponse", 1, 1, 2, false);
    }
    let report = run.check();
    assert_eq!(report.anomalies.len() as u64, sends);
    let first = &report.anomalies[0].message;
    assert!(
        first.ends_with(&format!(
            "no persist made it true while {WAITING_MAX} later sends waited too"
        )),
        "{first}"
    );
    assert!(report.anomalies[1]
        .message
        .ends_with("before the trace ended"));
}
