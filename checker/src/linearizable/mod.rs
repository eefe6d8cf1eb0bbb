//! The linearizability checker.
//!
//! Per key (P-compositionality, keys in parallel across cores): parse the
//! key's ops into the model, drop `fail` ops, apply sound reductions to
//! `info` ops, look for a cheap witness of a violation, then search.
//!
//! Reductions (each keeps the verdict unchanged):
//! - an `info` read constrains nothing: whether it happened or not, no
//!   state changes, and it need not be linearized — dropped;
//! - an `info` write or cas whose written value no op observes (no read
//!   returns it, no cas expects it) can be taken never to have happened:
//!   if a linearization places it, nothing between it and the next write
//!   observes its value, so removing it leaves a linearization — dropped.
//!
//! The search prunes orders that cannot matter (reads go first, a value is
//! not left while a completed op still needs it, kv gets guard appends:
//! see `search::search` for why each is sound and what it fixed). Once a
//! key is invalid the verdict is known: with [`Scope::FirstInvalidKey`]
//! the check stops there, with [`Scope::AllKeys`] (what [`check_history`]
//! does) the other keys get [`AFTER_VIOLATION`] more; either way the keys
//! still undecided are named.

mod model;
mod picture;
mod search;
mod witness;

pub use model::{Interner, Kv, KvInput, Register, RegisterInput, SeqModel};
pub use search::Outcome;

use crate::history::{EventType, History, Op};
use crate::verdict::{Anomaly, CheckResult, Validity};
use rayon::prelude::*;
use search::{Limits, SearchOp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Which sequential model to check against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// read / write.
    Register,
    /// read / write / cas.
    CasRegister,
    /// get / put / append on strings.
    Kv,
}

impl FromStr for Model {
    type Err = String;
    fn from_str(s: &str) -> Result<Model, String> {
        match s {
            "register" => Ok(Model::Register),
            "cas-register" => Ok(Model::CasRegister),
            "kv" => Ok(Model::Kv),
            other => Err(format!(
                "unknown model `{other}` (expected register, cas-register or kv)"
            )),
        }
    }
}

/// Once a key is found invalid the verdict is known: with
/// [`Scope::AllKeys`] the other keys' searches go on for this long at most
/// (within the budget), and those still undecided are named in the
/// result's note.
pub const AFTER_VIOLATION: Duration = Duration::from_secs(1);

/// How far a check goes once a key is found invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Stop at the first invalid key: the verdict is known. Searches under
    /// way stop, keys not yet searched are not; the result says how many
    /// keys were decided and names those that were not (the CLI's
    /// default).
    FirstInvalidKey,
    /// Every invalid key within the budget: after the first, the other
    /// keys get [`AFTER_VIOLATION`] more, then those still undecided are
    /// named (`checker linearizable --all-keys`, and the harness's
    /// report through [`check_history`]).
    AllKeys,
}

impl Scope {
    /// How long the other keys may go on once one is invalid.
    fn after_violation(self) -> Duration {
        match self {
            Scope::FirstInvalidKey => Duration::ZERO,
            Scope::AllKeys => AFTER_VIOLATION,
        }
    }
}

/// What the checker may spend.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Wall time for the whole check.
    pub time_limit: Duration,
    /// Memory for memoisation over all keys, bytes.
    pub memory_bytes_max: u64,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            time_limit: Duration::from_secs(60),
            memory_bytes_max: 2 << 30,
        }
    }
}

/// One key's result.
#[derive(Debug, Clone)]
pub struct KeyReport {
    /// The key (`None` for a single-object history).
    pub key: Option<Value>,
    /// Its verdict.
    pub valid: Validity,
    /// Ops of the key, before reductions.
    pub ops: usize,
    /// Ops the search considered, after reductions.
    pub searched: usize,
    /// For a violation: the longest linearizable prefix (history op ids).
    pub prefix: Vec<usize>,
    /// For a violation: the ops that could not follow the prefix.
    pub stuck: Vec<usize>,
    /// For a violation found without search: why it is one.
    pub witness: Option<String>,
    /// Why the key could not be checked (bad input).
    pub error: Option<String>,
    /// Entries the search looked at.
    pub steps: u64,
    /// (set, state) pairs the search memoised.
    pub memo_entries: u64,
}

/// The verdict over all keys.
#[derive(Debug, Clone)]
pub struct LinearizabilityReport {
    /// The worst key verdict.
    pub valid: Validity,
    /// Per-key results.
    pub keys: Vec<KeyReport>,
    /// Every op of the history (for pictures and examples).
    pub ops: Vec<Op>,
    /// Time spent judging.
    pub check_ms: f64,
    /// `info` ops dropped by reductions.
    pub info_dropped: u64,
    /// `info` ops kept for the search.
    pub info_kept: u64,
    /// How far the check went once a key was invalid.
    pub scope: Scope,
    /// When the first invalid key was found, ms after the check began.
    pub first_violation_ms: Option<f64>,
}

fn key_text(key: &Option<Value>) -> String {
    match key {
        None => "(single object)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Checks a history against a model within a budget, judging every key
/// ([`Scope::AllKeys`]): what the harness reports.
pub fn check_history(history: &History, model: Model, budget: Budget) -> LinearizabilityReport {
    check_history_scoped(history, model, budget, Scope::AllKeys)
}

/// Checks a history against a model within a budget, going as far as
/// `scope` says once a key is invalid.
pub fn check_history_scoped(
    history: &History,
    model: Model,
    budget: Budget,
    scope: Scope,
) -> LinearizabilityReport {
    let started = Instant::now();
    let ops = history.ops();
    let mut by_key: BTreeMap<String, (Option<Value>, Vec<usize>)> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.outcome != EventType::Fail) {
        by_key
            .entry(op.key.as_ref().map(Value::to_string).unwrap_or_default())
            .or_insert_with(|| (op.key.clone(), Vec::new()))
            .1
            .push(op.id);
    }
    let limits = Limits::new(started + budget.time_limit, budget.memory_bytes_max);
    let groups: Vec<(Option<Value>, Vec<usize>)> = by_key.into_values().collect();
    let results: Vec<(KeyReport, u64, u64)> = groups
        .par_iter()
        .map(|(key, ids)| {
            let key = (key, ids.as_slice());
            match model {
                Model::Register => check_key(&Register { cas: false }, key, &ops, &limits, scope),
                Model::CasRegister => check_key(&Register { cas: true }, key, &ops, &limits, scope),
                Model::Kv => check_key(&Kv, key, &ops, &limits, scope),
            }
        })
        .collect();
    let info_dropped = results.iter().map(|r| r.1).sum();
    let info_kept = results.iter().map(|r| r.2).sum();
    let keys: Vec<KeyReport> = results.into_iter().map(|r| r.0).collect();
    let valid = keys
        .iter()
        .map(|k| k.valid)
        .min()
        .unwrap_or(Validity::Valid);
    LinearizabilityReport {
        valid,
        keys,
        ops,
        check_ms: started.elapsed().as_secs_f64() * 1e3,
        info_dropped,
        info_kept,
        scope,
        first_violation_ms: limits
            .first_violation()
            .map(|d| (limits.started - started + d).as_secs_f64() * 1e3),
    }
}

impl KeyReport {
    /// A key of `ops` ops, valid until shown otherwise.
    fn new(key: &Option<Value>, ops: usize) -> KeyReport {
        KeyReport {
            key: key.clone(),
            valid: Validity::Valid,
            ops,
            searched: 0,
            prefix: vec![],
            stuck: vec![],
            witness: None,
            error: None,
            steps: 0,
            memo_entries: 0,
        }
    }
}

/// Judges one key: `key` is the key and its ops' ids.
fn check_key<M: SeqModel>(
    model: &M,
    (key, ids): (&Option<Value>, &[usize]),
    ops: &[Op],
    limits: &Limits,
    scope: Scope,
) -> (KeyReport, u64, u64) {
    let mut report = KeyReport::new(key, ids.len());
    if scope == Scope::FirstInvalidKey && limits.stopped_by_violation() {
        // Another key is invalid: this one stays undecided, unsearched.
        report.valid = Validity::Unknown;
        return (report, 0, 0);
    }
    let mut interner = Interner::default();
    let mut parsed: Vec<(usize, M::Input)> = Vec::with_capacity(ids.len());
    for &id in ids {
        match model.parse(&ops[id], &mut interner) {
            Ok(Some(input)) => parsed.push((id, input)),
            Ok(None) => {}
            Err(e) => {
                report.valid = Validity::Unknown;
                report.error = Some(format!(
                    "history line of event {}: {e}",
                    ops[id].invoke_index
                ));
                return (report, 0, 0);
            }
        }
    }
    let (kept, dropped, info_kept) = reduce(model, parsed, ops);
    report.searched = kept.len();
    if let Some((why, involved)) = witness::find(model, &kept, ops, &interner) {
        limits.violation_found(scope.after_violation());
        report.valid = Validity::Invalid;
        report.witness = Some(why);
        report.stuck = involved;
        return (report, dropped, info_kept);
    }
    let search_ops: Vec<SearchOp<M::Input>> = kept
        .iter()
        .map(|(id, input)| SearchOp {
            call: ops[*id].invoke_index,
            ret: ops[*id].complete_time.and(ops[*id].complete_index),
            input: input.clone(),
        })
        .collect();
    let searched = search::search(model, &search_ops, limits);
    report.steps = searched.steps;
    report.memo_entries = searched.memo_entries;
    match searched.outcome {
        Outcome::Linearizable => {}
        Outcome::Unknown => report.valid = Validity::Unknown,
        Outcome::Violation { prefix, stuck } => {
            limits.violation_found(scope.after_violation());
            report.valid = Validity::Invalid;
            report.prefix = prefix.into_iter().map(|i| kept[i].0).collect();
            report.stuck = stuck.into_iter().map(|i| kept[i].0).collect();
        }
    }
    (report, dropped, info_kept)
}

/// Applies the module's reductions; returns kept ops, `info` dropped and
/// `info` kept.
fn reduce<M: SeqModel>(
    model: &M,
    parsed: Vec<(usize, M::Input)>,
    ops: &[Op],
) -> (Vec<(usize, M::Input)>, u64, u64) {
    let observed: HashSet<Option<u32>> = if model.supports_value_reductions() {
        // Observations of every op that stays (an `info` read is dropped):
        // keeping an op is always sound, dropping needs all observers.
        parsed
            .iter()
            .filter(|(id, i)| ops[*id].outcome == EventType::Ok || !model.is_read(i))
            .flat_map(|(_, i)| model.observes(i))
            .collect()
    } else {
        HashSet::new()
    };
    let mut dropped = 0;
    let mut info_kept = 0;
    let kept = parsed
        .into_iter()
        .filter(|(id, input)| {
            if ops[*id].outcome == EventType::Ok {
                return true;
            }
            let unobserved_write = model.supports_value_reductions()
                && model.writes(input).is_some_and(|v| !observed.contains(&v));
            if model.is_read(input) || unobserved_write {
                dropped += 1;
                false
            } else {
                info_kept += 1;
                true
            }
        })
        .collect();
    (kept, dropped, info_kept)
}

fn op_json(op: &Op) -> Value {
    json!({"process": op.process, "f": op.f, "key": op.key, "value": op.input, "result": op.output,
           "type": format!("{:?}", op.outcome).to_lowercase(), "invoke_index": op.invoke_index, "complete_index": op.complete_index})
}

impl LinearizabilityReport {
    /// The report as a `results.json` entry.
    pub fn to_check_result(&self) -> CheckResult {
        let mut anomaly = Anomaly::new("nonlinearizable");
        let mut unchecked = Anomaly::new("unchecked-key");
        for k in &self.keys {
            if k.valid == Validity::Invalid {
                anomaly.add(json!({
                    "key": key_text(&k.key),
                    "witness": k.witness,
                    "linearizable_prefix_ops": k.prefix.len(),
                    "prefix_tail": k.prefix.iter().rev().take(5).rev().map(|i| op_json(&self.ops[*i])).collect::<Vec<_>>(),
                    "cannot_follow": k.stuck.iter().take(10).map(|i| op_json(&self.ops[*i])).collect::<Vec<_>>(),
                }));
            }
            if let Some(e) = &k.error {
                unchecked.add(json!({"key": key_text(&k.key), "error": e}));
            }
        }
        let mut counts = BTreeMap::new();
        counts.insert("keys".into(), self.keys.len() as u64);
        counts.insert("ops".into(), self.ops.len() as u64);
        counts.insert(
            "ops-searched".into(),
            self.keys.iter().map(|k| k.searched as u64).sum(),
        );
        counts.insert("info-dropped-by-reduction".into(), self.info_dropped);
        counts.insert("info-kept".into(), self.info_kept);
        let count = |v: Validity| self.keys.iter().filter(|k| k.valid == v).count() as u64;
        counts.insert("keys-invalid".into(), count(Validity::Invalid));
        counts.insert("keys-unknown".into(), count(Validity::Unknown));
        counts.insert(
            "keys-decided".into(),
            count(Validity::Invalid) + count(Validity::Valid),
        );
        counts.insert(
            "search-steps".into(),
            self.keys.iter().map(|k| k.steps).sum(),
        );
        counts.insert(
            "memo-entries".into(),
            self.keys.iter().map(|k| k.memo_entries).sum(),
        );
        CheckResult {
            checker: "linearizability".into(),
            valid: self.valid,
            check_ms: self.check_ms,
            counts,
            anomalies: vec![anomaly, unchecked],
            artifacts: self.html_pictures().into_iter().map(|(n, _)| n).collect(),
            note: self.note(),
        }
    }

    /// Why some keys are undecided, naming them (at most 10).
    fn note(&self) -> Option<String> {
        let undecided: Vec<String> = self
            .keys
            .iter()
            .filter(|k| k.valid == Validity::Unknown && k.error.is_none())
            .map(|k| key_text(&k.key))
            .collect();
        let malformed = self.keys.iter().any(|k| k.error.is_some());
        if undecided.is_empty() {
            return malformed.then(|| "some keys' ops were malformed (see unchecked-key)".into());
        }
        let mut names = undecided
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if undecided.len() > 10 {
            names += &format!(" and {} more", undecided.len() - 10);
        }
        let decided = self.keys.len()
            - undecided.len()
            - self.keys.iter().filter(|k| k.error.is_some()).count();
        Some(match (self.valid, self.scope) {
            (Validity::Invalid, Scope::FirstInvalidKey) => format!(
                "stopped at the first invalid key: {decided} of {} keys decided; not decided: {names} (--all-keys judges every key)",
                self.keys.len()
            ),
            (Validity::Invalid, Scope::AllKeys) => format!(
                "a violation was found; {} other key(s) remain undecided (their search stopped at the budget, or {} s after the first violation): {names}",
                undecided.len(),
                AFTER_VIOLATION.as_secs_f64()
            ),
            _ => format!(
                "the search exhausted its time or memory budget before deciding {} key(s): {names}",
                undecided.len()
            ),
        })
    }

    /// An HTML page per failing key (at most 10): file name and contents.
    pub fn html_pictures(&self) -> Vec<(String, String)> {
        self.every_picture().take(10).collect()
    }
}

#[cfg(test)]
mod tests;
