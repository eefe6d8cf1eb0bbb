//! Directories whose names survive a crash. A name created in a directory
//! (a file, a subdirectory, a rename) is durable only once that directory
//! is fsynced; a new directory's own name, once its parent is.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// Fsyncs a directory, so that names created or replaced in it survive a
/// crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

/// Creates `dir` and every missing directory above it, each followed by
/// an fsync of its parent, so that a power loss cannot take away a data
/// directory whose files were fsynced (their entries are the directory's
/// own fsync's business). Returns the directories created, outermost
/// first; none when `dir` exists.
pub fn create_synced(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .take_while(|p| !p.exists())
        .collect();
    let mut created = Vec::new();
    for path in missing.into_iter().rev() {
        match fs::create_dir(path) {
            Ok(()) => {}
            // Made meanwhile by someone else, who syncs its parent.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => continue,
            Err(e) => return Err(e),
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        sync_dir(parent)?;
        created.push(path.to_path_buf());
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_every_missing_directory_outermost_first() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a").join("b").join("c");
        let created = create_synced(&dir).unwrap();
        assert_eq!(
            created,
            [root.path().join("a"), root.path().join("a/b"), dir.clone()]
        );
        assert!(dir.is_dir());
        assert!(create_synced(&dir).unwrap().is_empty(), "it exists");
        let file = root.path().join("f");
        fs::write(&file, b"x").unwrap();
        assert!(create_synced(&file.join("d")).is_err(), "a file in the way");
    }
}
