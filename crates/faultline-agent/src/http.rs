//! A minimal blocking HTTP/1.1 client: one `POST` per connection
//! (`Connection: close`), `Content-Length` bodies, responses with
//! `Content-Length`, chunked encoding or read to the end; `https://` over
//! rustls (ring), verifying the server against the operating system's
//! trust store or, with `delivery.ca_file`, against the certificates of
//! that PEM file only (a studio's own CA).
//!
//! Why not reqwest: the agent sends a few requests a minute from
//! desktops; a blocking client on std sockets keeps the binary free of an
//! async runtime and its threads (idle cost), and it needs nothing else.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};

/// Largest response body read (server replies are small JSON).
const MAX_RESPONSE: usize = 1 << 20;

/// A bad server URL.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    /// Not `http://` or `https://`.
    #[error("{0:?}: only http:// and https:// URLs are supported")]
    Scheme(String),
    /// No host, bad port.
    #[error("{0:?}: expected http(s)://host[:port][/prefix]")]
    Malformed(String),
}

/// The TLS settings could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file cannot be read or holds no certificate.
    #[error("delivery.ca_file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration (e.g. no usable trust store).
    #[error("TLS setup: {0}")]
    Setup(#[from] rustls::Error),
}

/// Reads the certificates of a PEM file (at least one).
pub fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// The rustls client settings: the OS trust store (platform verifier), or
/// only the certificates of `ca_file`.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?;
    let config = match ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in load_ca(path)? {
                roots.add(c).map_err(|e| TlsError::CaFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt as _;
            builder.with_platform_verifier()?.with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// A server to post to: its endpoint and, for `https://`, the TLS
/// settings (built once).
#[derive(Clone)]
pub struct Client {
    ep: Endpoint,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Why a [`Client`] could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Bad URL.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// Bad TLS settings.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl Client {
    /// A client of `url`; `ca_file` only matters for `https://`.
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<Client, ClientError> {
        let ep = Endpoint::parse(url)?;
        let tls = if ep.tls {
            Some(tls_config(ca_file)?)
        } else {
            None
        };
        Ok(Client { ep, tls })
    }

    /// `POST {prefix}{path}` with `headers` and `body`, within `timeout`
    /// (connect, send and receive each bounded by it; the whole exchange
    /// by twice it).
    pub fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout: Duration,
    ) -> io::Result<Response> {
        post_with(&self.ep, self.tls.as_ref(), path, headers, body, timeout)
    }
}

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path prefix without trailing slash (`""` or `/faultline`).
    pub prefix: String,
    /// `https://`.
    pub tls: bool,
}

impl Endpoint {
    /// Parses `http(s)://host[:port][/prefix]`.
    pub fn parse(url: &str) -> Result<Endpoint, UrlError> {
        let u = url.trim();
        let (tls, rest) = match u.split_once("://") {
            Some((s, r)) if s.eq_ignore_ascii_case("http") => (false, r),
            Some((s, r)) if s.eq_ignore_ascii_case("https") => (true, r),
            Some(_) => return Err(UrlError::Scheme(u.to_owned())),
            None => return Err(UrlError::Malformed(u.to_owned())),
        };
        let default_port = if tls { 443 } else { 80 };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(UrlError::Malformed(u.to_owned()));
        }
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let (h, after) = r
                .split_once(']')
                .ok_or_else(|| UrlError::Malformed(u.to_owned()))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| UrlError::Malformed(u.to_owned()))?,
                None if after.is_empty() => default_port,
                None => return Err(UrlError::Malformed(u.to_owned())),
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_owned(),
                    p.parse().map_err(|_| UrlError::Malformed(u.to_owned()))?,
                ),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() || path.contains(['?', '#']) {
            return Err(UrlError::Malformed(u.to_owned()));
        }
        Ok(Endpoint {
            host,
            port,
            prefix: path.trim_end_matches('/').to_owned(),
            tls,
        })
    }

    fn host_header(&self) -> String {
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            h
        } else {
            format!("{h}:{}", self.port)
        }
    }
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers (names lowercase).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `POST {prefix}{path}` with `headers` and `body`, within `timeout`
/// (connect, send and receive each bounded by it; the whole exchange by
/// twice it), over TLS when `tls` is given.
fn post_with(
    ep: &Endpoint,
    tls: Option<&Arc<rustls::ClientConfig>>,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let deadline = Instant::now() + timeout * 2;
    let addrs: Vec<_> = (ep.host.as_str(), ep.port).to_socket_addrs()?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address for host");
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let stream = stream.ok_or(last)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let _ = stream.set_nodelay(true);
    let mut head = format!(
        "POST {}{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\nUser-Agent: faultline-agent/{}\r\n",
        ep.prefix,
        path,
        ep.host_header(),
        body.len(),
        env!("CARGO_PKG_VERSION"),
    );
    for (n, v) in headers {
        if n.contains(['\r', '\n', ':']) || v.contains(['\r', '\n']) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad header"));
        }
        head.push_str(n);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    match tls {
        None => exchange(stream, &head, body, deadline),
        Some(cfg) => {
            let name = ServerName::try_from(ep.host.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let conn =
                rustls::ClientConnection::new(Arc::clone(cfg), name).map_err(io::Error::other)?;
            // The handshake happens on the first write; a certificate the
            // trust store refuses fails it (InvalidData, rustls's reason).
            exchange(
                rustls::StreamOwned::new(conn, stream),
                &head,
                body,
                deadline,
            )
        }
    }
}

fn exchange<S: Read + Write>(
    mut stream: S,
    head: &str,
    body: &[u8],
    deadline: Instant,
) -> io::Result<Response> {
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    read_response(BufReader::new(stream), deadline)
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

fn read_response<R: BufRead>(mut r: R, deadline: Instant) -> io::Result<Response> {
    let mut line = String::new();
    let read_line = |r: &mut R, line: &mut String| -> io::Result<()> {
        line.clear();
        if Instant::now() > deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "response too slow"));
        }
        let n = r.by_ref().take(16 * 1024).read_line(line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response",
            ));
        }
        Ok(())
    };
    // Skip interim 1xx responses.
    let status = loop {
        read_line(&mut r, &mut line)?;
        let mut parts = line.split_whitespace();
        let proto = parts.next().unwrap_or_default();
        if !proto.starts_with("HTTP/1.") {
            return Err(bad("not an HTTP/1 response"));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let mut headers = Vec::new();
        loop {
            read_line(&mut r, &mut line)?;
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                break;
            }
            if headers.len() > 100 {
                return Err(bad("too many headers"));
            }
            if let Some((n, v)) = l.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        if (100..200).contains(&status) {
            continue;
        }
        break (status, headers);
    };
    let (status, headers) = status;
    let resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let body = if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        read_chunked(&mut r)?
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
        let mut b = vec![0; len.min(MAX_RESPONSE)];
        r.read_exact(&mut b)?;
        b
    } else {
        // Read to the end. A TLS peer that closes without close_notify
        // ends the body too (rustls reports it as UnexpectedEof): the
        // headers are what matters.
        let mut b = Vec::new();
        match r.take(MAX_RESPONSE as u64).read_to_end(&mut b) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e),
        }
        b
    };
    Ok(Response { body, ..resp })
}

fn read_chunked<R: BufRead>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        r.by_ref().take(1024).read_line(&mut line)?;
        let size_hex = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            return Ok(out);
        }
        if out.len() + size > MAX_RESPONSE {
            return Err(bad("response too large"));
        }
        let start = out.len();
        out.resize(start + size, 0);
        r.read_exact(&mut out[start..])?;
        line.clear();
        r.by_ref().take(4).read_line(&mut line)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let e = Endpoint::parse("http://127.0.0.1:8470").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.prefix.as_str()),
            ("127.0.0.1", 8470, "")
        );
        let e = Endpoint::parse("HTTP://faultline.studio/fl/").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.prefix.as_str()),
            ("faultline.studio", 80, "/fl")
        );
        assert_eq!(e.host_header(), "faultline.studio");
        let e = Endpoint::parse("http://[::1]:9000").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9000));
        assert_eq!(e.host_header(), "[::1]:9000");
        let e = Endpoint::parse("https://faultline.studio/fl").unwrap();
        assert_eq!(
            (e.port, e.tls, e.host_header()),
            (443, true, "faultline.studio".into())
        );
        let e = Endpoint::parse("https://faultline.studio:8443").unwrap();
        assert_eq!(e.host_header(), "faultline.studio:8443");
        assert!(!Endpoint::parse("http://x").unwrap().tls);
        assert!(matches!(
            Endpoint::parse("ftp://x"),
            Err(UrlError::Scheme(_))
        ));
        for bad in [
            "x:1",
            "http://",
            "http://h:port",
            "http://u:p@h",
            "http://h/?q",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_length_chunked_and_eof_bodies() {
        let far = Instant::now() + Duration::from_secs(5);
        let r = read_response(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\ncontent-length: 5\r\n\r\nhello"[..],
            far,
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (202, &b"hello"[..]));
        let r = read_response(
            &b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"[..],
            far,
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (503, &b"abcde"[..]));
        assert_eq!(r.header("retry-after"), Some("3"));
        let r = read_response(&b"HTTP/1.0 400 Bad\r\n\r\n{\"e\":1}"[..], far).unwrap();
        assert_eq!(r.body, b"{\"e\":1}");
        assert!(read_response(&b""[..], far).is_err());
        assert!(read_response(&b"SSH-2.0-OpenSSH\r\n"[..], far).is_err());
    }
}
