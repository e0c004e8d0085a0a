//! `relentless`: one binary for the web app, the API, webhooks and the scheduler.

mod import;

/// jemalloc for the whole process: with its unprefixed `malloc`/`free`, SQLite's page buffers
/// and sqlx's row values (allocated on a connection's thread, freed on the async side) go
/// through it too. Against glibc's allocator at 1,000,000 leads: −12 % CPU and +9 % fired
/// touches, +5–19 MB peak RSS (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{Args, Parser, Subcommand};
use relentless_engine::channels::Router;
use relentless_engine::channels::email::SmtpChannel;
use relentless_engine::channels::sms::{TwilioChannel, TwilioConfig};
use relentless_engine::dispatch::Dispatcher;
use relentless_engine::setup::{InitInput, UserInput};
use relentless_engine::{Config, Engine};
use relentless_store::DynStore;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "relentless",
    version,
    about = "Lead follow-up that never drops a lead"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options every server-side command shares.
#[derive(Args, Clone)]
struct Db {
    /// Database URL: sqlite://FILE (created on first start); also read from DATABASE_URL.
    /// Default: sqlite://relentless.db in the working directory.
    #[arg(long, global = true, env = "RELENTLESS_DATABASE_URL")]
    database_url: Option<String>,
    /// SMTP server for email, e.g. smtp://user:pass@host:587 (unset: emails go to the outbox).
    #[arg(
        long,
        global = true,
        env = "RELENTLESS_SMTP_URL",
        hide_env_values = true
    )]
    smtp_url: Option<String>,
    /// SMTP sessions open at once (what the relay allows one client; Exchange Online: 3).
    #[arg(
        long,
        global = true,
        env = "RELENTLESS_SMTP_SESSIONS",
        default_value_t = 3,
        value_parser = clap::value_parser!(u16).range(1..=100)
    )]
    smtp_sessions: u16,
    /// The From address of emails; the display name is the agent's.
    #[arg(
        long,
        global = true,
        env = "RELENTLESS_EMAIL_FROM",
        default_value = "relentless@localhost"
    )]
    email_from: String,
    /// Twilio account SID (with the auth token and from number: texts go through Twilio).
    #[arg(long, global = true, env = "RELENTLESS_TWILIO_ACCOUNT_SID")]
    twilio_account_sid: Option<String>,
    /// Twilio auth token: authenticates API calls and verifies webhook signatures.
    #[arg(
        long,
        global = true,
        env = "RELENTLESS_TWILIO_AUTH_TOKEN",
        hide_env_values = true
    )]
    twilio_auth_token: Option<String>,
    /// The Twilio number texts are sent from.
    #[arg(long, global = true, env = "RELENTLESS_TWILIO_FROM")]
    twilio_from: Option<String>,
    #[arg(
        long,
        global = true,
        env = "RELENTLESS_TWILIO_API_BASE",
        default_value = "https://api.twilio.com"
    )]
    twilio_api_base: String,
    /// Who confirms STOP: `app` (default) or `twilio` (Twilio's own opt-out replies).
    #[arg(long, global = true, env = "RELENTLESS_TWILIO_OPT_OUT", default_value = "app", value_parser = ["app", "twilio"])]
    twilio_opt_out: String,
    /// The token the inbound-email webhook requires for replies.
    #[arg(
        long,
        global = true,
        env = "RELENTLESS_INBOUND_EMAIL_TOKEN",
        hide_env_values = true
    )]
    inbound_email_token: Option<String>,
    /// When set, emails carry Reply-To: r+{token}@{domain} (routed back to the inbound webhook).
    #[arg(long, global = true, env = "RELENTLESS_REPLY_DOMAIN")]
    reply_domain: Option<String>,
    /// Base URL of links in messages and webhooks.
    #[arg(
        long,
        global = true,
        env = "RELENTLESS_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    public_url: String,
    /// Folder for uploaded videos.
    #[arg(
        long,
        global = true,
        env = "RELENTLESS_DATA_DIR",
        default_value = "./relentless-data"
    )]
    data_dir: String,
    /// Seconds a claimed touch may stay `sending` before it is declared `uncertain` (a running
    /// worker renews the lease until the outcome is recorded; this bounds a stopped one).
    #[arg(
        long,
        global = true,
        env = "RELENTLESS_SEND_LEASE_SECS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    send_lease_secs: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Web app, API, webhooks and scheduler in one process.
    Serve {
        #[arg(long, env = "RELENTLESS_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Fill an empty database with a demo team and leads in flight (messages go to the outbox).
        #[arg(long)]
        demo: bool,
        #[command(flatten)]
        db: Db,
    },
    /// The scheduler alone.
    Worker {
        #[command(flatten)]
        db: Db,
    },
    /// Create the team and first admin; prints an API token on the last line.
    Init {
        #[arg(long)]
        admin_email: String,
        #[arg(long)]
        admin_password: Option<String>,
        #[arg(long)]
        team_name: Option<String>,
        #[arg(long)]
        address: Option<String>,
        #[command(flatten)]
        db: Db,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
        #[command(flatten)]
        db: Db,
    },
    /// API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
        #[command(flatten)]
        db: Db,
    },
    /// Lead-intake webhooks.
    Intake {
        #[command(subcommand)]
        command: IntakeCommand,
        #[command(flatten)]
        db: Db,
    },
    /// Import leads from a CSV file.
    Import {
        file: String,
        /// Start this plan for every imported lead (none by default).
        #[arg(long)]
        plan: Option<String>,
        /// Check every row, write nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        db: Db,
    },
    /// Apply database migrations.
    Migrate {
        #[command(flatten)]
        db: Db,
    },
    /// Write a consistent copy of the database (safe while serving).
    Backup {
        file: String,
        #[command(flatten)]
        db: Db,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "agent")]
        role: String,
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        phone: Option<String>,
    },
    /// Set a password, read from standard input.
    Password {
        #[arg(long)]
        email: String,
    },
    Deactivate {
        #[arg(long)]
        email: String,
        #[arg(long)]
        reassign_to: Option<String>,
    },
}

#[derive(Subcommand)]
enum IntakeCommand {
    /// Create an intake; prints its webhook URL alone on the last line.
    Create {
        #[arg(long)]
        source: String,
        /// Run this plan instead of the level's plan (speed-to-lead always runs first).
        #[arg(long)]
        plan: Option<String>,
        /// Where a web form's visitor lands after posting.
        #[arg(long)]
        thank_you_url: Option<String>,
        /// Routing as JSON, e.g. '{"mode":"pond","agents":["a@x.com","b@x.com"],"claim_minutes":5}'.
        #[arg(long)]
        routing: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    Create {
        #[arg(long)]
        email: String,
    },
}

impl Db {
    fn url(&self) -> String {
        self.database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| "sqlite://relentless.db".into())
    }

    /// Texts and emails go to the configured providers; whatever is not configured (and
    /// everything in demo mode) goes to the built-in outbox.
    fn channels(&self, demo: bool) -> anyhow_lite::Result<Router> {
        let mut router = Router::outbox();
        if demo {
            return Ok(router);
        }
        if let Some(url) = &self.smtp_url {
            let smtp = SmtpChannel::from_url(url, &self.email_from)
                .map_err(|e| format!("RELENTLESS_SMTP_URL: {e}"))?
                .with_max_sessions(self.smtp_sessions.into());
            router.email = Arc::new(smtp);
        }
        match (&self.twilio_account_sid, &self.twilio_auth_token, &self.twilio_from) {
            (Some(sid), Some(token), Some(from)) => {
                let mut cfg = TwilioConfig::new(sid, token, from);
                cfg.api_base = self.twilio_api_base.clone();
                cfg.status_callback = Some(format!("{}/webhooks/twilio/status", self.public_url.trim_end_matches('/')));
                router.sms = Arc::new(TwilioChannel::try_new(cfg).map_err(|e| format!("Twilio client: {e}"))?);
            }
            (None, None, None) | (None, Some(_), None) => {}
            _ => return Err(anyhow_lite::msg("set all of RELENTLESS_TWILIO_ACCOUNT_SID, RELENTLESS_TWILIO_AUTH_TOKEN and RELENTLESS_TWILIO_FROM to send texts through Twilio".into())),
        }
        Ok(router)
    }
}

/// For an SQLite database that cannot be opened or migrated: says plainly when its file or
/// folder cannot be written (a read-only file system, a full disk, permissions).
fn why_not_writable(url: &str) -> String {
    let Some(path) = sqlite_file(url) else {
        return String::new();
    };
    let path = std::path::Path::new(path);
    let probe = if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(|_| ())
    } else {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let tmp = dir.join(".relentless-write-check");
        std::fs::write(&tmp, b"").and_then(|_| std::fs::remove_file(&tmp))
    };
    match probe {
        Ok(()) => String::new(),
        Err(e) if e.raw_os_error() == Some(30) => format!(
            "\nthe database is on a read-only file system ({}): nothing was changed",
            path.display()
        ),
        Err(e) => format!("\n{} cannot be written: {e}", path.display()),
    }
}

/// Logs what in the database server's setup will slow dispatching down (PostgreSQL with
/// autovacuum off, for one): the server still starts, but the operator hears why.
async fn warn_about_setup(engine: &Engine) {
    match engine.store.setup_warnings().await {
        Ok(warnings) => {
            for w in warnings {
                tracing::warn!("{w}");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read the database server's settings"),
    }
}

async fn open(db: &Db) -> anyhow_lite::Result<Engine> {
    open_with(db, false).await
}

async fn open_with(db: &Db, demo: bool) -> anyhow_lite::Result<Engine> {
    // sqlite://FILE or postgres://…, by the URL's scheme (pool size and timeouts: RELENTLESS_DB_*).
    let shown = relentless_store::display_url(&db.url());
    let store: DynStore = relentless_store::open(&db.url())
        .await
        .map_err(|e| match e {
            relentless_store::StoreError::Config(m) => m,
            e => format!(
                "cannot open the database {shown}: {e}{}",
                why_not_writable(&db.url())
            ),
        })?;
    store.migrate().await.map_err(|e| {
        format!(
            "cannot migrate the database {shown}: {e}{}",
            why_not_writable(&db.url())
        )
    })?;
    let config = Config {
        public_url: db.public_url.clone(),
        lease_ms: db.send_lease_secs as i64 * 1000,
        email_from: db.email_from.clone(),
        reply_domain: db.reply_domain.clone(),
        inbound_email_token: db.inbound_email_token.clone(),
        twilio_auth_token: db.twilio_auth_token.clone(),
        app_confirms_opt_out: db.twilio_opt_out == "app",
        data_dir: db.data_dir.clone().into(),
        ..Config::from_env().map_err(|e| describe(&e))?
    };
    Ok(Engine::new(store, Arc::new(db.channels(demo)?), config))
}

/// The file of a `sqlite:` URL (`sqlite://FILE`, `sqlite:FILE`, options after `?`); `None`
/// for an in-memory database.
fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Tiny error plumbing for the binary: every failure prints one clear line.
mod anyhow_lite {
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
    pub fn msg(s: String) -> Box<dyn std::error::Error + Send + Sync> {
        s.into()
    }
}

fn describe(e: &relentless_engine::Error) -> String {
    match e {
        relentless_engine::Error::Invalid(v) => v
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RELENTLESS_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> anyhow_lite::Result<ExitCode> {
    match cli.command {
        Command::Serve { listen, demo, db } => {
            let engine = open_with(&db, demo).await?;
            warn_about_setup(&engine).await;
            if demo && let Some(token) = engine.seed_demo().await.map_err(|e| describe(&e))? {
                println!(
                    "Demo data created. Sign in as admin@example.com / relentless-demo (agents sam@example.com, riley@example.com)."
                );
                println!("Admin API token: {token}");
            }
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            tracing::info!(listen = %listener.local_addr()?, database = %relentless_store::display_url(&db.url()), "relentless is serving");
            println!("Relentless is running at http://{}", listener.local_addr()?);
            engine.warm_reports();
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let dispatcher = Dispatcher::new(engine.clone());
            let mut rx = stop_rx.clone();
            let worker = engine.spawn_on_writer(dispatcher.run(async move {
                let _ = rx.wait_for(|s| *s).await;
            }));
            let state = relentless_web::AppState::new(engine);
            relentless_web::launch_with_tcp_listener(listener, state, async move {
                shutdown_signal().await;
                let _ = stop_tx.send(true);
            })
            .await?;
            let _ = worker.await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker { db } => {
            let engine = open(&db).await?;
            warn_about_setup(&engine).await;
            tracing::info!(database = %relentless_store::display_url(&db.url()), "relentless worker dispatching");
            let dispatcher = Dispatcher::new(engine.clone());
            engine
                .spawn_on_writer(dispatcher.run(shutdown_signal()))
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Init {
            admin_email,
            admin_password,
            team_name,
            address,
            db,
        } => {
            let engine = open(&db).await?;
            let (user, token) = engine
                .init(InitInput {
                    admin_email,
                    admin_password,
                    team_name,
                    address,
                })
                .await
                .map_err(|e| describe(&e))?;
            if user.role != relentless_core::types::Role::Admin {
                eprintln!(
                    "note: {} already exists as {}; init leaves existing users as they are",
                    user.email, user.role
                );
            }
            println!("Team ready; {} ({}). API token:", user.email, user.role);
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::User { command, db } => {
            let engine = open(&db).await?;
            match command {
                UserCommand::Add {
                    email,
                    name,
                    role,
                    password,
                    phone,
                } => {
                    let role =
                        role.parse()
                            .map_err(|e: relentless_core::types::UnknownVariant| {
                                format!("role: {e}")
                            })?;
                    let u = engine
                        .add_user(UserInput {
                            email: Some(email),
                            name: Some(name),
                            phone,
                            role: Some(role),
                            password,
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| describe(&e))?;
                    println!("Added {} ({}), id {}", u.email, u.role, u.id);
                }
                UserCommand::Password { email } => {
                    let mut line = String::new();
                    eprintln!("New password for {email}:");
                    std::io::stdin().read_line(&mut line)?;
                    engine
                        .set_password(&email, line.trim_end_matches(['\r', '\n']).to_string())
                        .await
                        .map_err(|e| describe(&e))?;
                    println!("Password changed for {email}");
                }
                UserCommand::Deactivate { email, reassign_to } => {
                    let mut tx = engine.store.read().await?;
                    let users = tx.users().await?;
                    drop(tx);
                    let u = users
                        .iter()
                        .find(|u| u.email.eq_ignore_ascii_case(&email))
                        .ok_or_else(|| format!("email: no user has the email {email}"))?;
                    let admin = users
                        .iter()
                        .find(|a| {
                            a.active
                                && a.role == relentless_core::types::Role::Admin
                                && a.id != u.id
                        })
                        .ok_or("no other active admin to take the leads")?;
                    let (_, leads, tasks) = engine
                        .deactivate_user(u.id, reassign_to.as_deref(), admin)
                        .await
                        .map_err(|e| describe(&e))?;
                    println!("Deactivated {email}; moved {leads} leads and {tasks} open tasks");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            command: TokenCommand::Create { email },
            db,
        } => {
            let engine = open(&db).await?;
            let token = engine
                .create_token(&email)
                .await
                .map_err(|e| describe(&e))?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Intake {
            command:
                IntakeCommand::Create {
                    source,
                    plan,
                    thank_you_url,
                    routing,
                },
            db,
        } => {
            let engine = open(&db).await?;
            let routing = match routing {
                Some(r) => serde_json::from_str(&r).map_err(|e| format!("routing: {e}"))?,
                None => relentless_engine::intake::Routing::default(),
            };
            let i = engine
                .create_intake(relentless_engine::intake::NewIntake {
                    source,
                    plan,
                    routing,
                    thank_you_url,
                })
                .await
                .map_err(|e| describe(&e))?;
            println!(
                "Intake for source '{}' created. Post leads (JSON or a web form) to:",
                i.source
            );
            println!("{}", engine.intake_url(&i.token));
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            file,
            plan,
            dry_run,
            db,
        } => {
            let engine = open(&db).await?;
            import::run(&engine, &file, plan.as_deref(), dry_run).await
        }
        Command::Migrate { db } => {
            let engine = open(&db).await?;
            warn_about_setup(&engine).await;
            println!("Database is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { file, db } => {
            // Backing up a mistyped URL would create an empty database and copy that.
            if let Some(path) = sqlite_file(&db.url())
                && !std::path::Path::new(path).exists()
            {
                return Err(format!(
                        "there is no database at {path} (check --database-url / RELENTLESS_DATABASE_URL)"
                    )
                    .into());
            }
            if std::path::Path::new(&file).exists() {
                return Err(
                    format!("{file} already exists; a backup never overwrites a file").into(),
                );
            }
            let engine = open(&db).await?;
            engine.store.backup(&file).await?;
            println!("Backup written to {file}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
