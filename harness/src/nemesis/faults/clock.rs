//! The `clock` fault: one node's clock bumped by up to a minute either
//! way, strobed between that offset and real time every second, or run at
//! half or twice the speed (from now on: libfaketime would apply a rate
//! from the process's start, so the uptime is cancelled in the offset);
//! what the node then reports is recorded beside what was set. Reset at
//! the heal, and on every node at the end of a run.

use crate::nemesis::context::Context;
use crate::nemesis::package::{Active, FaultPackage, Planned};
use crate::runtime::clock::{ClockSetting, FAKETIME_LIB};
use crate::runtime::verbs::{Runtime, Verb};
use crate::runtime::{AnyRuntime, RuntimeKind};
use crate::sut::{Ability, Sut, System};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Largest clock bump, seconds (the issue's ±60 s).
const CLOCK_BUMP_S_MAX: i64 = 60;
/// How long libfaketime may take to notice a new setting (it rereads its
/// file once a second).
const CLOCK_SETTLE: Duration = Duration::from_millis(1500);
/// How close a node's reported offset must come to the injected one.
const CLOCK_AGREEMENT_MS: i64 = 2_000;

/// See the module doc.
pub struct Clock;

/// How the fault disturbs a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockMode {
    /// Jump by an offset and stay there.
    Bump,
    /// Run slower or faster.
    Rate,
    /// Jump back and forth between the offset and real time each second.
    Strobe,
}

impl ClockMode {
    /// Every mode, in the order the fault draws from (the order is part
    /// of the seeded schedule).
    pub const ALL: [ClockMode; 3] = [ClockMode::Bump, ClockMode::Rate, ClockMode::Strobe];
}

/// The drawn disturbance: the mode and the setting (before a rate's
/// uptime is cancelled, which is read when it is injected).
#[derive(Debug, Serialize, Deserialize)]
struct Disturbance {
    mode: ClockMode,
    offset_s: f64,
    rate: f64,
}

impl FaultPackage for Clock {
    fn name(&self) -> &'static str {
        "clock"
    }

    fn verbs(&self) -> &'static [Verb] {
        &[Verb::Clock]
    }

    fn refused_by(&self, sut: Sut) -> Option<&'static str> {
        sut.lacks(Ability::Faketime)
    }

    fn check_here(&self, runtime: RuntimeKind) -> anyhow::Result<()> {
        if runtime == RuntimeKind::Process && !Path::new(FAKETIME_LIB).is_file() {
            anyhow::bail!(
                "--nemesis clock needs libfaketime ({FAKETIME_LIB}): apt-get install libfaketime"
            );
        }
        Ok(())
    }

    async fn draw(&self, ctx: &Context, rng: &mut ChaCha8Rng) -> anyhow::Result<Planned> {
        let target = ctx.members().choose(rng).expect("a member").clone();
        let mode = *ClockMode::ALL.choose(rng).expect("modes");
        let setting = match mode {
            ClockMode::Rate => ClockSetting {
                offset_s: 0.0,
                rate: *[0.5, 2.0].choose(rng).expect("rates"),
            },
            ClockMode::Bump | ClockMode::Strobe => {
                let magnitude = rng.gen_range(5..=CLOCK_BUMP_S_MAX);
                ClockSetting {
                    offset_s: if rng.gen_bool(0.5) {
                        magnitude as f64
                    } else {
                        -(magnitude as f64)
                    },
                    rate: 1.0,
                }
            }
        };
        let drawn = Disturbance {
            mode,
            offset_s: setting.offset_s,
            rate: setting.rate,
        };
        Ok(Planned::new(vec![target], drawn))
    }

    async fn inject(&self, ctx: &Context, planned: &Planned) -> anyhow::Result<Active> {
        let Disturbance {
            mode,
            offset_s,
            rate,
        } = planned.params(self.name())?;
        let setting = ClockSetting { offset_s, rate };
        let target = planned.targets[0].clone();
        // A rate starts now: libfaketime would apply it from the process's
        // start, a jump the history would not show (offset_ms 0).
        let uptime_ms = match mode {
            ClockMode::Rate => ctx.probe.process_uptime_ms(&target).await,
            ClockMode::Bump | ClockMode::Strobe => None,
        };
        let applied = match uptime_ms {
            Some(up) => ClockSetting::rate_from_now(setting.rate, up),
            None => setting,
        };
        let faketime = applied.faketime();
        ctx.record(self.name(), json!({"phase": "start", "targets": [target], "mode": mode, "faketime": faketime, "offset_ms": (setting.offset_s * 1e3) as i64, "rate": setting.rate, "process_uptime_ms": uptime_ms}));
        ctx.runtime.lock().await.set_clock(&target, applied).await?;
        let (observed, observed_rate) = observe(ctx, &target, mode, &setting).await;
        ctx.record(self.name(), json!({"phase": "observed", "targets": [target], "offset_ms": (setting.offset_s * 1e3) as i64, "observed_offset_ms": observed, "rate": setting.rate, "observed_rate": observed_rate}));
        let strobe = (mode == ClockMode::Strobe).then(|| strobe(ctx, &target, setting));
        Ok(Active::new(vec![target], strobe))
    }

    async fn heal(
        &self,
        ctx: &Context,
        mut active: Active,
        _: Option<&Planned>,
    ) -> anyhow::Result<()> {
        if let Some(strobe) = active.undo::<Option<Strobe>>() {
            drop(strobe.take());
        }
        {
            let mut rt = ctx.runtime.lock().await;
            for node in &active.targets {
                rt.reset_clock(node).await?;
            }
        }
        ctx.record_end(self.name(), &active.targets);
        Ok(())
    }

    async fn teardown(&self, rt: &mut AnyRuntime, node: &str) -> anyhow::Result<()> {
        rt.reset_clock(node).await
    }
}

/// The task strobing a clock, aborted when dropped: by the heal, and on
/// every other way the fault in force is dropped (the nemesis failing
/// between inject and heal), so that the task never outlives the fault
/// (nor holds the runtime past the run's teardown).
struct Strobe(JoinHandle<()>);

impl Drop for Strobe {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Switches the node's clock between the offset and real time every
/// second, until dropped.
fn strobe(ctx: &Context, target: &str, setting: ClockSetting) -> Strobe {
    let runtime = ctx.runtime.clone();
    let target = target.to_string();
    Strobe(tokio::spawn(async move {
        let mut on = false;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let s = ClockSetting {
                offset_s: if on { setting.offset_s } else { 0.0 },
                rate: 1.0,
            };
            let _ = runtime.lock().await.set_clock(&target, s).await;
            on = !on;
        }
    }))
}

/// What the node's clock shows once libfaketime reread its file (about
/// once a second): its offset from ours, ms, and for a rate its speed
/// ([`observe_rate`]; an offset agreeing with zero says nothing about a
/// rate that has not been read yet).
async fn observe(
    ctx: &Context,
    target: &str,
    mode: ClockMode,
    setting: &ClockSetting,
) -> (Option<i64>, Option<f64>) {
    let injected_ms = (setting.offset_s * 1e3) as i64;
    if mode == ClockMode::Rate {
        tokio::time::sleep(CLOCK_SETTLE).await;
        return observe_rate(ctx, target).await;
    }
    let started = std::time::Instant::now();
    let mut observed = None;
    while started.elapsed() < CLOCK_SETTLE * 3 {
        tokio::time::sleep(CLOCK_SETTLE / 3).await;
        observed = ctx.probe.clock_offset_ms(target).await;
        if observed.is_some_and(|o| (o - injected_ms).abs() < CLOCK_AGREEMENT_MS) {
            break;
        }
    }
    (observed, None)
}

/// Rate windows measured at most before two in a row agree.
const RATE_WINDOWS_MAX: usize = 4;
/// How far two windows' rates may differ and still agree.
const RATE_AGREEMENT: f64 = 0.05;

/// The node's clock speed, measured over windows of [`CLOCK_SETTLE`] / 2
/// until two in a row agree: a window in which libfaketime rereads its
/// file holds the jump the new setting makes (seen over ssh under load:
/// rate 2 measured as 5.57), the next one does not. The last offset and
/// the last window's rate (`None` when the node did not answer).
async fn observe_rate(ctx: &Context, target: &str) -> (Option<i64>, Option<f64>) {
    let mut before = ctx.probe.clock_offset_ms(target).await;
    let mut from = std::time::Instant::now();
    let mut last_rate: Option<f64> = None;
    for _ in 0..RATE_WINDOWS_MAX {
        tokio::time::sleep(CLOCK_SETTLE / 2).await;
        let after = ctx.probe.clock_offset_ms(target).await;
        let real_ms = from.elapsed().as_secs_f64() * 1e3;
        from = std::time::Instant::now();
        let rate = before
            .zip(after)
            .map(|(a, b)| ((1.0 + (b - a) as f64 / real_ms) * 100.0).round() / 100.0);
        before = after;
        if let (Some(a), Some(b)) = (last_rate, rate) {
            if (a - b).abs() <= RATE_AGREEMENT * b.abs().max(1.0) {
                return (after, rate);
            }
        }
        last_rate = rate;
    }
    (before, last_rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_strobe_dropped_with_its_fault_unhealed_stops() {
        let ticks = Arc::new(AtomicU64::new(0));
        let counted = ticks.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                counted.fetch_add(1, Ordering::Relaxed);
            }
        });
        // What inject returns; the nemesis fails before the heal and drops it.
        let active = Active::new(vec!["n1".to_string()], Some(Strobe(task)));
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(active);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let after_drop = ticks.load(Ordering::Relaxed);
        assert!(after_drop > 0);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            ticks.load(Ordering::Relaxed),
            after_drop,
            "the strobe still runs"
        );
    }
}
