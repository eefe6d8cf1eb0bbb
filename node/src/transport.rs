//! The peer transport: raft messages and forwarded submits between nodes
//! over TCP, one outbound connection per peer.
//!
//! A frame is `len: u32 LE | kind: u8 | body` (`len` counts kind and body).
//! The dialer's first frame is `Hello` with its raft id; the acceptor
//! identifies the peer by that id, never by its address (the harness may put
//! a fault proxy in between). Anything malformed closes the connection with
//! a warning; nothing a peer sends can panic the node.

use crate::event::{Event, Inbox, Origin, SubmitReply};
use crate::tx::{Ack, Tx};
use protobuf::Message as PbMessage;
use raft::prelude::Message;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Largest frame accepted (an absolute-max transaction plus room).
pub const FRAME_BYTES_MAX: usize = 64 << 20;
/// Frames queued per peer before new ones are dropped (raft retries).
pub const PEER_QUEUE_MAX: usize = 8192;
/// How long a dialer waits between connection attempts.
const REDIAL_DELAY: Duration = Duration::from_millis(100);
/// How long an acceptor waits for the `Hello` frame.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

const KIND_HELLO: u8 = 1;
/// A raft message without a Lamport stamp (before the trace): refused.
const KIND_RAFT_UNSTAMPED: u8 = 2;
/// `lamport: u64 LE | protobuf raft Message`.
const KIND_RAFT: u8 = 5;
const KIND_FORWARD: u8 = 3;
const KIND_FORWARD_REPLY: u8 = 4;

/// A submit forwarded by a follower to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Forward {
    /// The follower's request id, echoed in the reply.
    pub req_id: u64,
    /// The transaction.
    pub tx: Tx,
    /// Its acknowledgement mode.
    pub ack: Ack,
}

/// The leader's answer to a [`Forward`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardReply {
    /// The follower's request id.
    pub req_id: u64,
    /// The forwarded transaction's id (the follower checks it).
    pub tx_id: String,
    /// The answer.
    pub reply: SubmitReply,
}

/// One frame to send.
#[derive(Debug)]
pub enum Frame {
    /// An encoded raft message, its Lamport stamp in front.
    Raft(Vec<u8>),
    /// A forwarded submit.
    Forward(Forward),
    /// The answer to a forwarded submit.
    ForwardReply(ForwardReply),
}

impl Frame {
    fn encode(&self) -> Vec<u8> {
        let (kind, body) = match self {
            Frame::Raft(b) => (KIND_RAFT, b.clone()),
            Frame::Forward(f) => (KIND_FORWARD, serde_json::to_vec(f).expect("encodes")),
            Frame::ForwardReply(r) => (KIND_FORWARD_REPLY, serde_json::to_vec(r).expect("encodes")),
        };
        frame_bytes(kind, &body)
    }
}

fn frame_bytes(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body.len());
    out.extend_from_slice(&((body.len() + 1) as u32).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

/// Senders to every peer; cheap to clone.
#[derive(Clone, Debug)]
pub struct Transport {
    peers: BTreeMap<u64, mpsc::Sender<Frame>>,
}

impl Transport {
    /// Starts one dialer task per peer other than `me`.
    pub fn start(me: u64, addrs: &BTreeMap<u64, String>) -> Transport {
        let mut peers = BTreeMap::new();
        for (&id, addr) in addrs.iter().filter(|(&id, _)| id != me) {
            let (tx, rx) = mpsc::channel(PEER_QUEUE_MAX);
            tokio::spawn(dial_loop(me, id, addr.clone(), rx));
            peers.insert(id, tx);
        }
        Transport { peers }
    }

    /// Queues a frame for `to`; dropped (with a debug log) when the queue is
    /// full or `to` is unknown: raft tolerates message loss.
    pub fn send(&self, to: u64, frame: Frame) {
        match self.peers.get(&to) {
            Some(q) => {
                if q.try_send(frame).is_err() {
                    tracing::debug!(to, "peer queue full, dropping frame");
                }
            }
            None => tracing::warn!(to, "frame for unknown peer dropped"),
        }
    }

    /// Queues a raft message stamped with the sender's Lamport clock.
    pub fn send_raft(&self, msg: &Message, lamport: u64) {
        let mut bytes = Vec::with_capacity(8 + msg.compute_size() as usize);
        bytes.extend_from_slice(&lamport.to_le_bytes());
        msg.write_to_vec(&mut bytes)
            .expect("a raft message always encodes");
        self.send(msg.to, Frame::Raft(bytes));
    }
}

async fn dial_loop(me: u64, to: u64, addr: String, mut rx: mpsc::Receiver<Frame>) {
    loop {
        let stream = match TcpStream::connect(&addr).await {
            Ok(s) => s,
            Err(e) => {
                tracing::trace!(to, %addr, error = %e, "dial failed");
                drain_for(&mut rx, REDIAL_DELAY).await;
                if rx.is_closed() {
                    return;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tracing::debug!(to, %addr, "peer connected");
        if let Err(e) = write_frames(me, stream, &mut rx).await {
            tracing::debug!(to, %addr, error = %e, "peer connection lost");
        } else {
            return; // the node is shutting down
        }
    }
}

/// Discards queued frames for `period` (a peer we cannot reach).
async fn drain_for(rx: &mut mpsc::Receiver<Frame>, period: Duration) {
    let deadline = tokio::time::Instant::now() + period;
    while let Ok(Some(_)) = tokio::time::timeout_at(deadline, rx.recv()).await {}
}

async fn write_frames(
    me: u64,
    stream: TcpStream,
    rx: &mut mpsc::Receiver<Frame>,
) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(256 << 10, stream);
    w.write_all(&frame_bytes(KIND_HELLO, &me.to_le_bytes()))
        .await?;
    w.flush().await?;
    while let Some(frame) = rx.recv().await {
        w.write_all(&frame.encode()).await?;
        // Batch whatever else is already queued into one flush.
        while let Ok(more) = rx.try_recv() {
            w.write_all(&more.encode()).await?;
        }
        w.flush().await?;
    }
    Ok(())
}

/// Accepts peer connections and turns their frames into events.
pub async fn serve(listener: TcpListener, me: u64, known: Vec<u64>, events: Inbox) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "peer accept failed");
                tokio::time::sleep(REDIAL_DELAY).await;
                continue;
            }
        };
        let events = events.clone();
        let known = known.clone();
        tokio::spawn(async move {
            if let Err(problem) = read_peer(stream, me, &known, events).await {
                tracing::warn!(%addr, %problem, "peer connection dropped");
            }
        });
    }
}

async fn read_frame(stream: &mut TcpStream) -> Result<Option<(u8, Vec<u8>)>, String> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(format!("read: {e}")),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len == 0 || len > FRAME_BYTES_MAX {
        return Err(format!(
            "frame length {len} out of range (garbage on the peer port?)"
        ));
    }
    let mut buf = vec![0u8; len];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let kind = buf.remove(0);
    Ok(Some((kind, buf)))
}

async fn read_peer(
    mut stream: TcpStream,
    me: u64,
    known: &[u64],
    events: Inbox,
) -> Result<(), String> {
    let hello = tokio::time::timeout(HELLO_TIMEOUT, read_frame(&mut stream))
        .await
        .map_err(|_| "no hello within 5 s".to_string())??;
    let from = match hello {
        Some((KIND_HELLO, body)) if body.len() == 8 => {
            u64::from_le_bytes(body.try_into().expect("8 bytes"))
        }
        Some((kind, _)) => return Err(format!("expected hello, got frame kind {kind}")),
        None => return Ok(()),
    };
    if from == me || !known.contains(&from) {
        return Err(format!("hello from unknown raft id {from}"));
    }
    while let Some((kind, body)) = read_frame(&mut stream).await? {
        let event = decode_event(me, from, kind, &body)?;
        let queued = match event {
            raft @ Event::Peer { .. } => events.peer(raft),
            other => events.client(other).is_ok(),
        };
        if !queued {
            tracing::debug!(from, "event queue full, dropping peer frame");
        }
    }
    Ok(())
}

fn decode_event(me: u64, from: u64, kind: u8, body: &[u8]) -> Result<Event, String> {
    match kind {
        KIND_RAFT => {
            if body.len() < 8 {
                return Err(format!(
                    "raft frame of {} bytes has no Lamport stamp",
                    body.len()
                ));
            }
            let (stamp, body) = body.split_at(8);
            let lamport = u64::from_le_bytes(stamp.try_into().expect("8 bytes"));
            let msg = Message::parse_from_bytes(body)
                .map_err(|e| format!("undecodable raft message: {e}"))?;
            if msg.from != from || msg.to != me {
                return Err(format!(
                    "raft message from {} to {} on the link {from}->{me}",
                    msg.from, msg.to
                ));
            }
            Ok(Event::Peer { msg, lamport })
        }
        KIND_RAFT_UNSTAMPED => Err(
            "raft frame without a Lamport stamp (kind 2, a node from before the trace); \
             run one version of ordeal-node on every node"
                .to_string(),
        ),
        KIND_FORWARD => {
            let f: Forward =
                serde_json::from_slice(body).map_err(|e| format!("bad forward: {e}"))?;
            let tx_id = f.tx.id.clone();
            Ok(Event::Submit {
                tx: f.tx,
                ack: f.ack,
                origin: Origin::Peer {
                    from,
                    req_id: f.req_id,
                    tx_id,
                },
            })
        }
        KIND_FORWARD_REPLY => {
            let r: ForwardReply =
                serde_json::from_slice(body).map_err(|e| format!("bad forward reply: {e}"))?;
            Ok(Event::ForwardReply {
                req_id: r.req_id,
                tx_id: r.tx_id,
                reply: r.reply,
            })
        }
        other => Err(format!("unknown frame kind {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_that_lie_are_rejected() {
        let m = Message {
            from: 3,
            to: 1,
            ..Default::default()
        };
        let unstamped = m.write_to_bytes().unwrap();
        let mut body = 7u64.to_le_bytes().to_vec();
        body.extend_from_slice(&unstamped);
        assert!(decode_event(1, 2, KIND_RAFT, &body)
            .unwrap_err()
            .contains("link 2->1"));
        assert!(matches!(
            decode_event(1, 3, KIND_RAFT, &body),
            Ok(Event::Peer { lamport: 7, .. })
        ));
        assert!(decode_event(1, 3, KIND_RAFT_UNSTAMPED, &unstamped)
            .unwrap_err()
            .contains("without a Lamport stamp"));
        assert!(decode_event(1, 3, KIND_RAFT, b"\x01\x02")
            .unwrap_err()
            .contains("no Lamport stamp"));
        assert!(decode_event(1, 3, KIND_RAFT, b"\0\0\0\0\0\0\0\0\xff\xff\xff").is_err());
        assert!(decode_event(1, 3, 99, b"")
            .unwrap_err()
            .contains("unknown frame kind"));
        assert!(decode_event(1, 3, KIND_FORWARD, b"{}")
            .unwrap_err()
            .contains("bad forward"));
    }
}
