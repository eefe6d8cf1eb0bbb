//! Delta debugging of a failing schedule (DEMi, Zeller's ddmin): the
//! smallest schedule found that still reproduces the same anomaly kind.
//!
//! Steps, in order, each candidate tried up to `reruns` times (a flaky
//! failure counts when any run reproduces):
//!
//! 1. remove faults: ddmin over the list (complements of ever smaller
//!    chunks), ending with every single removal tried, the empty schedule
//!    included: the result is 1-minimal (no single removal still fails);
//! 2. shorten: each fault's hold halved while the candidate still fails,
//!    down to [`FAULT_MS_MIN`];
//! 3. move later: each fault, last first, moved as late as it goes
//!    before the next one (or the run's end), else half as far;
//! 4. configuration: each node setting the run drew unlike its default
//!    put back to the default, one at a time, in the candidate's command
//!    line; kept when the candidate still fails (`shrink_config.rs`).
//!
//! Every candidate's run is cut [`Shrinker::tail_ms`] after its last
//! fault's end (never longer than the original), so that fewer faults run
//! shorter. What runs a candidate, judges it and says when the budget is
//! spent is the [`Oracle`]'s: this module is pure and does no IO.

use crate::nemesis::schedule::{Schedule, ScheduledFault};
use crate::nemesis::shrink_config::{
    blocked, flag_value, pair, with_flag, ConfigShrink, Setting, Skipped,
};
use serde::Serialize;
use serde_json::Value;

/// The shortest hold a fault is shortened to, ms.
pub const FAULT_MS_MIN: u64 = 1_000;
/// The least a fault is moved later, ms.
pub const MOVE_MS_MIN: u64 = 1_000;

/// One run of a candidate as the oracle judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The same anomaly kind came back.
    pub reproduced: bool,
    /// The anomaly kinds the run found (`checker:kind`).
    pub anomalies: Vec<String>,
    /// The run's plan as its `test.json` holds it, when the oracle has
    /// one: a reproducing candidate's replaces the schedule's `plan`, so
    /// that the shrunk schedule names the configuration it ran with.
    pub plan: Option<Value>,
}

/// What runs candidates: the harness (real runs) or a test's fake.
#[allow(async_fn_in_trait)]
pub trait Oracle {
    /// Runs `candidate` once and judges it.
    async fn run(&mut self, candidate: &Schedule) -> anyhow::Result<Outcome>;
    /// Whether the budget is spent (no further run is started).
    fn exhausted(&self) -> bool;
    /// A better schedule was found (written to disk, for Ctrl-C).
    fn improved(&mut self, shrunk: &Shrunk) -> anyhow::Result<()>;
    /// One line of progress.
    fn note(&mut self, line: &str);
}

/// One candidate tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trial {
    /// The step that made it (`remove`, `shorten`, `later`, `config`).
    pub step: &'static str,
    /// The `config` step's setting, as `name drawn → default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
    /// Its faults.
    pub faults: usize,
    /// Runs made (at most `reruns`; fewer when one reproduced).
    pub runs: u32,
    /// Whether one reproduced.
    pub reproduced: bool,
}

/// The result so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shrunk {
    /// The smallest failing schedule found.
    pub schedule: Schedule,
    /// The anomaly kinds its last reproducing run found.
    pub anomalies: Vec<String>,
    /// Every candidate tried, in order.
    pub trials: Vec<Trial>,
    /// No single removal from `schedule` still fails (every one was
    /// tried and passed its reruns).
    pub one_minimal: bool,
    /// The budget ran out before the steps ended.
    pub out_of_budget: bool,
    /// The node settings the run drew unlike their defaults: which were
    /// put back, which the failure needs, which were not tried.
    pub config: ConfigShrink,
}

/// The delta debugger.
pub struct Shrinker<'o, O: Oracle> {
    /// What runs candidates.
    pub oracle: &'o mut O,
    /// Runs per candidate at most.
    pub reruns: u32,
    /// A candidate's run ends this long after its last fault, ms.
    pub tail_ms: u64,
    /// The original run's length, ms (no candidate runs longer).
    pub time_limit_ms: u64,
    /// Each node setting's flag and default, in the order the `config`
    /// step tries them (empty: that step does nothing).
    pub defaults: Vec<Setting>,
}

/// A candidate's verdict: fails, passes, or the budget ran out first.
enum Tried {
    Fails(Vec<String>),
    Passes,
    OutOfBudget,
}

impl<O: Oracle> Shrinker<'_, O> {
    /// Shrinks `failing` (which reproduced, with `anomalies`): the four
    /// steps in order, each candidate judged by the oracle; stops early
    /// when the budget is spent, keeping the best so far.
    pub async fn shrink(
        &mut self,
        failing: Schedule,
        anomalies: Vec<String>,
    ) -> anyhow::Result<Shrunk> {
        let config = ConfigShrink::untried(&failing.command_line, &self.defaults);
        let mut best = Shrunk {
            schedule: self.cut(failing),
            anomalies,
            trials: Vec::new(),
            one_minimal: false,
            out_of_budget: false,
            config,
        };
        self.oracle.improved(&best)?;
        let done = self.remove(&mut best).await?
            && self.shorten(&mut best).await?
            && self.later(&mut best).await?;
        if done {
            self.reset_config(&mut best).await?;
        }
        Ok(best)
    }

    /// Step 1: ddmin over the faults. Returns false when out of budget.
    async fn remove(&mut self, best: &mut Shrunk) -> anyhow::Result<bool> {
        let mut n = 2;
        loop {
            let faults = best.schedule.faults.clone();
            let len = faults.len();
            if len == 0 {
                best.one_minimal = true;
                return Ok(true);
            }
            let n_now = n.min(len);
            let mut reduced = false;
            for chunk in chunks(len, n_now) {
                let kept: Vec<ScheduledFault> = faults
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !chunk.contains(i))
                    .map(|(_, f)| f.clone())
                    .collect();
                match self.try_faults(best, "remove", kept).await? {
                    Tried::OutOfBudget => return Ok(false),
                    Tried::Fails(_) => {
                        reduced = true;
                        break;
                    }
                    Tried::Passes => {}
                }
            }
            if reduced {
                n = (n_now - 1).max(2);
            } else if n_now >= len {
                best.one_minimal = true;
                return Ok(true);
            } else {
                n = (2 * n_now).min(len);
            }
        }
    }

    /// Step 2: each fault's hold halved while it still fails.
    async fn shorten(&mut self, best: &mut Shrunk) -> anyhow::Result<bool> {
        for i in 0..best.schedule.faults.len() {
            loop {
                let f = &best.schedule.faults[i];
                let half = f.duration_ms() / 2;
                if half < FAULT_MS_MIN {
                    break;
                }
                let mut faults = best.schedule.faults.clone();
                faults[i].end_ms = faults[i].start_ms + half;
                match self.try_faults(best, "shorten", faults).await? {
                    Tried::OutOfBudget => return Ok(false),
                    Tried::Fails(_) => {}
                    Tried::Passes => break,
                }
            }
        }
        Ok(true)
    }

    /// Step 3: each fault, last first, moved later: as late as it goes
    /// (to the next fault's start, or the original run's end less the
    /// tail), else half as far; the first that still fails is kept.
    async fn later(&mut self, best: &mut Shrunk) -> anyhow::Result<bool> {
        for i in (0..best.schedule.faults.len()).rev() {
            let faults = &best.schedule.faults;
            let bound = faults
                .get(i + 1)
                .map_or(self.time_limit_ms.saturating_sub(self.tail_ms), |next| {
                    next.start_ms
                });
            let slack = bound.saturating_sub(faults[i].end_ms);
            for shift in [slack, slack / 2] {
                if shift < MOVE_MS_MIN {
                    break;
                }
                let mut moved = best.schedule.faults.clone();
                moved[i].start_ms += shift;
                moved[i].end_ms += shift;
                match self.try_faults(best, "later", moved).await? {
                    Tried::OutOfBudget => return Ok(false),
                    Tried::Fails(_) => break,
                    Tried::Passes => {}
                }
            }
        }
        Ok(true)
    }

    /// Step 4: each setting unlike its default put back, one at a time;
    /// kept when the candidate still fails. Returns false when out of
    /// budget (what was not tried stays in `config.untried`).
    async fn reset_config(&mut self, best: &mut Shrunk) -> anyhow::Result<bool> {
        let defaults = self.defaults.clone();
        for setting in &defaults {
            let line = best.schedule.command_line.clone();
            let Some(drawn) = flag_value(&line, &setting.flag).map(str::to_string) else {
                continue;
            };
            if drawn == setting.default {
                continue;
            }
            let [d, v] = pair(&drawn, &setting.default);
            let name = setting.name.clone();
            best.config.untried.remove(&name);
            if let Some(why) = blocked(setting, &best.schedule) {
                self.oracle
                    .note(&format!("config: {name} stays {drawn}, not tried: {why}"));
                let skipped = Skipped {
                    drawn: d,
                    default: v,
                    why,
                };
                best.config.skipped.insert(name, skipped);
                continue;
            }
            let mut candidate = best.schedule.clone();
            candidate.command_line = with_flag(&line, &setting.flag, &setting.default);
            let change = format!("{name} {drawn} → {}", setting.default);
            let what = format!("{change} ({} faults)", candidate.faults.len());
            match self
                .try_candidate(best, "config", candidate, Some(change), &what)
                .await?
            {
                Tried::Fails(_) => {
                    self.oracle.note(&format!(
                        "config: {name} back to its default {}",
                        setting.default
                    ));
                    best.config.reset.insert(name, [d, v]);
                    self.oracle.improved(best)?;
                }
                Tried::Passes => {
                    self.oracle.note(&format!(
                        "config: {name} {drawn} kept: the failure needs it"
                    ));
                    best.config.needed.insert(name, [d, v]);
                    self.oracle.improved(best)?;
                }
                Tried::OutOfBudget => {
                    best.config.untried.insert(name, [d, v]);
                    self.oracle.improved(best)?;
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Tries `best` with `faults` instead; keeps it when it fails.
    async fn try_faults(
        &mut self,
        best: &mut Shrunk,
        step: &'static str,
        faults: Vec<ScheduledFault>,
    ) -> anyhow::Result<Tried> {
        let mut candidate = best.schedule.clone();
        candidate.faults = faults;
        let candidate = self.cut(candidate);
        let described: Vec<String> = candidate.faults.iter().map(|f| f.describe()).collect();
        let what = format!(
            "{} faults [{}] (best {})",
            candidate.faults.len(),
            described.join("; "),
            best.schedule.faults.len()
        );
        self.try_candidate(best, step, candidate, None, &what).await
    }

    /// Runs `candidate` up to `reruns` times; when one reproduces it
    /// becomes `best` (and the oracle hears of it). `setting` names the
    /// `config` step's change, `what` the candidate in the progress.
    async fn try_candidate(
        &mut self,
        best: &mut Shrunk,
        step: &'static str,
        mut candidate: Schedule,
        setting: Option<String>,
        what: &str,
    ) -> anyhow::Result<Tried> {
        self.oracle.note(&format!(
            "{step}: trying {what}, up to {} runs",
            self.reruns
        ));
        let mut runs = 0;
        let mut tried = Tried::Passes;
        while runs < self.reruns {
            if self.oracle.exhausted() {
                tried = Tried::OutOfBudget;
                break;
            }
            runs += 1;
            let outcome = self.oracle.run(&candidate).await?;
            if outcome.reproduced {
                if let Some(plan) = outcome.plan {
                    candidate.plan = plan;
                }
                tried = Tried::Fails(outcome.anomalies);
                break;
            }
        }
        best.trials.push(Trial {
            step,
            setting,
            faults: candidate.faults.len(),
            runs,
            reproduced: matches!(tried, Tried::Fails(_)),
        });
        match &tried {
            Tried::Fails(anomalies) => {
                self.oracle
                    .note(&format!("{step}: reproduced in run {runs}: kept"));
                best.schedule = candidate;
                best.anomalies = anomalies.clone();
                self.oracle.improved(best)?;
            }
            Tried::Passes => self
                .oracle
                .note(&format!("{step}: passed {runs} runs: dropped")),
            Tried::OutOfBudget => {
                best.out_of_budget = true;
                self.oracle.note("budget spent: keeping the best so far");
                self.oracle.improved(best)?;
            }
        }
        Ok(tried)
    }

    /// The schedule with its run cut `tail_ms` after its last fault ends
    /// (a whole second, at least one tail, never past the original).
    fn cut(&self, mut schedule: Schedule) -> Schedule {
        let last_end = schedule.faults.last().map_or(0, |f| f.end_ms);
        let wanted_ms = (last_end + self.tail_ms).min(self.time_limit_ms);
        schedule.clock.time_limit_s = wanted_ms.div_ceil(1000).max(1);
        schedule
    }
}

/// `len` indices in `n` contiguous chunks of near-equal size.
fn chunks(len: usize, n: usize) -> Vec<std::ops::Range<usize>> {
    (0..n).map(|k| k * len / n..(k + 1) * len / n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::schedule::{ScheduleClock, SCHEDULE_VERSION};
    use serde_json::Value;

    fn fault(name: &str, start_s: u64) -> ScheduledFault {
        ScheduledFault {
            name: name.into(),
            targets: vec!["n1".into()],
            params: Value::Null,
            heal: None,
            start_ms: start_s * 1000,
            end_ms: start_s * 1000 + 10_000,
            actual: None,
        }
    }

    fn schedule(faults: Vec<ScheduledFault>) -> Schedule {
        Schedule {
            version: SCHEDULE_VERSION,
            seed: 1,
            clock: ScheduleClock {
                time_limit_s: 120,
                nemesis_interval_s: 10,
                recovery_s: 10,
                election_timeout_ms: 1000,
            },
            command_line: String::new(),
            plan: Value::Null,
            replay_of: None,
            faults,
        }
    }

    /// Fails when a `kill` held at least 2 s and a `partition` starting
    /// at or after 40 s are both in the schedule, and only on every
    /// `flaky`-th run (deterministic); the budget is a number of runs.
    struct Fake {
        runs: u32,
        flaky: u32,
        budget_runs: u32,
        improvements: u32,
    }

    impl Oracle for Fake {
        async fn run(&mut self, c: &Schedule) -> anyhow::Result<Outcome> {
            self.runs += 1;
            let kill = c
                .faults
                .iter()
                .any(|f| f.name == "kill" && f.duration_ms() >= 2_000);
            let partition = c.faults.iter().any(|f| f.name == "partition");
            let fails = kill && partition && self.runs % self.flaky == 0;
            Ok(Outcome {
                reproduced: fails,
                anomalies: if fails {
                    vec!["ordering:lost".into()]
                } else {
                    vec![]
                },
                plan: None,
            })
        }
        fn exhausted(&self) -> bool {
            self.runs >= self.budget_runs
        }
        fn improved(&mut self, _: &Shrunk) -> anyhow::Result<()> {
            self.improvements += 1;
            Ok(())
        }
        fn note(&mut self, _: &str) {}
    }

    fn original() -> Schedule {
        schedule(vec![
            fault("pause", 5),
            fault("kill", 20),
            fault("clock", 35),
            fault("partition", 50),
            fault("lag", 65),
            fault("transfer", 80),
            fault("member", 95),
        ])
    }

    fn shrink(flaky: u32, reruns: u32, budget_runs: u32) -> (Shrunk, u32) {
        let mut fake = Fake {
            runs: 0,
            flaky,
            budget_runs,
            improvements: 0,
        };
        let mut shrinker = Shrinker {
            oracle: &mut fake,
            reruns,
            tail_ms: 10_000,
            time_limit_ms: 120_000,
            defaults: Vec::new(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let shrunk = rt
            .block_on(shrinker.shrink(original(), vec!["ordeal:lost".into()]))
            .unwrap();
        (shrunk, fake.runs)
    }

    #[test]
    fn ddmin_finds_the_two_faults_that_matter_then_shortens_and_moves_them() {
        let (shrunk, runs) = shrink(1, 1, 1_000);
        let s = &shrunk.schedule;
        let names: Vec<&str> = s.faults.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["kill", "partition"]);
        assert!(shrunk.one_minimal && !shrunk.out_of_budget);
        // kill 10 s → 5 → 2.5 s (1.25 s passes); partition 10 → 1.25 s.
        assert_eq!(s.faults[0].duration_ms(), 2_500);
        assert_eq!(s.faults[1].duration_ms(), 1_250);
        // Moved as late as they go: the partition to the original's end
        // less the tail, the kill up to the partition's start.
        assert_eq!(s.faults[1].end_ms, 110_000);
        assert_eq!(s.faults[0].end_ms, s.faults[1].start_ms);
        // The run is cut one tail after the last fault.
        assert_eq!(
            s.clock.time_limit_s,
            (s.faults[1].end_ms + 10_000).div_ceil(1000)
        );
        assert_eq!(runs as usize, shrunk.trials.len());
        assert_eq!(runs, 23, "a deterministic oracle takes the same path");
    }

    #[test]
    fn a_flaky_failure_counts_when_any_rerun_reproduces() {
        // Fails only on every third run: one run per candidate loses the
        // pair, three runs per candidate keep it.
        let (once, _) = shrink(3, 1, 1_000);
        assert_ne!(once.schedule.faults.len(), 2);
        let (thrice, _) = shrink(3, 3, 1_000);
        let names: Vec<&str> = thrice
            .schedule
            .faults
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(names, ["kill", "partition"]);
        assert!(thrice.trials.iter().any(|t| t.reproduced && t.runs > 1));
    }

    #[test]
    fn the_budget_stops_it_keeping_the_best_so_far() {
        let (shrunk, runs) = shrink(1, 1, 3);
        assert_eq!(runs, 3);
        assert!(shrunk.out_of_budget && !shrunk.one_minimal);
        assert!(shrunk.schedule.faults.len() < 7, "{:?}", shrunk.trials);
        assert!(shrunk.schedule.faults.iter().any(|f| f.name == "kill"));
    }
}
