//! `faultfs bench`: 4 KiB write + fdatasync throughput on faultfs against
//! the plain backing directory, rounds interleaved so that both sides see
//! the same machine load.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;

/// The write size measured.
const BLOCK_BYTES: usize = 4096;

#[derive(Args)]
pub struct BenchArgs {
    /// A directory on the disk to measure (not tmpfs); a scratch directory is made inside.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Writes (each followed by fdatasync) per round and side.
    #[arg(long, default_value_t = 2000)]
    ops: u64,
    /// Rounds; the sides alternate which goes first.
    #[arg(long, default_value_t = 5)]
    rounds: u64,
}

/// Writes in a slice: the sides alternate every slice, so that both see
/// the same load on a shared machine.
const SLICE_OPS: u64 = 50;

/// A file opened for 4 KiB appends, its creation made durable first.
struct Side {
    path: PathBuf,
    file: File,
    busy: Duration,
    ops: u64,
}

impl Side {
    fn open(dir: &Path, name: &str) -> Result<Side> {
        let path = dir.join(name);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("create {}", path.display()))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("fsync {}", dir.display()))?;
        Ok(Side {
            path,
            file,
            busy: Duration::ZERO,
            ops: 0,
        })
    }

    /// `n` appends of 4 KiB, each followed by fdatasync.
    fn run(&mut self, n: u64, block: &[u8]) -> Result<()> {
        let start = Instant::now();
        for _ in 0..n {
            self.file
                .write_all(block)
                .with_context(|| format!("write {}", self.path.display()))?;
            self.file
                .sync_data()
                .with_context(|| format!("fdatasync {}", self.path.display()))?;
        }
        self.busy += start.elapsed();
        self.ops += n;
        Ok(())
    }

    fn rate(&self) -> f64 {
        self.ops as f64 / self.busy.max(Duration::from_micros(1)).as_secs_f64()
    }

    fn remove(self) -> Result<()> {
        drop(self.file);
        std::fs::remove_file(&self.path).with_context(|| format!("remove {}", self.path.display()))
    }
}

/// One round: `ops` writes on each side, interleaved by slices; returns
/// (plain, faultfs) ops per second.
fn round(plain_dir: &Path, mountpoint: &Path, name: &str, ops: u64) -> Result<(f64, f64)> {
    let block = vec![0xa5u8; BLOCK_BYTES];
    let mut plain = Side::open(plain_dir, name)?;
    let mut fuse = Side::open(mountpoint, name)?;
    let mut slice = 0u64;
    while plain.ops < ops {
        let n = SLICE_OPS.min(ops - plain.ops);
        let (first, second) = if slice % 2 == 0 {
            (&mut plain, &mut fuse)
        } else {
            (&mut fuse, &mut plain)
        };
        first.run(n, &block)?;
        second.run(n, &block)?;
        slice += 1;
    }
    let rates = (plain.rate(), fuse.rate());
    plain.remove()?;
    fuse.remove()?;
    Ok(rates)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(args: &BenchArgs) -> Result<()> {
    anyhow::ensure!(
        args.ops > 0 && args.rounds > 0,
        "--ops and --rounds must be positive"
    );
    let scratch = tempfile::Builder::new()
        .prefix("faultfs-bench-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("scratch directory in {}", args.dir.display()))?;
    // The plain side writes to a sibling of the backing directory (same
    // disk), never under faultfs's backing directory behind its back.
    let plain_dir = scratch.path().join("plain");
    let backing = scratch.path().join("backing");
    let mountpoint = scratch.path().join("mnt");
    for d in [&plain_dir, &backing, &mountpoint] {
        std::fs::create_dir(d).with_context(|| format!("create {}", d.display()))?;
    }
    let config = faultfs::MountConfig {
        backing: backing.clone(),
        mountpoint: mountpoint.clone(),
        seed: 0,
        pending_bytes_max: faultfs::PENDING_BYTES_MAX_DEFAULT,
    };
    let mounted = faultfs::mount(&config).context("mount faultfs")?;
    let (mut plain, mut fuse, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..args.rounds {
        let (p, f) = round(&plain_dir, &mountpoint, &format!("bench-{r}"), args.ops)?;
        println!(
            "round {r}: plain {p:.0} ops/s, faultfs {f:.0} ops/s, ratio {:.2}",
            f / p
        );
        plain.push(p);
        fuse.push(f);
        ratios.push(f / p);
    }
    mounted
        .unmount(Duration::from_secs(10))
        .context("unmount")?;
    println!(
        "4 KiB write+fdatasync, {} ops x {} rounds, sides alternating every {SLICE_OPS} ops; medians: plain {:.0} ops/s, faultfs {:.0} ops/s, ratio faultfs/plain {:.2} (median of per-round ratios)",
        args.ops,
        args.rounds,
        median(plain),
        median(fuse),
        median(ratios)
    );
    Ok(())
}
