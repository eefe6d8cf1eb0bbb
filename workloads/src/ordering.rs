//! Total-order broadcast: clients submit transactions with unique ids,
//! readers deliver recent blocks (each process to its own node), and at the
//! end of the run the harness reads every node's whole chain (the final
//! `deliver` operations, see [`crate::OrdealClient::deliver_chain`]).

use crate::{Generator, Invocation, Op};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

/// One read in this many operations is a `deliver` during the run.
pub const DELIVER_ONE_IN: u32 = 10;
/// How many recent blocks a `deliver` during the run asks for.
pub const DELIVER_RECENT_BLOCKS: u64 = 20;

/// Generates `submit` (unique transaction ids) and `deliver` operations.
#[derive(Debug, Clone)]
pub struct OrderingGenerator {
    rng: ChaCha8Rng,
    seed: u64,
    next_tx: u64,
}

impl OrderingGenerator {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            seed,
            next_tx: 0,
        }
    }
}

impl Generator for OrderingGenerator {
    fn next_invocation(&mut self) -> Option<Invocation> {
        if self.rng.gen_range(0..DELIVER_ONE_IN) == 0 {
            return Some(Invocation {
                f: Op::Deliver,
                key: None,
                value: json!({"recent": DELIVER_RECENT_BLOCKS}),
            });
        }
        // The seed in the id keeps ids unique across repeated tests that
        // share a store, and makes a history's origin recognisable.
        let id = format!("s{:x}-t{}", self.seed & 0xffff, self.next_tx);
        self.next_tx += 1;
        Some(Invocation {
            f: Op::Submit,
            key: None,
            value: Value::String(id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn transaction_ids_are_unique_and_reads_are_mixed_in() {
        let mut g = OrderingGenerator::new(3);
        let mut ids = HashSet::new();
        let mut delivers = 0;
        for _ in 0..2_000 {
            let op = g.next_invocation().unwrap();
            match op.f.as_str() {
                "submit" => assert!(ids.insert(op.value.as_str().unwrap().to_string())),
                "deliver" => delivers += 1,
                other => panic!("unexpected op {other}"),
            }
        }
        assert!(delivers > 100 && delivers < 400, "{delivers} delivers");
    }

    #[test]
    fn same_seed_same_ops() {
        let mut a = OrderingGenerator::new(9);
        let mut b = OrderingGenerator::new(9);
        for _ in 0..300 {
            assert_eq!(a.next_invocation(), b.next_invocation());
        }
    }
}
