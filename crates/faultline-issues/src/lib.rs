//! # faultline-issues
//!
//! Turns stored log entries into issue events: the server's issue
//! processor, without its I/O. One [`Processor`] holds a
//! [`faultline_grouping::Grouper`] and the fingerprint rules per project;
//! [`Processor::process`] takes committed entries (in id order) and returns
//! the [`EventBatch`] to record in one transaction: the events of the
//! entries at or above the configured level, the template merges the
//! groupers learned, the grouper states to persist (when due) and the
//! watermark.
//!
//! ```
//! use faultline_issues::{Processor, ProcessorConfig};
//! use faultline_model::{Level, NewEntry, StoredEntry};
//!
//! let mut p = Processor::new(ProcessorConfig::default());
//! let entry = |id, message: &str| StoredEntry {
//!     id,
//!     entry: NewEntry {
//!         project: "studio".into(),
//!         service: "render".into(),
//!         level: Level::Error,
//!         message: message.into(),
//!         tags: vec![],
//!         timestamp: 1,
//!         received_at: 1,
//!         host: None,
//!         attributes: Default::default(),
//!         trace_id: None,
//!         span_id: None,
//!     },
//! };
//! let batch = p.process(&[entry(1, "job 4411 failed on node 7"), entry(2, "job 4412 failed on node 9")], 0);
//! assert_eq!(batch.events.len(), 2);
//! assert_eq!(batch.events[0].fingerprint, batch.events[1].fingerprint);
//! assert_eq!(batch.processed_through, Some(2));
//! ```
//!
//! Architecture invariant: pure. The caller loads the persisted states
//! ([`Processor::restore`]) and rules ([`Processor::set_rules`]), feeds
//! entries in id order, and records the batches.

use faultline_grouping::{
    EventInput, FingerprintRules, Grouper, GrouperConfig, GrouperState, RawFingerprintRules,
    RuleError,
};
use faultline_model::{AttrValue, EventDetails, EventFrame, Level, Name, NewEvent, StoredEntry};
use faultline_store::EventBatch;
use std::collections::{BTreeMap, HashMap};

/// Attribute names that carry a logger name.
pub const LOGGER_KEYS: &[&str] = &["logger", "logger.name", "log.logger", "name"];
/// Attribute names that carry the affected user.
pub const USER_KEYS: &[&str] = &[
    "user",
    "user_login",
    "user.id",
    "user.name",
    "username",
    "enduser.id",
];
/// Attribute names that carry an exception type reported separately.
pub const EXCEPTION_TYPE_KEYS: &[&str] = &["exception.type", "exception_type", "error.type"];
/// Attribute names that carry a stack trace reported separately.
pub const STACK_KEYS: &[&str] = &["exception.stacktrace", "stacktrace", "stack", "error.stack"];

/// Attribute of a log entry the agent shipped for an error it also reported
/// as an incident (value: the incident's idempotency key).
pub const INCIDENT_ATTRIBUTE: &str = "faultline.incident";

/// Settings of the processor.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Entries at or above this level become events.
    pub min_level: Level,
    /// Persist a grouper's state after this many new events since its last
    /// save (and always on [`Processor::take_states`] with `all`).
    pub save_every_events: u64,
    /// Templates all projects' groupers keep together: each of the `n`
    /// projects keeps `max_templates / n`, at least
    /// [`MIN_TEMPLATES_PER_PROJECT`]. A template of random text costs up to
    /// about 1.7 KB with its caches (`faultline group` on 300,000 random
    /// messages peaks at 84 MB), so the default bounds the groupers near
    /// 85 MB whatever the messages, for up to 50 projects (beyond, 1,000
    /// templates each).
    pub max_templates: usize,
}

/// The least templates a project's grouper keeps under the shared budget.
pub const MIN_TEMPLATES_PER_PROJECT: usize = 1_000;

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            min_level: Level::Error,
            save_every_events: 1000,
            max_templates: GrouperConfig::default().miner.max_templates,
        }
    }
}

/// Why persisted data could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("the saved grouping state of project {project} is unreadable: {reason}")]
    State { project: String, reason: String },
    #[error("invalid fingerprint rules: {0}")]
    Rules(String),
}

struct ProjectGrouping {
    grouper: Grouper,
    rules: FingerprintRules,
    /// Events since the state was last handed out for saving.
    unsaved: u64,
}

impl ProjectGrouping {
    fn new(config: GrouperConfig) -> ProjectGrouping {
        ProjectGrouping {
            grouper: Grouper::new(config),
            rules: FingerprintRules::default(),
            unsaved: 0,
        }
    }
}

/// The issue processor's in-memory part.
pub struct Processor {
    config: ProcessorConfig,
    projects: HashMap<String, ProjectGrouping>,
}

/// Parses and validates fingerprint rules written as JSON.
pub fn parse_rules(json: &str) -> Result<FingerprintRules, ProcessorError> {
    let raw: RawFingerprintRules =
        serde_json::from_str(json).map_err(|e| ProcessorError::Rules(e.to_string()))?;
    FingerprintRules::new(&raw).map_err(|e: RuleError| ProcessorError::Rules(e.to_string()))
}

fn attr<'a>(entry: &'a StoredEntry, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| match entry.entry.attributes.get(k) {
            Some(AttrValue::Str(s)) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        })
}

impl Processor {
    pub fn new(config: ProcessorConfig) -> Processor {
        Processor {
            config,
            projects: HashMap::new(),
        }
    }

    pub fn config(&self) -> &ProcessorConfig {
        &self.config
    }

    /// Restores the groupers of all these projects (at start-up): every
    /// project is known before any state is loaded, so each loads with its
    /// final share of the template budget. A state that cannot be used is
    /// reported and that project starts afresh.
    pub fn restore_all(&mut self, states: &[(String, Vec<u8>)]) -> Vec<ProcessorError> {
        for (project, _) in states {
            self.project(project);
        }
        states
            .iter()
            .filter_map(|(project, state)| self.restore(project, state).err())
            .collect()
    }

    /// Restores a project's grouper from its persisted state.
    pub fn restore(&mut self, project: &str, state: &[u8]) -> Result<(), ProcessorError> {
        let err = |reason: String| ProcessorError::State {
            project: project.to_owned(),
            reason,
        };
        let state: GrouperState = serde_json::from_slice(state).map_err(|e| err(e.to_string()))?;
        let p = self.project(project);
        let config = p.grouper.config().clone();
        let share = config.miner.max_templates;
        let mut grouper = Grouper::import_state(config, &state).map_err(|e| err(e.to_string()))?;
        // A state saved under a bigger share keeps its most recent.
        grouper.set_max_templates(share);
        p.grouper = grouper;
        Ok(())
    }

    /// Each project's share of the template budget with `n` projects.
    fn templates_per_project(&self, n: usize) -> usize {
        (self.config.max_templates / n.max(1)).max(MIN_TEMPLATES_PER_PROJECT)
    }

    /// Sets a project's fingerprint rules (empty rules: the default grouping).
    pub fn set_rules(&mut self, project: &str, rules: FingerprintRules) {
        self.project(project).rules = rules;
    }

    fn project(&mut self, name: &str) -> &mut ProjectGrouping {
        if !self.projects.contains_key(name) {
            // One more project: every grouper's share shrinks.
            let share = self.templates_per_project(self.projects.len() + 1);
            for p in self.projects.values_mut() {
                p.grouper.set_max_templates(share);
            }
            let mut config = GrouperConfig::default();
            config.miner.max_templates = share;
            self.projects
                .insert(name.to_owned(), ProjectGrouping::new(config));
        }
        self.projects
            .get_mut(name)
            .expect("inserted just above when missing")
    }

    /// The event of one entry, or None when it is below the level or
    /// when an agent reported the same error as an incident (a shipped line
    /// carrying [`INCIDENT_ATTRIBUTE`]): one error, one event.
    pub fn event_for(&mut self, entry: &StoredEntry) -> Option<NewEvent> {
        if entry.entry.level < self.config.min_level
            || entry.entry.attributes.contains_key(INCIDENT_ATTRIBUTE)
        {
            return None;
        }
        Some(self.build(entry))
    }

    /// The event of an incident an agent reported (whatever its level): the
    /// entry carries what a log entry would; `title` (the agent's
    /// signature) replaces the engine's title when given; `details` adds
    /// context, environment, attachments and the count; `key` makes
    /// recording it idempotent. The fingerprint is the server's own.
    pub fn incident_event(
        &mut self,
        entry: &StoredEntry,
        title: Option<String>,
        user: Option<String>,
        details: EventDetails,
        key: String,
    ) -> NewEvent {
        let mut ev = self.build(entry);
        ev.log_id = None;
        if let Some(t) = title.filter(|t| !t.trim().is_empty()) {
            ev.title = t;
        }
        if user.is_some() {
            ev.user = user;
        }
        ev.details = EventDetails {
            exception_type: ev.details.exception_type.take(),
            frames: std::mem::take(&mut ev.details.frames),
            ..details
        };
        ev.key = Some(key);
        ev
    }

    fn build(&mut self, entry: &StoredEntry) -> NewEvent {
        let e = &entry.entry;
        let attributes: Vec<(&str, &str)> = e
            .attributes
            .iter()
            .filter_map(|(k, v)| match v {
                AttrValue::Str(s) => Some((k.as_str(), s.as_str())),
                _ => None,
            })
            .collect();
        let logger = attr(entry, LOGGER_KEYS);
        let input = EventInput {
            message: &e.message,
            level: Some(e.level.as_str()),
            service: Some(&e.service),
            logger,
            exception: attr(entry, EXCEPTION_TYPE_KEYS),
            stack: attr(entry, STACK_KEYS),
            attributes: &attributes,
        };
        let project = self.project(&e.project);
        let fp = project
            .grouper
            .fingerprint_with_rules(&input, &project.rules);
        project.unsaved += 1;
        let frames = fp
            .stack
            .as_ref()
            .map(|st| {
                st.frames()
                    .map(|f| EventFrame {
                        module: f.module.clone(),
                        function: f.function.clone(),
                        file: f.file.clone(),
                        line: f.line,
                        in_app: f.in_app,
                    })
                    .collect()
            })
            .unwrap_or_default();
        NewEvent {
            project: e.project.to_string(),
            service: e.service.to_string(),
            fingerprint: fp.id.to_string(),
            title: fp.title,
            culprit: fp
                .culprit
                .or_else(|| logger.map(str::to_owned))
                .or_else(|| Some(e.service.to_string())),
            level: e.level,
            timestamp: e.timestamp,
            received_at: e.received_at,
            log_id: Some(entry.id),
            message: e.message.clone(),
            host: e.host.as_ref().map(Name::to_string),
            user: attr(entry, USER_KEYS).map(str::to_owned),
            tags: e.tags.iter().map(Name::to_string).collect(),
            attributes: e.attributes.clone(),
            details: EventDetails {
                exception_type: fp.exception_type,
                frames,
                count: 1,
                ..Default::default()
            },
            key: None,
        }
    }

    /// Templates each project's grouper keeps now, by project.
    pub fn template_counts(&self) -> BTreeMap<&str, usize> {
        self.projects
            .iter()
            .map(|(name, p)| (name.as_str(), p.grouper.template_count()))
            .collect()
    }

    /// Gives back the groupers' caches (for an idle server; results do not
    /// change).
    pub fn release_memory(&mut self) {
        for p in self.projects.values_mut() {
            p.grouper.release_caches();
        }
    }

    /// Template merges learned since the last call, as (project, from
    /// fingerprint, into fingerprint).
    pub fn take_merges(&mut self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for (name, p) in &mut self.projects {
            for m in p.grouper.take_merges() {
                out.push((name.clone(), m.from.to_string(), m.into.to_string()));
            }
        }
        out.sort();
        out
    }

    /// Serialized grouper states to persist: those with at least
    /// `save_every_events` new events, or every changed one with `all`.
    pub fn take_states(&mut self, all: bool) -> Vec<(String, Vec<u8>)> {
        let threshold = if all {
            1
        } else {
            self.config.save_every_events
        };
        let mut out = Vec::new();
        for (name, p) in &mut self.projects {
            if p.unsaved >= threshold.max(1) {
                p.unsaved = 0;
                let state = serde_json::to_vec(&p.grouper.export_state())
                    .expect("a grouper state always serializes");
                out.push((name.clone(), state));
            }
        }
        out.sort();
        out
    }

    /// Processes committed entries (ids ascending) that follow
    /// `processed_through`; returns what to record.
    /// Entries at or below `processed_through` are skipped (already done).
    pub fn process<'a>(
        &mut self,
        entries: impl IntoIterator<Item = &'a StoredEntry>,
        processed_through: i64,
    ) -> EventBatch {
        let mut events = Vec::new();
        let mut through = processed_through;
        for e in entries {
            if e.id <= processed_through {
                continue;
            }
            through = through.max(e.id);
            if let Some(ev) = self.event_for(e) {
                events.push(ev);
            }
        }
        EventBatch {
            events,
            merges: self.take_merges(),
            grouper_states: self.take_states(false),
            processed_through: Some(through),
            durable: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_model::NewEntry;

    fn entry(id: i64, level: Level, message: &str) -> StoredEntry {
        StoredEntry {
            id,
            entry: NewEntry {
                project: "p".into(),
                service: "api".into(),
                level,
                message: message.into(),
                tags: Vec::new(),
                timestamp: 1_000 + id,
                received_at: 2_000 + id,
                host: Some("h1".into()),
                attributes: Default::default(),
                trace_id: None,
                span_id: None,
            },
        }
    }

    /// The projects' groupers share one template budget: a new project
    /// shrinks every share, down to the floor per project.
    #[test]
    fn projects_share_the_template_budget() {
        let mut p = Processor::new(ProcessorConfig {
            max_templates: 4_000,
            ..Default::default()
        });
        // Distinct words in the same places: a new template each.
        let word = |i: usize| -> String {
            (0..4)
                .map(|k| char::from(b'a' + ((i >> (k * 4)) & 15) as u8))
                .collect()
        };
        let mut id = 0;
        let mut feed = |p: &mut Processor, project: &str, n: usize| {
            let entries: Vec<StoredEntry> = (0..n)
                .map(|i| {
                    id += 1;
                    let mut e = entry(
                        id,
                        Level::Error,
                        &format!("{} {} failed", word(i), word(i + 7)),
                    );
                    e.entry.project = project.into();
                    e
                })
                .collect();
            p.process(&entries, 0);
        };
        feed(&mut p, "a", 6_000);
        assert!(
            p.template_counts()["a"] > 3_000,
            "{:?}",
            p.template_counts()
        );
        assert!(
            p.template_counts()["a"] <= 4_000,
            "{:?}",
            p.template_counts()
        );
        // States saved with the whole budget load with their share when
        // all projects are restored together.
        let saved = serde_json::to_vec(&p.projects["a"].grouper.export_state()).unwrap();
        let mut q = Processor::new(ProcessorConfig {
            max_templates: 4_000,
            ..Default::default()
        });
        let states: Vec<(String, Vec<u8>)> = ["a", "x", "y", "z"]
            .iter()
            .map(|name| (name.to_string(), saved.clone()))
            .collect();
        assert!(q.restore_all(&states).is_empty());
        for n in q.template_counts().values() {
            assert!(*n <= 1_000, "{:?}", q.template_counts());
        }
        feed(&mut p, "b", 10);
        let c = p.template_counts();
        assert!(c["a"] <= 2_000 && c["b"] == 10, "{c:?}");
        for name in ["c", "d", "e", "f"] {
            feed(&mut p, name, 3_000);
        }
        let c = p.template_counts();
        for (name, n) in &c {
            assert!(*n <= MIN_TEMPLATES_PER_PROJECT, "{name}: {n} ({c:?})");
        }
        assert!(c["f"] >= MIN_TEMPLATES_PER_PROJECT * 9 / 10, "{c:?}");
    }

    #[test]
    fn only_entries_at_or_above_the_level_become_events() {
        let mut p = Processor::new(ProcessorConfig::default());
        let batch = p.process(
            &[
                entry(1, Level::Info, "user 1 logged in"),
                entry(2, Level::Error, "db timeout after 30 s"),
                entry(3, Level::Critical, "disk /dev/sda1 full"),
                entry(4, Level::Warn, "slow request"),
            ],
            0,
        );
        let ids: Vec<Option<i64>> = batch.events.iter().map(|e| e.log_id).collect();
        assert_eq!(ids, [Some(2), Some(3)]);
        assert_eq!(batch.processed_through, Some(4));
        let again = p.process(
            &[entry(3, Level::Error, "x"), entry(5, Level::Error, "y")],
            4,
        );
        assert_eq!(
            again.events.len(),
            1,
            "ids at or below the watermark are done"
        );
        assert_eq!(again.processed_through, Some(5));
        assert_eq!(batch.events[0].culprit.as_deref(), Some("api"));
        assert_eq!(batch.events[0].host.as_deref(), Some("h1"));
    }

    #[test]
    fn stack_traces_group_by_type_and_frames_not_values() {
        let mut p = Processor::new(ProcessorConfig::default());
        let trace = |v: &str| {
            format!(
                "Traceback (most recent call last):\n  File \"/srv/app/jobs.py\", line 3, in run\n    x()\nKeyError: '{v}'"
            )
        };
        let a = p
            .event_for(&entry(1, Level::Error, &trace("sh010")))
            .unwrap();
        let b = p
            .event_for(&entry(2, Level::Error, &trace("sh020")))
            .unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.details.exception_type.as_deref(), Some("KeyError"));
        assert_eq!(a.details.frames.len(), 1);
        assert!(a.details.frames[0].in_app);
        let other = p
            .event_for(&entry(
                3,
                Level::Error,
                "connection refused by 10.0.0.1:5432",
            ))
            .unwrap();
        assert_ne!(other.fingerprint, a.fingerprint);
    }

    #[test]
    fn rules_and_attributes_shape_events() {
        let mut p = Processor::new(ProcessorConfig::default());
        p.set_rules(
            "p",
            parse_rules(
                r#"{"rules":[{"message":"*timeout*","fingerprint":["{{ attributes.tenant }}","timeout"]}]}"#,
            )
            .unwrap(),
        );
        let mut a = entry(1, Level::Error, "db timeout");
        a.entry
            .attributes
            .insert("tenant".into(), AttrValue::Str("acme".into()));
        a.entry
            .attributes
            .insert("user_login".into(), AttrValue::Str("alice".into()));
        let mut b = a.clone();
        b.entry
            .attributes
            .insert("tenant".into(), AttrValue::Str("globex".into()));
        let ea = p.event_for(&a).unwrap();
        let eb = p.event_for(&b).unwrap();
        assert_ne!(ea.fingerprint, eb.fingerprint, "grouped by tenant");
        assert_eq!(ea.user.as_deref(), Some("alice"));
        assert!(parse_rules("{\"rules\":[{\"bogus\":1}]}").is_err());
    }

    #[test]
    fn incidents_keep_the_agents_title_and_details() {
        let mut p = Processor::new(ProcessorConfig::default());
        let mut e = entry(0, Level::Warn, "ValueError: bad frame range 1001-900");
        e.entry
            .attributes
            .insert("logger".into(), AttrValue::Str("sgtk.core".into()));
        let details = EventDetails {
            count: 3,
            environment: [("os".to_string(), "Linux".to_string())].into(),
            ..Default::default()
        };
        let ev = p.incident_event(
            &e,
            Some("alice - ValueError".into()),
            Some("alice".into()),
            details,
            "f1:100".into(),
        );
        assert_eq!(ev.title, "alice - ValueError");
        assert_eq!(ev.user.as_deref(), Some("alice"));
        assert_eq!(ev.details.count, 3);
        assert_eq!(ev.details.environment["os"], "Linux");
        assert_eq!(ev.details.exception_type.as_deref(), Some("ValueError"));
        assert_eq!(ev.culprit.as_deref(), Some("sgtk.core"));
        assert_eq!(ev.key.as_deref(), Some("f1:100"));
        assert_eq!(ev.log_id, None);
        // The same error as a log entry lands in the same issue.
        let as_log = p.build(&entry(
            5,
            Level::Error,
            "ValueError: bad frame range 1001-900",
        ));
        assert_eq!(as_log.fingerprint, ev.fingerprint);
    }

    #[test]
    fn states_restore_to_the_same_ids() {
        let mut p = Processor::new(ProcessorConfig {
            save_every_events: 2,
            ..Default::default()
        });
        let mut fps = Vec::new();
        for (i, u) in ["alice", "bob", "carol", "dave", "erin"].iter().enumerate() {
            let e = entry(
                i as i64,
                Level::Error,
                &format!("user {u} failed to log in"),
            );
            fps.push(p.event_for(&e).unwrap().fingerprint);
        }
        let merges = p.take_merges();
        let states = p.take_states(false);
        assert_eq!(states.len(), 1);
        assert!(p.take_states(false).is_empty(), "nothing new to save");
        let mut q = Processor::new(ProcessorConfig::default());
        q.restore("p", &states[0].1).unwrap();
        let again = q
            .event_for(&entry(9, Level::Error, "user zoe failed to log in"))
            .unwrap();
        let latest = p
            .event_for(&entry(9, Level::Error, "user zoe failed to log in"))
            .unwrap();
        assert_eq!(again.fingerprint, latest.fingerprint);
        // Early users were separate groups until the family generalised;
        // the merges say where they went.
        for (_, from, into) in &merges {
            assert!(fps.contains(from) || fps.contains(into));
        }
        assert!(q.restore("p", b"not json").is_err());
    }
}
