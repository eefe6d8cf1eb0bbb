//! Reading one server's own copy of the stream, not the leader's answer.
//!
//! In NATS 2.9 every JetStream read API is answered by the stream's leader
//! or, for direct gets, by whichever current replica the queue group picks;
//! none can be aimed at a server. A consumer can: a consumer with one
//! replica lives on one server of the stream's peers and delivers from that
//! server's store. The meta leader places it at random among the peers and
//! names the server in the consumer's `cluster.leader`, so a consumer is
//! created until one lands on the wanted server (the others are deleted).
//! It is ephemeral, in memory, never acknowledged, and deleted after the
//! read; it reads the whole stream from its first sequence in order, and
//! each delivery names its stream sequence in its reply subject.

use super::api_request;
use super::block::block;
use super::server::STREAM_NAME;
use async_nats::{Client, StatusCode};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Consumers created at most to find one placed on the wanted server: the
/// chance that 40 random placements among 5 servers all miss one is
/// (4/5)^40, about 1 in 7,500.
pub const PLACEMENT_ATTEMPTS_MAX: u32 = 40;
/// Messages asked for by one pull request.
pub const PULL_BATCH_MESSAGES: u64 = 1000;
/// Messages read at most from one replica (a bound, not an expectation).
pub const REPLICA_MESSAGES_MAX: usize = 10_000_000;
/// Bound on reading one replica, placement included.
pub const REPLICA_READ_TIMEOUT: Duration = Duration::from_secs(300);
/// How long an unused consumer outlives a reader that vanished.
const CONSUMER_INACTIVE_NS: u64 = 60_000_000_000;

/// A consumer placed on one server, through which that server's copy is
/// read. It reads from the stream's first message each time it is
/// [`read`]; [`close`] deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaReader {
    /// The server it is placed on.
    pub server: String,
    /// The consumer's name (JetStream chose it).
    pub consumer: String,
}

/// Creates consumers until one is placed on `server`.
pub async fn place(
    client: &Client,
    server: &str,
    timeout: Duration,
) -> Result<ReplicaReader, String> {
    let subject = format!("$JS.API.CONSUMER.CREATE.{STREAM_NAME}");
    let body = json!({"stream_name": STREAM_NAME, "config": {
        "deliver_policy": "all", "ack_policy": "none", "replay_policy": "instant",
        "num_replicas": 1, "mem_storage": true, "inactive_threshold": CONSUMER_INACTIVE_NS,
    }})
    .to_string();
    let mut placed_on = Vec::new();
    for _ in 0..PLACEMENT_ATTEMPTS_MAX {
        let info = match api_request(client, &subject, body.clone(), timeout).await {
            Ok(info) if info.get("error").is_none() => info,
            Ok(info) => {
                placed_on.push(format!("error {}", info["error"]));
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let consumer = info["name"].as_str().unwrap_or("").to_string();
        let leader = info["cluster"]["leader"].as_str().unwrap_or("");
        if leader == server && !consumer.is_empty() {
            return Ok(ReplicaReader {
                server: server.to_string(),
                consumer,
            });
        }
        placed_on.push(leader.to_string());
        delete(client, &consumer, timeout).await;
    }
    Err(format!(
        "no consumer placed on {server} in {PLACEMENT_ATTEMPTS_MAX} attempts (placed on: {})",
        placed_on.join(", ")
    ))
}

/// Deletes the reader's consumer.
pub async fn close(client: &Client, reader: &ReplicaReader, timeout: Duration) {
    delete(client, &reader.consumer, timeout).await;
}

/// Deletes a consumer; a failure only leaves it to expire by itself.
async fn delete(client: &Client, consumer: &str, timeout: Duration) {
    if consumer.is_empty() {
        return;
    }
    let subject = format!("$JS.API.CONSUMER.DELETE.{STREAM_NAME}.{consumer}");
    if let Err(e) = api_request(client, &subject, String::new(), timeout).await {
        tracing::warn!(consumer, error = %e, "deleting a replica reader's consumer");
    }
}

/// The messages the reader's server holds, in stream order, as blocks,
/// pulled in batches until a delivery says none is pending or a batch
/// comes back empty. A consumer delivers each message once: the first
/// read starts at the stream's first message, a later one where the last
/// stopped. Works while the server is cut off from the others: the
/// consumer is the server's own, and the pulls go to it over `client`'s
/// connection (to that server).
pub async fn read(
    client: &Client,
    reader: &ReplicaReader,
    timeout: Duration,
) -> Result<Vec<Value>, String> {
    let deadline = Instant::now() + REPLICA_READ_TIMEOUT;
    let consumer = &reader.consumer;
    let inbox = client.new_inbox();
    let mut deliveries = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| format!("subscribing the delivery inbox: {e}"))?;
    let next = format!("$JS.API.CONSUMER.MSG.NEXT.{STREAM_NAME}.{consumer}");
    let pull = json!({"batch": PULL_BATCH_MESSAGES, "no_wait": true}).to_string();
    let mut blocks = Vec::new();
    while blocks.len() < REPLICA_MESSAGES_MAX && Instant::now() < deadline {
        client
            .publish_with_reply(next.clone(), inbox.clone(), pull.clone().into())
            .await
            .map_err(|e| format!("pull request: {e}"))?;
        let mut got = 0;
        while got < PULL_BATCH_MESSAGES {
            let m = tokio::time::timeout(timeout, deliveries.next())
                .await
                .map_err(|_| format!("no delivery within {timeout:?}"))?
                .ok_or("the connection closed the delivery inbox")?;
            match m.status {
                // The batch ended: nothing more now (404) or its time ran out (408).
                Some(StatusCode::NOT_FOUND | StatusCode::TIMEOUT) => break,
                Some(status) if status != StatusCode::OK => {
                    return Err(format!(
                        "pull: {status} {}",
                        m.description.unwrap_or_default()
                    ))
                }
                _ => {}
            }
            let reply = m.reply.as_deref().unwrap_or("");
            let (sequence, pending) = delivery_positions(reply)?;
            blocks.push(block(sequence, m.headers.as_ref(), &m.payload)?);
            got += 1;
            if pending == 0 {
                return Ok(blocks);
            }
        }
        if got == 0 {
            return Ok(blocks);
        }
    }
    Err(format!(
        "stopped after {} messages: over {REPLICA_MESSAGES_MAX} messages or {REPLICA_READ_TIMEOUT:?}",
        blocks.len()
    ))
}

/// The stream sequence and the messages still pending, from a delivery's
/// reply subject, which 2.9 writes as
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`.
pub fn delivery_positions(reply: &str) -> Result<(u64, u64), String> {
    let tokens: Vec<&str> = reply.split('.').collect();
    let number = |i: usize| tokens.get(i).and_then(|t| t.parse::<u64>().ok());
    match (tokens.len(), tokens.first(), tokens.get(1)) {
        (9, Some(&"$JS"), Some(&"ACK")) => match (number(5), number(8)) {
            (Some(sequence), Some(pending)) => Ok((sequence, pending)),
            _ => Err(format!("delivery reply `{reply}`: positions are not numbers")),
        },
        _ => Err(format!(
            "delivery reply `{reply}` is not `$JS.ACK.<stream>.<consumer>.<delivered>.<seq>.<cseq>.<time>.<pending>`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_names_its_stream_sequence() {
        assert_eq!(
            delivery_positions("$JS.ACK.ordeal.c1.1.42.7.1700000000.12"),
            Ok((42, 12))
        );
        assert!(delivery_positions("").is_err());
        assert!(delivery_positions("$JS.ACK.ordeal.c1.1.x.7.1.0").is_err());
        assert!(delivery_positions("_INBOX.abc").is_err());
    }
}
