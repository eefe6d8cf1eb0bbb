//! NATS JetStream (Debian's nats-server 2.9), a third-party ordering
//! service under test (issue 31, docs/nats.md): the ordering workload only,
//! through `workloads::NatsClient`; one stream replicated on every node,
//! created before the harness waits for its leader. Each node listens on
//! three ports: routes (`Launch::listen_peer`), its monitoring HTTP
//! (`Launch::listen_client`, what the probe reads: `/jsz`, `/varz`) and
//! NATS clients (`Launch::listen_protocol`). No clock faults (a Go program
//! reads the clock through the vDSO, past libfaketime), no membership
//! faults.

use crate::sut::http::NodeHttp;
use crate::sut::system::{Ability, Asked, Binaries, Launch, Options, PeerLinks, System};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use workloads::nats::{NatsServer, CHAIN, STREAM_NAME};
use workloads::{NatsClient, ReadMode, SutClient};

/// JetStream's Raft election timeout in 2.9, ms: the largest of its random
/// timeouts (`maxElectionTimeout`, `server/raft.go`).
pub const NATS_ELECTION_MS: u64 = 5000;
/// The NATS image's repository name (`runtime/image.rs` builds it).
pub const NATS_IMAGE_NAME: &str = "ordeal-nats";
/// Where Debian installs the server, when `nats-server` is not on PATH.
const DEBIAN_BINARY: &str = "/usr/sbin/nats-server";
/// JetStream's "stream not found".
const STREAM_NOT_FOUND: u64 = 10059;
/// The most replicas a JetStream stream may have.
pub const REPLICAS_MAX: usize = 5;

/// NATS's soak rotation: the ordering workload under the faults that reach
/// a Go program without faultfs, then the mix.
const ROTATION: [(&str, &str); 4] = [
    ("ordering", "partition"),
    ("ordering", "kill"),
    ("ordering", "pause"),
    ("ordering", "all"),
];

/// The monitoring documents copied into each node's store directory.
const ARTIFACTS: [(&str, &str); 3] = [
    ("/varz", "varz.json"),
    (
        "/jsz?accounts=true&streams=true&consumers=true&config=true",
        "jsz.json",
    ),
    ("/routez", "routez.json"),
];

/// NATS JetStream.
#[derive(Debug, Clone, Copy)]
pub struct Nats;

impl System for Nats {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn binary(&self, binaries: &Binaries) -> anyhow::Result<PathBuf> {
        nats_binary(binaries.nats.as_deref())
    }

    fn on_host(&self, binaries: &Binaries) -> bool {
        nats_binary(binaries.nats.as_deref()).is_ok()
    }

    fn allows(&self, asked: &Asked) -> anyhow::Result<ReadMode> {
        if asked.workload != "ordering" {
            bail!("--sut nats: only the ordering workload runs on NATS JetStream (a stream is a log, not registers)");
        }
        if ReadMode::parse(asked.read_mode) != Some(ReadMode::Linearizable) {
            bail!(
                "--read-mode: `{}` applies to --sut etcd only (NATS reads are stream reads, docs/nats.md)",
                asked.read_mode
            );
        }
        if !asked.bugs.is_empty() {
            bail!("--bug: bug switches exist in ordeal-node only, not in nats-server");
        }
        Ok(ReadMode::Linearizable)
    }

    fn rerun_flags(&self, _options: &Options) -> (String, String) {
        ("--sut nats ".to_string(), String::new())
    }

    fn node_flags(&self, _options: &Options) -> Vec<String> {
        Vec::new()
    }

    fn election_timeout_ms(&self, _options: &Options) -> u64 {
        NATS_ELECTION_MS
    }

    fn command(&self, launch: &Launch) -> Vec<String> {
        match server(launch).command_args() {
            Ok(mut args) => {
                args.extend(launch.flags.iter().cloned());
                args
            }
            // The runtimes hand out host:port addresses; a bad one is a
            // bug of theirs, and the server refuses the flag, naming it.
            Err(e) => vec!["--invalid-address".into(), e.to_string()],
        }
    }

    fn peer_links(&self) -> PeerLinks {
        PeerLinks::PerPair
    }

    fn image(&self) -> (&'static str, &'static str) {
        (NATS_IMAGE_NAME, "/nats-server")
    }

    fn container_env(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    fn lacks(&self, ability: Ability) -> Option<&'static str> {
        match ability {
            Ability::Faultfs => None,
            Ability::Faketime => Some("Go reads the clock through the vDSO, past libfaketime"),
            Ability::SnapshotCatchUp => Some("JetStream's Raft neither reports nor lets the harness drive its compactions (2.9's /jsz has no snapshot counter), so a follower cannot be held until the leader compacts past it"),
            Ability::MembershipApi => Some("the harness changes membership through ordeal-node's POST /members and /transfer; JetStream's peer removal and leader step-down are not mapped onto them"),
            Ability::Tuning => Some("nats-server takes none of ordeal-node's settings (block cutter, snapshot bytes, catch-up entries, tick); the swarm draws only its node count"),
            Ability::CrashPoints => Some("the harness arms ordeal-node's crash points (POST /crash-points); nats-server has none"),
        }
    }

    fn client_endpoint(&self, _url: String, protocol: String) -> String {
        protocol
    }

    fn client(&self, options: &Options, nodes: Vec<(String, String)>) -> anyhow::Result<SutClient> {
        let timeout = Duration::from_millis(options.request_timeout_ms);
        Ok(SutClient::Nats(NatsClient::new(nodes, timeout)))
    }

    /// Creates the stream, replicated on every node, through the first
    /// node (retried while JetStream elects its meta leader).
    async fn ready(&self, options: &Options, nodes: &[(String, String)]) -> anyhow::Result<()> {
        if nodes.len() > REPLICAS_MAX {
            bail!(
                "--nodes {}: a JetStream stream has at most {REPLICAS_MAX} replicas, and the stream is replicated on every node",
                nodes.len()
            );
        }
        let timeout = Duration::from_millis(options.request_timeout_ms);
        let client = NatsClient::new(nodes.to_vec(), timeout);
        client
            .create_stream(0, nodes.len())
            .await
            .with_context(|| format!("creating the stream `{STREAM_NAME}`"))
    }

    fn artifacts(&self) -> &'static [(&'static str, &'static str)] {
        &ARTIFACTS
    }

    /// A server whose read failed because the cluster no longer knows the
    /// stream (10059, "stream not found", answered by the JetStream meta
    /// leader), and whose own `/jsz` lists no stream `ordeal`, holds an
    /// empty copy: every message it held is gone (after a power loss, the
    /// stream's creation itself may be; docs/nats.md).
    fn absent_copy(&self, node: &str, status: &Value, error: &str) -> Option<Value> {
        let not_found = error.contains(&format!("\"err_code\":{STREAM_NOT_FOUND}"));
        (not_found && status.get("stream").is_some_and(Value::is_null)).then(|| {
            json!({"from": 1, "chain": CHAIN, "server": node, "blocks": [],
                   "absent": format!("the cluster answers stream not found ({STREAM_NOT_FOUND}) and {node}'s /jsz lists no stream `{STREAM_NAME}`")})
        })
    }

    /// The node's own view of the stream (`/jsz?streams=true`): `leader`
    /// the stream leader it knows as a node number (0 when none, or no
    /// stream), `height` its last sequence.
    async fn status(&self, http: &NodeHttp, node: &str) -> Option<Value> {
        let jsz = http.get_json(node, "/jsz?streams=true").await?;
        Some(jsz_status(&jsz))
    }

    async fn fsync(
        &self,
        _http: &NodeHttp,
        _node: &str,
        _prometheus: Option<&str>,
    ) -> Option<Value> {
        // nats-server 2.9 serves no fsync figures.
        None
    }

    fn rotation(&self) -> &'static [(&'static str, &'static str)] {
        &ROTATION
    }

    fn traces(&self) -> bool {
        false
    }

    /// JetStream's file store under the store directory: the stream's
    /// message blocks, the stream group's Raft log (its own message
    /// blocks), and the stream's metadata (docs/nats.md).
    fn durable_files(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("stream", "jetstream/*/streams/*/msgs/*.blk"),
            ("raft", "jetstream/*/_js_/*/msgs/*.blk"),
            ("meta", "jetstream/*/streams/*/meta.inf"),
        ]
    }
}

/// The server of `launch`: clients at `listen_protocol`, monitoring at
/// `listen_client`'s port (on the same host: 2.9 takes one `--addr`),
/// routes to every other peer. A runtime with fault proxies on the routes
/// gives no advertised peer address; the server then advertises one where
/// nothing listens (port 1 of its host), so that a server told of a peer by
/// gossip cannot dial it past the proxies (docs/nats.md, "Routes through
/// fault proxies").
fn server(launch: &Launch) -> NatsServer {
    let http_port = launch
        .listen_client
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(0);
    let advertise_cluster = if launch.advertise_peer.is_empty() {
        let host = launch.listen_peer.rsplit_once(':').map_or("", |(h, _)| h);
        Some(format!("{host}:1"))
    } else {
        Some(launch.advertise_peer.clone())
    };
    NatsServer {
        name: launch.name.to_string(),
        listen_client: launch.listen_protocol.clone(),
        http_port,
        listen_cluster: launch.listen_peer.clone(),
        advertise_cluster,
        routes: launch
            .peers
            .iter()
            .filter(|(id, _)| *id != launch.id)
            .map(|(_, addr)| addr.clone())
            .collect(),
        store_dir: launch.data_dir.clone(),
    }
}

/// A node's `/jsz?streams=true` in ordeal-node's status shape.
pub fn jsz_status(jsz: &Value) -> Value {
    let stream = jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["stream_detail"].as_array())
        .flatten()
        .find(|s| s["name"] == STREAM_NAME);
    let leader = stream
        .and_then(|s| s["cluster"]["leader"].as_str())
        .and_then(|l| l.strip_prefix('n'))
        .and_then(|id| id.parse::<u64>().ok())
        .unwrap_or(0);
    let height = stream
        .and_then(|s| s["state"]["last_seq"].as_u64())
        .unwrap_or(0);
    json!({
        "leader": leader,
        "height": height,
        "meta_leader": jsz["meta_cluster"]["leader"],
        "stream": stream.map(|s| json!({"state": s["state"], "cluster": s["cluster"]})),
    })
}

/// The nats-server binary: `explicit` when given, else `nats-server` on
/// `PATH`, else Debian's `/usr/sbin/nats-server`.
pub fn nats_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("--nats-binary {}: no such file", path.display());
        }
        return Ok(path.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .chain([PathBuf::from(DEBIAN_BINARY)])
        .find(|p| p.is_file())
        .context("--sut nats: no `nats-server` on PATH nor at /usr/sbin (apt-get install nats-server, or pass --nats-binary)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch<'a>(advertise_peer: &str, flags: &'a [String]) -> Launch<'a> {
        Launch {
            name: "n2",
            id: 2,
            data_dir: "/w/n2/data".into(),
            listen_peer: "127.0.0.2:7002".into(),
            advertise_peer: advertise_peer.into(),
            listen_client: "127.0.0.2:8002".into(),
            advertise_client: "127.0.0.2:8002".into(),
            listen_protocol: "127.0.0.2:9002".into(),
            peers: vec![
                (1, "127.0.0.2:5012".into()),
                (2, "127.0.0.2:7002".into()),
                (3, "127.0.0.2:5032".into()),
            ],
            cluster_token: "t",
            flags,
            trace_file: "/w/n2/trace.jsonl".into(),
            join: Vec::new(),
        }
    }

    #[test]
    fn a_node_listens_on_three_ports_and_routes_through_its_peers_addresses() {
        let args = Nats.command(&launch("", &[])).join(" ");
        assert_eq!(
            args,
            "--server_name n2 --addr 127.0.0.2 --port 9002 --http_port 8002 --jetstream \
             --store_dir /w/n2/data --cluster_name ordeal --cluster nats://127.0.0.2:7002 \
             --cluster_advertise 127.0.0.2:1 \
             --routes nats://127.0.0.2:5012,nats://127.0.0.2:5032"
        );
        let docker = Nats.command(&launch("ordeal-x-n2:7001", &[])).join(" ");
        assert!(
            docker.contains("--cluster_advertise ordeal-x-n2:7001"),
            "{docker}"
        );
    }

    #[test]
    fn jsz_becomes_a_status_with_the_stream_leader_and_last_sequence() {
        let jsz = json!({"meta_cluster": {"leader": "n1"}, "account_details": [{"name": "$G",
            "stream_detail": [{"name": "ordeal", "cluster": {"leader": "n3"},
                               "state": {"last_seq": 42}}]}]});
        let s = jsz_status(&jsz);
        assert_eq!(
            (s["leader"].as_u64(), s["height"].as_u64()),
            (Some(3), Some(42))
        );
        assert_eq!(s["meta_leader"], "n1");
        let none = jsz_status(&json!({"account_details": [{"name": "$G"}]}));
        assert_eq!(
            (none["leader"].as_u64(), none["height"].as_u64()),
            (Some(0), Some(0))
        );
    }

    #[test]
    fn a_server_without_the_stream_holds_an_empty_copy_only_when_the_cluster_agrees() {
        let gone = jsz_status(&json!({"account_details": [{"name": "$G"}]}));
        let here = json!({"stream": {"state": {"last_seq": 3}}});
        let error = r#"placing a reader on n1: (error {"code":404,"description":"stream not found","err_code":10059})"#;
        let copy = Nats.absent_copy("n1", &gone, error).unwrap();
        assert_eq!(copy["blocks"], json!([]));
        assert_eq!(
            (copy["from"].as_u64(), copy["chain"].as_str()),
            (Some(1), Some("positions"))
        );
        assert!(Nats.absent_copy("n1", &here, error).is_none());
        assert!(Nats.absent_copy("n1", &gone, "timed out").is_none());
    }

    #[test]
    fn faults_that_cannot_reach_nats_say_why() {
        assert!(Nats.lacks(Ability::Faultfs).is_none());
        assert!(Nats.lacks(Ability::Faketime).unwrap().contains("vDSO"));
        assert!(Nats
            .lacks(Ability::MembershipApi)
            .unwrap()
            .contains("peer removal"));
        let asked = Asked {
            workload: "register",
            read_mode: "linearizable",
            bugs: &[],
        };
        let e = Nats.allows(&asked).unwrap_err().to_string();
        assert!(e.contains("only the ordering workload"), "{e}");
    }
}
