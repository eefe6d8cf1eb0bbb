//! The nemesis: a seeded schedule of faults, each recorded in the history
//! when it starts and when it ends, and all healed at the end.
//!
//! Each cycle: wait half an interval, draw one fault chosen from the
//! plan's set and inject it, hold it for an interval (a lag fault longer),
//! heal it. Faults are drawn in rounds, each kind once per round in a
//! seeded order, so that a mix of k kinds has shown every one of them
//! after k cycles.
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
pub mod package;

use context::{sleep_or_stop, Context};
use faults::Fault;
use package::FaultPackage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
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
}

impl Nemesis {
    /// Runs fault cycles until `stop` turns true, then heals what is in force.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        if self.faults.is_empty() {
            return Ok(());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ NEMESIS_SEED_SALT);
        let mut round: Vec<Fault> = Vec::new();
        loop {
            if sleep_or_stop(&mut stop, self.context.interval / 2).await {
                return Ok(());
            }
            if round.is_empty() {
                round.clone_from(&self.faults);
            }
            // Drawn as `choose` draws (a u32), so a single kind's schedule of
            // targets is what it was before rounds.
            let at = rng.gen_range(0..round.len() as u32) as usize;
            let fault = round.swap_remove(at);
            if self.cycle(fault, &mut rng, &mut stop).await? {
                return Ok(());
            }
        }
    }

    /// One fault: drawn, injected, held, healed. Returns true when told
    /// to stop meanwhile (the fault is healed all the same).
    async fn cycle(
        &self,
        fault: Fault,
        rng: &mut ChaCha8Rng,
        stop: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<bool> {
        let ctx = &self.context;
        let planned = fault.draw(ctx, rng).await?;
        let mut active = fault.inject(ctx, &planned).await?;
        self.active.lock().expect("active lock").push(format!(
            "{} {}",
            fault.name(),
            active.targets.join(",")
        ));
        let mut stopped = sleep_or_stop(stop, ctx.interval).await;
        if !stopped {
            stopped = fault.hold(ctx, &mut active, stop).await;
        }
        let healing = fault.draw_heal(ctx, &active, rng).await?;
        fault.heal(ctx, active, healing.as_ref()).await?;
        self.active.lock().expect("active lock").clear();
        Ok(stopped)
    }
}
