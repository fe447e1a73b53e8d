//! Build cost, size and lookup time of the text index.
//!
//! `cargo bench -p faultline-textindex --bench index` (plain std::time; set
//! `TEXTINDEX_ROWS` to change the 10,000,000-row corpus).

use std::hint::black_box;
use std::time::{Duration, Instant};

use faultline_textindex::{
    BLOCK_ROWS, BlockBuilder, EncodedBlock, block_candidates, bloom_may_contain, query_hashes,
};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn ip(&mut self) -> String {
        format!(
            "10.{}.{}.{}",
            self.below(256),
            self.below(256),
            self.below(256)
        )
    }
    fn hex(&mut self, n: usize) -> String {
        let mut s = format!("{:016x}{:016x}", self.next(), self.next());
        s.truncate(n);
        s
    }
}

fn synthetic(r: &mut Rng) -> String {
    const COMPONENTS: [&str; 6] = [
        "http.server",
        "db.pool",
        "auth.session",
        "billing.payments",
        "ingest.worker",
        "cache.redis",
    ];
    let prefix = format!(
        "[{} pid={} thread=worker-{}] ",
        COMPONENTS[r.below(6) as usize],
        1000 + r.below(30000),
        r.below(32)
    );
    prefix
        + &match r.below(8) {
            0 => format!(
                "GET /api/v1/users/{}/orders?page={} 200 {}ms client={} request_id={} user_agent=Mozilla/5.0",
                r.below(1_000_000),
                r.below(50),
                r.below(900),
                r.ip(),
                r.hex(32)
            ),
            1 => format!(
                "Connection refused to upstream {}:{} after {} retries (pool=db-primary, timeout={}ms) trace={}",
                r.ip(),
                1024 + r.below(60000),
                r.below(5),
                r.below(5000),
                r.hex(16)
            ),
            2 => format!(
                "User {} logged in from {} session={} method=password mfa=true region=eu-west-{}",
                r.below(10_000_000),
                r.ip(),
                r.hex(32),
                r.below(3)
            ),
            3 => format!(
                "ERROR payment failed order_id={} amount={}.{:02} currency=EUR code=card_declined span={} attempt={}",
                r.below(100_000_000),
                r.below(1000),
                r.below(100),
                r.hex(16),
                r.below(4)
            ),
            4 => format!(
                "Slow query took {}ms: SELECT * FROM orders WHERE customer_id = {} AND status = 'pending' LIMIT {}",
                r.below(10_000),
                r.below(5_000_000),
                r.below(500)
            ),
            5 => format!(
                "worker-{} processed batch {} with {} items in {}ms queue=ingest-{} lag={}ms host=node-{}.cluster.local",
                r.below(64),
                r.below(1 << 40),
                r.below(1000),
                r.below(2000),
                r.below(8),
                r.below(500),
                r.below(32)
            ),
            6 => format!(
                "Cache miss for key session:{} ttl={}s evicted={} hit_ratio=0.{} shard={} timeout not reached",
                r.hex(32),
                r.below(3600),
                r.below(100),
                r.below(100),
                r.below(16)
            ),
            _ => format!(
                "java.net.SocketTimeoutException: Read timed out at com.example.http.Client.execute(Client.java:{}) request {}",
                r.below(900),
                r.hex(16)
            ),
        }
}

/// `Content` column of every `/work/shared/loghub/*/*_structured_corrected.csv`.
fn loghub() -> Vec<String> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir("/work/shared/loghub") else {
        return out;
    };
    for d in dirs.flatten() {
        let Ok(files) = std::fs::read_dir(d.path()) else {
            continue;
        };
        for f in files.flatten() {
            let p = f.path();
            if !p.to_string_lossy().ends_with("_structured_corrected.csv") {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(&p) {
                let records = parse_csv(&text);
                let Some(col) = records
                    .first()
                    .and_then(|h| h.iter().position(|c| c == "Content"))
                else {
                    continue;
                };
                out.extend(
                    records
                        .into_iter()
                        .skip(1)
                        .filter_map(|mut r| (col < r.len()).then(|| std::mem::take(&mut r[col]))),
                );
            }
        }
    }
    out
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut rec = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => rec.push(std::mem::take(&mut field)),
            (false, '\n') => {
                rec.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut rec));
            }
            (false, '\r') => {}
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !rec.is_empty() {
        rec.push(field);
        records.push(rec);
    }
    records
}

struct Built {
    blocks: Vec<EncodedBlock>,
    secs: f64,
    rows: usize,
    text_bytes: usize,
}

impl Built {
    fn report(&self, name: &str) {
        let bloom: usize = self.blocks.iter().map(|b| b.bloom.len()).sum();
        let post: usize = self.blocks.iter().map(|b| b.postings.len()).sum();
        let n = self.rows as f64;
        println!(
            "{name}: {} rows, {} blocks, avg message {:.0} B\n  build {:.0} ns/entry ({:.0} k entries/s on one core)\n  size {:.1} B/entry (bloom {:.1} + postings {:.1})",
            self.rows,
            self.blocks.len(),
            self.text_bytes as f64 / n,
            self.secs * 1e9 / n,
            n / self.secs / 1e3,
            (bloom + post) as f64 / n,
            bloom as f64 / n,
            post as f64 / n,
        );
    }
}

/// Indexes `rows` rows taken cyclically from `pool`; `inject(i)` may append
/// extra text to row `i`. Only `add` + `finish` are timed.
fn build(pool: &[String], rows: usize, inject: impl Fn(usize) -> Option<&'static str>) -> Built {
    let mut b = BlockBuilder::new();
    let mut blocks = Vec::new();
    let mut t = Duration::ZERO;
    let mut text_bytes = 0;
    let mut extra = String::new();
    let chunk = 4096;
    let mut i = 0;
    while i < rows {
        let end = (i + chunk).min(rows);
        // Prepare texts outside the timed section.
        let texts: Vec<&str> = (i..end)
            .map(|j| {
                let m = pool[j % pool.len()].as_str();
                if let Some(x) = inject(j) {
                    extra = format!("{m} {x}");
                    Box::leak(std::mem::take(&mut extra).into_boxed_str()) as &str
                } else {
                    m
                }
            })
            .collect();
        text_bytes += texts.iter().map(|t| t.len()).sum::<usize>();
        let start = Instant::now();
        for (k, text) in texts.iter().enumerate() {
            b.add((i + k) as i64 + 1, text).unwrap();
            if b.len() == BLOCK_ROWS {
                blocks.extend(b.finish());
            }
        }
        t += start.elapsed();
        i = end;
    }
    let start = Instant::now();
    blocks.extend(b.finish());
    t += start.elapsed();
    Built {
        blocks,
        secs: t.as_secs_f64(),
        rows,
        text_bytes,
    }
}

fn time_query(blocks: &[EncodedBlock], q: &str, iters: usize) -> (Duration, usize, usize) {
    let hashes = query_hashes(q);
    let mut times = Vec::new();
    let (mut hits, mut probed) = (0, 0);
    for _ in 0..iters {
        let start = Instant::now();
        hits = 0;
        probed = 0;
        for blk in blocks {
            let c = block_candidates(&blk.bloom, &blk.postings, &hashes).unwrap();
            probed += usize::from(hashes.iter().all(|&h| bloom_may_contain(&blk.bloom, h)));
            hits += black_box(c).len();
        }
        times.push(start.elapsed());
    }
    times.sort();
    (times[times.len() / 2], hits, probed)
}

fn main() {
    let rows: usize = std::env::var("TEXTINDEX_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let pool: Vec<String> = (0..200_000).map(|_| synthetic(&mut r)).collect();

    let hub = loghub();
    if !hub.is_empty() {
        let n = hub.len().max(BLOCK_ROWS * 4);
        build(&hub, n, |_| None).report(&format!(
            "loghub Content ({} distinct lines, cycled)",
            hub.len()
        ));
    }

    // A selective token in 12 rows spread over the corpus.
    let step = rows / 12;
    let built = build(&pool, rows, |i| {
        (i % step == step / 2).then_some("txn4f2a9bd1c7")
    });
    built.report("synthetic");

    let blocks = &built.blocks;
    for q in [
        "txn4f2a9bd1c7",
        "txn4f2a9bd1c7 failed",
        "nosuchtoken42",
        "card_declined 4",
        "timeout",
    ] {
        let (t, hits, probed) = time_query(blocks, q, if q == "timeout" { 3 } else { 21 });
        println!(
            "  query {q:?}: {:.3} ms median over {} blocks ({} pass the bloom, {} candidate rows)",
            t.as_secs_f64() * 1e3,
            blocks.len(),
            probed,
            hits
        );
    }
}
