//! NATS's answers to a publish, sorted into ok / fail / info
//! (docs/nats.md, "From answers to outcomes"). Pure: no IO.
//!
//! One rule decides: a publish is `fail` only when it certainly was not
//! stored on any server — it never left the client, no server had the
//! stream's subject (NATS's "no responders"), or the stream's leader
//! refused it before proposing it to the stream's Raft group. Everything
//! else that is not an acknowledgement is `info`, because a message whose
//! proposal reached the Raft log may be committed and stored later, on some
//! servers, whatever the leader answered.

use super::server::STREAM_NAME;
use crate::Outcome;
use serde_json::Value;

/// JetStream error codes (`err_code`) the leader answers before it proposes
/// the message, from the stream's configuration alone, so that no server
/// stores it: the message exceeds the stream's maximum size (10054), its
/// headers exceed 64 KiB (10097).
const REJECTED_BEFORE_PROPOSAL: [u64; 2] = [10054, 10097];

/// What one publish attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Acknowledged at this stream sequence; `duplicate`: JetStream found
    /// the message id among those stored within its duplicate window and
    /// answered with the sequence of that earlier copy.
    Stored {
        /// The stream sequence (the transaction's position).
        sequence: u64,
        /// Whether the answer was to an earlier copy.
        duplicate: bool,
    },
    /// Certainly not stored; the server cannot take messages now (it may
    /// later): never sent, no responders, or the leader could not propose.
    Refused(String),
    /// Certainly not stored, and never will be: the message breaks the
    /// stream's limits.
    Rejected(String),
    /// Unknown: it may have been stored, or may be later.
    Unknown(String),
}

impl Attempt {
    /// Whether another attempt with the same message id may settle it.
    pub fn worth_retrying(&self) -> bool {
        matches!(self, Attempt::Refused(_) | Attempt::Unknown(_))
    }
}

/// Sorts the payload of the answer to a publish (JetStream's `PubAck`
/// JSON, or its error object).
pub fn ack_answer(payload: &[u8]) -> Attempt {
    let answer: Value = match serde_json::from_slice(payload) {
        Ok(answer) => answer,
        Err(e) => {
            let text = String::from_utf8_lossy(payload);
            return Attempt::Unknown(format!("unreadable acknowledgement `{text}`: {e}"));
        }
    };
    if let Some(error) = answer.get("error") {
        return error_answer(error);
    }
    let stream = answer.get("stream").and_then(Value::as_str);
    let sequence = answer.get("seq").and_then(Value::as_u64);
    match (stream, sequence) {
        (Some(STREAM_NAME), Some(sequence)) if sequence > 0 => Attempt::Stored {
            sequence,
            duplicate: answer
                .get("duplicate")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        },
        _ => Attempt::Unknown(format!("acknowledgement without a sequence: {answer}")),
    }
}

/// Sorts JetStream's `{"code", "err_code", "description"}`.
fn error_answer(error: &Value) -> Attempt {
    let code = error.get("code").and_then(Value::as_u64).unwrap_or(0);
    let err_code = error.get("err_code").and_then(Value::as_u64).unwrap_or(0);
    let description = error
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("");
    let text = format!("jetstream {code}/{err_code}: {description}");
    if REJECTED_BEFORE_PROPOSAL.contains(&err_code) {
        return Attempt::Rejected(text);
    }
    // The one answer without an err_code that a publish gets in 2.9 is
    // the leader's when its Raft node refused the proposal (not leader
    // any more, or an earlier write error): the entry never entered the
    // log.
    if code == 503 && err_code == 0 {
        return Attempt::Refused(text);
    }
    Attempt::Unknown(text)
}

/// The outcome of a submit from its attempts in order (every attempt
/// carries the same message id, so at most one copy is stored): ok at the
/// first acknowledgement; else info if any attempt may have been stored;
/// else fail (`Unavailable` when the last refusal may pass later).
pub fn settle(id: &str, attempts: &[Attempt]) -> Outcome {
    // The acknowledged stream sequence is the message's position: the
    // ordering checker holds the final copies to it (`ack-position-mismatch`).
    // A retried publish the stream deduplicated names the same sequence.
    if let Some(sequence) = attempts.iter().find_map(|a| match a {
        Attempt::Stored { sequence, .. } => Some(*sequence),
        _ => None,
    }) {
        return Outcome::Ok(serde_json::json!({"id": id, "position": sequence}));
    }
    let reasons = || {
        attempts
            .iter()
            .map(|a| match a {
                Attempt::Refused(e) | Attempt::Rejected(e) | Attempt::Unknown(e) => e.as_str(),
                Attempt::Stored { .. } => "stored",
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    if attempts.iter().any(|a| matches!(a, Attempt::Unknown(_))) {
        return Outcome::Info(reasons());
    }
    match attempts.last() {
        Some(Attempt::Rejected(_)) => Outcome::Fail(reasons()),
        Some(_) => Outcome::Unavailable(reasons()),
        None => Outcome::Fail("no publish attempted".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_and_errors_are_sorted() {
        let cases: [(&str, Attempt); 8] = [
            (
                r#"{"stream":"ordeal","seq":7}"#,
                Attempt::Stored {
                    sequence: 7,
                    duplicate: false,
                },
            ),
            (
                r#"{"stream":"ordeal","seq":7,"duplicate":true}"#,
                Attempt::Stored {
                    sequence: 7,
                    duplicate: true,
                },
            ),
            (
                r#"{"stream":"other","seq":7}"#,
                Attempt::Unknown(
                    r#"acknowledgement without a sequence: {"seq":7,"stream":"other"}"#.into(),
                ),
            ),
            (
                r#"{"stream":"ordeal","error":{"code":503,"description":"not leader"}}"#,
                Attempt::Refused("jetstream 503/0: not leader".into()),
            ),
            (
                r#"{"error":{"code":400,"err_code":10054,"description":"message size exceeds maximum allowed"}}"#,
                Attempt::Rejected(
                    "jetstream 400/10054: message size exceeds maximum allowed".into(),
                ),
            ),
            (
                r#"{"error":{"code":503,"err_code":10077,"description":"write error"}}"#,
                Attempt::Unknown("jetstream 503/10077: write error".into()),
            ),
            (
                r#"{"error":{"code":503,"err_code":10023,"description":"insufficient resources"}}"#,
                Attempt::Unknown("jetstream 503/10023: insufficient resources".into()),
            ),
            (
                "not json",
                Attempt::Unknown(
                    "unreadable acknowledgement `not json`: expected ident at line 1 column 2"
                        .into(),
                ),
            ),
        ];
        for (payload, expected) in cases {
            assert_eq!(ack_answer(payload.as_bytes()), expected, "{payload}");
        }
    }

    #[test]
    fn attempts_settle_into_one_outcome() {
        let stored = Attempt::Stored {
            sequence: 3,
            duplicate: true,
        };
        let refused = Attempt::Refused("no responders".into());
        let unknown = Attempt::Unknown("timed out".into());
        let rejected = Attempt::Rejected("too large".into());
        let ok = Outcome::Ok(serde_json::json!({"id": "t1", "position": 3}));
        assert_eq!(settle("t1", &[unknown.clone(), stored]), ok);
        assert!(
            matches!(settle("t1", &[unknown.clone(), refused.clone()]), Outcome::Info(e) if e == "timed out; no responders")
        );
        assert!(matches!(
            settle("t1", &[refused.clone(), refused.clone()]),
            Outcome::Unavailable(_)
        ));
        assert!(matches!(
            settle("t1", &[refused, rejected]),
            Outcome::Fail(_)
        ));
        assert!(matches!(settle("t1", &[]), Outcome::Fail(_)));
        assert!(unknown.worth_retrying());
        assert!(!Attempt::Rejected(String::new()).worth_retrying());
    }
}
