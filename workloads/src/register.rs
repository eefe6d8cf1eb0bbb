//! Keyed compare-and-set registers, Jepsen's style: a rotating set of active
//! keys, each retired after a bounded number of operations so that the
//! linearizability search per key stays small, and values unique per key so
//! that a read names the write it saw.

use crate::{Generator, Invocation, Op};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// Operations per key before it is retired and a fresh key takes its place.
pub const KEY_OPS_MAX: u64 = 120;
/// How many keys are in use at once.
pub const ACTIVE_KEYS: usize = 4;

#[derive(Debug, Clone)]
struct KeyState {
    name: String,
    ops: u64,
    next_value: i64,
}

/// Generates `read`, `write` and `cas` on a rotating set of keys.
#[derive(Debug, Clone)]
pub struct RegisterGenerator {
    rng: ChaCha8Rng,
    keys: Vec<KeyState>,
    next_key: u64,
}

impl RegisterGenerator {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        let mut generator = Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            keys: Vec::new(),
            next_key: 0,
        };
        for _ in 0..ACTIVE_KEYS {
            let key = generator.fresh_key();
            generator.keys.push(key);
        }
        generator
    }

    fn fresh_key(&mut self) -> KeyState {
        let key = KeyState {
            name: format!("k{}", self.next_key),
            ops: 0,
            next_value: 1,
        };
        self.next_key += 1;
        key
    }
}

impl Generator for RegisterGenerator {
    fn next_invocation(&mut self) -> Option<Invocation> {
        let slot = self.rng.gen_range(0..self.keys.len());
        if self.keys[slot].ops >= KEY_OPS_MAX {
            self.keys[slot] = self.fresh_key();
        }
        let choice = self.rng.gen_range(0..4);
        let key = &mut self.keys[slot];
        key.ops += 1;
        let (f, value): (Op, Value) = match choice {
            0 | 1 => (Op::Read, Value::Null),
            2 => {
                let v = key.next_value;
                key.next_value += 1;
                (Op::Write, json!(v))
            }
            _ => {
                let new = key.next_value;
                key.next_value += 1;
                let expected = self.rng.gen_range(1..=new.max(2) - 1);
                (Op::Cas, json!([expected, new]))
            }
        };
        Some(Invocation {
            f,
            key: Some(key.name.clone()),
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn same_seed_same_ops() {
        let mut a = RegisterGenerator::new(7);
        let mut b = RegisterGenerator::new(7);
        for _ in 0..500 {
            assert_eq!(a.next_invocation(), b.next_invocation());
        }
    }

    #[test]
    fn written_values_are_unique_per_key_and_keys_retire() {
        let mut g = RegisterGenerator::new(1);
        let mut written: HashMap<String, HashSet<i64>> = HashMap::new();
        let mut per_key: HashMap<String, u64> = HashMap::new();
        for _ in 0..5_000 {
            let op = g.next_invocation().unwrap();
            let key = op.key.clone().unwrap();
            *per_key.entry(key.clone()).or_default() += 1;
            let new = match op.f.as_str() {
                "write" => op.value.as_i64(),
                "cas" => op.value[1].as_i64(),
                _ => None,
            };
            if let Some(v) = new {
                assert!(
                    written.entry(key).or_default().insert(v),
                    "value {v} written twice"
                );
            }
        }
        assert!(per_key.values().all(|&n| n <= KEY_OPS_MAX));
        assert!(per_key.len() > ACTIVE_KEYS, "keys must rotate");
    }
}
