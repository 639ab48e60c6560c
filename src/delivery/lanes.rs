//! A hook's window of queued entries, sorted into lanes: which request may go next.
//!
//! A lane is the entries of one meeting (or of the whole hook with `hooks.ordering: hook`). At
//! most one request per lane is out at a time, so a lane's entries are delivered in order; idle
//! lanes are served oldest head first, so no meeting waits behind a younger one. Pure
//! bookkeeping: no I/O, no clock. It does not decide how many requests may be out (the worker
//! does) nor when to retry.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::queue::Entry;

/// One of the `of` parts a hook's lanes are spread over in a cluster: a lane belongs to part
/// `hash(lane) % of`, always the same one, so each lane is still delivered by one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub index: u32,
    pub of: u32,
}

impl Part {
    /// Whether `lane` belongs to this part (FNV-1a: the same on every relay and version).
    pub fn contains(&self, lane: &str) -> bool {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in lane.bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash % u64::from(self.of.max(1)) == u64::from(self.index)
    }

    /// The lease unit of this part of `hook`: `<hookId>/<index>`.
    pub fn unit(&self, hook: &str) -> String {
        format!("{hook}/{}", self.index)
    }

    /// The hook and part a lease unit names.
    pub fn of_unit(unit: &str, of: u32) -> Option<(&str, Part)> {
        let (hook, index) = unit.rsplit_once('/')?;
        let index: u32 = index.parse().ok()?;
        (index < of).then_some((hook, Part { index, of }))
    }
}

/// Entries taken from one lane for one request, oldest first.
#[derive(Debug)]
pub struct Batch {
    pub lane: String,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Default)]
struct Lane {
    entries: VecDeque<Entry>,
    /// A request of this lane is out.
    busy: bool,
}

#[derive(Debug, Default)]
pub struct Lanes {
    lanes: HashMap<String, Lane>,
    /// Idle lanes that hold entries, by their head's stream id: the oldest goes first.
    ready: BTreeMap<(u64, u64), String>,
    /// Entries held, those out in requests included.
    held: usize,
}

impl Lanes {
    /// Adds an entry at the end of its lane. Entries must come in stream order.
    pub fn push(&mut self, lane: String, entry: Entry) {
        self.held += 1;
        let l = self.lanes.entry(lane.clone()).or_default();
        if !l.busy && l.entries.is_empty() {
            self.ready.insert(entry.key(), lane);
        }
        l.entries.push_back(entry);
    }

    /// Takes the next request: up to `size(head)` entries of the idle lane whose head is the
    /// oldest. The lane is busy until [`Lanes::done`] or [`Lanes::put_back`].
    pub fn next(&mut self, size: impl FnOnce(&Entry) -> usize) -> Option<Batch> {
        let (_, lane) = self.ready.pop_first()?;
        let l = self.lanes.get_mut(&lane)?;
        let n = l
            .entries
            .front()
            .map_or(0, |head| size(head).clamp(1, l.entries.len()));
        l.busy = true;
        Some(Batch {
            entries: l.entries.drain(..n).collect(),
            lane,
        })
    }

    /// The request of `lane` carrying `count` entries went through (or was given up).
    pub fn done(&mut self, lane: &str, count: usize) {
        self.held = self.held.saturating_sub(count);
        self.release(lane);
    }

    /// The request failed: its entries go back to the head of their lane, to be sent again.
    pub fn put_back(&mut self, batch: Batch) {
        if let Some(l) = self.lanes.get_mut(&batch.lane) {
            for e in batch.entries.into_iter().rev() {
                l.entries.push_front(e);
            }
        }
        self.release(&batch.lane);
    }

    fn release(&mut self, lane: &str) {
        let Some(l) = self.lanes.get_mut(lane) else {
            return;
        };
        l.busy = false;
        match l.entries.front() {
            Some(head) => {
                self.ready.insert(head.key(), lane.to_string());
            }
            None => {
                self.lanes.remove(lane);
            }
        }
    }

    /// Entries held, in requests or waiting.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Whether some lane could send now.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, lane: &str) -> (String, Entry) {
        (
            lane.to_string(),
            Entry {
                id: format!("1-{seq}"),
                lane: lane.to_string(),
                event: "e".into(),
                payload: format!("{lane}{seq}"),
                domain: None,
            },
        )
    }

    fn ids(b: &Batch) -> Vec<&str> {
        b.entries.iter().map(|e| e.id.as_str()).collect()
    }

    fn lanes(entries: &[(u64, &str)]) -> Lanes {
        let mut l = Lanes::default();
        for (seq, lane) in entries {
            let (lane, e) = entry(*seq, lane);
            l.push(lane, e);
        }
        l
    }

    #[test]
    fn every_lane_is_in_exactly_one_part() {
        let parts: Vec<Part> = (0..4).map(|index| Part { index, of: 4 }).collect();
        let mut used = [0usize; 4];
        for m in 0..200 {
            let lane = format!("bbb1/meeting-{m}");
            let owners: Vec<usize> = (0..4).filter(|&i| parts[i].contains(&lane)).collect();
            assert_eq!(owners.len(), 1, "{lane}");
            used[owners[0]] += 1;
        }
        assert!(used.iter().all(|&n| n > 20), "spread: {used:?}");
        let unit = parts[3].unit("hook-1");
        assert_eq!(Part::of_unit(&unit, 4), Some(("hook-1", parts[3])));
        assert_eq!(Part::of_unit(&unit, 2), None);
        assert_eq!(Part::of_unit("no-part", 4), None);
    }

    #[test]
    fn one_request_per_lane_oldest_head_first() {
        let mut l = lanes(&[(1, "a"), (2, "b"), (3, "a"), (4, "c")]);
        let a = l.next(|_| 1).unwrap();
        let b = l.next(|_| 1).unwrap();
        let c = l.next(|_| 1).unwrap();
        assert_eq!(
            (ids(&a), ids(&b), ids(&c)),
            (vec!["1-1"], vec!["1-2"], vec!["1-4"])
        );
        assert!(l.next(|_| 1).is_none(), "a is busy: 1-3 waits for 1-1");
        l.done("a", 1);
        assert_eq!(ids(&l.next(|_| 1).unwrap()), ["1-3"]);
        assert_eq!(l.held(), 3);
    }

    #[test]
    fn batches_take_what_the_lane_has() {
        let mut l = lanes(&[(1, "a"), (2, "a"), (3, "b"), (4, "a")]);
        let a = l.next(|_| 20).unwrap();
        assert_eq!(ids(&a), ["1-1", "1-2", "1-4"]);
        let b = l.next(|_| 0).unwrap();
        assert_eq!(ids(&b), ["1-3"], "at least one entry");
    }

    #[test]
    fn a_failed_batch_goes_back_whole_and_first() {
        let mut l = lanes(&[(1, "a"), (2, "a"), (5, "b")]);
        let a = l.next(|_| 2).unwrap();
        let (lane, e) = entry(7, "a");
        l.push(lane, e);
        l.put_back(a);
        let again = l.next(|_| 2).unwrap();
        assert_eq!(
            ids(&again),
            ["1-1", "1-2"],
            "the same entries, before b's younger head"
        );
        assert_eq!(l.held(), 4);
    }

    #[test]
    fn empty_lanes_are_forgotten() {
        let mut l = lanes(&[(1, "a")]);
        let a = l.next(|_| 1).unwrap();
        l.done(&a.lane, 1);
        assert!(!l.has_ready());
        assert_eq!(l.held(), 0);
        assert!(l.lanes.is_empty());
    }
}
