//! Turning a user's search text into an FTS5 query.

/// Builds the FTS5 query for a user's search text, or `None` when the text
/// has no searchable token (then it filters nothing, as in
/// [`faultline_model::LogFilter::matches`]).
///
/// The text is split the way `LogFilter::matches` and the index's tokenizer
/// split messages: runs of alphanumeric characters and `_`, lowercased. Each
/// token becomes a double-quoted FTS5 string and the strings are joined with
/// spaces (an implicit AND). A quoted string is never an operator, a column
/// filter or a prefix query, and a token never contains `"`, so the result is
/// always a valid query whatever the input (`NEAR(`, `*`, `-`, `"`, `:`…).
pub(crate) fn fts_query(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 8);
    for token in text
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|t| !t.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push('"');
        for c in token.chars().flat_map(char::to_lowercase) {
            out.push(c);
        }
        out.push('"');
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::fts_query;

    #[test]
    fn words_become_quoted_lowercase_tokens() {
        assert_eq!(
            fts_query("Connection  refused").as_deref(),
            Some(r#""connection" "refused""#)
        );
        assert_eq!(
            fts_query("user_id=42 foo.bar").as_deref(),
            Some(r#""user_id" "42" "foo" "bar""#)
        );
    }

    #[test]
    fn punctuation_only_text_is_no_query() {
        assert_eq!(fts_query(""), None);
        assert_eq!(fts_query("  * - \"\" ( ) : ^ "), None);
    }

    #[test]
    fn operators_are_neutralised() {
        assert_eq!(
            fts_query(r#"NEAR(a b) OR "x" -y* col:z"#).as_deref(),
            Some(r#""near" "a" "b" "or" "x" "y" "col" "z""#)
        );
    }
}
