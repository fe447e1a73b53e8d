//! The issue processor thread: turns committed entries at or above the
//! issue level into events of issues.
//!
//! The writer sends it, after each commit, the committed entries at or above
//! the level and the highest id of the commit ([`Committed`]). The
//! processor groups them ([`faultline_issues::Processor`]) and records the
//! events, template merges, grouper states and its watermark (every log id
//! up to it is done) in one transaction. On start, and whenever the writer
//! could not hand a commit over (the channel was full), it catches up from
//! the store from its watermark; entries at or below the watermark are
//! skipped, so nothing is recorded twice and nothing is missed, even after
//! a crash.

use faultline_alerts::{
    Evaluation, Evaluator, EventFacts, KeyState, RATE_KEY, RateState, RuleSpec, ServiceCount,
    TriggerKind,
};
use faultline_issues::{Processor, ProcessorConfig, parse_rules};
use faultline_model::{EventDetails, Level, StoredEntry};
use faultline_store::{AlertWrites, EventBatch, EventOutcome, NewNotification, Store};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

/// Commits the channel holds before the writer falls back to telling the
/// processor to catch up from the store.
const CHANNEL_COMMITS: usize = 1024;
/// Entries read per catch-up query.
const CATCH_UP_BATCH: usize = 2_000;
/// How often a watermark-only change (commits without events) is saved.
const WATERMARK_EVERY: Duration = Duration::from_secs(2);
/// Most queued commits processed in one transaction.
const MAX_GROUP: usize = 256;
/// How often fired alerts are checked for a quiet cooldown.
const ALERT_TICK: Duration = Duration::from_secs(1);
/// The groupers' caches are given back after this long without work.
const RELEASE_AFTER_IDLE: Duration = Duration::from_secs(3);
/// Least time between two transactions of events from log commits. Each
/// transaction rewrites the pages of the issues it touches (their rows,
/// the list indexes, the hourly counts) and holds the write connection, so
/// under sustained ingest, when a log commit lands every few milliseconds,
/// the processor gathers the commits of this long into one transaction:
/// events appear at most this much later, and cost a fraction of the
/// writes and of the writer's time. A commit after a quiet spell is
/// processed at once. (At 25 ms the processor wrote twice the bytes per
/// event and used ~25 % more CPU in the benchmark.)
const EVENTS_EVERY: Duration = Duration::from_millis(100);
/// How often grouper states with unsaved learning are saved.
const STATES_EVERY: Duration = Duration::from_secs(30);

/// One commit, as the processor needs it.
pub struct Committed {
    /// The committed entries at or above the issue level.
    pub entries: Vec<Arc<StoredEntry>>,
    /// The highest id of the commit.
    pub through: i64,
    /// When it was committed (for the processor lag gauge).
    pub committed_at: Instant,
    /// Entries and errors per service (error-rate rules).
    pub counts: Vec<ServiceCount>,
}

/// An incident an agent reported, to record as an event.
pub struct Incident {
    /// What a log entry would carry (its id is ignored).
    pub entry: StoredEntry,
    pub title: Option<String>,
    pub user: Option<String>,
    pub details: EventDetails,
    /// The idempotency key.
    pub key: String,
}

type Reply = tokio::sync::oneshot::Sender<faultline_store::Result<EventOutcome>>;

enum Msg {
    Committed(Committed),
    Incident(Box<Incident>, Reply),
    /// A project's fingerprint rules changed.
    Rules(String),
    /// Alert rules changed: reload them.
    AlertRules,
    /// The writer has stopped: catch up, save, stop.
    Stop,
}

/// A new issue or a regression, announced to the web UI as it is committed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IssueNotice {
    /// "new" or "regression".
    pub kind: &'static str,
    pub issue_id: i64,
    pub project: String,
    pub service: String,
    pub title: String,
    pub level: Level,
}

/// Subscribers of [`IssueNotice`]s; a slow one misses notices (lagged), it
/// never slows the processor.
pub type Notices = tokio::sync::broadcast::Sender<IssueNotice>;

/// The writer's (and the API's) side of the processor.
#[derive(Clone)]
pub struct IssueFeed {
    tx: SyncSender<Msg>,
    lagging: Arc<AtomicBool>,
    min_level: Level,
}

impl IssueFeed {
    /// The level at which entries become events.
    pub fn min_level(&self) -> Level {
        self.min_level
    }

    /// Hands a commit over without ever blocking the writer; when the
    /// channel is full the processor is told to catch up from the store.
    pub fn committed(&self, c: Committed) {
        match self.tx.try_send(Msg::Committed(c)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.lagging.store(true, Ordering::Release);
                // Wake it with an empty message if there is room by then.
                metrics::counter!("faultline_issue_feed_overflows_total").increment(1);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Records an incident as an event of its issue (the processor owns the
    /// groupers, so the fingerprint is the server's). Resolves once it is
    /// committed; replaying the same key gives the first recording.
    pub async fn incident(&self, incident: Incident) -> faultline_store::Result<EventOutcome> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let tx = self.tx.clone();
        let sent = tokio::task::spawn_blocking(move || {
            tx.send(Msg::Incident(Box::new(incident), reply)).is_ok()
        })
        .await
        .unwrap_or(false);
        let stopped =
            || faultline_store::StoreError::Invalid("the issue processor is not running".into());
        if !sent {
            return Err(stopped());
        }
        answer.await.map_err(|_| stopped())?
    }

    /// Stops the processor once it has recorded everything committed (call
    /// after the writer stopped).
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }

    /// Tells the processor to reload the alert rules.
    pub fn alert_rules_changed(&self) {
        let _ = self.tx.send(Msg::AlertRules);
    }

    /// Tells the processor to reload a project's fingerprint rules.
    pub fn rules_changed(&self, project: &str) {
        let _ = self.tx.send(Msg::Rules(project.to_owned()));
    }
}

/// Starts the processor. It stops on [`IssueFeed::stop`] (or when every
/// feed is dropped), after recording what it has and saving the grouper
/// states.
pub fn spawn(
    store: Arc<dyn Store>,
    min_level: Level,
    deliveries: Arc<tokio::sync::Notify>,
    notices: Notices,
) -> (IssueFeed, std::thread::JoinHandle<()>) {
    let (tx, rx) = sync_channel(CHANNEL_COMMITS);
    let lagging = Arc::new(AtomicBool::new(false));
    let feed = IssueFeed {
        tx,
        lagging: lagging.clone(),
        min_level,
    };
    let handle = std::thread::Builder::new()
        .name("faultline-issues".into())
        .spawn(move || {
            let mut worker = Worker::new(store, min_level, lagging, deliveries);
            worker.notices = Some(notices);
            if let Err(e) = worker.run(rx) {
                tracing::error!(error = %e, "the issue processor stopped; restart the server to resume it (nothing is lost: it catches up from the store)");
            }
        })
        .expect("the OS can start the issue processor thread");
    (feed, handle)
}

struct Worker {
    store: Arc<dyn Store>,
    processor: Processor,
    lagging: Arc<AtomicBool>,
    /// Every log id up to this one is processed and recorded.
    through: i64,
    /// `through` as last saved.
    saved_through: i64,
    last_watermark_save: Instant,
    last_states_save: Instant,
    /// Projects whose rules were loaded.
    rules_loaded: HashSet<String>,
    /// Alert rules and their burst state.
    alerts: Evaluator,
    last_alert_tick: Instant,
    /// When the last group of log commits was taken.
    last_group: Instant,
    /// Wakes the delivery task when notifications were queued.
    deliveries: Arc<tokio::sync::Notify>,
    /// New issues and regressions for the UI.
    notices: Option<Notices>,
    /// When it last grouped something; `None` once the caches were given
    /// back after that.
    last_work: Option<Instant>,
}

impl Worker {
    fn new(
        store: Arc<dyn Store>,
        min_level: Level,
        lagging: Arc<AtomicBool>,
        deliveries: Arc<tokio::sync::Notify>,
    ) -> Worker {
        Worker {
            store,
            processor: Processor::new(ProcessorConfig {
                min_level,
                ..Default::default()
            }),
            lagging,
            through: 0,
            saved_through: 0,
            last_watermark_save: Instant::now(),
            last_states_save: Instant::now(),
            rules_loaded: HashSet::new(),
            alerts: Evaluator::new(),
            last_alert_tick: Instant::now(),
            last_group: Instant::now(),
            deliveries,
            notices: None,
            // The start-up catch-up may group a lot.
            last_work: Some(Instant::now()),
        }
    }

    fn run(&mut self, rx: Receiver<Msg>) -> faultline_store::Result<()> {
        let states = self.store.grouper_states()?;
        for e in self.processor.restore_all(&states) {
            tracing::warn!(error = %e, "starting that project's grouping afresh");
        }
        self.load_alert_rules()?;
        for (rule, key, json) in self.store.alert_states()? {
            if key.starts_with(RATE_KEY) {
                match serde_json::from_str::<RateState>(&json) {
                    Ok(state) => self.alerts.restore_rate(rule, key, state),
                    Err(e) => {
                        tracing::warn!(rule, key, error = %e, "dropping an unreadable alert state")
                    }
                }
                continue;
            }
            match serde_json::from_str::<KeyState>(&json) {
                Ok(state) => self.alerts.restore(rule, key, state),
                Err(e) => {
                    tracing::warn!(rule, key, error = %e, "dropping an unreadable alert state")
                }
            }
        }
        self.through = self.store.issues_processed_through()?;
        self.saved_through = self.through;
        self.catch_up()?;
        let mut next: Option<Msg> = None;
        loop {
            if self.last_alert_tick.elapsed() >= ALERT_TICK {
                self.alert_tick()?;
            }
            let msg = match next.take() {
                Some(m) => Ok(m),
                None => rx.recv_timeout(ALERT_TICK),
            };
            match msg {
                Ok(Msg::Committed(first)) => {
                    self.last_work = Some(Instant::now());
                    // Everything queued goes into one transaction: under
                    // load the processor commits once per many log commits,
                    // at most once per `EVENTS_EVERY`.
                    if let Some(wait) = EVENTS_EVERY.checked_sub(self.last_group.elapsed()) {
                        std::thread::sleep(wait);
                    }
                    self.last_group = Instant::now();
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(Msg::Committed(c)) => group.push(c),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let oldest = group.iter().map(|c| c.committed_at).min();
                    if let Some(t) = oldest {
                        metrics::gauge!("faultline_issue_processor_lag_seconds")
                            .set(t.elapsed().as_secs_f64());
                    }
                    if self.lagging.swap(false, Ordering::AcqRel) {
                        self.catch_up()?;
                    }
                    self.count_rates(&group)?;
                    let entries = group.iter().flat_map(|c| c.entries.iter());
                    self.load_rules(entries.clone().map(|e| e.entry.project.as_str()))?;
                    let mut batch = self
                        .processor
                        .process(entries.map(|e| e.as_ref()), self.through);
                    let last = group.iter().map(|c| c.through).max().unwrap_or(0);
                    let through = batch.processed_through.unwrap_or(0).max(last);
                    batch.processed_through = Some(through);
                    self.record(batch, through)?;
                }
                Ok(Msg::Incident(incident, reply)) => {
                    self.last_work = Some(Instant::now());
                    let result = self.record_incident(*incident);
                    let failed = result.as_ref().err().map(|e| e.to_string());
                    let _ = reply.send(result);
                    if let Some(e) = failed {
                        // The caller gets the error (and the agent retries);
                        // the processor goes on.
                        tracing::warn!(error = %e, "recording an incident failed");
                    }
                }
                Ok(Msg::Rules(project)) => {
                    self.rules_loaded.remove(&project);
                }
                Ok(Msg::AlertRules) => self.load_alert_rules()?,
                Ok(Msg::Stop) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if self.lagging.swap(false, Ordering::AcqRel) {
                        self.catch_up()?;
                    }
                    self.save_if_due(false)?;
                    if self
                        .last_work
                        .is_some_and(|t| t.elapsed() >= RELEASE_AFTER_IDLE)
                    {
                        // Idle a while after work: the groupers' caches go
                        // back to the system (after a bulk import they hold
                        // ~10 MB), as the store's do. Not after every quiet
                        // second: a trickle of errors keeps its cache and
                        // does not trim the heap each time.
                        self.last_work = None;
                        self.processor.release_memory();
                        crate::memory::trim();
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        // The writer stopped: whatever it committed is in the store.
        self.catch_up()?;
        self.save_if_due(true)?;
        tracing::info!(through = self.through, "issue processor stopped");
        Ok(())
    }

    /// Loads the rules of projects not seen yet.
    fn load_rules<'a>(
        &mut self,
        projects: impl Iterator<Item = &'a str>,
    ) -> faultline_store::Result<()> {
        for p in projects {
            if self.rules_loaded.contains(p) {
                continue;
            }
            let rules = match self.store.fingerprint_rules(p)? {
                Some(json) => match parse_rules(&json) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(project = p, error = %e, "ignoring stored fingerprint rules");
                        Default::default()
                    }
                },
                None => Default::default(),
            };
            self.processor.set_rules(p, rules);
            self.rules_loaded.insert(p.to_owned());
        }
        Ok(())
    }

    fn record_incident(&mut self, i: Incident) -> faultline_store::Result<EventOutcome> {
        self.load_rules(std::iter::once(i.entry.entry.project.as_str()))?;
        let event = self
            .processor
            .incident_event(&i.entry, i.title, i.user, i.details, i.key);
        let batch = EventBatch {
            events: vec![event],
            merges: self.processor.take_merges(),
            grouper_states: self.processor.take_states(false),
            processed_through: None,
            // The agent is told 202 once this returns.
            durable: true,
        };
        let outcomes = self.record_with_alerts(&batch)?;
        count(&batch.events, &outcomes);
        outcomes.into_iter().next().ok_or_else(|| {
            faultline_store::StoreError::Invalid("no outcome for the incident".into())
        })
    }

    /// Loads (and validates) every project's alert rules.
    fn load_alert_rules(&mut self) -> faultline_store::Result<()> {
        let mut rules = Vec::new();
        for r in self.store.list_rules(None)? {
            match serde_json::from_str::<RuleSpec>(&r.spec)
                .map_err(|e| e.to_string())
                .and_then(|spec| spec.validate(r.id, &r.project).map_err(|e| e.to_string()))
            {
                Ok(rule) => rules.push(rule),
                Err(e) => tracing::warn!(rule = r.id, error = %e, "ignoring an invalid alert rule"),
            }
        }
        self.alerts.set_rules(rules);
        Ok(())
    }

    /// Records a batch and, in the same transaction, the alerts its events
    /// cause; the evaluator's memory changes only once that committed.
    fn record_with_alerts(
        &mut self,
        batch: &EventBatch,
    ) -> faultline_store::Result<Vec<EventOutcome>> {
        let mut evaluation = None;
        let alerts = &self.alerts;
        let outcomes = self.store.record_events_and(batch, &mut |outcomes| {
            let facts: Vec<EventFacts> = batch
                .events
                .iter()
                .zip(outcomes)
                .filter(|(_, o)| !o.duplicate)
                .map(|(e, o)| EventFacts {
                    event_id: o.event_id,
                    issue_id: o.issue_id,
                    project: e.project.clone(),
                    service: e.service.clone(),
                    level: e.level,
                    tags: e.tags.clone(),
                    at: e.received_at,
                    count: e.details.count.max(1),
                    new_issue: o.new_issue,
                    regressed: o.regressed,
                    title: e.title.clone(),
                    fingerprint: e.fingerprint.clone(),
                })
                .collect();
            let eval = alerts.evaluate(&facts);
            let writes = alert_writes(alerts, &eval);
            evaluation = Some(eval);
            writes
        })?;
        if let Some(eval) = evaluation {
            self.alerts_committed(&eval);
        }
        if let Some(notices) = &self.notices {
            for (e, o) in batch.events.iter().zip(&outcomes) {
                if o.duplicate || !(o.new_issue || o.regressed) {
                    continue;
                }
                // No subscriber is fine.
                let _ = notices.send(IssueNotice {
                    kind: if o.new_issue { "new" } else { "regression" },
                    issue_id: o.issue_id,
                    project: e.project.clone(),
                    service: e.service.clone(),
                    title: e.title.clone(),
                    level: e.level,
                });
            }
        }
        Ok(outcomes)
    }

    /// Feeds the commits' per-service counts to error-rate rules; records
    /// what fired or re-armed.
    fn count_rates(&mut self, group: &[Committed]) -> faultline_store::Result<()> {
        let mut counts: Vec<ServiceCount> = Vec::new();
        for c in group.iter().flat_map(|g| g.counts.iter()) {
            match counts
                .iter_mut()
                .find(|x| x.service == c.service && x.project == c.project)
            {
                Some(x) => {
                    x.total += c.total;
                    x.errors += c.errors;
                }
                None => counts.push(c.clone()),
            }
        }
        if counts.is_empty() {
            return Ok(());
        }
        let eval = self
            .alerts
            .count_rates(&counts, faultline_model::now_micros());
        if eval.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.record_alerts(&alert_writes(&self.alerts, &eval)) {
            // The window lives in memory only: the next commit evaluates
            // again, but this firing's notification is lost.
            tracing::warn!(error = %e, "could not record an error-rate alert");
            return Ok(());
        }
        self.alerts_committed(&eval);
        Ok(())
    }

    /// Re-arms fired keys that went quiet (their resolutions go out).
    fn alert_tick(&mut self) -> faultline_store::Result<()> {
        self.last_alert_tick = Instant::now();
        let eval = self.alerts.tick(faultline_model::now_micros());
        if eval.is_empty() {
            return Ok(());
        }
        self.store
            .record_alerts(&alert_writes(&self.alerts, &eval))?;
        self.alerts_committed(&eval);
        Ok(())
    }

    fn alerts_committed(&mut self, eval: &Evaluation) {
        self.alerts.apply(eval);
        for t in &eval.triggers {
            if t.kind == TriggerKind::Firing {
                metrics::counter!("faultline_alerts_fired_total", "rule" => t.rule_name.clone())
                    .increment(1);
            }
        }
        if !eval.triggers.is_empty() {
            self.deliveries.notify_one();
        }
    }

    /// Processes everything in the store after the watermark.
    fn catch_up(&mut self) -> faultline_store::Result<()> {
        let min_level = self.processor.config().min_level;
        let started = self.through;
        loop {
            let last = self.store.last_entry_id()?;
            if last <= self.through {
                break;
            }
            let entries = self
                .store
                .entries_after(self.through, min_level, CATCH_UP_BATCH)?;
            self.load_rules(entries.iter().map(|e| e.entry.project.as_str()))?;
            // A short page means everything up to `last` was read, and
            // up to its own newest entry, which may be newer than `last`
            // when the writer committed in between (ids commit in order).
            let newest = entries.last().map_or(0, |e| e.id);
            let through = if entries.len() < CATCH_UP_BATCH {
                last.max(newest)
            } else {
                newest
            };
            let mut batch = self.processor.process(entries.iter(), self.through);
            batch.processed_through = Some(through);
            self.record(batch, through)?;
            self.last_work = Some(Instant::now());
        }
        if self.through > started {
            tracing::info!(
                from = started,
                through = self.through,
                "issue processor caught up"
            );
        }
        Ok(())
    }

    fn record(&mut self, batch: EventBatch, through: i64) -> faultline_store::Result<()> {
        let nothing_new =
            batch.events.is_empty() && batch.merges.is_empty() && batch.grouper_states.is_empty();
        if nothing_new {
            self.through = through;
            return self.save_if_due(false);
        }
        let outcomes = self.record_with_alerts(&batch)?;
        self.through = through;
        self.saved_through = through;
        self.last_watermark_save = Instant::now();
        if !batch.grouper_states.is_empty() {
            self.last_states_save = Instant::now();
        }
        count(&batch.events, &outcomes);
        Ok(())
    }

    /// Saves the watermark (and grouper states) when due, or with `all`.
    fn save_if_due(&mut self, all: bool) -> faultline_store::Result<()> {
        let states_due = all || self.last_states_save.elapsed() >= STATES_EVERY;
        let grouper_states = if states_due {
            self.last_states_save = Instant::now();
            self.processor.take_states(true)
        } else {
            Vec::new()
        };
        let watermark_due = self.through > self.saved_through
            && (all || self.last_watermark_save.elapsed() >= WATERMARK_EVERY);
        if grouper_states.is_empty() && !watermark_due {
            return Ok(());
        }
        self.store.record_events(&EventBatch {
            grouper_states,
            processed_through: Some(self.through),
            ..Default::default()
        })?;
        self.saved_through = self.through;
        self.last_watermark_save = Instant::now();
        Ok(())
    }
}

/// The outbox rows (one per trigger and channel of its rule) and states of
/// an evaluation.
fn alert_writes(alerts: &Evaluator, eval: &Evaluation) -> AlertWrites {
    let mut writes = AlertWrites::default();
    for t in &eval.triggers {
        let Some(rule) = alerts.rules().iter().find(|r| r.id == t.rule_id) else {
            continue;
        };
        let trigger = serde_json::to_string(t).expect("triggers serialize");
        for channel in &rule.spec.channels {
            writes.notifications.push(NewNotification {
                project: t.project.clone(),
                rule_id: t.rule_id,
                channel: channel.clone(),
                dedupe: t.dedupe.clone(),
                trigger: trigger.clone(),
            });
        }
    }
    for ((rule, key), state) in &eval.states {
        let json = if key.starts_with(RATE_KEY) {
            alerts
                .rate_state(*rule, key)
                .map(|s| serde_json::to_string(&s).expect("states serialize"))
        } else {
            state
                .as_ref()
                .map(|s| serde_json::to_string(s).expect("states serialize"))
        };
        writes.states.push((*rule, key.clone(), json));
    }
    writes
}

fn count(events: &[faultline_model::NewEvent], outcomes: &[EventOutcome]) {
    for (e, o) in events.iter().zip(outcomes) {
        if !o.duplicate {
            metrics::counter!(
                "faultline_events_recorded_total",
                "project" => e.project.clone(),
                "service" => e.service.clone(),
                "level" => e.level.as_str(),
            )
            .increment(1);
        }
    }
    let created = outcomes.iter().filter(|o| o.new_issue).count();
    metrics::counter!("faultline_issues_created_total").increment(created as u64);
    let regressed = outcomes.iter().filter(|o| o.regressed).count();
    metrics::counter!("faultline_issue_regressions_total").increment(regressed as u64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_model::NewEntry;
    use faultline_store_sqlite::{SqliteOptions, SqliteStore};

    fn entry(level: Level, message: &str) -> NewEntry {
        NewEntry {
            project: "p".into(),
            service: "api".into(),
            level,
            message: message.into(),
            tags: Vec::new(),
            timestamp: 1_700_000_000_000_000,
            received_at: 1_700_000_000_000_000,
            host: None,
            attributes: Default::default(),
            trace_id: None,
            span_id: None,
        }
    }

    fn total(store: &dyn Store) -> u64 {
        store
            .list_issues(&faultline_store::IssueQuery {
                project: Some("p".into()),
                limit: 100,
                page: 1,
                ..Default::default()
            })
            .unwrap()
            .issues
            .iter()
            .map(|i| i.count)
            .sum()
    }

    /// Entries committed while no processor ran (a crash before it
    /// recorded them) are found from the watermark at the next start; a
    /// feed that overflowed makes it catch up too; nothing is doubled.
    #[test]
    fn catches_up_from_the_store_and_never_doubles() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("db"), SqliteOptions::default()).unwrap());
        let batch: Vec<NewEntry> = (0..(CATCH_UP_BATCH as u32 + 7))
            .map(|i| {
                entry(
                    if i % 3 == 0 {
                        Level::Info
                    } else {
                        Level::Error
                    },
                    &format!("job {i} failed"),
                )
            })
            .collect();
        let errors = batch.iter().filter(|e| e.level >= Level::Error).count() as u64;
        let ids = store.append(&[&batch]).unwrap();

        let (feed, handle) = spawn(
            store.clone(),
            Level::Error,
            Default::default(),
            tokio::sync::broadcast::channel(8).0,
        );
        // The same commit also arrives through the feed: skipped.
        let committed: Vec<Arc<StoredEntry>> = batch
            .iter()
            .zip(&ids)
            .filter(|(e, _)| e.level >= Level::Error)
            .map(|(e, id)| {
                Arc::new(StoredEntry {
                    id: *id,
                    entry: e.clone(),
                })
            })
            .collect();
        feed.committed(Committed {
            entries: committed,
            through: *ids.last().unwrap(),
            committed_at: Instant::now(),
            counts: Vec::new(),
        });
        // A commit the feed lost (as when the channel is full).
        let lost = store
            .append(&[&[entry(Level::Error, "job x failed")]])
            .unwrap();
        feed.lagging.store(true, Ordering::Release);
        feed.stop();
        handle.join().unwrap();
        assert_eq!(total(store.as_ref()), errors + 1);
        assert_eq!(store.issues_processed_through().unwrap(), lost[0]);

        // A second start has nothing to do.
        let (feed, handle) = spawn(
            store.clone(),
            Level::Error,
            Default::default(),
            tokio::sync::broadcast::channel(8).0,
        );
        feed.stop();
        handle.join().unwrap();
        assert_eq!(total(store.as_ref()), errors + 1);
        assert!(
            !store.grouper_states().unwrap().is_empty(),
            "states saved on stop"
        );
    }
}
