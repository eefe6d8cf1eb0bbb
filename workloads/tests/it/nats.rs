//! `NatsClient` against a real three-server `nats-server` cluster on
//! loopback (docs/nats.md): submits, deduplication of a retried message
//! id, a killed and restarted server, a server cut off by its route
//! proxies, and every server's own copy read back in order.

use crate::nats_cluster::{binary_or_skip, Advertised, LocalNatsCluster};
use async_nats::connection::State;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use workloads::nats::{Attempt, NatsClient};
use workloads::{Invocation, Op, Outcome};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound on one id's retries until it is acknowledged (a leader election
/// after a kill takes a few seconds).
const ACK_DEADLINE: Duration = Duration::from_secs(60);
/// Bound on a restarted or reconnected server catching up.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(60);

/// Submits `id` through server `index` until JetStream acknowledges it,
/// every try with the same message id; returns its position.
async fn submit_until_acknowledged(client: &NatsClient, index: usize, id: &str) -> u64 {
    let started = Instant::now();
    let mut tries = Vec::new();
    while started.elapsed() < ACK_DEADLINE {
        let s = client.submit(index, id).await;
        if let Some(position) = s.position() {
            assert!(matches!(s.outcome, Outcome::Ok(_)), "{s:?}");
            return position;
        }
        tries.push(s.outcome);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{id} not acknowledged through server {index} in {ACK_DEADLINE:?}: {tries:?}");
}

/// The ids of a `positions` delivery, checking its shape: numbered
/// `from`, `from + 1`, … with one transaction each.
fn ids_in_order(delivery: &Value) -> Vec<String> {
    assert_eq!(delivery["chain"], "positions", "{delivery}");
    let from = delivery["from"].as_u64().expect("from");
    let blocks = delivery["blocks"].as_array().expect("blocks");
    blocks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            assert_eq!(b["number"].as_u64(), Some(from + i as u64), "{delivery}");
            let txs = b["txs"].as_array().expect("txs");
            assert_eq!(txs.len(), 1, "{b}");
            let id = txs[0]["id"].as_str().expect("id").to_string();
            assert_eq!(txs[0]["payload"], format!("payload-{id}"));
            id
        })
        .collect()
}

/// Server `index`'s own copy, read until it holds `expected` messages.
async fn copy_with(client: &NatsClient, index: usize, expected: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let outcome = client.deliver_chain(index).await;
        if let Outcome::Ok(v) = &outcome {
            assert_eq!(v["from"], 1);
            let ids = ids_in_order(v);
            if ids.len() >= expected {
                return ids;
            }
        }
        assert!(
            started.elapsed() < CATCH_UP_DEADLINE,
            "server {index} did not hold {expected} messages in {CATCH_UP_DEADLINE:?}: {outcome:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_keeps_every_acknowledged_message_through_a_kill_and_restart() {
    let Some(binary) = binary_or_skip("nats kill and restart") else {
        return;
    };
    let mut cluster = LocalNatsCluster::start(&binary, 3).await.expect("cluster");
    let client = NatsClient::new(cluster.client_addresses(), REQUEST_TIMEOUT);
    client.create_stream(0, 3).await.expect("stream");

    let mut acknowledged = Vec::new();
    for t in 0..30 {
        let id = format!("k-t{t}");
        let s = client.submit(t % 3, &id).await;
        assert_eq!(
            s.outcome,
            Outcome::Ok(json!({"id": id, "position": t + 1})),
            "{s:?}"
        );
        assert_eq!(
            s.position(),
            Some(t as u64 + 1),
            "sequential submits, consecutive positions"
        );
        acknowledged.push(id);
    }
    // A retry of a stored id is answered with its first position.
    let again = client.publish(1, "k-t0", REQUEST_TIMEOUT).await;
    assert_eq!(
        again,
        Attempt::Stored {
            sequence: 1,
            duplicate: true
        }
    );

    // A read during the run: the last five positions, in order.
    let read = Invocation {
        f: Op::Deliver,
        key: None,
        value: json!({"recent": 5}),
    };
    let completion = client.invoke(&read, 1).await;
    assert_eq!(completion.node, "n2");
    let Outcome::Ok(recent) = completion.outcome else {
        panic!("read during the run: {completion:?}");
    };
    assert_eq!(recent["from"], 26);
    assert_eq!(ids_in_order(&recent), acknowledged[25..30]);

    cluster.kill(2);
    // Once the client has seen its connection to the killed server close,
    // a submit to it never leaves the client: a certain failure. (Before
    // that, a publish written into the dying socket is `info`.)
    let n3 = client.connection(2).await.expect("n3's connection");
    let started = Instant::now();
    while n3.connection_state() == State::Connected {
        assert!(
            started.elapsed() < CATCH_UP_DEADLINE,
            "the client never saw n3 go"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = client.submit(2, "k-dead").await;
    assert!(matches!(dead.outcome, Outcome::Unavailable(_)), "{dead:?}");
    for t in 30..60 {
        let id = format!("k-t{t}");
        submit_until_acknowledged(&client, t % 2, &id).await;
        acknowledged.push(id);
    }
    cluster.restart(2).expect("restart n3");

    let copies = [
        copy_with(&client, 0, 60).await,
        copy_with(&client, 1, 60).await,
        copy_with(&client, 2, 60).await,
    ];
    for (i, copy) in copies.iter().enumerate() {
        assert_eq!(copy.len(), 60, "n{}: {copy:?}", i + 1);
        let distinct: HashSet<&String> = copy.iter().collect();
        assert_eq!(distinct.len(), 60, "n{}: a message stored twice", i + 1);
        assert!(
            acknowledged.iter().all(|id| distinct.contains(id)),
            "n{}",
            i + 1
        );
        assert_eq!(copy, &copies[0], "n{} differs from n1", i + 1);
    }
    assert!(
        !copies[0].contains(&"k-dead".to_string()),
        "a failed submit was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_cut_off_shows_its_own_shorter_copy() {
    let Some(binary) = binary_or_skip("nats partitioned replica") else {
        return;
    };
    let cluster = LocalNatsCluster::start(&binary, 3).await.expect("cluster");
    let client = NatsClient::new(cluster.client_addresses(), REQUEST_TIMEOUT);
    client.create_stream(0, 3).await.expect("stream");
    for t in 0..10 {
        submit_until_acknowledged(&client, 0, &format!("p-t{t}")).await;
    }
    copy_with(&client, 2, 10).await;
    // Placed before the cut: placing needs the JetStream meta leader,
    // reading needs only n3.
    let reader = client.replica_reader(2).await.expect("a reader on n3");
    cluster.isolate(2);
    for t in 10..20 {
        submit_until_acknowledged(&client, 0, &format!("p-t{t}")).await;
    }
    let majority = copy_with(&client, 0, 20).await;
    let Outcome::Ok(cut_off) = client.read_replica(2, &reader).await else {
        panic!("n3's copy could not be read while cut off");
    };
    let cut_off = ids_in_order(&cut_off);
    assert_eq!(
        cut_off,
        majority[..10],
        "n3 holds what it had before the cut, nothing since"
    );

    cluster.heal();
    let healed = copy_with(&client, 2, 20).await;
    assert_eq!(healed, majority);
    client.close_reader(2, &reader).await;
}

/// Waits until server `i` has `routes` routes; false after `deadline`.
async fn routes_reach(
    cluster: &LocalNatsCluster,
    i: usize,
    routes: u64,
    deadline: Duration,
) -> bool {
    let started = Instant::now();
    while started.elapsed() < deadline {
        if cluster.routes_of(i).await == Ok(routes) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Cuts n1–n3 only, restarts n3 (which meets n2, who tells n1 of it) and
/// says whether n1 and n3 are linked again within a few seconds, which
/// they can only be past the proxies.
async fn cut_pair_leaks(binary: &std::path::Path, advertised: Advertised) -> bool {
    let mut cluster = LocalNatsCluster::start_advertising(binary, 3, advertised)
        .await
        .expect("cluster");
    for i in 0..3 {
        assert!(
            routes_reach(&cluster, i, 2, CATCH_UP_DEADLINE).await,
            "n{} never met both",
            i + 1
        );
    }
    cluster.cut(0, 2);
    assert!(
        routes_reach(&cluster, 0, 1, CATCH_UP_DEADLINE).await,
        "the cut did not close n1-n3"
    );
    cluster.restart(2).expect("restart n3");
    routes_reach(&cluster, 0, 2, Duration::from_secs(10)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_go_only_through_the_proxies_when_servers_advertise_a_refused_address() {
    let Some(binary) = binary_or_skip("nats route proxies") else {
        return;
    };
    // The control: with their real listeners advertised, gossip links n1
    // and n3 past the cut.
    assert!(
        cut_pair_leaks(&binary, Advertised::Listener).await,
        "no leak to prevent"
    );
    assert!(
        !cut_pair_leaks(&binary, Advertised::Refused).await,
        "a cut pair linked past the proxies"
    );
}
