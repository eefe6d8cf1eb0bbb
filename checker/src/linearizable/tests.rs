//! Hand-written histories with their expected verdicts, and property tests
//! against a simulated linearizable register.

use super::*;
use crate::history::read_history;
use proptest::prelude::*;

/// Builds a history from `(process, type, f, value)` rows (key in the
/// value's place for keyed rows is given by `keyed`).
fn h(rows: &[(u64, &str, &str, Value)]) -> History {
    keyed(
        &rows
            .iter()
            .map(|(p, t, f, v)| (*p, *t, *f, v.clone(), None))
            .collect::<Vec<_>>(),
    )
}

fn keyed(rows: &[(u64, &str, &str, Value, Option<&str>)]) -> History {
    let text: String = rows
        .iter()
        .enumerate()
        .map(|(i, (p, t, f, v, k))| {
            let mut line =
                json!({"index": i, "process": p, "type": t, "f": f, "value": v, "time": i * 10});
            if let Some(k) = k {
                line["key"] = json!(k);
            }
            line.to_string() + "\n"
        })
        .collect();
    read_history(text.as_bytes()).unwrap()
}

fn verdict(history: &History, model: Model) -> Validity {
    check_history(history, model, Budget::default()).valid
}

use Validity::{Invalid, Valid};

#[test]
fn a_table_of_classic_histories() {
    let n = Value::Null;
    let cases: Vec<(&str, Model, History, Validity)> = vec![
        (
            "write then read",
            Model::CasRegister,
            h(&[
                (0, "invoke", "write", json!(1)),
                (0, "ok", "write", json!(1)),
                (1, "invoke", "read", n.clone()),
                (1, "ok", "read", json!(1)),
            ]),
            Valid,
        ),
        (
            "initial read is null",
            Model::Register,
            h(&[
                (0, "invoke", "read", n.clone()),
                (0, "ok", "read", n.clone()),
            ]),
            Valid,
        ),
        (
            "read of a value never written",
            Model::CasRegister,
            h(&[
                (0, "invoke", "read", n.clone()),
                (0, "ok", "read", json!(7)),
            ]),
            Invalid,
        ),
        (
            "stale read after a completed write",
            Model::CasRegister,
            h(&[
                (0, "invoke", "write", json!(1)),
                (0, "ok", "write", json!(1)),
                (0, "invoke", "write", json!(2)),
                (0, "ok", "write", json!(2)),
                (1, "invoke", "read", n.clone()),
                (1, "ok", "read", json!(1)),
            ]),
            Invalid,
        ),
        (
            "concurrent writes: both orders must be tried (read 1)",
            Model::CasRegister,
            h(&[
                (0, "invoke", "write", json!(1)),
                (1, "invoke", "write", json!(2)),
                (0, "ok", "write", json!(1)),
                (1, "ok", "write", json!(2)),
                (2, "invoke", "read", n.clone()),
                (2, "ok", "read", json!(1)),
            ]),
            Valid,
        ),
        (
            "concurrent writes: both orders must be tried (read 2)",
            Model::CasRegister,
            h(&[
                (0, "invoke", "write", json!(1)),
                (1, "invoke", "write", json!(2)),
                (0, "ok", "write", json!(1)),
                (1, "ok", "write", json!(2)),
                (2, "invoke", "read", n.clone()),
                (2, "ok", "read", json!(2)),
            ]),
            Valid,
        ),
        (
            "an info write that appears late",
            Model::CasRegister,
            h(&[
                (0, "invoke", "write", json!(1)),
                (0, "info", "write", json!(1)),
                (1, "invoke", "read", n.clone()),
                (1, "ok", "read", n.clone()),
                (2, "invoke", "write", json!(2)),
                (2, "ok", "write", json!(2)),
                (1, "invoke", "read", n.clone()),
                (1, "ok", "read", json!(1)),
            ]),
            Valid,
        ),
        (
            "an invoke with no completion counts as info",
            Model::CasRegister,
            h(&[
                (0, "invoke", "write", json!(1)),
                (1, "invoke", "read", n.clone()),
                (1, "ok", "read", json!(1)),
            ]),
            Valid,
        ),
        (
            "a read of a value written only after the read completed",
            Model::CasRegister,
            h(&[
                (1, "invoke", "read", n.clone()),
                (1, "ok", "read", json!(2)),
                (0, "invoke", "write", json!(2)),
                (0, "ok", "write", json!(2)),
            ]),
            Invalid,
        ),
        (
            "cas that swaps",
            Model::CasRegister,
            h(&[
                (0, "invoke", "write", json!(1)),
                (0, "ok", "write", json!(1)),
                (0, "invoke", "cas", json!([1, 2])),
                (0, "ok", "cas", json!([1, 2])),
                (1, "invoke", "read", n.clone()),
                (1, "ok", "read", json!(2)),
            ]),
            Valid,
        ),
        (
            "cas from a value not held",
            Model::CasRegister,
            h(&[
                (0, "invoke", "write", json!(1)),
                (0, "ok", "write", json!(1)),
                (0, "invoke", "cas", json!([3, 4])),
                (0, "ok", "cas", json!([3, 4])),
            ]),
            Invalid,
        ),
        (
            "a failed op is dropped",
            Model::CasRegister,
            h(&[
                (0, "invoke", "write", json!(1)),
                (0, "fail", "write", json!(1)),
                (1, "invoke", "read", n.clone()),
                (1, "ok", "read", n.clone()),
            ]),
            Valid,
        ),
        (
            "a failed write seen is a violation",
            Model::CasRegister,
            h(&[
                (0, "invoke", "write", json!(1)),
                (0, "fail", "write", json!(1)),
                (1, "invoke", "read", n.clone()),
                (1, "ok", "read", json!(1)),
            ]),
            Invalid,
        ),
        (
            "kv appends in order",
            Model::Kv,
            h(&[
                (0, "invoke", "append", json!("a")),
                (0, "ok", "append", json!("a")),
                (0, "invoke", "append", json!("b")),
                (0, "ok", "append", json!("b")),
                (1, "invoke", "get", n.clone()),
                (1, "ok", "get", json!("ab")),
            ]),
            Valid,
        ),
        (
            "kv appends out of order",
            Model::Kv,
            h(&[
                (0, "invoke", "append", json!("a")),
                (0, "ok", "append", json!("a")),
                (0, "invoke", "append", json!("b")),
                (0, "ok", "append", json!("b")),
                (1, "invoke", "get", n.clone()),
                (1, "ok", "get", json!("ba")),
            ]),
            Invalid,
        ),
        (
            "kv put replaces",
            Model::Kv,
            h(&[
                (0, "invoke", "put", json!("x")),
                (0, "ok", "put", json!("x")),
                (1, "invoke", "get", n.clone()),
                (1, "ok", "get", json!("x")),
            ]),
            Valid,
        ),
    ];
    for (name, model, history, expected) in cases {
        assert_eq!(verdict(&history, model), expected, "{name}");
    }
}

/// The search's reductions (reads go first, values left while an observer
/// waits, kv gets as guards): histories where a careless version of each
/// would give the wrong verdict, valid and invalid, each decided by the
/// search (no witness applies).
#[test]
fn a_table_for_the_search_reductions() {
    let n = Value::Null;
    let cases: Vec<(&str, Model, History, Validity)> = vec![
        (
            "a read taken first still lets a concurrent write follow it",
            Model::CasRegister,
            h(&[
                (0, "invoke", "write", json!(1)),
                (0, "ok", "write", json!(1)),
                (1, "invoke", "read", n.clone()),
                (2, "invoke", "write", json!(2)),
                (3, "invoke", "read", n.clone()),
                (3, "ok", "read", json!(2)),
                (2, "ok", "write", json!(2)),
                (1, "ok", "read", json!(1)),
            ]),
            Valid,
        ),
        (
            "reads of 2, then 1, then 2 again with one write of each stay invalid",
            Model::CasRegister,
            h(&[
                (0, "invoke", "write", json!(1)),
                (1, "invoke", "write", json!(2)),
                (0, "ok", "write", json!(1)),
                (1, "ok", "write", json!(2)),
                (2, "invoke", "read", n.clone()),
                (2, "ok", "read", json!(2)),
                (3, "invoke", "read", n.clone()),
                (3, "ok", "read", json!(1)),
                (2, "invoke", "read", n.clone()),
                (2, "ok", "read", json!(2)),
            ]),
            Invalid,
        ),
        (
            "a value written twice may be read after it was overwritten",
            Model::CasRegister,
            h(&[
                (0, "invoke", "write", json!(1)),
                (0, "ok", "write", json!(1)),
                (0, "invoke", "write", json!(2)),
                (0, "ok", "write", json!(2)),
                (0, "invoke", "write", json!(1)),
                (0, "ok", "write", json!(1)),
                (1, "invoke", "read", n.clone()),
                (1, "ok", "read", json!(1)),
            ]),
            Valid,
        ),
        (
            "null written again may be read again",
            Model::CasRegister,
            h(&[
                (0, "invoke", "write", json!(1)),
                (0, "ok", "write", json!(1)),
                (0, "invoke", "write", n.clone()),
                (0, "ok", "write", n.clone()),
                (1, "invoke", "read", n.clone()),
                (1, "ok", "read", n.clone()),
            ]),
            Valid,
        ),
        (
            "the initial null cannot come back once an info write was seen",
            Model::CasRegister,
            h(&[
                (0, "invoke", "write", json!(1)),
                (1, "invoke", "read", n.clone()),
                (1, "ok", "read", json!(1)),
                (1, "invoke", "read", n.clone()),
                (1, "ok", "read", n.clone()),
            ]),
            Invalid,
        ),
        (
            "a cas that leaves a value a later read needs stays invalid",
            Model::CasRegister,
            h(&[
                (0, "invoke", "write", json!(1)),
                (1, "invoke", "cas", json!([1, 2])),
                (1, "ok", "cas", json!([1, 2])),
                (2, "invoke", "read", n.clone()),
                (2, "ok", "read", json!(1)),
            ]),
            Invalid,
        ),
        (
            "a cas may leave a value whose reads are all done",
            Model::CasRegister,
            h(&[
                (0, "invoke", "write", json!(1)),
                (2, "invoke", "read", n.clone()),
                (1, "invoke", "cas", json!([1, 2])),
                (2, "ok", "read", json!(1)),
                (1, "ok", "cas", json!([1, 2])),
                (2, "invoke", "read", n.clone()),
                (2, "ok", "read", json!(2)),
            ]),
            Valid,
        ),
        (
            "kv: concurrent appends in either order",
            Model::Kv,
            h(&[
                (0, "invoke", "append", json!("a")),
                (1, "invoke", "append", json!("b")),
                (0, "ok", "append", json!("a")),
                (1, "ok", "append", json!("b")),
                (2, "invoke", "get", n.clone()),
                (2, "ok", "get", json!("ba")),
            ]),
            Valid,
        ),
        (
            "kv: two gets that see concurrent appends in two orders stay invalid",
            Model::Kv,
            h(&[
                (0, "invoke", "append", json!("a")),
                (1, "invoke", "append", json!("b")),
                (2, "invoke", "get", n.clone()),
                (3, "invoke", "get", n.clone()),
                (0, "ok", "append", json!("a")),
                (1, "ok", "append", json!("b")),
                (2, "ok", "get", json!("ab")),
                (3, "ok", "get", json!("ba")),
            ]),
            Invalid,
        ),
        (
            "kv: a get missing an append that completed before it stays invalid",
            Model::Kv,
            h(&[
                (0, "invoke", "append", json!("a")),
                (0, "ok", "append", json!("a")),
                (1, "invoke", "append", json!("b")),
                (2, "invoke", "get", n.clone()),
                (2, "ok", "get", json!("b")),
                (1, "ok", "append", json!("b")),
            ]),
            Invalid,
        ),
        (
            "kv: a concurrent put lets a get read a string that is no extension",
            Model::Kv,
            h(&[
                (0, "invoke", "append", json!("ab")),
                (0, "ok", "append", json!("ab")),
                (1, "invoke", "put", json!("x")),
                (2, "invoke", "get", n.clone()),
                (2, "ok", "get", json!("x")),
                (1, "ok", "put", json!("x")),
                (0, "invoke", "append", json!("c")),
                (0, "ok", "append", json!("c")),
                (2, "invoke", "get", n.clone()),
                (2, "ok", "get", json!("xc")),
            ]),
            Valid,
        ),
        (
            "kv: an info put may reset the string at any later time",
            Model::Kv,
            h(&[
                (0, "invoke", "append", json!("a")),
                (0, "ok", "append", json!("a")),
                (1, "invoke", "put", json!("z")),
                (1, "info", "put", json!("z")),
                (2, "invoke", "get", n.clone()),
                (2, "ok", "get", json!("a")),
                (0, "invoke", "append", json!("q")),
                (0, "ok", "append", json!("q")),
                (2, "invoke", "get", n.clone()),
                (2, "ok", "get", json!("zq")),
            ]),
            Valid,
        ),
        (
            "kv: once an info put is seen, the string before it cannot come back",
            Model::Kv,
            h(&[
                (0, "invoke", "append", json!("a")),
                (0, "ok", "append", json!("a")),
                (1, "invoke", "put", json!("z")),
                (1, "info", "put", json!("z")),
                (2, "invoke", "get", n.clone()),
                (2, "ok", "get", json!("z")),
                (2, "invoke", "get", n.clone()),
                (2, "ok", "get", json!("a")),
            ]),
            Invalid,
        ),
        (
            "kv: an info put seen between two gets",
            Model::Kv,
            h(&[
                (0, "invoke", "append", json!("a")),
                (0, "ok", "append", json!("a")),
                (1, "invoke", "put", json!("z")),
                (1, "info", "put", json!("z")),
                (2, "invoke", "get", n.clone()),
                (2, "ok", "get", json!("a")),
                (2, "invoke", "get", n.clone()),
                (2, "ok", "get", json!("z")),
                (0, "invoke", "append", json!("q")),
                (0, "ok", "append", json!("q")),
                (2, "invoke", "get", n.clone()),
                (2, "ok", "get", json!("zq")),
            ]),
            Valid,
        ),
    ];
    for (name, model, history, expected) in cases {
        let report = check_history(&history, model, Budget::default());
        assert_eq!(report.valid, expected, "{name}");
        assert!(
            report.keys.iter().all(|k| k.witness.is_none()),
            "{name}: decided by the search, not a witness"
        );
    }
}

#[test]
fn keys_are_checked_independently_and_the_failing_one_is_named() {
    let n = Value::Null;
    let history = keyed(&[
        (0, "invoke", "write", json!(1), Some("x")),
        (0, "ok", "write", json!(1), Some("x")),
        (1, "invoke", "read", n.clone(), Some("y")),
        (1, "ok", "read", json!(1), Some("y")),
        (2, "invoke", "read", n.clone(), Some("x")),
        (2, "ok", "read", json!(1), Some("x")),
    ]);
    let report = check_history(&history, Model::CasRegister, Budget::default());
    assert_eq!(report.valid, Invalid);
    let bad: Vec<_> = report
        .keys
        .iter()
        .filter(|k| k.valid == Invalid)
        .map(|k| k.key.clone())
        .collect();
    assert_eq!(bad, vec![Some(json!("y"))]);
    let result = report.to_check_result();
    assert_eq!(result.anomalies[0].count, 1);
    let pictures = report.html_pictures();
    assert_eq!(pictures[0].0, "linearizability-y.html");
    assert!(pictures[0].1.contains("<svg") && pictures[0].1.contains("Not linearizable"));
}

/// Key "hard": 40 info writes of 20 values, read back in an order that
/// needs more writes than there are; repeated values defeat the
/// reductions, so its search takes far longer than the budget after a
/// violation. Key "bad": a stale read.
fn a_bad_key_and_a_hard_one() -> History {
    let n = Value::Null;
    let mut rows = vec![
        (0, "invoke", "write", json!(1), Some("bad")),
        (0, "ok", "write", json!(1), Some("bad")),
        (0, "invoke", "write", json!(2), Some("bad")),
        (0, "ok", "write", json!(2), Some("bad")),
        (1, "invoke", "read", n.clone(), Some("bad")),
        (1, "ok", "read", json!(1), Some("bad")),
    ];
    for p in 0..40u64 {
        rows.push((10 + p, "invoke", "write", json!(p % 20), Some("hard")));
    }
    for r in 0..120u64 {
        rows.push((100 + r, "invoke", "read", n.clone(), Some("hard")));
        rows.push((100 + r, "ok", "read", json!(r * 7 % 40 % 20), Some("hard")));
    }
    keyed(&rows)
}

#[test]
fn a_violation_does_not_wait_for_a_hard_key() {
    let started = Instant::now();
    let report = check_history(
        &a_bad_key_and_a_hard_one(),
        Model::CasRegister,
        Budget::default(),
    );
    assert!(
        started.elapsed() < AFTER_VIOLATION + Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(report.valid, Invalid);
    let verdicts: Vec<Validity> = report.keys.iter().map(|k| k.valid).collect();
    assert_eq!(verdicts, [Invalid, Validity::Unknown]);
    let note = report
        .to_check_result()
        .note
        .expect("a note names the undecided keys");
    assert!(
        note.contains("remain undecided") && note.contains("hard"),
        "{note}"
    );
    assert_eq!(report.scope, Scope::AllKeys, "what the harness reports");
}

/// Issue 33: by default the check stops at the first invalid key and says
/// how many keys it decided and which it did not. On one thread the keys
/// go in order, so "hard" (after "bad") is never searched at all.
#[test]
fn the_first_invalid_key_stops_the_check_and_names_the_keys_not_decided() {
    let history = a_bad_key_and_a_hard_one();
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let scoped = |scope| {
        one_thread.install(|| {
            check_history_scoped(&history, Model::CasRegister, Budget::default(), scope)
        })
    };
    let report = scoped(Scope::FirstInvalidKey);
    assert_eq!(report.valid, Invalid);
    let verdicts: Vec<Validity> = report.keys.iter().map(|k| k.valid).collect();
    assert_eq!(verdicts, [Invalid, Validity::Unknown]);
    assert_eq!((report.keys[1].searched, report.keys[1].steps), (0, 0));
    let first = report
        .first_violation_ms
        .expect("when the violation was found");
    assert!(first <= report.check_ms, "{first} > {}", report.check_ms);
    let result = report.to_check_result();
    assert_eq!(result.counts["keys-decided"], 1);
    assert_eq!(result.counts["keys-unknown"], 1);
    assert_eq!(
        result.note.as_deref(),
        Some("stopped at the first invalid key: 1 of 2 keys decided; not decided: hard (--all-keys judges every key)")
    );
    assert_eq!(result.anomalies[0].count, 1);

    // The same keys judged in every scope when no key is invalid, and no note.
    let n = Value::Null;
    let valid = keyed(&[
        (0, "invoke", "write", json!(1), Some("x")),
        (0, "ok", "write", json!(1), Some("x")),
        (1, "invoke", "read", n.clone(), Some("y")),
        (1, "ok", "read", n.clone(), Some("y")),
    ]);
    for scope in [Scope::FirstInvalidKey, Scope::AllKeys] {
        let r = check_history_scoped(&valid, Model::CasRegister, Budget::default(), scope);
        let verdicts: Vec<Validity> = r.keys.iter().map(|k| k.valid).collect();
        assert_eq!(verdicts, [Valid, Valid], "{scope:?}");
        assert_eq!(r.first_violation_ms, None);
        assert_eq!(r.to_check_result().note, None, "{scope:?}");
    }
}

#[test]
fn a_search_violation_reports_its_prefix_and_the_ops_that_cannot_follow() {
    let n = Value::Null;
    let history = h(&[
        (0, "invoke", "write", json!(1)),
        (0, "ok", "write", json!(1)),
        (1, "invoke", "read", n.clone()),
        (2, "invoke", "write", json!(2)),
        (1, "ok", "read", json!(3)),
        (2, "ok", "write", json!(2)),
        (3, "invoke", "write", json!(3)),
        (3, "ok", "write", json!(3)),
    ]);
    let report = check_history(&history, Model::CasRegister, Budget::default());
    assert_eq!(report.valid, Invalid);
    let k = &report.keys[0];
    assert!(k.witness.is_none(), "needs the search: {:?}", k.witness);
    assert!(!k.prefix.is_empty() && k.stuck.contains(&1), "{k:?}");
}

#[test]
fn an_exhausted_budget_is_unknown_never_a_guess() {
    // Many concurrent info writes that reads observe: the search must try
    // their orders; a zero budget stops it at once.
    let mut rows = Vec::new();
    for p in 0..30u64 {
        rows.push((p, "invoke", "write", json!(p)));
    }
    for p in 0..30u64 {
        rows.push((100 + p, "invoke", "read", Value::Null));
        rows.push((100 + p, "ok", "read", json!(p)));
    }
    let history = h(&rows);
    let budget = Budget {
        time_limit: Duration::ZERO,
        memory_bytes_max: 0,
    };
    let report = check_history(&history, Model::CasRegister, budget);
    assert_eq!(report.valid, Validity::Unknown);
}

/// A simulated linearizable register: processes invoke, take effect and
/// complete in random interleavings; some crash (`info`), their effect
/// applied or not.
fn simulate(choices: &[(u8, u8)], processes: u64) -> Vec<(u64, String, String, Value)> {
    #[derive(Clone, PartialEq)]
    enum Phase {
        Idle,
        Invoked,
        Effective,
    }
    let mut phase = vec![Phase::Idle; processes as usize];
    let mut op: Vec<(String, Value)> = vec![(String::new(), Value::Null); processes as usize];
    let mut pid: Vec<u64> = (0..processes).collect();
    let mut state = Value::Null;
    let mut next_value = 1;
    let mut out = Vec::new();
    for (who, what) in choices {
        let p = (*who as u64 % processes) as usize;
        match phase[p] {
            Phase::Idle => {
                let (f, v) = match what % 3 {
                    0 => ("read".to_string(), Value::Null),
                    1 => {
                        next_value += 1;
                        ("write".to_string(), json!(next_value))
                    }
                    _ => {
                        next_value += 1;
                        ("cas".to_string(), json!([state.clone(), next_value]))
                    }
                };
                out.push((pid[p], "invoke".into(), f.clone(), v.clone()));
                op[p] = (f, v);
                phase[p] = Phase::Invoked;
            }
            Phase::Invoked => {
                let (f, v) = op[p].clone();
                let result = match f.as_str() {
                    "read" => state.clone(),
                    "write" => {
                        state = v.clone();
                        v
                    }
                    _ if state == v[0] => {
                        state = v[1].clone();
                        v
                    }
                    _ => {
                        // A cas that did not swap is recorded as `fail`.
                        out.push((pid[p], "fail".into(), f, v));
                        phase[p] = Phase::Idle;
                        continue;
                    }
                };
                if *what % 7 == 0 && f != "read" {
                    // Crash after taking effect.
                    out.push((pid[p], "info".into(), f, op[p].1.clone()));
                    pid[p] += processes;
                    phase[p] = Phase::Idle;
                } else {
                    op[p].1 = result;
                    phase[p] = Phase::Effective;
                }
            }
            Phase::Effective => {
                let (f, v) = op[p].clone();
                out.push((pid[p], "ok".into(), f, v));
                phase[p] = Phase::Idle;
            }
        }
    }
    out
}

fn history_of(rows: &[(u64, String, String, Value)]) -> History {
    let text: String = rows
        .iter()
        .enumerate()
        .map(|(i, (p, t, f, v))| {
            json!({"process": p, "type": t, "f": f, "value": v, "time": i}).to_string() + "\n"
        })
        .collect();
    read_history(text.as_bytes()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn simulated_linearizable_registers_are_judged_valid(choices in prop::collection::vec((any::<u8>(), any::<u8>()), 10..300), processes in 1u64..6) {
        let rows = simulate(&choices, processes);
        let history = history_of(&rows);
        prop_assert_eq!(verdict(&history, Model::CasRegister), Valid);
    }

    #[test]
    fn an_injected_stale_read_is_judged_invalid(choices in prop::collection::vec((any::<u8>(), any::<u8>()), 10..300), processes in 1u64..6) {
        let mut rows = simulate(&choices, processes);
        // Sequential writes w1 < w2 < read: make the read return w1's value.
        let ok_writes: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].1 == "ok" && rows[i].2 == "write").collect();
        let mut triple = None;
        'search: for r in 0..rows.len() {
            if rows[r].1 != "ok" || rows[r].2 != "read" {
                continue;
            }
            for &w2 in ok_writes.iter().filter(|&&w2| w2 < invoke_of(&rows, r)) {
                if let Some(&w1) = ok_writes.iter().find(|&&w1| w1 < invoke_of(&rows, w2) && rows[w1].3 != rows[r].3) {
                    triple = Some((w1, r));
                    break 'search;
                }
            }
        }
        prop_assume!(triple.is_some());
        let (w1, r) = triple.unwrap();
        rows[r].3 = rows[w1].3.clone();
        let history = history_of(&rows);
        prop_assert_eq!(verdict(&history, Model::CasRegister), Invalid);
    }
}

fn invoke_of(rows: &[(u64, String, String, Value)], completion: usize) -> usize {
    (0..completion)
        .rev()
        .find(|&i| rows[i].0 == rows[completion].0 && rows[i].1 == "invoke")
        .unwrap()
}

/// The reference: every order of the ops that real time allows, with no
/// memo and no reduction (`info` ops may be left out). Exponential, so for
/// histories of a dozen ops at most.
fn brute_force<M: SeqModel>(model: &M, history: &History) -> bool {
    let ops = history.ops();
    let mut interner = Interner::default();
    let parsed: Vec<(u64, Option<u64>, M::Input)> = ops
        .iter()
        .filter(|o| o.outcome != EventType::Fail)
        .filter_map(|o| {
            let input = model.parse(o, &mut interner).unwrap()?;
            let ret = (o.outcome == EventType::Ok).then(|| o.complete_index.unwrap());
            Some((o.invoke_index, ret, input))
        })
        .collect();
    fn go<M: SeqModel>(
        model: &M,
        ops: &[(u64, Option<u64>, M::Input)],
        done: u32,
        state: &M::State,
    ) -> bool {
        let pending = |i: usize| done & (1 << i) == 0;
        if (0..ops.len()).all(|i| !pending(i) || ops[i].1.is_none()) {
            return true;
        }
        (0..ops.len()).filter(|&i| pending(i)).any(|i| {
            // No op still to be placed returned before this one's call.
            let allowed = (0..ops.len())
                .filter(|&j| pending(j) && j != i)
                .all(|j| ops[j].1.is_none_or(|ret| ret > ops[i].0));
            allowed
                && model
                    .step(state, &ops[i].2)
                    .is_some_and(|next| go(model, ops, done | 1 << i, &next))
        })
    }
    go(model, &parsed, 0, &model.init())
}

/// Random histories, linearizable or not: `choices` drive up to four
/// processes through invoke and completion (ok with a drawn result, fail,
/// info, or never completed), with values from a small domain so that
/// values repeat and the reductions meant for unique values are put to
/// the test.
fn random_history(choices: &[(u8, u8, u8)], kv: bool) -> History {
    let processes = 4u64;
    let mut pid: Vec<u64> = (0..processes).collect();
    let mut open: Vec<Option<(String, Value)>> = vec![None; processes as usize];
    let mut rows = Vec::new();
    let texts = ["", "a", "b", "ab", "ba", "aa"];
    let value = |v: u8| {
        if kv {
            json!(texts[v as usize % texts.len()])
        } else if v % 5 == 0 {
            Value::Null
        } else {
            json!(v % 5)
        }
    };
    for &(who, what, v) in choices {
        let p = who as usize % processes as usize;
        match open[p].take() {
            None => {
                let (f, arg) = match (kv, what % 3) {
                    (false, 0) => ("read", Value::Null),
                    (false, 1) => ("write", value(v)),
                    (false, _) => ("cas", json!([value(v), value(v / 5)])),
                    (true, 0) => ("get", Value::Null),
                    (true, 1) => ("put", json!(texts[1 + v as usize % 2])),
                    (true, _) => ("append", json!(texts[1 + v as usize % 2])),
                };
                rows.push(json!({"process": pid[p], "type": "invoke", "f": f, "value": arg}));
                open[p] = Some((f.to_string(), arg));
            }
            Some((f, arg)) => {
                let (kind, result) = match what % 8 {
                    0 => ("fail", arg),
                    1 => ("info", arg),
                    _ if f == "read" || f == "get" => ("ok", value(v)),
                    _ => ("ok", arg),
                };
                rows.push(json!({"process": pid[p], "type": kind, "f": f, "value": result}));
                if kind == "info" {
                    pid[p] += processes;
                }
            }
        }
    }
    let text: String = rows
        .iter_mut()
        .enumerate()
        .map(|(i, r)| {
            r["time"] = json!(i);
            r.to_string() + "\n"
        })
        .collect();
    read_history(text.as_bytes()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn every_verdict_agrees_with_brute_force(choices in prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>()), 2..22), kv in any::<bool>()) {
        let history = random_history(&choices, kv);
        let (model, expected) = if kv {
            (Model::Kv, brute_force(&Kv, &history))
        } else {
            (Model::CasRegister, brute_force(&Register { cas: true }, &history))
        };
        let expected = if expected { Valid } else { Invalid };
        prop_assert_eq!(verdict(&history, model), expected, "{:#?}", history.ops());
    }
}
