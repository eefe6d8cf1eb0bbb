//! Namespace changes as the process makes them, and the commits that make
//! pending changes durable (fsync, fsyncdir, flush, torn) or drop them
//! (power loss).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use fuser::Errno;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::namespace::chosen_by_dir_fsync;
use super::{
    check_name, io_errno, DataOp, Ino, Kind, Meta, NsOp, Object, Overlay, TailRegion, TailShape,
    NAMESPACE_OPS_MAX, ROOT, STAGE_DIR,
};

/// What `torn` kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Torn {
    /// The seed that chose the cut.
    pub seed: u64,
    /// Pending changes persisted whole.
    pub kept: usize,
    /// Pending changes there were.
    pub of: usize,
    /// Bytes kept of the change at the cut, when it was a write.
    pub partial_bytes: u64,
    /// The shape given to what was lost of writes that grew a file.
    pub tail: TailShape,
    /// The tails written (none for `keep`), drawn after the cut from the
    /// same seed.
    pub tails: Vec<TailRegion>,
}

/// A pending change of either kind, for `torn`'s global order.
enum Change {
    Data(Ino, DataOp),
    Namespace(NsOp),
}

/// The data changes `torn` loses: those from the cut on, the one at the
/// cut less the `partial_bytes` it kept.
fn lost_data(from_cut: &[(u64, Change)], partial_bytes: u64) -> Vec<(Ino, DataOp)> {
    let mut lost = Vec::new();
    for (i, (_, change)) in from_cut.iter().enumerate() {
        if let Change::Data(ino, op) = change {
            let rest = match op.suffix(partial_bytes as usize) {
                Some(rest) if i == 0 => rest,
                _ => op.clone(),
            };
            lost.push((*ino, rest));
        }
    }
    lost
}

fn model_error(what: &str) -> Errno {
    tracing::error!(what, "faultfs model inconsistency");
    Errno::EIO
}

impl Overlay {
    /// Creates `name` in `parent` (visible at once, durable once `parent`
    /// is fsynced).
    pub fn create(
        &mut self,
        parent: Ino,
        name: &OsStr,
        kind: Kind,
        meta: Meta,
    ) -> Result<Ino, Errno> {
        check_name(parent, name)?;
        match self.lookup(parent, name) {
            Ok(_) => return Err(Errno::EEXIST),
            Err(e) if e != Errno::ENOENT => return Err(e),
            Err(_) => {}
        }
        let ino = self.alloc_ino();
        let mut obj = Object::new(kind, meta);
        obj.visible = Some((parent, name.to_owned()));
        self.objects.insert(ino, obj);
        self.get_mut(parent)?
            .visible_children
            .insert(name.to_owned(), ino);
        self.push_ns(NsOp::Create {
            parent,
            name: name.to_owned(),
            ino,
        })?;
        Ok(ino)
    }

    /// Renames (visible at once, durable once a directory involved is fsynced).
    pub fn rename(
        &mut self,
        from: (Ino, &OsStr),
        to: (Ino, &OsStr),
        noreplace: bool,
    ) -> Result<(), Errno> {
        check_name(to.0, to.1)?;
        let src = self.lookup(from.0, from.1)?;
        if self.get(to.0)?.kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        let target = self.get(to.0)?.visible_children.get(to.1).copied();
        if target == Some(src) {
            return Ok(());
        }
        let src_kind = self.get(src)?.kind;
        if let Some(t) = target {
            if noreplace {
                return Err(Errno::EEXIST);
            }
            let t = self.get(t)?;
            match (src_kind, t.kind) {
                (Kind::Dir, Kind::File) => return Err(Errno::ENOTDIR),
                (Kind::File, Kind::Dir) => return Err(Errno::EISDIR),
                (Kind::Dir, Kind::Dir) if !t.visible_children.is_empty() => {
                    return Err(Errno::ENOTEMPTY)
                }
                _ => {}
            }
        }
        if src_kind == Kind::Dir && self.is_visible_ancestor(src, to.0) {
            return Err(Errno::EINVAL);
        }
        self.get_mut(from.0)?.visible_children.remove(from.1);
        if let Some(t) = target {
            self.get_mut(t)?.visible = None;
        }
        self.get_mut(to.0)?
            .visible_children
            .insert(to.1.to_owned(), src);
        self.get_mut(src)?.visible = Some((to.0, to.1.to_owned()));
        self.push_ns(NsOp::Rename {
            from_parent: from.0,
            from_name: from.1.to_owned(),
            to_parent: to.0,
            to_name: to.1.to_owned(),
            ino: src,
            replaced: target,
        })?;
        if let Some(t) = target {
            self.reclaim(t);
        }
        Ok(())
    }

    fn is_visible_ancestor(&self, ancestor: Ino, mut ino: Ino) -> bool {
        loop {
            if ino == ancestor {
                return true;
            }
            match self.objects.get(&ino).and_then(|o| o.visible.as_ref()) {
                Some((parent, _)) => ino = *parent,
                None => return false,
            }
        }
    }

    /// Unlinks a file (`Kind::File`) or removes an empty directory.
    pub fn remove(&mut self, parent: Ino, name: &OsStr, kind: Kind) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        let obj = self.get(ino)?;
        match (kind, obj.kind) {
            (Kind::File, Kind::Dir) => return Err(Errno::EISDIR),
            (Kind::Dir, Kind::File) => return Err(Errno::ENOTDIR),
            (Kind::Dir, Kind::Dir) if !obj.visible_children.is_empty() => {
                return Err(Errno::ENOTEMPTY)
            }
            _ => {}
        }
        self.get_mut(parent)?.visible_children.remove(name);
        self.get_mut(ino)?.visible = None;
        self.push_ns(NsOp::Remove {
            parent,
            name: name.to_owned(),
            ino,
        })?;
        self.reclaim(ino);
        Ok(())
    }

    fn push_ns(&mut self, op: NsOp) -> Result<(), Errno> {
        if self.namespace.len() >= NAMESPACE_OPS_MAX {
            // The oldest change alone is a prefix, so always a state the
            // process could have seen.
            tracing::warn!(
                max = NAMESPACE_OPS_MAX,
                "pending namespace changes over their bound: writing the oldest back"
            );
            let (_, oldest) = self.namespace.remove(0);
            self.commit_ns(&oldest)?;
            for ino in oldest.touches() {
                self.reclaim(ino);
            }
        }
        let seq = self.alloc_seq();
        self.namespace.push((seq, op));
        Ok(())
    }

    /// Writes `ino`'s pending data to its backing file, then (when `sync`)
    /// fsyncs it: fdatasync when `datasync`, fsync otherwise.
    pub fn sync_file(&mut self, ino: Ino, sync: bool, datasync: bool) -> Result<(), Errno> {
        let ops = std::mem::take(&mut self.get_mut(ino)?.pending);
        let needs_file =
            !ops.is_empty() || self.get(ino)?.content.is_some() || self.durable_path(ino).is_some();
        if !needs_file {
            return Ok(());
        }
        let file = match self.content(ino) {
            Ok(f) => f,
            Err(e) => {
                self.get_mut(ino)?.pending = ops;
                return Err(e);
            }
        };
        for (i, (_, op)) in ops.iter().enumerate() {
            if let Err(e) = op.apply_to(file) {
                tracing::warn!(ino, error = %e, "writing pending data to the backing file failed");
                let rest = ops[i..].to_vec();
                self.get_mut(ino)?.pending = rest;
                self.recount_pending();
                return Err(Errno::from(e));
            }
        }
        if sync {
            let done = if datasync {
                file.sync_data()
            } else {
                file.sync_all()
            };
            done.map_err(Errno::from)?;
        }
        self.pending_bytes -= ops.iter().map(|(_, op)| op.bytes()).sum::<u64>();
        Ok(())
    }

    fn recount_pending(&mut self) {
        self.pending_bytes = self
            .objects
            .values()
            .flat_map(|o| o.pending.iter().map(|(_, op)| op.bytes()))
            .sum();
    }

    /// Writes every file's pending data to the backing files, no fsync.
    pub fn flush_all(&mut self) -> Result<(), Errno> {
        let inos: Vec<Ino> = self
            .objects
            .iter()
            .filter(|(_, o)| !o.pending.is_empty())
            .map(|(i, _)| *i)
            .collect();
        for ino in inos {
            self.sync_file(ino, false, false)?;
        }
        Ok(())
    }

    /// Makes durable what an fsync of `dir` makes durable (see
    /// `chosen_by_dir_fsync`), then fsyncs the backing directories involved.
    pub fn sync_dir(&mut self, dir: Ino) -> Result<(), Errno> {
        let ops: Vec<NsOp> = self.namespace.iter().map(|(_, op)| op.clone()).collect();
        let chosen = chosen_by_dir_fsync(&ops, dir);
        let all = std::mem::take(&mut self.namespace);
        let mut touched: BTreeSet<Ino> = BTreeSet::from([dir]);
        let mut involved: BTreeSet<Ino> = BTreeSet::new();
        let mut failed = None;
        for ((seq, op), take) in all.into_iter().zip(chosen) {
            if !take || failed.is_some() {
                self.namespace.push((seq, op));
                continue;
            }
            match self.commit_ns(&op) {
                Ok(()) => {
                    touched.extend(op.parents());
                    involved.extend(op.touches());
                }
                Err(e) => {
                    failed = Some(e);
                    self.namespace.push((seq, op));
                }
            }
        }
        for ino in involved {
            self.reclaim(ino);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        for ino in touched {
            if let Some(path) = self.durable_path(ino) {
                File::open(&path)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| io_errno("fsync directory", &path, e))?;
            }
        }
        Ok(())
    }

    /// Applies one namespace change to the backing directory and the
    /// durable tree.
    fn commit_ns(&mut self, op: &NsOp) -> Result<(), Errno> {
        match op {
            NsOp::Create { parent, name, ino } => self.commit_create(*parent, name, *ino),
            NsOp::Rename {
                from_parent,
                from_name,
                to_parent,
                to_name,
                ino,
                ..
            } => {
                let src_dir = self
                    .durable_path(*from_parent)
                    .ok_or_else(|| model_error("rename from a directory with no durable name"))?;
                let dst_dir = self
                    .durable_path(*to_parent)
                    .ok_or_else(|| model_error("rename into a directory with no durable name"))?;
                if self.get(*from_parent)?.durable_children.get(from_name) != Some(ino) {
                    return Err(model_error(
                        "rename of an object not durable under its old name",
                    ));
                }
                self.displace(*to_parent, to_name, false)?;
                let (src, dst) = (src_dir.join(from_name), dst_dir.join(to_name));
                fs::rename(&src, &dst).map_err(|e| io_errno("rename", &src, e))?;
                self.get_mut(*from_parent)?
                    .durable_children
                    .remove(from_name);
                self.get_mut(*to_parent)?
                    .durable_children
                    .insert(to_name.clone(), *ino);
                self.get_mut(*ino)?.durable = Some((*to_parent, to_name.clone()));
                Ok(())
            }
            NsOp::Remove { parent, name, ino } => {
                if self.get(*parent)?.durable_children.get(name) != Some(ino) {
                    return Err(model_error(
                        "removal of an object not durable under its name",
                    ));
                }
                self.displace(*parent, name, true)
            }
        }
    }

    fn commit_create(&mut self, parent: Ino, name: &OsStr, ino: Ino) -> Result<(), Errno> {
        let dir = self
            .durable_path(parent)
            .ok_or_else(|| model_error("create in a directory with no durable name"))?;
        self.displace(parent, name, true)?;
        let path = dir.join(name);
        let (kind, perm, staged) = {
            let o = self.get(ino)?;
            (o.kind, u32::from(o.meta.perm), o.staged)
        };
        match kind {
            Kind::Dir => {
                fs::create_dir(&path).map_err(|e| io_errno("mkdir", &path, e))?;
                fs::set_permissions(&path, fs::Permissions::from_mode(perm))
                    .map_err(|e| io_errno("chmod", &path, e))?;
            }
            Kind::File if staged => {
                let from = self.stage_path(ino);
                fs::rename(&from, &path).map_err(|e| io_errno("rename from stage", &from, e))?;
            }
            Kind::File => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(perm)
                    .open(&path)
                    .map_err(|e| io_errno("create", &path, e))?;
                self.get_mut(ino)?.content = Some(file);
            }
        }
        let obj = self.get_mut(ino)?;
        obj.staged = false;
        obj.durable = Some((parent, name.to_owned()));
        self.get_mut(parent)?
            .durable_children
            .insert(name.to_owned(), ino);
        Ok(())
    }

    /// Takes away the durable name `parent/name` (and, when
    /// `remove_physically`, the backing entry: a rename replaces it
    /// itself). A file still open keeps its bytes through an open descriptor.
    fn displace(
        &mut self,
        parent: Ino,
        name: &OsStr,
        remove_physically: bool,
    ) -> Result<(), Errno> {
        let Some(x) = self.get(parent)?.durable_children.get(name).copied() else {
            return Ok(());
        };
        let path = self
            .durable_path(x)
            .ok_or_else(|| model_error("durable child with no path"))?;
        let (kind, open) = (self.get(x)?.kind, self.get(x)?.open);
        if kind == Kind::File && open > 0 {
            self.content(x)?;
        } else {
            self.get_mut(x)?.content = None;
        }
        if remove_physically {
            let done = match kind {
                Kind::File => fs::remove_file(&path),
                Kind::Dir => fs::remove_dir(&path),
            };
            match done {
                // Someone removed it from the backing directory behind
                // faultfs's back: the durable state already says gone.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(path = %path.display(), "backing entry already gone")
                }
                other => other.map_err(|e| io_errno("remove", &path, e))?,
            }
        }
        self.get_mut(parent)?.durable_children.remove(name);
        self.get_mut(x)?.durable = None;
        self.reclaim(x);
        Ok(())
    }

    /// Power loss: every pending change is dropped; what the process sees
    /// is the backing directory again; every open handle goes stale.
    pub fn lose(&mut self) -> Result<(), Errno> {
        self.namespace.clear();
        self.pending_bytes = 0;
        self.generation += 1;
        let inos: Vec<Ino> = self.objects.keys().copied().collect();
        for ino in &inos {
            let path = self.durable_path(*ino);
            let stat = path
                .as_ref()
                .map(fs::symlink_metadata)
                .transpose()
                .map_err(|e| {
                    io_errno("stat", path.as_deref().unwrap_or(self.backing.as_path()), e)
                })?;
            let obj = self.objects.get_mut(ino).expect("listed");
            obj.pending.clear();
            obj.content = None;
            obj.staged = false;
            obj.visible = obj.durable.clone();
            obj.visible_children = obj.durable_children.clone();
            obj.size = 0;
            if let Some(m) = stat {
                obj.meta = Meta::from_metadata(&m);
                obj.size = if obj.kind == Kind::File { m.len() } else { 0 };
            }
        }
        self.empty_stage().map_err(|e| {
            io_errno(
                "empty the stage directory",
                &self.backing.join(STAGE_DIR),
                e,
            )
        })?;
        for ino in inos {
            self.reclaim(ino);
        }
        Ok(())
    }

    /// Persists a seeded prefix of every pending change in issue order
    /// (the change at the cut, when a write, keeps a seeded prefix of its
    /// bytes), gives the files the lost writes grew the tail `tail` says,
    /// then loses the rest as [`Overlay::lose`] does.
    pub fn torn(&mut self, seed: u64, tail: TailShape) -> Result<Torn, Errno> {
        let mut changes: Vec<(u64, Change)> = self
            .namespace
            .iter()
            .map(|(s, op)| (*s, Change::Namespace(op.clone())))
            .collect();
        for (ino, obj) in &self.objects {
            changes.extend(
                obj.pending
                    .iter()
                    .map(|(s, op)| (*s, Change::Data(*ino, op.clone()))),
            );
        }
        changes.sort_by_key(|(s, _)| *s);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let kept = rng.gen_range(0..=changes.len());
        for (_, change) in &changes[..kept] {
            self.persist(change)?;
        }
        let mut partial_bytes = 0;
        if let Some((_, Change::Data(ino, op))) = changes.get(kept) {
            if op.bytes() > 0 {
                partial_bytes = rng.gen_range(0..op.bytes());
                let part = op.prefix(partial_bytes as usize).expect("a write");
                self.persist(&Change::Data(*ino, part))?;
            }
        }
        let lost = lost_data(&changes[kept..], partial_bytes);
        let tails = self.shape_tails(lost, tail, &mut rng);
        self.lose()?;
        Ok(Torn {
            seed,
            kept,
            of: changes.len(),
            partial_bytes,
            tail,
            tails: tails?,
        })
    }

    fn persist(&mut self, change: &Change) -> Result<(), Errno> {
        match change {
            Change::Namespace(op) => self.commit_ns(op),
            Change::Data(ino, op) => {
                let file = self.content(*ino)?;
                op.apply_to(file).map_err(Errno::from)
            }
        }
    }

    /// The kernel dropped `n` lookups of `ino`.
    pub fn forget(&mut self, ino: Ino, n: u64) {
        if let Some(o) = self.objects.get_mut(&ino) {
            o.lookups = o.lookups.saturating_sub(n);
        }
        self.reclaim(ino);
    }

    /// Drops `ino` when nothing can reach it any more: no name of either
    /// kind, no kernel lookup, no open handle, no pending namespace change.
    pub(crate) fn reclaim(&mut self, ino: Ino) {
        let Some(o) = self.objects.get(&ino) else {
            return;
        };
        let reachable = ino == ROOT
            || o.visible.is_some()
            || o.durable.is_some()
            || o.lookups > 0
            || o.open > 0;
        if reachable || self.namespace.iter().any(|(_, op)| op.involves(ino)) {
            return;
        }
        let o = self.objects.remove(&ino).expect("present");
        self.pending_bytes -= o.pending.iter().map(|(_, op)| op.bytes()).sum::<u64>();
        if o.staged {
            let path = self.stage_path(ino);
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not delete a staged file");
            }
        }
    }
}
