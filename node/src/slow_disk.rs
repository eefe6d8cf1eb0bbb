//! A leader whose own disk is slow hands leadership away (issue 18).
//!
//! Every commit waits for the leader's fsync before the leader applies and
//! answers, so a leader on a stalling disk slows the whole cluster although
//! a majority of healthy disks could go on. Like TiKV's slow-store leader
//! eviction, the raft loop watches its own fsync durations: after
//! [`SLOW_SYNCS_IN_A_ROW`] fsyncs in a row slower than the threshold, a
//! leader transfers leadership to its most caught-up voter, and then waits
//! [`COOLDOWN`] before it would do so again (so that a cluster whose every
//! disk is slow does not hand leadership round in circles).

use std::time::{Duration, Instant};

/// Slow fsyncs in a row that make a leader step aside.
pub const SLOW_SYNCS_IN_A_ROW: u32 = 2;

/// Time after a transfer before another may be asked.
pub const COOLDOWN: Duration = Duration::from_secs(10);

/// The watch over this node's own fsync durations.
#[derive(Debug)]
pub struct SlowDisk {
    /// Slower than this is slow; `None`: never step aside.
    threshold: Option<Duration>,
    in_a_row: u32,
    last_transfer: Option<Instant>,
}

impl SlowDisk {
    /// A watch for fsyncs slower than `threshold_ms` (0: off).
    pub fn new(threshold_ms: u64) -> SlowDisk {
        SlowDisk {
            threshold: (threshold_ms > 0).then(|| Duration::from_millis(threshold_ms)),
            in_a_row: 0,
            last_transfer: None,
        }
    }

    /// Notes one fsync that took `took`, finished at `now`; true when a
    /// leader should now hand leadership away (the caller then calls
    /// [`SlowDisk::transferred`] if it did).
    pub fn observe(&mut self, took: Duration, now: Instant) -> bool {
        let Some(threshold) = self.threshold else {
            return false;
        };
        if took < threshold {
            self.in_a_row = 0;
            return false;
        }
        self.in_a_row = self.in_a_row.saturating_add(1);
        let cooled = self
            .last_transfer
            .is_none_or(|t| now.duration_since(t) >= COOLDOWN);
        self.in_a_row >= SLOW_SYNCS_IN_A_ROW && cooled
    }

    /// Records a transfer asked at `now`.
    pub fn transferred(&mut self, now: Instant) {
        self.last_transfer = Some(now);
        self.in_a_row = 0;
    }
}

/// The voter to hand leadership to: the most caught-up one other than
/// `me` (lowest id among equals), from `(id, matched)` pairs.
pub fn successor(me: u64, voters: impl IntoIterator<Item = (u64, u64)>) -> Option<u64> {
    voters
        .into_iter()
        .filter(|&(id, _)| id != me)
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn two_slow_fsyncs_in_a_row_ask_for_a_transfer_one_does_not() {
        let t0 = Instant::now();
        let mut w = SlowDisk::new(250);
        assert!(!w.observe(MS(600), t0));
        assert!(!w.observe(MS(3), t0), "a fast fsync breaks the row");
        assert!(!w.observe(MS(600), t0));
        assert!(w.observe(MS(250), t0));
    }

    #[test]
    fn after_a_transfer_the_watch_waits_out_the_cooldown() {
        let t0 = Instant::now();
        let mut w = SlowDisk::new(250);
        w.observe(MS(900), t0);
        assert!(w.observe(MS(900), t0));
        w.transferred(t0);
        let soon = t0 + COOLDOWN / 2;
        assert!(!w.observe(MS(900), soon));
        assert!(!w.observe(MS(900), soon), "still cooling down");
        assert!(w.observe(MS(900), t0 + COOLDOWN));
    }

    #[test]
    fn a_zero_threshold_never_steps_aside() {
        let mut w = SlowDisk::new(0);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(!w.observe(Duration::from_secs(5), t0));
        }
    }

    #[test]
    fn the_successor_is_the_most_caught_up_other_voter() {
        assert_eq!(successor(1, [(1, 90), (2, 70), (3, 80)]), Some(3));
        assert_eq!(successor(1, [(1, 90), (2, 80), (3, 80)]), Some(2));
        assert_eq!(successor(1, [(1, 90)]), None);
    }
}
