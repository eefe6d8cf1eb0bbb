//! The process's real uptime, from the kernel's clocks rather than the
//! process's own: under libfaketime every clock call of the node is faked,
//! but `/proc` files are read as they are. The clock nemesis needs it to
//! change a node's clock *rate* without a jump (libfaketime applies a rate
//! from the process's start, so `+0 x0.5` alone would set the clock back by
//! half the uptime).

/// Milliseconds since this process started: the kernel's time since boot
/// (`/proc/uptime`) minus the process's start after boot
/// (`/proc/self/stat`); `None` where `/proc` cannot be read or parsed.
pub fn process_uptime_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    uptime_from(&stat, &uptime, clock_ticks_per_s()?)
}

fn clock_ticks_per_s() -> Option<u64> {
    // SAFETY: sysconf reads a constant of the running system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0)
}

/// `stat` is `/proc/self/stat` (field 22 is the start time in clock ticks
/// after boot; the command name in field 2 may hold spaces and parentheses,
/// so fields are counted after its last `)`), `uptime` is `/proc/uptime`.
fn uptime_from(stat: &str, uptime: &str, ticks_per_s: u64) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields 3.. follow the name: field 22 is the 20th of them.
    let start_ticks: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let since_boot_s: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    let since_boot_ms = (since_boot_s * 1e3) as u64;
    let started_ms = start_ticks.checked_mul(1000)? / ticks_per_s;
    since_boot_ms.checked_sub(started_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_field_is_counted_after_the_command_name() {
        let stat =
            "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 9 0 12345 1000 10";
        assert_eq!(
            uptime_from(stat, "200.00 300.00\n", 100),
            Some(200_000 - 123_450)
        );
    }

    #[test]
    fn damaged_proc_files_give_none() {
        assert_eq!(uptime_from("no name here", "1.0 1.0", 100), None);
        assert_eq!(uptime_from("1 (x) S 1", "1.0 1.0", 100), None);
        let stat = "1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 999999 0 0";
        assert_eq!(
            uptime_from(stat, "1.00 1.00", 100),
            None,
            "started after now"
        );
    }

    #[test]
    fn this_process_has_an_uptime() {
        assert!(process_uptime_ms().is_some());
    }
}
