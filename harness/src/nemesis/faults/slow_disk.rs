//! The `slow-disk` fault: one node's fsyncs delayed past half the
//! election timeout (with jitter), until the heal removes the delay.

use crate::nemesis::context::Context;
use crate::nemesis::disk::one_member;
use crate::nemesis::package::{Active, FaultPackage, Planned};
use crate::runtime::verbs::{Runtime, Verb};
use crate::sut::{Ability, Sut, System};
use faultfs::Command as FsCommand;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// See the module doc.
pub struct SlowDisk;

/// How much slower.
#[derive(Debug, Serialize, Deserialize)]
struct Delay {
    delay_fsync_ms: u64,
    jitter_ms: u64,
}

impl FaultPackage for SlowDisk {
    fn name(&self) -> &'static str {
        "slow-disk"
    }

    fn verbs(&self) -> &'static [Verb] {
        &[Verb::Disk]
    }

    fn refused_by(&self, sut: Sut) -> Option<&'static str> {
        sut.lacks(Ability::Faultfs)
    }

    async fn draw(&self, ctx: &Context, rng: &mut ChaCha8Rng) -> anyhow::Result<Planned> {
        let one = one_member(ctx, rng);
        let et = ctx.election_timeout_ms;
        let delay = Delay {
            delay_fsync_ms: et / 2 + et / 4,
            jitter_ms: et / 2,
        };
        Ok(Planned::new(one, delay))
    }

    async fn inject(&self, ctx: &Context, planned: &Planned) -> anyhow::Result<Active> {
        let Delay {
            delay_fsync_ms: ms,
            jitter_ms,
        } = planned.params(self.name())?;
        let one = &planned.targets;
        let mut rt = ctx.runtime.lock().await;
        ctx.record(
            self.name(),
            json!({"phase": "start", "targets": one, "delay_fsync_ms": ms, "jitter_ms": jitter_ms}),
        );
        rt.disk(&one[0], FsCommand::DelayFsync { ms, jitter_ms })
            .await?;
        Ok(Active::new(one.clone(), ()))
    }

    async fn heal(&self, ctx: &Context, active: Active, _: Option<&Planned>) -> anyhow::Result<()> {
        {
            let mut rt = ctx.runtime.lock().await;
            for node in &active.targets {
                rt.disk(node, FsCommand::Heal).await?;
            }
        }
        ctx.record_end(self.name(), &active.targets);
        Ok(())
    }
}
