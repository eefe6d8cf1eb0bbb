//! The peer transport: raft messages and forwarded submits between nodes
//! over TCP, one outbound connection per peer.
//!
//! A frame is `len: u32 LE | kind: u8 | body` (`len` counts kind and body).
//! A raft message is `lamport: u64 LE | protobuf` (kind 5); one larger than
//! [`RAFT_PART_BYTES`] (a snapshot) is sent as parts (kind 6) ended by a
//! kind-5 frame, so no snapshot is too large for the link.
//! The dialer's first frame is `Hello` with its raft id; the acceptor
//! identifies the peer by that id, never by its address (the harness may put
//! a fault proxy in between). Anything malformed closes the connection with
//! a warning; nothing a peer sends can panic the node.

use crate::event::{Event, Inbox, Origin, SubmitReply};
use crate::kv::OpResult;
use crate::tx::{bin, Ack, Tx};
use protobuf::Message as PbMessage;
use raft::prelude::Message;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Largest frame accepted (an absolute-max transaction plus room).
pub const FRAME_BYTES_MAX: usize = 64 << 20;
/// Frames queued per peer before new ones are dropped (raft retries).
pub const PEER_QUEUE_MAX: usize = 8192;
/// How long a dialer waits between connection attempts.
const REDIAL_DELAY: Duration = Duration::from_millis(100);
/// How long a dialer waits for a connection to be made. A partition that
/// drops packets (nft) drops the SYN too, and the kernel would retry it for
/// about two minutes while the peer's frames pile up in its queue.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long bytes written to a peer may stay unacknowledged before the
/// kernel drops the connection (`TCP_USER_TIMEOUT`): without it a link cut
/// by dropped packets keeps its connection, retransmitting with a backoff
/// that reaches seconds, and after the heal the peer waits for the next
/// retransmission (seconds) before it hears anything new.
const UNACKED_TIMEOUT: Duration = Duration::from_secs(2);
/// TCP keepalive on every peer connection, so that an idle one whose peer
/// vanished (its FIN or RST dropped) ends: idle time before the first
/// probe, the time between probes and how many go unanswered.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(2);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_PROBES: u32 = 3;
/// The read buffer of an accepted peer connection: many small frames
/// (forwarded submits and their answers) are taken per read.
const PEER_READ_BUFFER_BYTES: usize = 64 << 10;
/// How long an acceptor waits for the `Hello` frame.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest frame accepted before the peer said who it is: a hello is its
/// kind and an 8-byte id. Anything larger is refused before a buffer for
/// it is allocated (an unidentified connection may not make this node
/// allocate up to [`FRAME_BYTES_MAX`]).
const HELLO_FRAME_BYTES_MAX: usize = 64;

const KIND_HELLO: u8 = 1;
/// A raft message without a Lamport stamp (before the trace): refused.
const KIND_RAFT_UNSTAMPED: u8 = 2;
/// `lamport: u64 LE | protobuf raft Message`, or the last part of one.
const KIND_RAFT: u8 = 5;
/// A part of a raft message (a snapshot) too large for one frame; the
/// parts' bodies are concatenated up to the next [`KIND_RAFT`] frame.
const KIND_RAFT_PART: u8 = 6;
/// Bytes of a raft message per frame at most.
pub const RAFT_PART_BYTES: usize = 8 << 20;
/// Largest raft message accepted in parts (a snapshot of the ledger).
pub const RAFT_MESSAGE_BYTES_MAX: usize = 1 << 30;
const _: () = assert!(RAFT_PART_BYTES < FRAME_BYTES_MAX);
/// A forwarded submit's frame: kind, request id and ack before the
/// transaction, within the frame.
const _: () = assert!(1 + 8 + 1 + crate::tx::TX_BYTES_MAX <= FRAME_BYTES_MAX);
/// A forwarded submit as JSON (nodes before the binary one; still read).
const KIND_FORWARD: u8 = 3;
/// A forwarded submit's answer as JSON (still read).
const KIND_FORWARD_REPLY: u8 = 4;
/// A forwarded submit: `req_id: u64 | ack: u8 (0 committed, 1 accepted) |
/// tx` (the encoding of `tx::bin`).
const KIND_FORWARD_BIN: u8 = 8;
/// Its answer: `req_id: u64 | tx_id: string | reply`, the reply a tag then
/// 1 committed `id: string | block: u64 | position: u64 | results: u32
/// count | result...` (a result `ok: u8 | value: u8 (0 absent, 1 null,
/// 2 i64 follows) [i64]`), 2 accepted `id: string`, 3 refused `status:
/// u32 | error: string | retryable: u8`.
const KIND_FORWARD_REPLY_BIN: u8 = 9;
/// `index: u64 LE`: "the configuration at this index removed you" (a
/// member to a removed node that still sends raft messages).
const KIND_REMOVED: u8 = 7;

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
    Raft {
        /// Stamp and message.
        bytes: Vec<u8>,
        /// Whether it is a `MsgSnapshot` (its fate is reported to raft).
        snapshot: bool,
    },
    /// A forwarded submit.
    Forward(Forward),
    /// The answer to a forwarded submit.
    ForwardReply(ForwardReply),
    /// The configuration at this index removed the receiver.
    Removed(u64),
}

impl Frame {
    fn is_snapshot(&self) -> bool {
        matches!(self, Frame::Raft { snapshot: true, .. })
    }

    fn encode(&self) -> Vec<u8> {
        let (kind, body) = match self {
            Frame::Raft { bytes, .. } => return frame_bytes(KIND_RAFT, bytes),
            Frame::Forward(f) => return encode_forward(f),
            Frame::ForwardReply(r) => return encode_forward_reply(r),
            Frame::Removed(index) => (KIND_REMOVED, index.to_le_bytes().to_vec()),
        };
        frame_bytes(kind, &body)
    }
}

/// Starts a frame of `kind` whose length is filled in by [`end_frame`].
fn begin_frame(kind: u8, body_capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body_capacity);
    out.extend_from_slice(&[0, 0, 0, 0, kind]);
    out
}

fn end_frame(mut out: Vec<u8>) -> Vec<u8> {
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

fn encode_forward(f: &Forward) -> Vec<u8> {
    let mut out = begin_frame(KIND_FORWARD_BIN, 9 + bin::tx_len(&f.tx));
    bin::put_u64(&mut out, f.req_id);
    out.push(match f.ack {
        Ack::Committed => 0,
        Ack::Accepted => 1,
    });
    bin::put_tx(&mut out, &f.tx);
    end_frame(out)
}

fn decode_forward(body: &[u8]) -> Result<Forward, String> {
    let mut r = bin::Reader::new(body);
    let req_id = r.u64("request id")?;
    let ack = match r.u8("ack")? {
        0 => Ack::Committed,
        1 => Ack::Accepted,
        other => return Err(format!("ack {other} is neither 0 nor 1")),
    };
    let tx = r.tx()?;
    r.finish("forward")?;
    Ok(Forward { req_id, tx, ack })
}

fn encode_forward_reply(f: &ForwardReply) -> Vec<u8> {
    let mut out = begin_frame(KIND_FORWARD_REPLY_BIN, 64 + 2 * f.tx_id.len());
    bin::put_u64(&mut out, f.req_id);
    bin::put_str(&mut out, &f.tx_id);
    match &f.reply {
        SubmitReply::Committed {
            id,
            block,
            position,
            results,
        } => {
            out.push(1);
            bin::put_str(&mut out, id);
            bin::put_u64(&mut out, *block);
            bin::put_u64(&mut out, *position);
            bin::put_u32(&mut out, results.len() as u32);
            for result in results {
                out.push(u8::from(result.ok));
                match result.value {
                    None => out.push(0),
                    Some(None) => out.push(1),
                    Some(Some(v)) => {
                        out.push(2);
                        bin::put_u64(&mut out, v as u64);
                    }
                }
            }
        }
        SubmitReply::Accepted { id } => {
            out.push(2);
            bin::put_str(&mut out, id);
        }
        SubmitReply::Refused {
            status,
            error,
            retryable,
        } => {
            out.push(3);
            bin::put_u32(&mut out, u32::from(*status));
            bin::put_str(&mut out, error);
            out.push(u8::from(*retryable));
        }
    }
    end_frame(out)
}

fn decode_bool(r: &mut bin::Reader<'_>, what: &str) -> Result<bool, String> {
    match r.u8(what)? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(format!("{what} {other} is neither 0 nor 1")),
    }
}

fn decode_forward_reply(body: &[u8]) -> Result<ForwardReply, String> {
    let mut r = bin::Reader::new(body);
    let req_id = r.u64("request id")?;
    let tx_id = r.str("transaction id")?;
    let reply = match r.u8("reply tag")? {
        1 => {
            let id = r.str("reply id")?;
            let block = r.u64("block")?;
            let position = r.u64("position")?;
            let n = r.count(2, "results")?;
            let mut results = Vec::with_capacity(n);
            for _ in 0..n {
                let ok = decode_bool(&mut r, "result ok")?;
                let value = match r.u8("result value tag")? {
                    0 => None,
                    1 => Some(None),
                    2 => Some(Some(r.u64("result value")? as i64)),
                    other => return Err(format!("result value tag {other} is not 0, 1 or 2")),
                };
                results.push(OpResult { ok, value });
            }
            SubmitReply::Committed {
                id,
                block,
                position,
                results,
            }
        }
        2 => SubmitReply::Accepted {
            id: r.str("reply id")?,
        },
        3 => {
            let status = r.u32("status")?;
            let status =
                u16::try_from(status).map_err(|_| format!("status {status} is not a u16"))?;
            SubmitReply::Refused {
                status,
                error: r.str("error")?,
                retryable: decode_bool(&mut r, "retryable")?,
            }
        }
        other => return Err(format!("unknown reply tag {other}")),
    };
    r.finish("forward reply")?;
    Ok(ForwardReply {
        req_id,
        tx_id,
        reply,
    })
}

fn frame_bytes(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body.len());
    out.extend_from_slice(&((body.len() + 1) as u32).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

/// Senders to every peer; cheap to clone. Peers come and go with the
/// committed configuration ([`Transport::add_peer`], [`Transport::remove_peer`]).
#[derive(Clone, Debug)]
pub struct Transport {
    me: u64,
    peers: Arc<Mutex<BTreeMap<u64, Queues<mpsc::Sender<Frame>>>>>,
    known: Known,
    inbox: Inbox,
    runtime: tokio::runtime::Handle,
}

/// Raft ids whose connections are accepted: every peer this node ever
/// knew, removed ones too (a removed node must hear that it was removed).
pub type Known = Arc<RwLock<BTreeSet<u64>>>;

/// A peer's two outbound queues: raft messages are written first, so that
/// forwarded submits never crowd them out (issue 13, defect 5).
#[derive(Debug, Clone)]
struct Queues<Q> {
    raft: Q,
    client: Q,
}

impl Queues<mpsc::Receiver<Frame>> {
    /// The next frame, raft's first; `None` when both queues are closed.
    async fn recv(&mut self) -> Option<Frame> {
        tokio::select! {
            biased;
            Some(f) = self.raft.recv() => Some(f),
            Some(f) = self.client.recv() => Some(f),
            else => None,
        }
    }

    /// A frame already queued, raft's first.
    fn try_recv(&mut self) -> Option<Frame> {
        self.raft
            .try_recv()
            .or_else(|_| self.client.try_recv())
            .ok()
    }

    fn is_closed(&self) -> bool {
        self.raft.is_closed() && self.client.is_closed()
    }
}

impl Transport {
    /// Starts one dialer task per peer other than `me`; they report
    /// unreachable peers and snapshots' fates into `inbox`.
    /// Must be called inside a tokio runtime (later peers' dialers run on it).
    pub fn start(me: u64, addrs: &BTreeMap<u64, String>, inbox: &Inbox) -> Transport {
        let transport = Transport {
            me,
            peers: Arc::default(),
            known: Arc::default(),
            inbox: inbox.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        for (&id, addr) in addrs {
            transport.add_peer(id, addr);
        }
        transport
    }

    /// The ids whose connections `serve` accepts.
    pub fn known(&self) -> Known {
        self.known.clone()
    }

    /// Starts a dialer to `id` at `addr` unless it has one (or is this node).
    pub fn add_peer(&self, id: u64, addr: &str) {
        self.known.write().expect("known lock").insert(id);
        let mut peers = self.peers.lock().expect("peers lock");
        if id == self.me || peers.contains_key(&id) {
            return;
        }
        let (raft, raft_rx) = mpsc::channel(PEER_QUEUE_MAX);
        let (client, client_rx) = mpsc::channel(PEER_QUEUE_MAX);
        let rx = Queues {
            raft: raft_rx,
            client: client_rx,
        };
        let dial = dial_loop(self.me, id, addr.to_string(), rx, self.inbox.clone());
        self.runtime.spawn(dial);
        peers.insert(id, Queues { raft, client });
        tracing::info!(peer = id, addr, "peer added");
    }

    /// Queues a frame for `to`; dropped (with a debug log, and false) when
    /// the queue is full or `to` is unknown: raft tolerates message loss.
    pub fn send(&self, to: u64, frame: Frame) -> bool {
        match self.peers.lock().expect("peers lock").get(&to) {
            Some(q) => {
                let q = match frame {
                    Frame::Raft { .. } => &q.raft,
                    _ => &q.client,
                };
                let queued = q.try_send(frame).is_ok();
                if !queued {
                    tracing::debug!(to, "peer queue full, dropping frame");
                }
                queued
            }
            None => {
                tracing::warn!(to, "frame for unknown peer dropped");
                false
            }
        }
    }

    /// Queues a raft message stamped with the sender's Lamport clock;
    /// false when it was dropped.
    pub fn send_raft(&self, msg: &Message, lamport: u64) -> bool {
        self.send(msg.to, stamped(msg, lamport))
    }
}

/// A raft message's frame: its Lamport stamp, then the message.
fn stamped(msg: &Message, lamport: u64) -> Frame {
    let mut bytes = Vec::with_capacity(8 + msg.compute_size() as usize);
    bytes.extend_from_slice(&lamport.to_le_bytes());
    msg.write_to_vec(&mut bytes)
        .expect("a raft message always encodes");
    Frame::Raft {
        bytes,
        snapshot: msg.get_msg_type() == raft::prelude::MessageType::MsgSnapshot,
    }
}

/// Writes one frame (buffered); a raft message longer than
/// [`RAFT_PART_BYTES`] goes as parts (kind 6) and a last part (kind 5).
async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &Frame) -> std::io::Result<()> {
    let Frame::Raft { bytes, .. } = frame else {
        return w.write_all(&frame.encode()).await;
    };
    let mut parts = bytes.chunks(RAFT_PART_BYTES).peekable();
    while let Some(part) = parts.next() {
        let kind = if parts.peek().is_some() {
            KIND_RAFT_PART
        } else {
            KIND_RAFT
        };
        w.write_all(&((part.len() + 1) as u32).to_le_bytes())
            .await?;
        w.write_all(&[kind]).await?;
        w.write_all(part).await?;
    }
    Ok(())
}

/// One peer's dialer: connects, writes queued frames, reports to the
/// raft loop what raft must know (issue 13): a peer it cannot reach
/// (`report_unreachable`) and whether each snapshot got out
/// (`report_snapshot`).
async fn dial_loop(
    me: u64,
    to: u64,
    addr: String,
    mut rx: Queues<mpsc::Receiver<Frame>>,
    inbox: Inbox,
) {
    let report = Reporter { to, inbox };
    loop {
        match connect(&addr).await {
            Ok(stream) => {
                tracing::debug!(to, %addr, "peer connected");
                match write_frames(me, stream, &mut rx, &report).await {
                    Ok(()) => return, // the node is shutting down
                    Err(e) => tracing::debug!(to, %addr, error = %e, "peer connection lost"),
                }
            }
            Err(e) => tracing::trace!(to, %addr, error = %e, "dial failed"),
        }
        report.unreachable();
        // Wait before redialing (a peer that accepts and closes at once,
        // like a cut fault proxy, would otherwise be dialed in a spin).
        drain_for(&mut rx, REDIAL_DELAY, &report).await;
        if rx.is_closed() {
            return;
        }
    }
}

/// A connection to `addr` within [`CONNECT_TIMEOUT`], with the options of
/// every peer link ([`link_options`]). The bound is a relative sleep
/// ([`real_sleep`]), not a timer: see [`drain_for`].
async fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let stream = tokio::select! {
        stream = TcpStream::connect(addr) => stream?,
        () = real_sleep(CONNECT_TIMEOUT) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection within {CONNECT_TIMEOUT:?}"),
            ))
        }
    };
    link_options(&stream)?;
    Ok(stream)
}

/// Sleeps `period` on a blocking thread: a relative sleep, right however
/// the monotonic clock moves. Tokio's timers take absolute deadlines from
/// it, and under the clock nemesis (libfaketime fakes it) a clock set back
/// by N seconds makes every timer fire at once for N seconds.
async fn real_sleep(period: Duration) {
    let _ = tokio::task::spawn_blocking(move || std::thread::sleep(period)).await;
}

/// No Nagle delay, keepalive, and (dialer and acceptor alike) a bound on
/// how long written bytes may stay unacknowledged.
fn link_options(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let sock = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    sock.set_tcp_keepalive(&keepalive)?;
    sock.set_tcp_user_timeout(Some(UNACKED_TIMEOUT))
}

/// Tells the raft loop about one peer's link.
struct Reporter {
    to: u64,
    inbox: Inbox,
}

impl Reporter {
    fn unreachable(&self) {
        self.inbox.peer(Event::Unreachable { to: self.to });
    }

    fn snapshots(&self, frames: &[bool], delivered: bool) {
        for _ in frames.iter().filter(|&&snapshot| snapshot) {
            self.inbox.peer(Event::SnapshotStatus {
                to: self.to,
                delivered,
            });
        }
    }
}

/// Discards queued frames for `period` (a peer we cannot reach). The wait
/// is a relative sleep ([`real_sleep`]): with tokio's timers firing at once
/// (the monotonic clock set back), a timed wait let the dialer spin through
/// a partition (a soak's `not-caught-up`: a follower's answers never
/// reached the leader again after a clock fault and a partition; the
/// spin's closed connections filling its ports with TIME_WAIT is the
/// likely reason, not confirmed).
async fn drain_for(rx: &mut Queues<mpsc::Receiver<Frame>>, period: Duration, report: &Reporter) {
    let rest = real_sleep(period);
    tokio::pin!(rest);
    loop {
        tokio::select! {
            () = &mut rest => return,
            frame = rx.recv() => match frame {
                Some(frame) => report.snapshots(&[frame.is_snapshot()], false),
                None => return,
            },
        }
    }
}

/// Writes queued frames to one connection until it fails (`Err`) or the
/// queues close (`Ok`, the node is shutting down).
///
/// The acceptor never writes back, so anything the connection reads —
/// end of file (the peer, or a cut fault proxy, closed it), a reset, a
/// keepalive's timeout — means it is over: the dialer redials at once
/// instead of learning it from the next write, which the kernel takes
/// and the peer never sees. (In an election that lost frame is a vote or
/// its answer, and costs a whole election timeout.)
async fn write_frames(
    me: u64,
    stream: TcpStream,
    rx: &mut Queues<mpsc::Receiver<Frame>>,
    report: &Reporter,
) -> std::io::Result<()> {
    let (mut read, write) = stream.into_split();
    let closed = closed_by_peer(&mut read);
    tokio::pin!(closed);
    let mut w = BufWriter::with_capacity(256 << 10, write);
    w.write_all(&frame_bytes(KIND_HELLO, &me.to_le_bytes()))
        .await?;
    w.flush().await?;
    // Which frames of the batch in hand are snapshots.
    let mut batch: Vec<bool> = Vec::new();
    loop {
        let frame = tokio::select! {
            biased;
            e = &mut closed => return Err(e),
            frame = rx.recv() => match frame {
                Some(frame) => frame,
                None => return Ok(()),
            },
        };
        batch.clear();
        let mut written = write_frame(&mut w, &frame).await;
        batch.push(frame.is_snapshot());
        // Batch whatever else is already queued into one flush.
        while written.is_ok() {
            let Some(more) = rx.try_recv() else { break };
            written = write_frame(&mut w, &more).await;
            batch.push(more.is_snapshot());
        }
        if let Err(e) = written.and(w.flush().await) {
            report.snapshots(&batch, false);
            return Err(e);
        }
        report.snapshots(&batch, true);
    }
}

/// Resolves when the read side of a dialed connection, on which the peer
/// never writes, shows that the connection is over.
async fn closed_by_peer<R: AsyncRead + Unpin>(read: &mut R) -> std::io::Error {
    let mut byte = [0u8; 1];
    match read.read(&mut byte).await {
        Ok(0) => std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the peer closed the connection",
        ),
        Ok(_) => std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the peer wrote on a link it only reads",
        ),
        Err(e) => e,
    }
}

/// Accepts peer connections and turns their frames into events.
pub async fn serve(listener: TcpListener, me: u64, known: Known, events: Inbox) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "peer accept failed");
                tokio::time::sleep(REDIAL_DELAY).await;
                continue;
            }
        };
        if let Err(e) = link_options(&stream) {
            tracing::debug!(%addr, error = %e, "peer connection options not set");
        }
        let events = events.clone();
        let known = known.clone();
        tokio::spawn(async move {
            // Buffered: a frame is read as length, kind and body, which
            // unbuffered are three syscalls per forwarded submit.
            let stream = tokio::io::BufReader::with_capacity(PEER_READ_BUFFER_BYTES, stream);
            if let Err(problem) = read_peer(stream, me, &known, events).await {
                tracing::warn!(%addr, %problem, "peer connection dropped");
            }
        });
    }
}

async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Option<(u8, Vec<u8>)>, String> {
    read_frame_at_most(stream, FRAME_BYTES_MAX).await
}

/// A frame of at most `max` bytes (`len`'s count); a longer one is refused
/// from its length alone.
async fn read_frame_at_most<S: AsyncRead + Unpin>(
    stream: &mut S,
    max: usize,
) -> Result<Option<(u8, Vec<u8>)>, String> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(format!("read: {e}")),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len == 0 || len > max {
        return Err(format!(
            "frame length {len} out of range 1..={max} (garbage on the peer port?)"
        ));
    }
    let kind = stream.read_u8().await.map_err(|e| format!("read: {e}"))?;
    let mut buf = vec![0u8; len - 1];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| format!("read: {e}"))?;
    Ok(Some((kind, buf)))
}

async fn read_peer<S: AsyncRead + Unpin>(
    mut stream: S,
    me: u64,
    known: &Known,
    events: Inbox,
) -> Result<(), String> {
    let hello = read_frame_at_most(&mut stream, HELLO_FRAME_BYTES_MAX);
    let hello = tokio::time::timeout(HELLO_TIMEOUT, hello)
        .await
        .map_err(|_| "no hello within 5 s".to_string())??;
    let from = match hello {
        Some((KIND_HELLO, body)) if body.len() == 8 => {
            u64::from_le_bytes(body.try_into().expect("8 bytes"))
        }
        Some((kind, _)) => return Err(format!("expected hello, got frame kind {kind}")),
        None => return Ok(()),
    };
    if from == me || !known.read().expect("known lock").contains(&from) {
        return Err(format!("hello from unknown raft id {from}"));
    }
    let mut parts: Vec<u8> = Vec::new();
    while let Some((kind, mut body)) = read_frame(&mut stream).await? {
        if kind == KIND_RAFT_PART || (kind == KIND_RAFT && !parts.is_empty()) {
            if parts.len() + body.len() > RAFT_MESSAGE_BYTES_MAX {
                return Err(format!(
                    "raft message in parts over {RAFT_MESSAGE_BYTES_MAX} bytes"
                ));
            }
            parts.extend_from_slice(&body);
            if kind == KIND_RAFT_PART {
                continue;
            }
            body = std::mem::take(&mut parts);
        } else if !parts.is_empty() {
            return Err(format!("frame kind {kind} inside a raft message's parts"));
        }
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
        KIND_FORWARD | KIND_FORWARD_BIN => {
            let f: Forward = if kind == KIND_FORWARD_BIN {
                decode_forward(body).map_err(|e| format!("bad forward: {e}"))?
            } else {
                serde_json::from_slice(body).map_err(|e| format!("bad forward: {e}"))?
            };
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
        KIND_FORWARD_REPLY | KIND_FORWARD_REPLY_BIN => {
            let r: ForwardReply = if kind == KIND_FORWARD_REPLY_BIN {
                decode_forward_reply(body).map_err(|e| format!("bad forward reply: {e}"))?
            } else {
                serde_json::from_slice(body).map_err(|e| format!("bad forward reply: {e}"))?
            };
            Ok(Event::ForwardReply {
                req_id: r.req_id,
                tx_id: r.tx_id,
                reply: r.reply,
            })
        }
        KIND_REMOVED => {
            let index: [u8; 8] = body
                .try_into()
                .map_err(|_| format!("removed frame of {} bytes, not 8", body.len()))?;
            Ok(Event::Removed {
                from,
                index: u64::from_le_bytes(index),
            })
        }
        other => Err(format!("unknown frame kind {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13: a snapshot larger than a peer frame still gets through.
    #[tokio::test]
    async fn a_raft_message_larger_than_a_frame_gets_through() {
        let data_bytes = FRAME_BYTES_MAX + (6 << 20);
        let mut msg = Message {
            msg_type: raft::prelude::MessageType::MsgSnapshot,
            from: 2,
            to: 1,
            ..Default::default()
        };
        msg.mut_snapshot().data = vec![7u8; data_bytes].into();
        let (writer, reader) = tokio::io::duplex(1 << 20);
        let (inbox, outbox) = crate::event::inbox(16);
        let read = tokio::spawn(async move {
            read_peer(
                reader,
                1,
                &Known::new(RwLock::new(BTreeSet::from([1, 2, 3]))),
                inbox,
            )
            .await
        });
        let mut w = BufWriter::new(writer);
        w.write_all(&frame_bytes(KIND_HELLO, &2u64.to_le_bytes()))
            .await
            .unwrap();
        write_frame(&mut w, &stamped(&msg, 9)).await.unwrap();
        w.shutdown().await.unwrap();
        drop(w);
        read.await.unwrap().expect("the reader accepts it");
        let batch = outbox.next_batch().expect("an event");
        match batch.events.first() {
            Some(Event::Peer { msg, lamport: 9 }) => {
                assert_eq!(msg.get_snapshot().data.len(), data_bytes)
            }
            other => panic!("expected the raft message, got {other:?}"),
        }
    }

    /// The transport's reports, in order, up to the first snapshot status.
    fn reports_to_snapshot_status(outbox: crate::event::Outbox) -> Vec<Event> {
        let mut seen = Vec::new();
        loop {
            let batch = outbox.next_batch().expect("the inbox is open");
            for ev in batch.events {
                let last = matches!(ev, Event::SnapshotStatus { .. });
                if last || matches!(ev, Event::Unreachable { .. }) {
                    seen.push(ev);
                }
                if last {
                    return seen;
                }
            }
        }
    }

    /// Issue 13: the leader learns that a peer is unreachable and whether
    /// a snapshot got out, so that raft does not wait for the next leader.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unreachable_peers_and_snapshot_fates_are_reported() {
        let snapshot = Message {
            msg_type: raft::prelude::MessageType::MsgSnapshot,
            from: 1,
            to: 2,
            ..Default::default()
        };
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = closed.local_addr().unwrap().to_string();
        drop(closed);
        let (inbox, outbox) = crate::event::inbox(1024);
        let peers = BTreeMap::from([(1, "unused".to_string()), (2, dead_addr)]);
        let transport = Transport::start(1, &peers, &inbox);
        assert!(transport.send_raft(&snapshot, 1));
        let seen = tokio::task::spawn_blocking(move || reports_to_snapshot_status(outbox))
            .await
            .unwrap();
        assert!(matches!(seen[0], Event::Unreachable { to: 2 }), "{seen:?}");
        assert!(
            matches!(
                seen.last(),
                Some(Event::SnapshotStatus {
                    to: 2,
                    delivered: false
                })
            ),
            "{seen:?}"
        );

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live = BTreeMap::from([
            (1, "unused".to_string()),
            (2, listener.local_addr().unwrap().to_string()),
        ]);
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink).await;
        });
        let (inbox, outbox) = crate::event::inbox(1024);
        let transport = Transport::start(1, &live, &inbox);
        assert!(transport.send_raft(&snapshot, 2));
        let seen = tokio::task::spawn_blocking(move || reports_to_snapshot_status(outbox))
            .await
            .unwrap();
        assert!(
            matches!(
                seen.last(),
                Some(Event::SnapshotStatus {
                    to: 2,
                    delivered: true
                })
            ),
            "{seen:?}"
        );
    }

    /// Issue 18: a peer link closed by the other end while idle (a fault
    /// proxy cutting the link, a peer that restarted) is redialed at once,
    /// so that the next frame — in an election, a vote or its answer — goes
    /// out on a live connection instead of into the dead one, where the
    /// kernel takes it and the peer never sees it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_link_closed_while_idle_is_redialed_before_the_next_frame() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peers = BTreeMap::from([
            (1, "unused".to_string()),
            (2, listener.local_addr().unwrap().to_string()),
        ]);
        let (inbox, _outbox) = crate::event::inbox(1024);
        let transport = Transport::start(1, &peers, &inbox);
        let accept = || async {
            let (mut s, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
                .await
                .expect("the dialer connects within 5 s")
                .unwrap();
            let hello = read_frame(&mut s).await.unwrap();
            assert_eq!(hello, Some((KIND_HELLO, 1u64.to_le_bytes().to_vec())));
            s
        };
        let first = accept().await;
        drop(first); // the peer's end closes the idle link
        let mut second = accept().await; // redialed with nothing to send
        let vote = Message {
            msg_type: raft::prelude::MessageType::MsgRequestPreVote,
            from: 1,
            to: 2,
            ..Default::default()
        };
        assert!(transport.send_raft(&vote, 7));
        let (kind, body) = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut second))
            .await
            .expect("the vote arrives within 5 s")
            .unwrap()
            .expect("a frame");
        assert!(matches!(
            decode_event(2, 1, kind, &body),
            Ok(Event::Peer { lamport: 7, .. })
        ));
    }

    /// The dialer paces its redials and bounds its connects with relative
    /// sleeps, not tokio's timers: with tokio's clock running ahead (here
    /// paused time, which jumps to the next timer; on a node, a monotonic
    /// clock the clock nemesis set back), a timer fires at once, and a
    /// timer-paced dialer redialed a peer thousands of times a second.
    #[tokio::test(start_paused = true)]
    async fn the_dialer_s_waits_take_real_time_whatever_tokio_s_clock_does() {
        let period = Duration::from_millis(200);
        let started = std::time::Instant::now();
        tokio::time::sleep(period).await;
        assert!(started.elapsed() < period / 2, "tokio's clock jumps here");
        let started = std::time::Instant::now();
        real_sleep(period).await;
        assert!(started.elapsed() >= period, "real_sleep");
        // drain_for, between two dials: real time too, queued frames dropped.
        let (inbox, _outbox) = crate::event::inbox(16);
        let report = Reporter { to: 2, inbox };
        let (raft_tx, raft) = mpsc::channel(8);
        let (_client_tx, client) = mpsc::channel(8);
        let mut rx = Queues { raft, client };
        raft_tx.try_send(stamped(&Message::default(), 1)).unwrap();
        let started = std::time::Instant::now();
        drain_for(&mut rx, period, &report).await;
        assert!(started.elapsed() >= period, "drain_for");
        assert!(rx.try_recv().is_none(), "the queued frame was dropped");
    }

    /// Issue 20 (smaller items): before the hello, a frame is bounded by
    /// [`HELLO_FRAME_BYTES_MAX`]: a connection announcing 60 MiB is
    /// refused from the length alone, naming the bound, without waiting for
    /// (or allocating) the body.
    #[tokio::test]
    async fn a_frame_larger_than_a_hello_is_refused_before_the_hello() {
        let (mut writer, reader) = tokio::io::duplex(1 << 10);
        let mut header = ((60usize << 20) as u32).to_le_bytes().to_vec();
        header.push(KIND_HELLO);
        writer.write_all(&header).await.unwrap();
        let known: Known = Arc::new(RwLock::new(BTreeSet::from([2])));
        let (inbox, _outbox) = crate::event::inbox(16);
        let read = read_peer(reader, 1, &known, inbox);
        let refused = tokio::time::timeout(Duration::from_secs(2), read)
            .await
            .expect("refused at once, not after the hello timeout")
            .unwrap_err();
        assert!(refused.contains("out of range 1..=64"), "{refused}");
        drop(writer);
    }

    /// Every peer connection gets keepalive and a bound on unacknowledged
    /// bytes, so that a link a partition cut does not outlive it.
    #[tokio::test]
    async fn peer_connections_get_keepalive_and_an_unacked_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stream = connect(&addr).await.unwrap();
        let sock = socket2::SockRef::from(&stream);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
        assert_eq!(sock.tcp_user_timeout().unwrap(), Some(UNACKED_TIMEOUT));
        assert!(stream.nodelay().unwrap());
    }

    /// Defect 5 (issue 13), outbound: forwarded submits queued for a peer
    /// never crowd out raft messages to it. (A current-thread runtime: the
    /// dialer does not run until the test awaits, so the queue stays full.)
    #[tokio::test]
    async fn raft_messages_get_out_when_forwards_fill_the_peer_queue() {
        let (inbox, _outbox) = crate::event::inbox(16);
        let peers = BTreeMap::from([(1, "unused".to_string()), (2, "127.0.0.1:9".to_string())]);
        let transport = Transport::start(1, &peers, &inbox);
        let forward = |n: u64| {
            Frame::Forward(Forward {
                req_id: n,
                tx: Tx {
                    id: format!("f{n}"),
                    payload: String::new(),
                    ops: vec![],
                },
                ack: Ack::Committed,
            })
        };
        let mut n = 0;
        while transport.send(2, forward(n)) {
            n += 1;
        }
        assert!(n >= 1);
        let heartbeat = Message {
            msg_type: raft::prelude::MessageType::MsgHeartbeat,
            from: 1,
            to: 2,
            ..Default::default()
        };
        assert!(
            transport.send_raft(&heartbeat, 1),
            "raft waits behind {n} forwards"
        );
    }

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

    #[test]
    fn binary_forwards_and_replies_round_trip_and_garbage_is_refused() {
        let forward = Forward {
            req_id: u64::MAX - 1,
            tx: Tx {
                id: "t1".into(),
                payload: "x".repeat(100),
                ops: vec![crate::tx::KvOp::Read { key: "k".into() }],
            },
            ack: Ack::Accepted,
        };
        let frame = Frame::Forward(forward.clone()).encode();
        assert_eq!(frame[4], KIND_FORWARD_BIN);
        assert_eq!(
            u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize,
            frame.len() - 4
        );
        match decode_event(1, 2, frame[4], &frame[5..]).unwrap() {
            Event::Submit {
                tx,
                ack,
                origin:
                    Origin::Peer {
                        from: 2,
                        req_id,
                        tx_id,
                    },
            } => {
                assert_eq!(
                    (tx, ack, req_id, tx_id),
                    (
                        forward.tx.clone(),
                        Ack::Accepted,
                        forward.req_id,
                        "t1".to_string()
                    )
                );
            }
            other => panic!("{other:?}"),
        }
        let replies = [
            SubmitReply::Committed {
                id: "t1".into(),
                block: 7,
                position: 3,
                results: vec![
                    OpResult {
                        ok: true,
                        value: None,
                    },
                    OpResult {
                        ok: false,
                        value: Some(None),
                    },
                    OpResult {
                        ok: true,
                        value: Some(Some(-5)),
                    },
                ],
            },
            SubmitReply::Accepted { id: "t1".into() },
            SubmitReply::refused(503, "retry", true),
        ];
        for reply in replies {
            let frame = Frame::ForwardReply(ForwardReply {
                req_id: 9,
                tx_id: "t1".into(),
                reply: reply.clone(),
            })
            .encode();
            assert_eq!(frame[4], KIND_FORWARD_REPLY_BIN);
            match decode_event(1, 2, frame[4], &frame[5..]).unwrap() {
                Event::ForwardReply {
                    req_id: 9,
                    tx_id,
                    reply: got,
                } => {
                    assert_eq!((tx_id.as_str(), got), ("t1", reply.clone()));
                }
                other => panic!("{other:?}"),
            }
            for cut in 5..frame.len() - 1 {
                assert!(
                    decode_event(1, 2, frame[4], &frame[5..cut]).is_err(),
                    "cut at {cut}"
                );
            }
        }
        // The JSON forms of older nodes are still read.
        let json = serde_json::to_vec(&forward).unwrap();
        assert!(matches!(
            decode_event(1, 2, KIND_FORWARD, &json),
            Ok(Event::Submit { .. })
        ));
        let mut bad_ack = frame[5..].to_vec();
        bad_ack[8] = 2;
        let e = decode_event(1, 2, KIND_FORWARD_BIN, &bad_ack).unwrap_err();
        assert!(e.contains("bad forward: ack 2"), "{e}");
    }
}
