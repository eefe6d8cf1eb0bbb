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

/// Ops per second for `ops` 4 KiB appends each followed by fdatasync, to a
/// new file in `dir` whose creation was made durable first.
fn measure(dir: &Path, name: &str, ops: u64) -> Result<f64> {
    let path = dir.join(name);
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("create {}", path.display()))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync {}", dir.display()))?;
    let block = vec![0xa5u8; BLOCK_BYTES];
    let start = Instant::now();
    for _ in 0..ops {
        file.write_all(&block)
            .with_context(|| format!("write {}", path.display()))?;
        file.sync_data()
            .with_context(|| format!("fdatasync {}", path.display()))?;
    }
    let elapsed = start.elapsed().max(Duration::from_micros(1));
    drop(file);
    std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
    Ok(ops as f64 / elapsed.as_secs_f64())
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
    let (mut plain, mut fuse) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let name = format!("bench-{round}");
        if round % 2 == 0 {
            plain.push(measure(&plain_dir, &name, args.ops)?);
            fuse.push(measure(&mountpoint, &name, args.ops)?);
        } else {
            fuse.push(measure(&mountpoint, &name, args.ops)?);
            plain.push(measure(&plain_dir, &name, args.ops)?);
        }
        println!(
            "round {round}: plain {:.0} ops/s, faultfs {:.0} ops/s",
            plain[round as usize], fuse[round as usize]
        );
    }
    mounted
        .unmount(Duration::from_secs(10))
        .context("unmount")?;
    let (p, f) = (median(plain), median(fuse));
    println!("4 KiB write+fdatasync, {} ops x {} rounds, medians: plain {p:.0} ops/s, faultfs {f:.0} ops/s, ratio faultfs/plain {:.2}", args.ops, args.rounds, f / p);
    Ok(())
}
