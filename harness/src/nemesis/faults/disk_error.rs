//! The `disk-error` fault: one node's fsyncs fail with EIO (a node that
//! stops on it does so as after a crash); healed by removing the failure
//! and restarting the node, if it stopped, on what its disk kept.

use crate::nemesis::context::Context;
use crate::nemesis::disk::{heal_stopped, one_member};
use crate::nemesis::package::{Active, FaultPackage, Planned};
use crate::runtime::verbs::{Runtime, Verb};
use crate::sut::{Ability, Sut, System};
use faultfs::{Command as FsCommand, FsyncError};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// See the module doc.
pub struct DiskError;

impl FaultPackage for DiskError {
    fn name(&self) -> &'static str {
        "disk-error"
    }

    fn verbs(&self) -> &'static [Verb] {
        &[Verb::Disk]
    }

    /// A node stops itself when an fsync fails.
    fn stops_process(&self) -> bool {
        true
    }

    fn refused_by(&self, sut: Sut) -> Option<&'static str> {
        sut.lacks(Ability::Faultfs)
    }

    async fn draw(&self, ctx: &Context, rng: &mut ChaCha8Rng) -> anyhow::Result<Planned> {
        Ok(Planned::new(
            one_member(ctx, rng),
            json!({"fail_fsync": "EIO"}),
        ))
    }

    async fn inject(&self, ctx: &Context, planned: &Planned) -> anyhow::Result<Active> {
        let one = &planned.targets;
        let mut rt = ctx.runtime.lock().await;
        ctx.record(
            self.name(),
            json!({"phase": "start", "targets": one, "fail_fsync": "EIO"}),
        );
        let error = FsyncError::Eio;
        rt.disk(&one[0], FsCommand::FailFsync { error, count: None })
            .await?;
        Ok(Active::new(one.clone(), ()))
    }

    async fn heal(&self, ctx: &Context, active: Active, _: Option<&Planned>) -> anyhow::Result<()> {
        {
            let mut rt = ctx.runtime.lock().await;
            for node in &active.targets {
                rt.disk(node, FsCommand::Heal).await?;
                heal_stopped(&mut rt, node).await?;
            }
        }
        ctx.record_end(self.name(), &active.targets);
        Ok(())
    }
}
