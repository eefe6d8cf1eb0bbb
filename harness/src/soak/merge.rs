//! `harness soak-merge`: the `soak-summary.json` of several soaks (the
//! shards of one nightly) merged into one table per test — runs, ops,
//! verdicts, and coverage where runs carry it (a `coverage` object of
//! counters per run, summed; the table shows how many were reached).

use crate::soak::crash_points::CrashPointSum;
use anyhow::{bail, Context};
use checker::verdict::Validity;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Summary files merged at most.
const FILES_MAX: usize = 1024;

/// One test's runs over every shard.
#[derive(Debug, Default, Clone, PartialEq)]
struct Row {
    runs: u64,
    ops: u64,
    valid: u64,
    invalid: u64,
    unknown: u64,
    /// Counters summed over runs; empty when no run carried coverage.
    coverage: BTreeMap<String, u64>,
}

/// The merged soaks.
#[derive(Debug, Default)]
struct Merged {
    tests: BTreeMap<String, Row>,
    /// Every run that was not valid: test, seed, verdict, rerun, file.
    failed: Vec<Value>,
    /// Each file's master seed and shard.
    shards: Vec<Value>,
    /// Crash points summed over every shard's runs.
    crash_points: CrashPointSum,
}

fn verdict_of(value: &Value) -> Option<Validity> {
    match value {
        Value::Bool(true) => Some(Validity::Valid),
        Value::Bool(false) => Some(Validity::Invalid),
        Value::String(s) if s == "unknown" => Some(Validity::Unknown),
        _ => None,
    }
}

impl Merged {
    /// Adds one summary; errors name the file, the run and the field.
    fn add(&mut self, file: &Path, summary: &Value) -> anyhow::Result<()> {
        let name = file.display();
        let runs = summary["runs"]
            .as_array()
            .with_context(|| format!("{name}: no `runs` array (not a soak-summary.json?)"))?;
        self.shards.push(
            json!({"file": name.to_string(), "master_seed": summary["master_seed"],
            "shard": summary["shard"], "runs": runs.len()}),
        );
        if !summary["crash_points"].is_null() {
            self.crash_points
                .add_sum(&summary["crash_points"])
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        }
        for (i, run) in runs.iter().enumerate() {
            let test = run["test"]
                .as_str()
                .with_context(|| format!("{name}: run {i}: no `test` name"))?;
            let ops = run["ops"]
                .as_u64()
                .with_context(|| format!("{name}: run {i} ({test}): `ops` is not a count"))?;
            let verdict = verdict_of(&run["verdict"]).with_context(|| {
                format!(
                    "{name}: run {i} ({test}): `verdict` is {}, not true, false or \"unknown\"",
                    run["verdict"]
                )
            })?;
            let row = self.tests.entry(test.to_string()).or_default();
            row.runs += 1;
            row.ops += ops;
            match verdict {
                Validity::Valid => row.valid += 1,
                Validity::Invalid => row.invalid += 1,
                Validity::Unknown => row.unknown += 1,
            }
            if let Some(coverage) = run["coverage"].as_object() {
                for (key, count) in coverage {
                    *row.coverage.entry(key.clone()).or_default() += count.as_u64().unwrap_or(0);
                }
            }
            if verdict != Validity::Valid {
                self.failed.push(
                    json!({"test": test, "seed": run["seed"], "verdict": run["verdict"],
                    "rerun": run["rerun"], "file": name.to_string()}),
                );
            }
        }
        Ok(())
    }

    fn worst(&self) -> Validity {
        let rows = self.tests.values();
        rows.fold(Validity::Valid, |w, r| {
            let v = if r.invalid > 0 {
                Validity::Invalid
            } else if r.unknown > 0 {
                Validity::Unknown
            } else {
                Validity::Valid
            };
            crate::judge::verdict::worst(w, v)
        })
    }

    fn to_json(&self) -> Value {
        let tests: Map<String, Value> = self
            .tests
            .iter()
            .map(|(test, r)| {
                let reached = r.coverage.values().filter(|c| **c > 0).count();
                let row = json!({"runs": r.runs, "ops": r.ops, "valid": r.valid, "invalid": r.invalid,
                    "unknown": r.unknown, "coverage": if r.coverage.is_empty() { Value::Null } else { json!(r.coverage) },
                    "coverage_reached": if r.coverage.is_empty() { Value::Null } else { json!(reached) }});
                (test.clone(), row)
            })
            .collect();
        let total = |f: fn(&Row) -> u64| self.tests.values().map(f).sum::<u64>();
        json!({"shards": self.shards, "tests": tests, "failed": self.failed,
            "crash_points": self.crash_points.to_json(),
            "totals": {"runs": total(|r| r.runs), "ops": total(|r| r.ops), "valid": total(|r| r.valid),
                "invalid": total(|r| r.invalid), "unknown": total(|r| r.unknown)}})
    }

    fn print(&self) {
        println!(
            "{:<44} {:>5} {:>9} {:>6} {:>8} {:>8} {:>9}",
            "test", "runs", "ops", "valid", "invalid", "unknown", "coverage"
        );
        let mut total = Row::default();
        for (test, r) in &self.tests {
            let coverage = if r.coverage.is_empty() {
                "-".to_string()
            } else {
                let reached = r.coverage.values().filter(|c| **c > 0).count();
                format!("{reached}/{}", r.coverage.len())
            };
            println!(
                "{test:<44} {:>5} {:>9} {:>6} {:>8} {:>8} {coverage:>9}",
                r.runs, r.ops, r.valid, r.invalid, r.unknown
            );
            total.runs += r.runs;
            total.ops += r.ops;
            total.valid += r.valid;
            total.invalid += r.invalid;
            total.unknown += r.unknown;
        }
        println!(
            "{:<44} {:>5} {:>9} {:>6} {:>8} {:>8}",
            "total", total.runs, total.ops, total.valid, total.invalid, total.unknown
        );
        self.crash_points.print();
        for f in &self.failed {
            println!(
                "not valid: {} seed {} ({}): {}",
                f["test"].as_str().unwrap_or(""),
                f["seed"],
                f["file"].as_str().unwrap_or(""),
                f["rerun"].as_str().unwrap_or("-")
            );
        }
    }
}

/// Merges the files, prints the table, writes `out`; the exit code of the
/// worst verdict.
pub fn merge(files: &[std::path::PathBuf], out: Option<&Path>) -> anyhow::Result<u8> {
    if files.len() > FILES_MAX {
        bail!("soak-merge: {} files, at most {FILES_MAX}", files.len());
    }
    let mut merged = Merged::default();
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let summary: Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", file.display()))?;
        merged.add(file, &summary)?;
    }
    merged.print();
    if let Some(out) = out {
        crate::store::write_json(out, &merged.to_json())?;
        println!("merged summary: {}", out.display());
    }
    Ok(crate::judge::verdict::exit_code(merged.worst()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(shard: &str, runs: Value) -> Value {
        json!({"master_seed": 7, "duration_s": 60, "shard": shard, "runs": runs})
    }

    #[test]
    fn soak_merge_sums_shards_per_test_and_names_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        let b = dir.path().join("b.json");
        let out = dir.path().join("merged.json");
        let run = |test: &str, ops: u64, verdict: Value| json!({"test": test, "seed": 1, "ops": ops, "verdict": verdict, "rerun": "cargo run …"});
        let mut covered = run("ordeal-ordering-kill", 10, json!(true));
        covered["coverage"] = json!({"leader-elected": 3, "snapshot-sent": 0});
        std::fs::write(
            &a,
            summary(
                "1/2",
                json!([covered, run("ordeal-register-kill", 5, json!(false))]),
            )
            .to_string(),
        )
        .unwrap();
        let mut more = run("ordeal-ordering-kill", 20, json!("unknown"));
        more["coverage"] = json!({"snapshot-sent": 2});
        std::fs::write(&b, summary("2/2", json!([more])).to_string()).unwrap();
        let code = merge(&[a.clone(), b.clone()], Some(&out)).unwrap();
        assert_eq!(code, crate::judge::verdict::EXIT_INVALID);
        let merged: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let kill = &merged["tests"]["ordeal-ordering-kill"];
        assert_eq!(
            (kill["runs"].as_u64(), kill["ops"].as_u64()),
            (Some(2), Some(30))
        );
        assert_eq!(
            (kill["valid"].as_u64(), kill["unknown"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(kill["coverage_reached"], 2);
        assert_eq!(
            merged["tests"]["ordeal-register-kill"]["coverage"],
            Value::Null
        );
        assert_eq!(merged["totals"]["runs"], 3);
        assert_eq!(merged["failed"].as_array().unwrap().len(), 2);
        assert_eq!(merged["shards"][1]["shard"], "2/2");
        // An unknown run and no invalid one: exit 2.
        assert_eq!(
            merge(std::slice::from_ref(&b), None).unwrap(),
            crate::judge::verdict::EXIT_UNKNOWN
        );
        for (text, expected) in [
            ("{}".to_string(), "no `runs` array"),
            (
                summary("1/1", json!([{"test": "t", "ops": 1, "verdict": "maybe"}])).to_string(),
                "`verdict` is \"maybe\"",
            ),
            (
                summary("1/1", json!([{"test": "t", "ops": -1, "verdict": true}])).to_string(),
                "`ops` is not a count",
            ),
            ("not json".to_string(), "not JSON"),
            (
                json!({"runs": [], "crash_points": {"runs": 1, "points": {"wal-append": {"reached": "x"}}}})
                    .to_string(),
                "`crash_points.points.wal-append.reached` is not a count",
            ),
        ] {
            std::fs::write(&a, text).unwrap();
            let error = format!("{:#}", merge(std::slice::from_ref(&a), None).unwrap_err());
            assert!(
                error.contains(expected) && error.contains("a.json"),
                "{error}"
            );
        }
    }

    #[test]
    fn soak_merge_sums_the_shards_crash_points() {
        let dir = tempfile::tempdir().unwrap();
        let sum = |runs: u64, reached: u64, crashed: u64| {
            json!({"runs": [], "crash_points": {"runs": runs, "points": {
                "wal.append.before-fsync": {"reached": reached, "crashed": crashed}}}})
        };
        let (a, b, out) = (
            dir.path().join("a.json"),
            dir.path().join("b.json"),
            dir.path().join("m.json"),
        );
        std::fs::write(&a, sum(2, 10, 0).to_string()).unwrap();
        std::fs::write(&b, sum(3, 5, 1).to_string()).unwrap();
        merge(&[a, b], Some(&out)).unwrap();
        let merged: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let points = &merged["crash_points"];
        assert_eq!(points["runs"], 5);
        assert_eq!(
            points["points"]["wal.append.before-fsync"],
            json!({"reached": 15, "crashed": 1})
        );
        assert!(!points["never_reached"]
            .as_array()
            .unwrap()
            .contains(&json!("wal.append.before-fsync")));
    }
}
