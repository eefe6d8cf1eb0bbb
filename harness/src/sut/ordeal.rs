//! `ordeal-node`, our own ordering node: every workload, every fault.

use super::{Launch, PeerLinks, System};
use crate::plan::{Fault, Plan};
use crate::probe::Probe;
use anyhow::Context;
use serde_json::Value;
use std::path::PathBuf;
use workloads::{OrdealClient, SutClient};

/// Raft tick the harness gives nodes, ms.
pub const NODE_TICK_MS: u64 = 100;
/// Election timeout in ticks the harness gives nodes.
pub const NODE_ELECTION_TICK: u64 = 10;

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

/// `ordeal-node`.
#[derive(Debug, Clone, Copy)]
pub struct Ordeal;

impl System for Ordeal {
    fn name(&self) -> &'static str {
        "ordeal"
    }

    fn binary(&self, plan: &Plan) -> anyhow::Result<PathBuf> {
        crate::binary::node_binary(plan.node_binary.as_deref(), "release")
    }

    fn on_host(&self, _args: &crate::cli::TestArgs) -> bool {
        true
    }

    fn node_flags(&self, plan: &Plan) -> Vec<String> {
        let mut args: Vec<String> = [
            "--tick-ms",
            &NODE_TICK_MS.to_string(),
            "--election-tick",
            &NODE_ELECTION_TICK.to_string(),
            "--heartbeat-tick",
            "1",
            "--snapshot-interval-bytes",
            &plan.snapshot_interval_bytes.to_string(),
            "--submit-timeout-ms",
            &submit_timeout_ms(plan.request_timeout_ms).to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for bug in &plan.bugs {
            args.push("--bug".into());
            args.push(bug.clone());
        }
        args
    }

    fn election_timeout_ms(&self) -> u64 {
        NODE_TICK_MS * NODE_ELECTION_TICK
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
        (crate::runtime::image::IMAGE_NAME, "/ordeal-node")
    }

    fn container_env(&self) -> &'static [(&'static str, &'static str)] {
        &[("RUST_LOG", "info,raft=warn")]
    }

    fn refuses(&self, _fault: Fault) -> Option<&'static str> {
        None
    }

    fn client(&self, plan: &Plan, nodes: Vec<(String, String)>) -> anyhow::Result<SutClient> {
        let timeout = std::time::Duration::from_millis(plan.request_timeout_ms);
        let client = OrdealClient::new(nodes, plan.ack, timeout, &format!("s{}", plan.seed))
            .context("building the ordeal client")?;
        Ok(SutClient::Ordeal(client))
    }

    async fn status(&self, probe: &Probe, node: &str) -> Option<Value> {
        probe.get_json(node, "/status").await
    }

    async fn fsync(&self, probe: &Probe, node: &str, _prometheus: Option<&str>) -> Option<Value> {
        probe.get_json(node, "/fsync").await
    }

    fn rotation(&self) -> &'static [(&'static str, &'static str)] {
        &ROTATION
    }

    fn traces(&self) -> bool {
        true
    }
}
