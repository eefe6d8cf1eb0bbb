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
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL and restart.
    Kill,
    /// SIGSTOP and SIGCONT.
    Pause,
    /// Network partitions by grudge.
    Partition,
    /// Clock bumps, strobes and rate changes through libfaketime.
    Clock,
    /// A follower cut off until the leader has compacted its log past it,
    /// so that it must catch up by snapshot.
    Lag,
    /// SIGKILL and `lose-unfsynced` on faultfs (one node or every node),
    /// restart on what the disk kept.
    Power,
    /// The same with `torn`: a seeded prefix of the unsynced changes kept.
    Torn,
    /// fsync delayed past half the election timeout on one node.
    SlowDisk,
    /// fsync fails with EIO on one node.
    DiskError,
    /// Consenter-set changes: remove a voter, add a fresh node (learner,
    /// then voter), remove the leader (after a transfer), replace a node.
    Member,
    /// Leadership moved to a chosen follower (`POST /transfer`).
    Transfer,
}

impl Fault {
    /// The name used in flags and in history events.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Partition => "partition",
            Fault::Clock => "clock",
            Fault::Lag => "lag",
            Fault::Power => "power",
            Fault::Torn => "torn",
            Fault::SlowDisk => "slow-disk",
            Fault::DiskError => "disk-error",
            Fault::Member => "member",
            Fault::Transfer => "transfer",
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
    /// Processes on remote hosts over SSH.
    Ssh,
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
    /// ordeal-node's snapshot interval, bytes of applied transactions.
    pub snapshot_interval_bytes: u64,
    /// Raft election timeout the nodes run with, ms.
    pub election_timeout_ms: u64,
    /// Every data directory on faultfs (`--faultfs`, or any disk fault).
    pub faultfs: bool,
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
    /// `--runtime ssh`: one host per node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<crate::ssh::HostSpec>,
    /// `--runtime ssh`: how host keys are checked.
    #[serde(skip)]
    pub ssh_trust: crate::ssh::Trust,
    /// `--runtime ssh`: the flags naming the hosts, for the rerun command.
    #[serde(skip)]
    pub host_flags: String,
}

const BUGS: [&str; 4] = ["stale-read", "ack-before-commit", "no-fsync", "forget-vote"];

/// Parses `none|kill|pause|partition|clock|lag|all` or a comma list.
pub fn parse_nemesis(text: &str) -> anyhow::Result<Vec<Fault>> {
    let mut set = BTreeSet::new();
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match word {
            "none" => {}
            "all" => {
                set.extend([
                    Fault::Kill,
                    Fault::Pause,
                    Fault::Partition,
                    Fault::Clock,
                    Fault::Lag,
                    Fault::Member,
                    Fault::Transfer,
                ]);
                set.extend(crate::disk::DISK_FAULTS);
            }
            "kill" => _ = set.insert(Fault::Kill),
            "pause" => _ = set.insert(Fault::Pause),
            "partition" => _ = set.insert(Fault::Partition),
            "clock" => _ = set.insert(Fault::Clock),
            "lag" => _ = set.insert(Fault::Lag),
            "power" => _ = set.insert(Fault::Power),
            "torn" => _ = set.insert(Fault::Torn),
            "slow-disk" => _ = set.insert(Fault::SlowDisk),
            "disk-error" => _ = set.insert(Fault::DiskError),
            "member" => _ = set.insert(Fault::Member),
            "transfer" => _ = set.insert(Fault::Transfer),
            other => bail!("--nemesis: unknown fault `{other}` (expected none, kill, pause, partition, clock, lag, power, torn, slow-disk, disk-error, member, transfer, all or a comma list)"),
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
    for fault in nemesis.clone() {
        let Some(why) = sut.refuses(fault) else {
            continue;
        };
        if args.nemesis.split(',').any(|w| w.trim() == fault.name()) {
            bail!(
                "--nemesis {}: this fault cannot reach {} ({why}); it needs --sut ordeal",
                fault.name(),
                sut.name()
            );
        }
        // `all`: every fault that can reach the system.
        nemesis.retain(|f| *f != fault);
    }
    Ok(read_mode.expect("checked for each system above"))
}

/// `--runtime` (`auto`: ssh when hosts are named, docker when a daemon
/// answers, else process) and the hosts of the ssh runtime.
fn resolve_runtime(
    args: &TestArgs,
    docker_answers: bool,
    nemesis: &mut Vec<Fault>,
) -> anyhow::Result<(RuntimeKind, Vec<crate::ssh::HostSpec>)> {
    let hosts = crate::ssh::hosts_from(&args.ssh)?;
    let runtime = match args.runtime.as_str() {
        "auto" if hosts.is_some() => RuntimeKind::Ssh,
        "ssh" => RuntimeKind::Ssh,
        "auto" if docker_answers => RuntimeKind::Docker,
        "auto" | "process" => RuntimeKind::Process,
        "docker" => RuntimeKind::Docker,
        other => {
            bail!("--runtime: unknown runtime `{other}` (expected auto, docker, process or ssh)")
        }
    };
    let hosts = check_hosts(runtime, hosts, args, nemesis)?;
    Ok((runtime, hosts))
}

/// Hosts go with `--runtime ssh` alone, one per node; the ssh runtime
/// drives kill, pause, partition, clock and lag faults, and refuses the
/// rest when named (`all` drops them, with a note): disk faults, and the
/// membership faults (a node added needs a host nobody named).
fn check_hosts(
    runtime: RuntimeKind,
    hosts: Option<Vec<crate::ssh::HostSpec>>,
    args: &TestArgs,
    nemesis: &mut Vec<Fault>,
) -> anyhow::Result<Vec<crate::ssh::HostSpec>> {
    let nodes = args.nodes;
    let Some(hosts) = hosts else {
        if runtime == RuntimeKind::Ssh {
            bail!("--runtime ssh needs its hosts: --hosts HOST[,HOST…] or --hosts-file FILE");
        }
        return Ok(Vec::new());
    };
    if runtime != RuntimeKind::Ssh {
        bail!("--hosts and --hosts-file apply to --runtime ssh only");
    }
    if hosts.len() != nodes {
        bail!(
            "--hosts: {} hosts for --nodes {nodes} (one host per node; a host may be listed twice)",
            hosts.len()
        );
    }
    let over_ssh = |f: &Fault| {
        matches!(
            f,
            Fault::Kill | Fault::Pause | Fault::Partition | Fault::Clock | Fault::Lag
        )
    };
    let named = |f: &Fault| args.nemesis.split(',').any(|w| w.trim() == f.name());
    if let Some(f) = nemesis.iter().find(|f| !over_ssh(f) && named(f)) {
        bail!(
            "--nemesis {}: the ssh runtime cannot inject this fault ({})",
            f.name(),
            ssh_refusal(*f)
        );
    }
    let dropped: Vec<&str> = nemesis
        .iter()
        .filter(|f| !over_ssh(f))
        .map(|f| f.name())
        .collect();
    if !dropped.is_empty() {
        eprintln!(
            "--nemesis all: without {} over ssh (disk faults are not supported there; membership faults need hosts for the nodes they add)",
            dropped.join(", ")
        );
    }
    nemesis.retain(over_ssh);
    Ok(hosts)
}

/// Why the ssh runtime refuses a fault it does not drive.
fn ssh_refusal(fault: Fault) -> &'static str {
    match fault {
        Fault::Member | Fault::Transfer => "membership faults start nodes during the run, and the ssh runtime has one host per node named before it",
        _ => "disk faults over ssh are not supported",
    }
}

/// The disk faults: refused by name when FUSE cannot be had or the system
/// cannot run on faultfs; dropped from `all` then, with a note.
fn check_disk(args: &TestArgs, sut: Sut, nemesis: &mut Vec<Fault>) -> anyhow::Result<()> {
    let named = |f: Fault| args.nemesis.split(',').any(|w| w.trim() == f.name());
    let fuse = nemesis
        .iter()
        .any(|f| crate::disk::is_disk(*f))
        .then(crate::disk::fuse_unavailable)
        .flatten();
    for f in crate::disk::DISK_FAULTS {
        let why = sut.refuses(f).map(str::to_string).or_else(|| fuse.clone());
        let Some(why) = why.filter(|_| nemesis.contains(&f)) else {
            continue;
        };
        if named(f) {
            bail!(
                "--nemesis {}: disk faults need faultfs, which cannot be had here: {why}",
                f.name()
            );
        }
        eprintln!("--nemesis all: without {} ({why})", f.name());
        nemesis.retain(|g| *g != f);
    }
    Ok(())
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
    if args.snapshot_interval_bytes == 0 {
        bail!("--snapshot-interval-bytes must be positive");
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
        check_disk(args, sut, &mut nemesis)?;
        if args.nodes == 0 || args.nodes > NODES_MAX {
            bail!("--nodes: {} is out of range 1..={NODES_MAX}", args.nodes);
        }
        let (runtime, hosts) = resolve_runtime(args, docker_answers, &mut nemesis)?;
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
            snapshot_interval_bytes: args.snapshot_interval_bytes,
            election_timeout_ms: sut.election_timeout_ms(),
            faultfs: args.faultfs,
            aim_uncommitted_tail: args.aim_uncommitted_tail,
            command_line: String::new(),
            store: args.store.clone(),
            node_binary: args.node_binary.clone(),
            etcd_binary: args.etcd_binary.clone(),
            hosts,
            ssh_trust: crate::ssh::Trust {
                known_hosts: args.ssh.ssh_known_hosts.clone(),
            },
            host_flags: crate::ssh::host_flags(&args.ssh),
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
            RuntimeKind::Ssh => "ssh",
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
        if self.sut == Sut::Ordeal {
            cmd.push_str(&format!(
                " --snapshot-interval-bytes {}",
                self.snapshot_interval_bytes
            ));
        }
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
        assert_eq!(parse_nemesis("all").unwrap().len(), 11);
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
        assert!(error(&["--hosts", "a,b"]).contains("2 hosts for --nodes 3"));
        assert!(error(&["--hosts", "a,b,c", "--hosts-file", "f"]).contains("not both"));
    }
}
