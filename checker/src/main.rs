//! `checker`: judge histories from ordeal or any tool that writes the
//! history format (`docs/history.md`), in JSON Lines or Jepsen's EDN.
//!
//! Exit codes: 0 all valid, 1 any invalid, 2 any unknown (a budget ran
//! out; none invalid), 3 bad input (a history refused, or a file that
//! cannot be read or written).

use checker::history::{read_history_as, read_history_file, Format, History, HistoryError};
use checker::linearizable::{Budget, Model, Scope};
use checker::validate::{validate, Vocabulary};
use checker::verdict::{CheckResult, Validity};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::fmt::Write as _;
use std::io::{BufRead, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod bench;

/// Linearizability and ordering checkers for ordeal histories.
#[derive(Debug, Parser)]
#[command(
    name = "checker",
    version,
    about,
    after_help = "Exit codes: 0 every file valid; 1 any invalid; 2 any unknown (a time or memory budget ran out, or no final read for `ordering`), none invalid; 3 any file refused (a history that breaks docs/history.md, named by file, line and field) or unreadable."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The history files to judge and how to print verdicts.
#[derive(Debug, Args)]
struct Inputs {
    /// One JSON object per file instead of text; a refused file gives
    /// `{"file", "error", "line"}`.
    #[arg(long)]
    json: bool,
    /// The files' format; default: by extension (`.edn` is EDN, anything
    /// else and stdin JSON Lines). See docs/history.md.
    #[arg(long, value_parser = ["jsonl", "edn"])]
    format: Option<String>,
    /// History files (`-` = stdin).
    #[arg(required = true)]
    files: Vec<PathBuf>,
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
        /// Judge every key within the budget (after the first invalid key,
        /// the others get one more second), instead of stopping at the
        /// first invalid key and naming the keys not decided.
        #[arg(long)]
        all_keys: bool,
        /// Write `linearizability-<key>.html` into DIR for each failing key;
        /// with several files, into DIR/<n>-<file stem>/.
        #[arg(long, value_name = "DIR")]
        picture: Option<PathBuf>,
        #[command(flatten)]
        inputs: Inputs,
    },
    /// Check ordering-workload histories (agreement, loss, order, ...).
    Ordering {
        #[command(flatten)]
        inputs: Inputs,
    },
    /// Measure the linearizability checker on seeded generated histories.
    Bench(bench::BenchArgs),
}

/// A verdict and the failure pictures (file name, HTML) that go with it.
struct Judged {
    result: CheckResult,
    pictures: Vec<(String, String)>,
    /// When the first violation was found, ms into the check (the
    /// linearizability checker's, when it found one).
    first_violation_ms: Option<f64>,
}

impl Judged {
    /// A verdict with no pictures and no first-violation time.
    fn plain(result: CheckResult) -> Judged {
        Judged {
            result,
            pictures: Vec::new(),
            first_violation_ms: None,
        }
    }
}

/// A checker applied to each file; `true` asks for the pictures. It may
/// still refuse what validation let through (ordering: a delivered block
/// it does not understand).
type Judge = Box<dyn Fn(&History, bool) -> Result<Judged, HistoryError>>;

/// A checker that judges a JSON Lines history as it reads it, validating
/// each event on the way (ordering: a long run's final chains need not fit
/// in memory).
type StreamJudge = fn(Box<dyn BufRead>) -> Result<CheckResult, HistoryError>;

/// What to do with every file.
struct Plan {
    inputs: Inputs,
    vocabulary: Vocabulary,
    judge: Judge,
    /// Used instead of `judge` for JSON Lines input when present.
    stream: Option<StreamJudge>,
    picture_dir: Option<PathBuf>,
}

/// Reads a history and checks it speaks the checker's vocabulary.
fn load(
    path: &Path,
    format: Option<Format>,
    vocabulary: Vocabulary,
) -> Result<History, HistoryError> {
    let history = if path == Path::new("-") {
        read_history_as(std::io::stdin().lock(), format.unwrap_or(Format::Jsonl))?
    } else {
        read_history_file(path, format)?
    };
    validate(&history, vocabulary)?;
    Ok(history)
}

/// The format a file is read in: the flag's, else the name's (stdin: JSON
/// Lines).
fn effective_format(path: &Path, format: Option<Format>) -> Format {
    format.unwrap_or_else(|| {
        if path == Path::new("-") {
            Format::Jsonl
        } else {
            Format::of_path(path)
        }
    })
}

/// Opens a history for reading (`-` is stdin).
fn open(path: &Path) -> Result<Box<dyn BufRead>, HistoryError> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let file = std::fs::File::open(path).map_err(|source| HistoryError::Open { source })?;
    Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
}

fn plan(command: Command) -> Result<Plan, String> {
    match command {
        Command::Bench(_) => unreachable!("bench runs before planning"),
        Command::Ordering { inputs } => Ok(Plan {
            inputs,
            vocabulary: Vocabulary::Ordering,
            judge: Box::new(|h: &History, _| {
                checker::ordering::check_history(h).map(Judged::plain)
            }),
            stream: Some(checker::ordering::check_reader),
            picture_dir: None,
        }),
        Command::Linearizable {
            model,
            time_limit_s,
            memory_mb,
            all_keys,
            picture,
            inputs,
        } => {
            let model: Model = model.parse().map_err(|e| format!("--model: {e}"))?;
            let budget = Budget {
                time_limit: Duration::from_secs(time_limit_s),
                memory_bytes_max: memory_mb << 20,
            };
            let scope = if all_keys {
                Scope::AllKeys
            } else {
                Scope::FirstInvalidKey
            };
            Ok(Plan {
                inputs,
                vocabulary: Vocabulary::Model(model),
                judge: Box::new(move |h: &History, draw: bool| {
                    Ok(linearizable(h, model, budget, scope, draw))
                }),
                stream: None,
                picture_dir: picture,
            })
        }
    }
}

/// The linearizability checker on one history; `draw` asks for pictures.
fn linearizable(h: &History, model: Model, budget: Budget, scope: Scope, draw: bool) -> Judged {
    let report = checker::linearizable::check_history_scoped(h, model, budget, scope);
    Judged {
        result: report.to_check_result(),
        pictures: if draw {
            report.every_picture().collect()
        } else {
            Vec::new()
        },
        first_violation_ms: report.first_violation_ms,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Bench(args) = cli.command {
        return bench::run(args);
    }
    let plan = match plan(cli.command) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("checker: {e}");
            return ExitCode::from(3);
        }
    };
    let format = plan
        .inputs
        .format
        .as_deref()
        .map(|f| f.parse::<Format>().expect("clap allows only known formats"));
    let several = plan.inputs.files.len() > 1;
    let mut worst = 0u8;
    let mut stdout = std::io::stdout().lock();
    for (n, file) in plan.inputs.files.iter().enumerate() {
        let picture_dir = plan.picture_dir.as_ref().map(|dir| {
            if several {
                dir.join(format!("{}-{}", n + 1, stem(file)))
            } else {
                dir.clone()
            }
        });
        let (code, text) = check_file(&plan, format, file, picture_dir.as_deref());
        worst = worse(worst, code);
        if let Err(e) = stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
        {
            // A reader that went away (`checker … | head`) wants no more.
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("checker: writing the verdicts: {e}");
                worst = worse(worst, 3);
            }
            break;
        }
    }
    ExitCode::from(worst)
}

/// Reads and judges one file: the verdict and the ms spent reading apart
/// from judging (0 for a streaming checker, which does both at once).
fn judge_file(
    plan: &Plan,
    format: Option<Format>,
    file: &Path,
    draw: bool,
) -> Result<(Judged, f64), HistoryError> {
    if let (Some(stream), Format::Jsonl) = (plan.stream, effective_format(file, format)) {
        return Ok((Judged::plain(stream(open(file)?)?), 0.0));
    }
    let parse_started = Instant::now();
    let history = load(file, format, plan.vocabulary)?;
    let parse_ms = parse_started.elapsed().as_secs_f64() * 1e3;
    Ok(((plan.judge)(&history, draw)?, parse_ms))
}

/// Judges one file: its exit code and what it prints on stdout.
fn check_file(
    plan: &Plan,
    format: Option<Format>,
    file: &Path,
    picture_dir: Option<&Path>,
) -> (u8, String) {
    let (judged, parse_ms) = match judge_file(plan, format, file, picture_dir.is_some()) {
        Ok(judged) => judged,
        Err(e) => return (3, refusal(file, &e, plan.inputs.json)),
    };
    let mut code = exit_code(judged.result.valid);
    let pictures = match picture_dir {
        Some(dir) => write_pictures(dir, &judged.pictures).unwrap_or_else(|e| {
            eprintln!("checker: {}: {e}", file.display());
            code = worse(code, 3);
            Vec::new()
        }),
        None => Vec::new(),
    };
    let r = &judged.result;
    let text = if plan.inputs.json {
        json!({"file": file, "valid": r.valid, "anomalies": r.anomalies, "counts": r.counts, "parse_ms": parse_ms, "check_ms": r.check_ms,
               "first_violation_ms": judged.first_violation_ms, "peak_rss_mb": peak_rss_mb(), "note": r.note, "pictures": pictures}).to_string() + "\n"
    } else {
        human(file, &judged, parse_ms, &pictures)
    };
    (code, text)
}

fn exit_code(valid: Validity) -> u8 {
    match valid {
        Validity::Valid => 0,
        Validity::Unknown => 2,
        Validity::Invalid => 1,
    }
}

/// Says why a file was refused: its JSON line for stdout, or on stderr.
fn refusal(file: &Path, e: &HistoryError, json_out: bool) -> String {
    if json_out {
        json!({"file": file, "error": e.to_string(), "line": e.line()}).to_string() + "\n"
    } else {
        eprintln!("checker: {}: {e}", shown(file));
        String::new()
    }
}

fn stem(file: &Path) -> String {
    match file.file_stem().and_then(|s| s.to_str()) {
        Some(s) if file != Path::new("-") => s.to_string(),
        _ => "stdin".to_string(),
    }
}

/// A file's name in messages (`-` is standard input).
fn shown(file: &Path) -> String {
    if file == Path::new("-") {
        "<stdin>".to_string()
    } else {
        file.display().to_string()
    }
}

/// Writes the pictures into `dir`; returns their paths.
fn write_pictures(dir: &Path, pictures: &[(String, String)]) -> std::io::Result<Vec<PathBuf>> {
    if pictures.is_empty() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())))?;
    pictures
        .iter()
        .map(|(name, html)| {
            let path = dir.join(name);
            std::fs::write(&path, html).map_err(|e| {
                std::io::Error::new(e.kind(), format!("writing {}: {e}", path.display()))
            })?;
            Ok(path)
        })
        .collect()
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

/// The verdict as text for a person.
fn human(file: &Path, judged: &Judged, parse_ms: f64, pictures: &[PathBuf]) -> String {
    let r = &judged.result;
    let verdict = match r.valid {
        Validity::Valid => "valid",
        Validity::Invalid => "INVALID",
        Validity::Unknown => "unknown",
    };
    let first = judged
        .first_violation_ms
        .map(|ms| format!(", first violation at {ms:.1} ms"))
        .unwrap_or_default();
    let mut out = format!(
        "{}: {} ({} checker; parse {parse_ms:.1} ms, check {:.1} ms{first})\n",
        file.display(),
        verdict,
        r.checker,
        r.check_ms
    );
    for (k, v) in &r.counts {
        let _ = writeln!(out, "  {k}: {v}");
    }
    for a in r.anomalies.iter().filter(|a| a.count > 0) {
        let _ = writeln!(out, "  anomaly {} ×{}", a.kind, a.count);
        for e in &a.examples {
            let _ = writeln!(out, "    {e}");
        }
    }
    if let Some(note) = &r.note {
        let _ = writeln!(out, "  note: {note}");
    }
    for p in pictures {
        let _ = writeln!(out, "  picture: {}", p.display());
    }
    out
}
