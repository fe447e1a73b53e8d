//! Checking a message against a search text in Rust, with exactly the
//! meaning of [`faultline_model::LogFilter::matches`]: every
//! whitespace-separated term of the query must occur in the message as a
//! phrase of its tokens (maximal runs of alphanumeric characters, each
//! compared after `str::to_lowercase`): `timeout` is one token, `user_id`
//! and `10.0.0.1` are phrases.
//!
//! The block index (`index.rs`) only narrows rows down to candidates (it
//! ignores token order and may have false positives); every candidate is
//! checked here, and so are the rows walked newest first.

/// Tokens of `text` as `LogFilter::matches` splits them (not yet
/// lowercased).
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
}

/// A search text compiled for checking messages.
pub(crate) struct TextMatcher {
    /// Each term's lowercase tokens (terms without a token are dropped, as
    /// `LogFilter::matches` ignores them).
    phrases: Vec<Vec<String>>,
    /// Reused per message: its lowercase tokens, concatenated, and their
    /// spans.
    text: String,
    words: Vec<std::ops::Range<usize>>,
}

impl TextMatcher {
    pub(crate) fn new(q: &str) -> TextMatcher {
        let phrases = q
            .split_whitespace()
            .map(|term| tokens(term).map(str::to_lowercase).collect::<Vec<_>>())
            .filter(|p| !p.is_empty())
            .collect();
        TextMatcher {
            phrases,
            text: String::new(),
            words: Vec::new(),
        }
    }

    /// Fills `text` and `words` with the lowercase tokens of `message`.
    fn split(&mut self, message: &str) {
        self.text.clear();
        self.words.clear();
        if message.is_ascii() {
            // The common case, byte by byte: the same result as below.
            let mut start = None;
            for b in message.bytes() {
                if b.is_ascii_alphanumeric() {
                    if start.is_none() {
                        start = Some(self.text.len());
                    }
                    self.text.push(char::from(b.to_ascii_lowercase()));
                } else if let Some(s) = start.take() {
                    self.words.push(s..self.text.len());
                }
            }
            if let Some(s) = start {
                self.words.push(s..self.text.len());
            }
            return;
        }
        for token in tokens(message) {
            let start = self.text.len();
            // `to_lowercase` of the token on its own, as `LogFilter` does
            // (final sigma depends on the token's end).
            self.text.push_str(&token.to_lowercase());
            self.words.push(start..self.text.len());
        }
    }

    pub(crate) fn matches(&mut self, message: &str) -> bool {
        if self.phrases.is_empty() {
            return true;
        }
        self.split(message);
        let (text, words) = (&self.text, &self.words);
        self.phrases.iter().all(|phrase| {
            words.windows(phrase.len()).any(|w| {
                w.iter()
                    .zip(phrase)
                    .all(|(span, token)| &text[span.clone()] == token)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_model::{Level, LogFilter, NewEntry};

    fn model_matches(q: &str, message: &str) -> bool {
        LogFilter {
            q: Some(q.into()),
            ..LogFilter::default()
        }
        .matches(&NewEntry {
            project: "p".into(),
            service: "s".into(),
            level: Level::Info,
            message: message.into(),
            tags: Vec::new(),
            timestamp: 0,
            received_at: 0,
            host: None,
            attributes: Default::default(),
            trace_id: None,
            span_id: None,
        })
    }

    #[test]
    fn matcher_agrees_with_log_filter() {
        let messages = [
            "Connection refused by upstream 10.0.0.1:5432",
            "user_id=42 logged in",
            "unicode: Café, Straße, ΟΔΟΣ, İstanbul, 東京, 오류, emoji 💥",
            "ligature ﬁle and combining x\u{301}",
            "",
            "   ",
            "ΣΑΣ σας",
        ];
        let queries = [
            "connection",
            "CONNECTION refused",
            "refused connection",
            "10.0.0.1",
            "0.0",
            "user_id",
            "id=42",
            "42 user",
            "café",
            "CAFÉ",
            "straße",
            "strasse",
            "οδος",
            "οδοσ",
            "ΟΔΟΣ",
            "istanbul",
            "i̇stanbul",
            "東京",
            "ﬁle",
            "file",
            "x",
            "x\u{301}",
            "σας",
            "σασ",
            "...",
            "",
            "💥",
        ];
        for m in messages {
            for q in queries {
                assert_eq!(
                    TextMatcher::new(q).matches(m),
                    model_matches(q, m),
                    "q={q:?} message={m:?}"
                );
            }
        }
    }
}
