//! The `member` fault (issue 14): consenter-set changes as Fabric makes
//! them, one node at a time (through `members.rs`).
//!
//! Each `member` fault starts with one change, drawn (seeded) among those
//! that keep the voters in range — from 3 (fewer when the run started with
//! fewer) to two more than the run started with — and, when that change
//! left the voters other than the founders' number, heals with one more
//! that brings them back (drawn by `draw_heal`), so that every `member`
//! fault adds a node and removes one:
//!
//! - `remove`: a random follower leaves;
//! - `add`: a fresh node `n<id>` (the next unused id) is started on an
//!   empty data directory with `--join`, added as a learner, and promoted
//!   once the leader accepts it (`409` until it caught up: retried);
//! - remove the leader: leadership goes to a follower (`POST /transfer`),
//!   then the old leader is removed through the new one (recorded as a
//!   `remove` with `"leader": true`);
//! - `replace`: an `add` as above, then a random old follower's `remove`.
//!
//! Each change records its own start and end (docs/history.md); the heal
//! has nothing else to undo.

use crate::nemesis::context::Context;
use crate::nemesis::members::{change_time, name, Config, Members, Sent};
use crate::nemesis::package::{Active, FaultPackage, Planned};
use crate::runtime::verbs::{Runtime, Verb};
use crate::sut::{Ability, Sut, System};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Instant;

/// The fewest voters a change may leave (fewer only when the run started
/// with fewer).
const VOTERS_MIN: usize = 3;
/// How many voters above the founders a run may grow to.
const VOTERS_ABOVE_FOUNDERS_MAX: usize = 2;

/// See the module doc.
pub struct Member;

impl FaultPackage for Member {
    fn name(&self) -> &'static str {
        "member"
    }

    fn verbs(&self) -> &'static [Verb] {
        &[Verb::AddNode]
    }

    fn refused_by(&self, sut: Sut) -> Option<&'static str> {
        sut.lacks(Ability::MembershipApi)
    }

    /// A change that keeps the voters in range, drawn from the leader's
    /// configuration (none when no leader answers).
    async fn draw(&self, ctx: &Context, rng: &mut ChaCha8Rng) -> anyhow::Result<Planned> {
        draw_in(ctx, rng, Direction::Any).await
    }

    async fn inject(&self, ctx: &Context, planned: &Planned) -> anyhow::Result<Active> {
        let targets = make_change(ctx, planned).await?;
        Ok(Active::new(targets, ()))
    }

    /// When the change left the voters other than the founders' number
    /// (an `add` or a `remove`), one more change that brings them back (a
    /// `remove`, of a follower or the leader, or an `add`). So every
    /// `member` fault adds a node and removes one: a `replace`, or an
    /// `add` then a `remove` (or the reverse) one interval apart.
    async fn draw_heal(
        &self,
        ctx: &Context,
        _active: &Active,
        rng: &mut ChaCha8Rng,
    ) -> anyhow::Result<Option<Planned>> {
        Ok(Some(draw_in(ctx, rng, Direction::Restore).await?))
    }

    async fn heal(
        &self,
        ctx: &Context,
        _: Active,
        healing: Option<&Planned>,
    ) -> anyhow::Result<()> {
        if let Some(restoring) = healing {
            make_change(ctx, restoring).await?;
        }
        Ok(())
    }
}

/// Draws a change from the leader's configuration (the registry follows
/// it first); nothing to do when no leader answers or no change fits.
async fn draw_in(
    ctx: &Context,
    rng: &mut ChaCha8Rng,
    direction: Direction,
) -> anyhow::Result<Planned> {
    let nothing = Planned::new(Vec::new(), Value::Null);
    let members = Members::new(ctx, Instant::now() + change_time(ctx.interval))?;
    let Some((_, before)) = members.leader_until_deadline().await else {
        tracing::warn!("member: no leader answered; no change this round");
        return Ok(nothing);
    };
    members.follow(&before);
    let next_id = ctx.membership.next_id();
    let Some(change) = draw_change(rng, &before, ctx.founders, next_id, direction) else {
        if direction == Direction::Any {
            tracing::warn!(?before, "member: no change keeps the voters in range");
        }
        return Ok(nothing);
    };
    Ok(Planned::new(change.targets(), change))
}

/// Makes a planned change, recording its start and its end; returns the
/// nodes it touched (none, and nothing recorded, for an empty plan).
async fn make_change(ctx: &Context, planned: &Planned) -> anyhow::Result<Vec<String>> {
    if planned.targets.is_empty() {
        return Ok(Vec::new());
    }
    let change: ChangePlan = planned.params("member")?;
    let members = Members::new(ctx, Instant::now() + change_time(ctx.interval))?;
    let targets = change.targets();
    let mut start = json!({"phase": "start", "change": change.change.word(),
        "targets": targets, "before": change.before.names()});
    if let Some(id) = change.add {
        start["add"] = json!([name(id)]);
    }
    if let Some(id) = change.remove {
        start["remove"] = json!([name(id)]);
        start["leader"] = json!(change.leader);
    }
    ctx.record("member", start);
    let outcome = make(&members, &change).await;
    let after = members.settle().await;
    end(ctx, &change, &targets, after.as_ref(), outcome);
    Ok(targets)
}

/// The change drawn for one `member` fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Change {
    /// A follower leaves.
    Remove,
    /// A fresh node joins and becomes a voter.
    Add,
    /// The leader leaves, after handing over.
    RemoveLeader,
    /// A fresh node joins, then an old follower leaves.
    Replace,
}

impl Change {
    /// The word in the history (`change`).
    fn word(self) -> &'static str {
        match self {
            Change::Remove | Change::RemoveLeader => "remove",
            Change::Add => "add",
            Change::Replace => "replace",
        }
    }
}

/// The changes that keep `voters` within `[low, high]` (`founders`: the
/// voters the run started with).
fn allowed(voters: usize, founders: usize, leader_known: bool) -> Vec<Change> {
    let low = VOTERS_MIN.min(founders);
    let high = founders.max(VOTERS_MIN) + VOTERS_ABOVE_FOUNDERS_MAX;
    let mut out = Vec::new();
    if voters > low && voters >= 2 {
        out.push(Change::Remove);
        if leader_known {
            out.push(Change::RemoveLeader);
        }
    }
    if voters < high {
        out.push(Change::Add);
        if voters >= 2 {
            out.push(Change::Replace);
        }
    }
    out
}

/// What one change will do, drawn before it starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChangePlan {
    change: Change,
    /// The id of the fresh node (add, replace).
    add: Option<u64>,
    /// The id of the node that leaves (remove, replace).
    remove: Option<u64>,
    /// Where leadership goes when the leaving node leads.
    transfer_to: Option<u64>,
    /// Whether the leaving node led when the change was drawn.
    leader: bool,
    /// The configuration the change was drawn from (the leader's).
    before: Config,
}

impl ChangePlan {
    fn targets(&self) -> Vec<String> {
        self.add
            .iter()
            .chain(&self.remove)
            .map(|id| name(*id))
            .collect()
    }
}

/// The changes that bring `voters` back to the founders' number after a
/// fault's hold (none when it is there).
fn restoring(voters: usize, founders: usize, leader_known: bool) -> Vec<Change> {
    use std::cmp::Ordering;
    match voters.cmp(&founders) {
        Ordering::Greater if leader_known => vec![Change::Remove, Change::RemoveLeader],
        Ordering::Greater => vec![Change::Remove],
        Ordering::Less => vec![Change::Add],
        Ordering::Equal => Vec::new(),
    }
}

/// Which set of changes a draw chooses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Any change that keeps the voters in range (a fault's start).
    Any,
    /// Back to the founders' number (a fault's heal).
    Restore,
}

/// Draws one change that keeps the voters in range (`Any`) or restores the
/// founders' number (`Restore`).
fn draw_change(
    rng: &mut ChaCha8Rng,
    before: &Config,
    founders: usize,
    next_id: u64,
    direction: Direction,
) -> Option<ChangePlan> {
    let (voters, known) = (before.voters.len(), before.leader != 0);
    let changes = match direction {
        Direction::Any => allowed(voters, founders, known),
        Direction::Restore => restoring(voters, founders, known),
    };
    let change = *changes.choose(rng)?;
    let followers: Vec<u64> = before
        .voters
        .iter()
        .copied()
        .filter(|v| *v != before.leader)
        .collect();
    let remove = match change {
        Change::Remove | Change::Replace => Some(*followers.choose(rng)?),
        Change::RemoveLeader => Some(before.leader),
        Change::Add => None,
    };
    let transfer_to = (change == Change::RemoveLeader)
        .then(|| followers.choose(rng).copied())
        .flatten();
    let add = matches!(change, Change::Add | Change::Replace).then_some(next_id);
    Some(ChangePlan {
        change,
        add,
        remove,
        transfer_to,
        leader: change == Change::RemoveLeader,
        before: before.clone(),
    })
}

/// Records a `member` fault's end.
fn end(
    ctx: &Context,
    planned: &ChangePlan,
    targets: &[String],
    after: Option<&Config>,
    outcome: Result<(), String>,
) {
    let mut value = json!({"phase": "end", "change": planned.change.word(), "targets": targets,
        "committed": outcome.is_ok(), "after": after.map(Config::names)});
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "member: the change was not made");
        value["error"] = json!(e);
    }
    ctx.record("member", value);
}

/// Makes the planned change, step by step; the first step that fails ends
/// it.
async fn make(members: &Members<'_>, planned: &ChangePlan) -> Result<(), String> {
    if let Some(id) = planned.add {
        add(members, id).await?;
    }
    if let Some(id) = planned.remove {
        remove(members, id, planned.transfer_to).await?;
    }
    Ok(())
}

/// Starts `n<id>`, adds it as a learner, promotes it once it caught up.
async fn add(members: &Members<'_>, id: u64) -> Result<(), String> {
    let ctx = members.ctx;
    let founders: Vec<usize> = (1..=ctx.founders).collect();
    let peers: Vec<usize> = ctx
        .membership
        .all()
        .iter()
        .filter(|e| e.standing.is_member())
        .map(|e| e.id as usize)
        .collect();
    let added = {
        let mut rt = ctx.runtime.lock().await;
        rt.add_node(id as usize, &founders, &peers)
            .await
            .map_err(|e| format!("starting {}: {e:#}", name(id)))?
    };
    ctx.membership.started(&added.name, &added.url, id);
    ctx.client.add_node(&added.name, &added.url);
    ctx.probe.add_node(&added.name, &added.url);
    let change = json!([{"op": "add", "id": id, "addr": added.peer_addr}]);
    members.change(change, |c| c.has(id), None).await?;
    members.settle().await;
    let promote = json!([{"op": "promote", "id": id}]);
    members
        .change(promote, |c| c.voters.contains(&id), None)
        .await?;
    members.settle().await;
    Ok(())
}

/// Removes `n<id>`; whenever it leads, leadership goes to `transfer_to`
/// (or another voter) first.
async fn remove(members: &Members<'_>, id: u64, transfer_to: Option<u64>) -> Result<(), String> {
    let node = name(id);
    let change = json!([{"op": "remove", "id": id}]);
    loop {
        match members
            .change(change.clone(), |c| !c.has(id), Some(&node))
            .await?
        {
            Sent::Applied => break,
            Sent::ItLeads => {
                let (_, config) = members
                    .leader()
                    .await
                    .ok_or("the leader stopped answering")?;
                let to = transfer_to
                    .filter(|t| config.voters.contains(t))
                    .or_else(|| config.voters.iter().copied().find(|v| *v != id))
                    .ok_or_else(|| format!("{node} leads and is the only voter"))?;
                members.transfer(&name(to)).await.1?;
            }
        }
    }
    members.settle().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::proof::Proof;
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn changes_keep_the_voters_between_three_and_two_above_the_founders() {
        use Change::*;
        assert_eq!(allowed(3, 3, true), [Add, Replace], "3 of 3: never below 3");
        assert_eq!(allowed(4, 3, true), [Remove, RemoveLeader, Add, Replace]);
        assert_eq!(
            allowed(5, 3, true),
            [Remove, RemoveLeader],
            "3 founders: at most 5"
        );
        assert_eq!(allowed(7, 5, false), [Remove], "5 founders: at most 7");
        assert_eq!(allowed(6, 5, true).len(), 4);
        assert_eq!(allowed(1, 1, true), [Add]);
    }

    #[test]
    fn a_drawn_change_names_its_nodes_and_never_removes_the_leader_unless_it_says_so() {
        let before = Config {
            voters: vec![1, 2, 3, 4],
            learners: vec![],
            leader: 2,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let p = draw_change(&mut rng, &before, 3, 5, Direction::Any).unwrap();
            seen.insert(p.change.word());
            assert_eq!(p.leader, p.remove == Some(2), "{p:?}");
            assert_eq!(
                p.add.is_some(),
                matches!(p.change, Change::Add | Change::Replace)
            );
            if p.leader {
                assert!(p.transfer_to.is_some_and(|t| t != 2));
            }
            assert!(p.targets().iter().all(|t| t.starts_with('n')));
        }
        assert_eq!(seen.len(), 3, "add, remove and replace all drawn: {seen:?}");
    }

    #[test]
    fn a_heal_brings_the_voters_back_to_the_founders_number() {
        use Change::*;
        assert_eq!(restoring(4, 3, true), [Remove, RemoveLeader]);
        assert_eq!(restoring(4, 3, false), [Remove]);
        assert_eq!(restoring(4, 5, true), [Add]);
        assert!(restoring(3, 3, true).is_empty(), "after a replace: nothing");
        let before = Config {
            voters: vec![1, 2, 3, 4],
            learners: vec![],
            leader: 2,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..50 {
            let p = draw_change(&mut rng, &before, 3, 5, Direction::Restore).unwrap();
            assert!(p.add.is_none() && p.remove.is_some(), "{p:?}");
        }
        let three = Config {
            voters: vec![1, 2, 3],
            ..before
        };
        assert!(draw_change(&mut rng, &three, 3, 5, Direction::Restore).is_none());
    }

    /// The proof (node-api.md, eviction): a follower cut off by a
    /// real partition (the process runtime's proxies; the target is the
    /// node added first when it does not lead, so that its hello-telling
    /// inbound proxy is what cuts it) is removed while away; after the heal
    /// it learns it, halts (`removed`, submits answer 410), and the leader
    /// and its term stay what they were for several election timeouts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_removed_while_partitioned_away_halts_after_the_heal_and_disrupts_nothing() {
        let Some(proof) = Proof::start(false).await else {
            return;
        };
        proof.run().await;
    }

    /// The same over Docker: the partition is nft rules inside the
    /// containers. Skipped loudly without a daemon, failed with
    /// `ORDEAL_REQUIRE_DOCKER=1`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn docker_a_node_removed_while_partitioned_away_halts_after_the_heal() {
        if !crate::runtime::docker::daemon_answers() {
            let required = std::env::var("ORDEAL_REQUIRE_DOCKER").as_deref() == Ok("1");
            assert!(
                !required,
                "ORDEAL_REQUIRE_DOCKER=1 but no Docker daemon answers"
            );
            eprintln!("SKIPPED the Docker eviction proof: no Docker daemon answers");
            return;
        }
        let Some(proof) = Proof::start(true).await else {
            return;
        };
        proof.run().await;
    }
}

#[cfg(test)]
mod proof {
    use super::*;
    use crate::cluster::membership::{Membership, Standing};
    use crate::cluster::probe::Probe;
    use crate::history::Recorder;
    use crate::nemesis::members::id_of;
    use crate::runtime::docker::DockerRuntime;
    use crate::runtime::process::{ProcessOptions, ProcessRuntime};
    use crate::runtime::verbs::ClusterSpec;
    use crate::runtime::AnyRuntime;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::Mutex;

    /// Election timeout of the nodes here (100 ms ticks × 10).
    const ELECTION_MS: u64 = 1000;

    pub(super) struct Proof {
        nemesis: Context,
        _store: tempfile::TempDir,
    }

    fn node_binary() -> Option<std::path::PathBuf> {
        let path = std::env::var_os("ORDEAL_NODE_BIN")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                crate::binary::target_dir()
                    .join("debug")
                    .join("ordeal-node")
            });
        if path.is_file() {
            return Some(path);
        }
        eprintln!(
            "SKIPPED the eviction proof: no {} (cargo build -p node)",
            path.display()
        );
        None
    }

    impl Proof {
        pub(super) async fn start(docker: bool) -> Option<Proof> {
            let binary = node_binary()?;
            let store = tempfile::tempdir().unwrap();
            let flags = [
                "--tick-ms",
                "100",
                "--election-tick",
                "10",
                "--heartbeat-tick",
                "1",
            ];
            let spec = ClusterSpec {
                sut: crate::sut::Sut::Ordeal,
                nodes: 3,
                binary,
                node_args: flags.iter().map(|f| f.to_string()).collect(),
                work_dir: store.path().join("work"),
                run_label: format!("ordeal-{}-eviction", std::process::id()),
                disk: None,
            };
            let mut rt = if docker {
                AnyRuntime::Docker(Box::new(DockerRuntime::new(spec).unwrap()))
            } else {
                AnyRuntime::Process(Box::new(ProcessRuntime::new(
                    spec,
                    ProcessOptions::default(),
                )))
            };
            rt.start().await.unwrap();
            let nodes: Vec<(String, String)> = rt
                .nodes()
                .into_iter()
                .map(|n| (n.clone(), rt.client_url(&n)))
                .collect();
            let probe = Probe::new(nodes.clone(), crate::sut::Sut::Ordeal).unwrap();
            let timeout = Duration::from_secs(3);
            let client = workloads::OrdealClient::new(
                nodes.clone(),
                workloads::Ack::Committed,
                timeout,
                "proof",
            )
            .unwrap();
            let nemesis = Context {
                membership: Membership::founders(&nodes),
                founders: 3,
                client: Arc::new(workloads::SutClient::Ordeal(client)),
                runtime: Arc::new(Mutex::new(rt)),
                probe,
                recorder: Recorder::create(&store.path().join("history.jsonl")).unwrap(),
                interval: Duration::from_secs(10),
                election_timeout_ms: ELECTION_MS,
                aim_uncommitted_tail: false,
                crash_prefer: Vec::new(),
                tallies: Default::default(),
            };
            let first = Instant::now() + Duration::from_secs(30);
            assert!(nemesis.probe.wait_recovered(first).await, "no first leader");
            Some(Proof {
                nemesis,
                _store: store,
            })
        }

        fn members(&self) -> Members<'_> {
            Members::new(&self.nemesis, Instant::now() + Duration::from_secs(20)).unwrap()
        }

        async fn status(&self, node: &str) -> Value {
            self.nemesis.probe.status(node).await.unwrap_or(Value::Null)
        }

        pub(super) async fn run(self) {
            let members = self.members();
            add(&members, 4).await.expect("n4 added and promoted");
            let (leader, config) = members.leader().await.expect("a leader");
            assert_eq!(config.voters, [1, 2, 3, 4]);
            let away = if leader == "n4" { "n3" } else { "n4" }.to_string();
            let g = crate::nemesis::grudge::isolate(&away, &self.nemesis.members());
            self.nemesis
                .runtime
                .lock()
                .await
                .partition(&g)
                .await
                .unwrap();
            remove(&self.members(), id_of(&away).unwrap(), None)
                .await
                .expect("removed while away");
            let (leader, config) = members.leader().await.expect("a leader");
            assert!(!config.has(id_of(&away).unwrap()), "{config:?}");
            let away_status = self.status(&away).await;
            assert_eq!(
                away_status["removed"], false,
                "cut off, it cannot know: {away_status}"
            );
            // Away for two election timeouts: it campaigns meanwhile.
            tokio::time::sleep(Duration::from_millis(2 * ELECTION_MS)).await;
            let term = self.status(&leader).await["term"]
                .as_u64()
                .expect("the leader's term");
            self.nemesis.runtime.lock().await.heal().await.unwrap();
            self.wait_halted(&away).await;
            self.assert_undisturbed(&leader, term).await;
            self.remove_the_leader(&leader).await;
            self.nemesis.runtime.lock().await.teardown().await.unwrap();
        }

        /// Removing the leader: leadership moves first (`POST /transfer`),
        /// then the new leader removes the old one, which halts.
        async fn remove_the_leader(&self, leader: &str) {
            let members = self.members();
            remove(&members, id_of(leader).unwrap(), None)
                .await
                .expect("the leader removed");
            let (now, config) = members.leader().await.expect("a new leader");
            assert_ne!(now, leader);
            assert_eq!(config.voters.len(), 2, "{config:?}");
            assert!(!config.has(id_of(leader).unwrap()), "{config:?}");
            let registry = &self.nemesis.membership;
            assert_eq!(registry.get(leader).unwrap().standing, Standing::Removed);
            let (to, moved) = members
                .transfer(
                    &config
                        .voters
                        .iter()
                        .map(|v| name(*v))
                        .find(|v| *v != now)
                        .unwrap(),
                )
                .await;
            moved.expect("leadership transferred");
            assert_ne!(to.as_deref(), Some(now.as_str()));
        }

        /// The node comes back, learns it was removed and halts: `removed`
        /// in its status, `410` to a submit.
        async fn wait_halted(&self, away: &str) {
            let until = Instant::now() + Duration::from_secs(15);
            while !self.status(away).await["removed"]
                .as_bool()
                .unwrap_or(false)
            {
                assert!(Instant::now() < until, "{away} never learnt its removal");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let url = self.nemesis.membership.get(away).unwrap().url;
            let body = json!({"id": "after-eviction", "payload": "x", "ack": "committed"});
            let answer = reqwest::Client::new()
                .post(format!("{url}/submit"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status().as_u16(), 410, "{away} must refuse submits");
        }

        /// The leader and its term stay as they were for five election
        /// timeouts after the heal, on every member.
        async fn assert_undisturbed(&self, leader: &str, term: u64) {
            let until = Instant::now() + Duration::from_millis(5 * ELECTION_MS);
            let want = id_of(leader).unwrap();
            while Instant::now() < until {
                for node in self.nemesis.members() {
                    let s = self.status(&node).await;
                    assert_eq!(s["leader"].as_u64(), Some(want), "{node}: {s}");
                    assert_eq!(s["term"].as_u64(), Some(term), "{node}: {s}");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}
