//! Injected disk faults: fsync and write delays, fsync failures, a full
//! disk.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::control::FsyncError;

/// The faults in force; `heal` clears them.
#[derive(Debug)]
pub struct Faults {
    fsync_delay: Option<(Duration, Duration)>,
    write_delay: Option<Duration>,
    fsync_error: Option<(FsyncError, Option<u64>)>,
    /// `enospc on`: the bytes writes may still take; `Some(0)`: the disk
    /// is full.
    space_left: Option<u64>,
    rng: ChaCha8Rng,
}

/// The faults in force, for `report`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FaultsView {
    /// `delay fsync`'s fixed part, if set.
    pub fsync_delay_ms: Option<u64>,
    /// `delay fsync`'s jitter bound, if set.
    pub fsync_jitter_ms: Option<u64>,
    /// `delay write`, if set.
    pub write_delay_ms: Option<u64>,
    /// `fail fsync`'s error, if set.
    pub fsync_error: Option<&'static str>,
    /// Fsyncs left to fail (`None`: all until `heal`).
    pub fsync_failures_left: Option<u64>,
    /// `enospc on` is in force (the disk is full, or will be).
    pub enospc: bool,
    /// Bytes writes may still take before the disk is full (`None`
    /// without `enospc on`).
    pub enospc_bytes_left: Option<u64>,
}

impl Faults {
    /// No faults; jitter drawn from `seed`.
    pub fn new(seed: u64) -> Faults {
        Faults {
            fsync_delay: None,
            write_delay: None,
            fsync_error: None,
            space_left: None,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Sets `delay fsync`.
    pub fn delay_fsync(&mut self, ms: u64, jitter_ms: u64) {
        self.fsync_delay = Some((Duration::from_millis(ms), Duration::from_millis(jitter_ms)));
    }

    /// Sets `delay write`.
    pub fn delay_write(&mut self, ms: u64) {
        self.write_delay = Some(Duration::from_millis(ms));
    }

    /// Sets `fail fsync`.
    pub fn fail_fsync(&mut self, error: FsyncError, count: Option<u64>) {
        self.fsync_error = Some((error, count));
    }

    /// Sets `enospc on`: the disk is full once `after_bytes` more bytes
    /// (none by default) have been written.
    pub fn enospc_on(&mut self, after_bytes: Option<u64>) {
        self.space_left = Some(after_bytes.unwrap_or(0));
    }

    /// `enospc off`: the disk has room again.
    pub fn enospc_off(&mut self) {
        self.space_left = None;
    }

    /// Clears every fault.
    pub fn heal(&mut self) {
        self.fsync_delay = None;
        self.write_delay = None;
        self.fsync_error = None;
        self.space_left = None;
    }

    /// How many of a write's `len` bytes the disk takes (a short write
    /// when it fills up on the way); `None` when it is full (ENOSPC).
    pub fn admit_write(&mut self, len: u64) -> Option<u64> {
        match &mut self.space_left {
            None => Some(len),
            Some(0) if len > 0 => None,
            Some(left) => {
                let taken = len.min(*left);
                *left -= taken;
                Some(taken)
            }
        }
    }

    /// Gives back what [`Faults::admit_write`] took for a write that failed.
    pub fn refund_write(&mut self, taken: u64) {
        if let Some(left) = &mut self.space_left {
            *left += taken;
        }
    }

    /// Whether the disk is full: fsyncs and creates fail with ENOSPC.
    pub fn disk_full(&self) -> bool {
        self.space_left == Some(0)
    }

    /// How long the next fsync waits.
    pub fn next_fsync_delay(&mut self) -> Option<Duration> {
        let (fixed, jitter) = self.fsync_delay?;
        let extra = if jitter.is_zero() {
            0
        } else {
            self.rng.gen_range(0..=jitter.as_millis() as u64)
        };
        Some(fixed + Duration::from_millis(extra))
    }

    /// How long the next write waits.
    pub fn next_write_delay(&self) -> Option<Duration> {
        self.write_delay
    }

    /// The errno the next fsync fails with, if it fails (counts it).
    pub fn next_fsync_error(&mut self) -> Option<i32> {
        let (error, left) = self.fsync_error?;
        match left {
            None => Some(error.errno()),
            Some(0) => {
                self.fsync_error = None;
                None
            }
            Some(n) => {
                self.fsync_error = if n == 1 {
                    None
                } else {
                    Some((error, Some(n - 1)))
                };
                Some(error.errno())
            }
        }
    }

    /// The faults in force.
    pub fn view(&self) -> FaultsView {
        FaultsView {
            fsync_delay_ms: self.fsync_delay.map(|(d, _)| d.as_millis() as u64),
            fsync_jitter_ms: self.fsync_delay.map(|(_, j)| j.as_millis() as u64),
            write_delay_ms: self.write_delay.map(|d| d.as_millis() as u64),
            fsync_error: self.fsync_error.map(|(e, _)| e.name()),
            fsync_failures_left: self.fsync_error.and_then(|(_, n)| n),
            enospc: self.space_left.is_some(),
            enospc_bytes_left: self.space_left,
        }
    }

    /// A fresh seed for `torn` without one.
    pub fn draw_seed(&mut self) -> u64 {
        self.rng.gen()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_failure_runs_out_and_heal_clears_everything() {
        let mut f = Faults::new(1);
        f.fail_fsync(FsyncError::Eio, Some(2));
        assert_eq!(f.next_fsync_error(), Some(libc::EIO));
        assert_eq!(f.next_fsync_error(), Some(libc::EIO));
        assert_eq!(f.next_fsync_error(), None);
        f.fail_fsync(FsyncError::Enospc, None);
        f.delay_fsync(10, 5);
        for _ in 0..20 {
            let d = f.next_fsync_delay().unwrap();
            assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(15));
        }
        assert_eq!(f.next_fsync_error(), Some(libc::ENOSPC));
        f.heal();
        assert_eq!((f.next_fsync_error(), f.next_fsync_delay()), (None, None));
    }

    #[test]
    fn a_disk_filling_up_takes_a_short_write_then_refuses_until_off_or_heal() {
        let mut f = Faults::new(1);
        assert_eq!(f.admit_write(1 << 20), Some(1 << 20));
        f.enospc_on(Some(10));
        assert!(!f.disk_full());
        assert_eq!(f.admit_write(4), Some(4));
        assert_eq!(f.admit_write(8), Some(6), "a short write fills the disk");
        assert!(f.disk_full());
        assert_eq!(f.admit_write(1), None);
        assert_eq!(f.admit_write(0), Some(0));
        f.refund_write(3);
        assert_eq!(f.admit_write(5), Some(3));
        f.enospc_off();
        assert_eq!((f.admit_write(5), f.disk_full()), (Some(5), false));
        f.enospc_on(None);
        assert_eq!(f.admit_write(1), None);
        assert!(f.view().enospc);
        f.heal();
        assert_eq!((f.admit_write(1), f.view().enospc), (Some(1), false));
    }
}
