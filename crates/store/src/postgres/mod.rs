//! The PostgreSQL backend: the same [`Store`] and [`Tx`] as `sqlite/`, for several `relentless`
//! processes (web servers and scheduler workers) sharing one database.
//!
//! - **Writers.** As on SQLite, write transactions are serialised *per process* (the engine
//!   was written against that contract); across processes PostgreSQL's row locks do the work.
//!   Inside a write transaction `lead`, `lead_match` and `task` lock the rows they return
//!   (`FOR UPDATE`), and `lead_match` also takes an advisory lock per external id, email and
//!   phone, so two processes receiving the same new lead at once make one lead, not two.
//!   Readers get a consistent snapshot (`REPEATABLE READ READ ONLY`).
//! - **Dispatch.** `claim_due` marks due touches `sending` with `FOR UPDATE SKIP LOCKED`, so
//!   workers never wait for each other and never share a touch; leases as on SQLite.
//! - **Across processes.** A transaction that creates or reschedules touches issues
//!   `NOTIFY relentless_wake`, and `notification_insert` issues
//!   `NOTIFY relentless_events, '{origin}:{id}'`; both are delivered at commit. [`Store::listen`]
//!   turns them into [`Signal`]s for the engine, skipping this store's own (`origin`).
//! - **Errors.** Unique violations are [`StoreError::Conflict`] naming the field, as on SQLite;
//!   deadlocks, serialization failures and statement timeouts are [`StoreError::Busy`].

mod listen;
pub mod testing;

use crate::*;
use async_trait::async_trait;
use relentless_core::types::{EnrollmentState, TaskStatus, TouchStatus};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, QueryBuilder, Transaction};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Builds SQL from trusted pieces (column lists); values are always bound.
macro_rules! sql {
    ($($t:tt)*) => { sqlx::AssertSqlSafe(format!($($t)*)) };
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel that wakes dispatchers in every process.
pub const WAKE_CHANNEL: &str = "relentless_wake";
/// The channel that carries `{origin}:{notification id}` to every process.
pub const EVENTS_CHANNEL: &str = "relentless_events";

/// Connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Connections in this process's pool (`RELENTLESS_DB_POOL`, default 10). Writers use one
    /// at a time; the rest serve reads.
    pub pool_size: u32,
    /// Longest a statement may run before PostgreSQL cancels it
    /// (`RELENTLESS_DB_STATEMENT_TIMEOUT_SECS`, default 30; 0 = no limit). Migrations are exempt.
    pub statement_timeout: Duration,
    /// Longest a transaction may sit idle holding locks (a hung process) before PostgreSQL
    /// ends its session (`RELENTLESS_DB_IDLE_TX_TIMEOUT_SECS`, default 120; 0 = no limit).
    pub idle_in_transaction_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            pool_size: 10,
            statement_timeout: Duration::from_secs(30),
            idle_in_transaction_timeout: Duration::from_secs(120),
        }
    }
}

impl Settings {
    /// Defaults overridden by `RELENTLESS_DB_POOL`, `RELENTLESS_DB_STATEMENT_TIMEOUT_SECS` and
    /// `RELENTLESS_DB_IDLE_TX_TIMEOUT_SECS`; a value that is not a number is an error naming it.
    pub fn from_env() -> Result<Settings> {
        fn var(name: &str) -> Result<Option<u64>> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => v.trim().parse().map(Some).map_err(|_| {
                    StoreError::Config(format!("{name} must be a whole number, not '{v}'"))
                }),
                _ => Ok(None),
            }
        }
        let mut s = Settings::default();
        if let Some(n) = var("RELENTLESS_DB_POOL")? {
            if n == 0 || n > 10_000 {
                return Err(StoreError::Config(format!(
                    "RELENTLESS_DB_POOL must be between 1 and 10000, not {n}"
                )));
            }
            s.pool_size = n as u32;
        }
        if let Some(n) = var("RELENTLESS_DB_STATEMENT_TIMEOUT_SECS")? {
            s.statement_timeout = Duration::from_secs(n);
        }
        if let Some(n) = var("RELENTLESS_DB_IDLE_TX_TIMEOUT_SECS")? {
            s.idle_in_transaction_timeout = Duration::from_secs(n);
        }
        Ok(s)
    }
}

pub struct PostgresStore {
    pool: PgPool,
    url: String,
    /// This store's name in NOTIFY payloads, so it can skip its own (unique per process and
    /// per store: several stores in one test process are several "processes").
    origin: String,
    writer: std::sync::Arc<Mutex<()>>,
    listener: Mutex<Option<listen::Listener>>,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`)
    /// with a pool of `pool_size` connections and the default timeouts.
    pub async fn open(url: &str, pool_size: u32) -> Result<PostgresStore> {
        Self::open_with(
            url,
            &Settings {
                pool_size,
                ..Settings::default()
            },
        )
        .await
    }

    pub async fn open_with(url: &str, settings: &Settings) -> Result<PostgresStore> {
        let opts = PgConnectOptions::from_str(url)?.application_name("relentless");
        // Fail at once when the server is not there (the pool would retry for its whole
        // acquire timeout): a mistyped URL is one clear line, not a 30 s wait.
        sqlx::Connection::close(
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&opts).await?,
        )
        .await?;
        let statement_ms = settings.statement_timeout.as_millis().to_string();
        let idle_ms = settings.idle_in_transaction_timeout.as_millis().to_string();
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                let (statement_ms, idle_ms) = (statement_ms.clone(), idle_ms.clone());
                Box::pin(async move {
                    sqlx::query(
                        "SELECT set_config('statement_timeout', $1, false), set_config('idle_in_transaction_session_timeout', $2, false)",
                    )
                    .bind(statement_ms)
                    .bind(idle_ms)
                    .execute(conn)
                    .await?;
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        Ok(PostgresStore {
            pool,
            url: url.to_string(),
            origin: format!("{}-{:08x}", std::process::id(), rand::random::<u32>()),
            writer: std::sync::Arc::new(Mutex::new(())),
            listener: Mutex::new(None),
        })
    }

    /// The URL this store was opened with.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The pool, for tests and tools that inspect the database directly.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(l) = self.listener.get_mut().take() {
            l.stop();
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn write(&self) -> Result<Box<dyn Tx>> {
        let guard = tokio::time::timeout(Duration::from_secs(30), self.writer.clone().lock_owned())
            .await
            .map_err(|_| StoreError::Busy)?;
        let tx = self.pool.begin().await?;
        Ok(Box::new(PgTx {
            tx,
            write: true,
            origin: self.origin.clone(),
            _writer: Some(guard),
        }))
    }

    async fn renew_lease(&self, ids: &[i64], worker: &str, lease_until: Millis) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        // One statement on the pool, not through `write`: this process's writes take turns,
        // and the batch's own record may be among them, waiting for its leads' row locks.
        // Rows the record has locked already (touches it released) are skipped, not waited
        // for: waiting, the renewal could hold the rows it had renewed and deadlock with the
        // record, or renew nothing until the record is done. Another worker cannot expire a
        // row the record holds either: it waits for it and then finds it settled.
        let r = sqlx::query(
            "UPDATE touches SET lease_until = $1 WHERE id IN (
               SELECT id FROM touches WHERE id = ANY($2) AND status = 'sending' AND claimed_by = $3
               FOR UPDATE SKIP LOCKED)",
        )
        .bind(lease_until)
        .bind(ids)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }
    async fn read(&self) -> Result<Box<dyn Tx>> {
        let tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        Ok(Box::new(PgTx {
            tx,
            write: false,
            origin: self.origin.clone(),
            _writer: None,
        }))
    }

    async fn migrate(&self) -> Result<()> {
        // Its own connection without the statement timeout: an index on a big table may take
        // a while. The migrator holds an advisory lock, so processes starting together are safe.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(
                PgConnectOptions::from_str(&self.url)?.application_name("relentless migrate"),
            )
            .await?;
        let r = MIGRATOR.run(&pool).await;
        pool.close().await;
        r?;
        Ok(())
    }

    async fn backup(&self, path: &str) -> Result<()> {
        // pg_dump takes a consistent snapshot while others carry on; custom format, for
        // pg_restore.
        if std::path::Path::new(path).exists() {
            return Err(StoreError::Conflict(format!("backup file {path}")));
        }
        let out = tokio::process::Command::new("pg_dump")
            .arg("--format=custom")
            .arg("--file")
            .arg(path)
            .arg("--dbname")
            .arg(&self.url)
            .output()
            .await
            .map_err(|e| {
                StoreError::Config(format!(
                    "a PostgreSQL backup needs pg_dump on the PATH ({e}); or use your provider's backups"
                ))
            })?;
        if !out.status.success() {
            let _ = std::fs::remove_file(path);
            return Err(StoreError::Config(format!(
                "pg_dump failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn setup_warnings(&self) -> Result<Vec<String>> {
        // (`::bool` lets PostgreSQL read its own spellings: `off`, `of`, `fa`, `0`, …)
        let (autovacuum, track_counts): (bool, bool) = sqlx::query_as(
            "SELECT current_setting('autovacuum')::bool, current_setting('track_counts')::bool",
        )
        .fetch_one(&self.pool)
        .await?;
        // This schema's tables with autovacuum turned off for them (`ALTER TABLE … SET
        // (autovacuum_enabled = false)`), the schema read by name: `current_schema()::
        // regnamespace` would fold a quoted name's case.
        let tables_off: Vec<String> = match sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             CROSS JOIN LATERAL pg_options_to_table(c.reloptions) o
             WHERE n.nspname = current_schema() AND c.relkind = 'r'
               AND o.option_name = 'autovacuum_enabled' AND NOT o.option_value::bool
             ORDER BY c.relname",
        )
        .fetch_all(&self.pool)
        .await
        {
            Ok(t) => t,
            // The server's own settings are still worth saying.
            Err(e) => {
                tracing::warn!(error = %e, "could not read the tables' autovacuum settings");
                Vec::new()
            }
        };
        Ok(crate::vacuum_warnings(
            autovacuum,
            track_counts,
            &tables_off,
        ))
    }

    async fn listen(&self) -> Result<Option<tokio::sync::broadcast::Receiver<Signal>>> {
        let mut guard = self.listener.lock().await;
        if let Some(l) = guard.as_ref() {
            return Ok(Some(l.subscribe()));
        }
        let l = listen::Listener::start(&self.url, self.pool.clone(), self.origin.clone()).await?;
        let rx = l.subscribe();
        *guard = Some(l);
        Ok(Some(rx))
    }
}

struct PgTx {
    tx: Transaction<'static, Postgres>,
    /// A write transaction: reads that precede a write lock their rows.
    write: bool,
    origin: String,
    /// Held until commit or drop: one writer per process, as on SQLite.
    _writer: Option<OwnedMutexGuard<()>>,
}

fn map_unique(e: sqlx::Error, field: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return StoreError::Conflict(field.to_string());
    }
    StoreError::from(e)
}

/// A lead's columns, from `leads l`. Its next touch is worked out here, not read from the row:
/// `leads.next_touch_at` is only a lower bound of it (see `Tx::leads_refresh_next`), so that
/// firing a touch does not rewrite its lead's row for it. The search starts at that bound in
/// `touches_lead` (`FILTER`, as in `leads_refresh_next`, keeps the planner on that index).
const LEAD_COLS: &str = lead_cols!(
    "(SELECT MIN(t.due_at) FILTER (WHERE t.status = 'scheduled') FROM touches t \
      WHERE t.lead_id = l.id AND t.due_at >= l.next_touch_at)"
);
/// [`LEAD_COLS`] without the next touch (see `leads_by_ids_unplanned`).
const LEAD_COLS_UNPLANNED: &str = lead_cols!("NULL::BIGINT");

const TOUCH_COLS: &str = "id, enrollment_id, lead_id, plan, step, channel, template, planned_at, due_at, status, \
    reason, attempt, sent_channel, subject, content, provider_id, delivery, task_id, settled_at";

const TASK_COLS: &str = "id, lead_id, touch_id, assignee_id, kind, due_at, script, voicemail, status, outcome, note, \
    escalated_at, created_at, completed_at";

const USER_COLS: &str =
    "id, email, name, phone, role, password_hash, active, notify_sms, notify_email, created_at";

const INTAKE_COLS: &str = "id, token, source, plan, routing, thank_you_url, active, created_at";

const POND_COLS: &str = "lead_id, intake_id, agents, expires_at, created_at";

const NOTIFICATION_COLS: &str = "id, user_id, event, lead_id, lead_name, kind, at, detail";

fn prefixed(cols: &str, p: &str) -> String {
    cols.split(", ")
        .map(|c| format!("{p}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn email_key(email: &Option<String>) -> Option<String> {
    email.as_ref().map(|e| e.to_lowercase())
}

fn tags_json(tags: &[String]) -> sqlx::types::Json<&[String]> {
    sqlx::types::Json(tags)
}

impl PgTx {
    /// ` FOR UPDATE` in a write transaction: the row read is the row about to be written.
    fn lock(&self) -> &'static str {
        if self.write { " FOR UPDATE" } else { "" }
    }

    /// Wakes the dispatchers of every other process when this transaction commits.
    async fn notify_wake(&mut self) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(WAKE_CHANNEL)
            .bind(&self.origin)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Tx for PgTx {
    async fn commit(self: Box<Self>) -> Result<()> {
        let PgTx { tx, _writer, .. } = *self;
        tx.commit().await?;
        drop(_writer);
        Ok(())
    }

    async fn team(&mut self) -> Result<Option<Team>> {
        Ok(sqlx::query_as::<_, Team>(
            "SELECT name, country, timezone, sending_window, state_windows, holidays, postal_address, support_contact, escalation_minutes, require_text_consent FROM team WHERE id = 1",
        )
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn team_save(&mut self, t: &Team, now: Millis) -> Result<()> {
        sqlx::query(
            "INSERT INTO team (id, name, country, timezone, sending_window, state_windows, holidays, postal_address, support_contact, escalation_minutes, require_text_consent, created_at)
             VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, country = excluded.country, timezone = excluded.timezone,
               sending_window = excluded.sending_window, state_windows = excluded.state_windows, holidays = excluded.holidays,
               postal_address = excluded.postal_address, support_contact = excluded.support_contact,
               escalation_minutes = excluded.escalation_minutes, require_text_consent = excluded.require_text_consent",
        )
        .bind(&t.name)
        .bind(&t.country)
        .bind(&t.timezone)
        .bind(&t.sending_window)
        .bind(&t.state_windows)
        .bind(&t.holidays)
        .bind(&t.postal_address)
        .bind(&t.support_contact)
        .bind(t.escalation_minutes)
        .bind(t.require_text_consent)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn round_robin_next(&mut self) -> Result<i64> {
        let v: i64 = sqlx::query_scalar("UPDATE team SET round_robin_cursor = round_robin_cursor + 1 WHERE id = 1 RETURNING round_robin_cursor")
            .fetch_optional(&mut *self.tx)
            .await?
            .unwrap_or(0);
        Ok(v)
    }

    async fn user_insert(&mut self, u: &NewUser, now: Millis) -> Result<i64> {
        let id = sqlx::query_scalar("INSERT INTO users (email, name, phone, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
            .bind(&u.email)
            .bind(&u.name)
            .bind(&u.phone)
            .bind(u.role.as_str())
            .bind(&u.password_hash)
            .bind(now)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(|e| map_unique(e, "email"))?;
        Ok(id)
    }

    async fn user(&mut self, id: i64) -> Result<Option<User>> {
        Ok(
            sqlx::query_as(sql!("SELECT {USER_COLS} FROM users WHERE id = $1"))
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    async fn user_by_email(&mut self, email: &str) -> Result<Option<User>> {
        Ok(sqlx::query_as(sql!(
            "SELECT {USER_COLS} FROM users WHERE lower(email) = lower($1)"
        ))
        .bind(email)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn users(&mut self) -> Result<Vec<User>> {
        Ok(
            sqlx::query_as(sql!("SELECT {USER_COLS} FROM users ORDER BY id"))
                .fetch_all(&mut *self.tx)
                .await?,
        )
    }

    async fn user_save(&mut self, u: &User) -> Result<()> {
        sqlx::query("UPDATE users SET email = $1, name = $2, phone = $3, role = $4, password_hash = $5, active = $6, notify_sms = $7, notify_email = $8 WHERE id = $9")
            .bind(&u.email)
            .bind(&u.name)
            .bind(&u.phone)
            .bind(u.role.as_str())
            .bind(&u.password_hash)
            .bind(u.active)
            .bind(u.notify_sms)
            .bind(u.notify_email)
            .bind(u.id)
            .execute(&mut *self.tx)
            .await
            .map_err(|e| map_unique(e, "email"))?;
        Ok(())
    }

    async fn token_insert(&mut self, user_id: i64, token_hash: &str, now: Millis) -> Result<()> {
        sqlx::query("INSERT INTO api_tokens (user_id, token_hash, created_at) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(token_hash)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn user_by_token(&mut self, token_hash: &str) -> Result<Option<User>> {
        Ok(sqlx::query_as(sql!(
            "SELECT {} FROM users u JOIN api_tokens t ON t.user_id = u.id WHERE t.token_hash = $1 AND u.active",
            prefixed(USER_COLS, "u")
        ))
        .bind(token_hash)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn session_insert(
        &mut self,
        id_hash: &str,
        user_id: i64,
        csrf: &str,
        now: Millis,
        expires_at: Millis,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(csrf)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn session_user(&mut self, id_hash: &str, now: Millis) -> Result<Option<(User, String)>> {
        let Some((user_id, csrf)) = sqlx::query_as::<_, (i64, String)>(
            "SELECT user_id, csrf FROM sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&mut *self.tx)
        .await?
        else {
            return Ok(None);
        };
        Ok(self
            .user(user_id)
            .await?
            .filter(|u| u.active)
            .map(|u| (u, csrf)))
    }

    async fn session_delete(&mut self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn sessions_delete_for(&mut self, user_id: Option<i64>, now: Millis) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 OR expires_at <= $2")
            .bind(user_id)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn reassign_all(&mut self, from: i64, to: i64) -> Result<(u64, u64)> {
        let leads = sqlx::query("UPDATE leads SET assigned_to = $1 WHERE assigned_to = $2")
            .bind(to)
            .bind(from)
            .execute(&mut *self.tx)
            .await?;
        let tasks = sqlx::query(
            "UPDATE tasks SET assignee_id = $1 WHERE assignee_id = $2 AND status = 'open'",
        )
        .bind(to)
        .bind(from)
        .execute(&mut *self.tx)
        .await?;
        Ok((leads.rows_affected(), tasks.rows_affected()))
    }

    async fn plan_save(&mut self, p: &PlanRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO plans (slug, name, version, source, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (slug) DO UPDATE SET name = excluded.name, version = excluded.version, source = excluded.source, updated_at = excluded.updated_at",
        )
        .bind(&p.slug)
        .bind(&p.name)
        .bind(p.version)
        .bind(&p.source)
        .bind(p.updated_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn plan(&mut self, slug: &str) -> Result<Option<PlanRow>> {
        Ok(sqlx::query_as(
            "SELECT slug, name, version, source, updated_at FROM plans WHERE slug = $1",
        )
        .bind(slug)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn plans(&mut self) -> Result<Vec<PlanRow>> {
        Ok(sqlx::query_as(
            "SELECT slug, name, version, source, updated_at FROM plans ORDER BY slug COLLATE \"C\"",
        )
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn template_save(&mut self, t: &TemplateRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO templates (slug, channel, name, subject, body, voicemail, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (slug) DO UPDATE SET channel = excluded.channel, name = excluded.name, subject = excluded.subject,
               body = excluded.body, voicemail = excluded.voicemail, updated_at = excluded.updated_at",
        )
        .bind(&t.slug)
        .bind(t.channel.as_str())
        .bind(&t.name)
        .bind(&t.subject)
        .bind(&t.body)
        .bind(&t.voicemail)
        .bind(t.updated_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn template(&mut self, slug: &str) -> Result<Option<TemplateRow>> {
        Ok(sqlx::query_as("SELECT slug, channel, name, subject, body, voicemail, updated_at FROM templates WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&mut *self.tx)
            .await?)
    }

    async fn templates(&mut self) -> Result<Vec<TemplateRow>> {
        Ok(sqlx::query_as("SELECT slug, channel, name, subject, body, voicemail, updated_at FROM templates ORDER BY slug COLLATE \"C\"").fetch_all(&mut *self.tx).await?)
    }

    async fn lead_insert(&mut self, l: &Lead) -> Result<i64> {
        let id = sqlx::query_scalar(
            "INSERT INTO leads (first_name, last_name, email, email_key, phone, timezone, region, source, level, stage, preferred_channel,
               assigned_to, external_id, tags, notes, property_address, sms_opt_out, email_opt_out, do_not_call, email_bad, phone_bad,
               attempts, created_at, updated_at, next_touch_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25) RETURNING id",
        )
        .bind(&l.first_name)
        .bind(&l.last_name)
        .bind(&l.email)
        .bind(email_key(&l.email))
        .bind(&l.phone)
        .bind(&l.timezone)
        .bind(&l.region)
        .bind(&l.source)
        .bind(l.level.as_str())
        .bind(l.stage.as_str())
        .bind(&l.preferred_channel)
        .bind(l.assigned_to)
        .bind(&l.external_id)
        .bind(tags_json(&l.tags))
        .bind(&l.notes)
        .bind(&l.property_address)
        .bind(l.sms_opt_out)
        .bind(l.email_opt_out)
        .bind(l.do_not_call)
        .bind(l.email_bad)
        .bind(l.phone_bad)
        .bind(l.attempts)
        .bind(l.created_at)
        .bind(l.updated_at)
        .bind(l.next_touch_at)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(|e| map_unique(e, "external_id"))?;
        Ok(id)
    }

    async fn lead(&mut self, id: i64) -> Result<Option<Lead>> {
        Ok(sqlx::query_as(sql!(
            "SELECT {LEAD_COLS} FROM leads l WHERE id = $1{}",
            self.lock()
        ))
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn leads_by_ids(&mut self, ids: &[i64]) -> Result<Vec<Lead>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        Ok(
            sqlx::query_as(sql!("SELECT {LEAD_COLS} FROM leads l WHERE id = ANY($1)"))
                .bind(ids)
                .fetch_all(&mut *self.tx)
                .await?,
        )
    }

    async fn leads_by_ids_unplanned(&mut self, ids: &[i64]) -> Result<Vec<Lead>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        Ok(sqlx::query_as(sql!(
            "SELECT {LEAD_COLS_UNPLANNED} FROM leads l WHERE id = ANY($1)"
        ))
        .bind(ids)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn leads_progress(&mut self, ids: &[i64]) -> Result<Vec<(i64, i64, bool)>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        Ok(sqlx::query_as(
            "SELECT id, attempts::BIGINT, answered_at IS NOT NULL FROM leads WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn lead_match(
        &mut self,
        external_id: Option<&str>,
        email_key: Option<&str>,
        phone: Option<&str>,
    ) -> Result<Option<Lead>> {
        if self.write {
            // Two processes creating the same lead at once: the second waits here until the
            // first commits, then finds its lead and merges into it.
            let mut keys: Vec<String> = [("x", external_id), ("e", email_key), ("p", phone)]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| format!("relentless:lead:{k}:{v}")))
                .collect();
            keys.sort();
            for k in keys {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                    .bind(k)
                    .execute(&mut *self.tx)
                    .await?;
            }
        }
        let lock = self.lock();
        if let Some(x) = external_id {
            let l: Option<Lead> = sqlx::query_as(sql!(
                "SELECT {LEAD_COLS} FROM leads l WHERE external_id = $1{lock}"
            ))
            .bind(x)
            .fetch_optional(&mut *self.tx)
            .await?;
            if l.is_some() {
                return Ok(l);
            }
        }
        if let Some(e) = email_key {
            let l: Option<Lead> = sqlx::query_as(sql!(
                "SELECT {LEAD_COLS} FROM leads l WHERE email_key = $1 ORDER BY id LIMIT 1{lock}"
            ))
            .bind(e)
            .fetch_optional(&mut *self.tx)
            .await?;
            if l.is_some() {
                return Ok(l);
            }
        }
        if let Some(p) = phone {
            return Ok(sqlx::query_as(sql!(
                "SELECT {LEAD_COLS} FROM leads l WHERE phone = $1 ORDER BY id LIMIT 1{lock}"
            ))
            .bind(p)
            .fetch_optional(&mut *self.tx)
            .await?);
        }
        Ok(None)
    }

    async fn leads_make_hot(&mut self, ids: &[i64], now: Millis) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE leads SET level = 'hot', updated_at = $2 WHERE id = ANY($1) AND level <> 'hot'",
        )
        .bind(ids)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn lead_save(&mut self, l: &Lead) -> Result<()> {
        sqlx::query(
            "UPDATE leads SET first_name = $1, last_name = $2, email = $3, email_key = $4, phone = $5, timezone = $6, region = $7, source = $8,
               level = $9, stage = $10, preferred_channel = $11, assigned_to = $12, external_id = $13, tags = $14, notes = $15, property_address = $16,
               sms_opt_out = $17, email_opt_out = $18, do_not_call = $19, email_bad = $20, phone_bad = $21, attempts = $22, first_attempt_at = $23,
               first_call_at = $24, answered_at = $25, answered_on = $26, attempts_at_answer = $27, last_touch_at = $28, updated_at = $29
             WHERE id = $30",
        )
        .bind(&l.first_name)
        .bind(&l.last_name)
        .bind(&l.email)
        .bind(email_key(&l.email))
        .bind(&l.phone)
        .bind(&l.timezone)
        .bind(&l.region)
        .bind(&l.source)
        .bind(l.level.as_str())
        .bind(l.stage.as_str())
        .bind(&l.preferred_channel)
        .bind(l.assigned_to)
        .bind(&l.external_id)
        .bind(tags_json(&l.tags))
        .bind(&l.notes)
        .bind(&l.property_address)
        .bind(l.sms_opt_out)
        .bind(l.email_opt_out)
        .bind(l.do_not_call)
        .bind(l.email_bad)
        .bind(l.phone_bad)
        .bind(l.attempts)
        .bind(l.first_attempt_at)
        .bind(l.first_call_at)
        .bind(l.answered_at)
        .bind(&l.answered_on)
        .bind(l.attempts_at_answer)
        .bind(l.last_touch_at)
        .bind(l.updated_at)
        .bind(l.id)
        .execute(&mut *self.tx)
        .await
        .map_err(|e| map_unique(e, "external_id"))?;
        Ok(())
    }

    async fn leads_page(&mut self, f: &LeadFilter) -> Result<Vec<Lead>> {
        let mut q: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {LEAD_COLS} FROM leads l WHERE 1 = 1"));
        if let Some(words) = &f.name_query {
            match ts_query(words) {
                Some(tq) => {
                    q.push(" AND l.name_search @@ to_tsquery('simple', relentless_fold(")
                        .push_bind(tq)
                        .push("))");
                }
                None => {
                    q.push(" AND FALSE");
                }
            }
        }
        if let Some(e) = &f.email_key {
            q.push(" AND l.email_key = ").push_bind(e.clone());
        }
        if let Some(p) = &f.phone {
            q.push(" AND l.phone = ").push_bind(p.clone());
        }
        if let Some(v) = f.level {
            q.push(" AND l.level = ").push_bind(v.as_str());
        }
        if let Some(v) = f.stage {
            q.push(" AND l.stage = ").push_bind(v.as_str());
        }
        if let Some(v) = &f.source {
            q.push(" AND l.source = ").push_bind(v.clone());
        }
        if let Some(v) = f.assigned_to {
            q.push(" AND l.assigned_to = ").push_bind(v);
        }
        if let Some(v) = f.below_attempts {
            q.push(" AND l.attempts < ")
                .push_bind(v)
                .push(" AND l.answered_at IS NULL");
        }
        if let Some(v) = f.no_touch_since {
            q.push(" AND COALESCE(l.last_touch_at, l.created_at) < ")
                .push_bind(v);
        }
        if let Some(v) = f.before_id {
            q.push(" AND l.id < ").push_bind(v);
        }
        q.push(" ORDER BY l.id DESC LIMIT ").push_bind(f.limit);
        Ok(q.build_query_as().fetch_all(&mut *self.tx).await?)
    }

    async fn lead_delete(&mut self, id: i64) -> Result<()> {
        for q in [
            "DELETE FROM outbox WHERE lead_id = $1",
            "DELETE FROM notifications WHERE lead_id = $1",
            "DELETE FROM touches WHERE lead_id = $1",
            "DELETE FROM tasks WHERE lead_id = $1",
        ] {
            sqlx::query(q).bind(id).execute(&mut *self.tx).await?;
        }
        let r = sqlx::query("DELETE FROM leads WHERE id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn leads_refresh_next(&mut self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            // `FILTER`, not `AND status = 'scheduled'` in the WHERE: with that, the planner may
            // AND the lead's index with the whole partial index of scheduled touches (its
            // estimate for that index is tiny until statistics catch up with a big import)
            // and read every scheduled touch once per lead: 0.5–0.8 s per dispatch batch in
            // the W1 benchmark. A lead's own touches are a handful.
            "UPDATE leads SET next_touch_at = (SELECT MIN(due_at) FILTER (WHERE t.status IN ('scheduled', 'sending')) FROM touches t WHERE t.lead_id = leads.id) WHERE id = ANY($1)",
        )
        .bind(ids)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn suppress(&mut self, hash: &str, kind: &str, now: Millis) -> Result<()> {
        sqlx::query("INSERT INTO suppressions (hash, kind, created_at) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING")
            .bind(hash)
            .bind(kind)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn is_suppressed(&mut self, hash: &str) -> Result<bool> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM suppressions WHERE hash = $1")
                .bind(hash)
                .fetch_one(&mut *self.tx)
                .await?
                > 0,
        )
    }

    async fn enrollment_insert(
        &mut self,
        lead_id: i64,
        plan: &str,
        version: i64,
        started_at: Millis,
        touches: &[NewTouch],
    ) -> Result<i64> {
        let id: i64 = sqlx::query_scalar("INSERT INTO enrollments (lead_id, plan, plan_version, state, started_at) VALUES ($1, $2, $3, 'active', $4) RETURNING id")
            .bind(lead_id)
            .bind(plan)
            .bind(version)
            .bind(started_at)
            .fetch_one(&mut *self.tx)
            .await?;
        for chunk in touches.chunks(500) {
            let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
                "INSERT INTO touches (enrollment_id, lead_id, plan, step, channel, template, planned_at, due_at, reason, created_at) ",
            );
            q.push_values(chunk, |mut b, t| {
                b.push_bind(id)
                    .push_bind(lead_id)
                    .push_bind(plan.to_string())
                    .push_bind(t.step)
                    .push_bind(t.channel.as_str())
                    .push_bind(t.template.clone())
                    .push_bind(t.planned_at)
                    .push_bind(t.due_at)
                    .push_bind(t.reason.clone())
                    .push_bind(started_at);
            });
            q.build().execute(&mut *self.tx).await?;
        }
        if !touches.is_empty() {
            self.notify_wake().await?;
        }
        Ok(id)
    }

    async fn enrollments(&mut self, lead_id: i64) -> Result<Vec<Enrollment>> {
        self.enrollments_for_leads(&[lead_id]).await
    }

    async fn enrollments_for_leads(&mut self, lead_ids: &[i64]) -> Result<Vec<Enrollment>> {
        if lead_ids.is_empty() {
            return Ok(vec![]);
        }
        Ok(sqlx::query_as(
            "SELECT e.id, e.lead_id, e.plan, e.plan_version, e.state, e.reason, e.started_at, e.ended_at,
               (SELECT MIN(t.due_at) FROM touches t WHERE t.enrollment_id = e.id AND t.status = 'scheduled') AS next_touch_at
             FROM enrollments e WHERE e.lead_id = ANY($1) ORDER BY e.id",
        )
        .bind(lead_ids)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn enrollments_by_ids(
        &mut self,
        _lead_ids: &[i64],
        ids: &[i64],
    ) -> Result<Vec<Enrollment>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        Ok(sqlx::query_as(
            "SELECT id, lead_id, plan, plan_version, state, reason, started_at, ended_at, NULL::BIGINT AS next_touch_at
             FROM enrollments WHERE id = ANY($1) ORDER BY id",
        )
        .bind(ids)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn enrollment_pause(&mut self, id: i64, paused: bool, now: Millis) -> Result<()> {
        let (state, reason) = if paused {
            ("paused", Some("paused by the agent"))
        } else {
            ("active", None)
        };
        sqlx::query("UPDATE enrollments SET state = $1, reason = $2 WHERE id = $3 AND state IN ('active', 'paused')")
            .bind(state)
            .bind(reason)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        if !paused {
            sqlx::query("UPDATE touches SET due_at = GREATEST(planned_at, $1) WHERE enrollment_id = $2 AND status = 'scheduled'")
                .bind(now)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    async fn enrollment_end(
        &mut self,
        id: i64,
        state: EnrollmentState,
        reason: Option<&str>,
        at: Millis,
    ) -> Result<()> {
        sqlx::query("UPDATE enrollments SET state = $1, reason = $2, ended_at = $3 WHERE id = $4")
            .bind(state.as_str())
            .bind(reason)
            .bind(at)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn enrollment_cancel_touches(
        &mut self,
        id: i64,
        reason: &str,
        at: Millis,
    ) -> Result<u64> {
        sqlx::query(
            "UPDATE tasks SET status = 'cancelled', completed_at = $1, note = $2 WHERE status = 'open' AND touch_id IN
               (SELECT id FROM touches WHERE enrollment_id = $3 AND status = 'scheduled')",
        )
        .bind(at)
        .bind(reason)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        let r = sqlx::query("UPDATE touches SET status = 'cancelled', reason = $1, settled_at = $2 WHERE enrollment_id = $3 AND status = 'scheduled'")
            .bind(reason)
            .bind(at)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(r.rows_affected())
    }

    async fn enrollments_complete_finished(
        &mut self,
        ids: &[(i64, i64)],
        at: Millis,
    ) -> Result<Vec<Enrollment>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        // (PostgreSQL reads an enrollment's touches through `touches_enrollment`; the leads
        // are not needed.)
        let ids: Vec<i64> = ids.iter().map(|(e, _)| *e).collect();
        let mut done: Vec<Enrollment> = sqlx::query_as(
            "UPDATE enrollments e SET state = 'completed', reason = NULL, ended_at = $2
             WHERE e.id = ANY($1) AND e.state = 'active'
               AND NOT EXISTS (SELECT 1 FROM touches t WHERE t.enrollment_id = e.id AND t.status IN ('scheduled', 'sending'))
             RETURNING e.id, e.lead_id, e.plan, e.plan_version, e.state, e.reason, e.started_at, e.ended_at, NULL::BIGINT AS next_touch_at",
        )
        .bind(ids)
        .bind(at)
        .fetch_all(&mut *self.tx)
        .await?;
        done.sort_by_key(|e| e.id);
        Ok(done)
    }

    async fn touches_for_lead(&mut self, lead_id: i64) -> Result<Vec<Touch>> {
        Ok(sqlx::query_as(sql!(
            "SELECT {TOUCH_COLS} FROM touches WHERE lead_id = $1 ORDER BY due_at, id"
        ))
        .bind(lead_id)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn touch(&mut self, id: i64) -> Result<Option<Touch>> {
        Ok(
            sqlx::query_as(sql!("SELECT {TOUCH_COLS} FROM touches WHERE id = $1"))
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    async fn claim_due(
        &mut self,
        now: Millis,
        limit: i64,
        worker: &str,
        lease_until: Millis,
    ) -> Result<Vec<Touch>> {
        // SKIP LOCKED: a worker passes over the rows another worker is claiming at this very
        // moment instead of waiting for it, and (re-checking the row it locks) never takes a
        // touch another claim already marked `sending`. New leads' speed-to-lead touches
        // first, through their own index, so a backlog never delays them (as on SQLite).
        let mut claimed: Vec<Touch> = Vec::new();
        for urgent in [true, false] {
            let rest = limit - claimed.len() as i64;
            if rest <= 0 {
                break;
            }
            let only = if urgent {
                " AND plan = 'speed-to-lead'"
            } else {
                ""
            };
            let mut some: Vec<Touch> = sqlx::query_as(sql!(
                "UPDATE touches SET status = 'sending', claimed_by = $1, lease_until = $2
                 WHERE id IN (SELECT id FROM touches WHERE status = 'scheduled' AND task_id IS NULL{only} AND due_at <= $3
                              ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED)
                 RETURNING {TOUCH_COLS}"
            ))
            .bind(worker)
            .bind(lease_until)
            .bind(now)
            .bind(rest)
            .fetch_all(&mut *self.tx)
            .await?;
            some.sort_by_key(|t| (t.due_at, t.id));
            claimed.append(&mut some);
        }
        Ok(claimed)
    }

    async fn touches_due(&mut self, now: Millis, limit: i64, except: &[i64]) -> Result<Vec<Touch>> {
        // Several workers claim at once here: the rows are locked until this transaction ends
        // and other workers pass over them (the dispatcher uses `claim_due` on PostgreSQL).
        let mut out: Vec<Touch> = Vec::new();
        for only in [" AND plan = 'speed-to-lead'", ""] {
            let rest = limit - out.len() as i64;
            if rest <= 0 {
                break;
            }
            let skip = if only.is_empty() && !out.is_empty() {
                " AND plan <> 'speed-to-lead'"
            } else {
                ""
            };
            let more: Vec<Touch> = sqlx::query_as(sql!(
                "SELECT {TOUCH_COLS} FROM touches
                 WHERE status = 'scheduled' AND task_id IS NULL{only}{skip} AND due_at <= $1
                   AND NOT (id = ANY($3))
                 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED"
            ))
            .bind(now)
            .bind(rest)
            .bind(except)
            .fetch_all(&mut *self.tx)
            .await?;
            out.extend(more);
        }
        Ok(out)
    }

    async fn touches_mark_sending(
        &mut self,
        ids: &[i64],
        worker: &str,
        lease_until: Millis,
    ) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE touches SET status = 'sending', claimed_by = $1, lease_until = $2 WHERE id = ANY($3)",
        )
        .bind(worker)
        .bind(lease_until)
        .bind(ids)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn touch_release(&mut self, id: i64) -> Result<()> {
        let r = sqlx::query("UPDATE touches SET status = 'scheduled', claimed_by = NULL, lease_until = NULL WHERE id = $1 AND status = 'sending'")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        if r.rows_affected() > 0 {
            self.notify_wake().await?;
        }
        Ok(())
    }

    async fn touch_reschedule(&mut self, id: i64, due_at: Millis, reason: &str) -> Result<()> {
        sqlx::query("UPDATE touches SET status = 'scheduled', due_at = $1, reason = $2, claimed_by = NULL, lease_until = NULL WHERE id = $3")
            .bind(due_at)
            .bind(reason)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        self.notify_wake().await
    }

    async fn touches_record(&mut self, results: &[TouchResult], now: Millis) -> Result<()> {
        // The batch's leads are locked in id order first, whatever the batch's order: two
        // workers recording batches that share leads lock them in the same order and cannot
        // deadlock. Then one statement bumps every lead's attempts; the lead's new count
        // numbers its touches' attempts, in batch order.
        let mut per_lead: std::collections::BTreeMap<i64, i64> = Default::default();
        for r in results.iter().filter(|r| r.attempt) {
            *per_lead.entry(r.lead_id).or_default() += 1;
        }
        let mut next_attempt: std::collections::HashMap<i64, i64> = Default::default();
        if !per_lead.is_empty() {
            let ids: Vec<i64> = per_lead.keys().copied().collect();
            let ns: Vec<i64> = per_lead.values().copied().collect();
            sqlx::query("SELECT id FROM leads WHERE id = ANY($1) ORDER BY id FOR UPDATE")
                .bind(&ids)
                .execute(&mut *self.tx)
                .await?;
            let totals: Vec<(i64, i64)> = sqlx::query_as(
                "UPDATE leads SET attempts = attempts + v.n, last_touch_at = $3, first_attempt_at = COALESCE(first_attempt_at, $3),
                   stage = CASE WHEN stage = 'new' THEN 'attempting' ELSE stage END, updated_at = $3
                 FROM unnest($1::BIGINT[], $2::BIGINT[]) AS v(lid, n)
                 WHERE leads.id = v.lid RETURNING leads.id, leads.attempts",
            )
            .bind(&ids)
            .bind(&ns)
            .bind(now)
            .fetch_all(&mut *self.tx)
            .await?;
            for (lead_id, total) in totals {
                next_attempt.insert(lead_id, total - per_lead[&lead_id] + 1);
            }
        }
        // Every touch of the batch in one statement: UPDATE … FROM unnest(arrays).
        let mut cols = RecordColumns::default();
        for r in results {
            let attempt = r.attempt.then(|| {
                let slot = next_attempt.entry(r.lead_id).or_insert(1);
                *slot += 1;
                *slot - 1
            });
            cols.id.push(r.touch_id);
            cols.status.push(r.status.as_str().to_string());
            cols.reason.push(r.reason.clone());
            cols.sent_channel
                .push(r.sent_channel.map(|c| c.as_str().to_string()));
            cols.subject.push(r.subject.clone());
            cols.content.push(r.content.clone());
            cols.provider_id.push(r.provider_id.clone());
            cols.attempt.push(attempt);
        }
        if results.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE touches SET status = v.status, reason = COALESCE(v.reason, touches.reason), sent_channel = v.sent_channel,
               subject = v.subject, content = v.content, provider_id = v.provider_id, attempt = v.attempt,
               delivery = CASE WHEN v.status = 'sent' THEN 'queued' ELSE touches.delivery END, settled_at = $9,
               claimed_by = NULL, lease_until = NULL
             FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::BIGINT[])
               AS v(id, status, reason, sent_channel, subject, content, provider_id, attempt)
             WHERE touches.id = v.id",
        )
        .bind(&cols.id)
        .bind(&cols.status)
        .bind(&cols.reason)
        .bind(&cols.sent_channel)
        .bind(&cols.subject)
        .bind(&cols.content)
        .bind(&cols.provider_id)
        .bind(&cols.attempt)
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn touch_set_task(&mut self, touch_id: i64, task_id: i64) -> Result<()> {
        sqlx::query("UPDATE touches SET task_id = $1, status = 'scheduled', claimed_by = NULL, lease_until = NULL WHERE id = $2")
            .bind(task_id)
            .bind(touch_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn touch_tasks_insert(&mut self, tasks: &[NewTask], now: Millis) -> Result<Vec<i64>> {
        if tasks.is_empty() {
            return Ok(vec![]);
        }
        // Ids come from the sequence in the order the rows are inserted (ORDER BY ord).
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO tasks (lead_id, touch_id, assignee_id, kind, due_at, script, voicemail, created_at)
             SELECT l, t, a, k, d, s, v, $8 FROM unnest($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::BIGINT[], $6::TEXT[], $7::TEXT[])
               WITH ORDINALITY AS x(l, t, a, k, d, s, v, ord) ORDER BY ord
             RETURNING id",
        )
        .bind(tasks.iter().map(|t| t.lead_id).collect::<Vec<_>>())
        .bind(tasks.iter().map(|t| t.touch_id).collect::<Vec<_>>())
        .bind(tasks.iter().map(|t| t.assignee_id).collect::<Vec<_>>())
        .bind(tasks.iter().map(|t| t.kind.as_str().to_string()).collect::<Vec<_>>())
        .bind(tasks.iter().map(|t| t.due_at).collect::<Vec<_>>())
        .bind(tasks.iter().map(|t| t.script.clone()).collect::<Vec<_>>())
        .bind(tasks.iter().map(|t| t.voicemail.clone()).collect::<Vec<_>>())
        .bind(now)
        .fetch_all(&mut *self.tx)
        .await?;
        ids.sort_unstable();
        let (touch_ids, task_ids): (Vec<i64>, Vec<i64>) = tasks
            .iter()
            .zip(&ids)
            .filter_map(|(t, id)| t.touch_id.map(|tid| (tid, *id)))
            .unzip();
        sqlx::query(
            "UPDATE touches SET task_id = v.task_id, status = 'scheduled', claimed_by = NULL, lease_until = NULL
             FROM unnest($1::BIGINT[], $2::BIGINT[]) AS v(tid, task_id) WHERE touches.id = v.tid",
        )
        .bind(&touch_ids)
        .bind(&task_ids)
        .execute(&mut *self.tx)
        .await?;
        Ok(ids)
    }

    async fn touches_expire_sending(&mut self, now: Millis) -> Result<Vec<Touch>> {
        // Two workers expiring at once: the second waits for the first's row locks, re-reads
        // the rows (now `uncertain`) and skips them, so each touch is reported once.
        Ok(sqlx::query_as(sql!(
            "UPDATE touches SET status = 'uncertain', settled_at = $1, claimed_by = NULL, lease_until = NULL,
               reason = 'the process stopped while this message was being sent; it may or may not have gone out, so it is not resent'
             WHERE status = 'sending' AND lease_until < $1 RETURNING {TOUCH_COLS}"
        ))
        .bind(now)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn next_due_at(&mut self) -> Result<Option<Millis>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(due_at) FROM touches WHERE status = 'scheduled' AND task_id IS NULL",
        )
        .fetch_one(&mut *self.tx)
        .await?)
    }

    async fn touch_mark_answered(&mut self, lead_id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE touches SET answered = TRUE WHERE id = (SELECT id FROM touches WHERE lead_id = $1 AND status IN ('sent', 'done')
               ORDER BY settled_at DESC NULLS LAST, id DESC LIMIT 1)",
        )
        .bind(lead_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn task_insert(&mut self, t: &NewTask, now: Millis) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO tasks (lead_id, touch_id, assignee_id, kind, due_at, script, voicemail, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(t.lead_id)
        .bind(t.touch_id)
        .bind(t.assignee_id)
        .bind(t.kind.as_str())
        .bind(t.due_at)
        .bind(&t.script)
        .bind(&t.voicemail)
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    async fn task(&mut self, id: i64) -> Result<Option<Task>> {
        Ok(sqlx::query_as(sql!(
            "SELECT {TASK_COLS} FROM tasks WHERE id = $1{}",
            self.lock()
        ))
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn reassign_task(&mut self, id: i64, to: i64) -> Result<()> {
        sqlx::query("UPDATE tasks SET assignee_id = $1 WHERE id = $2")
            .bind(to)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn leads_with_recent_call_task(
        &mut self,
        lead_ids: &[i64],
        since: Millis,
    ) -> Result<Vec<i64>> {
        if lead_ids.is_empty() {
            return Ok(vec![]);
        }
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT lead_id FROM tasks WHERE lead_id = ANY($1) AND status = 'open'
             AND kind = 'call' AND touch_id IS NULL AND created_at > $2",
        )
        .bind(lead_ids)
        .bind(since)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn tasks(&mut self, f: &TaskFilter) -> Result<Vec<Task>> {
        let mut q: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {TASK_COLS} FROM tasks WHERE 1 = 1"));
        if let Some(a) = f.assignee_id {
            q.push(" AND assignee_id = ").push_bind(a);
        }
        if let Some(s) = f.status {
            q.push(" AND status = ").push_bind(s.as_str());
        }
        if let Some(l) = f.lead_id {
            q.push(" AND lead_id = ").push_bind(l);
        }
        if let Some((due, id)) = f.after {
            q.push(" AND (due_at, id) > (")
                .push_bind(due)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        q.push(" ORDER BY due_at, id LIMIT ").push_bind(f.limit);
        Ok(q.build_query_as().fetch_all(&mut *self.tx).await?)
    }

    async fn task_complete(
        &mut self,
        id: i64,
        status: TaskStatus,
        outcome: Option<&str>,
        note: Option<&str>,
        at: Millis,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE tasks SET status = $1, outcome = $2, note = $3, completed_at = $4 WHERE id = $5",
        )
        .bind(status.as_str())
        .bind(outcome)
        .bind(note)
        .bind(at)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn touch_settle(
        &mut self,
        touch_id: i64,
        status: TouchStatus,
        reason: Option<&str>,
        attempt: Option<i64>,
        at: Millis,
    ) -> Result<()> {
        sqlx::query("UPDATE touches SET status = $1, reason = COALESCE($2, reason), attempt = COALESCE($3, attempt), settled_at = $4 WHERE id = $5")
            .bind(status.as_str())
            .bind(reason)
            .bind(attempt)
            .bind(at)
            .bind(touch_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn tasks_to_escalate(&mut self, now: Millis, minutes: i64) -> Result<Vec<Task>> {
        Ok(sqlx::query_as(sql!(
            "SELECT {} FROM tasks t JOIN leads l ON l.id = t.lead_id
             WHERE t.status = 'open' AND t.kind = 'call' AND t.escalated_at IS NULL AND l.level = 'hot' AND t.due_at < $1
             ORDER BY t.due_at LIMIT 500",
            prefixed(TASK_COLS, "t")
        ))
        .bind(now - minutes * 60_000)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn task_mark_escalated(&mut self, id: i64, at: Millis) -> Result<()> {
        sqlx::query("UPDATE tasks SET escalated_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn tasks_due_between(&mut self, from: Millis, to: Millis) -> Result<Vec<Task>> {
        Ok(sqlx::query_as(sql!("SELECT {TASK_COLS} FROM tasks WHERE status = 'open' AND due_at > $1 AND due_at <= $2 ORDER BY due_at LIMIT 1000"))
            .bind(from)
            .bind(to)
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn next_task_due_after(&mut self, t: Millis) -> Result<Option<Millis>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(due_at) FROM tasks WHERE status = 'open' AND due_at > $1",
        )
        .bind(t)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    async fn activity_insert(&mut self, a: &NewActivity) -> Result<i64> {
        Ok(sqlx::query_scalar("INSERT INTO activities (lead_id, kind, detail, data, actor_id, at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
            .bind(a.lead_id)
            .bind(&a.kind)
            .bind(&a.detail)
            .bind(a.data.as_ref().map(|d| d.to_string()))
            .bind(a.actor_id)
            .bind(a.at)
            .fetch_one(&mut *self.tx)
            .await?)
    }

    async fn activities_insert(&mut self, all: &[NewActivity]) -> Result<()> {
        if all.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO activities (lead_id, kind, detail, data, actor_id, at)
             SELECT * FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::BIGINT[])",
        )
        .bind(all.iter().map(|a| a.lead_id).collect::<Vec<_>>())
        .bind(all.iter().map(|a| a.kind.clone()).collect::<Vec<_>>())
        .bind(all.iter().map(|a| a.detail.clone()).collect::<Vec<_>>())
        .bind(
            all.iter()
                .map(|a| a.data.as_ref().map(|d| d.to_string()))
                .collect::<Vec<_>>(),
        )
        .bind(all.iter().map(|a| a.actor_id).collect::<Vec<_>>())
        .bind(all.iter().map(|a| a.at).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn timeline(
        &mut self,
        lead_id: i64,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Activity>> {
        Ok(sqlx::query_as(
            "SELECT id, lead_id, kind, detail, data, actor_id, at FROM activities WHERE lead_id = $1 AND id < $2 ORDER BY at DESC, id DESC LIMIT $3",
        )
        .bind(lead_id)
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn outbox_insert(&mut self, m: &NewOutbox, now: Millis) -> Result<i64> {
        Ok(sqlx::query_scalar("INSERT INTO outbox (channel, to_addr, subject, body, lead_id, touch_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id")
            .bind(m.channel.as_str())
            .bind(&m.to_addr)
            .bind(&m.subject)
            .bind(&m.body)
            .bind(m.lead_id)
            .bind(m.touch_id)
            .bind(now)
            .fetch_one(&mut *self.tx)
            .await?)
    }

    async fn outbox_insert_many(&mut self, all: &[NewOutbox], now: Millis) -> Result<()> {
        if all.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO outbox (channel, to_addr, subject, body, lead_id, touch_id, created_at)
             SELECT c, t, s, b, l, tid, $7 FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::BIGINT[])
               AS v(c, t, s, b, l, tid)",
        )
        .bind(
            all.iter()
                .map(|m| m.channel.as_str().to_string())
                .collect::<Vec<_>>(),
        )
        .bind(all.iter().map(|m| m.to_addr.clone()).collect::<Vec<_>>())
        .bind(all.iter().map(|m| m.subject.clone()).collect::<Vec<_>>())
        .bind(all.iter().map(|m| m.body.clone()).collect::<Vec<_>>())
        .bind(all.iter().map(|m| m.lead_id).collect::<Vec<_>>())
        .bind(all.iter().map(|m| m.touch_id).collect::<Vec<_>>())
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn outbox(
        &mut self,
        assignee: Option<i64>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>> {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT o.id, o.channel, o.to_addr, o.subject, o.body, o.status, o.lead_id, o.touch_id, o.created_at FROM outbox o",
        );
        if let Some(a) = assignee {
            q.push(" JOIN leads l ON l.id = o.lead_id AND l.assigned_to = ")
                .push_bind(a);
        }
        q.push(" WHERE o.id < ")
            .push_bind(before_id.unwrap_or(i64::MAX));
        q.push(" ORDER BY o.id DESC LIMIT ").push_bind(limit);
        Ok(q.build_query_as().fetch_all(&mut *self.tx).await?)
    }

    async fn notification_insert(&mut self, n: &NewNotification) -> Result<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO notifications (user_id, event, lead_id, lead_name, kind, at, detail) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(n.user_id)
        .bind(n.event.as_str())
        .bind(n.lead_id)
        .bind(&n.lead_name)
        .bind(&n.kind)
        .bind(n.at)
        .bind(&n.detail)
        .fetch_one(&mut *self.tx)
        .await?;
        // Every other process loads it and publishes it to its own streams, once committed.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(EVENTS_CHANNEL)
            .bind(format!("{}:{id}", self.origin))
            .execute(&mut *self.tx)
            .await?;
        Ok(id)
    }

    async fn notifications_insert(&mut self, all: &[NewNotification]) -> Result<Vec<i64>> {
        if all.is_empty() {
            return Ok(vec![]);
        }
        // Ids come from the sequence in the order the rows are inserted (ORDER BY ord).
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO notifications (user_id, event, lead_id, lead_name, kind, at, detail)
             SELECT u, e, l, n, k, a, d FROM unnest($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[], $7::TEXT[])
               WITH ORDINALITY AS x(u, e, l, n, k, a, d, ord) ORDER BY ord
             RETURNING id",
        )
        .bind(all.iter().map(|n| n.user_id).collect::<Vec<_>>())
        .bind(all.iter().map(|n| n.event.as_str().to_string()).collect::<Vec<_>>())
        .bind(all.iter().map(|n| n.lead_id).collect::<Vec<_>>())
        .bind(all.iter().map(|n| n.lead_name.clone()).collect::<Vec<_>>())
        .bind(all.iter().map(|n| n.kind.clone()).collect::<Vec<_>>())
        .bind(all.iter().map(|n| n.at).collect::<Vec<_>>())
        .bind(all.iter().map(|n| n.detail.clone()).collect::<Vec<_>>())
        .fetch_all(&mut *self.tx)
        .await?;
        ids.sort_unstable();
        // Every other process loads them and publishes them to its own streams, once committed.
        sqlx::query("SELECT pg_notify($1, $2 || ':' || x) FROM unnest($3::BIGINT[]) AS x")
            .bind(EVENTS_CHANNEL)
            .bind(&self.origin)
            .bind(&ids)
            .execute(&mut *self.tx)
            .await?;
        Ok(ids)
    }

    async fn notifications_after(
        &mut self,
        user_id: i64,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<Notification>> {
        Ok(sqlx::query_as(sql!(
            "SELECT {NOTIFICATION_COLS} FROM notifications WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(user_id)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn notifications_recent(
        &mut self,
        user_id: i64,
        event: &str,
        since: Millis,
        limit: i64,
    ) -> Result<Vec<Notification>> {
        Ok(sqlx::query_as(sql!("SELECT {NOTIFICATION_COLS} FROM notifications WHERE user_id = $1 AND event = $2 AND at >= $3 ORDER BY id DESC LIMIT $4"))
            .bind(user_id)
            .bind(event)
            .bind(since)
            .bind(limit)
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn shift_lead_back(&mut self, lead_id: i64, by: i64) -> Result<()> {
        for q in [
            "UPDATE leads SET created_at = created_at - $1, updated_at = updated_at - $1, next_touch_at = next_touch_at - $1 WHERE id = $2",
            "UPDATE enrollments SET started_at = started_at - $1 WHERE lead_id = $2",
            "UPDATE touches SET due_at = due_at - $1, planned_at = planned_at - $1, created_at = created_at - $1 WHERE lead_id = $2",
            "UPDATE activities SET at = at - $1 WHERE lead_id = $2",
        ] {
            sqlx::query(q)
                .bind(by)
                .bind(lead_id)
                .execute(&mut *self.tx)
                .await?;
        }
        self.notify_wake().await
    }

    async fn tracking_insert(&mut self, t: &Tracking) -> Result<()> {
        sqlx::query("INSERT INTO tracking (token, kind, lead_id, touch_id, links, video_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&t.token)
            .bind(&t.kind)
            .bind(t.lead_id)
            .bind(t.touch_id)
            .bind(sqlx::types::Json(&t.links))
            .bind(t.video_id)
            .bind(t.created_at)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn tracking_insert_many(&mut self, all: &[Tracking]) -> Result<()> {
        if all.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO tracking (token, kind, lead_id, touch_id, links, video_id, created_at)
             SELECT t, k, l, tid, lk::JSONB, v, c
             FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::TEXT[], $6::BIGINT[], $7::BIGINT[])
               AS x(t, k, l, tid, lk, v, c)",
        )
        .bind(all.iter().map(|t| t.token.clone()).collect::<Vec<_>>())
        .bind(all.iter().map(|t| t.kind.clone()).collect::<Vec<_>>())
        .bind(all.iter().map(|t| t.lead_id).collect::<Vec<_>>())
        .bind(all.iter().map(|t| t.touch_id).collect::<Vec<_>>())
        .bind(
            all.iter()
                .map(|t| serde_json::to_string(&t.links).unwrap_or_else(|_| "[]".into()))
                .collect::<Vec<_>>(),
        )
        .bind(all.iter().map(|t| t.video_id).collect::<Vec<_>>())
        .bind(all.iter().map(|t| t.created_at).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn tracking(&mut self, token: &str) -> Result<Option<Tracking>> {
        Ok(sqlx::query_as("SELECT token, kind, lead_id, touch_id, links, video_id, created_at FROM tracking WHERE token = $1")
            .bind(token)
            .fetch_optional(&mut *self.tx)
            .await?)
    }

    async fn trackings(&mut self, tokens: &[String]) -> Result<Vec<Tracking>> {
        if tokens.is_empty() {
            return Ok(vec![]);
        }
        Ok(sqlx::query_as("SELECT token, kind, lead_id, touch_id, links, video_id, created_at FROM tracking WHERE token = ANY($1)")
            .bind(tokens)
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn click_record(
        &mut self,
        token: &str,
        n: i64,
        at: Millis,
        window_ms: i64,
    ) -> Result<i64> {
        sqlx::query("INSERT INTO clicks (token, n, at) VALUES ($1, $2, $3)")
            .bind(token)
            .bind(n)
            .bind(at)
            .execute(&mut *self.tx)
            .await?;
        Ok(sqlx::query_scalar("SELECT COUNT(DISTINCT n) FROM clicks WHERE token = $1 AND n <> $2 AND at >= $3 AND at <= $4")
            .bind(token)
            .bind(n)
            .bind(at - window_ms)
            .bind(at + window_ms)
            .fetch_one(&mut *self.tx)
            .await?)
    }

    async fn inbound_first_time(&mut self, key: &str, now: Millis) -> Result<bool> {
        let r = sqlx::query("INSERT INTO inbound_seen (key, received_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING").bind(key).bind(now).execute(&mut *self.tx).await?;
        Ok(r.rows_affected() == 1)
    }

    async fn text_by_provider_id(&mut self, provider_id: &str) -> Result<Option<Touch>> {
        Ok(sqlx::query_as(sql!(
            "SELECT {TOUCH_COLS} FROM touches WHERE provider_id = $1 AND sent_channel = 'text' LIMIT 1"
        ))
        .bind(provider_id)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn touch_by_message_id(
        &mut self,
        touch_id: i64,
        message_id: &str,
    ) -> Result<Option<Touch>> {
        Ok(sqlx::query_as(sql!(
            "SELECT {TOUCH_COLS} FROM touches WHERE id = $1 AND message_id = $2"
        ))
        .bind(touch_id)
        .bind(message_id)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn touch_set_message_id(&mut self, touch_id: i64, message_id: &str) -> Result<()> {
        sqlx::query("UPDATE touches SET message_id = $1 WHERE id = $2")
            .bind(message_id)
            .bind(touch_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn touches_set_message_ids(&mut self, all: &[(i64, Millis, String)]) -> Result<()> {
        if all.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE touches SET message_id = v.mid FROM unnest($1::BIGINT[], $2::TEXT[]) AS v(tid, mid)
             WHERE touches.id = v.tid",
        )
        .bind(all.iter().map(|(t, _, _)| *t).collect::<Vec<_>>())
        .bind(all.iter().map(|(_, _, m)| m.clone()).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn touch_set_delivery(
        &mut self,
        touch_id: i64,
        delivery: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE touches SET delivery = $1, reason = COALESCE($2, reason) WHERE id = $3",
        )
        .bind(delivery)
        .bind(reason)
        .bind(touch_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn video_insert(&mut self, v: &Video) -> Result<i64> {
        Ok(sqlx::query_scalar("INSERT INTO videos (lead_id, user_id, file, content_type, size, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
            .bind(v.lead_id)
            .bind(v.user_id)
            .bind(&v.file)
            .bind(&v.content_type)
            .bind(v.size)
            .bind(v.created_at)
            .fetch_one(&mut *self.tx)
            .await?)
    }

    async fn video(&mut self, id: i64) -> Result<Option<Video>> {
        Ok(sqlx::query_as("SELECT id, lead_id, user_id, file, content_type, size, created_at FROM videos WHERE id = $1").bind(id).fetch_optional(&mut *self.tx).await?)
    }

    async fn intake_insert(&mut self, i: &Intake) -> Result<i64> {
        Ok(sqlx::query_scalar("INSERT INTO intakes (token, source, plan, routing, thank_you_url, active, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id")
            .bind(&i.token)
            .bind(&i.source)
            .bind(&i.plan)
            .bind(&i.routing)
            .bind(&i.thank_you_url)
            .bind(i.active)
            .bind(i.created_at)
            .fetch_one(&mut *self.tx)
            .await?)
    }

    async fn intake_by_token(&mut self, token: &str) -> Result<Option<Intake>> {
        Ok(
            sqlx::query_as(sql!("SELECT {INTAKE_COLS} FROM intakes WHERE token = $1"))
                .bind(token)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    async fn intake(&mut self, id: i64) -> Result<Option<Intake>> {
        Ok(
            sqlx::query_as(sql!("SELECT {INTAKE_COLS} FROM intakes WHERE id = $1"))
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    async fn intakes(&mut self) -> Result<Vec<Intake>> {
        Ok(
            sqlx::query_as(sql!("SELECT {INTAKE_COLS} FROM intakes ORDER BY id"))
                .fetch_all(&mut *self.tx)
                .await?,
        )
    }

    async fn intake_save(&mut self, i: &Intake) -> Result<()> {
        sqlx::query("UPDATE intakes SET source = $1, plan = $2, routing = $3, thank_you_url = $4, active = $5 WHERE id = $6")
            .bind(&i.source)
            .bind(&i.plan)
            .bind(&i.routing)
            .bind(&i.thank_you_url)
            .bind(i.active)
            .bind(i.id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn intake_round_robin_next(&mut self, id: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "UPDATE intakes SET rr_cursor = rr_cursor + 1 WHERE id = $1 RETURNING rr_cursor",
        )
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?
        .unwrap_or(0))
    }

    async fn consent_insert(&mut self, c: &Consent) -> Result<i64> {
        Ok(sqlx::query_scalar("INSERT INTO consents (lead_id, channel, source, wording, ip, at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
            .bind(c.lead_id)
            .bind(&c.channel)
            .bind(&c.source)
            .bind(&c.wording)
            .bind(&c.ip)
            .bind(c.at)
            .fetch_one(&mut *self.tx)
            .await?)
    }

    async fn consents(&mut self, lead_id: i64) -> Result<Vec<Consent>> {
        Ok(sqlx::query_as("SELECT id, lead_id, channel, source, wording, ip, at FROM consents WHERE lead_id = $1 ORDER BY at, id")
            .bind(lead_id)
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn leads_with_text_consent(&mut self, lead_ids: &[i64]) -> Result<Vec<i64>> {
        if lead_ids.is_empty() {
            return Ok(vec![]);
        }
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT lead_id FROM consents WHERE channel = 'text' AND lead_id = ANY($1)",
        )
        .bind(lead_ids)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn pond_insert(&mut self, p: &Pond) -> Result<()> {
        sqlx::query("INSERT INTO ponds (lead_id, intake_id, agents, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(p.lead_id)
            .bind(p.intake_id)
            .bind(sqlx::types::Json(&p.agents))
            .bind(p.expires_at)
            .bind(p.created_at)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn pond(&mut self, lead_id: i64) -> Result<Option<Pond>> {
        Ok(
            sqlx::query_as(sql!("SELECT {POND_COLS} FROM ponds WHERE lead_id = $1"))
                .bind(lead_id)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    async fn pond_take(&mut self, lead_id: i64) -> Result<bool> {
        // Two agents claiming at once in two processes: the second DELETE waits for the first,
        // then finds nothing.
        Ok(sqlx::query("DELETE FROM ponds WHERE lead_id = $1")
            .bind(lead_id)
            .execute(&mut *self.tx)
            .await?
            .rows_affected()
            == 1)
    }

    async fn ponds_for_user(&mut self, user_id: i64) -> Result<Vec<Pond>> {
        Ok(sqlx::query_as(sql!(
            "SELECT {POND_COLS} FROM ponds WHERE agents @> jsonb_build_array($1::BIGINT) ORDER BY created_at"
        ))
        .bind(user_id)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn ponds_expired(&mut self, now: Millis) -> Result<Vec<Pond>> {
        Ok(sqlx::query_as(sql!(
            "SELECT {POND_COLS} FROM ponds WHERE expires_at <= $1 ORDER BY expires_at LIMIT 500"
        ))
        .bind(now)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn tasks_claim(&mut self, lead_id: i64, user_id: i64) -> Result<u64> {
        Ok(sqlx::query("UPDATE tasks SET assignee_id = $1 WHERE lead_id = $2 AND status = 'open' AND assignee_id IS NULL")
            .bind(user_id)
            .bind(lead_id)
            .execute(&mut *self.tx)
            .await?
            .rows_affected())
    }

    async fn rate_hit(&mut self, key: &str, window_start: Millis) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO rate_limits (key, window_start, hits) VALUES ($1, $2, 1)
             ON CONFLICT (key) DO UPDATE SET
               hits = CASE WHEN rate_limits.window_start = excluded.window_start THEN rate_limits.hits + 1 ELSE 1 END,
               window_start = excluded.window_start
             RETURNING hits",
        )
        .bind(key)
        .bind(window_start)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    async fn rate_count(&mut self, key: &str, window_start: Millis) -> Result<i64> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT hits FROM rate_limits WHERE key = $1 AND window_start = $2",
        )
        .bind(key)
        .bind(window_start)
        .fetch_optional(&mut *self.tx)
        .await?
        .unwrap_or(0))
    }

    async fn rate_prune(&mut self, before: Millis) -> Result<()> {
        sqlx::query("DELETE FROM rate_limits WHERE window_start < $1")
            .bind(before)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn report_rows(&mut self, since: Millis, now: Millis) -> Result<ReportRows> {
        let hour = since.div_euclid(3_600_000);
        let lead_values = sqlx::query_as(
            "SELECT metric, hour * 3600000, value, SUM(n)::BIGINT FROM report_lead_hours WHERE hour >= $1
             GROUP BY metric, hour, value HAVING SUM(n) <> 0",
        )
        .bind(hour)
        .fetch_all(&mut *self.tx)
        .await?;
        let touches = sqlx::query_as(
            "SELECT plan, step, channel, SUM(sent)::BIGINT, SUM(answered)::BIGINT FROM report_touch_hours WHERE hour >= $1
             GROUP BY plan, step, channel HAVING SUM(sent) <> 0",
        )
        .bind(hour)
        .fetch_all(&mut *self.tx)
        .await?;
        let overdue_by_agent = sqlx::query_as(
            "SELECT u.email, COUNT(t.id) FROM users u LEFT JOIN tasks t ON t.assignee_id = u.id AND t.status = 'open' AND t.due_at < $1
             WHERE u.active GROUP BY u.id ORDER BY u.email COLLATE \"C\"",
        )
        .bind(now)
        .fetch_all(&mut *self.tx)
        .await?;
        let leads_below_8 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM leads WHERE created_at >= $1 AND attempts < 8 AND answered_at IS NULL AND NOT sms_opt_out AND NOT email_opt_out",
        )
        .bind(since)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(ReportRows {
            lead_values,
            touches,
            overdue_by_agent,
            leads_below_8,
        })
    }
}

/// The outcome of a batch of touches, column by column, for one `unnest` update.
#[derive(Default)]
struct RecordColumns {
    id: Vec<i64>,
    status: Vec<String>,
    reason: Vec<Option<String>>,
    sent_channel: Vec<Option<String>>,
    subject: Vec<Option<String>>,
    content: Vec<Option<String>>,
    provider_id: Vec<Option<String>>,
    attempt: Vec<Option<i64>>,
}

/// Turns what someone typed into a `tsquery` with the prefix semantics of the SQLite
/// backend's FTS5 query: every word must match the start of a word of the name; a word with
/// inner punctuation ("o'brien", "mary-jane") is its parts in a row. Only letters and digits
/// reach the query, each part quoted, so input cannot change its syntax. `None`: no words.
pub(crate) fn ts_query(words: &str) -> Option<String> {
    let terms: Vec<String> = words
        .split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-')
        .filter_map(|w| {
            let parts: Vec<&str> = w
                .split(|c: char| !c.is_alphanumeric())
                .filter(|p| !p.is_empty())
                .collect();
            let (last, init) = parts.split_last()?;
            let mut t: Vec<String> = init.iter().map(|p| format!("'{p}'")).collect();
            t.push(format!("'{last}':*"));
            Some(t.join(" <-> "))
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(" & "))
}

#[cfg(test)]
mod tests {
    use super::ts_query;

    #[test]
    fn typed_words_become_prefix_terms() {
        assert_eq!(ts_query("jose").as_deref(), Some("'jose':*"));
        assert_eq!(
            ts_query("Zoe  Quinn").as_deref(),
            Some("'Zoe':* & 'Quinn':*")
        );
        assert_eq!(
            ts_query("o'brien mary-jane").as_deref(),
            Some("'o' <-> 'brien':* & 'mary' <-> 'jane':*")
        );
        assert_eq!(
            ts_query("\"); DROP TABLE leads; --").as_deref(),
            Some("'DROP':* & 'TABLE':* & 'leads':*")
        );
        assert_eq!(ts_query(" !!! -- '' "), None);
    }
}
