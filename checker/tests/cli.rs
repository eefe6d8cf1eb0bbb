//! The `checker` binary as a user runs it: exit codes, `--json` fields,
//! clear errors on bad input (every malformed history refused with exit 3,
//! naming file, line and field), Jepsen's EDN read to the same verdicts as
//! JSON Lines, failure pictures, and `bench` printing what it measured.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn checker(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_checker"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the checker starts");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("writing stdin");
    drop(input);
    child.wait_with_output().expect("the checker ends")
}

const VALID: &str = r#"{"process": 0, "type": "invoke", "f": "write", "value": 1, "time": 1}
{"process": 0, "type": "ok", "f": "write", "value": 1, "time": 2}
{"process": 1, "type": "invoke", "f": "read", "value": null, "time": 3}
{"process": 1, "type": "ok", "f": "read", "value": 1, "time": 4}
"#;

const STALE: &str = r#"{"process": 0, "type": "invoke", "f": "write", "value": 1, "time": 1}
{"process": 0, "type": "ok", "f": "write", "value": 1, "time": 2}
{"process": 0, "type": "invoke", "f": "write", "value": 2, "time": 3}
{"process": 0, "type": "ok", "f": "write", "value": 2, "time": 4}
{"process": 1, "type": "invoke", "f": "read", "value": null, "time": 5}
{"process": 1, "type": "ok", "f": "read", "value": 1, "time": 6}
"#;

#[test]
fn exit_codes_and_json_fields() {
    let ok = checker(&["linearizable", "--json", "-"], Some(VALID));
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    let line: Value = serde_json::from_slice(&ok.stdout).expect("one JSON line");
    assert_eq!(line["valid"], true);
    for field in ["file", "anomalies", "parse_ms", "check_ms", "peak_rss_mb"] {
        assert!(line.get(field).is_some(), "--json has {field}: {line}");
    }

    let bad = checker(&["linearizable", "--json", "-"], Some(STALE));
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    let line: Value = serde_json::from_slice(&bad.stdout).expect("one JSON line");
    assert_eq!(line["valid"], false);

    let garbage = checker(
        &["linearizable", "-"],
        Some("{\"process\": 0, \"type\": \"nope\"}\n"),
    );
    assert_eq!(garbage.status.code(), Some(3));
    let err = String::from_utf8_lossy(&garbage.stderr);
    assert!(err.contains("line 1"), "the error names the line: {err}");

    let missing = checker(&["ordering", "/nonexistent/history.jsonl"], None);
    assert_eq!(missing.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/history.jsonl"));
}

#[test]
fn bench_prints_one_measured_line_per_history() {
    let out = checker(&["bench", "--quick"], None);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let verdicts: Vec<&Value> = lines.iter().map(|l| &l["valid"]).collect();
    let (t, f, u) = (
        &Value::Bool(true),
        &Value::Bool(false),
        &Value::from("unknown"),
    );
    // Each linearizability history in both modes, the ordering ones (a
    // hashed chain, a chain of positions) once.
    assert_eq!(verdicts, [t, t, f, f, t, t, f, f, f, f, t, t, u, u, t, t]);
    for l in &lines {
        assert!(l["peak_rss_mb"].as_f64().is_some_and(|m| m > 0.0), "{l}");
        assert!(l["check_s"].as_f64().is_some(), "{l}");
    }
    let modes: Vec<&str> = lines.iter().filter_map(|l| l["mode"].as_str()).collect();
    assert_eq!(modes.len(), 14);
    for pair in modes.chunks(2) {
        assert_eq!(pair, ["first-invalid-key", "all-keys"]);
    }
    // The invalid kv history whose other keys need seconds: stopping at
    // the first invalid key decides fewer keys; every invalid line says
    // when its first violation was found.
    let hard: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["history"]
                .as_str()
                .is_some_and(|h| h.contains("needing seconds"))
        })
        .collect();
    assert!(
        hard[0]["keys_decided"].as_u64() < hard[1]["keys_decided"].as_u64(),
        "{hard:?}"
    );
    for l in lines.iter().filter(|l| l["valid"] == false) {
        assert!(l["first_violation_s"].as_f64().is_some(), "{l}");
    }
}

/// Writes `text` to `dir/name` and returns the path as the checker is given it.
fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a history");
    path.display().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// One event of a JSON Lines history.
fn ev(process: u64, kind: &str, f: &str, value: &str, time: u64) -> String {
    format!(r#"{{"process":{process},"type":"{kind}","f":"{f}","value":{value},"time":{time}}}"#)
}

/// The histories the issue found judged instead of refused, each with the
/// checker's arguments and the message it must give.
fn malformed() -> Vec<(&'static str, Vec<&'static str>, String, &'static str)> {
    let pair = |f1: &str, v1: &str, f2: &str, v2: &str| {
        [ev(0, "invoke", f1, v1, 1), ev(0, "ok", f2, v2, 2)].join("\n")
    };
    let cas = |v: &str| pair("cas", v, "cas", v);
    let lin = vec!["linearizable"];
    vec![
        ("append-under-cas", lin.clone(), pair("append", "\"x\"", "append", "\"x\""), "line 1: field `f`: `append` is not an operation of the cas-register model (read, write, cas); it is an operation of `checker linearizable --model kv`"),
        ("misspelt-f", lin.clone(), [ev(0, "invoke", "write", "1", 1), ev(0, "ok", "write", "1", 2), ev(1, "invoke", "wrte", "2", 3), ev(1, "ok", "wrte", "2", 4)].join("\n"), "line 3: field `f`: `wrte` is not an operation of the cas-register model"),
        ("ordering-under-cas", lin.clone(), pair("submit", "\"t1\"", "submit", "\"t1\""), "line 1: field `f`: `submit` is not an operation of the cas-register model (read, write, cas); it is an operation of `checker ordering`"),
        ("register-under-ordering", vec!["ordering"], pair("write", "1", "write", "1"), "line 1: field `f`: `write` is not an operation of the ordering model (submit, deliver)"),
        ("cas-number", lin.clone(), cas("5"), "line 1: field `value`: `cas` invoke expects a two-element array [expected, new], got 5"),
        ("cas-string", lin.clone(), cas("\"[1,2]\""), "line 1: field `value`: `cas` invoke expects a two-element array [expected, new], got \"[1,2]\""),
        ("cas-triple", lin.clone(), cas("[1,2,3]"), "line 1: field `value`: `cas` invoke expects a two-element array [expected, new], got [1,2,3]"),
        ("kv-put-number", vec!["linearizable", "--model", "kv"], pair("put", "3", "put", "3"), "line 1: field `value`: `put` invoke expects a string, got 3"),
        ("pair-f-differs", lin.clone(), pair("write", "1", "read", "1"), "line 2: field `f`: completion `read` does not match the pending invoke `write`"),
        ("invokes-twice", lin.clone(), [ev(0, "invoke", "write", "1", 1), ev(0, "invoke", "write", "2", 2)].join("\n"), "line 2: field `process`: process 0 invokes again without completing its invoke on line 1"),
        ("index-7-3-3-3", lin.clone(), [(7, "invoke", "write", "1"), (3, "ok", "write", "1"), (3, "invoke", "read", "null"), (3, "ok", "read", "1")].iter().enumerate().map(|(t, (i, k, f, v))| format!(r#"{{"index":{i},"process":0,"type":"{k}","f":"{f}","value":{v},"time":{t}}}"#)).collect::<Vec<_>>().join("\n"), "line 1: field `index`: 7 is not the event's position 0"),
        ("empty", lin.clone(), String::new(), "the history is empty"),
        ("blank-lines-only", vec!["ordering"], "\n\n".into(), "the history is empty"),
        ("nemesis-only", lin.clone(), r#"{"process":"nemesis","type":"info","f":"kill","value":{"phase":"start"},"time":1}"#.into(), "no operation of the cas-register model (read, write, cas): the history holds only nemesis events"),
        ("json-array", lin.clone(), format!("[{}]", ev(0, "invoke", "write", "1", 1)), "line 1: not a JSON object: this file looks like one JSON array"),
        ("edn-in-jsonl", lin.clone(), "{:process 0, :type :invoke, :f :write, :value 1, :time 1}".into(), "line 1: not a JSON object: this looks like EDN (Jepsen's history format): name the file `.edn` or pass `--format edn`"),
        ("torn-line", lin.clone(), format!("{}\n{{\"process\": 0, \"type\": \"ok\"", ev(0, "invoke", "write", "1", 1)), "line 2: not a JSON object: EOF while parsing an object at column 27"),
    ]
}

#[test]
fn every_malformed_history_is_refused_with_exit_3_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args, text, expected) in malformed() {
        let path = file(dir.path(), &format!("{name}.jsonl"), &text);
        let out = checker(&[args.as_slice(), &[path.as_str()]].concat(), None);
        assert_eq!(out.status.code(), Some(3), "{name}: {out:?}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{path}: {expected}")),
            "{name}\n  gave: {err}\n  want: {path}: {expected}"
        );
        assert!(
            out.stdout.is_empty(),
            "{name}: no verdict for a refused file: {out:?}"
        );
    }
}

#[test]
fn json_prints_one_object_per_file_refused_files_included() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        file(dir.path(), "valid.jsonl", VALID),
        file(dir.path(), "stale.jsonl", STALE),
        file(
            dir.path(),
            "cas.jsonl",
            &format!(
                "{}\n{}",
                ev(0, "invoke", "write", "1", 1),
                ev(0, "ok", "wrte", "1", 2)
            ),
        ),
        dir.path().join("missing.jsonl").display().to_string(),
    ];
    let args: Vec<&str> = ["linearizable", "--json"]
        .into_iter()
        .chain(files.iter().map(String::as_str))
        .collect();
    let out = checker(&args, None);
    assert_eq!(
        out.status.code(),
        Some(3),
        "bad input is the worst exit: {out:?}"
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 4, "{lines:?}");
    for (line, f) in lines.iter().zip(&files) {
        assert_eq!(line["file"], f.as_str(), "{line}");
    }
    assert_eq!(
        (&lines[0]["valid"], &lines[1]["valid"]),
        (&Value::Bool(true), &Value::Bool(false))
    );
    assert_eq!(lines[2]["line"], 2);
    assert!(
        lines[2]["error"]
            .as_str()
            .unwrap()
            .starts_with("line 2: field `f`"),
        "{}",
        lines[2]
    );
    assert_eq!(lines[3]["line"], Value::Null);
    assert!(
        lines[3]["error"].as_str().unwrap().contains("No such file"),
        "{}",
        lines[3]
    );
    assert!(lines[2].get("valid").is_none() && lines[3].get("valid").is_none());
}

/// Jepsen-style histories (as `history.edn` holds them) with the same
/// events as JSON Lines, one map per line, one vector, and records:
/// `(name, edn, jsonl, expected exit)`.
fn jepsen_pairs() -> Vec<(&'static str, String, String, i32)> {
    // (process, type, f, value as EDN, value as JSON)
    let rows = |stale: bool| {
        vec![
            (":nemesis", ":invoke", ":start", "nil", "null"),
            ("0", ":invoke", ":write", "1", "1"),
            (
                ":nemesis",
                ":info",
                ":start",
                "[:isolated {\"n1\" #{\"n2\" \"n3\"}}]",
                "null",
            ),
            ("0", ":ok", ":write", "1", "1"),
            ("1", ":invoke", ":cas", "[1 2]", "[1,2]"),
            ("1", ":ok", ":cas", "[1 2]", "[1,2]"),
            ("2", ":invoke", ":cas", "[7 8]", "[7,8]"),
            ("2", ":fail", ":cas", "[7 8]", "[7,8]"),
            ("3", ":invoke", ":write", "3", "3"),
            ("3", ":info", ":write", "3", "3"),
            ("0", ":invoke", ":read", "nil", "null"),
            (
                "0",
                ":ok",
                ":read",
                if stale { "1" } else { "2" },
                if stale { "1" } else { "2" },
            ),
            (":nemesis", ":invoke", ":stop", "nil", "null"),
            (":nemesis", ":info", ":stop", ":network-healed", "null"),
        ]
    };
    let edn = |stale: bool| -> Vec<String> {
        rows(stale)
            .iter()
            .enumerate()
            .map(|(i, (p, t, f, v, _))| {
                format!(
                    "{{:index {i}, :time {}, :type {t}, :process {p}, :f {f}, :value {v}}}",
                    1000 * (i + 1)
                )
            })
            .collect()
    };
    let jsonl = |stale: bool| -> String {
        rows(stale)
            .iter()
            .enumerate()
            .map(|(i, (p, t, f, _, v))| {
                let p = if *p == ":nemesis" {
                    "\"nemesis\"".to_string()
                } else {
                    p.to_string()
                };
                format!(
                    r#"{{"index":{i},"time":{},"type":"{}","process":{p},"f":"{}","value":{v}}}"#,
                    1000 * (i + 1),
                    &t[1..],
                    &f[1..]
                ) + "\n"
            })
            .collect()
    };
    let mut out = Vec::new();
    for (stale, exit) in [(false, 0), (true, 1)] {
        let name = if stale { "stale" } else { "valid" };
        out.push((name, edn(stale).join("\n") + "\n", jsonl(stale), exit));
        out.push((
            name,
            format!("[{}]\n", edn(stale).join("\n ")),
            jsonl(stale),
            exit,
        ));
        // Jepsen 0.3 prints its ops as records.
        let records: Vec<String> = edn(stale)
            .iter()
            .map(|m| format!("#jepsen.history.Op{m}"))
            .collect();
        out.push((name, records.join("\n"), jsonl(stale), exit));
    }
    out
}

#[test]
fn jepsen_edn_one_map_per_line_or_a_vector_gets_the_jsonl_verdict() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, edn, jsonl, exit)) in jepsen_pairs().into_iter().enumerate() {
        let edn_path = file(dir.path(), &format!("{i}-{name}.edn"), &edn);
        let jsonl_path = file(dir.path(), &format!("{i}-{name}.jsonl"), &jsonl);
        let from_edn = checker(&["linearizable", "--json", &edn_path], None);
        let from_jsonl = checker(&["linearizable", "--json", &jsonl_path], None);
        assert_eq!(from_edn.status.code(), Some(exit), "{edn}\n{from_edn:?}");
        assert_eq!(
            from_jsonl.status.code(),
            Some(exit),
            "{jsonl}\n{from_jsonl:?}"
        );
        let (a, b) = (&json_lines(&from_edn)[0], &json_lines(&from_jsonl)[0]);
        assert_eq!(
            (&a["valid"], &a["counts"]),
            (&b["valid"], &b["counts"]),
            "{a}\n{b}"
        );
        // The same file through --format and stdin.
        let piped = checker(&["linearizable", "--format", "edn", "-"], Some(&edn));
        assert_eq!(piped.status.code(), Some(exit), "{piped:?}");
    }
}

#[test]
fn malformed_edn_is_refused_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("torn", "{:process 0, :type :invoke, :f :write, :value 1, :time 1}\n{:process 0, :type :ok, :f :write,\n", "line 2: not an EDN map: the form that starts on this line is never closed"),
        ("unknown-f", "[{:process 0, :type :invoke, :f :txn, :value [[:r 1 nil]], :time 1}\n {:process 0, :type :ok, :f :txn, :value [[:r 1 nil]], :time 2}]", "line 1: field `f`: `txn` is not an operation of the cas-register model"),
        ("cas-shape", "{:process 0, :type :invoke, :f :write, :value 1, :time 1}\n{:process 0, :type :ok, :f :write, :value 1, :time 2}\n{:process 1, :type :invoke, :f :cas, :value 5, :time 3}", "line 3: field `value`: `cas` invoke expects a two-element array"),
        ("index", "{:index 0, :process 0, :type :invoke, :f :read, :value nil, :time 1}\n{:index 0, :process 0, :type :ok, :f :read, :value nil, :time 2}", "line 2: field `index`: 0 is not the event's position 1"),
        ("not-a-map", "{:process 0, :type :invoke, :f :read, :value nil, :time 1}\n:ok", "line 2: not an EDN map: expected a map"),
        ("jsonl-named-edn", &format!("{}\n", ev(0, "invoke", "read", "null", 1)), "line 1: not an EDN map: this looks like JSON Lines"),
        ("empty", "; nothing here\n", "the history is empty"),
    ];
    for (name, text, expected) in cases {
        let path = file(dir.path(), &format!("{name}.edn"), text);
        let out = checker(&["linearizable", &path], None);
        assert_eq!(out.status.code(), Some(3), "{name}: {out:?}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{path}: {expected}")),
            "{name}\n  gave: {err}\n  want: {expected}"
        );
    }
}

fn html_files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .collect();
    found.sort();
    found
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            if e.path().is_dir() {
                walk(&e.path())
            } else {
                vec![e.path()]
            }
        })
        .collect()
}

#[test]
fn picture_draws_each_failing_key() {
    let dir = tempfile::tempdir().unwrap();
    let keyed = |key: &str, read: u64, t0: u64| {
        [
            ("invoke", "write", "1"),
            ("ok", "write", "1"),
            ("invoke", "read", "null"),
            ("ok", "read", &read.to_string()),
        ]
        .iter()
        .enumerate()
        .map(|(i, (k, f, v))| {
            format!(
                r#"{{"process":{t0},"type":"{k}","f":"{f}","key":"{key}","value":{v},"time":{}}}"#,
                t0 * 10 + i as u64
            ) + "\n"
        })
        .collect::<String>()
    };
    // Keys x and z read a value never written; y is fine.
    let text = keyed("x", 2, 0) + &keyed("y", 1, 1) + &keyed("z", 3, 2);
    let history = file(dir.path(), "keys.jsonl", &text);
    let pictures = dir.path().join("pictures");
    let out = checker(
        &[
            "linearizable",
            "--json",
            "--all-keys",
            "--picture",
            pictures.to_str().unwrap(),
            &history,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let drawn = html_files(&pictures);
    assert_eq!(
        drawn,
        [
            pictures.join("linearizability-x.html"),
            pictures.join("linearizability-z.html")
        ]
    );
    let page = std::fs::read_to_string(&drawn[0]).unwrap();
    assert!(page.contains("<svg") && page.contains("read"), "{page}");
    assert_eq!(
        json_lines(&out)[0]["pictures"].as_array().map(Vec::len),
        Some(2)
    );

    // A valid history draws nothing; several files draw into one folder each.
    let valid = file(dir.path(), "valid.jsonl", VALID);
    let stale = file(dir.path(), "stale.jsonl", STALE);
    let many = dir.path().join("many");
    let out = checker(
        &[
            "linearizable",
            "--picture",
            many.to_str().unwrap(),
            &valid,
            &stale,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        html_files(&many),
        [many
            .join("2-stale")
            .join("linearizability-_single_object_.html")]
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("picture: "),
        "{out:?}"
    );

    // Every failing key is drawn, not only the ten the harness keeps.
    let twelve: String = (0..12).map(|k| keyed(&format!("k{k:02}"), 2, k)).collect();
    let history = file(dir.path(), "twelve.jsonl", &twelve);
    let all = dir.path().join("all");
    let out = checker(
        &[
            "linearizable",
            "--all-keys",
            "--picture",
            all.to_str().unwrap(),
            &history,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let drawn = html_files(&all);
    assert_eq!(drawn.len(), 12, "{drawn:?}");
    assert_eq!(drawn[11], all.join("linearizability-k11.html"));
}

/// Issue 33: by default the check stops at the first invalid key and says
/// so (keys decided, keys not); `--all-keys` judges every key.
#[test]
fn the_first_invalid_key_ends_the_check_unless_all_keys_are_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    // 40 keys, each reading a value never written: every one is invalid.
    let text: String = (0..40u64)
        .map(|k| {
            format!(
                r#"{{"process":{k},"type":"invoke","f":"read","key":"k{k:02}","value":null,"time":{}}}"#,
                2 * k
            ) + "\n"
                + &format!(
                    r#"{{"process":{k},"type":"ok","f":"read","key":"k{k:02}","value":7,"time":{}}}"#,
                    2 * k + 1
                )
                + "\n"
        })
        .collect();
    let history = file(dir.path(), "forty.jsonl", &text);
    let all = checker(&["linearizable", "--json", "--all-keys", &history], None);
    assert_eq!(all.status.code(), Some(1), "{all:?}");
    let all = &json_lines(&all)[0];
    assert_eq!(all["counts"]["keys-invalid"], 40, "{all}");
    assert_eq!(all["counts"]["keys-decided"], 40, "{all}");
    assert_eq!(all["note"], Value::Null, "{all}");

    let first = checker(&["linearizable", "--json", &history], None);
    assert_eq!(first.status.code(), Some(1), "{first:?}");
    let first = &json_lines(&first)[0];
    let decided = first["counts"]["keys-decided"].as_u64().unwrap();
    assert!((1..=40).contains(&decided), "{first}");
    assert_eq!(first["counts"]["keys-invalid"].as_u64(), Some(decided));
    assert!(first["first_violation_ms"].as_f64().is_some(), "{first}");
    if decided < 40 {
        let note = first["note"]
            .as_str()
            .expect("a note names the keys not decided");
        assert!(
            note.starts_with(&format!(
                "stopped at the first invalid key: {decided} of 40 keys decided; not decided: k"
            )),
            "{note}"
        );
    }

    let text = checker(&["linearizable", &history], None);
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(
        out.contains("keys-decided: ") && out.contains("INVALID"),
        "{out}"
    );
}

#[test]
fn a_reader_that_goes_away_is_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let stale = file(dir.path(), "stale.jsonl", STALE);
    let mut child = Command::new(env!("CARGO_BIN_EXE_checker"))
        .args(["linearizable", &stale, &stale, &stale])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the checker starts");
    // Close the reading end, as `checker … | head -0` does.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("the checker ends");
    assert!(!stderr(&out).contains("panicked"), "{out:?}");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// A NATS JetStream history as `workloads/src/nats/` writes it: submits
/// whose `ok` names the stream sequence, a read during the run, and each
/// server's own copy read at the end, every delivery `"chain":
/// "positions"`. `copies` are the ids each of n1, n2, n3 holds from 1;
/// the submits are `t1`, `t2`, `t3`, acknowledged at 1, 2, 3.
fn nats_history(copies: [&[&str]; 3], mark: bool) -> String {
    let block = |n: usize, id: &str| serde_json::json!({"number": n, "txs": [{"id": id, "payload": format!("payload-{id}")}]});
    let blocks = |ids: &[&str]| {
        ids.iter()
            .enumerate()
            .map(|(i, id)| block(i + 1, id))
            .collect::<Vec<_>>()
    };
    let mut lines = Vec::new();
    let mut t = 0;
    for (p, id) in ["t1", "t2", "t3"].iter().enumerate() {
        t += 10;
        lines.push(serde_json::json!({"process": p, "type": "invoke", "f": "submit", "value": id, "time": t, "node": "n1"}));
        lines.push(serde_json::json!({"process": p, "type": "ok", "f": "submit", "value": {"id": id, "position": p + 1}, "time": t + 5, "node": "n1"}));
    }
    let mut read = |p: u64, asked: Value, mut value: Value, node: &str| {
        t += 10;
        if mark {
            value["chain"] = "positions".into();
        }
        lines.push(serde_json::json!({"process": p, "type": "invoke", "f": "deliver", "value": asked, "time": t, "node": node}));
        lines.push(serde_json::json!({"process": p, "type": "ok", "f": "deliver", "value": value, "time": t + 5, "node": node}));
    };
    read(
        10,
        serde_json::json!({"recent": 20}),
        serde_json::json!({"from": 1, "blocks": blocks(&["t1"])}),
        "n2",
    );
    for (i, ids) in copies.iter().enumerate() {
        let node = format!("n{}", i + 1);
        let value =
            serde_json::json!({"from": 1, "final": true, "server": node, "blocks": blocks(ids)});
        read(
            1_000_000 + i as u64,
            serde_json::json!({"from": 1, "final": true}),
            value,
            &node,
        );
    }
    lines.iter().map(|l| l.to_string() + "\n").collect()
}

/// Issue 31: the ordering checker judges a chain of positions (NATS
/// JetStream), finds an acknowledged message lost and its sequence given to
/// another, and refuses an unmarked or mixed history by line and field.
#[test]
fn a_nats_positions_history_is_judged_and_an_unmarked_or_mixed_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let all: &[&str] = &["t1", "t2", "t3"];
    let valid = file(
        dir.path(),
        "nats.jsonl",
        &nats_history([all, all, &["t1", "t2"]], true),
    );
    let out = checker(&["ordering", "--json", &valid], None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let line = &json_lines(&out)[0];
    let kinds: Vec<&str> = line["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "fork",
            "non-contiguous",
            "duplicate",
            "lost",
            "unsubmitted",
            "failed-present",
            "realtime-order",
            "ack-position-mismatch"
        ],
        "broken-hash-chain does not apply to positions: {line}"
    );
    assert_eq!(line["counts"]["acknowledged-with-position"], 3, "{line}");

    // Every copy lost t3 (a power failure before the sync), and sequence 3
    // went to a message nobody acknowledged.
    let lost: &[&str] = &["t1", "t2", "x"];
    let reused = file(
        dir.path(),
        "lost.jsonl",
        &nats_history([lost, lost, lost], true),
    );
    let out = checker(&["ordering", "--json", &reused], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let line = &json_lines(&out)[0];
    let count = |kind: &str| {
        line["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["kind"] == kind)
            .unwrap()["count"]
            .clone()
    };
    assert_eq!(
        (
            count("lost"),
            count("ack-position-mismatch"),
            count("unsubmitted")
        ),
        (1.into(), 1.into(), 1.into()),
        "{line}"
    );

    // Without the mark the checker used to drop every block silently: this
    // history came out `unknown` (exit 2; with `from: 0`, every submit
    // `lost`). Now the first block without hashes is refused.
    let unmarked = file(
        dir.path(),
        "unmarked.jsonl",
        &nats_history([all, all, all], false),
    );
    let out = checker(&["ordering", &unmarked], None);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        stderr(&out).contains(&format!(
            "{unmarked}: line 8: field `value.blocks[0].previous_hash`: missing"
        )),
        "{}",
        stderr(&out)
    );

    let mut mixed = nats_history([all, all, all], true);
    mixed.push_str(&(serde_json::json!({"process": 2_000_000, "type": "invoke", "f": "deliver", "value": {"from": 0, "final": true}, "time": 999, "node": "n4"}).to_string() + "\n"));
    mixed.push_str(&(serde_json::json!({"process": 2_000_000, "type": "ok", "f": "deliver", "value": {"from": 0, "final": true, "blocks": []}, "time": 1000, "node": "n4"}).to_string() + "\n"));
    let mixed = file(dir.path(), "mixed.jsonl", &mixed);
    let out = checker(&["ordering", "--json", &mixed], None);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let line = &json_lines(&out)[0];
    assert_eq!(line["line"], 16, "{line}");
    assert!(line["error"].as_str().unwrap().starts_with("line 16: field `value.chain`: a `hashes` delivery in a history of `positions` deliveries (the first on line 8)"), "{line}");

    // EDN is judged in memory: the same refusal of a block it does not
    // understand.
    let edn = r#"{:process 0, :type :invoke, :f :submit, :value "t1", :time 1}
{:process 0, :type :ok, :f :submit, :value "t1", :time 2}
{:process 1, :type :invoke, :f :deliver, :value {:from 1, :final true}, :time 3}
{:process 1, :type :ok, :f :deliver, :value {:from 1, :final true, :chain "positions", :blocks [{:number 1, :txs [{:id "t1", :payload "p"} {:id "t2", :payload "q"}]}]}, :time 4}
"#;
    let edn = file(dir.path(), "nats.edn", edn);
    let out = checker(&["ordering", &edn], None);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        stderr(&out).contains("line 4: field `value.blocks[0].txs`: a `positions` block holds exactly one transaction, got 2"),
        "{}",
        stderr(&out)
    );
}
