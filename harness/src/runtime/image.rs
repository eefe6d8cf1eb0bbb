//! The node image, built locally `FROM scratch` (there is no registry to
//! pull from): the node binary, every shared library `ldd` lists for it,
//! libfaketime (clock faults) and `nft` with its libraries (partitions are
//! applied inside each container's network namespace with `docker exec`,
//! which needs no root on the host). Tagged by the content hash of every
//! file, so it is rebuilt only when one changes.

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::runtime::clock::FAKETIME_LIB;

/// The nftables command, for partitions inside containers.
pub const NFT: &str = "/usr/sbin/nft";

/// Shared libraries (and the loader) a binary links, from `ldd`.
fn libraries(binary: &Path) -> anyhow::Result<BTreeSet<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd (Debian package libc-bin)")?;
    if !out.status.success() {
        bail!(
            "ldd {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = BTreeSet::new();
    for line in text.lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.insert(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// Every host file the image holds, with its path inside the image.
fn contents(binary: &Path, entrypoint: &str) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    let mut files: Vec<(PathBuf, PathBuf)> =
        vec![(binary.to_path_buf(), PathBuf::from(entrypoint))];
    let mut libs = libraries(binary)?;
    for extra in [FAKETIME_LIB, NFT] {
        let p = Path::new(extra);
        if !p.is_file() {
            bail!("{extra} is missing: apt-get install libfaketime nftables");
        }
        files.push((p.to_path_buf(), p.to_path_buf()));
        libs.extend(libraries(p)?);
    }
    for lib in libs {
        let real =
            std::fs::canonicalize(&lib).with_context(|| format!("resolving {}", lib.display()))?;
        files.push((real, lib));
    }
    Ok(files)
}

fn docker(args: &[&str]) -> anyhow::Result<std::process::Output> {
    Command::new("docker")
        .args(args)
        .output()
        .context("running the docker command-line client")
}

/// Builds the image of `binary` (run as `entrypoint`, an absolute path in
/// the image, e.g. `/ordeal-node`) if its tag is not present yet; returns
/// `name:tag`.
pub fn ensure_image(binary: &Path, name: &str, entrypoint: &str) -> anyhow::Result<String> {
    let files = contents(binary, entrypoint)?;
    let mut hash = Sha256::new();
    for (host, inside) in &files {
        hash.update(inside.to_string_lossy().as_bytes());
        hash.update(std::fs::read(host).with_context(|| format!("reading {}", host.display()))?);
    }
    let tag = format!("{name}:{}", &hex::encode(hash.finalize())[..16]);
    if docker(&["image", "inspect", &tag])?.status.success() {
        return Ok(tag);
    }
    let ctx = tempfile::Builder::new()
        .prefix("ordeal-image-")
        .tempdir()
        .context("creating the image context")?;
    for (host, inside) in &files {
        let dest = ctx
            .path()
            .join("rootfs")
            .join(inside.strip_prefix("/").unwrap_or(inside));
        std::fs::create_dir_all(dest.parent().expect("a file has a parent"))?;
        std::fs::copy(host, &dest)
            .with_context(|| format!("copying {} into the image", host.display()))?;
    }
    std::fs::create_dir_all(ctx.path().join("rootfs/data"))?;
    std::fs::create_dir_all(ctx.path().join("rootfs/clock"))?;
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"{entrypoint}\"]\n"),
    )?;
    tracing::info!(%tag, files = files.len(), "building the node image FROM scratch");
    let out = docker(&[
        "build",
        "-q",
        "-t",
        &tag,
        "--label",
        "ordeal=1",
        &ctx.path().to_string_lossy(),
    ])?;
    if !out.status.success() {
        bail!(
            "docker build of {tag} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(tag)
}
