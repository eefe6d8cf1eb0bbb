//! What a checker understands, checked before it judges (`docs/history.md`,
//! "Refused histories"): every client operation must be one its model
//! defines, with a value of the shape that operation takes, and there must
//! be at least one. A history that breaks this is refused, never judged:
//! a dropped or misread operation would give a verdict about a different
//! history.

use crate::history::{field_err, Event, EventType, History, HistoryError, Process};
use crate::linearizable::Model;
use serde_json::Value;

/// The operations a checker judges and the shapes of their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vocabulary {
    /// The linearizability checker under a model.
    Model(Model),
    /// The ordering checker (`docs/ordering-history.md`).
    Ordering,
}

/// What a value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Anything.
    Any,
    /// `null`.
    Null,
    /// A two-element array.
    Pair,
    /// A string.
    Text,
    /// A string or `null`.
    TextOrNull,
    /// An object.
    Object,
    /// An object with a `blocks` array.
    Blocks,
}

/// One operation: its name and the shapes of its invoke and ok values
/// (`fail` and `info` values are not read).
struct OpShape {
    f: &'static str,
    invoke: Shape,
    ok: Shape,
}

const fn op(f: &'static str, invoke: Shape, ok: Shape) -> OpShape {
    OpShape { f, invoke, ok }
}

const REGISTER: [OpShape; 2] = [
    op("read", Shape::Null, Shape::Any),
    op("write", Shape::Any, Shape::Any),
];
const CAS_REGISTER: [OpShape; 3] = [
    op("read", Shape::Null, Shape::Any),
    op("write", Shape::Any, Shape::Any),
    op("cas", Shape::Pair, Shape::Any),
];
const KV: [OpShape; 3] = [
    op("get", Shape::Null, Shape::TextOrNull),
    op("put", Shape::Text, Shape::Any),
    op("append", Shape::Text, Shape::Any),
];
const ORDERING: [OpShape; 2] = [
    op("submit", Shape::Text, Shape::Any),
    op("deliver", Shape::Object, Shape::Blocks),
];

/// Every vocabulary, for hints that name the right one.
const ALL: [Vocabulary; 4] = [
    Vocabulary::Model(Model::Register),
    Vocabulary::Model(Model::CasRegister),
    Vocabulary::Model(Model::Kv),
    Vocabulary::Ordering,
];

impl Vocabulary {
    /// The model's name as `--model` spells it (`ordering` for the
    /// ordering checker).
    pub fn name(self) -> &'static str {
        match self {
            Vocabulary::Model(Model::Register) => "register",
            Vocabulary::Model(Model::CasRegister) => "cas-register",
            Vocabulary::Model(Model::Kv) => "kv",
            Vocabulary::Ordering => "ordering",
        }
    }

    /// The operations (`f`) it defines.
    pub fn operations(self) -> Vec<&'static str> {
        self.shapes().iter().map(|s| s.f).collect()
    }

    fn shapes(self) -> &'static [OpShape] {
        match self {
            Vocabulary::Model(Model::Register) => &REGISTER,
            Vocabulary::Model(Model::CasRegister) => &CAS_REGISTER,
            Vocabulary::Model(Model::Kv) => &KV,
            Vocabulary::Ordering => &ORDERING,
        }
    }

    /// How to ask for this vocabulary on the command line.
    fn flag(self) -> String {
        match self {
            Vocabulary::Ordering => "`checker ordering`".into(),
            Vocabulary::Model(_) => format!("`checker linearizable --model {}`", self.name()),
        }
    }
}

impl Shape {
    /// Why `v` is not of this shape.
    fn mismatch(self, v: &Value) -> Option<&'static str> {
        let fits = match self {
            Shape::Any => true,
            Shape::Null => v.is_null(),
            Shape::Pair => v.as_array().is_some_and(|a| a.len() == 2),
            Shape::Text => v.is_string(),
            Shape::TextOrNull => v.is_string() || v.is_null(),
            Shape::Object => v.is_object(),
            Shape::Blocks => v.get("blocks").is_some_and(Value::is_array),
        };
        (!fits).then_some(match self {
            Shape::Any => "anything",
            Shape::Null => "null",
            Shape::Pair => "a two-element array [expected, new]",
            Shape::Text => "a string",
            Shape::TextOrNull => "a string or null",
            Shape::Object => "an object",
            Shape::Blocks => "an object with a `blocks` array",
        })
    }
}

/// Checks that a history speaks `vocabulary`: it has events, at least one
/// client operation, and every client event's `f` and value are ones the
/// checker reads. Nemesis events are not checked (the checkers ignore them).
pub fn validate(history: &History, vocabulary: Vocabulary) -> Result<(), HistoryError> {
    let mut validation = Validation::new(vocabulary);
    for (position, e) in history.events.iter().enumerate() {
        validation.event(history.line_of(position), e)?;
    }
    validation.finish()
}

/// [`validate`] one event at a time, for checkers that judge a history as
/// it is read.
#[derive(Debug)]
pub struct Validation {
    vocabulary: Vocabulary,
    events: usize,
    client_events: usize,
}

impl Validation {
    /// Nothing seen yet.
    pub fn new(vocabulary: Vocabulary) -> Validation {
        Validation {
            vocabulary,
            events: 0,
            client_events: 0,
        }
    }

    /// Checks the event read at `line`.
    pub fn event(&mut self, line: u64, e: &Event) -> Result<(), HistoryError> {
        self.events += 1;
        if e.process == Process::Nemesis {
            return Ok(());
        }
        self.client_events += 1;
        let vocabulary = self.vocabulary;
        let Some(shape) = vocabulary.shapes().iter().find(|s| s.f == e.f) else {
            return Err(field_err(line, "f", unknown_op(&e.f, vocabulary)));
        };
        let wanted = match e.kind {
            EventType::Invoke => shape.invoke,
            EventType::Ok => shape.ok,
            EventType::Fail | EventType::Info => Shape::Any,
        };
        let Some(expected) = wanted.mismatch(&e.value) else {
            return Ok(());
        };
        let kind = format!("{:?}", e.kind).to_lowercase();
        // Jepsen's `independent` wraps every value as [key value].
        let tuple = wanted == Shape::Null && e.value.as_array().is_some_and(|a| a.len() == 2);
        let hint = if tuple {
            "; a Jepsen `independent` tuple [key value]? give the key in the event's `key` field and the value alone"
        } else {
            ""
        };
        Err(field_err(
            line,
            "value",
            format!("`{}` {kind} expects {expected}, got {}{hint}", e.f, e.value),
        ))
    }

    /// Checks what only the whole history shows: it is not empty and has a
    /// client operation.
    pub fn finish(self) -> Result<(), HistoryError> {
        if self.events == 0 {
            return Err(HistoryError::Empty);
        }
        if self.client_events == 0 {
            return Err(HistoryError::NoOperations {
                model: self.vocabulary.name(),
                ops: self.vocabulary.operations().join(", "),
            });
        }
        Ok(())
    }
}

/// The message for an `f` the vocabulary does not define, naming the
/// checkers that do define it.
fn unknown_op(f: &str, vocabulary: Vocabulary) -> String {
    let elsewhere: Vec<String> = ALL
        .iter()
        .filter(|v| **v != vocabulary && v.operations().contains(&f))
        .map(|v| v.flag())
        .collect();
    let hint = if elsewhere.is_empty() {
        String::new()
    } else {
        format!("; it is an operation of {}", elsewhere.join(" and "))
    };
    format!(
        "`{f}` is not an operation of the {} model ({}){hint}",
        vocabulary.name(),
        vocabulary.operations().join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::read_history;

    fn refusal(text: &str, vocabulary: Vocabulary) -> String {
        let h = read_history(text.as_bytes()).unwrap();
        validate(&h, vocabulary).unwrap_err().to_string()
    }

    #[test]
    fn each_vocabulary_refuses_what_it_does_not_read() {
        let cas = Vocabulary::Model(Model::CasRegister);
        let cases = [
            (r#"{"process":0,"type":"invoke","f":"append","value":"x","time":1}"#, cas, "line 1: field `f`: `append` is not an operation of the cas-register model (read, write, cas); it is an operation of `checker linearizable --model kv`"),
            (r#"{"process":0,"type":"invoke","f":"cas","value":[1,2],"time":1}"#, Vocabulary::Model(Model::Register), "line 1: field `f`: `cas` is not an operation of the register model (read, write); it is an operation of `checker linearizable --model cas-register`"),
            (r#"{"process":0,"type":"invoke","f":"submit","value":"t","time":1}"#, cas, "`submit` is not an operation of the cas-register model (read, write, cas); it is an operation of `checker ordering`"),
            (r#"{"process":0,"type":"invoke","f":"wrte","value":1,"time":1}"#, cas, "line 1: field `f`: `wrte` is not an operation of the cas-register model (read, write, cas)"),
            (r#"{"process":0,"type":"invoke","f":"cas","value":[1,2,3],"time":1}"#, cas, "line 1: field `value`: `cas` invoke expects a two-element array [expected, new], got [1,2,3]"),
            (r#"{"process":0,"type":"invoke","f":"cas","value":"[1,2]","time":1}"#, cas, "got \"[1,2]\""),
            (r#"{"process":0,"type":"invoke","f":"read","value":3,"time":1}"#, cas, "line 1: field `value`: `read` invoke expects null, got 3"),
            (r#"{"process":0,"type":"invoke","f":"read","value":[3,null],"time":1}"#, cas, "`read` invoke expects null, got [3,null]; a Jepsen `independent` tuple"),
            ("{\"process\":0,\"type\":\"invoke\",\"f\":\"get\",\"time\":1}\n{\"process\":0,\"type\":\"ok\",\"f\":\"get\",\"value\":4,\"time\":2}", Vocabulary::Model(Model::Kv), "line 2: field `value`: `get` ok expects a string or null, got 4"),
            (r#"{"process":0,"type":"invoke","f":"submit","value":7,"time":1}"#, Vocabulary::Ordering, "line 1: field `value`: `submit` invoke expects a string, got 7"),
            (r#"{"process":"nemesis","type":"info","f":"kill","value":null,"time":1}"#, cas, "no operation of the cas-register model (read, write, cas)"),
            ("\n\n", cas, "the history is empty"),
        ];
        for (text, vocabulary, expected) in cases {
            let e = refusal(text, vocabulary);
            assert!(
                e.contains(expected),
                "{text}\n  gave: {e}\n  want: {expected}"
            );
        }
    }

    #[test]
    fn fail_and_info_values_and_nemesis_events_are_not_read() {
        let text = r#"{"process":"nemesis","type":"info","f":"partition","value":{"phase":"start"},"time":0}
{"process":0,"type":"invoke","f":"cas","value":[1,2],"time":1}
{"process":0,"type":"fail","f":"cas","value":"did not swap","time":2}"#;
        let h = read_history(text.as_bytes()).unwrap();
        validate(&h, Vocabulary::Model(Model::CasRegister)).unwrap();
    }

    #[test]
    fn membership_changes_and_leader_transfers_are_nemesis_events_like_any_other() {
        let text = r#"{"process":"nemesis","type":"info","f":"member","value":{"phase":"start","change":"replace","targets":["n2","n4"],"add":["n4"],"remove":["n2"],"leader":false,"before":{"voters":["n1","n2","n3"],"learners":[]}},"time":0}
{"process":"nemesis","type":"info","f":"transfer","value":{"phase":"start","targets":["n3"],"from":"n1"},"time":1}
{"process":0,"type":"invoke","f":"submit","value":"t1","time":2}
{"process":0,"type":"fail","f":"submit","value":"t1","error":"removed: http 410: this node was removed","time":3}
{"process":"nemesis","type":"info","f":"transfer","value":{"phase":"end","targets":["n3"],"leader":null},"time":4}
{"process":"nemesis","type":"info","f":"member","value":{"phase":"end","change":"replace","targets":["n2","n4"],"committed":false,"after":{"voters":["n1","n2","n3"],"learners":["n4"]},"error":"http 503"},"time":5}
{"process":1000000,"type":"invoke","f":"deliver","value":{"from":0,"final":true,"member":false},"node":"n2","time":6}
{"process":1000000,"type":"fail","f":"deliver","value":{"from":0,"final":true,"member":false},"node":"n2","time":7}"#;
        let h = read_history(text.as_bytes()).unwrap();
        validate(&h, Vocabulary::Ordering).unwrap();
        crate::ordering::check_reader(text.as_bytes()).unwrap();
    }
}
