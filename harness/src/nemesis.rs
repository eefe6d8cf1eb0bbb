//! The nemesis: a seeded schedule of faults, each recorded in the history
//! when it starts and when it ends, and all healed at the end.
//!
//! Each cycle: wait half an interval, inject one fault chosen from the
//! plan's set, hold it for an interval (a lag fault longer, see
//! [`crate::lag::hold`]), heal it. Faults are drawn in rounds,
//! each kind once per round in a seeded order, so that a mix of k kinds has
//! shown every one of them after k cycles.
//!
//! Every fault draws its targets among the nodes that are members now
//! (the registry, [`crate::membership`]), which the `member` nemesis
//! changes ([`crate::member`]); `member` and `transfer` record their end as
//! soon as the change is made, and the hold that follows has nothing to
//! undo.
//!
//! Kill and pause take the leader half the time (Jepsen's primaries); with
//! `--aim-uncommitted-tail` (set by the soak when its Raft coverage shows
//! few restarts with an uncommitted tail) the other half prefers a node
//! whose status shows entries beyond its commit index.

use crate::clock::{ClockMode, ClockSetting};
use crate::grudge::{self, GrudgeKind};
use crate::history::Recorder;
use crate::plan::Fault;
use crate::probe::Probe;
use crate::runtime::{AnyRuntime, Runtime};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

/// Salt that separates the nemesis's random stream from the generator's.
const NEMESIS_SEED_SALT: u64 = 0x006e_656d_6573_6973;
/// Largest clock bump, seconds (the issue's ±60 s).
const CLOCK_BUMP_S_MAX: i64 = 60;
/// How long libfaketime may take to notice a new setting (it rereads its
/// file once a second).
const CLOCK_SETTLE: Duration = Duration::from_millis(1500);
/// How close a node's reported offset must come to the injected one.
const CLOCK_AGREEMENT_MS: i64 = 2_000;

/// A fault in force, with what is needed to undo it.
enum Active {
    Kill(Vec<String>),
    Pause(Vec<String>),
    Partition(Vec<String>),
    Clock(Vec<String>, Option<JoinHandle<()>>),
    Lag(Vec<String>, crate::lag::Lagging),
    Disk(crate::disk::DiskActive),
    /// A membership change, already made and recorded.
    Member(Vec<String>),
    /// A leadership transfer, already made and recorded.
    Transfer(Vec<String>),
}

impl Active {
    fn fault(&self) -> Fault {
        match self {
            Active::Kill(_) => Fault::Kill,
            Active::Pause(_) => Fault::Pause,
            Active::Partition(_) => Fault::Partition,
            Active::Clock(..) => Fault::Clock,
            Active::Lag(..) => Fault::Lag,
            Active::Disk(d) => d.fault,
            Active::Member(_) => Fault::Member,
            Active::Transfer(_) => Fault::Transfer,
        }
    }

    fn targets(&self) -> &[String] {
        match self {
            Active::Kill(t)
            | Active::Pause(t)
            | Active::Partition(t)
            | Active::Clock(t, _)
            | Active::Lag(t, _)
            | Active::Member(t)
            | Active::Transfer(t) => t,
            Active::Disk(d) => &d.targets,
        }
    }
}

/// What the nemesis works with.
pub struct Nemesis {
    /// Faults to choose from.
    pub faults: Vec<Fault>,
    /// The nodes started and where they stand; faults choose among the
    /// members, and the `member` nemesis changes it.
    pub membership: crate::membership::Membership,
    /// How many nodes founded the cluster (`n1..=nN`).
    pub founders: usize,
    /// The workers' client, told of nodes the `member` nemesis starts.
    pub client: Arc<workloads::SutClient>,
    /// The cluster.
    pub runtime: Arc<Mutex<AnyRuntime>>,
    /// Status queries (to find the leader, to observe clocks).
    pub probe: Probe,
    /// Where events go.
    pub recorder: Recorder,
    /// Fault duration and spacing.
    pub interval: Duration,
    /// The faults in force, for the progress bar.
    pub active: Arc<std::sync::Mutex<Vec<String>>>,
    /// The seed.
    pub seed: u64,
    /// The nodes' election timeout (a slow disk is slower than half of it).
    pub election_timeout_ms: u64,
    /// Kill and pause prefer a node holding an uncommitted tail when they
    /// do not take the leader (`--aim-uncommitted-tail`).
    pub aim_uncommitted_tail: bool,
}

impl Nemesis {
    /// The nodes that are members now (voters and learners), which every
    /// fault chooses its targets among.
    pub fn members(&self) -> Vec<String> {
        self.membership.members()
    }

    /// The leader most members name, when it is a member (a removed node
    /// may still name the leader it last knew).
    pub async fn leader(&self) -> Option<String> {
        let members = self.members();
        let leader = self.probe.leader_among(&members).await?;
        members.contains(&leader).then_some(leader)
    }

    /// Runs fault cycles until `stop` turns true, then heals what is in force.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        if self.faults.is_empty() {
            return Ok(());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ NEMESIS_SEED_SALT);
        let mut round: Vec<Fault> = Vec::new();
        // Power losses so far (every other one takes every node).
        let mut losses = 0;
        loop {
            if sleep_or_stop(&mut stop, self.interval / 2).await {
                return Ok(());
            }
            if round.is_empty() {
                round.clone_from(&self.faults);
            }
            // Drawn as `choose` draws (a u32), so a single kind's schedule of
            // targets is what it was before rounds.
            let at = rng.gen_range(0..round.len() as u32) as usize;
            let fault = round.swap_remove(at);
            let mut active = self.inject(fault, &mut rng, &mut losses).await?;
            self.active.lock().expect("active lock").push(format!(
                "{} {}",
                fault.name(),
                active.targets().join(",")
            ));
            let mut stopped = sleep_or_stop(&mut stop, self.interval).await;
            if let (Active::Lag(_, lagging), false) = (&mut active, stopped) {
                stopped = crate::lag::hold(&self, lagging, &mut stop).await;
            }
            if let Active::Member(_) = active {
                crate::member::restore(&self, &mut rng).await?;
            }
            self.heal(active).await?;
            self.active.lock().expect("active lock").clear();
            if stopped {
                return Ok(());
            }
        }
    }

    /// Kill's and pause's target: the leader half the time (Jepsen's
    /// primaries), else, when aiming, a node holding an uncommitted tail,
    /// else any node. Without aiming the draws are what they always were.
    async fn pick_targets(&self, rng: &mut ChaCha8Rng) -> (Vec<String>, &'static str) {
        if rng.gen_bool(0.5) {
            if let Some(leader) = self.leader().await {
                return (vec![leader], "leader");
            }
        }
        if self.aim_uncommitted_tail {
            let holding = crate::probe::uncommitted_tails(&self.probe.statuses().await);
            if let Some(node) = holding.choose(rng) {
                return (vec![node.clone()], "uncommitted_tail");
            }
        }
        let members = self.members();
        (
            vec![members.choose(rng).expect("a member").clone()],
            "random",
        )
    }

    async fn inject(
        &self,
        fault: Fault,
        rng: &mut ChaCha8Rng,
        losses: &mut u64,
    ) -> anyhow::Result<Active> {
        match fault {
            Fault::Kill => {
                let (targets, how) = self.pick_targets(rng).await;
                self.recorder.nemesis(
                    Fault::Kill,
                    json!({"phase": "start", "targets": targets, "choice": how}),
                );
                for t in &targets {
                    self.runtime.lock().await.kill(t).await?;
                }
                Ok(Active::Kill(targets))
            }
            Fault::Pause => {
                let (targets, how) = self.pick_targets(rng).await;
                self.recorder.nemesis(
                    Fault::Pause,
                    json!({"phase": "start", "targets": targets, "choice": how}),
                );
                for t in &targets {
                    self.runtime.lock().await.pause(t).await?;
                }
                Ok(Active::Pause(targets))
            }
            Fault::Partition => self.partition(rng).await,
            Fault::Clock => self.clock(rng).await,
            Fault::Power | Fault::Torn | Fault::SlowDisk | Fault::DiskError => {
                let (rt, rec) = (&self.runtime, &self.recorder);
                let et = self.election_timeout_ms;
                let members = self.members();
                crate::disk::inject(fault, rng, losses, rt, rec, &members, et)
                    .await
                    .map(Active::Disk)
            }
            Fault::Lag => {
                let lagging = crate::lag::inject(self, rng).await?;
                Ok(Active::Lag(vec![lagging.target.clone()], lagging))
            }
            Fault::Member => Ok(Active::Member(crate::member::inject(self, rng).await?)),
            Fault::Transfer => Ok(Active::Transfer(crate::member::transfer(self, rng).await?)),
        }
    }

    async fn partition(&self, rng: &mut ChaCha8Rng) -> anyhow::Result<Active> {
        let nodes = self.members();
        let mut order = nodes.clone();
        order.shuffle(rng);
        let kinds = GrudgeKind::for_nodes(nodes.len());
        let mut kind = *kinds.choose(rng).expect("kinds");
        let g = match kind {
            GrudgeKind::IsolateLeader => match self.leader().await {
                Some(leader) => grudge::isolate(&leader, &nodes),
                None => {
                    kind = GrudgeKind::IsolateOne;
                    grudge::isolate(&order[0], &nodes)
                }
            },
            GrudgeKind::IsolateOne => grudge::isolate(&order[0], &nodes),
            GrudgeKind::Halves => grudge::halves(&order),
            GrudgeKind::MajoritiesRing => grudge::majorities_ring(&order),
            GrudgeKind::Bridge => grudge::bridge(&order),
        };
        let targets: Vec<String> = grudge::isolated_side(&g, &nodes);
        self.recorder.nemesis(
            Fault::Partition,
            json!({"phase": "start", "targets": targets, "grudge": g, "grudge_kind": kind}),
        );
        self.runtime.lock().await.partition(&g).await?;
        Ok(Active::Partition(targets))
    }

    async fn clock(&self, rng: &mut ChaCha8Rng) -> anyhow::Result<Active> {
        let target = self.members().choose(rng).expect("a member").clone();
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
        // A rate starts now: libfaketime would apply it from the process's
        // start, a jump the history would not show (offset_ms 0).
        let uptime_ms = match mode {
            ClockMode::Rate => self.probe.process_uptime_ms(&target).await,
            ClockMode::Bump | ClockMode::Strobe => None,
        };
        let applied = match uptime_ms {
            Some(up) => ClockSetting::rate_from_now(setting.rate, up),
            None => setting,
        };
        let faketime = applied.faketime();
        self.recorder.nemesis(Fault::Clock, json!({"phase": "start", "targets": [target], "mode": mode, "faketime": faketime, "offset_ms": (setting.offset_s * 1e3) as i64, "rate": setting.rate, "process_uptime_ms": uptime_ms}));
        self.runtime
            .lock()
            .await
            .set_clock(&target, applied)
            .await?;
        let (observed, observed_rate) = self.observe_clock(&target, mode, &setting).await;
        self.recorder.nemesis(Fault::Clock, json!({"phase": "observed", "targets": [target], "offset_ms": (setting.offset_s * 1e3) as i64, "observed_offset_ms": observed, "rate": setting.rate, "observed_rate": observed_rate}));
        let strobe = (mode == ClockMode::Strobe).then(|| {
            let runtime = self.runtime.clone();
            let target = target.clone();
            tokio::spawn(async move {
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
            })
        });
        Ok(Active::Clock(vec![target], strobe))
    }

    /// What the node's clock shows once libfaketime reread its file (about
    /// once a second): its offset from ours, ms, and for a rate its speed
    /// measured over [`CLOCK_SETTLE`] / 2 (an offset agreeing with zero
    /// says nothing about a rate that has not been read yet).
    async fn observe_clock(
        &self,
        target: &str,
        mode: ClockMode,
        setting: &ClockSetting,
    ) -> (Option<i64>, Option<f64>) {
        let injected_ms = (setting.offset_s * 1e3) as i64;
        if mode == ClockMode::Rate {
            tokio::time::sleep(CLOCK_SETTLE).await;
            let first = self.probe.clock_offset_ms(target).await;
            let from = std::time::Instant::now();
            tokio::time::sleep(CLOCK_SETTLE / 2).await;
            let second = self.probe.clock_offset_ms(target).await;
            let real_ms = from.elapsed().as_secs_f64() * 1e3;
            let rate = first
                .zip(second)
                .map(|(a, b)| ((1.0 + (b - a) as f64 / real_ms) * 100.0).round() / 100.0);
            return (second, rate);
        }
        let started = std::time::Instant::now();
        let mut observed = None;
        while started.elapsed() < CLOCK_SETTLE * 3 {
            tokio::time::sleep(CLOCK_SETTLE / 3).await;
            observed = self.probe.clock_offset_ms(target).await;
            if observed.is_some_and(|o| (o - injected_ms).abs() < CLOCK_AGREEMENT_MS) {
                break;
            }
        }
        (observed, None)
    }

    async fn heal(&self, active: Active) -> anyhow::Result<()> {
        if let Active::Member(_) | Active::Transfer(_) = active {
            return Ok(());
        }
        let f = active.fault();
        let targets = active.targets().to_vec();
        let mut rt = self.runtime.lock().await;
        match active {
            Active::Kill(t) => {
                for n in &t {
                    rt.restart(n).await?;
                }
            }
            Active::Pause(t) => {
                for n in &t {
                    rt.resume(n).await?;
                }
            }
            Active::Partition(_) | Active::Lag(..) => rt.heal().await?,
            Active::Clock(t, strobe) => {
                if let Some(s) = strobe {
                    s.abort();
                }
                for n in &t {
                    rt.reset_clock(n).await?;
                }
            }
            Active::Disk(d) => crate::disk::heal(&d, &mut rt).await?,
            Active::Member(_) | Active::Transfer(_) => {}
        }
        drop(rt);
        let value: Value = json!({"phase": "end", "targets": targets});
        self.recorder.nemesis(f, value);
        Ok(())
    }
}

/// Sleeps; true when told to stop first.
pub async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, period: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(period) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}
