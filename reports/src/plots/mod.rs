//! The PNG plots, drawn with plotters' bitmap backend and the font shipped
//! in `assets/` (no system fonts needed). Points are thinned for drawing
//! only; every figure in a table comes from all the data. Every plot
//! against the test's time is drawn by `time_chart` with the same width,
//! margins and x range, so that their time axes line up on the page.

mod fsync;
mod timeline;

pub use fsync::{fsync, fsync_distribution};
pub use timeline::{timeline, TimelineInput};

use crate::load::{FaultWindow, Loaded, Outcome};
use crate::stats::Buckets;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// Pixel size of every plot.
pub const SIZE: (u32, u32) = (1200, 600);
/// Points drawn per outcome at most on the raw latency plot.
const POINTS_PER_OUTCOME_MAX: usize = 30_000;
const FONT: &str = "sans-serif";

/// A plot that could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing {file}: {problem}")]
pub struct PlotError {
    /// The file.
    pub file: String,
    /// What went wrong.
    pub problem: String,
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/DejaVuSans.ttf");
        plotters::style::register_font(FONT, FontStyle::Normal, bytes)
            .map_err(|_| ())
            .expect("the shipped font is valid");
    });
}

/// What went wrong while drawing, before the file is known.
#[derive(Debug)]
struct Problem(String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for Problem {
    fn from(e: DrawingAreaErrorKind<E>) -> Problem {
        Problem(e.to_string())
    }
}

fn err(file: &Path) -> impl Fn(Problem) -> PlotError + '_ {
    move |problem| PlotError {
        file: file.display().to_string(),
        problem: problem.0,
    }
}

fn color(outcome: Outcome) -> RGBColor {
    match outcome {
        Outcome::Ok => RGBColor(30, 140, 60),
        Outcome::Fail => RGBColor(220, 120, 0),
        Outcome::Info => RGBColor(200, 30, 30),
    }
}

const FAULT_SHADE: RGBColor = RGBColor(120, 120, 200);

/// Node colours (Tableau's ten, distinct on white), in node order.
const NODE_COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of the `i`-th node.
fn node_color(i: usize) -> RGBColor {
    NODE_COLORS[i % NODE_COLORS.len()]
}

/// A two-dimensional chart; `'a` borrows the drawing area, `'b` the file
/// path.
type Plane<'a, 'b, X, Y> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<X, Y>>;

/// A chart whose x axis is the test's time; `'a` borrows the drawing area,
/// `'b` the file path.
type Chart<'a, 'b, Y> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>;

fn shade_faults<Y: Ranged<ValueType = f64>>(
    chart: &mut Chart<'_, '_, Y>,
    windows: &[FaultWindow],
    y: (f64, f64),
) -> Result<(), Problem> {
    chart.draw_series(windows.iter().map(|w| {
        Rectangle::new(
            [(w.start_s, y.0), (w.end_s, y.1)],
            FAULT_SHADE.mix(0.15).filled(),
        )
    }))?;
    let style = (FONT, 13).into_font().color(&RGBColor(60, 60, 140));
    // A label that would run into the one before it is left out (a long
    // run's windows are close): the shading still shows the window.
    let mut free_from_px = i32::MIN;
    let mut labels = Vec::new();
    for w in windows {
        let text = if w.label.is_empty() {
            format!("{} {}", w.fault, w.targets.join(","))
        } else {
            format!("{} ({})", w.fault, w.label)
        };
        let (x, _) = chart.backend_coord(&(w.start_s, y.1));
        if x < free_from_px {
            continue;
        }
        let (width, _) = chart.plotting_area().estimate_text_size(&text, &style)?;
        free_from_px = x + width as i32 + 6;
        labels.push(Text::new(text, (w.start_s, y.1), style.clone()));
    }
    chart.draw_series(labels)?;
    Ok(())
}

/// The layout of every chart against the test's time: caption, margins
/// and label areas, the same for all so that their x axes line up.
fn time_builder<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    caption: &str,
) -> ChartBuilder<'a, 'b, BitMapBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(caption, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    builder
}

/// A chart against the test's time with the house style: caption, axes,
/// mesh, and the fault windows shaded over `shade` (the y range).
fn time_chart<'a, 'b, Y>(
    root: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    caption: &str,
    (end, y): (f64, Y),
    y_desc: &str,
    (windows, shade): (&[FaultWindow], (f64, f64)),
) -> Result<Chart<'a, 'b, Y::CoordDescType>, Problem>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = time_builder(root, caption).build_cartesian_2d(0.0..end, y)?;
    chart
        .configure_mesh()
        .x_desc("time since the test began (s)")
        .y_desc(y_desc)
        .label_style((FONT, 13))
        .draw()?;
    shade_faults(&mut chart, windows, shade)?;
    Ok(chart)
}

/// Draws a chart's legend box, at `position` (plotters' default place when
/// `None`).
fn legend<'a, 'b: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, CT>,
    font_size: u32,
    position: Option<SeriesLabelPosition>,
) -> Result<(), Problem> {
    let mut labels = chart.configure_series_labels();
    labels
        .label_font((FONT, font_size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK);
    if let Some(p) = position {
        labels.position(p);
    }
    labels.draw()?;
    Ok(())
}

/// A labelled line in `style`, keyed in the legend by colour `c`; with
/// `marked`, a triangle on each point too (to tell a second kind apart).
fn draw_line<Y: Ranged<ValueType = f64>>(
    chart: &mut Chart<'_, '_, Y>,
    pts: Vec<(f64, f64)>,
    (style, c): (ShapeStyle, RGBColor),
    label: String,
    marked: bool,
) -> Result<(), Problem> {
    chart
        .draw_series(LineSeries::new(pts.clone(), style))?
        .label(label)
        .legend(line_key(c));
    if marked {
        chart.draw_series(
            pts.into_iter()
                .map(|p| TriangleMarker::new(p, 3, c.filled())),
        )?;
    }
    Ok(())
}

/// A legend key: a short line in the series' colour.
fn line_key<C: Color + Copy>(c: C) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
}

fn root(path: &Path) -> Result<DrawingArea<BitMapBackend<'_>, Shift>, Problem> {
    root_sized(path, SIZE)
}

fn root_sized(
    path: &Path,
    size: (u32, u32),
) -> Result<DrawingArea<BitMapBackend<'_>, Shift>, Problem> {
    register_font();
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    Ok(root)
}

fn latency_range(loaded: &Loaded) -> (f64, f64) {
    let max = loaded.ops.iter().map(|o| o.latency_ms).fold(1.0, f64::max);
    (0.05, max * 2.0)
}

/// `latency-raw.png`: every op's latency against time.
pub fn latency_raw(path: &Path, loaded: &Loaded) -> Result<(), PlotError> {
    draw_latency_raw(path, loaded).map_err(err(path))
}

fn draw_latency_raw(path: &Path, loaded: &Loaded) -> Result<(), Problem> {
    let root = root(path)?;
    let (lo, hi) = latency_range(loaded);
    let end = loaded.end_s.max(1.0);
    let mut chart = time_chart(
        &root,
        "Latency of every operation (shaded: faults)",
        (end, (lo..hi).log_scale()),
        "latency (ms, log scale)",
        (&loaded.windows, (lo, hi)),
    )?;
    let kinds: Vec<&str> = {
        let mut k: Vec<&str> = loaded.ops.iter().map(|o| o.f.as_str()).collect();
        k.sort_unstable();
        k.dedup();
        k
    };
    for outcome in [Outcome::Ok, Outcome::Fail, Outcome::Info] {
        for (ki, kind) in kinds.iter().enumerate() {
            let pts: Vec<(f64, f64)> = loaded
                .ops
                .iter()
                .filter(|o| o.outcome == outcome && o.f == *kind)
                .map(|o| (o.invoke_s, o.latency_ms.max(lo)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            let stride = pts
                .len()
                .div_ceil(POINTS_PER_OUTCOME_MAX / kinds.len().max(1))
                .max(1);
            let c = color(outcome);
            let label = format!("{kind} {}", outcome.name());
            let series = pts.into_iter().step_by(stride);
            let drawn = if ki == 0 {
                chart.draw_series(series.map(|p| Circle::new(p, 2, c.filled())))?
            } else {
                chart.draw_series(series.map(|p| TriangleMarker::new(p, 3, c.filled())))?
            };
            if ki == 0 {
                drawn
                    .label(label)
                    .legend(move |(x, y)| Circle::new((x, y), 4, c.filled()));
            } else {
                drawn
                    .label(label)
                    .legend(move |(x, y)| TriangleMarker::new((x, y), 4, c.filled()));
            }
        }
    }
    legend(&mut chart, 13, Some(SeriesLabelPosition::UpperRight))?;
    Ok(root.present()?)
}

const QUANTILE_COLORS: [(f64, &str, RGBColor); 4] = [
    (0.5, "p50", RGBColor(40, 90, 200)),
    (0.95, "p95", RGBColor(30, 150, 80)),
    (0.99, "p99", RGBColor(230, 130, 0)),
    (1.0, "max", RGBColor(200, 30, 30)),
];

/// `latency-quantiles.png`: p50 / p95 / p99 / max per time bucket per kind.
pub fn latency_quantiles(path: &Path, loaded: &Loaded, buckets: &Buckets) -> Result<(), PlotError> {
    draw_quantiles(path, loaded, buckets).map_err(err(path))
}

fn draw_quantiles(path: &Path, loaded: &Loaded, buckets: &Buckets) -> Result<(), Problem> {
    let root = root(path)?;
    let (lo, hi) = latency_range(loaded);
    let end = loaded.end_s.max(1.0);
    let caption = format!(
        "Latency quantiles of ok operations per {:.0} s window",
        buckets.width_s
    );
    let mut chart = time_chart(
        &root,
        &caption,
        (end, (lo..hi).log_scale()),
        "latency (ms, log scale)",
        (&loaded.windows, (lo, hi)),
    )?;
    let kinds: std::collections::BTreeSet<&String> =
        buckets.cells.iter().flat_map(|c| c.keys()).collect();
    for (ki, kind) in kinds.iter().enumerate() {
        for (q, name, c) in QUANTILE_COLORS {
            let pts: Vec<(f64, f64)> = buckets
                .cells
                .iter()
                .enumerate()
                .filter_map(|(i, cell)| {
                    cell.get(*kind)
                        .filter(|(_, h)| !h.is_empty())
                        .map(|(_, h)| {
                            (
                                (i as f64 + 0.5) * buckets.width_s,
                                (h.value_at_quantile(q) as f64 / 1e3).max(lo),
                            )
                        })
                })
                .collect();
            let style = ShapeStyle::from(&c).stroke_width(if ki == 0 { 2 } else { 1 });
            let label = format!("{kind} {name}");
            draw_line(&mut chart, pts, (style, c), label, ki > 0)?;
        }
    }
    legend(&mut chart, 13, None)?;
    Ok(root.present()?)
}

/// `rate.png`: throughput per window by kind and outcome.
pub fn rate(path: &Path, loaded: &Loaded, buckets: &Buckets) -> Result<(), PlotError> {
    draw_rate(path, loaded, buckets).map_err(err(path))
}

fn draw_rate(path: &Path, loaded: &Loaded, buckets: &Buckets) -> Result<(), Problem> {
    let root = root(path)?;
    let end = loaded.end_s.max(1.0);
    let max = buckets
        .cells
        .iter()
        .flat_map(|c| c.values())
        .flat_map(|(n, _)| n.iter())
        .copied()
        .max()
        .unwrap_or(1) as f64
        / buckets.width_s;
    let caption = format!(
        "Throughput per {:.0} s window, by operation and outcome",
        buckets.width_s
    );
    let mut chart = time_chart(
        &root,
        &caption,
        (end, 0.0..max * 1.15 + 1.0),
        "operations per second",
        (&loaded.windows, (0.0, max * 1.15 + 1.0)),
    )?;
    let kinds: std::collections::BTreeSet<&String> =
        buckets.cells.iter().flat_map(|c| c.keys()).collect();
    for (ki, kind) in kinds.iter().enumerate() {
        for (slot, outcome) in [Outcome::Ok, Outcome::Fail, Outcome::Info]
            .into_iter()
            .enumerate()
        {
            let pts: Vec<(f64, f64)> = buckets
                .cells
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    (
                        (i as f64 + 0.5) * buckets.width_s,
                        cell.get(*kind).map_or(0, |(n, _)| n[slot]) as f64 / buckets.width_s,
                    )
                })
                .collect();
            if pts.iter().all(|p| p.1 == 0.0) {
                continue;
            }
            let c = color(outcome);
            let label = format!("{kind} {}", outcome.name());
            draw_line(&mut chart, pts, (c.stroke_width(2), c), label, ki > 0)?;
        }
    }
    legend(&mut chart, 13, None)?;
    Ok(root.present()?)
}
