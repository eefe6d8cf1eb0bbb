//! The page's schedule section: the run's faults as `schedule.json`
//! holds them, and beside them the schedule `harness shrink` shrank them
//! to (`shrunk.json`), with how often it failed, the node settings it put
//! back to their defaults and those the failure needs, and the command
//! that replays it; a replay's drift (`drift.json`) under them. Formats
//! in docs/store.md. Nothing without `schedule.json` (older runs).

use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// The section's HTML, empty when the run wrote no schedule.
pub fn section(run_dir: &Path, esc: fn(&str) -> String) -> String {
    let read = |name: &str| -> Option<Value> {
        let text = std::fs::read_to_string(run_dir.join(name)).ok()?;
        serde_json::from_str(&text).ok()
    };
    let Some(schedule) = read("schedule.json") else {
        return String::new();
    };
    let mut out = String::from("<h3>Schedule</h3><div style=\"display:flex;gap:2em;flex-wrap:wrap\"><div><p>As run (<a href=\"schedule.json\">schedule.json</a>, seed ");
    let _ = write!(
        out,
        "{}, {} s)</p>{}</div>",
        schedule["seed"],
        schedule["clock"]["time_limit_s"],
        table(&schedule, esc)
    );
    if let Some(shrunk) = read("shrunk.json") {
        let _ = write!(
            out,
            "<div><p>Shrunk (<a href=\"shrunk.json\">shrunk.json</a>): {} of {} faults, {} s; reproduces {}: failed {} of {} replays{}{}</p>{}{}<p><code>{}</code></p></div>",
            shrunk["shrunk_faults"],
            shrunk["original_faults"],
            shrunk["schedule"]["clock"]["time_limit_s"],
            esc(&kinds(&shrunk["targets"])),
            shrunk["confirm_failures"],
            shrunk["confirm_runs"],
            if shrunk["one_minimal"] == true { "; 1-minimal" } else { "" },
            if shrunk["finished"] == true { "" } else { " (unfinished: the best so far)" },
            table(&shrunk["schedule"], esc),
            config(&shrunk["config"], esc),
            esc(shrunk["replay_command"].as_str().unwrap_or_default())
        );
    }
    out.push_str("</div>");
    if let Some(drift) = read("drift.json") {
        let _ = write!(
            out,
            "<p>Replay of <code>{}</code>: fault starts drifted {} ms (median), {} ms (worst) from the plan; in force {} ms (median), {} ms (worst) from the original (<a href=\"drift.json\">drift.json</a>).</p>",
            esc(schedule["replay_of"].as_str().unwrap_or("?")),
            drift["start_drift_ms_median"],
            drift["start_drift_ms_worst"],
            drift["in_force_drift_ms_median"],
            drift["in_force_drift_ms_worst"]
        );
    }
    out
}

/// The node settings the shrink put back and those it kept (`config`,
/// each `name: [drawn, default]`); nothing for an older `shrunk.json`.
fn config(config: &Value, esc: fn(&str) -> String) -> String {
    if !config.is_object() {
        return String::new();
    }
    let show = |key: &str, item: fn(&str, &Value) -> String| -> Vec<String> {
        config[key]
            .as_object()
            .map(|m| m.iter().map(|(name, v)| item(name, v)).collect())
            .unwrap_or_default()
    };
    let parts: Vec<String> = [
        (
            "put back to their defaults",
            show("reset", |n, v| format!("{n} {} → {}", v[0], v[1])),
        ),
        (
            "kept, the failure needs them",
            show("needed", |n, v| format!("{n} {} (default {})", v[0], v[1])),
        ),
        (
            "not tried",
            show("skipped", |n, v| {
                format!("{n} {} ({})", v["drawn"], v["why"].as_str().unwrap_or("?"))
            }),
        ),
        (
            "not tried, out of budget",
            show("untried", |n, v| format!("{n} {}", v[0])),
        ),
    ]
    .into_iter()
    .filter(|(_, items)| !items.is_empty())
    .map(|(label, items)| format!("{label}: {}", items.join(", ")))
    .collect();
    if parts.is_empty() {
        return "<p>Node settings: the defaults.</p>".into();
    }
    format!("<p>Node settings {}.</p>", esc(&parts.join("; ")))
}

/// `a or b` of a list of anomaly kinds.
fn kinds(v: &Value) -> String {
    let all: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    all.join(" or ")
}

/// One row per fault: name, targets, planned start and end, parameters.
fn table(schedule: &Value, esc: fn(&str) -> String) -> String {
    let mut out = String::from(
        "<table><tr><th>fault</th><th>targets</th><th>start s</th><th>end s</th><th>parameters</th></tr>",
    );
    let faults = schedule["faults"].as_array().cloned().unwrap_or_default();
    for f in &faults {
        let targets: Vec<&str> = f["targets"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let s = |k: &str| f[k].as_f64().unwrap_or(0.0) / 1000.0;
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td><code>{}</code></td></tr>",
            esc(f["name"].as_str().unwrap_or("?")),
            esc(&targets.join(", ")),
            s("start_ms"),
            s("end_ms"),
            esc(&f["params"].to_string())
        );
    }
    if faults.is_empty() {
        out.push_str("<tr><td colspan=5>no faults</td></tr>");
    }
    out.push_str("</table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_shrunk_schedule_stands_beside_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let esc = |s: &str| s.replace('<', "&lt;");
        assert_eq!(section(dir.path(), esc), "");
        let fault = |name: &str, start: u64| json!({"name": name, "targets": ["n1"], "params": null, "start_ms": start, "end_ms": start + 10_000});
        let schedule = json!({"seed": 9, "clock": {"time_limit_s": 60},
            "faults": [fault("kill", 5_000), fault("pause", 20_000)]});
        std::fs::write(dir.path().join("schedule.json"), schedule.to_string()).unwrap();
        let shrunk = json!({"shrunk_faults": 1, "original_faults": 2, "targets": ["ordering:lost"],
            "confirm_failures": 4, "confirm_runs": 5, "one_minimal": true, "finished": true,
            "schedule": {"clock": {"time_limit_s": 25}, "faults": [fault("pause", 20_000)]},
            "config": {"reset": {"nodes": [5, 3]}, "needed": {"tick_ms": [500, 100]},
                "skipped": {"cut_when_idle": {"drawn": false, "default": true, "why": "because"}},
                "untried": {"election_tick": [4, 10]}},
            "replay_command": "cargo run -p harness -- replay x/shrunk.json"});
        std::fs::write(dir.path().join("shrunk.json"), shrunk.to_string()).unwrap();
        let html = section(dir.path(), esc);
        assert!(html.contains("seed 9, 60 s"), "{html}");
        assert!(
            html.contains(
                "1 of 2 faults, 25 s; reproduces ordering:lost: failed 4 of 5 replays; 1-minimal"
            ),
            "{html}"
        );
        assert!(html.contains("replay x/shrunk.json"));
        assert!(
            html.contains("Node settings put back to their defaults: nodes 5 → 3; kept, the failure needs them: tick_ms 500 (default 100); not tried: cut_when_idle false (because); not tried, out of budget: election_tick 4."),
            "{html}"
        );
        assert_eq!(html.matches("<td>pause</td>").count(), 2);
        assert_eq!(html.matches("<td>kill</td>").count(), 1);
    }
}
