//! The index agrees with `faultline_model::LogFilter::matches`: same tokens,
//! and never a missed row.

use faultline_model::{LogFilter, NewEntry};
use faultline_textindex::{BlockBuilder, block_candidates, query_hashes, token_hash, tokens};
use proptest::prelude::*;

fn entry(msg: &str) -> NewEntry {
    NewEntry {
        project: "p".into(),
        service: "s".into(),
        message: msg.into(),
        ..NewEntry::default()
    }
}

fn matches(q: &str, msg: &str) -> bool {
    LogFilter {
        q: Some(q.into()),
        ..Default::default()
    }
    .matches(&entry(msg))
}

/// Text over an alphabet with case and Unicode traps: final sigma, dotted
/// capital I, sharp s, combining accent (a separator), roman numerals.
const TEXT: &str = "[aAbBzZσΣςİıß1é\u{301}Ⅻⅻǀ _.:/-]{0,24}";
const WORD: &str = "[aAbBzZσΣςİıß1éⅫⅻ]{1,4}";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn tokenizer_agrees_with_log_filter(text in TEXT, other in WORD) {
        let toks: Vec<String> = tokens(&text).collect();
        let raw: Vec<&str> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|s| !s.is_empty())
            .collect();
        prop_assert_eq!(raw.len(), toks.len());
        for (i, t) in raw.iter().enumerate() {
            // Each token as written, and each adjacent pair as a phrase,
            // matches. (Not the lowercased form: `İ` lowercases to `i̇`,
            // which is no longer one token.)
            prop_assert!(matches(t, &text), "token {t:?} of {text:?}");
            prop_assert!(matches(&t.to_ascii_uppercase(), &text));
            if let Some(n) = raw.get(i + 1) {
                let phrase = format!("{t}_{n}");
                prop_assert!(matches(&phrase, &text));
            }
        }
        // A single-token word matches exactly when it is one of our tokens.
        let w: Vec<String> = tokens(&other).collect();
        if w.len() == 1 {
            prop_assert_eq!(matches(&other, &text), toks.contains(&w[0]),
                "{:?} in {:?}", other, text);
        }
        // token_hash of the raw (unlowered) piece equals that of our token.
        for raw in text.split(|c: char| !c.is_alphanumeric()).filter(|s| !s.is_empty()) {
            prop_assert_eq!(token_hash(raw), token_hash(&raw.to_lowercase()));
        }
    }

    #[test]
    fn index_never_misses_a_matching_row(
        rows in proptest::collection::vec(TEXT, 1..60),
        split in 0usize..60,
        gaps in proptest::collection::vec(1i64..4, 60),
        queries in proptest::collection::vec((0usize..60, 0usize..8, 1usize..4, WORD), 1..8),
    ) {
        // Row ids with gaps, split into two finished blocks and an open one.
        let mut ids = Vec::new();
        let mut id = 1000i64;
        for g in gaps.iter().take(rows.len()) {
            id += g;
            ids.push(id);
        }
        let split = split.min(rows.len());
        let mid = split + (rows.len() - split) / 2;
        let mut blocks = Vec::new();
        let mut b = BlockBuilder::new();
        for (i, (text, &rid)) in rows.iter().zip(&ids).enumerate() {
            if i == split || i == mid {
                blocks.extend(b.finish());
            }
            b.add(rid, text).unwrap();
        }
        for (row, start, len, word) in queries {
            // Queries: a slice of some row's text (often a phrase or a
            // partial token), plus sometimes a random word.
            let text = &rows[row % rows.len()];
            let chars: Vec<char> = text.chars().collect();
            let s = start.min(chars.len());
            let e = (s + len * 3).min(chars.len());
            let mut q: String = chars[s..e].iter().collect();
            if start % 2 == 0 {
                q.push(' ');
                q.push_str(&word);
            }
            let hashes = query_hashes(&q);
            if hashes.is_empty() {
                continue;
            }
            let mut found: Vec<i64> = Vec::new();
            for blk in &blocks {
                found.extend(block_candidates(&blk.bloom, &blk.postings, &hashes).unwrap());
            }
            found.extend(b.candidates(&hashes));
            for (text, &rid) in rows.iter().zip(&ids) {
                if matches(&q, text) {
                    prop_assert!(found.contains(&rid), "query {:?} missed row {:?}", q, text);
                }
            }
        }
    }
}
