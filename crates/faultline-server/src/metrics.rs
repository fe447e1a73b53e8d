//! Prometheus metrics, rendered at `/metrics` by the server itself (the
//! exporter has no HTTP stack of its own here).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0,
                    ],
                )
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests embedding
            // several servers); metrics then go there and /metrics is empty.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "faultline_entries_accepted_total",
        "Entries acknowledged with 202."
    );
    describe_counter!(
        "faultline_entries_rejected_total",
        "Entries refused, by reason (requests count as one entry when the body could not be read)."
    );
    describe_counter!(
        "faultline_entries_stored_total",
        "Entries committed to the store."
    );
    describe_counter!(
        "faultline_entries_expired_total",
        "Entries deleted by retention."
    );
    describe_histogram!(
        "faultline_batch_commit_seconds",
        Unit::Seconds,
        "Time to commit one group of batches (without the fsync, see faultline_wal_sync_seconds)."
    );
    describe_histogram!(
        "faultline_wal_sync_seconds",
        Unit::Seconds,
        "Time to make the groups committed since the last sync durable (one fsync)."
    );
    describe_histogram!(
        "faultline_ingest_request_seconds",
        Unit::Seconds,
        "Time from receiving an ingest request to its 202."
    );
    describe_gauge!(
        "faultline_queue_depth",
        "Entries accepted but not yet committed."
    );
    describe_gauge!("faultline_live_subscribers", "Open live-tail connections.");
    describe_gauge!(
        "faultline_store_size_bytes",
        Unit::Bytes,
        "Size of the store on disk."
    );
    describe_counter!(
        "faultline_events_recorded_total",
        "Issue events recorded (entries at or above the issue level, and incidents), by project, service and level."
    );
    describe_counter!("faultline_issues_created_total", "New issues.");
    describe_counter!(
        "faultline_issue_regressions_total",
        "Resolved issues reopened by a new event."
    );
    describe_gauge!(
        "faultline_issue_processor_lag_seconds",
        Unit::Seconds,
        "How far the issue processor is behind the newest committed entry."
    );
    describe_counter!(
        "faultline_issue_feed_overflows_total",
        "Times the issue processor's channel was full and it caught up from the store."
    );
    describe_counter!(
        "faultline_alerts_fired_total",
        "Alert rule firings, by rule."
    );
    describe_counter!(
        "faultline_notifications_total",
        "Notification delivery attempts, by outcome (sent, failed, dead)."
    );
    describe_counter!(
        "faultline_incidents_total",
        "Agent incidents received, by whether they repeated an earlier one."
    );
    describe_counter!(
        "faultline_agent_dropped_incidents_total",
        "Incidents agents reported they dropped before sending (as they tell with their next incident)."
    );
    describe_counter!(
        "faultline_tickets_total",
        "Tracker ticket operations, by outcome."
    );
}
