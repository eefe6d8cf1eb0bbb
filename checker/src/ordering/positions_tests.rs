//! The `positions` chain's table tests: small hand-written histories of a
//! totally ordered log without hashes (NATS JetStream's, as
//! `workloads/src/nats/` records them), each with its verdict and anomaly
//! kinds, and the refusals of what the checker does not understand.

use super::*;
use crate::history::read_history;
use crate::ordering::tests::kinds;

/// A server's copy: `ids` at positions 1, 2, … (payload `payload-<id>`).
fn copy(ids: &[&str]) -> Vec<Value> {
    copy_from(1, ids)
}

/// `ids` at positions `first`, `first + 1`, ….
fn copy_from(first: u64, ids: &[&str]) -> Vec<Value> {
    ids.iter()
        .zip(first..)
        .map(|(id, n)| position_json(n, id, &format!("payload-{id}")))
        .collect()
}

/// A submit: process, id, outcome, and the position its `ok` names.
type Sub<'a> = (u64, &'a str, &'a str, Option<u64>);

/// Submits one after another, then reads during the run (node, from,
/// blocks), then a final read of each server's copy (node, blocks, member),
/// every delivery marked `"chain": "positions"`, as the NATS client writes
/// them.
fn nats(
    submits: &[Sub],
    reads: &[(&str, u64, Vec<Value>)],
    finals: &[(&str, Vec<Value>, bool)],
) -> String {
    let mut lines = Vec::new();
    let mut t = 0;
    for (p, id, outcome, position) in submits {
        t += 10;
        lines.push(json!({"process": p, "type": "invoke", "f": "submit", "value": id, "time": t, "node": "n1"}));
        t += 10;
        let value = match position {
            Some(n) if *outcome == "ok" => json!({"id": id, "position": n}),
            _ => json!(id),
        };
        lines.push(json!({"process": p, "type": outcome, "f": "submit", "value": value, "time": t, "node": "n1"}));
    }
    for (i, (node, from, blocks)) in reads.iter().enumerate() {
        t += 10;
        let p = 500 + i;
        lines.push(json!({"process": p, "type": "invoke", "f": "deliver", "value": {"recent": 20}, "time": t, "node": node}));
        lines.push(json!({"process": p, "type": "ok", "f": "deliver", "value": {"from": from, "chain": "positions", "blocks": blocks}, "time": t + 1, "node": node}));
    }
    for (i, (node, blocks, member)) in finals.iter().enumerate() {
        t += 10;
        let p = 1_000_000 + i;
        let asked = json!({"from": 1, "final": true, "member": member});
        lines.push(json!({"process": p, "type": "invoke", "f": "deliver", "value": asked, "time": t, "node": node}));
        let value = json!({"from": 1, "final": true, "chain": "positions", "server": node, "blocks": blocks});
        lines.push(json!({"process": p, "type": "ok", "f": "deliver", "value": value, "time": t + 1, "node": node}));
    }
    lines.iter().map(|l| l.to_string() + "\n").collect()
}

/// Judged as read and in memory (the two must agree).
fn judge(text: &str) -> CheckResult {
    let streamed = check_reader(text.as_bytes()).expect("a history the checker understands");
    let history = read_history(text.as_bytes()).unwrap();
    let mut held = check_history(&history).unwrap();
    held.check_ms = streamed.check_ms;
    assert_eq!(held, streamed, "read as a stream, the same result");
    streamed
}

fn examples<'r>(r: &'r CheckResult, kind: &str) -> &'r [Value] {
    &r.anomalies
        .iter()
        .find(|a| a.kind == kind)
        .unwrap()
        .examples
}

/// Every anomaly kind that applies to a positions chain, each from a small
/// history, with the verdict.
#[test]
fn a_table_of_positions_histories_and_their_anomalies() {
    let ok: Vec<Sub> = vec![(0, "a", "ok", Some(1)), (1, "b", "ok", Some(2))];
    let plain: Vec<Sub> = vec![(0, "a", "ok", None), (1, "b", "ok", None)];
    let both = |c: Vec<Value>| vec![("n1", c.clone(), true), ("n2", c, true)];
    let with_c = |outcome, position| {
        let mut s = ok.clone();
        s.push((2, "c", outcome, position));
        s
    };
    let cases: Vec<(&str, String, Vec<&str>, Validity)> = vec![
        ("every copy holds every acknowledged message at its position",
         nats(&ok, &[("n2", 2, copy_from(2, &["b"]))], &both(copy(&["a", "b"]))), vec![], Validity::Valid),
        ("a lagging server's shorter copy is a prefix",
         nats(&ok, &[], &[("n1", copy(&["a", "b"]), true), ("n2", copy(&["a"]), true)]), vec![], Validity::Valid),
        ("split brain: two servers hold different messages at one sequence",
         nats(&[(0, "a", "ok", Some(1)), (1, "b", "info", None), (2, "c", "info", None)], &[],
              &[("n1", copy(&["a", "b"]), true), ("n2", copy(&["a", "c"]), true)]),
         vec!["fork"], Validity::Invalid),
        ("split brain, acknowledged only on the side that is not the reference (the last longest copy read)",
         nats(&with_c("info", None), &[], &[("n1", copy(&["a", "b"]), true), ("n2", copy(&["a", "c"]), true)]),
         vec!["fork", "lost", "ack-position-mismatch"], Validity::Invalid),
        ("a read during the run saw another message at a sequence",
         nats(&with_c("info", None), &[("n3", 2, copy_from(2, &["c"]))], &both(copy(&["a", "b"]))),
         vec!["fork"], Validity::Invalid),
        ("the same id with another payload at a sequence is a fork too",
         nats(&ok, &[("n3", 1, vec![position_json(1, "a", "other")])], &both(copy(&["a", "b"]))),
         vec!["fork"], Validity::Invalid),
        ("a hole in a server's copy",
         nats(&plain, &[], &[("n1", vec![position_json(1, "a", "payload-a"), position_json(3, "b", "payload-b")], true)]),
         vec!["non-contiguous"], Validity::Invalid),
        ("a copy missing its first message",
         nats(&[(1, "b", "ok", None)], &[], &[("n1", copy_from(2, &["b"]), true)]),
         vec!["non-contiguous"], Validity::Invalid),
        ("deduplication failed: one message id at two sequences",
         nats(&ok, &[], &both(copy(&["a", "b", "a"]))), vec!["duplicate"], Validity::Invalid),
        ("an acknowledged message absent from every copy",
         nats(&with_c("ok", None), &[], &both(copy(&["a", "b"]))), vec!["lost"], Validity::Invalid),
        ("a message nobody submitted, and one without a message id",
         nats(&ok, &[], &both(copy(&["a", "b", "ghost", "<no Nats-Msg-Id>"]))),
         vec!["unsubmitted"], Validity::Invalid),
        ("a submit recorded fail is in the stream",
         nats(&with_c("fail", None), &[], &both(copy(&["a", "b", "c"]))),
         vec!["failed-present"], Validity::Invalid),
        ("acknowledged before another was invoked, ordered after it",
         nats(&plain, &[], &both(copy(&["b", "a"]))), vec!["realtime-order"], Validity::Invalid),
        ("a sequence given to another message after a loss (power failure)",
         nats(&with_c("ok", Some(2)), &[], &both(copy(&["a", "c"]))),
         vec!["lost", "ack-position-mismatch"], Validity::Invalid),
        ("acknowledged at one sequence, stored at another",
         nats(&[(0, "a", "ok", Some(2)), (1, "b", "info", None)], &[], &both(copy(&["a", "b"]))),
         vec!["ack-position-mismatch"], Validity::Invalid),
        ("acknowledged beyond the end of every copy and absent: lost only",
         nats(&with_c("ok", Some(3)), &[], &both(copy(&["a", "b"]))), vec!["lost"], Validity::Invalid),
        ("info found or not is no error",
         nats(&[(0, "a", "ok", Some(1)), (1, "b", "info", None), (2, "c", "info", None)], &[], &both(copy(&["a", "b"]))),
         vec![], Validity::Valid),
        ("a removed server's diverging copy",
         nats(&with_c("info", None), &[], &[("n1", copy(&["a", "b"]), true), ("n3", copy(&["a", "c"]), false)]),
         vec!["fork", "removed-not-prefix"], Validity::Invalid),
        ("no final read of a whole copy: loss cannot be judged",
         nats(&ok, &[("n1", 1, copy(&["a", "b"]))], &[]), vec![], Validity::Unknown),
    ];
    for (name, text, expected, validity) in cases {
        let r = judge(&text);
        assert_eq!(kinds(&r), expected, "{name}: {:?}", r.anomalies);
        assert_eq!(r.valid, validity, "{name}: {:?}", r.note);
        assert!(
            r.anomalies.iter().all(|a| a.kind != "broken-hash-chain"),
            "{name}: a positions chain has no hashes to break"
        );
    }
}

#[test]
fn the_kinds_listed_for_a_positions_history_are_those_that_apply() {
    let listed =
        |text: &str| -> Vec<String> { judge(text).anomalies.into_iter().map(|a| a.kind).collect() };
    let c = copy(&["a"]);
    let plain = nats(&[(0, "a", "ok", None)], &[], &[("n1", c.clone(), true)]);
    assert_eq!(
        listed(&plain),
        [
            "fork",
            "non-contiguous",
            "duplicate",
            "lost",
            "unsubmitted",
            "failed-present",
            "realtime-order"
        ]
    );
    let positioned = nats(&[(0, "a", "ok", Some(1))], &[], &[("n1", c.clone(), true)]);
    assert_eq!(listed(&positioned).last().unwrap(), ACK_POSITION_MISMATCH);
    let removed = nats(
        &[(0, "a", "ok", None)],
        &[],
        &[("n1", c.clone(), true), ("n2", c, false)],
    );
    assert!(listed(&removed).contains(&REMOVED_NOT_PREFIX.to_string()));
    let r = judge(&positioned);
    assert_eq!(r.counts["acknowledged-with-position"], 1);
    assert_eq!(r.counts["chain-blocks"], 1);
}

#[test]
fn the_examples_name_the_ids_and_positions() {
    let split = nats(
        &[
            (0, "a", "ok", Some(1)),
            (1, "b", "ok", Some(2)),
            (2, "c", "info", None),
        ],
        &[],
        &[
            ("n1", copy(&["a", "b"]), true),
            ("n2", copy(&["a", "c"]), true),
        ],
    );
    let r = judge(&split);
    let fork = &examples(&r, "fork")[0];
    assert_eq!(fork["block"], 2);
    assert_eq!(fork["nodes"], json!(["n1", "n2"]));
    assert_eq!(fork["ids"], json!(["b", "c"]));

    let reused = nats(
        &[
            (0, "a", "ok", Some(1)),
            (1, "b", "ok", Some(2)),
            (2, "c", "ok", Some(2)),
        ],
        &[],
        &[("n1", copy(&["a", "c"]), true)],
    );
    let r = judge(&reused);
    let mismatch = &examples(&r, ACK_POSITION_MISMATCH)[0];
    assert_eq!(mismatch["id"], "b");
    assert_eq!(mismatch["acknowledged_position"], 2);
    assert_eq!(mismatch["holds"], json!(["c"]));
    assert_eq!(mismatch["found_at"], Value::Null);
    assert_eq!(examples(&r, "lost")[0]["id"], "b");

    let moved = nats(
        &[(0, "a", "ok", Some(2))],
        &[],
        &[("n1", copy(&["x", "a"]), true)],
    );
    assert!(
        kinds(&judge(&moved))
            .iter()
            .all(|k| *k != ACK_POSITION_MISMATCH),
        "a at 2, as acknowledged"
    );
    let moved = nats(
        &[(0, "a", "ok", Some(1))],
        &[],
        &[("n1", copy(&["x", "a"]), true)],
    );
    let r = judge(&moved);
    let mismatch = &examples(&r, ACK_POSITION_MISMATCH)[0];
    assert_eq!(
        (mismatch["found_at"].clone(), mismatch["holds"].clone()),
        (json!(2), json!(["x"]))
    );
}

/// Each malformed part is refused with the line and the field inside the
/// value, never judged.
#[test]
fn what_the_checker_does_not_understand_is_refused_by_line_and_field() {
    let hashed_final = json!({"process": 9, "type": "invoke", "f": "deliver", "value": {"from": 0, "final": true}, "time": 5, "node": "n1"});
    let genesis = block_json(0, &"0".repeat(64), &[]);
    let line = |v: Value| v.to_string() + "\n";
    let submit =
        line(json!({"process": 0, "type": "invoke", "f": "submit", "value": "a", "time": 1}))
            + &line(json!({"process": 0, "type": "ok", "f": "submit", "value": "a", "time": 2}));
    let delivered = |value: Value| {
        submit.clone()
            + &line(
                json!({"process": 8, "type": "invoke", "f": "deliver", "value": {"recent": 20}, "time": 3, "node": "n2"}),
            )
            + &line(
                json!({"process": 8, "type": "ok", "f": "deliver", "value": value, "time": 4, "node": "n2"}),
            )
    };
    let cases: Vec<(String, &str)> = vec![
        (
            // Today's NATS delivery without its mark: before, its blocks
            // were silently dropped and every acknowledged submit was lost.
            delivered(json!({"from": 1, "blocks": copy(&["a"])})),
            "line 4: field `value.blocks[0].previous_hash`: missing: expected a hex string; a block of a `hashes` chain carries",
        ),
        (
            delivered(json!({"from": 1, "chain": "positions", "blocks": copy(&["a"])}))
                + &line(hashed_final.clone())
                + &line(json!({"process": 9, "type": "ok", "f": "deliver", "value": {"from": 0, "final": true, "blocks": [genesis]}, "time": 6, "node": "n1"})),
            "line 6: field `value.chain`: a `hashes` delivery in a history of `positions` deliveries (the first on line 4): a history holds one kind of chain",
        ),
        (
            delivered(json!({"from": 1, "chain": "positions", "blocks": [{"number": 1, "txs": [{"id": "a", "payload": ""}, {"id": "b", "payload": ""}]}]})),
            "line 4: field `value.blocks[0].txs`: a `positions` block holds exactly one transaction, got 2",
        ),
        (
            delivered(json!({"from": 1, "chain": "positions", "blocks": [{"number": 1}]})),
            "line 4: field `value.blocks[0].txs`: missing",
        ),
        (
            delivered(json!({"from": 0, "chain": "positions", "blocks": []})),
            "line 4: field `value.from`: 0: a `positions` chain starts at 1",
        ),
        (
            delivered(json!({"chain": "log", "blocks": []})),
            "line 4: field `value.chain`: \"log\" is not a kind of chain",
        ),
        (
            line(json!({"process": 0, "type": "invoke", "f": "submit", "value": "a", "time": 1}))
                + &line(json!({"process": 0, "type": "ok", "f": "submit", "value": {"id": "b", "position": 3}, "time": 2})),
            "line 2: field `value.id`: expected the submitted id \"a\", got \"b\"",
        ),
        (
            line(json!({"process": 0, "type": "invoke", "f": "submit", "value": "a", "time": 1}))
                + &line(json!({"process": 0, "type": "ok", "f": "submit", "value": {"id": "a", "position": 0}, "time": 2})),
            "line 2: field `value.position`: expected the position acknowledged, an integer >= 1, got 0",
        ),
        (
            line(json!({"process": 0, "type": "invoke", "f": "submit", "value": "a", "time": 1}))
                + &line(json!({"process": 0, "type": "ok", "f": "submit", "value": {"id": "a"}, "time": 2})),
            "line 2: field `value.position`: missing",
        ),
    ];
    for (text, expected) in cases {
        let e = check_reader(text.as_bytes()).unwrap_err().to_string();
        assert!(
            e.starts_with(expected),
            "{text}\n  gave: {e}\n  want: {expected}"
        );
        assert_eq!(
            check_history(&read_history(text.as_bytes()).unwrap())
                .unwrap_err()
                .to_string(),
            e,
            "in memory, the same refusal"
        );
    }
}
