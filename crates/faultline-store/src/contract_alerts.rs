//! The contract of the alerting side of a store ([`crate::AlertStore`]),
//! run like [`crate::contract`]: `contract_alerts::run_all(&make_store)`.

use crate::contract::{Check, run_checks};
use crate::{
    AlertWrites, Attempt, EventBatch, NewNotification, NotificationStatus, Store, StoreError,
};
use faultline_model::{Attributes, EventDetails, Level, NewEvent};

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    ("channels_round_trip", channels_round_trip),
    ("rules_round_trip", rules_round_trip),
    ("outbox_takes_a_trigger_once", outbox_takes_a_trigger_once),
    (
        "attempts_retry_and_dead_letter",
        attempts_retry_and_dead_letter,
    ),
    (
        "alerts_commit_with_their_events",
        alerts_commit_with_their_events,
    ),
    ("states_round_trip", states_round_trip),
];

/// Runs every check on a fresh store from `make`.
pub fn run_all(make: &dyn Fn() -> Box<dyn Store>) {
    run_checks("alert store", CHECKS, make);
}

const T0: i64 = 1_700_000_000_000_000;

fn note(dedupe: &str, channel: &str) -> NewNotification {
    NewNotification {
        project: "p".into(),
        rule_id: 1,
        channel: channel.into(),
        dedupe: dedupe.into(),
        trigger: format!("{{\"dedupe\":\"{dedupe}\"}}"),
    }
}

fn channels_round_trip(store: &dyn Store) {
    store.put_channel("p", "hook", "{\"a\":1}").unwrap();
    store.put_channel("p", "hook", "{\"a\":2}").unwrap();
    store.put_channel("p", "teams", "{}").unwrap();
    store.put_channel("q", "hook", "{}").unwrap();
    let p = store.list_channels(Some("p")).unwrap();
    let names: Vec<&str> = p.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["hook", "teams"]);
    assert_eq!(p[0].spec, "{\"a\":2}", "replaced");
    assert_eq!(store.list_channels(None).unwrap().len(), 3);
    store.delete_channel("p", "teams").unwrap();
    assert!(matches!(
        store.delete_channel("p", "teams"),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.list_channels(Some("p")).unwrap().len(), 1);
}

fn rules_round_trip(store: &dyn Store) {
    let a = store.create_rule("p", "storm", "{\"v\":1}").unwrap();
    let b = store.create_rule("q", "storm", "{\"v\":2}").unwrap();
    assert_ne!(a.id, b.id);
    assert!(matches!(
        store.create_rule("p", "storm", "{}"),
        Err(StoreError::Invalid(_))
    ));
    let a2 = store.update_rule(a.id, "storm2", "{\"v\":3}").unwrap();
    assert_eq!(
        (a2.id, a2.name.as_str(), a2.spec.as_str()),
        (a.id, "storm2", "{\"v\":3}")
    );
    assert_eq!(
        store.list_rules(Some("p")).unwrap(),
        std::slice::from_ref(&a2)
    );
    assert_eq!(store.list_rules(None).unwrap().len(), 2);
    assert_eq!(store.find_rule("p", "storm2").unwrap(), Some(a2));
    assert_eq!(store.find_rule("p", "storm").unwrap(), None);
    store.delete_rule(a.id).unwrap();
    assert!(matches!(
        store.delete_rule(a.id),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.update_rule(a.id, "x", "{}"),
        Err(StoreError::NotFound { .. })
    ));
    // Ids are not reused.
    let c = store.create_rule("p", "storm", "{}").unwrap();
    assert!(c.id > b.id);
}

fn outbox_takes_a_trigger_once(store: &dyn Store) {
    let writes = AlertWrites {
        notifications: vec![note("t1", "hook"), note("t1", "teams"), note("t1", "hook")],
        states: vec![],
    };
    store.record_alerts(&writes).unwrap();
    store.record_alerts(&writes).unwrap();
    let due = store.due_notifications(i64::MAX, 100).unwrap();
    assert_eq!(due.len(), 2, "one per (trigger, channel), ever");
    assert!(due.iter().all(|n| n.status == NotificationStatus::Pending));
    assert_eq!(due[0].trigger, "{\"dedupe\":\"t1\"}");
    assert_eq!(store.next_due().unwrap(), Some(due[0].next_attempt_at));
    // Delivered ones are not handed out again, nor re-created.
    store
        .record_attempt(due[0].id, &Attempt::Delivered { at: T0 })
        .unwrap();
    store.record_alerts(&writes).unwrap();
    let due2 = store.due_notifications(i64::MAX, 100).unwrap();
    assert_eq!(due2.len(), 1);
    assert_eq!(due2[0].id, due[1].id);
    let got = store.get_notification(due[0].id).unwrap().unwrap();
    assert_eq!(got.status, NotificationStatus::Delivered);
    assert_eq!(got.delivered_at, Some(T0));
    assert_eq!(got.attempts, 1);
}

fn attempts_retry_and_dead_letter(store: &dyn Store) {
    store
        .record_alerts(&AlertWrites {
            notifications: vec![note("t2", "hook")],
            states: vec![],
        })
        .unwrap();
    let n = store.due_notifications(i64::MAX, 10).unwrap().remove(0);
    store
        .record_attempt(
            n.id,
            &Attempt::Failed {
                at: T0,
                error: "HTTP 500".into(),
                retry_at: Some(T0 + 1_000),
            },
        )
        .unwrap();
    assert!(
        store.due_notifications(T0 + 999, 10).unwrap().is_empty(),
        "not yet due"
    );
    let again = store.due_notifications(T0 + 1_000, 10).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].last_error.as_deref(), Some("HTTP 500"));
    store
        .record_attempt(
            n.id,
            &Attempt::Failed {
                at: T0 + 1_000,
                error: "HTTP 502".into(),
                retry_at: None,
            },
        )
        .unwrap();
    assert!(store.due_notifications(i64::MAX, 10).unwrap().is_empty());
    let dead = store
        .list_notifications(Some("p"), Some(NotificationStatus::Dead), 10)
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 2);
    assert!(
        store
            .list_notifications(Some("q"), Some(NotificationStatus::Dead), 10)
            .unwrap()
            .is_empty()
    );
    let retried = store.retry_notification(n.id, T0 + 5_000).unwrap();
    assert_eq!(retried.status, NotificationStatus::Pending);
    assert_eq!(retried.attempts, 0);
    assert_eq!(store.due_notifications(T0 + 5_000, 10).unwrap().len(), 1);
    store
        .record_attempt(n.id, &Attempt::Delivered { at: T0 + 6_000 })
        .unwrap();
    assert!(matches!(
        store.retry_notification(n.id, T0),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.discard_notification(n.id),
        Err(StoreError::Invalid(_))
    ));
    // Discarding a dead one.
    store
        .record_alerts(&AlertWrites {
            notifications: vec![note("t3", "hook")],
            states: vec![],
        })
        .unwrap();
    let m = store.due_notifications(i64::MAX, 10).unwrap().remove(0);
    store.discard_notification(m.id).unwrap();
    assert!(store.get_notification(m.id).unwrap().is_none());
    assert!(matches!(
        store.retry_notification(m.id, T0),
        Err(StoreError::NotFound { .. })
    ));
}

fn event(fingerprint: &str) -> NewEvent {
    NewEvent {
        project: "p".into(),
        service: "api".into(),
        fingerprint: fingerprint.into(),
        title: "boom".into(),
        culprit: None,
        level: Level::Error,
        timestamp: T0,
        received_at: T0,
        log_id: None,
        message: "boom".into(),
        host: None,
        user: None,
        tags: vec![],
        attributes: Attributes::new(),
        details: EventDetails {
            count: 1,
            ..Default::default()
        },
        key: None,
    }
}

fn alerts_commit_with_their_events(store: &dyn Store) {
    let batch = EventBatch {
        events: vec![event("aa"), event("bb")],
        ..Default::default()
    };
    let mut seen = Vec::new();
    let out = store
        .record_events_and(&batch, &mut |outcomes| {
            seen = outcomes.to_vec();
            AlertWrites {
                notifications: vec![note(&format!("new-{}", outcomes[0].issue_id), "hook")],
                states: vec![(1, "issue:1".into(), Some("{}".into()))],
            }
        })
        .unwrap();
    assert_eq!(seen, out, "the callback sees the outcomes");
    assert_eq!(store.due_notifications(i64::MAX, 10).unwrap().len(), 1);
    assert_eq!(store.alert_states().unwrap().len(), 1);
    // A batch that fails (an event naming no service) writes neither its
    // events nor its alerts.
    let mut bad = event("cc");
    bad.service = String::new();
    let r = store.record_events_and(
        &EventBatch {
            events: vec![bad],
            ..Default::default()
        },
        &mut |_| AlertWrites {
            notifications: vec![note("never", "hook")],
            states: vec![],
        },
    );
    assert!(r.is_err());
    assert_eq!(store.due_notifications(i64::MAX, 10).unwrap().len(), 1);
}

fn states_round_trip(store: &dyn Store) {
    store
        .record_alerts(&AlertWrites {
            notifications: vec![],
            states: vec![
                (1000, "issue:1".into(), Some("{\"a\":1}".into())),
                (1000, "issue:2".into(), Some("{\"a\":2}".into())),
            ],
        })
        .unwrap();
    store
        .record_alerts(&AlertWrites {
            notifications: vec![],
            states: vec![
                (1000, "issue:1".into(), None),
                (1000, "issue:2".into(), Some("{\"a\":3}".into())),
            ],
        })
        .unwrap();
    assert_eq!(
        store.alert_states().unwrap(),
        [(1000, "issue:2".to_string(), "{\"a\":3}".to_string())]
    );
    // Deleting a rule drops its states.
    let r = store.create_rule("p", "x", "{}").unwrap();
    store
        .record_alerts(&AlertWrites {
            notifications: vec![],
            states: vec![(r.id, "k".into(), Some("{}".into()))],
        })
        .unwrap();
    store.delete_rule(r.id).unwrap();
    assert_eq!(store.alert_states().unwrap().len(), 1);
}
