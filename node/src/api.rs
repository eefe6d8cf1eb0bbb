//! The HTTP client API (docs/node-api.md): submit, blocks, status, metrics
//! and the raw fsync histogram.

use crate::config::Bug;
use crate::crash_points::{Action, Arming, CrashPointError, Point, REGISTRY};
use crate::event::{Event, Inbox, MemberChange, MemberReply, Origin, Refused, SubmitReply};
use crate::fsm::StateDigest;
use crate::ledger::Block;
use crate::server::{gauges, Shared};
use crate::tx::{Ack, SubmitRequest, TxError};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// Blocks returned by one `GET /blocks` at most.
pub const BLOCKS_PAGE_MAX: u64 = 1000;
/// Blocks returned when `limit` is not given.
pub const BLOCKS_PAGE_DEFAULT: u64 = 100;

/// What handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// Node state.
    pub shared: Arc<Shared>,
    /// The raft loop's queue.
    pub events: Inbox,
}

/// The router of the client API.
pub fn router(state: ApiState) -> Router {
    let body_max = state.shared.config.args.absolute_max_bytes + (64 << 10);
    Router::new()
        .route("/submit", post(submit))
        .route("/blocks", get(blocks))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/fsync", get(fsync))
        .route("/members", get(members).post(change_members))
        .route("/transfer", post(transfer))
        .route(
            "/crash-points",
            get(crash_points_list)
                .post(crash_point_arm)
                .delete(crash_points_disarm_all),
        )
        .route("/crash-points/:name", delete(crash_point_disarm))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such endpoint; see docs/node-api.md",
                false,
            )
        })
        .layer(DefaultBodyLimit::max(body_max))
        .with_state(state)
}

fn error(status: StatusCode, message: &str, retryable: bool) -> Response {
    (
        status,
        Json(json!({"error": message, "retryable": retryable})),
    )
        .into_response()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn submit(State(state): State<ApiState>, body: Bytes) -> Response {
    let cfg = &state.shared.config;
    let (tx, ack) = match SubmitRequest::parse(&body, cfg.args.absolute_max_bytes) {
        Ok(parsed) => parsed,
        Err(e @ TxError::TooLarge { .. }) => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string(), false)
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string(), false),
    };
    if cfg.has_bug(Bug::StaleRead) && tx.is_read_only() {
        // The bug: answer from local state, skipping the log.
        let results = state.shared.fsm.read().expect("fsm lock").kv.read(&tx.ops);
        return Json(json!({"id": tx.id, "block": null, "position": null, "results": results}))
            .into_response();
    }
    let timeout = Duration::from_millis(cfg.args.submit_timeout_ms);
    let deadline = tokio::time::Instant::now() + timeout;
    let (reply_tx, reply_rx) = oneshot::channel();
    match state.events.client(Event::Submit {
        tx,
        ack,
        origin: Origin::Local(reply_tx),
    }) {
        Ok(()) => {}
        Err(Refused::Full) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "node overloaded; retry",
                true,
            )
        }
        Err(Refused::Stopped) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "node shutting down", true)
        }
    }
    let reply = match tokio::time::timeout_at(deadline, reply_rx).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(_)) => {
            return error(
                StatusCode::GATEWAY_TIMEOUT,
                "answer lost (leader changed or forward dropped); outcome unknown",
                false,
            )
        }
        Err(_) => {
            return error(
                StatusCode::GATEWAY_TIMEOUT,
                "timed out waiting for the transaction to commit; outcome unknown",
                false,
            )
        }
    };
    answer(&state, ack, reply, deadline).await
}

/// Turns the raft loop's reply into the HTTP answer; a committed reply
/// waits (until `deadline`) for the block to be applied here too.
async fn answer(
    state: &ApiState,
    ack: Ack,
    reply: SubmitReply,
    deadline: tokio::time::Instant,
) -> Response {
    match reply {
        SubmitReply::Committed {
            id,
            block,
            position,
            results,
        } => {
            if ack == Ack::Committed && !wait_applied(state, block, deadline).await {
                return error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "committed on the leader but not yet applied here; outcome unknown",
                    false,
                );
            }
            Json(json!({"id": id, "block": block, "position": position, "results": results}))
                .into_response()
        }
        SubmitReply::Accepted { id } => Json(json!({"id": id, "accepted": true})).into_response(),
        SubmitReply::Refused {
            status,
            error: message,
            retryable,
        } => error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &message,
            retryable,
        ),
    }
}

/// Waits until this node's ledger holds `block`.
async fn wait_applied(state: &ApiState, block: u64, deadline: tokio::time::Instant) -> bool {
    let mut height = state.shared.height.subscribe();
    tokio::time::timeout_at(deadline, height.wait_for(|h| *h > block))
        .await
        .is_ok_and(|r| r.is_ok())
}

fn query_u64(q: &HashMap<String, String>, name: &str, default: u64) -> Result<u64, Box<Response>> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                &format!("query parameter `{name}`: `{v}` is not a non-negative integer"),
                false,
            ))
        }),
    }
}

/// A block without its transactions (`GET /blocks?headers=true`): enough to
/// compare blocks across nodes and follow the chain, as the header hash binds
/// `data_hash`, which binds the transactions.
fn header(b: &Block) -> Value {
    json!({
        "number": b.number,
        "previous_hash": hex::encode(b.previous_hash),
        "data_hash": hex::encode(b.data_hash),
        "hash": hex::encode(b.hash),
    })
}

async fn blocks(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let from = match query_u64(&q, "from", 0) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let limit = match query_u64(&q, "limit", BLOCKS_PAGE_DEFAULT) {
        Ok(v) => v.min(BLOCKS_PAGE_MAX),
        Err(r) => return *r,
    };
    let headers = match q.get("headers").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("query parameter `headers`: `{other}` is not `true` or `false`"),
                false,
            )
        }
    };
    let fsm = state.shared.fsm.read().expect("fsm lock");
    let page = fsm.ledger.range(from, limit);
    let height = fsm.ledger.height();
    let body = if headers {
        let page: Vec<Value> = page.iter().map(|b| header(b)).collect();
        serde_json::to_vec(&json!({"height": height, "blocks": page}))
    } else {
        let page: Vec<&Block> = page.iter().map(|b| &**b).collect();
        serde_json::to_vec(&json!({"height": height, "blocks": page}))
    }
    .expect("blocks encode");
    drop(fsm);
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn status(State(state): State<ApiState>) -> Json<Value> {
    let mut s = state.shared.status.lock().expect("status lock").clone();
    // The live height, so that a client that was just answered sees it.
    s.height = *state.shared.height.borrow();
    let bugs: Vec<&str> = state
        .shared
        .config
        .args
        .bug
        .iter()
        .map(|b| b.name())
        .collect();
    let mut v = serde_json::to_value(&s).expect("status encodes");
    let (taken, installed, compactions) = {
        let m = state.shared.metrics.lock().expect("metrics lock");
        (m.snapshots_taken, m.snapshots_installed, m.compactions)
    };
    let extra = json!({
        "snapshots_taken": taken,
        "snapshots_installed": installed,
        "compactions": compactions,
        "wall_clock_ms": unix_ms(),
        "monotonic_ms": state.shared.started.elapsed().as_millis() as u64,
        "process_uptime_ms": crate::uptime::process_uptime_ms(),
        "started_ms": state.shared.started_ms,
        "restarts": state.shared.restarts,
        "bugs": bugs,
        "state": s.state.map(|d| state_json(s.applied_index, &d)),
    });
    v.as_object_mut()
        .expect("an object")
        .extend(extra.as_object().expect("an object").clone());
    Json(v)
}

/// `/status`'s `state`: the digest of the state machine at the applied
/// index, as the trace's `digest` event writes it (docs/trace.md).
fn state_json(index: u64, d: &StateDigest) -> Value {
    json!({
        "index": index,
        "height": d.height,
        "head": d.head.map(hex::encode).unwrap_or_default(),
        "registers": format!("{:016x}", d.registers),
    })
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let g = gauges(&state.shared.status.lock().expect("status lock"));
    let text = state
        .shared
        .metrics
        .lock()
        .expect("metrics lock")
        .prometheus(g);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response()
}

async fn fsync(State(state): State<ApiState>) -> Json<Value> {
    Json(
        state
            .shared
            .metrics
            .lock()
            .expect("metrics lock")
            .fsync_json(),
    )
}

async fn members(State(state): State<ApiState>) -> Json<Value> {
    let view = state.shared.members.lock().expect("members lock").clone();
    let leader = state.shared.status.lock().expect("status lock").leader;
    let mut body = serde_json::to_value(view).expect("a view encodes");
    body["leader"] = json!(leader);
    Json(body)
}

/// Sends a membership event built around a reply channel and waits (up to
/// `--submit-timeout-ms`) for the raft loop's answer.
async fn ask_loop(
    state: &ApiState,
    make: impl FnOnce(oneshot::Sender<MemberReply>) -> Event,
) -> Response {
    let (reply_tx, reply_rx) = oneshot::channel();
    if state.events.client(make(reply_tx)).is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "node busy or stopping; retry",
            true,
        );
    }
    let timeout = Duration::from_millis(state.shared.config.args.submit_timeout_ms);
    match tokio::time::timeout(timeout, reply_rx).await {
        Ok(Ok(Ok(body))) => Json(body).into_response(),
        Ok(Ok(Err((status, why)))) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT);
            error(status, &why, status != StatusCode::SERVICE_UNAVAILABLE)
        }
        _ => error(
            StatusCode::GATEWAY_TIMEOUT,
            "timed out waiting for the change to be applied; outcome unknown: check GET /members",
            false,
        ),
    }
}

/// A JSON request body, or the 400 answer naming what is wrong.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body)
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, &format!("body: {e}"), false)))
}

async fn change_members(State(state): State<ApiState>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Request {
        changes: Vec<MemberChange>,
    }
    let request: Request = match parse_body(&body) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    ask_loop(&state, |reply| Event::Member {
        changes: request.changes,
        reply,
    })
    .await
}

async fn transfer(State(state): State<ApiState>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Request {
        to: u64,
    }
    let request: Request = match parse_body(&body) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    ask_loop(&state, |reply| Event::Transfer {
        to: request.to,
        reply,
    })
    .await
}

/// `GET /crash-points`: every point with its hits, arming and firings.
async fn crash_points_list() -> Json<Value> {
    Json(json!({"points": REGISTRY.list()}))
}

fn crash_point_refused(e: CrashPointError) -> Response {
    let status = match e {
        CrashPointError::Unknown { .. } => StatusCode::NOT_FOUND,
        CrashPointError::Invalid { .. } => StatusCode::BAD_REQUEST,
    };
    error(status, &e.to_string(), false)
}

/// `POST /crash-points`: arms one point (docs/node-api.md).
async fn crash_point_arm(body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Request {
        name: String,
        #[serde(default)]
        action: Option<String>,
        #[serde(default)]
        sleep_ms: Option<u64>,
        #[serde(default)]
        hit: Option<u64>,
    }
    let request: Request = match parse_body(&body) {
        Ok(r) => r,
        Err(refused) => return *refused,
    };
    if Point::from_name(&request.name).is_none() {
        let name = request.name;
        return crash_point_refused(CrashPointError::Unknown { name });
    }
    let action = request.action.as_deref().unwrap_or("abort");
    let arming = Action::new(action, request.sleep_ms).map(|action| Arming {
        action,
        hit: request.hit.unwrap_or(1),
    });
    match arming.and_then(|a| REGISTRY.arm(&request.name, a)) {
        Ok(view) => {
            tracing::warn!(point = view.name, action, hit = ?view.hit, "crash point armed through the API");
            Json(view).into_response()
        }
        Err(e) => crash_point_refused(e),
    }
}

/// `DELETE /crash-points/NAME`: disarms one point.
async fn crash_point_disarm(Path(name): Path<String>) -> Response {
    match REGISTRY.disarm(&name) {
        Ok(was_armed) => Json(json!({"name": name, "was_armed": was_armed})).into_response(),
        Err(e) => crash_point_refused(e),
    }
}

/// `DELETE /crash-points`: disarms every point.
async fn crash_points_disarm_all() -> Json<Value> {
    Json(json!({"disarmed": REGISTRY.disarm_all()}))
}
