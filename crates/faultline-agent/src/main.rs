//! The `faultline-agent` command: `run`, `check`, `install`, `uninstall`,
//! `bench`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use faultline_agent::config::{self, AgentConfig, Overrides, RawConfig};
use faultline_agent::{agent, install, platform};

mod bench;

/// Exit code of a second instance (the systemd unit does not restart it).
const EXIT_ALREADY_RUNNING: u8 = 3;
/// Exit code of a bad configuration.
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "faultline-agent",
    version,
    about = "Turns errors in local logs into faultline incidents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Watch the logs and deliver incidents (runs until killed).
    Run(Common),
    /// Validate the configuration and print what would be watched.
    Check(Common),
    /// Run the agent at login (systemd user unit / launchd agent).
    Install(Common),
    /// Remove what `install` set up.
    Uninstall,
    /// Measure the agent (catch-up scan against grep, idle cost).
    Bench(bench::BenchArgs),
}

#[derive(Args, Clone, Default)]
struct Common {
    /// faultline server URL (http://host:port).
    #[arg(long, env = "FAULTLINE_SERVER")]
    server: Option<String>,
    /// Ingest token.
    #[arg(long, env = "FAULTLINE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// State directory (lock, checkpoints, spool).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Watch files matching GLOB (repeatable; adds a source).
    #[arg(long = "watch", value_name = "GLOB")]
    watch: Vec<String>,
}

enum Failure {
    Config(String),
    Running(String),
    Other(anyhow::Error),
}

fn load(c: &Common) -> Result<AgentConfig, Failure> {
    let raw = match &c.config {
        Some(p) => config::load_file(p).map_err(|e| Failure::Config(e.to_string()))?,
        None => RawConfig::default(),
    };
    AgentConfig::build(
        raw,
        Overrides {
            server: c.server.clone(),
            token: c.token.clone(),
            state_dir: c.state_dir.clone(),
            watch: c.watch.clone(),
        },
        &platform::process_env,
    )
    .map_err(|e| Failure::Config(e.to_string()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("FAULTLINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let result = match cli.command {
        Command::Run(c) => load(&c).and_then(|cfg| {
            agent::run(cfg).map_err(|e| match e {
                agent::AgentError::Lock(l @ faultline_agent::lock::LockError::Held { .. }) => {
                    Failure::Running(l.to_string())
                }
                other => Failure::Other(other.into()),
            })
        }),
        Command::Check(c) => load(&c).map(|cfg| print!("{}", agent::describe(&cfg))),
        Command::Install(c) => load(&c).and_then(|_| {
            let exe = std::env::current_exe()
                .context("cannot find the agent binary")
                .map_err(Failure::Other)?;
            let spec = install::ServiceSpec {
                exe,
                config: c.config.as_deref().map(config::absolute_path),
                // The service starts elsewhere: paths given relative to
                // here are made absolute.
                state_dir: c.state_dir.as_deref().map(config::absolute_path),
                server: c.server.clone(),
                token: c.token.clone(),
                watch: match std::env::current_dir() {
                    Ok(here) => c
                        .watch
                        .iter()
                        .map(|g| config::absolute_glob(&here, None, g, true))
                        .collect(),
                    Err(_) => c.watch.clone(),
                },
            };
            install::install(&spec, &platform::process_env)
                .map(|m| println!("{m}"))
                .map_err(|e| Failure::Other(e.into()))
        }),
        Command::Uninstall => install::uninstall(&platform::process_env)
            .map(|m| println!("{m}"))
            .map_err(|e| Failure::Other(e.into())),
        Command::Bench(args) => bench::run(args).map_err(Failure::Other),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(m)) => {
            eprintln!("error: invalid configuration: {m}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(Failure::Running(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(EXIT_ALREADY_RUNNING)
        }
        Err(Failure::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
