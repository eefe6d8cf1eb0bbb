//! The soak's sum of its runs' crash points (`summary.json`'s
//! `crash_points`, issue 29): each point's hits and crashes over every
//! run, and the points of ordeal-node's catalogue no run reached.

use node::crash_points::Point;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Crash points summed over a soak's runs.
#[derive(Debug, Default)]
pub struct CrashPointSum {
    /// Runs whose nodes listed their crash points.
    pub runs: u64,
    /// (reached, crashed) by name.
    pub points: BTreeMap<String, (u64, u64)>,
}

impl CrashPointSum {
    /// Adds the run stored in `run_dir`, when its summary counts crash
    /// points (ordeal-node's runs).
    pub fn add_run(&mut self, run_dir: &Path) {
        let Some(summary) = std::fs::read_to_string(run_dir.join("summary.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        else {
            return;
        };
        if let Some(points) = summary["crash_points"].as_object() {
            self.add(points);
        }
    }

    /// Adds one run's `crash_points`.
    pub fn add(&mut self, points: &serde_json::Map<String, Value>) {
        self.runs += 1;
        for (name, counts) in points {
            let slot = self.points.entry(name.clone()).or_default();
            slot.0 += counts["reached"].as_u64().unwrap_or(0);
            slot.1 += counts["crashed"].as_u64().unwrap_or(0);
        }
    }

    /// Adds another soak's sum (its soak-summary.json's `crash_points`,
    /// as [`CrashPointSum::to_json`] writes it); an error names the field
    /// that is not a count.
    pub fn add_sum(&mut self, sum: &Value) -> Result<(), String> {
        self.runs += sum["runs"]
            .as_u64()
            .ok_or("`crash_points.runs` is not a count")?;
        let points = sum["points"]
            .as_object()
            .ok_or("`crash_points.points` is not an object")?;
        for (name, counts) in points {
            let count = |field: &str| {
                counts[field]
                    .as_u64()
                    .ok_or_else(|| format!("`crash_points.points.{name}.{field}` is not a count"))
            };
            let (reached, crashed) = (count("reached")?, count("crashed")?);
            let slot = self.points.entry(name.clone()).or_default();
            slot.0 += reached;
            slot.1 += crashed;
        }
        Ok(())
    }

    /// The catalogue's points no run reached.
    pub fn never_reached(&self) -> Vec<&'static str> {
        Point::ALL
            .iter()
            .map(|p| p.name())
            .filter(|name| self.points.get(*name).is_none_or(|c| c.0 == 0))
            .collect()
    }

    /// The points crashed at, by name.
    pub fn crashed(&self) -> Vec<&str> {
        self.points
            .iter()
            .filter(|(_, c)| c.1 > 0)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Prints the sum under the soak's table.
    pub fn print(&self) {
        if self.runs == 0 {
            return;
        }
        println!("\ncrash points summed over {} runs:", self.runs);
        for (name, (reached, crashed)) in &self.points {
            println!("  {name:<40} reached {reached:>9}  crashed {crashed:>4}");
        }
        println!("crashed at: {}", self.crashed().join(", "));
        println!("never reached: {}", self.never_reached().join(", "));
    }

    /// As soak-summary.json holds it.
    pub fn to_json(&self) -> Value {
        let points: BTreeMap<&String, Value> = self
            .points
            .iter()
            .map(|(n, (r, c))| (n, json!({"reached": r, "crashed": c})))
            .collect();
        json!({"runs": self.runs, "points": points, "never_reached": self.never_reached()})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_sum_and_the_catalogue_s_unreached_points_are_named() {
        let mut sum = CrashPointSum::default();
        let run = |r: u64, c: u64| {
            json!({"wal.append.before-fsync": {"reached": r, "crashed": c},
                   "snapshot.take.after-write": {"reached": 0, "crashed": 0}})
        };
        sum.add(run(10, 1).as_object().unwrap());
        sum.add(run(5, 0).as_object().unwrap());
        assert_eq!(sum.points["wal.append.before-fsync"], (15, 1));
        let never = sum.never_reached();
        assert!(never.contains(&"snapshot.take.after-write"));
        assert!(!never.contains(&"wal.append.before-fsync"));
        assert_eq!(never.len(), Point::ALL.len() - 1);
        assert_eq!(sum.crashed(), ["wal.append.before-fsync"]);
        assert_eq!(sum.to_json()["runs"], 2);
    }
}
