//! Asking nodes about themselves: the leader, their clocks, whether they
//! have recovered, and their metrics at the end of a run. Each system under
//! test puts its status into ordeal-node's shape (`leader` as a node
//! number, `height`; see [`crate::sut::System::status`]).

use crate::sut::http::NodeHttp;
use crate::sut::{Sut, System};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Bound on one status request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Status queries against every node.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The nodes by name; nodes the `member` nemesis starts are appended.
    http: NodeHttp,
    /// The system the nodes run.
    sut: Sut,
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Probe {
    /// A probe of `nodes` (name, base URL).
    pub fn new(nodes: Vec<(String, String)>, sut: Sut) -> anyhow::Result<Probe> {
        Ok(Probe {
            http: NodeHttp::new(nodes, PROBE_TIMEOUT)?,
            sut,
        })
    }

    /// The system the nodes run.
    pub fn sut(&self) -> Sut {
        self.sut
    }

    /// A node's status in ordeal-node's shape.
    pub async fn status(&self, node: &str) -> Option<Value> {
        self.sut.status(&self.http, node).await
    }

    /// The final read of a node whose read failed with `error` and whose
    /// status proves it holds nothing (`System::absent_copy`).
    pub async fn absent_copy(&self, node: &str, error: &str) -> Option<Value> {
        let status = self.status(node).await?;
        self.sut.absent_copy(node, &status, error)
    }

    fn names_urls(&self) -> Vec<(String, String)> {
        self.http.names_urls()
    }

    /// The names of the nodes probed, in the order they were added.
    pub fn names(&self) -> Vec<String> {
        self.names_urls().into_iter().map(|(n, _)| n).collect()
    }

    /// Adds a node (one the `member` nemesis started) to those probed.
    pub fn add_node(&self, name: &str, url: &str) {
        self.http.add_node(name, url);
    }

    /// `method path` with a JSON body on a node: the answer's status and
    /// body, or why none came (`NodeHttp::send_json`).
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        node: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        self.http.send_json(method, node, path, body).await
    }

    /// `GET path` on a node as JSON.
    pub async fn get_json(&self, node: &str, path: &str) -> Option<Value> {
        self.http.get_json(node, path).await
    }

    /// `GET /status` of every node that answers.
    pub async fn statuses(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for (name, _) in self.names_urls() {
            if let Some(s) = self.status(&name).await {
                out.insert(name.clone(), s);
            }
        }
        out
    }

    /// The leader most of `nodes` report, as a node name (the nemesis asks
    /// the members: a removed node may name the leader it last knew).
    pub async fn leader_among(&self, nodes: &[String]) -> Option<String> {
        let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
        for node in nodes {
            let Some(s) = self.status(node).await else {
                continue;
            };
            if let Some(l) = s["leader"].as_u64().filter(|&l| l != 0) {
                *votes.entry(l).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(id, _)| format!("n{id}"))
    }

    /// The node's wall clock minus ours, ms (the request's round trip is
    /// split evenly).
    pub async fn clock_offset_ms(&self, node: &str) -> Option<i64> {
        let before = unix_ms();
        let s = self.get_json(node, "/status").await?;
        let after = unix_ms();
        Some(s["wall_clock_ms"].as_i64()? - (before + after) / 2)
    }

    /// The node process's real uptime (`process_uptime_ms` of its status,
    /// from the kernel, not its own clocks), `None` when it does not say.
    pub async fn process_uptime_ms(&self, node: &str) -> Option<u64> {
        self.get_json(node, "/status").await?["process_uptime_ms"].as_u64()
    }

    /// Waits until every node answers, agrees on one leader and has applied
    /// the same height; returns whether that happened before `deadline`.
    pub async fn wait_recovered(&self, deadline: Instant) -> bool {
        let all: Vec<String> = self.names_urls().into_iter().map(|(n, _)| n).collect();
        self.wait_recovered_of(deadline, &all).await
    }

    /// [`Probe::wait_recovered`] over `nodes` only (the members at the end
    /// of a run: removed nodes halted and never catch up).
    pub async fn wait_recovered_of(&self, deadline: Instant, nodes: &[String]) -> bool {
        let mut stable = 0;
        while Instant::now() < deadline {
            let mut statuses = BTreeMap::new();
            for n in nodes {
                if let Some(s) = self.status(n).await {
                    statuses.insert(n.clone(), s);
                }
            }
            let leaders: Vec<u64> = statuses
                .values()
                .map(|s| s["leader"].as_u64().unwrap_or(0))
                .collect();
            let heights: Vec<u64> = statuses
                .values()
                .map(|s| s["height"].as_u64().unwrap_or(0))
                .collect();
            let agreed = statuses.len() == nodes.len()
                && leaders.iter().all(|&l| l != 0 && l == leaders[0])
                && heights.iter().all(|&h| h == heights[0]);
            stable = if agreed { stable + 1 } else { 0 };
            if stable >= 2 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        false
    }

    /// The node's `metrics.json` (docs/store.md): status, fsync, the
    /// Prometheus text and its crash points' counts (`GET /crash-points`),
    /// each `null` when it did not answer.
    pub async fn metrics(&self, node: &str) -> Value {
        let status = self.status(node).await;
        let crash_points = self.http.get_json(node, "/crash-points").await;
        let prometheus = self.http.get_text(node, "/metrics").await;
        let fsync = self
            .sut
            .fsync(&self.http, node, prometheus.as_deref())
            .await;
        json!({"status": status, "fsync": fsync, "prometheus": prometheus, "crash_points": crash_points})
    }
}

/// The nodes whose status shows log entries beyond their commit index
/// (`last_index > commit_index`), in name order.
pub fn uncommitted_tails(statuses: &BTreeMap<String, Value>) -> Vec<String> {
    statuses
        .iter()
        .filter(|(_, s)| {
            let last = s["last_index"].as_u64().unwrap_or(0);
            last > s["commit_index"].as_u64().unwrap_or(u64::MAX)
        })
        .map(|(name, _)| name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_holding_entries_beyond_its_commit_holds_an_uncommitted_tail() {
        let statuses = BTreeMap::from([
            (
                "n1".to_string(),
                json!({"commit_index": 10, "last_index": 12}),
            ),
            (
                "n2".to_string(),
                json!({"commit_index": 10, "last_index": 10}),
            ),
            // An older node without `last_index` is never aimed at.
            ("n3".to_string(), json!({"commit_index": 10})),
        ]);
        assert_eq!(uncommitted_tails(&statuses), vec!["n1".to_string()]);
    }
}
