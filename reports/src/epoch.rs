//! Where the history's time 0 lies on the host's wall clock, so that node
//! events stamped with wall-clock milliseconds (the trace's `real_ms` or
//! `time_ms`, `metrics.json`'s persist samples) are placed on the run's
//! time axis (seconds since the test began, the history's clock).
//!
//! The history's clock starts when the harness opens `history.jsonl`,
//! after the cluster has started and elected its first leader; `test.json`'s
//! `started_unix_ms` is read when the run directory is created, before the
//! cluster starts, so it lies seconds before time 0. In order of preference:
//!
//! 1. `test.json`'s `history_epoch_unix_ms`: the wall clock read where the
//!    history's clock starts (exact; written by harnesses that record it).
//! 2. An estimate from `status.jsonl`: each sample pairs a node's
//!    `wall_clock_ms` with the history's time of its round. Only rounds in
//!    which every node answered count (an unanswered node makes the round's
//!    time up to 1 s late); per round the median over the nodes (a node
//!    under a clock fault is an outlier), then the median over the rounds.
//!    The estimate lies early by the time from an answer to the round's
//!    time stamp, a few ms on loopback.
//! 3. `started_unix_ms`: node events are then placed late by the cluster's
//!    start-up (seconds).

use crate::status::Sample;
use serde_json::Value;

/// Where [`Epoch::unix_ms`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochSource {
    /// `test.json`'s `history_epoch_unix_ms`.
    Recorded,
    /// Estimated from the nodes' wall clocks in `status.jsonl`.
    StatusSamples,
    /// `test.json`'s `started_unix_ms`, taken before the cluster started.
    TestStarted,
    /// Nothing said: the earliest process start in the traces is time 0.
    FirstStart,
}

/// The history's time 0 in ms since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Epoch {
    /// ms since the Unix epoch at the history's time 0.
    pub unix_ms: f64,
    /// How it was found.
    pub source: EpochSource,
}

impl Epoch {
    /// Seconds since the test began of a wall-clock time in ms.
    pub fn seconds(&self, unix_ms: f64) -> f64 {
        (unix_ms - self.unix_ms) / 1e3
    }

    /// The page's sentence on how node events were placed in time.
    pub fn note(&self) -> &'static str {
        match self.source {
            EpochSource::Recorded => {
                "node events placed on the run's time axis by the wall-clock time of the history's start (test.json history_epoch_unix_ms)"
            }
            EpochSource::StatusSamples => {
                "node events placed on the run's time axis by the history's start estimated from the nodes' wall clocks in status.jsonl (within a few ms; test.json has no history_epoch_unix_ms)"
            }
            EpochSource::FirstStart => {
                "no test.json and no status.jsonl: node events placed with the earliest process start as time 0"
            }
            EpochSource::TestStarted => {
                "node events placed on the run's time axis by test.json's started_unix_ms, read before the cluster started: they may be drawn late by the cluster's start-up time (seconds)"
            }
        }
    }
}

/// The run's epoch (see the module's doc); `None` when nothing says.
pub fn epoch(test: Option<&Value>, samples: &[Sample]) -> Option<Epoch> {
    let field = |k: &str| test.and_then(|t| t[k].as_f64());
    if let Some(unix_ms) = field("history_epoch_unix_ms") {
        return Some(Epoch {
            unix_ms,
            source: EpochSource::Recorded,
        });
    }
    if let Some(unix_ms) = from_samples(samples) {
        return Some(Epoch {
            unix_ms,
            source: EpochSource::StatusSamples,
        });
    }
    field("started_unix_ms").map(|unix_ms| Epoch {
        unix_ms,
        source: EpochSource::TestStarted,
    })
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// The estimate from the samples' rounds in which every node answered
/// with its wall clock.
fn from_samples(samples: &[Sample]) -> Option<f64> {
    let mut rounds = Vec::new();
    let mut i = 0;
    while i < samples.len() {
        let t_s = samples[i].t_s;
        let round: Vec<&Sample> = samples[i..].iter().take_while(|s| s.t_s == t_s).collect();
        i += round.len();
        let mut offsets: Vec<f64> = round
            .iter()
            .filter_map(|s| s.status.as_ref()?["wall_clock_ms"].as_f64())
            .map(|wall| wall - t_s * 1e3)
            .collect();
        if offsets.len() == round.len() {
            rounds.extend(median(&mut offsets));
        }
    }
    median(&mut rounds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(t_s: f64, node: &str, wall: Option<f64>) -> Sample {
        Sample {
            t_s,
            node: node.into(),
            status: wall.map(|w| json!({"wall_clock_ms": w})),
        }
    }

    #[test]
    fn the_recorded_epoch_wins_then_the_samples_then_the_test_start() {
        let test = json!({"started_unix_ms": 1_000, "history_epoch_unix_ms": 4_000});
        let samples = [
            // Every node answered: n3's clock is bumped 37 s, an outlier.
            sample(1.0, "n1", Some(5_002.0)),
            sample(1.0, "n2", Some(5_001.0)),
            sample(1.0, "n3", Some(42_000.0)),
            // n2 did not answer: the round's time is late, not used.
            sample(2.25, "n1", Some(5_100.0)),
            sample(2.25, "n2", None),
            sample(2.25, "n3", Some(42_100.0)),
            sample(3.0, "n1", Some(7_003.0)),
            sample(3.0, "n2", Some(7_003.0)),
            sample(3.0, "n3", Some(44_000.0)),
        ];
        let e = epoch(Some(&test), &samples).unwrap();
        assert_eq!((e.unix_ms, e.source), (4_000.0, EpochSource::Recorded));
        let test = json!({"started_unix_ms": 1_000});
        let e = epoch(Some(&test), &samples).unwrap();
        assert_eq!(e.source, EpochSource::StatusSamples);
        assert_eq!(e.unix_ms, 4_003.0, "median of rounds 4002 and 4003");
        assert!((e.seconds(5_003.0) - 1.0).abs() < 1e-9);
        let e = epoch(Some(&test), &[]).unwrap();
        assert_eq!((e.unix_ms, e.source), (1_000.0, EpochSource::TestStarted));
        assert_eq!(epoch(None, &[]), None);
    }
}
