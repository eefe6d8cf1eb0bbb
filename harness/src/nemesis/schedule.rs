//! A run's schedule as data (`schedule.json`, docs/store.md): every fault
//! the nemesis did, by name, with its [`Planned`] targets and parameters,
//! what its heal did when that was drawn too, and when it started and
//! ended as offsets from the workload's start; with the workload's seed,
//! the plan (the node configuration) and the run's timings. A schedule
//! given back to the nemesis (its `script`) is done
//! again without drawing: the same faults on the same targets at the same
//! offsets (`harness replay`, `harness shrink`).
//!
//! Pure data and arithmetic: no IO but [`Schedule::read`] and
//! [`Schedule::write`].

use crate::nemesis::package::Planned;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `schedule.json`'s version; a reader refuses others by name.
pub const SCHEDULE_VERSION: u32 = 1;

/// The file a run writes its schedule to.
pub const SCHEDULE_FILE: &str = "schedule.json";

/// A run's faults and what they were done on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// [`SCHEDULE_VERSION`].
    pub version: u32,
    /// The run's seed: the workload's generator and workers are seeded
    /// from it (the faults below are not drawn again).
    pub seed: u64,
    /// The run's timings.
    pub clock: ScheduleClock,
    /// The command line that ran the original test (`test.json`'s
    /// `command_line`): how a replay rebuilds the plan.
    pub command_line: String,
    /// The plan as `test.json` holds it: the node configuration the run
    /// had (the system, bugs, ack, snapshot interval, and whatever else
    /// the plan records).
    pub plan: Value,
    /// The schedule this run replayed (a path), when it was a replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
    /// The faults in the order they started.
    pub faults: Vec<ScheduledFault>,
}

/// The run's timings: how long the workload runs, the nemesis's interval
/// (how long a drawn fault holds), the recovery after the final heal, and
/// the nodes' election timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleClock {
    /// Seconds of workload (a replay runs this long; a shrink may cut it
    /// after the last fault).
    pub time_limit_s: u64,
    /// Seconds a drawn fault lasts and between faults.
    pub nemesis_interval_s: u64,
    /// Seconds given to recover after the final heal.
    pub recovery_s: u64,
    /// The nodes' election timeout, ms.
    pub election_timeout_ms: u64,
}

/// One fault: what it did, and when, in ms from the workload's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledFault {
    /// The fault's name (`--nemesis`, the history's `f`).
    pub name: String,
    /// The nodes it touched (its [`Planned::targets`]).
    pub targets: Vec<String>,
    /// Its parameters in the fault's own shape ([`Planned::params`]).
    pub params: Value,
    /// What its heal did when that was drawn too (a `member` fault's
    /// restoring change); `null` otherwise.
    #[serde(default)]
    pub heal: Option<Planned>,
    /// When it is to be injected, ms after the workload started.
    pub start_ms: u64,
    /// When it is to be healed, ms after the workload started.
    pub end_ms: u64,
    /// When it was, in this run; `null` in a schedule written by hand or
    /// by `harness shrink` and not yet run.
    #[serde(default)]
    pub actual: Option<Actual>,
}

/// When a fault was really injected and healed, ms after the workload
/// started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actual {
    /// When its inject began.
    pub start_ms: u64,
    /// When its inject returned: the fault in force.
    pub in_force_ms: u64,
    /// When its heal began.
    pub end_ms: u64,
}

impl ScheduledFault {
    /// What the fault's package injects.
    pub fn planned(&self) -> Planned {
        Planned {
            targets: self.targets.clone(),
            params: self.params.clone(),
        }
    }

    /// How long it is held, ms.
    pub fn duration_ms(&self) -> u64 {
        self.end_ms.saturating_sub(self.start_ms)
    }

    /// `name targets@start..end s`, for progress lines.
    pub fn describe(&self) -> String {
        format!(
            "{} {}@{:.1}..{:.1}s",
            self.name,
            self.targets.join(","),
            self.start_ms as f64 / 1000.0,
            self.end_ms as f64 / 1000.0
        )
    }
}

impl Schedule {
    /// Reads `path`: a `schedule.json` (or `shrunk.json`, whose
    /// `schedule` it reads), or a run directory holding a `schedule.json`.
    pub fn read(path: &Path) -> anyhow::Result<(Schedule, PathBuf)> {
        let file = if path.is_dir() {
            path.join(SCHEDULE_FILE)
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "reading {} (runs of older harnesses wrote no schedule)",
                file.display()
            )
        })?;
        let mut value: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        // `shrunk.json` holds its schedule under `schedule`.
        if let Some(inner) = value.get_mut("schedule") {
            value = inner.take();
        }
        let schedule: Schedule = serde_json::from_value(value)
            .with_context(|| format!("reading {} as a schedule", file.display()))?;
        if schedule.version != SCHEDULE_VERSION {
            anyhow::bail!(
                "{}: schedule version {} (this harness reads {SCHEDULE_VERSION})",
                file.display(),
                schedule.version
            );
        }
        schedule
            .check()
            .with_context(|| file.display().to_string())?;
        Ok((schedule, file))
    }

    /// Writes it as pretty JSON to `path`.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// Refuses a schedule whose faults end before they start or overlap
    /// (the nemesis does one fault at a time), naming the fault.
    pub fn check(&self) -> anyhow::Result<()> {
        let mut previous_end = 0;
        for (i, f) in self.faults.iter().enumerate() {
            if f.end_ms < f.start_ms {
                anyhow::bail!("fault {i} ({}): ends before it starts", f.describe());
            }
            if f.start_ms < previous_end {
                anyhow::bail!(
                    "fault {i} ({}): starts before the fault before it ended",
                    f.describe()
                );
            }
            previous_end = f.end_ms;
        }
        Ok(())
    }

    /// The schedule to replay: its faults without what this run measured
    /// (the planned offsets kept).
    pub fn as_plan(&self) -> Schedule {
        let mut s = self.clone();
        for f in &mut s.faults {
            f.actual = None;
        }
        s
    }
}

/// How far a replay's faults started from their planned moments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// Per fault, in order.
    pub faults: Vec<FaultDrift>,
    /// Median of `start_drift_ms` over the faults replayed.
    pub start_drift_ms_median: Option<i64>,
    /// Largest `|start_drift_ms|`, with its sign.
    pub start_drift_ms_worst: Option<i64>,
    /// Median of `in_force_drift_ms` where the original's is known.
    pub in_force_drift_ms_median: Option<i64>,
    /// Largest `|in_force_drift_ms|`, with its sign.
    pub in_force_drift_ms_worst: Option<i64>,
    /// Faults of the schedule never started (the run stopped first).
    pub not_started: usize,
}

/// One fault's planned and actual start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultDrift {
    /// The fault's name.
    pub name: String,
    /// Its targets.
    pub targets: Vec<String>,
    /// Planned start, ms after the workload's start.
    pub planned_start_ms: u64,
    /// When its inject began in the replay.
    pub actual_start_ms: u64,
    /// `actual_start_ms - planned_start_ms`.
    pub start_drift_ms: i64,
    /// When it was in force in the original run, when known.
    pub original_in_force_ms: Option<u64>,
    /// When it was in force in the replay.
    pub in_force_ms: u64,
    /// `in_force_ms - original_in_force_ms`.
    pub in_force_drift_ms: Option<i64>,
}

impl Drift {
    /// The drift of `replayed` (what a replay did) from `source` (what it
    /// was given; its `actual`, when present, is the original's).
    pub fn between(source: &Schedule, replayed: &Schedule) -> Drift {
        let faults: Vec<FaultDrift> = source
            .faults
            .iter()
            .zip(&replayed.faults)
            .filter_map(|(s, r)| {
                let a = r.actual?;
                let original = s.actual.map(|o| o.in_force_ms);
                Some(FaultDrift {
                    name: r.name.clone(),
                    targets: r.targets.clone(),
                    planned_start_ms: s.start_ms,
                    actual_start_ms: a.start_ms,
                    start_drift_ms: a.start_ms as i64 - s.start_ms as i64,
                    original_in_force_ms: original,
                    in_force_ms: a.in_force_ms,
                    in_force_drift_ms: original.map(|o| a.in_force_ms as i64 - o as i64),
                })
            })
            .collect();
        let starts: Vec<i64> = faults.iter().map(|f| f.start_drift_ms).collect();
        let in_force: Vec<i64> = faults.iter().filter_map(|f| f.in_force_drift_ms).collect();
        Drift {
            start_drift_ms_median: median(&starts),
            start_drift_ms_worst: worst(&starts),
            in_force_drift_ms_median: median(&in_force),
            in_force_drift_ms_worst: worst(&in_force),
            not_started: source.faults.len() - faults.len(),
            faults,
        }
    }
}

/// The median (the lower of the two middle values for an even count).
fn median(values: &[i64]) -> Option<i64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len().checked_sub(1)? / 2).copied()
}

/// The value farthest from zero.
fn worst(values: &[i64]) -> Option<i64> {
    values.iter().copied().max_by_key(|v| v.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fault(name: &str, start_ms: u64, end_ms: u64) -> ScheduledFault {
        ScheduledFault {
            name: name.into(),
            targets: vec!["n1".into()],
            params: Value::Null,
            heal: None,
            start_ms,
            end_ms,
            actual: None,
        }
    }

    fn schedule(faults: Vec<ScheduledFault>) -> Schedule {
        Schedule {
            version: SCHEDULE_VERSION,
            seed: 7,
            clock: ScheduleClock {
                time_limit_s: 60,
                nemesis_interval_s: 10,
                recovery_s: 10,
                election_timeout_ms: 1000,
            },
            command_line: "cargo run -p harness -- --seed 7".into(),
            plan: json!({"seed": 7}),
            replay_of: None,
            faults,
        }
    }

    #[test]
    fn drift_is_actual_minus_planned_with_median_and_worst() {
        let source = schedule(vec![
            fault("kill", 5_000, 15_000),
            fault("pause", 20_000, 30_000),
            fault("clock", 35_000, 45_000),
        ]);
        let mut replayed = source.clone();
        for (f, (start, in_force)) in replayed
            .faults
            .iter_mut()
            .zip([(5_003, 5_100), (20_450, 20_460)])
        {
            f.actual = Some(Actual {
                start_ms: start,
                in_force_ms: in_force,
                end_ms: f.end_ms,
            });
        }
        let d = Drift::between(&source, &replayed);
        assert_eq!(d.faults.len(), 2);
        assert_eq!(d.not_started, 1);
        assert_eq!(d.start_drift_ms_median, Some(3));
        assert_eq!(d.start_drift_ms_worst, Some(450));
        assert_eq!(d.in_force_drift_ms_median, None);
    }

    #[test]
    fn overlapping_or_backwards_faults_are_refused_by_index() {
        let ok = schedule(vec![fault("kill", 0, 10), fault("pause", 10, 20)]);
        ok.check().unwrap();
        let overlap = schedule(vec![fault("kill", 0, 10), fault("pause", 5, 20)]);
        assert!(overlap.check().unwrap_err().to_string().contains("fault 1"));
        let back = schedule(vec![fault("kill", 10, 5)]);
        assert!(back
            .check()
            .unwrap_err()
            .to_string()
            .contains("ends before"));
        let text = serde_json::to_string(&ok).unwrap();
        let back: Schedule = serde_json::from_str(&text).unwrap();
        assert_eq!(back, ok);
    }
}
