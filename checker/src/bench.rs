//! `checker bench`: the linearizability and ordering checkers on seeded
//! generated histories, printing what they measured (time, peak memory,
//! verdict, keys decided).

use clap::Args;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::io::Write as _;
use std::process::ExitCode;

/// `checker bench` flags.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Seed of the generated histories.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Skip the 1,000,000-op kv history (it takes a while to generate).
    #[arg(long)]
    quick: bool,
    /// Run only the histories whose name contains this text.
    #[arg(long)]
    only: Option<String>,
    /// Also keep each generated history in this directory (named after the
    /// history), to judge or inspect it again.
    #[arg(long)]
    save_dir: Option<std::path::PathBuf>,
    /// Budget per history, seconds.
    #[arg(long, default_value_t = 30)]
    time_limit_s: u64,
}

/// A process's op in flight: key, f, argument, result, taken effect?
type Pending = (u64, String, Value, Value, bool);

/// Which operations a generated history holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// read / write / cas on integers.
    Register,
    /// get / put / append on strings.
    KvPut,
    /// get / append on strings (Jepsen's and Porcupine's append workload).
    KvAppend,
}

/// A seeded linearizable history: `processes` clients over `keys` keys,
/// `ops` operations, a fraction `info` of the writes crashing (their effect
/// applied or not).
pub fn generate(
    seed: u64,
    processes: u64,
    keys: u64,
    ops: usize,
    info: f64,
    mix: Mix,
) -> Vec<Value> {
    let kv = mix != Mix::Register;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut state: Vec<Value> = vec![if kv { json!("") } else { Value::Null }; keys as usize];
    // Per process: (current pid, pending op: key, f, arg, result, effective?).
    let mut pid: Vec<u64> = (0..processes).collect();
    let mut pending: Vec<Option<Pending>> = vec![None; processes as usize];
    let mut out = Vec::with_capacity(ops * 2);
    let mut next = 0u64;
    let mut started = 0usize;
    let mut t = 0u64;
    while started < ops || pending.iter().any(Option::is_some) {
        t += rng.gen_range(1..1000);
        let p = rng.gen_range(0..processes) as usize;
        let Some((key, f, arg, _, effective)) = pending[p].clone() else {
            if started >= ops {
                continue;
            }
            started += 1;
            let key = rng.gen_range(0..keys);
            next += 1;
            let (f, arg) = match (mix, rng.gen_range(0..3)) {
                (Mix::KvPut | Mix::KvAppend, 0) => ("get", Value::Null),
                (Mix::KvPut, 1) => ("put", json!(format!("{next},"))),
                (Mix::KvPut | Mix::KvAppend, _) => ("append", json!(format!("{next},"))),
                (Mix::Register, 0) => ("read", Value::Null),
                (Mix::Register, 1) => ("write", json!(next)),
                (Mix::Register, _) => ("cas", json!([state[key as usize].clone(), next])),
            };
            out.push(json!({"process": pid[p], "type": "invoke", "f": f, "key": key, "value": arg, "time": t}));
            pending[p] = Some((key, f.to_string(), arg, Value::Null, false));
            continue;
        };
        let k = key as usize;
        if !effective {
            let result = match f.as_str() {
                "read" | "get" => state[k].clone(),
                "write" | "put" => {
                    state[k] = arg.clone();
                    arg.clone()
                }
                "append" => {
                    state[k] = json!(format!(
                        "{}{}",
                        state[k].as_str().unwrap_or(""),
                        arg.as_str().unwrap_or("")
                    ));
                    arg.clone()
                }
                _ if state[k] == arg[0] => {
                    state[k] = arg[1].clone();
                    arg.clone()
                }
                _ => {
                    out.push(json!({"process": pid[p], "type": "fail", "f": f, "key": key, "value": arg, "time": t}));
                    pending[p] = None;
                    continue;
                }
            };
            pending[p] = Some((key, f, arg, result, true));
            continue;
        }
        let result = pending[p].take().expect("pending").3;
        if f != "read" && f != "get" && rng.gen_bool(info) {
            out.push(json!({"process": pid[p], "type": "info", "f": f, "key": key, "value": arg, "time": t}));
            pid[p] += processes;
        } else {
            out.push(json!({"process": pid[p], "type": "ok", "f": f, "key": key, "value": result, "time": t}));
        }
    }
    out
}

/// Makes one late read return a value that was overwritten before it began.
pub fn inject_stale_read(rows: &mut [Value]) -> bool {
    let ok_write = |r: &Value| r["type"] == "ok" && r["f"] == "write";
    let writes: Vec<usize> = (0..rows.len()).filter(|&i| ok_write(&rows[i])).collect();
    if writes.len() < 3 {
        return false;
    }
    let w1 = writes[writes.len() / 3];
    let value = rows[w1]["value"].clone();
    for i in (w1 + 1..rows.len()).rev() {
        if rows[i]["type"] == "ok" && rows[i]["f"] == "read" && rows[i]["value"] != value {
            rows[i]["value"] = value;
            return true;
        }
    }
    false
}

/// Which kind of chain an ordering history is generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// ordeal-node's hash-chained blocks; reads during the run carry
    /// headers only.
    Hashes,
    /// NATS JetStream's stream: one message per position from 1, no
    /// hashes, every read with its messages, acknowledgements naming their
    /// position (`"chain": "positions"`).
    Positions,
}

/// The chain an ordering history is generated against: full blocks, and
/// the transactions waiting to be cut into the next one (a stream takes
/// each message at once).
struct Ledger {
    chain: Chain,
    blocks: Vec<Value>,
    batch: Vec<(String, String)>,
}

impl Ledger {
    fn new(chain: Chain) -> Ledger {
        let blocks = match chain {
            Chain::Hashes => vec![checker::ordering::block_json(0, &"0".repeat(64), &[])],
            Chain::Positions => Vec::new(),
        };
        Ledger {
            chain,
            blocks,
            batch: Vec::new(),
        }
    }

    /// Takes a transaction that will be ordered: into the next block, or
    /// at once at the stream's next position, which it returns.
    fn take(&mut self, id: &str) -> Option<u64> {
        let payload = format!("payload-{id}");
        match self.chain {
            Chain::Hashes => {
                self.batch.push((id.to_string(), payload));
                None
            }
            Chain::Positions => {
                let number = self.blocks.len() as u64 + 1;
                let position = checker::ordering::position_json(number, id, &payload);
                self.blocks.push(position);
                Some(number)
            }
        }
    }

    fn cut(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let last = self.blocks.last().expect("the genesis block");
        let previous = last["hash"].as_str().unwrap_or("").to_string();
        let number = self.blocks.len() as u64;
        let block = checker::ordering::block_json(number, &previous, &self.batch);
        self.blocks.push(block);
        self.batch.clear();
    }

    /// How many blocks every read holds at least: the genesis block of a
    /// hashed chain.
    fn genesis(&self) -> usize {
        usize::from(self.chain == Chain::Hashes)
    }

    /// The number of the chain's first block.
    fn first_number(&self) -> usize {
        match self.chain {
            Chain::Hashes => 0,
            Chain::Positions => 1,
        }
    }

    /// A read during the run of the newest `n` blocks of the first
    /// `height`: headers only in a hashed chain.
    fn recent(&self, height: usize, n: usize) -> Value {
        let from = height.saturating_sub(n);
        let blocks = &self.blocks[from..height];
        match self.chain {
            Chain::Hashes => {
                let headers: Vec<Value> = blocks
                    .iter()
                    .map(|b| {
                        let mut h = b.clone();
                        h.as_object_mut().map(|o| o.remove("txs"));
                        h
                    })
                    .collect();
                json!({"from": from, "blocks": headers})
            }
            Chain::Positions => {
                json!({"from": from + 1, "blocks": blocks, "chain": "positions"})
            }
        }
    }

    /// A final read of the whole chain's first `height` blocks.
    fn whole(&self, height: usize) -> Value {
        let mut value =
            json!({"from": self.first_number(), "blocks": &self.blocks[..height], "final": true});
        if self.chain == Chain::Positions {
            value["chain"] = json!("positions");
        }
        value
    }
}

/// A seeded valid ordering history (`docs/ordering-history.md`):
/// `processes` clients, process `p` talking to node `p mod nodes`, submit
/// unique transactions (1% `fail`, 1% `info` of which half took effect);
/// one op in ten is a `deliver` of the 20 newest blocks its node has
/// (nodes lag by up to two blocks; headers only in a hashed chain). In a
/// hashed chain a submit is acknowledged once its block is cut; in a
/// positions chain its position is taken at its invoke and named in its
/// `ok`. Then a final read of every node's whole chain.
pub fn ordering_history(
    seed: u64,
    ops: usize,
    processes: u64,
    nodes: u64,
    chain: Chain,
) -> Vec<Value> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ledger = Ledger::new(chain);
    let mut pending: Vec<Option<(String, &str, Option<u64>)>> = vec![None; processes as usize];
    let mut pid: Vec<u64> = (0..processes).collect();
    let (mut out, mut started, mut t) = (Vec::with_capacity(ops * 2 + 8), 0, 0u64);
    let node_of = |p: usize| format!("n{}", p as u64 % nodes + 1);
    while started < ops || pending.iter().any(Option::is_some) {
        t += rng.gen_range(1_000..100_000);
        let p = rng.gen_range(0..processes) as usize;
        let node = node_of(p);
        if rng.gen_range(0..8) == 0 {
            ledger.cut();
        }
        let Some((id, outcome, position)) = pending[p].take() else {
            if started >= ops {
                continue;
            }
            started += 1;
            let (f, arg) = if rng.gen_range(0..10) == 0 {
                pending[p] = Some((String::new(), "deliver", None));
                ("deliver", json!({"recent": 20}))
            } else {
                let id = format!("s{seed:x}-t{started}");
                let outcome = match rng.gen_range(0..200) {
                    0 | 1 => "fail",
                    2 => "info",
                    3 => "info-lost",
                    _ => "ok",
                };
                let position = if outcome != "fail" && outcome != "info-lost" {
                    ledger.take(&id)
                } else {
                    None
                };
                pending[p] = Some((id.clone(), outcome, position));
                ("submit", json!(id))
            };
            out.push(json!({"process": pid[p], "type": "invoke", "f": f, "value": arg, "time": t, "node": node}));
            continue;
        };
        let mut row = completion(&mut ledger, &mut rng, (id, outcome, position));
        row["process"] = json!(pid[p]);
        row["time"] = json!(t);
        row["node"] = json!(node);
        out.push(row);
        if outcome.starts_with("info") {
            pid[p] += processes;
        }
    }
    ledger.cut();
    final_reads(&mut out, &ledger, nodes, t);
    out
}

/// The completion of a pending op (id, outcome, position), without its
/// process, time and node: a read of the newest blocks lagging by up to
/// two, or a submit's end (an `ok` cuts its block, or names its position).
fn completion(
    ledger: &mut Ledger,
    rng: &mut ChaCha8Rng,
    (id, outcome, position): (String, &str, Option<u64>),
) -> Value {
    match outcome {
        "deliver" => {
            let lag = rng
                .gen_range(0..3)
                .min(ledger.blocks.len() - ledger.genesis());
            json!({"type": "ok", "f": "deliver", "value": ledger.recent(ledger.blocks.len() - lag, 20)})
        }
        "ok" => {
            if ledger.batch.iter().any(|(i, _)| *i == id) {
                ledger.cut();
            }
            let value = match position {
                Some(n) => json!({"id": id, "position": n}),
                None => json!(id),
            };
            json!({"type": "ok", "f": "submit", "value": value})
        }
        "fail" => json!({"type": "fail", "f": "submit", "value": id}),
        _ => json!({"type": "info", "f": "submit", "value": id}),
    }
}

/// A final read of every node's whole chain; the last node lags by two
/// blocks.
fn final_reads(out: &mut Vec<Value>, ledger: &Ledger, nodes: u64, mut t: u64) {
    for n in 0..nodes {
        let process = 1_000_000 + n;
        let node = format!("n{}", n + 1);
        let lag = if n + 1 == nodes && nodes > 1 { 2 } else { 0 };
        let height = ledger
            .blocks
            .len()
            .saturating_sub(lag)
            .max(ledger.genesis());
        t += 1_000;
        out.push(json!({"process": process, "type": "invoke", "f": "deliver", "value": {"from": ledger.first_number(), "final": true}, "time": t, "node": node}));
        t += 1_000_000;
        out.push(json!({"process": process, "type": "ok", "f": "deliver",
            "value": ledger.whole(height), "time": t, "node": node}));
    }
}

/// One op of a generated history: where its invoke and completion rows are.
struct Span {
    key: u64,
    f: String,
    invoke: usize,
    complete: usize,
}

/// The ok ops of `rows` (invoke and completion row), in completion order.
fn ok_spans(rows: &[Value]) -> Vec<Span> {
    let mut open: std::collections::HashMap<u64, usize> = Default::default();
    let mut out = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let p = r["process"].as_u64().unwrap_or(u64::MAX);
        match r["type"].as_str() {
            Some("invoke") => {
                open.insert(p, i);
            }
            Some("ok") => {
                if let Some(invoke) = open.remove(&p) {
                    out.push(Span {
                        key: r["key"].as_u64().unwrap_or(0),
                        f: r["f"].as_str().unwrap_or("").to_string(),
                        invoke,
                        complete: i,
                    });
                }
            }
            _ => {
                open.remove(&p);
            }
        }
    }
    out
}

/// Makes one get in the middle of each of `keys` non-linearizable, in one
/// of three ways (by the key's place in `keys`): it loses a chunk an
/// earlier completed get saw, it swaps two such chunks, or it returns the
/// value of an earlier get although an append (or put) invoked after that
/// get completed before it began. Each is a violation whatever the rest of
/// the history (every appended or put chunk is unique, so a state never
/// recurs). Returns the keys changed.
pub fn inject_kv_anomalies(rows: &mut [Value], keys: &[u64]) -> Vec<u64> {
    let spans = ok_spans(rows);
    let mut changed = Vec::new();
    for (n, &key) in keys.iter().enumerate() {
        let mine: Vec<&Span> = spans.iter().filter(|s| s.key == key).collect();
        let gets: Vec<&Span> = mine.iter().copied().filter(|s| s.f == "get").collect();
        let value = |s: &Span| rows[s.complete]["value"].as_str().unwrap_or("").to_string();
        // From the middle on, the first get with a usable earlier get.
        let found = gets[gets.len() / 2..].iter().find_map(|g| {
            let mut earlier = gets.iter().filter(|g0| g0.complete < g.invoke);
            let pick = if n % 3 == 2 {
                earlier.rfind(|g0| {
                    mine.iter()
                        .any(|a| a.f != "get" && a.invoke > g0.complete && a.complete < g.invoke)
                })
            } else {
                // `g` must extend what `g0` saw (no put in between).
                earlier.rfind(|g0| {
                    value(g0).matches(',').count() >= 3 && value(g).starts_with(&value(g0))
                })
            };
            pick.map(|g0| (g.complete, value(g0), value(g)))
        });
        let Some((row, seen, now)) = found else {
            continue;
        };
        let chunks: Vec<&str> = seen.split_inclusive(',').collect();
        let rest = &now[seen.len()..];
        let m = chunks.len() / 2;
        let bad = match n % 3 {
            0 => [&chunks[..m], &chunks[m + 1..]].concat().concat() + rest,
            1 => {
                let mut c = chunks.clone();
                c.swap(m - 1, m);
                c.concat() + rest
            }
            _ => seen.clone(),
        };
        rows[row]["value"] = json!(bad);
        changed.push(key);
    }
    changed
}

/// A key-value history from 50 clients where the verdict is known long
/// before every key is decided (the shape of Porcupine's 50-client bad
/// key-value history, issue 33): 25 processes append to 10 keys (1,000
/// ops, key 1 made non-linearizable), 25 others put and append on keys 100
/// and 101 (200 ops, 10% `info`), whose search takes seconds (3.9 s for
/// both when valid, on the 2-core machine).
fn kv_invalid_with_hard_keys(seed: u64) -> Vec<Value> {
    let mut easy = generate(seed, 25, 10, 1_000, 0.0, Mix::KvAppend);
    let bad = inject_kv_anomalies(&mut easy, &[1]);
    assert_eq!(bad, [1], "the kv history has room for the anomaly");
    let hard = generate(seed + 1, 25, 2, 200, 0.1, Mix::KvPut);
    merge(easy, hard, 100)
}

/// Two histories as one: `b`'s processes and keys moved past `a`'s (keys
/// by `key_offset`), the events of both in time order.
fn merge(a: Vec<Value>, b: Vec<Value>, key_offset: u64) -> Vec<Value> {
    let past = |rows: &[Value]| {
        1 + rows
            .iter()
            .filter_map(|r| r["process"].as_u64())
            .max()
            .unwrap_or(0)
    };
    let process_offset = past(&a).max(past(&b));
    let b = b.into_iter().map(|mut r| {
        r["process"] = json!(r["process"].as_u64().unwrap_or(0) + process_offset);
        r["key"] = json!(r["key"].as_u64().unwrap_or(0) + key_offset);
        r
    });
    let mut out: Vec<Value> = a.into_iter().chain(b).collect();
    // Stable: each history's own order is kept among equal times.
    out.sort_by_key(|r| r["time"].as_u64().unwrap_or(0));
    out
}

/// Writes the rows as a history file, so that measuring reads it the way
/// the CLI does (streaming) with the generator's memory already freed.
fn write_file(rows: &[Value]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("a temp file");
    {
        let mut w = std::io::BufWriter::new(file.as_file_mut());
        for (i, r) in rows.iter().enumerate() {
            let mut r = r.clone();
            r["index"] = json!(i);
            writeln!(w, "{r}").expect("writing the history");
        }
    }
    file
}

/// A generated history written to a file, ready to be judged.
struct Measured<'a> {
    name: &'a str,
    file: tempfile::NamedTempFile,
    /// Its invokes: the op count when the checker gives none (ordering).
    invokes: u64,
}

/// How the linearizability checker is run: its default (stop at the first
/// invalid key) or `--all-keys`.
const MODES: [&str; 2] = ["first-invalid-key", "all-keys"];

/// Checks the history in `file` the way a user would: judged by this
/// binary's `linearizable --json` (in `mode`, one of [`MODES`]) or
/// `ordering --json` in a child process, so that the figures (parse and
/// check time, peak memory) are the checker's own and not the generator's.
/// Prints and returns one JSON line.
fn measure(case: &Measured, model: &str, mode: &str, time_limit_s: u64) -> Value {
    let exe = std::env::current_exe().expect("the checker binary's path");
    let mut command = std::process::Command::new(exe);
    if model == "ordering" {
        command.args(["ordering", "--json"]);
    } else {
        command
            .args(["linearizable", "--json", "--model", model, "--time-limit-s"])
            .arg(time_limit_s.to_string());
        if mode == "all-keys" {
            command.arg("--all-keys");
        }
    }
    let output = command
        .arg(case.file.path())
        .output()
        .expect("running the checker");
    let text = String::from_utf8_lossy(&output.stdout);
    let got: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "the checker printed no JSON line ({e}): {text} {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let counts = &got["counts"];
    let ops = counts["ops"].as_u64().unwrap_or(case.invokes);
    let check_s = got["check_ms"].as_f64().unwrap_or(f64::NAN) / 1e3;
    let first_violation_s = got["first_violation_ms"].as_f64().map(|ms| ms / 1e3);
    let mode = if model == "ordering" {
        Value::Null
    } else {
        json!(mode)
    };
    let line = json!({"history": case.name, "mode": mode, "ops": ops, "valid": got["valid"],
        "first_violation_s": first_violation_s, "keys_decided": counts["keys-decided"],
        "parse_s": got["parse_ms"].as_f64().unwrap_or(f64::NAN) / 1e3, "check_s": check_s,
        "ops_per_s": ops as f64 / check_s.max(1e-9), "peak_rss_mb": got["peak_rss_mb"],
        "info_dropped": counts["info-dropped-by-reduction"], "info_kept": counts["info-kept"],
        "keys": counts["keys"], "keys_invalid": counts["keys-invalid"], "keys_unknown": counts["keys-unknown"]});
    let mut line = line;
    if let Some(fields) = line.as_object_mut() {
        // Ordering results have no keys or info counts.
        fields.retain(|_, v| !v.is_null());
    }
    println!("{line}");
    line
}

/// A bench case: its name, the model it is judged under, its time limit
/// (seconds) and how to generate it.
type Case = (&'static str, &'static str, u64, Box<dyn Fn() -> Vec<Value>>);

/// The ordering histories' sizes: ops, nodes, the seed's offset, and the
/// names of the two cases of that size (the second needs no `--quick`).
type OrderingSize = (usize, u64, u64, [&'static str; 2]);
const ORDERING_SIZES: [OrderingSize; 2] = [
    (
        20_000,
        3,
        5,
        [
            "ordering 20k ops, 30 processes, 3 nodes",
            "ordering positions (NATS) 20k ops, 30 processes, 3 nodes",
        ],
    ),
    (
        215_000,
        5,
        6,
        [
            "ordering 215k ops, 30 processes, 5 nodes",
            "ordering positions (NATS) 215k ops, 30 processes, 5 nodes",
        ],
    ),
];

/// Two ordering cases of one size from one seed, 30 processes: a hashed
/// chain (ordeal-node's) and a chain of positions (NATS's).
fn ordering_pair(size: &OrderingSize, seed: u64, limit: u64) -> [Case; 2] {
    let &(ops, nodes, offset, names) = size;
    let case = |name, chain| -> Case {
        let make = move || ordering_history(seed + offset, ops, 30, nodes, chain);
        (name, "ordering", limit, Box::new(make))
    };
    [
        case(names[0], Chain::Hashes),
        case(names[1], Chain::Positions),
    ]
}

/// The bench's histories, seeded from `args.seed`.
fn cases(args: &BenchArgs) -> Vec<Case> {
    let s = args.seed;
    let limit = args.time_limit_s;
    let mut cases: Vec<Case> = vec![
        (
            "cas-register 10k ops, 10 processes, 5% info",
            "cas-register",
            limit,
            Box::new(move || generate(s, 10, 1, 10_000, 0.05, Mix::Register)),
        ),
        (
            "cas-register 10k ops, 5% info, one stale read",
            "cas-register",
            limit,
            Box::new(move || {
                let mut rows = generate(s, 10, 1, 10_000, 0.05, Mix::Register);
                assert!(inject_stale_read(&mut rows), "room for a stale read");
                rows
            }),
        ),
        (
            "cas-register 50k ops, 10 processes, 2% info",
            "cas-register",
            limit,
            Box::new(move || generate(s + 1, 10, 1, 50_000, 0.02, Mix::Register)),
        ),
        (
            "kv appends 10 keys, 2k ops, 50 processes, 3 keys invalid",
            "kv",
            limit,
            Box::new(move || {
                let mut rows = generate(s + 3, 50, 10, 2_000, 0.0, Mix::KvAppend);
                assert_eq!(inject_kv_anomalies(&mut rows, &[1, 4, 7]), [1, 4, 7]);
                rows
            }),
        ),
        (
            "kv 50 processes, 12 keys, 1 invalid, 2 keys needing seconds of search",
            "kv",
            limit,
            Box::new(move || kv_invalid_with_hard_keys(s + 7)),
        ),
        (
            "cas-register 50k ops, 20 processes, 2% info",
            "cas-register",
            limit,
            Box::new(move || generate(s + 4, 20, 1, 50_000, 0.02, Mix::Register)),
        ),
        (
            "adversarial: 40 concurrent info writes of 20 values, reads needing more (budget 5 s)",
            "cas-register",
            5,
            Box::new(adversarial),
        ),
    ];
    cases.extend(ordering_pair(&ORDERING_SIZES[0], s, limit));
    if !args.quick {
        cases.extend(ordering_pair(&ORDERING_SIZES[1], s, limit));
        cases.push((
            "kv 1000 keys, 1M ops, 10 processes",
            "kv",
            limit,
            Box::new(move || generate(s + 2, 10, 1000, 1_000_000, 0.01, Mix::KvPut)),
        ));
    }
    cases
}

/// Runs the bench.
pub fn run(args: BenchArgs) -> ExitCode {
    for (name, model, time_limit_s, make) in cases(&args) {
        if args
            .only
            .as_ref()
            .is_some_and(|only| !name.contains(only.as_str()))
        {
            continue;
        }
        let rows = make();
        let case = Measured {
            name,
            file: write_file(&rows),
            invokes: rows.iter().filter(|r| r["type"] == "invoke").count() as u64,
        };
        drop(rows);
        if let Some(dir) = &args.save_dir {
            let slug: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let path = dir.join(format!("{slug}.jsonl"));
            if let Err(e) = std::fs::copy(case.file.path(), &path) {
                eprintln!("checker bench: cannot keep {}: {e}", path.display());
                return ExitCode::from(3);
            }
        }
        let modes: &[&str] = if model == "ordering" {
            &MODES[..1]
        } else {
            &MODES
        };
        for mode in modes {
            measure(&case, model, mode, time_limit_s);
        }
    }
    ExitCode::SUCCESS
}

/// Writes that never complete, each value written by two of them, and
/// sequential reads that change value more often than there are writes: no
/// linearization exists, but values that repeat defeat the reductions that
/// tell values apart, so the search must try many orders (the budget runs
/// out: the line shows that an exhausted budget is `unknown`).
fn adversarial() -> Vec<Value> {
    let mut rows = Vec::new();
    let mut t = 0;
    let n = 40u64;
    for p in 0..n {
        t += 1;
        rows.push(
            json!({"process": p, "type": "invoke", "f": "write", "value": p % (n / 2), "time": t}),
        );
    }
    for round in 0..3u64 {
        for p in 0..n {
            t += 1;
            let r = 1000 + round * n + p;
            let seen = if round == 2 && p == n - 1 {
                0
            } else {
                (p * 7 + round) % n % (n / 2)
            };
            rows.push(
                json!({"process": r, "type": "invoke", "f": "read", "value": null, "time": t}),
            );
            rows.push(
                json!({"process": r, "type": "ok", "f": "read", "value": seen, "time": t + 1}),
            );
            t += 1;
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::linearizable::{check_history, Budget, Model};
    use checker::verdict::Validity;

    fn judge(rows: &[Value]) -> Vec<(String, Validity)> {
        let text: String = rows.iter().map(|r| r.to_string() + "\n").collect();
        let history = checker::history::read_history(text.as_bytes()).expect("a valid history");
        let report = check_history(&history, Model::Kv, Budget::default());
        report
            .keys
            .iter()
            .map(|k| {
                (
                    k.key.as_ref().map(Value::to_string).unwrap_or_default(),
                    k.valid,
                )
            })
            .collect()
    }

    #[test]
    fn a_generated_ordering_history_is_valid_and_a_lost_transaction_is_found() {
        for chain in [Chain::Hashes, Chain::Positions] {
            let rows = ordering_history(3, 3_000, 10, 3, chain);
            let text: String = rows.iter().map(|r| r.to_string() + "\n").collect();
            let r = checker::ordering::check_reader(text.as_bytes()).expect("a valid history");
            assert_eq!(r.valid, Validity::Valid, "{chain:?}: {:?}", r.anomalies);
            for count in ["acknowledged", "info-found", "info-not-found", "deliveries"] {
                assert!(r.counts[count] > 0, "{chain:?}: {count}: {:?}", r.counts);
            }
            let positions = r.counts.get("acknowledged-with-position");
            assert_eq!(
                positions.is_some(),
                chain == Chain::Positions,
                "{:?}",
                r.counts
            );
            // Acknowledge a submit that failed: it is not in the chain.
            let failed = text.find("\"type\":\"fail\"").expect("a failed submit");
            let lost = format!("{}\"type\":\"ok\"{}", &text[..failed], &text[failed + 13..]);
            let r = checker::ordering::check_reader(lost.as_bytes()).expect("a valid history");
            let lost = r.anomalies.iter().find(|a| a.kind == "lost").unwrap();
            assert_eq!((r.valid, lost.count), (Validity::Invalid, 1), "{chain:?}");
        }
    }

    #[test]
    fn the_kv_anomalies_make_exactly_their_keys_invalid() {
        let mut rows = generate(7, 50, 10, 2_000, 0.0, Mix::KvAppend);
        let clean = judge(&rows);
        assert!(
            clean.iter().all(|(_, v)| *v == Validity::Valid),
            "{clean:?}"
        );
        assert_eq!(inject_kv_anomalies(&mut rows, &[1, 4, 7]), [1, 4, 7]);
        let keys = judge(&rows);
        assert_eq!(keys.len(), 10);
        for (key, valid) in keys {
            let expected = if ["1", "4", "7"].contains(&key.as_str()) {
                Validity::Invalid
            } else {
                Validity::Valid
            };
            assert_eq!(valid, expected, "key {key}");
        }
    }
}
