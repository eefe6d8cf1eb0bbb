//! Client workers: each takes the next op from the shared seeded generator,
//! records its invoke, carries it out through the workload's client and
//! records the completion. As in Jepsen, process `p` talks to node
//! `p mod n` only, so that during a partition the processes bound to the
//! majority go on while those bound to the minority wait or fail. A process
//! whose op ended in `info` is retired and the worker continues under a
//! fresh process number, `p + concurrency × n`: unique (every process of
//! worker `w` is `w` mod `concurrency`) and on the same node. A worker
//! keeps its node, as a Jepsen worker thread does: were retirement to move
//! it, workers would drift onto a dead node (infos move them, refusals do
//! not) and leave the live nodes without load (issue 18).
//!
//! A process whose node cannot serve (it refused the connection, knows no
//! leader, is overloaded: [`Outcome::Unavailable`], recorded as `fail`),
//! and the process that replaces one retired after `info` (the node did
//! not answer in time, or answered that it could not tell: a node whose
//! clock was bumped back answers every submit so, at once), back off
//! before they try that node again, and take no pacing slot
//! while it waits, nor for the op that probes the node after the wait: the
//! shared rate goes to the processes whose nodes answer (issue 18). A probe
//! the node refuses costs it nothing; one it serves is at most one op per
//! process and outage above the rate. The waits double from
//! [`BACKOFF_MIN`] to [`BACKOFF_MAX`], each drawn from a seeded stream per
//! worker.
//!
//! Workers follow the membership (issue 14). A process whose node a
//! committed configuration removed — the node answered `410`
//! ([`Outcome::Removed`], recorded as `fail`), or the registry
//! ([`Membership`]) says `Removed` — is retired like one after `info`, and
//! the worker moves to a live member under a fresh process number: a
//! process still talks to one node only. Nodes the `member` nemesis added
//! get workers too: a worker on a node with two workers more than the
//! least loaded member moves there ([`Placement`]); with the founders
//! alone, `p mod n` never leaves workers that far apart, so nobody moves.
//! Where a worker moves to is a seeded draw among the least loaded
//! members.

use crate::cluster::membership::Membership;
use crate::history::{Kind, Process, Record, Recorder, F};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workloads::{Completion, Generator, Invocation, Outcome, SutClient};

/// The first wait after a node could not serve.
pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest wait: a process finds its node again within about this
/// long after the node is restarted, healed or has elected a leader.
pub const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// Salt that separates the backoff's random stream from the generator's.
const BACKOFF_SEED_SALT: u64 = 0x0062_6163_6b6f_6666;
/// Salt of each worker's stream of moves between members.
const PLACEMENT_SEED_SALT: u64 = 0x006d_6f76_6573_0000;

/// Which node each worker talks to, over the membership as it changes.
#[derive(Debug)]
pub struct Placement {
    /// The registry the `member` nemesis keeps.
    membership: Membership,
    /// The founders, in order: worker `w` starts on `founders[w mod n]`.
    founders: Vec<String>,
    /// Workers bound to each node now.
    load: Mutex<BTreeMap<String, u64>>,
    /// Nodes that answered that they were removed, whatever the registry
    /// says yet: no worker goes there again (names are never reused).
    gone: Mutex<BTreeSet<String>>,
}

impl Placement {
    /// Workers over `membership`, founders first (`p mod n`, as before
    /// any membership change).
    pub fn new(membership: Membership) -> Placement {
        let founders = membership.all().into_iter().map(|e| e.name).collect();
        Placement {
            membership,
            founders,
            load: Mutex::default(),
            gone: Mutex::default(),
        }
    }

    /// The number of founders (process numbers advance by a multiple).
    pub fn founders(&self) -> u64 {
        self.founders.len().max(1) as u64
    }

    /// Binds worker `w` to its first node, `founders[w mod n]`.
    pub fn bind(&self, w: u64) -> String {
        let node = self.founders[w as usize % self.founders.len()].clone();
        *self.lock_load().entry(node.clone()).or_default() += 1;
        node
    }

    fn lock_load(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.load.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node answered that it was removed.
    pub fn left(&self, node: &str) {
        let mut gone = self.gone.lock().unwrap_or_else(|e| e.into_inner());
        gone.insert(node.to_string());
    }

    /// Where a worker on `node` should move now, if anywhere: away from a
    /// node that is no longer a member, or from one that has two workers
    /// more than the least loaded member. `known` says whether the client
    /// can reach a node (the nemesis adds new nodes to it). The move is
    /// counted at once, so that concurrent workers do not all follow.
    pub fn next(
        &self,
        node: &str,
        rng: &mut ChaCha8Rng,
        known: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let gone = self.gone.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let members: Vec<String> = self
            .membership
            .members()
            .into_iter()
            .filter(|m| !gone.contains(m) && known(m))
            .collect();
        let mut load = self.lock_load();
        let count = |load: &BTreeMap<String, u64>, n: &str| load.get(n).copied().unwrap_or(0);
        let others: Vec<&String> = members.iter().filter(|m| *m != node).collect();
        let least = others.iter().map(|m| count(&load, m)).min()?;
        let stay = members.iter().any(|m| m == node) && count(&load, node) <= least + 1;
        if stay {
            return None;
        }
        let choices: Vec<&String> = others
            .into_iter()
            .filter(|m| count(&load, m) == least)
            .collect();
        let to = choices[rng.gen_range(0..choices.len())].clone();
        if let Some(c) = load.get_mut(node) {
            *c = c.saturating_sub(1);
        }
        *load.entry(to.clone()).or_default() += 1;
        Some(to)
    }
}

/// One worker's backoff: the bound doubles from [`BACKOFF_MIN`] up to
/// [`BACKOFF_MAX`] while its node cannot serve, and each wait is drawn
/// from the upper half of the bound, so that the processes of one node do
/// not retry in step.
#[derive(Debug)]
pub struct Backoff {
    bound: Option<Duration>,
    rng: ChaCha8Rng,
}

impl Backoff {
    /// The backoff of worker `w` in a test seeded with `seed`.
    pub fn new(seed: u64, w: u64) -> Backoff {
        Backoff {
            bound: None,
            rng: ChaCha8Rng::seed_from_u64(seed ^ BACKOFF_SEED_SALT ^ w.rotate_left(32)),
        }
    }

    /// The wait after one more refusal in a row.
    pub fn refused(&mut self) -> Duration {
        let bound = self.bound.map_or(BACKOFF_MIN, |b| (b * 2).min(BACKOFF_MAX));
        self.bound = Some(bound);
        self.rng.gen_range(bound / 2..=bound)
    }

    /// The node answered: the next refusal starts again at the minimum.
    pub fn reset(&mut self) {
        self.bound = None;
    }

    /// Whether the last op was refused, so that the next one probes.
    pub fn probing(&self) -> bool {
        self.bound.is_some()
    }
}

/// How an op ended, for the worker's next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// `ok`, or a `fail` the node gave while serving.
    Answered,
    /// A `fail` because the node cannot serve now: back off.
    Unavailable,
    /// `info`: the process is retired, and its successor backs off.
    Info,
    /// `fail` because the node was removed: the worker moves.
    Removed,
}

/// Counts for the progress bar.
#[derive(Debug, Default)]
pub struct Counters {
    /// Completed `ok`.
    pub ok: AtomicU64,
    /// Completed `fail`.
    pub fail: AtomicU64,
    /// Completed `info`.
    pub info: AtomicU64,
}

impl Counters {
    /// (ok, fail, info).
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.fail.load(Ordering::Relaxed),
            self.info.load(Ordering::Relaxed),
        )
    }
}

/// What every worker shares.
pub struct Workers {
    /// The op source.
    pub generator: Mutex<Box<dyn Generator>>,
    /// The client.
    pub client: Arc<SutClient>,
    /// The history.
    pub recorder: Recorder,
    /// Which node each worker talks to (follows the membership).
    pub placement: Placement,
    /// Stop issuing ops at this instant.
    pub deadline: Instant,
    /// Target ops/s over all workers; 0 = as fast as answers come.
    pub rate: f64,
    /// When the run began (pacing origin).
    pub started: Instant,
    /// Next pacing slot.
    pub slot: AtomicU64,
    /// Number of workers (process numbers advance by this times the
    /// number of founders).
    pub concurrency: u64,
    /// Outcome counts.
    pub counters: Counters,
    /// The test's seed (each worker's backoff stream derives from it).
    pub seed: u64,
}

impl Workers {
    /// Runs worker `w` until the deadline.
    pub async fn run(self: Arc<Self>, w: u64) {
        let mut process = w;
        let mut node = self.placement.bind(w);
        let mut backoff = Backoff::new(self.seed, w);
        let mut moves =
            ChaCha8Rng::seed_from_u64(self.seed ^ PLACEMENT_SEED_SALT ^ w.rotate_left(32));
        let fresh = self.concurrency * self.placement.founders();
        while Instant::now() < self.deadline {
            if self.relocate(w, &mut node, &mut moves) {
                process += fresh;
                backoff.reset();
            }
            if self.rate > 0.0 && !backoff.probing() {
                let due = self.next_due();
                if due >= self.deadline {
                    return;
                }
                tokio::time::sleep_until(due.into()).await;
            }
            let Some(inv) = self
                .generator
                .lock()
                .expect("generator lock")
                .next_invocation()
            else {
                return;
            };
            let ended = self.perform(process, &node, &inv).await;
            if ended == Ended::Answered {
                backoff.reset();
                continue;
            }
            if ended == Ended::Removed {
                self.placement.left(&node);
                if self.relocate(w, &mut node, &mut moves) {
                    process += fresh;
                    backoff.reset();
                    continue;
                }
                // No other member the client knows: back off, as from a
                // node that cannot serve.
            }
            if ended == Ended::Info {
                process += fresh;
            }
            let until = (Instant::now() + backoff.refused()).min(self.deadline);
            tokio::time::sleep_until(until.into()).await;
        }
    }

    /// Moves worker `w` off `node` when [`Placement::next`] says so;
    /// whether it moved (its process is then retired).
    fn relocate(&self, w: u64, node: &mut String, moves: &mut ChaCha8Rng) -> bool {
        let known = |n: &str| self.client.index_of(n).is_some();
        let Some(to) = self.placement.next(node, moves, known) else {
            return false;
        };
        tracing::info!(worker = w, from = %node, to = %to, "the worker moves to another member");
        *node = to;
        true
    }

    /// The instant of the next pacing slot. Slots missed while every worker
    /// waited (a fault stalls them all) are skipped, not made up: catching
    /// up would fire a burst of ops far above `--rate` at the heal.
    fn next_due(&self) -> Instant {
        let now_slot = (self.started.elapsed().as_secs_f64() * self.rate) as u64;
        let k = self.slot.fetch_add(1, Ordering::Relaxed);
        let k = if k < now_slot {
            // Behind: move the shared counter to the present.
            self.slot.fetch_max(now_slot + 1, Ordering::Relaxed);
            now_slot
        } else {
            k
        };
        self.started + Duration::from_secs_f64(k as f64 / self.rate)
    }

    /// Records and performs one op.
    async fn perform(&self, process: u64, node: &str, inv: &Invocation) -> Ended {
        let Some(node_index) = self.client.index_of(node) else {
            // Only nodes the client knows are chosen; say so if not.
            tracing::error!(node, "a worker's node is unknown to the client");
            return Ended::Unavailable;
        };
        let p = Process::Client(process);
        self.recorder.record(&Record {
            process: p,
            kind: Kind::Invoke,
            f: F::Op(inv.f),
            key: inv.key.as_deref(),
            value: &inv.value,
            node: Some(node),
            error: None,
        });
        let Completion { outcome, .. } = self.client.invoke(inv, node_index).await;
        let ended = match outcome {
            Outcome::Ok(_) | Outcome::Fail(_) => Ended::Answered,
            Outcome::Unavailable(_) => Ended::Unavailable,
            Outcome::Removed(_) => Ended::Removed,
            Outcome::Info(_) => Ended::Info,
        };
        let (kind, value, error): (Kind, Value, Option<String>) = match outcome {
            Outcome::Ok(v) => {
                self.counters.ok.fetch_add(1, Ordering::Relaxed);
                (Kind::Ok, v, None)
            }
            Outcome::Fail(e) | Outcome::Unavailable(e) | Outcome::Removed(e) => {
                self.counters.fail.fetch_add(1, Ordering::Relaxed);
                (Kind::Fail, inv.value.clone(), Some(e))
            }
            Outcome::Info(e) => {
                self.counters.info.fetch_add(1, Ordering::Relaxed);
                (Kind::Info, inv.value.clone(), Some(e))
            }
        };
        self.recorder.record(&Record {
            process: p,
            kind,
            f: F::Op(inv.f),
            key: inv.key.as_deref(),
            value: &value,
            node: Some(node),
            error: error.as_deref(),
        });
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::membership::Standing;

    #[test]
    fn backoff_doubles_to_its_bound_resets_and_is_seeded() {
        let mut a = Backoff::new(7, 3);
        let waits: Vec<Duration> = (0..8).map(|_| a.refused()).collect();
        let mut bound = BACKOFF_MIN;
        for w in &waits {
            assert!(*w >= bound / 2 && *w <= bound, "{w:?} outside {bound:?}");
            bound = (bound * 2).min(BACKOFF_MAX);
        }
        assert!(waits[7] >= BACKOFF_MAX / 2);
        assert!(a.probing());
        a.reset();
        assert!(!a.probing());
        assert!(a.refused() <= BACKOFF_MIN);
        let mut b = Backoff::new(7, 3);
        let again: Vec<Duration> = (0..8).map(|_| b.refused()).collect();
        assert_eq!(waits, again, "same seed and worker, same waits");
        let mut c = Backoff::new(7, 4);
        let other: Vec<Duration> = (0..8).map(|_| c.refused()).collect();
        assert_ne!(waits, other, "workers do not retry in step");
    }

    fn three() -> Membership {
        Membership::founders(&[
            ("n1".into(), "http://a".into()),
            ("n2".into(), "http://b".into()),
            ("n3".into(), "http://c".into()),
        ])
    }

    /// Binds `concurrency` workers; their nodes.
    fn bind_all(p: &Placement, concurrency: u64) -> Vec<String> {
        (0..concurrency).map(|w| p.bind(w)).collect()
    }

    fn counts(nodes: &[String]) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for n in nodes {
            *out.entry(n.clone()).or_default() += 1;
        }
        out
    }

    /// Lets every worker ask once whether it moves, as the loop does.
    fn round(p: &Placement, nodes: &mut [String], rng: &mut ChaCha8Rng) -> usize {
        let mut moved = 0;
        for n in nodes.iter_mut() {
            if let Some(to) = p.next(n, rng, |_| true) {
                *n = to;
                moved += 1;
            }
        }
        moved
    }

    #[test]
    fn with_the_founders_alone_workers_keep_p_mod_n() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for concurrency in [1, 2, 3, 5, 10] {
            let p = Placement::new(three());
            let mut nodes = bind_all(&p, concurrency);
            let want: Vec<String> = (0..concurrency)
                .map(|w| format!("n{}", w % 3 + 1))
                .collect();
            assert_eq!(nodes, want);
            assert_eq!(
                round(&p, &mut nodes, &mut rng),
                0,
                "nobody moves at {concurrency}"
            );
        }
    }

    #[test]
    fn removed_nodes_are_left_and_added_members_get_workers() {
        let m = three();
        let p = Placement::new(m.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut nodes = bind_all(&p, 10);
        // n4 started: not a member yet, nobody goes there.
        m.started("n4", "http://d", 4);
        assert_eq!(round(&p, &mut nodes, &mut rng), 0);
        m.set("n4", Standing::Learner);
        round(&p, &mut nodes, &mut rng);
        let c = counts(&nodes);
        assert_eq!(c.values().sum::<u64>(), 10);
        assert!(c.values().all(|&k| (2..=3).contains(&k)), "spread: {c:?}");
        // n2 removed (the registry says so): its workers leave, spread.
        m.set("n2", Standing::Removed);
        round(&p, &mut nodes, &mut rng);
        let c = counts(&nodes);
        assert!(!c.contains_key("n2"), "{c:?}");
        assert!(c.values().all(|&k| (3..=4).contains(&k)), "spread: {c:?}");
        // n3 answered 410 before the registry knew: left as well.
        p.left("n3");
        round(&p, &mut nodes, &mut rng);
        let c = counts(&nodes);
        assert_eq!(c.keys().collect::<Vec<_>>(), ["n1", "n4"], "{c:?}");
        assert_eq!(round(&p, &mut nodes, &mut rng), 0, "settled");
        // A node the client does not know is never chosen.
        m.started("n5", "http://e", 5);
        m.set("n5", Standing::Voter);
        let unknown = |n: &str| n != "n5";
        assert!(nodes.iter().all(|n| p.next(n, &mut rng, unknown).is_none()));
    }

    #[test]
    fn moves_are_seeded() {
        let run = |seed| {
            let m = three();
            let p = Placement::new(m.clone());
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut nodes = bind_all(&p, 6);
            m.set("n1", Standing::Removed);
            round(&p, &mut nodes, &mut rng);
            nodes
        };
        assert_eq!(run(3), run(3));
        let differ = (0..20).any(|s| run(s) != run(3));
        assert!(
            differ,
            "the draw among equally loaded members depends on the seed"
        );
    }
}
