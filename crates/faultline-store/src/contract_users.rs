//! The contract of users and sessions ([`crate::UserStore`]) and of the
//! dashboard's counts ([`crate::Store::log_counts`],
//! [`crate::Store::service_activity`], [`crate::IssueStore::project_overview`],
//! [`crate::IssueStore::issues_for_logs`], [`crate::IssueStore::issue_counts`]),
//! run like [`crate::contract`]: `contract_users::run_all(&make_store)`.

use crate::contract::{Check, run_checks};
use crate::{
    Bucket, EventBatch, LogCount, MAX_IDS_PER_CALL, ProjectOverview, ServiceActivity, StatusUpdate,
    Store, StoreError,
};
use faultline_model::{Attributes, IssueStatus, Level, NewEntry, NewEvent};

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    ("users_are_unique_and_listed", users_are_unique_and_listed),
    (
        "passwords_change_and_users_go",
        passwords_change_and_users_go,
    ),
    ("sessions_find_expire_and_go", sessions_find_expire_and_go),
    (
        "deleting_a_user_ends_its_sessions",
        deleting_a_user_ends_its_sessions,
    ),
    ("expired_sessions_are_swept", expired_sessions_are_swept),
    (
        "log_counts_per_hour_and_level",
        log_counts_per_hour_and_level,
    ),
    (
        "log_counts_per_day_and_filters",
        log_counts_per_day_and_filters,
    ),
    ("log_counts_survive_retention", log_counts_survive_retention),
    (
        "service_activity_lists_every_service",
        service_activity_lists_every_service,
    ),
    (
        "project_overview_counts_issues",
        project_overview_counts_issues,
    ),
    ("issues_for_logs_maps_entries", issues_for_logs_maps_entries),
    ("issue_counts_per_hour", issue_counts_per_hour),
];

/// Runs every check on a fresh store from `make`.
pub fn run_all(make: &dyn Fn() -> Box<dyn Store>) {
    run_checks("user store", CHECKS, make);
}

const T0: i64 = 1_700_000_000_000_000;
const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 86_400_000_000;
/// The start of a UTC day.
const D0: i64 = T0 - T0 % DAY;

// ---------------------------------------------------------------- helpers

fn is_not_found<T: std::fmt::Debug>(r: crate::Result<T>) -> bool {
    matches!(r, Err(StoreError::NotFound { .. }))
}

fn is_invalid<T: std::fmt::Debug>(r: crate::Result<T>) -> bool {
    matches!(r, Err(StoreError::Invalid(_)))
}

fn names(store: &dyn Store) -> Vec<String> {
    store
        .list_users()
        .expect("list_users")
        .into_iter()
        .map(|u| u.username)
        .collect()
}

/// An entry received five hours after its timestamp: counts go by the
/// timestamp.
fn entry(project: &str, service: &str, level: Level, ts: i64) -> NewEntry {
    NewEntry {
        project: project.into(),
        service: service.into(),
        level,
        message: format!("{level} at {ts}"),
        tags: Vec::new(),
        timestamp: ts,
        received_at: ts + 5 * HOUR,
        host: None,
        attributes: Attributes::new(),
        trace_id: None,
        span_id: None,
    }
}

/// `ids` and negative (never given) ids up to [`MAX_IDS_PER_CALL`].
fn padded(ids: &[i64]) -> Vec<i64> {
    let mut all = ids.to_vec();
    let mut n = 0;
    while all.len() < MAX_IDS_PER_CALL {
        n -= 1;
        all.push(n);
    }
    all
}

fn append(store: &dyn Store, batches: &[&[NewEntry]]) -> Vec<i64> {
    store.append(batches).expect("append")
}

fn count(bucket: i64, level: Level, count: u64) -> LogCount {
    LogCount {
        bucket,
        level,
        count,
    }
}

fn counts(
    store: &dyn Store,
    project: &str,
    service: Option<&str>,
    bucket: Bucket,
    since: i64,
) -> Vec<LogCount> {
    store
        .log_counts(project, service, bucket, since)
        .unwrap_or_else(|e| panic!("log_counts({project}, {service:?}, {bucket:?}, {since}): {e}"))
}

fn activity(service: &str, total: u64, errors: u64) -> ServiceActivity {
    ServiceActivity {
        service: service.into(),
        total,
        errors,
    }
}

fn event(project: &str, fingerprint: &str, ts: i64, log_id: Option<i64>) -> NewEvent {
    NewEvent {
        log_id,
        ..crate::contract_issues::event(project, fingerprint, ts)
    }
}

/// Records the events; returns their issue ids.
fn record(store: &dyn Store, events: Vec<NewEvent>) -> Vec<i64> {
    store
        .record_events(&EventBatch {
            events,
            ..Default::default()
        })
        .expect("record_events")
        .into_iter()
        .map(|o| o.issue_id)
        .collect()
}

fn set_status(store: &dyn Store, id: i64, status: IssueStatus) {
    store
        .set_issue_status(
            id,
            &StatusUpdate {
                status,
                ignore: None,
                actor: "tester".into(),
                at: T0,
            },
        )
        .expect("set_issue_status");
}

// ---------------------------------------------------------------- users

fn users_are_unique_and_listed(store: &dyn Store) {
    assert_eq!(store.count_users().expect("count_users"), 0);
    assert!(store.list_users().expect("list_users").is_empty());
    assert_eq!(store.find_user("alice").expect("find_user"), None);
    let carol = store
        .create_user("carol", "hash-c", T0)
        .expect("create carol");
    let alice = store
        .create_user("alice", "hash-a", T0 + 1)
        .expect("create alice");
    let bob = store
        .create_user("bob", "hash-b", T0 + 2)
        .expect("create bob");
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.created_at, T0 + 1);
    assert_eq!(alice.last_login, None);
    assert!(
        carol.id != alice.id && alice.id != bob.id && carol.id != bob.id,
        "distinct ids"
    );
    assert_eq!(
        names(store),
        ["alice", "bob", "carol"],
        "listed by username"
    );
    let listed = store.list_users().expect("list_users");
    assert_eq!(listed[0], alice, "list_users returns the created user");
    // Exact names: another case is another user.
    let dup = store.create_user("alice", "other", T0 + 3);
    assert!(
        matches!(dup, Err(StoreError::Conflict(_))),
        "a taken username is a Conflict: {dup:?}"
    );
    let upper = store
        .create_user("Alice", "hash-A", T0 + 4)
        .expect("another case is another name");
    assert_ne!(upper.id, alice.id);
    assert_eq!(store.count_users().expect("count_users"), 4);
    let (found, hash) = store
        .find_user("alice")
        .expect("find_user")
        .expect("alice exists");
    assert_eq!(found, alice);
    assert_eq!(hash, "hash-a", "the duplicate did not overwrite the hash");
    let (found, hash) = store
        .find_user("Alice")
        .expect("find_user")
        .expect("Alice exists");
    assert_eq!((found.id, hash.as_str()), (upper.id, "hash-A"));
    assert_eq!(store.find_user("ALICE").expect("find_user"), None);
    assert_eq!(store.find_user("alic").expect("find_user"), None);
    assert!(
        is_invalid(store.create_user("", "h", T0)),
        "an empty username is Invalid"
    );
    assert_eq!(store.count_users().expect("count_users"), 4);
}

fn passwords_change_and_users_go(store: &dyn Store) {
    let alice = store.create_user("alice", "old", T0).expect("create");
    let bob = store.create_user("bob", "bob-hash", T0).expect("create");
    let far = T0 + 1_000 * HOUR;
    store
        .create_session("alice-session", alice.id, "c", T0, far)
        .expect("session");
    store
        .create_session("bob-session", bob.id, "c", T0, far)
        .expect("session");
    store
        .set_user_password(alice.id, "new")
        .expect("set_user_password");
    assert_eq!(
        store.find_session("alice-session", T0 + 1).expect("find"),
        None,
        "a new password ends the user's sessions"
    );
    assert!(
        store
            .find_session("bob-session", T0 + 1)
            .expect("find")
            .is_some(),
        "other users stay logged in"
    );
    let (_, hash) = store.find_user("alice").expect("find").expect("exists");
    assert_eq!(hash, "new");
    let (_, hash) = store.find_user("bob").expect("find").expect("exists");
    assert_eq!(hash, "bob-hash", "only that user's password changes");
    let missing = alice.id.max(bob.id) + 1000;
    assert!(
        is_not_found(store.set_user_password(missing, "x")),
        "unknown user: NotFound"
    );
    assert!(is_not_found(store.delete_user(missing)));
    store.delete_user(alice.id).expect("delete_user");
    assert_eq!(store.find_user("alice").expect("find"), None);
    assert_eq!(names(store), ["bob"]);
    assert_eq!(store.count_users().expect("count_users"), 1);
    assert!(
        is_not_found(store.delete_user(alice.id)),
        "deleting twice: NotFound"
    );
    assert!(is_not_found(store.set_user_password(alice.id, "x")));
    // The name is free again.
    let again = store.create_user("alice", "h2", T0 + 5).expect("recreate");
    assert_eq!(again.created_at, T0 + 5);
    assert_eq!(again.last_login, None);
}

// ------------------------------------------------------------- sessions

fn sessions_find_expire_and_go(store: &dyn Store) {
    let alice = store.create_user("alice", "h", T0).expect("create");
    let bob = store.create_user("bob", "h", T0).expect("create");
    let login = T0 + HOUR;
    let expires = login + 10 * HOUR;
    store
        .create_session("tok-a", alice.id, "csrf-a", login, expires)
        .expect("create_session");
    // last_login is the session's creation time.
    let (u, _) = store.find_user("alice").expect("find").expect("exists");
    assert_eq!(u.last_login, Some(login));
    let (u, _) = store.find_user("bob").expect("find").expect("exists");
    assert_eq!(u.last_login, None, "only that user logged in");
    let s = store
        .find_session("tok-a", login)
        .expect("find_session")
        .expect("the session is found");
    assert_eq!(s.user.id, alice.id);
    assert_eq!(s.user.username, "alice");
    assert_eq!(s.user.last_login, Some(login));
    assert_eq!(s.csrf, "csrf-a");
    assert_eq!(s.created_at, login);
    assert_eq!(s.expires_at, expires);
    assert!(
        store
            .find_session("tok-a", expires - 1)
            .expect("find_session")
            .is_some(),
        "valid until just before expires_at"
    );
    assert_eq!(
        store.find_session("tok-a", expires).expect("find_session"),
        None,
        "expired at expires_at"
    );
    assert_eq!(
        store.find_session("tok-b", login).expect("find_session"),
        None
    );
    // A second login moves last_login.
    store
        .create_session("tok-a2", alice.id, "csrf-a2", login + 5, expires)
        .expect("create_session");
    let (u, _) = store.find_user("alice").expect("find").expect("exists");
    assert_eq!(u.last_login, Some(login + 5));
    assert_eq!(
        store
            .find_session("tok-a2", login + 5)
            .expect("find")
            .expect("second session")
            .csrf,
        "csrf-a2"
    );
    let dup = store.create_session("tok-a", bob.id, "x", login, expires);
    assert!(
        matches!(dup, Err(StoreError::Conflict(_))),
        "a token hash in use is a Conflict: {dup:?}"
    );
    assert_eq!(
        store
            .find_session("tok-a", login)
            .expect("find")
            .expect("still alice's")
            .user
            .id,
        alice.id
    );
    // Unknown user: NotFound, and nothing is stored.
    let missing = alice.id.max(bob.id) + 1000;
    assert!(is_not_found(
        store.create_session("tok-x", missing, "c", login, expires)
    ));
    assert_eq!(store.find_session("tok-x", login).expect("find"), None);
    // Deleting is idempotent and only that session goes.
    store.delete_session("tok-a").expect("delete_session");
    assert_eq!(store.find_session("tok-a", login).expect("find"), None);
    store
        .delete_session("tok-a")
        .expect("deleting again is fine");
    store
        .delete_session("never-existed")
        .expect("deleting an unknown session is fine");
    assert!(
        store.find_session("tok-a2", login).expect("find").is_some(),
        "the other session stays"
    );
}

fn deleting_a_user_ends_its_sessions(store: &dyn Store) {
    let alice = store.create_user("alice", "h", T0).expect("create");
    let bob = store.create_user("bob", "h", T0).expect("create");
    let end = T0 + DAY;
    for (tok, user) in [("a1", alice.id), ("a2", alice.id), ("b1", bob.id)] {
        store
            .create_session(tok, user, "c", T0, end)
            .expect("create_session");
    }
    store.delete_user(alice.id).expect("delete_user");
    assert_eq!(store.find_session("a1", T0).expect("find"), None);
    assert_eq!(store.find_session("a2", T0).expect("find"), None);
    assert!(store.find_session("b1", T0).expect("find").is_some());
    // A new user of the same name does not inherit the sessions.
    let again = store.create_user("alice", "h", T0 + 1).expect("recreate");
    assert_eq!(store.find_session("a1", T0).expect("find"), None);
    assert_eq!(again.last_login, None);
    assert_eq!(
        store.delete_expired_sessions(end).expect("sweep"),
        1,
        "only bob's session was left to expire"
    );
}

fn expired_sessions_are_swept(store: &dyn Store) {
    let u = store.create_user("alice", "h", T0).expect("create");
    for (tok, exp) in [("s10", T0 + 10), ("s20", T0 + 20), ("s30", T0 + 30)] {
        store
            .create_session(tok, u.id, "c", T0, exp)
            .expect("create_session");
    }
    assert_eq!(store.delete_expired_sessions(T0).expect("sweep"), 0);
    assert_eq!(
        store.delete_expired_sessions(T0 + 20).expect("sweep"),
        2,
        "expires_at <= now goes"
    );
    // Gone, not merely expired: still absent when asked at an earlier time.
    assert_eq!(store.find_session("s10", T0).expect("find"), None);
    assert_eq!(store.find_session("s20", T0).expect("find"), None);
    assert!(store.find_session("s30", T0).expect("find").is_some());
    assert_eq!(store.delete_expired_sessions(T0 + 20).expect("sweep"), 0);
    assert_eq!(store.delete_expired_sessions(T0 + 31).expect("sweep"), 1);
    assert_eq!(store.find_session("s30", T0).expect("find"), None);
    assert_eq!(
        store.count_users().expect("count_users"),
        1,
        "the user stays"
    );
}

// ----------------------------------------------------------- log counts

/// Project `p` (services api, web) over hours 0-2 of day D0, an entry the
/// hour before, and project `q`; in two appends, the first of two batches.
fn counted_dataset(store: &dyn Store) {
    use Level::*;
    let first = [
        entry("p", "api", Info, D0 + 10),
        entry("p", "web", Info, D0 + 20),
        entry("p", "api", Error, D0 + HOUR),
        entry("p", "api", Info, D0 + HOUR - 1),
    ];
    let second = [
        entry("p", "web", Critical, D0 + HOUR + 1),
        entry("q", "api", Info, D0 + 40),
        entry("p", "api", Warn, D0 + 2 * HOUR + 5),
    ];
    append(store, &[&first, &second]);
    append(
        store,
        &[&[
            entry("p", "api", Info, D0 + 30),
            entry("p", "api", Error, D0 - 1),
        ]],
    );
}

fn log_counts_per_hour_and_level(store: &dyn Store) {
    use Level::*;
    counted_dataset(store);
    let want = vec![
        count(D0, Info, 4),
        count(D0 + HOUR, Error, 1),
        count(D0 + HOUR, Critical, 1),
        count(D0 + 2 * HOUR, Warn, 1),
    ];
    assert_eq!(
        counts(store, "p", None, Bucket::Hour, D0),
        want,
        "per hour and level, summed over services and appends, by timestamp"
    );
    assert_eq!(
        counts(store, "p", None, Bucket::Hour, D0 + HOUR / 2),
        want,
        "since counts from the start of its hour"
    );
    assert_eq!(
        counts(store, "p", None, Bucket::Hour, D0 + HOUR),
        want[1..].to_vec(),
        "since filters whole hours"
    );
    let mut with_before = vec![count(D0 - HOUR, Error, 1)];
    with_before.extend(want.iter().cloned());
    assert_eq!(
        counts(store, "p", None, Bucket::Hour, D0 - 3 * HOUR),
        with_before,
    );
    assert_eq!(
        counts(store, "p", None, Bucket::Hour, D0 + 3 * HOUR),
        Vec::new(),
        "nothing after the last entry"
    );
    assert_eq!(
        counts(store, "q", None, Bucket::Hour, D0),
        vec![count(D0, Info, 1)],
        "each project its own"
    );
    // More entries add to the same rows.
    append(
        store,
        &[&[
            entry("p", "web", Info, D0 + 50),
            entry("p", "web", Warn, D0 + 2 * HOUR),
        ]],
    );
    assert_eq!(
        counts(store, "p", None, Bucket::Hour, D0),
        vec![
            count(D0, Info, 5),
            count(D0 + HOUR, Error, 1),
            count(D0 + HOUR, Critical, 1),
            count(D0 + 2 * HOUR, Warn, 2),
        ]
    );
}

fn log_counts_per_day_and_filters(store: &dyn Store) {
    use Level::*;
    counted_dataset(store);
    append(
        store,
        &[&[
            entry("p", "web", Error, D0 + DAY + 3 * HOUR),
            entry("p", "api", Error, D0 + 2 * DAY - 1),
            entry("p", "api", Debug, D0 + 2 * DAY),
        ]],
    );
    assert_eq!(
        counts(store, "p", None, Bucket::Day, D0 - DAY),
        vec![
            count(D0 - DAY, Error, 1),
            count(D0, Info, 4),
            count(D0, Warn, 1),
            count(D0, Error, 1),
            count(D0, Critical, 1),
            count(D0 + DAY, Error, 2),
            count(D0 + 2 * DAY, Debug, 1),
        ],
        "per UTC day, by bucket then level"
    );
    assert_eq!(
        counts(store, "p", None, Bucket::Day, D0 + HOUR),
        vec![
            count(D0, Warn, 1),
            count(D0, Error, 1),
            count(D0, Critical, 1),
            count(D0 + DAY, Error, 2),
            count(D0 + 2 * DAY, Debug, 1),
        ],
        "a day bucket counts the hours from since on"
    );
    assert_eq!(
        counts(store, "p", Some("web"), Bucket::Hour, D0 - DAY),
        vec![
            count(D0, Info, 1),
            count(D0 + HOUR, Critical, 1),
            count(D0 + DAY + 3 * HOUR, Error, 1),
        ],
        "one service"
    );
    assert_eq!(
        counts(store, "p", Some("web"), Bucket::Day, D0 - DAY),
        vec![
            count(D0, Info, 1),
            count(D0, Critical, 1),
            count(D0 + DAY, Error, 1),
        ]
    );
    assert_eq!(
        counts(store, "p", Some("nope"), Bucket::Hour, D0 - DAY),
        Vec::new(),
        "an unknown service of a known project has no entries"
    );
    assert_eq!(
        counts(store, "q", Some("web"), Bucket::Hour, D0 - DAY),
        Vec::new(),
        "the service of another project"
    );
    for bucket in [Bucket::Hour, Bucket::Day] {
        let r = store.log_counts("nope", None, bucket, D0);
        assert!(is_not_found(r), "unknown project: NotFound");
        assert!(is_not_found(store.log_counts(
            "nope",
            Some("api"),
            bucket,
            D0
        )));
    }
    // A project without entries.
    store.ensure_project("empty").expect("ensure_project");
    assert_eq!(counts(store, "empty", None, Bucket::Day, 0), Vec::new());
}

fn log_counts_survive_retention(store: &dyn Store) {
    use Level::*;
    counted_dataset(store);
    let before_hour = counts(store, "p", None, Bucket::Hour, D0 - DAY);
    let before_activity = store.service_activity("p", D0 - DAY).expect("activity");
    let deleted = store
        .delete_expired(Info, D0 + DAY, 100)
        .expect("delete_expired")
        + store
            .delete_expired(Error, D0 + DAY, 100)
            .expect("delete_expired");
    assert_eq!(deleted, 7, "five info and two error entries of p and q");
    assert_eq!(
        counts(store, "p", None, Bucket::Hour, D0 - DAY),
        before_hour,
        "retention deletes do not change the counts"
    );
    assert_eq!(
        store.service_activity("p", D0 - DAY).expect("activity"),
        before_activity
    );
}

fn service_activity_lists_every_service(store: &dyn Store) {
    use Level::*;
    counted_dataset(store);
    store.ensure_service("p", "idle").expect("ensure_service");
    append(store, &[&[entry("p", "old", Critical, D0 - DAY)]]);
    let got = store.service_activity("p", D0).expect("service_activity");
    assert_eq!(
        got,
        vec![
            activity("api", 5, 1),
            activity("idle", 0, 0),
            activity("old", 0, 0),
            activity("web", 2, 1),
        ],
        "every service of the project by name; errors are error and above"
    );
    assert_eq!(
        store
            .service_activity("p", D0 - DAY)
            .expect("service_activity"),
        vec![
            activity("api", 6, 2),
            activity("idle", 0, 0),
            activity("old", 1, 1),
            activity("web", 2, 1),
        ],
    );
    assert_eq!(
        store
            .service_activity("p", D0 + HOUR + HOUR / 2)
            .expect("service_activity"),
        vec![
            activity("api", 2, 1),
            activity("idle", 0, 0),
            activity("old", 0, 0),
            activity("web", 1, 1),
        ],
        "since counts from the start of its hour"
    );
    assert_eq!(
        store.service_activity("q", D0).expect("service_activity"),
        vec![activity("api", 1, 0)]
    );
    assert!(is_not_found(store.service_activity("nope", D0)));
    store.ensure_project("empty").expect("ensure_project");
    assert_eq!(
        store
            .service_activity("empty", D0)
            .expect("service_activity"),
        Vec::new()
    );
}

// --------------------------------------------------------------- issues

fn project_overview_counts_issues(store: &dyn Store) {
    let ids = record(
        store,
        vec![
            event("p", "old-open", T0, None),
            event("p", "old-resolved", T0 + 1, None),
            event("p", "old-regressed", T0 + 2, None),
            event("p", "old-regressed-ignored", T0 + 3, None),
            event("p", "new-open", T0 + 10 * HOUR, None),
            event("p", "new-resolved", T0 + 10 * HOUR + 1, None),
            event("q", "elsewhere", T0 + 10 * HOUR, None),
        ],
    );
    let [
        _,
        resolved,
        regressed,
        regressed_ignored,
        _,
        new_resolved,
        _,
    ] = ids[..]
    else {
        panic!("seven outcomes");
    };
    for id in [resolved, regressed, regressed_ignored, new_resolved] {
        set_status(store, id, IssueStatus::Resolved);
    }
    // Regressions: new events of resolved issues.
    record(
        store,
        vec![
            event("p", "old-regressed", T0 + 20 * HOUR, None),
            event("p", "old-regressed-ignored", T0 + 20 * HOUR, None),
        ],
    );
    set_status(store, regressed_ignored, IssueStatus::Ignored);
    let got = store
        .project_overview("p", T0 + 10 * HOUR)
        .expect("overview");
    assert_eq!(
        got,
        ProjectOverview {
            unresolved: 3,
            new_since: 2,
            regressed: 1,
        },
        "unresolved: old-open, old-regressed, new-open; new: new-open, new-resolved \
         (any status); regressed: old-regressed only (the other is ignored)"
    );
    assert_eq!(
        store.project_overview("p", T0).expect("overview").new_since,
        6,
        "first_seen >= since, inclusive"
    );
    assert_eq!(
        store
            .project_overview("p", T0 + 10 * HOUR + 2)
            .expect("overview")
            .new_since,
        0
    );
    // Resolving clears the regression.
    set_status(store, regressed, IssueStatus::Resolved);
    assert_eq!(
        store
            .project_overview("p", T0 + 10 * HOUR)
            .expect("overview"),
        ProjectOverview {
            unresolved: 2,
            new_since: 2,
            regressed: 0,
        }
    );
    assert_eq!(
        store.project_overview("q", T0).expect("overview"),
        ProjectOverview {
            unresolved: 1,
            new_since: 1,
            regressed: 0,
        }
    );
    store.ensure_project("empty").expect("ensure_project");
    assert_eq!(
        store.project_overview("empty", 0).expect("overview"),
        ProjectOverview {
            unresolved: 0,
            new_since: 0,
            regressed: 0,
        }
    );
    assert!(is_not_found(store.project_overview("nope", T0)));
}

fn issues_for_logs_maps_entries(store: &dyn Store) {
    let ids = record(
        store,
        vec![
            event("p", "a", T0, Some(101)),
            event("p", "a", T0 + 1, Some(102)),
            event("p", "b", T0 + 2, Some(103)),
            event("p", "b", T0 + 3, None),
            event("q", "c", T0 + 4, Some(104)),
            // The same entry again (a replay): one pair.
            event("p", "a", T0 + 5, Some(101)),
        ],
    );
    let (a, b, c) = (ids[0], ids[2], ids[4]);
    assert_ne!(a, b);
    assert_eq!(
        store
            .issues_for_logs(&[103, 999, 101, 104, 102])
            .expect("issues_for_logs"),
        vec![(101, a), (102, a), (103, b), (104, c)],
        "by log id; ids without an event are left out"
    );
    assert_eq!(
        store
            .issues_for_logs(&[999, 0, -1])
            .expect("issues_for_logs"),
        Vec::new()
    );
    assert_eq!(
        store.issues_for_logs(&[]).expect("issues_for_logs"),
        Vec::new()
    );
    // Merging moves the events: their entries lead to the issue they
    // moved to.
    store
        .merge_issues(b, a, "tester", T0 + 10)
        .expect("merge_issues");
    assert_eq!(
        store
            .issues_for_logs(&[101, 102, 103])
            .expect("issues_for_logs"),
        vec![(101, b), (102, b), (103, b)]
    );
    store.delete_issue(c).expect("delete_issue");
    assert_eq!(
        store.issues_for_logs(&[104]).expect("issues_for_logs"),
        Vec::new(),
        "a deleted issue's entries have no issue"
    );
    let many = padded(&[103, 101, 102]);
    assert_eq!(
        store.issues_for_logs(&many).expect("1000 ids are fine"),
        vec![(101, b), (102, b), (103, b)]
    );
    let mut too_many = many.clone();
    too_many.push(-5_000);
    assert!(
        is_invalid(store.issues_for_logs(&too_many)),
        "more than 1000 ids: Invalid"
    );
}

fn issue_counts_per_hour(store: &dyn Store) {
    let h0 = T0 - T0 % HOUR;
    let mut heavy = event("p", "a", h0 + 2 * HOUR + 7, None);
    heavy.details.count = 3;
    let ids = record(
        store,
        vec![
            event("p", "a", h0 + 1, None),
            event("p", "a", h0 + 2, None),
            event("p", "b", h0 + 5, None),
            event("p", "a", h0 + HOUR, None),
            heavy,
            event("p", "b", h0 + 3 * HOUR, None),
            event("p", "c", h0 + 3 * HOUR, None),
        ],
    );
    let (a, b, c) = (ids[0], ids[2], ids[6]);
    assert!(a < b, "issue ids grow");
    assert_eq!(
        store.issue_counts(&[b, a], h0).expect("issue_counts"),
        vec![
            (a, h0, 2),
            (a, h0 + HOUR, 1),
            (a, h0 + 2 * HOUR, 3),
            (b, h0, 1),
            (b, h0 + 3 * HOUR, 1),
        ],
        "by issue then hour, weighted by the events' counts; only the issues asked for"
    );
    assert_eq!(
        store
            .issue_counts(&[a, b], h0 + HOUR)
            .expect("issue_counts"),
        vec![
            (a, h0 + HOUR, 1),
            (a, h0 + 2 * HOUR, 3),
            (b, h0 + 3 * HOUR, 1)
        ],
        "hour >= since"
    );
    assert_eq!(
        store
            .issue_counts(&[c], h0 + 4 * HOUR)
            .expect("issue_counts"),
        Vec::new()
    );
    assert_eq!(
        store
            .issue_counts(&[c + 1000], h0)
            .expect("unknown issues have no counts"),
        Vec::new()
    );
    assert_eq!(
        store.issue_counts(&[], h0).expect("issue_counts"),
        Vec::new()
    );
    let many = padded(&[c, a, b]);
    assert_eq!(
        store.issue_counts(&many, h0 + 3 * HOUR).expect("1000 ids"),
        vec![(b, h0 + 3 * HOUR, 1), (c, h0 + 3 * HOUR, 1)]
    );
    let mut too_many = many.clone();
    too_many.push(-5_000);
    assert!(
        is_invalid(store.issue_counts(&too_many, h0)),
        "more than 1000 ids: Invalid"
    );
}
