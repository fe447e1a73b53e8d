//! # faultline-ingest
//!
//! Turns the body of `POST /api/v1/logs` into validated [`NewEntry`] values,
//! or into a precise error naming every bad entry.
//!
//! The body is one JSON object, a JSON array of objects, or NDJSON (objects
//! separated by newlines). Decoding is all-or-nothing: if any entry is bad the
//! whole request is rejected, so a client never has to guess which half of a
//! batch was stored.
//!
//! Architecture invariant: pure. No I/O, no clock (the caller passes `now`),
//! no HTTP; the server maps [`IngestError`] to status codes.

mod decode;
mod limits;
mod val;

pub use decode::{DecodeContext, EntryError, IngestError, decode_body};
pub use limits::Limits;
