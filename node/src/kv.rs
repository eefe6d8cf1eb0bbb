//! The key-value state machine over ordered transactions: each op's result
//! is computed when its block is applied, identically on every node.

use crate::tx::KvOp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The result of one op, as returned to the submitter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpResult {
    /// Read: always; write: always; cas: whether it swapped.
    pub ok: bool,
    /// Read: the value read; failed cas: the current value.
    #[serde(skip_serializing_if = "is_absent", default)]
    pub value: Option<Option<i64>>,
}

fn is_absent(v: &Option<Option<i64>>) -> bool {
    v.is_none()
}

/// Registers keyed by string; a key never written reads as `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Registers")]
pub struct Kv {
    registers: BTreeMap<String, i64>,
    /// Invariant: the wrapping sum of [`register_hash`] over `registers`
    /// (kept as registers change: O(1) per write).
    #[serde(skip)]
    digest: u64,
}

/// The serialised form: the registers alone (the digest is recomputed).
#[derive(Deserialize)]
struct Registers {
    registers: BTreeMap<String, i64>,
}

impl From<Registers> for Kv {
    fn from(r: Registers) -> Kv {
        Kv::from_registers(r.registers)
    }
}

/// One register's hash, the digest's term (docs/trace.md, `digest`): FNV-1a
/// (64-bit) over the key's UTF-8 bytes followed by the value's 8 bytes
/// little-endian, then SplitMix64's finaliser. A fixed function, so that
/// every node and every process computes the same digest.
pub fn register_hash(key: &str, value: i64) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = FNV_OFFSET;
    for &b in key.as_bytes().iter().chain(&value.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl Kv {
    /// Every register, in key order.
    pub fn registers(&self) -> impl Iterator<Item = (&str, i64)> {
        self.registers.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Registers from `(key, value)` pairs (a later pair for a key wins).
    pub fn from_registers(registers: impl IntoIterator<Item = (String, i64)>) -> Kv {
        let registers: BTreeMap<String, i64> = registers.into_iter().collect();
        let digest = registers
            .iter()
            .fold(0u64, |d, (k, &v)| d.wrapping_add(register_hash(k, v)));
        Kv { registers, digest }
    }

    /// An order-independent digest of every register: the wrapping sum of
    /// [`register_hash`] over them (0 with none). Equal registers give
    /// equal digests whatever order they were written in.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Sets `key` to `value`, keeping the digest.
    fn set(&mut self, key: &str, value: i64) {
        let old = match self.registers.get_mut(key) {
            Some(slot) => Some(std::mem::replace(slot, value)),
            None => self.registers.insert(key.to_string(), value),
        };
        if let Some(old) = old {
            self.digest = self.digest.wrapping_sub(register_hash(key, old));
        }
        self.digest = self.digest.wrapping_add(register_hash(key, value));
    }

    /// Applies `ops` in order and returns one result per op.
    pub fn apply(&mut self, ops: &[KvOp]) -> Vec<OpResult> {
        ops.iter().map(|op| self.apply_one(op)).collect()
    }

    /// Answers read-only ops from the current state without changing it.
    pub fn read(&self, ops: &[KvOp]) -> Vec<OpResult> {
        ops.iter()
            .map(|op| match op {
                KvOp::Read { key } => OpResult {
                    ok: true,
                    value: Some(self.registers.get(key).copied()),
                },
                _ => OpResult {
                    ok: false,
                    value: None,
                },
            })
            .collect()
    }

    fn apply_one(&mut self, op: &KvOp) -> OpResult {
        match op {
            KvOp::Read { key } => OpResult {
                ok: true,
                value: Some(self.registers.get(key).copied()),
            },
            KvOp::Write { key, value } => {
                self.set(key, *value);
                OpResult {
                    ok: true,
                    value: None,
                }
            }
            KvOp::Cas { key, old, new } => {
                let current = self.registers.get(key).copied();
                if current == *old {
                    self.set(key, *new);
                    OpResult {
                        ok: true,
                        value: None,
                    }
                } else {
                    OpResult {
                        ok: false,
                        value: Some(current),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(key: &str, value: i64) -> KvOp {
        KvOp::Write {
            key: key.into(),
            value,
        }
    }

    /// The digest kept write by write is the one computed from scratch,
    /// whatever the order of the writes, and survives a serde round trip.
    #[test]
    fn the_register_digest_is_incremental_and_order_independent() {
        let mut a = Kv::default();
        assert_eq!(a.digest(), 0);
        a.apply(&[write("x", 1), write("y", 2), write("x", 3)]);
        a.apply(&[KvOp::Cas {
            key: "y".into(),
            old: Some(2),
            new: -7,
        }]);
        let mut b = Kv::default();
        b.apply(&[write("y", -7), write("x", 3)]);
        let scratch = Kv::from_registers([("x".to_string(), 3), ("y".to_string(), -7)]);
        assert_eq!(a.digest(), scratch.digest());
        assert_eq!(b.digest(), scratch.digest());
        assert_eq!(a, b);
        let back: Kv = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back.digest(), a.digest());
        // A different value, a missing register, swapped values: different.
        for other in [
            Kv::from_registers([("x".to_string(), 3), ("y".to_string(), -6)]),
            Kv::from_registers([("x".to_string(), 3)]),
            Kv::from_registers([("x".to_string(), -7), ("y".to_string(), 3)]),
        ] {
            assert_ne!(other.digest(), a.digest(), "{other:?}");
        }
    }

    /// The hash is a fixed function (docs/trace.md): pinned values, so that
    /// a change to it is a visible, deliberate change of the trace format.
    /// (The values were computed by a separate Python transcription of
    /// the documented function.)
    #[test]
    fn the_register_hash_is_pinned() {
        assert_eq!(
            format!("{:016x}", register_hash("k", 0)),
            "537a2452990b920a"
        );
        assert_eq!(
            format!("{:016x}", register_hash("", -1)),
            "9795737c4a2dacd5"
        );
    }

    #[test]
    fn cas_swaps_only_on_the_expected_value() {
        let mut kv = Kv::default();
        let k = || "k".to_string();
        let r = kv.apply(&[
            KvOp::Read { key: k() },
            KvOp::Cas {
                key: k(),
                old: Some(1),
                new: 2,
            },
            KvOp::Cas {
                key: k(),
                old: None,
                new: 1,
            },
            KvOp::Write { key: k(), value: 5 },
            KvOp::Cas {
                key: k(),
                old: Some(5),
                new: 6,
            },
            KvOp::Read { key: k() },
        ]);
        assert_eq!(
            r[0],
            OpResult {
                ok: true,
                value: Some(None)
            }
        );
        assert_eq!(
            r[1],
            OpResult {
                ok: false,
                value: Some(None)
            }
        );
        assert!(r[2].ok && r[3].ok && r[4].ok);
        assert_eq!(
            r[5],
            OpResult {
                ok: true,
                value: Some(Some(6))
            }
        );
        assert_eq!(
            serde_json::to_string(&r[0]).unwrap(),
            r#"{"ok":true,"value":null}"#
        );
        assert_eq!(serde_json::to_string(&r[3]).unwrap(), r#"{"ok":true}"#);
    }
}
