//! The `checker` binary as a user runs it: exit codes, `--json` fields,
//! clear errors on bad input, and `bench` printing what it measured.

use serde_json::Value;
use std::io::Write;
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
    let (t, f) = (&Value::Bool(true), &Value::Bool(false));
    assert_eq!(verdicts, [t, f, t, f, t, &Value::from("unknown"), t]);
    for l in &lines {
        assert!(l["peak_rss_mb"].as_f64().is_some_and(|m| m > 0.0), "{l}");
        assert!(l["check_s"].as_f64().is_some(), "{l}");
    }
}
