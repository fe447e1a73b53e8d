//! The contract of the issue side of a store ([`crate::IssueStore`]), run
//! like [`crate::contract`]: `contract_issues::run_all(&make_store)`.

use crate::contract::{Check, run_checks};
use crate::{Attachment, Bucket, EventBatch, IssueQuery, IssueSort, StatusUpdate, Store};
use faultline_model::{
    AttachmentRef, AttrValue, Attributes, EventDetails, EventFrame, IgnoreUntil, IssueStatus,
    Level, NewEntry, NewEvent,
};

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    (
        "one_issue_per_fingerprint_with_exact_counts",
        one_issue_per_fingerprint_with_exact_counts,
    ),
    ("events_round_trip", events_round_trip),
    (
        "resolved_issue_regresses_with_history",
        resolved_issue_regresses_with_history,
    ),
    ("ignore_until_count_ends", ignore_until_count_ends),
    ("idempotency_keys_record_once", idempotency_keys_record_once),
    (
        "merged_fingerprints_keep_their_issue",
        merged_fingerprints_keep_their_issue,
    ),
    ("api_merge_moves_everything", api_merge_moves_everything),
    ("list_filters_sorts_and_pages", list_filters_sorts_and_pages),
    ("histogram_buckets", histogram_buckets),
    ("deleted_issue_reopens_as_new", deleted_issue_reopens_as_new),
    ("processor_state_round_trips", processor_state_round_trips),
    ("events_page_newest_first", events_page_newest_first),
    ("expired_events_go", expired_events_go),
    (
        "concurrent_recording_loses_nothing",
        concurrent_recording_loses_nothing,
    ),
    ("entries_after_for_catch_up", entries_after_for_catch_up),
    ("unknown_issue_is_not_found", unknown_issue_is_not_found),
    (
        "attachments_are_content_addressed_and_collected",
        attachments_are_content_addressed_and_collected,
    ),
    ("tickets_link_to_issues", tickets_link_to_issues),
];

/// Runs every check on a fresh store from `make`.
pub fn run_all(make: &dyn Fn() -> Box<dyn Store>) {
    run_checks("issue store", CHECKS, make);
}

const T0: i64 = 1_700_000_000_000_000;
const HOUR: i64 = 3_600_000_000;

pub(crate) fn event(project: &str, fingerprint: &str, ts: i64) -> NewEvent {
    NewEvent {
        project: project.into(),
        service: "api".into(),
        fingerprint: fingerprint.into(),
        title: format!("Error {fingerprint}"),
        culprit: Some("app.handlers.run".into()),
        level: Level::Error,
        timestamp: ts,
        received_at: ts + 5,
        log_id: None,
        message: format!("boom {fingerprint}"),
        host: None,
        user: None,
        tags: Vec::new(),
        attributes: Attributes::new(),
        details: EventDetails {
            count: 1,
            ..Default::default()
        },
        key: None,
    }
}

fn record(store: &dyn Store, events: Vec<NewEvent>) -> Vec<crate::EventOutcome> {
    store
        .record_events(&EventBatch {
            events,
            ..Default::default()
        })
        .expect("record_events")
}

fn query(project: &str) -> IssueQuery {
    IssueQuery {
        project: Some(project.into()),
        limit: 100,
        page: 1,
        now: T0 + 1000 * HOUR,
        ..Default::default()
    }
}

fn status(store: &dyn Store, id: i64, status: IssueStatus, ignore: Option<IgnoreUntil>) {
    store
        .set_issue_status(
            id,
            &StatusUpdate {
                status,
                ignore,
                actor: "tester".into(),
                at: T0,
            },
        )
        .expect("set_issue_status");
}

fn one_issue_per_fingerprint_with_exact_counts(store: &dyn Store) {
    let mut evs = Vec::new();
    for i in 0..10 {
        let mut e = event("p", if i % 2 == 0 { "aa" } else { "bb" }, T0 + i * 1000);
        e.host = Some(format!("host{}", i % 3));
        e.user = (i < 4).then(|| format!("user{i}"));
        if i == 9 {
            e.level = Level::Critical;
        }
        evs.push(e);
    }
    let mut heavy = event("p", "aa", T0 + 50_000);
    heavy.details.count = 5;
    evs.push(heavy);
    let out = record(store, evs);
    assert_eq!(out.len(), 11);
    assert!(out[0].new_issue && out[1].new_issue);
    assert!(out[2..].iter().all(|o| !o.new_issue));
    let page = store.list_issues(&query("p")).unwrap();
    assert_eq!(page.total, 2);
    let a = page.issues.iter().find(|i| i.fingerprint == "aa").unwrap();
    let b = page.issues.iter().find(|i| i.fingerprint == "bb").unwrap();
    assert_eq!(a.count, 5 + 5, "five events plus one standing for five");
    assert_eq!(b.count, 5);
    assert_eq!(a.first_seen, T0);
    assert_eq!(a.last_seen, T0 + 50_000);
    assert_eq!(b.level, Level::Critical, "the highest level seen");
    assert_eq!(a.level, Level::Error);
    assert_eq!(a.hosts, 3);
    assert_eq!(a.users, 2, "user0 and user2");
    assert_eq!(a.status, IssueStatus::Unresolved);
    assert_eq!(a.title, "Error aa");
    assert_eq!(a.service, "api");
    assert_eq!(out[0].issue_id, a.id);
    // Another project: its own issue for the same fingerprint.
    let other = record(store, vec![event("q", "aa", T0)]);
    assert!(other[0].new_issue);
    assert_ne!(other[0].issue_id, a.id);
}

fn events_round_trip(store: &dyn Store) {
    let mut e = event("p", "aa", T0);
    e.log_id = Some(42);
    e.host = Some("ws-12".into());
    e.user = Some("alice".into());
    e.tags = vec!["maya".into(), "nightly".into()];
    e.attributes
        .insert("shot".into(), AttrValue::Str("sh010".into()));
    e.attributes.insert("frame".into(), AttrValue::Int(1001));
    e.details.exception_type = Some("ValueError".into());
    e.details.frames = vec![EventFrame {
        module: Some("app.jobs".into()),
        function: Some("run".into()),
        file: Some("/srv/app/jobs.py".into()),
        line: Some(3),
        in_app: true,
    }];
    e.details
        .environment
        .insert("os".into(), "Linux 6.1".into());
    record(store, vec![e.clone()]);
    let issue = &store.list_issues(&query("p")).unwrap().issues[0];
    assert_eq!(issue.exception_type.as_deref(), Some("ValueError"));
    let evs = store.issue_events(issue.id, None, 10).unwrap();
    assert_eq!(evs.len(), 1);
    let got = &evs[0];
    assert_eq!(got.issue_id, issue.id);
    assert_eq!(got.log_id, Some(42));
    assert_eq!(got.project, "p");
    assert_eq!(got.service, "api");
    assert_eq!(got.level, Level::Error);
    assert_eq!(got.timestamp, T0);
    assert_eq!(got.received_at, T0 + 5);
    assert_eq!(got.message, e.message);
    assert_eq!(got.title, e.title);
    assert_eq!(got.host, e.host);
    assert_eq!(got.user, e.user);
    assert_eq!(got.tags, e.tags);
    assert_eq!(got.attributes, e.attributes);
    assert_eq!(got.details, e.details);
    let first = store.first_event(issue.id).unwrap().unwrap();
    assert_eq!(first.id, got.id);
}

fn resolved_issue_regresses_with_history(store: &dyn Store) {
    let id = record(store, vec![event("p", "aa", T0)])[0].issue_id;
    status(store, id, IssueStatus::Resolved, None);
    let issue = store.get_issue(id, T0).unwrap().unwrap();
    assert_eq!(issue.status, IssueStatus::Resolved);
    let out = record(
        store,
        vec![event("p", "aa", T0 + 10), event("p", "aa", T0 + 20)],
    );
    assert!(
        out[0].regressed,
        "the first event after resolving regresses"
    );
    assert!(!out[1].regressed, "only once");
    let issue = store.get_issue(id, T0).unwrap().unwrap();
    assert_eq!(issue.status, IssueStatus::Unresolved);
    assert!(issue.regressed);
    assert_eq!(issue.count, 3);
    let history = store.issue_history(id).unwrap();
    let actions: Vec<(&str, &str, IssueStatus, IssueStatus)> = history
        .iter()
        .map(|h| (h.actor.as_str(), h.action.as_str(), h.from, h.to))
        .collect();
    assert_eq!(
        actions,
        [
            (
                "tester",
                "resolved",
                IssueStatus::Unresolved,
                IssueStatus::Resolved
            ),
            (
                "system",
                "regressed",
                IssueStatus::Resolved,
                IssueStatus::Unresolved
            ),
        ]
    );
    let q = IssueQuery {
        status: Some(IssueStatus::Resolved),
        ..query("p")
    };
    assert_eq!(store.list_issues(&q).unwrap().total, 0);
}

fn ignore_until_count_ends(store: &dyn Store) {
    let id = record(store, vec![event("p", "aa", T0)])[0].issue_id;
    status(
        store,
        id,
        IssueStatus::Ignored,
        Some(IgnoreUntil {
            count: Some(3),
            until: None,
        }),
    );
    record(
        store,
        vec![event("p", "aa", T0 + 1), event("p", "aa", T0 + 2)],
    );
    let issue = store.get_issue(id, T0).unwrap().unwrap();
    assert_eq!(issue.status, IssueStatus::Ignored);
    assert_eq!(issue.ignore.and_then(|i| i.count), Some(1));
    record(store, vec![event("p", "aa", T0 + 3)]);
    let issue = store.get_issue(id, T0).unwrap().unwrap();
    assert_eq!(issue.status, IssueStatus::Unresolved);
    assert!(!issue.regressed);
    assert_eq!(issue.ignore, None);
    let last = store.issue_history(id).unwrap().pop().unwrap();
    assert_eq!(last.action, "ignore_ended");
}

fn idempotency_keys_record_once(store: &dyn Store) {
    let mut e = event("p", "aa", T0);
    e.key = Some("file1:100".into());
    let first = record(store, vec![e.clone()]);
    assert!(!first[0].duplicate);
    // A retry, and a retry inside one batch.
    let again = record(store, vec![e.clone(), e.clone()]);
    assert!(again.iter().all(|o| o.duplicate));
    assert!(again.iter().all(|o| o.event_id == first[0].event_id));
    let issue = store.get_issue(first[0].issue_id, T0).unwrap().unwrap();
    assert_eq!(issue.count, 1);
    assert_eq!(store.issue_events(issue.id, None, 10).unwrap().len(), 1);
    // The same key in another project is another event.
    e.project = "q".into();
    assert!(!record(store, vec![e])[0].duplicate);
}

fn merged_fingerprints_keep_their_issue(store: &dyn Store) {
    let out = record(store, vec![event("p", "aa", T0), event("p", "bb", T0 + 1)]);
    let (a, b) = (out[0].issue_id, out[1].issue_id);
    store
        .record_events(&EventBatch {
            merges: vec![("p".into(), "bb".into(), "aa".into())],
            ..Default::default()
        })
        .unwrap();
    let page = store.list_issues(&query("p")).unwrap();
    assert_eq!(page.total, 1, "bb merged into aa");
    assert_eq!(page.issues[0].id, a);
    assert_eq!(page.issues[0].count, 2);
    assert!(store.get_issue(b, T0).unwrap().is_none());
    let later = record(store, vec![event("p", "bb", T0 + 2)]);
    assert_eq!(
        later[0].issue_id, a,
        "the merged-away fingerprint lands in aa"
    );
    assert!(!later[0].new_issue);
    // A merge of unknown fingerprints, or of one into itself, is harmless.
    store
        .record_events(&EventBatch {
            merges: vec![
                ("p".into(), "zz".into(), "aa".into()),
                ("p".into(), "aa".into(), "aa".into()),
                ("p".into(), "cc".into(), "dd".into()),
            ],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(store.get_issue(a, T0).unwrap().unwrap().count, 3);
    // The merge target that did not exist yet: the merged fingerprint's
    // issue takes over the surviving fingerprint.
    let c = record(store, vec![event("p", "cc", T0)])[0].issue_id;
    store
        .record_events(&EventBatch {
            merges: vec![("p".into(), "cc".into(), "ee".into())],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(record(store, vec![event("p", "ee", T0 + 5)])[0].issue_id, c);
}

fn api_merge_moves_everything(store: &dyn Store) {
    let mut evs = vec![event("p", "aa", T0), event("p", "aa", T0 + 1)];
    let mut b = event("p", "bb", T0 - 10);
    b.host = Some("other".into());
    evs.push(b);
    let out = record(store, evs);
    let (a, b) = (out[0].issue_id, out[2].issue_id);
    let merged = store.merge_issues(a, b, "tester", T0 + 100).unwrap();
    assert_eq!(merged.id, a);
    assert_eq!(merged.count, 3);
    assert_eq!(merged.first_seen, T0 - 10);
    assert_eq!(merged.hosts, 1);
    assert_eq!(store.issue_events(a, None, 10).unwrap().len(), 3);
    assert!(store.get_issue(b, T0).unwrap().is_none());
    assert_eq!(record(store, vec![event("p", "bb", T0 + 3)])[0].issue_id, a);
    let hist = store.issue_history(a).unwrap();
    assert!(
        hist.iter()
            .any(|h| h.action == "merged" && h.actor == "tester")
    );
    // Across projects: refused.
    let q = record(store, vec![event("q", "zz", T0)])[0].issue_id;
    assert!(store.merge_issues(a, q, "tester", T0).is_err());
    assert!(store.merge_issues(a, a, "tester", T0).is_err());
}

fn list_filters_sorts_and_pages(store: &dyn Store) {
    let now = T0 + 1000 * HOUR;
    let mut evs = Vec::new();
    // aa: many old events; bb: few but recent; cc: warn level, other service.
    for i in 0..6 {
        evs.push(event("p", "aa", now - 100 * HOUR + i));
    }
    evs.push(event("p", "aa", now - 30 * HOUR));
    for i in 0..3 {
        evs.push(event("p", "bb", now - HOUR + i));
    }
    let mut c = event("p", "cc", now - 50 * HOUR);
    c.level = Level::Warn;
    c.service = "web".into();
    c.title = "Timeout talking to the DB".into();
    evs.push(c);
    record(store, evs);
    let ids = |q: IssueQuery| -> Vec<String> {
        store
            .list_issues(&q)
            .unwrap()
            .issues
            .into_iter()
            .map(|i| i.fingerprint)
            .collect()
    };
    let base = IssueQuery { now, ..query("p") };
    assert_eq!(ids(base.clone()), ["bb", "aa", "cc"], "last seen");
    assert_eq!(
        ids(IssueQuery {
            sort: IssueSort::FirstSeen,
            ..base.clone()
        }),
        ["bb", "cc", "aa"]
    );
    assert_eq!(
        ids(IssueQuery {
            sort: IssueSort::Count,
            ..base.clone()
        }),
        ["aa", "bb", "cc"]
    );
    assert_eq!(
        ids(IssueQuery {
            sort: IssueSort::Trend,
            ..base.clone()
        })[0],
        "bb"
    );
    let bb = store
        .list_issues(&base)
        .unwrap()
        .issues
        .into_iter()
        .find(|i| i.fingerprint == "bb")
        .unwrap();
    assert_eq!((bb.count_24h, bb.count_prev_24h), (3, 0));
    let aa = store
        .get_issue(
            store
                .list_issues(&IssueQuery {
                    sort: IssueSort::Count,
                    ..base.clone()
                })
                .unwrap()
                .issues[0]
                .id,
            now,
        )
        .unwrap()
        .unwrap();
    assert_eq!((aa.count_24h, aa.count_prev_24h), (0, 1));
    assert_eq!(
        ids(IssueQuery {
            service: Some("web".into()),
            ..base.clone()
        }),
        ["cc"]
    );
    assert_eq!(
        ids(IssueQuery {
            min_level: Some(Level::Error),
            ..base.clone()
        }),
        ["bb", "aa"]
    );
    assert_eq!(
        ids(IssueQuery {
            q: Some("timeout".into()),
            ..base.clone()
        }),
        ["cc"]
    );
    let page2 = store
        .list_issues(&IssueQuery {
            limit: 2,
            page: 2,
            ..base.clone()
        })
        .unwrap();
    assert_eq!(page2.total, 3);
    assert_eq!(page2.issues.len(), 1);
    assert_eq!(page2.issues[0].fingerprint, "cc");
    assert_eq!(
        store
            .list_issues(&IssueQuery {
                project: Some("nope".into()),
                ..base
            })
            .unwrap()
            .total,
        0
    );
}

fn histogram_buckets(store: &dyn Store) {
    let day0 = (T0 / 86_400_000_000) * 86_400_000_000;
    let mut evs = vec![
        event("p", "aa", day0 + 10),
        event("p", "aa", day0 + HOUR + 10),
        event("p", "aa", day0 + HOUR + 20),
        event("p", "aa", day0 + 30 * HOUR),
    ];
    evs[3].details.count = 4;
    let id = record(store, evs)[0].issue_id;
    let hours = store.issue_histogram(id, Bucket::Hour, day0).unwrap();
    assert_eq!(hours, [(day0, 1), (day0 + HOUR, 2), (day0 + 30 * HOUR, 4)]);
    let days = store.issue_histogram(id, Bucket::Day, day0).unwrap();
    assert_eq!(days, [(day0, 3), (day0 + 24 * HOUR, 4)]);
    let late = store
        .issue_histogram(id, Bucket::Hour, day0 + 2 * HOUR)
        .unwrap();
    assert_eq!(late, [(day0 + 30 * HOUR, 4)]);
}

fn deleted_issue_reopens_as_new(store: &dyn Store) {
    let first = record(store, vec![event("p", "aa", T0)])[0];
    store.delete_issue(first.issue_id).unwrap();
    assert!(store.get_issue(first.issue_id, T0).unwrap().is_none());
    assert!(
        store
            .issue_events(first.issue_id, None, 10)
            .unwrap()
            .is_empty()
    );
    let again = record(store, vec![event("p", "aa", T0 + 1)])[0];
    assert!(again.new_issue);
    assert_ne!(again.issue_id, first.issue_id);
    assert!(store.delete_issue(first.issue_id).is_err(), "gone");
}

fn processor_state_round_trips(store: &dyn Store) {
    assert_eq!(store.issues_processed_through().unwrap(), 0);
    assert!(store.grouper_states().unwrap().is_empty());
    store
        .record_events(&EventBatch {
            grouper_states: vec![("p".into(), b"state-1".to_vec())],
            processed_through: Some(17),
            ..Default::default()
        })
        .unwrap();
    store
        .record_events(&EventBatch {
            grouper_states: vec![
                ("p".into(), b"state-2".to_vec()),
                ("q".into(), b"other".to_vec()),
            ],
            processed_through: None,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(store.issues_processed_through().unwrap(), 17);
    let mut states = store.grouper_states().unwrap();
    states.sort();
    assert_eq!(
        states,
        [
            ("p".to_string(), b"state-2".to_vec()),
            ("q".to_string(), b"other".to_vec())
        ]
    );
    // Rules.
    assert_eq!(store.fingerprint_rules("p").unwrap(), None);
    store.set_fingerprint_rules("p", r#"{"rules":[]}"#).unwrap();
    assert_eq!(
        store.fingerprint_rules("p").unwrap().as_deref(),
        Some(r#"{"rules":[]}"#)
    );
}

fn events_page_newest_first(store: &dyn Store) {
    let evs = (0..7).map(|i| event("p", "aa", T0 + i)).collect();
    let id = record(store, evs)[0].issue_id;
    let first = store.issue_events(id, None, 3).unwrap();
    let ts: Vec<i64> = first.iter().map(|e| e.timestamp).collect();
    assert_eq!(ts, [T0 + 6, T0 + 5, T0 + 4]);
    let next = store
        .issue_events(id, Some(first.last().unwrap().id), 10)
        .unwrap();
    let ts: Vec<i64> = next.iter().map(|e| e.timestamp).collect();
    assert_eq!(ts, [T0 + 3, T0 + 2, T0 + 1, T0]);
    assert_eq!(store.first_event(id).unwrap().unwrap().timestamp, T0);
}

fn expired_events_go(store: &dyn Store) {
    let evs = (0..5).map(|i| event("p", "aa", T0 + i * HOUR)).collect();
    let id = record(store, evs)[0].issue_id;
    assert_eq!(store.delete_expired_events(T0 + 2 * HOUR, 1).unwrap(), 1);
    assert_eq!(store.delete_expired_events(T0 + 2 * HOUR, 100).unwrap(), 1);
    assert_eq!(store.delete_expired_events(T0 + 2 * HOUR, 100).unwrap(), 0);
    assert_eq!(store.issue_events(id, None, 10).unwrap().len(), 3);
    // The issue keeps its totals: counts are history, events are samples.
    assert_eq!(store.get_issue(id, T0).unwrap().unwrap().count, 5);
}

fn concurrent_recording_loses_nothing(store: &dyn Store) {
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..25 {
                    let fp = if i % 2 == 0 { "aa" } else { "bb" };
                    record(store, vec![event("p", fp, T0 + t * 100 + i)]);
                }
            });
        }
    });
    let page = store.list_issues(&query("p")).unwrap();
    assert_eq!(page.total, 2, "no duplicate issue for a fingerprint");
    let total: u64 = page.issues.iter().map(|i| i.count).sum();
    assert_eq!(total, 100, "no lost count");
}

fn entries_after_for_catch_up(store: &dyn Store) {
    assert_eq!(store.last_entry_id().unwrap(), 0);
    let mk = |level, msg: &str| NewEntry {
        project: "p".into(),
        service: "api".into(),
        level,
        message: msg.into(),
        tags: Vec::new(),
        timestamp: T0,
        received_at: T0,
        host: None,
        attributes: Attributes::new(),
        trace_id: None,
        span_id: None,
    };
    let batch = [
        mk(Level::Info, "a"),
        mk(Level::Error, "b"),
        mk(Level::Warn, "c"),
        mk(Level::Critical, "d"),
        mk(Level::Error, "e"),
    ];
    let ids = store.append(&[&batch]).unwrap();
    assert_eq!(store.last_entry_id().unwrap(), ids[4]);
    let got = store.entries_after(0, Level::Error, 100).unwrap();
    let msgs: Vec<&str> = got.iter().map(|e| e.entry.message.as_str()).collect();
    assert_eq!(msgs, ["b", "d", "e"]);
    let got = store.entries_after(ids[1], Level::Error, 1).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, ids[3]);
    assert!(
        store
            .entries_after(ids[4], Level::Trace, 10)
            .unwrap()
            .is_empty()
    );
}

fn unknown_issue_is_not_found(store: &dyn Store) {
    assert!(store.get_issue(999, T0).unwrap().is_none());
    assert!(store.issue_events(999, None, 10).unwrap().is_empty());
    assert!(store.first_event(999).unwrap().is_none());
    let update = StatusUpdate {
        status: IssueStatus::Resolved,
        ignore: None,
        actor: "x".into(),
        at: T0,
    };
    assert!(matches!(
        store.set_issue_status(999, &update),
        Err(crate::StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete_issue(999),
        Err(crate::StoreError::NotFound { .. })
    ));
}

fn attachments_are_content_addressed_and_collected(store: &dyn Store) {
    let a = Attachment {
        sha256: "aa".repeat(32),
        content_type: "text/plain".into(),
        size: 11,
        gzip: vec![0x1f, 0x8b, 1, 2, 3],
    };
    let b = Attachment {
        sha256: "bb".repeat(32),
        gzip: vec![0x1f, 0x8b, 9],
        ..a.clone()
    };
    store.put_attachment(&a).unwrap();
    store.put_attachment(&a).unwrap();
    store.put_attachment(&b).unwrap();
    assert_eq!(store.get_attachment(&a.sha256).unwrap(), Some(a.clone()));
    assert_eq!(store.get_attachment(&"cc".repeat(32)).unwrap(), None);
    let with = |ts: i64, att: &Attachment| {
        let mut e = event("p", "aa", ts);
        e.details.attachments = vec![AttachmentRef {
            name: "tk-maya.log".into(),
            content_type: att.content_type.clone(),
            size: att.size,
            sha256: att.sha256.clone(),
        }];
        e
    };
    record(store, vec![with(T0, &a), with(T0 + 10 * HOUR, &b)]);
    let id = store.list_issues(&query("p")).unwrap().issues[0].id;
    let evs = store.issue_events(id, None, 10).unwrap();
    assert_eq!(evs[1].details.attachments[0].sha256, a.sha256);
    // The event using `a` expires: `a` goes, `b` stays.
    assert_eq!(store.delete_expired_events(T0 + HOUR, 100).unwrap(), 1);
    assert_eq!(store.get_attachment(&a.sha256).unwrap(), None);
    assert_eq!(store.get_attachment(&b.sha256).unwrap(), Some(b));
}

fn tickets_link_to_issues(store: &dyn Store) {
    let id = record(store, vec![event("p", "aa", T0)])[0].issue_id;
    assert_eq!(store.issue_ticket(id).unwrap(), None);
    let mut t = crate::IssueTicket {
        tracker: "shotgrid".into(),
        external_id: "77".into(),
        url: "https://sg/detail/Ticket/77".into(),
        attached: false,
        last_note_at: None,
    };
    store.set_issue_ticket(id, &t).unwrap();
    t.attached = true;
    t.last_note_at = Some(T0);
    store.set_issue_ticket(id, &t).unwrap();
    assert_eq!(store.issue_ticket(id).unwrap(), Some(t));
    store.delete_issue(id).unwrap();
    assert_eq!(store.issue_ticket(id).unwrap(), None);
}
