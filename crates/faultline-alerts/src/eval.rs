//! Burst detection: which events make which rules fire, exactly once per
//! burst.
//!
//! Per rule and key (an issue, or a service) a frequency rule keeps the
//! arrivals of the current window: `(time, count)` records, at most
//! `count - 1` of them (on the `count`-th occurrence it fires). Once fired,
//! the key stays fired — later events of the burst send nothing — until it
//! has been quiet for the rule's cooldown; then it re-arms (and a
//! `Resolved` trigger tells Alertmanager-like channels the alert ended).
//!
//! Evaluation is functional: [`Evaluator::evaluate`] returns the triggers
//! and the new states of the keys it touched without changing the
//! evaluator; the caller commits them together with the events, then calls
//! [`Evaluator::apply`]. A failed commit leaves memory as it was, so a
//! replay evaluates the same events again from the same states: exactly
//! once.

use crate::rule::{Per, Rule, RuleKind};
use faultline_model::Level;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// What the evaluator needs to know of one recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFacts {
    pub event_id: i64,
    pub issue_id: i64,
    pub project: String,
    pub service: String,
    pub level: Level,
    pub tags: Vec<String>,
    /// When the server received it (µs): windows run on the server's clock.
    pub at: i64,
    /// Occurrences the event stands for (≥ 1).
    pub count: u64,
    pub new_issue: bool,
    pub regressed: bool,
    pub title: String,
    pub fingerprint: String,
}

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    Firing,
    Resolved,
}

/// A rule fired (or a fired key re-armed): what notifications say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub kind: TriggerKind,
    pub rule_id: i64,
    pub rule_name: String,
    /// `frequency`, `new_issue` or `regression`.
    pub condition: String,
    pub project: String,
    pub service: String,
    /// The rule's key: `issue:<id>` or `service:<name>`.
    pub key: String,
    pub issue_id: Option<i64>,
    pub title: String,
    pub fingerprint: String,
    pub level: Level,
    /// Occurrences in the window when it fired (1 for new issues).
    pub count: u64,
    pub window_secs: u64,
    /// First and last occurrence of the burst (µs).
    pub first_at: i64,
    pub last_at: i64,
    /// When the burst started firing (µs): with the rule and key, names
    /// the burst.
    pub fired_at: i64,
    /// For Alertmanager: when the alert ends (µs), if known.
    pub ends_at: Option<i64>,
    /// One trigger, one id: the outbox refuses a second notification with
    /// the same id for the same channel.
    pub dedupe: String,
}

/// What a rule remembers about one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// Arrivals in the current window (time µs, count), oldest first.
    #[serde(default)]
    arrivals: VecDeque<(i64, u64)>,
    /// Sum of the counts in `arrivals`.
    #[serde(default)]
    sum: u64,
    /// Set while fired: when it fired.
    #[serde(default)]
    fired_at: Option<i64>,
    /// The last event of the key (µs).
    #[serde(default)]
    last_at: i64,
    /// The first arrival of the burst that fired.
    #[serde(default)]
    first_at: i64,
    /// What the fired trigger said, for the resolution.
    #[serde(default)]
    fired: Option<Trigger>,
}

/// (rule id, key).
pub type StateKey = (i64, String);

/// The outcome of evaluating events: triggers to notify and states to
/// store (`None`: delete).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    pub triggers: Vec<Trigger>,
    pub states: BTreeMap<StateKey, Option<KeyState>>,
}

impl Evaluation {
    pub fn is_empty(&self) -> bool {
        self.triggers.is_empty() && self.states.is_empty()
    }
}

/// Entries a commit stored for one service: what error-rate rules count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCount {
    pub project: String,
    pub service: String,
    pub total: u64,
    /// Entries at error level or above.
    pub errors: u64,
}

/// An error-rate rule's window for one service: per-second (second,
/// entries, errors) buckets, and whether it fired.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateState {
    #[serde(default)]
    buckets: VecDeque<(i64, u64, u64)>,
    #[serde(default)]
    fired: Option<Trigger>,
}

/// Key prefix of persisted error-rate states (`rate:service:<name>`).
pub const RATE_KEY: &str = "rate:";

/// Rules of every project and the state of their keys.
#[derive(Debug, Default)]
pub struct Evaluator {
    rules: Vec<Rule>,
    states: HashMap<StateKey, KeyState>,
    rates: HashMap<StateKey, RateState>,
}

fn condition_name(kind: &RuleKind) -> &'static str {
    match kind {
        RuleKind::Frequency { .. } => "frequency",
        RuleKind::NewIssue => "new_issue",
        RuleKind::Regression => "regression",
        RuleKind::ErrorRate { .. } => "error_rate",
    }
}

fn matches(rule: &Rule, ev: &EventFacts) -> bool {
    rule.spec.enabled
        && rule.project == ev.project
        && rule.min_level.is_none_or(|l| ev.level >= l)
        && (rule.spec.services.is_empty() || rule.spec.services.contains(&ev.service))
        && (rule.spec.tags.is_empty() || rule.spec.tags.iter().any(|t| ev.tags.contains(t)))
}

impl Evaluator {
    pub fn new() -> Evaluator {
        Evaluator::default()
    }

    /// Replaces every rule; states of rules that are gone are dropped.
    pub fn set_rules(&mut self, rules: Vec<Rule>) {
        let ids: std::collections::HashSet<i64> = rules.iter().map(|r| r.id).collect();
        self.states.retain(|(rule, _), _| ids.contains(rule));
        self.rules = rules;
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Restores a persisted key state.
    pub fn restore(&mut self, rule_id: i64, key: String, state: KeyState) {
        self.states.insert((rule_id, key), state);
    }

    /// Restores a persisted error-rate state (its firing; windows restart
    /// empty after a restart).
    pub fn restore_rate(&mut self, rule_id: i64, key: String, state: RateState) {
        self.rates.insert(
            (rule_id, key),
            RateState {
                buckets: VecDeque::new(),
                ..state
            },
        );
    }

    /// Counts a commit's entries into the error-rate rules at time `at`
    /// (µs). Windows live in memory; what is returned is the triggers and
    /// the states to persist (only when a key fires or re-arms, so a restart
    /// neither repeats nor forgets a firing, while the window itself starts
    /// empty again).
    pub fn count_rates(&mut self, counts: &[ServiceCount], at: i64) -> Evaluation {
        let mut out = Evaluation::default();
        let sec = at.div_euclid(1_000_000);
        for rule in &self.rules {
            let RuleKind::ErrorRate {
                threshold,
                window,
                min_entries,
            } = rule.kind
            else {
                continue;
            };
            if !rule.spec.enabled {
                continue;
            }
            for c in counts.iter().filter(|c| {
                c.project == rule.project
                    && (rule.spec.services.is_empty() || rule.spec.services.contains(&c.service))
            }) {
                let key = format!("{RATE_KEY}service:{}", c.service);
                let state = self.rates.entry((rule.id, key.clone())).or_default();
                match state.buckets.back_mut() {
                    Some(b) if b.0 == sec => {
                        b.1 += c.total;
                        b.2 += c.errors;
                    }
                    _ => state.buckets.push_back((sec, c.total, c.errors)),
                }
                let oldest = sec - window / 1_000_000;
                while state.buckets.front().is_some_and(|b| b.0 <= oldest) {
                    state.buckets.pop_front();
                }
                let total: u64 = state.buckets.iter().map(|b| b.1).sum();
                let errors: u64 = state.buckets.iter().map(|b| b.2).sum();
                let rate = if total == 0 {
                    0.0
                } else {
                    errors as f64 / total as f64
                };
                let changed = match &state.fired {
                    None if total >= min_entries && rate >= threshold => {
                        let t = Trigger {
                            kind: TriggerKind::Firing,
                            rule_id: rule.id,
                            rule_name: rule.spec.name.clone(),
                            condition: "error_rate".into(),
                            project: c.project.clone(),
                            service: c.service.clone(),
                            key: format!("service:{}", c.service),
                            issue_id: None,
                            title: format!(
                                "{:.1} % of {} entries are errors ({errors} of {total})",
                                rate * 100.0,
                                c.service
                            ),
                            fingerprint: String::new(),
                            level: Level::Error,
                            count: errors,
                            window_secs: u64::try_from(window / 1_000_000).unwrap_or(0),
                            first_at: state.buckets.front().map_or(at, |b| b.0 * 1_000_000),
                            last_at: at,
                            fired_at: at,
                            ends_at: None,
                            dedupe: format!("rule{}:rate:{}:{at}", rule.id, c.service),
                        };
                        state.fired = Some(t.clone());
                        out.triggers.push(t);
                        true
                    }
                    Some(f)
                        if rate < threshold && at.saturating_sub(f.fired_at) >= rule.cooldown =>
                    {
                        let mut t = f.clone();
                        t.kind = TriggerKind::Resolved;
                        t.last_at = at;
                        t.ends_at = Some(at);
                        t.dedupe = format!("{}:resolved", t.dedupe);
                        out.triggers.push(t);
                        state.fired = None;
                        true
                    }
                    _ => false,
                };
                if changed {
                    out.states.insert(
                        (rule.id, key),
                        state.fired.as_ref().map(|_| KeyState::default()),
                    );
                }
            }
        }
        out
    }

    /// The persisted form of an error-rate key after [`Self::count_rates`]:
    /// its firing only.
    pub fn rate_state(&self, rule_id: i64, key: &str) -> Option<RateState> {
        self.rates
            .get(&(rule_id, key.to_owned()))
            .filter(|s| s.fired.is_some())
            .map(|s| RateState {
                buckets: VecDeque::new(),
                fired: s.fired.clone(),
            })
    }

    /// Keys currently fired (for tests and metrics).
    pub fn fired_keys(&self) -> usize {
        self.states
            .values()
            .filter(|s| s.fired_at.is_some())
            .count()
    }

    /// Evaluates events in order; changes nothing (see the module docs).
    pub fn evaluate(&self, events: &[EventFacts]) -> Evaluation {
        let mut out = Evaluation::default();
        let mut work: HashMap<StateKey, KeyState> = HashMap::new();
        for ev in events {
            for rule in self.rules.iter().filter(|r| matches(r, ev)) {
                match rule.kind {
                    RuleKind::NewIssue if ev.new_issue => {
                        out.triggers.push(instant(rule, ev, "new"));
                    }
                    RuleKind::Regression if ev.regressed => {
                        out.triggers
                            .push(instant(rule, ev, &format!("regressed:{}", ev.event_id)));
                    }
                    RuleKind::Frequency { count, window, per } => {
                        let key = match per {
                            Per::Issue => format!("issue:{}", ev.issue_id),
                            Per::Service => format!("service:{}", ev.service),
                        };
                        let sk = (rule.id, key.clone());
                        let state = work
                            .entry(sk.clone())
                            .or_insert_with(|| self.states.get(&sk).cloned().unwrap_or_default());
                        if let Some(t) = count_event(rule, state, ev, &key, count, window, per) {
                            out.triggers.extend(t);
                        }
                        out.states.insert(sk, None);
                    }
                    _ => {}
                }
            }
        }
        for (sk, state) in work {
            let keep = state.fired_at.is_some() || !state.arrivals.is_empty();
            out.states.insert(sk, keep.then_some(state));
        }
        out
    }

    /// Fired keys quiet for their rule's cooldown at `now` re-arm: their
    /// `Resolved` triggers and states.
    pub fn tick(&self, now: i64) -> Evaluation {
        let mut out = Evaluation::default();
        for ((rule_id, key), state) in &self.states {
            let Some(rule) = self.rules.iter().find(|r| r.id == *rule_id) else {
                continue;
            };
            let window = match rule.kind {
                RuleKind::Frequency { window, .. } => window,
                _ => continue,
            };
            if state.fired_at.is_some() && now.saturating_sub(state.last_at) >= rule.cooldown {
                if let Some(t) = resolved(state, now) {
                    out.triggers.push(t);
                }
                out.states.insert((*rule_id, key.clone()), None);
            } else if state.fired_at.is_none()
                && state
                    .arrivals
                    .back()
                    .is_some_and(|(t, _)| now.saturating_sub(*t) > window)
            {
                // Nothing left in the window: forget the key.
                out.states.insert((*rule_id, key.clone()), None);
            }
        }
        out.triggers.sort_by(|a, b| a.dedupe.cmp(&b.dedupe));
        out
    }

    /// Makes an evaluation's states current (after they were committed).
    pub fn apply(&mut self, eval: &Evaluation) {
        for (sk, state) in &eval.states {
            if sk.1.starts_with(RATE_KEY) {
                // Error-rate keys change in place (count_rates).
                continue;
            }
            match state {
                Some(s) => {
                    self.states.insert(sk.clone(), s.clone());
                }
                None => {
                    self.states.remove(sk);
                }
            }
        }
    }
}

fn instant(rule: &Rule, ev: &EventFacts, what: &str) -> Trigger {
    Trigger {
        kind: TriggerKind::Firing,
        rule_id: rule.id,
        rule_name: rule.spec.name.clone(),
        condition: condition_name(&rule.kind).into(),
        project: ev.project.clone(),
        service: ev.service.clone(),
        key: format!("issue:{}", ev.issue_id),
        issue_id: Some(ev.issue_id),
        title: ev.title.clone(),
        fingerprint: ev.fingerprint.clone(),
        level: ev.level,
        count: ev.count,
        window_secs: 0,
        first_at: ev.at,
        last_at: ev.at,
        fired_at: ev.at,
        ends_at: Some(ev.at.saturating_add(rule.cooldown)),
        dedupe: format!("rule{}:issue{}:{what}", rule.id, ev.issue_id),
    }
}

fn resolved(state: &KeyState, now: i64) -> Option<Trigger> {
    let mut t = state.fired.clone()?;
    t.kind = TriggerKind::Resolved;
    t.last_at = state.last_at;
    t.ends_at = Some(now);
    t.dedupe = format!("{}:resolved", t.dedupe);
    Some(t)
}

/// Counts one event into a frequency key; returns the triggers it causes
/// (a resolution of a burst that went quiet, and/or a new firing).
fn count_event(
    rule: &Rule,
    state: &mut KeyState,
    ev: &EventFacts,
    key: &str,
    threshold: u64,
    window: i64,
    per: Per,
) -> Option<Vec<Trigger>> {
    let mut out = Vec::new();
    let n = ev.count.max(1);
    if state.fired_at.is_some() {
        if ev.at.saturating_sub(state.last_at) >= rule.cooldown {
            // Quiet long enough (no tick saw it, e.g. during a replay):
            // re-arm, then count this event afresh.
            if let Some(t) = resolved(state, state.last_at.saturating_add(rule.cooldown)) {
                out.push(t);
            }
            *state = KeyState::default();
        } else {
            state.last_at = state.last_at.max(ev.at);
            return (!out.is_empty()).then_some(out);
        }
    }
    state.last_at = state.last_at.max(ev.at);
    state.arrivals.push_back((ev.at, n));
    state.sum = state.sum.saturating_add(n);
    while let Some(&(t, c)) = state.arrivals.front() {
        if ev.at.saturating_sub(t) > window {
            state.arrivals.pop_front();
            state.sum -= c;
        } else {
            break;
        }
    }
    if state.sum >= threshold {
        let first = state.arrivals.front().map_or(ev.at, |(t, _)| *t);
        let trigger = Trigger {
            kind: TriggerKind::Firing,
            rule_id: rule.id,
            rule_name: rule.spec.name.clone(),
            condition: "frequency".into(),
            project: ev.project.clone(),
            service: ev.service.clone(),
            key: key.to_owned(),
            issue_id: (per == Per::Issue).then_some(ev.issue_id),
            title: ev.title.clone(),
            fingerprint: ev.fingerprint.clone(),
            level: ev.level,
            count: state.sum,
            window_secs: u64::try_from(window / 1_000_000).unwrap_or(0),
            first_at: first,
            last_at: ev.at,
            fired_at: ev.at,
            ends_at: None,
            dedupe: format!("rule{}:{key}:{}", rule.id, ev.at),
        };
        state.fired_at = Some(ev.at);
        state.first_at = first;
        state.arrivals.clear();
        state.sum = 0;
        state.fired = Some(trigger.clone());
        out.push(trigger);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::RuleSpec;

    const S: i64 = 1_000_000;

    fn rule(id: i64, json: &str) -> Rule {
        serde_json::from_str::<RuleSpec>(json)
            .unwrap()
            .validate(id, "p")
            .unwrap()
    }

    fn storm() -> Rule {
        rule(
            1,
            r#"{"name":"storm","condition":{"type":"frequency","count":100,"window":"1m"},"channels":["c"],"cooldown":"5m"}"#,
        )
    }

    fn ev(issue: i64, at: i64) -> EventFacts {
        EventFacts {
            event_id: at,
            issue_id: issue,
            project: "p".into(),
            service: "api".into(),
            level: Level::Error,
            tags: vec![],
            at,
            count: 1,
            new_issue: false,
            regressed: false,
            title: "boom".into(),
            fingerprint: "ff".into(),
        }
    }

    /// Feeds events one evaluation at a time (as commits would), applying
    /// each; returns the firing triggers.
    fn run(e: &mut Evaluator, events: impl IntoIterator<Item = EventFacts>) -> Vec<Trigger> {
        let mut fired = Vec::new();
        for x in events {
            let out = e.evaluate(&[x]);
            e.apply(&out);
            fired.extend(out.triggers);
        }
        fired
    }

    #[test]
    fn fires_on_the_hundredth_event_once_per_burst() {
        let mut e = Evaluator::new();
        e.set_rules(vec![storm()]);
        let t0 = 1_000 * S;
        let fired = run(&mut e, (0..99).map(|i| ev(7, t0 + i * 100_000)));
        assert!(fired.is_empty(), "99 events: nothing");
        let fired = run(&mut e, [ev(7, t0 + 9_900_000)]);
        assert_eq!(fired.len(), 1, "the 100th fires");
        assert_eq!(fired[0].count, 100);
        assert_eq!(fired[0].first_at, t0);
        let fired = run(&mut e, (0..500).map(|i| ev(7, t0 + 10 * S + i * 10_000)));
        assert!(fired.is_empty(), "the rest of the burst: nothing");
        // Another issue has its own key.
        let fired = run(&mut e, (0..100).map(|i| ev(8, t0 + 20 * S + i)));
        assert_eq!(fired.len(), 1);
    }

    #[test]
    fn window_is_sliding_and_counts_weigh() {
        let mut e = Evaluator::new();
        e.set_rules(vec![storm()]);
        let t0 = 1_000 * S;
        // 60 events, then 61 s later 60 more: never 100 within 60 s.
        let mut fired = run(&mut e, (0..60).map(|i| ev(1, t0 + i)));
        fired.extend(run(&mut e, (0..60).map(|i| ev(1, t0 + 61 * S + i))));
        assert!(fired.is_empty());
        // An event standing for 40 occurrences completes it.
        let mut heavy = ev(1, t0 + 62 * S);
        heavy.count = 40;
        assert_eq!(run(&mut e, [heavy]).len(), 1);
    }

    #[test]
    fn rearms_after_a_quiet_cooldown_with_a_resolution() {
        let mut e = Evaluator::new();
        e.set_rules(vec![storm()]);
        let t0 = 1_000 * S;
        assert_eq!(run(&mut e, (0..150).map(|i| ev(1, t0 + i * 1000))).len(), 1);
        // Not yet quiet.
        let tick = e.tick(t0 + 4 * 60 * S);
        assert!(tick.triggers.is_empty());
        // Quiet for the cooldown: resolved, re-armed.
        let tick = e.tick(t0 + 6 * 60 * S);
        assert_eq!(tick.triggers.len(), 1);
        assert_eq!(tick.triggers[0].kind, TriggerKind::Resolved);
        e.apply(&tick);
        assert_eq!(e.fired_keys(), 0);
        let later = t0 + 7 * 60 * S;
        let fired = run(&mut e, (0..150).map(|i| ev(1, later + i * 1000)));
        assert_eq!(fired.len(), 1, "150 more after the cooldown: one more");
        assert_ne!(fired[0].dedupe, "");
    }

    #[test]
    fn a_burst_that_never_pauses_stays_one_alert() {
        let mut e = Evaluator::new();
        e.set_rules(vec![storm()]);
        let t0 = 1_000 * S;
        // 20 minutes, ten events per second: fires once.
        let fired = run(&mut e, (0..12_000).map(|i| ev(1, t0 + i * S / 10)));
        assert_eq!(fired.len(), 1, "{fired:#?}");
    }

    #[test]
    fn replay_from_the_stored_state_gives_the_same_answer() {
        let mut a = Evaluator::new();
        a.set_rules(vec![storm()]);
        let t0 = 1_000 * S;
        run(&mut a, (0..70).map(|i| ev(1, t0 + i)));
        // Persist and restore (as across a restart).
        let mut b = Evaluator::new();
        b.set_rules(vec![storm()]);
        for (k, s) in &a.states {
            let json = serde_json::to_string(s).unwrap();
            b.restore(k.0, k.1.clone(), serde_json::from_str(&json).unwrap());
        }
        let rest: Vec<EventFacts> = (70..100).map(|i| ev(1, t0 + i)).collect();
        let ea = a.evaluate(&rest);
        let eb = b.evaluate(&rest);
        assert_eq!(ea, eb);
        assert_eq!(ea.triggers.len(), 1);
        // Not applied: evaluating again gives the same trigger (a failed
        // commit is retried without a second alert).
        assert_eq!(a.evaluate(&rest).triggers, ea.triggers);
    }

    #[test]
    fn new_issue_regression_and_filters() {
        let mut e = Evaluator::new();
        e.set_rules(vec![
            rule(
                2,
                r#"{"name":"new","condition":{"type":"new_issue"},"channels":["c"],"level":"critical"}"#,
            ),
            rule(
                3,
                r#"{"name":"back","condition":{"type":"regression"},"channels":["c"],"services":["web"],"tags":["prod"]}"#,
            ),
        ]);
        let mut a = ev(1, 10);
        a.new_issue = true;
        assert!(
            e.evaluate(&[a.clone()]).triggers.is_empty(),
            "below the level"
        );
        a.level = Level::Critical;
        let t = e.evaluate(&[a]).triggers;
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].condition, "new_issue");
        let mut r = ev(1, 20);
        r.regressed = true;
        r.service = "web".into();
        assert!(e.evaluate(&[r.clone()]).triggers.is_empty(), "tag missing");
        r.tags = vec!["prod".into()];
        assert_eq!(e.evaluate(&[r]).triggers.len(), 1);
        let mut other = ev(1, 20);
        other.project = "q".into();
        other.new_issue = true;
        other.level = Level::Critical;
        assert!(e.evaluate(&[other]).triggers.is_empty(), "other project");
    }

    #[test]
    fn error_rate_fires_once_and_rearms_when_it_drops() {
        let mut e = Evaluator::new();
        e.set_rules(vec![rule(
            5,
            r#"{"name":"rate","condition":{"type":"error_rate","threshold":0.2,"window":"1m","min_entries":50},"channels":["c"],"cooldown":"10s"}"#,
        )]);
        let c = |total, errors| ServiceCount {
            project: "p".into(),
            service: "api".into(),
            total,
            errors,
        };
        let t0 = 1_000 * S;
        // 40 % errors but too few entries: nothing.
        assert!(e.count_rates(&[c(10, 4)], t0).triggers.is_empty());
        // 60 entries, 24 errors (40 %): fires.
        let out = e.count_rates(&[c(50, 20)], t0 + S);
        assert_eq!(out.triggers.len(), 1);
        assert_eq!(out.triggers[0].condition, "error_rate");
        assert_eq!(out.triggers[0].count, 24);
        assert!(
            out.states.values().all(|s| s.is_some()),
            "the firing is persisted"
        );
        // Still high: no second alert.
        assert!(e.count_rates(&[c(50, 30)], t0 + 2 * S).triggers.is_empty());
        // Another service of the project has its own window.
        let other = ServiceCount {
            service: "web".into(),
            ..c(100, 1)
        };
        assert!(e.count_rates(&[other], t0 + 3 * S).triggers.is_empty());
        // Two minutes later mostly fine: resolved (cooldown passed).
        let out = e.count_rates(&[c(1000, 5)], t0 + 120 * S);
        assert_eq!(out.triggers.len(), 1);
        assert_eq!(out.triggers[0].kind, TriggerKind::Resolved);
        assert!(e.rate_state(5, "rate:service:api").is_none());
        // A restart restores a firing without its window.
        let mut f = Evaluator::new();
        f.set_rules(e.rules().to_vec());
        e.count_rates(&[c(100, 90)], t0 + 200 * S);
        let saved = e.rate_state(5, "rate:service:api").unwrap();
        f.restore_rate(5, "rate:service:api".into(), saved);
        assert!(
            f.count_rates(&[c(100, 90)], t0 + 201 * S)
                .triggers
                .is_empty(),
            "already fired"
        );
    }

    #[test]
    fn per_service_keys_and_disabled_rules() {
        let mut e = Evaluator::new();
        let mut r = rule(
            4,
            r#"{"name":"svc","condition":{"type":"frequency","count":3,"window":"10s","per":"service"},"channels":["c"]}"#,
        );
        e.set_rules(vec![r.clone()]);
        let fired = run(&mut e, (0..3).map(|i| ev(i, 100 + i)));
        assert_eq!(fired.len(), 1, "three issues of one service");
        assert_eq!(fired[0].key, "service:api");
        assert_eq!(fired[0].issue_id, None);
        r.spec.enabled = false;
        e.set_rules(vec![r]);
        assert!(run(&mut e, (0..10).map(|i| ev(i, 10_000 * S + i))).is_empty());
    }
}
