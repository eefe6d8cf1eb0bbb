//! ordeal's checkers: pure functions from a history to a verdict.
//!
//! - [`history`]: the history format, a validating streaming reader and the
//!   pairing of events into operations.
//! - [`edn`]: Jepsen's EDN histories, read into the same events.
//! - [`validate`]: what each checker understands; a history it does not is
//!   refused before it is judged.
//! - [`linearizable`]: Wing & Gong / Lowe search with memoisation,
//!   P-compositionality and sound reductions for `info` operations.
//! - [`ordering`]: agreement, integrity, no loss, no duplication and
//!   real-time order of a replicated ledger, hash-chained (ordeal-node) or
//!   a log of positions (NATS JetStream).
//! - [`verdict`]: verdicts as data.
//!
//! ```
//! let text = r#"{"process":0,"type":"invoke","f":"write","value":1,"time":1}
//! {"process":0,"type":"ok","f":"write","value":1,"time":2}
//! {"process":1,"type":"invoke","f":"read","value":null,"time":3}
//! {"process":1,"type":"ok","f":"read","value":1,"time":4}"#;
//! let history = checker::history::read_history(text.as_bytes()).unwrap();
//! // Refuse what the model does not define before judging.
//! let cas = checker::validate::Vocabulary::Model(checker::linearizable::Model::CasRegister);
//! checker::validate::validate(&history, cas).unwrap();
//! let budget = checker::linearizable::Budget::default();
//! let report = checker::linearizable::check_history(&history, checker::linearizable::Model::CasRegister, budget);
//! assert_eq!(report.valid, checker::verdict::Validity::Valid);
//! ```
//!
//! The checker never does IO beyond the reader it is handed, and never
//! reads a clock but the history's own (and its budget's deadline).
#![deny(missing_docs)]

pub use history::edn;
pub mod history;
pub mod linearizable;
pub mod ordering;
pub mod validate;
pub mod verdict;
