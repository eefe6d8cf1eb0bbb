//! The nemesis: a seeded schedule of faults, each recorded in the history
//! when it starts and when it ends, and all healed at the end.
//!
//! Each cycle: wait half an interval, draw one fault chosen from the
//! plan's set and inject it, hold it for an interval (a lag fault longer),
//! heal it. Faults are drawn in rounds, each kind once per round in a
//! seeded order, so that a mix of k kinds has shown every one of them
//! after k cycles. With `--nemesis-overlap N` a cycle draws up to N
//! faults of different kinds from the rounds, each on nodes none of the
//! others touches (`overlap.rs`), injects them all, holds them together
//! and heals them in the reverse order (Jepsen's combined packages).
//!
//! Given a schedule instead (`harness replay`, `schedule.rs`), it draws
//! nothing: each recorded fault is injected and healed at its offsets
//! from the workload's start. Either way every fault done is logged, with
//! its planned and actual moments, for the run's `schedule.json`.
//!
//! Every fault draws its targets among the nodes that are members now
//! (the registry, `cluster/membership.rs`), which the `member` fault
//! changes; `member` and `transfer` record their end as soon as the change
//! is made, and the hold that follows has nothing to undo.
//!
//! Layers inside: this scheduler, then the registry of faults
//! (`faults/mod.rs`) and one file per fault (`faults/*.rs`), then what
//! faults share (`members.rs`: membership changes through the leader;
//! `disk.rs`: faultfs faults; `one_node.rs`: kill and pause;
//! `grudge.rs`: partition shapes), then the [`FaultPackage`] trait
//! (`package.rs`) and what every fault works with (`context.rs`).
//!
//! [`FaultPackage`]: package::FaultPackage

pub mod context;
pub mod damage;
pub mod disk;
pub mod faults;
pub mod grudge;
pub mod members;
pub mod one_node;
pub mod overlap;
pub mod package;
pub mod schedule;
pub mod shrink;
pub mod shrink_config;

use context::{sleep_or_stop, Context};
use faults::Fault;
use package::{Active, FaultPackage, Planned};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schedule::{Actual, ScheduledFault};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Salt that separates the nemesis's random stream from the generator's.
const NEMESIS_SEED_SALT: u64 = 0x006e_656d_6573_6973;

/// The scheduler and what it draws from.
pub struct Nemesis {
    /// Faults to choose from, in registry order.
    pub faults: Vec<Fault>,
    /// What the faults work with.
    pub context: Context,
    /// The faults in force, for the progress bar.
    pub active: Arc<std::sync::Mutex<Vec<String>>>,
    /// The seed.
    pub seed: u64,
    /// Faults in force at once at most (`--nemesis-overlap`; 1: one at
    /// a time).
    pub overlap: usize,
    /// A schedule to do instead of drawing one (`harness replay`): its
    /// faults at their offsets from the workload's start.
    pub script: Option<Vec<ScheduledFault>>,
    /// What was done, in order (the run's `schedule.json`).
    pub log: Arc<std::sync::Mutex<Vec<ScheduledFault>>>,
}

/// A fault being done: when it began, for the schedule's log.
struct Doing {
    fault: Fault,
    planned: Planned,
    /// When it was to start (a drawn fault: when it did).
    planned_start_ms: u64,
    start_ms: u64,
    in_force_ms: u64,
}

/// Draws of a fault that meets others of its cycle before it is left out.
const OVERLAP_DRAWS_MAX: usize = 3;

impl Nemesis {
    /// Runs fault cycles until `stop` turns true, then heals what is in
    /// force; `started` is the workload's start, which the schedule's
    /// offsets count from.
    pub async fn run(
        self,
        started: Instant,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        if let Some(script) = self.script.clone() {
            return self.replay(&script, started).await;
        }
        if self.faults.is_empty() {
            return Ok(());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ NEMESIS_SEED_SALT);
        let mut round: Vec<Fault> = Vec::new();
        loop {
            if sleep_or_stop(&mut stop, self.context.interval / 2).await {
                return Ok(());
            }
            let stopped = if self.overlap <= 1 {
                let fault = next_of_round(&mut round, &self.faults, &[], &mut rng);
                self.cycle(fault, started, &mut rng, &mut stop).await?
            } else {
                let drawn = self.draw_overlapping(&mut round, &mut rng).await?;
                self.cycle_overlapping(drawn, started, &mut rng, &mut stop)
                    .await?
            };
            if stopped {
                return Ok(());
            }
        }
    }

    /// Up to `overlap` faults of different kinds drawn for one cycle, each
    /// on nodes none of the others touches (`overlap.rs`): a fault whose
    /// draws meet the others [`OVERLAP_DRAWS_MAX`] times is left out.
    async fn draw_overlapping(
        &self,
        round: &mut Vec<Fault>,
        rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<Vec<(Fault, Planned)>> {
        let kinds = self.overlap.min(self.faults.len());
        let mut drawn: Vec<(Fault, Planned)> = Vec::new();
        for _ in 0..kinds {
            let taken: Vec<Fault> = drawn.iter().map(|(f, _)| *f).collect();
            let fault = next_of_round(round, &self.faults, &taken, rng);
            for _ in 0..OVERLAP_DRAWS_MAX {
                let planned = fault.draw(&self.context, rng).await?;
                if overlap::fits(fault, &planned, &drawn) {
                    drawn.push((fault, planned));
                    break;
                }
            }
        }
        Ok(drawn)
    }

    /// Several faults at once: injected in their order, held together,
    /// healed in the reverse order. Returns true when told to stop
    /// meanwhile (every fault is healed all the same).
    async fn cycle_overlapping(
        &self,
        drawn: Vec<(Fault, Planned)>,
        started: Instant,
        rng: &mut ChaCha8Rng,
        stop: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<bool> {
        let ctx = &self.context;
        let mut in_force: Vec<(Fault, Doing, Active)> = Vec::new();
        for (fault, planned) in drawn {
            let (doing, active) = self.inject(fault, planned, started).await?;
            in_force.push((fault, doing, active));
        }
        let mut stopped = sleep_or_stop(stop, ctx.interval).await;
        if !stopped {
            let holds = in_force.iter_mut().map(|(fault, _, active)| {
                let mut stop = stop.clone();
                async move { fault.hold(ctx, active, &mut stop).await }
            });
            stopped = futures_util::future::join_all(holds)
                .await
                .into_iter()
                .any(|s| s);
        }
        while let Some((fault, doing, active)) = in_force.pop() {
            let healing = fault.draw_heal(ctx, &active, rng).await?;
            let end_ms = since(started);
            self.heal(doing, active, healing, end_ms, end_ms).await?;
        }
        Ok(stopped)
    }

    /// Shows a fault in force on the progress bar.
    fn show(&self, fault: Fault, active: &Active) {
        self.active.lock().expect("active lock").push(format!(
            "{} {}",
            fault.name(),
            active.targets.join(",")
        ));
    }

    /// One fault: drawn, injected, held, healed. Returns true when told
    /// to stop meanwhile (the fault is healed all the same).
    async fn cycle(
        &self,
        fault: Fault,
        started: Instant,
        rng: &mut ChaCha8Rng,
        stop: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<bool> {
        let ctx = &self.context;
        let planned = fault.draw(ctx, rng).await?;
        let (doing, mut active) = self.inject(fault, planned, started).await?;
        let mut stopped = sleep_or_stop(stop, ctx.interval).await;
        if !stopped {
            stopped = fault.hold(ctx, &mut active, stop).await;
        }
        let healing = fault.draw_heal(ctx, &active, rng).await?;
        let end_ms = since(started);
        self.heal(doing, active, healing, end_ms, end_ms).await?;
        Ok(stopped)
    }

    /// Does `script` (a recorded schedule) without drawing: each fault
    /// injected at its start offset and healed at its end offset (at once
    /// when the one before ran late), its heal the recorded one. Every
    /// fault of the script is done, those after the workload's stop too:
    /// a drawn run's nemesis starts one more fault while the last
    /// workers' requests are still out, and a replay must do it as well.
    async fn replay(&self, script: &[ScheduledFault], started: Instant) -> anyhow::Result<()> {
        for s in script {
            let Some(fault) = Fault::from_name(&s.name) else {
                anyhow::bail!(
                    "schedule: unknown fault `{}` (expected one of {})",
                    s.name,
                    Fault::names().join(", ")
                );
            };
            tokio::time::sleep(until(started, s.start_ms)).await;
            let (mut doing, active) = self.inject(fault, s.planned(), started).await?;
            doing.planned_start_ms = s.start_ms;
            tokio::time::sleep(until(started, s.end_ms)).await;
            let actual_end_ms = since(started);
            self.heal(doing, active, s.heal.clone(), s.end_ms, actual_end_ms)
                .await?;
        }
        Ok(())
    }

    /// Injects a planned fault, for the progress bar and the log.
    async fn inject(
        &self,
        fault: Fault,
        planned: Planned,
        started: Instant,
    ) -> anyhow::Result<(Doing, Active)> {
        let start_ms = since(started);
        let active = fault.inject(&self.context, &planned).await?;
        self.show(fault, &active);
        let doing = Doing {
            fault,
            planned,
            planned_start_ms: start_ms,
            start_ms,
            in_force_ms: since(started),
        };
        Ok((doing, active))
    }

    /// Heals a fault and logs it: planned to end at `end_ms`, its heal
    /// begun at `actual_end_ms`.
    async fn heal(
        &self,
        doing: Doing,
        active: Active,
        healing: Option<Planned>,
        end_ms: u64,
        actual_end_ms: u64,
    ) -> anyhow::Result<()> {
        let healed = doing
            .fault
            .heal(&self.context, active, healing.as_ref())
            .await;
        self.active.lock().expect("active lock").clear();
        self.log.lock().expect("log lock").push(ScheduledFault {
            name: doing.fault.name().to_string(),
            targets: doing.planned.targets,
            params: doing.planned.params,
            heal: healing,
            start_ms: doing.planned_start_ms,
            end_ms,
            actual: Some(Actual {
                start_ms: doing.start_ms,
                in_force_ms: doing.in_force_ms,
                end_ms: actual_end_ms,
            }),
        });
        healed
    }
}

/// Milliseconds since `started`.
fn since(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

/// How long until `offset_ms` after `started` (zero when past).
fn until(started: Instant, offset_ms: u64) -> Duration {
    (started + Duration::from_millis(offset_ms)).saturating_duration_since(Instant::now())
}

/// The next fault of the round (every kind of the plan once per round, in
/// a seeded order; a new round when it is empty), skipping the kinds
/// `taken` already in this cycle (left in the round for a later cycle).
fn next_of_round(
    round: &mut Vec<Fault>,
    faults: &[Fault],
    taken: &[Fault],
    rng: &mut ChaCha8Rng,
) -> Fault {
    if round.iter().all(|f| taken.contains(f)) {
        let fresh: Vec<Fault> = faults
            .iter()
            .copied()
            .filter(|f| !round.contains(f))
            .collect();
        round.extend(fresh);
    }
    let open: Vec<usize> = (0..round.len())
        .filter(|i| !taken.contains(&round[*i]))
        .collect();
    // Drawn as `choose` draws (a u32), so a single kind's schedule of
    // targets is what it was before rounds.
    let at = open[rng.gen_range(0..open.len() as u32) as usize];
    round.swap_remove(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_takes_kinds_of_the_round_it_has_not_taken_and_one_at_a_time_draws_as_before() {
        let faults = [Fault::Kill, Fault::Pause, Fault::Partition];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut round = Vec::new();
        let mut cycle = Vec::new();
        for _ in 0..2 {
            cycle.push(next_of_round(&mut round, &faults, &cycle, &mut rng));
        }
        assert_ne!(cycle[0], cycle[1]);
        // The round's last kind, then a fresh round without it this cycle.
        let last = next_of_round(&mut round, &faults, &[], &mut rng);
        let taken = [last];
        let next = next_of_round(&mut round, &faults, &taken, &mut rng);
        assert_ne!(next, last);
        assert!(
            round.len() == 2 && round.contains(&last),
            "kept for a later cycle"
        );
        // One at a time: the draws the scheduler always made.
        let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(3), ChaCha8Rng::seed_from_u64(3));
        let mut round = Vec::new();
        let mut old_round: Vec<Fault> = Vec::new();
        for _ in 0..7 {
            if old_round.is_empty() {
                old_round = faults.to_vec();
            }
            let at = b.gen_range(0..old_round.len() as u32) as usize;
            let old = old_round.swap_remove(at);
            assert_eq!(next_of_round(&mut round, &faults, &[], &mut a), old);
        }
    }
}
