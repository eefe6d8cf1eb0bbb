//! etcd 3.4 (Debian's etcd-server), the third-party system under test: the
//! register workload only, no clock faults (a Go program reads the clock
//! through the vDSO, past libfaketime). Its status and metrics are put into
//! ordeal-node's shapes.

use crate::sut::http::NodeHttp;
use crate::sut::system::{Ability, Asked, Binaries, Launch, Options, PeerLinks, System};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use workloads::{EtcdClient, ReadMode, SutClient};

/// etcd's heartbeat interval, ms (its default).
pub const ETCD_HEARTBEAT_MS: u64 = 100;
/// etcd's election timeout, ms (its default).
pub const ETCD_ELECTION_MS: u64 = 1000;
/// The etcd image's repository name (`runtime/image.rs` builds it).
pub const ETCD_IMAGE_NAME: &str = "ordeal-etcd";

/// etcd's soak rotation: the register workload under every fault that
/// reaches a Go program.
const ROTATION: [(&str, &str); 4] = [
    ("register", "partition"),
    ("register", "kill"),
    ("register", "pause"),
    ("register", "all"),
];

/// etcd.
#[derive(Debug, Clone, Copy)]
pub struct Etcd;

impl System for Etcd {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn binary(&self, binaries: &Binaries) -> anyhow::Result<PathBuf> {
        etcd_binary(binaries.etcd.as_deref())
    }

    fn on_host(&self, binaries: &Binaries) -> bool {
        etcd_binary(binaries.etcd.as_deref()).is_ok()
    }

    fn allows(&self, asked: &Asked) -> anyhow::Result<ReadMode> {
        if asked.workload != "register" {
            bail!("--sut etcd: only the register workload runs on etcd (it is not an ordering service)");
        }
        let Some(read_mode) = ReadMode::parse(asked.read_mode) else {
            bail!(
                "--read-mode: `{}` is neither linearizable nor serializable",
                asked.read_mode
            );
        };
        if !asked.bugs.is_empty() {
            bail!("--bug: bug switches exist in ordeal-node only, not in etcd");
        }
        Ok(read_mode)
    }

    fn rerun_flags(&self, options: &Options) -> (String, String) {
        (
            format!("--sut etcd --read-mode {} ", options.read_mode.as_str()),
            String::new(),
        )
    }

    fn node_flags(&self, _options: &Options) -> Vec<String> {
        vec![
            "--heartbeat-interval".into(),
            ETCD_HEARTBEAT_MS.to_string(),
            "--election-timeout".into(),
            ETCD_ELECTION_MS.to_string(),
        ]
    }

    fn election_timeout_ms(&self, _options: &Options) -> u64 {
        ETCD_ELECTION_MS
    }

    fn command(&self, launch: &Launch) -> Vec<String> {
        let cluster: Vec<String> = launch
            .peers
            .iter()
            .map(|(id, addr)| format!("n{id}=http://{addr}"))
            .collect();
        let mut args: Vec<String> = [
            "--name",
            launch.name,
            "--data-dir",
            &launch.data_dir,
            "--listen-peer-urls",
            &format!("http://{}", launch.listen_peer),
            "--initial-advertise-peer-urls",
            &format!("http://{}", launch.advertise_peer),
            "--listen-client-urls",
            &format!("http://{}", launch.listen_client),
            "--advertise-client-urls",
            &format!("http://{}", launch.advertise_client),
            "--initial-cluster",
            &cluster.join(","),
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            launch.cluster_token,
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(launch.flags.iter().cloned());
        args
    }

    fn peer_links(&self) -> PeerLinks {
        PeerLinks::Advertised
    }

    fn image(&self) -> (&'static str, &'static str) {
        (ETCD_IMAGE_NAME, "/etcd")
    }

    fn container_env(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    fn lacks(&self, ability: Ability) -> Option<&'static str> {
        Some(match ability {
            Ability::Faultfs => "etcd's bbolt maps its file (mmap), which faultfs refuses",
            Ability::Faketime => "Go reads the clock through the vDSO, past libfaketime",
            // etcd 3.4 keeps a fixed 5,000 entries behind each snapshot
            // (`SnapshotCatchUpEntries`), more than a run's lag leaves.
            Ability::SnapshotCatchUp => "etcd 3.4 keeps 5,000 entries behind every snapshot, so a run never compacts past a follower",
            Ability::MembershipApi => "the harness changes membership through ordeal-node's POST /members and /transfer; etcd's member API is not driven",
            Ability::Tuning => "etcd takes none of ordeal-node's settings (block cutter, snapshot bytes, catch-up entries, tick); the swarm draws only its node count",
            Ability::CrashPoints => "the harness arms ordeal-node's crash points (POST /crash-points); etcd's gofail failpoints exist only in a build made with them",
        })
    }

    fn client(&self, options: &Options, nodes: Vec<(String, String)>) -> anyhow::Result<SutClient> {
        let timeout = std::time::Duration::from_millis(options.request_timeout_ms);
        let client = EtcdClient::new(nodes, options.read_mode, timeout)
            .context("building the etcd client")?;
        Ok(SutClient::Etcd(client))
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

    /// etcd's maintenance status with `leader` as the node number and
    /// `height` its applied index.
    async fn status(&self, http: &NodeHttp, node: &str) -> Option<Value> {
        let raw = http.post_json(node, "/v3/maintenance/status").await?;
        let number = |v: &Value| {
            v.as_str()
                .and_then(|t| t.parse::<u64>().ok())
                .or_else(|| v.as_u64())
        };
        let leader_id = raw["leader"].as_str().unwrap_or("0").to_string();
        let leader = match leader_id.as_str() {
            "0" => 0,
            id => member_name(http, node, id)
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

    async fn fsync(
        &self,
        _http: &NodeHttp,
        _node: &str,
        prometheus: Option<&str>,
    ) -> Option<Value> {
        prometheus.and_then(|text| etcd_fsync(text, ETCD_ELECTION_MS as f64 / 2.0))
    }

    fn rotation(&self) -> &'static [(&'static str, &'static str)] {
        &ROTATION
    }

    fn traces(&self) -> bool {
        // etcd's raft writes no trace in our format: the `raft` checker
        // skips its runs and says so.
        false
    }

    /// None: `corrupt` is refused for etcd (its bbolt file is mmapped).
    fn durable_files(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
}

/// The etcd binary: `explicit` when given, else `etcd` on `PATH`.
pub fn etcd_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("--etcd-binary {}: no such file", path.display());
        }
        return Ok(path.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
        .context(
            "--sut etcd: no `etcd` on PATH (apt-get install etcd-server, or pass --etcd-binary)",
        )
}

/// The node name of an etcd member id (decimal, as the gateway writes it),
/// asking `node` for the member list when the id is new.
async fn member_name(http: &NodeHttp, node: &str, id: &str) -> Option<String> {
    if let Some(name) = http.member(id) {
        return Some(name);
    }
    let list = http.post_json(node, "/v3/cluster/member/list").await?;
    for m in list["members"].as_array()? {
        if let (Some(id), Some(name)) = (m["ID"].as_str(), m["name"].as_str()) {
            http.learn_member(id, name);
        }
    }
    http.member(id)
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
