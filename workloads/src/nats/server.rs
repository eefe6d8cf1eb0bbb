//! One `nats-server` of a cluster as a command line, and the stream every
//! run writes to (docs/nats.md). Pure: it builds arguments and JSON, it
//! starts nothing; a runtime (or a test's local cluster) runs them.

use super::NatsError;
use serde_json::{json, Value};

/// The stream every run writes to.
pub const STREAM_NAME: &str = "ordeal";
/// The one subject the stream takes; submits are published to it.
pub const STREAM_SUBJECT: &str = "ordeal.tx";
/// The cluster's name (`--cluster_name`): the same on every server.
pub const CLUSTER_NAME: &str = "ordeal";
/// JetStream's window for `Nats-Msg-Id` deduplication (its default, 2 min):
/// longer than any retry of one submit by far.
pub const DUPLICATE_WINDOW_NS: u64 = 120_000_000_000;

/// One server of the cluster, as the runtime arranged it. Addresses are
/// `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsServer {
    /// `server_name` (`n<id>`): unique in the cluster; JetStream names a
    /// stream's replicas and its leader by it.
    pub name: String,
    /// Where clients connect. Monitoring listens on the same host.
    pub listen_client: String,
    /// The monitoring port (`/varz`, `/jsz`, `/routez`), on the client host.
    pub http_port: u16,
    /// Where the other servers' routes arrive.
    pub listen_cluster: String,
    /// The cluster address this server tells its peers (`--cluster_advertise`):
    /// where they dial it when they learn of it through another server
    /// (NATS's implicit routes). `None`: its listen address. A runtime that
    /// puts fault proxies on the routes sets an address where nothing
    /// listens, so that every route goes through `routes` (docs/nats.md).
    pub advertise_cluster: Option<String>,
    /// Every other server's cluster address as this one dials it (a fault
    /// proxy's in the process runtime). Not this server's own.
    pub routes: Vec<String>,
    /// The node's data directory: JetStream's `store_dir` (the server keeps
    /// its streams and its Raft logs under `<store_dir>/jetstream`).
    pub store_dir: String,
}

/// Splits `host:port`, naming the field when it is not one.
fn host_port<'a>(field: &str, address: &'a str) -> Result<(&'a str, u16), NatsError> {
    let bad = || NatsError::Address {
        field: field.to_string(),
        address: address.to_string(),
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host, port))
}

impl NatsServer {
    /// The server's arguments (after the program, `nats-server`): JetStream
    /// on, its store in the data directory, routes to every peer. Flags
    /// only, no configuration file, so that a container needs nothing but
    /// the binary.
    pub fn command_args(&self) -> Result<Vec<String>, NatsError> {
        let (host, port) = host_port("listen_client", &self.listen_client)?;
        host_port("listen_cluster", &self.listen_cluster)?;
        let mut args: Vec<String> = [
            "--server_name",
            &self.name,
            "--addr",
            host,
            "--port",
            &port.to_string(),
            "--http_port",
            &self.http_port.to_string(),
            "--jetstream",
            "--store_dir",
            &self.store_dir,
            "--cluster_name",
            CLUSTER_NAME,
            "--cluster",
            &format!("nats://{}", self.listen_cluster),
        ]
        .map(String::from)
        .to_vec();
        if let Some(advertise) = &self.advertise_cluster {
            host_port("advertise_cluster", advertise)?;
            args.extend(["--cluster_advertise".to_string(), advertise.clone()]);
        }
        let mut routes = Vec::with_capacity(self.routes.len());
        for route in &self.routes {
            host_port("routes", route)?;
            routes.push(format!("nats://{route}"));
        }
        if !routes.is_empty() {
            args.extend(["--routes".to_string(), routes.join(",")]);
        }
        Ok(args)
    }

    /// The monitoring base URL (`http://host:port`).
    pub fn monitor_url(&self) -> Result<String, NatsError> {
        let (host, _) = host_port("listen_client", &self.listen_client)?;
        Ok(format!("http://{host}:{}", self.http_port))
    }
}

/// The stream's configuration, as JetStream's `STREAM.CREATE` takes it:
/// one subject, file storage, replicated on `replicas` servers (every
/// server of the cluster), nothing ever removed (no limits, deletes and
/// purges denied, so a missing sequence number is never legitimate), and
/// direct gets allowed (reads during the run are served by any current
/// replica).
pub fn stream_config(replicas: usize) -> Value {
    json!({
        "name": STREAM_NAME,
        "subjects": [STREAM_SUBJECT],
        "retention": "limits",
        "storage": "file",
        "num_replicas": replicas,
        "discard": "old",
        "max_msgs": -1,
        "max_bytes": -1,
        "max_age": 0,
        "max_msgs_per_subject": -1,
        "max_msg_size": -1,
        "max_consumers": -1,
        "duplicate_window": DUPLICATE_WINDOW_NS,
        "allow_direct": true,
        "deny_delete": true,
        "deny_purge": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> NatsServer {
        NatsServer {
            name: "n1".into(),
            listen_client: "127.0.0.1:4222".into(),
            http_port: 8222,
            listen_cluster: "127.0.0.1:6222".into(),
            advertise_cluster: Some("127.0.0.1:1".into()),
            routes: vec!["127.0.0.1:7002".into(), "127.0.0.1:7003".into()],
            store_dir: "/data/n1".into(),
        }
    }

    #[test]
    fn a_server_is_one_command_line() {
        let args = server().command_args().unwrap().join(" ");
        assert_eq!(
            args,
            "--server_name n1 --addr 127.0.0.1 --port 4222 --http_port 8222 --jetstream \
             --store_dir /data/n1 --cluster_name ordeal --cluster nats://127.0.0.1:6222 \
             --cluster_advertise 127.0.0.1:1 \
             --routes nats://127.0.0.1:7002,nats://127.0.0.1:7003"
        );
        assert_eq!(server().monitor_url().unwrap(), "http://127.0.0.1:8222");
    }

    #[test]
    fn a_bad_address_names_its_field() {
        let mut s = server();
        s.routes.push("127.0.0.1".into());
        let e = s.command_args().unwrap_err().to_string();
        assert_eq!(e, "routes: `127.0.0.1` is not host:port");
        let mut s = server();
        s.listen_client = ":4222".into();
        let e = s.command_args().unwrap_err().to_string();
        assert!(e.starts_with("listen_client:"), "{e}");
    }

    #[test]
    fn the_stream_is_replicated_and_never_trimmed() {
        let c = stream_config(5);
        assert_eq!(c["num_replicas"], 5);
        assert_eq!(c["max_msgs"], -1);
        assert_eq!(c["deny_delete"], true);
        assert_eq!(c["subjects"][0], STREAM_SUBJECT);
    }
}
