//! Online template mining over masked messages.
//!
//! Messages are bucketed by (token count, first token). Inside a bucket each
//! *template* is a token sequence where some positions are wildcards. A new
//! message joins the most specific template it matches. When it matches
//! none, the miner looks for a *family*: the templates that agree with the
//! message everywhere except at a few positions `D`. If, at every position
//! of `D`, the family shows at least `min_distinct` different values, those
//! positions are variables (`user alice/bob/carol/dave logged in`) and the
//! family merges into its oldest member, whose id survives. Otherwise the
//! message starts a new template: two or three different words at one place
//! (`stored as bytes` / `stored as values`, `torus x+/y+/z+`) are more often
//! distinct events than values. `UPPER_CASE` words are enum values (states,
//! event types) and never count as variables.
//!
//! Everything is deterministic for a given history: buckets keep creation
//! order, ties go to the oldest template, and hashing is unseeded.

use std::collections::VecDeque;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hash::{FxHashMap, combine, hash_bytes};
use crate::mask::{F_ENUM, F_MERGEABLE, Masker, Tok};

/// The id of a group (a template or a fingerprint): 64 bits, printed as 16
/// lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub u64);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for GroupId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<GroupId, Self::Err> {
        u64::from_str_radix(s, 16).map(GroupId)
    }
}

impl Serialize for GroupId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GroupId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<GroupId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Two groups became one: later events of `from` belong to `into`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merge {
    pub from: GroupId,
    pub into: GroupId,
}

/// Tuning of the miner. One configuration for all logs: the defaults are
/// what the server and `faultline group` use.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinerConfig {
    /// Most templates kept; the least recently seen are evicted beyond it.
    pub max_templates: usize,
    /// Templates kept per (length, first token) bucket.
    pub max_bucket: usize,
    /// Different values a position must show before it becomes a variable.
    pub min_distinct: usize,
    /// Merge records (old id → surviving id) kept for `resolve`.
    pub max_aliases: usize,
}

impl Default for MinerConfig {
    fn default() -> MinerConfig {
        MinerConfig {
            max_templates: 50_000,
            max_bucket: 512,
            min_distinct: 4,
            max_aliases: 100_000,
        }
    }
}

const WILD: u64 = 0;
const WILD_TEXT: &str = "<*>";

#[derive(Debug, Clone)]
struct Cluster {
    id: GroupId,
    seq: u64,
    bucket: u64,
    hashes: Vec<u64>,
    flags: Vec<u8>,
    display: Vec<Box<str>>,
    template: String,
    count: u64,
    last_seen: u64,
}

impl Cluster {
    fn rebuild_template(&mut self) {
        self.template.clear();
        for (i, d) in self.display.iter().enumerate() {
            if i > 0 {
                self.template.push(' ');
            }
            self.template.push_str(d);
        }
    }

    fn wildcards(&self) -> usize {
        self.hashes.iter().filter(|&&h| h == WILD).count()
    }

    fn matches(&self, toks: &[Tok]) -> bool {
        self.hashes
            .iter()
            .zip(toks)
            .all(|(&h, t)| h == WILD || h == t.hash)
    }

    fn heap_bytes(&self) -> usize {
        self.hashes.capacity() * 8
            + self.flags.capacity()
            + self.display.capacity() * 16
            + self.display.iter().map(|d| d.len()).sum::<usize>()
            + self.template.capacity()
    }
}

#[inline]
fn tok_hash(t: &Tok) -> u64 {
    if t.hash == WILD { 1 } else { t.hash }
}

/// The serialisable state of a [`Miner`]; see [`crate::GrouperState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateState {
    pub id: GroupId,
    /// Creation order; the oldest template of a family survives a merge.
    pub seq: u64,
    /// Template tokens; `null` is a mined wildcard.
    pub tokens: Vec<Option<String>>,
    pub count: u64,
    pub last_seen: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Miner {
    cfg: MinerConfig,
    slots: Vec<Option<Cluster>>,
    free: Vec<u32>,
    live: usize,
    by_id: FxHashMap<u64, u32>,
    buckets: FxHashMap<u64, Vec<u32>>,
    exact: FxHashMap<u64, (u32, u64)>,
    aliases: FxHashMap<u64, u64>,
    alias_order: VecDeque<u64>,
    merges: Vec<Merge>,
    tick: u64,
    next_seq: u64,
    // Scratch buffers reused by the slow path.
    diff: Vec<usize>,
    family: Vec<u32>,
    values: Vec<u64>,
}

impl Miner {
    pub(crate) fn new(cfg: MinerConfig) -> Miner {
        Miner {
            cfg,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            by_id: FxHashMap::default(),
            buckets: FxHashMap::default(),
            exact: FxHashMap::default(),
            aliases: FxHashMap::default(),
            alias_order: VecDeque::new(),
            merges: Vec::new(),
            tick: 0,
            next_seq: 0,
            diff: Vec::new(),
            family: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Drops the exact-key cache and the scratch buffers (rebuilt as
    /// messages come); the templates stay, so grouping is unchanged.
    pub(crate) fn release_caches(&mut self) {
        self.exact = FxHashMap::default();
        self.diff = Vec::new();
        self.family = Vec::new();
        self.values = Vec::new();
    }

    /// Changes the template cap; beyond the new one the least recently
    /// seen go now.
    pub(crate) fn set_max_templates(&mut self, max: usize) {
        self.cfg.max_templates = max.max(1);
        if self.live > self.cfg.max_templates {
            // In one pass, down to where `evict` leaves it (a tenth below
            // the cap); no slot has the index `u32::MAX`: none is spared.
            let cap = self.cfg.max_templates;
            self.evict_n(self.live - cap + cap / 10, u32::MAX);
            self.compact();
        }
    }

    /// Moves the templates to the first slots, in creation order as an
    /// import does, and gives back what the indexes held for the others
    /// (after a big eviction; the exact-key cache starts empty).
    fn compact(&mut self) {
        let mut live: Vec<Cluster> = std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .collect();
        live.sort_by_key(|c| c.seq);
        self.slots = Vec::with_capacity(live.len());
        self.free = Vec::new();
        self.live = 0;
        self.by_id = FxHashMap::default();
        self.buckets = FxHashMap::default();
        self.exact = FxHashMap::default();
        for c in live {
            // Under the cap and within the bucket caps: nothing is evicted.
            self.insert(c);
        }
    }

    fn cluster(&self, slot: u32) -> &Cluster {
        self.slots[slot as usize]
            .as_ref()
            .expect("slot indices handed out point at live clusters")
    }

    fn cluster_mut(&mut self, slot: u32) -> &mut Cluster {
        self.slots[slot as usize]
            .as_mut()
            .expect("slot indices handed out point at live clusters")
    }

    /// Assigns the masked message to a template and returns (id, template).
    pub(crate) fn add(&mut self, m: &Masker) -> (GroupId, &str) {
        self.tick += 1;
        let key_hash = hash_bytes(m.key());
        let slot = match self.exact.get(&key_hash) {
            Some(&(slot, seq))
                if self
                    .slots
                    .get(slot as usize)
                    .and_then(|c| c.as_ref())
                    .is_some_and(|c| c.seq == seq) =>
            {
                slot
            }
            _ => {
                let slot = self.slow_path(m);
                if self.exact.len() >= self.cfg.max_templates.saturating_mul(8).max(1024) {
                    self.exact.clear();
                }
                let seq = self.cluster(slot).seq;
                self.exact.insert(key_hash, (slot, seq));
                slot
            }
        };
        let tick = self.tick;
        let c = self.cluster_mut(slot);
        c.count += 1;
        c.last_seen = tick;
        let c = self.cluster(slot);
        (c.id, &c.template)
    }

    fn bucket_key(toks: &[Tok]) -> u64 {
        let first = toks.first().map_or(0, tok_hash);
        combine(toks.len() as u64, first)
    }

    fn slow_path(&mut self, m: &Masker) -> u32 {
        let toks = m.toks();
        let bkey = Self::bucket_key(toks);
        if let Some(slot) = self.best_match(bkey, toks) {
            return slot;
        }
        if let Some(slot) = self.try_generalize(bkey, toks) {
            return slot;
        }
        self.create(bkey, m)
    }

    fn best_match(&self, bkey: u64, toks: &[Tok]) -> Option<u32> {
        let bucket = self.buckets.get(&bkey)?;
        let mut best: Option<(usize, u32)> = None;
        for &s in bucket {
            let c = self.cluster(s);
            if c.matches(toks) {
                let w = c.wildcards();
                if best.is_none_or(|(bw, _)| w < bw) {
                    best = Some((w, s));
                }
            }
        }
        best.map(|(_, s)| s)
    }

    fn try_generalize(&mut self, bkey: u64, toks: &[Tok]) -> Option<u32> {
        let n = toks.len();
        let max_diff = (n / 2).max(1);
        let k = self.cfg.min_distinct.max(2);
        let bucket = self.buckets.get(&bkey)?;
        let mut diff = std::mem::take(&mut self.diff);
        let mut family = std::mem::take(&mut self.family);
        let mut values = std::mem::take(&mut self.values);
        let mut result = None;
        'candidates: for &cs in bucket {
            let c = self.cluster(cs);
            diff.clear();
            for (p, (&h, t)) in c.hashes.iter().zip(toks).enumerate() {
                if h != WILD && h != tok_hash(t) {
                    if diff.len() == max_diff
                        || t.flags & F_MERGEABLE == 0
                        || c.flags[p] & F_MERGEABLE == 0
                    {
                        continue 'candidates;
                    }
                    diff.push(p);
                }
            }
            if diff.is_empty() {
                continue;
            }
            family.clear();
            for &fs in bucket {
                let f = self.cluster(fs);
                let agrees = f.hashes.iter().zip(toks).enumerate().all(|(p, (&h, t))| {
                    if diff.contains(&p) {
                        h == WILD || f.flags[p] & F_ENUM == 0
                    } else {
                        h == WILD || h == tok_hash(t)
                    }
                });
                if agrees {
                    family.push(fs);
                }
            }
            for &p in &diff {
                values.clear();
                values.push(tok_hash(&toks[p]));
                let mut enough = false;
                for &fs in &family {
                    let h = self.cluster(fs).hashes[p];
                    if h == WILD {
                        enough = true;
                        break;
                    }
                    if !values.contains(&h) {
                        values.push(h);
                        if values.len() >= k {
                            enough = true;
                            break;
                        }
                    }
                }
                if !enough {
                    continue 'candidates;
                }
            }
            result = Some(());
            break;
        }
        let out = result.map(|()| self.merge_family(&family, &diff, toks));
        self.diff = diff;
        self.family = family;
        self.values = values;
        out
    }

    /// Merges the family into its oldest member, with wildcards at `diff`
    /// and wherever a member already had one.
    fn merge_family(&mut self, family: &[u32], diff: &[usize], toks: &[Tok]) -> u32 {
        let survivor = *family
            .iter()
            .min_by_key(|&&s| self.cluster(s).seq)
            .expect("a family holds at least the candidate");
        let n = toks.len();
        let mut wild = vec![false; n];
        for &p in diff {
            wild[p] = true;
        }
        let mut count = 0;
        let mut last_seen = 0;
        for &s in family {
            let c = self.cluster(s);
            for (p, &h) in c.hashes.iter().enumerate() {
                if h == WILD {
                    wild[p] = true;
                }
            }
            count += c.count;
            last_seen = last_seen.max(c.last_seen);
        }
        let into = self.cluster(survivor).id;
        for &s in family {
            if s != survivor {
                let gone = self.remove(s);
                self.add_alias(gone.id, into);
                self.merges.push(Merge {
                    from: gone.id,
                    into,
                });
            }
        }
        let c = self.cluster_mut(survivor);
        for (p, w) in wild.into_iter().enumerate() {
            if w && c.hashes[p] != WILD {
                c.hashes[p] = WILD;
                c.flags[p] = F_MERGEABLE;
                c.display[p] = WILD_TEXT.into();
            }
        }
        c.count = count;
        c.last_seen = last_seen;
        c.rebuild_template();
        survivor
    }

    fn add_alias(&mut self, from: GroupId, into: GroupId) {
        if self.aliases.insert(from.0, into.0).is_none() {
            self.alias_order.push_back(from.0);
        }
        while self.aliases.len() > self.cfg.max_aliases {
            match self.alias_order.pop_front() {
                Some(old) => {
                    self.aliases.remove(&old);
                }
                None => break,
            }
        }
    }

    fn remove(&mut self, slot: u32) -> Cluster {
        let c = self.slots[slot as usize]
            .take()
            .expect("removing a live cluster");
        self.free.push(slot);
        self.live -= 1;
        self.by_id.remove(&c.id.0);
        if let Some(b) = self.buckets.get_mut(&c.bucket) {
            b.retain(|&s| s != slot);
            if b.is_empty() {
                self.buckets.remove(&c.bucket);
            }
        }
        c
    }

    fn create(&mut self, bkey: u64, m: &Masker) -> u32 {
        let toks = m.toks();
        let mut id = hash_bytes(m.key());
        while self.by_id.contains_key(&id) {
            id = combine(id, 1);
        }
        let mut c = Cluster {
            id: GroupId(id),
            seq: self.next_seq,
            bucket: bkey,
            hashes: toks.iter().map(tok_hash).collect(),
            flags: toks.iter().map(|t| t.flags).collect(),
            display: toks.iter().map(|t| m.tok_text(t).into()).collect(),
            template: String::new(),
            count: 0,
            last_seen: self.tick,
        };
        c.rebuild_template();
        self.next_seq += 1;
        self.insert(c)
    }

    fn insert(&mut self, c: Cluster) -> u32 {
        let bkey = c.bucket;
        let id = c.id.0;
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(c);
                s
            }
            None => {
                self.slots.push(Some(c));
                (self.slots.len() - 1) as u32
            }
        };
        self.live += 1;
        self.by_id.insert(id, slot);
        let bucket = self.buckets.entry(bkey).or_default();
        bucket.push(slot);
        if bucket.len() > self.cfg.max_bucket {
            let victim = *bucket
                .iter()
                .filter(|&&s| s != slot)
                .min_by_key(|&&s| {
                    let c = self.slots[s as usize]
                        .as_ref()
                        .expect("bucket slots are live");
                    (c.last_seen, c.seq)
                })
                .expect("an over-full bucket has other members");
            self.remove(victim);
        }
        if self.live > self.cfg.max_templates {
            self.evict(slot);
        }
        slot
    }

    /// Evicts the least recently seen tenth of the templates (never `keep`).
    fn evict(&mut self, keep: u32) {
        self.evict_n((self.cfg.max_templates / 10).max(1), keep);
    }

    /// Evicts the `n` least recently seen templates (never `keep`).
    fn evict_n(&mut self, n: usize, keep: u32) {
        let mut ages: Vec<(u64, u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(s, c)| c.as_ref().map(|c| (c.last_seen, c.seq, s as u32)))
            .filter(|&(_, _, s)| s != keep)
            .collect();
        let target = n.min(ages.len());
        if target == 0 {
            return;
        }
        ages.select_nth_unstable(target - 1);
        for &(_, _, s) in &ages[..target] {
            self.remove(s);
        }
    }

    /// Follows merge records to the id that is live now (or the last known).
    pub(crate) fn resolve(&self, id: GroupId) -> GroupId {
        let mut cur = id.0;
        for _ in 0..64 {
            if self.by_id.contains_key(&cur) {
                break;
            }
            match self.aliases.get(&cur) {
                Some(&next) => cur = next,
                None => break,
            }
        }
        GroupId(cur)
    }

    pub(crate) fn template(&self, id: GroupId) -> Option<&str> {
        let slot = *self.by_id.get(&self.resolve(id).0)?;
        Some(&self.cluster(slot).template)
    }

    pub(crate) fn take_merges(&mut self) -> Vec<Merge> {
        std::mem::take(&mut self.merges)
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Rough heap bytes held by templates and indexes.
    pub(crate) fn memory_estimate(&self) -> usize {
        let clusters: usize = self
            .slots
            .iter()
            .flatten()
            .map(|c| std::mem::size_of::<Cluster>() + c.heap_bytes())
            .sum();
        clusters
            + self.slots.capacity() * std::mem::size_of::<Option<Cluster>>()
            + self.by_id.capacity() * 16
            + self.exact.capacity() * 24
            + self.aliases.capacity() * 16
            + self.buckets.capacity() * 40
            + self
                .buckets
                .values()
                .map(|b| b.capacity() * 4)
                .sum::<usize>()
    }

    pub(crate) fn export(&self) -> (Vec<TemplateState>, Vec<Merge>, u64) {
        let mut templates: Vec<TemplateState> = self
            .slots
            .iter()
            .flatten()
            .map(|c| TemplateState {
                id: c.id,
                seq: c.seq,
                tokens: c
                    .hashes
                    .iter()
                    .zip(&c.display)
                    .map(|(&h, d)| (h != WILD).then(|| d.to_string()))
                    .collect(),
                count: c.count,
                last_seen: c.last_seen,
            })
            .collect();
        templates.sort_by_key(|t| t.seq);
        let aliases = self
            .alias_order
            .iter()
            .filter_map(|from| {
                self.aliases.get(from).map(|&into| Merge {
                    from: GroupId(*from),
                    into: GroupId(into),
                })
            })
            .collect();
        (templates, aliases, self.tick)
    }

    pub(crate) fn import(
        cfg: MinerConfig,
        templates: &[TemplateState],
        aliases: &[Merge],
        tick: u64,
    ) -> Miner {
        let mut miner = Miner::new(cfg);
        let mut masker = Masker::new();
        let mut sorted: Vec<&TemplateState> = templates.iter().collect();
        sorted.sort_by_key(|t| t.seq);
        for t in sorted {
            let mut hashes = Vec::with_capacity(t.tokens.len());
            let mut flags = Vec::with_capacity(t.tokens.len());
            let mut display: Vec<Box<str>> = Vec::with_capacity(t.tokens.len());
            for tok in &t.tokens {
                match tok {
                    None => {
                        hashes.push(WILD);
                        flags.push(F_MERGEABLE);
                        display.push(WILD_TEXT.into());
                    }
                    Some(text) => {
                        masker.run(text);
                        // A stored token is one masked token; if it is not
                        // (hand-edited state), hash it as it stands.
                        let (h, f) = match masker.toks() {
                            [one] => (tok_hash(one), one.flags),
                            _ => (hash_bytes(text.as_bytes()).max(1), F_MERGEABLE),
                        };
                        hashes.push(h);
                        flags.push(f);
                        display.push(text.as_str().into());
                    }
                }
            }
            let first = hashes.first().copied().unwrap_or(0);
            let mut c = Cluster {
                id: t.id,
                seq: t.seq,
                bucket: combine(hashes.len() as u64, first),
                hashes,
                flags,
                display,
                template: String::new(),
                count: t.count,
                last_seen: t.last_seen,
            };
            c.rebuild_template();
            miner.next_seq = miner.next_seq.max(t.seq + 1);
            if miner.by_id.contains_key(&t.id.0) {
                continue;
            }
            miner.insert(c);
        }
        for a in aliases {
            miner.add_alias(a.from, a.into);
        }
        miner.tick = tick.max(miner.tick);
        miner
    }
}
