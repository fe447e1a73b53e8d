//! Reading request bodies within a size limit, with gzip decoding, so every
//! failure is a JSON error (413 too large, 415 unknown encoding, 400 corrupt).

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{HeaderMap, header};
use futures_util::StreamExt;
use std::io::Read;

/// Bodies larger than this are decompressed on the blocking pool.
const INLINE_BYTES: usize = 64 * 1024;

/// Reads the whole body; `limit` applies to the raw and to the decompressed
/// size.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Vec<u8>, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("") | Some("identity") => false,
        Some("gzip") | Some("x-gzip") => true,
        Some(other) => {
            return Err(ApiError::Unsupported(format!(
                "Content-Encoding {other:?} is not supported; send identity or gzip"
            )));
        }
    };
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(len) = length
        && len > limit.max(DRAIN_CAP)
    {
        // Too large to be worth draining: refuse before reading.
        return Err(ApiError::BodyTooLarge { limit });
    }
    // Room for the announced length at once, rather than growing the
    // buffer chunk by chunk (up to 1 MiB: the length is only a claim).
    let capacity = length.unwrap_or(0).min(limit).min(1 << 20);
    let raw = tokio::time::timeout(timeout, read_raw(body, limit, capacity))
        .await
        .map_err(|_| ApiError::BodyTimeout(timeout))??;
    if !gzip {
        return Ok(raw);
    }
    if raw.len() > INLINE_BYTES {
        tokio::task::spawn_blocking(move || gunzip(&raw, limit))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
    } else {
        gunzip(&raw, limit)
    }
}

/// An oversized body up to this size is read and discarded before the 413
/// is sent, so the client sees the answer instead of a connection reset
/// while it is still sending.
const DRAIN_CAP: usize = 64 * 1024 * 1024;

async fn read_raw(body: Body, limit: usize, capacity: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(capacity);
    let mut seen = 0usize;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad(
                "unreadable body",
                format!("the request body could not be read: {e}"),
            )
        })?;
        seen += chunk.len();
        if seen > limit {
            if seen > limit.max(DRAIN_CAP) {
                break;
            }
            out = Vec::new();
            continue;
        }
        out.extend_from_slice(&chunk);
    }
    if seen > limit {
        return Err(ApiError::BodyTooLarge { limit });
    }
    Ok(out)
}

fn gunzip(raw: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
    let decoder = flate2::read::MultiGzDecoder::new(raw);
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            ApiError::bad(
                "malformed gzip",
                format!("the gzip body could not be decoded: {e}"),
            )
        })?;
    if out.len() > limit {
        return Err(ApiError::BodyTooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_round_trip_and_bomb_limit() {
        assert_eq!(gunzip(&gz(b"hello"), 10).unwrap(), b"hello");
        let bomb = gz(&vec![b'a'; 1_000_000]);
        assert!(bomb.len() < 10_000);
        assert!(matches!(
            gunzip(&bomb, 100_000),
            Err(ApiError::BodyTooLarge { .. })
        ));
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(ApiError::BadRequest { .. })
        ));
    }
}
