//! Event-level grouping: the fingerprint of an event.
//!
//! 1. A fingerprint rule that matches decides (see [`crate::rules`]).
//! 2. Else, when the event carries a stack trace (in `stack`, or in the
//!    message itself), the fingerprint is the exception type(s) plus the
//!    in-app frames as `module.function` — no line numbers, no paths, no
//!    message text, so the same crash groups together across hosts,
//!    releases that move code, and changing error values. Without in-app
//!    frames, all frames are used.
//! 3. Else the fingerprint is the message template's group id (plus the
//!    exception type when the sender gave one that the message lacks).
//!
//! Template fingerprints share their id with the template group, so the
//! merges reported by [`Grouper::take_merges`] apply to them as they are.

use serde::Serialize;

use crate::grouper::{Grouper, MAX_MESSAGE_BYTES, clip};
use crate::hash::{combine, hash_bytes};
use crate::miner::GroupId;
use crate::rules::{FingerprintRules, RuleInput};
use crate::stack::{StackTrace, find_exception_type, parse_stack};

/// What the grouper needs to know of an event.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventInput<'a> {
    /// The log message; may carry a stack trace on the following lines.
    pub message: &'a str,
    pub level: Option<&'a str>,
    pub service: Option<&'a str>,
    pub logger: Option<&'a str>,
    /// Exception type, when the sender reports it separately.
    pub exception: Option<&'a str>,
    /// Raw stack trace text, when the sender reports it separately.
    pub stack: Option<&'a str>,
    /// Attributes (name, value) for fingerprint rules.
    pub attributes: &'a [(&'a str, &'a str)],
}

/// Which rule produced a fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FingerprintSource {
    /// Exception type(s) and frames of a stack trace.
    Stack,
    /// The message template.
    Template,
    /// A fingerprint rule (index in the rule list).
    Rule { index: usize },
}

/// The grouping key of an event, with what the server shows about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fingerprint {
    /// The issue key: events with equal ids are one issue.
    pub id: GroupId,
    /// The parts the id hashes (readable; shown in the UI).
    pub parts: Vec<String>,
    pub source: FingerprintSource,
    /// The template group of the message's first line.
    pub template_id: GroupId,
    pub template: String,
    /// Exception type, from the stack, the sender, or the message.
    pub exception_type: Option<String>,
    /// A short title for the issue: `Type: value` or the message's first
    /// line.
    pub title: String,
    /// Where it happened: the top-most in-app frame, else the logger or
    /// service.
    pub culprit: Option<String>,
    /// The parsed stack trace, when there was one.
    pub stack: Option<StackTrace>,
}

const TITLE_CHARS: usize = 120;

impl Grouper {
    /// The default fingerprint of an event (no rules).
    pub fn fingerprint(&mut self, ev: &EventInput<'_>) -> Fingerprint {
        self.fingerprint_with_rules(ev, &FingerprintRules::default())
    }

    /// The fingerprint of an event under a project's rules.
    pub fn fingerprint_with_rules(
        &mut self,
        ev: &EventInput<'_>,
        rules: &FingerprintRules,
    ) -> Fingerprint {
        let first_line = ev
            .message
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        let g = self.group_ref(clip(first_line, MAX_MESSAGE_BYTES));
        let (template_id, template) = (g.id, g.template.to_owned());

        let stack = ev.stack.and_then(parse_stack).or_else(|| {
            (ev.message.contains('\n'))
                .then(|| parse_stack(ev.message))
                .flatten()
        });
        let exception_type: Option<String> = stack
            .as_ref()
            .and_then(|s| s.primary())
            .map(|e| e.ty.clone())
            .or_else(|| ev.exception.map(str::to_owned))
            .or_else(|| find_exception_type(first_line).map(str::to_owned));

        let (mut parts, mut source, mut id) =
            match stack.as_ref().filter(|s| s.frames().next().is_some()) {
                Some(st) => {
                    let parts = stack_parts(st);
                    let id = hash_parts(&parts);
                    (parts, FingerprintSource::Stack, id)
                }
                None => {
                    let mut parts = vec!["template".to_owned(), template_id.to_string()];
                    let mut id = template_id;
                    if let Some(t) = ev.exception.filter(|t| !first_line.contains(t)) {
                        parts.push(t.to_owned());
                        id = hash_parts(&parts);
                    }
                    (parts, FingerprintSource::Template, id)
                }
            };
        if !rules.is_empty() {
            let input = RuleInput {
                level: ev.level,
                service: ev.service,
                logger: ev.logger,
                message: first_line,
                template: &template,
                exception_type: exception_type.as_deref(),
                attributes: ev.attributes,
                default: &parts,
            };
            if let Some((index, p)) = rules.apply(&input)
                && p != parts
            {
                id = hash_parts(&p);
                parts = p;
                source = FingerprintSource::Rule { index };
            }
        }
        let title = match stack.as_ref().and_then(|s| s.primary()) {
            Some(e) if e.value.is_empty() => e.ty.clone(),
            Some(e) => format!("{}: {}", e.ty, e.value),
            None => first_line.to_owned(),
        };
        let culprit = stack
            .as_ref()
            .and_then(culprit_of)
            .or_else(|| ev.logger.or(ev.service).map(str::to_owned));
        Fingerprint {
            id,
            parts,
            source,
            template_id,
            template,
            exception_type,
            title: cut_chars(&title, TITLE_CHARS),
            culprit,
            stack,
        }
    }
}

/// Exception types, then in-app frames (all frames when none is in-app),
/// innermost call last as printed; Rust/Go/JS/Java print innermost first,
/// Python last: the order is the runtime's, consistently.
fn stack_parts(st: &StackTrace) -> Vec<String> {
    let mut parts = vec!["stack".to_owned()];
    for e in &st.exceptions {
        parts.push(e.ty.clone());
    }
    let any_app = st.frames().any(|f| f.in_app);
    for f in st.frames().filter(|f| f.in_app || !any_app) {
        let func = f.function.as_deref().map(normalize_symbol);
        let part = match (f.module.as_deref(), func) {
            (Some(m), Some(fun)) if !m.is_empty() => format!("{m}.{fun}"),
            (_, Some(fun)) => fun,
            (Some(m), None) => m.to_owned(),
            (None, None) => f
                .file
                .as_deref()
                .map(file_name)
                .unwrap_or_default()
                .to_owned(),
        };
        // Recursion prints the same frame many times: one is enough.
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    parts
}

/// `lambda$main$0` → `lambda$main$`, `$$Lambda$14/0x0000…` → `$$Lambda$`:
/// generated numbers vary between builds.
fn normalize_symbol(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_dollar = false;
    let mut skipping = false;
    for c in s.chars() {
        if skipping && (c.is_ascii_hexdigit() || c == 'x' || c == '/') {
            continue;
        }
        skipping = false;
        if prev_dollar && c.is_ascii_digit() {
            skipping = true;
            continue;
        }
        prev_dollar = c == '$';
        out.push(c);
    }
    out
}

fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn culprit_of(st: &StackTrace) -> Option<String> {
    let e = st.primary()?;
    // Innermost in-app frame: first printed for Java/Rust/Go/JS, last for
    // Python.
    let f = match st.language {
        crate::stack::Language::Python => e.frames.iter().rev().find(|f| f.in_app),
        _ => e.frames.iter().find(|f| f.in_app),
    }?;
    Some(match (&f.module, &f.function) {
        (Some(m), Some(fun)) => format!("{m} in {fun}"),
        (None, Some(fun)) => fun.clone(),
        (Some(m), None) => m.clone(),
        (None, None) => f.file.clone()?,
    })
}

fn hash_parts(parts: &[String]) -> GroupId {
    let mut h = 0x6661_756c_746c_696e; // "faultlin"
    for p in parts {
        h = combine(h, hash_bytes(p.as_bytes()));
    }
    GroupId(h)
}

fn cut_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}
