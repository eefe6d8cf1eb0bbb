//! Finding the `ordeal-node` binary, building it from this workspace when
//! it is not given, so that the main command works on a fresh clone.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace this harness was built from.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ has a parent")
        .to_path_buf()
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or the workspace's).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The node binary: `explicit` when given; otherwise built with cargo in
/// `profile` (`release` or `debug`); otherwise found beside this program.
pub fn node_binary(explicit: Option<&Path>, profile: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("--node-binary {}: no such file", path.display());
        }
        return Ok(path.to_path_buf());
    }
    let root = workspace_root();
    if root.join("Cargo.toml").is_file() {
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        // `--workspace`: the dependencies' features resolved as for the
        // workspace's own build, so the two share their artifacts (with
        // `-p node` alone cargo resolved them differently and built every
        // dependency again, ~15 minutes in release on 2 cores).
        cmd.current_dir(&root)
            .args(["build", "-q", "--workspace", "--bin", "ordeal-node"]);
        if profile == "release" {
            cmd.arg("--release");
        }
        tracing::info!(profile, "building ordeal-node");
        let status = cmd.status().context("running cargo to build ordeal-node")?;
        if !status.success() {
            bail!("cargo build --bin ordeal-node failed ({status})");
        }
        let path = target_dir().join(profile).join("ordeal-node");
        if path.is_file() {
            return Ok(path);
        }
    }
    let beside = std::env::current_exe()?.with_file_name("ordeal-node");
    if beside.is_file() {
        return Ok(beside);
    }
    bail!("cannot find ordeal-node: pass --node-binary or set ORDEAL_NODE_BIN")
}
