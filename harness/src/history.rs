//! The recorder: every operation and nemesis event, appended to
//! `history.jsonl` as it happens (`shared/spec/history.md`).
//!
//! Time is read and the line written under one lock, so that the file's
//! order is the order of the timestamps: an invoke is recorded before the
//! request leaves, a completion after the answer arrived, so every op's
//! window in the history contains its real one. The buffer is flushed by
//! [`Recorder::flush`] (the harness calls it every 100 ms), so a killed
//! harness still leaves a readable history up to its last flush.

#[cfg(test)]
use serde_json::json;
use serde_json::Value;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use workloads::Op;

/// Who an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// A client worker's logical process.
    Client(u64),
    /// The nemesis.
    Nemesis,
}

/// What an event says of its op (the history's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The op began.
    Invoke,
    /// The op took effect.
    Ok,
    /// The op certainly did not take effect.
    Fail,
    /// The op may or may not have taken effect (and every nemesis event).
    Info,
}

/// The history's `f`: a client's operation or a nemesis's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum F {
    /// A workload's operation.
    Op(Op),
    /// A fault, by its name (`kill`, `slow-disk`), on the nemesis's events.
    Fault(&'static str),
}

impl F {
    /// The name written in the history.
    pub fn name(self) -> &'static str {
        match self {
            F::Op(op) => op.as_str(),
            F::Fault(fault) => fault,
        }
    }
}

/// One event before it is timestamped.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    /// Who.
    pub process: Process,
    /// What the event says of its op.
    pub kind: Kind,
    /// The operation or fault.
    pub f: F,
    /// The object, when keyed.
    pub key: Option<&'a str>,
    /// Argument or result.
    pub value: &'a Value,
    /// The node the client talked to.
    pub node: Option<&'a str>,
    /// Why, on `fail` / `info`.
    pub error: Option<&'a str>,
}

/// One history line as written (field order as in history.md's examples).
#[derive(serde::Serialize)]
struct Line<'a> {
    index: u64,
    process: LineProcess,
    #[serde(rename = "type")]
    kind: Kind,
    f: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    value: &'a Value,
    time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// A client's number, or the string `"nemesis"`.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum LineProcess {
    Client(u64),
    Nemesis(&'static str),
}

struct Sink {
    index: u64,
    writer: BufWriter<Box<dyn Write + Send>>,
    /// The first write error. Kept, never cleared: once a line may be
    /// missing or cut, every later flush and the run's end report it, so
    /// that no verdict is drawn from a history with holes.
    failed: Option<String>,
}

/// Appends events to a history file; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    sink: Arc<Mutex<Sink>>,
    /// The history file, for the errors.
    path: Arc<Path>,
    origin: Instant,
    /// The wall clock at `origin`, ms since the Unix epoch: where the
    /// history's time 0 falls on the nodes' `real_ms` (docs/store.md).
    epoch_unix_ms: u64,
    busy_ns: Arc<AtomicU64>,
}

impl Recorder {
    /// Creates `path` and starts the clock of the history.
    pub fn create(path: &Path) -> anyhow::Result<Recorder> {
        let file =
            File::create(path).map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
        Ok(Recorder::on(path, Box::new(file)))
    }

    /// A recorder writing to `writer`, whose errors name `path`.
    fn on(path: &Path, writer: Box<dyn Write + Send>) -> Recorder {
        Recorder {
            sink: Arc::new(Mutex::new(Sink {
                index: 0,
                writer: BufWriter::with_capacity(1 << 20, writer),
                failed: None,
            })),
            path: Arc::from(path),
            origin: Instant::now(),
            epoch_unix_ms: crate::store::unix_ms(),
            busy_ns: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The wall clock at the history's time 0, ms since the Unix epoch.
    pub fn epoch_unix_ms(&self) -> u64 {
        self.epoch_unix_ms
    }

    /// The history's time of an instant, ns.
    pub fn time_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_nanos() as u64
    }

    /// Records one event; returns its time (ns since the test began).
    pub fn record(&self, r: &Record) -> u64 {
        let mut sink = self.sink.lock().expect("recorder lock");
        let entered = Instant::now();
        let time = self.time_of(entered);
        let line = Line {
            index: sink.index,
            process: match r.process {
                Process::Client(p) => LineProcess::Client(p),
                Process::Nemesis => LineProcess::Nemesis("nemesis"),
            },
            kind: r.kind,
            f: r.f.name(),
            key: r.key,
            value: r.value,
            time,
            node: r.node,
            error: r.error,
        };
        sink.index += 1;
        // Straight into the buffer: no intermediate map, copy or string.
        let written = serde_json::to_writer(&mut sink.writer, &line)
            .map_err(std::io::Error::from)
            .and_then(|()| sink.writer.write_all(b"\n"));
        if let Err(e) = written {
            sink.failed.get_or_insert(e.to_string());
        }
        drop(sink);
        self.busy_ns
            .fetch_add(entered.elapsed().as_nanos() as u64, Ordering::Relaxed);
        time
    }

    /// Records a nemesis event (`info`, process `nemesis`, `f` the fault's
    /// name).
    pub fn nemesis(&self, fault: &'static str, value: Value) -> u64 {
        self.record(&Record {
            process: Process::Nemesis,
            kind: Kind::Info,
            f: F::Fault(fault),
            key: None,
            value: &value,
            node: None,
            error: None,
        })
    }

    /// Writes buffered events to the file; reports the first write error,
    /// naming the file, at this and every later call (a history that lost
    /// a line stays failed).
    pub fn flush(&self) -> anyhow::Result<()> {
        let mut sink = self.sink.lock().expect("recorder lock");
        if sink.failed.is_none() {
            if let Err(e) = sink.writer.flush() {
                sink.failed = Some(e.to_string());
            }
        }
        match &sink.failed {
            Some(e) => Err(anyhow::anyhow!(
                "writing the history {}: {e} (lines may be missing: the run cannot be judged)",
                self.path.display()
            )),
            None => Ok(()),
        }
    }

    /// Events recorded so far.
    pub fn len(&self) -> u64 {
        self.sink.lock().expect("recorder lock").index
    }

    /// CPU-bound time spent recording (serialising and buffering).
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose first write fails and whose later ones succeed (a
    /// disk full for a moment).
    struct FailsOnce(Arc<Mutex<(bool, Vec<u8>)>>);

    impl Write for FailsOnce {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut state = self.0.lock().unwrap();
            if !state.0 {
                state.0 = true;
                return Err(std::io::Error::other("no space left on device"));
            }
            state.1.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_error_stays_reported_naming_the_file() {
        let state = Arc::new(Mutex::new((false, Vec::new())));
        let r = Recorder::on(
            Path::new("/store/t/history.jsonl"),
            Box::new(FailsOnce(state.clone())),
        );
        r.nemesis("kill", json!({"phase": "start", "targets": ["n1"]}));
        let first = r.flush().unwrap_err().to_string();
        assert!(
            first.contains("/store/t/history.jsonl") && first.contains("no space left"),
            "{first}"
        );
        // The disk works again: the lost line is still lost, and the run's
        // last flush must say so rather than end as if nothing happened.
        r.nemesis("kill", json!({"phase": "end", "targets": ["n1"]}));
        let last = r.flush().unwrap_err().to_string();
        assert!(last.contains("/store/t/history.jsonl"), "{last}");
    }

    #[test]
    fn lines_are_indexed_timed_in_order_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let r = Recorder::create(&path).unwrap();
        let threads: Vec<_> = (0..4u64)
            .map(|p| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let v = json!(i);
                        r.record(&Record {
                            process: Process::Client(p),
                            kind: Kind::Invoke,
                            f: F::Op(Op::Write),
                            key: Some("k"),
                            value: &v,
                            node: Some("n1"),
                            error: None,
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        r.nemesis("kill", json!({"phase": "start", "targets": ["n1"]}));
        r.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 801);
        let mut last = 0;
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(l["index"], i as u64);
            let t = l["time"].as_u64().unwrap();
            assert!(t >= last, "time goes backwards at line {i}");
            last = t;
        }
        assert_eq!(lines[800]["process"], "nemesis");
        assert!(lines[0].get("error").is_none());
    }
}
