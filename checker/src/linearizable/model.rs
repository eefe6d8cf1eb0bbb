//! Sequential models behind one trait, so that a new one is a small file:
//! `register`, `cas-register` and `kv` (`shared/spec/history.md`).

use crate::history::{EventType, Op};
use serde_json::Value;
use std::collections::HashMap;
use std::hash::Hash;

/// Values interned per key, so states compare as integers.
#[derive(Debug, Default)]
pub struct Interner {
    ids: HashMap<String, u32>,
    values: Vec<Value>,
}

impl Interner {
    /// The id of `v`; `null` is `None`.
    pub fn id(&mut self, v: &Value) -> Option<u32> {
        if v.is_null() {
            return None;
        }
        let text = v.to_string();
        if let Some(id) = self.ids.get(&text) {
            return Some(*id);
        }
        let id = self.values.len() as u32;
        self.ids.insert(text, id);
        self.values.push(v.clone());
        Some(id)
    }

    /// The value of an id.
    pub fn value(&self, id: Option<u32>) -> Value {
        id.map_or(Value::Null, |i| self.values[i as usize].clone())
    }
}

/// A sequential specification.
pub trait SeqModel: Sync {
    /// The object's state.
    type State: Clone + Eq + Hash + Send + std::fmt::Debug;
    /// One operation, parsed.
    type Input: Clone + Send + Sync + std::fmt::Debug;
    /// The initial state.
    fn init(&self) -> Self::State;
    /// Parses an op (`Ok(None)` = irrelevant to this model: skipped).
    fn parse(&self, op: &Op, interner: &mut Interner) -> Result<Option<Self::Input>, String>;
    /// The state after `input`, or `None` when it cannot happen in `state`.
    fn step(&self, state: &Self::State, input: &Self::Input) -> Option<Self::State>;
    /// The value this op writes, when it writes one (for reductions).
    fn writes(&self, _input: &Self::Input) -> Option<Option<u32>> {
        None
    }
    /// The values this op observes (read results, cas expectations).
    fn observes(&self, _input: &Self::Input) -> Vec<Option<u32>> {
        Vec::new()
    }
    /// Whether the op only reads (an `info` read constrains nothing).
    fn is_read(&self, input: &Self::Input) -> bool;
    /// Bytes a copy of the state takes (the memo's budget counts them).
    fn state_bytes(&self, _state: &Self::State) -> usize {
        std::mem::size_of::<Self::State>()
    }
    /// The value the state holds, for models whose ops write and observe
    /// values one by one ([`SeqModel::writes`], [`SeqModel::observes`]).
    fn held(&self, _state: &Self::State) -> Option<Option<u32>> {
        None
    }
    /// For models whose state only grows between resets: whether `later`,
    /// an op that must still be linearized, can step in some state reached
    /// from `state` by ops that are not resets. Answering `false` prunes
    /// the search, so it must be `false` only when no such state exists.
    fn may_still_step(&self, _state: &Self::State, _later: &Self::Input) -> bool {
        true
    }
    /// Whether [`SeqModel::may_still_step`] can answer `false` for this op.
    fn is_guard(&self, _input: &Self::Input) -> bool {
        false
    }
    /// Whether the op can undo the growth `may_still_step` relies on.
    fn is_reset(&self, _input: &Self::Input) -> bool {
        false
    }
    /// Whether written values can be reasoned about one by one (registers:
    /// yes; kv with appends: no).
    fn supports_value_reductions(&self) -> bool {
        true
    }
}

/// An op on a register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterInput {
    /// A read that returned this value (`None` = never written).
    Read(Option<u32>),
    /// A write.
    Write(Option<u32>),
    /// A compare-and-set that swapped `.0` for `.1`.
    Cas(Option<u32>, Option<u32>),
}

/// A read/write register (`cas` allowed when `cas` is true).
#[derive(Debug, Clone, Copy)]
pub struct Register {
    /// Whether `cas` is part of the model.
    pub cas: bool,
}

impl SeqModel for Register {
    type State = Option<u32>;
    type Input = RegisterInput;

    fn init(&self) -> Option<u32> {
        None
    }

    fn parse(&self, op: &Op, interner: &mut Interner) -> Result<Option<RegisterInput>, String> {
        match op.f.as_str() {
            "read" => Ok(Some(RegisterInput::Read(if op.outcome == EventType::Ok {
                interner.id(&op.output)
            } else {
                None
            }))),
            "write" => Ok(Some(RegisterInput::Write(interner.id(&op.input)))),
            "cas" if self.cas => match op.input.as_array().map(Vec::as_slice) {
                Some([old, new]) => {
                    Ok(Some(RegisterInput::Cas(interner.id(old), interner.id(new))))
                }
                _ => Err(format!(
                    "field `value`: cas expects [expected, new], got {}",
                    op.input
                )),
            },
            _ => Ok(None),
        }
    }

    fn step(&self, state: &Option<u32>, input: &RegisterInput) -> Option<Option<u32>> {
        match input {
            RegisterInput::Read(v) => (state == v).then_some(*state),
            RegisterInput::Write(v) => Some(*v),
            RegisterInput::Cas(old, new) => (state == old).then_some(*new),
        }
    }

    fn writes(&self, input: &RegisterInput) -> Option<Option<u32>> {
        match input {
            RegisterInput::Write(v) | RegisterInput::Cas(_, v) => Some(*v),
            RegisterInput::Read(_) => None,
        }
    }

    fn observes(&self, input: &RegisterInput) -> Vec<Option<u32>> {
        match input {
            RegisterInput::Read(v) => vec![*v],
            RegisterInput::Cas(old, _) => vec![*old],
            RegisterInput::Write(_) => vec![],
        }
    }

    fn is_read(&self, input: &RegisterInput) -> bool {
        matches!(input, RegisterInput::Read(_))
    }

    fn held(&self, state: &Option<u32>) -> Option<Option<u32>> {
        Some(*state)
    }
}

/// An op on a string-valued key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvInput {
    /// A get that returned this string.
    Get(String),
    /// Replace the string.
    Put(String),
    /// Append to the string.
    Append(String),
}

/// A string register with append; initial value `""`.
#[derive(Debug, Clone, Copy)]
pub struct Kv;

fn as_text(v: &Value, what: &str) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        other => Err(format!(
            "field `value`: {what} expects a string, got {other}"
        )),
    }
}

impl SeqModel for Kv {
    type State = String;
    type Input = KvInput;

    fn init(&self) -> String {
        String::new()
    }

    fn parse(&self, op: &Op, _interner: &mut Interner) -> Result<Option<KvInput>, String> {
        match op.f.as_str() {
            "get" => Ok(Some(KvInput::Get(if op.outcome == EventType::Ok {
                as_text(&op.output, "get")?
            } else {
                String::new()
            }))),
            "put" => Ok(Some(KvInput::Put(as_text(&op.input, "put")?))),
            "append" => Ok(Some(KvInput::Append(as_text(&op.input, "append")?))),
            _ => Ok(None),
        }
    }

    fn step(&self, state: &String, input: &KvInput) -> Option<String> {
        match input {
            KvInput::Get(s) => (state == s).then(|| state.clone()),
            KvInput::Put(s) => Some(s.clone()),
            KvInput::Append(s) => Some(format!("{state}{s}")),
        }
    }

    fn is_read(&self, input: &KvInput) -> bool {
        matches!(input, KvInput::Get(_))
    }

    fn supports_value_reductions(&self) -> bool {
        false
    }

    fn state_bytes(&self, state: &String) -> usize {
        std::mem::size_of::<String>() + state.len()
    }

    /// Appends only extend the string: a get still to come must read an
    /// extension of it.
    fn may_still_step(&self, state: &String, later: &KvInput) -> bool {
        match later {
            KvInput::Get(s) => s.starts_with(state.as_str()),
            KvInput::Put(_) | KvInput::Append(_) => true,
        }
    }

    fn is_guard(&self, input: &KvInput) -> bool {
        matches!(input, KvInput::Get(_))
    }

    fn is_reset(&self, input: &KvInput) -> bool {
        matches!(input, KvInput::Put(_))
    }
}
