//! The network: how messages are sent, which may be delivered next and what delivery leaves.

use crate::bounds::Network;
use crate::state::Message;

/// Puts `message` in flight; returns false when an identical message was already in flight
/// (on its channel), in which case nothing changes.
pub fn send(network: &mut Vec<Message>, mode: Network, message: Message) -> bool {
    match mode {
        Network::Lossy | Network::Duplicating => match network.binary_search(&message) {
            Ok(_) => false,
            Err(at) => {
                network.insert(at, message);
                true
            }
        },
        Network::Ordered => {
            let channel = (message.from, message.to);
            let start = network.partition_point(|m| (m.from, m.to) < channel);
            let end = network.partition_point(|m| (m.from, m.to) <= channel);
            if network[start..end].contains(&message) {
                return false;
            }
            network.insert(end, message);
            true
        }
    }
}

/// Positions of the messages that may be delivered next: any message, or on an ordered
/// network the head of each channel.
pub fn deliverable(network: &[Message], mode: Network) -> impl Iterator<Item = usize> + '_ {
    (0..network.len()).filter(move |&i| {
        mode != Network::Ordered
            || i == 0
            || (network[i - 1].from, network[i - 1].to) != (network[i].from, network[i].to)
    })
}

/// Takes the message at `position` out of flight as it is delivered (or dropped), unless the
/// network duplicates and this is a delivery.
pub fn remove(network: &mut Vec<Message>, mode: Network, position: usize, dropped: bool) {
    if dropped || mode != Network::Duplicating {
        network.remove(position);
    }
}

/// Restores the ordering invariant after server ids were renamed.
pub fn normalize(network: &mut Vec<Message>, mode: Network) {
    match mode {
        Network::Lossy | Network::Duplicating => {
            network.sort_unstable();
            network.dedup();
        }
        // Stable: each channel keeps its FIFO order.
        Network::Ordered => network.sort_by_key(|m| (m.from, m.to)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Body;

    fn vote(from: u8, to: u8, term: u8) -> Message {
        Message {
            from,
            to,
            term,
            body: Body::RequestVoteResponse { granted: true },
        }
    }

    #[test]
    fn ordered_channels_are_fifo_and_coalesce_duplicates() {
        let mut net = Vec::new();
        assert!(send(&mut net, Network::Ordered, vote(1, 0, 2)));
        assert!(send(&mut net, Network::Ordered, vote(1, 0, 1)));
        assert!(send(&mut net, Network::Ordered, vote(0, 1, 1)));
        assert!(!send(&mut net, Network::Ordered, vote(1, 0, 2)));
        assert_eq!(net, vec![vote(0, 1, 1), vote(1, 0, 2), vote(1, 0, 1)]);
        // Only channel heads may be delivered.
        assert_eq!(
            deliverable(&net, Network::Ordered).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(deliverable(&net, Network::Lossy).count(), 3);
    }

    #[test]
    fn duplicating_networks_keep_delivered_messages() {
        let mut net = vec![vote(0, 1, 1)];
        remove(&mut net, Network::Duplicating, 0, false);
        assert_eq!(net.len(), 1);
        remove(&mut net, Network::Duplicating, 0, true);
        assert!(net.is_empty());
    }
}
