//! Verdicts as data: valid, invalid or unknown, with counts and example
//! anomalies; combined verdicts take the worst (Jepsen's rule).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;

/// A checker's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Validity {
    /// A violation was found (the worst).
    Invalid,
    /// The checker could not decide within its budget.
    Unknown,
    /// No violation exists.
    Valid,
}

impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::Valid => s.serialize_bool(true),
            Validity::Invalid => s.serialize_bool(false),
            Validity::Unknown => s.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Validity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(true) => Ok(Validity::Valid),
            Value::Bool(false) => Ok(Validity::Invalid),
            Value::String(s) if s == "unknown" => Ok(Validity::Unknown),
            other => Err(serde::de::Error::custom(format!(
                "expected true, false or \"unknown\", got {other}"
            ))),
        }
    }
}

/// Examples kept per anomaly kind at most.
pub const EXAMPLES_MAX: usize = 10;

/// One kind of anomaly with its count and a few examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// The kind (`lost`, `fork`, `nonlinearizable`, …).
    pub kind: String,
    /// How many were found.
    pub count: u64,
    /// Up to [`EXAMPLES_MAX`] examples.
    pub examples: Vec<Value>,
}

impl Anomaly {
    /// An empty anomaly of `kind`.
    pub fn new(kind: &str) -> Anomaly {
        Anomaly {
            kind: kind.to_string(),
            count: 0,
            examples: Vec::new(),
        }
    }

    /// Counts one occurrence, keeping the example while there is room.
    pub fn add(&mut self, example: Value) {
        self.count += 1;
        if self.examples.len() < EXAMPLES_MAX {
            self.examples.push(example);
        }
    }
}

/// One checker's result (an entry of `results.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The checker's name.
    pub checker: String,
    /// Its verdict.
    pub valid: Validity,
    /// Time spent judging, ms.
    pub check_ms: f64,
    /// Counts of interest.
    pub counts: BTreeMap<String, u64>,
    /// Anomalies by kind.
    pub anomalies: Vec<Anomaly>,
    /// Files written beside the results (relative names).
    pub artifacts: Vec<String>,
    /// Why the verdict is unknown, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl CheckResult {
    /// The result of a checker that looks for one kind of anomaly:
    /// invalid when it counted any, valid otherwise; `check_ms` since
    /// `started`.
    pub fn of_one_kind(
        checker: &str,
        anomaly: Anomaly,
        counts: &[(&str, u64)],
        started: std::time::Instant,
    ) -> CheckResult {
        let valid = if anomaly.count == 0 {
            Validity::Valid
        } else {
            Validity::Invalid
        };
        CheckResult {
            checker: checker.to_string(),
            valid,
            check_ms: started.elapsed().as_secs_f64() * 1e3,
            counts: counts.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            anomalies: vec![anomaly],
            artifacts: Vec::new(),
            note: None,
        }
    }
}

/// Every checker's result and the worst verdict (`results.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// The worst of the results (valid when there are none).
    pub valid: Validity,
    /// Each checker's result.
    pub results: Vec<CheckResult>,
}

impl Results {
    /// Combines results, taking the worst verdict.
    pub fn from_results(results: Vec<CheckResult>) -> Results {
        let valid = results
            .iter()
            .map(|r| r.valid)
            .min()
            .unwrap_or(Validity::Valid);
        Results { valid, results }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_verdict_wins_and_serialises_as_the_store_says() {
        let r = |v| CheckResult {
            checker: "x".into(),
            valid: v,
            check_ms: 0.0,
            counts: BTreeMap::new(),
            anomalies: vec![],
            artifacts: vec![],
            note: None,
        };
        assert_eq!(
            Results::from_results(vec![r(Validity::Valid), r(Validity::Unknown)]).valid,
            Validity::Unknown
        );
        assert_eq!(
            Results::from_results(vec![r(Validity::Unknown), r(Validity::Invalid)]).valid,
            Validity::Invalid
        );
        assert_eq!(
            serde_json::to_string(&Validity::Unknown).unwrap(),
            "\"unknown\""
        );
        assert_eq!(serde_json::to_string(&Validity::Invalid).unwrap(), "false");
        let back: Validity = serde_json::from_str("true").unwrap();
        assert_eq!(back, Validity::Valid);
    }
}
