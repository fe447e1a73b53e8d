//! Local throttle: the same fingerprint within a window is one incident
//! with a count, so an error loop cannot flood the network. The server
//! stays the authority on deduplication; this only bounds traffic.
//!
//! The first occurrence goes out at once (latency matters for the first
//! report). Later ones within the window are counted; when the window
//! ends, the last of them goes out with `count` = how many were held, and
//! a new window starts. A window without occurrences ends the slot.
//!
//! Each held occurrence keeps a [`Hold`] on its log position: the agent
//! must not acknowledge the log past a counted-but-unsent occurrence, or
//! a crash would lose the count. Pure: the clock is an argument.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use faultline_tail::FileId;

/// A log position that must not be acknowledged yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hold {
    /// Stream.
    pub stream: FileId,
    /// Offset of the held record's start.
    pub offset: u64,
}

#[derive(Debug)]
struct Slot<T> {
    until: Instant,
    held: u64,
    last: Option<T>,
    holds: Vec<Hold>,
}

/// The answer to [`Throttle::offer`].
#[derive(Debug, PartialEq, Eq)]
pub enum Offer<T> {
    /// Send it now, with count 1.
    Send(T),
    /// Counted; sent later as part of an aggregate. `hold_kept`: the
    /// throttle keeps the occurrence's hold (the first of its stream in
    /// this window) and returns it with the aggregate; otherwise an
    /// earlier hold of the same stream already covers it.
    Held {
        /// Whether the hold was kept.
        hold_kept: bool,
    },
}

/// What came out of the throttle: an item and the occurrences it stands
/// for.
#[derive(Debug)]
pub struct Released<T> {
    /// The (last) occurrence.
    pub item: T,
    /// How many occurrences it stands for.
    pub count: u64,
    /// Holds that may now be released.
    pub holds: Vec<Hold>,
}

/// Per-fingerprint windows.
#[derive(Debug)]
pub struct Throttle<T> {
    window: Duration,
    slots: HashMap<String, Slot<T>>,
}

impl<T> Throttle<T> {
    /// A throttle with `window` (zero: everything passes).
    pub fn new(window: Duration) -> Self {
        Throttle {
            window,
            slots: HashMap::new(),
        }
    }

    /// Offers an occurrence: to be sent now (count 1), or held.
    pub fn offer(&mut self, fingerprint: &str, item: T, hold: Hold, now: Instant) -> Offer<T> {
        if self.window.is_zero() {
            return Offer::Send(item);
        }
        match self.slots.get_mut(fingerprint) {
            Some(s) if now < s.until => {
                s.held += 1;
                s.last = Some(item);
                let hold_kept = !s.holds.iter().any(|h| h.stream == hold.stream);
                if hold_kept {
                    s.holds.push(hold);
                }
                Offer::Held { hold_kept }
            }
            _ => {
                self.slots.insert(
                    fingerprint.to_owned(),
                    Slot {
                        until: now + self.window,
                        held: 0,
                        last: None,
                        holds: Vec::new(),
                    },
                );
                Offer::Send(item)
            }
        }
    }

    /// Items whose window ended.
    pub fn due(&mut self, now: Instant) -> Vec<Released<T>> {
        let mut out = Vec::new();
        let window = self.window;
        self.slots.retain(|_, s| {
            if now < s.until {
                return true;
            }
            match s.last.take() {
                Some(item) => {
                    out.push(Released {
                        item,
                        count: std::mem::take(&mut s.held),
                        holds: std::mem::take(&mut s.holds),
                    });
                    s.until = now + window;
                    true
                }
                None => false,
            }
        });
        out
    }

    /// Everything held, now (shutdown).
    pub fn drain(&mut self) -> Vec<Released<T>> {
        let mut out = Vec::new();
        for (_, mut s) in self.slots.drain() {
            if let Some(item) = s.last.take() {
                out.push(Released {
                    item,
                    count: s.held,
                    holds: s.holds,
                });
            }
        }
        out
    }

    /// When the next window ends, if one holds something.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .values()
            .filter(|s| s.last.is_some())
            .map(|s| s.until)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(o: u64) -> Hold {
        Hold {
            stream: "00000000000000aa".parse().unwrap(),
            offset: o,
        }
    }

    #[test]
    fn flood_becomes_one_plus_one_with_count() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(60));
        assert_eq!(t.offer("fp", 0, hold(0), t0), Offer::Send(0));
        for i in 1..=99u64 {
            assert_eq!(
                t.offer("fp", i, hold(i * 10), t0 + Duration::from_millis(i)),
                Offer::Held { hold_kept: i == 1 }
            );
        }
        // Another fingerprint is independent.
        assert_eq!(t.offer("other", 7, hold(5), t0), Offer::Send(7));
        assert!(t.due(t0 + Duration::from_secs(59)).is_empty());
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(60)));
        let r = t.due(t0 + Duration::from_secs(60));
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].item, r[0].count), (99, 99));
        assert_eq!(r[0].holds, [hold(10)], "one hold per stream, the earliest");
        // The loop goes on: still aggregated per window.
        let t1 = t0 + Duration::from_secs(61);
        assert_eq!(
            t.offer("fp", 100, hold(1000), t1),
            Offer::Held { hold_kept: true }
        );
        let r = t.due(t0 + Duration::from_secs(120));
        assert_eq!((r[0].item, r[0].count), (100, 1));
        // A quiet window ends the slot; the next occurrence is sent at once.
        assert!(t.due(t0 + Duration::from_secs(200)).is_empty());
        assert_eq!(
            t.offer("fp", 5, hold(2000), t0 + Duration::from_secs(201)),
            Offer::Send(5)
        );
    }

    #[test]
    fn zero_window_passes_everything_and_drain_flushes() {
        let now = Instant::now();
        let mut t = Throttle::new(Duration::ZERO);
        assert_eq!(t.offer("fp", 1, hold(0), now), Offer::Send(1));
        assert_eq!(t.offer("fp", 2, hold(1), now), Offer::Send(2));
        let mut t = Throttle::new(Duration::from_secs(5));
        t.offer("fp", 1, hold(0), now);
        t.offer("fp", 2, hold(1), now);
        t.offer("fp", 3, hold(2), now);
        let d = t.drain();
        assert_eq!((d[0].item, d[0].count), (3, 2));
        assert!(t.next_deadline().is_none());
    }
}
