//! Run labels (`ordeal-<pid>-<seed>`), put on everything a run creates,
//! and whether the harness that made one still runs: `harness clean` never
//! takes a live run's cluster.

/// Whether the harness that made `label` (`ordeal-<pid>-<seed>`) still
/// runs, so that `clean` never takes a live run's cluster.
pub fn owner_alive(label: &str) -> bool {
    let Some(pid) = label
        .strip_prefix("ordeal-")
        .and_then(|rest| rest.split('-').next())
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return false;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&cmdline)
        .split('\0')
        .next()
        .is_some_and(|program| program.ends_with("harness"))
}
