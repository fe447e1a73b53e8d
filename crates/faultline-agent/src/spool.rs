//! The durable on-disk queue between detection and delivery.
//!
//! One file per item, `<seq>.<kind>.json` (seq: 20 digits, so names sort
//! in order), written tmp → fsync → rename → fsync of the directory
//! (`faultline_tail::write_atomic`): a crash leaves an item whole or
//! absent, never torn. Leftover `*.tmp` files are removed at open.
//!
//! Bounded: when an item does not fit in `max_bytes`, the oldest items are
//! deleted (never the one being sent, which may exceed the cap by its own
//! size until it is delivered) and **counted** by kind in `dropped.json` (written atomically),
//! so the loss is reported to the server later (the sender puts the
//! incident count in the next incident's `dropped_before` and posts a warn
//! log entry). The item being sent is never the one dropped.
//!
//! Items that the server refused for good are moved to the dead-letter
//! directory (at most [`DEAD_LETTER_KEEP`] kept, oldest removed).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Dead-letter files kept.
pub const DEAD_LETTER_KEEP: usize = 1000;

/// Spool failures.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// File system error.
    #[error("spool {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// An item larger than the whole spool.
    #[error("item of {size} bytes exceeds the spool size {max}")]
    TooLarge {
        /// Item size.
        size: u64,
        /// Spool cap.
        max: u64,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One incident for `POST /api/v1/incidents`.
    Incident,
    /// A batch of `n` log entries for `POST /api/v1/logs`.
    Lines(u32),
}

impl Kind {
    fn tag(self) -> String {
        match self {
            Kind::Incident => "incident".into(),
            Kind::Lines(n) => format!("lines-{n}"),
        }
    }

    fn from_tag(s: &str) -> Option<Kind> {
        if s == "incident" {
            return Some(Kind::Incident);
        }
        s.strip_prefix("lines-")?.parse().ok().map(Kind::Lines)
    }
}

/// Counts of items deleted because the spool was full and not reported
/// to the server yet.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// Incidents.
    pub incidents: u64,
    /// Log lines (of shipped batches).
    pub lines: u64,
}

impl Dropped {
    /// Nothing dropped.
    pub fn is_empty(&self) -> bool {
        self.incidents == 0 && self.lines == 0
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct DroppedFile {
    version: u32,
    #[serde(flatten)]
    dropped: Dropped,
}

/// The spool directory.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    dead: PathBuf,
    max_bytes: u64,
    items: BTreeMap<u64, (Kind, u64)>,
    total: u64,
    next_seq: u64,
    dropped: Dropped,
    in_flight: Option<u64>,
}

impl Spool {
    /// Opens (creating) `dir`; dead letters go to `dead_dir`.
    pub fn open(dir: &Path, dead_dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut items = BTreeMap::new();
        let mut total = 0;
        for e in fs::read_dir(dir).map_err(io_err(dir))? {
            let e = e.map_err(io_err(dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(e.path());
                continue;
            }
            let Some((seq, kind)) = parse_name(&name) else {
                continue;
            };
            let size = e.metadata().map_err(io_err(&e.path()))?.len();
            items.insert(seq, (kind, size));
            total += size;
        }
        let next_seq = items.keys().next_back().map_or(1, |s| s + 1);
        let dropped = match fs::read(dir.join("dropped.json")) {
            Ok(b) => serde_json::from_slice::<DroppedFile>(&b)
                .map(|f| f.dropped)
                .unwrap_or_default(),
            Err(_) => Dropped::default(),
        };
        Ok(Spool {
            dir: dir.to_path_buf(),
            dead: dead_dir.to_path_buf(),
            max_bytes,
            items,
            total,
            next_seq,
            dropped,
            in_flight: None,
        })
    }

    fn path(&self, seq: u64, kind: Kind) -> PathBuf {
        self.dir.join(format!("{seq:020}.{}.json", kind.tag()))
    }

    /// Adds an item durably (on disk when this returns `Ok`). Drops the
    /// oldest items when it does not fit.
    pub fn push(&mut self, kind: Kind, bytes: &[u8]) -> Result<u64, SpoolError> {
        let size = bytes.len() as u64;
        if size > self.max_bytes {
            return Err(SpoolError::TooLarge {
                size,
                max: self.max_bytes,
            });
        }
        let mut dropped_now = Dropped::default();
        while self.total + size > self.max_bytes {
            let victim = self
                .items
                .iter()
                .find(|(s, _)| Some(**s) != self.in_flight)
                .map(|(s, k)| (*s, *k));
            let Some((seq, (k, sz))) = victim else { break };
            let p = self.path(seq, k);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&p)(e)),
            }
            self.items.remove(&seq);
            self.total -= sz;
            match k {
                Kind::Incident => dropped_now.incidents += 1,
                Kind::Lines(n) => dropped_now.lines += u64::from(n),
            }
        }
        if !dropped_now.is_empty() {
            tracing::warn!(
                incidents = dropped_now.incidents,
                lines = dropped_now.lines,
                "spool full: oldest items dropped"
            );
            self.dropped.incidents += dropped_now.incidents;
            self.dropped.lines += dropped_now.lines;
            self.save_dropped()?;
        }
        let seq = self.next_seq;
        let p = self.path(seq, kind);
        faultline_tail::write_atomic(&p, bytes).map_err(|e| SpoolError::Io {
            path: p.clone(),
            source: io::Error::other(e.to_string()),
        })?;
        self.next_seq += 1;
        self.items.insert(seq, (kind, size));
        self.total += size;
        Ok(seq)
    }

    /// The oldest item, marked in flight (never dropped while sent).
    pub fn take_oldest(&mut self) -> Result<Option<(u64, Kind, Vec<u8>)>, SpoolError> {
        while let Some((&seq, &(kind, _))) = self.items.iter().next() {
            let p = self.path(seq, kind);
            match fs::read(&p) {
                Ok(b) => {
                    self.in_flight = Some(seq);
                    return Ok(Some((seq, kind, b)));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.forget(seq);
                }
                Err(e) => return Err(io_err(&p)(e)),
            }
        }
        Ok(None)
    }

    fn forget(&mut self, seq: u64) {
        if let Some((_, sz)) = self.items.remove(&seq) {
            self.total -= sz;
        }
        if self.in_flight == Some(seq) {
            self.in_flight = None;
        }
    }

    /// Removes a delivered item.
    pub fn remove(&mut self, seq: u64) -> Result<(), SpoolError> {
        if let Some(&(kind, _)) = self.items.get(&seq) {
            let p = self.path(seq, kind);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&p)(e)),
            }
        }
        self.forget(seq);
        Ok(())
    }

    /// The item was not sent (retry later): no longer in flight.
    pub fn release(&mut self) {
        self.in_flight = None;
    }

    /// Moves a refused item to the dead-letter directory with the reason.
    pub fn dead_letter(&mut self, seq: u64, reason: &str) -> Result<PathBuf, SpoolError> {
        let Some(&(kind, _)) = self.items.get(&seq) else {
            return Err(SpoolError::Io {
                path: self.path(seq, Kind::Incident),
                source: io::Error::from(io::ErrorKind::NotFound),
            });
        };
        fs::create_dir_all(&self.dead).map_err(io_err(&self.dead))?;
        let from = self.path(seq, kind);
        let to = self
            .dead
            .join(from.file_name().expect("spool items have names"));
        fs::rename(&from, &to).map_err(io_err(&from))?;
        let _ = faultline_tail::write_atomic(&to.with_extension("reason.txt"), reason.as_bytes());
        self.forget(seq);
        self.trim_dead();
        Ok(to)
    }

    fn trim_dead(&self) {
        let Ok(rd) = fs::read_dir(&self.dead) else {
            return;
        };
        let mut names: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        if names.len() <= DEAD_LETTER_KEEP {
            return;
        }
        names.sort();
        for p in &names[..names.len() - DEAD_LETTER_KEEP] {
            let _ = fs::remove_file(p);
            let _ = fs::remove_file(p.with_extension("reason.txt"));
        }
    }

    /// Drops not reported yet.
    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    /// Marks `reported` as told to the server.
    pub fn reported(&mut self, reported: Dropped) -> Result<(), SpoolError> {
        self.dropped.incidents = self.dropped.incidents.saturating_sub(reported.incidents);
        self.dropped.lines = self.dropped.lines.saturating_sub(reported.lines);
        self.save_dropped()
    }

    fn save_dropped(&self) -> Result<(), SpoolError> {
        let p = self.dir.join("dropped.json");
        let body = serde_json::to_vec(&DroppedFile {
            version: 1,
            dropped: self.dropped,
        })
        .expect("plain struct serializes");
        faultline_tail::write_atomic(&p, &body).map_err(|e| SpoolError::Io {
            path: p.clone(),
            source: io::Error::other(e.to_string()),
        })
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.total
    }
}

fn parse_name(name: &str) -> Option<(u64, Kind)> {
    let stem = name.strip_suffix(".json")?;
    let (seq, tag) = stem.split_once('.')?;
    if seq.len() != 20 {
        return None;
    }
    Some((seq.parse().ok()?, Kind::from_tag(tag)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, max: u64) -> Spool {
        Spool::open(&dir.join("spool"), &dir.join("dead"), max).unwrap()
    }

    #[test]
    fn fifo_and_survives_reopen() {
        let d = tempfile::tempdir().unwrap();
        let mut s = open(d.path(), 1 << 20);
        s.push(Kind::Incident, b"one").unwrap();
        s.push(Kind::Lines(3), b"two").unwrap();
        // A torn temporary file from a crash is ignored and cleaned.
        fs::write(
            d.path()
                .join("spool/00000000000000000009.incident.json.tmp"),
            b"x",
        )
        .unwrap();
        drop(s);
        let mut s = open(d.path(), 1 << 20);
        assert_eq!(s.len(), 2);
        assert!(
            !d.path()
                .join("spool/00000000000000000009.incident.json.tmp")
                .exists()
        );
        let (seq, kind, body) = s.take_oldest().unwrap().unwrap();
        assert_eq!((kind, body.as_slice()), (Kind::Incident, &b"one"[..]));
        s.remove(seq).unwrap();
        let (seq2, kind, body) = s.take_oldest().unwrap().unwrap();
        assert_eq!((kind, body.as_slice()), (Kind::Lines(3), &b"two"[..]));
        assert!(seq2 > seq);
        // New items continue the sequence after a reopen.
        s.release();
        drop(s);
        let mut s = open(d.path(), 1 << 20);
        let seq3 = s.push(Kind::Incident, b"three").unwrap();
        assert!(seq3 > seq2);
    }

    #[test]
    fn full_spool_drops_oldest_and_counts() {
        let d = tempfile::tempdir().unwrap();
        let mut s = open(d.path(), 100);
        let item = [b'x'; 30];
        for _ in 0..3 {
            s.push(Kind::Incident, &item).unwrap();
        }
        s.push(Kind::Lines(7), &item).unwrap(); // 120 > 100: the first goes
        assert_eq!(s.len(), 3);
        assert!(s.bytes() <= 100);
        assert_eq!(
            s.dropped(),
            Dropped {
                incidents: 1,
                lines: 0
            }
        );
        // The item in flight is spared; the next oldest goes.
        let (inflight, _, _) = s.take_oldest().unwrap().unwrap();
        s.push(Kind::Incident, &item).unwrap();
        s.push(Kind::Incident, &item).unwrap();
        assert!(s.items.contains_key(&inflight));
        assert_eq!(
            s.dropped(),
            Dropped {
                incidents: 2,
                lines: 7
            }
        );
        // Counts survive a restart until reported.
        drop(s);
        let mut s = open(d.path(), 100);
        assert_eq!(
            s.dropped(),
            Dropped {
                incidents: 2,
                lines: 7
            }
        );
        s.reported(Dropped {
            incidents: 2,
            lines: 0,
        })
        .unwrap();
        assert_eq!(
            open(d.path(), 100).dropped(),
            Dropped {
                incidents: 0,
                lines: 7
            }
        );
        assert!(matches!(
            s.push(Kind::Incident, &[0; 101]),
            Err(SpoolError::TooLarge { .. })
        ));
    }

    #[test]
    fn dead_letters_are_kept_apart() {
        let d = tempfile::tempdir().unwrap();
        let mut s = open(d.path(), 1 << 20);
        let seq = s.push(Kind::Incident, b"{}").unwrap();
        let to = s.dead_letter(seq, "401 unauthorized").unwrap();
        assert!(to.exists());
        assert_eq!(
            fs::read_to_string(to.with_extension("reason.txt")).unwrap(),
            "401 unauthorized"
        );
        assert!(s.is_empty());
        assert!(s.take_oldest().unwrap().is_none());
    }

    mod model {
        use super::*;
        use proptest::prelude::*;
        use std::collections::VecDeque;

        #[derive(Debug, Clone)]
        enum Op {
            Push(bool, usize),
            Deliver,
            Fail,
            Reopen,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (any::<bool>(), 1usize..90).prop_map(|(inc, n)| Op::Push(inc, n)),
                2 => Just(Op::Deliver),
                1 => Just(Op::Fail),
                1 => Just(Op::Reopen),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(32))]

            /// Against a model queue: FIFO, never over the cap, the item
            /// in flight is never dropped, and every item pushed is
            /// delivered, waiting, or counted as dropped (across reopens).
            #[test]
            fn spool_matches_a_bounded_fifo(ops in proptest::collection::vec(op(), 1..60)) {
                let d = tempfile::tempdir().unwrap();
                let cap = 100u64;
                let mut s = Spool::open(&d.path().join("s"), &d.path().join("d"), cap).unwrap();
                // Model: (id, kind, size) in order.
                let mut model: VecDeque<(u32, Kind, u64)> = VecDeque::new();
                let mut in_flight: Option<u64> = None;
                let (mut pushed_inc, mut pushed_lines) = (0u64, 0u64);
                let (mut delivered_inc, mut delivered_lines) = (0u64, 0u64);
                let mut next_id = 0u32;
                for op in ops {
                    match op {
                        Op::Push(inc, n) => {
                            let kind = if inc { Kind::Incident } else { Kind::Lines(n as u32) };
                            let body = format!("{next_id:08}").repeat(n.div_ceil(8).max(1));
                            let size = body.len() as u64;
                            if size > cap {
                                continue;
                            }
                            s.push(kind, body.as_bytes()).unwrap();
                            match kind {
                                Kind::Incident => pushed_inc += 1,
                                Kind::Lines(n) => pushed_lines += u64::from(n),
                            }
                            model.push_back((next_id, kind, size));
                            next_id += 1;
                            // The model drops the oldest older items (never the
                            // one in flight) until it fits, or none is left.
                            let skip = usize::from(in_flight.is_some());
                            while model.iter().map(|m| m.2).sum::<u64>() > cap
                                && model.len() > skip + 1
                            {
                                model.remove(skip);
                            }
                        }
                        Op::Deliver | Op::Fail => {
                            let Some((seq, kind, body)) = s.take_oldest().unwrap() else {
                                prop_assert!(model.is_empty());
                                continue;
                            };
                            let head = model.front().copied().unwrap();
                            let id: u32 = std::str::from_utf8(&body[..8]).unwrap().parse().unwrap();
                            prop_assert_eq!((id, kind), (head.0, head.1), "FIFO");
                            in_flight = Some(seq);
                            if matches!(op, Op::Deliver) {
                                s.remove(seq).unwrap();
                                model.pop_front();
                                in_flight = None;
                                match kind {
                                    Kind::Incident => delivered_inc += 1,
                                    Kind::Lines(n) => delivered_lines += u64::from(n),
                                }
                            }
                        }
                        Op::Reopen => {
                            s = Spool::open(&d.path().join("s"), &d.path().join("d"), cap).unwrap();
                            in_flight = None;
                        }
                    }
                    // Over the cap only by the oldest item (the one that was
                    // in flight when a newer one came).
                    let oldest = model.front().map_or(0, |m| m.2);
                    prop_assert!(s.bytes() <= cap + oldest, "{} > {cap} + {oldest}", s.bytes());
                    prop_assert_eq!(s.len(), model.len());
                    let waiting_inc = model.iter().filter(|m| m.1 == Kind::Incident).count() as u64;
                    let waiting_lines: u64 = model
                        .iter()
                        .map(|m| match m.1 { Kind::Lines(n) => u64::from(n), Kind::Incident => 0 })
                        .sum();
                    let dr = s.dropped();
                    prop_assert_eq!(delivered_inc + waiting_inc + dr.incidents, pushed_inc);
                    prop_assert_eq!(delivered_lines + waiting_lines + dr.lines, pushed_lines);
                }
            }
        }
    }
}
