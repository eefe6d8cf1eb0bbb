//! The block cutter (Fabric's `blockcutter`): batches transactions into
//! blocks by count, preferred size and a timeout, and (group commit) as
//! soon as the leader's proposal pipeline is idle.
//!
//! Fabric's three rules are upper bounds: a block holds at most
//! `max_message_count` transactions, about `preferred_max_bytes`, and its
//! first transaction waits at most `batch_timeout`. Nothing in them asks a
//! transaction to wait for the timer when the leader has nothing in
//! flight; with `cut_when_idle` the raft loop cuts then (`cut_if_idle`),
//! so a lone transaction waits for one commit, not the timer, and under
//! load transactions gather while the previous block commits.

use crate::tx::Tx;
use std::time::{Duration, Instant};

/// The batch size rules (Fabric's `BatchSize` and `BatchTimeout`).
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Cut when the batch holds this many transactions.
    pub max_message_count: usize,
    /// Cut before a transaction that would take the batch past this size;
    /// a transaction larger than this alone gets a block of its own.
    pub preferred_max_bytes: usize,
    /// Cut a non-empty batch this long after its first transaction.
    pub batch_timeout: Duration,
    /// Also cut a non-empty batch whenever the proposal pipeline is idle
    /// (group commit); the three rules above stay upper bounds.
    pub cut_when_idle: bool,
}

/// The pending batch.
#[derive(Debug)]
pub struct BlockCutter {
    config: BatchConfig,
    pending: Vec<Tx>,
    pending_bytes: usize,
    first_at: Option<Instant>,
}

impl BlockCutter {
    /// An empty cutter.
    pub fn new(config: BatchConfig) -> Self {
        BlockCutter {
            config,
            pending: Vec::new(),
            pending_bytes: 0,
            first_at: None,
        }
    }

    /// Adds a transaction; returns the batches it caused to be cut (zero,
    /// one or two, as Fabric's `Ordered`).
    pub fn ordered(&mut self, tx: Tx, now: Instant) -> Vec<Vec<Tx>> {
        let mut cut = Vec::new();
        let size = tx.size_bytes();
        if size > self.config.preferred_max_bytes {
            if !self.pending.is_empty() {
                cut.push(self.cut());
            }
            cut.push(vec![tx]);
            return cut;
        }
        if self.pending_bytes + size > self.config.preferred_max_bytes && !self.pending.is_empty() {
            cut.push(self.cut());
        }
        if self.pending.is_empty() {
            self.first_at = Some(now);
        }
        self.pending_bytes += size;
        self.pending.push(tx);
        if self.pending.len() >= self.config.max_message_count {
            cut.push(self.cut());
        }
        cut
    }

    /// When the pending batch times out, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.first_at.map(|t| t + self.config.batch_timeout)
    }

    /// Cuts the pending batch if its timeout has passed.
    pub fn cut_if_due(&mut self, now: Instant) -> Option<Vec<Tx>> {
        match self.deadline() {
            Some(d) if now >= d => Some(self.cut()),
            _ => None,
        }
    }

    /// Group commit: cuts the pending batch if it is not empty, cutting
    /// when idle is on, and `pipeline_idle` (the leader has no block
    /// proposed and not yet applied, and none waiting to be proposed).
    pub fn cut_if_idle(&mut self, pipeline_idle: bool) -> Option<Vec<Tx>> {
        if self.config.cut_when_idle && pipeline_idle && !self.pending.is_empty() {
            Some(self.cut())
        } else {
            None
        }
    }

    /// Bytes of the transactions in the pending batch.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Takes the pending batch (possibly empty).
    pub fn cut(&mut self) -> Vec<Tx> {
        self.pending_bytes = 0;
        self.first_at = None;
        std::mem::take(&mut self.pending)
    }

    /// Number of transactions waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(id: usize, bytes: usize) -> Tx {
        Tx {
            id: format!("{id:04}"),
            payload: "x".repeat(bytes - 4),
            ops: vec![],
        }
    }

    fn cutter(count: usize, bytes: usize) -> BlockCutter {
        BlockCutter::new(BatchConfig {
            max_message_count: count,
            preferred_max_bytes: bytes,
            batch_timeout: Duration::from_millis(20),
            cut_when_idle: true,
        })
    }

    #[test]
    fn cuts_on_max_message_count() {
        let mut c = cutter(3, 1000);
        let now = Instant::now();
        assert!(c.ordered(tx(1, 10), now).is_empty());
        assert!(c.ordered(tx(2, 10), now).is_empty());
        let cut = c.ordered(tx(3, 10), now);
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0].len(), 3);
        assert!(c.is_empty());
    }

    #[test]
    fn cuts_before_exceeding_preferred_bytes() {
        let mut c = cutter(100, 100);
        let now = Instant::now();
        assert!(c.ordered(tx(1, 60), now).is_empty());
        let cut = c.ordered(tx(2, 60), now);
        assert_eq!(cut, vec![vec![tx(1, 60)]]);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn an_oversized_transaction_gets_its_own_block() {
        let mut c = cutter(100, 100);
        let now = Instant::now();
        c.ordered(tx(1, 10), now);
        let cut = c.ordered(tx(2, 500), now);
        assert_eq!(cut, vec![vec![tx(1, 10)], vec![tx(2, 500)]]);
        assert!(c.is_empty());
    }

    #[test]
    fn cuts_on_timeout_from_the_first_transaction() {
        let mut c = cutter(100, 1000);
        let t0 = Instant::now();
        assert!(c.cut_if_due(t0).is_none());
        c.ordered(tx(1, 10), t0);
        c.ordered(tx(2, 10), t0 + Duration::from_millis(15));
        assert!(c.cut_if_due(t0 + Duration::from_millis(19)).is_none());
        assert_eq!(
            c.cut_if_due(t0 + Duration::from_millis(20)).unwrap().len(),
            2
        );
        assert_eq!(c.deadline(), None);
    }

    #[test]
    fn an_idle_pipeline_cuts_what_is_pending_at_once() {
        let mut c = cutter(100, 1000);
        let t0 = Instant::now();
        assert!(
            c.cut_if_idle(true).is_none(),
            "nothing pending, nothing cut"
        );
        c.ordered(tx(1, 10), t0);
        assert!(c.cut_if_idle(false).is_none(), "a busy pipeline waits");
        assert_eq!(c.len(), 1);
        c.ordered(tx(2, 10), t0);
        assert_eq!(c.cut_if_idle(true), Some(vec![tx(1, 10), tx(2, 10)]));
        assert!(c.is_empty());
        assert_eq!(c.deadline(), None, "the timer restarts with the next one");
    }

    #[test]
    fn cutting_when_idle_keeps_count_and_bytes_as_upper_bounds() {
        let mut c = cutter(3, 100);
        let now = Instant::now();
        // A busy pipeline: the count rule still cuts full blocks.
        let mut cuts = Vec::new();
        for i in 0..7 {
            cuts.extend(c.ordered(tx(i, 10), now));
            assert!(c.cut_if_idle(false).is_none());
        }
        assert_eq!(cuts.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3]);
        // And the bytes rule: 60 + 60 is over 100.
        let mut c = cutter(100, 100);
        assert!(c.ordered(tx(1, 60), now).is_empty());
        assert_eq!(c.ordered(tx(2, 60), now), vec![vec![tx(1, 60)]]);
        assert_eq!(c.cut_if_idle(true), Some(vec![tx(2, 60)]));
    }

    #[test]
    fn with_cutting_when_idle_off_only_the_three_rules_cut() {
        let mut c = BlockCutter::new(BatchConfig {
            max_message_count: 100,
            preferred_max_bytes: 1000,
            batch_timeout: Duration::from_millis(20),
            cut_when_idle: false,
        });
        let t0 = Instant::now();
        c.ordered(tx(1, 10), t0);
        assert!(c.cut_if_idle(true).is_none());
        assert_eq!(
            c.cut_if_due(t0 + Duration::from_millis(20)).unwrap().len(),
            1
        );
    }
}
