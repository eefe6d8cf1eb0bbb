//! The client of `ordeal-node` (docs/node-api.md): one HTTP client shared by
//! every worker, each request sent to the node the invocation names.

use crate::{Completion, Invocation, Op, Outcome};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Default bound on one request; a request that takes longer is `info`
/// (a read, which has no effect, is `fail`). Short against a fault window
/// (10 s by default), so that an op stuck behind a node that stopped
/// answering ends well within the window (issue 18).
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(3);
/// Blocks per page when reading a whole chain (the node's maximum).
pub const BLOCKS_PAGE_MAX: u64 = 1000;
/// Pages read at most for one whole chain (a bound, not an expectation).
pub const CHAIN_PAGES_MAX: u64 = 10_000;

/// When the node answers a submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ack {
    /// After the block holding the transaction is committed and applied.
    Committed,
    /// As soon as the leader enqueued it (weaker; loses data on failover).
    Accepted,
}

impl Ack {
    /// Parses `committed` or `accepted`.
    pub fn parse(text: &str) -> Option<Ack> {
        [Ack::Committed, Ack::Accepted]
            .into_iter()
            .find(|a| a.as_str() == text)
    }

    /// The name in flags and requests.
    pub fn as_str(self) -> &'static str {
        match self {
            Ack::Committed => "committed",
            Ack::Accepted => "accepted",
        }
    }
}

/// Talks to the nodes of one `ordeal-node` cluster.
#[derive(Debug)]
pub struct OrdealClient {
    http: reqwest::Client,
    /// (name, base URL); nodes the `member` nemesis starts are appended.
    nodes: std::sync::RwLock<Vec<(String, String)>>,
    ack: Ack,
    id_prefix: String,
    next_id: AtomicU64,
}

impl OrdealClient {
    /// A client for `nodes` (name, base URL) with a bounded request time.
    /// `id_prefix` makes the ids of register transactions unique per run.
    pub fn new(
        nodes: Vec<(String, String)>,
        ack: Ack,
        request_timeout: Duration,
        id_prefix: &str,
    ) -> Result<Self, reqwest::Error> {
        let http = crate::http_client(request_timeout)?;
        Ok(Self {
            http,
            nodes: std::sync::RwLock::new(nodes),
            ack,
            id_prefix: id_prefix.to_string(),
            next_id: AtomicU64::new(0),
        })
    }

    fn node(&self, index: usize) -> (String, String) {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        nodes[index % nodes.len()].clone()
    }

    /// Appends a node (one the `member` nemesis started); returns its index.
    /// A name already known keeps its index.
    pub fn add_node(&self, name: &str, url: &str) -> usize {
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = nodes.iter().position(|(n, _)| n == name) {
            return i;
        }
        nodes.push((name.to_string(), url.to_string()));
        nodes.len() - 1
    }

    /// The index of the node named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        nodes.iter().position(|(n, _)| n == name)
    }

    /// Carries out one invocation against node `node_index`.
    pub async fn invoke(&self, inv: &Invocation, node_index: usize) -> Completion {
        let (name, url) = self.node(node_index);
        let outcome = match inv.f {
            Op::Submit => self.submit(&url, &inv.value).await,
            Op::Deliver => self.deliver_recent(&url, &inv.value).await,
            Op::Read | Op::Write | Op::Cas => self.register_op(&url, inv).await,
        };
        Completion {
            outcome,
            node: name.clone(),
        }
    }

    async fn submit(&self, url: &str, id: &Value) -> Outcome {
        let body = json!({"id": id, "payload": format!("payload-{}", id.as_str().unwrap_or("")), "ack": self.ack.as_str()});
        match self.post(url, &body).await {
            Ok(_) => Outcome::Ok(id.clone()),
            Err(outcome) => outcome,
        }
    }

    async fn register_op(&self, url: &str, inv: &Invocation) -> Outcome {
        let key = inv.key.clone().unwrap_or_default();
        let op = match inv.f {
            Op::Read => json!({"op": "read", "key": key}),
            Op::Write => json!({"op": "write", "key": key, "value": inv.value}),
            Op::Cas => json!({"op": "cas", "key": key, "old": inv.value[0], "new": inv.value[1]}),
            Op::Submit | Op::Deliver => {
                return Outcome::Fail(format!("{} is not a register operation", inv.f.as_str()))
            }
        };
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-r{n}", self.id_prefix);
        let body = json!({"id": id, "payload": "", "ack": "committed", "ops": [op]});
        let answer = match self.post(url, &body).await {
            Ok(answer) => answer,
            // A read changes nothing, so an unknown read is a failed one.
            Err(Outcome::Info(e)) if inv.f == Op::Read => return Outcome::Fail(e),
            Err(outcome) => return outcome,
        };
        let Some(result) = answer.get("results").and_then(|r| r.get(0)) else {
            return Outcome::Info(format!("answer without results: {answer}"));
        };
        let swapped = result.get("ok").and_then(Value::as_bool).unwrap_or(false);
        match inv.f {
            Op::Read => Outcome::Ok(result.get("value").cloned().unwrap_or(Value::Null)),
            Op::Write | Op::Cas if swapped => Outcome::Ok(inv.value.clone()),
            Op::Cas => Outcome::Fail(format!("cas did not swap: current {}", result["value"])),
            Op::Write | Op::Submit | Op::Deliver => {
                Outcome::Info(format!("write answered {result}"))
            }
        }
    }

    /// POSTs a submit and sorts the answer into ok / fail / info.
    async fn post(&self, url: &str, body: &Value) -> Result<Value, Outcome> {
        let response = self
            .http
            .post(format!("{url}/submit"))
            .json(body)
            .send()
            .await
            .map_err(classify_send_error)?;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.map_err(|e| {
            if status == 200 {
                Outcome::Info(format!("unreadable answer: {e}"))
            } else {
                Outcome::Info(format!("http {status}, unreadable body: {e}"))
            }
        })?;
        classify_status(status, answer)
    }

    /// One page of blocks; with `headers`, without their transactions.
    /// A read has no effect, so every error is `fail`: `Unavailable` when
    /// the node refused the connection, `Fail` otherwise.
    async fn blocks(
        &self,
        url: &str,
        from: u64,
        limit: u64,
        headers: bool,
    ) -> Result<Value, Outcome> {
        let response = self
            .http
            .get(format!(
                "{url}/blocks?from={from}&limit={limit}&headers={headers}"
            ))
            .send()
            .await
            .map_err(|e| match e.is_connect() {
                true => Outcome::Unavailable(format!("get blocks: connect: {e}")),
                false => Outcome::Fail(format!("get blocks: {e}")),
            })?;
        let status = response.status().as_u16();
        let body: Value = response
            .json()
            .await
            .map_err(|e| Outcome::Fail(format!("blocks body: {e}")))?;
        if status != 200 {
            return Err(Outcome::Fail(format!("http {status}: {body}")));
        }
        Ok(body)
    }

    async fn deliver_recent(&self, url: &str, arg: &Value) -> Outcome {
        let recent = arg.get("recent").and_then(Value::as_u64).unwrap_or(20);
        // Headers only: they are compared with the final chains, which carry
        // the transactions (a header's hash binds them through data_hash).
        let head = match self.blocks(url, 0, 1, true).await {
            Ok(head) => head,
            Err(outcome) => return outcome,
        };
        let height = head.get("height").and_then(Value::as_u64).unwrap_or(0);
        let from = height.saturating_sub(recent);
        match self.blocks(url, from, recent, true).await {
            Ok(page) => Outcome::Ok(json!({"from": from, "blocks": page["blocks"]})),
            Err(outcome) => outcome,
        }
    }

    /// Reads a node's whole chain from block 0 (the final reads): `Ok` with
    /// `{"from": 0, "blocks": [...]}`, or `Fail` when the node cannot be
    /// read (a read has no effect, so it is never `info`).
    pub async fn deliver_chain(&self, node_index: usize) -> Outcome {
        let (_, url) = self.node(node_index);
        let mut blocks: Vec<Value> = Vec::new();
        for _ in 0..CHAIN_PAGES_MAX {
            let page = match self
                .blocks(&url, blocks.len() as u64, BLOCKS_PAGE_MAX, false)
                .await
            {
                Ok(page) => page,
                Err(
                    Outcome::Unavailable(e)
                    | Outcome::Removed(e)
                    | Outcome::Fail(e)
                    | Outcome::Info(e),
                ) => return Outcome::Fail(e),
                Err(Outcome::Ok(_)) => unreachable!("blocks() errs with a failure only"),
            };
            let height = page.get("height").and_then(Value::as_u64).unwrap_or(0);
            let got = page
                .get("blocks")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let empty = got.is_empty();
            blocks.extend(got);
            if blocks.len() as u64 >= height || empty {
                return Outcome::Ok(json!({"from": 0, "blocks": blocks}));
            }
        }
        Outcome::Fail(format!("chain longer than {CHAIN_PAGES_MAX} pages"))
    }
}

/// A request that never reached the node is a definite failure; one that
/// may have reached it is unknown.
fn classify_send_error(e: reqwest::Error) -> Outcome {
    if e.is_connect() {
        Outcome::Unavailable(format!("connect: {e}"))
    } else if e.is_timeout() {
        Outcome::Info("timeout".to_string())
    } else {
        Outcome::Info(format!("request: {e}"))
    }
}

/// Sorts an HTTP answer per docs/node-api.md: 4xx and a retryable 503 are
/// definite refusals (410, the node was removed, its own kind:
/// [`Outcome::Removed`]); 504, 500 and anything unexpected are unknown.
fn classify_status(status: u16, answer: Value) -> Result<Value, Outcome> {
    let error = answer
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let retryable = answer
        .get("retryable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match status {
        200 => Ok(answer),
        410 => Err(Outcome::Removed(format!("removed: http 410: {error}"))),
        400..=499 => Err(Outcome::Fail(format!("http {status}: {error}"))),
        503 if retryable => Err(Outcome::Unavailable(format!("http 503: {error}"))),
        _ => Err(Outcome::Info(format!("http {status}: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_into_ok_fail_info() {
        let body = |retryable| json!({"error": "no leader", "retryable": retryable});
        assert!(classify_status(200, json!({})).is_ok());
        assert!(matches!(
            classify_status(400, body(false)),
            Err(Outcome::Fail(_))
        ));
        assert!(matches!(
            classify_status(413, body(false)),
            Err(Outcome::Fail(_))
        ));
        assert!(matches!(
            classify_status(503, body(true)),
            Err(Outcome::Unavailable(_))
        ));
        assert!(matches!(
            classify_status(503, body(false)),
            Err(Outcome::Info(_))
        ));
        assert!(matches!(
            classify_status(504, body(false)),
            Err(Outcome::Info(_))
        ));
        assert!(matches!(
            classify_status(500, body(false)),
            Err(Outcome::Info(_))
        ));
        let gone =
            json!({"error": "this node was removed from the configuration", "retryable": true});
        match classify_status(410, gone) {
            Err(Outcome::Removed(e)) => {
                assert!(e.starts_with("removed: http 410: this node"), "{e}")
            }
            other => panic!("410 is not Removed: {other:?}"),
        }
    }
}
