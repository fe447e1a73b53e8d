//! A minimal HTTP/1.1 client for the closed-loop load: one keep-alive
//! connection per client, each request written with one vectored write
//! (head and body, no copy of the body), the answer read into a reused
//! buffer. reqwest (a pooled client behind tower layers, a URL and header
//! map built per request) took about half of the load generator's CPU,
//! which the server on the same two cores then lacked.
//!
//! It speaks just what faultline answers to `POST /api/v1/logs`: a status
//! line, headers with `content-length` (no chunked answers), a body. Any
//! error drops the connection; the next request opens a new one.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest answer head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// Longest a request may take, as the reqwest client of the other phases.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The connection could not be opened.
    Connect,
    /// Writing the request or reading the answer failed, or the answer
    /// was not HTTP/1.1 as expected.
    Io,
    /// No answer within [`TIMEOUT`].
    Timeout,
}

/// One keep-alive connection to `addr`, posting to `path`.
pub struct Conn {
    addr: SocketAddr,
    host: String,
    path: String,
    stream: Option<TcpStream>,
    head: Vec<u8>,
    answer: Vec<u8>,
}

impl Conn {
    pub fn new(addr: SocketAddr, path: &str) -> Conn {
        Conn {
            addr,
            host: addr.to_string(),
            path: path.to_owned(),
            stream: None,
            head: Vec::with_capacity(512),
            answer: Vec::with_capacity(4096),
        }
    }

    /// Posts `body` (JSON) with bearer `token`: the answer's status and
    /// body.
    pub async fn post(&mut self, token: &str, body: &[u8]) -> Result<(u16, &[u8]), Failure> {
        let done = tokio::time::timeout(TIMEOUT, self.exchange(token, body)).await;
        match done.unwrap_or(Err(Failure::Timeout)) {
            Ok((status, range)) => Ok((status, &self.answer[range])),
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }

    async fn exchange(&mut self, token: &str, body: &[u8]) -> Result<(u16, Range<usize>), Failure> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr)
                .await
                .map_err(|_| Failure::Connect)?;
            s.set_nodelay(true).map_err(|_| Failure::Connect)?;
            self.stream = Some(s);
        }
        let Some(stream) = self.stream.as_mut() else {
            unreachable!("connected above");
        };
        self.head.clear();
        use std::io::Write as _;
        write!(
            self.head,
            "POST {} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.path,
            self.host,
            body.len()
        )
        .map_err(|_| Failure::Io)?;
        write_both(stream, &self.head, body)
            .await
            .map_err(|_| Failure::Io)?;
        let (status, range, close) = read_answer(stream, &mut self.answer)
            .await
            .map_err(|_| Failure::Io)?;
        if close {
            self.stream = None;
        }
        Ok((status, range))
    }
}

/// Writes `a` then `b`, vectored.
async fn write_both(stream: &mut TcpStream, a: &[u8], b: &[u8]) -> io::Result<()> {
    let mut bufs = [IoSlice::new(a), IoSlice::new(b)];
    let mut rest: &mut [IoSlice<'_>] = &mut bufs;
    while !rest.is_empty() {
        let n = stream.write_vectored(rest).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Reads one answer into `buf`: (status, where its body is in `buf`,
/// whether the server closes the connection).
async fn read_answer(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> io::Result<(u16, Range<usize>, bool)> {
    buf.clear();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(invalid("answer head too long"));
        }
        read_more(stream, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| invalid("answer head"))?;
    let (status, len, close) = parse_head(head)?;
    while buf.len() < head_end + len {
        read_more(stream, buf).await?;
    }
    if buf.len() > head_end + len {
        return Err(invalid("bytes after the answer"));
    }
    Ok((status, head_end..head_end + len, close))
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.reserve(4096);
    if stream.read_buf(buf).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// (status, content length, `connection: close`) of an answer head.
fn parse_head(head: &str) -> io::Result<(u16, usize, bool)> {
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|l| l.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("status line"))?;
    let (mut len, mut close) = (None, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            len = Some(value.parse().map_err(|_| invalid("content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("chunked answers are not read"));
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok((
        status,
        len.ok_or_else(|| invalid("no content-length"))?,
        close,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_read() {
        let h =
            "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\nContent-Length: 16\r\n\r\n";
        assert_eq!(parse_head(h).unwrap(), (202, 16, false));
        let h =
            "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(parse_head(h).unwrap(), (503, 0, true));
        assert!(parse_head("HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n").is_err());
    }

    /// Against a real HTTP server (hyper through axum, as faultline):
    /// keep-alive answers on one connection, then a new connection after
    /// the server closed the old one.
    #[tokio::test]
    async fn posts_over_one_connection_and_reconnects() {
        use axum::routing::post;
        let app = axum::Router::new().route(
            "/api/v1/logs",
            post(
                |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                    let auth = headers["authorization"].to_str().unwrap().to_owned();
                    (
                        axum::http::StatusCode::ACCEPTED,
                        format!("{{\"len\":{},\"auth\":\"{auth}\"}}", body.len()),
                    )
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let mut conn = Conn::new(addr, "/api/v1/logs");
        let body = vec![b'x'; 100_000];
        for _ in 0..3 {
            let (status, answer) = conn.post("t0k", &body).await.unwrap();
            assert_eq!(status, 202);
            assert_eq!(answer, br#"{"len":100000,"auth":"Bearer t0k"}"#);
        }
        // A dropped connection is replaced by the next request.
        conn.stream = None;
        let (status, _) = conn.post("t0k", b"[]").await.unwrap();
        assert_eq!(status, 202);
        server.abort();
        let _ = server.await;
        conn.stream = None;
        assert_eq!(conn.post("t0k", b"[]").await, Err(Failure::Connect));
    }
}
