//! A self-contained HTML page with an SVG timeline of a failing key: one
//! lane per process, each op a bar from invoke to completion (open-ended for
//! `info`), the linearized prefix numbered in green, the ops that cannot
//! follow it in red.

use super::{key_text, KeyReport, LinearizabilityReport};
use crate::history::{EventType, Op};
use crate::verdict::Validity;
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

impl LinearizabilityReport {
    /// An HTML page for every failing key, in key order, rendered as the
    /// iterator is advanced: file name (`linearizability-<key>.html`, the
    /// key with characters other than ASCII letters, digits, `-` and `_`
    /// as `_`) and contents.
    pub fn every_picture(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.keys
            .iter()
            .filter(|k| k.valid == Validity::Invalid)
            .map(|k| (file_name(k), render(k, &self.ops)))
    }
}

fn file_name(k: &KeyReport) -> String {
    let safe: String = key_text(&k.key)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("linearizability-{safe}.html")
}

/// What is drawn and where: the ops shown, their lanes and time span.
struct Layout<'a> {
    ops: &'a [Op],
    /// Ops drawn: the prefix's tail and the stuck ops.
    ids: BTreeSet<usize>,
    /// Position of each op in the linearized prefix, from 1.
    order: BTreeMap<usize, usize>,
    stuck: BTreeSet<usize>,
    lane: BTreeMap<u64, usize>,
    /// First and last event position drawn.
    t0: u64,
    t1: u64,
}

const WIDTH: f64 = 1100.0;
const LANE_HEIGHT: f64 = 46.0;
const LEFT: f64 = 90.0;

impl<'a> Layout<'a> {
    fn new(k: &KeyReport, ops: &'a [Op], shown_prefix: &[usize]) -> Layout<'a> {
        let ids: BTreeSet<usize> = shown_prefix.iter().chain(k.stuck.iter()).copied().collect();
        let processes: BTreeSet<u64> = ids.iter().map(|i| ops[*i].process).collect();
        let t0 = ids.iter().map(|i| ops[*i].invoke_index).min().unwrap_or(0);
        let t1 = ids
            .iter()
            .map(|i| ops[*i].complete_index.unwrap_or(ops[*i].invoke_index + 1))
            .max()
            .unwrap_or(1)
            .max(t0 + 1);
        Layout {
            ops,
            order: k
                .prefix
                .iter()
                .enumerate()
                .map(|(i, id)| (*id, i + 1))
                .collect(),
            stuck: k.stuck.iter().copied().collect(),
            lane: processes.iter().enumerate().map(|(i, p)| (*p, i)).collect(),
            ids,
            t0,
            t1,
        }
    }

    fn x(&self, t: u64) -> f64 {
        LEFT + (t - self.t0) as f64 / (self.t1 - self.t0) as f64 * (WIDTH - LEFT - 20.0)
    }

    fn number(&self, id: usize) -> String {
        self.order
            .get(&id)
            .map(|n| format!("#{n} "))
            .unwrap_or_default()
    }

    /// The timeline: a lane per process, a bar per op.
    fn svg(&self) -> String {
        let height = LANE_HEIGHT * self.lane.len() as f64 + 50.0;
        let mut svg = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="11">"#
        );
        for (p, i) in &self.lane {
            let y = 20.0 + *i as f64 * LANE_HEIGHT;
            let _ = write!(
                svg,
                r##"<text x="4" y="{}" fill="#333">process {p}</text><line x1="{LEFT}" x2="{WIDTH}" y1="{}" y2="{}" stroke="#eee"/>"##,
                y + 20.0,
                y + 34.0,
                y + 34.0
            );
        }
        for id in &self.ids {
            self.bar(&mut svg, *id);
        }
        svg.push_str("</svg>");
        svg
    }

    fn bar(&self, svg: &mut String, id: usize) {
        let op = &self.ops[id];
        let y = 20.0 + self.lane[&op.process] as f64 * LANE_HEIGHT + 6.0;
        let x0 = self.x(op.invoke_index);
        let x1 = op
            .complete_index
            .filter(|_| op.complete_time.is_some())
            .map_or(WIDTH - 10.0, |t| self.x(t));
        let (fill, stroke) = if self.stuck.contains(&id) {
            ("#f8d0d0", "#c00")
        } else {
            ("#d4f0d4", "#2a2")
        };
        let dash = if op.complete_time.is_none() {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let number = self.number(id);
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

    /// The table of the ops drawn.
    fn rows(&self) -> String {
        let mut rows = String::new();
        for id in &self.ids {
            let op = &self.ops[*id];
            let role = if self.stuck.contains(id) {
                "cannot follow the prefix"
            } else {
                "linearized"
            };
            let _ = write!(
                rows,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td></tr>",
                self.order
                    .get(id)
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
                op.process,
                esc(&label(op)),
                op.invoke_index,
                op.complete_index,
                role
            );
        }
        rows
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
    let layout = Layout::new(k, ops, &shown_prefix);
    let key = k
        .key
        .as_ref()
        .map_or("(single object)".to_string(), |v| v.to_string());
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
        svg = layout.svg(),
        rows = layout.rows(),
    )
}
