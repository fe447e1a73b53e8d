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
    /// The ASCII tokens of the phrases. An ASCII message matches only if it
    /// contains each of them, ignoring ASCII case (its lowercase tokens are
    /// substrings of it): a cheap test that rejects most messages before
    /// they are split into tokens.
    needles: Vec<Vec<u8>>,
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
            .filter(|p: &Vec<String>| !p.is_empty())
            .collect::<Vec<_>>();
        let mut needles: Vec<Vec<u8>> = phrases
            .iter()
            .flatten()
            .filter(|t| t.is_ascii())
            .map(|t| t.as_bytes().to_vec())
            .collect();
        // Longest first: the rarest, usually.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        TextMatcher {
            phrases,
            needles,
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
        if message.is_ascii()
            && !self
                .needles
                .iter()
                .all(|n| contains_ignore_ascii_case(message.as_bytes(), n))
        {
            return false;
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

/// Whether `hay` contains `needle` (ASCII lowercase), ignoring ASCII case.
fn contains_ignore_ascii_case(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let upper = first.to_ascii_uppercase();
    let n = needle.len();
    if hay.len() < n {
        return false;
    }
    (0..=hay.len() - n).any(|i| {
        let b = hay[i];
        (b == first || b == upper) && hay[i + 1..i + n].eq_ignore_ascii_case(rest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_model::{LogFilter, NewEntry};

    fn model_matches(q: &str, message: &str) -> bool {
        LogFilter {
            q: Some(q.into()),
            ..LogFilter::default()
        }
        .matches(&NewEntry {
            project: "p".into(),
            service: "s".into(),
            message: message.into(),
            ..NewEntry::default()
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
            "Timeout after 30s; RETRY id=0xFF user_id_2 at end",
            "x",
            "K kelvin \u{212a}elvin",
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
            "timeout",
            "TIMEOUT 30S",
            "retry id",
            "end",
            "ends",
            "0xff",
            "user_id",
            "id_2",
            "kelvin",
            "\u{212a}",
            "\u{212a}elvin",
            "t",
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
