//! The node's configuration: flags parsed into plain data, then validated.

use crate::crash_points::{self, Arming, Point};
use crate::cutter::BatchConfig;
use crate::tx::TX_BYTES_MAX;
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Test-only switches, each breaking the promise it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Bug {
    /// Answer read-only transactions from local state, skipping the log.
    StaleRead,
    /// Answer `committed` submits as soon as they are enqueued.
    AckBeforeCommit,
    /// Never fsync the write-ahead log.
    NoFsync,
    /// Do not persist term and vote (only the commit index).
    ForgetVote,
    /// Installing a leader's snapshot restores every register but the
    /// first in key order (an off-by-one in reading them): the replica's
    /// state diverges silently (the trace's `digest` shows it).
    InstallDropsRegister,
    /// After a restart the state machine resumes one entry late: the entry
    /// after the recovered snapshot's index is never applied (a gap in the
    /// trace's `apply` events).
    RestartSkipsEntry,
    /// A follower sends its append responses before the fsync that covers
    /// the entries they acknowledge (the fsync itself still happens).
    AckBeforeFsync,
    /// The first snapshot a node takes after installing a leader's panics
    /// (a block store bookkeeping assertion): the process exits.
    SnapshotAfterInstallPanics,
}

impl Bug {
    /// The flag value naming this bug.
    pub fn name(self) -> &'static str {
        match self {
            Bug::StaleRead => "stale-read",
            Bug::AckBeforeCommit => "ack-before-commit",
            Bug::NoFsync => "no-fsync",
            Bug::ForgetVote => "forget-vote",
            Bug::InstallDropsRegister => "install-drops-register",
            Bug::RestartSkipsEntry => "restart-skips-entry",
            Bug::AckBeforeFsync => "ack-before-fsync",
            Bug::SnapshotAfterInstallPanics => "snapshot-after-install-panics",
        }
    }
}

/// `ordeal-node run` flags (docs/node-api.md).
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// This node's raft id (any positive number, unique in the cluster).
    #[arg(long)]
    pub id: u64,
    /// Every node's id and the address this node dials to reach it:
    /// `1=127.0.0.1:7001,2=...`. Nodes added later are learnt from the
    /// committed configuration.
    #[arg(long)]
    pub peers: String,
    /// Join a running cluster instead of founding one: the ids the cluster
    /// was founded with (its first voters, e.g. `1,2,3`). The node starts
    /// outside the configuration and takes part once a member adds it
    /// (`POST /members`, docs/node-api.md).
    #[arg(long, value_delimiter = ',')]
    pub join: Vec<u64>,
    /// Address to accept peer connections on.
    #[arg(long)]
    pub listen_peer: SocketAddr,
    /// Address of the HTTP client API.
    #[arg(long)]
    pub listen_client: SocketAddr,
    /// Where the write-ahead log and snapshot live.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Channel name (picks the node that campaigns first on a fresh cluster).
    #[arg(long, default_value = "ordeal")]
    pub channel: String,
    /// Raft tick interval in ms (Fabric: 500).
    #[arg(long, default_value_t = 100)]
    pub tick_ms: u64,
    /// Ticks without a leader before an election (Fabric: 10).
    #[arg(long, default_value_t = 10)]
    pub election_tick: usize,
    /// Ticks between heartbeats (Fabric: 1).
    #[arg(long, default_value_t = 1)]
    pub heartbeat_tick: usize,
    /// Disable pre-vote.
    #[arg(long)]
    pub no_pre_vote: bool,
    /// Disable check-quorum.
    #[arg(long)]
    pub no_check_quorum: bool,
    /// A leader whose own fsyncs take this long twice in a row hands
    /// leadership to its most caught-up voter (0: never; see
    /// `slow_disk.rs`). 250 ms: a quarter of the default election timeout.
    #[arg(long, default_value_t = 250)]
    pub slow_fsync_transfer_ms: u64,
    /// Block cutter: transactions per block at most.
    #[arg(long, default_value_t = 500)]
    pub max_message_count: usize,
    /// Block cutter: preferred block size in bytes.
    #[arg(long, default_value_t = 2 << 20)]
    pub preferred_max_bytes: usize,
    /// Largest transaction accepted, in bytes of its encoding (at most
    /// 66060288: what a log record and a forwarded peer frame carry).
    #[arg(long, default_value_t = 10 << 20)]
    pub absolute_max_bytes: usize,
    /// Block cutter: cut a non-empty batch after this many ms.
    #[arg(long, default_value_t = 20)]
    pub batch_timeout_ms: u64,
    /// Block cutter: cut the pending batch as soon as the leader's
    /// proposal pipeline is idle (no block proposed and not yet applied,
    /// none waiting to be proposed): group commit. Count, bytes and
    /// timeout stay upper bounds. `false`: cut only by those three (a
    /// lone transaction then waits for the timeout).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub cut_when_idle: bool,
    /// Blocks proposed but not yet applied, at most.
    #[arg(long, default_value_t = 5)]
    pub max_inflight_blocks: usize,
    /// Snapshot after this many bytes of applied transactions.
    #[arg(long, default_value_t = 20 << 20)]
    pub snapshot_interval_bytes: u64,
    /// Entries kept in memory behind a snapshot, so that a follower just
    /// behind gets entries rather than the whole snapshot (Fabric's
    /// SnapshotCatchUpEntries).
    #[arg(long, default_value_t = 4)]
    pub snapshot_catchup_entries: u64,
    /// How long a submit waits for its answer before a 504, in ms.
    #[arg(long, default_value_t = 4000)]
    pub submit_timeout_ms: u64,
    /// Append the Raft trace (NDJSON, docs/trace.md) to this file.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// The trace's `digest` event after every applied entry whose index is
    /// a multiple of this (docs/trace.md).
    #[arg(long, default_value_t = 16)]
    pub trace_digest_every: u64,
    /// Test-only bug switches (repeatable).
    #[arg(long, value_enum)]
    pub bug: Vec<Bug>,
    /// Test-only: arm a crash point from the start (repeatable):
    /// `NAME[=abort|panic|sleep:MS][@HIT]`, abort and hit 1 by default
    /// (docs/crash-points.md; `ordeal-node crash-points` lists the names).
    #[arg(long = "crash-point", value_name = "NAME[=ACTION][@HIT]")]
    pub crash_point: Vec<String>,
}

/// A flag value that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--{flag}: {problem}")]
pub struct ConfigError {
    /// The flag.
    pub flag: &'static str,
    /// What is wrong.
    pub problem: String,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The flags as given.
    pub args: RunArgs,
    /// id → address to dial.
    pub peers: BTreeMap<u64, String>,
    /// Block cutter rules.
    pub batch: BatchConfig,
    /// Crash points armed at start (`--crash-point`).
    pub crash_points: Vec<(Point, Arming)>,
}

impl NodeConfig {
    /// The voters the cluster was founded with: `--join`'s list, else
    /// every id in `--peers`.
    pub fn founders(&self) -> Vec<u64> {
        if self.args.join.is_empty() {
            self.peers.keys().copied().collect()
        } else {
            self.args.join.clone()
        }
    }

    /// Validates flags.
    pub fn from_args(args: RunArgs) -> Result<NodeConfig, ConfigError> {
        let peers = parse_peers(&args.peers)?;
        if !peers.contains_key(&args.id) {
            return Err(ConfigError {
                flag: "id",
                problem: format!("{} is not in --peers", args.id),
            });
        }
        let err = |flag, problem: &str| {
            Err(ConfigError {
                flag,
                problem: problem.to_string(),
            })
        };
        if args.tick_ms == 0 {
            return err("tick-ms", "must be positive");
        }
        if args.heartbeat_tick == 0 || args.election_tick <= args.heartbeat_tick {
            return err(
                "election-tick",
                "must exceed --heartbeat-tick, which must be positive",
            );
        }
        if args.max_message_count == 0 || args.max_inflight_blocks == 0 {
            return err(
                "max-message-count",
                "and --max-inflight-blocks must be positive",
            );
        }
        if args.absolute_max_bytes > TX_BYTES_MAX {
            return Err(ConfigError {
                flag: "absolute-max-bytes",
                problem: format!("{} exceeds {TX_BYTES_MAX}, the largest transaction a log record and a forwarded peer frame carry", args.absolute_max_bytes),
            });
        }
        if args.preferred_max_bytes > args.absolute_max_bytes {
            return err(
                "preferred-max-bytes",
                "must not exceed --absolute-max-bytes",
            );
        }
        if args.trace_digest_every == 0 {
            return err("trace-digest-every", "must be positive");
        }
        if args.join.contains(&args.id) {
            return err("join", "lists the founders; this node is not one of them");
        }
        let batch = BatchConfig {
            max_message_count: args.max_message_count,
            preferred_max_bytes: args.preferred_max_bytes,
            batch_timeout: Duration::from_millis(args.batch_timeout_ms),
            cut_when_idle: args.cut_when_idle,
        };
        let crash_points = args
            .crash_point
            .iter()
            .map(|text| crash_points::parse_flag(text))
            .collect::<Result<_, _>>()
            .map_err(|e| ConfigError {
                flag: "crash-point",
                problem: e.to_string(),
            })?;
        Ok(NodeConfig {
            args,
            peers,
            batch,
            crash_points,
        })
    }

    /// Whether a bug switch is on.
    pub fn has_bug(&self, bug: Bug) -> bool {
        self.args.bug.contains(&bug)
    }

    /// Half the election timeout: Fabric's slow-disk warning threshold.
    pub fn fsync_warn_threshold(&self) -> Duration {
        Duration::from_millis(self.args.tick_ms * self.args.election_tick as u64 / 2)
    }
}

fn parse_peers(text: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
    let bad = |problem: String| ConfigError {
        flag: "peers",
        problem,
    };
    let mut peers = BTreeMap::new();
    for item in text.split(',').filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| bad(format!("`{item}` is not id=address")))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| bad(format!("`{id}` is not a raft id")))?;
        if id == 0 || addr.trim().is_empty() {
            return Err(bad(format!(
                "`{item}`: ids start at 1 and addresses are host:port"
            )));
        }
        if peers.insert(id, addr.trim().to_string()).is_some() {
            return Err(bad(format!("id {id} given twice")));
        }
    }
    if peers.is_empty() {
        return Err(bad("no peers given".to_string()));
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RunArgs,
    }

    fn config(extra: &[&str]) -> Result<NodeConfig, ConfigError> {
        let base = ["node", "--id", "1", "--peers", "1=a:1", "--listen-peer"];
        let more = [
            "127.0.0.1:1",
            "--listen-client",
            "127.0.0.1:2",
            "--data-dir",
            "d",
        ];
        let argv = base.iter().chain(&more).chain(extra);
        NodeConfig::from_args(Cli::parse_from(argv).args)
    }

    /// Issue 33: group commit is on by default and `--cut-when-idle
    /// false` turns it off; a value is required.
    #[test]
    fn cutting_when_idle_is_the_default_and_can_be_turned_off() {
        assert!(config(&[]).unwrap().batch.cut_when_idle);
        let off = config(&["--cut-when-idle", "false"]).unwrap();
        assert!(!off.batch.cut_when_idle);
        assert!(
            config(&["--cut-when-idle", "true"])
                .unwrap()
                .batch
                .cut_when_idle
        );
        let argv = [
            "node",
            "--id",
            "1",
            "--peers",
            "1=a:1",
            "--cut-when-idle",
            "maybe",
        ];
        assert!(Cli::try_parse_from(argv).is_err());
    }

    /// Issue 20 (smaller items): `--absolute-max-bytes` above what a log
    /// record and a forwarded frame carry is refused, naming the limit;
    /// the limit itself is accepted.
    #[test]
    fn absolute_max_bytes_is_capped_by_what_the_log_and_the_link_carry() {
        let max = TX_BYTES_MAX.to_string();
        let over = (TX_BYTES_MAX + 1).to_string();
        assert!(config(&["--absolute-max-bytes", &max]).is_ok());
        let err = config(&["--absolute-max-bytes", &over]).unwrap_err();
        assert_eq!(err.flag, "absolute-max-bytes");
        assert!(err.problem.contains(&max), "{err}");
        let err = config(&["--absolute-max-bytes", "300000000"]).unwrap_err();
        assert!(err.to_string().contains("log record"), "{err}");
    }

    /// The name each bug reports is the flag value that turns it on.
    #[test]
    fn bug_names_are_their_flag_values() {
        for bug in Bug::value_variants() {
            let flag = bug.to_possible_value().unwrap();
            assert_eq!(flag.get_name(), bug.name());
            assert_eq!(Bug::from_str(bug.name(), false), Ok(*bug));
        }
    }

    #[test]
    fn the_digest_interval_defaults_to_16_and_must_be_positive() {
        assert_eq!(config(&[]).unwrap().args.trace_digest_every, 16);
        assert_eq!(
            config(&["--trace-digest-every", "4"])
                .unwrap()
                .args
                .trace_digest_every,
            4
        );
        let e = config(&["--trace-digest-every", "0"]).unwrap_err();
        assert_eq!(e.to_string(), "--trace-digest-every: must be positive");
    }

    #[test]
    fn crash_points_are_armed_by_name_and_bad_ones_refused_naming_the_flag() {
        let c = config(&[
            "--crash-point",
            "wal.append.before-fsync",
            "--crash-point",
            "conf.apply.after=sleep:20@2",
        ])
        .unwrap();
        assert_eq!(c.crash_points.len(), 2);
        assert_eq!(c.crash_points[1].0, Point::ConfApplyAfter);
        assert_eq!(c.crash_points[1].1.hit, 2);
        let e = config(&["--crash-point", "wal.nowhere"]).unwrap_err();
        assert_eq!(e.flag, "crash-point");
        assert!(e.to_string().contains("`wal.nowhere`"), "{e}");
    }

    #[test]
    fn peers_are_distinct_positive_ids() {
        assert_eq!(parse_peers("1=a:1,2=b:2").unwrap().len(), 2);
        assert_eq!(parse_peers("1=a:1,7=b:2").unwrap().len(), 2);
        assert!(parse_peers("").unwrap_err().problem.contains("no peers"));
        assert!(parse_peers("0=a:1")
            .unwrap_err()
            .problem
            .contains("start at 1"));
        assert!(parse_peers("1=a:1,1=b:2")
            .unwrap_err()
            .problem
            .contains("twice"));
        assert!(parse_peers("x=a").unwrap_err().problem.contains("raft id"));
        assert!(parse_peers("1").unwrap_err().problem.contains("id=address"));
    }
}
