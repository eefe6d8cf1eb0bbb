//! The load a cluster carries while a fault is on: `ok` operations per
//! second inside each fault window, against `ok` operations per second
//! outside every window (issue 18).
//!
//! Counted from the history alone. The windows are the nemesis's start and
//! end events; an op counts where it *completed* (an `ok` is work the
//! cluster finished then). The load's span runs from the first client
//! invoke to the last one — the time the workload offered load; the ops
//! still in flight after it only drain, at a falling rate, and the final
//! reads after the workload are left out. A window is counted only over
//! its part inside that span: one the workload's end cut short (the
//! nemesis keeps its fault on until its round ends) counts the seconds it
//! had load, not the seconds after. "Outside" is the span less every
//! window. Within a window, the ops of its *live* nodes are counted apart
//! too: a killed, paused, powered-off (`power`, `torn`) or stopped
//! (`disk-error`, `disk-full`) node is not live, nor is a node whose
//! durable state a fault damaged or replaced (`wipe`, `corrupt` of a
//! stopped node; a `rollback` window is mostly its node running before
//! the rollback, and counts it live), nor is a node on the minority side of a
//! partition's grudge, nor a node a `member` change removes (it halts);
//! every other fault (a clock bump, a slow disk, a leader transfer) leaves
//! every node live. A window that leaves no majority live (a power loss of
//! every node) can carry no load at all, whatever the harness does: the
//! ratio is also given over the windows that leave a majority live
//! (`quorate_ratio`), next to the ratio over every window.

use crate::load::{FaultWindow, Loaded, OpRecord, Outcome};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// One fault window's load.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WindowRate {
    /// The fault.
    pub fault: String,
    /// Grudge kind, clock mode or target choice.
    pub label: String,
    /// Nodes the fault cut off (killed, paused, on a minority side).
    pub cut_off: Vec<String>,
    /// Window start, s.
    pub start_s: f64,
    /// Window end, s.
    pub end_s: f64,
    /// Seconds of the window inside the load's span (less than
    /// `end_s - start_s` when the workload ended first); the rates below
    /// are per these seconds.
    pub load_s: f64,
    /// `ok` ops completed in the window, on any node.
    pub ok: u64,
    /// `ok` ops per second in the window, on any node.
    pub ok_per_s: f64,
    /// `ok` ops completed in the window on the live nodes.
    pub ok_live: u64,
    /// `ok` ops per second in the window on the live nodes.
    pub ok_live_per_s: f64,
    /// `ok_live_per_s` over the `ok` rate outside every window (`null` when
    /// nothing ran outside).
    pub live_vs_outside: Option<f64>,
    /// Whether the fault left a majority of the nodes live.
    pub quorate: bool,
}

/// The run's load inside against outside the fault windows
/// (`summary.json`'s `fault_rates`).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct FaultRates {
    /// Seconds of the load's span outside every window.
    pub outside_s: f64,
    /// `ok` ops completed outside every window.
    pub outside_ok: u64,
    /// `ok` ops per second outside every window.
    pub outside_ok_per_s: f64,
    /// Seconds of the load's span inside some window.
    pub inside_s: f64,
    /// `ok` ops completed inside some window.
    pub inside_ok: u64,
    /// `ok` ops per second inside the windows.
    pub inside_ok_per_s: f64,
    /// `inside_ok_per_s / outside_ok_per_s`: the figure (`null`
    /// without both an inside and an outside).
    pub ratio: Option<f64>,
    /// Seconds of the load's span inside some window that left a majority
    /// of the nodes live.
    pub quorate_s: f64,
    /// `ok` ops completed inside those windows.
    pub quorate_ok: u64,
    /// Their `ok` rate over `outside_ok_per_s` (`null` without both).
    pub quorate_ratio: Option<f64>,
    /// Per window.
    pub windows: Vec<WindowRate>,
}

/// When an op completed, s.
fn done_s(op: &OpRecord) -> f64 {
    op.invoke_s + op.latency_ms / 1e3
}

/// The nodes a fault window cut off (see the module's doc).
pub fn cut_off(w: &FaultWindow) -> Vec<String> {
    match w.fault.as_str() {
        "kill" | "pause" | "power" | "torn" | "disk-error" | "disk-full" | "wipe" => {
            w.targets.clone()
        }
        "corrupt" if w.start["node"] == "stopped" => w.targets.clone(),
        "partition" => minority(&w.start["grudge"]),
        "member" => w.start["remove"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// The nodes of a grudge (node → nodes it drops) that are left with less
/// than a majority of the cluster on their side.
fn minority(grudge: &Value) -> Vec<String> {
    let Some(map) = grudge.as_object() else {
        return Vec::new();
    };
    let drops = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    };
    let mut nodes: BTreeSet<String> = map.keys().cloned().collect();
    for v in map.values() {
        nodes.extend(drops(v));
    }
    let n = nodes.len();
    map.iter()
        .filter(|(_, v)| (n - drops(v).len()) * 2 <= n)
        .map(|(k, _)| k.clone())
        .collect()
}

/// Merged, sorted, clipped to `[lo, hi]`.
fn union(windows: &[FaultWindow], lo: f64, hi: f64) -> Vec<(f64, f64)> {
    let mut spans: Vec<(f64, f64)> = windows
        .iter()
        .map(|w| (w.start_s.max(lo), w.end_s.min(hi)))
        .filter(|(a, b)| b > a)
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut merged: Vec<(f64, f64)> = Vec::new();
    for (a, b) in spans {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

fn per_s(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

fn ratio(a: f64, b: f64, both: bool) -> Option<f64> {
    (both && b > 0.0).then(|| a / b)
}

/// The load inside and outside the fault windows of a loaded history.
pub fn fault_rates(loaded: &Loaded) -> FaultRates {
    let load: Vec<&OpRecord> = loaded.ops.iter().filter(|o| !o.final_read).collect();
    let (Some(lo), Some(hi)) = (
        load.iter().map(|o| o.invoke_s).min_by(f64::total_cmp),
        load.iter().map(|o| o.invoke_s).max_by(f64::total_cmp),
    ) else {
        return FaultRates::default();
    };
    // The span is half-open, as the windows are: an op completed at its
    // end, or later, drained after the workload.
    let oks: Vec<&OpRecord> = load
        .into_iter()
        .filter(|o| o.outcome == Outcome::Ok && (lo..hi).contains(&done_s(o)))
        .collect();
    let nodes: BTreeSet<&str> = loaded
        .ops
        .iter()
        .filter_map(|o| o.node.as_deref())
        .collect();
    let windows: Vec<WindowRate> = loaded
        .windows
        .iter()
        .map(|w| window_rate(w, &oks, (lo, hi), nodes.len()))
        .collect();
    let inside = Spans::of(loaded.windows.iter(), lo, hi, &oks);
    let quorate = Spans::of(
        loaded
            .windows
            .iter()
            .zip(&windows)
            .filter(|(_, r)| r.quorate)
            .map(|(w, _)| w),
        lo,
        hi,
        &oks,
    );
    let outside_s = (hi - lo) - inside.seconds;
    let outside_ok = oks.len() as u64 - inside.ok;
    let outside_ok_per_s = per_s(outside_ok, outside_s);
    let mut windows = windows;
    for w in &mut windows {
        w.live_vs_outside = ratio(w.ok_live_per_s, outside_ok_per_s, w.load_s > 0.0);
    }
    let inside_ok_per_s = per_s(inside.ok, inside.seconds);
    FaultRates {
        outside_s,
        outside_ok,
        outside_ok_per_s,
        inside_s: inside.seconds,
        inside_ok: inside.ok,
        inside_ok_per_s,
        ratio: ratio(inside_ok_per_s, outside_ok_per_s, inside.seconds > 0.0),
        quorate_s: quorate.seconds,
        quorate_ok: quorate.ok,
        quorate_ratio: ratio(
            per_s(quorate.ok, quorate.seconds),
            outside_ok_per_s,
            quorate.seconds > 0.0,
        ),
        windows,
    }
}

/// The merged spans of some windows within the load's span, and the `ok`
/// ops completed inside them.
struct Spans {
    seconds: f64,
    ok: u64,
}

impl Spans {
    fn of<'a>(
        windows: impl Iterator<Item = &'a FaultWindow>,
        lo: f64,
        hi: f64,
        oks: &[&OpRecord],
    ) -> Spans {
        let windows: Vec<FaultWindow> = windows.cloned().collect();
        let spans = union(&windows, lo, hi);
        let is_inside = |t: f64| spans.iter().any(|&(a, b)| t >= a && t < b);
        Spans {
            seconds: spans.iter().map(|(a, b)| b - a).sum(),
            ok: oks.iter().filter(|o| is_inside(done_s(o))).count() as u64,
        }
    }
}

/// One window's rates (`live_vs_outside` is filled in by the caller, which
/// knows the rate outside).
fn window_rate(w: &FaultWindow, oks: &[&OpRecord], (lo, hi): (f64, f64), n: usize) -> WindowRate {
    let cut = cut_off(w);
    let (a, b) = (w.start_s.max(lo), w.end_s.min(hi));
    let seconds = (b - a).max(0.0);
    let within: Vec<&&OpRecord> = oks.iter().filter(|o| (a..b).contains(&done_s(o))).collect();
    let live = within
        .iter()
        .filter(|o| o.node.as_ref().is_none_or(|n| !cut.contains(n)))
        .count() as u64;
    let quorate = n == 0 || n.saturating_sub(cut.len()) * 2 > n;
    WindowRate {
        fault: w.fault.clone(),
        label: w.label.clone(),
        cut_off: cut,
        start_s: w.start_s,
        end_s: w.end_s,
        load_s: seconds,
        ok: within.len() as u64,
        ok_per_s: per_s(within.len() as u64, seconds),
        ok_live: live,
        ok_live_per_s: per_s(live, seconds),
        live_vs_outside: None,
        quorate,
    }
}

/// The report's table: per window, the `ok` rate on the live nodes
/// against the rate outside faults.
pub fn html_table(r: &FaultRates, esc: impl Fn(&str) -> String) -> String {
    use std::fmt::Write as _;
    let ratio = |x: Option<f64>| x.map_or("—".into(), |x| format!("{:.0}%", x * 100.0));
    let mut out = format!(
        "<p>ok ops/s outside faults: {:.1} ({} ok in {:.1} s) · inside faults: {:.1} ({} ok in {:.1} s) · inside / outside: <b>{}</b> · inside the faults that left a majority live / outside: <b>{}</b> ({} ok in {:.1} s)</p>",
        r.outside_ok_per_s, r.outside_ok, r.outside_s, r.inside_ok_per_s, r.inside_ok, r.inside_s, ratio(r.ratio),
        ratio(r.quorate_ratio), r.quorate_ok, r.quorate_s
    );
    out.push_str("<table><tr><th>fault</th><th>kind</th><th>cut off</th><th>start s</th><th>end s</th><th>s with load</th><th>ok/s, all nodes</th><th>ok/s, live nodes</th><th>live / outside</th></tr>");
    for w in &r.windows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td></tr>",
            esc(&w.fault), esc(&w.label), esc(&w.cut_off.join(", ")), w.start_s, w.end_s, w.load_s,
            w.ok_per_s, w.ok_live_per_s, ratio(w.live_vs_outside)
        );
    }
    if r.windows.is_empty() {
        out.push_str("<tr><td colspan=9>no faults were injected</td></tr>");
    }
    out + "</table>"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn history(lines: &[Value]) -> Loaded {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let text: Vec<String> = lines.iter().map(Value::to_string).collect();
        std::fs::write(&path, text.join("\n")).unwrap();
        crate::load::history(&path).unwrap()
    }

    fn op(p: u64, node: &str, t0: f64, t1: f64, outcome: &str) -> [Value; 2] {
        let ns = |t: f64| (t * 1e9) as u64;
        [
            json!({"process": p, "type": "invoke", "f": "submit", "value": "x", "node": node, "time": ns(t0)}),
            json!({"process": p, "type": outcome, "f": "submit", "value": "x", "node": node, "time": ns(t1)}),
        ]
    }

    fn nemesis(f: &str, t: f64, value: Value) -> Value {
        json!({"process": "nemesis", "type": "info", "f": f, "time": (t * 1e9) as u64, "value": value})
    }

    /// A hand-written history: 10 s of load from 0 to 10, a kill of n1
    /// from 2 to 4 and an isolation of n3 from 6 to 8. The figures are
    /// counted by hand below.
    #[test]
    fn rates_inside_and_outside_windows_are_counted_by_completion() {
        let mut lines = Vec::new();
        let mut ops = vec![
            op(0, "n2", 0.0, 0.5, "ok"),    // outside
            op(1, "n2", 0.5, 1.5, "ok"),    // outside
            op(2, "n1", 1.9, 2.1, "ok"),    // inside kill (completed at 2.1), cut off
            op(3, "n2", 1.5, 3.0, "ok"),    // inside kill, live
            op(4, "n1", 2.5, 2.6, "fail"),  // not ok: not counted
            op(5, "n3", 3.9, 4.5, "ok"),    // outside (completed after the heal)
            op(6, "n1", 6.5, 7.0, "ok"),    // inside partition, live
            op(7, "n3", 6.5, 7.5, "ok"),    // inside partition, cut off
            op(8, "n2", 7.0, 7.9, "info"),  // not ok
            op(9, "n2", 8.0, 9.5, "ok"),    // outside (8.0 is the end: outside)
            op(10, "n1", 10.0, 12.0, "ok"), // the last invoke: drained, not counted
        ];
        let grudge = json!({"n3": ["n1", "n2"], "n1": ["n3"], "n2": ["n3"]});
        // Final reads after the load are left out of the span and counts.
        let mut final_read = op(1_000_000, "n1", 20.0, 21.0, "ok");
        final_read[0]["value"] = json!({"from": 0, "final": true});
        final_read[0]["f"] = json!("deliver");
        final_read[1]["f"] = json!("deliver");
        ops.push(final_read);
        let mut events: Vec<Value> = ops.into_iter().flatten().collect();
        events.extend([
            nemesis("kill", 2.0, json!({"phase": "start", "targets": ["n1"]})),
            nemesis("kill", 4.0, json!({"phase": "end", "targets": ["n1"]})),
            nemesis("partition", 6.0, json!({"phase": "start", "targets": ["n1", "n2", "n3"], "grudge": grudge, "grudge_kind": "isolate-one"})),
            nemesis("partition", 8.0, json!({"phase": "end", "targets": ["n1", "n2", "n3"]})),
        ]);
        events.sort_by_key(|e| e["time"].as_u64().unwrap());
        lines.extend(events);
        let r = fault_rates(&history(&lines));
        // Span 0 .. 10 s (first to last invoke); windows 2 .. 4 and 6 .. 8:
        // 4 s inside, 6 s outside.
        assert!((r.inside_s - 4.0).abs() < 1e-6, "{r:?}");
        assert!((r.outside_s - 6.0).abs() < 1e-6, "{r:?}");
        // Outside: ops 0, 1, 5, 9. Inside: 2, 3, 6, 7.
        assert_eq!((r.outside_ok, r.inside_ok), (4, 4));
        assert!((r.outside_ok_per_s - 4.0 / 6.0).abs() < 1e-6);
        assert!((r.inside_ok_per_s - 1.0).abs() < 1e-6);
        assert!((r.ratio.unwrap() - 1.5).abs() < 1e-6);
        let [kill, partition] = &r.windows[..] else {
            panic!("two windows: {r:?}")
        };
        assert_eq!(kill.cut_off, vec!["n1".to_string()]);
        assert_eq!((kill.ok, kill.ok_live), (2, 1));
        assert!((kill.ok_live_per_s - 0.5).abs() < 1e-6);
        assert!((kill.live_vs_outside.unwrap() - 0.75).abs() < 1e-6);
        assert_eq!(partition.cut_off, vec!["n3".to_string()]);
        assert_eq!(partition.label, "isolate-one");
        assert_eq!((partition.ok, partition.ok_live), (2, 1));
    }

    /// A window the workload's end cut short counts only its seconds with
    /// load: the fault from 8 s to 14 s, the last invoke at 10 s, so 2 s
    /// of window, and the ops that completed after 10 s count nowhere.
    #[test]
    fn a_window_cut_short_by_the_workloads_end_counts_only_its_part_with_load() {
        let mut events: Vec<Value> = [
            op(0, "n1", 0.0, 1.0, "ok"),
            op(1, "n1", 2.0, 3.0, "ok"),
            op(2, "n2", 4.0, 5.0, "ok"),
            op(3, "n2", 6.0, 7.0, "ok"),
            op(4, "n2", 8.5, 9.0, "ok"),   // inside, live
            op(5, "n1", 9.0, 9.5, "ok"),   // inside, cut off
            op(6, "n2", 10.0, 10.5, "ok"), // the last invoke: drained
            op(7, "n2", 9.8, 13.0, "ok"),  // completed after the load: drained
        ]
        .into_iter()
        .flatten()
        .collect();
        events.extend([
            nemesis("kill", 8.0, json!({"phase": "start", "targets": ["n1"]})),
            nemesis("kill", 14.0, json!({"phase": "end", "targets": ["n1"]})),
        ]);
        events.sort_by_key(|e| e["time"].as_u64().unwrap());
        let r = fault_rates(&history(&events));
        assert!((r.inside_s - 2.0).abs() < 1e-6, "{r:?}");
        assert!((r.outside_s - 8.0).abs() < 1e-6, "{r:?}");
        assert_eq!((r.outside_ok, r.inside_ok), (4, 2));
        assert!((r.ratio.unwrap() - (2.0 / 2.0) / (4.0 / 8.0)).abs() < 1e-6);
        let [kill] = &r.windows[..] else {
            panic!("one window: {r:?}")
        };
        assert_eq!((kill.start_s, kill.end_s), (8.0, 14.0));
        assert!((kill.load_s - 2.0).abs() < 1e-6, "{kill:?}");
        assert_eq!((kill.ok, kill.ok_live), (2, 1));
        assert!((kill.ok_live_per_s - 0.5).abs() < 1e-6);
    }

    /// A power loss of every node leaves nothing that could serve: it
    /// counts in `ratio`, not in `quorate_ratio`; a power loss of one node
    /// counts in both, its node cut off.
    #[test]
    fn a_fault_that_stops_every_node_is_left_out_of_the_quorate_ratio() {
        let mut events: Vec<Value> = [
            op(0, "n1", 0.0, 1.0, "ok"),
            op(1, "n2", 1.0, 1.9, "ok"),
            op(2, "n3", 2.5, 3.0, "ok"), // inside the one-node power loss, live
            op(3, "n1", 3.0, 3.5, "ok"), // inside it, cut off
            op(4, "n2", 5.0, 6.0, "fail"),
            op(5, "n3", 7.0, 8.0, "ok"),
            op(6, "n1", 9.0, 9.5, "ok"),
            op(7, "n2", 10.0, 10.5, "ok"),
        ]
        .into_iter()
        .flatten()
        .collect();
        let every = json!(["n1", "n2", "n3"]);
        events.extend([
            nemesis(
                "power",
                2.0,
                json!({"phase": "start", "scope": "one node", "targets": ["n1"]}),
            ),
            nemesis("power", 4.0, json!({"phase": "end", "targets": ["n1"]})),
            nemesis(
                "power",
                4.0,
                json!({"phase": "start", "scope": "every node", "targets": every}),
            ),
            nemesis("power", 6.0, json!({"phase": "end", "targets": every})),
        ]);
        events.sort_by_key(|e| e["time"].as_u64().unwrap());
        let r = fault_rates(&history(&events));
        let [one, all] = &r.windows[..] else {
            panic!("two windows: {r:?}")
        };
        assert_eq!(one.cut_off, vec!["n1".to_string()]);
        assert!(one.quorate && !all.quorate, "{r:?}");
        assert_eq!((one.ok, one.ok_live, all.ok), (2, 1, 0));
        // Outside: 0 .. 2 and 6 .. 10, 6 s, ops 0, 1, 5, 6.
        assert_eq!((r.outside_ok, r.inside_ok, r.quorate_ok), (4, 2, 2));
        assert!((r.ratio.unwrap() - (2.0 / 4.0) / (4.0 / 6.0)).abs() < 1e-6);
        assert!((r.quorate_s - 2.0).abs() < 1e-6);
        assert!((r.quorate_ratio.unwrap() - (2.0 / 2.0) / (4.0 / 6.0)).abs() < 1e-6);
    }

    #[test]
    fn halves_cut_off_the_smaller_side_and_clocks_cut_off_nothing() {
        let halves = json!({"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]});
        assert_eq!(minority(&halves), vec!["n1".to_string()]);
        let five = json!({"a": ["c", "d", "e"], "b": ["c", "d", "e"], "c": ["a", "b"], "d": ["a", "b"], "e": ["a", "b"]});
        assert_eq!(minority(&five), vec!["a".to_string(), "b".to_string()]);
        let w = FaultWindow {
            fault: "clock".into(),
            targets: vec!["n1".into()],
            start_s: 0.0,
            end_s: 1.0,
            label: "bump".into(),
            start: json!({"phase": "start", "targets": ["n1"]}),
        };
        assert!(cut_off(&w).is_empty());
        let replace = FaultWindow {
            fault: "member".into(),
            start: json!({"phase": "start", "change": "replace", "targets": ["n2", "n4"], "add": ["n4"], "remove": ["n2"]}),
            ..w.clone()
        };
        assert_eq!(cut_off(&replace), vec!["n2".to_string()]);
        let transfer = FaultWindow {
            fault: "transfer".into(),
            ..w
        };
        assert!(cut_off(&transfer).is_empty());
    }

    #[test]
    fn no_windows_or_no_ops_give_no_ratio() {
        // The span is 0 .. 1 s (first to last invoke); the second op drains.
        let lines: Vec<Value> = [op(0, "n1", 0.0, 0.5, "ok"), op(1, "n1", 1.0, 1.5, "ok")]
            .into_iter()
            .flatten()
            .collect();
        let r = fault_rates(&history(&lines));
        assert_eq!((r.outside_ok, r.inside_ok, r.ratio), (1, 0, None));
        assert_eq!(fault_rates(&Loaded::default()), FaultRates::default());
    }
}
