//! The hashed chain's table tests (ordeal-node's histories).

use super::*;
use crate::history::read_history;
use crate::ordering::reference::realtime_order;

/// `check_history` of a history the checker understands.
fn check_history_ok(h: &History) -> CheckResult {
    check_history(h).expect("a history the checker understands")
}

fn block(number: u64, prev: &str, ids: &[&str]) -> Value {
    let txs: Vec<(String, String)> = ids
        .iter()
        .map(|i| (i.to_string(), format!("p{i}")))
        .collect();
    block_json(number, prev, &txs)
}

fn chain(batches: &[&[&str]]) -> Vec<Value> {
    let mut out = vec![block(0, &"0".repeat(64), &[])];
    for (i, ids) in batches.iter().enumerate() {
        let prev = out[i]["hash"].as_str().unwrap().to_string();
        out.push(block(i as u64 + 1, &prev, ids));
    }
    out
}

/// Builds a history: submits as (process, id, outcome) sequentially,
/// then a final deliver per chain.
fn history(submits: &[(u64, &str, &str)], chains: &[(&str, Vec<Value>)]) -> History {
    let mut lines = Vec::new();
    let mut t = 0;
    for (p, id, outcome) in submits {
        t += 10;
        lines.push(json!({"process": p, "type": "invoke", "f": "submit", "value": id, "time": t}));
        t += 10;
        lines.push(json!({"process": p, "type": outcome, "f": "submit", "value": id, "time": t}));
    }
    for (i, (node, blocks)) in chains.iter().enumerate() {
        t += 10;
        let p = 1000 + i;
        lines.push(json!({"process": p, "type": "invoke", "f": "deliver", "value": {"from": 0, "final": true}, "time": t, "node": node}));
        lines.push(json!({"process": p, "type": "ok", "f": "deliver", "value": {"from": 0, "blocks": blocks, "final": true}, "time": t + 1, "node": node}));
    }
    let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
    read_history(text.as_bytes()).unwrap()
}

/// The kinds found, in report order.
pub(super) fn kinds(r: &CheckResult) -> Vec<&str> {
    r.anomalies
        .iter()
        .filter(|a| a.count > 0)
        .map(|a| a.kind.as_str())
        .collect()
}

#[test]
fn a_table_of_histories_and_their_anomalies() {
    let ok = [(0, "a", "ok"), (1, "b", "ok")];
    let good = chain(&[&["a"], &["b"]]);
    let mut tampered = good.clone();
    tampered[1]["txs"][0]["payload"] = json!("evil");
    let mut gap = good.clone();
    gap.remove(1);
    let cases: Vec<(&str, History, Vec<&str>)> = vec![
        (
            "valid",
            history(&ok, &[("n1", good.clone()), ("n2", good.clone())]),
            vec![],
        ),
        (
            "lagging node is a prefix",
            history(&ok, &[("n1", good.clone()), ("n2", chain(&[&["a"]]))]),
            vec![],
        ),
        (
            "fork",
            history(
                &ok,
                &[("n1", good.clone()), ("n2", chain(&[&["b"], &["a"]]))],
            ),
            vec!["fork", "realtime-order"],
        ),
        (
            "broken hash chain",
            history(&ok, &[("n1", tampered)]),
            vec!["broken-hash-chain"],
        ),
        (
            "gap",
            history(&ok, &[("n1", gap)]),
            vec!["broken-hash-chain", "non-contiguous", "lost"],
        ),
        (
            "duplicate",
            history(&ok, &[("n1", chain(&[&["a"], &["b", "a"]]))]),
            vec!["duplicate"],
        ),
        (
            "lost",
            history(&ok, &[("n1", chain(&[&["a"]]))]),
            vec!["lost"],
        ),
        (
            "unsubmitted",
            history(&ok, &[("n1", chain(&[&["a"], &["b", "ghost"]]))]),
            vec!["unsubmitted"],
        ),
        (
            "failed present",
            history(&[(0, "a", "ok"), (1, "b", "fail")], &[("n1", good.clone())]),
            vec!["failed-present"],
        ),
        (
            "realtime order",
            history(&ok, &[("n1", chain(&[&["b"], &["a"]]))]),
            vec!["realtime-order"],
        ),
        (
            "info found or not is no error",
            history(
                &[(0, "a", "ok"), (1, "b", "info"), (2, "c", "info")],
                &[("n1", good.clone())],
            ),
            vec![],
        ),
    ];
    for (name, h, expected) in cases {
        let r = check_history_ok(&h);
        let text: String = h
            .events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        let mut streamed = check_reader(text.as_bytes()).unwrap();
        streamed.check_ms = r.check_ms;
        assert_eq!(streamed, r, "{name}: read as a stream, the same result");
        assert_eq!(kinds(&r), expected, "{name}: {:?}", r.anomalies);
        assert_eq!(r.valid == Validity::Valid, expected.is_empty(), "{name}");
    }
    let r = check_history_ok(&history(
        &[(0, "a", "ok"), (1, "b", "info"), (2, "c", "info")],
        &[("n1", good)],
    ));
    assert_eq!(r.counts["info-found"], 1);
    assert_eq!(r.counts["info-not-found"], 1);
}

/// Strips the transactions from blocks, as `GET /blocks?headers=true` does.
fn headers(blocks: &[Value]) -> Vec<Value> {
    blocks
        .iter()
        .map(|b| {
            let mut h = b.clone();
            h.as_object_mut().unwrap().remove("txs");
            h
        })
        .collect()
}

/// `history` plus one read of headers during the run, before the final reads.
fn with_recent_read(base: &History, node: &str, from: u64, blocks: Vec<Value>) -> History {
    let mut lines = vec![
        json!({"process": 500, "type": "invoke", "f": "deliver", "value": {"recent": 20}, "time": 1, "node": node}),
        json!({"process": 500, "type": "ok", "f": "deliver", "value": {"from": from, "blocks": blocks}, "time": 2, "node": node}),
    ];
    for op in base.ops() {
        let final_read = op.f == "deliver";
        let p = op.process;
        lines.push(json!({"process": p, "type": "invoke", "f": op.f, "value": op.input, "time": op.invoke_time + 10, "node": op.node}));
        let kind = match op.outcome {
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            _ => "info",
        };
        let value = if final_read { &op.output } else { &op.input };
        lines.push(json!({"process": p, "type": kind, "f": op.f, "value": value, "time": op.complete_time.unwrap() + 10, "node": op.node}));
    }
    let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
    read_history(text.as_bytes()).unwrap()
}

#[test]
fn header_only_reads_are_compared_with_the_final_chains() {
    let ok = [(0, "a", "ok"), (1, "b", "ok")];
    let good = chain(&[&["a"], &["b"]]);
    let base = history(&ok, &[("n1", good.clone())]);
    let agreeing = with_recent_read(&base, "n2", 1, headers(&good[1..]));
    let r = check_history_ok(&agreeing);
    assert_eq!(r.valid, Validity::Valid, "{:?}", r.anomalies);

    let other = chain(&[&["b"], &["a"]]);
    let forked = with_recent_read(&base, "n2", 1, headers(&other[1..]));
    assert_eq!(kinds(&check_history_ok(&forked)), vec!["fork"]);

    let mut forged = headers(&good[1..2]);
    forged[0]["data_hash"] = json!("00".repeat(32));
    let r = check_history_ok(&with_recent_read(&base, "n2", 1, forged));
    assert!(
        kinds(&r).contains(&"broken-hash-chain"),
        "{:?}",
        r.anomalies
    );

    let stripped = history(&ok, &[("n1", headers(&good))]);
    let r = check_history_ok(&stripped);
    assert!(
        kinds(&r).contains(&"broken-hash-chain"),
        "{:?}",
        r.anomalies
    );
    assert_eq!(r.valid, Validity::Invalid);
}

#[test]
fn a_streamed_history_with_a_bad_line_names_it() {
    let text = "{\"process\":0,\"type\":\"invoke\",\"f\":\"submit\",\"value\":\"a\",\"time\":1}\n{\"process\":0,\"type\":\"ok\",\"f\":\"submit\",\"time\":\"soon\"}\n";
    let e = check_reader(text.as_bytes()).unwrap_err().to_string();
    assert!(e.starts_with("line 2: field `time`"), "{e}");
}

/// `history`, with a `member` nemesis change that removed `n3`
/// before the final reads, and the final reads of `removed` nodes
/// marked `"member": false` (on the invoke, as the harness writes it).
fn with_removed(base: &History, removed: &[&str]) -> History {
    let start = json!({"process": "nemesis", "type": "info", "f": "member", "time": 0,
        "value": {"phase": "start", "change": "remove", "targets": ["n3"], "add": [], "remove": ["n3"],
                  "leader": false, "before": {"voters": ["n1", "n2", "n3"], "learners": []}}});
    let end = json!({"process": "nemesis", "type": "info", "f": "member", "time": 1,
        "value": {"phase": "end", "change": "remove", "targets": ["n3"], "committed": true,
                  "after": {"voters": ["n1", "n2"], "learners": []}}});
    let mut lines = vec![start, end];
    for e in &base.events {
        let mut v = serde_json::to_value(e).unwrap();
        v.as_object_mut().unwrap().remove("index");
        v["time"] = json!(e.time + 2);
        let named = e.node.as_deref().is_some_and(|n| removed.contains(&n));
        if e.f == "deliver" && named && e.kind == EventType::Invoke {
            v["value"]["member"] = json!(false);
        }
        lines.push(v);
    }
    let text: String = lines.iter().map(|l| l.to_string() + "\n").collect();
    read_history(text.as_bytes()).unwrap()
}

#[test]
fn a_removed_nodes_chain_must_be_a_prefix_of_the_members_chain() {
    let ok = [(0, "a", "ok"), (1, "b", "ok")];
    let good = chain(&[&["a"], &["b"]]);
    let short = chain(&[&["a"]]);
    let diverged = chain(&[&["b"]]);
    let cases: Vec<(&str, History, Vec<&str>, Validity)> = vec![
        (
            "a removed node's shorter chain is a prefix",
            with_removed(
                &history(&ok, &[("n1", good.clone()), ("n3", short.clone())]),
                &["n3"],
            ),
            vec![],
            Validity::Valid,
        ),
        (
            "a removed node's diverging chain",
            with_removed(
                &history(&ok, &[("n1", good.clone()), ("n3", diverged.clone())]),
                &["n3"],
            ),
            vec!["fork", "removed-not-prefix"],
            Validity::Invalid,
        ),
        (
            "loss is judged against the members, not a removed node's longer chain",
            with_removed(
                &history(&ok, &[("n3", good.clone()), ("n1", short.clone())]),
                &["n3"],
            ),
            vec!["lost", "removed-not-prefix"],
            Validity::Invalid,
        ),
        (
            "only a removed node was read: loss cannot be judged",
            with_removed(&history(&ok, &[("n3", good.clone())]), &["n3"]),
            vec![],
            Validity::Unknown,
        ),
        (
            "members' chains still must agree",
            with_removed(
                &history(&ok, &[("n1", good.clone()), ("n2", diverged.clone())]),
                &[],
            ),
            vec!["fork"],
            Validity::Invalid,
        ),
    ];
    for (name, h, expected, validity) in cases {
        let r = check_history_ok(&h);
        let text: String = h
            .events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        let mut streamed = check_reader(text.as_bytes()).expect(name);
        streamed.check_ms = r.check_ms;
        assert_eq!(streamed, r, "{name}: read as a stream, the same result");
        assert_eq!(kinds(&r), expected, "{name}: {:?}", r.anomalies);
        assert_eq!(r.valid, validity, "{name}: {:?}", r.note);
    }
    let r = check_history_ok(&with_removed(
        &history(&ok, &[("n1", good.clone()), ("n3", diverged)]),
        &["n3"],
    ));
    let a = r
        .anomalies
        .iter()
        .find(|a| a.kind == REMOVED_NOT_PREFIX)
        .unwrap();
    assert_eq!(a.examples[0]["node"], "n3");
    assert_eq!(a.examples[0]["first_difference"], 1);
    assert_eq!(a.examples[0]["member"], "n1");
    let r = check_history_ok(&with_removed(
        &history(&ok, &[("n1", good.clone()), ("n3", short)]),
        &["n3"],
    ));
    assert_eq!(r.counts["removed-final-reads"], 1);
    assert_eq!(
        r.counts["chain-blocks"], 3,
        "the member's chain is the reference"
    );
}

#[test]
fn without_a_removed_node_the_results_are_those_of_before_membership() {
    let ok = [(0, "a", "ok"), (1, "b", "ok")];
    let good = chain(&[&["a"], &["b"]]);
    let plain = check_history_ok(&history(&ok, &[("n1", good.clone())]));
    assert!(plain.anomalies.iter().all(|a| a.kind != REMOVED_NOT_PREFIX));
    // Neither removed-not-prefix nor ack-position-mismatch is listed.
    assert_eq!(plain.anomalies.len(), KINDS.len() - 2);
    assert!(plain
        .anomalies
        .iter()
        .all(|a| a.kind != ACK_POSITION_MISMATCH));
    assert!(!plain.counts.contains_key("removed-final-reads"));
    // Member events alone change nothing.
    let mut evented = check_history_ok(&with_removed(&history(&ok, &[("n1", good)]), &[]));
    evented.check_ms = plain.check_ms;
    assert_eq!(evented, plain);
}

#[test]
fn a_member_mark_on_the_ok_value_counts_too() {
    let good = chain(&[&["a"]]);
    let text = [
        json!({"process": 0, "type": "invoke", "f": "submit", "value": "a", "time": 1}),
        json!({"process": 0, "type": "ok", "f": "submit", "value": "a", "time": 2}),
        json!({"process": 9, "type": "invoke", "f": "deliver", "value": {"from": 0, "final": true}, "time": 3, "node": "n1"}),
        json!({"process": 9, "type": "ok", "f": "deliver", "value": {"from": 0, "final": true, "member": false, "blocks": good}, "time": 4, "node": "n1"}),
    ]
    .iter()
    .map(|l| l.to_string() + "\n")
    .collect::<String>();
    let r = check_reader(text.as_bytes()).unwrap();
    assert_eq!(
        r.valid,
        Validity::Unknown,
        "the only chain read is a removed node's"
    );
}

/// A history of submits with their own times, (process, id, invoke
/// ns, outcome, completion ns), then one final read of `chain`.
fn timed(submits: &[(u64, &str, u64, &str, u64)], chain: Vec<Value>) -> History {
    let mut events: Vec<(u64, Value)> = Vec::new();
    for (p, id, invoked, outcome, completed) in submits {
        events.push((
            *invoked,
            json!({"process": p, "type": "invoke", "f": "submit", "value": id, "time": invoked}),
        ));
        events.push((
            *completed,
            json!({"process": p, "type": outcome, "f": "submit", "value": id, "time": completed}),
        ));
    }
    events.sort_by_key(|(t, _)| *t);
    let t = events.last().map_or(0, |(t, _)| *t);
    events.push((t + 1, json!({"process": 1000, "type": "invoke", "f": "deliver", "value": {"from": 0, "final": true}, "time": t + 1, "node": "n1"})));
    events.push((t + 2, json!({"process": 1000, "type": "ok", "f": "deliver", "value": {"from": 0, "blocks": chain, "final": true}, "time": t + 2, "node": "n1"})));
    let text: String = events.iter().map(|(_, l)| l.to_string() + "\n").collect();
    read_history(text.as_bytes()).unwrap()
}

/// Real-time order (issue 25 item 5): if A was acknowledged before B
/// was invoked, A comes before B in the chain, for every B found in the
/// chain whatever its outcome; an `info` completion bounds nothing.
#[test]
fn real_time_order_holds_for_every_submit_found_in_the_chain() {
    // (name, submits, chain, the (acknowledged first, invoked after)
    // pairs reported, other anomaly kinds)
    type Case<'a> = (
        &'a str,
        Vec<(u64, &'a str, u64, &'a str, u64)>,
        Vec<Value>,
        Vec<(&'a str, &'a str)>,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "an info submit invoked after an ack, placed before it",
            vec![(0, "a", 10, "ok", 20), (1, "b", 30, "info", 40)],
            chain(&[&["b"], &["a"]]),
            vec![("a", "b")],
            vec![],
        ),
        (
            "an info submit invoked after an ack, placed after it",
            vec![(0, "a", 10, "ok", 20), (1, "b", 30, "info", 40)],
            chain(&[&["a"], &["b"]]),
            vec![],
            vec![],
        ),
        (
            "the same in one block: the order inside a block counts",
            vec![(0, "a", 10, "ok", 20), (1, "b", 30, "info", 40)],
            chain(&[&["b", "a"]]),
            vec![("a", "b")],
            vec![],
        ),
        (
            "an info submit invoked before the ack may come first",
            vec![(0, "a", 10, "ok", 40), (1, "b", 30, "info", 50)],
            chain(&[&["b"], &["a"]]),
            vec![],
            vec![],
        ),
        (
            "an info completion bounds nothing",
            vec![(0, "a", 10, "info", 20), (1, "b", 30, "ok", 40)],
            chain(&[&["b"], &["a"]]),
            vec![],
            vec![],
        ),
        (
            "an info submit's invoke still bounds: an ack before it, after it",
            vec![
                (0, "a", 10, "info", 20),
                (1, "b", 30, "ok", 40),
                (2, "c", 50, "ok", 60),
            ],
            chain(&[&["c"], &["a"], &["b"]]),
            vec![("b", "c")],
            vec![],
        ),
        (
            "a failed submit found in the chain is bounded by its invoke too",
            vec![(0, "a", 10, "ok", 20), (1, "b", 30, "fail", 40)],
            chain(&[&["b"], &["a"]]),
            vec![("a", "b")],
            vec!["failed-present"],
        ),
        (
            "acknowledged submits, as before",
            vec![(0, "a", 10, "ok", 20), (1, "b", 30, "ok", 40)],
            chain(&[&["b"], &["a"]]),
            vec![("a", "b")],
            vec![],
        ),
        (
            "every submit placed too early is named",
            vec![
                (0, "a", 10, "ok", 20),
                (1, "x", 5, "info", 25),
                (2, "b", 30, "info", 40),
                (3, "c", 50, "ok", 60),
                (4, "d", 70, "info", 80),
            ],
            chain(&[&["d", "b"], &["x", "c"], &["a"]]),
            vec![("a", "d"), ("a", "b"), ("a", "c")],
            vec![],
        ),
        (
            "an info submit not found in the chain takes no part",
            vec![(0, "a", 10, "ok", 20), (1, "b", 30, "info", 40)],
            chain(&[&["a"]]),
            vec![],
            vec![],
        ),
    ];
    for (name, submits, blocks, pairs, others) in cases {
        let h = timed(&submits, blocks);
        let r = check_history_ok(&h);
        let order = r
            .anomalies
            .iter()
            .find(|a| a.kind == "realtime-order")
            .unwrap();
        let mut named: Vec<(&str, &str)> = order
            .examples
            .iter()
            .map(|e| {
                (
                    e["acknowledged_first"].as_str().unwrap(),
                    e["invoked_after"].as_str().unwrap(),
                )
            })
            .collect();
        let (mut expected, mut got) = (pairs.clone(), std::mem::take(&mut named));
        expected.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, expected, "{name}: {:?}", order.examples);
        assert_eq!(order.count, pairs.len() as u64, "{name}");
        let mut kinds_expected = others.clone();
        if !pairs.is_empty() {
            kinds_expected.push("realtime-order");
        }
        assert_eq!(kinds(&r), kinds_expected, "{name}: {:?}", r.anomalies);
        let validity = if kinds_expected.is_empty() {
            Validity::Valid
        } else {
            Validity::Invalid
        };
        assert_eq!(r.valid, validity, "{name}");
    }
}

/// The one-pass real-time check flags exactly the submits a check of
/// every pair flags, on random small histories.
#[test]
fn real_time_order_flags_what_every_pair_would() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(25);
    for case in 0..2_000 {
        let n = rng.gen_range(1..12);
        let outcomes = [EventType::Ok, EventType::Info, EventType::Fail];
        let submits: Vec<Submit> = (0..n)
            .map(|i| {
                let invoke_time = rng.gen_range(0..100);
                let outcome = outcomes[rng.gen_range(0..3)];
                Submit {
                    id: Some(format!("t{i}").into()),
                    outcome,
                    invoke_time,
                    complete_time: (outcome != EventType::Info)
                        .then(|| invoke_time + rng.gen_range(0..30)),
                    node: None,
                    position: None,
                }
            })
            .collect();
        let ids: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        // A random order of a random subset: the chain.
        let mut chain: Vec<usize> = (0..n).filter(|_| rng.gen_bool(0.8)).collect();
        for i in (1..chain.len()).rev() {
            chain.swap(i, rng.gen_range(0..=i));
        }
        let position: HashMap<&str, usize> = chain
            .iter()
            .enumerate()
            .map(|(p, &i)| (ids[i].as_str(), p))
            .collect();
        let mut bad = Anomalies::new();
        realtime_order(&submits, &position, &mut bad);
        let a = &bad.get("realtime-order");
        let mut flagged: Vec<&str> = a
            .examples
            .iter()
            .map(|e| e["invoked_after"].as_str().unwrap())
            .collect();
        let mut expected: Vec<&str> = Vec::new();
        for b in &submits {
            let Some(pb) = position.get(b.id.as_deref().unwrap()) else {
                continue;
            };
            let before_some_ack = submits.iter().any(|a| {
                let acked = a.outcome == EventType::Ok && a.complete_time < Some(b.invoke_time);
                acked
                    && position
                        .get(a.id.as_deref().unwrap())
                        .is_some_and(|pa| pa > pb)
            });
            if before_some_ack {
                expected.push(b.id.as_deref().unwrap());
            }
        }
        flagged.sort_unstable();
        expected.sort_unstable();
        assert_eq!(flagged, expected, "case {case}");
        assert_eq!(a.count as usize, expected.len(), "case {case}");
    }
}

#[test]
fn without_a_final_read_the_verdict_is_unknown() {
    let r = check_history_ok(&history(&[(0, "a", "ok")], &[]));
    assert_eq!(r.valid, Validity::Unknown);
    assert!(r.note.is_some());
}
