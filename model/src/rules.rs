//! Raft's safety rules, written once as pure functions over small views, and used twice: by
//! the stateright model's properties (`properties.rs`, `raft.rs`) and by the trace checker
//! (`model::replay`, which uses this module, never the reverse) that replays a real run's node traces.
//!
//! A log is seen through [`LogView`]: index → entry lookups that may not know every entry (a
//! trace reports terms only, and not those below a snapshot). Every rule skips what is not
//! known and judges only what is: an unknown entry never causes an anomaly.

/// A log seen through its entries, 1-based as in the Raft paper; index 0 is the empty prefix.
pub trait LogView {
    /// What identifies an entry: the model's (term, value), a trace's term.
    type Entry: Copy + PartialEq + std::fmt::Debug;

    /// The index of the last entry held; 0 when the log is empty.
    fn last_index(&self) -> u64;

    /// The entry at `index` (in `1..=last_index()`), or `None` when it is not known.
    fn entry(&self, index: u64) -> Option<Self::Entry>;

    /// The term in which `entry` was created.
    fn term(entry: Self::Entry) -> u64;
}

/// A term and the vote cast in it: the part of a server's hard state that elections rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vote<N> {
    /// The server's current term.
    pub term: u64,
    /// Whom it voted for in `term`, if anyone.
    pub voted_for: Option<N>,
}

/// Election Safety (Figure 3, §5.2): whether `leader` may lead a term whose leader so far is
/// `known`. At most one leader is elected in a term.
pub fn election_safety<N: PartialEq>(known: Option<N>, leader: N) -> bool {
    known.is_none_or(|known| known == leader)
}

/// One vote per term (§5.2), also across restarts: a server's term never goes back, and a vote
/// cast in a term stays the same until the term changes.
pub fn vote_kept<N: PartialEq>(before: &Vote<N>, after: &Vote<N>) -> bool {
    after.term > before.term
        || (after.term == before.term
            && (before.voted_for.is_none() || before.voted_for == after.voted_for))
}

/// A server's commit index never goes back (Figure 2: commitIndex increases monotonically).
/// In the model the commit index is volatile and restarts at 0; in raft-rs it is part of the
/// hard state and must also survive a restart.
pub fn commit_monotone(before: u64, after: u64) -> bool {
    after >= before
}

/// Log Matching (Figure 3, §5.3) at one index: two logs that hold entries of the same term at
/// `index` hold the same entry there and the same entry just before it. Holding at every index
/// is, by induction, the paper's "identical in all entries up through that index".
pub fn log_matching_at<A, B>(a: &A, b: &B, index: u64) -> bool
where
    A: LogView,
    B: LogView<Entry = A::Entry>,
{
    let (Some(x), Some(y)) = (held(a, index), held(b, index)) else {
        return true;
    };
    if A::term(x) != B::term(y) {
        return true;
    }
    x == y
        && (index <= 1
            || match (held(a, index - 1), held(b, index - 1)) {
                (Some(x), Some(y)) => x == y,
                _ => true,
            })
}

/// Leader Append-Only (Figure 3, §5.3): `after` keeps every entry `before` held from index
/// `from` on. Returns the first index rewritten or deleted, if any.
pub fn leader_append_only<A, B>(before: &A, after: &B, from: u64) -> Option<u64>
where
    A: LogView,
    B: LogView<Entry = A::Entry>,
{
    let from = from.max(1);
    if after.last_index() < before.last_index() {
        return Some(after.last_index().max(from - 1) + 1);
    }
    (from..=before.last_index()).find(|&index| match (before.entry(index), after.entry(index)) {
        (Some(x), Some(y)) => x != y,
        _ => false,
    })
}

/// Leader Completeness (Figure 3, §5.4): a leader of `term` holds every entry committed in an
/// earlier term. `committed` yields (index, entry, term in which it was committed). Returns the
/// first committed index the leader lacks or holds differently.
pub fn leader_completeness<L, I>(log: &L, term: u64, committed: I) -> Option<u64>
where
    L: LogView,
    I: IntoIterator<Item = (u64, L::Entry, u64)>,
{
    committed
        .into_iter()
        .filter(|&(_, _, committed_in)| committed_in < term)
        .find(|&(index, entry, _)| {
            index > log.last_index() || log.entry(index).is_some_and(|held| held != entry)
        })
        .map(|(index, _, _)| index)
}

/// State Machine Safety (Figure 3, §5.4.3): the entry applied at an index is present and is
/// the one first committed (or applied) there.
pub fn state_machine_safety<E: PartialEq>(applied: Option<E>, first: Option<E>) -> bool {
    applied.is_some() && applied == first
}

/// The entry at `index` when the log holds it and it is known.
fn held<L: LogView>(log: &L, index: u64) -> Option<L::Entry> {
    (index >= 1 && index <= log.last_index())
        .then(|| log.entry(index))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log of terms, with 0 standing for an entry not known.
    struct Terms(Vec<u64>);

    impl LogView for Terms {
        type Entry = u64;
        fn last_index(&self) -> u64 {
            self.0.len() as u64
        }
        fn entry(&self, index: u64) -> Option<u64> {
            let term = *self.0.get(usize::try_from(index).ok()?.checked_sub(1)?)?;
            (term != 0).then_some(term)
        }
        fn term(entry: u64) -> u64 {
            entry
        }
    }

    #[test]
    fn log_matching_compares_an_index_and_the_one_before() {
        let a = Terms(vec![1, 1, 3]);
        let b = Terms(vec![1, 2, 3]);
        assert!(
            log_matching_at(&a, &b, 2),
            "different terms: nothing to say"
        );
        assert!(
            !log_matching_at(&a, &b, 3),
            "same term 3, different predecessors"
        );
        let unknown = Terms(vec![1, 0, 3]);
        assert!(
            log_matching_at(&a, &unknown, 3),
            "unknown entries are skipped"
        );
        assert!(log_matching_at(&a, &Terms(vec![]), 1));
    }

    #[test]
    fn leader_append_only_finds_the_first_rewrite() {
        let before = Terms(vec![1, 2]);
        assert_eq!(leader_append_only(&before, &Terms(vec![1, 2, 2]), 1), None);
        assert_eq!(leader_append_only(&before, &Terms(vec![1, 3]), 1), Some(2));
        assert_eq!(leader_append_only(&before, &Terms(vec![1]), 1), Some(2));
        assert_eq!(leader_append_only(&before, &Terms(vec![]), 1), Some(1));
    }

    #[test]
    fn leader_completeness_ignores_entries_committed_in_its_own_term() {
        let leader = Terms(vec![1]);
        assert_eq!(
            leader_completeness(&leader, 3, [(1, 1, 2), (2, 2, 3)]),
            None
        );
        assert_eq!(leader_completeness(&leader, 3, [(2, 2, 2)]), Some(2));
        assert_eq!(leader_completeness(&leader, 3, [(1, 2, 1)]), Some(1));
    }

    #[test]
    fn votes_and_commits_only_move_forward() {
        let vote = |term, voted_for| Vote { term, voted_for };
        assert!(vote_kept(&vote(1, Some(2)), &vote(2, None)));
        assert!(vote_kept(&vote(1, None), &vote(1, Some(3))));
        assert!(!vote_kept(&vote(1, Some(2)), &vote(1, Some(3))));
        assert!(
            !vote_kept(&vote(1, Some(2)), &vote(1, None)),
            "a forgotten vote"
        );
        assert!(
            !vote_kept(&vote(2, None), &vote(1, None)),
            "a term went back"
        );
        assert!(commit_monotone(3, 3) && !commit_monotone(3, 2));
        assert!(election_safety(None, 1) && election_safety(Some(1), 1));
        assert!(!election_safety(Some(1), 2));
        assert!(state_machine_safety(Some(1), Some(1)));
        assert!(!state_machine_safety(None::<u8>, None));
    }
}
