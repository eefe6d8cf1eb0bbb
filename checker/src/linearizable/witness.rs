//! Cheap, sound witnesses of a violation, found without search (registers
//! only, where written values can be told apart):
//!
//! - a read returns a value that no op ever wrote;
//! - a read returns `v`, whose only writer `w` completed before another
//!   completed write `w2` began, and `w2` completed before the read began:
//!   every linearization orders `w < w2 < read`, and nothing writes `v`
//!   again, so the read is stale.

use super::model::{Interner, SeqModel};
use crate::history::{EventType, Op};
use std::collections::HashMap;

/// A violation's description and the ops involved, if one is evident.
pub fn find<M: SeqModel>(
    model: &M,
    kept: &[(usize, M::Input)],
    ops: &[Op],
    interner: &Interner,
) -> Option<(String, Vec<usize>)> {
    if !model.supports_value_reductions() {
        return None;
    }
    // Writers of each value: (op id, completed?).
    let mut writers: HashMap<Option<u32>, Vec<usize>> = HashMap::new();
    let mut completed: Vec<(u64, u64, usize)> = Vec::new();
    for (id, input) in kept {
        if let Some(v) = model.writes(input) {
            writers.entry(v).or_default().push(*id);
            if let (EventType::Ok, Some(done)) = (ops[*id].outcome, ops[*id].complete_index) {
                completed.push((ops[*id].invoke_index, done, *id));
            }
        }
    }
    completed.sort_unstable();
    // suffix_min[i] = the completed write with the earliest completion among
    // completed[i..].
    let mut suffix_min: Vec<(u64, usize)> = vec![(u64::MAX, usize::MAX); completed.len() + 1];
    for i in (0..completed.len()).rev() {
        let here = (completed[i].1, completed[i].2);
        suffix_min[i] = if here.0 < suffix_min[i + 1].0 {
            here
        } else {
            suffix_min[i + 1]
        };
    }
    for (id, input) in kept {
        let op = &ops[*id];
        if op.outcome != EventType::Ok || !model.is_read(input) {
            continue;
        }
        let Some(v) = model.observes(input).first().copied() else {
            continue;
        };
        let ws = writers.get(&v).map(Vec::as_slice).unwrap_or(&[]);
        let writer_done = match (v, ws) {
            (Some(_), []) => {
                return Some((
                    format!("read of {} which no op ever wrote", interner.value(v)),
                    vec![*id],
                ));
            }
            (None, []) => Some((0u64, None)),
            (_, [w]) if ops[*w].outcome == EventType::Ok => {
                ops[*w].complete_index.map(|c| (c, Some(*w)))
            }
            _ => None,
        };
        let Some((done, w)) = writer_done else {
            continue;
        };
        let start = completed.partition_point(|(invoke, _, _)| *invoke <= done);
        let (w2_done, w2) = suffix_min[start];
        if w2 != usize::MAX && w2_done < op.invoke_index {
            let why = format!(
                "stale read: it returned {} although a later write ({}) had completed before the read began",
                interner.value(v),
                ops[w2].input
            );
            let mut involved: Vec<usize> = w.into_iter().chain([w2, *id]).collect();
            involved.sort_unstable();
            return Some((why, involved));
        }
    }
    None
}
