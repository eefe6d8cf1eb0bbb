//! The client of a NATS JetStream cluster: one connection per server, each
//! bound to its server (no failover to another), so that an invocation
//! aimed at node `i` goes to server `i` as it does for ordeal-node.

use super::answer::{self, Attempt};
use super::replica::{self, ReplicaReader};
use super::server::{stream_config, STREAM_NAME, STREAM_SUBJECT};
use super::{api_request, block, NatsError, CHAIN};
use crate::{Completion, Invocation, Op, Outcome};
use async_nats::connection::State;
use async_nats::{Client, HeaderMap, Request};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// Publish attempts at most for one submit, all with the same message id.
pub const SUBMIT_ATTEMPTS_MAX: u32 = 3;
/// Pause before a new attempt after a certain refusal (no responders, not
/// connected), which a retry at once would meet again.
pub const REFUSED_PAUSE: Duration = Duration::from_millis(100);
/// Bound on connecting to one server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest pause between reconnection attempts of a lost connection.
pub const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(1);
/// Bound on creating the stream at the start (the JetStream meta leader is
/// elected first, which takes a few seconds after the servers start).
pub const CREATE_STREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// JetStream's "stream name already in use" (10058): another client made
/// the stream first; its configuration is compared.
const STREAM_NAME_IN_USE: u64 = 10058;

/// One server and its lazily opened connection.
#[derive(Debug)]
struct Server {
    name: String,
    /// `host:port` of its client listener.
    address: String,
    connection: OnceCell<Client>,
}

/// Talks to the servers of one NATS cluster.
#[derive(Debug)]
pub struct NatsClient {
    servers: Vec<Server>,
    request_timeout: Duration,
}

/// A submit's outcome with every publish attempt it made.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// How it ended, as the history records it.
    pub outcome: Outcome,
    /// Each attempt, in order.
    pub attempts: Vec<Attempt>,
}

impl Submission {
    /// The stream sequence JetStream acknowledged, if any.
    pub fn position(&self) -> Option<u64> {
        self.attempts.iter().find_map(|a| match a {
            Attempt::Stored { sequence, .. } => Some(*sequence),
            _ => None,
        })
    }
}

impl NatsClient {
    /// A client for `servers` (name, `host:port` of the client listener).
    /// Connects to a server on its first use, so that building it needs no
    /// runtime and no server up.
    pub fn new(servers: Vec<(String, String)>, request_timeout: Duration) -> Self {
        let servers = servers
            .into_iter()
            .map(|(name, address)| Server {
                name,
                address,
                connection: OnceCell::new(),
            })
            .collect();
        Self {
            servers,
            request_timeout,
        }
    }

    /// The index of the server named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.name == name)
    }

    /// The servers' names, in index order.
    pub fn names(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.name.clone()).collect()
    }

    fn server(&self, index: usize) -> &Server {
        &self.servers[index % self.servers.len()]
    }

    /// The connection to server `index`, opened on first use. Bound to that
    /// server: the servers the cluster gossips are ignored, and a lost
    /// connection is redialled to the same address.
    pub async fn connection(&self, index: usize) -> Result<&Client, NatsError> {
        let server = self.server(index);
        server
            .connection
            .get_or_try_init(|| async {
                async_nats::ConnectOptions::new()
                    .name(format!("ordeal-{}", server.name))
                    .connection_timeout(CONNECT_TIMEOUT)
                    .request_timeout(Some(self.request_timeout))
                    .ignore_discovered_servers()
                    .reconnect_delay_callback(|attempts| {
                        (Duration::from_millis(100) * attempts as u32).min(RECONNECT_DELAY_MAX)
                    })
                    .connect(server.address.as_str())
                    .await
                    .map_err(|e| NatsError::Connect {
                        server: server.name.clone(),
                        address: server.address.clone(),
                        reason: e.to_string(),
                    })
            })
            .await
    }

    /// Carries out one invocation against server `node_index`.
    pub async fn invoke(&self, inv: &Invocation, node_index: usize) -> Completion {
        let outcome = match (inv.f, inv.value.as_str()) {
            (Op::Submit, Some(id)) => self.submit(node_index, id).await.outcome,
            (Op::Submit, None) => Outcome::Fail(format!("submit of a non-string id {}", inv.value)),
            (Op::Deliver, _) => {
                let recent = inv
                    .value
                    .get("recent")
                    .and_then(Value::as_u64)
                    .unwrap_or(20);
                self.deliver_recent(node_index, recent).await
            }
            (Op::Read | Op::Write | Op::Cas, _) => Outcome::Fail(format!(
                "{} is not an operation of NATS's ordering workload",
                inv.f.as_str()
            )),
        };
        Completion {
            outcome,
            node: self.server(node_index).name.clone(),
        }
    }

    /// Creates the stream, replicated on `replicas` servers, through server
    /// `index`; waits for JetStream to elect its meta leader. An existing
    /// stream of the same name is taken as it is.
    pub async fn create_stream(&self, index: usize, replicas: usize) -> Result<(), NatsError> {
        let started = Instant::now();
        let subject = format!("$JS.API.STREAM.CREATE.{STREAM_NAME}");
        let body = stream_config(replicas).to_string();
        let mut last = String::new();
        while started.elapsed() < CREATE_STREAM_TIMEOUT {
            match self.request(index, &subject, body.clone()).await {
                Ok(answer) if answer.get("error").is_none() => return Ok(()),
                Ok(answer) if answer["error"]["err_code"] == STREAM_NAME_IN_USE => return Ok(()),
                Ok(answer) => last = answer["error"].to_string(),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(NatsError::CreateStream {
            server: self.server(index).name.clone(),
            reason: last,
        })
    }

    /// A JetStream API request through server `index`, answered with JSON;
    /// any failure is its text.
    async fn request(&self, index: usize, subject: &str, body: String) -> Result<Value, String> {
        let client = self.connection(index).await.map_err(|e| e.to_string())?;
        api_request(client, subject, body, self.request_timeout).await
    }

    /// Publishes transaction `id` to server `index` until JetStream
    /// acknowledges it or settles it otherwise, at most
    /// [`SUBMIT_ATTEMPTS_MAX`] times within the request timeout; every
    /// attempt carries `Nats-Msg-Id: id`, so a retry of a stored message is
    /// answered with its first sequence instead of storing it again.
    pub async fn submit(&self, index: usize, id: &str) -> Submission {
        let attempt_timeout = self.request_timeout / SUBMIT_ATTEMPTS_MAX;
        let mut attempts = Vec::new();
        for _ in 0..SUBMIT_ATTEMPTS_MAX {
            let attempt = self.publish(index, id, attempt_timeout).await;
            let retry = attempt.worth_retrying();
            let refused = matches!(attempt, Attempt::Refused(_));
            attempts.push(attempt);
            if !retry {
                break;
            }
            if refused {
                tokio::time::sleep(REFUSED_PAUSE).await;
            }
        }
        Submission {
            outcome: answer::settle(id, &attempts),
            attempts,
        }
    }

    /// One publish of transaction `id` (payload `payload-<id>`) and its
    /// answer. A reply inbox of its own tells apart what happened: the
    /// message is handed to the connection only after its inbox is
    /// subscribed, so any error before that hand-over means it never left.
    pub async fn publish(&self, index: usize, id: &str, timeout: Duration) -> Attempt {
        let client = match self.connection(index).await {
            Ok(client) => client,
            Err(e) => return Attempt::Refused(e.to_string()),
        };
        // A disconnected client would buffer the message and send it after
        // it reconnects, long after this op ended: it is not sent at all.
        if client.connection_state() != State::Connected {
            return Attempt::Refused("not connected".to_string());
        }
        let inbox = client.new_inbox();
        let mut replies = match client.subscribe(inbox.clone()).await {
            Ok(replies) => replies,
            Err(e) => return Attempt::Refused(format!("subscribing the reply inbox: {e}")),
        };
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
        let payload = format!("payload-{id}");
        if let Err(e) = client
            .publish_with_reply_and_headers(STREAM_SUBJECT, inbox, headers, payload.into())
            .await
        {
            return Attempt::Refused(format!("not sent: {e}"));
        }
        let reply =
            tokio::time::timeout(timeout, futures_util::StreamExt::next(&mut replies)).await;
        let _ = replies.unsubscribe().await;
        match reply {
            Err(_) => Attempt::Unknown(format!("no acknowledgement within {timeout:?}")),
            Ok(None) => Attempt::Unknown("connection lost before the acknowledgement".into()),
            Ok(Some(m)) if m.status == Some(async_nats::StatusCode::NO_RESPONDERS) => {
                Attempt::Refused("no responders: no server had the stream's subject".into())
            }
            Ok(Some(m)) => answer::ack_answer(&m.payload),
        }
    }

    /// The stream's last `recent` messages as the server `index` can read
    /// them now: the stream's last sequence from its leader, then each
    /// message by a direct get, which any current replica may serve. A read
    /// changes nothing, so every error is `fail`.
    async fn deliver_recent(&self, index: usize, recent: u64) -> Outcome {
        let info = match self
            .request(
                index,
                &format!("$JS.API.STREAM.INFO.{STREAM_NAME}"),
                String::new(),
            )
            .await
        {
            Ok(info) if info.get("error").is_none() => info,
            Ok(info) => return Outcome::Fail(format!("stream info: {}", info["error"])),
            Err(e) => return Outcome::Fail(e),
        };
        let first = info["state"]["first_seq"].as_u64().unwrap_or(0).max(1);
        let last = info["state"]["last_seq"].as_u64().unwrap_or(0);
        let from = last.saturating_sub(recent.saturating_sub(1)).max(first);
        let mut blocks = Vec::new();
        for sequence in from..=last {
            match self.direct_get(index, sequence).await {
                Ok(Some(b)) => blocks.push(b),
                // The replica that answered has not stored it yet: the read
                // ends at the first message it lacks, so that it stays a
                // contiguous run of positions.
                Ok(None) => break,
                Err(e) => return Outcome::Fail(e),
            }
        }
        Outcome::Ok(json!({"from": from, "blocks": blocks, "chain": CHAIN}))
    }

    /// One message by JetStream's direct get; `None` when the replica that
    /// answered does not hold it (404).
    async fn direct_get(&self, index: usize, sequence: u64) -> Result<Option<Value>, String> {
        let client = self.connection(index).await.map_err(|e| e.to_string())?;
        let request = Request::new()
            .payload(json!({ "seq": sequence }).to_string().into())
            .timeout(Some(self.request_timeout));
        let m = client
            .send_request(format!("$JS.API.DIRECT.GET.{STREAM_NAME}"), request)
            .await
            .map_err(|e| format!("direct get {sequence}: {e}"))?;
        match m.status {
            Some(async_nats::StatusCode::NOT_FOUND) => Ok(None),
            Some(status) if status != async_nats::StatusCode::OK => Err(format!(
                "direct get {sequence}: {status} {}",
                m.description.unwrap_or_default()
            )),
            _ => block::from_direct_get(sequence, m.headers.as_ref(), &m.payload).map(Some),
        }
    }

    /// Places a reader of server `index`'s own copy of the stream
    /// ([`replica::place`]): a consumer on that server.
    pub async fn replica_reader(&self, index: usize) -> Result<ReplicaReader, String> {
        let client = self.connection(index).await.map_err(|e| e.to_string())?;
        replica::place(client, &self.server(index).name, self.request_timeout).await
    }

    /// Reads through a reader placed on server `index` ([`replica::read`]):
    /// `Ok` with `{"from": <first position read>, "blocks": [...], "chain":
    /// "positions", "server": name}`, or `Fail` (a read has no effect).
    pub async fn read_replica(&self, index: usize, reader: &ReplicaReader) -> Outcome {
        let result = match self.connection(index).await {
            Ok(client) => replica::read(client, reader, self.request_timeout).await,
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(blocks) => {
                let from = blocks
                    .first()
                    .and_then(|b| b["number"].as_u64())
                    .unwrap_or(1);
                Outcome::Ok(
                    json!({"from": from, "blocks": blocks, "chain": CHAIN, "server": reader.server}),
                )
            }
            Err(e) => Outcome::Fail(format!("reading {}'s copy: {e}", reader.server)),
        }
    }

    /// Deletes a reader's consumer (a failure leaves it to expire).
    pub async fn close_reader(&self, index: usize, reader: &ReplicaReader) {
        if let Ok(client) = self.connection(index).await {
            replica::close(client, reader, self.request_timeout).await;
        }
    }

    /// Reads server `index`'s own copy of the whole stream (the final
    /// reads): a reader placed on it, read once from the stream's first
    /// message, then closed. `Ok` as [`NatsClient::read_replica`], with
    /// `from` 1 (the stream's first position: a copy missing its first
    /// messages shows as a gap), or `Fail` when it cannot be read.
    pub async fn deliver_chain(&self, index: usize) -> Outcome {
        let reader = match self.replica_reader(index).await {
            Ok(reader) => reader,
            Err(e) => {
                let name = &self.server(index).name;
                return Outcome::Fail(format!("placing a reader on {name}: {e}"));
            }
        };
        let mut outcome = self.read_replica(index, &reader).await;
        self.close_reader(index, &reader).await;
        if let Outcome::Ok(v) = &mut outcome {
            v["from"] = json!(1);
        }
        outcome
    }
}
