//! Slow-disk evidence for the fsync figure: the nodes' slow-disk warnings
//! counted from their logs (every restart appends to the same log, so the
//! count covers the whole run, unlike a node's counters). The fsync plot
//! shades every fault window, the `slow-disk` ones among them.

use std::io::BufRead;
use std::path::Path;

/// Substrings that mark a slow-disk warning: ordeal-node's (Fabric's
/// wording) and etcd's.
pub const SLOW_DISK_MARKERS: [&str; 2] = [
    "WAL sync took longer than half the election timeout",
    "slow fdatasync",
];

/// Lines of `nodes/<node>/node.log` that carry a slow-disk warning; `None`
/// when the run has no log for the node.
pub fn warnings(run_dir: &Path, node: &str) -> Option<u64> {
    let file = std::fs::File::open(run_dir.join("nodes").join(node).join("node.log")).ok()?;
    let mut count = 0;
    for line in std::io::BufReader::new(file).split(b'\n') {
        let Ok(line) = line else { break };
        let text = String::from_utf8_lossy(&line);
        if SLOW_DISK_MARKERS.iter().any(|m| text.contains(m)) {
            count += 1;
        }
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_counted_per_line_and_a_missing_log_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("nodes").join("n1");
        std::fs::create_dir_all(&node).unwrap();
        std::fs::write(
            node.join("node.log"),
            "INFO serving\nWARN took_ms=812.3 threshold_ms=500 bytes=96 WAL sync took longer than half the election timeout (slow disk)\n\
             {\"level\":\"warn\",\"msg\":\"slow fdatasync\",\"took\":\"1.2s\"}\nINFO WAL sync ok\n",
        )
        .unwrap();
        assert_eq!(warnings(dir.path(), "n1"), Some(2));
        assert_eq!(warnings(dir.path(), "n2"), None);
    }
}
