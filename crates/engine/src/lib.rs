//! relentless-engine: what Relentless does, on top of the pure core and the Store.
//!
//! - [`setup`]: team, users, tokens, the built-in plans and templates;
//! - [`leads`]: creating and merging leads, enrolling them, answers, activities, erasure;
//! - [`tasks`]: the agent's tasks and their outcomes;
//! - [`dispatch`]: the scheduler (claim → send → record), at most once;
//! - [`bus`]: live notifications; [`channels`]: where automatic touches go.

pub mod bus;
pub mod channels;
pub mod demo;
pub mod dispatch;
pub mod error;
mod groups;
pub mod import;
pub mod import_csv;
pub mod inbound;
pub mod inbound_email;
pub mod intake;
pub mod intake_email;
pub mod leads;
pub mod messages;
pub mod reports;
pub mod sessions;
pub mod setup;
pub mod tasks;
mod tracking;
pub mod videos;

pub use error::{Error, FieldError, Result};

use bus::Bus;
use channels::Channel;
use jiff::Timestamp;
use relentless_core::plan::Plan;
use relentless_core::schedule::{TeamRules, Window};
use relentless_store::{DynStore, Millis, Team, Tx};
use std::sync::Arc;
use tokio::sync::Notify;

/// Now, in epoch milliseconds.
pub fn now_ms() -> Millis {
    Timestamp::now().as_millisecond()
}

pub fn ts(ms: Millis) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Engine settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long a claimed touch may stay `sending` before it is declared `uncertain`.
    pub lease_ms: i64,
    /// Touches claimed per batch.
    pub batch: i64,
    /// How many leads one dispatcher has messages out for at once (`RELENTLESS_SEND_CONCURRENCY`).
    /// Twilio takes up to 100 concurrent requests per account (an SMTP relay fewer sessions:
    /// the SMTP channel has its own, lower limit); 16 keeps a batch of 500 texts to ~10 s at a
    /// provider's usual 0.3 s a message.
    pub send_concurrency: usize,
    /// Base of links in messages (tracking, unsubscribe, video pages, webhooks).
    pub public_url: String,
    /// The address emails are sent from: `From: "{agent name}" <email_from>`.
    pub email_from: String,
    /// When set, emails carry `Reply-To: r+{token}@{reply_domain}`; else the agent's address.
    pub reply_domain: Option<String>,
    /// The token the inbound-email webhook requires for replies.
    pub inbound_email_token: Option<String>,
    /// Verifies `X-Twilio-Signature` on Twilio webhooks; unset, they are refused.
    pub twilio_auth_token: Option<String>,
    /// Who confirms a STOP: the app (`true`, default) or Twilio's own opt-out handling.
    pub app_confirms_opt_out: bool,
    /// Uploaded videos live here.
    pub data_dir: std::path::PathBuf,
    /// Called at named points inside multi-row changes, with the transaction still open (see
    /// [`FaultHook`]). `None` in production.
    pub fault_hook: Option<FaultHook>,
    /// How long a report summary is served as is before it is computed again (in the
    /// background while the previous one is served; see [`reports`]).
    pub report_fresh: std::time::Duration,
}

/// A test seam: a function the engine calls at named points in the middle of a transaction
/// (`"create_lead:before_commit"`), so a test can make a real operation fail or panic there
/// and check that nothing half-written survives. Production configs never set one.
#[derive(Clone)]
pub struct FaultHook(pub Arc<dyn Fn(&'static str) + Send + Sync>);

impl std::fmt::Debug for FaultHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaultHook")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lease_ms: 60_000,
            batch: 500,
            send_concurrency: 16,
            public_url: "http://127.0.0.1:8080".into(),
            email_from: "relentless@localhost".into(),
            reply_domain: None,
            inbound_email_token: None,
            twilio_auth_token: None,
            app_confirms_opt_out: true,
            data_dir: "./relentless-data".into(),
            fault_hook: None,
            report_fresh: std::time::Duration::from_secs(60),
        }
    }
}

/// A whole number from the environment variable `name`, within `range`; `None` when unset or
/// blank, an error naming the variable when it is anything else.
fn env_number(name: &'static str, range: std::ops::RangeInclusive<i64>) -> Result<Option<i64>> {
    let Ok(v) = std::env::var(name) else {
        return Ok(None);
    };
    if v.trim().is_empty() {
        return Ok(None);
    }
    v.trim()
        .parse()
        .ok()
        .filter(|n| range.contains(n))
        .map(Some)
        .ok_or_else(|| {
            Error::field(
                name,
                format!(
                    "must be a whole number from {} to {}, not '{v}'",
                    range.start(),
                    range.end()
                ),
            )
        })
}

impl Config {
    /// The defaults, with the scheduler's scale settings from the environment:
    /// `RELENTLESS_BATCH` (touches claimed per batch, default 500) and
    /// `RELENTLESS_SEND_CONCURRENCY` (leads with messages out at once, default 16). An
    /// unreadable value is an error naming it.
    pub fn from_env() -> Result<Config> {
        let mut c = Config::default();
        c.batch = env_number("RELENTLESS_BATCH", 1..=100_000)?.unwrap_or(c.batch);
        c.send_concurrency = env_number("RELENTLESS_SEND_CONCURRENCY", 1..=1_000)?
            .map_or(c.send_concurrency, |n| n as usize);
        Ok(c)
    }

    /// Runs the fault hook, if any, at `point`.
    pub fn fault_point(&self, point: &'static str) {
        if let Some(h) = &self.fault_hook {
            (h.0)(point)
        }
    }

    /// The public URL without a trailing slash.
    pub fn base(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }
}

/// An unguessable token: 128 random bits as 32 hex characters.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// An email's tracking token (opens, clicks, unsubscribe, replies): the instant it was made, in
/// milliseconds as 12 hex digits, then [`random_token`]'s 128 random bits: 44 hex digits.
/// The time first puts the tokens of one dispatch batch next to each other in the index that
/// finds them, so storing them dirties a page or two instead of one random page per email
/// (the same reason UUIDv7 puts time first; BENCHMARKS.md 2026-12-07 measured the gain). The
/// random part alone keeps it unguessable. Tokens made before this format (32 digits) are
/// still looked up as they are.
pub fn tracking_token(now: Millis) -> String {
    format!("{:012x}{}", now.clamp(0, 0xffff_ffff_ffff), random_token())
}

/// The application: a store, a channel for automatic touches, the bus and the dispatcher's
/// wake-up signal. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub store: DynStore,
    pub bus: Bus,
    pub channel: Arc<dyn Channel>,
    pub config: Arc<Config>,
    /// Rung when a touch is created or changes, so the dispatcher re-reads the next due instant.
    pub wake: Arc<Notify>,
    /// Set once this engine hears other processes (see [`Engine::start_listening`]).
    listening: Arc<tokio::sync::OnceCell<bool>>,
    /// Set when the process is shutting down (see [`Engine::close`]).
    closing: Arc<tokio::sync::watch::Sender<bool>>,
    /// Report summaries computed off the request path (see [`reports`]).
    reports: Arc<reports::ReportCache>,
    /// Tracking hits and new leads, written in groups (see [`groups`]).
    hits: Arc<tracking::HitGroups>,
    new_leads: Arc<leads::LeadGroups>,
    /// Where work that holds the database's writer runs (see [`WriterThread`]); started
    /// with the first such work, on a single-writer database only.
    writer: Arc<std::sync::OnceLock<WriterThread>>,
    /// The runtime [`Engine::spawn_on_writer`] was called from: work the writer thread hands
    /// off so it runs beside it ([`Engine::spawn_beside_writer`]).
    main: Arc<std::sync::OnceLock<tokio::runtime::Handle>>,
}

/// A thread of its own for work done while holding the database's single writer (SQLite):
/// such a task is polled as soon as a statement returns, instead of waiting behind the
/// request tasks queued on the main runtime's workers while every other writer waits for it.
/// Measured under 32 connections creating leads: the writer was held ~1 ms per lead, half of
/// it with its thread idle, waiting for the task to be polled again.
struct WriterThread {
    handle: tokio::runtime::Handle,
    /// Dropped with the last engine: the thread's runtime then stops.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl WriterThread {
    fn start() -> WriterThread {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the writer thread");
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("relentless-writer".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                })
            })
            .expect("the writer thread");
        WriterThread {
            handle,
            _stop: stop,
        }
    }
}

impl Engine {
    pub fn new(store: DynStore, channel: Arc<dyn Channel>, config: Config) -> Engine {
        Engine {
            store,
            bus: Bus::new(),
            channel,
            config: Arc::new(config),
            wake: Arc::new(Notify::new()),
            listening: Arc::new(tokio::sync::OnceCell::new()),
            closing: Arc::new(tokio::sync::watch::channel(false).0),
            reports: Arc::default(),
            hits: Arc::new(tracking::hit_groups()),
            new_leads: Arc::new(leads::lead_groups()),
            writer: Arc::default(),
            main: Arc::default(),
        }
    }

    /// Says the process is shutting down: long-lived responses (notification streams) end,
    /// so a graceful shutdown does not wait for browsers to hang up.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Starts a task on the writer thread (the dispatcher and group writers: most of their
    /// time is spent holding the writer).
    /// PostgreSQL has no single writer: there such work stays on the main runtime.
    pub fn spawn_on_writer<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if self.store.single_writer() {
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                self.main.get_or_init(|| h);
            }
            self.writer
                .get_or_init(WriterThread::start)
                .handle
                .spawn(task)
        } else {
            tokio::spawn(task)
        }
    }

    /// Starts a task that runs beside the writer thread's work, not on it: on the runtime
    /// that started that work (its other threads), else on the current one. The dispatcher
    /// decides its next batch this way while the writer thread writes this one.
    pub(crate) fn spawn_beside_writer<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.main.get() {
            Some(h) => h.spawn(task),
            None => tokio::spawn(task),
        }
    }

    /// Resolves once [`Engine::close`] was called (at once if it already was).
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }

    /// Hears what other processes sharing the database do (PostgreSQL `LISTEN/NOTIFY`): their
    /// new or rescheduled touches wake this engine's dispatcher, and their notifications are
    /// published on this engine's bus, so an agent's stream held by this process sees an open
    /// tracked by another. Returns once listening (whatever commits after this is heard);
    /// `false` when the store has nothing to hear (SQLite). Idempotent: `serve` and `worker`
    /// call it through [`dispatch::Dispatcher::run`] and the web server.
    pub async fn start_listening(&self) -> Result<bool> {
        let on = self
            .listening
            .get_or_try_init(|| async {
                let Some(mut rx) = self.store.listen().await? else {
                    return Ok::<_, Error>(false);
                };
                // Holds the bus and the wake-up, not the engine: when the store goes, the
                // stream closes and this ends.
                let (bus, wake) = (self.bus.clone(), self.wake.clone());
                tokio::spawn(async move {
                    use tokio::sync::broadcast::error::RecvError;
                    loop {
                        match rx.recv().await {
                            Ok(relentless_store::Signal::Wake) => wake.notify_one(),
                            Ok(relentless_store::Signal::Notification(n)) => bus.publish(n),
                            Err(RecvError::Lagged(n)) => {
                                tracing::warn!(missed = n, "fell behind other processes' signals");
                                wake.notify_one();
                            }
                            Err(RecvError::Closed) => break,
                        }
                    }
                });
                Ok(true)
            })
            .await?;
        Ok(*on)
    }
}

/// The team's settings, parsed.
pub struct TeamCtx {
    pub team: Team,
    pub rules: TeamRules,
    pub tz: jiff::tz::TimeZone,
}

pub(crate) async fn team_ctx(tx: &mut dyn Tx) -> Result<TeamCtx> {
    let team = tx.team().await?.ok_or_else(|| {
        Error::Conflict("the team is not set up yet: run `relentless init`".into())
    })?;
    let rules = team_rules(&team)?;
    let tz = jiff::tz::TimeZone::get(&team.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    Ok(TeamCtx { team, rules, tz })
}

pub fn team_rules(team: &Team) -> Result<TeamRules> {
    let window: Window = serde_json::from_str(&team.sending_window)
        .map_err(|e| Error::Internal(format!("team window: {e}")))?;
    let state_windows = serde_json::from_str(&team.state_windows)
        .map_err(|e| Error::Internal(format!("team state windows: {e}")))?;
    let holidays = serde_json::from_str(&team.holidays)
        .map_err(|e| Error::Internal(format!("team holidays: {e}")))?;
    Ok(TeamRules {
        window,
        state_windows,
        holidays,
    })
}

pub(crate) async fn load_plan(tx: &mut dyn Tx, slug: &str) -> Result<(Plan, i64)> {
    let row = tx
        .plan(slug)
        .await?
        .ok_or_else(|| Error::field("plan", format!("there is no plan '{slug}'")))?;
    let plan = Plan::from_toml(&row.source)
        .map_err(|e| Error::Internal(format!("stored plan {slug}: {e}")))?;
    Ok((plan, row.version))
}

/// "text" → "Text", "video_view" → "Video view": timeline wording.
pub(crate) fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
        .replace('_', " ")
}

/// For the unit tests: an engine on a fresh SQLite file in `dir`, sending to the outbox, with
/// its team set up.
#[cfg(test)]
pub(crate) async fn test_engine(dir: &tempfile::TempDir, config: Config) -> Engine {
    let store = relentless_store::sqlite::SqliteStore::open(&format!(
        "sqlite://{}/test.db",
        dir.path().display()
    ))
    .await
    .unwrap();
    relentless_store::Store::migrate(&store).await.unwrap();
    let e = Engine::new(Arc::new(store), Arc::new(channels::outbox::Outbox), config);
    e.init(setup::InitInput {
        admin_email: "admin@example.com".into(),
        admin_password: None,
        team_name: None,
        address: Some("1 Main St, Austin, TX".into()),
    })
    .await
    .unwrap();
    e
}
