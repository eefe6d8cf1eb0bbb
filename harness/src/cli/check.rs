//! `harness check DIR`: re-judges a stored run, or any history, without a
//! cluster. The history is `--history FILE` when given, else the run's
//! `history.jsonl`, else its `history.edn` (Jepsen's format, read as
//! `docs/history.md` says); it is validated against the workload's checker
//! before any verdict, so a history the checker does not understand is
//! refused (exit 3, naming the line and the field) rather than judged.

use crate::judge::report::report;
use crate::judge::verdict::{exit_code, print};
use crate::judge::{judge_file, stored_workload, Workload};
use anyhow::bail;
use std::path::{Path, PathBuf};

/// Which history file of `dir` to judge.
pub fn history_path(dir: &Path, explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("--history {}: no such file", path.display());
        }
        return Ok(path.to_path_buf());
    }
    for name in ["history.jsonl", "history.edn"] {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    bail!(
        "{}: no history.jsonl or history.edn (pass --history FILE)",
        dir.display()
    )
}

/// `--workload` when given, else the run's `test.json`.
fn workload(dir: &Path, explicit: Option<&str>) -> anyhow::Result<Workload> {
    match explicit {
        Some(word) => match Workload::parse(word) {
            Some(workload) => Ok(workload),
            None => bail!("--workload: unknown workload `{word}` (expected ordering or register)"),
        },
        None if !dir.join("test.json").exists() => bail!(
            "{}: no test.json to say which workload this is; pass --workload ordering or --workload register",
            dir.display()
        ),
        None => stored_workload(dir),
    }
}

/// Judges, writes `results.json` (and the report, when the history is the
/// run's own JSON Lines), prints the verdicts; returns the exit code.
pub fn check(dir: &Path, history: Option<&Path>, explicit: Option<&str>) -> anyhow::Result<u8> {
    if !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    let workload = workload(dir, explicit)?;
    let history = history_path(dir, history)?;
    let results = judge_file(dir, &history, workload)?;
    if dir.join("history.jsonl").is_file() {
        report(dir);
    }
    print(&results);
    Ok(exit_code(results.valid))
}
