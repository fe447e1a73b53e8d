use crate::{Level, NewEntry};

/// Which entries a query or a live subscription wants.
///
/// The same filter drives `GET /api/v1/logs` (evaluated by the store) and the
/// live tail (evaluated in memory by [`LogFilter::matches`]); both must agree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub project: Option<String>,
    /// Any of these services (empty: all).
    pub services: Vec<String>,
    /// Minimum level, inclusive.
    pub min_level: Option<Level>,
    /// Entries carrying this tag.
    pub tag: Option<String>,
    /// Full-text query: every word must occur in the message (case-insensitive).
    pub q: Option<String>,
    /// Event time lower bound, inclusive (µs).
    pub since: Option<i64>,
    /// Event time upper bound, exclusive (µs).
    pub until: Option<i64>,
}

impl LogFilter {
    /// In-memory evaluation for the live tail.
    ///
    /// `q` matches when every whitespace-separated term occurs in the message
    /// as a whole token, ignoring case, which is what the store's full-text
    /// index does for plain words.
    pub fn matches(&self, e: &NewEntry) -> bool {
        if let Some(p) = &self.project
            && e.project != *p
        {
            return false;
        }
        if !self.services.is_empty() && !self.services.iter().any(|s| *s == e.service) {
            return false;
        }
        if let Some(l) = self.min_level
            && e.level < l
        {
            return false;
        }
        if let Some(t) = &self.tag
            && !e.tags.iter().any(|x| x == t)
        {
            return false;
        }
        if let Some(s) = self.since
            && e.timestamp < s
        {
            return false;
        }
        if let Some(u) = self.until
            && e.timestamp >= u
        {
            return false;
        }
        if let Some(q) = &self.q {
            let tokens: Vec<String> = tokenize(&e.message).collect();
            for term in q.split_whitespace() {
                // A term with punctuation inside (`user_id`, `10.0.0.1`) is a
                // phrase of its parts, as in the store's full-text index.
                let phrase: Vec<String> = tokenize(term).collect();
                if !phrase.is_empty()
                    && !tokens.windows(phrase.len()).any(|w| w == phrase.as_slice())
                {
                    return false;
                }
            }
        }
        true
    }
}

/// Splits text into lowercase alphanumeric tokens, like SQLite's unicode61
/// tokenizer does (everything that is not a letter or digit separates).
pub(crate) fn tokenize(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(msg: &str) -> NewEntry {
        NewEntry {
            project: "p".into(),
            service: "api".into(),
            level: Level::Error,
            message: msg.into(),
            tags: vec!["db".into()],
            timestamp: 100,
            received_at: 100,
            host: None,
            attributes: Default::default(),
            trace_id: None,
            span_id: None,
        }
    }

    #[test]
    fn full_text_terms_must_all_match_whole_tokens() {
        let f = LogFilter {
            q: Some("Connection refused".into()),
            ..Default::default()
        };
        assert!(f.matches(&entry("upstream: connection refused (port 80)")));
        assert!(!f.matches(&entry("connection reset")));
        let f = LogFilter {
            q: Some("conn".into()),
            ..Default::default()
        };
        assert!(!f.matches(&entry("connection refused")));
        let f = LogFilter {
            q: Some("user_id 10.0.0.1".into()),
            ..Default::default()
        };
        assert!(f.matches(&entry("missing user_id from 10.0.0.1:80")));
        assert!(!f.matches(&entry("missing id user from 10.0.0.1")));
    }

    #[test]
    fn level_service_tag_and_time_filters() {
        let e = entry("x");
        let mut f = LogFilter {
            min_level: Some(Level::Critical),
            ..Default::default()
        };
        assert!(!f.matches(&e));
        f.min_level = Some(Level::Warn);
        assert!(f.matches(&e));
        f.services = vec!["web".into()];
        assert!(!f.matches(&e));
        f.services.push("api".into());
        assert!(f.matches(&e));
        f.tag = Some("cache".into());
        assert!(!f.matches(&e));
        f.tag = Some("db".into());
        f.since = Some(100);
        f.until = Some(101);
        assert!(f.matches(&e));
        f.until = Some(100);
        assert!(!f.matches(&e));
    }
}
