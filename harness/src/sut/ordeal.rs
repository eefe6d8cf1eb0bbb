//! `ordeal-node`, our own ordering node: every workload, every fault.

use crate::sut::http::NodeHttp;
use crate::sut::system::{Ability, Asked, Binaries, Launch, Options, PeerLinks, System, Tuning};
use anyhow::{bail, Context};
use serde_json::Value;
use std::path::PathBuf;
use workloads::{OrdealClient, ReadMode, SutClient};

/// The node image's repository name (`runtime/image.rs` builds it).
pub const IMAGE_NAME: &str = "ordeal-node";

/// ordeal's soak rotation: every workload under every fault (membership
/// changes with partitions and kills, as issue 14's proof runs them), then
/// the mix.
const ROTATION: [(&str, &str); 14] = [
    ("ordering", "partition"),
    ("register", "partition"),
    ("ordering", "kill"),
    ("register", "kill"),
    ("ordering", "pause"),
    ("register", "pause"),
    ("ordering", "clock"),
    ("register", "clock"),
    ("ordering", "lag"),
    ("register", "lag"),
    ("ordering", "member,partition,kill"),
    ("register", "member,partition,kill"),
    ("ordering", "all"),
    ("register", "all"),
];

/// How long a node lets a submit wait for its commit before it answers
/// 504 (unknown, `info`): two thirds of the client's request timeout, so
/// that the node's answer, which names why, arrives before the client
/// gives up (issue 18; README, "Timeouts").
pub fn submit_timeout_ms(request_timeout_ms: u64) -> u64 {
    (request_timeout_ms * 2 / 3).max(1)
}

/// The node's flags for `tuning`, flag and value in turn (the harness's
/// and the node's flags have the same names).
fn tuning_flags(tuning: &Tuning) -> Vec<String> {
    let Tuning {
        snapshot_interval_bytes,
        snapshot_catchup_entries,
        max_message_count,
        preferred_max_bytes,
        batch_timeout_ms,
        max_inflight_blocks,
        tick_ms,
        election_tick,
        cut_when_idle,
    } = *tuning;
    [
        ("--snapshot-interval-bytes", snapshot_interval_bytes),
        ("--snapshot-catchup-entries", snapshot_catchup_entries),
        ("--max-message-count", max_message_count),
        ("--preferred-max-bytes", preferred_max_bytes),
        ("--batch-timeout-ms", batch_timeout_ms),
        ("--max-inflight-blocks", max_inflight_blocks),
        ("--tick-ms", tick_ms),
        ("--election-tick", election_tick),
    ]
    .into_iter()
    .map(|(flag, value)| (flag, value.to_string()))
    .chain([("--cut-when-idle", cut_when_idle.to_string())])
    .flat_map(|(flag, value)| [flag.to_string(), value])
    .collect()
}

/// `ordeal-node`.
#[derive(Debug, Clone, Copy)]
pub struct Ordeal;

impl System for Ordeal {
    fn name(&self) -> &'static str {
        "ordeal"
    }

    fn binary(&self, binaries: &Binaries) -> anyhow::Result<PathBuf> {
        crate::binary::node_binary(binaries.node.as_deref(), "release")
    }

    fn on_host(&self, _binaries: &Binaries) -> bool {
        true
    }

    fn allows(&self, asked: &Asked) -> anyhow::Result<ReadMode> {
        if ReadMode::parse(asked.read_mode) != Some(ReadMode::Linearizable) {
            bail!("--read-mode: `{}` applies to --sut etcd only (ordeal-node serves every read through raft)", asked.read_mode);
        }
        Ok(ReadMode::Linearizable)
    }

    fn rerun_flags(&self, options: &Options) -> (String, String) {
        let flags = tuning_flags(&options.tuning)
            .chunks(2)
            .map(|pair| format!(" {} {}", pair[0], pair[1]))
            .collect();
        (String::new(), flags)
    }

    fn node_flags(&self, options: &Options) -> Vec<String> {
        let mut args = tuning_flags(&options.tuning);
        args.extend([
            "--heartbeat-tick".to_string(),
            "1".to_string(),
            "--submit-timeout-ms".to_string(),
            submit_timeout_ms(options.request_timeout_ms).to_string(),
        ]);
        for bug in &options.bugs {
            args.push("--bug".into());
            args.push(bug.clone());
        }
        args
    }

    fn election_timeout_ms(&self, options: &Options) -> u64 {
        options.tuning.election_timeout_ms()
    }

    fn command(&self, launch: &Launch) -> Vec<String> {
        let peers: Vec<String> = launch
            .peers
            .iter()
            .map(|(id, addr)| format!("{id}={addr}"))
            .collect();
        let mut args: Vec<String> = vec![
            "run".into(),
            "--id".into(),
            launch.id.to_string(),
            "--peers".into(),
            peers.join(","),
            "--listen-peer".into(),
            launch.listen_peer.clone(),
            "--listen-client".into(),
            launch.listen_client.clone(),
            "--data-dir".into(),
            launch.data_dir.clone(),
            "--trace".into(),
            launch.trace_file.clone(),
        ];
        if !launch.join.is_empty() {
            let founders: Vec<String> = launch.join.iter().map(|id| id.to_string()).collect();
            args.extend(["--join".to_string(), founders.join(",")]);
        }
        args.extend(launch.flags.iter().cloned());
        args
    }

    fn peer_links(&self) -> PeerLinks {
        PeerLinks::PerPair
    }

    fn image(&self) -> (&'static str, &'static str) {
        (IMAGE_NAME, "/ordeal-node")
    }

    fn container_env(&self) -> &'static [(&'static str, &'static str)] {
        &[("RUST_LOG", "info,raft=warn")]
    }

    fn lacks(&self, _ability: Ability) -> Option<&'static str> {
        None
    }

    fn client(&self, options: &Options, nodes: Vec<(String, String)>) -> anyhow::Result<SutClient> {
        let timeout = std::time::Duration::from_millis(options.request_timeout_ms);
        let client = OrdealClient::new(nodes, options.ack, timeout, &format!("s{}", options.seed))
            .context("building the ordeal client")?;
        Ok(SutClient::Ordeal(client))
    }

    fn client_endpoint(&self, url: String, _protocol: String) -> String {
        url
    }

    async fn ready(&self, _options: &Options, _nodes: &[(String, String)]) -> anyhow::Result<()> {
        Ok(())
    }

    fn artifacts(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    fn absent_copy(&self, _node: &str, _status: &Value, _error: &str) -> Option<Value> {
        None
    }

    async fn status(&self, http: &NodeHttp, node: &str) -> Option<Value> {
        http.get_json(node, "/status").await
    }

    async fn fsync(&self, http: &NodeHttp, node: &str, _prometheus: Option<&str>) -> Option<Value> {
        http.get_json(node, "/fsync").await
    }

    fn rotation(&self) -> &'static [(&'static str, &'static str)] {
        &ROTATION
    }

    fn traces(&self) -> bool {
        true
    }

    /// The WAL's segments, the snapshot and the block store
    /// (docs/storage-faults.md).
    fn durable_files(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("wal", "wal.log*"),
            ("snapshot", "snapshot.bin"),
            ("blocks", "blocks.*"),
        ]
    }
}
