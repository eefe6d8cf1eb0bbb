//! The `disk-full` fault: one node's disk is full (faultfs `enospc on`,
//! after a seeded number of bytes more): writes, fsyncs and creates fail
//! with ENOSPC for the fault's length. ordeal-node must not acknowledge
//! what it could not make durable: it stops on the failed write or fsync
//! (as after a crash), naming the file. Healed by `enospc off` and, when
//! the node stopped, a restart on what its disk kept
//! (`docs/storage-faults.md`).

use crate::nemesis::context::Context;
use crate::nemesis::damage::{fatal_lines, stays_up};
use crate::nemesis::disk::{heal_stopped, one_member};
use crate::nemesis::package::{Active, FaultPackage, Planned};
use crate::runtime::verbs::{Runtime, Verb};
use crate::sut::{Ability, Sut, System};
use faultfs::Command as FsCommand;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// See the module doc.
pub struct DiskFull;

/// The room left, drawn in steps of this many bytes.
const ROOM_STEP_BYTES: u64 = 8 << 10;
/// At most this many steps of room (64 KiB: a follower of a loaded
/// cluster writes that much well within a fault's interval).
const ROOM_STEPS_MAX: u64 = 8;

/// How many fatal lines the node's log held at the start (one more at
/// the heal: it stopped, even if its process is still exiting).
struct FatalBefore(usize);

/// How full.
#[derive(Debug, Serialize, Deserialize)]
struct Full {
    /// Bytes still accepted before writes fail (0 to 64 KiB).
    enospc_after_bytes: u64,
}

impl FaultPackage for DiskFull {
    fn name(&self) -> &'static str {
        "disk-full"
    }

    fn verbs(&self) -> &'static [Verb] {
        &[Verb::Disk]
    }

    fn refused_by(&self, sut: Sut) -> Option<&'static str> {
        sut.lacks(Ability::Faultfs)
    }

    /// The target stops itself on a write the full disk refused: the
    /// fault's doing, not a crash.
    fn stops_process(&self) -> bool {
        true
    }

    async fn draw(&self, ctx: &Context, rng: &mut ChaCha8Rng) -> anyhow::Result<Planned> {
        let one = one_member(ctx, rng);
        let room = rng.gen_range(0..=ROOM_STEPS_MAX) * ROOM_STEP_BYTES;
        Ok(Planned::new(
            one,
            Full {
                enospc_after_bytes: room,
            },
        ))
    }

    async fn inject(&self, ctx: &Context, planned: &Planned) -> anyhow::Result<Active> {
        let Full { enospc_after_bytes } = planned.params(self.name())?;
        let one = &planned.targets;
        let fatal_before = fatal_lines(ctx, &one[0]).await.len();
        let mut rt = ctx.runtime.lock().await;
        ctx.record(
            self.name(),
            json!({"phase": "start", "targets": one, "enospc_after_bytes": enospc_after_bytes}),
        );
        let command = FsCommand::EnospcOn {
            after_bytes: Some(enospc_after_bytes),
        };
        rt.disk(&one[0], command).await?;
        Ok(Active::new(one.clone(), FatalBefore(fatal_before)))
    }

    /// Room again; a node that stopped on the full disk (also a little
    /// later: its snapshot thread's failed write surfaces at the raft
    /// loop's next poll) is restarted on what its disk kept.
    async fn heal(
        &self,
        ctx: &Context,
        mut active: Active,
        _: Option<&Planned>,
    ) -> anyhow::Result<()> {
        let before = active.undo::<FatalBefore>().map_or(0, |f| f.0);
        let mut stopped = Vec::new();
        for node in &active.targets {
            ctx.runtime
                .lock()
                .await
                .disk(node, FsCommand::EnospcOff)
                .await?;
            let up = stays_up(ctx, node).await;
            if !up || fatal_lines(ctx, node).await.len() > before {
                stopped.push(node.clone());
                heal_stopped(&mut *ctx.runtime.lock().await, node).await?;
            }
        }
        ctx.record(
            self.name(),
            json!({"phase": "end", "targets": active.targets, "stopped": stopped}),
        );
        Ok(())
    }
}
