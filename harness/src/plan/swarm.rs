//! Swarm configuration (issue 29; etcd's robustness tests draw their
//! cluster's configuration per run): unless `--swarm off`, each run draws
//! the node count and ordeal-node's settings ([`Tuning`]) from its seed,
//! over ranges a user could deploy; a flag given on the command line pins
//! its value. Every setting is drawn, in one fixed order, whether pinned or
//! not, so that pinning one never changes what the others draw.
//!
//! Not drawn: a WAL segment size, which ordeal-node does not have (it
//! moves to a new segment at each compaction, so the snapshot interval
//! sets the segments' size). etcd takes none of ordeal-node's settings
//! (`Ability::Tuning`): an etcd run draws its node count only.

use crate::sut::{Ability, Sut, System, Tuning};
use anyhow::bail;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Salt that separates the swarm's random stream from the generator's
/// and the nemesis's.
const SWARM_SEED_SALT: u64 = 0x0073_7761_726d;

/// The node count with `--swarm off` (and the harness's before the swarm).
pub const NODES_DEFAULT: usize = 3;

/// ordeal-node's settings with `--swarm off`: the node's own defaults,
/// but a 32 KiB snapshot interval, so that a 60 s run at 200 ops/s takes
/// several snapshots on every node.
pub const TUNING_DEFAULT: Tuning = Tuning {
    snapshot_interval_bytes: 32 << 10,
    snapshot_catchup_entries: 4,
    max_message_count: 500,
    preferred_max_bytes: 2 << 20,
    batch_timeout_ms: 20,
    max_inflight_blocks: 5,
    tick_ms: 100,
    election_tick: 10,
    cut_when_idle: true,
};

/// The node's own default snapshot interval (20 MiB), drawn as itself a
/// quarter of the time: issue 20's joining node needed exactly it.
const SNAPSHOT_NODE_DEFAULT: u64 = 20 << 20;
/// Catch-up margins drawn (Fabric's 4 among them; 0: nothing behind).
const CATCHUP_ENTRIES: [u64; 9] = [0, 1, 2, 4, 8, 20, 100, 500, 1000];
/// Raft ticks drawn, ms (Fabric's default is 500).
const TICKS_MS: [u64; 5] = [20, 50, 100, 200, 500];
/// The election timeout drawn stays in this range, ms: long enough for a
/// loaded debug build's fsyncs, short enough for the harness's recovery.
const ELECTION_MS: (u64, u64) = (300, 2500);

/// `--swarm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SwarmMode {
    /// Draw what no flag pins.
    On,
    /// The defaults for what no flag pins.
    Off,
}

impl SwarmMode {
    /// `--swarm`'s value.
    pub fn parse(word: &str) -> anyhow::Result<SwarmMode> {
        match word {
            "on" => Ok(SwarmMode::On),
            "off" => Ok(SwarmMode::Off),
            other => bail!("--swarm: `{other}` is neither on nor off"),
        }
    }
}

/// The settings pinned on the command line (`None`: drawn, or the
/// default with `--swarm off`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Pins {
    /// `--nodes` (or the ssh runtime's host count).
    pub nodes: Option<usize>,
    /// ordeal-node's settings, each pinned or not, in [`Tuning`]'s order.
    pub snapshot_interval_bytes: Option<u64>,
    /// `--snapshot-catchup-entries`.
    pub snapshot_catchup_entries: Option<u64>,
    /// `--max-message-count`.
    pub max_message_count: Option<u64>,
    /// `--preferred-max-bytes`.
    pub preferred_max_bytes: Option<u64>,
    /// `--batch-timeout-ms`.
    pub batch_timeout_ms: Option<u64>,
    /// `--max-inflight-blocks`.
    pub max_inflight_blocks: Option<u64>,
    /// `--tick-ms`.
    pub tick_ms: Option<u64>,
    /// `--election-tick`.
    pub election_tick: Option<u64>,
    /// `--cut-when-idle`.
    pub cut_when_idle: Option<bool>,
}

/// What a run's nodes run with, and which of it was drawn (`test.json`'s
/// `swarm`).
#[derive(Debug, Clone, Serialize)]
pub struct Swarm {
    /// `on` or `off`.
    pub mode: SwarmMode,
    /// The settings the seed drew (the others pinned by a flag, or the
    /// defaults with `--swarm off`, or not applying to the system).
    pub drawn: Vec<&'static str>,
    /// Why the system takes no [`Tuning`], when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_applying: Option<&'static str>,
}

/// The node count and settings a run gets, and what was drawn.
pub fn configure(
    mode: SwarmMode,
    pins: &Pins,
    sut: Sut,
    seed: u64,
) -> anyhow::Result<(usize, Tuning, Swarm)> {
    let not_applying = sut.lacks(Ability::Tuning);
    if not_applying.is_some() && pinned_tuning(pins) {
        bail!("the ordeal-node settings (--snapshot-interval-bytes, --snapshot-catchup-entries, --max-message-count, --preferred-max-bytes, --batch-timeout-ms, --max-inflight-blocks, --tick-ms, --election-tick, --cut-when-idle) apply to --sut ordeal only");
    }
    let (nodes, tuning) = match mode {
        SwarmMode::On => draw(&mut ChaCha8Rng::seed_from_u64(seed ^ SWARM_SEED_SALT)),
        SwarmMode::Off => (NODES_DEFAULT, TUNING_DEFAULT),
    };
    let mut drawn = Vec::new();
    let mut pick = |name: &'static str, pin: Option<u64>, value: u64, applies: bool| {
        if pin.is_none() && mode == SwarmMode::On && applies {
            drawn.push(name);
        }
        pin.unwrap_or(value)
    };
    let nodes = pick("nodes", pins.nodes.map(|n| n as u64), nodes as u64, true) as usize;
    let tuning = pinned_or(pins, &tuning, |name, pin, value| {
        pick(name, pin, value, not_applying.is_none())
    });
    check(&tuning)?;
    let swarm = Swarm {
        mode,
        drawn,
        not_applying,
    };
    Ok((nodes, tuning, swarm))
}

/// Each setting of `drawn` unless `pins` pins it, through `pick` (which
/// is given the setting's name, its pin and the drawn value).
fn pinned_or(
    pins: &Pins,
    drawn: &Tuning,
    mut pick: impl FnMut(&'static str, Option<u64>, u64) -> u64,
) -> Tuning {
    let p = pins;
    let t = drawn;
    Tuning {
        snapshot_interval_bytes: pick(
            "snapshot_interval_bytes",
            p.snapshot_interval_bytes,
            t.snapshot_interval_bytes,
        ),
        snapshot_catchup_entries: pick(
            "snapshot_catchup_entries",
            p.snapshot_catchup_entries,
            t.snapshot_catchup_entries,
        ),
        max_message_count: pick(
            "max_message_count",
            p.max_message_count,
            t.max_message_count,
        ),
        preferred_max_bytes: pick(
            "preferred_max_bytes",
            p.preferred_max_bytes,
            t.preferred_max_bytes,
        ),
        batch_timeout_ms: pick("batch_timeout_ms", p.batch_timeout_ms, t.batch_timeout_ms),
        max_inflight_blocks: pick(
            "max_inflight_blocks",
            p.max_inflight_blocks,
            t.max_inflight_blocks,
        ),
        tick_ms: pick("tick_ms", p.tick_ms, t.tick_ms),
        election_tick: pick("election_tick", p.election_tick, t.election_tick),
        cut_when_idle: pick(
            "cut_when_idle",
            p.cut_when_idle.map(u64::from),
            u64::from(t.cut_when_idle),
        ) != 0,
    }
}

/// Whether any ordeal-node setting was given.
fn pinned_tuning(p: &Pins) -> bool {
    [
        p.snapshot_interval_bytes,
        p.snapshot_catchup_entries,
        p.max_message_count,
        p.preferred_max_bytes,
        p.batch_timeout_ms,
        p.max_inflight_blocks,
        p.tick_ms,
        p.election_tick,
    ]
    .iter()
    .any(Option::is_some)
        || p.cut_when_idle.is_some()
}

/// Refuses settings the node would refuse, naming the flag.
fn check(t: &Tuning) -> anyhow::Result<()> {
    let positive = [
        ("--snapshot-interval-bytes", t.snapshot_interval_bytes),
        ("--max-message-count", t.max_message_count),
        ("--preferred-max-bytes", t.preferred_max_bytes),
        ("--max-inflight-blocks", t.max_inflight_blocks),
        ("--tick-ms", t.tick_ms),
    ];
    if let Some((flag, _)) = positive.iter().find(|(_, v)| *v == 0) {
        bail!("{flag} must be positive");
    }
    if t.election_tick < 2 {
        bail!("--election-tick must be at least 2 (the heartbeat is one tick)");
    }
    Ok(())
}

/// A value drawn log-uniformly in `low..=high`.
fn log_uniform(rng: &mut ChaCha8Rng, low: u64, high: u64) -> u64 {
    let (l, h) = ((low as f64).ln(), (high as f64).ln());
    (rng.gen_range(l..=h).exp().round() as u64).clamp(low, high)
}

/// Draws a node count and every setting, in one fixed order.
fn draw(rng: &mut ChaCha8Rng) -> (usize, Tuning) {
    let nodes = if rng.gen_bool(0.5) { 3 } else { 5 };
    let snapshot = log_uniform(rng, 4 << 10, 20 << 20);
    let snapshot_interval_bytes = if rng.gen_bool(0.25) {
        SNAPSHOT_NODE_DEFAULT
    } else {
        snapshot
    };
    let snapshot_catchup_entries = CATCHUP_ENTRIES[rng.gen_range(0..CATCHUP_ENTRIES.len())];
    let max_message_count = log_uniform(rng, 1, 500);
    let preferred_max_bytes = log_uniform(rng, 4 << 10, 2 << 20);
    let batch_timeout_ms = log_uniform(rng, 2, 1000);
    let max_inflight_blocks = rng.gen_range(1..=10);
    let tick_ms = TICKS_MS[rng.gen_range(0..TICKS_MS.len())];
    let low = ELECTION_MS.0.div_ceil(tick_ms).max(3);
    let high = (ELECTION_MS.1 / tick_ms).clamp(low, 20);
    let election_tick = rng.gen_range(low..=high);
    // Drawn last, so that the draws before it are those of earlier rounds.
    let cut_when_idle = !rng.gen_bool(1.0 / 3.0);
    let tuning = Tuning {
        snapshot_interval_bytes,
        snapshot_catchup_entries,
        max_message_count,
        preferred_max_bytes,
        batch_timeout_ms,
        max_inflight_blocks,
        tick_ms,
        election_tick,
        cut_when_idle,
    };
    (nodes, tuning)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_one_configuration_in_range_and_pins_change_only_themselves() {
        let on = |seed, pins: &Pins| configure(SwarmMode::On, pins, Sut::Ordeal, seed).unwrap();
        let mut seen_nodes = std::collections::BTreeSet::new();
        let mut snapshots = Vec::new();
        let mut cuts = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let (nodes, t, swarm) = on(seed, &Pins::default());
            assert_eq!(
                (nodes, t),
                (on(seed, &Pins::default()).0, on(seed, &Pins::default()).1)
            );
            assert_eq!(swarm.drawn.len(), 10);
            cuts.insert(t.cut_when_idle);
            seen_nodes.insert(nodes);
            snapshots.push(t.snapshot_interval_bytes);
            assert!((4 << 10..=20 << 20).contains(&t.snapshot_interval_bytes));
            assert!((1..=500).contains(&t.max_message_count));
            assert!((2..=1000).contains(&t.batch_timeout_ms));
            assert!((1..=10).contains(&t.max_inflight_blocks));
            let et = t.election_timeout_ms();
            assert!((ELECTION_MS.0..=ELECTION_MS.1).contains(&et), "{t:?}");
            let pins = Pins {
                tick_ms: Some(77),
                nodes: Some(1),
                ..Pins::default()
            };
            let (n, pinned, swarm) = on(seed, &pins);
            assert_eq!((n, pinned.tick_ms), (1, 77));
            assert_eq!(pinned.snapshot_interval_bytes, t.snapshot_interval_bytes);
            assert_eq!(pinned.election_tick, t.election_tick);
            assert!(!swarm.drawn.contains(&"tick_ms") && !swarm.drawn.contains(&"nodes"));
        }
        assert_eq!(seen_nodes.into_iter().collect::<Vec<_>>(), [3, 5]);
        assert_eq!(cuts.len(), 2, "group commit is drawn both on and off");
        assert!(snapshots.contains(&SNAPSHOT_NODE_DEFAULT));
        assert!(snapshots.iter().any(|s| *s < 64 << 10));
    }

    #[test]
    fn swarm_off_runs_the_defaults_and_etcd_draws_its_node_count_only() {
        let (n, t, s) = configure(SwarmMode::Off, &Pins::default(), Sut::Ordeal, 9).unwrap();
        assert_eq!((n, t, s.drawn.len()), (NODES_DEFAULT, TUNING_DEFAULT, 0));
        let (_, _, s) = configure(SwarmMode::On, &Pins::default(), Sut::Etcd, 9).unwrap();
        assert_eq!(s.drawn, ["nodes"]);
        assert!(s.not_applying.is_some());
        let pins = Pins {
            tick_ms: Some(50),
            ..Pins::default()
        };
        let e = configure(SwarmMode::On, &pins, Sut::Etcd, 9).unwrap_err();
        assert!(e.to_string().contains("--sut ordeal only"), "{e}");
        let zero = Pins {
            max_message_count: Some(0),
            ..Pins::default()
        };
        let e = configure(SwarmMode::On, &zero, Sut::Ordeal, 9).unwrap_err();
        assert!(e.to_string().contains("--max-message-count"), "{e}");
    }
}
