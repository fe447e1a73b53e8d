//! The store contract against SQLite, plus what only a file-backed store has:
//! reopening, several handles on one file, and the full-text query surface.

use faultline_model::{Level, LogFilter, NewEntry, StoredEntry, TokenKind};
use faultline_store::{LogQuery, Paging, Store};
use faultline_store_sqlite::{SqliteOptions, SqliteStore};
use std::cell::Cell;
use std::path::Path;

const T0: i64 = 1_700_000_000_000_000;

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default()).expect("open the store")
}

fn entry(service: &str, level: Level, ts: i64, message: &str) -> NewEntry {
    NewEntry {
        project: "p".into(),
        service: service.into(),
        level,
        message: message.into(),
        tags: Vec::new(),
        timestamp: ts,
        received_at: ts,
        host: None,
        attributes: Default::default(),
        trace_id: None,
        span_id: None,
    }
}

fn search(store: &dyn Store, filter: LogFilter) -> Vec<StoredEntry> {
    store
        .query_logs(&LogQuery {
            filter,
            limit: 1_000,
            paging: Paging::Cursor(None),
        })
        .expect("query")
        .entries
}

#[test]
fn store_contract() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let n = Cell::new(0);
    faultline_store::contract::run_all(&|| {
        n.set(n.get() + 1);
        // A subdirectory that does not exist yet: open creates it.
        let path = dir
            .path()
            .join(format!("store-{}", n.get()))
            .join("faultline.db");
        Box::new(open(&path))
    });
}

#[test]
fn issue_store_contract() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let n = Cell::new(0);
    faultline_store::contract_issues::run_all(&|| {
        n.set(n.get() + 1);
        Box::new(open(&dir.path().join(format!("issues-{}.db", n.get()))))
    });
}

#[test]
fn alert_store_contract() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let n = Cell::new(0);
    faultline_store::contract_alerts::run_all(&|| {
        n.set(n.get() + 1);
        Box::new(open(&dir.path().join(format!("alerts-{}.db", n.get()))))
    });
}

#[test]
fn user_store_contract() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let n = Cell::new(0);
    faultline_store::contract_users::run_all(&|| {
        n.set(n.get() + 1);
        Box::new(open(&dir.path().join(format!("users-{}.db", n.get()))))
    });
}

#[test]
fn store_contract_with_one_reader_and_normal_sync() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let n = Cell::new(0);
    faultline_store::contract::run_all(&|| {
        n.set(n.get() + 1);
        let path = dir.path().join(format!("{}.db", n.get()));
        let options = SqliteOptions {
            synchronous_full: false,
            cache_size_kib: 256,
            readers: 1,
        };
        Box::new(SqliteStore::open(&path, options).expect("open the store"))
    });
}

#[test]
fn reopening_keeps_data_and_ids_keep_growing() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("faultline.db");
    let first = {
        let store = open(&path);
        store
            .create_token(&TokenKind::Admin, "h", "fl", T0)
            .expect("create token");
        store
            .append(&[&[entry("api", Level::Error, T0, "before restart")]])
            .expect("append")
    };
    let store = open(&path);
    assert!(store.has_admin_token().expect("has_admin_token"));
    let got = search(&store, LogFilter::default());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].entry.message, "before restart");
    assert_eq!(
        search(
            &store,
            LogFilter {
                q: Some("restart".into()),
                ..Default::default()
            }
        )
        .len(),
        1,
        "the full-text index survives a reopen"
    );
    let summary = store.list_services(Some("p")).expect("list_services");
    assert_eq!(summary[0].count, 1);
    store.release_memory().expect("release_memory");
    assert_eq!(
        search(&store, LogFilter::default()).len(),
        1,
        "usable after releasing memory"
    );

    // Delete everything (the highest id included), reopen, append: ids go on.
    assert_eq!(
        store
            .delete_expired(Level::Error, T0 + 1, 10)
            .expect("delete"),
        1
    );
    drop(store);
    let store = open(&path);
    let second = store
        .append(&[&[entry("api", Level::Info, T0, "after restart")]])
        .expect("append");
    assert!(
        second[0] > first[0],
        "ids keep growing across reopen and deletes"
    );
}

#[test]
fn two_handles_on_one_file_both_write() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("faultline.db");
    let server = open(&path);
    let cli = open(&path);
    // The server is busy appending while the CLI creates a project, a
    // service and tokens.
    std::thread::scope(|s| {
        let server = &server;
        s.spawn(move || {
            for i in 0..50 {
                let batch: Vec<NewEntry> = (0..200)
                    .map(|j| entry("api", Level::Info, T0 + i * 1_000 + j, "server entry"))
                    .collect();
                server.append(&[&batch]).expect("server append");
            }
        });
        for i in 0..20 {
            cli.ensure_service("shop", &format!("svc-{i}"))
                .expect("cli ensure_service");
            cli.create_token(
                &TokenKind::Ingest {
                    project: "shop".into(),
                    service: format!("svc-{i}"),
                },
                &format!("hash-{i}"),
                "fl",
                T0,
            )
            .expect("cli create_token");
        }
    });
    server
        .create_token(&TokenKind::Admin, "server-admin", "fl", T0)
        .expect("server create_token");
    // Each handle sees the other's writes.
    assert_eq!(server.list_tokens(Some("shop")).expect("list").len(), 20);
    assert!(server.find_token("hash-7").expect("find").is_some());
    assert!(cli.has_admin_token().expect("has_admin_token"));
    assert_eq!(search(&cli, LogFilter::default()).len(), 1_000);
    // A service the CLI created is used by the server's append.
    let ids = server
        .append(&[&[NewEntry {
            project: "shop".into(),
            ..entry("svc-3", Level::Warn, T0, "via cli service")
        }]])
        .expect("append");
    let listed = cli.list_services(Some("shop")).expect("list_services");
    let svc3 = listed
        .iter()
        .find(|s| s.name == "svc-3")
        .expect("svc-3 listed");
    assert_eq!(svc3.count, 1);
    assert_eq!(ids.len(), 1);
}

#[test]
fn hostile_full_text_input_never_errors() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir.path().join("faultline.db"));
    let messages = [
        "plain connection refused",
        "quotes \"inside\" and 'single'",
        "NEAR(a b) OR c AND NOT d",
        "star* and -minus and (parens)",
        "col:value ^caret {braces}",
        "unicode: Café, Straße, ΟΔΟΣ, İstanbul, 東京, 오류, emoji 💥",
        "ligature ﬁle and combining x\u{301}",
    ];
    let data: Vec<NewEntry> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| entry("api", Level::Info, T0 + i as i64, m))
        .collect();
    let ids = store.append(&[&data]).expect("append");
    let stored: Vec<StoredEntry> = ids
        .iter()
        .zip(&data)
        .map(|(&id, e)| StoredEntry {
            id,
            entry: e.clone(),
        })
        .collect();
    let hostile = [
        "\"",
        "\"\"\"",
        "'",
        "*",
        "**",
        "a*",
        "-",
        "--x",
        "NEAR(",
        "NEAR(a b, 2)",
        "NEAR",
        "(",
        ")",
        "(()",
        "AND",
        "OR",
        "NOT",
        "a AND",
        "OR b",
        "NOT NOT",
        "col:value",
        "message:plain",
        "-message:plain",
        "^",
        "^plain",
        "{",
        "}",
        "{col1 col2}: x",
        "+",
        "a + b",
        "\\",
        "\\\"",
        "%",
        "_",
        "__",
        "\0",
        "\u{1f}",
        "💥",
        "emoji 💥",
        "ﬁle",
        "FILE",
        "İstanbul",
        "istanbul",
        "ΟΔΟΣ",
        "οδος",
        "οδοσ",
        "x\u{301}",
        "café",
        "CAFE",
        "straße",
        "STRASSE",
        "東京",
        "오류",
        "\u{200b}",
        "\u{feff}plain",
        "plain\u{3000}connection",
        "\"plain connection\"",
        "plain\"connection",
        "inside\"",
        "'single'",
        "value ^caret",
        "{braces}",
        "d*",
        "parens)",
        "(parens",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        "Ⓐ",
        "١٢٣",
        "\u{e000}",
    ];
    for q in hostile {
        let filter = LogFilter {
            q: Some(q.into()),
            ..Default::default()
        };
        let got = store
            .query_logs(&LogQuery {
                filter: filter.clone(),
                limit: 100,
                paging: Paging::Cursor(None),
            })
            .unwrap_or_else(|e| panic!("q={q:?} failed: {e}"));
        let mut want: Vec<i64> = stored
            .iter()
            .filter(|e| filter.matches(&e.entry))
            .map(|e| e.id)
            .collect();
        want.reverse();
        let got: Vec<i64> = got.entries.iter().map(|e| e.id).collect();
        assert_eq!(got, want, "q={q:?} must agree with LogFilter::matches");
    }
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("faultline.db");
    drop(open(&path));
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    conn.pragma_update(None, "user_version", 999)
        .expect("bump version");
    drop(conn);
    let err =
        SqliteStore::open(&path, SqliteOptions::default()).expect_err("a newer schema is refused");
    assert!(
        err.to_string().contains("999"),
        "the error names the version: {err}"
    );
}

#[test]
fn concurrent_first_opens_migrate_once() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("faultline.db");
    std::thread::scope(|s| {
        for i in 0..4 {
            let path = &path;
            s.spawn(move || {
                let store = open(path);
                store
                    .ensure_service("p", &format!("s{i}"))
                    .expect("ensure_service");
            });
        }
    });
    let store = open(&path);
    assert_eq!(store.list_services(None).expect("list").len(), 4);
}

/// A backfill: one append of several services with timestamps over many
/// hours in no order (the writer's per-hour counting past its few-hours
/// fast path), then a second append adding to the same hours.
#[test]
fn log_counts_of_a_backfill_over_many_hours() {
    use faultline_store::{Bucket, LogCount};
    use std::collections::BTreeMap;
    const HOUR: i64 = 3_600_000_000;
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = open(&dir.path().join("faultline.db"));
    let start = T0 - T0 % HOUR - 40 * HOUR;
    let mut want: BTreeMap<(i64, u8), u64> = BTreeMap::new();
    let mut web: BTreeMap<(i64, u8), u64> = BTreeMap::new();
    let mut x: u64 = 12345;
    for _round in 0..2 {
        let batch: Vec<NewEntry> = (0..2_000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let hour = ((x >> 33) % 60) as i64;
                let level = Level::ALL[((x >> 20) % 6) as usize];
                let service = ["api", "web", "cron"][((x >> 40) % 3) as usize];
                let ts = start + hour * HOUR + ((x >> 8) % 3_600_000) as i64;
                *want.entry((hour, level.code())).or_default() += 1;
                if service == "web" {
                    *web.entry((hour, level.code())).or_default() += 1;
                }
                entry(service, level, ts, "backfilled")
            })
            .collect();
        store.append(&[&batch]).expect("append");
    }
    let as_counts = |m: &BTreeMap<(i64, u8), u64>, since_hour: i64| -> Vec<LogCount> {
        m.iter()
            .filter(|((h, _), _)| *h >= since_hour)
            .map(|(&(h, code), &count)| LogCount {
                bucket: start + h * HOUR,
                level: Level::from_code(code).expect("level"),
                count,
            })
            .collect()
    };
    let got = store
        .log_counts("p", None, Bucket::Hour, start)
        .expect("log_counts");
    assert_eq!(got, as_counts(&want, 0));
    assert_eq!(got.iter().map(|c| c.count).sum::<u64>(), 4_000);
    assert_eq!(
        store
            .log_counts("p", Some("web"), Bucket::Hour, start + 30 * HOUR)
            .expect("log_counts"),
        as_counts(&web, 30)
    );
    let activity = store
        .service_activity("p", start)
        .expect("service_activity");
    assert_eq!(activity.iter().map(|a| a.total).sum::<u64>(), 4_000);
    let errors: u64 = want
        .iter()
        .filter(|((_, code), _)| *code >= Level::Error.code())
        .map(|(_, n)| n)
        .sum();
    assert_eq!(activity.iter().map(|a| a.errors).sum::<u64>(), errors);
}
