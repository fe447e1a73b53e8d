//! The client half of the `faultline` command: `send`, `logs` and `tail`
//! talk to a running server over its HTTP API (`docs/API.md`).
//!
//! # Brief overview
//! - [`send`] turns flags, stdin lines or a file into NDJSON batches and
//!   posts them with a few requests in flight. An entry counts as sent only
//!   when the server answered `202`; overload and connection errors are
//!   retried with backoff, anything else stops the run with the server's
//!   reason.
//! - [`logs`] pages through `GET /api/v1/logs` with its cursor.
//! - [`tail`] follows `GET /api/v1/logs/live` as Server-Sent Events
//!   ([`sse`] is the parser) and reconnects until Ctrl-C.
//! - [`http`] holds what all three share: the base URL, the token, error
//!   messages (`server said 401 Unauthorized: unauthorized: …`) and retries;
//!   [`render`] formats entries for people.
//!
//! Output discipline: stdout carries only data (entries, JSON); notes,
//! progress and summaries go to stderr, so every command can be piped.

mod alerts;
mod http;
mod logs;
mod render;
mod send;
mod sse;
mod tail;
mod timearg;

pub use alerts::AlertsArgs;
pub use logs::LogsArgs;
pub use send::SendArgs;
pub use tail::TailArgs;

use faultline_model::Level;

/// Subcommands that talk to a running server.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Send log entries: one from flags, or one per line from stdin or a file
    Send(SendArgs),
    /// Query stored log entries, newest first
    Logs(LogsArgs),
    /// Follow log entries live as the server stores them (Ctrl-C to stop)
    Tail(TailArgs),
    /// Alert rules and the notification dead-letter queue
    Alerts(AlertsArgs),
}

/// Runs a client subcommand to completion.
pub async fn run(cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Send(args) => send::run(args).await,
        ClientCommand::Logs(args) => logs::run(args).await,
        ClientCommand::Tail(args) => tail::run(args).await,
        ClientCommand::Alerts(args) => alerts::run(args).await,
    }
}

/// Where the server is and who we are.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnArgs {
    /// Base URL of the faultline server
    #[arg(
        long,
        env = "FAULTLINE_SERVER",
        default_value = "http://127.0.0.1:8470",
        value_name = "URL"
    )]
    pub server: String,

    /// API token: an ingest token for `send`, a read or admin token for
    /// `logs` and `tail`
    #[arg(
        long,
        env = "FAULTLINE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: String,
}

/// Which entries `logs` and `tail` want; the same query parameters for both.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Project name (a read token may only read its own project)
    #[arg(long, short = 'p', value_name = "NAME")]
    pub project: Option<String>,

    /// Only this service; repeat for several
    #[arg(long = "service", short = 's', value_name = "NAME")]
    pub services: Vec<String>,

    /// Minimum level: trace, debug, info, warn, error or critical
    #[arg(long, short = 'l', value_parser = parse_level)]
    pub level: Option<Level>,

    /// Only entries carrying this tag
    #[arg(long, short = 't', value_name = "TAG")]
    pub tag: Option<String>,

    /// Full-text query: every word must appear in the message
    #[arg(long = "query", short = 'q', value_name = "WORDS")]
    pub query: Option<String>,

    /// Entries at or after this time: RFC 3339, epoch seconds/ms, or a
    /// duration ago such as 15m, 2h, 7d
    #[arg(long, value_name = "TIME", value_parser = timearg::validate, allow_hyphen_values = true)]
    pub since: Option<String>,

    /// Entries before this time (same forms as --since)
    #[arg(long, value_name = "TIME", value_parser = timearg::validate, allow_hyphen_values = true)]
    pub until: Option<String>,
}

impl FilterArgs {
    /// The filter as query parameters, in the form the server documents.
    pub fn query_params(&self) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        if let Some(p) = &self.project {
            params.push(("project", p.clone()));
        }
        for s in &self.services {
            params.push(("service", s.clone()));
        }
        if let Some(l) = self.level {
            params.push(("level", l.as_str().to_string()));
        }
        if let Some(t) = &self.tag {
            params.push(("tag", t.clone()));
        }
        if let Some(q) = &self.query {
            params.push(("q", q.clone()));
        }
        if let Some(s) = &self.since {
            params.push(("since", s.clone()));
        }
        if let Some(u) = &self.until {
            params.push(("until", u.clone()));
        }
        params
    }
}

/// clap value parser for levels, with the model's aliases.
fn parse_level(s: &str) -> Result<Level, String> {
    s.parse::<Level>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: ClientCommand,
    }

    #[test]
    fn clap_definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn filter_flags_become_query_params() {
        let cli = Cli::try_parse_from([
            "faultline",
            "logs",
            "--token",
            "t",
            "-p",
            "shop",
            "-s",
            "api",
            "--service",
            "web",
            "-l",
            "WARNING",
            "-t",
            "db",
            "-q",
            "connection refused",
            "--since",
            "15m",
        ])
        .unwrap();
        let ClientCommand::Logs(args) = cli.cmd else {
            panic!("expected logs")
        };
        assert_eq!(
            args.filter.query_params(),
            vec![
                ("project", "shop".to_string()),
                ("service", "api".to_string()),
                ("service", "web".to_string()),
                ("level", "warn".to_string()),
                ("tag", "db".to_string()),
                ("q", "connection refused".to_string()),
                ("since", "15m".to_string()),
            ]
        );
    }

    #[test]
    fn bad_level_and_time_are_rejected_by_clap() {
        assert!(Cli::try_parse_from(["faultline", "logs", "--token", "t", "-l", "loud"]).is_err());
        assert!(
            Cli::try_parse_from(["faultline", "tail", "--token", "t", "--since", "yesterday"])
                .is_err()
        );
    }
}
