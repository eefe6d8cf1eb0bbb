//! The overlay: the backing directory is the durable image, memory holds
//! what the process changed since (see `docs/faultfs.md`).
//!
//! Invariant: the backing directory (less the stage directory) holds
//! exactly the durable namespace, `Object::durable` and
//! `Object::durable_children` describe it, and every byte in it is durable;
//! nothing the process did reaches it but through a commit (fsync, fsyncdir,
//! `flush`, `torn`).

mod checkpoint;
mod commit;
mod corrupt;
mod data;
mod error;
mod namespace;
mod tail;

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::Errno;
use serde::Serialize;

pub use checkpoint::{Checkpoint, Restored, CHECKPOINTS_MAX, CHECKPOINT_DIR};
pub use commit::Torn;
pub use corrupt::{CorruptKind, Corruption, Damage};
pub(crate) use data::DataOp;
pub use error::FaultError;
pub(crate) use namespace::NsOp;
pub use tail::{Lost, TailRegion, TailShape};

/// An object (inode) number; the root is [`ROOT`].
pub type Ino = u64;

/// The root directory's inode number (FUSE's).
pub const ROOT: Ino = 1;

/// The directory inside the backing directory that holds the bytes of files
/// with no durable name (created but their directory never fsynced, or
/// unlinked while open). Hidden from the mount, emptied at every mount and
/// every power loss: nothing in it is reachable after one.
pub const STAGE_DIR: &str = ".faultfs-stage";

/// Objects loaded from the backing directory at mount, at most.
pub const OBJECTS_MAX: usize = 100_000;

/// Pending namespace changes kept, at most; past it the oldest are made
/// durable as an fsync of their directory would.
pub const NAMESPACE_OPS_MAX: usize = 4096;

/// A name's length limit (Linux's).
const NAME_BYTES_MAX: usize = 255;

/// What an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// An object's attributes other than size.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    /// Permission bits.
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Last modification.
    pub mtime: SystemTime,
    /// Last status change.
    pub ctime: SystemTime,
}

impl Meta {
    fn from_metadata(m: &fs::Metadata) -> Meta {
        let at = |s: i64, ns: i64| {
            UNIX_EPOCH + Duration::from_secs(s.max(0) as u64) + Duration::from_nanos(ns as u64)
        };
        Meta {
            perm: (m.mode() & 0o7777) as u16,
            uid: m.uid(),
            gid: m.gid(),
            mtime: at(m.mtime(), m.mtime_nsec()),
            ctime: at(m.ctime(), m.ctime_nsec()),
        }
    }
}

/// A name in a directory.
pub(crate) type Link = (Ino, OsString);

/// A file or directory as the process sees it, with where its durable
/// image lives.
#[derive(Debug)]
pub(crate) struct Object {
    pub(crate) kind: Kind,
    pub(crate) meta: Meta,
    /// The size the process sees (files).
    pub(crate) size: u64,
    /// Data changes not on the backing file, in issue order, with their
    /// sequence numbers.
    pub(crate) pending: Vec<(u64, DataOp)>,
    /// An open descriptor on the backing bytes (durable path or stage).
    pub(crate) content: Option<File>,
    /// The backing bytes are in the stage directory (no durable name).
    pub(crate) staged: bool,
    /// The durable name. Invariant: set iff the backing directory has it.
    pub(crate) durable: Option<Link>,
    /// The name the process sees.
    pub(crate) visible: Option<Link>,
    pub(crate) durable_children: BTreeMap<OsString, Ino>,
    pub(crate) visible_children: BTreeMap<OsString, Ino>,
    /// The kernel's lookup count (FUSE forget protocol).
    pub(crate) lookups: u64,
    /// Open file handles.
    pub(crate) open: u32,
}

impl Object {
    fn new(kind: Kind, meta: Meta) -> Object {
        Object {
            kind,
            meta,
            size: 0,
            pending: Vec::new(),
            content: None,
            staged: false,
            durable: None,
            visible: None,
            durable_children: BTreeMap::new(),
            visible_children: BTreeMap::new(),
            lookups: 0,
            open: 0,
        }
    }
}

/// Pending bytes of one file, for `report`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PendingFile {
    /// The path the process sees, from the mount's root.
    pub path: String,
    /// Bytes written and not yet on the backing file.
    pub bytes: u64,
    /// Writes and truncations pending.
    pub changes: usize,
}

/// What `report` answers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Pending data per file.
    pub files: Vec<PendingFile>,
    /// Pending bytes in all.
    pub bytes_total: u64,
    /// Pending namespace changes, described.
    pub namespace: Vec<String>,
}

/// The whole state; one lock guards it.
#[derive(Debug)]
pub struct Overlay {
    pub(crate) backing: PathBuf,
    pub(crate) objects: HashMap<Ino, Object>,
    next_ino: Ino,
    next_seq: u64,
    /// Pending namespace changes in issue order, with sequence numbers.
    pub(crate) namespace: Vec<(u64, NsOp)>,
    /// Sum of pending write bytes. Invariant: equals the sum over objects.
    pub(crate) pending_bytes: u64,
    pending_bytes_max: u64,
    /// Bumped by every power loss: handles opened before it are stale.
    pub(crate) generation: u64,
}

fn io_errno(what: &str, path: &Path, e: std::io::Error) -> Errno {
    tracing::warn!(what, path = %path.display(), error = %e, "backing filesystem error");
    Errno::from(e)
}

impl Overlay {
    /// Loads the backing directory as the durable image. Anything left in
    /// the stage directory by an earlier mount had no durable name and is
    /// deleted, as a power loss would have.
    pub fn open(backing: &Path, pending_bytes_max: u64) -> std::io::Result<Overlay> {
        let backing = backing.canonicalize()?;
        let stage = backing.join(STAGE_DIR);
        if stage.exists() {
            fs::remove_dir_all(&stage)?;
        }
        fs::create_dir(&stage)?;
        let meta = Meta::from_metadata(&fs::metadata(&backing)?);
        let mut overlay = Overlay {
            backing,
            objects: HashMap::new(),
            next_ino: ROOT + 1,
            next_seq: 1,
            namespace: Vec::new(),
            pending_bytes: 0,
            pending_bytes_max,
            generation: 0,
        };
        overlay.objects.insert(ROOT, Object::new(Kind::Dir, meta));
        overlay.load_dir(ROOT)?;
        Ok(overlay)
    }

    /// Adds `dir`'s backing entries (recursively) as durable and visible.
    fn load_dir(&mut self, dir: Ino) -> std::io::Result<()> {
        let path = self
            .durable_path(dir)
            .expect("a loaded directory is durable");
        let mut entries: Vec<_> = fs::read_dir(&path)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            if dir == ROOT && hidden(&name) {
                continue;
            }
            let m = fs::symlink_metadata(entry.path())?;
            let kind = if m.is_dir() {
                Kind::Dir
            } else if m.is_file() {
                Kind::File
            } else {
                tracing::warn!(path = %entry.path().display(), "not a file or directory: hidden from the mount");
                continue;
            };
            if self.objects.len() >= OBJECTS_MAX {
                return Err(std::io::Error::other(format!(
                    "backing directory holds more than {OBJECTS_MAX} objects"
                )));
            }
            let ino = self.alloc_ino();
            let mut obj = Object::new(kind, Meta::from_metadata(&m));
            obj.size = if kind == Kind::File { m.len() } else { 0 };
            obj.durable = Some((dir, name.clone()));
            obj.visible = Some((dir, name.clone()));
            self.objects.insert(ino, obj);
            let parent = self.objects.get_mut(&dir).expect("parent loaded");
            parent.durable_children.insert(name.clone(), ino);
            parent.visible_children.insert(name, ino);
            if kind == Kind::Dir {
                self.load_dir(ino)?;
            }
        }
        Ok(())
    }

    /// Empties the stage directory: nothing in it has a durable name.
    fn empty_stage(&self) -> std::io::Result<()> {
        let stage = self.backing.join(STAGE_DIR);
        fs::remove_dir_all(&stage).and_then(|()| fs::create_dir(&stage))
    }

    fn alloc_ino(&mut self) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        ino
    }

    pub(crate) fn alloc_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// The object, or ENOENT.
    pub(crate) fn get(&self, ino: Ino) -> Result<&Object, Errno> {
        self.objects.get(&ino).ok_or(Errno::ENOENT)
    }

    pub(crate) fn get_mut(&mut self, ino: Ino) -> Result<&mut Object, Errno> {
        self.objects.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    pub(crate) fn stage_path(&self, ino: Ino) -> PathBuf {
        self.backing.join(STAGE_DIR).join(ino.to_string())
    }

    /// Where `ino` lives in the backing directory, if it has a durable name.
    pub(crate) fn durable_path(&self, ino: Ino) -> Option<PathBuf> {
        if ino == ROOT {
            return Some(self.backing.clone());
        }
        let (parent, name) = self.objects.get(&ino)?.durable.as_ref()?;
        Some(self.durable_path(*parent)?.join(name))
    }

    /// The path the process sees, from the mount's root.
    pub fn visible_path(&self, ino: Ino) -> Option<String> {
        self.name_path(ino, |o| o.visible.as_ref())
    }

    /// The durable name's path from the mount's root (what the file is
    /// called after a power loss).
    pub fn durable_name(&self, ino: Ino) -> Option<String> {
        self.name_path(ino, |o| o.durable.as_ref())
    }

    fn name_path(&self, ino: Ino, link: fn(&Object) -> Option<&Link>) -> Option<String> {
        if ino == ROOT {
            return Some("/".into());
        }
        let (parent, name) = link(self.objects.get(&ino)?)?;
        let up = self.name_path(*parent, link)?;
        let sep = if up.ends_with('/') { "" } else { "/" };
        Some(format!("{up}{sep}{}", name.to_string_lossy()))
    }

    /// An open descriptor on `ino`'s backing bytes, created in the stage
    /// directory when the file has none yet.
    pub(crate) fn content(&mut self, ino: Ino) -> Result<&File, Errno> {
        if self.get(ino)?.content.is_none() {
            let durable = self.durable_path(ino);
            let staged = self.get(ino)?.staged;
            let (path, create) = match durable {
                Some(p) => (p, false),
                None => (self.stage_path(ino), !staged),
            };
            let perm = self.get(ino)?.meta.perm;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(create)
                .mode(u32::from(perm))
                .open(&path)
                .map_err(|e| io_errno("open backing file", &path, e))?;
            let obj = self.get_mut(ino)?;
            obj.staged = obj.durable.is_none();
            obj.content = Some(file);
        }
        Ok(self.get(ino)?.content.as_ref().expect("just set"))
    }

    /// The visible child `name` of `parent`.
    pub fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Ino, Errno> {
        let dir = self.get(parent)?;
        if dir.kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        dir.visible_children.get(name).copied().ok_or(Errno::ENOENT)
    }

    /// The visible children of `dir`, in name order.
    pub fn children(&self, dir: Ino) -> Result<Vec<(OsString, Ino, Kind)>, Errno> {
        let d = self.get(dir)?;
        if d.kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        Ok(d.visible_children
            .iter()
            .filter_map(|(n, i)| Some((n.clone(), *i, self.objects.get(i)?.kind)))
            .collect())
    }

    /// Reads what the process wrote: the durable bytes with the pending
    /// changes laid over them in order.
    pub fn read(&mut self, ino: Ino, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let obj = self.get(ino)?;
        if obj.kind != Kind::File {
            return Err(Errno::EISDIR);
        }
        let end = (offset.saturating_add(u64::from(size))).min(obj.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut window = vec![0u8; (end - offset) as usize];
        let has_bytes = obj.durable.is_some() || obj.staged || obj.content.is_some();
        if has_bytes {
            let file = self.content(ino)?;
            data::read_durable(file, offset, &mut window).map_err(Errno::from)?;
        }
        for (_, op) in &self.get(ino)?.pending {
            op.overlay(offset, &mut window);
        }
        Ok(window)
    }

    /// Records a write; returns the offset used (`append` writes at the end).
    pub fn write(
        &mut self,
        ino: Ino,
        offset: u64,
        data: &[u8],
        append: bool,
    ) -> Result<u64, Errno> {
        let seq = self.alloc_seq();
        let obj = self.get_mut(ino)?;
        if obj.kind != Kind::File {
            return Err(Errno::EISDIR);
        }
        let offset = if append { obj.size } else { offset };
        let end = offset.checked_add(data.len() as u64).ok_or(Errno::EFBIG)?;
        obj.size = obj.size.max(end);
        obj.meta.mtime = SystemTime::now();
        obj.pending.push((
            seq,
            DataOp::Write {
                offset,
                data: data.to_vec(),
            },
        ));
        self.pending_bytes += data.len() as u64;
        if self.pending_bytes > self.pending_bytes_max {
            tracing::warn!(pending_bytes = self.pending_bytes, max = self.pending_bytes_max, "pending data over its bound: writing it back (not fsynced), as a page cache under pressure would");
            self.flush_all()?;
        }
        Ok(offset)
    }

    /// Records a truncation (or extension) to `len`.
    pub fn truncate(&mut self, ino: Ino, len: u64) -> Result<(), Errno> {
        let seq = self.alloc_seq();
        let obj = self.get_mut(ino)?;
        if obj.kind != Kind::File {
            return Err(Errno::EISDIR);
        }
        obj.size = len;
        obj.meta.mtime = SystemTime::now();
        obj.pending.push((seq, DataOp::Truncate { len }));
        Ok(())
    }

    /// Changes permission bits, owner or times; applied to the backing
    /// file at once when it has one (attributes are not modelled as pending).
    pub fn set_meta(
        &mut self,
        ino: Ino,
        perm: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        mtime: Option<SystemTime>,
    ) -> Result<(), Errno> {
        let path = self.durable_path(ino).or_else(|| {
            let o = self.objects.get(&ino)?;
            o.staged.then(|| self.stage_path(ino))
        });
        let obj = self.get_mut(ino)?;
        if let Some(p) = perm {
            obj.meta.perm = (p & 0o7777) as u16;
        }
        obj.meta.uid = uid.unwrap_or(obj.meta.uid);
        obj.meta.gid = gid.unwrap_or(obj.meta.gid);
        obj.meta.mtime = mtime.unwrap_or(obj.meta.mtime);
        obj.meta.ctime = SystemTime::now();
        let meta = obj.meta;
        if let Some(path) = path {
            fs::set_permissions(&path, fs::Permissions::from_mode(u32::from(meta.perm)))
                .map_err(|e| io_errno("chmod", &path, e))?;
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::chown(&path, uid, gid)
                    .map_err(|e| io_errno("chown", &path, e))?;
            }
        }
        Ok(())
    }

    /// Pending data per file and pending namespace changes.
    pub fn report(&self) -> Report {
        let mut files: Vec<PendingFile> = self
            .objects
            .iter()
            .filter(|(_, o)| !o.pending.is_empty())
            .map(|(ino, o)| PendingFile {
                path: self
                    .visible_path(*ino)
                    .unwrap_or_else(|| format!("(unlinked inode {ino})")),
                bytes: o.pending.iter().map(|(_, op)| op.bytes()).sum(),
                changes: o.pending.len(),
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let namespace = self
            .namespace
            .iter()
            .map(|(_, op)| self.describe(op))
            .collect();
        Report {
            files,
            bytes_total: self.pending_bytes,
            namespace,
        }
    }

    fn describe(&self, op: &NsOp) -> String {
        let at = |dir: Ino, name: &OsStr| {
            let d = self
                .visible_path(dir)
                .unwrap_or_else(|| format!("(inode {dir})"));
            let sep = if d.ends_with('/') { "" } else { "/" };
            format!("{d}{sep}{}", name.to_string_lossy())
        };
        match op {
            NsOp::Create { parent, name, .. } => format!("create {}", at(*parent, name)),
            NsOp::Rename {
                from_parent,
                from_name,
                to_parent,
                to_name,
                ..
            } => {
                format!(
                    "rename {} {}",
                    at(*from_parent, from_name),
                    at(*to_parent, to_name)
                )
            }
            NsOp::Remove { parent, name, .. } => format!("remove {}", at(*parent, name)),
        }
    }
}

/// Checks a new entry's name.
pub(crate) fn check_name(parent: Ino, name: &OsStr) -> Result<(), Errno> {
    if name.len() > NAME_BYTES_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    if parent == ROOT && hidden(name) {
        return Err(Errno::EPERM);
    }
    Ok(())
}

/// faultfs's own directories in the backing root, hidden from the mount.
fn hidden(name: &OsStr) -> bool {
    name == STAGE_DIR || name == CHECKPOINT_DIR
}

#[cfg(test)]
mod tests;
