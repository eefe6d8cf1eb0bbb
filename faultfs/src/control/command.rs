//! Control commands: parsed from a line ([`Command::parse`], pure) and
//! printed back as one ([`Command::line`]).

use thiserror::Error;

use crate::overlay::{CorruptKind, Damage, TailShape};

/// A delay's limit, in milliseconds.
pub const DELAY_MS_MAX: u64 = 600_000;

/// The error `fail fsync` makes fsync return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncError {
    /// EIO: the disk failed.
    Eio,
    /// ENOSPC: the disk is full.
    Enospc,
}

impl FsyncError {
    /// The errno value.
    pub fn errno(self) -> i32 {
        match self {
            FsyncError::Eio => libc::EIO,
            FsyncError::Enospc => libc::ENOSPC,
        }
    }

    /// The name used in the protocol.
    pub fn name(self) -> &'static str {
        match self {
            FsyncError::Eio => "EIO",
            FsyncError::Enospc => "ENOSPC",
        }
    }
}

/// A control command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `lose-unfsynced [keep|zero|garbage] [SEED]`: power loss; every
    /// pending change dropped, files grown by lost writes shaped by `tail`
    /// (garbage drawn from `seed`, or from the mount's seed).
    LoseUnfsynced {
        /// The tail shape.
        tail: TailShape,
        /// The seed, when given.
        seed: Option<u64>,
    },
    /// `flush`: pending data written to the backing files, no fsync.
    Flush,
    /// `torn [SEED] [keep|zero|garbage]`: a seeded prefix of the pending
    /// changes persisted, the rest dropped, files grown by lost writes
    /// shaped by `tail`. Without a seed, one is drawn from the mount's.
    Torn {
        /// The seed, when given.
        seed: Option<u64>,
        /// The tail shape.
        tail: TailShape,
    },
    /// `delay fsync MS [JITTER_MS]`: every fsync waits MS plus up to
    /// JITTER_MS (seeded). Undone by `heal`.
    DelayFsync {
        /// The fixed part.
        ms: u64,
        /// The random part's bound.
        jitter_ms: u64,
    },
    /// `delay write MS`: every write waits MS. Undone by `heal`.
    DelayWrite {
        /// The delay.
        ms: u64,
    },
    /// `fail fsync EIO|ENOSPC [COUNT]`: the next COUNT fsyncs (all, without
    /// COUNT) fail with the error; what they would have made durable stays
    /// pending. Undone by `heal`.
    FailFsync {
        /// The error.
        error: FsyncError,
        /// How many fsyncs fail; `None` for all until `heal`.
        count: Option<u64>,
    },
    /// `enospc on [BYTES]`: the disk is full (after BYTES more written
    /// bytes): writes, fsyncs and creates fail with ENOSPC. Undone by
    /// `enospc off` or `heal`.
    EnospcOn {
        /// Bytes still accepted before the disk is full.
        after_bytes: Option<u64>,
    },
    /// `enospc off`: the disk has room again.
    EnospcOff,
    /// `heal`: delays, failures and a full disk removed (pending changes stay).
    Heal,
    /// `corrupt bitflip PATH OFFSET LENGTH [SEED]`, `corrupt zero PATH
    /// OFFSET LENGTH`, `corrupt truncate PATH OFFSET`: damage to a durable
    /// file at a place the caller chose.
    Corrupt {
        /// The file, from the mount's root.
        path: String,
        /// What to do, where.
        damage: Damage,
    },
    /// `corrupt-pick bitflip|zero|truncate GLOB SEED [LENGTH_MAX]`: damage
    /// to a durable file matching GLOB and a region in it, both drawn from
    /// SEED.
    CorruptPick {
        /// The damage.
        kind: CorruptKind,
        /// Which files may be picked (see [`crate::glob`]).
        glob: String,
        /// Picks the file and the region.
        seed: u64,
        /// The region's length bound.
        length_max: Option<u64>,
    },
    /// `checkpoint NAME`: the durable image copied aside.
    Checkpoint {
        /// The checkpoint's name.
        name: String,
    },
    /// `restore NAME`: the durable image replaced by a checkpoint, every
    /// pending change dropped; refused while files are open on the mount.
    Restore {
        /// The checkpoint's name.
        name: String,
    },
    /// `drop-checkpoint NAME`: a checkpoint deleted.
    DropCheckpoint {
        /// The checkpoint's name.
        name: String,
    },
    /// `report`: pending bytes per file, as JSON.
    Report,
    /// `ping`: answers `ok` (a readiness probe).
    Ping,
}

/// Why a command line was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    /// The line was empty.
    #[error("empty command")]
    Empty,
    /// The first words name no command.
    #[error("unknown command {0:?}")]
    Unknown(String),
    /// A command got the wrong number of arguments.
    #[error("{command}: expected {expected}")]
    Arity {
        /// The command.
        command: &'static str,
        /// Its usage.
        expected: &'static str,
    },
    /// An argument is not what it should be.
    #[error("{command}: bad {what} {value:?}")]
    Bad {
        /// The command.
        command: &'static str,
        /// The argument's name.
        what: &'static str,
        /// What was given.
        value: String,
    },
}

fn number(
    command: &'static str,
    what: &'static str,
    value: &str,
    max: u64,
) -> Result<u64, ParseError> {
    match value.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(ParseError::Bad {
            command,
            what,
            value: value.to_owned(),
        }),
    }
}

fn length(command: &'static str, value: &str) -> Result<u64, ParseError> {
    match number(command, "LENGTH", value, u64::MAX)? {
        0 => Err(ParseError::Bad {
            command,
            what: "LENGTH (at least 1)",
            value: value.to_owned(),
        }),
        n => Ok(n),
    }
}

const LOSE_USAGE: &str = "lose-unfsynced [keep|zero|garbage] [SEED]";
const TORN_USAGE: &str = "torn [SEED] [keep|zero|garbage]";
const CORRUPT_USAGE: &str = "corrupt bitflip PATH OFFSET LENGTH [SEED] | corrupt zero PATH OFFSET LENGTH | corrupt truncate PATH OFFSET";
const PICK_USAGE: &str = "corrupt-pick bitflip|zero|truncate GLOB SEED [LENGTH_MAX]";

/// A tail shape and a seed, each optional, in either order.
fn tail_and_seed(
    command: &'static str,
    usage: &'static str,
    args: &[&str],
) -> Result<(TailShape, Option<u64>), ParseError> {
    let (mut tail, mut seed) = (None, None);
    if args.len() > 2 {
        return Err(ParseError::Arity {
            command,
            expected: usage,
        });
    }
    for arg in args {
        match (TailShape::from_name(arg), arg.parse::<u64>()) {
            (Some(t), _) if tail.is_none() => tail = Some(t),
            (None, Ok(s)) if seed.is_none() => seed = Some(s),
            _ => {
                return Err(ParseError::Bad {
                    command,
                    what: "argument (one SEED, one of keep|zero|garbage)",
                    value: (*arg).to_owned(),
                })
            }
        }
    }
    Ok((tail.unwrap_or(TailShape::Keep), seed))
}

fn corrupt(args: &[&str]) -> Result<Command, ParseError> {
    const C: &str = "corrupt";
    let offset = |v: &str| number(C, "OFFSET", v, u64::MAX);
    let damage = match args {
        ["bitflip", _, off, len] => Damage::Bitflip {
            offset: offset(off)?,
            length: length(C, len)?,
            seed: None,
        },
        ["bitflip", _, off, len, seed] => Damage::Bitflip {
            offset: offset(off)?,
            length: length(C, len)?,
            seed: Some(number(C, "SEED", seed, u64::MAX)?),
        },
        ["zero", _, off, len] => Damage::Zero {
            offset: offset(off)?,
            length: length(C, len)?,
        },
        ["truncate", _, off] => Damage::Truncate {
            offset: offset(off)?,
        },
        [kind, ..] if CorruptKind::from_name(kind).is_none() => {
            return Err(ParseError::Bad {
                command: C,
                what: "kind (bitflip, zero or truncate)",
                value: (*kind).to_owned(),
            })
        }
        _ => {
            return Err(ParseError::Arity {
                command: C,
                expected: CORRUPT_USAGE,
            })
        }
    };
    Ok(Command::Corrupt {
        path: args[1].to_owned(),
        damage,
    })
}

fn corrupt_pick(args: &[&str]) -> Result<Command, ParseError> {
    const C: &str = "corrupt-pick";
    let (kind, glob, seed, max) = match args {
        [kind, glob, seed] => (kind, glob, seed, None),
        [kind, glob, seed, max] => (kind, glob, seed, Some(length(C, max)?)),
        _ => {
            return Err(ParseError::Arity {
                command: C,
                expected: PICK_USAGE,
            })
        }
    };
    Ok(Command::CorruptPick {
        kind: CorruptKind::from_name(kind).ok_or_else(|| ParseError::Bad {
            command: C,
            what: "kind (bitflip, zero or truncate)",
            value: (*kind).to_owned(),
        })?,
        glob: (*glob).to_owned(),
        seed: number(C, "SEED", seed, u64::MAX)?,
        length_max: max,
    })
}

fn fail_fsync(args: &[&str]) -> Result<Command, ParseError> {
    let (e, count) = match args {
        [e] => (e, None),
        [e, c] => (
            e,
            Some(number("fail fsync", "COUNT", c, u64::from(u32::MAX))?),
        ),
        _ => {
            return Err(ParseError::Arity {
                command: "fail fsync",
                expected: "fail fsync EIO|ENOSPC [COUNT]",
            })
        }
    };
    let error = match *e {
        "EIO" => FsyncError::Eio,
        "ENOSPC" => FsyncError::Enospc,
        other => {
            return Err(ParseError::Bad {
                command: "fail fsync",
                what: "error (EIO or ENOSPC)",
                value: other.to_owned(),
            })
        }
    };
    Ok(Command::FailFsync { error, count })
}

fn delay(args: &[&str]) -> Result<Command, ParseError> {
    let ms = |c, w, v| number(c, w, v, DELAY_MS_MAX);
    match args {
        ["fsync", m] => Ok(Command::DelayFsync {
            ms: ms("delay fsync", "MS", m)?,
            jitter_ms: 0,
        }),
        ["fsync", m, j] => Ok(Command::DelayFsync {
            ms: ms("delay fsync", "MS", m)?,
            jitter_ms: ms("delay fsync", "JITTER_MS", j)?,
        }),
        ["write", m] => Ok(Command::DelayWrite {
            ms: ms("delay write", "MS", m)?,
        }),
        ["fsync", ..] => Err(ParseError::Arity {
            command: "delay fsync",
            expected: "delay fsync MS [JITTER_MS]",
        }),
        ["write", ..] => Err(ParseError::Arity {
            command: "delay write",
            expected: "delay write MS",
        }),
        _ => Err(ParseError::Arity {
            command: "delay",
            expected: "delay fsync MS [JITTER_MS] | delay write MS",
        }),
    }
}

fn enospc(args: &[&str]) -> Result<Command, ParseError> {
    match args {
        ["on"] => Ok(Command::EnospcOn { after_bytes: None }),
        ["on", n] => Ok(Command::EnospcOn {
            after_bytes: Some(number("enospc on", "BYTES", n, u64::MAX)?),
        }),
        ["off"] => Ok(Command::EnospcOff),
        _ => Err(ParseError::Arity {
            command: "enospc",
            expected: "enospc on [BYTES] | enospc off",
        }),
    }
}

/// A command taking one NAME.
fn named(
    command: &'static str,
    expected: &'static str,
    args: &[&str],
    make: fn(String) -> Command,
) -> Result<Command, ParseError> {
    match args {
        [name] => Ok(make((*name).to_owned())),
        _ => Err(ParseError::Arity { command, expected }),
    }
}

impl Command {
    /// Parses one line (without its newline).
    pub fn parse(line: &str) -> Result<Command, ParseError> {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some((first, args)) = words.split_first() else {
            return Err(ParseError::Empty);
        };
        let plain = |command| match args {
            [] => Ok(command),
            _ => Err(ParseError::Arity {
                command: "this command",
                expected: "no arguments",
            }),
        };
        match *first {
            "lose-unfsynced" => tail_and_seed("lose-unfsynced", LOSE_USAGE, args)
                .map(|(tail, seed)| Command::LoseUnfsynced { tail, seed }),
            "torn" => tail_and_seed("torn", TORN_USAGE, args)
                .map(|(tail, seed)| Command::Torn { seed, tail }),
            "flush" => plain(Command::Flush),
            "heal" => plain(Command::Heal),
            "report" => plain(Command::Report),
            "ping" => plain(Command::Ping),
            "delay" => delay(args),
            "fail" if args.first() == Some(&"fsync") => fail_fsync(&args[1..]),
            "enospc" => enospc(args),
            "corrupt" => corrupt(args),
            "corrupt-pick" => corrupt_pick(args),
            "checkpoint" => named("checkpoint", "checkpoint NAME", args, |name| {
                Command::Checkpoint { name }
            }),
            "restore" => named("restore", "restore NAME", args, |name| Command::Restore {
                name,
            }),
            "drop-checkpoint" => named("drop-checkpoint", "drop-checkpoint NAME", args, |name| {
                Command::DropCheckpoint { name }
            }),
            _ => Err(ParseError::Unknown(line.chars().take(64).collect())),
        }
    }

    /// The command as a protocol line (without newline).
    pub fn line(&self) -> String {
        let opt = |n: &Option<u64>| n.map(|n| format!(" {n}")).unwrap_or_default();
        match self {
            Command::LoseUnfsynced {
                tail: TailShape::Keep,
                seed: None,
            } => "lose-unfsynced".into(),
            Command::LoseUnfsynced { tail, seed } => {
                format!("lose-unfsynced {}{}", tail.name(), opt(seed))
            }
            Command::Flush => "flush".into(),
            Command::Torn { seed, tail } => match tail {
                TailShape::Keep => format!("torn{}", opt(seed)),
                _ => format!("torn{} {}", opt(seed), tail.name()),
            },
            Command::DelayFsync { ms, jitter_ms } => format!("delay fsync {ms} {jitter_ms}"),
            Command::DelayWrite { ms } => format!("delay write {ms}"),
            Command::FailFsync { error, count } => {
                format!("fail fsync {}{}", error.name(), opt(count))
            }
            Command::EnospcOn { after_bytes } => format!("enospc on{}", opt(after_bytes)),
            Command::EnospcOff => "enospc off".into(),
            Command::Heal => "heal".into(),
            Command::Corrupt { path, damage } => match damage {
                Damage::Bitflip {
                    offset,
                    length,
                    seed,
                } => format!("corrupt bitflip {path} {offset} {length}{}", opt(seed)),
                Damage::Zero { offset, length } => format!("corrupt zero {path} {offset} {length}"),
                Damage::Truncate { offset } => format!("corrupt truncate {path} {offset}"),
            },
            Command::CorruptPick {
                kind,
                glob,
                seed,
                length_max,
            } => format!(
                "corrupt-pick {} {glob} {seed}{}",
                kind.name(),
                opt(length_max)
            ),
            Command::Checkpoint { name } => format!("checkpoint {name}"),
            Command::Restore { name } => format!("restore {name}"),
            Command::DropCheckpoint { name } => format!("drop-checkpoint {name}"),
            Command::Report => "report".into(),
            Command::Ping => "ping".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Vec<(&'static str, Command)> {
        let lose = |tail, seed| Command::LoseUnfsynced { tail, seed };
        let torn = |seed, tail| Command::Torn { seed, tail };
        let corrupt = |damage| Command::Corrupt {
            path: "/wal.log".into(),
            damage,
        };
        vec![
            ("lose-unfsynced", lose(TailShape::Keep, None)),
            ("lose-unfsynced zero", lose(TailShape::Zero, None)),
            (
                "lose-unfsynced garbage 9",
                lose(TailShape::Garbage, Some(9)),
            ),
            ("lose-unfsynced keep 9", lose(TailShape::Keep, Some(9))),
            ("flush", Command::Flush),
            ("torn", torn(None, TailShape::Keep)),
            ("torn 42", torn(Some(42), TailShape::Keep)),
            ("torn 42 zero", torn(Some(42), TailShape::Zero)),
            ("torn garbage", torn(None, TailShape::Garbage)),
            (
                "delay fsync 100 20",
                Command::DelayFsync {
                    ms: 100,
                    jitter_ms: 20,
                },
            ),
            ("delay write 5", Command::DelayWrite { ms: 5 }),
            (
                "fail fsync EIO",
                Command::FailFsync {
                    error: FsyncError::Eio,
                    count: None,
                },
            ),
            (
                "fail fsync ENOSPC 3",
                Command::FailFsync {
                    error: FsyncError::Enospc,
                    count: Some(3),
                },
            ),
            ("enospc on", Command::EnospcOn { after_bytes: None }),
            (
                "enospc on 4096",
                Command::EnospcOn {
                    after_bytes: Some(4096),
                },
            ),
            ("enospc off", Command::EnospcOff),
            ("heal", Command::Heal),
            (
                "corrupt bitflip /wal.log 10 4",
                corrupt(Damage::Bitflip {
                    offset: 10,
                    length: 4,
                    seed: None,
                }),
            ),
            (
                "corrupt bitflip /wal.log 10 4 77",
                corrupt(Damage::Bitflip {
                    offset: 10,
                    length: 4,
                    seed: Some(77),
                }),
            ),
            (
                "corrupt zero /wal.log 0 512",
                corrupt(Damage::Zero {
                    offset: 0,
                    length: 512,
                }),
            ),
            (
                "corrupt truncate /wal.log 100",
                corrupt(Damage::Truncate { offset: 100 }),
            ),
            (
                "corrupt-pick zero wal.log* 5",
                Command::CorruptPick {
                    kind: CorruptKind::Zero,
                    glob: "wal.log*".into(),
                    seed: 5,
                    length_max: None,
                },
            ),
            (
                "corrupt-pick truncate **.bin 5 100",
                Command::CorruptPick {
                    kind: CorruptKind::Truncate,
                    glob: "**.bin".into(),
                    seed: 5,
                    length_max: Some(100),
                },
            ),
            ("checkpoint c1", Command::Checkpoint { name: "c1".into() }),
            ("restore c1", Command::Restore { name: "c1".into() }),
            (
                "drop-checkpoint c1",
                Command::DropCheckpoint { name: "c1".into() },
            ),
            ("report", Command::Report),
            ("ping", Command::Ping),
        ]
    }

    #[test]
    fn every_command_parses_and_prints_back() {
        for (line, command) in table() {
            assert_eq!(Command::parse(line), Ok(command.clone()), "{line}");
            assert_eq!(Command::parse(&command.line()), Ok(command), "{line}");
        }
        assert_eq!(
            Command::parse("delay fsync 7"),
            Ok(Command::DelayFsync {
                ms: 7,
                jitter_ms: 0
            })
        );
        assert_eq!(
            Command::parse("torn zero 3"),
            Command::parse("torn 3 zero"),
            "a seed and a tail shape in either order"
        );
    }

    #[test]
    fn bad_lines_are_refused_with_a_reason() {
        let table = [
            ("", "empty command"),
            ("explode", "unknown command \"explode\""),
            (
                "delay fsync",
                "delay fsync: expected delay fsync MS [JITTER_MS]",
            ),
            ("delay fsync -1", "delay fsync: bad MS \"-1\""),
            ("delay fsync 999999999", "delay fsync: bad MS \"999999999\""),
            (
                "fail fsync EBADF",
                "fail fsync: bad error (EIO or ENOSPC) \"EBADF\"",
            ),
            (
                "fail fsync EIO 1 2",
                "fail fsync: expected fail fsync EIO|ENOSPC [COUNT]",
            ),
            (
                "torn x",
                "torn: bad argument (one SEED, one of keep|zero|garbage) \"x\"",
            ),
            (
                "torn 1 2",
                "torn: bad argument (one SEED, one of keep|zero|garbage) \"2\"",
            ),
            (
                "lose-unfsynced zero 1 2",
                "lose-unfsynced: expected lose-unfsynced [keep|zero|garbage] [SEED]",
            ),
            ("heal now", "this command: expected no arguments"),
            (
                "corrupt melt /f 0 1",
                "corrupt: bad kind (bitflip, zero or truncate) \"melt\"",
            ),
            ("corrupt zero /f 0 0", "corrupt: bad LENGTH (at least 1) \"0\""),
            ("corrupt zero /f x 1", "corrupt: bad OFFSET \"x\""),
            ("corrupt truncate /f", "corrupt: expected corrupt bitflip PATH OFFSET LENGTH [SEED] | corrupt zero PATH OFFSET LENGTH | corrupt truncate PATH OFFSET"),
            (
                "corrupt-pick zero wal*",
                "corrupt-pick: expected corrupt-pick bitflip|zero|truncate GLOB SEED [LENGTH_MAX]",
            ),
            ("corrupt-pick zero wal* s", "corrupt-pick: bad SEED \"s\""),
            (
                "enospc maybe",
                "enospc: expected enospc on [BYTES] | enospc off",
            ),
            ("enospc on -5", "enospc on: bad BYTES \"-5\""),
            ("checkpoint", "checkpoint: expected checkpoint NAME"),
            ("restore a b", "restore: expected restore NAME"),
        ];
        for (line, reason) in table {
            assert_eq!(
                Command::parse(line).unwrap_err().to_string(),
                reason,
                "{line}"
            );
        }
    }
}
