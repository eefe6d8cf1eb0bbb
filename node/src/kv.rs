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
pub struct Kv {
    registers: BTreeMap<String, i64>,
}

impl Kv {
    /// Every register, in key order.
    pub fn registers(&self) -> impl Iterator<Item = (&str, i64)> {
        self.registers.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Registers from `(key, value)` pairs.
    pub fn from_registers(registers: impl IntoIterator<Item = (String, i64)>) -> Kv {
        Kv {
            registers: registers.into_iter().collect(),
        }
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
                self.registers.insert(key.clone(), *value);
                OpResult {
                    ok: true,
                    value: None,
                }
            }
            KvOp::Cas { key, old, new } => {
                let current = self.registers.get(key).copied();
                if current == *old {
                    self.registers.insert(key.clone(), *new);
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
