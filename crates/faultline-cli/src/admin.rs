//! Commands that work on a data directory directly (no server needed, and
//! safe while the server runs: SQLite in WAL mode takes concurrent writers).

use anyhow::{Context, bail};
use clap::Subcommand;
use faultline_model::{TokenKind, format_rfc3339_micros, now_micros};
use faultline_store::Store;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct DataDir {
    /// Data directory of the server [default: ./faultline-data].
    #[arg(long, env = "FAULTLINE_DATA_DIR", default_value = "./faultline-data")]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create a token and print only the token on stdout.
    Create {
        #[command(flatten)]
        dir: DataDir,
        /// An admin token (full access).
        #[arg(long, conflicts_with_all = ["service", "read"])]
        admin: bool,
        /// A read-only token for the project.
        #[arg(long, requires = "project", conflicts_with = "service")]
        read: bool,
        /// Project (created if needed).
        #[arg(long)]
        project: Option<String>,
        /// Service (created if needed): makes an ingest token.
        #[arg(long, requires = "project")]
        service: Option<String>,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        project: Option<String>,
    },
    /// Revoke a token by id.
    Revoke {
        #[command(flatten)]
        dir: DataDir,
        id: i64,
    },
}

#[derive(Subcommand)]
pub enum ProjectCmd {
    /// Create a project (no error if it exists).
    Create {
        #[command(flatten)]
        dir: DataDir,
        name: String,
    },
    /// List projects and their services.
    List {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Add a service to a project (creating the project if needed).
    AddService {
        #[command(flatten)]
        dir: DataDir,
        project: String,
        service: String,
    },
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a web UI user; the password is read from standard input (one
    /// line), e.g. `echo "$PASSWORD" | faultline user create ana`.
    Create {
        #[command(flatten)]
        dir: DataDir,
        username: String,
    },
    /// List users.
    List {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Set a user's password (read from standard input); ends their sessions.
    SetPassword {
        #[command(flatten)]
        dir: DataDir,
        username: String,
    },
    /// Delete a user (and their sessions).
    Delete {
        #[command(flatten)]
        dir: DataDir,
        username: String,
    },
}

/// The first line of standard input, checked as a new password.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    faultline_server::session::check_password(&password)
        .map_err(|e| anyhow::anyhow!("{e} (read from standard input)"))?;
    Ok(password)
}

fn hash(password: &str) -> anyhow::Result<String> {
    faultline_server::session::hash_password(password).map_err(|e| anyhow::anyhow!(e))
}

fn user_id(store: &dyn Store, username: &str) -> anyhow::Result<i64> {
    match store.find_user(username)? {
        Some((u, _)) => Ok(u.id),
        None => bail!("no user named {username:?}"),
    }
}

pub fn user(cmd: UserCmd) -> anyhow::Result<()> {
    match cmd {
        UserCmd::Create { dir, username } => {
            faultline_server::session::check_username(&username).map_err(|e| anyhow::anyhow!(e))?;
            let password = read_password()?;
            let store = open(&dir.data_dir)?;
            let u = store.create_user(&username, &hash(&password)?, now_micros())?;
            eprintln!("created user {} (id {})", u.username, u.id);
        }
        UserCmd::List { dir } => {
            let store = open(&dir.data_dir)?;
            println!("{:>5}  {:<24}  {:<27}  LAST LOGIN", "ID", "USER", "CREATED");
            for u in store.list_users()? {
                let login = u
                    .last_login
                    .map(format_rfc3339_micros)
                    .unwrap_or_else(|| "never".into());
                println!(
                    "{:>5}  {:<24}  {:<27}  {login}",
                    u.id,
                    u.username,
                    format_rfc3339_micros(u.created_at)
                );
            }
        }
        UserCmd::SetPassword { dir, username } => {
            let password = read_password()?;
            let store = open(&dir.data_dir)?;
            let id = user_id(store.as_ref(), &username)?;
            store.set_user_password(id, &hash(&password)?)?;
            eprintln!("password of {username} changed; their sessions ended");
        }
        UserCmd::Delete { dir, username } => {
            let store = open(&dir.data_dir)?;
            let id = user_id(store.as_ref(), &username)?;
            store.delete_user(id)?;
            eprintln!("deleted user {username}");
        }
    }
    Ok(())
}

fn open(dir: &Path) -> anyhow::Result<Box<dyn Store>> {
    if !dir.join(faultline_server::DB_FILE).exists() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    }
    Ok(Box::new(faultline_server::open_store(dir, None)?))
}

fn check_name(what: &str, name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.len() > 128 || name.chars().any(|c| c.is_control() || c == '/') {
        bail!("{what} names must be 1-128 bytes without control characters or '/'");
    }
    Ok(())
}

pub fn token(cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Create {
            dir,
            admin,
            read,
            project,
            service,
        } => {
            let kind = match (admin, read, project, service) {
                (true, false, None, None) => TokenKind::Admin,
                (false, true, Some(project), None) => TokenKind::Read { project },
                (false, false, Some(project), Some(service)) => {
                    TokenKind::Ingest { project, service }
                }
                _ => bail!(
                    "say what the token is for: --admin, --read --project P, or --project P --service S"
                ),
            };
            if let TokenKind::Read { project } | TokenKind::Ingest { project, .. } = &kind {
                check_name("project", project)?;
            }
            if let TokenKind::Ingest { service, .. } = &kind {
                check_name("service", service)?;
            }
            let store = open(&dir.data_dir)?;
            let (token, _) = faultline_server::auth::create_token(store.as_ref(), &kind)?;
            println!("{token}");
        }
        TokenCmd::List { dir, project } => {
            let store = open(&dir.data_dir)?;
            println!(
                "{:>5}  {:<7}  {:<10}  {:<30}  {:<27}  STATUS",
                "ID", "KIND", "PREFIX", "SCOPE", "LAST USED"
            );
            for t in store.list_tokens(project.as_deref())? {
                let (kind, scope) = match &t.kind {
                    TokenKind::Admin => ("admin", "*".to_string()),
                    TokenKind::Read { project } => ("read", project.clone()),
                    TokenKind::Ingest { project, service } => {
                        ("ingest", format!("{project}/{service}"))
                    }
                };
                let used = t
                    .last_used
                    .map(format_rfc3339_micros)
                    .unwrap_or_else(|| "never".into());
                let status = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:>5}  {:<7}  {:<10}  {:<30}  {:<27}  {status}",
                    t.id, kind, t.prefix, scope, used
                );
            }
        }
        TokenCmd::Revoke { dir, id } => {
            let store = open(&dir.data_dir)?;
            let t = store.revoke_token(id, now_micros())?;
            eprintln!("revoked token {} ({}…)", t.id, t.prefix);
        }
    }
    Ok(())
}

pub fn project(cmd: ProjectCmd) -> anyhow::Result<()> {
    match cmd {
        ProjectCmd::Create { dir, name } => {
            check_name("project", &name)?;
            let p = open(&dir.data_dir)?.ensure_project(&name)?;
            println!("{}", p.name);
        }
        ProjectCmd::List { dir } => {
            let store = open(&dir.data_dir)?;
            let services = store.list_services(None)?;
            for p in store.list_projects()? {
                println!("{}", p.name);
                for s in services.iter().filter(|s| s.project == p.name) {
                    let seen = s
                        .last_seen
                        .map(format_rfc3339_micros)
                        .unwrap_or_else(|| "never".into());
                    println!(
                        "  {:<30} {:>10} entries  {:>8} errors  last seen {seen}",
                        s.name, s.count, s.error_count
                    );
                }
            }
        }
        ProjectCmd::AddService {
            dir,
            project,
            service,
        } => {
            check_name("project", &project)?;
            check_name("service", &service)?;
            let s = open(&dir.data_dir)?.ensure_service(&project, &service)?;
            println!("{}/{}", s.project, s.name);
        }
    }
    Ok(())
}
