//! What the model explores: bounds on servers, terms, client values and crashes, the network's
//! guarantees, and which Raft rule (if any) is deliberately broken.

use crate::log::{CONFIG_FLAG, LOG_MAX};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// The most servers a model can have.
pub const SERVERS_MAX: usize = 5;

// Client values stay below the configuration flag, and a member set of every server fits in
// the bits below it.
const _: () = assert!(LOG_MAX < CONFIG_FLAG as usize && SERVERS_MAX < 7);

/// The highest term the model can reach; terms are stored in a `u8` and elections as a `u16` mask.
pub const TERM_MAX: u8 = 15;

/// Errors in bounds, network or bug names given by the user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BoundsError {
    /// The server count is outside what the state can hold.
    #[error("--servers must be between 1 and {SERVERS_MAX}, got {0}")]
    Servers(u8),
    /// The term bound is zero or too large.
    #[error("--max-term must be between 1 and {TERM_MAX}, got {0}")]
    MaxTerm(u8),
    /// More client values than a log can hold.
    #[error("--max-log must be at most {LOG_MAX}, got {0}")]
    MaxLog(u8),
    /// More client values and configuration changes than a log can hold.
    #[error("--max-log plus --max-changes must be at most {LOG_MAX}, got {0}")]
    MaxChanges(u8),
    /// An unknown network name.
    #[error("unknown network {0:?}: expected lossy, ordered or duplicating")]
    Network(String),
    /// An unknown bug name.
    #[error(
        "unknown bug {0:?}: expected vote-any-log, commit-old-term, forget-vote, no-truncate or two-changes"
    )]
    Bug(String),
}

/// What the network may do to messages in flight.
///
/// In every mode a message identical to one already in flight (on the same channel) is
/// coalesced with it: the sender could resend it anyway, and this keeps the state finite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    /// Messages are delivered at most once, in any order, or never (loss).
    Lossy,
    /// Each (sender, receiver) channel is FIFO; the head of a channel may be dropped.
    Ordered,
    /// Messages stay in flight after delivery: delivered any number of times, in any order.
    Duplicating,
}

impl FromStr for Network {
    type Err = BoundsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lossy" => Ok(Network::Lossy),
            "ordered" => Ok(Network::Ordered),
            "duplicating" => Ok(Network::Duplicating),
            other => Err(BoundsError::Network(other.to_string())),
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Network::Lossy => "lossy",
            Network::Ordered => "ordered",
            Network::Duplicating => "duplicating",
        })
    }
}

/// A deliberately broken Raft rule, so the checker can show it finds the resulting violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// Grant votes without the §5.4.1 check that the candidate's log is at least as up-to-date.
    VoteAnyLog,
    /// Advance the commit index by counting replicas of entries from earlier terms (Figure 8).
    CommitOldTerm,
    /// Lose votedFor in a crash, so a restarted server can vote twice in one term.
    ForgetVote,
    /// Append entries without deleting conflicting ones (Figure 2, AppendEntries step 3).
    NoTruncate,
    /// Start a membership change while another is uncommitted (Raft dissertation §4.1), so
    /// that two changes in flight make majorities that need not overlap.
    TwoChanges,
}

impl Bug {
    /// Every bug switch, in the order the CLI documents them.
    pub const ALL: [Bug; 5] = [
        Bug::VoteAnyLog,
        Bug::CommitOldTerm,
        Bug::ForgetVote,
        Bug::NoTruncate,
        Bug::TwoChanges,
    ];

    /// The smallest bounds under which the violation is reachable: commit-old-term needs the
    /// Figure 8 history (four terms, two values), no-truncate needs two competing values and
    /// forget-vote needs a crash, two-changes two changes and a second term.
    pub fn minimum_bounds(self) -> Bounds {
        let base = Bounds {
            servers: 3,
            max_term: 1,
            max_log: 1,
            max_crashes: 0,
            max_changes: 0,
            network: Network::Lossy,
        };
        match self {
            Bug::VoteAnyLog => Bounds {
                max_term: 2,
                ..base
            },
            Bug::CommitOldTerm => Bounds {
                max_term: 4,
                max_log: 2,
                ..base
            },
            Bug::ForgetVote => Bounds {
                max_crashes: 1,
                ..base
            },
            Bug::NoTruncate => Bounds {
                max_term: 2,
                max_log: 2,
                ..base
            },
            Bug::TwoChanges => Bounds {
                max_term: 2,
                max_log: 0,
                max_changes: 2,
                ..base
            },
        }
    }
}

impl FromStr for Bug {
    type Err = BoundsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bug::ALL
            .into_iter()
            .find(|bug| bug.to_string() == s)
            .ok_or_else(|| BoundsError::Bug(s.to_string()))
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Bug::VoteAnyLog => "vote-any-log",
            Bug::CommitOldTerm => "commit-old-term",
            Bug::ForgetVote => "forget-vote",
            Bug::NoTruncate => "no-truncate",
            Bug::TwoChanges => "two-changes",
        })
    }
}

/// The size of the explored world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Bounds {
    /// Number of servers.
    pub servers: u8,
    /// No server's term exceeds this (election timeouts stop there).
    pub max_term: u8,
    /// Total client values accepted by leaders over the whole run.
    pub max_log: u8,
    /// Total crash-and-restart events over the whole run.
    pub max_crashes: u8,
    /// Total membership changes (one server added or removed each) over the whole run. With
    /// changes, symmetry reduction is off: configurations name servers.
    pub max_changes: u8,
    /// What the network may do to messages.
    pub network: Network,
}

impl Default for Bounds {
    /// The default bounds of `model check`: the largest that finish exhaustively in under two
    /// minutes (release build, 2-core machine): 8.0 M unique states in about 60 s and 1 GB.
    /// Terms up to 3 give Figure 8's shape room (a leader, a rival, a third term); two client
    /// values let logs conflict.
    fn default() -> Self {
        Bounds {
            servers: 3,
            max_term: 3,
            max_log: 2,
            max_crashes: 1,
            max_changes: 0,
            network: Network::Lossy,
        }
    }
}

impl Bounds {
    /// Checks the bounds against what the state representation can hold.
    pub fn validate(self) -> Result<Self, BoundsError> {
        if self.servers == 0 || self.servers as usize > SERVERS_MAX {
            return Err(BoundsError::Servers(self.servers));
        }
        if self.max_term == 0 || self.max_term > TERM_MAX {
            return Err(BoundsError::MaxTerm(self.max_term));
        }
        if self.max_log as usize > LOG_MAX {
            return Err(BoundsError::MaxLog(self.max_log));
        }
        let entries = self.max_log.saturating_add(self.max_changes);
        if entries as usize > LOG_MAX {
            return Err(BoundsError::MaxChanges(entries));
        }
        Ok(self)
    }

    /// The default bounds of `model check`, or with a bug the smallest under which it shows.
    pub fn for_bug(bug: Option<Bug>) -> Bounds {
        bug.map_or(Bounds::default(), Bug::minimum_bounds)
    }

    /// The number of servers that form a majority.
    pub fn majority(self) -> u8 {
        self.servers / 2 + 1
    }

    /// The initial configuration: every server votes.
    pub fn all_members(self) -> u8 {
        ((1u16 << self.servers) - 1) as u8
    }
}

impl fmt::Display for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--servers {} --max-term {} --max-log {} --max-crashes {} --network {}",
            self.servers, self.max_term, self.max_log, self.max_crashes, self.network
        )?;
        if self.max_changes > 0 {
            write!(f, " --max-changes {}", self.max_changes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_errors() {
        for bug in Bug::ALL {
            assert_eq!(bug.to_string().parse::<Bug>(), Ok(bug));
        }
        assert_eq!("ordered".parse::<Network>(), Ok(Network::Ordered));
        assert!(matches!("x".parse::<Bug>(), Err(BoundsError::Bug(_))));
        assert!(matches!(
            "tcp".parse::<Network>(),
            Err(BoundsError::Network(_))
        ));
    }

    #[test]
    fn bugs_keep_the_default_servers_and_network() {
        // `model check --help` says so.
        let default = Bounds::default();
        for bug in Bug::ALL {
            let bounds = bug.minimum_bounds();
            assert_eq!(
                (bounds.servers, bounds.network),
                (default.servers, default.network),
                "{bug}"
            );
        }
    }

    #[test]
    fn validation_rejects_what_the_state_cannot_hold() {
        let ok = Bounds::default();
        assert_eq!(ok.validate(), Ok(ok));
        assert_eq!(
            Bounds { servers: 6, ..ok }.validate(),
            Err(BoundsError::Servers(6))
        );
        assert_eq!(
            Bounds { max_term: 0, ..ok }.validate(),
            Err(BoundsError::MaxTerm(0))
        );
        assert_eq!(
            Bounds { max_log: 7, ..ok }.validate(),
            Err(BoundsError::MaxLog(7))
        );
        assert_eq!(Bounds { servers: 5, ..ok }.majority(), 3);
    }
}
