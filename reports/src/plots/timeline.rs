//! `timeline.png`: one lane per node (its state over the run, its restarts,
//! and the ops sent to it that failed or timed out), one row per fault
//! kind with its windows, against the test's time with the same width,
//! margins and x range as the latency plots, so that it lines up with them
//! on the page. Drawn per pixel column (the state that covers most of the
//! column, the ops completed in it), so that a 30-minute run is as legible
//! as a 60-second one.

use super::{err, root_sized, time_builder, PlotError, Problem, FAULT_SHADE, FONT, SIZE};
use crate::load::FaultWindow;
use crate::timeline::{columns, counts, Lane, State};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// What the timeline shows.
pub struct TimelineInput<'a> {
    /// Node lanes, then any lane of ops with no node.
    pub lanes: &'a [Lane],
    /// Fault windows (a row per fault kind).
    pub windows: &'a [FaultWindow],
    /// The x axis's end, s: the latency plots'.
    pub end_s: f64,
}

/// Heights, px (one y unit is about one pixel).
const BAR_H: f64 = 18.0;
const STRIP_H: f64 = 12.0;
const LANE_H: f64 = BAR_H + STRIP_H + 6.0;
const FAULT_ROW_H: f64 = 18.0;
/// Caption, margins, x labels and the legend strip, px.
const CHROME_H: u32 = 140;
const LEGEND_H: u32 = 30;
const FAIL_COLOR: RGBColor = RGBColor(220, 120, 0);
const INFO_COLOR: RGBColor = RGBColor(200, 30, 30);

fn state_color(s: State) -> RGBColor {
    match s {
        State::Leader => RGBColor(27, 120, 55),
        State::Follower => RGBColor(170, 210, 180),
        State::Candidate => RGBColor(240, 175, 40),
        State::Learner => RGBColor(150, 195, 235),
        State::Paused => RGBColor(150, 110, 190),
        State::Down => RGBColor(50, 50, 50),
        State::Removed => RGBColor(205, 205, 205),
    }
}

/// The fault kinds in order of their first window.
fn fault_rows(windows: &[FaultWindow]) -> Vec<&str> {
    let mut rows: Vec<&str> = Vec::new();
    for w in windows {
        if !rows.contains(&w.fault.as_str()) {
            rows.push(&w.fault);
        }
    }
    rows
}

/// Draws `timeline.png`.
pub fn timeline(path: &Path, input: &TimelineInput<'_>) -> Result<(), PlotError> {
    draw(path, input).map_err(err(path))
}

type Area<'b> = DrawingArea<BitMapBackend<'b>, Shift>;
type Lanes<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn draw(path: &Path, input: &TimelineInput<'_>) -> Result<(), Problem> {
    let rows = fault_rows(input.windows);
    let total = rows.len() as f64 * FAULT_ROW_H + input.lanes.len() as f64 * LANE_H + 4.0;
    let height = total as u32 + CHROME_H;
    let root = root_sized(path, (SIZE.0, height))?;
    let (upper, strip) = root.split_vertically(height - LEGEND_H);
    let end = input.end_s.max(1.0);
    let mut chart = time_builder(
        &upper,
        "Timeline: each node's role, the faults, ops that failed or timed out",
    )
    .build_cartesian_2d(0.0..end, 0.0..total)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("time since the test began (s)")
        .label_style((FONT, 13))
        .draw()?;
    chart.draw_series(input.windows.iter().map(|w| {
        Rectangle::new(
            [(w.start_s, 0.0), (w.end_s, total)],
            FAULT_SHADE.mix(0.10).filled(),
        )
    }))?;
    let n = chart.plotting_area().dim_in_pixel().0.max(1) as usize;
    let mut top = total - 2.0;
    for fault in &rows {
        draw_fault_row(&mut chart, &upper, input.windows, fault, top)?;
        top -= FAULT_ROW_H;
    }
    for lane in input.lanes {
        draw_lane(&mut chart, &upper, lane, top, (end, n))?;
        top -= LANE_H;
    }
    draw_legend(&strip)?;
    Ok(root.present()?)
}

/// Lines of a label left of the plot, from the top of the row whose top
/// is `top`: (text, font size, offset down in px).
fn label(
    chart: &Lanes<'_, '_>,
    area: &Area<'_>,
    lines: &[(&str, u32, i32)],
    top: f64,
) -> Result<(), Problem> {
    let (_, y) = chart.backend_coord(&(0.0, top));
    for (text, size, down) in lines {
        area.draw(&Text::new(text.to_string(), (8, y + down), (FONT, *size)))?;
    }
    Ok(())
}

fn draw_fault_row(
    chart: &mut Lanes<'_, '_>,
    area: &Area<'_>,
    windows: &[FaultWindow],
    fault: &str,
    top: f64,
) -> Result<(), Problem> {
    let bottom = top - FAULT_ROW_H + 3.0;
    let mine = || windows.iter().filter(|w| w.fault == fault);
    chart.draw_series(mine().map(|w| {
        Rectangle::new(
            [(w.start_s, top), (w.end_s.max(w.start_s), bottom)],
            FAULT_SHADE.mix(0.55).filled(),
        )
    }))?;
    let px_per_s = chart.plotting_area().dim_in_pixel().0 as f64 / chart.x_range().end;
    chart.draw_series(
        mine()
            .filter(|w| (w.end_s - w.start_s) * px_per_s > 7.0 * w.targets.join(",").len() as f64)
            .map(|w| {
                Text::new(
                    w.targets.join(","),
                    (w.start_s, top),
                    (FONT, 11).into_font().color(&RGBColor(30, 30, 90)),
                )
            }),
    )?;
    label(chart, area, &[(fault, 12, 2)], top)
}

/// One node's lane: its state per pixel column, its starts, and a strip
/// of failed (upper half) and timed-out (lower half) ops per column,
/// darker where there are more.
fn draw_lane(
    chart: &mut Lanes<'_, '_>,
    area: &Area<'_>,
    lane: &Lane,
    top: f64,
    (end, n): (f64, usize),
) -> Result<(), Problem> {
    let bar_bottom = top - BAR_H;
    let x = |i: usize| i as f64 * end / n as f64;
    let states = columns(&lane.segments, (0.0, end), n);
    let mut i = 0;
    while i < n {
        let run = states[i..].iter().take_while(|s| **s == states[i]).count();
        if let Some(s) = states[i] {
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x(i), top), (x(i + run), bar_bottom)],
                state_color(s).filled(),
            )))?;
        }
        i += run;
    }
    chart.draw_series(
        lane.starts_s
            .iter()
            .filter(|t| **t >= 0.0 && **t <= end)
            .map(|t| {
                PathElement::new(
                    vec![(*t, top + 2.0), (*t, bar_bottom)],
                    BLACK.stroke_width(2),
                )
            }),
    )?;
    let strip_top = bar_bottom - 2.0;
    let half = STRIP_H / 2.0;
    for (times, color, upper) in [
        (&lane.fails_s, FAIL_COLOR, true),
        (&lane.infos_s, INFO_COLOR, false),
    ] {
        let per = counts(times.iter().copied(), (0.0, end), n);
        let most = per.iter().copied().max().unwrap_or(0).max(1) as f64;
        let y0 = if upper { strip_top } else { strip_top - half };
        chart.draw_series(
            per.iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| {
                    let alpha = 0.35 + 0.65 * (1.0 + *c as f64).ln() / (1.0 + most).ln();
                    Rectangle::new(
                        [(x(i), y0), (x(i + 1), y0 - half + 1.0)],
                        color.mix(alpha).filled(),
                    )
                }),
        )?;
    }
    let fails = format!("fail {}", lane.fails_s.len());
    let infos = format!("info {}", lane.infos_s.len());
    label(
        chart,
        area,
        &[(&lane.name, 13, 0), (&fails, 9, 15), (&infos, 9, 25)],
        top,
    )
}

/// The key's marks.
enum Key {
    Box(RGBAColor),
    Thin(RGBAColor),
    Line,
}

/// The key: each state's colour, the start mark, the op strips, the
/// fault bars.
fn draw_legend(strip: &Area<'_>) -> Result<(), Problem> {
    let mut keys: Vec<(Key, &str)> = State::ALL
        .iter()
        .map(|s| (Key::Box(state_color(*s).to_rgba()), s.name()))
        .collect();
    keys.push((Key::Line, "process started"));
    keys.push((Key::Thin(FAIL_COLOR.to_rgba()), "op failed"));
    keys.push((Key::Thin(INFO_COLOR.to_rgba()), "op timed out (info)"));
    keys.push((Key::Box(FAULT_SHADE.mix(0.55)), "fault window (targets)"));
    let font: TextStyle<'_> = (FONT, 12).into();
    let (mut x, y) = (82, 8);
    for (key, word) in keys {
        match key {
            Key::Box(c) => strip.draw(&Rectangle::new([(x, y), (x + 14, y + 12)], c.filled()))?,
            Key::Thin(c) => {
                strip.draw(&Rectangle::new([(x, y + 3), (x + 14, y + 9)], c.filled()))?
            }
            Key::Line => strip.draw(&PathElement::new(
                vec![(x + 7, y - 2), (x + 7, y + 14)],
                BLACK.stroke_width(2),
            ))?,
        }
        strip.draw(&Text::new(word, (x + 18, y), font.clone()))?;
        let (w, _) = strip.estimate_text_size(word, &font)?;
        x += 18 + w as i32 + 16;
    }
    Ok(())
}
