//! # faultline-agent
//!
//! The desktop/server agent (the seed's tk-incidentreporter): follows log
//! files, turns ERROR/CRITICAL records into **incidents** — message with
//! stack trace, title, fingerprint, lines around it, machine details, the
//! log's tail attached — and delivers them to `POST /api/v1/incidents`
//! through a durable spool, exactly once in faultline thanks to
//! idempotency keys. Optionally ships every line to `POST /api/v1/logs`.
//! The wire contract and the operator's guide are in `docs/AGENT.md`.
//!
//! ## The path of an error
//!
//! ```text
//!  log file ──▶ faultline_tail::Tailer ──▶ Record (multiline, (file id, offset))
//!     │                                        │ matcher::Matcher (pre-filter, level, include/exclude)
//!     │                                        ▼ parse::parse (ShotGrid, Python, log4j, syslog, JSON, plain)
//!     │                          pipeline::SourceWorker: ring of lines before, wait for lines after,
//!     │                          grouping fingerprint + title, environment, redact::Redactor,
//!     └── tail of the file ───▶  incident::log_tail_attachment (gzip + base64)
//!                                              │ throttle::Throttle (same fingerprint → one, with count)
//!                                              ▼
//!                                  spool::Spool (one file per item, tmp → fsync → rename)
//!                                              │  ── then the tailer is acknowledged
//!                                              ▼
//!                                  sender::Sender ── http::Client ──▶ faultline server
//!                                  (backoff + jitter, Retry-After, dead-letter on 4xx)
//! ```
//!
//! A catch-up (a backlog of 256 KiB or more) does not frame every line:
//! the tailer's scan filter ([`pipeline::scan_filter`]) hands out only the
//! records that may pass the matcher's pre-filter or announce versions,
//! with the context the worker keeps around them, exactly as a
//! line-by-line read would (`tests/scan.rs`).
//!
//! Two threads per source: the tail thread ([`pipeline::SourceWorker`]:
//! its own tailer and checkpoint file, parsing, matching, context, shipped
//! lines, acknowledgements) and the incident thread
//! ([`pipeline::IncidentBuilder`]: grouping, environment, throttle,
//! attachment, spool), so building incidents never stalls reading while
//! an application rotates its log. One sender thread; no async runtime.
//! Singleton per user through [`lock::InstanceLock`].
//!
//! ## Architecture invariants
//!
//! - **A log position is acknowledged only when what it produced is on
//!   disk in the spool** ([`pipeline::AckTracker`]): errors waiting for
//!   context, occurrences counted by the throttle and unspooled lines hold
//!   their stream. A crash at any point re-reads the held records with the
//!   same identity, so the server deduplicates.
//! - **Secrets are redacted before anything is spooled**: nothing
//!   unredacted is written to disk by the agent or leaves the machine.
//! - **Every item dropped is counted**: a full spool counts what it drops
//!   by kind and reports it to the server; a refused item is kept in
//!   `dead-letter/` with the reason.
//! - Library modules return `thiserror` errors; only the binary uses
//!   `anyhow`. Parsing, matching, redaction, throttle, backoff and ack
//!   bookkeeping are pure and unit-tested.

pub mod agent;
pub mod backoff;
pub mod config;
pub mod environment;
pub mod http;
pub mod incident;
pub mod install;
pub mod lock;
pub mod matcher;
pub mod parse;
pub mod pipeline;
pub mod platform;
pub mod redact;
pub mod sender;
pub mod spool;
pub mod throttle;
