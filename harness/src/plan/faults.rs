//! Which faults a test gets: `--nemesis` parsed against the registry, then
//! each fault asked what it refuses — the system under test, faultfs on
//! this machine, the runtime. A fault refused by name is an error naming
//! why; `all` loses the faults that cannot be had, with a note where the
//! user may not expect it.

use crate::nemesis::faults::Fault;
use crate::nemesis::package::FaultPackage;
use crate::plan::args::TestArgs;
use crate::runtime::disk::fuse_unavailable;
use crate::runtime::RuntimeKind;
use crate::sut::{Sut, System};
use anyhow::bail;
use std::collections::BTreeSet;

/// Parses `none`, `all` (every fault but those run only when named:
/// `FaultPackage::in_all`), a fault's name, or a comma list of them; the
/// faults in registry order.
pub fn parse_nemesis(text: &str) -> anyhow::Result<Vec<Fault>> {
    let mut set = BTreeSet::new();
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match (word, Fault::from_name(word)) {
            ("none", _) => {}
            ("all", _) => set.extend(Fault::all()),
            (_, Some(fault)) => _ = set.insert(fault),
            (other, None) => bail!(
                "--nemesis: unknown fault `{other}` (expected none, {}, all or a comma list)",
                Fault::names().join(", ")
            ),
        }
    }
    Ok(set.into_iter().collect())
}

/// Whether `--nemesis` names the fault itself (not through `all`).
fn named(args: &TestArgs, fault: Fault) -> bool {
    args.nemesis.split(',').any(|w| w.trim() == fault.name())
}

/// The faults the system under test cannot feel: refused when named,
/// silently left out of `all`.
pub fn refuse_for_sut(args: &TestArgs, sut: Sut, nemesis: &mut Vec<Fault>) -> anyhow::Result<()> {
    for fault in nemesis.clone() {
        let Some(why) = fault.refused_by(sut) else {
            continue;
        };
        if named(args, fault) {
            bail!(
                "--nemesis {}: this fault cannot reach {} ({why}); it needs --sut ordeal",
                fault.name(),
                sut.name()
            );
        }
        // `all`: every fault that can reach the system.
        nemesis.retain(|f| *f != fault);
    }
    Ok(())
}

/// The faults that need faultfs: refused by name when FUSE cannot be had
/// or the system cannot run on faultfs; dropped from `all` then, with a
/// note.
pub fn refuse_without_faultfs(
    args: &TestArgs,
    sut: Sut,
    nemesis: &mut Vec<Fault>,
) -> anyhow::Result<()> {
    let fuse = nemesis
        .iter()
        .any(|f| f.needs_faultfs())
        .then(fuse_unavailable)
        .flatten();
    for &f in Fault::ALL.iter().filter(|f| f.needs_faultfs()) {
        let why = f
            .refused_by(sut)
            .map(str::to_string)
            .or_else(|| fuse.clone());
        let Some(why) = why.filter(|_| nemesis.contains(&f)) else {
            continue;
        };
        if named(args, f) {
            bail!(
                "--nemesis {}: disk faults need faultfs, which cannot be had here: {why}",
                f.name()
            );
        }
        eprintln!("--nemesis all: without {} ({why})", f.name());
        nemesis.retain(|g| *g != f);
    }
    Ok(())
}

/// The faults the runtime cannot inject: refused when named; dropped
/// from `all` with a note saying why.
pub fn refuse_for_runtime(
    args: &TestArgs,
    runtime: RuntimeKind,
    nemesis: &mut Vec<Fault>,
) -> anyhow::Result<()> {
    let name = runtime.name();
    if let Some(f) = nemesis
        .iter()
        .find(|f| f.refused_on(runtime).is_some() && named(args, **f))
    {
        bail!(
            "--nemesis {}: the {name} runtime cannot inject this fault ({})",
            f.name(),
            f.refused_on(runtime).unwrap_or_default()
        );
    }
    let mut dropped: Vec<&str> = Vec::new();
    let mut whys: Vec<&str> = Vec::new();
    for f in nemesis.iter() {
        if let Some(why) = f.refused_on(runtime) {
            dropped.push(f.name());
            if !whys.contains(&why) {
                whys.push(why);
            }
        }
    }
    if !dropped.is_empty() {
        eprintln!(
            "--nemesis all: without {} over {name} ({})",
            dropped.join(", "),
            whys.join("; ")
        );
    }
    nemesis.retain(|f| f.refused_on(runtime).is_none());
    Ok(())
}
