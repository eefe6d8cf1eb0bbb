//! The nodes' events merged into one causal order (Lamport clock, then node, then sequence
//! number) while they are read: each file already rises in its clock, so holding one event
//! per file is enough.

use super::error::ReplayError;
use super::event::Event;
use super::read::Events;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// The position of an event in the causal order.
type Key = (u64, u64, u64);

/// The next event of each file, and the files by their next event's key.
pub(crate) struct Merged<'a> {
    streams: Vec<Events<'a>>,
    heads: Vec<Option<Event>>,
    order: BinaryHeap<Reverse<(Key, usize)>>,
}

impl<'a> Merged<'a> {
    /// Reads the first event of every stream.
    pub fn new(streams: Vec<Events<'a>>) -> Result<Self, ReplayError> {
        let count = streams.len();
        let mut merged = Merged {
            streams,
            heads: (0..count).map(|_| None).collect(),
            order: BinaryHeap::with_capacity(count),
        };
        for stream in 0..count {
            merged.refill(stream)?;
        }
        Ok(merged)
    }

    /// The earliest event not yet returned, over all files.
    pub fn next_event(&mut self) -> Result<Option<Event>, ReplayError> {
        let Some(Reverse((_, stream))) = self.order.pop() else {
            return Ok(None);
        };
        let event = self.heads[stream]
            .take()
            .expect("a queued stream holds its next event");
        self.refill(stream)?;
        Ok(Some(event))
    }

    fn refill(&mut self, stream: usize) -> Result<(), ReplayError> {
        if let Some(event) = self.streams[stream].next_event()? {
            let h = event.header;
            self.order
                .push(Reverse(((h.lamport, h.node, h.seq), stream)));
            self.heads[stream] = Some(event);
        }
        Ok(())
    }

    /// Events of kinds the reader does not know, by kind, over the files read so far.
    pub fn unknown(&self) -> BTreeMap<String, u64> {
        let mut total = BTreeMap::new();
        for (kind, count) in self.streams.iter().flat_map(|s| &s.unknown) {
            *total.entry(kind.clone()).or_default() += count;
        }
        total
    }
}
