//! Crash points (etcd's gofail is the model): named places in the node
//! between and around its durable writes, compiled in always and inert
//! unless armed. An armed point fires on its k-th hit after arming: it
//! aborts the process (no unwinding, no flush: as if SIGKILLed at that
//! instant), panics the thread that reached it, or holds that thread for a
//! while. The catalogue, what is durable at each point and why it is
//! there, is in `docs/crash-points.md`; `ordeal-node crash-points` lists
//! the names.
//!
//! A point is reached with [`at`]. Unarmed, that is one relaxed atomic
//! add on the point's own cache line (its count of hits, which
//! `GET /crash-points` shows): the armed flag is the count's top bit, so
//! the same instruction says whether to look further.
//!
//! This module is a leaf: whoever writes the trace hands it a reporter
//! ([`Registry::set_reporter`]) that writes the `crash_point` event before
//! the action is taken.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

/// The longest sleep an armed point may hold a thread for.
pub const SLEEP_MS_MAX: u64 = 120_000;

macro_rules! catalogue {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal,)*) => {
        /// A named crash point (`docs/crash-points.md`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Point {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Point {
            /// Every point, in the catalogue's order.
            pub const ALL: &'static [Point] = &[$(Point::$variant,)*];

            /// Its name (dot-separated, kebab-case within a part).
            pub fn name(self) -> &'static str {
                match self {
                    $(Point::$variant => $name,)*
                }
            }
        }
    };
}

catalogue! {
    /// A batch of log records written to the active segment, before its fsync.
    WalAppendBeforeFsync = "wal.append.before-fsync",
    /// The batch fsynced; raft's storage not yet told, no message sent for it.
    WalAppendAfterFsync = "wal.append.after-fsync",
    /// A batch carrying a new term or vote written, before its fsync.
    WalHardStateBeforeFsync = "wal.hard-state.before-fsync",
    /// A new term or vote fsynced, before the vote or message it allows is sent.
    WalHardStateAfterFsync = "wal.hard-state.after-fsync",
    /// The log moves to the prepared segment: the old one synced, the new one untouched.
    WalSegmentBeforeSwitch = "wal.segment.before-switch",
    /// Writing goes on in the new segment; its first record (the hard state) only buffered.
    WalSegmentAfterSwitch = "wal.segment.after-switch",
    /// The `wal-segments` thread created the next segment file, still empty.
    WalPrepareAfterCreate = "wal.prepare.after-create",
    /// The next segment's header fsynced, its name not yet (directory fsync).
    WalPrepareBeforeDirFsync = "wal.prepare.before-dir-fsync",
    /// Segments a snapshot covers handed over for removal, none removed yet.
    WalCompactBeforeRemove = "wal.compact.before-remove",
    /// The covered segments removed, the directory not yet fsynced.
    WalCompactAfterRemove = "wal.compact.after-remove",
    /// A chunk of blocks written to the block store, before its fsync.
    BlockstoreAppendBeforeSync = "blockstore.append.before-sync",
    /// Every block of the snapshot durable in the store; no manifest names them yet.
    BlockstoreAppendAfterSync = "blockstore.append.after-sync",
    /// The snapshot's manifest written and fsynced as `snapshot.bin.taken`.
    SnapshotTakeAfterWrite = "snapshot.take.after-write",
    /// The raft thread about to rename the manifest over `snapshot.bin`.
    SnapshotTakeBeforeRename = "snapshot.take.before-rename",
    /// The manifest renamed into place, the directory not yet fsynced.
    SnapshotTakeBeforeDirFsync = "snapshot.take.before-dir-fsync",
    /// The snapshot in place and durable; the log not yet compacted.
    SnapshotTakeAfterDirFsync = "snapshot.take.after-dir-fsync",
    /// Raft adopted a leader's snapshot; nothing of it written yet.
    SnapshotInstallBeforeSave = "snapshot.install.before-save",
    /// The leader's snapshot durable as `snapshot.bin`; the log still the old one.
    SnapshotInstallBeforeLogRewrite = "snapshot.install.before-log-rewrite",
    /// The log rewritten (reset record, hard state) and fsynced; old segments not yet removed.
    SnapshotInstallAfterLogRewrite = "snapshot.install.after-log-rewrite",
    /// A committed configuration change about to be applied.
    ConfApplyBefore = "conf.apply.before",
    /// A configuration change applied to raft, storage and links.
    ConfApplyAfter = "conf.apply.after",
}

impl Point {
    /// The point named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Point> {
        Point::ALL.iter().copied().find(|p| p.name() == name)
    }
}

/// What an armed point does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `std::process::abort`: the process dies at once, nothing flushed
    /// but the trace (a core dump is turned off first).
    Abort,
    /// `panic!` on the thread that reached the point.
    Panic,
    /// Holds the thread that reached the point this long, then goes on.
    Sleep(Duration),
}

impl Action {
    /// The name the API and the trace use.
    pub fn name(self) -> &'static str {
        match self {
            Action::Abort => "abort",
            Action::Panic => "panic",
            Action::Sleep(_) => "sleep",
        }
    }

    /// The sleep's length in ms (`None` for the others).
    pub fn sleep_ms(self) -> Option<u64> {
        match self {
            Action::Sleep(d) => Some(d.as_millis() as u64),
            _ => None,
        }
    }

    /// An action from its name and, for `sleep`, its length.
    pub fn new(name: &str, sleep_ms: Option<u64>) -> Result<Action, CrashPointError> {
        let invalid = |problem: String| Err(CrashPointError::Invalid { problem });
        match (name, sleep_ms) {
            ("abort", None) => Ok(Action::Abort),
            ("panic", None) => Ok(Action::Panic),
            ("sleep", Some(ms)) if ms <= SLEEP_MS_MAX => {
                Ok(Action::Sleep(Duration::from_millis(ms)))
            }
            ("sleep", Some(ms)) => invalid(format!("sleep of {ms} ms: at most {SLEEP_MS_MAX} ms")),
            ("sleep", None) => invalid("`sleep` needs its length in ms".into()),
            ("abort" | "panic", Some(_)) => invalid(format!("`{name}` takes no sleep length")),
            (other, _) => invalid(format!(
                "unknown action `{other}`: `abort`, `panic` or `sleep`"
            )),
        }
    }
}

/// How a point is armed: what it does, on which hit after arming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arming {
    /// What it does.
    pub action: Action,
    /// Fires on this hit after arming (1: the next one).
    pub hit: u64,
}

/// A point that fired, as its reporter is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    /// The point.
    pub point: Point,
    /// What it does now.
    pub action: Action,
    /// The hit after arming it fired on.
    pub hit: u64,
    /// Hits since the process started, this one included.
    pub reached: u64,
    /// The name of the thread that reached it.
    pub thread: String,
}

/// Why a point could not be armed or disarmed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CrashPointError {
    /// No point has this name.
    #[error("no crash point named `{name}` (`ordeal-node crash-points` lists them)")]
    Unknown {
        /// The name given.
        name: String,
    },
    /// The arming asked for cannot be done.
    #[error("{problem}")]
    Invalid {
        /// What is wrong.
        problem: String,
    },
}

/// A point's standing, as `GET /crash-points` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PointView {
    /// The point's name.
    pub name: &'static str,
    /// Hits since this process started.
    pub reached: u64,
    /// Whether it is armed now.
    pub armed: bool,
    /// Times it fired in this process (an abort is never seen here).
    pub fired: u64,
    /// The armed action (`null` when not armed).
    pub action: Option<&'static str>,
    /// The armed sleep's length (`null` unless a sleep is armed).
    pub sleep_ms: Option<u64>,
    /// The armed hit after arming (`null` when not armed).
    pub hit: Option<u64>,
    /// The `reached` count at which it fires (`null` when not armed).
    pub fires_at_reached: Option<u64>,
}

/// The armed flag: the top bit of a slot's word, the hits below it.
const ARMED: u64 = 1 << 63;

#[derive(Debug, Clone, Copy)]
struct Armed {
    arming: Arming,
    /// The `reached` count it fires at.
    fires_at: u64,
}

/// One point's state, on a cache line of its own (points are reached from
/// different threads).
#[repr(align(64))]
struct Slot {
    /// Hits, with [`ARMED`] set while armed.
    word: AtomicU64,
    fired: AtomicU64,
    armed: Mutex<Option<Armed>>,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            word: AtomicU64::new(0),
            fired: AtomicU64::new(0),
            armed: Mutex::new(None),
        }
    }

    fn armed(&self) -> MutexGuard<'_, Option<Armed>> {
        self.armed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes the `crash_point` event (the trace) before the action is taken.
pub type Reporter = Box<dyn Fn(&Fired) + Send + Sync>;

/// Every point's hits and arming, and the reporter.
pub struct Registry {
    slots: [Slot; Point::ALL.len()],
    reporter: OnceLock<Reporter>,
}

/// The process's registry, which [`at`] reaches.
pub static REGISTRY: Registry = Registry::new();

/// Reaches point `p` in the process's registry.
///
/// # Panics
///
/// When `p` is armed with [`Action::Panic`] and this is its hit; with
/// [`Action::Abort`] the process ends here.
#[inline]
pub fn at(p: Point) {
    REGISTRY.hit(p);
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::new()
    }
}

impl Registry {
    /// A registry with nothing reached or armed.
    pub const fn new() -> Registry {
        Registry {
            slots: [const { Slot::new() }; Point::ALL.len()],
            reporter: OnceLock::new(),
        }
    }

    fn slot(&self, p: Point) -> &Slot {
        &self.slots[p as usize]
    }

    /// Sets the reporter (once; later calls are ignored and return false).
    pub fn set_reporter(&self, reporter: Reporter) -> bool {
        self.reporter.set(reporter).is_ok()
    }

    /// Counts a hit of `p`; fires it when armed and this is its hit.
    ///
    /// # Panics
    ///
    /// As [`at`].
    #[inline]
    pub fn hit(&self, p: Point) {
        let word = self.slot(p).word.fetch_add(1, Ordering::Relaxed);
        if word & ARMED != 0 {
            self.armed_hit(p, (word & !ARMED) + 1);
        }
    }

    #[cold]
    #[inline(never)]
    fn armed_hit(&self, p: Point, reached: u64) {
        let slot = self.slot(p);
        let mut armed = slot.armed();
        let due = armed.is_some_and(|a| reached >= a.fires_at);
        if !due {
            return;
        }
        let a = armed.take().expect("checked");
        slot.word.fetch_and(!ARMED, Ordering::Relaxed);
        slot.fired.fetch_add(1, Ordering::Relaxed);
        drop(armed);
        let fired = Fired {
            point: p,
            action: a.arming.action,
            hit: a.arming.hit,
            reached,
            thread: std::thread::current().name().unwrap_or("unnamed").into(),
        };
        fire(self.reporter.get(), &fired);
    }

    /// Arms the point named `name` (replacing an earlier arming): it fires
    /// on its `arming.hit`-th hit from now.
    pub fn arm(&self, name: &str, arming: Arming) -> Result<PointView, CrashPointError> {
        let p = lookup(name)?;
        if arming.hit == 0 {
            return Err(CrashPointError::Invalid {
                problem: "`hit` counts from 1 (the next hit)".into(),
            });
        }
        let slot = self.slot(p);
        let mut armed = slot.armed();
        // The hits so far, read as the flag goes up: a hit that sees the
        // flag waits on the lock for `fires_at` below.
        let reached = slot.word.fetch_or(ARMED, Ordering::Relaxed) & !ARMED;
        *armed = Some(Armed {
            arming,
            fires_at: reached.saturating_add(arming.hit),
        });
        drop(armed);
        Ok(self.view(p))
    }

    /// Disarms the point named `name`; whether it was armed.
    pub fn disarm(&self, name: &str) -> Result<bool, CrashPointError> {
        let p = lookup(name)?;
        let slot = self.slot(p);
        let mut armed = slot.armed();
        slot.word.fetch_and(!ARMED, Ordering::Relaxed);
        Ok(armed.take().is_some())
    }

    /// Disarms every point; how many were armed.
    pub fn disarm_all(&self) -> usize {
        Point::ALL
            .iter()
            .filter(|p| self.disarm(p.name()).unwrap_or(false))
            .count()
    }

    /// One point's standing.
    pub fn view(&self, p: Point) -> PointView {
        let slot = self.slot(p);
        let armed = *slot.armed();
        PointView {
            name: p.name(),
            reached: slot.word.load(Ordering::Relaxed) & !ARMED,
            armed: armed.is_some(),
            fired: slot.fired.load(Ordering::Relaxed),
            action: armed.map(|a| a.arming.action.name()),
            sleep_ms: armed.and_then(|a| a.arming.action.sleep_ms()),
            hit: armed.map(|a| a.arming.hit),
            fires_at_reached: armed.map(|a| a.fires_at),
        }
    }

    /// Every point's standing, in the catalogue's order.
    pub fn list(&self) -> Vec<PointView> {
        Point::ALL.iter().map(|&p| self.view(p)).collect()
    }
}

fn lookup(name: &str) -> Result<Point, CrashPointError> {
    Point::from_name(name).ok_or_else(|| CrashPointError::Unknown { name: name.into() })
}

/// Reports, logs, then does what the point was armed to do.
fn fire(reporter: Option<&Reporter>, f: &Fired) {
    if let Some(report) = reporter {
        report(f);
    }
    let (point, action, hit, reached) = (f.point.name(), f.action.name(), f.hit, f.reached);
    match f.action {
        Action::Sleep(d) => {
            tracing::warn!(point, action, hit, reached, thread = %f.thread, sleep_ms = d.as_millis() as u64, "crash point fired: holding the thread");
            std::thread::sleep(d);
        }
        Action::Panic => {
            tracing::error!(point, action, hit, reached, thread = %f.thread, "crash point fired: panicking");
            panic!("crash point {point} fired (hit {hit} after arming)");
        }
        Action::Abort => {
            tracing::error!(point, action, hit, reached, thread = %f.thread, "crash point fired: aborting the process");
            abort_without_core();
        }
    }
}

/// `std::process::abort` with core dumps off first: a crash point is a
/// kill, not a bug to debug, and a soak must not fill the disk with cores.
fn abort_without_core() -> ! {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct we pass and touches nothing else;
    // lowering a limit is always allowed.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
    std::process::abort()
}

/// Parses `--crash-point NAME[=ACTION][@HIT]`, ACTION `abort` (the
/// default), `panic` or `sleep:MS`, HIT 1 by default.
pub fn parse_flag(text: &str) -> Result<(Point, Arming), CrashPointError> {
    let invalid = |problem: String| CrashPointError::Invalid { problem };
    let (rest, hit) = match text.rsplit_once('@') {
        Some((rest, hit)) => {
            let hit =
                hit.parse::<u64>().ok().filter(|&h| h > 0).ok_or_else(|| {
                    invalid(format!("`{text}`: `@{hit}` is not a hit count from 1"))
                })?;
            (rest, hit)
        }
        None => (text, 1),
    };
    let (name, action) = rest.split_once('=').unwrap_or((rest, "abort"));
    let point = lookup(name)?;
    let action = match action.split_once(':') {
        Some(("sleep", ms)) => {
            let ms = ms
                .parse()
                .map_err(|_| invalid(format!("`{text}`: `{ms}` is not a sleep in ms")))?;
            Action::new("sleep", Some(ms))?
        }
        Some(_) => return Err(invalid(format!("`{text}`: only `sleep` takes `:MS`"))),
        None if action == "sleep" => return Err(invalid(format!("`{text}`: write `sleep:MS`"))),
        None => Action::new(action, None)?,
    };
    Ok((point, Arming { action, hit }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn arming(action: Action, hit: u64) -> Arming {
        Arming { action, hit }
    }

    /// Names are unique, dot-separated and kebab-case within a part, and
    /// there are at least ten (issue 29).
    #[test]
    fn the_catalogue_is_named_as_documented() {
        assert!(Point::ALL.len() >= 10);
        let mut names: Vec<&str> = Point::ALL.iter().map(|p| p.name()).collect();
        for name in &names {
            let parts: Vec<&str> = name.split('.').collect();
            assert!(parts.len() >= 3, "{name}");
            for part in parts {
                let kebab = !part.is_empty()
                    && !part.starts_with('-')
                    && !part.ends_with('-')
                    && part.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
                assert!(kebab, "{name}");
            }
            assert_eq!(Point::from_name(name).map(Point::name), Some(*name));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Point::ALL.len());
    }

    #[test]
    fn hits_are_counted_whether_armed_or_not() {
        let r = Registry::new();
        for _ in 0..5 {
            r.hit(Point::WalAppendBeforeFsync);
        }
        r.hit(Point::ConfApplyAfter);
        let v = r.view(Point::WalAppendBeforeFsync);
        assert_eq!((v.reached, v.armed, v.fired), (5, false, 0));
        assert_eq!(r.view(Point::ConfApplyAfter).reached, 1);
        assert_eq!(r.view(Point::ConfApplyBefore).reached, 0);
        assert_eq!(r.list().len(), Point::ALL.len());
    }

    /// Armed on hit k, a point fires on the k-th hit after arming (not
    /// counting hits before it), once, and is disarmed by firing; the
    /// reporter hears of it first.
    #[test]
    fn an_armed_point_fires_on_its_kth_hit_after_arming_once() {
        let r = Registry::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        assert!(r.set_reporter(Box::new(move |f| log.lock().unwrap().push(f.clone()))));
        assert!(!r.set_reporter(Box::new(|_| {})), "set once");
        let p = Point::SnapshotTakeBeforeRename;
        r.hit(p);
        r.hit(p);
        let sleep = Action::Sleep(Duration::from_millis(1));
        let v = r.arm(p.name(), arming(sleep, 3)).unwrap();
        assert_eq!(v.fires_at_reached, Some(5));
        assert_eq!(
            (v.action, v.sleep_ms, v.hit),
            (Some("sleep"), Some(1), Some(3))
        );
        r.hit(p);
        r.hit(p);
        assert!(seen.lock().unwrap().is_empty(), "hits 1 and 2 after arming");
        r.hit(p);
        let fired = seen.lock().unwrap().clone();
        assert_eq!(fired.len(), 1);
        assert_eq!((fired[0].point, fired[0].hit, fired[0].reached), (p, 3, 5));
        assert_eq!(fired[0].action, sleep);
        r.hit(p);
        let v = r.view(p);
        assert_eq!((v.reached, v.armed, v.fired, v.action), (6, false, 1, None));
        assert_eq!(seen.lock().unwrap().len(), 1, "fires once");
    }

    #[test]
    fn a_panic_point_panics_the_thread_that_reaches_it() {
        let r = Arc::new(Registry::new());
        r.arm("conf.apply.before", arming(Action::Panic, 1))
            .unwrap();
        let other = r.clone();
        let result = std::thread::spawn(move || other.hit(Point::ConfApplyBefore)).join();
        let message = result.unwrap_err();
        let text = message.downcast_ref::<String>().unwrap();
        assert!(text.contains("conf.apply.before"), "{text}");
        assert_eq!(r.view(Point::ConfApplyBefore).fired, 1);
        r.hit(Point::ConfApplyBefore); // disarmed: nothing happens
    }

    #[test]
    fn disarming_stops_it_and_rearming_counts_from_then() {
        let r = Registry::new();
        let p = Point::WalCompactBeforeRemove;
        r.arm(p.name(), arming(Action::Panic, 1)).unwrap();
        assert_eq!(r.disarm(p.name()), Ok(true));
        assert_eq!(r.disarm(p.name()), Ok(false));
        r.hit(p); // would panic if still armed
        let v = r.arm(p.name(), arming(Action::Panic, 2)).unwrap();
        assert_eq!(v.fires_at_reached, Some(3));
        r.arm("conf.apply.after", arming(Action::Abort, 9)).unwrap();
        assert_eq!(r.disarm_all(), 2);
        r.hit(p);
        r.hit(p);
        assert_eq!(r.view(p).fired, 0);
    }

    /// Unknown names are refused by name; so are hit 0 and bad actions.
    #[test]
    fn unknown_names_and_bad_armings_are_refused_by_name() {
        let r = Registry::new();
        let err = r.arm("wal.nowhere", arming(Action::Abort, 1)).unwrap_err();
        assert_eq!(
            err,
            CrashPointError::Unknown {
                name: "wal.nowhere".into()
            }
        );
        assert!(err.to_string().contains("`wal.nowhere`"), "{err}");
        assert!(r.disarm("nope").is_err());
        let err = r
            .arm("conf.apply.after", arming(Action::Abort, 0))
            .unwrap_err();
        assert!(err.to_string().contains("from 1"), "{err}");
        assert!(!r.view(Point::ConfApplyAfter).armed);
        for (name, ms, says) in [
            ("sleep", None, "needs its length"),
            ("sleep", Some(SLEEP_MS_MAX + 1), "at most"),
            ("abort", Some(5), "no sleep length"),
            ("explode", None, "unknown action `explode`"),
        ] {
            let err = Action::new(name, ms).unwrap_err().to_string();
            assert!(err.contains(says), "{name}: {err}");
        }
    }

    #[test]
    fn the_flag_reads_name_action_and_hit() {
        let sleep = Action::Sleep(Duration::from_millis(250));
        for (text, point, action, hit) in [
            (
                "wal.append.before-fsync",
                Point::WalAppendBeforeFsync,
                Action::Abort,
                1,
            ),
            (
                "conf.apply.after=panic",
                Point::ConfApplyAfter,
                Action::Panic,
                1,
            ),
            (
                "snapshot.take.before-rename=abort@3",
                Point::SnapshotTakeBeforeRename,
                Action::Abort,
                3,
            ),
            (
                "wal.append.after-fsync=sleep:250@2",
                Point::WalAppendAfterFsync,
                sleep,
                2,
            ),
        ] {
            assert_eq!(
                parse_flag(text),
                Ok((point, Arming { action, hit })),
                "{text}"
            );
        }
        for (text, says) in [
            ("wal.nowhere=abort", "`wal.nowhere`"),
            ("wal.append.after-fsync@0", "hit count"),
            ("wal.append.after-fsync=sleep", "sleep:MS"),
            ("wal.append.after-fsync=sleep:x", "not a sleep"),
            ("wal.append.after-fsync=abort:3", "only `sleep`"),
            ("wal.append.after-fsync=boom", "unknown action"),
        ] {
            let err = parse_flag(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    /// Hits racing with an arming on hit 1: exactly one fires.
    #[test]
    fn concurrent_hits_fire_an_arming_once() {
        let r = Arc::new(Registry::new());
        let p = Point::BlockstoreAppendBeforeSync;
        r.arm(p.name(), arming(Action::Sleep(Duration::ZERO), 1))
            .unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| r.hit(p)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let v = r.view(p);
        assert_eq!((v.reached, v.fired, v.armed), (4000, 1, false));
    }
}
