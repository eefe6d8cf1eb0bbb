//! Judging a stored run: the history through the checkers that fit the
//! workload, then `results.json` and the checker's pictures.
//!
//! Layers inside: this file (which checkers judge a workload), then the
//! harness's own checkers (`raft.rs`, `catchup.rs`, `crashed.rs`, `halted.rs`,
//! `replicas.rs`), verdicts as exit codes
//! (`verdict.rs`) and the report (`report.rs`).

pub mod catchup;
pub mod crashed;
pub mod halted;
pub mod raft;
pub mod replicas;
pub mod report;
pub mod verdict;

use crate::store::write_json;
use anyhow::Context;
use checker::history::{read_history_file, Format, History};
use checker::linearizable::{Budget, Model};
use checker::validate::{validate, Vocabulary};
use checker::verdict::{CheckResult, Results};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::Duration;

/// The linearizability checker's budget per run.
pub const CHECK_TIME_LIMIT: Duration = Duration::from_secs(120);
/// The linearizability checker's memory cap.
pub const CHECK_MEMORY_BYTES_MAX: u64 = 4 << 30;

/// One checker: reads the history at the path it is given (and, if it
/// needs them, other files of the run directory, where it may also write
/// its pictures). Each reads for itself so that a checker can stream
/// (ordering: a long run's final chains need not fit in memory), and each
/// refuses, naming the line and the field, a history it does not read.
type Check = fn(&Path, &Path) -> anyhow::Result<CheckResult>;

/// The workload: what the generator asks and which checkers judge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Total-order broadcast, judged by the ordering checker.
    Ordering,
    /// Keyed cas-registers, judged by the linearizability checker.
    Register,
}

impl Workload {
    /// The name in flags and in `test.json`.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Ordering => "ordering",
            Workload::Register => "register",
        }
    }

    /// The workload named `word`, if any.
    pub fn parse(word: &str) -> Option<Workload> {
        [Workload::Ordering, Workload::Register]
            .into_iter()
            .find(|w| w.name() == word)
    }
}

/// The checkers that judge a workload. A new checker is one entry here.
fn checks(workload: Workload) -> &'static [Check] {
    match workload {
        Workload::Ordering => &[ordering, raft::check],
        Workload::Register => &[linearizable, raft::check],
    }
}

/// Checks `run_dir/history.jsonl` with every checker of the workload and
/// writes `results.json`.
pub fn judge(run_dir: &Path, workload: Workload) -> anyhow::Result<Results> {
    judge_file(run_dir, &run_dir.join("history.jsonl"), workload)
}

/// Checks the history at `path` (JSON Lines, or EDN when named `*.edn`)
/// with every checker of the workload, and the run's liveness; writes
/// `run_dir/results.json`.
pub fn judge_file(run_dir: &Path, path: &Path, workload: Workload) -> anyhow::Result<Results> {
    let mut results = checks(workload)
        .iter()
        .map(|check| check(run_dir, path))
        .collect::<anyhow::Result<Vec<CheckResult>>>()?;
    catchup::liveness_not_safety(&mut results, catchup::recovery(run_dir).as_ref());
    // Liveness beside the workload's safety checkers.
    results.extend(catchup::check(run_dir)?);
    // Nodes that ended by themselves.
    results.extend(crashed::check(run_dir)?);
    // Members that say they were removed (they halt).
    results.extend(halted::check(run_dir)?);
    // Replicas whose states differ at one height (registers included).
    results.extend(replicas::check(run_dir)?);
    let results = Results::from_results(results);
    write_json(
        &run_dir.join("results.json"),
        &serde_json::to_value(&results)?,
    )?;
    Ok(results)
}

/// Reads the whole history at `path` and refuses it unless it speaks
/// `vocabulary`.
fn read_validated(path: &Path, vocabulary: Vocabulary) -> anyhow::Result<History> {
    let history =
        read_history_file(path, None).with_context(|| format!("reading {}", path.display()))?;
    validate(&history, vocabulary).with_context(|| {
        format!(
            "{}: refused by the {} checker",
            path.display(),
            vocabulary.name()
        )
    })?;
    Ok(history)
}

/// Total order broadcast's properties; JSON Lines is judged as it is read
/// (and validated on the way).
fn ordering(_run_dir: &Path, path: &Path) -> anyhow::Result<CheckResult> {
    if Format::of_path(path) == Format::Edn {
        let history = read_validated(path, Vocabulary::Ordering)?;
        return checker::ordering::check_history(&history)
            .with_context(|| format!("{}: refused by the ordering checker", path.display()));
    }
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    checker::ordering::check_reader(BufReader::with_capacity(1 << 20, file)).with_context(|| {
        format!(
            "reading {} (refused by the ordering checker)",
            path.display()
        )
    })
}

/// Linearizability of the cas-registers, with its pictures.
fn linearizable(run_dir: &Path, path: &Path) -> anyhow::Result<CheckResult> {
    let model = Model::CasRegister;
    let history = read_validated(path, Vocabulary::Model(model))?;
    let budget = Budget {
        time_limit: CHECK_TIME_LIMIT,
        memory_bytes_max: CHECK_MEMORY_BYTES_MAX,
    };
    let report = checker::linearizable::check_history(&history, model, budget);
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
    let named = test["workload"].as_str();
    match named.and_then(Workload::parse) {
        Some(workload) => Ok(workload),
        None => anyhow::bail!(
            "{}: field `workload`: expected \"ordering\" or \"register\", got {named:?}",
            path.display()
        ),
    }
}
