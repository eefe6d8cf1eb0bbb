//! Histories (`docs/history.md`): event types, a streaming JSON Lines
//! reader that validates as it goes, Jepsen's EDN read into the same
//! events, and the pairing of invokes with their completions into
//! operations.
//!
//! Layers, lowest first: [`event`] (what an event is, built from a JSON
//! object and validated), then the readers [`jsonl`] and [`edn`], then this
//! module, which picks a reader by format. No lower layer imports a higher.

pub mod edn;
pub(crate) mod event;
mod jsonl;

pub(crate) use event::field_err;
pub use event::{Event, EventType, History, HistoryError, Op, Process};
pub use jsonl::{for_each_event, read_history};

use std::io::{BufRead, Read};
use std::path::Path;
use std::str::FromStr;

/// How a history file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON Lines, one event object per line (`docs/history.md`).
    Jsonl,
    /// Jepsen's EDN: one map per line, or one vector of maps.
    Edn,
}

impl Format {
    /// The format a file's name implies: `.edn` is EDN, anything else JSON
    /// Lines.
    pub fn of_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("edn") => Format::Edn,
            _ => Format::Jsonl,
        }
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "edn" => Ok(Format::Edn),
            other => Err(format!("unknown format `{other}` (expected jsonl or edn)")),
        }
    }
}

/// Reads and validates a history in the given format.
pub fn read_history_as(reader: impl BufRead, format: Format) -> Result<History, HistoryError> {
    match format {
        Format::Jsonl => read_history(reader),
        Format::Edn => {
            let mut text = String::new();
            let read = reader
                .take(edn::EDN_BYTES_MAX + 1)
                .read_to_string(&mut text)
                .map_err(|source| HistoryError::Open { source })?;
            if read as u64 > edn::EDN_BYTES_MAX {
                return Err(HistoryError::Open {
                    source: std::io::Error::other(format!(
                        "an EDN history is read whole, and this one is larger than {} bytes",
                        edn::EDN_BYTES_MAX
                    )),
                });
            }
            edn::read_edn_history(&text)
        }
    }
}

/// Opens and reads a history file; `format` defaults to the one its name
/// implies ([`Format::of_path`]).
pub fn read_history_file(path: &Path, format: Option<Format>) -> Result<History, HistoryError> {
    let file = std::fs::File::open(path).map_err(|source| HistoryError::Open { source })?;
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    read_history_as(reader, format.unwrap_or_else(|| Format::of_path(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<History, HistoryError> {
        read_history(text.as_bytes())
    }

    #[test]
    fn the_spec_example_reads_and_pairs() {
        let text = r#"{"index":0,"process":0,"type":"invoke","f":"write","key":"x","value":3,"time":1000}
{"index":1,"process":1,"type":"invoke","f":"read","key":"x","value":null,"time":1200}
{"index":2,"process":0,"type":"ok","f":"write","key":"x","value":3,"time":5100}
{"index":3,"process":1,"type":"ok","f":"read","key":"x","value":3,"time":5300,"extra":"ignored"}
{"index":4,"process":"nemesis","type":"info","f":"partition","value":{"grudge":[["n1"],["n2","n3"]]},"time":6000}
"#;
        let h = read(text).unwrap();
        assert_eq!(h.events.len(), 5);
        let ops = h.ops();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[1].output, serde_json::json!(3));
        assert_eq!(ops[0].complete_time, Some(5100));
        let line = serde_json::to_string(&h.events[4]).unwrap();
        assert!(
            line.contains(r#""process":"nemesis""#) && !line.contains("node"),
            "{line}"
        );
    }

    #[test]
    fn indexes_are_positions_and_lines_are_file_lines() {
        let text = "\n{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"w\",\"time\":1}\n\n{\"process\":0,\"type\":\"ok\",\"f\":\"w\",\"time\":2}\n";
        let h = read(text).unwrap();
        assert_eq!(h.events[1].index, 1, "a missing index is the position");
        assert_eq!((h.line_of(0), h.line_of(1)), (2, 4));
    }

    #[test]
    fn every_malformation_names_line_and_field() {
        let cases = [
            (r#"{"process":0,"type":"ok","f":"read","value":1,"time":1}"#, "line 1: field `type`"),
            ("{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"time\":1}\n{\"process\":0,\"type\":\"invoke\",\"f\":\"read\",\"time\":2}", "line 2: field `process`"),
            ("{\"process\":0,\"type\":\"invoke\",\"f\":\"w\",\"time\":1}\n{\"process\":0,\"type\":\"info\",\"f\":\"w\",\"time\":2}\n{\"process\":0,\"type\":\"invoke\",\"f\":\"w\",\"time\":3}", "line 3: field `process`"),
            (r#"{"process":0,"type":"maybe","f":"read","time":1}"#, "line 1: field `type`"),
            ("{\"process\":0,\"type\":\"invoke\",\"f\":\"r\",\"time\":5}\n{\"process\":0,\"type\":\"ok\",\"f\":\"r\",\"time\":4}", "line 2: field `time`"),
            (r#"{"process":-1,"type":"invoke","f":"read","time":1}"#, "line 1: field `process`"),
            (r#"{"process":0,"type":"invoke","time":1}"#, "line 1: field `f`"),
            ("not json", "line 1: not a JSON object"),
            ("{\"process\":0,\"type\":\"invoke\",\"f\":\"r\",\"time\":1}\n\n{\"process\": 1, \"type\" \"ok\"}", "line 3: not a JSON object: expected `:` at column 23"),
            (r#"{"index":7,"process":0,"type":"invoke","f":"read","time":1}"#, "line 1: field `index`: 7 is not the event's position 0"),
            (r#"[{"process":0,"type":"invoke","f":"read","time":1}]"#, "line 1: not a JSON object: this file looks like one JSON array"),
            ("[\n{\"process\":0}\n]", "line 1: not a JSON object: this file looks like one JSON array"),
            ("{:process 0, :type :invoke, :f :read, :time 1}", "line 1: not a JSON object: this looks like EDN"),
            ("{\n\"process\": 0}", "line 1: not a JSON object: an event spread over several lines"),
        ];
        for (text, expected) in cases {
            let e = read(text).unwrap_err().to_string();
            assert!(
                e.starts_with(expected),
                "{text}\n  gave: {e}\n  want: {expected}"
            );
        }
    }
}
