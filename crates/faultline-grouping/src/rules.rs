//! Fingerprint rules: per-project overrides of the default grouping, like
//! Sentry's server-side fingerprinting.
//!
//! A rule has matchers (all must match) and a fingerprint. The first rule
//! whose matchers all match decides; with none, the default fingerprint
//! stands. Matchers are globs (`*` any run, `?` one character), matched
//! case-insensitively. The fingerprint is a list of parts; a part may be
//! literal text or one variable:
//!
//! | variable | value |
//! |---|---|
//! | `{{ default }}` | the default fingerprint's parts |
//! | `{{ level }}`, `{{ service }}`, `{{ logger }}` | the event's field |
//! | `{{ message }}` | the message template (variables masked) |
//! | `{{ type }}` | the exception type |
//! | `{{ attributes.KEY }}` | an attribute value |
//!
//! ```
//! use faultline_grouping::{FingerprintRules, RawFingerprintRules};
//! let raw: RawFingerprintRules = serde_json::from_str(r#"{"rules": [
//!   {"message": "*db timeout*", "fingerprint": ["{{ attributes.tenant }}", "db-timeout"]},
//!   {"service": "billing", "level": "fatal", "fingerprint": ["{{ default }}", "fatal"]}
//! ]}"#).unwrap();
//! let rules = FingerprintRules::new(&raw).unwrap();
//! assert_eq!(rules.len(), 2);
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::RuleError;

/// Rules as the user writes them (JSON/TOML), before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFingerprintRules {
    /// Rules in order; the first that matches decides.
    #[serde(default)]
    pub rules: Vec<RawFingerprintRule>,
}

/// One rule as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFingerprintRule {
    /// Glob on the level name (`error`, `fatal`, `err*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// Glob on the service name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Glob on the logger name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger: Option<String>,
    /// Glob on the raw message (first line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Glob on the exception type (`*TimeoutError`, `java.io.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception_type: Option<String>,
    /// Globs on attribute values, by attribute name; a missing attribute
    /// does not match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// The fingerprint to set: literal parts and `{{ variable }}` parts.
    pub fingerprint: Vec<String>,
}

/// Validated, ready-to-evaluate rules.
#[derive(Debug, Clone, Default)]
pub struct FingerprintRules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    level: Option<Glob>,
    service: Option<Glob>,
    logger: Option<Glob>,
    message: Option<Glob>,
    exception_type: Option<Glob>,
    attributes: Vec<(String, Glob)>,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Default,
    Level,
    Service,
    Logger,
    Message,
    Type,
    Attribute(String),
}

/// What the rules see of an event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RuleInput<'a> {
    pub level: Option<&'a str>,
    pub service: Option<&'a str>,
    pub logger: Option<&'a str>,
    pub message: &'a str,
    pub template: &'a str,
    pub exception_type: Option<&'a str>,
    pub attributes: &'a [(&'a str, &'a str)],
    pub default: &'a [String],
}

impl FingerprintRules {
    /// Validates raw rules.
    pub fn new(raw: &RawFingerprintRules) -> Result<FingerprintRules, RuleError> {
        let rules = raw
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| compile(i, r))
            .collect::<Result<_, _>>()?;
        Ok(FingerprintRules { rules })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The parts set by the first matching rule, with its index.
    pub(crate) fn apply(&self, ev: &RuleInput<'_>) -> Option<(usize, Vec<String>)> {
        let (idx, rule) = self.rules.iter().enumerate().find(|(_, r)| r.matches(ev))?;
        let mut parts = Vec::with_capacity(rule.parts.len());
        let none = |v: Option<&str>| v.unwrap_or("<no value>").to_owned();
        for p in &rule.parts {
            match p {
                Part::Literal(s) => parts.push(s.clone()),
                Part::Default => parts.extend(ev.default.iter().cloned()),
                Part::Level => parts.push(none(ev.level)),
                Part::Service => parts.push(none(ev.service)),
                Part::Logger => parts.push(none(ev.logger)),
                Part::Message => parts.push(ev.template.to_owned()),
                Part::Type => parts.push(none(ev.exception_type)),
                Part::Attribute(k) => parts.push(none(attribute(ev.attributes, k))),
            }
        }
        Some((idx, parts))
    }
}

fn attribute<'a>(attrs: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

impl Rule {
    fn matches(&self, ev: &RuleInput<'_>) -> bool {
        let opt = |g: &Option<Glob>, v: Option<&str>| match g {
            None => true,
            Some(g) => v.is_some_and(|v| g.matches(v)),
        };
        opt(&self.level, ev.level)
            && opt(&self.service, ev.service)
            && opt(&self.logger, ev.logger)
            && opt(&self.message, Some(ev.message))
            && opt(&self.exception_type, ev.exception_type)
            && self
                .attributes
                .iter()
                .all(|(k, g)| attribute(ev.attributes, k).is_some_and(|v| g.matches(v)))
    }
}

fn compile(index: usize, r: &RawFingerprintRule) -> Result<Rule, RuleError> {
    if r.fingerprint.is_empty() {
        return Err(RuleError::EmptyFingerprint { rule: index });
    }
    let glob = |field: &'static str, g: &Option<String>| -> Result<Option<Glob>, RuleError> {
        g.as_deref()
            .map(|p| Glob::new(p).ok_or(RuleError::EmptyMatcher { rule: index, field }))
            .transpose()
    };
    let parts = r
        .fingerprint
        .iter()
        .map(|p| {
            parse_part(p).map_err(|variable| RuleError::UnknownVariable {
                rule: index,
                variable,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Rule {
        level: glob("level", &r.level)?,
        service: glob("service", &r.service)?,
        logger: glob("logger", &r.logger)?,
        message: glob("message", &r.message)?,
        exception_type: glob("exception_type", &r.exception_type)?,
        attributes: r
            .attributes
            .iter()
            .map(|(k, v)| {
                Glob::new(v)
                    .map(|g| (k.clone(), g))
                    .ok_or(RuleError::EmptyMatcher {
                        rule: index,
                        field: "attributes",
                    })
            })
            .collect::<Result<_, _>>()?,
        parts,
    })
}

/// `{{ name }}` → a variable part; anything else is literal.
fn parse_part(p: &str) -> Result<Part, String> {
    let t = p.trim();
    let Some(inner) = t.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) else {
        return Ok(Part::Literal(p.to_owned()));
    };
    let name = inner.trim();
    Ok(match name {
        "default" => Part::Default,
        "level" => Part::Level,
        "service" => Part::Service,
        "logger" => Part::Logger,
        "message" => Part::Message,
        "type" | "exception.type" | "error.type" => Part::Type,
        _ => match name
            .strip_prefix("attributes.")
            .or_else(|| name.strip_prefix("tags."))
        {
            Some(k) if !k.is_empty() => Part::Attribute(k.to_owned()),
            _ => return Err(name.to_owned()),
        },
    })
}

/// A compiled glob: `*` matches any run, `?` one character; ASCII
/// case-insensitive.
#[derive(Debug, Clone)]
struct Glob {
    pat: Vec<char>,
}

impl Glob {
    fn new(p: &str) -> Option<Glob> {
        (!p.is_empty()).then(|| Glob {
            pat: p.chars().map(|c| c.to_ascii_lowercase()).collect(),
        })
    }

    /// Iterative wildcard matching with single backtracking point (linear
    /// in practice, no recursion).
    fn matches(&self, text: &str) -> bool {
        let t: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
        let p = &self.pat;
        let (mut ti, mut pi) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
                ti += 1;
                pi += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some((pi, ti));
                pi += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        while pi < p.len() && p[pi] == '*' {
            pi += 1;
        }
        pi == p.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(attrs: &'a [(&'a str, &'a str)], default: &'a [String]) -> RuleInput<'a> {
        RuleInput {
            level: Some("error"),
            service: Some("billing"),
            logger: Some("app.db"),
            message: "db timeout after 30s on shard 7",
            template: "db timeout after <duration> on shard <num>",
            exception_type: Some("psycopg2.OperationalError"),
            attributes: attrs,
            default,
        }
    }

    #[test]
    fn globs() {
        let g = Glob::new("*TimeOut*").expect("glob");
        assert!(g.matches("db timeout after"));
        assert!(!g.matches("db time out"));
        assert!(Glob::new("err?r").expect("glob").matches("ERROR"));
        assert!(Glob::new("a*b*c").expect("glob").matches("axxbyyc"));
        assert!(!Glob::new("a*b*c").expect("glob").matches("axxbyy"));
        assert!(Glob::new("*").expect("glob").matches(""));
    }

    #[test]
    fn first_matching_rule_sets_parts() {
        let raw: RawFingerprintRules = serde_json::from_str(
            r#"{"rules": [
                {"service": "web", "fingerprint": ["never"]},
                {"message": "*db timeout*", "attributes": {"tenant": "acme*"},
                 "fingerprint": ["{{ attributes.tenant }}", "db-timeout"]},
                {"level": "error", "fingerprint": ["{{ default }}", "{{ type }}", "{{ message }}"]}
            ]}"#,
        )
        .expect("valid json");
        let rules = FingerprintRules::new(&raw).expect("valid rules");
        let default = vec!["template".to_owned(), "abc".to_owned()];
        let attrs = [("tenant", "acme-eu")];
        let (idx, parts) = rules
            .apply(&input(&attrs, &default))
            .expect("a rule matches");
        assert_eq!(idx, 1);
        assert_eq!(parts, ["acme-eu", "db-timeout"]);
        let other = [("tenant", "globex")];
        let (idx, parts) = rules
            .apply(&input(&other, &default))
            .expect("a rule matches");
        assert_eq!(idx, 2);
        assert_eq!(
            parts,
            [
                "template",
                "abc",
                "psycopg2.OperationalError",
                "db timeout after <duration> on shard <num>"
            ]
        );
    }

    #[test]
    fn validation_errors() {
        let bad: RawFingerprintRules =
            serde_json::from_str(r#"{"rules": [{"fingerprint": ["{{ nope }}"]}]}"#).expect("json");
        assert_eq!(
            FingerprintRules::new(&bad).unwrap_err(),
            RuleError::UnknownVariable {
                rule: 0,
                variable: "nope".into()
            }
        );
        let empty: RawFingerprintRules =
            serde_json::from_str(r#"{"rules": [{"fingerprint": []}]}"#).expect("json");
        assert_eq!(
            FingerprintRules::new(&empty).unwrap_err(),
            RuleError::EmptyFingerprint { rule: 0 }
        );
        assert!(
            serde_json::from_str::<RawFingerprintRules>(
                r#"{"rules": [{"fingerprint": ["x"], "colour": "red"}]}"#
            )
            .is_err()
        );
    }
}
