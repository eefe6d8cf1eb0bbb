//! Asking nodes about themselves: the leader, their clocks, whether they
//! have recovered, and their metrics at the end of a run.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Bound on one status request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Status queries against every node.
#[derive(Clone, Debug)]
pub struct Probe {
    http: reqwest::Client,
    nodes: Vec<(String, String)>,
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Probe {
    /// A probe of `nodes` (name, base URL).
    pub fn new(nodes: Vec<(String, String)>) -> anyhow::Result<Probe> {
        let http = reqwest::Client::builder().timeout(PROBE_TIMEOUT).build()?;
        Ok(Probe { http, nodes })
    }

    fn url(&self, node: &str) -> Option<&str> {
        self.nodes
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, u)| u.as_str())
    }

    /// `GET path` on a node as JSON.
    pub async fn get_json(&self, node: &str, path: &str) -> Option<Value> {
        let url = self.url(node)?;
        self.http
            .get(format!("{url}{path}"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    /// `GET /status` of every node that answers.
    pub async fn statuses(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for (name, _) in &self.nodes {
            if let Some(s) = self.get_json(name, "/status").await {
                out.insert(name.clone(), s);
            }
        }
        out
    }

    /// The leader most nodes report, as a node name.
    pub async fn leader(&self) -> Option<String> {
        let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
        for s in self.statuses().await.values() {
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

    /// Waits until every node answers, agrees on one leader and has applied
    /// the same height; returns whether that happened before `deadline`.
    pub async fn wait_recovered(&self, deadline: Instant) -> bool {
        let mut stable = 0;
        while Instant::now() < deadline {
            let statuses = self.statuses().await;
            let leaders: Vec<u64> = statuses
                .values()
                .map(|s| s["leader"].as_u64().unwrap_or(0))
                .collect();
            let heights: Vec<u64> = statuses
                .values()
                .map(|s| s["height"].as_u64().unwrap_or(0))
                .collect();
            let agreed = statuses.len() == self.nodes.len()
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

    /// The node's `metrics.json` (docs/store.md): status, fsync and the
    /// Prometheus text, each `null` when it did not answer.
    pub async fn metrics(&self, node: &str) -> Value {
        let status = self.get_json(node, "/status").await;
        let fsync = self.get_json(node, "/fsync").await;
        let prometheus = match self.url(node) {
            Some(url) => match self.http.get(format!("{url}/metrics")).send().await {
                Ok(r) => r.text().await.ok(),
                Err(_) => None,
            },
            None => None,
        };
        json!({"status": status, "fsync": fsync, "prometheus": prometheus})
    }
}
