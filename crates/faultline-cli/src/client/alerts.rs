//! `faultline alerts`: alert rules and the notification dead-letter queue
//! of a running server (admin token for changes).

use super::ConnArgs;
use super::http::{self, Api};
use anyhow::Context;
use reqwest::Method;
use serde_json::Value;

/// Arguments of `faultline alerts`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  faultline alerts rules -p studio
  faultline alerts dlq
  faultline alerts retry 42")]
pub struct AlertsArgs {
    #[command(subcommand)]
    pub cmd: AlertsCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AlertsCommand {
    /// List a project's alert rules
    Rules {
        #[command(flatten)]
        conn: ConnArgs,
        #[arg(long, short = 'p', value_name = "NAME")]
        project: String,
    },
    /// Create a rule from a JSON file (see the README's Alerting section)
    AddRule {
        #[command(flatten)]
        conn: ConnArgs,
        #[arg(long, short = 'p', value_name = "NAME")]
        project: String,
        /// The rule as JSON ("-" for standard input)
        file: String,
    },
    /// Create or replace a channel from a JSON file
    SetChannel {
        #[command(flatten)]
        conn: ConnArgs,
        #[arg(long, short = 'p', value_name = "NAME")]
        project: String,
        /// Channel name, used by rules
        name: String,
        /// The channel as JSON ("-" for standard input)
        file: String,
    },
    /// Notifications whose every delivery attempt failed
    Dlq {
        #[command(flatten)]
        conn: ConnArgs,
        #[arg(long, short = 'p', value_name = "NAME")]
        project: Option<String>,
    },
    /// Put a dead-lettered notification back in line for delivery
    Retry {
        #[command(flatten)]
        conn: ConnArgs,
        id: i64,
    },
    /// Drop a dead-lettered notification
    Discard {
        #[command(flatten)]
        conn: ConnArgs,
        id: i64,
    },
}

fn read_json(file: &str) -> anyhow::Result<Value> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?
    };
    serde_json::from_str(&text).with_context(|| format!("{file} is not JSON"))
}

async fn call(api: &Api, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let mut req = api.request(method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = http::check(req.send().await.map_err(http::transport_error)?).await?;
    if resp.status() == reqwest::StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
    resp.json().await.context("the server's answer is not JSON")
}

fn print(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

impl AlertsCommand {
    fn conn(&self) -> &ConnArgs {
        match self {
            AlertsCommand::Rules { conn, .. }
            | AlertsCommand::AddRule { conn, .. }
            | AlertsCommand::SetChannel { conn, .. }
            | AlertsCommand::Dlq { conn, .. }
            | AlertsCommand::Retry { conn, .. }
            | AlertsCommand::Discard { conn, .. } => conn,
        }
    }
}

pub async fn run(args: AlertsArgs) -> anyhow::Result<()> {
    let api = Api::new(args.cmd.conn(), Some(std::time::Duration::from_secs(30)))?;
    match args.cmd {
        AlertsCommand::Rules { project, .. } => {
            let v = call(
                &api,
                Method::GET,
                &format!("/api/v1/projects/{project}/alert-rules"),
                None,
            )
            .await?;
            print(&v["rules"]);
        }
        AlertsCommand::AddRule { project, file, .. } => {
            let body = read_json(&file)?;
            let v = call(
                &api,
                Method::POST,
                &format!("/api/v1/projects/{project}/alert-rules"),
                Some(body),
            )
            .await?;
            println!("rule {} created", v["id"]);
        }
        AlertsCommand::SetChannel {
            project,
            name,
            file,
            ..
        } => {
            let body = read_json(&file)?;
            call(
                &api,
                Method::PUT,
                &format!("/api/v1/projects/{project}/alert-channels/{name}"),
                Some(body),
            )
            .await?;
            println!("channel {name} saved");
        }
        AlertsCommand::Dlq { project, .. } => {
            let mut path = "/api/v1/notifications?status=dead".to_string();
            if let Some(p) = project {
                path.push_str(&format!("&project={p}"));
            }
            let v = call(&api, Method::GET, &path, None).await?;
            let list = v["notifications"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("the dead-letter queue is empty");
            }
            for n in list {
                println!(
                    "{}\t{}\t{}\t{} attempts\t{}",
                    n["id"],
                    n["project"].as_str().unwrap_or(""),
                    n["channel"].as_str().unwrap_or(""),
                    n["attempts"],
                    n["last_error"].as_str().unwrap_or(""),
                );
            }
        }
        AlertsCommand::Retry { id, .. } => {
            call(
                &api,
                Method::POST,
                &format!("/api/v1/notifications/{id}/retry"),
                None,
            )
            .await?;
            println!("notification {id} queued for delivery");
        }
        AlertsCommand::Discard { id, .. } => {
            call(
                &api,
                Method::DELETE,
                &format!("/api/v1/notifications/{id}"),
                None,
            )
            .await?;
            println!("notification {id} discarded");
        }
    }
    Ok(())
}
