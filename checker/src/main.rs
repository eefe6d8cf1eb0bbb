//! `checker`: judge histories from ordeal or any tool that writes the
//! history format (`shared/spec/history.md`).
//!
//! Exit codes: 0 all valid, 1 any invalid, 2 any unknown (none invalid),
//! 3 bad input.

use anyhow::Context;
use checker::history::{read_history, History, HistoryError};
use checker::linearizable::{Budget, Model};
use checker::verdict::{CheckResult, Validity};
use clap::{Parser, Subcommand};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod bench;

/// Linearizability and ordering checkers for ordeal histories.
#[derive(Debug, Parser)]
#[command(name = "checker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check that each history is linearizable under a model.
    Linearizable {
        /// register, cas-register or kv.
        #[arg(long, default_value = "cas-register")]
        model: String,
        /// Give up (verdict unknown) after this many seconds per file.
        #[arg(long, default_value_t = 60)]
        time_limit_s: u64,
        /// Give up (verdict unknown) when memoisation needs more than this.
        #[arg(long, default_value_t = 2048)]
        memory_mb: u64,
        /// One JSON object per file instead of text.
        #[arg(long)]
        json: bool,
        /// History files (`-` = stdin).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Check ordering-workload histories (agreement, loss, order, ...).
    Ordering {
        /// One JSON object per file instead of text.
        #[arg(long)]
        json: bool,
        /// History files (`-` = stdin).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Measure the linearizability checker on seeded generated histories.
    Bench(bench::BenchArgs),
}

/// A checker applied to each file: the whole history in memory, or
/// (ordering) judged as it is read, so that long runs fit in memory.
enum Judge {
    Whole(Box<dyn Fn(&History) -> CheckResult>),
    Streaming(fn(Box<dyn BufRead>) -> Result<CheckResult, HistoryError>),
}

fn open(path: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
}

/// Judges one file: the result and the ms spent reading it apart from
/// judging (0 when both happen together).
fn judge_file(judge: &Judge, path: &Path) -> anyhow::Result<(CheckResult, f64)> {
    let name = || {
        if path == Path::new("-") {
            "<stdin>".into()
        } else {
            path.display().to_string()
        }
    };
    let reader = open(path)?;
    let parse_started = Instant::now();
    match judge {
        Judge::Streaming(check) => Ok((check(reader).with_context(name)?, 0.0)),
        Judge::Whole(check) => {
            let history = read_history(reader).with_context(name)?;
            let parse_ms = parse_started.elapsed().as_secs_f64() * 1e3;
            Ok((check(&history), parse_ms))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (json_out, files, judge): (bool, Vec<PathBuf>, Judge) = match cli.command {
        Command::Bench(args) => return bench::run(args),
        Command::Ordering { json, files } => (
            json,
            files,
            Judge::Streaming(checker::ordering::check_reader),
        ),
        Command::Linearizable {
            model,
            time_limit_s,
            memory_mb,
            json,
            files,
        } => {
            let model: Model = match model.parse() {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("checker: --model: {e}");
                    return ExitCode::from(3);
                }
            };
            let budget = Budget {
                time_limit: Duration::from_secs(time_limit_s),
                memory_bytes_max: memory_mb << 20,
            };
            (
                json,
                files,
                Judge::Whole(Box::new(move |h: &History| {
                    checker::linearizable::check_history(h, model, budget).to_check_result()
                })),
            )
        }
    };
    let mut worst = 0u8;
    for file in files {
        let (result, parse_ms) = match judge_file(&judge, &file) {
            Ok(judged) => judged,
            Err(e) => {
                eprintln!("checker: {e:#}");
                worst = worse(worst, 3);
                continue;
            }
        };
        let code = match result.valid {
            Validity::Valid => 0,
            Validity::Unknown => 2,
            Validity::Invalid => 1,
        };
        worst = worse(worst, code);
        if json_out {
            println!(
                "{}",
                json!({"file": file, "valid": result.valid, "anomalies": result.anomalies, "counts": result.counts, "parse_ms": parse_ms, "check_ms": result.check_ms, "peak_rss_mb": peak_rss_mb(), "note": result.note})
            );
        } else {
            print_human(&file, &result, parse_ms);
        }
    }
    ExitCode::from(worst)
}

/// This process's peak resident memory so far, MB (`VmHWM`; `null` where
/// /proc is missing).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Combines exit codes: bad input (3) over invalid (1) over unknown (2)
/// over valid (0).
fn worse(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        3 => 3,
        1 => 2,
        2 => 1,
        _ => 0,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

fn print_human(file: &Path, r: &CheckResult, parse_ms: f64) {
    let verdict = match r.valid {
        Validity::Valid => "valid",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "unknown",
    };
    println!(
        "{}: {} ({} checker; parse {parse_ms:.1} ms, check {:.1} ms)",
        file.display(),
        verdict,
        r.checker,
        r.check_ms
    );
    for (k, v) in &r.counts {
        println!("  {k}: {v}");
    }
    for a in r.anomalies.iter().filter(|a| a.count > 0) {
        println!("  anomaly {} ×{}", a.kind, a.count);
        for e in &a.examples {
            println!("    {e}");
        }
    }
    if let Some(note) = &r.note {
        println!("  note: {note}");
    }
}
