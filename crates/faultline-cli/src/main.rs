//! The `faultline` command: runs the server, manages projects and tokens in a
//! data directory, and talks to a running server (send, logs, tail).

mod admin;
mod client;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "faultline",
    version,
    about = "Self-hosted error and log observability"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the central server (embedded SQLite store, in-process bus).
    Server(ServerArgs),
    /// Create, list and revoke API tokens (works while the server runs).
    Token {
        #[command(subcommand)]
        cmd: admin::TokenCmd,
    },
    /// Create and list projects and services.
    Project {
        #[command(subcommand)]
        cmd: admin::ProjectCmd,
    },
    /// Create, list and delete web UI users; set passwords (works while
    /// the server runs).
    User {
        #[command(subcommand)]
        cmd: admin::UserCmd,
    },
    /// Group messages (one per line) as the server does: prints
    /// `<group id>\t<template>` for each input line.
    Group(GroupArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
}

#[derive(clap::Args)]
struct GroupArgs {
    /// File of messages, one per line [default: standard input].
    file: Option<PathBuf>,
    /// Print each line's group as soon as it is read. Ids printed before two
    /// groups merge are then not rewritten (the default reads everything
    /// first and prints final ids).
    #[arg(long)]
    streaming: bool,
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Address to listen on [default: 127.0.0.1:8470].
    #[arg(long, env = "FAULTLINE_LISTEN")]
    listen: Option<String>,
    /// Data directory [default: ./faultline-data].
    #[arg(long, env = "FAULTLINE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file (flags and environment override it).
    #[arg(long, env = "FAULTLINE_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    faultline_server::install_tls_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => run_server(args),
        Command::Token { cmd } => admin::token(cmd),
        Command::Project { cmd } => admin::project(cmd),
        Command::User { cmd } => admin::user(cmd),
        Command::Group(args) => group(args),
        Command::Client(cmd) => runtime().and_then(|rt| rt.block_on(client::run(cmd))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn group(args: GroupArgs) -> anyhow::Result<()> {
    use faultline_grouping::GrouperConfig;
    use faultline_grouping::cli::{group_lines, group_lines_streaming};
    use std::io::{BufReader, BufWriter, Read};
    let input: Box<dyn Read> = match &args.file {
        Some(path) => Box::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        ),
        None => Box::new(std::io::stdin().lock()),
    };
    let reader = BufReader::with_capacity(1 << 16, input);
    let writer = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let config = GrouperConfig::default();
    let result = if args.streaming {
        group_lines_streaming(reader, writer, &config)
    } else {
        group_lines(reader, writer, &config)
    };
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("grouping failed"),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Request decoding and store reads run on the blocking pool: a
        // thread idle for 2 s ends (tokio's default is 10 s), so after a
        // burst the server soon drops the stacks and allocator caches of
        // the threads it no longer needs.
        .thread_keep_alive(std::time::Duration::from_secs(2))
        .build()
        .context("cannot start the async runtime")
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FAULTLINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    let mut raw = match &args.config {
        Some(path) => faultline_server::RawConfig::from_file(path)?,
        None => faultline_server::RawConfig::default(),
    };
    if let Some(l) = args.listen {
        raw.listen = Some(l);
    }
    if let Some(d) = args.data_dir {
        raw.data_dir = Some(d);
    }
    let config = raw.validate()?;
    init_logging();
    let data_dir = config.data_dir.clone();
    runtime()?.block_on(async move {
        faultline_server::run(config, shutdown_signal(), |addr, admin| {
            eprintln!("faultline listening on http://{addr}");
            eprintln!("web UI: open http://{addr}/ (the first visit creates the administrator with the admin token)");
            eprintln!("data directory: {}", data_dir.display());
            match admin {
                Some(token) => {
                    eprintln!("first run: admin token (shown only now, keep it safe):");
                    eprintln!("  {token}");
                }
                None => eprintln!(
                    "admin token: create one with `faultline token create --data-dir {} --admin`",
                    data_dir.display()
                ),
            }
            eprintln!(
                "ingest token: `faultline token create --data-dir {} --project P --service S`",
                data_dir.display()
            );
        })
        .await
    })?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
