//! `faultline logs`: query stored entries, newest first, following the
//! server's cursor across pages.

use super::http::{self, Api, RetryPolicy};
use super::render::{LineFormatter, Out, Style};
use super::{ConnArgs, FilterArgs};
use anyhow::{Context, anyhow};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use std::io::IsTerminal;
use std::time::Duration;

/// The server's largest page.
const MAX_PAGE: u64 = 1000;
/// Entries shown when neither --limit nor --all is given.
const DEFAULT_LIMIT: u64 = 100;

/// Output formats of `faultline logs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogsOutput {
    /// One line per entry: time, level, service, message
    Table,
    /// A JSON array of entries, one entry per line
    Json,
    /// One JSON entry per line
    Ndjson,
}

/// Arguments of `faultline logs`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  faultline logs -s api -l error --since 1h
  faultline logs -q 'connection refused' --all --output ndjson > refused.ndjson")]
pub struct LogsArgs {
    #[command(flatten)]
    pub conn: ConnArgs,

    #[command(flatten)]
    pub filter: FilterArgs,

    /// Most entries to print [default: 100, or no limit with --all]
    #[arg(long, short = 'n', value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,

    /// Page through every matching entry
    #[arg(long)]
    pub all: bool,

    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = LogsOutput::Table)]
    pub output: LogsOutput,

    /// Never colour the level (colour is used only on a terminal)
    #[arg(long)]
    pub no_color: bool,
}

#[derive(Debug, Deserialize)]
struct Page {
    entries: Vec<Value>,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// Page sizes to ask for: `Some(n)` of at most [`MAX_PAGE`] while entries
/// are still wanted.
fn next_page_size(total: Option<u64>, printed: u64) -> Option<u64> {
    match total {
        None => Some(MAX_PAGE),
        Some(t) if printed >= t => None,
        Some(t) => Some((t - printed).min(MAX_PAGE)),
    }
}

pub async fn run(args: LogsArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.conn, Some(Duration::from_secs(60)))?;
    let total = match (args.limit, args.all) {
        (Some(n), _) => Some(n),
        (None, true) => None,
        (None, false) => Some(DEFAULT_LIMIT),
    };
    let mut out = Out::new();
    let mut table = LineFormatter::new(Style::for_stdout(args.no_color));
    let url = api.url("api/v1/logs");
    let mut cursor: Option<String> = None;
    let mut printed = 0u64;
    let mut more = false;
    let mut open = true;
    let mut json_pending: Option<String> = None;

    if args.output == LogsOutput::Json {
        open = out.line("[")?;
    }
    while let Some(size) = next_page_size(total, printed).filter(|_| open) {
        let mut params = args.filter.query_params();
        params.push(("limit", size.to_string()));
        if let Some(c) = &cursor {
            params.push(("cursor", c.clone()));
        }
        let resp = http::send_with_retry(
            || api.request(Method::GET, "api/v1/logs").query(&params),
            RetryPolicy {
                // A query is interactive: wait out a short overload, but
                // do not sit for minutes in front of a server that is down.
                give_up_after: Duration::from_secs(5),
            },
            |cause, delay| {
                eprintln!(
                    "faultline: {cause}; retrying in {}",
                    super::timearg::format_duration(delay)
                );
            },
        )
        .await
        .with_context(|| format!("querying {url}"))?;
        let resp = http::check(resp)
            .await
            .with_context(|| format!("querying {url}"))?;
        let page: Page = resp
            .json()
            .await
            .map_err(|e| anyhow!(http::describe_transport_error(&e)))
            .with_context(|| format!("reading the answer of {url}"))?;
        let n = page.entries.len() as u64;
        let take = total.map_or(n, |t| n.min(t - printed)) as usize;
        if args.output == LogsOutput::Table {
            table.fit(&page.entries[..take]);
        }
        for entry in &page.entries[..take] {
            printed += 1;
            let line = match args.output {
                LogsOutput::Table => Some(table.line(entry)),
                LogsOutput::Ndjson => Some(entry.to_string()),
                // Held back one entry: only the next one shows whether a
                // comma follows.
                LogsOutput::Json => json_pending
                    .replace(format!("  {entry}"))
                    .map(|prev| format!("{prev},")),
            };
            if let Some(line) = line
                && !out.line(&line)?
            {
                open = false;
                break;
            }
        }
        more = take < page.entries.len() || page.next_cursor.is_some();
        match page.next_cursor {
            Some(c) if n > 0 => cursor = Some(c),
            _ => break,
        }
    }
    if args.output == LogsOutput::Json && open {
        if let Some(last) = json_pending {
            out.line(&last)?;
        }
        out.line("]")?;
    }
    out.flush()?;
    if more && !args.all && args.output == LogsOutput::Table && std::io::stderr().is_terminal() {
        eprintln!("(showing the newest {printed}; more may match: use --limit N or --all)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_the_limit_in_server_sized_steps() {
        assert_eq!(next_page_size(Some(100), 0), Some(100));
        assert_eq!(next_page_size(Some(2500), 0), Some(1000));
        assert_eq!(next_page_size(Some(2500), 2000), Some(500));
        assert_eq!(next_page_size(Some(2500), 2500), None);
        assert_eq!(next_page_size(None, 123_456), Some(1000));
    }
}
