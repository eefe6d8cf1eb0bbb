//! Pending namespace changes (create, mkdir, rename, unlink, rmdir) and the
//! rule that decides which of them a directory fsync makes durable.

use std::collections::HashSet;
use std::ffi::OsString;

use super::Ino;

/// One change to the namespace that the process made and no directory
/// fsync has made durable yet.
#[derive(Debug, Clone)]
pub(crate) enum NsOp {
    /// `ino` (a file or a directory) created as `name` in `parent`.
    Create {
        /// The directory.
        parent: Ino,
        /// The entry's name.
        name: OsString,
        /// The new object.
        ino: Ino,
    },
    /// `ino` moved from `from_parent/from_name` to `to_parent/to_name`.
    Rename {
        /// The source directory.
        from_parent: Ino,
        /// The source name.
        from_name: OsString,
        /// The target directory.
        to_parent: Ino,
        /// The target name.
        to_name: OsString,
        /// The object moved.
        ino: Ino,
        /// The object the rename replaced, if any.
        replaced: Option<Ino>,
    },
    /// `ino` unlinked (file) or removed (empty directory) from `parent`.
    Remove {
        /// The directory.
        parent: Ino,
        /// The entry's name.
        name: OsString,
        /// The object removed.
        ino: Ino,
    },
}

impl NsOp {
    /// The directories whose entries this change alters.
    pub(crate) fn parents(&self) -> Vec<Ino> {
        match self {
            NsOp::Create { parent, .. } | NsOp::Remove { parent, .. } => vec![*parent],
            NsOp::Rename {
                from_parent,
                to_parent,
                ..
            } => vec![*from_parent, *to_parent],
        }
    }

    /// Every object this change involves: its directories and its objects.
    pub(crate) fn touches(&self) -> Vec<Ino> {
        let mut out = self.parents();
        match self {
            NsOp::Create { ino, .. } | NsOp::Remove { ino, .. } => out.push(*ino),
            NsOp::Rename { ino, replaced, .. } => {
                out.push(*ino);
                out.extend(replaced.iter().copied());
            }
        }
        out
    }

    /// The directory entries this change alters.
    pub(crate) fn entries(&self) -> Vec<(Ino, &OsString)> {
        match self {
            NsOp::Create { parent, name, .. } | NsOp::Remove { parent, name, .. } => {
                vec![(*parent, name)]
            }
            NsOp::Rename {
                from_parent,
                from_name,
                to_parent,
                to_name,
                ..
            } => {
                vec![(*from_parent, from_name), (*to_parent, to_name)]
            }
        }
    }

    /// The objects this change creates, moves, replaces or removes.
    pub(crate) fn objects(&self) -> Vec<Ino> {
        match self {
            NsOp::Create { ino, .. } | NsOp::Remove { ino, .. } => vec![*ino],
            NsOp::Rename { ino, replaced, .. } => std::iter::once(*ino).chain(*replaced).collect(),
        }
    }

    /// Whether `ino` is one of the objects this change names.
    pub(crate) fn involves(&self, ino: Ino) -> bool {
        self.touches().contains(&ino)
    }
}

/// Which of the pending changes (in issue order) an fsync of `dir` makes
/// durable: every change to `dir`'s entries, and every earlier change one
/// of those depends on, so that the durable result is a state the process
/// could have seen. A change depends on an earlier one that alters the same
/// entry, involves the same object, or creates, moves or removes a
/// directory the other works in (a rename into `dir` pulls in the create of
/// the file it moves; a create inside a new directory pulls in that
/// directory's mkdir). Other changes, even in the same directories, stay
/// pending. One backward pass suffices: when change `j` is reached, every
/// later change has been decided.
pub(crate) fn chosen_by_dir_fsync(pending: &[NsOp], dir: Ino) -> Vec<bool> {
    let mut chosen = vec![false; pending.len()];
    let mut entries: HashSet<(Ino, &OsString)> = HashSet::new();
    let mut objects: HashSet<Ino> = HashSet::new();
    let mut parents: HashSet<Ino> = HashSet::new();
    for (i, op) in pending.iter().enumerate().rev() {
        let depended_on = op.entries().iter().any(|e| entries.contains(e))
            || op
                .objects()
                .iter()
                .any(|o| objects.contains(o) || parents.contains(o))
            || op.parents().iter().any(|p| objects.contains(p));
        if op.parents().contains(&dir) || depended_on {
            chosen[i] = true;
            entries.extend(op.entries());
            objects.extend(op.objects());
            parents.extend(op.parents());
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(parent: Ino, name: &str, ino: Ino) -> NsOp {
        NsOp::Create {
            parent,
            name: name.into(),
            ino,
        }
    }

    #[test]
    fn a_directory_fsync_takes_its_own_changes_and_what_they_depend_on() {
        let ops = vec![
            create(1, "a", 10), // in the root
            create(2, "x", 11), // in directory 2, unrelated
            NsOp::Rename {
                from_parent: 1,
                from_name: "a".into(),
                to_parent: 3,
                to_name: "b".into(),
                ino: 10,
                replaced: None,
            },
            create(1, "c", 12), // in the root, after the rename
        ];
        // fsync of 3 takes the rename and the create it moves; the later
        // root create only shares the root with chosen changes that come
        // before it, so it stays.
        assert_eq!(chosen_by_dir_fsync(&ops, 3), vec![true, false, true, false]);
        assert_eq!(
            chosen_by_dir_fsync(&ops, 2),
            vec![false, true, false, false]
        );
        assert_eq!(chosen_by_dir_fsync(&ops, 1), vec![true, false, true, true]);
        assert_eq!(chosen_by_dir_fsync(&ops, 9), vec![false; 4]);
    }

    #[test]
    fn unrelated_changes_in_a_shared_directory_stay_pending() {
        let ops = vec![
            NsOp::Remove {
                parent: 1,
                name: "wal".into(),
                ino: 4,
            },
            create(1, "sub", 5),
            create(5, "f", 6),
        ];
        assert_eq!(chosen_by_dir_fsync(&ops, 5), vec![false, true, true]);
        // Removing a directory depends on emptying it first.
        let ops = vec![
            NsOp::Remove {
                parent: 5,
                name: "f".into(),
                ino: 6,
            },
            NsOp::Remove {
                parent: 1,
                name: "sub".into(),
                ino: 5,
            },
        ];
        assert_eq!(chosen_by_dir_fsync(&ops, 1), vec![true, true]);
    }

    #[test]
    fn a_new_directory_is_not_durable_by_its_own_fsync_alone() {
        let ops = vec![create(1, "d", 5)];
        assert_eq!(chosen_by_dir_fsync(&ops, 5), vec![false]);
        let ops = vec![create(1, "d", 5), create(5, "f", 6)];
        assert_eq!(chosen_by_dir_fsync(&ops, 5), vec![true, true]);
    }
}
