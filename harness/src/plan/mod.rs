//! The test plan: command-line flags validated into plain data. The plan
//! is the one place a test is put together (Jepsen's test map): it names
//! the system, the workload, the faults and the runtime, and hands each
//! lower layer what it reads ([`Plan::sut_options`], [`Plan::binaries`]),
//! so that none of them knows the plan.
//!
//! Layers inside: this file, then `faults.rs` (which faults a test gets:
//! the registry asked what each refuses), `hosts.rs` (the ssh runtime's
//! hosts), `swarm.rs` (the node count and settings each run draws) and
//! `args.rs` (the flags as typed).

pub mod args;
pub mod faults;
pub mod hosts;
pub mod swarm;

use crate::judge::Workload;
use crate::nemesis::faults::Fault;
use crate::nemesis::package::FaultPackage;
use crate::nemesis::schedule::Schedule;
use crate::runtime::ssh::hosts::HostSpec;
use crate::runtime::ssh::session::Trust;
use crate::runtime::RuntimeKind;
use crate::sut::{Asked, Binaries, Options, Sut, System, Tuning};
use anyhow::{anyhow, bail, Context};
use args::TestArgs;
use rand::RngCore;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use swarm::{Swarm, SwarmMode};
use workloads::{Ack, ReadMode};

/// Nodes in a cluster at most (loopback addresses and grudges stay small).
pub const NODES_MAX: usize = 9;

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
    /// Faults in force at once at most (`--nemesis-overlap`).
    pub nemesis_overlap: usize,
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
    /// ordeal-node's settings, drawn or pinned (`swarm`).
    pub node_config: Tuning,
    /// What the swarm drew.
    pub swarm: Swarm,
    /// Raft election timeout the nodes run with, ms.
    pub election_timeout_ms: u64,
    /// Every data directory on faultfs (`--faultfs`, or any disk fault).
    pub faultfs: bool,
    /// Kill and pause prefer a node holding an uncommitted tail.
    pub aim_uncommitted_tail: bool,
    /// The crash points the `crash` fault arms first (`--crash-prefer`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub crash_prefer: Vec<String>,
    /// The command line, to rerun the test.
    pub command_line: String,
    /// The schedule this run replays (`harness replay`), a path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
    /// The schedule to replay instead of drawing faults.
    #[serde(skip)]
    pub script: Option<Arc<Schedule>>,
    /// The store root.
    #[serde(skip)]
    pub store: PathBuf,
    /// The node binary.
    #[serde(skip)]
    pub node_binary: Option<PathBuf>,
    /// The etcd binary.
    #[serde(skip)]
    pub etcd_binary: Option<PathBuf>,
    /// The nats-server binary.
    #[serde(skip)]
    pub nats_binary: Option<PathBuf>,
    /// `--runtime ssh`: one host per node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostSpec>,
    /// `--runtime ssh`: how host keys are checked.
    #[serde(skip)]
    pub ssh_trust: Trust,
    /// `--runtime ssh`: the flags naming the hosts, for the rerun command.
    #[serde(skip)]
    pub host_flags: String,
}

/// The node's bug switches (`ordeal-node run --bug`, docs/node-api.md):
/// the first four break what clients see or a vote, the other four one
/// oracle each of the `raft` checker (docs/trace.md) or the run's
/// `crashed` oracle.
const BUGS: [&str; 8] = [
    "stale-read",
    "ack-before-commit",
    "no-fsync",
    "forget-vote",
    "install-drops-register",
    "restart-skips-entry",
    "ack-before-fsync",
    "snapshot-after-install-panics",
];

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
    if args.nemesis_overlap == 0 {
        bail!("--nemesis-overlap must be positive (1: one fault at a time)");
    }
    if args.time_limit_s == 0 || args.nemesis_interval_s == 0 {
        bail!("--time-limit-s and --nemesis-interval-s must be positive");
    }
    Ok(())
}

/// `--crash-prefer`'s names, each in ordeal-node's catalogue.
fn crash_prefer(list: &str) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = names
        .iter()
        .find(|n| node::crash_points::Point::from_name(n).is_none())
    {
        bail!(
            "--crash-prefer: no crash point named `{bad}` (`ordeal-node crash-points` lists them)"
        );
    }
    Ok(names)
}

/// The node count and settings (`swarm.rs`): the ssh runtime's hosts pin
/// the count.
fn configure_nodes(
    args: &TestArgs,
    sut: Sut,
    ssh_hosts: Option<usize>,
    seed: u64,
) -> anyhow::Result<(usize, Tuning, Swarm)> {
    let mut pins = args.pins();
    pins.nodes = ssh_hosts.or(pins.nodes);
    let mode = SwarmMode::parse(&args.swarm)?;
    let (nodes, tuning, swarm) = swarm::configure(mode, &pins, sut, seed)?;
    if nodes == 0 || nodes > NODES_MAX {
        bail!("--nodes: {nodes} is out of range 1..={NODES_MAX}");
    }
    Ok((nodes, tuning, swarm))
}

impl Plan {
    /// Validates flags, resolving `--runtime auto` by asking Docker.
    pub fn resolve(args: &TestArgs) -> anyhow::Result<Plan> {
        let docker = args.runtime != "process" && crate::runtime::docker::daemon_answers();
        Plan::from_args(args, docker)
    }

    /// Validates flags; `docker_answers` tells how `auto` resolves.
    pub fn from_args(args: &TestArgs, docker_answers: bool) -> anyhow::Result<Plan> {
        let Some(workload) = Workload::parse(&args.workload) else {
            bail!(
                "--workload: unknown workload `{}` (expected ordering or register)",
                args.workload
            )
        };
        let mut nemesis = faults::parse_nemesis(&args.nemesis)?;
        let sut: Sut = args.sut.parse().map_err(|e| anyhow!("--sut: {e}"))?;
        let read_mode = sut.allows(&Asked {
            workload: workload.name(),
            read_mode: &args.read_mode,
            bugs: &args.bugs,
        })?;
        faults::refuse_for_sut(args, sut, &mut nemesis)?;
        faults::refuse_without_faultfs(args, sut, &mut nemesis)?;
        let (runtime, hosts) = hosts::resolve_runtime(args, docker_answers)?;
        faults::refuse_for_runtime(args, runtime, &mut nemesis)?;
        let Some(ack) = Ack::parse(&args.ack) else {
            bail!("--ack: `{}` is neither committed nor accepted", args.ack);
        };
        check_numbers(args)?;
        let seed = args
            .seed
            .unwrap_or_else(|| rand::thread_rng().next_u64() >> 12);
        let ssh_hosts = (runtime == RuntimeKind::Ssh).then_some(hosts.len());
        let (nodes, node_config, swarm) = configure_nodes(args, sut, ssh_hosts, seed)?;
        Ok::<Plan, anyhow::Error>(Plan {
            name: test_name(sut, workload, &nemesis),
            sut,
            read_mode,
            workload,
            nemesis,
            nemesis_overlap: args.nemesis_overlap,
            runtime,
            nodes: (1..=nodes).map(|i| format!("n{i}")).collect(),
            seed,
            time_limit_s: args.time_limit_s,
            rate: args.rate,
            concurrency: args.concurrency,
            ack,
            bugs: args.bugs.clone(),
            nemesis_interval_s: args.nemesis_interval_s,
            recovery_s: args.recovery_s,
            request_timeout_ms: args.request_timeout_ms,
            node_config,
            swarm,
            election_timeout_ms: 0,
            faultfs: args.faultfs,
            aim_uncommitted_tail: args.aim_uncommitted_tail,
            crash_prefer: crash_prefer(&args.crash_prefer)?,
            command_line: String::new(),
            replay_of: None,
            script: None,
            store: args.store.clone(),
            node_binary: args.node_binary.clone(),
            etcd_binary: args.etcd_binary.clone(),
            nats_binary: args.nats_binary.clone(),
            hosts,
            ssh_trust: Trust {
                known_hosts: args.ssh.ssh_known_hosts.clone(),
            },
            host_flags: hosts::host_flags(&args.ssh),
        })
        .map(|mut p| {
            p.election_timeout_ms = p.sut.election_timeout_ms(&p.sut_options());
            p.command_line = p.rerun_command();
            p
        })
        .context("validating the test")
    }

    /// What the system under test reads of the test.
    pub fn sut_options(&self) -> Options {
        Options {
            seed: self.seed,
            ack: self.ack,
            read_mode: self.read_mode,
            request_timeout_ms: self.request_timeout_ms,
            tuning: self.node_config,
            bugs: self.bugs.clone(),
        }
    }

    /// The binaries the flags named.
    pub fn binaries(&self) -> Binaries {
        Binaries {
            node: self.node_binary.clone(),
            etcd: self.etcd_binary.clone(),
            nats: self.nats_binary.clone(),
        }
    }

    /// The system under test's binary (built when it must be).
    pub fn sut_binary(&self) -> anyhow::Result<PathBuf> {
        self.sut.binary(&self.binaries())
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
        let wl = self.workload.name();
        let rt = self.runtime.name();
        let (sut, sut_after) = self.sut.rerun_flags(&self.sut_options());
        let mut cmd = format!(
            "cargo run -p harness -- {sut}--workload {wl} --nemesis {nemesis} --nodes {} --time-limit-s {} --rate {} --concurrency {} --runtime {rt} --ack {} --seed {} --nemesis-interval-s {} --recovery-s {}",
            self.nodes.len(), self.time_limit_s, self.rate, self.concurrency, self.ack.as_str(), self.seed, self.nemesis_interval_s, self.recovery_s
        );
        cmd.push_str(&format!(
            " --request-timeout-ms {}",
            self.request_timeout_ms
        ));
        cmd.push_str(&sut_after);
        // Every setting is pinned above: a setting a later harness adds
        // is then its default, not drawn, when this line is run again.
        cmd.push_str(" --swarm off");
        for bug in &self.bugs {
            cmd.push_str(&format!(" --bug {bug}"));
        }
        cmd.push_str(&self.host_flags);
        if self.faultfs {
            cmd.push_str(" --faultfs");
        }
        if self.aim_uncommitted_tail {
            cmd.push_str(" --aim-uncommitted-tail");
        }
        if !self.crash_prefer.is_empty() {
            cmd.push_str(&format!(" --crash-prefer {}", self.crash_prefer.join(",")));
        }
        if self.nemesis_overlap > 1 {
            cmd.push_str(&format!(" --nemesis-overlap {}", self.nemesis_overlap));
        }
        cmd
    }
}

/// `<sut>-<workload>-<nemeses joined by +>` (`none` without faults).
fn test_name(sut: Sut, workload: Workload, nemesis: &[Fault]) -> String {
    let nemesis_name = if nemesis.is_empty() {
        "none".to_string()
    } else {
        nemesis
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join("+")
    };
    format!("{}-{}-{nemesis_name}", sut.name(), workload.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    use faults::parse_nemesis;

    #[test]
    fn nemesis_lists_parse_and_bad_words_are_named() {
        assert_eq!(parse_nemesis("none").unwrap(), vec![]);
        assert_eq!(
            parse_nemesis("partition,kill").unwrap(),
            vec![Fault::Kill, Fault::Partition]
        );
        let all = parse_nemesis("all").unwrap();
        assert_eq!(all.len(), 13, "every fault but corrupt, rollback and wipe");
        assert!(!all.contains(&Fault::Rollback) && !all.contains(&Fault::Wipe));
        assert!(!all.contains(&Fault::Corrupt));
        assert_eq!(
            parse_nemesis("all,wipe").unwrap().len(),
            14,
            "named, it is run"
        );
        assert_eq!(
            parse_nemesis("member,transfer").unwrap(),
            vec![Fault::Member, Fault::Transfer]
        );
        assert_eq!(parse_nemesis("lag").unwrap(), vec![Fault::Lag]);
        assert_eq!(
            parse_nemesis("slow-disk,power").unwrap(),
            vec![Fault::Power, Fault::SlowDisk]
        );
        assert!(parse_nemesis("kil")
            .unwrap_err()
            .to_string()
            .contains("`kil`"));
    }

    #[test]
    fn membership_faults_are_ordeal_only_and_refused_over_ssh_naming_why() {
        use clap::Parser;
        let plan = |flags: &[&str]| {
            let cli = crate::cli::Cli::try_parse_from([&["harness"], flags].concat()).unwrap();
            Plan::from_args(&cli.test, false)
        };
        let error = |flags: &[&str]| format!("{:#}", plan(flags).unwrap_err());
        let ok = plan(&["--nemesis", "all", "--runtime", "process"]).unwrap();
        assert!(ok.nemesis.contains(&Fault::Member) && ok.nemesis.contains(&Fault::Transfer));
        let etcd = [
            "--sut",
            "etcd",
            "--workload",
            "register",
            "--runtime",
            "process",
        ];
        let e = error(&[&etcd[..], &["--nemesis", "member"]].concat());
        assert!(
            e.contains("cannot reach etcd") && e.contains("POST /members"),
            "{e}"
        );
        let all = plan(&[&etcd[..], &["--nemesis", "all"]].concat()).unwrap();
        assert!(!all.nemesis.contains(&Fault::Member) && !all.nemesis.contains(&Fault::Transfer));
        let e = error(&["--hosts", "a,b,c", "--nemesis", "transfer"]);
        assert!(
            e.contains("ssh runtime cannot inject") && e.contains("one host per node"),
            "{e}"
        );
        let ssh_all = plan(&["--hosts", "a,b,c", "--nemesis", "all"]).unwrap();
        assert!(!ssh_all.nemesis.contains(&Fault::Member));
    }

    #[test]
    fn ssh_hosts_go_with_the_ssh_runtime_one_per_node() {
        use clap::Parser;
        let plan = |flags: &[&str]| {
            let cli = crate::cli::Cli::try_parse_from([&["harness"], flags].concat()).unwrap();
            Plan::from_args(&cli.test, false)
        };
        let error = |flags: &[&str]| format!("{:#}", plan(flags).unwrap_err());
        let ok = plan(&["--hosts", "a,b,c", "--nemesis", "all"]).unwrap();
        assert_eq!((ok.runtime, ok.hosts.len()), (RuntimeKind::Ssh, 3));
        assert!(
            ok.rerun_command().contains("--runtime ssh")
                && ok.rerun_command().ends_with("--hosts a,b,c")
        );
        assert!(error(&["--runtime", "ssh"]).contains("needs its hosts"));
        assert!(error(&["--runtime", "process", "--hosts", "a,b,c"]).contains("--runtime ssh only"));
        assert!(error(&["--hosts", "a,b", "--nodes", "3"]).contains("2 hosts for --nodes 3"));
        assert!(error(&["--hosts", "a,b,c", "--hosts-file", "f"]).contains("not both"));
    }
}
