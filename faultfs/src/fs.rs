//! The FUSE side: kernel requests translated into [`Overlay`] calls, with
//! the injected faults applied first.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::faults::Faults;
use crate::overlay::{Ino, Kind, Meta, Overlay, ROOT};

/// Attribute and entry lifetime in the kernel: none, so that every lookup
/// and stat reaches faultfs and a power loss is seen at once.
const TTL: Duration = Duration::ZERO;

/// One open file or directory.
#[derive(Debug)]
pub(crate) struct Handle {
    pub(crate) ino: Ino,
    /// The overlay's generation when opened; a power loss makes it stale.
    generation: u64,
    append: bool,
    /// A directory's entries, taken at opendir so that readdir offsets hold.
    entries: Vec<(OsString, Ino, Kind)>,
}

/// The overlay and its open handles, under one lock.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) overlay: Overlay,
    pub(crate) handles: HashMap<u64, Handle>,
    next_fh: u64,
}

impl State {
    fn handle(&self, fh: FileHandle) -> Result<&Handle, Errno> {
        let h = self.handles.get(&fh.0).ok_or(Errno::EBADF)?;
        if h.generation != self.overlay.generation {
            return Err(Errno::EIO);
        }
        Ok(h)
    }

    fn open(
        &mut self,
        ino: Ino,
        append: bool,
        entries: Vec<(OsString, Ino, Kind)>,
    ) -> Result<u64, Errno> {
        self.overlay.get_mut(ino)?.open += 1;
        let fh = self.next_fh;
        self.next_fh += 1;
        let generation = self.overlay.generation;
        self.handles.insert(
            fh,
            Handle {
                ino,
                generation,
                append,
                entries,
            },
        );
        Ok(fh)
    }

    fn release(&mut self, fh: FileHandle) {
        if let Some(h) = self.handles.remove(&fh.0) {
            if let Some(o) = self.overlay.objects.get_mut(&h.ino) {
                o.open = o.open.saturating_sub(1);
            }
            self.overlay.reclaim(h.ino);
        }
    }

    fn attr(&self, ino: Ino) -> Result<FileAttr, Errno> {
        let o = self.overlay.get(ino)?;
        let (kind, nlink) = match o.kind {
            Kind::File => (FileType::RegularFile, 1),
            Kind::Dir => (FileType::Directory, 2),
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size: o.size,
            blocks: o.size.div_ceil(512),
            atime: o.meta.mtime,
            mtime: o.meta.mtime,
            ctime: o.meta.ctime,
            crtime: o.meta.ctime,
            kind,
            perm: o.meta.perm,
            nlink,
            uid: o.meta.uid,
            gid: o.meta.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// The entry for `ino`, counted as one kernel lookup.
    fn entry(&mut self, ino: Ino) -> Result<FileAttr, Errno> {
        let attr = self.attr(ino)?;
        self.overlay.get_mut(ino)?.lookups += 1;
        Ok(attr)
    }
}

/// The filesystem faultfs mounts.
#[derive(Debug, Clone)]
pub struct FaultFs {
    pub(crate) state: Arc<Mutex<State>>,
    pub(crate) faults: Arc<Mutex<Faults>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in one request must not wedge every later one.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl FaultFs {
    /// A filesystem over `overlay`, its jitter and `torn` seeds drawn from `seed`.
    pub fn new(overlay: Overlay, seed: u64) -> FaultFs {
        let state = State {
            overlay,
            handles: HashMap::new(),
            next_fh: 1,
        };
        FaultFs {
            state: Arc::new(Mutex::new(state)),
            faults: Arc::new(Mutex::new(Faults::new(seed))),
        }
    }

    /// Waits as `delay fsync` says, then fails as `fail fsync` says, or
    /// with ENOSPC when the disk is full.
    fn before_fsync(&self) -> Result<(), Errno> {
        let delay = lock(&self.faults).next_fsync_delay();
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        let mut faults = lock(&self.faults);
        match faults.next_fsync_error() {
            Some(errno) => Err(Errno::from_i32(errno)),
            None if faults.disk_full() => Err(Errno::ENOSPC),
            None => Ok(()),
        }
    }

    fn make(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        kind: Kind,
        mode: u32,
        umask: u32,
    ) -> Result<(Ino, FileAttr), Errno> {
        // A new entry (and inode) needs room on the disk.
        if lock(&self.faults).disk_full() {
            return Err(Errno::ENOSPC);
        }
        let now = SystemTime::now();
        let meta = Meta {
            perm: (mode & !umask & 0o7777) as u16,
            uid: req.uid(),
            gid: req.gid(),
            mtime: now,
            ctime: now,
        };
        let mut s = lock(&self.state);
        let ino = s.overlay.create(parent.0, name, kind, meta)?;
        Ok((ino, s.entry(ino)?))
    }
}

impl Filesystem for FaultFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut s = lock(&self.state);
        match s
            .overlay
            .lookup(parent.0, name)
            .and_then(|ino| s.entry(ino))
        {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        lock(&self.state).overlay.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match lock(&self.state).attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = lock(&self.state);
        let done = (|| {
            if let Some(fh) = fh {
                s.handle(fh)?;
            }
            if let Some(len) = size {
                s.overlay.truncate(ino.0, len)?;
            }
            if mode.is_some() || uid.is_some() || gid.is_some() || mtime.is_some() {
                s.overlay.set_meta(ino.0, mode, uid, gid, mtime.map(time))?;
            }
            s.attr(ino.0)
        })();
        match done {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::ENOTSUP);
        }
        match self.make(req, parent, name, Kind::File, mode, umask) {
            Ok((_, attr)) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        match self.make(req, parent, name, Kind::Dir, mode, umask) {
            Ok((_, attr)) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match lock(&self.state).overlay.remove(parent.0, name, Kind::File) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match lock(&self.state).overlay.remove(parent.0, name, Kind::Dir) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_EXCHANGE)
            || flags.contains(RenameFlags::RENAME_WHITEOUT)
        {
            return reply.error(Errno::EINVAL);
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        match lock(&self.state)
            .overlay
            .rename((parent.0, name), (newparent.0, newname), noreplace)
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut s = lock(&self.state);
        let done = match s.overlay.get(ino.0).map(|o| o.kind) {
            Ok(Kind::File) => s.open(ino.0, flags.0 & libc::O_APPEND != 0, Vec::new()),
            Ok(Kind::Dir) => Err(Errno::EISDIR),
            Err(e) => Err(e),
        };
        match done {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut s = lock(&self.state);
        match s
            .handle(fh)
            .map(|_| ())
            .and_then(|()| s.overlay.read(ino.0, offset, size))
        {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _wf: WriteFlags,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let delay = lock(&self.faults).next_write_delay();
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        // A disk filling up takes part of the write: the kernel hands the
        // short count to the process (direct I/O).
        let Some(taken) = lock(&self.faults).admit_write(data.len() as u64) else {
            return reply.error(Errno::ENOSPC);
        };
        let data = &data[..taken as usize];
        let mut s = lock(&self.state);
        let done = s
            .handle(fh)
            .map(|h| h.append)
            .and_then(|append| s.overlay.write(ino.0, offset, data, append));
        drop(s);
        match done {
            Ok(_) => reply.written(data.len() as u32),
            Err(e) => {
                lock(&self.faults).refund_write(taken);
                reply.error(e)
            }
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() is not fsync: nothing becomes durable here.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.state).release(fh);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let done = self.before_fsync().and_then(|()| {
            let mut s = lock(&self.state);
            s.handle(fh)?;
            s.overlay.sync_file(ino.0, true, datasync)
        });
        match done {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut s = lock(&self.state);
        let done = s
            .overlay
            .children(ino.0)
            .and_then(|entries| s.open(ino.0, false, entries));
        match done {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let s = lock(&self.state);
        let h = match s.handle(fh) {
            Ok(h) => h,
            Err(e) => return reply.error(e),
        };
        let parent = s
            .overlay
            .get(ino.0)
            .ok()
            .and_then(|o| o.visible.as_ref().map(|(p, _)| *p))
            .unwrap_or(ROOT);
        let dots = [
            (OsString::from("."), ino.0, Kind::Dir),
            (OsString::from(".."), parent, Kind::Dir),
        ];
        for (i, (name, child, kind)) in dots
            .iter()
            .chain(h.entries.iter())
            .enumerate()
            .skip(offset as usize)
        {
            let kind = if *kind == Kind::Dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            if reply.add(INodeNo(*child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        lock(&self.state).release(fh);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let done = self.before_fsync().and_then(|()| {
            let mut s = lock(&self.state);
            s.handle(fh)?;
            s.overlay.sync_dir(ino.0)
        });
        match done {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let backing = lock(&self.state).overlay.backing.clone();
        // A full disk says so to `df` too.
        let full = lock(&self.faults).disk_full();
        let free = |n: u64| if full { 0 } else { n };
        match nix::sys::statvfs::statvfs(&backing) {
            Ok(v) => reply.statfs(
                v.blocks(),
                free(v.blocks_free()),
                free(v.blocks_available()),
                v.files(),
                v.files_free(),
                v.block_size() as u32,
                255,
                v.fragment_size() as u32,
            ),
            Err(e) => reply.error(Errno::from_i32(e as i32)),
        }
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: fuser::ReplyXattr,
    ) {
        // ENOSYS makes the kernel stop asking for the life of the mount.
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let done = self
            .make(req, parent, name, Kind::File, mode, umask)
            .and_then(|(ino, attr)| {
                let fh = lock(&self.state).open(ino, flags & libc::O_APPEND != 0, Vec::new())?;
                Ok((attr, fh))
            });
        match done {
            Ok((attr, fh)) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(fh),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(e),
        }
    }
}
