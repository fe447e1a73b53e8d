//! `faultline tail`: follow entries live over Server-Sent Events.
//!
//! The stream is `GET /api/v1/logs/live` with `Accept: text/event-stream`:
//! `entry` events carry an entry, `dropped` events say how many entries the
//! server skipped because this client fell behind, and `: ping` comments
//! arrive every 15 s. Silence for much longer than that means the
//! connection is dead even if TCP has not noticed. On any loss we reconnect
//! with backoff until Ctrl-C; a refusal (bad token, bad filter) ends the run.

use super::http::{self, Api, Backoff, HttpError};
use super::render::{LineFormatter, Out, Style};
use super::sse::{SseEvent, SseParser};
use super::timearg::format_duration;
use super::{ConnArgs, FilterArgs};
use anyhow::anyhow;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use std::time::{Duration, Instant};

/// No byte for this long (three missed pings) means the stream is dead.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// A connection that lasted this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// Output formats of `faultline tail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TailOutput {
    /// One line per entry: time, level, service, message
    Text,
    /// Each entry's JSON as the server sent it, one per line
    Json,
}

/// Arguments of `faultline tail`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  faultline tail -s api -l warn
  faultline tail -o json | jq .message")]
pub struct TailArgs {
    #[command(flatten)]
    pub conn: ConnArgs,

    #[command(flatten)]
    pub filter: FilterArgs,

    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = TailOutput::Text)]
    pub output: TailOutput,

    /// Never colour the level (colour is used only on a terminal)
    #[arg(long)]
    pub no_color: bool,
}

pub async fn run(args: TailArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.conn, None)?;
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handling here: run until killed.
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = follow(&api, &args) => r,
        () = ctrl_c => Ok(()),
    }
}

/// Why a connection attempt did not give us a stream.
enum ConnectError {
    /// Worth trying again (with this cause for the note).
    Retry(String),
    /// The server refused us; trying again will not help.
    Fatal(anyhow::Error),
}

/// How a stream ended without a fatal error.
enum StreamEnd {
    /// Nobody reads our stdout any more.
    OutputClosed,
    /// The connection was lost for this reason.
    Lost(String),
}

async fn follow(api: &Api, args: &TailArgs) -> anyhow::Result<()> {
    let url = api.url("api/v1/logs/live");
    let params = args.filter.query_params();
    let mut printer = Printer {
        format: LineFormatter::new(Style::for_stdout(args.no_color)),
        out: Out::new(),
        output: args.output,
    };
    let mut parser = SseParser::default();
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
    let mut ever_connected = false;
    loop {
        let cause = match connect(api, &params, parser.last_event_id()).await {
            Err(ConnectError::Fatal(e)) => return Err(e.context(format!("following {url}"))),
            Err(ConnectError::Retry(cause)) => cause,
            Ok(resp) => {
                if ever_connected {
                    eprintln!(
                        "faultline: reconnected (entries stored while disconnected are not \
                         shown; `faultline logs --since` has them)"
                    );
                }
                ever_connected = true;
                parser.reset_connection();
                let started = Instant::now();
                let end = stream(resp, &mut parser, &mut printer).await?;
                if started.elapsed() >= STABLE_AFTER {
                    backoff.reset();
                }
                match end {
                    StreamEnd::OutputClosed => return Ok(()),
                    StreamEnd::Lost(cause) => cause,
                }
            }
        };
        let mut delay = backoff.next_delay();
        if let Some(asked) = parser.retry() {
            delay = delay.max(asked);
        }
        eprintln!(
            "faultline: {cause}; reconnecting in {}",
            format_duration(delay)
        );
        tokio::time::sleep(delay).await;
    }
}

async fn connect(
    api: &Api,
    params: &[(&'static str, String)],
    last_event_id: Option<&str>,
) -> Result<Response, ConnectError> {
    let mut req = api
        .request(Method::GET, "api/v1/logs/live")
        .query(params)
        .header(ACCEPT, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache");
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) if http::is_permanent(&e) => {
            return Err(ConnectError::Fatal(http::transport_error(e)));
        }
        Err(e) => return Err(ConnectError::Retry(http::describe_transport_error(&e))),
    };
    let status = resp.status();
    if status.is_success() {
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !content_type.starts_with("text/event-stream") {
            return Err(ConnectError::Fatal(anyhow!(
                "expected an event stream, the server sent {:?}",
                content_type
            )));
        }
        return Ok(resp);
    }
    let err = HttpError::from_response(resp).await;
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Err(ConnectError::Retry(err.to_string()))
    } else {
        Err(ConnectError::Fatal(err.into()))
    }
}

/// Prints events until the stream ends. Errors are fatal (stdout failed).
async fn stream(
    resp: Response,
    parser: &mut SseParser,
    printer: &mut Printer,
) -> anyhow::Result<StreamEnd> {
    let mut body = resp.bytes_stream();
    let mut events = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(IDLE_TIMEOUT, body.next()).await {
            Err(_) => {
                return Ok(StreamEnd::Lost(format!(
                    "no data from the server for {}",
                    format_duration(IDLE_TIMEOUT)
                )));
            }
            Ok(None) => return Ok(StreamEnd::Lost("the server closed the stream".into())),
            Ok(Some(Err(e))) => {
                return Ok(StreamEnd::Lost(format!(
                    "connection lost: {}",
                    http::describe_transport_error(&e)
                )));
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        if let Err(e) = parser.feed(&chunk, &mut events) {
            return Ok(StreamEnd::Lost(e.to_string()));
        }
        for event in events.drain(..) {
            if !printer.event(&event)? {
                return Ok(StreamEnd::OutputClosed);
            }
        }
    }
}

struct Printer {
    format: LineFormatter,
    out: Out,
    output: TailOutput,
}

impl Printer {
    /// Handles one event; `Ok(false)` once stdout is closed.
    fn event(&mut self, event: &SseEvent) -> std::io::Result<bool> {
        match classify(event) {
            Event::Entry(entry) => {
                let line = match self.output {
                    // The server's own bytes when they are one line.
                    TailOutput::Json if !event.data.contains('\n') => event.data.trim().to_string(),
                    TailOutput::Json => entry.to_string(),
                    TailOutput::Text => self.format.line(&entry),
                };
                self.out.line(&line)
            }
            Event::Dropped(n) => {
                eprintln!(
                    "faultline: the server skipped {n} {} because this client fell behind",
                    if n == 1 { "entry" } else { "entries" }
                );
                Ok(true)
            }
            Event::Other => Ok(true),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Event {
    Entry(Value),
    Dropped(u64),
    Other,
}

/// What an SSE event means. Unnamed (`message`) events are accepted too,
/// told apart by their shape, in case a proxy or a future server drops the
/// event names.
fn classify(event: &SseEvent) -> Event {
    let Ok(value) = serde_json::from_str::<Value>(&event.data) else {
        return Event::Other;
    };
    let dropped = value.get("dropped").and_then(Value::as_u64);
    match (event.event.as_str(), dropped) {
        ("dropped", Some(n)) => Event::Dropped(n),
        ("message", Some(n)) if value.get("message").is_none() => Event::Dropped(n),
        ("entry" | "message", _) if value.is_object() => Event::Entry(value),
        _ => Event::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_are_classified_by_name_and_shape() {
        assert_eq!(
            classify(&ev("entry", r#"{"message":"hi","level":"info"}"#)),
            Event::Entry(json!({"message":"hi","level":"info"}))
        );
        assert_eq!(
            classify(&ev("dropped", r#"{"dropped": 12}"#)),
            Event::Dropped(12)
        );
        assert_eq!(
            classify(&ev("message", r#"{"dropped": 1}"#)),
            Event::Dropped(1)
        );
        assert_eq!(
            classify(&ev("message", r#"{"message":"x"}"#)),
            Event::Entry(json!({"message":"x"}))
        );
        assert_eq!(classify(&ev("entry", "not json")), Event::Other);
        assert_eq!(classify(&ev("hello", "{}")), Event::Other);
        assert_eq!(classify(&ev("entry", "[1]")), Event::Other);
    }
}
