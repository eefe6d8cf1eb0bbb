//! The persist (write + fsync) plots: `fsync.png`, every node's durations
//! over the run, lined up with the other time plots; and
//! `fsync-distribution.png`, each node's distribution. Both carry Fabric's
//! slow-disk threshold.

use super::{err, legend, line_key, root, time_chart, Plane, PlotError, Problem, FONT};
use crate::load::FaultWindow;
use crate::stats::{FsyncSource, NodeFsync};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Smallest duration the fsync plots show, ms (their axes are logarithmic).
const FSYNC_LO: f64 = 0.01;
/// A node with more persists than this is drawn per bucket of
/// [`BUCKET_PX`] pixel columns (the bucket's slowest persist as a dot,
/// its median as a line).
const POINTS_PER_NODE_MAX: usize = 8_000;
const BUCKET_PX: usize = 4;
const THRESHOLD_RED: RGBColor = RGBColor(200, 0, 0);

/// `fsync.png`: each node's persists against the test's time (one series
/// per node), the fault windows shaded, the slow-disk threshold, and each
/// node's restarts as a vertical line in its colour. Its x axis is the
/// latency plots' (`0 ..= end_s`).
pub fn fsync(
    path: &Path,
    nodes: &[NodeFsync],
    windows: &[FaultWindow],
    end_s: f64,
) -> Result<(), PlotError> {
    draw_over_time(path, nodes, windows, end_s).map_err(err(path))
}

/// `fsync-distribution.png`: each node's persist durations as a
/// cumulative distribution, with the threshold.
pub fn fsync_distribution(path: &Path, nodes: &[NodeFsync]) -> Result<(), PlotError> {
    draw_distribution(path, nodes).map_err(err(path))
}

fn threshold(nodes: &[NodeFsync]) -> f64 {
    nodes.iter().map(|n| n.threshold_ms).fold(0.0, f64::max)
}

/// Top of the y (or x) axis: twice the slowest persist or the threshold.
fn duration_hi(nodes: &[NodeFsync]) -> f64 {
    nodes
        .iter()
        .map(|n| n.max_ms)
        .fold(threshold(nodes), f64::max)
        .max(1.0)
        * 2.0
}

/// What the figures cover, for the captions.
fn coverage(nodes: &[NodeFsync]) -> &'static str {
    let traced = nodes
        .iter()
        .filter(|n| n.source == FsyncSource::Trace)
        .count();
    match traced {
        0 => "metrics.json: each node's last process",
        t if t == nodes.len() => "Raft traces: every process of every node",
        _ => "Raft traces where they have durations, else metrics.json",
    }
}

fn draw_over_time(
    path: &Path,
    nodes: &[NodeFsync],
    windows: &[FaultWindow],
    end_s: f64,
) -> Result<(), Problem> {
    let root = root(path)?;
    let hi = duration_hi(nodes);
    let end = end_s.max(1.0);
    let caption = format!("Persist (write + fsync) durations ({})", coverage(nodes));
    let mut chart = time_chart(
        &root,
        &caption,
        (end, (FSYNC_LO..hi).log_scale()),
        "duration (ms, log scale)",
        (windows, (FSYNC_LO, hi)),
    )?;
    let buckets = (chart.plotting_area().dim_in_pixel().0 as usize / BUCKET_PX).max(1);
    for (i, n) in nodes.iter().enumerate() {
        let c = super::node_color(i);
        draw_series(&mut chart, n, c, (end, buckets))?;
        chart.draw_series(
            n.restarts_s
                .iter()
                .filter(|t| **t >= 0.0 && **t <= end)
                .map(|t| {
                    PathElement::new(vec![(*t, FSYNC_LO), (*t, hi)], c.mix(0.7).stroke_width(1))
                }),
        )?;
    }
    if nodes.iter().any(|n| !n.restarts_s.is_empty()) {
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), u32>>())?
            .label("vertical line: a restart, in the node's colour")
            .legend(|(x, y)| PathElement::new(vec![(x + 9, y - 6), (x + 9, y + 6)], BLACK));
    }
    let limit = threshold(nodes);
    if limit > 0.0 {
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, limit), (end, limit)],
                THRESHOLD_RED.stroke_width(2),
            ))?
            .label(format!("slow-disk threshold {limit:.0} ms"))
            .legend(line_key(THRESHOLD_RED));
    }
    if nodes.iter().any(|n| n.available) && nodes.iter().all(|n| n.samples.is_empty()) {
        root.draw(&Text::new(
            "no per-persist samples: the nodes expose counts only",
            (120, 80),
            (FONT, 14),
        ))?;
    }
    legend(&mut chart, 12, Some(SeriesLabelPosition::LowerRight))?;
    Ok(root.present()?)
}

/// One node's persists: every one when few, else per bucket of pixel
/// columns the slowest (dots) and the median (line), so that a slow fsync
/// is never thinned away.
fn draw_series<Y: Ranged<ValueType = f64>>(
    chart: &mut super::Chart<'_, '_, Y>,
    n: &NodeFsync,
    c: RGBColor,
    (end, columns): (f64, usize),
) -> Result<(), Problem> {
    let shown = n
        .samples
        .iter()
        .filter(|s| s.0 >= 0.0 && s.0 <= end)
        .map(|s| (s.0, s.1.max(FSYNC_LO)));
    if n.samples.len() <= POINTS_PER_NODE_MAX {
        chart
            .draw_series(shown.map(|p| Circle::new(p, 2, c.filled())))?
            .label(n.node.clone())
            .legend(move |(x, y)| Circle::new((x + 9, y), 4, c.filled()));
        return Ok(());
    }
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); columns];
    for (t, ms) in shown {
        per[((t / end * columns as f64) as usize).min(columns - 1)].push(ms);
    }
    let x = |i: usize| (i as f64 + 0.5) * end / columns as f64;
    // The median line breaks where a bucket is empty (the node was down).
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    let mut slowest = Vec::new();
    for (i, v) in per.iter_mut().enumerate() {
        if v.is_empty() {
            if !runs.last().is_some_and(Vec::is_empty) {
                runs.push(Vec::new());
            }
            continue;
        }
        let mid = v.len() / 2;
        let (_, median, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
        let median = *median;
        runs.last_mut().expect("one run").push((x(i), median));
        slowest.push((x(i), v.iter().copied().fold(0.0, f64::max)));
    }
    for run in runs {
        chart.draw_series(LineSeries::new(run, c.stroke_width(1)))?;
    }
    chart
        .draw_series(slowest.into_iter().map(|p| Circle::new(p, 2, c.filled())))?
        .label(format!(
            "{} (line: median per {BUCKET_PX} px, dots: slowest)",
            n.node
        ))
        .legend(move |(x, y)| Circle::new((x + 9, y), 4, c.filled()));
    Ok(())
}

fn draw_distribution(path: &Path, nodes: &[NodeFsync]) -> Result<(), Problem> {
    let root = root(path)?;
    let root = root.titled(&distribution_title(nodes), (FONT, 20))?;
    let hi = duration_hi(nodes);
    let mut cdf = distribution_chart(
        &root,
        &format!("Distribution ({})", coverage(nodes)),
        (FSYNC_LO..hi).log_scale(),
        0.0..1.0,
        ("duration (ms, log scale)", "fraction of persists ≤ x"),
    )?;
    for (i, n) in nodes.iter().enumerate() {
        draw_node_cdf(&mut cdf, n, super::node_color(i))?;
    }
    let limit = threshold(nodes);
    if limit > 0.0 {
        cdf.draw_series(LineSeries::new(
            vec![(limit, 0.0), (limit, 1.0)],
            THRESHOLD_RED.stroke_width(2),
        ))?
        .label(format!("threshold {limit:.0} ms"))
        .legend(line_key(THRESHOLD_RED));
    }
    if nodes.iter().all(|n| !n.available) {
        root.draw(&Text::new(
            "no node answered at the end of the run and no trace has persist durations",
            (80, 80),
            (FONT, 18),
        ))?;
    }
    legend(&mut cdf, 12, Some(SeriesLabelPosition::LowerRight))?;
    Ok(root.present()?)
}

/// The distribution's title: each node's persists over the threshold and
/// the slow-disk warnings in its log.
fn distribution_title(nodes: &[NodeFsync]) -> String {
    let over: Vec<String> = nodes
        .iter()
        .map(|n| {
            let warned = n
                .slow_disk_warnings
                .map_or(String::new(), |w| format!(" ({w} warned)"));
            if n.available {
                format!("{} {}{warned}", n.node, n.over_threshold)
            } else {
                format!("{} unreachable", n.node)
            }
        })
        .collect();
    format!(
        "Persist (write + fsync) durations — over threshold: {}",
        over.join(", ")
    )
}

/// The distribution chart: caption, axes and mesh.
fn distribution_chart<'a, 'b, X, Y>(
    area: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    caption: &str,
    x: X,
    y: Y,
    (x_desc, y_desc): (&str, &str),
) -> Result<Plane<'a, 'b, X::CoordDescType, Y::CoordDescType>, Problem>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .caption(caption, (FONT, 16))
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT, 12))
        .draw()?;
    Ok(chart)
}

/// A node's persist distribution: from its histogram when it has one, else
/// a step curve through its Prometheus bucket bounds.
fn draw_node_cdf<'a, 'b: 'a, X, Y>(
    cdf: &mut Plane<'a, 'b, X, Y>,
    n: &NodeFsync,
    c: RGBColor,
) -> Result<(), Problem>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let lo = FSYNC_LO;
    let source = match n.source {
        FsyncSource::Trace => "trace",
        FsyncSource::Metrics => "metrics.json",
    };
    if let Some(h) = &n.histogram {
        let pts: Vec<(f64, f64)> = h
            .iter_recorded()
            .map(|v| {
                (
                    (v.value_iterated_to() as f64 / 1e3).max(lo),
                    v.percentile() / 100.0,
                )
            })
            .collect();
        cdf.draw_series(LineSeries::new(pts, c.stroke_width(2)))?
            .label(format!("{} ({} persists, {source})", n.node, n.count))
            .legend(line_key(c));
    } else if !n.buckets.is_empty() && n.count > 0 {
        // Bucket counts only bound each persist from above: a step CDF.
        let mut pts = Vec::new();
        let mut below = 0.0;
        for &(bound, cumulative) in &n.buckets {
            let fraction = cumulative as f64 / n.count as f64;
            pts.push((bound.max(lo), below));
            pts.push((bound.max(lo), fraction));
            below = fraction;
        }
        cdf.draw_series(LineSeries::new(pts, c.stroke_width(2)))?
            .label(format!("{} (bucket bounds, {source})", n.node))
            .legend(line_key(c));
    }
    Ok(())
}
