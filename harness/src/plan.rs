//! The test plan: command-line flags validated into plain data. The plan
//! is the one place a test is put together (Jepsen's test map).

use crate::cli::TestArgs;
use crate::sut::{Sut, System};
use anyhow::{anyhow, bail, Context};
use rand::RngCore;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::PathBuf;
use workloads::{Ack, ReadMode};

/// Nodes in a cluster at most (loopback addresses and grudges stay small).
pub const NODES_MAX: usize = 9;

/// The workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Total-order broadcast, judged by the ordering checker.
    Ordering,
    /// Keyed cas-registers, judged by the linearizability checker.
    Register,
}

/// A fault the nemesis can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// SIGKILL and restart.
    Kill,
    /// SIGSTOP and SIGCONT.
    Pause,
    /// Network partitions by grudge.
    Partition,
    /// Clock bumps, strobes and rate changes through libfaketime.
    Clock,
}

impl Fault {
    /// The name used in flags and in history events.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Partition => "partition",
            Fault::Clock => "clock",
        }
    }
}

/// Where nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Containers on a private Docker network.
    Docker,
    /// Local processes on loopback addresses.
    Process,
}

/// A validated test.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// `<sut>-<workload>-<nemeses>`.
    pub name: String,
    /// The system under test.
    pub sut: Sut,
    /// etcd's read consistency (ordeal-node: always linearizable).
    pub read_mode: ReadMode,
    /// The workload.
    pub workload: Workload,
    /// Faults, empty for none.
    pub nemesis: Vec<Fault>,
    /// Where nodes run (resolved from `auto`).
    pub runtime: RuntimeKind,
    /// Node names.
    pub nodes: Vec<String>,
    /// The seed of generators and nemesis schedule.
    pub seed: u64,
    /// Seconds of workload.
    pub time_limit_s: u64,
    /// Target ops/s over all workers (0 = unlimited).
    pub rate: f64,
    /// Concurrent workers.
    pub concurrency: usize,
    /// When a node acknowledges a submit.
    pub ack: Ack,
    /// Node bug switches.
    pub bugs: Vec<String>,
    /// Seconds a fault lasts and between faults.
    pub nemesis_interval_s: u64,
    /// Seconds allowed for recovery after the final heal.
    pub recovery_s: u64,
    /// Client request timeout, ms.
    pub request_timeout_ms: u64,
    /// Raft election timeout the nodes run with, ms.
    pub election_timeout_ms: u64,
    /// Kill and pause prefer a node holding an uncommitted tail.
    pub aim_uncommitted_tail: bool,
    /// The command line, to rerun the test.
    pub command_line: String,
    /// The store root.
    #[serde(skip)]
    pub store: PathBuf,
    /// The node binary.
    #[serde(skip)]
    pub node_binary: Option<PathBuf>,
    /// The etcd binary.
    #[serde(skip)]
    pub etcd_binary: Option<PathBuf>,
}

const BUGS: [&str; 4] = ["stale-read", "ack-before-commit", "no-fsync", "forget-vote"];

/// Parses `none|kill|pause|partition|clock|all` or a comma list.
pub fn parse_nemesis(text: &str) -> anyhow::Result<Vec<Fault>> {
    let mut set = BTreeSet::new();
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match word {
            "none" => {}
            "all" => set.extend([Fault::Kill, Fault::Pause, Fault::Partition, Fault::Clock]),
            "kill" => _ = set.insert(Fault::Kill),
            "pause" => _ = set.insert(Fault::Pause),
            "partition" => _ = set.insert(Fault::Partition),
            "clock" => _ = set.insert(Fault::Clock),
            other => bail!("--nemesis: unknown fault `{other}` (expected none, kill, pause, partition, clock, all or a comma list)"),
        }
    }
    Ok(set.into_iter().collect())
}

/// What the system under test allows: its read mode, workload, bug
/// switches and faults (`all` loses the faults that cannot reach it).
fn check_sut(
    args: &TestArgs,
    sut: Sut,
    workload: Workload,
    nemesis: &mut Vec<Fault>,
) -> anyhow::Result<ReadMode> {
    let read_mode = ReadMode::parse(&args.read_mode);
    match sut {
        Sut::Ordeal => {
            if read_mode != Some(ReadMode::Linearizable) {
                bail!("--read-mode: `{}` applies to --sut etcd only (ordeal-node serves every read through raft)", args.read_mode);
            }
        }
        Sut::Etcd => {
            if workload != Workload::Register {
                bail!("--sut etcd: only the register workload runs on etcd (it is not an ordering service)");
            }
            if read_mode.is_none() {
                bail!(
                    "--read-mode: `{}` is neither linearizable nor serializable",
                    args.read_mode
                );
            }
            if !args.bugs.is_empty() {
                bail!("--bug: bug switches exist in ordeal-node only, not in etcd");
            }
        }
    }
    if let Some(why) = sut
        .refuses(Fault::Clock)
        .filter(|_| nemesis.contains(&Fault::Clock))
    {
        if args.nemesis.split(',').any(|w| w.trim() == "clock") {
            bail!(
                "--nemesis clock: clock faults cannot reach {} ({why}); they need --sut ordeal",
                sut.name()
            );
        }
        // `all`: every fault that can reach the system.
        nemesis.retain(|f| *f != Fault::Clock);
    }
    Ok(read_mode.expect("checked for each system above"))
}

/// Bug names, counts, rates and durations.
fn check_numbers(args: &TestArgs) -> anyhow::Result<()> {
    for bug in &args.bugs {
        if !BUGS.contains(&bug.as_str()) {
            bail!(
                "--bug: unknown bug `{bug}` (expected one of {})",
                BUGS.join(", ")
            );
        }
    }
    if args.concurrency == 0 || args.rate < 0.0 || !args.rate.is_finite() {
        bail!("--concurrency must be positive and --rate finite and not negative");
    }
    if args.time_limit_s == 0 || args.nemesis_interval_s == 0 {
        bail!("--time-limit-s and --nemesis-interval-s must be positive");
    }
    Ok(())
}

impl Plan {
    /// Validates flags, resolving `--runtime auto` by asking Docker.
    pub fn resolve(args: &TestArgs) -> anyhow::Result<Plan> {
        let docker = args.runtime != "process" && crate::runtime::docker::daemon_answers();
        Plan::from_args(args, docker)
    }

    /// Validates flags; `docker_answers` tells how `auto` resolves.
    pub fn from_args(args: &TestArgs, docker_answers: bool) -> anyhow::Result<Plan> {
        let workload = match args.workload.as_str() {
            "ordering" => Workload::Ordering,
            "register" => Workload::Register,
            other => {
                bail!("--workload: unknown workload `{other}` (expected ordering or register)")
            }
        };
        let mut nemesis = parse_nemesis(&args.nemesis)?;
        let sut: Sut = args.sut.parse().map_err(|e| anyhow!("--sut: {e}"))?;
        let read_mode = check_sut(args, sut, workload, &mut nemesis)?;
        if args.nodes == 0 || args.nodes > NODES_MAX {
            bail!("--nodes: {} is out of range 1..={NODES_MAX}", args.nodes);
        }
        let runtime = match args.runtime.as_str() {
            "auto" if docker_answers => RuntimeKind::Docker,
            "auto" | "process" => RuntimeKind::Process,
            "docker" => RuntimeKind::Docker,
            other => {
                bail!("--runtime: unknown runtime `{other}` (expected auto, docker or process)")
            }
        };
        let Some(ack) = Ack::parse(&args.ack) else {
            bail!("--ack: `{}` is neither committed nor accepted", args.ack);
        };
        check_numbers(args)?;
        let seed = args
            .seed
            .unwrap_or_else(|| rand::thread_rng().next_u64() >> 12);
        let nemesis_name = if nemesis.is_empty() {
            "none".to_string()
        } else {
            nemesis
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join("+")
        };
        let wl = match workload {
            Workload::Ordering => "ordering",
            Workload::Register => "register",
        };
        Ok::<Plan, anyhow::Error>(Plan {
            name: format!("{}-{wl}-{nemesis_name}", sut.name()),
            sut,
            read_mode,
            workload,
            nemesis,
            runtime,
            nodes: (1..=args.nodes).map(|i| format!("n{i}")).collect(),
            seed,
            time_limit_s: args.time_limit_s,
            rate: args.rate,
            concurrency: args.concurrency,
            ack,
            bugs: args.bugs.clone(),
            nemesis_interval_s: args.nemesis_interval_s,
            recovery_s: args.recovery_s,
            request_timeout_ms: args.request_timeout_ms,
            election_timeout_ms: sut.election_timeout_ms(),
            aim_uncommitted_tail: args.aim_uncommitted_tail,
            command_line: String::new(),
            store: args.store.clone(),
            node_binary: args.node_binary.clone(),
            etcd_binary: args.etcd_binary.clone(),
        })
        .map(|mut p| {
            p.command_line = p.rerun_command();
            p
        })
        .context("validating the test")
    }

    /// The command that reruns this test with its seed.
    pub fn rerun_command(&self) -> String {
        let nemesis = if self.nemesis.is_empty() {
            "none".to_string()
        } else {
            self.nemesis
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(",")
        };
        let wl = match self.workload {
            Workload::Ordering => "ordering",
            Workload::Register => "register",
        };
        let rt = match self.runtime {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Process => "process",
        };
        let sut = match self.sut {
            Sut::Ordeal => String::new(),
            Sut::Etcd => format!("--sut etcd --read-mode {} ", self.read_mode.as_str()),
        };
        let mut cmd = format!(
            "cargo run -p harness -- {sut}--workload {wl} --nemesis {nemesis} --nodes {} --time-limit-s {} --rate {} --concurrency {} --runtime {rt} --ack {} --seed {} --nemesis-interval-s {} --recovery-s {}",
            self.nodes.len(), self.time_limit_s, self.rate, self.concurrency, self.ack.as_str(), self.seed, self.nemesis_interval_s, self.recovery_s
        );
        cmd.push_str(&format!(
            " --request-timeout-ms {}",
            self.request_timeout_ms
        ));
        for bug in &self.bugs {
            cmd.push_str(&format!(" --bug {bug}"));
        }
        if self.aim_uncommitted_tail {
            cmd.push_str(" --aim-uncommitted-tail");
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nemesis_lists_parse_and_bad_words_are_named() {
        assert_eq!(parse_nemesis("none").unwrap(), vec![]);
        assert_eq!(
            parse_nemesis("partition,kill").unwrap(),
            vec![Fault::Kill, Fault::Partition]
        );
        assert_eq!(parse_nemesis("all").unwrap().len(), 4);
        assert!(parse_nemesis("kil")
            .unwrap_err()
            .to_string()
            .contains("`kil`"));
    }
}
