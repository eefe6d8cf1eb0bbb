//! `faultfs`: mount the fault-injecting filesystem, or measure its cost.

mod bench;

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use nix::sys::signal::{SigSet, Signal};

/// How long unmounting may take before faultfs exits anyway.
const UNMOUNT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(
    name = "faultfs",
    about = "A FUSE filesystem that forgets what was never fsynced"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Mount BACKING at MOUNTPOINT until SIGTERM, SIGINT or the parent's death.
    Mount {
        /// The backing directory (the durable image).
        #[arg(long)]
        backing: PathBuf,
        /// Where to mount (an existing directory).
        #[arg(long)]
        mountpoint: PathBuf,
        /// The control socket's path.
        #[arg(long)]
        control: PathBuf,
        /// Seeds fsync jitter and `torn` without a seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Pending write bytes kept in memory before writing back.
        #[arg(long, default_value_t = faultfs::PENDING_BYTES_MAX_DEFAULT)]
        pending_bytes_max: u64,
    },
    /// 4 KiB write+fdatasync throughput on faultfs against the plain backing directory.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faultfs: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Mount {
            backing,
            mountpoint,
            control,
            seed,
            pending_bytes_max,
        } => {
            let config = faultfs::MountConfig {
                backing,
                mountpoint,
                seed,
                pending_bytes_max,
            };
            mount_until_stopped(&config, &control)
        }
        Cmd::Bench(args) => bench::run(&args),
    }
}

/// Dies with the parent: SIGTERM (so the mount is undone) when it goes.
fn follow_parent() -> Result<()> {
    let parent = nix::unistd::getppid();
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).context("PR_SET_PDEATHSIG")?;
    if nix::unistd::getppid() != parent {
        bail!("the parent process died before faultfs started");
    }
    Ok(())
}

fn bind_control(path: &Path) -> Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            bail!(
                "control socket {} is in use by another process",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("remove stale control socket {}", path.display()))?;
    }
    UnixListener::bind(path).with_context(|| format!("bind control socket {}", path.display()))
}

/// Forks a watchdog that detaches `mountpoint` if this process dies without
/// saying goodbye (SIGKILL): it waits on a pipe whose write end only this
/// process holds. A clean exit writes one byte first, so that the watchdog
/// leaves alone a later mount at the same place. Called before any thread
/// starts; the child only makes async-signal-safe calls.
fn fork_unmount_watchdog(mountpoint: &Path) -> Result<std::os::fd::OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let target = std::ffi::CString::new(mountpoint.canonicalize()?.as_os_str().as_bytes())?;
    let (read_end, write_end) = nix::unistd::pipe().context("pipe")?;
    // SAFETY: no other thread exists yet; the child calls only
    // async-signal-safe functions and leaves with _exit.
    match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Child => unsafe {
            use std::os::fd::AsRawFd;
            libc::close(write_end.as_raw_fd());
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::signal(sig, libc::SIG_IGN);
            }
            let mut byte = 0u8;
            let n = loop {
                let n = libc::read(read_end.as_raw_fd(), (&mut byte as *mut u8).cast(), 1);
                if n >= 0 || *libc::__errno_location() != libc::EINTR {
                    break n;
                }
            };
            if n == 0 {
                libc::umount2(target.as_ptr(), libc::MNT_DETACH);
            }
            libc::_exit(0)
        },
        nix::unistd::ForkResult::Parent { .. } => Ok(write_end),
    }
}

enum Stop {
    Signal(Signal),
    Unmounted,
}

fn mount_until_stopped(config: &faultfs::MountConfig, control: &Path) -> Result<()> {
    follow_parent()?;
    if !config.mountpoint.is_dir() {
        bail!(
            "mountpoint {} is not a directory",
            config.mountpoint.display()
        );
    }
    let watchdog = fork_unmount_watchdog(&config.mountpoint)?;
    // Block the stop signals before any thread starts, so that every thread
    // inherits the mask and only the waiter receives them.
    let stop_signals = SigSet::from_iter([Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP]);
    stop_signals.thread_block().context("block signals")?;
    let mut mount_left_behind = false;
    let outcome = (|| {
        let listener = bind_control(control)?;
        let mounted = faultfs::mount(config).with_context(|| {
            format!(
                "mount {} at {}",
                config.backing.display(),
                config.mountpoint.display()
            )
        })?;
        let served = serve_until_stopped(&mounted, listener, stop_signals);
        let _ = std::fs::remove_file(control);
        let unmounted = mounted.unmount(UNMOUNT_TIMEOUT).context("unmount");
        mount_left_behind = unmounted.is_err();
        served.and(unmounted)
    })();
    if !mount_left_behind {
        // Goodbye: the watchdog exits without touching the mount point,
        // which may hold someone else's mount by now.
        let _ = nix::unistd::write(&watchdog, b"x");
    }
    outcome
}

/// Serves control commands until a stop signal or an unmount from outside.
fn serve_until_stopped(
    mounted: &faultfs::Mounted,
    listener: UnixListener,
    stop_signals: SigSet,
) -> Result<()> {
    let handler = mounted.handler();
    std::thread::Builder::new()
        .name("faultfs-control".into())
        .spawn(move || faultfs::control::serve(listener, handler))?;
    let (tx, rx) = mpsc::sync_channel::<Stop>(1);
    std::thread::Builder::new()
        .name("faultfs-signals".into())
        .spawn(move || {
            if let Ok(sig) = stop_signals.wait() {
                let _ = tx.send(Stop::Signal(sig));
            }
        })?;
    let stop = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(stop) => break stop,
            Err(_) if mounted.ended() => break Stop::Unmounted,
            Err(_) => {}
        }
    };
    match stop {
        Stop::Signal(sig) => tracing::info!(signal = %sig, "stopping"),
        Stop::Unmounted => tracing::warn!("unmounted from outside: stopping"),
    }
    Ok(())
}
