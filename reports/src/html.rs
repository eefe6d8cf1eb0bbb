//! `index.html`: one self-contained page per run (images by relative name,
//! no network, no external CSS or JS).

use crate::stats::FsyncSource;
use crate::Summary;
use serde_json::Value;
use std::fmt::Write as _;

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn verdict_word(v: &Value) -> (&'static str, &'static str) {
    match v {
        Value::Bool(true) => ("valid", "#1e8c3c"),
        Value::Bool(false) => ("INVALID", "#c81e1e"),
        Value::String(s) if s == "unknown" => ("unknown", "#777"),
        _ => ("not judged", "#777"),
    }
}

/// One anomaly example: its JSON, except a crashed node's (the `crashed`
/// checker), shown as node, time, status and faults in force, with the
/// last lines of its log (the panic message) as they were written.
fn example(e: &Value) -> String {
    let Some(tail) = e["log_tail"].as_array() else {
        return explained(e);
    };
    let faults: Vec<String> = e["faults_in_force"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| format!("{} {}", f["fault"].as_str().unwrap_or("?"), f["targets"]))
        .collect();
    let lines: Vec<&str> = tail.iter().filter_map(Value::as_str).collect();
    format!(
        "<li>{} at {:.1} s: {} (faults in force: {})<pre>{}</pre></li>",
        esc(e["node"].as_str().unwrap_or("?")),
        e["time_s"].as_f64().unwrap_or(0.0),
        esc(e["status"].as_str().unwrap_or("?")),
        esc(&if faults.is_empty() {
            "none".to_string()
        } else {
            faults.join(", ")
        }),
        esc(&lines.join("\n"))
    )
}

/// An example that says `why`: the sentence, then its other fields as a
/// table (the states of a `replica-divergence`, a `halted-member`'s
/// samples); any other example as its JSON.
fn explained(e: &Value) -> String {
    let (Some(why), Some(fields)) = (e["why"].as_str(), e.as_object()) else {
        return format!("<li><code>{}</code></li>", esc(&e.to_string()));
    };
    let mut rest = fields.clone();
    rest.remove("why");
    format!(
        "<li>{}{}</li>",
        esc(why),
        crate::detail::table(&Value::Object(rest), esc)
    )
}

fn checkers(results: Option<&Value>) -> String {
    let Some(results) = results else {
        return "<p>No <code>results.json</code>: this run was not judged (run <code>harness check DIR</code>).</p>".into();
    };
    let mut out = String::from("<table><tr><th>checker</th><th>verdict</th><th>check ms</th><th>counts</th><th>anomalies</th><th>pictures</th></tr>");
    for r in results["results"].as_array().into_iter().flatten() {
        let (word, colour) = verdict_word(&r["valid"]);
        let counts: Vec<String> = r["counts"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let mut anomalies = String::new();
        for a in r["anomalies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["count"].as_u64().unwrap_or(0) > 0)
        {
            let examples: Vec<String> = a["examples"]
                .as_array()
                .into_iter()
                .flatten()
                .map(example)
                .collect();
            let _ = write!(
                anomalies,
                "<details><summary>{} ×{}</summary><ul>{}</ul></details>",
                esc(a["kind"].as_str().unwrap_or("?")),
                a["count"],
                examples.join("")
            );
        }
        if anomalies.is_empty() {
            anomalies = "none".into();
        }
        let pictures: Vec<String> = r["artifacts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|a| format!("<a href=\"{0}\">{0}</a>", esc(a)))
            .collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td style=\"color:{colour};font-weight:bold\">{word}</td><td>{:.1}</td><td>{}</td><td>{anomalies}</td><td>{}</td></tr>",
            esc(r["checker"].as_str().unwrap_or("?")),
            r["check_ms"].as_f64().unwrap_or(0.0),
            esc(&counts.join(", ")),
            pictures.join("<br>")
        );
        if let Some(note) = r["note"].as_str() {
            let _ = write!(out, "<tr><td colspan=6><em>{}</em></td></tr>", esc(note));
        }
    }
    out + "</table>"
}

fn opt(v: Option<f64>) -> String {
    v.map_or("—".into(), |x| format!("{x:.2}"))
}

/// The test's parameters, from test.json.
fn params_table(test: Option<&Value>) -> String {
    let mut params = String::from("<table>");
    for (k, v) in test.and_then(Value::as_object).into_iter().flatten() {
        let _ = write!(
            params,
            "<tr><th>{}</th><td><code>{}</code></td></tr>",
            esc(k),
            esc(&v.to_string())
        );
    }
    if test.is_none() {
        params.push_str("<tr><td>no test.json</td></tr>");
    }
    params.push_str("</table>");
    params
}

/// Each crash point's hits and crashes over the run's nodes (none for a
/// system without crash points).
fn crash_points_table(s: &Summary) -> String {
    let Some(points) = &s.crash_points else {
        return String::new();
    };
    let mut out =
        String::from("<table><tr><th>crash point</th><th>reached</th><th>crashed a node</th></tr>");
    for (name, c) in points {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(name),
            c.reached,
            c.crashed
        );
    }
    out + "</table>"
}

/// Where a node's persist figures come from, for its row.
fn fsync_source(n: &crate::NodeFsync) -> String {
    let processes = n.processes.map_or(String::new(), |p| {
        format!(", {p} process{}", if p == 1 { "" } else { "es" })
    });
    match n.source {
        FsyncSource::Trace => format!("trace: every persist{processes}"),
        FsyncSource::Metrics => match n.persist_events {
            Some(events) => format!(
                "metrics.json: last process only (the trace's {events} persist events have no duration_us){processes}"
            ),
            None => "metrics.json: last process only (no trace)".into(),
        },
    }
}

/// Each node's persist durations and leader changes.
fn fsync_table(s: &Summary) -> String {
    let mut fsync = String::from("<table><tr><th>node</th><th>source</th><th>persists</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th><th>threshold ms</th><th>over threshold</th><th>leader changes (last process)</th><th>slow-disk warnings (log)</th><th>log</th></tr>");
    for n in &s.fsync {
        if n.available {
            let _ = write!(fsync, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"nodes/{0}/node.log\">node.log</a></td></tr>", esc(&n.node), esc(&fsync_source(n)), n.count, n.p50_ms, n.p99_ms, n.max_ms, n.threshold_ms, n.over_threshold, n.leader_changes.map_or("—".into(), |c| c.to_string()), n.slow_disk_warnings.map_or("—".into(), |c| c.to_string()));
        } else {
            let _ = write!(fsync, "<tr><td>{0}</td><td colspan=9>the node did not answer at the end of the run and its trace has no persist durations</td><td><a href=\"nodes/{0}/node.log\">node.log</a></td></tr>", esc(&n.node));
        }
    }
    fsync.push_str("</table><p>A trace holds every persist of every process of its node (each restart appends to it); <code>metrics.json</code> holds what the node's last process answered at the end of the run, so its figures leave out every process a kill, power loss or disk fault ended.</p>");
    fsync
}

/// What the page says of where its node figures come from.
pub struct Notes<'a> {
    /// How node events were placed on the run's time axis.
    pub epoch: Option<&'static str>,
    /// Traces that could not be read.
    pub traces: &'a [String],
    /// Whether any node has a trace (else the timeline's roles come from
    /// the sampled status).
    pub roles_from_traces: bool,
}

/// The timeline section: the picture and where its lanes come from.
fn timeline(notes: &Notes<'_>) -> String {
    let roles = if notes.roles_from_traces {
        "Roles from each node's Raft trace (<code>role</code>, <code>start</code> and <code>conf</code> events); a node without a trace from its status sampled every 250 ms (<code>status.jsonl</code>)."
    } else {
        "Roles from each node's status sampled every 250 ms (<code>status.jsonl</code>): no node has a trace."
    };
    let mut out = format!(
        "<img src=\"timeline.png\" alt=\"timeline of roles, faults and failed ops\"><p>{roles} Down: from a kill, power loss, torn write or disk error to the process's next start (without a trace: to the fault's end, or while its status went unanswered). Removed and learner: from the node's own configuration changes and the <code>member</code> nemesis. Failed and timed-out ops on the lane of the node they were sent to. Same time axis as the plots below."
    );
    if let Some(e) = notes.epoch {
        let _ = write!(out, " Time: {}.", esc(e));
    }
    out.push_str("</p>");
    for t in notes.traces {
        let _ = write!(out, "<p><em>{}</em></p>", esc(t));
    }
    out
}

/// The configuration over time: each `member` / `transfer` change with
/// the configuration before and after it (nothing without changes).
fn configurations(s: &Summary) -> String {
    if s.configurations.is_empty() {
        return String::new();
    }
    format!(
        "<h3>Configuration over time</h3>{}<p>Voters, then learners as <code>(+n4)</code>; a removed node halts and is read at the end, its chain a prefix of the members'.</p>{}",
        crate::members::timeline(&s.configurations, s.duration_s, esc),
        crate::members::table(&s.configurations, esc)
    )
}

/// Renders the page.
pub fn page(
    s: &Summary,
    test: Option<&Value>,
    results: Option<&Value>,
    nodes: &[String],
    raft: &str,
    schedule: &str,
    notes: &Notes<'_>,
) -> String {
    let (word, colour) = verdict_word(&s.valid);
    let params = params_table(test);
    let mut latency = String::from("<table><tr><th>operation</th><th>count</th><th>ok</th><th>fail</th><th>info</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr>");
    for k in &s.kinds {
        let q = &k.latency_ms;
        let _ = write!(latency, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>", esc(&k.f), k.count, k.ok, k.fail, k.info, q.p50, q.p90, q.p99, q.p999, q.max);
    }
    latency.push_str("</table>");
    let mut faults = String::from("<table><tr><th>fault</th><th>kind</th><th>targets</th><th>start s</th><th>end s</th><th>start → first failed op, s</th><th>heal → first ok op, s</th><th>leader changes</th><th>heal → node at the leader's height, s</th></tr>");
    for f in &s.faults {
        let _ = write!(faults, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", esc(&f.fault), esc(&f.label), esc(&f.targets.join(", ")), f.start_s, f.end_s, opt(f.first_failure_after_s), opt(f.first_ok_after_heal_s), f.leader_changes.map_or("—".into(), |c| c.to_string()), esc(&crate::status::catch_up_cell(&f.catch_up)));
    }
    if s.faults.is_empty() {
        faults.push_str("<tr><td colspan=9>no faults were injected</td></tr>");
    }
    faults.push_str("</table>");
    let fsync =
        fsync_table(s) + &crate::status::snapshots_table(&s.snapshots) + &crash_points_table(s);
    let logs: Vec<String> = nodes
        .iter()
        .map(|n| format!("<a href=\"nodes/{0}/node.log\">{0}</a>", esc(n)))
        .collect();
    let name = test
        .and_then(|t| t["name"].as_str())
        .unwrap_or("ordeal run");
    let seed = test
        .map(|t| t["seed"].to_string())
        .unwrap_or_else(|| "?".into());
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>{name} — {word}</title>
<style>body{{font-family:sans-serif;margin:1.5em 2em;color:#222}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left;vertical-align:top}}img{{max-width:100%;border:1px solid #ddd;margin:.5em 0}}.verdict{{font-size:28px;font-weight:bold;color:{colour}}}code{{font-size:12px}}</style></head>
<body><h1>{name}</h1><p class="verdict">{word}</p>
<p>seed {seed} · {ops} operations in {dur:.1} s ({rate:.0} ops/s) · <a href="history.jsonl">history.jsonl</a> · <a href="results.json">results.json</a> · <a href="test.json">test.json</a> · <a href="summary.json">summary.json</a>{skipped}</p>
<h2>Verdicts</h2>{checkers}
<h2>Raft</h2>{raft}
<h2>Timeline</h2>{timeline}
<h2>Latency</h2><img src="latency-raw.png" alt="latency of every operation"><img src="latency-quantiles.png" alt="latency quantiles per window">{latency}
<h2>Throughput</h2><img src="rate.png" alt="throughput per window">
<h2>Faults and recovery</h2>{faults}{schedule}{configurations}
<h2>Load during faults</h2>{load}
<h2>Disk: persist (write + fsync) durations, snapshots</h2><img src="fsync.png" alt="persist durations over time"><img src="fsync-distribution.png" alt="persist duration distribution">{fsync}
<h2>Test</h2>{params}<p>Node logs: {logs}</p>
<script>
window.addEventListener('load', function () {{
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) {{ return !(i.complete && i.naturalWidth > 0); }});
  document.body.setAttribute('data-images', imgs.length > 0 && broken.length === 0 ? 'ok' : 'broken:' + broken.map(function (i) {{ return i.getAttribute('src'); }}).join(','));
}});
</script></body></html>
"#,
        name = esc(name),
        seed = esc(&seed),
        ops = s.ops,
        dur = s.duration_s,
        rate = s.ops_per_s,
        skipped = if s.skipped_lines > 0 {
            format!(" · {} history lines could not be used", s.skipped_lines)
        } else {
            String::new()
        },
        checkers = checkers(results),
        timeline = timeline(notes),
        configurations = configurations(s),
        load = crate::fault_rate::html_table(&s.fault_rates, esc),
        logs = logs.join(" · "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_crashed_node_shows_its_status_faults_and_panic_message() {
        let results = json!({"valid": false, "results": [{"checker": "crashed", "valid": false,
            "check_ms": 0.3, "counts": {"exits": 1}, "artifacts": [],
            "anomalies": [{"kind": "crashed", "count": 1, "examples": [
                {"node": "n1", "time_s": 20.56, "status": "exit status 1",
                 "faults_in_force": [{"fault": "lag", "targets": ["n2"], "start_s": 20.0}],
                 "log_tail": ["thread 'raft' panicked at node/src/server.rs:980:13:", "generation <1> reused"]}]}]}]});
        let table = checkers(Some(&results));
        assert!(
            table.contains("n1 at 20.6 s: exit status 1 (faults in force: lag [\"n2\"])")
                || table.contains(
                    "n1 at 20.6 s: exit status 1 (faults in force: lag [&quot;n2&quot;])"
                ),
            "{table}"
        );
        assert!(table.contains("<pre>thread &#39;raft&#39; panicked at node/src/server.rs:980:13:\ngeneration &lt;1&gt; reused</pre>")
            || table.contains("panicked at node/src/server.rs:980:13:\ngeneration &lt;1&gt; reused</pre>"), "{table}");
    }
}
