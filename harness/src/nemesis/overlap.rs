//! Which faults may be in force together (`--nemesis-overlap`, issue 29;
//! Jepsen's combined packages): never two on one node, never two that
//! share an undo — partition and lag both heal by healing every link, and
//! member and transfer both move the configuration or its leadership
//! through the leader.

use crate::nemesis::faults::Fault;
use crate::nemesis::package::Planned;

/// Faults that share one undo or one leader's attention: at most one of
/// each group in force at once.
const EXCLUSIVE: [&[Fault]; 2] = [
    &[Fault::Partition, Fault::Lag],
    &[Fault::Member, Fault::Transfer],
];

/// Whether `planned` of `fault` may join the faults drawn for the same
/// cycle (`drawn`): a different kind, outside their exclusive groups, on
/// none of their targets. A fault without targets (nothing to do) joins.
pub fn fits(fault: Fault, planned: &Planned, drawn: &[(Fault, Planned)]) -> bool {
    drawn.iter().all(|(other, p)| {
        *other != fault
            && !EXCLUSIVE
                .iter()
                .any(|group| group.contains(other) && group.contains(&fault))
            && !p.targets.iter().any(|t| planned.targets.contains(t))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn on(targets: &[&str]) -> Planned {
        Planned::new(targets.iter().map(|t| t.to_string()).collect(), Value::Null)
    }

    #[test]
    fn faults_overlap_on_other_nodes_and_never_share_an_undo() {
        let drawn = vec![(Fault::Kill, on(&["n1"])), (Fault::Partition, on(&["n2"]))];
        assert!(fits(Fault::Clock, &on(&["n3"]), &drawn));
        assert!(!fits(Fault::Clock, &on(&["n1"]), &drawn), "n1 is killed");
        assert!(
            !fits(Fault::Lag, &on(&["n3"]), &drawn),
            "both heal every link"
        );
        assert!(!fits(Fault::Kill, &on(&["n3"]), &drawn), "one kill a cycle");
        assert!(fits(Fault::Transfer, &on(&[]), &drawn));
        let membership = vec![(Fault::Member, on(&["n4"]))];
        assert!(!fits(Fault::Transfer, &on(&["n2"]), &membership));
    }
}
