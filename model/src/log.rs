//! A server's log: a short, fixed-capacity sequence of entries that lives inline in the state.

use serde::Serialize;
use std::fmt;

/// The most entries a log can hold; `--max-log` may not exceed it.
pub const LOG_MAX: usize = 6;

/// Marks an entry's value as a configuration: the low bits are the member set (bit `i` set
/// when server `i` is a voter). Client values stay below it (`--max-log` ≤ [`LOG_MAX`]).
pub const CONFIG_FLAG: u8 = 0x80;

/// One log entry: the term in which a leader created it and the client value it carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Entry {
    /// The leader's term when the entry was appended.
    pub term: u8,
    /// The client value; every client request carries a fresh value, 1, 2, 3, ...
    pub value: u8,
}

impl Entry {
    /// A configuration entry of `term` whose voters are the servers in `members` (a bit mask).
    pub fn config(term: u8, members: u8) -> Entry {
        Entry {
            term,
            value: CONFIG_FLAG | members,
        }
    }

    /// The member set, when this is a configuration entry.
    pub fn members(&self) -> Option<u8> {
        (self.value & CONFIG_FLAG != 0).then_some(self.value & !CONFIG_FLAG)
    }
}

/// A log with 1-based indices as in the Raft paper; index 0 is the empty prefix.
///
/// Invariant: entries at positions `len..LOG_MAX` are `Entry::default()`, so that
/// equal logs hash and compare equal.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Log {
    len: u8,
    entries: [Entry; LOG_MAX],
}

impl Log {
    /// The number of entries, which is also the last index.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether the log has no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries, in index order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries[..self.len as usize]
    }

    /// The entry at 1-based `index`, if present.
    pub fn get(&self, index: u8) -> Option<Entry> {
        (index >= 1 && index <= self.len).then(|| self.entries[index as usize - 1])
    }

    /// The term of the entry at `index`; 0 for index 0 (the empty prefix) or a missing entry.
    pub fn term_at(&self, index: u8) -> u8 {
        self.get(index).map_or(0, |entry| entry.term)
    }

    /// The term of the last entry, 0 when empty.
    pub fn last_term(&self) -> u8 {
        self.term_at(self.len)
    }

    /// Appends an entry.
    ///
    /// # Panics
    ///
    /// When the log is full: bounds are validated against [`LOG_MAX`] before checking.
    pub fn push(&mut self, entry: Entry) {
        assert!(
            (self.len as usize) < LOG_MAX,
            "log capacity {LOG_MAX} exceeded"
        );
        self.entries[self.len as usize] = entry;
        self.len += 1;
    }

    /// Keeps only the first `len` entries.
    pub fn truncate(&mut self, len: u8) {
        while self.len > len {
            self.len -= 1;
            self.entries[self.len as usize] = Entry::default();
        }
    }

    /// The entries after `index` (the suffix a leader sends to a follower).
    pub fn suffix(&self, index: u8) -> Log {
        let mut suffix = Log::default();
        for entry in self.entries().iter().skip(index as usize) {
            suffix.push(*entry);
        }
        suffix
    }

    /// The index of the last configuration entry, 0 when there is none.
    pub fn last_config_index(&self) -> u8 {
        let position = self.entries().iter().rposition(|e| e.members().is_some());
        position.map_or(0, |p| p as u8 + 1)
    }

    /// The voters by the latest configuration entry (committed or not, as the Raft
    /// dissertation §4.1 has servers use it), or `initial` when there is none.
    pub fn members(&self, initial: u8) -> u8 {
        let last = self.entries().iter().rev().find_map(Entry::members);
        last.unwrap_or(initial)
    }

    /// Whether a candidate's log ending in (`last_term`, `last_index`) is at least as
    /// up-to-date as this one (Raft paper §5.4.1: compare last terms, then lengths).
    pub fn is_behind_or_equal(&self, last_term: u8, last_index: u8) -> bool {
        (self.last_term(), self.len) <= (last_term, last_index)
    }
}

/// The model's log as the shared rules see it: every entry known, identified by term and value.
impl crate::rules::LogView for Log {
    type Entry = Entry;

    fn last_index(&self) -> u64 {
        u64::from(self.len)
    }

    fn entry(&self, index: u64) -> Option<Entry> {
        self.get(u8::try_from(index).ok()?)
    }

    fn term(entry: Entry) -> u64 {
        u64::from(entry.term)
    }
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Entries print as `term:value`, e.g. `[1:1 2:2]`.
impl fmt::Display for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, entry) in self.entries().iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            match entry.members() {
                Some(members) => {
                    let ids: Vec<String> = (0..8)
                        .filter(|id| members >> id & 1 == 1)
                        .map(|id| format!("s{id}"))
                        .collect();
                    write!(f, "{sep}{}:{{{}}}", entry.term, ids.join(","))?;
                }
                None => write!(f, "{sep}{}:{}", entry.term, entry.value)?,
            }
        }
        write!(f, "]")
    }
}

impl Serialize for Log {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.entries().serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(entries: &[(u8, u8)]) -> Log {
        let mut log = Log::default();
        for &(term, value) in entries {
            log.push(Entry { term, value });
        }
        log
    }

    #[test]
    fn truncate_restores_the_padding_invariant() {
        let mut a = log(&[(1, 1), (2, 2)]);
        a.truncate(1);
        assert_eq!(a, log(&[(1, 1)]));
        assert_eq!(a.term_at(2), 0);
    }

    #[test]
    fn up_to_date_compares_last_term_before_length() {
        // §5.4.1: a longer log with an older last term is less up-to-date.
        let candidate = log(&[(2, 1)]);
        let voter = log(&[(1, 1), (1, 2)]);
        assert!(voter.is_behind_or_equal(candidate.last_term(), candidate.len()));
        assert!(!candidate.is_behind_or_equal(voter.last_term(), voter.len()));
        assert_eq!(voter.suffix(1), log(&[(1, 2)]));
        assert_eq!(format!("{voter}"), "[1:1 1:2]");
    }

    #[test]
    fn the_latest_configuration_entry_names_the_voters() {
        let mut a = log(&[(1, 1)]);
        assert_eq!((a.members(0b111), a.last_config_index()), (0b111, 0));
        a.push(Entry::config(1, 0b011));
        a.push(Entry { term: 1, value: 2 });
        assert_eq!((a.members(0b111), a.last_config_index()), (0b011, 2));
        assert_eq!(Entry { term: 1, value: 2 }.members(), None);
        assert_eq!(format!("{a}"), "[1:1 1:{s0,s1} 1:2]");
    }
}
