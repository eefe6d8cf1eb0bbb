//! The store: one directory per run (docs/store.md), and `store/latest`.

use anyhow::Context;
use serde::Serialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A run's directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// `store/<test-name>/<timestamp>`.
    pub path: PathBuf,
    /// The store root.
    pub root: PathBuf,
}

fn timestamp() -> String {
    // UTC, YYYYmmddTHHMMSS, without a date crate: civil-from-days.
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Milliseconds since the epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl RunDir {
    /// Creates `root/<name>/<timestamp>` and writes `test.json`: the test
    /// (the plan) with the start time and the harness's version.
    pub fn create(root: &Path, name: &str, test: &impl Serialize) -> anyhow::Result<RunDir> {
        let base = root.join(name);
        let mut path = base.join(timestamp());
        let mut n = 1;
        while path.exists() {
            n += 1;
            path = base.join(format!("{}-{n}", timestamp()));
        }
        std::fs::create_dir_all(path.join("nodes"))
            .with_context(|| format!("creating {}", path.display()))?;
        let mut test = serde_json::to_value(test)?;
        let extra =
            json!({"started_unix_ms": unix_ms(), "ordeal_version": env!("CARGO_PKG_VERSION")});
        test.as_object_mut()
            .expect("the test is an object")
            .extend(extra.as_object().expect("object").clone());
        write_json(&path.join("test.json"), &test)?;
        Ok(RunDir {
            path,
            root: root.to_path_buf(),
        })
    }

    /// Adds `key` to `test.json` (a fact known only once the run is under
    /// way, such as where the history's clock starts).
    pub fn amend_test(&self, key: &str, value: Value) -> anyhow::Result<()> {
        let path = self.path.join("test.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut test: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let Some(fields) = test.as_object_mut() else {
            anyhow::bail!("{}: not a JSON object", path.display());
        };
        fields.insert(key.to_string(), value);
        write_json(&path, &test)
    }

    /// Points `store/latest` at this run (a relative symlink).
    pub fn mark_latest(&self) -> anyhow::Result<()> {
        let link = self.root.join("latest");
        let target = self
            .path
            .strip_prefix(&self.root)
            .unwrap_or(&self.path)
            .to_path_buf();
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link)
            .with_context(|| format!("linking {}", link.display()))
    }

    /// `nodes/<name>/`, created.
    pub fn node_dir(&self, node: &str) -> anyhow::Result<PathBuf> {
        let dir = self.path.join("nodes").join(node);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// The history file.
    pub fn history(&self) -> PathBuf {
        self.path.join("history.jsonl")
    }
}

/// Writes pretty JSON.
pub fn write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_look_like_the_store_doc() {
        let t = super::timestamp();
        assert_eq!(t.len(), 15);
        assert_eq!(&t[8..9], "T");
        assert!(t.starts_with("20"));
    }
}
