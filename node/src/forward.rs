//! Submits a follower forwarded to the leader, waiting for its answer.

use crate::event::SubmitReply;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Forwarded submits older than this are forgotten.
pub const FORWARD_AGE_MAX: Duration = Duration::from_secs(60);

struct Waiting {
    tx_id: String,
    sender: oneshot::Sender<SubmitReply>,
    since: Instant,
}

/// A random number per start of the node (std's hasher keys are seeded
/// from the OS).
pub fn start_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// The follower's table of forwarded submits, by request id.
pub struct Forwards {
    next: u64,
    waiting: HashMap<u64, Waiting>,
}

impl Forwards {
    /// An empty table for one run of the node; request ids start at
    /// `nonce`, which differs per start (see [`start_nonce`]), so that a
    /// late answer to a submit from before a restart matches nothing.
    pub fn new(nonce: u64) -> Forwards {
        Forwards {
            next: nonce,
            waiting: HashMap::new(),
        }
    }

    /// Records a submit of `tx_id` about to be forwarded; its request id.
    pub fn add(&mut self, tx_id: &str, sender: oneshot::Sender<SubmitReply>) -> u64 {
        self.next = self.next.wrapping_add(1);
        self.waiting.insert(
            self.next,
            Waiting {
                tx_id: tx_id.to_string(),
                sender,
                since: Instant::now(),
            },
        );
        self.next
    }

    /// Hands the leader's answer for (`req_id`, `tx_id`) to its client;
    /// false when no submit of this run waits for it.
    pub fn resolve(&mut self, req_id: u64, tx_id: &str, reply: SubmitReply) -> bool {
        match self.waiting.get(&req_id) {
            Some(w) if w.tx_id == tx_id => {}
            Some(w) => {
                tracing::warn!(req_id, expected = %w.tx_id, got = tx_id, "forwarded answer names another transaction; dropped");
                return false;
            }
            None => return false,
        }
        let w = self.waiting.remove(&req_id).expect("just looked up");
        w.sender.send(reply).is_ok()
    }

    /// Answers every waiting submit with `reply` and forgets them: the
    /// leader they were forwarded to is no longer the leader, so an answer
    /// may never come (issue 18). Returns how many were answered.
    pub fn abandon_all(&mut self, reply: &SubmitReply) -> usize {
        let n = self.waiting.len();
        for (_, w) in self.waiting.drain() {
            let _ = w.sender.send(reply.clone());
        }
        n
    }

    /// Forgets submits whose client left or that waited too long.
    pub fn expire(&mut self, now: Instant) {
        self.waiting
            .retain(|_, w| !w.sender.is_closed() && now.duration_since(w.since) < FORWARD_AGE_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(id: &str) -> SubmitReply {
        SubmitReply::Committed {
            id: id.into(),
            block: 1,
            position: 0,
            results: vec![],
        }
    }

    /// Defect 1 (issue 13): a late answer from before a restart is never
    /// delivered to another client's transaction.
    #[test]
    fn a_late_answer_from_before_a_restart_reaches_nobody() {
        let mut before = Forwards::new(1);
        let (a_tx, _a_rx) = oneshot::channel();
        let req_a = before.add("tx-a", a_tx);
        drop(before); // the follower is killed and restarts
        let mut after = Forwards::new(2);
        let (b_tx, mut b_rx) = oneshot::channel();
        let req_b = after.add("tx-b", b_tx);
        assert!(!after.resolve(req_a, "tx-a", committed("tx-a")));
        assert!(b_rx.try_recv().is_err(), "tx-b got tx-a's answer");
        // The right answer still gets through.
        assert!(after.resolve(req_b, "tx-b", committed("tx-b")));
        assert_eq!(b_rx.try_recv().unwrap(), committed("tx-b"));
    }

    #[test]
    fn abandoned_submits_are_answered_and_late_answers_reach_nobody() {
        let mut f = Forwards::new(3);
        let (tx, mut rx) = oneshot::channel();
        let req = f.add("t", tx);
        let unknown = SubmitReply::refused(504, "leader changed; outcome unknown", false);
        assert_eq!(f.abandon_all(&unknown), 1);
        assert_eq!(rx.try_recv().unwrap(), unknown);
        assert!(!f.resolve(req, "t", committed("t")));
        assert_eq!(f.abandon_all(&unknown), 0);
    }

    #[test]
    fn an_answer_naming_another_transaction_is_refused() {
        let mut f = Forwards::new(7);
        let (tx, mut rx) = oneshot::channel();
        let req = f.add("mine", tx);
        assert!(!f.resolve(req, "other", committed("other")));
        assert!(rx.try_recv().is_err());
    }
}
