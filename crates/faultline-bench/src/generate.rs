//! Realistic log entries: ~150-byte messages expanded from a few dozen
//! templates with random ids, numbers, addresses and paths; ten services,
//! five levels weighted like production logs, a couple of tags and
//! attributes. Deterministic for a given seed and cheap to produce, so the
//! load generator spends its CPU on HTTP rather than on making data.

use faultline_model::format_rfc3339_micros;
use std::fmt::Write as _;

/// Number of services (`svc0` … `svc9`), each with its own ingest token.
pub const SERVICES: usize = 10;

/// A small, fast, seedable generator (SplitMix64). Not for cryptography.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut rng = Rng(seed);
        rng.next_u64();
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The five levels the generator emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// A small integer for the SQLite baseline's `level` column.
    pub fn code(self) -> i64 {
        match self {
            Level::Trace => 1,
            Level::Debug => 2,
            Level::Info => 3,
            Level::Warn => 4,
            Level::Error => 5,
        }
    }

    /// Share of entries at this level, in percent (sums to 100).
    fn weight(self) -> u64 {
        match self {
            Level::Trace => 8,
            Level::Debug => 22,
            Level::Info => 58,
            Level::Warn => 8,
            Level::Error => 4,
        }
    }

    fn templates(self) -> &'static [&'static str] {
        match self {
            Level::Trace => TRACE,
            Level::Debug => DEBUG,
            Level::Info => INFO,
            Level::Warn => WARN,
            Level::Error => ERROR,
        }
    }

    fn random(rng: &mut Rng) -> Level {
        let mut roll = rng.below(100);
        for level in Level::ALL {
            if roll < level.weight() {
                return level;
            }
            roll -= level.weight();
        }
        Level::Info
    }
}

const TRACE: &[&str] = &[
    "enter handler {path} request_id={id} peer={ip}:{port} headers=12 content_length={n} keepalive=true version=HTTP/1.1",
    "cache lookup key=session:{uuid} shard={d} hit=false elapsed_us={n} backend=redis-{d} pool_idle=7",
    "span start name=db.query table={table} trace={id}{id} parent={id} sampled=true attempt=1 thread=worker-{d}",
    "decoded frame opcode=text len={n} from {ip}:{port} buffered={n} window={n} conn_id={id} compressed=false",
    "scheduler tick queue={table} ready={n} delayed={n} inflight={d} next_wakeup_ms={ms} node={host} epoch={n}",
];

const DEBUG: &[&str] = &[
    "SQL SELECT id, status, updated_at FROM {table} WHERE account_id = {n} AND deleted_at IS NULL LIMIT 50 took {ms}ms rows={d}",
    "resolved upstream {host}:{port} to {ip} via dns cache ttl={n}s for request {id} route={path}",
    "loaded config profile=production region=eu-west-{d} flags=cache,retry,compress version=2.{d}.{n} checksum={id}",
    "retry policy for {path}: attempt {d}/5 backoff={ms}ms jitter=0.2 last_status={code} request_id={id}",
    "session {uuid} refreshed for user {user} expires_in={n}s scopes=read,write client={ip}",
    "render job {n} frame {n} tile {d}/16 sampled in {ms}ms on {host} memory={n}MiB shader=pbr_v{d}",
    "publish check asset=/projects/{show}/shots/sh{n}/comp/v{d}{d}{d}.exr version={d} checksum={id} size={n}KiB",
];

const INFO: &[&str] = &[
    "GET {path} {code} {ms}ms bytes={n} client={ip} user_agent=Mozilla/5.0 request_id={id} region=eu-west-{d}",
    "POST {path} 201 in {ms}ms user={user} request_id={id} payload_bytes={n} client={ip} region=eu-west-{d}",
    "user {user} logged in from {ip} using password+totp session={uuid} device=desktop locale=en_US",
    "order {n} placed by customer {n} total={n}.{d}{d} EUR items={d} payment=card status=authorized request_id={id}",
    "worker {host} finished job {uuid} type=thumbnail in {ms}ms queue_wait={ms}ms retries=0 output={file}",
    "scheduled backup of database {table} completed: {n} rows, {n} MiB written to s3://backups/{table}/{n} in {ms}ms",
    "connection pool stats db=primary active={d} idle={d} waiting=0 max=32 acquired_total={n} timeouts_total={d} host={host}",
    "cache warmup finished: {n} keys loaded from {host} in {ms}ms, hit ratio 0.{n} after {d} passes, evicted={n}",
    "Maya 2024 scene opened by {user}: /projects/{show}/shots/sh{n}/anim/v{d}{d}.ma in {ms}ms with {n} references",
    "health check passed for {host} ({ip}) latency={ms}ms cpu={d}{d}% mem={n}MiB disk=0.{n} uptime={n}s build={id}",
    "message {uuid} consumed from topic logs.ingest partition {d} offset {n} lag={n} consumer=ingest-{d}",
    "file uploaded {file} size={n}KiB by {user} content_type=image/png checksum=sha256:{id}{id} storage=local",
];

const WARN: &[&str] = &[
    "slow query on {table} took {ms}ms (threshold 500ms): SELECT * FROM {table} WHERE created_at > now() - 1d rows={n}",
    "rate limit nearly reached for client {ip}: {n}/1000 requests in the current window, route={path} user={user}",
    "retrying request to {host}:{port}{path} after {code}: attempt {d} of 5, next in {ms}ms, request_id={id}",
    "disk usage on {host} at 8{d}% of /var/lib/data ({n} GiB free), compaction scheduled in {n}s, node_id={id}",
    "deprecated API version v1 called on {path} by client {ip} user_agent=legacy-sdk/{d}.{d} request_id={id}",
    "certificate for {host} expires in {d} days (serial {id}{id}), renewal job queued as {uuid}",
    "memory pressure on worker {host}: rss={n}MiB limit=2048MiB, shedding {d} low-priority jobs, gc_pause={ms}ms",
];

const ERROR: &[&str] = &[
    "unhandled exception in {path}: ValueError: invalid literal for int() with base 10: '{id}' request_id={id} user={user}",
    "failed to connect to database {table}@{ip}:5432 after {d} attempts: connection refused (os error 111) pool=primary",
    "payment provider returned {code} for order {n}: card_declined insufficient_funds customer={n} request_id={id}",
    "timeout after {ms}ms waiting for upstream {host}:{port}{path}; circuit breaker now open for 30s, failures={d}",
    "RuntimeError: cannot publish /projects/{show}/shots/sh{n}/comp/v{d}{d}.nk: permission denied for user {user} on {host}",
    "job {uuid} crashed with exit code 13{d} on {host} after {ms}ms: segmentation fault in libshader.so at 0x7f{id}",
    "kafka producer error: message too large ({n} bytes > 1048576) for topic events.{table}, dropping key={id}",
];

/// Context appended to every message (real log lines carry such details).
const SUFFIXES: &[&str] = &[
    " (pid {n}, thread worker-{d})",
    " [node {host} pid {n}]",
    " env=prod pid={n} tid={n}",
    " from {host} in {ms}ms",
    " (attempt {d}, shard {d}{d})",
];

const TABLES: &[&str] = &[
    "orders",
    "users",
    "sessions",
    "payments",
    "invoices",
    "assets",
    "shots",
    "render_jobs",
    "audit_log",
    "inventory",
];
const USERS: &[&str] = &[
    "alice", "bob", "carol", "dmitri", "eun-ji", "farid", "greta", "hiro", "ines", "jonas",
    "kenji", "lucia", "minho", "nadia",
];
const HOSTS: &[&str] = &[
    "web", "api", "worker", "render", "db", "cache", "edge", "batch",
];
const SHOWS: &[&str] = &[
    "aurora",
    "blackwater",
    "copperfield",
    "driftwood",
    "emberfall",
];
const ROUTES: &[&str] = &[
    "/api/v1/orders",
    "/api/v1/users",
    "/api/v2/payments",
    "/api/v1/assets",
    "/api/v1/shots",
    "/internal/jobs",
    "/api/v2/invoices",
    "/auth/session",
];
const CODES: &[u16] = &[
    200, 200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 409, 429, 500, 502, 503,
];
const REGIONS: &[&str] = &["eu-west-1", "eu-central-1", "us-east-1", "ap-northeast-2"];
/// Per service: its kind, used as the first tag.
const KINDS: &[&str] = &[
    "api", "web", "worker", "billing", "auth", "render", "publish", "search", "gateway", "cron",
];

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex(rng: &mut Rng, digits: usize, out: &mut String) {
    let mut v = rng.next_u64();
    for i in 0..digits {
        if i == 16 {
            v = rng.next_u64();
        }
        out.push(char::from(HEX[(v & 15) as usize]));
        v >>= 4;
    }
}

/// Expands one template's `{placeholders}` into `out`.
fn expand(template: &str, rng: &mut Rng, out: &mut String) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').expect("templates close every placeholder");
        let name = &after[..close];
        rest = &after[close + 1..];
        // Writing to a String cannot fail.
        let _ = match name {
            "id" => {
                hex(rng, 16, out);
                Ok(())
            }
            "uuid" => {
                for (i, len) in [8, 4, 4, 4, 12].into_iter().enumerate() {
                    if i > 0 {
                        out.push('-');
                    }
                    hex(rng, len, out);
                }
                Ok(())
            }
            "ip" => write!(
                out,
                "10.{}.{}.{}",
                rng.below(256),
                rng.below(256),
                1 + rng.below(254)
            ),
            "port" => write!(out, "{}", 1024 + rng.below(64_000)),
            "path" => write!(out, "{}/{}", rng.pick(ROUTES), rng.below(1_000_000)),
            "n" => write!(out, "{}", rng.below(100_000)),
            "d" => write!(out, "{}", rng.below(10)),
            "ms" => {
                let ms = if rng.below(20) == 0 {
                    50 + rng.below(5_000)
                } else {
                    1 + rng.below(60)
                };
                write!(out, "{ms}")
            }
            "code" => write!(out, "{}", rng.pick(CODES)),
            "user" => write!(out, "{}{}", rng.pick(USERS), rng.below(100)),
            "host" => write!(out, "{}-{:02}", rng.pick(HOSTS), rng.below(40)),
            "table" => write!(out, "{}", rng.pick(TABLES)),
            "show" => write!(out, "{}", rng.pick(SHOWS)),
            "file" => {
                let _ = write!(out, "/var/data/uploads/{}/", rng.below(10_000));
                hex(rng, 16, out);
                out.push_str(".png");
                Ok(())
            }
            other => panic!("unknown placeholder {{{other}}} in a template"),
        };
    }
    out.push_str(rest);
}

/// One generated entry.
pub struct Entry {
    pub service: usize,
    pub level: Level,
    pub message: String,
    pub tags: [&'static str; 2],
    pub host: String,
    pub request_id: String,
    pub duration_ms: u64,
    pub region: &'static str,
}

impl Entry {
    /// The tags as a JSON array (the baseline's `tags` column).
    pub fn tags_json(&self) -> String {
        format!("[\"{}\",\"{}\"]", self.tags[0], self.tags[1])
    }

    /// The attributes as a JSON object (the baseline's `attributes` column).
    pub fn attributes_json(&self) -> String {
        format!(
            "{{\"request_id\":\"{}\",\"duration_ms\":{},\"region\":\"{}\"}}",
            self.request_id, self.duration_ms, self.region
        )
    }
}

/// Makes entries and request bodies.
pub struct Generator {
    rng: Rng,
}

/// Entries per service in an [`EntryPool`] (8 × 2,048: what 8 clients
/// generated in their own pools before).
pub const POOL_ENTRIES: usize = 16_384;

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator {
            rng: Rng::new(seed),
        }
    }

    /// One entry of `service`; `extra` is appended to its message as a word.
    pub fn entry(&mut self, service: usize, extra: Option<&str>) -> Entry {
        let rng = &mut self.rng;
        let level = Level::random(rng);
        let mut message = String::with_capacity(192);
        let template = *rng.pick(level.templates());
        expand(template, rng, &mut message);
        let suffix = *rng.pick(SUFFIXES);
        expand(suffix, rng, &mut message);
        if let Some(word) = extra {
            message.push(' ');
            message.push_str(word);
        }
        let mut host = String::with_capacity(12);
        let _ = write!(
            host,
            "{}-{:02}",
            KINDS[service % KINDS.len()],
            rng.below(12)
        );
        let mut request_id = String::with_capacity(16);
        hex(rng, 16, &mut request_id);
        let duration_ms = 1 + rng.below(400);
        let region = *rng.pick(REGIONS);
        let env = if rng.below(10) == 0 { "canary" } else { "prod" };
        Entry {
            service,
            level,
            message,
            tags: [KINDS[service % KINDS.len()], env],
            host,
            request_id,
            duration_ms,
            region,
        }
    }

    /// A JSON array of `n` entries for `service`, as sent to
    /// `POST /api/v1/logs`; when `marker` is given, the first entry's message
    /// carries it as an extra word.
    pub fn batch_json(&mut self, service: usize, n: usize, marker: Option<&str>) -> String {
        let now = faultline_model::now_micros();
        let mut out = String::with_capacity(n * 420 + 2);
        out.push('[');
        for i in 0..n {
            let entry = self.entry(service, if i == 0 { marker } else { None });
            if i > 0 {
                out.push(',');
            }
            write_entry(&entry, batch_timestamp(now, i, n), &mut out);
        }
        out.push(']');
        out
    }
}

/// Entries serialized once for the closed-loop load, from which every
/// client copies a run of consecutive entries starting at a random one and
/// stamps fresh timestamps into it. Generating entries during the load took
/// a third to half of the load generator's CPU (which the server on the
/// same two cores then lacks), more the more clients there were (each
/// client had its own pool, filled during the timed phase); picking each
/// entry from a random place in a pool larger than the caches still spent
/// 40 % of it waiting on memory. The pool is built before the warm-up, with
/// as many distinct entries per service as 8 clients' own pools
/// held together, so the server sees the same kind of bodies (sizes,
/// levels, tags, attributes) and the same variety whatever `--clients`.
pub struct EntryPool {
    per_service: Vec<PoolText>,
}

/// One service's entries, each `{"timestamp":"<TS_LEN bytes>"…}`, joined
/// by commas, and where each starts.
struct PoolText {
    text: Vec<u8>,
    starts: Vec<usize>,
}

/// Length of the timestamps `format_rfc3339_micros` writes for the years
/// 0–9999 (`2026-11-22T19:30:25.123456Z`), placeholders in the pool.
const TS_LEN: usize = 27;
/// Where an entry's timestamp starts, from the entry's start.
const TS_AT: usize = "{\"timestamp\":\"".len();

impl EntryPool {
    /// [`POOL_ENTRIES`] entries for each of the [`SERVICES`].
    pub fn new(seed: u64) -> EntryPool {
        EntryPool::with_size(seed, POOL_ENTRIES)
    }

    fn with_size(seed: u64, per_service: usize) -> EntryPool {
        let mut g = Generator::new(seed);
        let per_service = (0..SERVICES)
            .map(|service| {
                let mut text = String::with_capacity(per_service * 400);
                let mut starts = Vec::with_capacity(per_service);
                for i in 0..per_service {
                    if i > 0 {
                        text.push(',');
                    }
                    starts.push(text.len());
                    text.push_str("{\"timestamp\":\"");
                    text.push_str(&"0".repeat(TS_LEN));
                    text.push('"');
                    write_fields(&g.entry(service, None), &mut text);
                }
                PoolText {
                    text: text.into_bytes(),
                    starts,
                }
            })
            .collect();
        EntryPool { per_service }
    }

    /// A JSON array of `n` consecutive entries of `service` from a place
    /// picked with `rng` (`n` at most the pool's size), timestamped a few
    /// microseconds apart up to now.
    pub fn batch_json(&self, rng: &mut Rng, service: usize, n: usize) -> Vec<u8> {
        let pool = &self.per_service[service % SERVICES];
        debug_assert!(n >= 1 && !pool.starts.is_empty());
        let n = n.clamp(1, pool.starts.len());
        let first = rng.below((pool.starts.len() - n + 1) as u64) as usize;
        let from = pool.starts[first];
        let to = pool
            .starts
            .get(first + n)
            .map_or(pool.text.len(), |next| next - 1);
        let mut out = Vec::with_capacity(to - from + 2);
        out.push(b'[');
        out.extend_from_slice(&pool.text[from..to]);
        out.push(b']');
        let now = faultline_model::now_micros();
        let mut stamp = Stamp::default();
        for (i, start) in pool.starts[first..first + n].iter().enumerate() {
            let at = 1 + start - from + TS_AT;
            stamp.write(batch_timestamp(now, i, n), &mut out[at..at + TS_LEN]);
        }
        out
    }
}

/// Writes RFC 3339 timestamps as `format_rfc3339_micros` does, formatting
/// only once per second: a batch's timestamps differ in their microseconds
/// (formatting each one took a fifth of the load generator's CPU).
#[derive(Default)]
struct Stamp {
    /// The second formatted in `text`.
    second: Option<i64>,
    text: Vec<u8>,
}

impl Stamp {
    /// `out` is `TS_LEN` bytes.
    fn write(&mut self, micros: i64, out: &mut [u8]) {
        let (second, frac) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
        if self.second != Some(second) {
            self.text = format_rfc3339_micros(micros).into_bytes();
            self.second = Some(second);
            debug_assert_eq!(self.text.len(), TS_LEN, "a 4-digit year");
        }
        out.copy_from_slice(&self.text);
        // `…:SS.ffffffZ`: the six digits before the `Z`.
        let mut f = frac;
        for d in out[TS_LEN - 7..TS_LEN - 1].iter_mut().rev() {
            *d = b'0' + (f % 10) as u8;
            f /= 10;
        }
    }
}

/// The timestamp of entry `i` of `n` in a batch sent at `now` (µs): a few
/// microseconds apart, oldest first.
fn batch_timestamp(now: i64, i: usize, n: usize) -> i64 {
    now - (n - i) as i64 * 7
}

fn write_entry(e: &Entry, ts: i64, out: &mut String) {
    out.push_str("{\"timestamp\":\"");
    out.push_str(&format_rfc3339_micros(ts));
    out.push('"');
    write_fields(e, out);
}

/// The fields after the timestamp, and the closing brace.
fn write_fields(e: &Entry, out: &mut String) {
    let _ = write!(
        out,
        ",\"service\":\"svc{}\",\"level\":\"{}\",\"message\":",
        e.service,
        e.level.name()
    );
    json_string(&e.message, out);
    let _ = write!(
        out,
        ",\"tags\":{},\"host\":\"{}\",\"attributes\":{}}}",
        e.tags_json(),
        e.host,
        e.attributes_json()
    );
}

/// Writes `s` as a JSON string literal.
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use time::format_description::well_known::Rfc3339;

    #[test]
    fn batches_are_json_arrays_of_valid_entries() {
        let mut g = Generator::new(7);
        let body = g.batch_json(3, 100, Some("needleword"));
        let v: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
        let entries = v.as_array().expect("an array");
        assert_eq!(entries.len(), 100);
        for e in entries {
            assert_eq!(e["service"], "svc3");
            assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
            assert!(e["timestamp"].as_str().is_some());
            assert_eq!(e["tags"].as_array().map(Vec::len), Some(2));
            assert!(e["attributes"]["duration_ms"].is_u64());
        }
        let first = entries[0]["message"].as_str().expect("a message");
        assert!(first.ends_with(" needleword"), "{first}");
    }

    #[test]
    fn pooled_batches_are_valid_and_vary() {
        let pool = EntryPool::with_size(5, 2_048);
        let mut rng = Rng::new(6);
        let mut seen = HashSet::new();
        let now = time::OffsetDateTime::now_utc();
        for round in 0..(2 * 2_048 / 100 + 2) {
            let body = pool.batch_json(&mut rng, 2, 100);
            let v: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
            let entries = v.as_array().expect("an array");
            assert_eq!(entries.len(), 100, "round {round}");
            for e in entries {
                assert_eq!(e["service"], "svc2");
                let ts = e["timestamp"].as_str().expect("a timestamp");
                let ts = time::OffsetDateTime::parse(ts, &Rfc3339).expect("RFC 3339");
                assert!((now - ts).whole_seconds().abs() < 60, "{ts}");
                seen.insert(e["message"].as_str().expect("a message").to_owned());
            }
        }
        assert!(seen.len() > 2_048 / 2, "{} distinct", seen.len());
        // A whole pool in one body, and more than the pool holds.
        let all = pool.batch_json(&mut rng, 3, 5_000);
        let v: serde_json::Value = serde_json::from_slice(&all).expect("valid JSON");
        assert_eq!(v.as_array().map(Vec::len), Some(2_048));
    }

    #[test]
    fn stamps_are_the_formatted_timestamps() {
        let mut stamp = Stamp::default();
        let mut out = [0u8; TS_LEN];
        // Across second, minute and day boundaries, and back in time.
        let base = 1_795_000_000_000_000 - 1_000_000 * 3_600 * 7 - 1_500;
        for micros in (0..4_000i64).map(|i| base + i * 7).chain([
            base + 86_400_000_000,
            base,
            0,
            999_999,
            1_000_000,
        ]) {
            stamp.write(micros, &mut out);
            assert_eq!(
                std::str::from_utf8(&out).unwrap(),
                format_rfc3339_micros(micros)
            );
        }
    }

    #[test]
    fn messages_average_about_150_bytes_and_levels_follow_weights() {
        let mut g = Generator::new(1);
        let n = 20_000;
        let mut bytes = 0;
        let mut errors = 0;
        let mut infos = 0;
        for i in 0..n {
            let e = g.entry(i % SERVICES, None);
            bytes += e.message.len();
            errors += usize::from(e.level == Level::Error);
            infos += usize::from(e.level == Level::Info);
        }
        let mean = bytes / n;
        assert!((140..=170).contains(&mean), "mean message length {mean}");
        assert!((400..=1_200).contains(&errors), "{errors} errors");
        assert!((10_000..=13_000).contains(&infos), "{infos} infos");
    }

    #[test]
    fn every_template_expands() {
        let mut rng = Rng::new(3);
        for level in Level::ALL {
            for t in level.templates() {
                let mut out = String::new();
                expand(t, &mut rng, &mut out);
                assert!(!out.contains('{'), "{out}");
            }
        }
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = Rng::new(9);
        assert!((0..10_000).all(|_| rng.below(7) < 7));
    }
}
