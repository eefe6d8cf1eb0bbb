//! Jepsen's EDN histories (`docs/history.md`, "EDN"): one map per line, or
//! one vector of maps, read with `clojure-reader` and mapped onto our
//! events: keywords become strings, `nil` null, vectors, lists and sets
//! arrays, tags are dropped for the value they tag, and the nemesis's
//! operations become our nemesis events.
//!
//! Each map is translated to the JSON object a JSON Lines history would
//! hold and then read by the same code, so both formats obey one set of
//! rules and name the same fields in their errors.

use crate::history::event::{event_from_object, Collector, History, HistoryError};
use clojure_reader::edn::{self, Edn};
use clojure_reader::error::Code;
use serde_json::{json, Map, Number, Value};

/// An EDN history is parsed whole: larger files are refused.
pub const EDN_BYTES_MAX: u64 = 8 << 30;

/// Values nested deeper than this are refused (the translation recurses).
pub const EDN_DEPTH_MAX: usize = 128;

/// Reads a whole EDN history.
pub fn read_edn_history(text: &str) -> Result<History, HistoryError> {
    let mut cursor = Cursor {
        text,
        pos: 0,
        line: 1,
    };
    cursor.skip_blank();
    if cursor.rest().starts_with("{\"") {
        return Err(HistoryError::Edn {
            line: cursor.line,
            problem: "this looks like JSON Lines: name the file `.jsonl` or pass `--format jsonl`"
                .into(),
        });
    }
    let in_vector = cursor.rest().starts_with('[');
    if in_vector {
        cursor.pos += 1;
    }
    let mut collector = Collector::default();
    let mut nemesis = JepsenNemesis::default();
    let mut untimed = Untimed::default();
    loop {
        cursor.skip_blank();
        let line = cursor.line;
        match cursor.rest().chars().next() {
            None if in_vector => {
                return Err(edn_err(line, "the vector of events has no closing `]`"))
            }
            None => break,
            Some(']') if in_vector => {
                cursor.pos += 1;
                cursor.skip_blank();
                if !cursor.rest().is_empty() {
                    return Err(edn_err(cursor.line, "text after the vector of events"));
                }
                break;
            }
            Some(_) => {}
        }
        let (form, rest) = edn::read(cursor.rest()).map_err(|e| parse_err(line, &e))?;
        cursor.advance_to(rest);
        let mut obj = event_object(line, &form)?;
        nemesis.translate(&mut obj);
        untimed.fill(line, &mut obj, collector.position())?;
        let event = event_from_object(line, &mut obj, collector.position())?;
        collector.push(line, event)?;
    }
    Ok(collector.finish())
}

/// Knossos's and older Jepsen histories carry no `:time`: their file order
/// is their real-time order, so an event's position stands in for its time.
/// A history must be all timed or all untimed: a mix would compare positions
/// with nanoseconds.
#[derive(Default)]
struct Untimed {
    /// Whether the first event had no `:time`; `None` before the first.
    first_untimed: Option<bool>,
}

impl Untimed {
    fn fill(
        &mut self,
        line: u64,
        obj: &mut Map<String, Value>,
        position: u64,
    ) -> Result<(), HistoryError> {
        let untimed = !obj.contains_key("time");
        match self.first_untimed {
            None => self.first_untimed = Some(untimed),
            Some(first) if first != untimed => {
                return Err(edn_err(line, "field `time`: some events carry `:time` and some do not; give every event a time, or none (file order is then the time order)"));
            }
            Some(_) => {}
        }
        if untimed {
            obj.insert("time".to_string(), Value::from(position));
        }
        Ok(())
    }
}

/// Where the reader is in the text, in bytes and lines.
struct Cursor<'t> {
    text: &'t str,
    pos: usize,
    line: u64,
}

impl<'t> Cursor<'t> {
    fn rest(&self) -> &'t str {
        &self.text[self.pos..]
    }

    /// Moves to where `rest` (a suffix of the text) begins, counting lines.
    fn advance_to(&mut self, rest: &str) {
        let to = self.text.len() - rest.len();
        self.line += self.text[self.pos..to].matches('\n').count() as u64;
        self.pos = to;
    }

    /// Skips whitespace, commas (whitespace in EDN) and `;` comments.
    fn skip_blank(&mut self) {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
            let trimmed = match trimmed.strip_prefix(';') {
                Some(comment) => comment.find('\n').map_or("", |i| &comment[i..]),
                None => trimmed,
            };
            if trimmed.len() == rest.len() {
                return;
            }
            self.advance_to(trimmed);
        }
    }
}

fn edn_err(line: u64, problem: impl Into<String>) -> HistoryError {
    HistoryError::Edn {
        line,
        problem: problem.into(),
    }
}

/// The parser's error, its line counted from the form's start.
fn parse_err(form_line: u64, e: &clojure_reader::error::Error) -> HistoryError {
    if e.code == Code::UnexpectedEOF {
        // The parser stops at the end of the file; the form's start is
        // where the reader can look.
        return edn_err(
            form_line,
            "the form that starts on this line is never closed (an unclosed `{`, `[`, `(` or string)",
        );
    }
    let line = form_line + e.line.map_or(0, |l| l.saturating_sub(1) as u64);
    let what = match &e.code {
        Code::UnmatchedDelimiter(c) => format!("unmatched `{c}`"),
        Code::InvalidChar => "an invalid character".to_string(),
        Code::InvalidEscape => "an invalid escape in a string".to_string(),
        Code::InvalidKeyword => "an invalid keyword".to_string(),
        Code::InvalidNumber | Code::InvalidRadix(_) => "an invalid number".to_string(),
        Code::InvalidTag => {
            "a tag the reader cannot read (`##Inf` and `##NaN` are among them)".to_string()
        }
        Code::HashMapDuplicateKey => "a map names the same key twice".to_string(),
        Code::SetDuplicateKey => "a set holds the same element twice".to_string(),
        other => format!("{other:?}"),
    };
    let at = e
        .column
        .map(|c| format!(" at column {c}"))
        .unwrap_or_default();
    edn_err(line, format!("{what}{at}"))
}

/// A top-level form as the JSON object of one event (a tagged map, such as
/// `#jepsen.history.Op{…}`, is the map it tags).
fn event_object(line: u64, form: &Edn) -> Result<Map<String, Value>, HistoryError> {
    let form = match form {
        Edn::Tagged(_, inner) => inner.as_ref(),
        other => other,
    };
    let Edn::Map(_) = form else {
        return Err(edn_err(line, format!("expected a map such as {{:process 0, :type :invoke, :f :read, :value nil, :time 0}}, got {}", shorten(&form.to_string()))));
    };
    match to_json(form, 0) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => unreachable!("a map translates to an object"),
        Err(problem) => Err(edn_err(line, problem)),
    }
}

fn shorten(text: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 60;
    match text.char_indices().nth(SHOWN_CHARS_MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// The JSON value of an EDN value.
fn to_json(e: &Edn, depth: usize) -> Result<Value, String> {
    if depth > EDN_DEPTH_MAX {
        return Err(format!("values nested deeper than {EDN_DEPTH_MAX}"));
    }
    let all = |items: &mut dyn Iterator<Item = &Edn>| {
        items
            .map(|i| to_json(i, depth + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array)
    };
    Ok(match e {
        Edn::Nil => Value::Null,
        Edn::Bool(b) => Value::Bool(*b),
        Edn::Int(i) => Value::from(*i),
        Edn::Double(d) => {
            Number::from_f64(d.0).map_or_else(|| Value::String(e.to_string()), Value::Number)
        }
        Edn::Rational((n, d)) => Number::from_f64(*n as f64 / *d as f64)
            .map_or_else(|| Value::String(e.to_string()), Value::Number),
        Edn::Str(s) | Edn::Key(s) | Edn::Symbol(s) => Value::String(s.to_string()),
        Edn::Char(c) => Value::String(c.to_string()),
        Edn::Vector(items) | Edn::List(items) => all(&mut items.iter())?,
        Edn::Set(items) => all(&mut items.iter())?,
        Edn::Map(entries) => {
            let mut obj = Map::new();
            for (k, v) in entries {
                obj.insert(key_text(k), to_json(v, depth + 1)?);
            }
            Value::Object(obj)
        }
        Edn::Tagged(_, inner) => to_json(inner, depth + 1)?,
        other => Value::String(other.to_string()),
    })
}

/// A map key as a JSON object key: a keyword or string is its name,
/// anything else its EDN text.
fn key_text(k: &Edn) -> String {
    match k {
        Edn::Key(s) | Edn::Str(s) | Edn::Symbol(s) => s.to_string(),
        other => other.to_string(),
    }
}

/// Maps Jepsen's nemesis operations to our nemesis events
/// (`docs/history.md`, "Nemesis"). It remembers whether a kill is open,
/// because Jepsen's `:start` restarts killed nodes in the combined nemesis
/// and starts a partition in the classic partitioner.
#[derive(Default)]
struct JepsenNemesis {
    kill_open: bool,
}

impl JepsenNemesis {
    /// Rewrites a nemesis event in place; client events are left alone.
    fn translate(&mut self, obj: &mut Map<String, Value>) {
        if obj.get("process").and_then(Value::as_str) != Some("nemesis") {
            return;
        }
        let jepsen_f = obj
            .get("f")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let jepsen_type = obj.get("type").cloned().unwrap_or(Value::Null);
        let invoke = jepsen_type == "invoke";
        let original = json!({"f": jepsen_f, "type": jepsen_type, "value": obj.get("value").cloned().unwrap_or(Value::Null)});
        let mapped = match jepsen_f.as_str() {
            "start-partition" => Some(("partition", true)),
            "stop-partition" | "stop" => Some(("partition", false)),
            "start" if self.kill_open => Some(("kill", false)),
            "start" => Some(("partition", true)),
            "kill" => Some(("kill", true)),
            "pause" => Some(("pause", true)),
            "resume" => Some(("pause", false)),
            "bump-clock" | "strobe-clock" => Some(("clock", true)),
            "reset-clock" => Some(("clock", false)),
            _ => None,
        };
        let value = match mapped {
            Some((fault, starts)) => {
                if fault == "kill" && !invoke {
                    self.kill_open = starts;
                }
                obj.insert("f".into(), Value::from(fault));
                let phase = match (starts, invoke) {
                    (true, true) => "start",
                    (true, false) => "started",
                    (false, true) => "ending",
                    (false, false) => "end",
                };
                json!({"phase": phase, "jepsen": original})
            }
            None => json!({"jepsen": original}),
        };
        obj.insert("type".into(), Value::from("info"));
        obj.insert("value".into(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{EventType, Process};

    #[test]
    fn knossos_histories_without_time_take_their_position_as_time() {
        let text = "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :write, :value 1}\n";
        let h = read_edn_history(text).unwrap();
        let times: Vec<u64> = h.events.iter().map(|e| e.time).collect();
        assert_eq!(times, vec![0, 1]);
    }

    #[test]
    fn one_map_per_line_and_a_vector_read_the_same() {
        let lines = "; a Jepsen history\n{:index 0, :type :invoke, :process 0, :f :cas, :value [nil 1], :time 10}\n\n{:index 1 :type :ok :process 0 :f :cas :value [nil 1] :time 20}\n";
        let vector = "[{:index 0, :type :invoke, :process 0, :f :cas, :value [nil 1], :time 10}\n {:index 1 :type :ok :process 0 :f :cas :value [nil 1] :time 20}]\n";
        let a = read_edn_history(lines).unwrap();
        let b = read_edn_history(vector).unwrap();
        assert_eq!(a.events, b.events);
        assert_eq!(a.events[0].f, "cas");
        assert_eq!(a.events[1].kind, EventType::Ok);
        assert_eq!(a.events[0].value, json!([null, 1]));
        assert_eq!((a.line_of(0), a.line_of(1)), (2, 4));
        assert_eq!((b.line_of(0), b.line_of(1)), (1, 2));
    }

    #[test]
    fn tags_sets_and_nested_values_translate() {
        let text = "#jepsen.history.Op{:index 0, :type :info, :process :nemesis, :f :start-partition, :value #{\"n1\" \"n2\"}, :time 5}";
        let h = read_edn_history(text).unwrap();
        let e = &h.events[0];
        assert_eq!(e.process, Process::Nemesis);
        assert_eq!(e.f, "partition");
        assert_eq!(e.value["phase"], "started");
        assert_eq!(e.value["jepsen"]["value"], json!(["n1", "n2"]));
    }

    #[test]
    fn start_restarts_after_a_kill_and_partitions_otherwise() {
        let text = "{:process :nemesis :type :invoke :f :kill :value nil :time 1}
{:process :nemesis :type :info :f :kill :value {\"n1\" :killed} :time 2}
{:process :nemesis :type :invoke :f :start :value nil :time 3}
{:process :nemesis :type :info :f :start :value nil :time 4}
{:process :nemesis :type :invoke :f :start :value nil :time 5}
{:process :nemesis :type :info :f :stop :value nil :time 6}";
        let h = read_edn_history(text).unwrap();
        let got: Vec<(&str, &str)> = h
            .events
            .iter()
            .map(|e| (e.f.as_str(), e.value["phase"].as_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("kill", "start"),
                ("kill", "started"),
                ("kill", "ending"),
                ("kill", "end"),
                ("partition", "start"),
                ("partition", "end")
            ]
        );
        assert!(h.events.iter().all(|e| e.kind == EventType::Info));
    }

    #[test]
    fn malformed_edn_names_the_line() {
        let cases = [
            ("{:process 0 :type :invoke :f :read :value nil :time 1}\n{:process 0 :type :ok", "line 2: not an EDN map: the form that starts on this line is never closed"),
            ("{:process 0 :type :invoke :f :read :value nil :time 1}\n[1 2]", "line 2: not an EDN map: expected a map"),
            ("[{:process 0 :type :invoke :f :read :value nil :time 1}\n", "line 2: not an EDN map: the vector of events has no closing `]`"),
            ("[{:process 0 :type :invoke :f :read :value nil :time 1}]\n{}", "line 2: not an EDN map: text after the vector"),
            ("{\"process\":0,\"type\":\"invoke\"}", "line 1: not an EDN map: this looks like JSON Lines"),
            ("{:process 0 :type :invoke :f :read :value nil :time 1}\n\n{:process 0 :type :ok :f :read :value nil}", "line 3: not an EDN map: field `time`: some events"),
            ("{:process 0 :type :invoke :f :read :value nil :time 1}\n{:process 0 :type :ok :f :write :value 1 :time 2}", "line 2: field `f`"),
            ("{:index 3 :process 0 :type :invoke :f :read :value nil :time 1}", "line 1: field `index`"),
        ];
        for (text, expected) in cases {
            let e = read_edn_history(text).unwrap_err().to_string();
            assert!(
                e.starts_with(expected),
                "{text}\n  gave: {e}\n  want: {expected}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let depth = EDN_DEPTH_MAX + 10;
        let text = format!(
            "{{:process 0 :type :invoke :f :write :time 1 :value {}{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let e = read_edn_history(&text).unwrap_err().to_string();
        assert!(e.contains("nested deeper"), "{e}");
    }
}
