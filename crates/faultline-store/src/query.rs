use faultline_model::{LogFilter, StoredEntry};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// A position in the newest-first order: the last entry of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub timestamp: i64,
    pub id: i64,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.timestamp, self.id)
    }
}

impl FromStr for Cursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (t, i) = s.split_once('_').ok_or("cursor must look like <ts>_<id>")?;
        Ok(Cursor {
            timestamp: t.parse().map_err(|_| "bad cursor timestamp")?,
            id: i.parse().map_err(|_| "bad cursor id")?,
        })
    }
}

/// How to page through results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// Entries strictly older than the cursor (None: from the newest).
    /// Stable under concurrent inserts.
    Cursor(Option<Cursor>),
    /// 1-based page number, for UIs that show page links. Pages shift when
    /// entries arrive; use cursors to walk history.
    Page(u32),
}

/// A log query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    pub filter: LogFilter,
    pub limit: usize,
    pub paging: Paging,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogPage {
    pub entries: Vec<StoredEntry>,
    /// Where the next (older) page starts; None when this is the last.
    pub next_cursor: Option<Cursor>,
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
