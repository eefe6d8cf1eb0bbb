//! Asking nodes about themselves: the leader, their clocks, whether they
//! have recovered, and their metrics at the end of a run. ordeal-node
//! answers `GET /status`; etcd answers its gateway's maintenance status,
//! which is put into the same shape (`leader` as a node number, `height`).

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Bound on one status request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Status queries against every node.
#[derive(Clone, Debug)]
pub struct Probe {
    http: reqwest::Client,
    nodes: Vec<(String, String)>,
    /// etcd rather than ordeal-node.
    etcd: bool,
    /// etcd member id (decimal, as the gateway writes it) → node name.
    members: Arc<Mutex<BTreeMap<String, String>>>,
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Probe {
    /// A probe of `nodes` (name, base URL).
    pub fn new(nodes: Vec<(String, String)>, etcd: bool) -> anyhow::Result<Probe> {
        let http = reqwest::Client::builder().timeout(PROBE_TIMEOUT).build()?;
        Ok(Probe {
            http,
            nodes,
            etcd,
            members: Default::default(),
        })
    }

    /// `POST path` with an empty JSON body on a node (etcd's gateway).
    async fn post_json(&self, node: &str, path: &str) -> Option<Value> {
        let url = self.url(node)?;
        answer_json(self.http.post(format!("{url}{path}")).json(&json!({}))).await
    }

    /// The node name of an etcd member id, asking `node` for the member
    /// list when the id is new.
    async fn member_name(&self, node: &str, id: &str) -> Option<String> {
        if let Some(name) = self.members.lock().expect("members lock").get(id) {
            return Some(name.clone());
        }
        let list = self.post_json(node, "/v3/cluster/member/list").await?;
        let mut members = self.members.lock().expect("members lock");
        for m in list["members"].as_array()? {
            if let (Some(id), Some(name)) = (m["ID"].as_str(), m["name"].as_str()) {
                members.insert(id.to_string(), name.to_string());
            }
        }
        members.get(id).cloned()
    }

    /// A node's status in ordeal-node's shape: etcd's maintenance status
    /// with `leader` as the node number and `height` its applied index.
    async fn status(&self, node: &str) -> Option<Value> {
        if !self.etcd {
            return self.get_json(node, "/status").await;
        }
        let raw = self.post_json(node, "/v3/maintenance/status").await?;
        let number = |v: &Value| {
            v.as_str()
                .and_then(|t| t.parse::<u64>().ok())
                .or_else(|| v.as_u64())
        };
        let leader_id = raw["leader"].as_str().unwrap_or("0").to_string();
        let leader = match leader_id.as_str() {
            "0" => 0,
            id => self
                .member_name(node, id)
                .await
                .and_then(|name| name.trim_start_matches('n').parse::<u64>().ok())
                .unwrap_or(0),
        };
        let height = number(&raw["raftAppliedIndex"])
            .or_else(|| number(&raw["raftIndex"]))
            .unwrap_or(0);
        Some(
            json!({"leader": leader, "height": height, "term": number(&raw["raftTerm"]), "etcd": raw}),
        )
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
        answer_json(self.http.get(format!("{url}{path}"))).await
    }

    /// `GET /status` of every node that answers.
    pub async fn statuses(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for (name, _) in &self.nodes {
            if let Some(s) = self.status(name).await {
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
        let status = self.status(node).await;
        let prometheus = match self.url(node) {
            Some(url) => match self.http.get(format!("{url}/metrics")).send().await {
                Ok(r) => r.text().await.ok(),
                Err(_) => None,
            },
            None => None,
        };
        let fsync = if self.etcd {
            prometheus
                .as_deref()
                .and_then(|text| etcd_fsync(text, crate::run::ETCD_ELECTION_MS as f64 / 2.0))
        } else {
            self.get_json(node, "/fsync").await
        };
        json!({"status": status, "fsync": fsync, "prometheus": prometheus})
    }
}

/// Sends a request and reads its answer as JSON; `None` when either fails.
async fn answer_json(request: reqwest::RequestBuilder) -> Option<Value> {
    request.send().await.ok()?.json().await.ok()
}

/// etcd's WAL fsync histogram (`etcd_disk_wal_fsync_duration_seconds`) in
/// the shape of ordeal-node's `/fsync` summary. Prometheus buckets only
/// bound a sample from above, so quantiles and the maximum are bucket upper
/// bounds and `over_threshold` counts the samples above the first bound at
/// or over the threshold; `estimated_from` says so in the store.
pub fn etcd_fsync(prometheus: &str, threshold_ms: f64) -> Option<Value> {
    const NAME: &str = "etcd_disk_wal_fsync_duration_seconds";
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    let mut count = None;
    for line in prometheus.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        if let Some(le) = name
            .strip_prefix(NAME)
            .and_then(|r| r.strip_prefix("_bucket{le=\""))
            .and_then(|r| r.strip_suffix("\"}"))
        {
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            buckets.push((bound * 1e3, value as u64));
        } else if name == format!("{NAME}_count") {
            count = Some(value as u64);
        }
    }
    let count = count?;
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let quantile = |q: f64| {
        let rank = (q * count as f64).ceil() as u64;
        buckets
            .iter()
            .find(|(_, c)| *c >= rank.max(1))
            .map(|(b, _)| *b)
            .filter(|b| b.is_finite())
    };
    let within = buckets
        .iter()
        .find(|(b, _)| *b >= threshold_ms)
        .map_or(count, |(_, c)| *c);
    Some(json!({
        "count": count,
        "p50_ms": quantile(0.5),
        "p99_ms": quantile(0.99),
        "max_ms": quantile(1.0),
        "threshold_ms": threshold_ms,
        "over_threshold": count.saturating_sub(within),
        "estimated_from": format!("{NAME} (Prometheus bucket upper bounds)"),
        "buckets": buckets
            .iter()
            .filter(|(b, _)| b.is_finite())
            .map(|(b, c)| json!([b, c]))
            .collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_fsync_buckets_become_a_summary() {
        let text = "# HELP x\n\
etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 50\n\
etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.002\"} 98\n\
etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.512\"} 99\n\
etcd_disk_wal_fsync_duration_seconds_bucket{le=\"1.024\"} 100\n\
etcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} 100\n\
etcd_disk_wal_fsync_duration_seconds_sum 0.9\n\
etcd_disk_wal_fsync_duration_seconds_count 100\n";
        let f = etcd_fsync(text, 500.0).unwrap();
        assert_eq!(f["count"], 100);
        assert_eq!(f["p50_ms"], 1.0);
        assert_eq!(f["p99_ms"], 512.0);
        assert_eq!(f["max_ms"], 1024.0);
        assert_eq!(f["over_threshold"], 1);
        assert_eq!(f["buckets"][1], json!([2.0, 98]));
        assert!(etcd_fsync("no such metric 1\n", 500.0).is_none());
    }
}
