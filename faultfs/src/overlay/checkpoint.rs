//! Checkpoints of the durable image (`checkpoint`, `restore`,
//! `drop-checkpoint`): a copy of the backing directory kept in
//! `BACKING/.faultfs-checkpoints/NAME`, and the durable image replaced by
//! one, as if the disk had been restored from a backup. A checkpoint is
//! crash-consistent, as a block-device snapshot is: it holds what a power
//! loss at that moment would have left, never what the process had not
//! made durable.

use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::io_error;
use super::{hidden, FaultError, Meta, Overlay, ROOT};

/// The directory in the backing root that holds the checkpoints; hidden
/// from the mount, kept across mounts.
pub const CHECKPOINT_DIR: &str = ".faultfs-checkpoints";

/// Checkpoints kept at most.
pub const CHECKPOINTS_MAX: usize = 16;

/// A checkpoint name's length limit.
const NAME_BYTES_MAX: usize = 64;

/// What `checkpoint` copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Its name.
    pub name: String,
    /// Files copied.
    pub files: u64,
    /// Directories copied (the root not counted).
    pub dirs: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// Whether a checkpoint of that name was replaced.
    pub replaced: bool,
}

/// What `restore` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    /// The checkpoint restored.
    pub name: String,
    /// Files in the durable image now.
    pub files: u64,
    /// Directories in it (the root not counted).
    pub dirs: u64,
    /// Bytes in it.
    pub bytes: u64,
    /// Pending (unsynced) data bytes dropped.
    pub dropped_pending_bytes: u64,
    /// Pending namespace changes dropped.
    pub dropped_namespace_changes: usize,
}

#[derive(Debug, Default)]
struct Counts {
    files: u64,
    dirs: u64,
    bytes: u64,
}

impl Overlay {
    /// Copies the durable image to the checkpoint `name` (replacing one of
    /// that name). What is pending is not copied.
    pub fn checkpoint(&mut self, name: &str) -> Result<Checkpoint, FaultError> {
        check_name(name)?;
        let dir = self.backing.join(CHECKPOINT_DIR);
        fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        let target = dir.join(name);
        let replaced = target.exists();
        if !replaced && self.checkpoints()?.len() >= CHECKPOINTS_MAX {
            return Err(FaultError::TooManyCheckpoints {
                name: name.to_owned(),
                max: CHECKPOINTS_MAX,
            });
        }
        // Copied aside first, so that a failure leaves no half checkpoint
        // under the name.
        let tmp = dir.join(format!(".tmp-{name}"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_error("remove", &tmp))?;
        }
        fs::create_dir(&tmp).map_err(io_error("create", &tmp))?;
        let mut counts = Counts::default();
        copy_tree(&self.backing, &tmp, true, false, &mut counts)?;
        if replaced {
            fs::remove_dir_all(&target).map_err(io_error("remove", &target))?;
        }
        fs::rename(&tmp, &target).map_err(io_error("rename", &tmp))?;
        Ok(Checkpoint {
            name: name.to_owned(),
            files: counts.files,
            dirs: counts.dirs,
            bytes: counts.bytes,
            replaced,
        })
    }

    /// Replaces the durable image with the checkpoint `name` (made durable:
    /// every file and directory fsynced), drops every pending change and
    /// reloads the tree. The caller makes sure no handle is open: every
    /// object is new afterwards.
    pub fn restore(&mut self, name: &str) -> Result<Restored, FaultError> {
        let source = self.checkpoint_path(name)?;
        let dropped_pending_bytes = self.pending_bytes;
        let dropped_namespace_changes = self.namespace.len();
        let backing = self.backing.clone();
        for entry in fs::read_dir(&backing).map_err(io_error("list", &backing))? {
            let entry = entry.map_err(io_error("list", &backing))?;
            if hidden(&entry.file_name()) {
                continue;
            }
            let path = entry.path();
            let gone = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            gone.map_err(io_error("remove", &path))?;
        }
        let mut counts = Counts::default();
        copy_tree(&source, &backing, false, true, &mut counts)?;
        self.reload()?;
        Ok(Restored {
            name: name.to_owned(),
            files: counts.files,
            dirs: counts.dirs,
            bytes: counts.bytes,
            dropped_pending_bytes,
            dropped_namespace_changes,
        })
    }

    /// Deletes the checkpoint `name`.
    pub fn drop_checkpoint(&mut self, name: &str) -> Result<(), FaultError> {
        let path = self.checkpoint_path(name)?;
        fs::remove_dir_all(&path).map_err(io_error("remove", &path))
    }

    /// The checkpoints kept, in name order.
    pub fn checkpoints(&self) -> Result<Vec<String>, FaultError> {
        let dir = self.backing.join(CHECKPOINT_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("list", &dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let name = entry.map_err(io_error("list", &dir))?.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with('.') {
                names.push(name.into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The checkpoint `name`'s directory, which must exist.
    pub fn checkpoint_path(&self, name: &str) -> Result<std::path::PathBuf, FaultError> {
        check_name(name)?;
        let path = self.backing.join(CHECKPOINT_DIR).join(name);
        if !path.is_dir() {
            return Err(FaultError::NoCheckpoint {
                name: name.to_owned(),
            });
        }
        Ok(path)
    }

    /// Forgets every object and pending change and loads the backing
    /// directory again, as at mount. Object numbers keep counting up, so
    /// that none the kernel still remembers names a different object.
    fn reload(&mut self) -> Result<(), FaultError> {
        self.namespace.clear();
        self.pending_bytes = 0;
        self.generation += 1;
        self.objects.retain(|ino, _| *ino == ROOT);
        let backing = self.backing.clone();
        let meta = fs::metadata(&backing).map_err(io_error("stat", &backing))?;
        let root = self
            .objects
            .get_mut(&ROOT)
            .expect("the root is never dropped");
        root.meta = Meta::from_metadata(&meta);
        root.durable_children.clear();
        root.visible_children.clear();
        self.empty_stage()
            .map_err(io_error("empty the stage directory", &backing))?;
        self.load_dir(ROOT).map_err(io_error("load", &backing))
    }
}

fn check_name(name: &str) -> Result<(), FaultError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_BYTES_MAX
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(FaultError::BadName {
            name: name.to_owned(),
        })
    }
}

/// Copies the files and directories under `from` into the existing
/// directory `to`, with their modes and owners; faultfs's own directories
/// at `from`'s top are skipped when `skip_hidden`. With `sync`, every file
/// and directory written is fsynced.
fn copy_tree(
    from: &Path,
    to: &Path,
    skip_hidden: bool,
    sync: bool,
    counts: &mut Counts,
) -> Result<(), FaultError> {
    let mut entries = fs::read_dir(from)
        .and_then(|d| d.collect::<Result<Vec<_>, _>>())
        .map_err(io_error("list", from))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if skip_hidden && hidden(&name) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        let meta = fs::symlink_metadata(&src).map_err(io_error("stat", &src))?;
        if meta.is_dir() {
            fs::create_dir(&dst).map_err(io_error("create", &dst))?;
            copy_tree(&src, &dst, false, sync, counts)?;
            counts.dirs += 1;
        } else if meta.is_file() {
            counts.bytes += fs::copy(&src, &dst).map_err(io_error("copy", &src))?;
            counts.files += 1;
            if sync {
                File::open(&dst)
                    .and_then(|f| f.sync_all())
                    .map_err(io_error("fsync", &dst))?;
            }
        } else {
            // Neither: faultfs hides it from the mount, so it is not part
            // of the durable image.
            continue;
        }
        std::os::unix::fs::chown(&dst, Some(meta.uid()), Some(meta.gid()))
            .map_err(io_error("chown", &dst))?;
        fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(io_error("chmod", &dst))?;
    }
    if sync {
        File::open(to)
            .and_then(|d| d.sync_all())
            .map_err(io_error("fsync", to))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn checkpoint_names_are_plain_words() {
        for good in ["c1", "before-rollback", "n1.t17", "A_b"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        let long = "x".repeat(65);
        for bad in ["", ".hidden", "a/b", "..", "a b", long.as_str(), "é"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
