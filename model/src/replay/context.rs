//! The events around an anomaly, read in a second pass over the traces that hold them.
//!
//! The replay keeps no event once judged. A state divergence names two digests; the applies,
//! snapshots and starts that led each node to its digest lie in its trace between its digest
//! before and this one (a window of sequence numbers). After the replay, each trace that holds
//! a window is read once more and the last [`CONTEXT_EVENTS_MAX`] such events of each window
//! are added to the anomaly.

use super::anomaly::Anomaly;
use super::error::ReplayError;
use super::event::{EventRef, Kind, NodeId};
use super::read::Trace;
use std::collections::{BTreeSet, VecDeque};

/// The most events one window adds to its anomaly: the last ones before its end.
pub const CONTEXT_EVENTS_MAX: usize = 24;

/// Events of one node with `from_seq <= seq <= to_seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub node: NodeId,
    pub from_seq: u64,
    pub to_seq: u64,
}

/// Whether an event of this kind explains a node's state: starts, applies, snapshots, digests.
fn explains_state(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Start(_) | Kind::Apply(_) | Kind::Snapshot(_) | Kind::Digest(_)
    )
}

/// Adds to each anomaly (by its position in `anomalies`) the events of its windows, and keeps
/// its events in causal order.
pub(crate) fn add(
    traces: &[Trace],
    anomalies: &mut [Anomaly],
    windows: &[(usize, Window)],
) -> Result<(), ReplayError> {
    let mut found: Vec<VecDeque<EventRef>> = vec![VecDeque::new(); windows.len()];
    let nodes: BTreeSet<NodeId> = windows.iter().map(|(_, w)| w.node).collect();
    for trace in traces {
        let Some(node) = trace.node.filter(|n| nodes.contains(n)) else {
            continue;
        };
        let mut mine: Vec<(usize, Window)> = windows
            .iter()
            .enumerate()
            .filter(|(_, (_, w))| w.node == node)
            .map(|(slot, (_, w))| (slot, *w))
            .collect();
        mine.sort_by_key(|(_, w)| w.from_seq);
        collect(trace, &mine, &mut found)?;
    }
    for ((position, _), events) in windows.iter().zip(found) {
        let anomaly = &mut anomalies[*position];
        anomaly.events.extend(events);
        anomaly.events.sort_by_key(|e| (e.lamport, e.node, e.seq));
        anomaly.events.dedup_by_key(|e| (e.node, e.seq));
    }
    Ok(())
}

/// One pass over `trace`: each event that explains the state goes to every window (sorted by
/// start) that holds it.
fn collect(
    trace: &Trace,
    windows: &[(usize, Window)],
    found: &mut [VecDeque<EventRef>],
) -> Result<(), ReplayError> {
    let last_seq = windows.iter().map(|(_, w)| w.to_seq).max().unwrap_or(0);
    let mut events = trace.events()?;
    let mut next = 0;
    let mut open: Vec<(usize, Window)> = Vec::new();
    while let Some(event) = events.next_event()? {
        let seq = event.header.seq;
        if seq > last_seq {
            break;
        }
        while next < windows.len() && windows[next].1.from_seq <= seq {
            open.push(windows[next]);
            next += 1;
        }
        open.retain(|(_, w)| w.to_seq >= seq);
        if open.is_empty() || !explains_state(&event.kind) {
            continue;
        }
        let at = event.at();
        for (slot, _) in &open {
            let ring = &mut found[*slot];
            if ring.len() == CONTEXT_EVENTS_MAX {
                ring.pop_front();
            }
            ring.push_back(at.clone());
        }
    }
    Ok(())
}
