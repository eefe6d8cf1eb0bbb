//! A self-contained HTML page with an SVG timeline of a failing key: one
//! lane per process, each op a bar from invoke to completion (open-ended for
//! `info`), the linearized prefix numbered in green, the ops that cannot
//! follow it in red.

use super::KeyReport;
use crate::history::{EventType, Op};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Prefix ops drawn before the failure point.
const PREFIX_SHOWN_MAX: usize = 40;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn label(op: &Op) -> String {
    match op.outcome {
        EventType::Ok if op.f == "read" || op.f == "get" => format!("{} → {}", op.f, op.output),
        EventType::Ok => format!("{} {}", op.f, op.input),
        _ => format!(
            "{} {} ({})",
            op.f,
            op.input,
            format!("{:?}", op.outcome).to_lowercase()
        ),
    }
}

/// Renders the page.
pub fn render(k: &KeyReport, ops: &[Op]) -> String {
    let shown_prefix: Vec<usize> = k
        .prefix
        .iter()
        .rev()
        .take(PREFIX_SHOWN_MAX)
        .rev()
        .copied()
        .collect();
    let order: BTreeMap<usize, usize> = k
        .prefix
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i + 1))
        .collect();
    let stuck: BTreeSet<usize> = k.stuck.iter().copied().collect();
    let ids: BTreeSet<usize> = shown_prefix.iter().chain(k.stuck.iter()).copied().collect();
    let processes: BTreeSet<u64> = ids.iter().map(|i| ops[*i].process).collect();
    let lane: BTreeMap<u64, usize> = processes.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    let t0 = ids.iter().map(|i| ops[*i].invoke_index).min().unwrap_or(0);
    let t1 = ids
        .iter()
        .map(|i| ops[*i].complete_index.unwrap_or(ops[*i].invoke_index + 1))
        .max()
        .unwrap_or(1)
        .max(t0 + 1);
    let (width, lane_h, left) = (1100.0, 46.0, 90.0);
    let x = |t: u64| left + (t - t0) as f64 / (t1 - t0) as f64 * (width - left - 20.0);
    let height = lane_h * processes.len() as f64 + 50.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    for (p, i) in &lane {
        let y = 20.0 + *i as f64 * lane_h;
        let _ = write!(
            svg,
            r##"<text x="4" y="{}" fill="#333">process {p}</text><line x1="{left}" x2="{width}" y1="{}" y2="{}" stroke="#eee"/>"##,
            y + 20.0,
            y + 34.0,
            y + 34.0
        );
    }
    for id in &ids {
        let op = &ops[*id];
        let y = 20.0 + lane[&op.process] as f64 * lane_h + 6.0;
        let (x0, x1) = (
            x(op.invoke_index),
            op.complete_index
                .filter(|_| op.complete_time.is_some())
                .map_or(width - 10.0, x),
        );
        let (fill, stroke) = if stuck.contains(id) {
            ("#f8d0d0", "#c00")
        } else {
            ("#d4f0d4", "#2a2")
        };
        let dash = if op.complete_time.is_none() {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let number = order.get(id).map(|n| format!("#{n} ")).unwrap_or_default();
        let _ = write!(
            svg,
            r#"<rect x="{x0:.1}" y="{y}" width="{:.1}" height="22" rx="3" fill="{fill}" stroke="{stroke}"{dash}><title>{}</title></rect><text x="{:.1}" y="{}">{}</text>"#,
            (x1 - x0).max(3.0),
            esc(&format!(
                "{number}{} [event {}..{:?}]",
                label(op),
                op.invoke_index,
                op.complete_index
            )),
            x0 + 3.0,
            y + 15.0,
            esc(&format!("{number}{}", label(op)))
        );
    }
    svg.push_str("</svg>");
    let key = k
        .key
        .as_ref()
        .map_or("(single object)".to_string(), |v| v.to_string());
    let mut rows = String::new();
    for id in &ids {
        let op = &ops[*id];
        let role = if stuck.contains(id) {
            "cannot follow the prefix"
        } else {
            "linearized"
        };
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td></tr>",
            order.get(id).map(|n| n.to_string()).unwrap_or_default(),
            op.process,
            esc(&label(op)),
            op.invoke_index,
            op.complete_index,
            role
        );
    }
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Linearizability violation: key {k}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}}</style></head>
<body><h1>Not linearizable: key {k}</h1>
<p>{why}</p>
<p>The longest linearizable prefix found has {n} operations (the last {shown} are drawn, numbered in linearization order, in green).
The operations in red could not be linearized after it: each was tried as the next one and none fits the model.
Bars span invoke to completion on the history's event order; a dashed bar is an <code>info</code> operation, which may take effect any time after its invoke.</p>
{svg}
<h2>Operations</h2><table><tr><th>#</th><th>process</th><th>operation</th><th>invoke event</th><th>completion event</th><th>role</th></tr>{rows}</table>
</body></html>
"#,
        k = esc(&key),
        why = esc(k
            .witness
            .as_deref()
            .unwrap_or("Found by exhaustive search (Wing and Gong, with memoisation).")),
        n = k.prefix.len(),
        shown = shown_prefix.len(),
    )
}
