//! The search: Wing & Gong's algorithm with Lowe's memoisation of
//! (set of linearized ops, model state), over a doubly linked list of call
//! and return entries in real-time order.
//!
//! An `info` op's return sits after every other entry: it may take effect
//! any time after its call, or never. Reaching the first such return means
//! every completed op is linearized, so the history is linearizable.

use super::model::SeqModel;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// One op as the search sees it.
#[derive(Debug, Clone)]
pub struct SearchOp<I> {
    /// Position of the call in real-time order.
    pub call: u64,
    /// Position of the return; `None` for `info`.
    pub ret: Option<u64>,
    /// The parsed op.
    pub input: I,
}

/// Limits shared by every key's search.
pub struct Limits {
    /// Give up after this instant.
    pub deadline: Instant,
    /// Give up when memoisation holds more than this many bytes in total.
    pub memory_bytes_max: u64,
    /// Bytes held by every search's cache.
    pub memory_bytes: AtomicU64,
    /// Set when any search gave up.
    pub exhausted: AtomicBool,
}

/// How a search ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A linearization exists.
    Linearizable,
    /// None exists: the longest linearized prefix found (op indexes in
    /// linearization order) and the ops that could not follow it.
    Violation {
        /// The prefix.
        prefix: Vec<usize>,
        /// Ops that were candidates after it and failed.
        stuck: Vec<usize>,
    },
    /// The budget ran out.
    Unknown,
}

const HEAD: usize = usize::MAX - 1;

struct Entries {
    next: Vec<usize>,
    prev: Vec<usize>,
    op: Vec<usize>,
    is_call: Vec<bool>,
    head_next: usize,
    call_of: Vec<usize>,
    ret_of: Vec<usize>,
    info: Vec<bool>,
}

impl Entries {
    fn build<I>(ops: &[SearchOp<I>]) -> Entries {
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, o) in ops.iter().enumerate() {
            order.push((o.call, true, i));
            order.push((o.ret.unwrap_or(u64::MAX), false, i));
        }
        // Calls before returns at equal positions (concurrent, the lenient
        // reading); info returns last, in call order.
        order.sort_by_key(|(pos, is_call, i)| (*pos, !*is_call, *i));
        let n = order.len();
        let mut e = Entries {
            next: (1..=n).collect(),
            prev: (0..n).map(|i| if i == 0 { HEAD } else { i - 1 }).collect(),
            op: order.iter().map(|o| o.2).collect(),
            is_call: order.iter().map(|o| o.1).collect(),
            head_next: if n == 0 { n } else { 0 },
            call_of: vec![0; ops.len()],
            ret_of: vec![0; ops.len()],
            info: ops.iter().map(|o| o.ret.is_none()).collect(),
        };
        for (idx, (_, is_call, i)) in order.iter().enumerate() {
            if *is_call {
                e.call_of[*i] = idx;
            } else {
                e.ret_of[*i] = idx;
            }
        }
        e
    }

    fn tail(&self) -> usize {
        self.op.len()
    }

    fn set_next(&mut self, at: usize, to: usize) {
        if at == HEAD {
            self.head_next = to;
        } else {
            self.next[at] = to;
        }
    }

    fn remove(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.set_next(p, n);
        if n != self.tail() {
            self.prev[n] = p;
        }
    }

    fn reinsert(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.set_next(p, x);
        if n != self.tail() {
            self.prev[n] = x;
        }
    }

    fn lift(&mut self, op: usize) {
        self.remove(self.call_of[op]);
        self.remove(self.ret_of[op]);
    }

    fn unlift(&mut self, op: usize) {
        self.reinsert(self.ret_of[op]);
        self.reinsert(self.call_of[op]);
    }
}

/// Memoised (linearized set, state) pairs, bucketed by a combined hash.
type Buckets<S> = HashMap<u64, Vec<(Box<[u64]>, S)>>;

struct Cache<S> {
    map: Buckets<S>,
    hasher: std::collections::hash_map::RandomState,
}

impl<S: Hash + Eq + Clone> Cache<S> {
    /// Inserts; true when the pair is new. `window` is the set's compact
    /// form (see [`Window`]).
    fn insert(&mut self, set_hash: u64, window: &[u64], state: &S) -> bool {
        let key = set_hash ^ self.hasher.hash_one(state);
        let bucket = self.map.entry(key).or_default();
        if bucket.iter().any(|(b, s)| **b == *window && s == state) {
            return false;
        }
        bucket.push((window.into(), state.clone()));
        true
    }
}

/// The linearized set as a bitset with its compact form: every word below
/// `lo` is all ones and every word above `hi` all zeros (linearization
/// sweeps forward in real time, so the set is nearly a prefix), so
/// `[lo, words lo..=hi]` identifies it in a few words instead of n/64.
struct Window {
    bits: Vec<u64>,
    lo: usize,
    hi: usize,
    compact: Vec<u64>,
}

impl Window {
    fn new(n: usize) -> Window {
        Window {
            bits: vec![0; n.div_ceil(64).max(1)],
            lo: 0,
            hi: 0,
            compact: Vec::new(),
        }
    }

    fn set(&mut self, op: usize) {
        self.bits[op / 64] |= 1 << (op % 64);
        self.hi = self.hi.max(op / 64);
        while self.lo < self.bits.len() - 1 && self.bits[self.lo] == u64::MAX {
            self.lo += 1;
        }
    }

    fn clear(&mut self, op: usize) {
        let w = op / 64;
        self.bits[w] &= !(1 << (op % 64));
        self.lo = self.lo.min(w);
        while self.hi > self.lo && self.bits[self.hi] == 0 {
            self.hi -= 1;
        }
    }

    fn compact(&mut self) -> &[u64] {
        self.compact.clear();
        self.compact.push(self.lo as u64);
        self.compact
            .extend_from_slice(&self.bits[self.lo..=self.hi.max(self.lo)]);
        &self.compact
    }
}

/// Zobrist values: a random 64-bit word per op, so a set's hash updates in
/// O(1).
fn zobrist(n: usize) -> Vec<u64> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect()
}

/// Searches for a linearization of `ops` under `model`.
pub fn search<M: SeqModel>(model: &M, ops: &[SearchOp<M::Input>], limits: &Limits) -> Outcome {
    let mut e = Entries::build(ops);
    let z = zobrist(ops.len());
    let mut bits = Window::new(ops.len());
    let mut set_hash = 0u64;
    let mut cache = Cache {
        map: HashMap::new(),
        hasher: Default::default(),
    };
    let entry_overhead = (std::mem::size_of::<M::State>() + 48) as u64;
    let mut held = 0u64;
    let mut state = model.init();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut best: (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
    let mut entry = e.head_next;
    let mut steps = 0u64;
    let outcome = loop {
        steps += 1;
        if steps % 256 == 0
            && (Instant::now() >= limits.deadline
                || limits.memory_bytes.load(Ordering::Relaxed) > limits.memory_bytes_max
                || limits.exhausted.load(Ordering::Relaxed))
        {
            limits.exhausted.store(true, Ordering::Relaxed);
            break Outcome::Unknown;
        }
        if entry == e.tail() {
            break Outcome::Linearizable;
        }
        let op = e.op[entry];
        if !e.is_call[entry] {
            if e.info[op] {
                break Outcome::Linearizable;
            }
            if stack.len() > best.0.len() || best.1.is_empty() {
                best = (
                    stack.iter().map(|(o, _)| *o).collect(),
                    candidates(&e, entry),
                );
            }
            let Some((undo, previous)) = stack.pop() else {
                break Outcome::Violation {
                    prefix: best.0,
                    stuck: best.1,
                };
            };
            bits.clear(undo);
            set_hash ^= z[undo];
            state = previous;
            e.unlift(undo);
            entry = e.next[e.call_of[undo]];
            continue;
        }
        if let Some(next_state) = model.step(&state, &ops[op].input) {
            bits.set(op);
            let window = bits.compact();
            let entry_bytes = entry_overhead + window.len() as u64 * 8;
            if cache.insert(set_hash ^ z[op], window, &next_state) {
                held += entry_bytes;
                limits
                    .memory_bytes
                    .fetch_add(entry_bytes, Ordering::Relaxed);
                set_hash ^= z[op];
                stack.push((op, std::mem::replace(&mut state, next_state)));
                e.lift(op);
                entry = e.head_next;
                continue;
            }
            bits.clear(op);
        }
        entry = e.next[entry];
    };
    limits.memory_bytes.fetch_sub(held, Ordering::Relaxed);
    outcome
}

/// The ops whose calls precede `ret` in the list, and `ret`'s own op.
fn candidates(e: &Entries, ret: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = e.head_next;
    while at != e.tail() && at != ret {
        if e.is_call[at] {
            out.push(e.op[at]);
        }
        at = e.next[at];
    }
    out.push(e.op[ret]);
    out.sort_unstable();
    out.dedup();
    out
}
