//! Reports: one page per run. From a run directory (`docs/store.md`) it
//! draws `latency-raw.png`, `latency-quantiles.png`, `rate.png` and
//! `fsync.png`, and writes `index.html` and `summary.json`.
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

pub mod disk;
pub mod fault_rate;
mod html;
pub mod load;
pub mod members;
pub mod plots;
pub mod raft;
pub mod stats;
pub mod status;
pub mod synthetic;

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
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|source| ReportError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// Renders the report of one run directory.
pub fn render(run_dir: &Path) -> Result<Summary, ReportError> {
    let history = run_dir.join("history.jsonl");
    let loaded = load::history(&history).map_err(|source| ReportError::History {
        path: history.display().to_string(),
        source,
    })?;
    let test = load::json(&run_dir.join("test.json"));
    let results = load::json(&run_dir.join("results.json"));
    let metrics = load::node_metrics(run_dir);
    let raft = raft::load(run_dir);
    let started_ms = test.as_ref().and_then(|t| t["started_unix_ms"].as_f64());
    let mut fsync = stats::fsync(&metrics, started_ms);
    for n in &mut fsync {
        n.slow_disk_warnings = disk::warnings(run_dir, &n.node);
    }
    let samples = status::read(&run_dir.join("status.jsonl"));
    let recovery_s = test.as_ref().and_then(|t| t["recovery_s"].as_f64());
    let buckets = stats::buckets(&loaded.ops, loaded.end_s);
    plots::latency_raw(&run_dir.join("latency-raw.png"), &loaded)?;
    plots::latency_quantiles(&run_dir.join("latency-quantiles.png"), &loaded, &buckets)?;
    plots::rate(&run_dir.join("rate.png"), &loaded, &buckets)?;
    let slow = disk::slow_windows(&loaded.windows);
    plots::fsync(&run_dir.join("fsync.png"), &fsync, &slow)?;
    let mut summary = Summary {
        valid: results.as_ref().map_or(Value::Null, |r| r["valid"].clone()),
        ops: loaded.ops.len() as u64,
        duration_s: loaded.end_s,
        ops_per_s: loaded.ops.len() as f64 / loaded.end_s.max(1e-9),
        kinds: stats::kinds(&loaded.ops),
        faults: stats::faults(&loaded),
        fsync,
        snapshots: status::snapshots(&samples, &metrics),
        fault_rates: fault_rate::fault_rates(&loaded),
        configurations: loaded.changes.clone(),
        skipped_lines: loaded.skipped_lines,
        raft_coverage: raft.as_ref().and_then(raft::coverage),
    };
    stats::recovery(&mut summary.faults, &loaded, &samples, recovery_s);
    let raft_section = raft::section(raft.as_ref(), results.as_ref(), started_ms);
    let nodes: Vec<String> = metrics.iter().map(|(n, _)| n.clone()).collect();
    write(
        &run_dir.join("index.html"),
        &html::page(
            &summary,
            test.as_ref(),
            results.as_ref(),
            &nodes,
            &raft_section,
        ),
    )?;
    let json = serde_json::to_string_pretty(&summary).expect("the summary encodes");
    write(&run_dir.join("summary.json"), &(json + "\n"))?;
    Ok(summary)
}
