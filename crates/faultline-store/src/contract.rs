//! The contract every [`Store`] adapter must pass: the
//! executable definition of the trait's semantics.
//!
//! Adapters call [`run_all`] from their own tests with a factory that makes a
//! fresh, empty store for each check:
//!
//! ```text
//! #[test]
//! fn store_contract() {
//!     let dir = tempfile::tempdir().unwrap();
//!     let n = std::cell::Cell::new(0);
//!     faultline_store::contract::run_all(&|| {
//!         n.set(n.get() + 1);
//!         let path = dir.path().join(format!("{}.db", n.get()));
//!         Box::new(MyStore::open(&path).unwrap())
//!     });
//! }
//! ```
//!
//! Every check runs even when an earlier one failed; the run then panics with
//! the names and messages of all failures. [`CHECKS`] lists them, so an
//! adapter can also run one alone while debugging.

use crate::{Cursor, LogPage, LogQuery, Paging, Store, StoreError};
use faultline_model::{
    AttrValue, Attributes, Level, LogFilter, Name, NewEntry, StoredEntry, TokenKind,
};
use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A named contract check; it panics with a message saying what broke.
pub type Check = fn(&dyn Store);

/// Every contract check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    (
        "projects_and_services_are_idempotent",
        projects_and_services_are_idempotent,
    ),
    (
        "append_round_trips_every_field",
        append_round_trips_every_field,
    ),
    ("append_of_nothing_is_nothing", append_of_nothing_is_nothing),
    (
        "append_creates_missing_services",
        append_creates_missing_services,
    ),
    (
        "ids_grow_and_are_never_reused",
        ids_grow_and_are_never_reused,
    ),
    (
        "newest_first_with_id_tiebreak",
        newest_first_with_id_tiebreak,
    ),
    (
        "filters_agree_with_log_filter_matches",
        filters_agree_with_log_filter_matches,
    ),
    (
        "full_text_terms_are_phrases_of_words",
        full_text_terms_are_phrases_of_words,
    ),
    (
        "hostile_search_text_is_harmless",
        hostile_search_text_is_harmless,
    ),
    (
        "time_bounds_are_inclusive_then_exclusive",
        time_bounds_are_inclusive_then_exclusive,
    ),
    (
        "cursor_walk_sees_each_entry_once_under_inserts",
        cursor_walk_sees_each_entry_once_under_inserts,
    ),
    ("cursor_pages_end_exactly", cursor_pages_end_exactly),
    ("page_numbers", page_numbers),
    ("invalid_paging_is_refused", invalid_paging_is_refused),
    (
        "service_counters_and_last_seen",
        service_counters_and_last_seen,
    ),
    ("tokens_lifecycle", tokens_lifecycle),
    ("token_scopes_must_exist", token_scopes_must_exist),
    (
        "delete_expired_only_that_level_before_cutoff",
        delete_expired_only_that_level_before_cutoff,
    ),
    (
        "delete_expired_respects_max_rows",
        delete_expired_respects_max_rows,
    ),
    (
        "delete_expired_sees_late_old_entries",
        delete_expired_sees_late_old_entries,
    ),
    (
        "deleted_entries_leave_search_and_counters",
        deleted_entries_leave_search_and_counters,
    ),
    (
        "many_entries_and_batches_in_one_append",
        many_entries_and_batches_in_one_append,
    ),
    ("size_is_reported", size_is_reported),
    (
        "unsynced_appends_are_committed_then_synced",
        unsynced_appends_are_committed_then_synced,
    ),
    (
        "interleaved_appends_merge_newest_first",
        interleaved_appends_merge_newest_first,
    ),
    (
        "delete_expired_inside_mixed_appends",
        delete_expired_inside_mixed_appends,
    ),
];

/// Runs every contract check, each against a fresh store made by `make`.
///
/// # Panics
///
/// When any check fails, naming every failed check.
pub fn run_all(make: &dyn Fn() -> Box<dyn Store>) {
    run_checks("store", CHECKS, make);
}

/// Runs `checks`, each on a fresh store, and panics listing every failure.
pub(crate) fn run_checks(what: &str, checks: &[(&str, Check)], make: &dyn Fn() -> Box<dyn Store>) {
    let mut failures = Vec::new();
    for &(name, check) in checks {
        let store = make();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&*store))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            failures.push(format!("  {name}: {message}"));
        }
    }
    if !failures.is_empty() {
        panic!(
            "{} of {} {what} contract checks failed:\n{}",
            failures.len(),
            checks.len(),
            failures.join("\n")
        );
    }
}

// ---------------------------------------------------------------- helpers

const T0: i64 = 1_700_000_000_000_000;

fn entry(project: &str, service: &str, level: Level, ts: i64, message: &str) -> NewEntry {
    NewEntry {
        project: project.into(),
        service: service.into(),
        level,
        message: message.into(),
        tags: Vec::new(),
        timestamp: ts,
        received_at: ts + 7,
        host: None,
        attributes: Attributes::new(),
        trace_id: None,
        span_id: None,
    }
}

fn with_tags(mut e: NewEntry, tags: &[&str]) -> NewEntry {
    e.tags = tags.iter().map(|t| Name::from(*t)).collect();
    e
}

/// Appends one batch; returns the stored entries.
fn append(store: &dyn Store, entries: Vec<NewEntry>) -> Vec<StoredEntry> {
    let ids = store
        .append(&[entries.as_slice()])
        .unwrap_or_else(|e| panic!("append of {} entries failed: {e}", entries.len()));
    assert_eq!(ids.len(), entries.len(), "append returns one id per entry");
    ids.into_iter()
        .zip(entries)
        .map(|(id, entry)| StoredEntry { id, entry })
        .collect()
}

fn query(store: &dyn Store, filter: &LogFilter, limit: usize, paging: Paging) -> LogPage {
    let q = LogQuery {
        filter: filter.clone(),
        limit,
        paging,
    };
    store
        .query_logs(&q)
        .unwrap_or_else(|e| panic!("query {q:?} failed: {e}"))
}

/// Every matching entry, walking cursor pages of `limit`.
fn walk(store: &dyn Store, filter: &LogFilter, limit: usize) -> Vec<StoredEntry> {
    let mut out: Vec<StoredEntry> = Vec::new();
    let mut cursor = None;
    for _ in 0..10_000 {
        let page = query(store, filter, limit, Paging::Cursor(cursor));
        assert!(
            page.entries.len() <= limit,
            "a page holds at most `limit` entries"
        );
        out.extend(page.entries);
        match page.next_cursor {
            Some(c) => {
                let last = out.last().expect("a page with a next cursor is not empty");
                assert_eq!(
                    c,
                    key(last),
                    "next_cursor is the (timestamp, id) of the page's last entry"
                );
                cursor = Some(c);
            }
            None => return out,
        }
    }
    panic!("cursor walk with {filter:?} did not end");
}

fn key(e: &StoredEntry) -> Cursor {
    Cursor {
        timestamp: e.entry.timestamp,
        id: e.id,
    }
}

fn ids(entries: &[StoredEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.id).collect()
}

/// Ids of `data` that `filter` matches in memory, newest first.
fn expected(data: &[StoredEntry], filter: &LogFilter) -> Vec<i64> {
    let mut m: Vec<&StoredEntry> = data.iter().filter(|e| filter.matches(&e.entry)).collect();
    m.sort_by_key(|e| std::cmp::Reverse(key(e)));
    m.into_iter().map(|e| e.id).collect()
}

fn assert_newest_first(entries: &[StoredEntry], what: &str) {
    for w in entries.windows(2) {
        assert!(
            key(&w[0]) > key(&w[1]),
            "{what}: entries must be strictly newest first by (timestamp, id), got {:?} before {:?}",
            key(&w[0]),
            key(&w[1])
        );
    }
}

fn text(q: &str) -> LogFilter {
    LogFilter {
        q: Some(q.into()),
        ..LogFilter::default()
    }
}

fn service_summary(
    store: &dyn Store,
    project: &str,
    name: &str,
) -> faultline_model::ServiceSummary {
    store
        .list_services(Some(project))
        .expect("list_services")
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("service {project}/{name} is listed"))
}

/// A mixed dataset over two projects and three services.
fn mixed(store: &dyn Store) -> Vec<StoredEntry> {
    use Level::*;
    let rows: Vec<NewEntry> = vec![
        with_tags(
            entry(
                "shop",
                "api",
                Info,
                T0 + 10,
                "GET /orders completed in 12ms",
            ),
            &["http"],
        ),
        with_tags(
            entry(
                "shop",
                "api",
                Error,
                T0 + 20,
                "Connection refused by upstream db.internal:5432",
            ),
            &["db", "net"],
        ),
        with_tags(
            entry(
                "shop",
                "web",
                Warn,
                T0 + 30,
                "slow render of /checkout: 1200ms",
            ),
            &["render"],
        ),
        entry("shop", "web", Debug, T0 + 40, "cache miss for key user:42"),
        with_tags(
            entry(
                "shop",
                "api",
                Critical,
                T0 + 50,
                "payment TIMEOUT after 30s; connection reset",
            ),
            &["db"],
        ),
        with_tags(
            entry(
                "ops",
                "api",
                Error,
                T0 + 60,
                "connection refused: disk full on /var",
            ),
            &["dbx"],
        ),
        entry("ops", "api", Trace, T0 + 70, "heartbeat ok"),
        with_tags(
            entry(
                "ops",
                "cron",
                Info,
                T0 + 20,
                "nightly job_42 finished, refused=0",
            ),
            &["db"],
        ),
        entry(
            "shop",
            "api",
            Warn,
            T0 + 20,
            "retrying connection to payment-gateway (attempt 2)",
        ),
        entry(
            "shop",
            "web",
            Error,
            T0 + 80,
            "TypeError: cannot read property 'id' of undefined",
        ),
        with_tags(
            entry(
                "shop",
                "web",
                Info,
                T0 + 90,
                "user_id=42 logged in from 10.0.0.7",
            ),
            &["auth", "db"],
        ),
        entry(
            "ops",
            "cron",
            Critical,
            T0 + 5,
            "Timeout waiting for lock; giving up",
        ),
    ];
    append(store, rows)
}

// ----------------------------------------------------------------- checks

fn projects_and_services_are_idempotent(store: &dyn Store) {
    let p1 = store.ensure_project("shop").expect("ensure_project");
    let p2 = store.ensure_project("shop").expect("ensure_project again");
    assert_eq!(p1, p2, "ensure_project twice returns the same project");
    assert_eq!(p1.name, "shop");

    let s1 = store.ensure_service("shop", "api").expect("ensure_service");
    let s2 = store
        .ensure_service("shop", "api")
        .expect("ensure_service again");
    assert_eq!(s1, s2, "ensure_service twice returns the same service");
    assert_eq!((s1.project.as_str(), s1.name.as_str()), ("shop", "api"));

    // The service's project is created on demand.
    let s3 = store
        .ensure_service("ops", "api")
        .expect("ensure_service in a new project");
    assert_ne!(
        s1.id, s3.id,
        "same service name in two projects is two services"
    );
    // Names are case-sensitive.
    let s4 = store
        .ensure_service("shop", "API")
        .expect("ensure_service API");
    assert_ne!(s1.id, s4.id, "service names are case-sensitive");
    store
        .ensure_service("shop", "web")
        .expect("ensure_service web");

    let projects: Vec<String> = store
        .list_projects()
        .expect("list_projects")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(
        projects,
        ["ops", "shop"],
        "projects are listed once each, by name"
    );

    let services: Vec<(String, String)> = store
        .list_services(None)
        .expect("list_services")
        .into_iter()
        .map(|s| (s.project, s.name))
        .collect();
    let want = [
        ("ops", "api"),
        ("shop", "API"),
        ("shop", "api"),
        ("shop", "web"),
    ];
    assert_eq!(
        services,
        want.map(|(p, s)| (p.to_string(), s.to_string())),
        "services are listed by project then name"
    );
    let shop: Vec<String> = store
        .list_services(Some("shop"))
        .expect("list_services shop")
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(shop, ["API", "api", "web"]);
    assert!(
        store
            .list_services(Some("nope"))
            .expect("list_services nope")
            .is_empty(),
        "an unknown project has no services"
    );
    let fresh = service_summary(store, "shop", "web");
    assert_eq!(
        (fresh.count, fresh.error_count, fresh.last_seen),
        (0, 0, None)
    );
}

fn append_round_trips_every_field(store: &dyn Store) {
    let mut attributes = Attributes::new();
    attributes.insert("ok".into(), AttrValue::Bool(true));
    attributes.insert("no".into(), AttrValue::Bool(false));
    attributes.insert("status".into(), AttrValue::Int(503));
    attributes.insert("big".into(), AttrValue::Int(-9_007_199_254_740_993));
    attributes.insert("ratio".into(), AttrValue::Float(0.1));
    attributes.insert("whole".into(), AttrValue::Float(2.0));
    attributes.insert(
        "route".into(),
        AttrValue::Str("/api/v1/\"orders\" ✓".into()),
    );
    attributes.insert("empty".into(), AttrValue::Str(Name::default()));
    let full = NewEntry {
        project: "shop".into(),
        service: "api".into(),
        level: Level::Critical,
        message: "payment failed: \"card declined\"\n  at charge (pay.rs:42)\tüñí 日本".into(),
        tags: vec!["db".into(), "with space".into(), "ünï".into()],
        timestamp: T0 + 1,
        received_at: T0 + 99,
        host: Some("web-01.example".into()),
        attributes,
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        span_id: Some("00f067aa0ba902b7".into()),
    };
    let minimal = entry("shop", "api", Level::Trace, -5, "");
    let stored = append(store, vec![full, minimal]);
    assert!(stored[0].id < stored[1].id, "ids grow within an append");
    let mut got = walk(store, &LogFilter::default(), 10);
    got.sort_by_key(|e| e.id);
    assert_eq!(got, stored, "entries come back exactly as appended");
    for level in Level::ALL {
        let e = append(
            store,
            vec![entry(
                "shop",
                "api",
                level,
                T0 + 100 + i64::from(level.code()),
                "level",
            )],
        );
        let page = query(store, &LogFilter::default(), 1, Paging::Cursor(None));
        assert_eq!(page.entries, e, "level {level} round-trips");
    }
}

fn append_of_nothing_is_nothing(store: &dyn Store) {
    assert_eq!(
        store.append(&[]).expect("append of no batch"),
        Vec::<i64>::new()
    );
    assert_eq!(
        store.append(&[&[], &[]]).expect("append of empty batches"),
        Vec::<i64>::new()
    );
    assert!(walk(store, &LogFilter::default(), 5).is_empty());
}

fn append_creates_missing_services(store: &dyn Store) {
    let stored = append(
        store,
        vec![entry(
            "new-project",
            "new-service",
            Level::Info,
            T0,
            "hello",
        )],
    );
    let s = service_summary(store, "new-project", "new-service");
    assert_eq!(s.count, 1, "an append creates the service it names");
    let got = walk(store, &LogFilter::default(), 5);
    assert_eq!(got, stored);
}

fn ids_grow_and_are_never_reused(store: &dyn Store) {
    let a = append(
        store,
        vec![
            entry("p", "s", Level::Debug, T0 + 100, "first"),
            entry("p", "s", Level::Debug, T0, "second, older"),
        ],
    );
    let b = append(
        store,
        vec![entry("p", "s", Level::Info, T0 - 100, "third, oldest")],
    );
    assert!(
        a[0].id < a[1].id && a[1].id < b[0].id,
        "ids grow with each append"
    );
    // Delete the entries with the highest ids, then append again.
    assert_eq!(
        store
            .delete_expired(Level::Debug, T0 + 1_000, 100)
            .expect("delete"),
        2
    );
    assert_eq!(
        store
            .delete_expired(Level::Info, T0 + 1_000, 100)
            .expect("delete"),
        1
    );
    let c = append(
        store,
        vec![entry("p", "s", Level::Info, T0, "after deletes")],
    );
    assert!(
        c[0].id > b[0].id,
        "an id is never reused, even after the newest entries were deleted ({} after {})",
        c[0].id,
        b[0].id
    );
}

fn newest_first_with_id_tiebreak(store: &dyn Store) {
    let ts = [30, 10, 20, 20, 40, 10, 20];
    let first = append(
        store,
        ts[..4]
            .iter()
            .map(|t| entry("p", "s", Level::Info, T0 + t, "m"))
            .collect(),
    );
    let second = append(
        store,
        ts[4..]
            .iter()
            .map(|t| entry("p", "s", Level::Info, T0 + t, "m"))
            .collect(),
    );
    let all: Vec<StoredEntry> = first.into_iter().chain(second).collect();
    let want = expected(&all, &LogFilter::default());
    let got = walk(store, &LogFilter::default(), 100);
    assert_eq!(ids(&got), want, "newest first by timestamp, then by id");
    for limit in [1, 2, 3] {
        let got = walk(store, &LogFilter::default(), limit);
        assert_eq!(ids(&got), want, "the same order through pages of {limit}");
    }
}

fn filters_agree_with_log_filter_matches(store: &dyn Store) {
    let data = mixed(store);
    let f = |edit: &dyn Fn(&mut LogFilter)| {
        let mut f = LogFilter::default();
        edit(&mut f);
        f
    };
    let cases: Vec<(LogFilter, usize)> = vec![
        (LogFilter::default(), 12),
        (f(&|f| f.project = Some("shop".into())), 8),
        (f(&|f| f.project = Some("ops".into())), 4),
        (f(&|f| f.project = Some("nope".into())), 0),
        (f(&|f| f.services = vec!["api".into()]), 6),
        (f(&|f| f.services = vec!["api".into(), "cron".into()]), 8),
        (
            f(&|f| f.services = vec!["cron".into(), "web".into(), "missing".into()]),
            6,
        ),
        (f(&|f| f.services = vec!["API".into()]), 0),
        (
            f(&|f| {
                f.project = Some("shop".into());
                f.services = vec!["api".into(), "web".into()];
            }),
            8,
        ),
        (
            f(&|f| {
                f.project = Some("ops".into());
                f.services = vec!["web".into()];
            }),
            0,
        ),
        (f(&|f| f.min_level = Some(Level::Trace)), 12),
        (f(&|f| f.min_level = Some(Level::Error)), 5),
        (f(&|f| f.min_level = Some(Level::Critical)), 2),
        (f(&|f| f.tag = Some("db".into())), 4),
        (f(&|f| f.tag = Some("d".into())), 0),
        (f(&|f| f.tag = Some("net".into())), 1),
        (f(&|f| f.q = Some("connection".into())), 4),
        (f(&|f| f.q = Some("Connection REFUSED".into())), 2),
        (f(&|f| f.q = Some("refused".into())), 3),
        (f(&|f| f.q = Some("42".into())), 3),
        (f(&|f| f.q = Some("user:42".into())), 1),
        (f(&|f| f.q = Some("payment-gateway connection".into())), 1),
        (f(&|f| f.q = Some("job_42".into())), 1),
        (f(&|f| f.q = Some("timeout".into())), 2),
        (f(&|f| f.since = Some(T0 + 20)), 10),
        (f(&|f| f.until = Some(T0 + 20)), 2),
        (
            f(&|f| {
                f.since = Some(T0 + 20);
                f.until = Some(T0 + 60);
            }),
            6,
        ),
        (
            f(&|f| {
                f.project = Some("shop".into());
                f.min_level = Some(Level::Warn);
                f.q = Some("connection".into());
            }),
            3,
        ),
        (
            f(&|f| {
                f.services = vec!["api".into()];
                f.tag = Some("db".into());
                f.min_level = Some(Level::Error);
                f.until = Some(T0 + 60);
            }),
            2,
        ),
        (
            f(&|f| {
                f.services = vec!["api".into(), "web".into()];
                f.q = Some("connection".into());
                f.since = Some(T0 + 21);
            }),
            2,
        ),
    ];
    for (filter, count) in cases {
        let want = expected(&data, &filter);
        assert_eq!(
            want.len(),
            count,
            "the contract's own expectation for {filter:?} (LogFilter::matches changed?)"
        );
        for limit in [2, 100] {
            let got = walk(store, &filter, limit);
            assert_eq!(
                ids(&got),
                want,
                "store and LogFilter::matches disagree on {filter:?}"
            );
            assert_newest_first(&got, "filtered walk");
        }
    }
}

fn full_text_terms_are_phrases_of_words(store: &dyn Store) {
    let data = append(
        store,
        vec![
            entry(
                "p",
                "s",
                Level::Error,
                T0 + 1,
                "Database connection refused",
            ),
            entry(
                "p",
                "s",
                Level::Error,
                T0 + 2,
                "refused: CONNECTION pool exhausted",
            ),
            entry("p", "s", Level::Error, T0 + 3, "connections refusedly"),
            entry(
                "p",
                "s",
                Level::Error,
                T0 + 4,
                "db.query(users) failed: timeout=30s",
            ),
            entry("p", "s", Level::Error, T0 + 5, "user_id=17 not found"),
            entry(
                "p",
                "s",
                Level::Info,
                T0 + 6,
                "Café ouvert, Straße gesperrt, 東京 エラー 오류 발생",
            ),
        ],
    );
    let cases: &[(&str, &[usize])] = &[
        ("connection refused", &[0, 1]),
        ("REFUSED Connection", &[0, 1]),
        ("connection-refused", &[0]),
        ("refused:connection", &[1]),
        ("connection", &[0, 1]),
        ("conn", &[]),
        ("refused database", &[0]),
        ("db.query failed!", &[3]),
        ("query.db", &[]),
        ("timeout=30s", &[3]),
        ("query timeout 30s", &[3]),
        ("user_id", &[4]),
        ("user", &[4]),
        ("id_user", &[]),
        ("17 user", &[4]),
        ("café", &[5]),
        ("CAFÉ straße", &[5]),
        ("오류", &[5]),
        ("東京 エラー", &[5]),
        ("connection nowhere", &[]),
        ("...", &[0, 1, 2, 3, 4, 5]),
    ];
    for (q, want) in cases {
        let mut want: Vec<i64> = want.iter().map(|&i| data[i].id).collect();
        want.reverse();
        let filter = text(q);
        assert_eq!(
            expected(&data, &filter),
            want,
            "LogFilter::matches on q={q:?} (the contract's expectation)"
        );
        let got = walk(store, &filter, 10);
        assert_eq!(ids(&got), want, "full-text search for {q:?}");
    }
}

fn hostile_search_text_is_harmless(store: &dyn Store) {
    let data = mixed(store);
    let hostile = [
        "\"",
        "\"\"",
        "'",
        "*",
        "a*",
        "-",
        "-connection",
        "NEAR(",
        "NEAR(a b)",
        "(",
        ")",
        "()",
        "connection AND",
        "OR",
        "NOT refused",
        "col:val",
        "message:connection",
        "^refused",
        "{a b}",
        "a + b",
        "\\",
        "%",
        "_",
        "\0",
        "💥 refused",
        "ﬁle",
        "İstanbul",
        "ΟΔΟΣ",
        "x\u{301}",
        "\u{200b}connection",
        "connection\u{3000}refused",
        "  ",
        "\n\t",
    ];
    for q in hostile {
        let filter = text(q);
        let got = walk(store, &filter, 5);
        assert_eq!(
            ids(&got),
            expected(&data, &filter),
            "store and LogFilter::matches disagree on hostile q={q:?}"
        );
    }
}

fn time_bounds_are_inclusive_then_exclusive(store: &dyn Store) {
    let data = append(
        store,
        (0..10)
            .map(|i| entry("p", "s", Level::Info, T0 + i * 10, "tick"))
            .collect(),
    );
    let filter = LogFilter {
        since: Some(T0 + 20),
        until: Some(T0 + 50),
        ..LogFilter::default()
    };
    let got = walk(store, &filter, 2);
    assert_eq!(
        ids(&got),
        vec![data[4].id, data[3].id, data[2].id],
        "since is inclusive, until exclusive"
    );
    let empty = LogFilter {
        since: Some(T0 + 50),
        until: Some(T0 + 50),
        ..LogFilter::default()
    };
    assert!(
        walk(store, &empty, 2).is_empty(),
        "since == until selects nothing"
    );
}

fn cursor_walk_sees_each_entry_once_under_inserts(store: &dyn Store) {
    // Many equal timestamps, so pages end inside a run of equal ones.
    let original = append(
        store,
        (0..40)
            .map(|i| entry("p", "s", Level::Info, T0 + (i / 6) * 100, "original"))
            .collect(),
    );
    let filter = LogFilter::default();
    let mut seen: Vec<StoredEntry> = Vec::new();
    let mut older = Vec::new();
    let mut newer = Vec::new();
    let mut cursor = None;
    let mut round = 0;
    loop {
        let page = query(store, &filter, 7, Paging::Cursor(cursor));
        seen.extend(page.entries);
        // Between pages, entries arrive: newer than everything, older than
        // everything, and at the cursor's own timestamp.
        round += 1;
        newer.extend(append(
            store,
            vec![entry("p", "s", Level::Info, T0 + 10_000 + round, "newer")],
        ));
        older.extend(append(
            store,
            vec![entry("p", "s", Level::Info, T0 - 10_000 - round, "older")],
        ));
        if let Some(c) = page.next_cursor {
            newer.extend(append(
                store,
                vec![entry(
                    "p",
                    "s",
                    Level::Info,
                    c.timestamp,
                    "same time, higher id",
                )],
            ));
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(round < 100, "the walk ends");
    }
    assert_newest_first(&seen, "cursor walk under inserts");
    let seen_ids: HashSet<i64> = seen.iter().map(|e| e.id).collect();
    assert_eq!(seen_ids.len(), seen.len(), "no entry is returned twice");
    for e in &original {
        assert!(
            seen_ids.contains(&e.id),
            "entry {} present before the walk was skipped",
            e.id
        );
    }
    for e in &newer {
        assert!(
            !seen_ids.contains(&e.id),
            "entry {} newer than the walk's position appeared in a later page",
            e.id
        );
    }
    // Older entries appended before the walk reached them are all seen (the
    // last one was appended after the last page).
    for e in &older[..older.len() - 1] {
        assert!(
            seen_ids.contains(&e.id),
            "older entry {} appended during the walk was skipped",
            e.id
        );
    }
}

fn cursor_pages_end_exactly(store: &dyn Store) {
    append(
        store,
        (0..14)
            .map(|i| entry("p", "s", Level::Info, T0 + i, "m"))
            .collect(),
    );
    let f = LogFilter::default();
    let p1 = query(store, &f, 7, Paging::Cursor(None));
    assert_eq!(p1.entries.len(), 7);
    let c = p1
        .next_cursor
        .expect("a full page with more after it has a next cursor");
    let p2 = query(store, &f, 7, Paging::Cursor(Some(c)));
    assert_eq!(p2.entries.len(), 7);
    assert_eq!(
        p2.next_cursor, None,
        "the last page has no next cursor, even when full"
    );
    let p3 = query(store, &f, 20, Paging::Cursor(None));
    assert_eq!((p3.entries.len(), p3.next_cursor), (14, None));
    let past = Cursor {
        timestamp: T0 - 1,
        id: i64::MAX,
    };
    let p4 = query(store, &f, 7, Paging::Cursor(Some(past)));
    assert!(
        p4.entries.is_empty() && p4.next_cursor.is_none(),
        "a cursor past the end gives an empty page"
    );
}

fn page_numbers(store: &dyn Store) {
    let data = append(
        store,
        (0..10)
            .map(|i| entry("p", "s", Level::Info, T0 + i, "m"))
            .collect(),
    );
    let want = expected(&data, &LogFilter::default());
    let f = LogFilter::default();
    let mut all = Vec::new();
    for n in 1..=4 {
        let page = query(store, &f, 3, Paging::Page(n));
        all.extend(ids(&page.entries));
        if n == 4 {
            assert_eq!(page.entries.len(), 1, "the last page holds the rest");
            assert_eq!(page.next_cursor, None, "the last page has no next cursor");
        } else {
            assert_eq!(page.entries.len(), 3, "page {n} is full");
        }
    }
    assert_eq!(all, want, "pages 1..4 of 3 are the entries in order");
    assert!(
        query(store, &f, 3, Paging::Page(5)).entries.is_empty(),
        "a page past the end is empty"
    );
    let filtered = LogFilter {
        min_level: Some(Level::Info),
        services: vec!["s".into()],
        ..LogFilter::default()
    };
    assert_eq!(
        ids(&query(store, &filtered, 4, Paging::Page(2)).entries),
        want[4..8].to_vec()
    );
}

fn invalid_paging_is_refused(store: &dyn Store) {
    append(store, vec![entry("p", "s", Level::Info, T0, "m")]);
    let q = |limit, paging| LogQuery {
        filter: LogFilter::default(),
        limit,
        paging,
    };
    assert!(
        matches!(
            store.query_logs(&q(0, Paging::Cursor(None))),
            Err(StoreError::Invalid(_))
        ),
        "limit 0 is invalid"
    );
    assert!(
        matches!(
            store.query_logs(&q(5, Paging::Page(0))),
            Err(StoreError::Invalid(_))
        ),
        "page 0 is invalid (pages count from 1)"
    );
}

fn service_counters_and_last_seen(store: &dyn Store) {
    use Level::*;
    let mut batch = Vec::new();
    for (level, received) in [
        (Info, 5),
        (Info, 9),
        (Warn, 3),
        (Error, 7),
        (Critical, 8),
        (Debug, 1),
    ] {
        let mut e = entry("shop", "api", level, T0, "m");
        e.received_at = T0 + received;
        batch.push(e);
    }
    let mut other = entry("shop", "web", Error, T0, "m");
    other.received_at = T0 + 100;
    batch.push(other);
    append(store, batch);
    let api = service_summary(store, "shop", "api");
    assert_eq!(
        (api.count, api.error_count),
        (6, 2),
        "count and error_count (error and above)"
    );
    assert_eq!(
        api.last_seen,
        Some(T0 + 9),
        "last_seen is the newest receive time"
    );
    let web = service_summary(store, "shop", "web");
    assert_eq!(
        (web.count, web.error_count, web.last_seen),
        (1, 1, Some(T0 + 100))
    );

    // Counters add up over appends; last_seen never goes back.
    let mut late = entry("shop", "api", Error, T0, "m");
    late.received_at = T0 + 2;
    append(store, vec![late.clone(), late]);
    let api = service_summary(store, "shop", "api");
    assert_eq!(
        (api.count, api.error_count, api.last_seen),
        (8, 4, Some(T0 + 9))
    );
}

fn tokens_lifecycle(store: &dyn Store) {
    assert!(
        !store.has_admin_token().expect("has_admin_token"),
        "a new store has no admin token"
    );
    store.ensure_service("shop", "api").expect("ensure_service");
    store.ensure_project("ops").expect("ensure_project");

    let admin = store
        .create_token(&TokenKind::Admin, "hash-admin", "fl_adm", T0)
        .expect("create admin token");
    assert!(store.has_admin_token().expect("has_admin_token"));
    let ingest_kind = TokenKind::Ingest {
        project: "shop".into(),
        service: "api".into(),
    };
    let ingest = store
        .create_token(&ingest_kind, "hash-ingest", "fl_ing", T0 + 1)
        .expect("create ingest token");
    let read = store
        .create_token(
            &TokenKind::Read {
                project: "shop".into(),
            },
            "hash-read",
            "fl_rd",
            T0 + 2,
        )
        .expect("create read token");
    let ops = store
        .create_token(
            &TokenKind::Read {
                project: "ops".into(),
            },
            "hash-ops",
            "fl_ops",
            T0 + 3,
        )
        .expect("create ops read token");
    assert_eq!(
        (
            ingest.kind.clone(),
            ingest.prefix.as_str(),
            ingest.created_at,
            ingest.last_used,
            ingest.revoked_at
        ),
        (ingest_kind, "fl_ing", T0 + 1, None, None)
    );
    let all_ids: HashSet<i64> = [admin.id, ingest.id, read.id, ops.id].into();
    assert_eq!(all_ids.len(), 4, "token ids are distinct");

    assert_eq!(
        store.find_token("hash-ingest").expect("find_token"),
        Some(ingest.clone())
    );
    assert_eq!(
        store.find_token("hash-admin").expect("find_token"),
        Some(admin.clone())
    );
    assert_eq!(store.find_token("nope").expect("find_token"), None);
    assert!(
        store
            .create_token(&TokenKind::Admin, "hash-admin", "x", T0)
            .is_err(),
        "a hash is unique"
    );

    let listed: Vec<i64> = store
        .list_tokens(None)
        .expect("list_tokens")
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(
        listed.iter().copied().collect::<HashSet<_>>(),
        all_ids,
        "all tokens without a project"
    );
    let mut shop: Vec<i64> = store
        .list_tokens(Some("shop"))
        .expect("list_tokens shop")
        .iter()
        .map(|t| t.id)
        .collect();
    shop.sort();
    let mut want = vec![ingest.id, read.id];
    want.sort();
    assert_eq!(
        shop, want,
        "a project's ingest and read tokens, not admin or other projects'"
    );
    assert!(
        store
            .list_tokens(Some("nope"))
            .expect("list_tokens nope")
            .is_empty()
    );

    // Use is recorded and never goes back in time.
    store
        .touch_tokens(&[(ingest.id, T0 + 50), (read.id, T0 + 40)])
        .expect("touch_tokens");
    store
        .touch_tokens(&[(ingest.id, T0 + 45), (987_654, T0)])
        .expect("touch_tokens with an old time and an unknown id");
    store.touch_tokens(&[]).expect("touch_tokens of nothing");
    let found = store
        .find_token("hash-ingest")
        .expect("find_token")
        .expect("token exists");
    assert_eq!(
        found.last_used,
        Some(T0 + 50),
        "last_used keeps the latest use"
    );
    let found = store
        .find_token("hash-read")
        .expect("find_token")
        .expect("token exists");
    assert_eq!(found.last_used, Some(T0 + 40));

    // Revocation keeps the token findable, with its revocation time.
    let revoked = store
        .revoke_token(ingest.id, T0 + 60)
        .expect("revoke_token");
    assert_eq!(revoked.revoked_at, Some(T0 + 60));
    assert_eq!(revoked.id, ingest.id);
    let found = store
        .find_token("hash-ingest")
        .expect("find_token")
        .expect("revoked tokens are still found");
    assert_eq!(found.revoked_at, Some(T0 + 60));
    assert!(
        matches!(
            store.revoke_token(123_456, T0),
            Err(StoreError::NotFound { .. })
        ),
        "revoking an unknown token is NotFound"
    );
    store.revoke_token(admin.id, T0 + 70).expect("revoke admin");
    assert!(
        !store.has_admin_token().expect("has_admin_token"),
        "revoked admin tokens do not count"
    );
    let second = store
        .create_token(&TokenKind::Admin, "hash-admin-2", "fl_ad2", T0 + 80)
        .expect("create another admin token");
    assert!(store.has_admin_token().expect("has_admin_token"));
    assert_eq!(
        store.find_token("hash-admin-2").expect("find_token"),
        Some(second)
    );
}

fn token_scopes_must_exist(store: &dyn Store) {
    store.ensure_service("shop", "api").expect("ensure_service");
    let missing_service = TokenKind::Ingest {
        project: "shop".into(),
        service: "web".into(),
    };
    assert!(
        matches!(
            store.create_token(&missing_service, "h1", "p", T0),
            Err(StoreError::NotFound { .. })
        ),
        "an ingest token needs its service"
    );
    let missing_project = TokenKind::Read {
        project: "ops".into(),
    };
    assert!(
        matches!(
            store.create_token(&missing_project, "h2", "p", T0),
            Err(StoreError::NotFound { .. })
        ),
        "a read token needs its project"
    );
    assert!(
        store.list_tokens(None).expect("list_tokens").is_empty(),
        "failed creations leave nothing"
    );
}

fn delete_expired_only_that_level_before_cutoff(store: &dyn Store) {
    use Level::*;
    let mut rows = Vec::new();
    for i in 0..10 {
        for level in [Debug, Info, Error] {
            rows.push(entry("p", "s", level, T0 + i * 10, "m"));
        }
    }
    let data = append(store, rows);
    let cutoff = T0 + 50;
    let deleted = store
        .delete_expired(Debug, cutoff, 1_000)
        .expect("delete_expired");
    assert_eq!(
        deleted, 5,
        "debug entries with timestamps before the cutoff (not at it)"
    );
    let left = walk(store, &LogFilter::default(), 100);
    let want: Vec<i64> = expected(&data, &LogFilter::default())
        .into_iter()
        .filter(|id| {
            let e = &data.iter().find(|e| e.id == *id).expect("known id").entry;
            !(e.level == Debug && e.timestamp < cutoff)
        })
        .collect();
    assert_eq!(ids(&left), want, "exactly those entries are gone");
    assert_eq!(
        store.delete_expired(Debug, cutoff, 1_000).expect("again"),
        0,
        "deleting again deletes nothing"
    );
    assert_eq!(
        store
            .delete_expired(Critical, T0 + 1_000, 1_000)
            .expect("critical"),
        0
    );
}

fn delete_expired_respects_max_rows(store: &dyn Store) {
    append(
        store,
        (0..7)
            .map(|i| entry("p", "s", Level::Info, T0 + i, "m"))
            .collect(),
    );
    assert_eq!(
        store
            .delete_expired(Level::Info, T0 + 100, 3)
            .expect("delete"),
        3
    );
    assert_eq!(walk(store, &LogFilter::default(), 10).len(), 4);
    assert_eq!(
        store
            .delete_expired(Level::Info, T0 + 100, 3)
            .expect("delete"),
        3
    );
    assert_eq!(
        store
            .delete_expired(Level::Info, T0 + 100, 3)
            .expect("delete"),
        1
    );
    assert_eq!(
        store
            .delete_expired(Level::Info, T0 + 100, 3)
            .expect("delete"),
        0
    );
    assert!(walk(store, &LogFilter::default(), 10).is_empty());
    assert_eq!(service_summary(store, "p", "s").count, 0);
}

fn delete_expired_sees_late_old_entries(store: &dyn Store) {
    append(store, vec![entry("p", "s", Level::Debug, T0 + 10, "early")]);
    assert_eq!(
        store
            .delete_expired(Level::Debug, T0 + 100, 10)
            .expect("delete"),
        1
    );
    // An entry whose timestamp is older than what was already expired, and
    // some that are newer, arrive after the retention pass.
    append(
        store,
        vec![
            entry("p", "s", Level::Debug, T0 + 1, "late but old"),
            entry("p", "s", Level::Debug, T0 + 150, "newer"),
        ],
    );
    assert_eq!(
        store
            .delete_expired(Level::Debug, T0 + 100, 10)
            .expect("delete"),
        1,
        "an old entry appended after a retention pass is expired by the next one"
    );
    assert_eq!(
        store
            .delete_expired(Level::Debug, T0 + 200, 10)
            .expect("delete"),
        1
    );
}

fn deleted_entries_leave_search_and_counters(store: &dyn Store) {
    use Level::*;
    append(
        store,
        vec![
            entry(
                "p",
                "s",
                Error,
                T0 + 1,
                "disk quota exceeded on volume alpha",
            ),
            entry(
                "p",
                "s",
                Error,
                T0 + 2,
                "disk quota exceeded on volume beta",
            ),
            entry("p", "s", Info, T0 + 3, "volume alpha mounted"),
            entry("p", "s", Critical, T0 + 4, "volume alpha lost"),
        ],
    );
    assert_eq!(walk(store, &text("quota"), 10).len(), 2);
    assert_eq!(store.delete_expired(Error, T0 + 2, 10).expect("delete"), 1);
    let quota = walk(store, &text("quota"), 10);
    assert_eq!(
        quota.len(),
        1,
        "a deleted entry no longer matches full-text search"
    );
    assert!(quota[0].entry.message.contains("beta"));
    assert_eq!(
        walk(store, &text("alpha"), 10).len(),
        2,
        "other entries with the same words still match"
    );
    assert!(walk(store, &text("quota alpha"), 10).is_empty());
    let s = service_summary(store, "p", "s");
    assert_eq!(
        (s.count, s.error_count),
        (3, 2),
        "counters drop with deleted entries"
    );
    assert_eq!(store.delete_expired(Info, T0 + 10, 10).expect("delete"), 1);
    assert_eq!(
        store.delete_expired(Critical, T0 + 10, 10).expect("delete"),
        1
    );
    let s = service_summary(store, "p", "s");
    assert_eq!((s.count, s.error_count), (1, 1));
    assert_eq!(walk(store, &text("alpha"), 10).len(), 0);
    assert_eq!(walk(store, &text("volume"), 10).len(), 1);
}

fn many_entries_and_batches_in_one_append(store: &dyn Store) {
    let big: Vec<NewEntry> = (0..5_000)
        .map(|i| {
            entry(
                "p",
                "big",
                Level::Info,
                T0 + i,
                &format!("bulk entry number {i}"),
            )
        })
        .collect();
    let small: Vec<NewEntry> = (0..3)
        .map(|i| entry("p", "small", Level::Error, T0 + i, "small batch"))
        .collect();
    let other: Vec<NewEntry> = vec![entry("q", "other", Level::Warn, T0, "other project")];
    let ids = store
        .append(&[&big, &small, &[], &other])
        .expect("append of several batches");
    assert_eq!(ids.len(), 5_004, "one id per entry of every batch");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids grow in batch and entry order"
    );
    let got = walk(store, &LogFilter::default(), 1_000);
    assert_eq!(got.len(), 5_004, "every entry of the append is visible");
    assert_eq!(service_summary(store, "p", "big").count, 5_000);
    assert_eq!(service_summary(store, "p", "small").error_count, 3);
    assert_eq!(service_summary(store, "q", "other").count, 1);
    let hit = walk(store, &text("number 4321"), 10);
    assert_eq!(hit.len(), 1, "entries of a big append are searchable");
    assert_eq!(hit[0].id, ids[4321]);
}

fn unsynced_appends_are_committed_then_synced(store: &dyn Store) {
    store
        .sync_appends()
        .expect("syncing before any append is a no-op");
    let first: Vec<NewEntry> = (0..50)
        .map(|i| entry("p", "s", Level::Info, T0 + i, &format!("unsynced {i}")))
        .collect();
    let second = vec![entry("p", "s", Level::Error, T0 + 50, "unsynced error")];
    let prepared = store.prepare(&first);
    let ids = store
        .append_prepared_unsynced(&[(&first, prepared.as_ref()), (&second, None)])
        .expect("unsynced append");
    assert_eq!(ids.len(), 51);
    // Committed: visible before the sync.
    assert_eq!(walk(store, &LogFilter::default(), 100).len(), 51);
    let more = store
        .append_prepared_unsynced(&[(&second, None)])
        .expect("a second unsynced append before the sync");
    store.sync_appends().expect("sync");
    // A synced append after unsynced ones.
    let last = store.append(&[&second]).expect("synced append");
    assert!(ids[50] < more[0] && more[0] < last[0], "ids keep growing");
    let got = walk(store, &LogFilter::default(), 100);
    assert_eq!(got.len(), 53);
    assert_eq!(service_summary(store, "p", "s").error_count, 3);
    assert_eq!(walk(store, &text("unsynced 42"), 10)[0].id, ids[42]);
}

fn size_is_reported(store: &dyn Store) {
    let before = store.size_bytes().expect("size_bytes");
    append(
        store,
        (0..2_000)
            .map(|i| entry("p", "s", Level::Info, T0 + i, &"x".repeat(200)))
            .collect(),
    );
    let after = store.size_bytes().expect("size_bytes");
    assert!(after > before, "size grows with data ({before} -> {after})");
    assert!(
        after >= 2_000 * 200,
        "size counts the stored bytes ({after})"
    );
}

/// Appends whose time ranges overlap (services interleaved in one append,
/// timestamps out of order, late and early entries, spans of hours): every
/// query shape still returns exactly `LogFilter`'s entries, newest first.
fn interleaved_appends_merge_newest_first(store: &dyn Store) {
    use Level::*;
    const HOUR: i64 = 3_600_000_000;
    let levels = [Trace, Debug, Info, Warn, Error, Critical];
    let words = ["alpha", "beta", "gamma", "delta"];
    let mut data = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..12i64 {
        let rows: Vec<NewEntry> = (0..40)
            .map(|i| {
                // Mostly around "now" for this round, some late (hours
                // old), some a little ahead, some on equal timestamps.
                let ts = match rand(10) {
                    0 => T0 + round * 1_000 - (rand(5) as i64 + 1) * HOUR,
                    1 => T0 + round * 1_000 + 2 * HOUR,
                    2 => T0 + 5_000,
                    _ => T0 + round * 1_000 + rand(3_000) as i64,
                };
                let service = ["a", "b", "c"][rand(3) as usize];
                let mut e = entry(
                    "p",
                    service,
                    levels[rand(6) as usize],
                    ts,
                    &format!(
                        "{} {} round{round} item{i}",
                        words[rand(4) as usize],
                        words[rand(4) as usize]
                    ),
                );
                if rand(3) == 0 {
                    e.tags = vec!["t".into()];
                }
                e
            })
            .collect();
        data.extend(append(store, rows));
    }
    let filters: Vec<LogFilter> = vec![
        LogFilter::default(),
        LogFilter {
            services: vec!["b".into()],
            ..LogFilter::default()
        },
        LogFilter {
            services: vec!["a".into(), "c".into()],
            min_level: Some(Warn),
            ..LogFilter::default()
        },
        LogFilter {
            since: Some(T0 - 2 * HOUR),
            until: Some(T0 + 6_000),
            tag: Some("t".into()),
            ..LogFilter::default()
        },
        text("alpha"),
        LogFilter {
            services: vec!["c".into()],
            ..text("beta gamma")
        },
    ];
    for f in &filters {
        let want = expected(&data, f);
        for limit in [1, 7, 100] {
            let got = walk(store, f, limit);
            assert_eq!(ids(&got), want, "cursor pages of {limit} with {f:?}");
        }
        let page = query(store, f, 10, Paging::Page(3));
        let want_page: Vec<i64> = want.iter().copied().skip(20).take(10).collect();
        assert_eq!(ids(&page.entries), want_page, "page 3 of 10 with {f:?}");
    }
    // Every field survives, whatever chunk or row an entry went to.
    let got = walk(store, &LogFilter::default(), 1_000);
    for e in &got {
        let original = data.iter().find(|d| d.id == e.id).expect("a known id");
        assert_eq!(e.entry, original.entry, "entry {} round-trips", e.id);
    }
}

/// Retention of one level inside appends that mix levels, services and
/// times: the other entries stay, with their ids and fields, and remain
/// searchable; later appends and deletions go on working.
fn delete_expired_inside_mixed_appends(store: &dyn Store) {
    use Level::*;
    let rows: Vec<NewEntry> = (0..60i64)
        .map(|i| {
            let level = [Debug, Info, Error][(i % 3) as usize];
            let service = if i % 4 == 0 { "x" } else { "y" };
            with_tags(
                entry(
                    "p",
                    service,
                    level,
                    T0 + (i * 37) % 60,
                    &format!("mixed entry {i} common"),
                ),
                &["keep"],
            )
        })
        .collect();
    let data = append(store, rows);
    let is_gone = |e: &StoredEntry, level: Level, before: i64| {
        e.entry.level == level && e.entry.timestamp < before
    };
    // Debug entries before T0 + 30, a few at a time.
    let mut deleted = 0;
    loop {
        let n = store
            .delete_expired(Debug, T0 + 30, 4)
            .expect("delete_expired");
        assert!(n <= 4, "at most max_rows per call");
        if n == 0 {
            break;
        }
        deleted += n;
    }
    let want_gone = data.iter().filter(|e| is_gone(e, Debug, T0 + 30)).count();
    assert_eq!(deleted, want_gone, "every expired debug entry, no other");
    let left: Vec<StoredEntry> = data
        .iter()
        .filter(|e| !is_gone(e, Debug, T0 + 30))
        .cloned()
        .collect();
    let got = walk(store, &LogFilter::default(), 9);
    assert_eq!(
        ids(&got),
        expected(&left, &LogFilter::default()),
        "the kept entries, in order"
    );
    for e in &got {
        let original = data.iter().find(|d| d.id == e.id).expect("a known id");
        assert_eq!(e.entry, original.entry, "entry {} is unchanged", e.id);
    }
    for f in [
        text("common"),
        text("entry 3"),
        LogFilter {
            services: vec!["x".into()],
            ..text("mixed")
        },
    ] {
        assert_eq!(
            ids(&walk(store, &f, 5)),
            expected(&left, &f),
            "search after retention with {f:?}"
        );
    }
    let x = data.iter().filter(|e| e.entry.service == "x").count()
        - data
            .iter()
            .filter(|e| e.entry.service == "x" && is_gone(e, Debug, T0 + 30))
            .count();
    assert_eq!(service_summary(store, "p", "x").count, x as i64);
    // Then errors, all of them, and an append after it.
    let errors = data.iter().filter(|e| e.entry.level == Error).count();
    assert_eq!(
        store
            .delete_expired(Error, T0 + 1_000, 1_000)
            .expect("delete errors"),
        errors
    );
    let more = append(store, vec![entry("p", "x", Error, T0 + 1, "late common")]);
    let left: Vec<StoredEntry> = left
        .into_iter()
        .filter(|e| e.entry.level != Error)
        .chain(more)
        .collect();
    assert_eq!(
        ids(&walk(store, &text("common"), 4)),
        expected(&left, &text("common"))
    );
    assert_eq!(
        ids(&walk(store, &LogFilter::default(), 100)),
        expected(&left, &LogFilter::default())
    );
}
