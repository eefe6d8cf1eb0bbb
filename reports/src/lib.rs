//! Reports: one page per run. From a run directory (`docs/store.md`) it
//! draws `timeline.png`, `latency-raw.png`, `latency-quantiles.png`,
//! `rate.png`, `fsync.png` and `fsync-distribution.png`, and writes
//! `index.html` and `summary.json`.
//!
//! Every figure comes from all the data (HdrHistogram); points are thinned
//! for drawing only. Inputs are read leniently: a missing `results.json`, an
//! unreachable node or a torn history line is reported on the page, not
//! fatal.
//!
//! ```no_run
//! let summary = reports::render(std::path::Path::new("store/latest")).unwrap();
//! println!("{} ops, {:.0} ops/s", summary.ops, summary.ops_per_s);
//! ```
#![deny(missing_docs)]

pub mod crash_points;
mod detail;
pub mod disk;
pub mod epoch;
pub mod fault_rate;
mod html;
pub mod load;
pub mod members;
pub mod persist;
pub mod plots;
pub mod raft;
pub mod schedule;
pub mod stats;
pub mod status;
pub mod synthetic;
pub mod timeline;
pub mod trace;

use serde::Serialize;
use serde_json::Value;
use std::path::Path;

pub use stats::{FaultStats, KindStats, NodeFsync, Quantiles};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The history could not be read at all.
    #[error("{path}: {source}")]
    History {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] plots::PlotError),
    /// An output file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// The figures of a run (`summary.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The verdict from `results.json` (`null` if not judged).
    pub valid: Value,
    /// Completed client operations.
    pub ops: u64,
    /// From the first to the last event, s.
    pub duration_s: f64,
    /// Completed operations per second.
    pub ops_per_s: f64,
    /// Per operation kind.
    pub kinds: Vec<KindStats>,
    /// Per fault window.
    pub faults: Vec<FaultStats>,
    /// Per node.
    pub fsync: Vec<NodeFsync>,
    /// Per node: snapshots taken and installed, compactions (from
    /// `status.jsonl` and `metrics.json`, summed over restarts).
    pub snapshots: Vec<status::NodeSnapshots>,
    /// `ok` ops/s inside the fault windows against outside them.
    pub fault_rates: fault_rate::FaultRates,
    /// The configuration changes (`member`, `transfer`), in start order.
    pub configurations: Vec<members::ConfigChange>,
    /// History lines that could not be used.
    pub skipped_lines: u64,
    /// The Raft situations the run reached, by name (from the `raft`
    /// checker's `raft.json`; `null` when its traces were not checked).
    pub raft_coverage: Option<std::collections::BTreeMap<String, u64>>,
    /// Each crash point's hits and crashes (`crash_points.rs`; `null`
    /// when no node listed them: etcd).
    pub crash_points: Option<std::collections::BTreeMap<String, crash_points::PointCounts>>,
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|source| ReportError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// The run's node directories and their traces, with notes on traces
/// that could not be read (their nodes fall back to `metrics.json`).
struct Nodes {
    metrics: Vec<(String, Value)>,
    traces: Vec<(String, Option<trace::NodeTrace>)>,
    notes: Vec<String>,
    epoch: Option<epoch::Epoch>,
}

/// Reads every node's `metrics.json` and trace, placing trace events by
/// the run's epoch (or, without one, by the earliest process start).
fn nodes(run_dir: &Path, test: Option<&Value>, samples: &[status::Sample]) -> Nodes {
    let metrics = load::node_metrics(run_dir);
    let epoch = epoch::epoch(test, samples);
    let placing = epoch.unwrap_or(epoch::Epoch {
        unix_ms: 0.0,
        source: epoch::EpochSource::FirstStart,
    });
    let mut notes = Vec::new();
    let mut traces: Vec<(String, Option<trace::NodeTrace>)> = metrics
        .iter()
        .map(|(name, _)| {
            let path = run_dir.join("nodes").join(name).join("trace.jsonl");
            let t = trace::read(&path, &placing).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not read a trace");
                notes.push(format!(
                    "nodes/{name}/trace.jsonl could not be read ({}): its figures come from metrics.json",
                    e.source
                ));
                None
            });
            if let Some(n) = t.as_ref().map(|t| t.placed_by_node_clock).filter(|n| *n > 0) {
                notes.push(format!(
                    "nodes/{name}/trace.jsonl: {n} events have no real_ms (a trace from before it) and are placed by the node's own clock, which a clock fault skews"
                ));
            }
            (name.clone(), t)
        })
        .collect();
    let epoch = epoch.or_else(|| {
        let first = traces
            .iter()
            .filter_map(|(_, t)| t.as_ref()?.starts_s.first().copied())
            .fold(f64::INFINITY, f64::min);
        first.is_finite().then(|| {
            for t in traces.iter_mut().filter_map(|(_, t)| t.as_mut()) {
                t.shift(-first);
            }
            epoch::Epoch {
                unix_ms: first * 1e3,
                source: epoch::EpochSource::FirstStart,
            }
        })
    });
    Nodes {
        metrics,
        traces,
        notes,
        epoch,
    }
}

/// Draws the timeline of the run's nodes.
fn draw_timeline(
    run_dir: &Path,
    n: &Nodes,
    loaded: &load::Loaded,
    samples: &[status::Sample],
    test: Option<&Value>,
) -> Result<(), ReportError> {
    let names: Vec<String> = n.metrics.iter().map(|(name, _)| name.clone()).collect();
    let founders: Vec<String> = test
        .and_then(|t| t["nodes"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let lanes = timeline::lanes(&timeline::RunFacts {
        nodes: &names,
        traces: &n.traces,
        samples,
        loaded,
        founders: &founders,
        concurrency: test.and_then(|t| t["concurrency"].as_u64()),
    });
    plots::timeline(
        &run_dir.join("timeline.png"),
        &plots::TimelineInput {
            lanes: &lanes,
            windows: &loaded.windows,
            end_s: loaded.end_s,
        },
    )?;
    Ok(())
}

/// Draws the latency, rate and persist plots.
fn draw_plots(
    run_dir: &Path,
    loaded: &load::Loaded,
    fsync: &[NodeFsync],
) -> Result<(), ReportError> {
    let buckets = stats::buckets(&loaded.ops, loaded.end_s);
    plots::latency_raw(&run_dir.join("latency-raw.png"), loaded)?;
    plots::latency_quantiles(&run_dir.join("latency-quantiles.png"), loaded, &buckets)?;
    plots::rate(&run_dir.join("rate.png"), loaded, &buckets)?;
    let fsync_png = run_dir.join("fsync.png");
    plots::fsync(&fsync_png, fsync, &loaded.windows, loaded.end_s)?;
    plots::fsync_distribution(&run_dir.join("fsync-distribution.png"), fsync)?;
    Ok(())
}

/// Renders the report of one run directory.
pub fn render(run_dir: &Path) -> Result<Summary, ReportError> {
    let history = run_dir.join("history.jsonl");
    let test = load::json(&run_dir.join("test.json"));
    let results = load::json(&run_dir.join("results.json"));
    let raft = raft::load(run_dir);
    let samples = status::read(&run_dir.join("status.jsonl"));
    // The traces (hundreds of MB in a soak) are read beside the history.
    let (loaded, nodes) = std::thread::scope(|scope| {
        let reading = scope.spawn(|| nodes(run_dir, test.as_ref(), &samples));
        let loaded = load::history(&history);
        let nodes = reading
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (loaded, nodes)
    });
    let loaded = loaded.map_err(|source| ReportError::History {
        path: history.display().to_string(),
        source,
    })?;
    let epoch_ms = nodes.epoch.map(|e| e.unix_ms);
    let threshold_ms = persist::threshold_from_test(test.as_ref());
    let mut fsync = persist::figures(&nodes.metrics, &nodes.traces, epoch_ms, threshold_ms);
    for n in &mut fsync {
        n.slow_disk_warnings = disk::warnings(run_dir, &n.node);
    }
    let recovery_s = test.as_ref().and_then(|t| t["recovery_s"].as_f64());
    draw_timeline(run_dir, &nodes, &loaded, &samples, test.as_ref())?;
    draw_plots(run_dir, &loaded, &fsync)?;
    let mut summary = Summary {
        valid: results.as_ref().map_or(Value::Null, |r| r["valid"].clone()),
        ops: loaded.ops.len() as u64,
        duration_s: loaded.end_s,
        ops_per_s: loaded.ops.len() as f64 / loaded.end_s.max(1e-9),
        kinds: stats::kinds(&loaded.ops),
        faults: stats::faults(&loaded),
        fsync,
        snapshots: status::snapshots(&samples, &nodes.metrics),
        fault_rates: fault_rate::fault_rates(&loaded),
        configurations: loaded.changes.clone(),
        skipped_lines: loaded.skipped_lines,
        raft_coverage: raft.as_ref().and_then(raft::coverage),
        crash_points: crash_points::crash_points(&nodes.metrics, &nodes.traces),
    };
    stats::recovery(&mut summary.faults, &loaded, &samples, recovery_s);
    let raft_section = raft::section(raft.as_ref(), results.as_ref(), epoch_ms);
    let names: Vec<String> = nodes.metrics.iter().map(|(n, _)| n.clone()).collect();
    let notes = html::Notes {
        epoch: nodes.epoch.map(|e| e.note()),
        traces: &nodes.notes,
        roles_from_traces: nodes.traces.iter().any(|(_, t)| t.is_some()),
    };
    write(
        &run_dir.join("index.html"),
        &html::page(
            &summary,
            test.as_ref(),
            results.as_ref(),
            &names,
            &raft_section,
            &schedule::section(run_dir, html::esc),
            &notes,
        ),
    )?;
    let json = serde_json::to_string_pretty(&summary).expect("the summary encodes");
    write(&run_dir.join("summary.json"), &(json + "\n"))?;
    Ok(summary)
}
