//! Full-text search: what the index holds and how a user's text becomes a
//! query.
//!
//! The meaning of `q` is fixed by [`faultline_model::LogFilter::matches`]:
//! every whitespace-separated term of the query must occur in the message as
//! a phrase of its tokens (runs of alphanumeric characters, compared after
//! Rust's `to_lowercase`): `timeout` is one token, `user_id` and `10.0.0.1`
//! are phrases.
//!
//! The index must agree exactly, but SQLite's `unicode61` tokenizer does not
//! split or fold text the way Rust does (it keeps combining accents inside a
//! token, folds `ſ` to `s`, has older Unicode tables…). So FTS5 is never
//! given the raw message. It is given [`index_text`]: the message's Rust
//! tokens, lowercased by Rust, separated by single spaces, where a token
//! containing any character outside a small verified set ([`safe_char`]:
//! characters `unicode61` keeps as one token and does not fold further) is
//! replaced by a placeholder token, `ǀ` followed by a stable 64-bit hash of
//! the token. A query term goes through the same mapping and becomes a
//! quoted phrase. Both sides therefore hold the same token sequence, one FTS
//! token per Rust token, and a phrase matches in the index exactly when it
//! matches in `LogFilter::matches` (up to a 64-bit hash collision between two
//! unusual tokens).
//!
//! Quoted strings are never operators, column filters or prefix queries, and
//! mapped tokens never contain `"`: no input can be an FTS5 syntax error.
//!
//! The mapping is part of the on-disk format: changing it requires a
//! migration that rebuilds `logs_fts`.

/// Starts every placeholder token. A letter `unicode61` keeps and does not
/// fold, and outside [`safe_char`], so no real token in the index starts with
/// it (any token containing it is itself replaced).
const PLACEHOLDER: char = '\u{01C0}';

/// Tokens of `text` as `faultline_model::LogFilter::matches` splits them
/// (not yet lowercased).
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
}

/// Characters that `unicode61` (as configured in the schema) treats as token
/// characters and leaves unchanged when they are already lowercase. The
/// test `index_text_is_what_fts5_indexes` checks every one of them against
/// the bundled SQLite.
fn safe_char(c: char) -> bool {
    c.is_ascii_lowercase()
        || c.is_ascii_digit()
        || matches!(
            u32::from(c),
            // Latin-1 lowercase letters
            0x00DF..=0x00F6 | 0x00F8..=0x00FF
            // Latin Extended-A, without dotless i and long s
            | 0x0100..=0x0130 | 0x0132..=0x017E
            // Cyrillic letters
            | 0x0400..=0x0481 | 0x048A..=0x04FF
            // Hiragana, Katakana
            | 0x3041..=0x3096 | 0x30A1..=0x30FA
            // CJK unified ideographs (Unicode 1.1 block)
            | 0x4E00..=0x9FA5
            // Hangul syllables
            | 0xAC00..=0xD7A3
        )
}

/// Appends the index form of one (not yet lowercased) token to `out`.
fn push_token(token: &str, out: &mut String) {
    if token.is_ascii() {
        out.extend(token.chars().map(|c| c.to_ascii_lowercase()));
        return;
    }
    let lower = token.to_lowercase();
    if lower.chars().all(safe_char) {
        out.push_str(&lower);
    } else {
        out.push(PLACEHOLDER);
        // FNV-1a: stable across Rust releases and platforms, unlike std's
        // hasher, because the result is stored.
        let hash = lower.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        for shift in (0..64).step_by(4).rev() {
            let digit = ((hash >> shift) & 0xf) as u8;
            out.push(char::from(if digit < 10 {
                b'0' + digit
            } else {
                b'a' + digit - 10
            }));
        }
    }
}

/// Replaces `out` with the text FTS5 indexes for `message`.
pub(crate) fn index_text(message: &str, out: &mut String) {
    out.clear();
    if message.is_ascii() {
        // The common case, byte by byte: the same result as below.
        let mut in_token = false;
        for b in message.bytes() {
            if b.is_ascii_alphanumeric() {
                if !in_token && !out.is_empty() {
                    out.push(' ');
                }
                in_token = true;
                out.push(char::from(b.to_ascii_lowercase()));
            } else {
                in_token = false;
            }
        }
        return;
    }
    for token in tokens(message) {
        if !out.is_empty() {
            out.push(' ');
        }
        push_token(token, out);
    }
}

/// The FTS5 `MATCH` expression for a user's search text, or `None` when no
/// term has a token (then, as in `LogFilter::matches`, the text filters
/// nothing).
pub(crate) fn text_query(text: &str) -> Option<String> {
    let mut query = String::new();
    for term in text.split_whitespace() {
        let mut terms = tokens(term).peekable();
        if terms.peek().is_none() {
            continue;
        }
        if !query.is_empty() {
            query.push(' ');
        }
        query.push('"');
        for (i, token) in terms.enumerate() {
            if i > 0 {
                query.push(' ');
            }
            push_token(token, &mut query);
        }
        query.push('"');
    }
    (!query.is_empty()).then_some(query)
}

/// A search text compiled for checking messages in Rust, with the same
/// meaning as the index (and so as `LogFilter::matches`): for plans that walk
/// rows in time order instead of asking the index.
pub(crate) struct TextMatcher {
    /// Each term's tokens in index form.
    phrases: Vec<Vec<String>>,
    /// Reused per message: its index text and the spans of its tokens.
    text: String,
    words: Vec<std::ops::Range<usize>>,
}

impl TextMatcher {
    pub(crate) fn new(q: &str) -> TextMatcher {
        let phrases = q
            .split_whitespace()
            .map(|term| {
                tokens(term)
                    .map(|t| {
                        let mut out = String::new();
                        push_token(t, &mut out);
                        out
                    })
                    .collect::<Vec<_>>()
            })
            .filter(|p| !p.is_empty())
            .collect();
        TextMatcher {
            phrases,
            text: String::new(),
            words: Vec::new(),
        }
    }

    pub(crate) fn matches(&mut self, message: &str) -> bool {
        index_text(message, &mut self.text);
        self.words.clear();
        let mut start = 0;
        for (i, b) in self.text.bytes().enumerate() {
            if b == b' ' {
                self.words.push(start..i);
                start = i + 1;
            }
        }
        if start < self.text.len() {
            self.words.push(start..self.text.len());
        }
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
    use crate::schema;

    fn indexed(message: &str) -> String {
        let mut out = String::new();
        index_text(message, &mut out);
        out
    }

    #[test]
    fn terms_become_quoted_lowercase_phrases() {
        assert_eq!(
            text_query("Connection  refused").as_deref(),
            Some(r#""connection" "refused""#)
        );
        assert_eq!(
            text_query("user_id=42 db.Query").as_deref(),
            Some(r#""user id 42" "db query""#)
        );
        assert_eq!(
            text_query("Café 東京 Ошибка 오류").as_deref(),
            Some(r#""café" "東京" "ошибка" "오류""#)
        );
    }

    #[test]
    fn matcher_agrees_with_the_examples_of_log_filter() {
        let m = |message: &str, q: &str| TextMatcher::new(q).matches(message);
        assert!(m(
            "Upstream: Connection refused (port 80)",
            "refused connection"
        ));
        assert!(!m("connection reset", "connection refused"));
        assert!(!m("connection", "conn"));
        assert!(m("missing user_id from 10.0.0.1:80", "user_id 10.0.0.1"));
        assert!(!m("missing id user from 10.0.0.1", "user_id"));
        assert!(m("Straße ΟΔΟΣ x\u{301}", "straße οδος X"));
        assert!(m("anything", " ... "));
        assert!(m("", ""));
        assert!(!m("", "a"));
    }

    #[test]
    fn punctuation_only_text_is_no_query() {
        assert_eq!(text_query(""), None);
        assert_eq!(text_query("  * - \"\" ( ) : ^ _ "), None);
    }

    #[test]
    fn operators_are_neutralised() {
        assert_eq!(
            text_query(r#"NEAR(a b) OR "x" -y* col:z"#).as_deref(),
            Some(r#""near a" "b" "or" "x" "y" "col z""#)
        );
    }

    #[test]
    fn messages_are_indexed_as_rust_tokens() {
        assert_eq!(
            indexed("GET /api/v1/orders 200 in 12ms"),
            "get api v1 orders 200 in 12ms"
        );
        assert_eq!(indexed("user_id=42, Straße"), "user id 42 straße");
        assert_eq!(indexed("  ...  "), "");
        assert_eq!(indexed("A-b  C"), "a b c");
        assert_eq!(indexed("A-b  C é"), "a b c é");
        // Unusual tokens become placeholders, the same on both sides.
        let odd = indexed("ΟΔΟΣ x\u{301} İstanbul");
        let parts: Vec<&str> = odd.split(' ').collect();
        assert_eq!(parts.len(), 3, "{odd}");
        assert!(parts[0].starts_with(PLACEHOLDER) && parts[0].len() == 2 + 16);
        assert_eq!(parts[1], "x");
        assert_eq!(
            text_query("οδος").expect("a query"),
            format!("\"{}\"", parts[0])
        );
        assert_eq!(
            text_query("ΟΔΟΣ").expect("a query"),
            format!("\"{}\"", parts[0])
        );
        assert!(parts[2].starts_with(PLACEHOLDER));
        assert_ne!(parts[0], parts[2]);
    }

    /// FTS5 turns `index_text` into exactly its space-separated tokens, for
    /// every safe character and for placeholders: the index holds what Rust
    /// says, so phrases match exactly when `LogFilter::matches` says so.
    #[test]
    fn index_text_is_what_fts5_indexes() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let conn =
            schema::open_writer(&dir.path().join("t.db"), &Default::default()).expect("open");
        let mut docs: Vec<String> = (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|&c| safe_char(c))
            .map(|c| indexed(&format!("a{c}b {c} {c}{c}9")))
            .collect();
        docs.push(indexed("ΟΔΟΣ x\u{301} İstanbul ǀ Ⓐ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ſ ﬁle"));
        let tx = conn.unchecked_transaction().expect("begin");
        for (i, doc) in docs.iter().enumerate() {
            tx.execute(
                "INSERT INTO logs_fts (rowid, message) VALUES (?1, ?2)",
                rusqlite::params![i as i64 + 1, doc],
            )
            .expect("index");
        }
        tx.commit().expect("commit");
        conn.execute_batch(
            "CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, logs_fts, instance)",
        )
        .expect("vocabulary table");
        let mut got: Vec<Vec<(i64, String)>> = vec![Vec::new(); docs.len()];
        let mut stmt = conn
            .prepare("SELECT doc, \"offset\", term FROM vocab")
            .expect("prepare");
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .expect("read the vocabulary");
        for row in rows {
            let (doc, offset, term) = row.expect("a vocabulary row");
            got[doc as usize - 1].push((offset, term));
        }
        let mut wrong = Vec::new();
        for (doc, terms) in docs.iter().zip(&mut got) {
            terms.sort();
            let terms: Vec<&str> = terms.iter().map(|(_, t)| t.as_str()).collect();
            let want: Vec<&str> = doc.split(' ').collect();
            if terms != want {
                wrong.push(format!("{doc:?}: FTS5 indexed {terms:?}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "FTS5 tokenized differently:\n{}",
            wrong.join("\n")
        );
    }
}
