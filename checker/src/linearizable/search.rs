//! The search: Wing & Gong's algorithm with Lowe's memoisation of
//! (set of linearized ops, model state), over a doubly linked list of call
//! and return entries in real-time order.
//!
//! An `info` op's return sits after every other entry: it may take effect
//! any time after its call, or never. Reaching the first such return means
//! every completed op is linearized, so the history is linearizable.

use super::model::SeqModel;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    /// When the check began.
    pub started: Instant,
    /// Nanoseconds after `started` at which every search stops because a
    /// violation was found ([`Limits::violation_found`]); `u64::MAX` until
    /// then.
    pub stop_ns: AtomicU64,
    /// Nanoseconds after `started` at which the first violation was found;
    /// `u64::MAX` until then.
    pub first_violation_ns: AtomicU64,
}

impl Limits {
    /// Limits for a check that starts now.
    pub fn new(deadline: Instant, memory_bytes_max: u64) -> Limits {
        Limits {
            deadline,
            memory_bytes_max,
            memory_bytes: AtomicU64::new(0),
            exhausted: AtomicBool::new(false),
            started: Instant::now(),
            stop_ns: AtomicU64::new(u64::MAX),
            first_violation_ns: AtomicU64::new(u64::MAX),
        }
    }

    /// A key was found invalid, so the verdict is known: the other keys'
    /// searches get `grace` more, then stop (their keys stay undecided).
    pub fn violation_found(&self, grace: Duration) {
        let now = self.started.elapsed();
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.first_violation_ns
            .fetch_min(ns(now), Ordering::Relaxed);
        self.stop_ns.fetch_min(ns(now + grace), Ordering::Relaxed);
    }

    /// Whether the stop a violation set has come: a key not yet searched
    /// need not be.
    pub fn stopped_by_violation(&self) -> bool {
        let stop = self.stop_ns.load(Ordering::Relaxed);
        stop != u64::MAX && self.started.elapsed().as_nanos() >= u128::from(stop)
    }

    /// When the first violation was found, after `started`.
    pub fn first_violation(&self) -> Option<Duration> {
        let ns = self.first_violation_ns.load(Ordering::Relaxed);
        (ns != u64::MAX).then(|| Duration::from_nanos(ns))
    }

    /// Whether searches must stop now; sets `exhausted` when they must.
    fn exceeded(&self) -> bool {
        let now = Instant::now();
        let stop = self.stop_ns.load(Ordering::Relaxed);
        let out = now >= self.deadline
            || (stop != u64::MAX
                && now.duration_since(self.started).as_nanos() >= u128::from(stop))
            || self.memory_bytes.load(Ordering::Relaxed) > self.memory_bytes_max
            || self.exhausted.load(Ordering::Relaxed);
        if out {
            self.exhausted.store(true, Ordering::Relaxed);
        }
        out
    }
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

/// One memoised pair: its set's words in [`Cache::words`], its state's id
/// and the next entry with the same combined hash.
struct Entry {
    start: usize,
    len: u32,
    state: u32,
    next: u32,
}

/// Memoised (linearized set, state) pairs. Sets lie end to end in one
/// arena and each distinct state is kept once, so that millions of
/// entries are a handful of allocations: freeing a budget-sized memo one
/// entry at a time took seconds after the search had already given up.
struct Cache<S> {
    /// Per combined hash: the newest entry with it.
    heads: HashMap<u64, u32>,
    entries: Vec<Entry>,
    words: Vec<u64>,
    states: HashMap<S, u32>,
}

impl<S: Hash + Eq + Clone> Cache<S> {
    fn new() -> Cache<S> {
        Cache {
            heads: HashMap::new(),
            entries: Vec::new(),
            words: Vec::new(),
            states: HashMap::new(),
        }
    }

    /// Inserts; the bytes it took when the pair is new, `None` when it was
    /// there. `window` is the set's compact form (see [`Window`]);
    /// `state_bytes` is what a new state costs.
    fn insert(
        &mut self,
        set_hash: u64,
        window: &[u64],
        state: &S,
        state_bytes: usize,
    ) -> Option<u64> {
        let mut bytes = std::mem::size_of::<Entry>() + 16 + window.len() * 8;
        let fresh = self.states.len() as u32;
        let id = match self.states.get(state) {
            Some(id) => *id,
            None => {
                self.states.insert(state.clone(), fresh);
                bytes += state_bytes + 16;
                fresh
            }
        };
        let key = set_hash ^ u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let head = self.heads.get(&key).copied().unwrap_or(u32::MAX);
        let mut at = head;
        while at != u32::MAX {
            let e = &self.entries[at as usize];
            if e.state == id && self.words[e.start..e.start + e.len as usize] == *window {
                return None;
            }
            at = e.next;
        }
        self.heads.insert(key, self.entries.len() as u32);
        self.entries.push(Entry {
            start: self.words.len(),
            len: window.len() as u32,
            state: id,
            next: head,
        });
        self.words.extend_from_slice(window);
        Some(bytes as u64)
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

    fn has(&self, op: usize) -> bool {
        self.bits[op / 64] & (1 << (op % 64)) != 0
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

/// One linearized op on the search's stack.
struct Frame<S> {
    op: usize,
    /// The state before the op.
    previous: S,
    /// A read taken because it could go first: when its subtree fails, no
    /// sibling is tried (see [`search`]).
    forced: bool,
}

/// Ops the model can check ahead of time against a state (kv gets while
/// only appends can come between: [`SeqModel::may_still_step`]): the first
/// one not yet linearized, in return order, is checked after every step.
struct Guards {
    /// Guard ops (completed), by return.
    by_ret: Vec<usize>,
    /// Per guard: how many resets are called before its return (those may
    /// come before it, so until they are all linearized it proves nothing).
    resets_before: Vec<usize>,
    /// Reset ops (puts, completed or not), by call.
    resets: Vec<usize>,
    /// Per op: its place in `by_ret` / `resets`, or `usize::MAX`.
    guard_rank: Vec<usize>,
    reset_rank: Vec<usize>,
    /// Every guard before this one is linearized.
    first_open: usize,
    /// Every reset before this one is linearized.
    resets_done: usize,
}

impl Guards {
    fn new<M: SeqModel>(model: &M, ops: &[SearchOp<M::Input>]) -> Guards {
        let mut by_ret: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].ret.is_some() && model.is_guard(&ops[i].input))
            .collect();
        by_ret.sort_by_key(|&i| ops[i].ret);
        let mut resets: Vec<usize> = (0..ops.len())
            .filter(|&i| model.is_reset(&ops[i].input))
            .collect();
        resets.sort_by_key(|&i| ops[i].call);
        let resets_before = by_ret
            .iter()
            .map(|&g| resets.partition_point(|&r| Some(ops[r].call) < ops[g].ret))
            .collect();
        let rank = |list: &[usize]| {
            let mut r = vec![usize::MAX; ops.len()];
            list.iter().enumerate().for_each(|(k, &i)| r[i] = k);
            r
        };
        Guards {
            guard_rank: rank(&by_ret),
            reset_rank: rank(&resets),
            by_ret,
            resets_before,
            resets,
            first_open: 0,
            resets_done: 0,
        }
    }

    fn set(&mut self, op: usize, bits: &Window) {
        if self.guard_rank[op] == self.first_open {
            while self.first_open < self.by_ret.len() && bits.has(self.by_ret[self.first_open]) {
                self.first_open += 1;
            }
        }
        if self.reset_rank[op] == self.resets_done {
            while self.resets_done < self.resets.len() && bits.has(self.resets[self.resets_done]) {
                self.resets_done += 1;
            }
        }
    }

    fn clear(&mut self, op: usize) {
        self.first_open = self.first_open.min(self.guard_rank[op]);
        self.resets_done = self.resets_done.min(self.reset_rank[op]);
    }

    /// The first guard still to be linearized, when nothing can reset the
    /// state before it.
    fn next(&self) -> Option<usize> {
        let g = *self.by_ret.get(self.first_open)?;
        (self.resets_before[self.first_open] <= self.resets_done).then_some(g)
    }
}

/// Who still needs each value (registers, where values are told apart):
/// leaving a value whose only writer has taken effect, while a completed op
/// that observes it is not yet linearized, can never be undone, so that op
/// could never step: the step is pruned.
struct Observers {
    /// Per value: how many ops write it (the initial state counts as one).
    writers: Vec<u32>,
    /// Per value: completed ops observing it that are not yet linearized.
    waiting: Vec<u32>,
    /// Per op: the value it observes, when it is a completed observer.
    observes: Vec<Option<usize>>,
}

/// A value's slot: `null` is 0, interned value `i` is `i + 1`.
fn slot(v: Option<u32>) -> usize {
    v.map_or(0, |i| i as usize + 1)
}

impl Observers {
    fn new<M: SeqModel>(model: &M, ops: &[SearchOp<M::Input>]) -> Option<Observers> {
        let init = model.held(&model.init())?;
        let observed = |o: &SearchOp<M::Input>| match model.observes(&o.input).as_slice() {
            [v] if o.ret.is_some() => Some(slot(*v)),
            _ => None,
        };
        let observes: Vec<Option<usize>> = ops.iter().map(observed).collect();
        let slots = ops
            .iter()
            .flat_map(|o| {
                model
                    .writes(&o.input)
                    .into_iter()
                    .chain(model.observes(&o.input))
            })
            .map(slot)
            .chain([slot(init)])
            .max()
            .unwrap_or(0)
            + 1;
        let mut writers = vec![0u32; slots];
        let mut waiting = vec![0u32; slots];
        writers[slot(init)] += 1;
        for o in ops {
            if let Some(v) = model.writes(&o.input) {
                writers[slot(v)] += 1;
            }
        }
        for v in observes.iter().flatten() {
            waiting[*v] += 1;
        }
        Some(Observers {
            writers,
            waiting,
            observes,
        })
    }

    /// Whether leaving value `from` for `to` by linearizing `op` strands
    /// an observer of `from`.
    fn strands(&self, op: usize, from: Option<u32>, to: Option<u32>) -> bool {
        let from = slot(from);
        let own = u32::from(self.observes[op] == Some(from));
        from != slot(to) && self.writers[from] == 1 && self.waiting[from] > own
    }

    fn set(&mut self, op: usize) {
        if let Some(v) = self.observes[op] {
            self.waiting[v] -= 1;
        }
    }

    fn clear(&mut self, op: usize) {
        if let Some(v) = self.observes[op] {
            self.waiting[v] += 1;
        }
    }
}

/// The search's state: the entry list, the linearized set (bits, hash and
/// guards kept in step), the model state, the stack and the memo.
struct Search<'a, M: SeqModel> {
    model: &'a M,
    ops: &'a [SearchOp<M::Input>],
    e: Entries,
    z: Vec<u64>,
    bits: Window,
    set_hash: u64,
    guards: Guards,
    observers: Option<Observers>,
    cache: Cache<M::State>,
    held: u64,
    state: M::State,
    stack: Vec<Frame<M::State>>,
    best: (Vec<usize>, Vec<usize>),
}

impl<'a, M: SeqModel> Search<'a, M> {
    fn new(model: &'a M, ops: &'a [SearchOp<M::Input>]) -> Self {
        Search {
            model,
            ops,
            e: Entries::build(ops),
            z: zobrist(ops.len()),
            bits: Window::new(ops.len()),
            set_hash: 0,
            guards: Guards::new(model, ops),
            observers: Observers::new(model, ops),
            cache: Cache::new(),
            held: 0,
            state: model.init(),
            stack: Vec::new(),
            best: (Vec::new(), Vec::new()),
        }
    }

    fn mark(&mut self, op: usize) {
        self.bits.set(op);
        self.guards.set(op, &self.bits);
        if let Some(o) = &mut self.observers {
            o.set(op);
        }
        self.set_hash ^= self.z[op];
    }

    fn unmark(&mut self, op: usize) {
        self.bits.clear(op);
        self.guards.clear(op);
        if let Some(o) = &mut self.observers {
            o.clear(op);
        }
        self.set_hash ^= self.z[op];
    }

    /// Tries to linearize the op of call entry `entry` next. Returns the
    /// entry to look at next, or `None` when this node of the search is
    /// dead (a forced read's subtree is already known to fail).
    fn try_call(&mut self, entry: usize, limits: &Limits) -> Option<usize> {
        let op = self.e.op[entry];
        let input = &self.ops[op].input;
        let Some(next_state) = self.model.step(&self.state, input) else {
            return Some(self.e.next[entry]);
        };
        let read = self.model.is_read(input);
        if let (Some(o), Some(from), Some(to)) = (
            &self.observers,
            self.model.held(&self.state),
            self.model.held(&next_state),
        ) {
            if o.strands(op, from, to) {
                return Some(self.e.next[entry]);
            }
        }
        self.mark(op);
        let guarded = self
            .guards
            .next()
            .is_none_or(|g| self.model.may_still_step(&next_state, &self.ops[g].input));
        let state_bytes = self.model.state_bytes(&next_state);
        let window = self.bits.compact();
        let inserted = guarded
            .then(|| {
                self.cache
                    .insert(self.set_hash, window, &next_state, state_bytes)
            })
            .flatten();
        let Some(bytes) = inserted else {
            self.unmark(op);
            return if read && guarded {
                None
            } else {
                Some(self.e.next[entry])
            };
        };
        self.held += bytes;
        limits.memory_bytes.fetch_add(bytes, Ordering::Relaxed);
        let previous = std::mem::replace(&mut self.state, next_state);
        self.stack.push(Frame {
            op,
            previous,
            forced: read,
        });
        self.e.lift(op);
        Some(self.e.head_next)
    }

    /// Undoes frames up to and including the first that was a free choice;
    /// returns the entry after its call, or `None` when the stack empties.
    fn backtrack(&mut self) -> Option<usize> {
        loop {
            let frame = self.stack.pop()?;
            self.unmark(frame.op);
            self.state = frame.previous;
            self.e.unlift(frame.op);
            if !frame.forced {
                return Some(self.e.next[self.e.call_of[frame.op]]);
            }
        }
    }

    /// Keeps the deepest dead end as the violation's explanation.
    fn note_dead_end(&mut self, ret: usize) {
        if self.stack.len() > self.best.0.len() || self.best.1.is_empty() {
            self.best = (
                self.stack.iter().map(|f| f.op).collect(),
                candidates(&self.e, ret),
            );
        }
    }

    fn violation(&mut self) -> Outcome {
        let (prefix, stuck) = std::mem::take(&mut self.best);
        Outcome::Violation { prefix, stuck }
    }
}

/// A search's outcome and what it cost (the counters that found the
/// causes described at [`search`]).
pub struct Searched {
    /// How it ended.
    pub outcome: Outcome,
    /// Entries looked at.
    pub steps: u64,
    /// (set, state) pairs memoised.
    pub memo_entries: u64,
}

/// Searches for a linearization of `ops` under `model`.
///
/// Three prunings keep the search from enumerating orders that cannot
/// matter, found by profiling the bench's worst cases with the step and
/// memo counters (issue 15). Each only removes branches, so a
/// linearization found is always a real one; each removes only branches
/// with no linearization below them, or with another branch that has one.
///
/// - **Reads go first.** With 20 processes on one cas-register each point
///   of the search had ~20 ops in its window, and Wing & Gong tried their
///   subsets: 50,000 ops took 105 million steps and 13 million memo
///   entries (57 s, 2.4 GB), most of them subsets of reads of one value. A
///   read that can step now is linearized now, and if its subtree fails no
///   sibling is tried: in any linearization from here the read sits later,
///   where the state is the one it returns; moving it here changes no
///   other op's state (a read changes none), and real time allows it,
///   since no op still to be linearized returned before the read's call
///   (that is what being in the window means). This halved the steps.
/// - **A value is not left while it is still needed** ([`Observers`],
///   registers). The other half were writes linearized before a pending
///   read of the value they overwrote, refuted only at that read's return.
///   When a value's only writer has taken effect, the state can never hold
///   it again once it changes, so a step that changes it while a completed
///   read or cas of it is not yet linearized is pruned. Together: 181,000
///   steps, 0.6 s, 58 MB.
/// - **Guards** (kv gets, see [`Guards`]). With appends the state is the
///   whole string, so every order of the window's appends is a distinct
///   memo entry; a wrong order was found out only at the return of the get
///   that contradicts it, after exploring everything in between (10 keys,
///   2,000 ops, 50 processes: 30 s and 5 GB, 3 keys unknown). Between
///   resets the state only grows, so every get still to come must read an
///   extension of it: the first such get (by return) is checked after each
///   step, and a step that cannot lead to it is pruned at once (~400 steps
///   a key, 7 ms in all).
pub fn search<M: SeqModel>(model: &M, ops: &[SearchOp<M::Input>], limits: &Limits) -> Searched {
    let mut s = Search::new(model, ops);
    let mut entry = s.e.head_next;
    let mut steps = 0u64;
    let outcome = loop {
        steps += 1;
        if steps % 256 == 0 && limits.exceeded() {
            break Outcome::Unknown;
        }
        if entry == s.e.tail() {
            break Outcome::Linearizable;
        }
        let next = if s.e.is_call[entry] {
            s.try_call(entry, limits)
        } else if s.e.info[s.e.op[entry]] {
            break Outcome::Linearizable;
        } else {
            s.note_dead_end(entry);
            None
        };
        match next.or_else(|| s.backtrack()) {
            Some(n) => entry = n,
            None => break s.violation(),
        }
    };
    limits.memory_bytes.fetch_sub(s.held, Ordering::Relaxed);
    Searched {
        outcome,
        steps,
        memo_entries: s.cache.entries.len() as u64,
    }
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
