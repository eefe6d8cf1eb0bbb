//! Judging a stored run: the history through the checker that fits the
//! workload, then `results.json` and the checker's pictures.

use crate::plan::Workload;
use crate::store::write_json;
use anyhow::Context;
use checker::history::History;
use checker::linearizable::{Budget, Model};
use checker::verdict::{CheckResult, Results};
use std::io::BufReader;
use std::path::Path;
use std::time::Duration;

/// The linearizability checker's budget per run.
pub const CHECK_TIME_LIMIT: Duration = Duration::from_secs(120);
/// The linearizability checker's memory cap.
pub const CHECK_MEMORY_BYTES_MAX: u64 = 4 << 30;

/// One checker: reads the history (and, if it needs them, other files of
/// the run directory, where it may also write its pictures).
type Check = fn(&Path, &History) -> anyhow::Result<CheckResult>;

/// The checkers that judge a workload. A new checker is one entry here.
fn checks(workload: Workload) -> &'static [Check] {
    match workload {
        Workload::Ordering => &[ordering, crate::raft_check::check],
        Workload::Register => &[linearizable, crate::raft_check::check],
    }
}

/// Checks `run_dir/history.jsonl` with every checker of the workload and
/// writes `results.json`.
pub fn judge(run_dir: &Path, workload: Workload) -> anyhow::Result<Results> {
    let path = run_dir.join("history.jsonl");
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let history = checker::history::read_history(BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))?;
    let results = checks(workload)
        .iter()
        .map(|check| check(run_dir, &history))
        .collect::<anyhow::Result<Vec<CheckResult>>>()?;
    let results = Results::from_results(results);
    write_json(
        &run_dir.join("results.json"),
        &serde_json::to_value(&results)?,
    )?;
    Ok(results)
}

/// Total order broadcast's properties.
fn ordering(_run_dir: &Path, history: &History) -> anyhow::Result<CheckResult> {
    Ok(checker::ordering::check_history(history))
}

/// Linearizability of the cas-registers, with its pictures.
fn linearizable(run_dir: &Path, history: &History) -> anyhow::Result<CheckResult> {
    let budget = Budget {
        time_limit: CHECK_TIME_LIMIT,
        memory_bytes_max: CHECK_MEMORY_BYTES_MAX,
    };
    let report = checker::linearizable::check_history(history, Model::CasRegister, budget);
    let mut result = report.to_check_result();
    for (name, html) in report.html_pictures() {
        let out = run_dir.join(&name);
        std::fs::write(&out, html).with_context(|| format!("writing {}", out.display()))?;
        if !result.artifacts.contains(&name) {
            result.artifacts.push(name);
        }
    }
    Ok(result)
}

/// The workload a stored run used, from its `test.json`.
pub fn stored_workload(run_dir: &Path) -> anyhow::Result<Workload> {
    let path = run_dir.join("test.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let test: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    match test["workload"].as_str() {
        Some("ordering") => Ok(Workload::Ordering),
        Some("register") => Ok(Workload::Register),
        other => anyhow::bail!(
            "{}: field `workload`: expected \"ordering\" or \"register\", got {other:?}",
            path.display()
        ),
    }
}
