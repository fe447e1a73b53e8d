//! The incident: what goes to `POST /api/v1/incidents` (the wire contract
//! is in `docs/AGENT.md`), and the log-tail attachment.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::redact::Redactor;

/// Lines around the error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// Lines before the error's record, oldest first.
    pub before: Vec<String>,
    /// Lines after it.
    pub after: Vec<String>,
}

/// Where the error was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRef {
    /// File path.
    pub path: String,
    /// Offset of the record in the file's stream.
    pub offset: u64,
}

/// A file attached to an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// File name.
    pub name: String,
    /// MIME type of the decoded content.
    pub content_type: String,
    /// `gzip`: `data` is base64 of gzip bytes.
    pub encoding: String,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// Base64 (standard alphabet, padded).
    pub data: String,
}

/// One incident, as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// `<file id>-<offset>` of the record: the same error read twice has
    /// the same key.
    pub idempotency_key: String,
    /// Service; absent: the token's service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Level name (`error`, `critical`, …).
    pub level: String,
    /// RFC 3339 UTC.
    pub timestamp: String,
    /// Full message including the stack trace.
    pub message: String,
    /// `"<user> - <ErrorName or short message>"`.
    pub title: String,
    /// Grouping fingerprint (16 hex digits).
    pub fingerprint: String,
    /// Logger name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger: Option<String>,
    /// Process id of the writer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// ShotGrid engine (`tk-maya`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Occurrences this incident stands for (local throttle).
    pub count: u64,
    /// Incidents dropped (spool full) before this one, not reported yet.
    pub dropped_before: u64,
    /// Lines around the error.
    pub context: Context,
    /// Machine and process details (string values only).
    pub environment: BTreeMap<String, String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Other attributes (string values only).
    pub attributes: BTreeMap<String, String>,
    /// Where it was read.
    pub source: SourceRef,
    /// The log tail.
    pub attachments: Vec<Attachment>,
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// The last `max_bytes` of a log (from a line start), redacted,
/// gzip-compressed: `None` when the compressed form exceeds
/// `max_compressed`. When `path` holds less than `max_bytes` (it was just
/// rotated), the tail of its predecessor `previous` (`tk-maya.log.1`) is
/// taken first, so the attachment still shows what led to the error.
pub fn log_tail_attachment(
    path: &Path,
    previous: Option<&Path>,
    max_bytes: u64,
    max_compressed: u64,
    redactor: &Redactor,
) -> io::Result<Option<Attachment>> {
    let (mut buf, mut cut) = read_tail(path, max_bytes)?;
    if !cut
        && (buf.len() as u64) < max_bytes
        && let Some(prev) = previous
        && let Ok((mut head, prev_cut)) = read_tail(prev, max_bytes - buf.len() as u64)
    {
        if !head.is_empty() && !head.ends_with(b"\n") {
            head.push(b'\n');
        }
        head.extend_from_slice(&buf);
        buf = head;
        cut = prev_cut;
    }
    if cut {
        // Begin at a line start: the cut line is useless and could hold
        // half a secret the redaction would not recognise.
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                buf.drain(..=i);
            }
            None => buf.clear(),
        }
    }
    let text = redactor.redact(&String::from_utf8_lossy(&buf));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes())?;
    let bytes = gz.finish()?;
    if bytes.len() as u64 > max_compressed {
        return Ok(None);
    }
    Ok(Some(Attachment {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "log.txt".into()),
        content_type: "text/plain".into(),
        encoding: "gzip".into(),
        size: text.len() as u64,
        data: base64(&bytes),
    }))
}

/// The last `max` bytes of a file; `true` when the file was longer.
fn read_tail(path: &Path, max: u64) -> io::Result<(Vec<u8>, bool)> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(max);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    f.take(max).read_to_end(&mut buf)?;
    Ok((buf, start > 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn unbase64(s: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let mut out = Vec::new();
        for ch in s.as_bytes().chunks(4) {
            let n = ch
                .iter()
                .take_while(|c| **c != b'=')
                .fold((0u32, 0usize), |(acc, k), c| {
                    (acc | (u32::from(val(*c)) << (18 - 6 * k)), k + 1)
                });
            let bytes = [(n.0 >> 16) as u8, (n.0 >> 8) as u8, n.0 as u8];
            out.extend_from_slice(&bytes[..n.1.saturating_sub(1)]);
        }
        out
    }

    fn gunzip(a: &Attachment) -> String {
        let gz = unbase64(&a.data);
        let mut out = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn just_rotated_log_takes_the_predecessor_tail() {
        let d = tempfile::tempdir().unwrap();
        let cur = d.path().join("tk-maya.log");
        let prev = d.path().join("tk-maya.log.1");
        std::fs::write(&prev, "old 1\nold 2\nold 3\n").unwrap();
        std::fs::write(&cur, "new 1\n").unwrap();
        let r = Redactor::default();
        let a = log_tail_attachment(&cur, Some(&prev), 1 << 20, 1 << 20, &r)
            .unwrap()
            .unwrap();
        assert_eq!(gunzip(&a), "old 1\nold 2\nold 3\nnew 1\n");
        assert_eq!(a.name, "tk-maya.log");
        // Only what fits, from a line start.
        let a = log_tail_attachment(&cur, Some(&prev), 14, 1 << 20, &r)
            .unwrap()
            .unwrap();
        assert_eq!(gunzip(&a), "old 3\nnew 1\n");
        // Empty current file: the predecessor alone.
        std::fs::write(&cur, "").unwrap();
        let a = log_tail_attachment(&cur, Some(&prev), 1 << 20, 1 << 20, &r)
            .unwrap()
            .unwrap();
        assert_eq!(gunzip(&a), "old 1\nold 2\nold 3\n");
    }

    #[test]
    fn base64_known_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
            assert_eq!(unbase64(o), i.as_bytes());
        }
    }

    #[test]
    fn attachment_is_the_redacted_gzipped_tail() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("tk-maya.log");
        let mut text = String::new();
        for i in 0..1000 {
            text.push_str(&format!("line {i} password=secret{i}\n"));
        }
        std::fs::write(&p, &text).unwrap();
        let a = log_tail_attachment(&p, None, 4096, 1 << 20, &Redactor::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.name.as_str(), a.encoding.as_str()),
            ("tk-maya.log", "gzip")
        );
        let gz = unbase64(&a.data);
        let mut out = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out.len() as u64, a.size);
        // ~4 KiB taken (redaction may lengthen it a little).
        assert!(out.len() <= 4096 + 4096 / 10, "{}", out.len());
        assert!(
            out.starts_with("line "),
            "starts at a line: {:?}",
            &out[..20]
        );
        assert!(out.ends_with("line 999 password=[REDACTED]\n"));
        assert!(!out.contains("secret"));
        // Over the compressed cap: left out.
        assert!(
            log_tail_attachment(&p, None, 4096, 10, &Redactor::default())
                .unwrap()
                .is_none()
        );
    }
}
