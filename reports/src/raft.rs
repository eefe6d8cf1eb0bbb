//! The report's Raft section, from the `raft` checker's `raft.json`: each
//! anomaly with a small timeline and a table of the trace events it names,
//! and the coverage table (which Raft situations the run reached).

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// The `raft` checker's artifact in a run directory.
pub const RAFT_JSON: &str = "raft.json";
/// Anomalies drawn in full on the page; the rest are counted.
pub const ANOMALIES_DRAWN_MAX: usize = 20;

/// Timeline size, px.
const TIMELINE_WIDTH: f64 = 640.0;
const LANE_HEIGHT: f64 = 26.0;
const TIMELINE_MARGIN: f64 = 60.0;

/// The coverage a `raft.json` holds, by situation; `None` without one.
pub fn coverage(raft: &Value) -> Option<BTreeMap<String, u64>> {
    raft["coverage"]
        .as_array()?
        .iter()
        .map(|row| Some((row["name"].as_str()?.to_string(), row["count"].as_u64()?)))
        .collect()
}

/// Reads `raft.json` of a run, `None` when absent or unreadable.
pub fn load(run_dir: &Path) -> Option<Value> {
    crate::load::json(&run_dir.join(RAFT_JSON))
}

/// The section: anomalies, then coverage. `results` says why there is no
/// `raft.json` (skipped system, unknown verdict); `started_unix_ms` puts
/// event times on the test's clock.
pub fn section(
    raft: Option<&Value>,
    results: Option<&Value>,
    started_unix_ms: Option<f64>,
) -> String {
    let Some(raft) = raft else {
        let note = results
            .and_then(|r| r["results"].as_array())
            .into_iter()
            .flatten()
            .find(|r| r["checker"] == "raft")
            .and_then(|r| r["note"].as_str())
            .unwrap_or("no Raft trace was checked for this run");
        return format!("<p><em>{}</em></p>", crate::html::esc(note));
    };
    let mut out = String::new();
    let truncated: Vec<&str> = raft["truncated"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let _ = write!(
        out,
        "<p>{} events from nodes {} replayed against the model's rules.",
        raft["events_read"],
        crate::html::esc(&raft["nodes"].to_string())
    );
    if !truncated.is_empty() {
        let _ = write!(
            out,
            " Read up to their last whole event (a node killed mid-write): {}.",
            crate::html::esc(&truncated.join(", "))
        );
    }
    out.push_str("</p>");
    out.push_str(&notes(raft));
    out.push_str(&anomalies(raft, started_unix_ms));
    out.push_str(&coverage_table(raft));
    out
}

fn anomalies(raft: &Value, started_unix_ms: Option<f64>) -> String {
    let list = raft["anomalies"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "<p>No Raft rule was broken.</p>".into();
    }
    let start = started_unix_ms.unwrap_or_else(|| {
        let first = list
            .iter()
            .flat_map(|a| a["events"].as_array().cloned().unwrap_or_default());
        first
            .filter_map(|e| e["time_ms"].as_f64())
            .fold(f64::MAX, f64::min)
    });
    let mut out = String::new();
    for anomaly in list.iter().take(ANOMALIES_DRAWN_MAX) {
        let events = anomaly["events"].as_array().cloned().unwrap_or_default();
        let _ = write!(
            out,
            "<h3 style=\"color:#c81e1e\">{}</h3><p>{}</p>{}{}{}",
            crate::html::esc(anomaly["rule"].as_str().unwrap_or("?")),
            crate::html::esc(anomaly["message"].as_str().unwrap_or("")),
            // An oracle's figures: the index, nodes and digests of a state
            // divergence; the indices of an apply gap; the send and the
            // persist it ran ahead of.
            crate::detail::table(&anomaly["detail"], crate::html::esc),
            timeline(&events, start),
            events_table(&events, start)
        );
    }
    let not_drawn = list.len().saturating_sub(ANOMALIES_DRAWN_MAX) as u64
        + raft["anomalies_not_listed"].as_u64().unwrap_or(0);
    if not_drawn > 0 {
        let _ = write!(
            out,
            "<p>… and {not_drawn} more (see <a href=\"{RAFT_JSON}\">{RAFT_JSON}</a>).</p>"
        );
    }
    out
}

/// The checks the oracles skipped for lack of data (traces of older
/// nodes), as `raft.json`'s `notes` say.
fn notes(raft: &Value) -> String {
    let notes: Vec<String> = raft["notes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|n| format!("<li>{}</li>", crate::html::esc(n)))
        .collect();
    if notes.is_empty() {
        return String::new();
    }
    format!("<p>Not checked:</p><ul>{}</ul>", notes.join(""))
}

/// An inline SVG: one lane per node, a dot per event at its time.
fn timeline(events: &[Value], start_ms: f64) -> String {
    let mut nodes: Vec<u64> = events.iter().filter_map(|e| e["node"].as_u64()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let times: Vec<f64> = events
        .iter()
        .filter_map(|e| e["time_ms"].as_f64())
        .collect();
    let (lo, hi) = times
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), t| (lo.min(*t), hi.max(*t)));
    let span = (hi - lo).max(1.0);
    let height = LANE_HEIGHT * (nodes.len() as f64 + 1.0);
    let x = |t: f64| TIMELINE_MARGIN + (t - lo) / span * (TIMELINE_WIDTH - 2.0 * TIMELINE_MARGIN);
    let mut svg = format!("<svg width=\"{TIMELINE_WIDTH}\" height=\"{height}\" font-size=\"11\" font-family=\"sans-serif\">");
    for (i, node) in nodes.iter().enumerate() {
        let y = LANE_HEIGHT * (i as f64 + 0.8);
        let _ = write!(svg, "<text x=\"4\" y=\"{}\">node {node}</text><line x1=\"{TIMELINE_MARGIN}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ccc\"/>", y + 4.0, TIMELINE_WIDTH - 10.0);
    }
    for e in events {
        let (Some(node), Some(t)) = (e["node"].as_u64(), e["time_ms"].as_f64()) else {
            continue;
        };
        let lane = nodes.iter().position(|n| *n == node).unwrap_or(0);
        let y = LANE_HEIGHT * (lane as f64 + 0.8);
        let label = format!("{} #{}", e["ev"].as_str().unwrap_or("?"), e["seq"]);
        let _ = write!(svg, "<circle cx=\"{0:.1}\" cy=\"{y}\" r=\"5\" fill=\"#c81e1e\"/><text x=\"{0:.1}\" y=\"{1}\" text-anchor=\"middle\">{2}</text>", x(t), y - 8.0, crate::html::esc(&label));
    }
    let _ = write!(
        svg,
        "<text x=\"{TIMELINE_MARGIN}\" y=\"{0}\">{1:.3} s</text><text x=\"{2}\" y=\"{0}\" text-anchor=\"end\">{3:.3} s</text></svg>",
        height - 4.0,
        (lo - start_ms) / 1e3,
        TIMELINE_WIDTH - TIMELINE_MARGIN,
        (hi - start_ms) / 1e3
    );
    svg
}

/// The events in time order with their trace fields.
fn events_table(events: &[Value], start_ms: f64) -> String {
    let mut sorted = events.to_vec();
    sorted.sort_by(|a, b| {
        let t = |e: &Value| e["time_ms"].as_f64().unwrap_or(0.0);
        t(a).total_cmp(&t(b))
    });
    let mut out = String::from(
        "<table><tr><th>t s</th><th>node</th><th>seq</th><th>event</th><th>fields</th></tr>",
    );
    for e in &sorted {
        let fields: Vec<String> = e["line"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !["node", "seq", "time_ms", "ev"].contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let t = (e["time_ms"].as_f64().unwrap_or(0.0) - start_ms) / 1e3;
        let _ = write!(
            out,
            "<tr><td>{t:.3}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            e["node"],
            e["seq"],
            crate::html::esc(e["ev"].as_str().unwrap_or("?")),
            crate::html::esc(&fields.join(" "))
        );
    }
    out + "</table>"
}

fn coverage_table(raft: &Value) -> String {
    let mut out = String::from("<h3>Coverage: Raft situations reached</h3><table><tr><th>situation</th><th>count</th><th>meaning</th></tr>");
    for row in raft["coverage"].as_array().into_iter().flatten() {
        let count = row["count"].as_u64().unwrap_or(0);
        let style = if count == 0 {
            " style=\"color:#999\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr{style}><td>{}</td><td>{count}</td><td>{}</td></tr>",
            crate::html::esc(row["name"].as_str().unwrap_or("?")),
            crate::html::esc(row["meaning"].as_str().unwrap_or(""))
        );
    }
    out + "</table>"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raft_json() -> Value {
        json!({
            "events_read": 12, "nodes": [1, 2], "truncated": ["nodes/n2/trace.jsonl"],
            "anomalies_not_listed": 0,
            "anomalies": [{"rule": "Vote Kept", "message": "node 2 went from term 3 vote Some(2) to term 0 vote None",
                "events": [
                    {"node": 2, "seq": 7, "time_ms": 1_500, "ev": "persist", "line": {"node": 2, "seq": 7, "term": 3, "vote": 2}},
                    {"node": 2, "seq": 9, "time_ms": 4_250, "ev": "start", "line": {"node": 2, "seq": 9, "term": 0, "vote": 0}}]}],
            "coverage": [{"name": "votes_won", "count": 3, "meaning": "a node became leader"},
                         {"name": "compactions", "count": 0, "meaning": "a node compacted its log"}],
        })
    }

    #[test]
    fn the_section_shows_each_anomaly_its_events_and_the_coverage() {
        let page = section(Some(&raft_json()), None, Some(1_000.0));
        assert!(page.contains("Vote Kept") && page.contains("to term 0 vote None"));
        assert!(page.contains("<svg") && page.contains("persist #7") && page.contains("start #9"));
        assert!(
            page.contains("<td>0.500</td>") && page.contains("<td>3.250</td>"),
            "{page}"
        );
        assert!(page.contains("term=3 vote=2"));
        assert!(page.contains("nodes/n2/trace.jsonl"));
        assert!(page.contains("<td>votes_won</td><td>3</td>"));
        assert_eq!(
            coverage(&raft_json()).unwrap(),
            BTreeMap::from([("votes_won".into(), 3), ("compactions".into(), 0)])
        );
    }

    #[test]
    fn an_oracle_s_detail_and_the_notes_are_shown() {
        let mut raft = raft_json();
        raft["notes"] =
            json!(["state digests not compared: the traces hold no digest event (older nodes)"]);
        raft["anomalies"][0]["rule"] = json!("state-divergence");
        raft["anomalies"][0]["detail"] = json!({"index": 64, "agreeing": [3],
            "digests": [{"node": 1, "seq": 7, "height": 9, "registers": "00aa"},
                        {"node": 2, "seq": 9, "height": 9, "registers": "00bb"}]});
        let page = section(Some(&raft), None, Some(1_000.0));
        assert!(page.contains("no digest event (older nodes)"), "{page}");
        assert!(
            page.contains("<th>index</th><td><code>64</code></td>"),
            "{page}"
        );
        assert!(page.contains("<th>registers</th>") && page.contains("<td><code>00bb</code></td>"));
    }

    #[test]
    fn without_raft_json_the_section_says_why() {
        let results =
            json!({"results": [{"checker": "raft", "note": "skipped: etcd writes no Raft trace"}]});
        assert!(section(None, Some(&results), None).contains("skipped: etcd"));
        assert!(section(None, None, None).contains("no Raft trace"));
    }
}
