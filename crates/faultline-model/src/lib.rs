//! # faultline-model
//!
//! The domain types every other faultline crate speaks: [`Level`], the
//! validated [`NewEntry`] that ingest produces, the [`StoredEntry`] the store
//! returns, the [`LogFilter`] shared by queries and the live tail, and the
//! token kinds of the tenancy model.
//!
//! Architecture invariant: this crate does no I/O and knows nothing of HTTP,
//! SQL or async runtimes. Everything here is plain data plus pure functions,
//! so it cannot fail for reasons outside its arguments.

mod attributes;
mod duration;
mod entry;
mod filter;
mod issue;
mod level;
mod tenancy;
mod time_fmt;

pub use attributes::Attributes;
pub use duration::{parse_duration, parse_time_bound};
pub use entry::{AttrValue, Name, NewEntry, StoredEntry};
pub use filter::LogFilter;
pub use issue::{
    AttachmentRef, EventContext, EventDetails, EventFrame, IgnoreUntil, Issue, IssueState,
    IssueStatus, NewEvent, StatusChange, StoredEvent, Transition,
};
pub use level::{Level, ParseLevelError};
pub use tenancy::{Project, Service, ServiceSummary, TokenInfo, TokenKind};
pub use time_fmt::{format_rfc3339_micros, now_micros, parse_rfc3339_micros};
