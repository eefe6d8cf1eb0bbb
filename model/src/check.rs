//! Runs a checker over the model and turns its discoveries into verdicts.

use crate::bounds::{Bounds, Bug};
use crate::raft::RaftModel;
use crate::trace::describe_path;
use serde::Serialize;
use stateright::{Checker, Expectation, HasDiscoveries, Model, UniformChooser};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How the state space is searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Breadth-first: exhaustive, and with one thread every counterexample is a shortest one.
    Bfs,
    /// Depth-first: exhaustive, less memory, paths not shortest.
    Dfs,
    /// Random walks from the initial state, repeatable by seed; not exhaustive.
    Simulation {
        /// The random seed.
        seed: u64,
    },
}

/// What the search says about one property.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// An always-property held in every reachable state.
    Holds,
    /// An always-property failed; the report carries the path.
    Violated,
    /// A sometimes-property held in some reachable state; the report carries the path.
    ExampleFound,
    /// A sometimes-property held in no reachable state.
    NoExample,
    /// The search did not finish (time limit or sampling), and found nothing.
    Unknown,
}

/// One property's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct PropertyReport {
    /// The property's name, as in the Raft paper.
    pub name: &'static str,
    /// `always` or `sometimes`.
    pub expectation: &'static str,
    /// The outcome.
    pub verdict: Verdict,
    /// For violations and examples: one readable line per step.
    pub path: Vec<String>,
}

/// Everything a check found and what it cost.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// The bounds checked.
    pub bounds: Bounds,
    /// The broken rule, if any.
    pub bug: Option<Bug>,
    /// The search strategy.
    pub strategy: Strategy,
    /// Whether servers were renamed into a canonical order (symmetry reduction).
    pub symmetry: bool,
    /// Whether every reachable state was visited (or every property decided).
    pub complete: bool,
    /// Per property, always-properties first.
    pub properties: Vec<PropertyReport>,
    /// States generated, repeats included.
    pub states_generated: usize,
    /// Distinct states.
    pub unique_states: usize,
    /// The deepest level reached.
    pub max_depth: usize,
    /// Wall time of the search.
    pub seconds: f64,
    /// Generated states per second.
    pub states_per_second: f64,
    /// The process's peak resident memory, when the OS reports it.
    pub peak_memory_mb: Option<f64>,
}

impl CheckReport {
    /// True when every always-property holds and every sometimes-property has an example.
    /// A sampled search (simulation) passes when it found no violation and every example.
    pub fn passed(&self) -> bool {
        self.properties.iter().all(|p| match p.verdict {
            Verdict::Holds | Verdict::ExampleFound => true,
            Verdict::Unknown => {
                matches!(self.strategy, Strategy::Simulation { .. }) && p.expectation == "always"
            }
            Verdict::Violated | Verdict::NoExample => false,
        })
    }

    /// The report for property `name`.
    pub fn property(&self, name: &str) -> Option<&PropertyReport> {
        self.properties.iter().find(|p| p.name == name)
    }
}

/// How long and how wide a search runs.
#[derive(Clone, Copy, Debug)]
pub struct CheckOptions {
    /// Checker threads; with more than one, BFS paths may not be shortest.
    pub threads: usize,
    /// Stop after this long (verdicts not yet decided become unknown); simulation needs one.
    pub time_limit: Option<Duration>,
    /// Stop at the first violation (remaining verdicts become unknown).
    pub first_violation: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            threads: 1,
            time_limit: None,
            first_violation: false,
        }
    }
}

/// Searches `model`'s state space; `time_limit` bounds the search (required for simulation).
pub fn check(model: RaftModel, strategy: Strategy, options: CheckOptions) -> CheckReport {
    let CheckOptions {
        threads,
        time_limit,
        first_violation,
    } = options;
    let model = model.for_search();
    let mut builder = model.clone().checker().threads(threads.max(1));
    if first_violation {
        builder = builder.finish_when(HasDiscoveries::AnyFailures);
    }
    let simulation = matches!(strategy, Strategy::Simulation { .. });
    let (done, watchdog) = mpsc::channel::<()>();
    if let Some(limit) = time_limit {
        builder = builder.timeout(limit);
        let model = model.clone();
        // Ends when `done` is dropped, or at the limit by stopping the search.
        std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = watchdog.recv_timeout(limit) {
                model.stop();
            }
        });
    }
    let started = Instant::now();
    let (counts, discoveries) = match strategy {
        Strategy::Bfs => summarize(builder.spawn_bfs().join()),
        Strategy::Dfs => summarize(builder.spawn_dfs().join()),
        Strategy::Simulation { seed } => {
            summarize(builder.spawn_simulation(seed, UniformChooser).join())
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    drop(done);
    let violated = discoveries.iter().any(|(name, _)| {
        let property = model.properties().into_iter().find(|p| p.name == *name);
        property.is_some_and(|p| p.expectation == Expectation::Always)
    });
    let stopped_early = model.stopped() || (first_violation && violated);
    let complete = !stopped_early && !simulation;
    let properties = verdicts(&model, &discoveries, complete);
    let (states_generated, unique_states, max_depth) = counts;
    CheckReport {
        bounds: model.bounds,
        bug: model.bug,
        strategy,
        symmetry: model.canonicalize,
        complete,
        properties,
        states_generated,
        unique_states,
        max_depth,
        seconds,
        states_per_second: states_generated as f64 / seconds.max(1e-9),
        peak_memory_mb: peak_memory_mb(),
    }
}

/// Each property's verdict from what was discovered and whether the search was complete.
fn verdicts(model: &RaftModel, discoveries: &Discoveries, complete: bool) -> Vec<PropertyReport> {
    model
        .properties()
        .into_iter()
        .map(|property| {
            let found = discoveries.iter().find(|(name, _)| *name == property.name);
            let always = property.expectation == Expectation::Always;
            let verdict = match (found, always, complete) {
                (Some(_), true, _) => Verdict::Violated,
                (Some(_), false, _) => Verdict::ExampleFound,
                (None, _, false) => Verdict::Unknown,
                (None, true, true) => Verdict::Holds,
                (None, false, true) => Verdict::NoExample,
            };
            PropertyReport {
                name: property.name,
                expectation: if always { "always" } else { "sometimes" },
                verdict,
                path: found.map(|(_, path)| path.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

type Counts = (usize, usize, usize);
/// Property name and its path, one readable line per step.
type Discoveries = Vec<(&'static str, Vec<String>)>;

fn summarize(checker: impl Checker<RaftModel>) -> (Counts, Discoveries) {
    let model = checker.model();
    let discoveries = checker
        .discoveries()
        .into_iter()
        .map(|(name, path)| (name, describe_path(model, &path)))
        .collect();
    let counts = (
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
    );
    (counts, discoveries)
}

/// VmHWM from /proc/self/status (Linux); `None` elsewhere.
fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
