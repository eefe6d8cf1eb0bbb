//! A node's clock setting, as the runtimes' `set_clock` takes it, and how
//! it is written for libfaketime. A leaf: it depends on nothing else in
//! the harness.

/// Where Debian's `libfaketime` package puts the preload library (and where
/// the node image holds a copy).
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// A libfaketime setting: `offset_s` added to the wall clock, `rate` the
/// speed of the node's clocks (1.0 = real time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockSetting {
    /// Seconds added to the real clock (may be negative).
    pub offset_s: f64,
    /// Speed of all clocks of the process (1.0 = normal).
    pub rate: f64,
}

impl ClockSetting {
    /// Real time: no offset, normal speed.
    pub const REAL: ClockSetting = ClockSetting {
        offset_s: 0.0,
        rate: 1.0,
    };

    /// The setting that runs the clock at `rate` from now on without a
    /// jump, for a process up `uptime_ms` (real time since it started).
    /// libfaketime applies a rate from the process's start: the fake clock
    /// reads `start + offset + (now - start) * rate`, so `+0 x0.5` alone
    /// would set the clock of a node up 20 s back by 10 s at once. The
    /// offset `uptime * (1 - rate)` makes the fake clock equal to the real
    /// one at the moment of the change (to within the second libfaketime
    /// takes to reread its file).
    pub fn rate_from_now(rate: f64, uptime_ms: u64) -> ClockSetting {
        let offset_s = uptime_ms as f64 / 1e3 * (1.0 - rate);
        ClockSetting {
            // Whole milliseconds: the string carries three decimals.
            offset_s: (offset_s * 1e3).round() / 1e3,
            rate,
        }
    }

    /// The libfaketime setting string: an offset first, always (`"+0 x2"`,
    /// not `"x2"`, see NOTES.md).
    pub fn faketime(self) -> String {
        let offset = if self.offset_s.fract() == 0.0 {
            format!("{:+}", self.offset_s as i64)
        } else {
            format!("{:+.3}", self.offset_s)
        };
        if self.rate == 1.0 {
            format!("{offset} x1")
        } else {
            format!("{offset} x{}", self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_from_now_cancels_what_libfaketime_applied_since_the_start() {
        // Up 20 s, half speed: the clock would fall 10 s behind at once.
        let slow = ClockSetting::rate_from_now(0.5, 20_000);
        assert_eq!(slow.faketime(), "+10 x0.5");
        let fast = ClockSetting::rate_from_now(2.0, 12_345);
        assert_eq!(fast.faketime(), "-12.345 x2");
        // The fake clock at the change equals the real one.
        let (start, now) = (1_000.0, 1_012.345);
        assert!((start + fast.offset_s + (now - start) * fast.rate - now).abs() < 1e-9);
    }

    #[test]
    fn faketime_strings_always_carry_an_offset() {
        assert_eq!(
            ClockSetting {
                offset_s: 0.0,
                rate: 2.0
            }
            .faketime(),
            "+0 x2"
        );
        assert_eq!(
            ClockSetting {
                offset_s: -37.0,
                rate: 1.0
            }
            .faketime(),
            "-37 x1"
        );
        assert_eq!(
            ClockSetting {
                offset_s: 12.5,
                rate: 0.5
            }
            .faketime(),
            "+12.500 x0.5"
        );
    }
}
