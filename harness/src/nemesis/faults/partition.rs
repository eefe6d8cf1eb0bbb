//! The `partition` fault: a grudge (`grudge.rs`) drawn among the shapes
//! that fit the members (one node cut off, the leader cut off, halves; a
//! ring of majorities and a bridge from five nodes), enforced by the
//! runtime until the heal.

use crate::nemesis::context::Context;
use crate::nemesis::grudge::{self, GrudgeKind};
use crate::nemesis::package::{Active, FaultPackage, Planned};
use crate::runtime::verbs::{Grudge, Runtime, Verb};
use crate::sut::Sut;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// See the module doc.
pub struct Partition;

/// Who drops whose packets, and the shape it was drawn as.
#[derive(Debug, Serialize, Deserialize)]
struct Cut {
    grudge: Grudge,
    grudge_kind: GrudgeKind,
}

impl FaultPackage for Partition {
    fn name(&self) -> &'static str {
        "partition"
    }

    fn verbs(&self) -> &'static [Verb] {
        &[Verb::Partition]
    }

    fn refused_by(&self, _sut: Sut) -> Option<&'static str> {
        None
    }

    async fn draw(&self, ctx: &Context, rng: &mut ChaCha8Rng) -> anyhow::Result<Planned> {
        let nodes = ctx.members();
        let mut order = nodes.clone();
        order.shuffle(rng);
        let kinds = GrudgeKind::for_nodes(nodes.len());
        let mut kind = *kinds.choose(rng).expect("kinds");
        let g = match kind {
            GrudgeKind::IsolateLeader => match ctx.leader().await {
                Some(leader) => grudge::isolate(&leader, &nodes),
                None => {
                    kind = GrudgeKind::IsolateOne;
                    grudge::isolate(&order[0], &nodes)
                }
            },
            GrudgeKind::IsolateOne => grudge::isolate(&order[0], &nodes),
            GrudgeKind::Halves => grudge::halves(&order),
            GrudgeKind::MajoritiesRing => grudge::majorities_ring(&order),
            GrudgeKind::Bridge => grudge::bridge(&order),
        };
        let targets: Vec<String> = grudge::isolated_side(&g, &nodes);
        Ok(Planned::new(
            targets,
            Cut {
                grudge: g,
                grudge_kind: kind,
            },
        ))
    }

    async fn inject(&self, ctx: &Context, planned: &Planned) -> anyhow::Result<Active> {
        let Cut {
            grudge,
            grudge_kind,
        } = planned.params(self.name())?;
        let targets = &planned.targets;
        ctx.record(
            self.name(),
            json!({"phase": "start", "targets": targets, "grudge": grudge, "grudge_kind": grudge_kind}),
        );
        ctx.runtime.lock().await.partition(&grudge).await?;
        Ok(Active::new(targets.clone(), ()))
    }

    async fn heal(&self, ctx: &Context, active: Active, _: Option<&Planned>) -> anyhow::Result<()> {
        ctx.runtime.lock().await.heal().await?;
        ctx.record_end(self.name(), &active.targets);
        Ok(())
    }
}
