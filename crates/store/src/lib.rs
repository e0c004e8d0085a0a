//! relentless-store: the storage interface and its backends.
//!
//! [`Store`] hands out transactions; every read and write goes through a [`Tx`], so a
//! multi-row change is one `Tx` and commits or rolls back whole. One implementation per
//! backend, each with its own `migrations/` (`sqlite/` and `postgres/`); [`open`] picks one by
//! the URL's scheme. Instants are epoch milliseconds (UTC) on both backends.

/// A lead's columns from `leads l`, its next touch given by `$next` (each backend works it
/// out in its own SQL: see their `LEAD_COLS`).
macro_rules! lead_cols {
    ($next:literal) => {
        concat!(
            "l.id, l.first_name, l.last_name, l.email, l.phone, l.timezone, l.region, l.source, l.level, l.stage, \
             l.preferred_channel, l.assigned_to, l.external_id, l.tags, l.notes, l.property_address, l.sms_opt_out, \
             l.email_opt_out, l.do_not_call, l.email_bad, l.phone_bad, l.attempts, l.first_attempt_at, l.first_call_at, \
             l.answered_at, l.answered_on, l.attempts_at_answer, l.last_touch_at, ",
            $next,
            " AS next_touch_at, l.created_at, l.updated_at"
        )
    };
}

pub mod model;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
pub use model::*;
use relentless_core::types::{EnrollmentState, TaskStatus, TouchStatus};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken; the string names the field.
    #[error("{0} is already taken")]
    Conflict(String),
    /// Try again: a lock or statement timed out, or PostgreSQL broke a deadlock or a
    /// serialization conflict by rolling this transaction back.
    #[error("the database is busy")]
    Busy,
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// A database URL or setting that cannot be used; the message says why.
    #[error("{0}")]
    Config(String),
    /// A call the store's contract rules out (a caller's bug); nothing of it is kept once the
    /// transaction is dropped.
    #[error("store misuse: {0}")]
    Misuse(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // PostgreSQL's "try again" errors: serialization_failure, deadlock_detected,
        // lock_not_available, query_canceled (statement_timeout). SQLite's codes are numbers.
        if let sqlx::Error::Database(db) = &e
            && let Some(code) = db.code()
            && matches!(code.as_ref(), "40001" | "40P01" | "55P03" | "57014")
        {
            tracing::warn!(error = %db, code = %code, "database busy");
            return StoreError::Busy;
        }
        StoreError::Database(e)
    }
}

impl StoreError {
    fn message(&self) -> String {
        match self {
            StoreError::Database(e) => e.to_string().to_lowercase(),
            StoreError::Migrate(e) => e.to_string().to_lowercase(),
            _ => String::new(),
        }
    }

    /// The database as a whole could not be used (busy past the timeouts, no connection to
    /// be had, an I/O failure, unusable settings): no one statement is to blame.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Busy | StoreError::Config(_) => true,
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_),
            ) => true,
            // SQLite: another process held the lock past the busy timeout (SQLITE_BUSY,
            // SQLITE_LOCKED and their extended codes).
            StoreError::Database(sqlx::Error::Database(db)) => db
                .code()
                .is_some_and(|c| matches!(c.as_ref(), "5" | "6" | "261" | "262" | "517")),
            _ => false,
        }
    }

    /// The disk under the database is full (SQLite `SQLITE_FULL`, PostgreSQL `53100`).
    pub fn is_disk_full(&self) -> bool {
        if let StoreError::Database(sqlx::Error::Database(db)) = self
            && db.code().is_some_and(|c| c == "13" || c == "53100")
        {
            return true;
        }
        let m = self.message();
        m.contains("database or disk is full") || m.contains("no space left on device")
    }

    /// The database cannot be written (a read-only file or file system, `SQLITE_READONLY`,
    /// PostgreSQL `25006`).
    pub fn is_read_only(&self) -> bool {
        if let StoreError::Database(sqlx::Error::Database(db)) = self
            && db.code().is_some_and(|c| {
                c == "8" || c.parse::<u32>().is_ok_and(|n| n & 0xff == 8) || c == "25006"
            })
        {
            return true;
        }
        let m = self.message();
        m.contains("readonly database") || m.contains("read-only file system")
    }
}

/// What a backend that several processes share tells every process (see [`Store::listen`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// Another process created or rescheduled touches: re-read the next due instant.
    Wake,
    /// Another process stored this notification: publish it to this process's live streams.
    Notification(Notification),
}

/// Opens the database at `url`, choosing the backend by its scheme: `sqlite:` or
/// `postgres:`/`postgresql:` (pool size and statement timeout from [`postgres::Settings::from_env`]).
/// Does not migrate.
pub async fn open(url: &str) -> Result<DynStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let settings = postgres::Settings::from_env()?;
        Ok(Arc::new(
            postgres::PostgresStore::open_with(url, &settings).await?,
        ))
    } else {
        Err(StoreError::Config(format!(
            "unsupported database URL '{url}': use sqlite://FILE or postgres://USER@HOST/DATABASE"
        )))
    }
}

/// A database URL fit for logs and messages: any password replaced by `***`.
pub fn display_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &rest[..colon],
                &rest[at..]
            ),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A database: opens transactions.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A transaction that may write. Writers are serialised per process.
    async fn write(&self) -> Result<Box<dyn Tx>>;
    /// A read-only snapshot.
    async fn read(&self) -> Result<Box<dyn Tx>>;
    /// Extends the lease of these touches to `lease_until`, those still `sending` under
    /// `worker` only (one another worker declared `uncertain` stays so), committed at once.
    /// A worker renews while its messages are out and until their outcomes are recorded: a
    /// lease is how long a *dead* worker's touches wait before they are declared `uncertain`,
    /// not how long a provider may take to answer. Not a [`Tx`]: on PostgreSQL it must not
    /// wait for this process's other writes (the batch's own record among them, which may be
    /// waiting for row locks), and it skips rows another transaction holds (the record's)
    /// rather than wait for them.
    async fn renew_lease(&self, ids: &[i64], worker: &str, lease_until: Millis) -> Result<u64>;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;
    /// Writes a consistent copy of the database to `path` (SQLite online backup).
    async fn backup(&self, path: &str) -> Result<()>;
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Whether all writes queue for one writer (SQLite): then writes that arrive together are
    /// worth grouping into one transaction, and the work holding the writer a thread of its
    /// own. PostgreSQL writers run side by side.
    fn single_writer(&self) -> bool {
        self.backend() == "sqlite"
    }
    /// What other processes sharing this database do that this one must hear about: touches
    /// to dispatch and notifications to stream. `None` where there is nothing to hear (SQLite:
    /// one process per file, which wakes and publishes in-process). Every call returns a new
    /// receiver of the same stream; a process's own changes are not echoed back to it.
    async fn listen(&self) -> Result<Option<tokio::sync::broadcast::Receiver<Signal>>> {
        Ok(None)
    }
    /// What in the database server's setup makes dispatching slower the longer it runs, one
    /// sentence each, for the log when `serve`, `worker` or `migrate` starts (none on SQLite).
    async fn setup_warnings(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// The warnings for a PostgreSQL server whose autovacuum is off (`autovacuum`, or
/// `track_counts`, which it needs) or disabled for some tables (their names). Every touch a
/// dispatcher fires leaves dead row versions behind (`scheduled` → `sending` → `sent`), right
/// where the next claim's scan of the due index starts; only vacuum removes them, and without
/// it claims slow down minute by minute (BENCHMARKS.md, W2 on PostgreSQL).
pub fn vacuum_warnings(autovacuum: bool, track_counts: bool, tables_off: &[String]) -> Vec<String> {
    const WHY: &str = "every touch sent leaves dead row versions in the due-touch index that \
        nothing removes, so each claim of due touches gets slower the longer the dispatcher runs";
    let mut out = Vec::new();
    if !autovacuum {
        out.push(format!(
            "PostgreSQL's autovacuum is off (autovacuum = off): {WHY}; turn it on \
             (autovacuum = on in postgresql.conf, then reload)"
        ));
    } else if !track_counts {
        out.push(format!(
            "PostgreSQL's autovacuum cannot run (track_counts = off): {WHY}; turn it on \
             (track_counts = on in postgresql.conf, then reload)"
        ));
    }
    if !tables_off.is_empty() {
        out.push(format!(
            "autovacuum is disabled for {} (autovacuum_enabled = false): {WHY}; \
             turn it back on (ALTER TABLE … RESET (autovacuum_enabled))",
            tables_off.join(", ")
        ));
    }
    out
}

pub type DynStore = Arc<dyn Store>;

/// Where a single-writer database stands, read inside a write transaction: it differs from
/// an earlier mark once anything else has committed. `commits` counts this process's
/// committed write transactions (a replaced writer connection counts too); `data_version` is
/// SQLite's, which changes when another connection (another process) commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteMark {
    pub commits: u64,
    pub data_version: i64,
}

impl WriteMark {
    /// The mark after `n` more commits of this process and nothing else.
    pub fn after_own(self, n: u64) -> WriteMark {
        WriteMark {
            commits: self.commits + n,
            ..self
        }
    }
}

/// Everything the application reads and writes, inside one transaction.
#[async_trait]
pub trait Tx: Send {
    async fn commit(self: Box<Self>) -> Result<()>;

    /// Inside a write transaction of a single-writer database (SQLite), where it stands (see
    /// [`WriteMark`]); `None` elsewhere (PostgreSQL: writers run side by side).
    async fn write_mark(&mut self) -> Result<Option<WriteMark>> {
        Ok(None)
    }

    // team
    async fn team(&mut self) -> Result<Option<Team>>;
    async fn team_save(&mut self, team: &Team, now: Millis) -> Result<()>;
    /// Increments and returns the round-robin cursor.
    async fn round_robin_next(&mut self) -> Result<i64>;

    // users and tokens
    async fn user_insert(&mut self, user: &NewUser, now: Millis) -> Result<i64>;
    async fn user(&mut self, id: i64) -> Result<Option<User>>;
    async fn user_by_email(&mut self, email: &str) -> Result<Option<User>>;
    async fn users(&mut self) -> Result<Vec<User>>;
    async fn user_save(&mut self, user: &User) -> Result<()>;
    async fn token_insert(&mut self, user_id: i64, token_hash: &str, now: Millis) -> Result<()>;
    async fn user_by_token(&mut self, token_hash: &str) -> Result<Option<User>>;
    /// Starts a web session (cookie id's SHA-256, the CSRF token of its forms).
    async fn session_insert(
        &mut self,
        id_hash: &str,
        user_id: i64,
        csrf: &str,
        now: Millis,
        expires_at: Millis,
    ) -> Result<()>;
    /// The active user of an unexpired session, and the session's CSRF token.
    async fn session_user(&mut self, id_hash: &str, now: Millis) -> Result<Option<(User, String)>>;
    async fn session_delete(&mut self, id_hash: &str) -> Result<()>;
    /// Signs a user out everywhere (password changed, deactivated); drops expired sessions.
    async fn sessions_delete_for(&mut self, user_id: Option<i64>, now: Millis) -> Result<()>;
    /// Moves every lead and open task of `from` to `to`; returns (leads, tasks) moved.
    async fn reassign_all(&mut self, from: i64, to: i64) -> Result<(u64, u64)>;

    // plans and templates
    async fn plan_save(&mut self, plan: &PlanRow) -> Result<()>;
    async fn plan(&mut self, slug: &str) -> Result<Option<PlanRow>>;
    async fn plans(&mut self) -> Result<Vec<PlanRow>>;
    async fn template_save(&mut self, t: &TemplateRow) -> Result<()>;
    async fn template(&mut self, slug: &str) -> Result<Option<TemplateRow>>;
    async fn templates(&mut self) -> Result<Vec<TemplateRow>>;

    // leads
    /// Inserts a lead (its `id` is ignored) and returns the new id.
    async fn lead_insert(&mut self, lead: &Lead) -> Result<i64>;
    async fn lead(&mut self, id: i64) -> Result<Option<Lead>>;
    async fn leads_by_ids(&mut self, ids: &[i64]) -> Result<Vec<Lead>>;
    /// These leads as [`Tx::leads_by_ids`] reads them, except that their next touch is not
    /// worked out (`next_touch_at` is `None`): for the dispatcher (and engagement and the
    /// settling of plans), which reads a batch's worth of leads and never shows their next
    /// touch (working it out cost the dispatcher a tenth of its rate at 1,000,000 leads,
    /// BENCHMARKS.md).
    async fn leads_by_ids_unplanned(&mut self, ids: &[i64]) -> Result<Vec<Lead>>;
    /// `(id, attempts, answered)` of these leads: three columns where a whole lead is not
    /// needed (which leads a batch's finished plans can move on).
    async fn leads_progress(&mut self, ids: &[i64]) -> Result<Vec<(i64, i64, bool)>>;
    /// The existing lead a new one merges into: same external id, else email, else phone.
    async fn lead_match(
        &mut self,
        external_id: Option<&str>,
        email_key: Option<&str>,
        phone: Option<&str>,
    ) -> Result<Option<Lead>>;
    /// Writes every field of the lead.
    async fn lead_save(&mut self, lead: &Lead) -> Result<()>;
    /// Raises leads to `hot` (engagement): only the level and `updated_at` change, so a
    /// change another transaction made to the same leads meanwhile is kept.
    async fn leads_make_hot(&mut self, ids: &[i64], now: Millis) -> Result<()>;
    async fn leads_page(&mut self, filter: &LeadFilter) -> Result<Vec<Lead>>;
    /// Deletes the lead and everything about it (timeline, touches, tasks, outbox copies).
    async fn lead_delete(&mut self, id: i64) -> Result<()>;
    /// Brings the stored `next_touch_at` of these leads up to their earliest touch still to go
    /// (`scheduled`, or `sending`: a claimed touch may come back). What is stored is only a
    /// lower bound, and a lead read back works its next touch out from it: so a path that adds
    /// touches or moves one earlier must call this (`enroll_in` in the engine does, for every
    /// plan it starts, the dispatcher's move to nurture among them), and one that only settles touches or moves them later (the
    /// dispatcher's outcomes) need not, which spares the lead's row a write per fired touch.
    async fn leads_refresh_next(&mut self, ids: &[i64]) -> Result<()>;
    async fn suppress(&mut self, hash: &str, kind: &str, now: Millis) -> Result<()>;
    async fn is_suppressed(&mut self, hash: &str) -> Result<bool>;
    /// Which of `hashes` are on the suppression list.
    async fn suppressed_among(&mut self, hashes: &[String]) -> Result<Vec<String>> {
        let mut found = vec![];
        for h in hashes {
            if self.is_suppressed(h).await? {
                found.push(h.clone());
            }
        }
        Ok(found)
    }

    // enrollments and touches
    async fn enrollment_insert(
        &mut self,
        lead_id: i64,
        plan: &str,
        version: i64,
        started_at: Millis,
        touches: &[NewTouch],
    ) -> Result<i64>;
    /// Enrollments with their touches (new leads' plans); their ids in the order given.
    /// Backends may do it in two statements.
    async fn enrollments_insert(&mut self, rows: &[NewEnrollment<'_>]) -> Result<Vec<i64>> {
        let mut ids = Vec::with_capacity(rows.len());
        for e in rows {
            ids.push(
                self.enrollment_insert(e.lead_id, e.plan, e.version, e.started_at, e.touches)
                    .await?,
            );
        }
        Ok(ids)
    }
    async fn enrollments(&mut self, lead_id: i64) -> Result<Vec<Enrollment>>;
    async fn enrollments_for_leads(&mut self, lead_ids: &[i64]) -> Result<Vec<Enrollment>>;
    /// The enrollments `ids` (of the leads `lead_ids`); `next_touch_at` may be left out (the
    /// dispatcher needs only state and start), which backends can do much faster.
    async fn enrollments_by_ids(
        &mut self,
        lead_ids: &[i64],
        ids: &[i64],
    ) -> Result<Vec<Enrollment>> {
        let mut all = self.enrollments_for_leads(lead_ids).await?;
        all.retain(|e| ids.contains(&e.id));
        Ok(all)
    }
    /// Pauses (`paused`) or resumes (`active`) an enrollment. Resuming makes its scheduled
    /// touches due at their planned time, or now when that has passed.
    async fn enrollment_pause(&mut self, id: i64, paused: bool, now: Millis) -> Result<()>;
    async fn enrollment_end(
        &mut self,
        id: i64,
        state: EnrollmentState,
        reason: Option<&str>,
        at: Millis,
    ) -> Result<()>;
    /// Cancels the scheduled touches of an enrollment (their open tasks too); returns how many.
    async fn enrollment_cancel_touches(&mut self, id: i64, reason: &str, at: Millis)
    -> Result<u64>;
    /// Completes the active enrollments among these whose touches are all settled (ended at
    /// `at`) and returns them, in id order: one statement for a whole batch. Each comes with
    /// its lead's id, `(enrollment, lead)`: SQLite looks for a touch still to go through the
    /// lead's touches (an index page the batch's refresh of next touches reads anyway) and
    /// reads only the enrollments that finish; a pair whose lead is not the enrollment's
    /// completes nothing.
    async fn enrollments_complete_finished(
        &mut self,
        ids: &[(i64, i64)],
        at: Millis,
    ) -> Result<Vec<Enrollment>>;
    async fn touches_for_lead(&mut self, lead_id: i64) -> Result<Vec<Touch>>;
    async fn touch(&mut self, id: i64) -> Result<Option<Touch>>;
    /// Marks up to `limit` due, unclaimed touches `sending` under `worker` until `lease_until`.
    async fn claim_due(
        &mut self,
        now: Millis,
        limit: i64,
        worker: &str,
        lease_until: Millis,
    ) -> Result<Vec<Touch>>;
    /// Up to `limit` due, unclaimed touches, speed-to-lead first, for a transaction from
    /// [`Store::write`] on a store with a [single writer](Store::single_writer): that
    /// transaction holds the only write lock until it commits, so no other claimer can take
    /// them meanwhile and they are only read. Whatever of them leaves the process is marked
    /// with [`Tx::touches_mark_sending`] before the commit; the rest is settled in the same
    /// transaction, so a touch never passes through `sending` for nothing. (Where several
    /// writers claim at once, the rows are locked, `FOR UPDATE SKIP LOCKED`.)
    ///
    /// Touches in `except` are passed over without being read (SQLite: their ids are checked
    /// in the due index, before the row is looked up): the dispatcher deciding its next batch
    /// ahead leaves out the one being written.
    async fn touches_due(&mut self, now: Millis, limit: i64, except: &[i64]) -> Result<Vec<Touch>>;
    /// Marks these touches `sending` under `worker` until `lease_until` (see
    /// [`Tx::touches_due`]).
    async fn touches_mark_sending(
        &mut self,
        ids: &[i64],
        worker: &str,
        lease_until: Millis,
    ) -> Result<()>;
    /// Releases a claimed touch back to `scheduled` (nothing was sent).
    async fn touch_release(&mut self, id: i64) -> Result<()>;
    /// Puts a claimed touch back with a later due instant (the window closed meanwhile).
    async fn touch_reschedule(&mut self, id: i64, due_at: Millis, reason: &str) -> Result<()>;
    /// Records the outcome of claimed touches; bumps the leads' attempts for attempts.
    async fn touches_record(&mut self, results: &[TouchResult], now: Millis) -> Result<()>;
    /// Links a due task step to its task (the touch stays `scheduled` until the task is done).
    async fn touch_set_task(&mut self, touch_id: i64, task_id: i64) -> Result<()>;
    /// The dispatcher's batch of due task steps: inserts every task and links each one's touch
    /// to it, as [`Tx::task_insert`] + [`Tx::touch_set_task`] would. Tasks without a
    /// `touch_id` are only inserted. Returns the new task ids in the order given. Backends do
    /// it in a few statements for the whole batch.
    async fn touch_tasks_insert(&mut self, tasks: &[NewTask], now: Millis) -> Result<Vec<i64>> {
        let mut ids = Vec::with_capacity(tasks.len());
        for t in tasks {
            let id = self.task_insert(t, now).await?;
            if let Some(touch_id) = t.touch_id {
                self.touch_set_task(touch_id, id).await?;
            }
            ids.push(id);
        }
        Ok(ids)
    }
    /// `sending` touches whose lease ran out become `uncertain`; returns them.
    async fn touches_expire_sending(&mut self, now: Millis) -> Result<Vec<Touch>>;
    async fn next_due_at(&mut self) -> Result<Option<Millis>>;
    /// Marks the touch after which the lead answered.
    async fn touch_mark_answered(&mut self, lead_id: i64) -> Result<()>;

    // tasks
    async fn task_insert(&mut self, task: &NewTask, now: Millis) -> Result<i64>;
    async fn task(&mut self, id: i64) -> Result<Option<Task>>;
    async fn reassign_task(&mut self, id: i64, to: i64) -> Result<()>;
    async fn tasks(&mut self, filter: &TaskFilter) -> Result<Vec<Task>>;
    /// Of `lead_ids`, those with an open call task not tied to a touch (an engagement's "call
    /// now") created after `since`.
    async fn leads_with_recent_call_task(
        &mut self,
        lead_ids: &[i64],
        since: Millis,
    ) -> Result<Vec<i64>>;
    async fn task_complete(
        &mut self,
        id: i64,
        status: TaskStatus,
        outcome: Option<&str>,
        note: Option<&str>,
        at: Millis,
    ) -> Result<()>;
    /// The touch a completed task step settles, with its attempt number.
    async fn touch_settle(
        &mut self,
        touch_id: i64,
        status: TouchStatus,
        reason: Option<&str>,
        attempt: Option<i64>,
        at: Millis,
    ) -> Result<()>;
    /// Open call tasks on hot leads more than `minutes` overdue and not yet escalated.
    async fn tasks_to_escalate(&mut self, now: Millis, minutes: i64) -> Result<Vec<Task>>;
    async fn task_mark_escalated(&mut self, id: i64, at: Millis) -> Result<()>;
    /// Open tasks that fell due in (from, to]: the `task_due` notifications.
    async fn tasks_due_between(&mut self, from: Millis, to: Millis) -> Result<Vec<Task>>;
    async fn next_task_due_after(&mut self, t: Millis) -> Result<Option<Millis>>;

    // timeline, outbox, notifications
    async fn activity_insert(&mut self, a: &NewActivity) -> Result<i64>;
    /// Many activities at once (the dispatcher's batch); backends may do it in one statement.
    async fn activities_insert(&mut self, all: &[NewActivity]) -> Result<()> {
        for a in all {
            self.activity_insert(a).await?;
        }
        Ok(())
    }
    async fn timeline(
        &mut self,
        lead_id: i64,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Activity>>;
    async fn outbox_insert(&mut self, m: &NewOutbox, now: Millis) -> Result<i64>;
    /// Many outbox copies at once.
    async fn outbox_insert_many(&mut self, all: &[NewOutbox], now: Millis) -> Result<()> {
        for m in all {
            self.outbox_insert(m, now).await?;
        }
        Ok(())
    }
    async fn outbox(
        &mut self,
        assignee: Option<i64>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>>;
    async fn notification_insert(&mut self, n: &NewNotification) -> Result<i64>;
    /// Many notifications at once; returns their ids in the order given (ids increase in that
    /// order, as if inserted one by one).
    async fn notifications_insert(&mut self, all: &[NewNotification]) -> Result<Vec<i64>> {
        let mut ids = Vec::with_capacity(all.len());
        for n in all {
            ids.push(self.notification_insert(n).await?);
        }
        Ok(ids)
    }
    async fn notifications_after(
        &mut self,
        user_id: i64,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<Notification>>;

    /// A user's notifications of one event kind at or after `since`, newest first.
    async fn notifications_recent(
        &mut self,
        user_id: i64,
        event: &str,
        since: Millis,
        limit: i64,
    ) -> Result<Vec<Notification>>;

    /// Demo data: moves a lead's creation, plans and touches `by_ms` into the past.
    async fn shift_lead_back(&mut self, lead_id: i64, by_ms: i64) -> Result<()>;

    // channels
    async fn tracking_insert(&mut self, t: &Tracking) -> Result<()>;
    /// Many tracking tokens at once (the dispatcher's emails of one batch).
    async fn tracking_insert_many(&mut self, all: &[Tracking]) -> Result<()> {
        for t in all {
            self.tracking_insert(t).await?;
        }
        Ok(())
    }
    async fn tracking(&mut self, token: &str) -> Result<Option<Tracking>>;
    /// The tracking rows of many tokens at once (a batch of opens and clicks); unknown tokens
    /// are left out.
    async fn trackings(&mut self, tokens: &[String]) -> Result<Vec<Tracking>>;
    /// Records a click on link `n`; returns how many *other* links of the same message were
    /// clicked within `window_ms` of it.
    async fn click_record(
        &mut self,
        token: &str,
        n: i64,
        at: Millis,
        window_ms: i64,
    ) -> Result<i64>;
    /// Records an inbound webhook's key; false when it was seen before (a replay).
    async fn inbound_first_time(&mut self, key: &str, now: Millis) -> Result<bool>;
    /// The text the SMS provider knows as `provider_id` (Twilio's message SID). Texts only:
    /// an email's provider id (the SMTP Message-ID) is not indexed (migration 0015).
    async fn text_by_provider_id(&mut self, provider_id: &str) -> Result<Option<Touch>>;
    /// Touch `touch_id` if the Message-ID stored for it is `message_id` (the engine reads the
    /// touch's id from the Message-ID's text: no index covers Message-IDs).
    async fn touch_by_message_id(
        &mut self,
        touch_id: i64,
        message_id: &str,
    ) -> Result<Option<Touch>>;
    async fn touch_set_message_id(&mut self, touch_id: i64, message_id: &str) -> Result<()>;
    /// Many `(touch_id, its due_at, message_id)` at once (the due time lets SQLite find the
    /// touch by its key).
    async fn touches_set_message_ids(&mut self, all: &[(i64, Millis, String)]) -> Result<()> {
        for (touch_id, _, mid) in all {
            self.touch_set_message_id(*touch_id, mid).await?;
        }
        Ok(())
    }
    async fn touch_set_delivery(
        &mut self,
        touch_id: i64,
        delivery: &str,
        reason: Option<&str>,
    ) -> Result<()>;
    async fn video_insert(&mut self, v: &Video) -> Result<i64>;
    async fn video(&mut self, id: i64) -> Result<Option<Video>>;

    // intake, consent, pond
    async fn intake_insert(&mut self, i: &Intake) -> Result<i64>;
    async fn intake_by_token(&mut self, token: &str) -> Result<Option<Intake>>;
    async fn intake(&mut self, id: i64) -> Result<Option<Intake>>;
    async fn intakes(&mut self) -> Result<Vec<Intake>>;
    async fn intake_save(&mut self, i: &Intake) -> Result<()>;
    /// Increments and returns the intake's round-robin cursor.
    async fn intake_round_robin_next(&mut self, id: i64) -> Result<i64>;
    async fn consent_insert(&mut self, c: &Consent) -> Result<i64>;
    async fn consents(&mut self, lead_id: i64) -> Result<Vec<Consent>>;
    /// Of these leads, those with recorded consent to texts.
    async fn leads_with_text_consent(&mut self, lead_ids: &[i64]) -> Result<Vec<i64>>;
    async fn pond_insert(&mut self, p: &Pond) -> Result<()>;
    async fn pond(&mut self, lead_id: i64) -> Result<Option<Pond>>;
    /// Takes the lead out of the pond; false when it was no longer there (already claimed).
    async fn pond_take(&mut self, lead_id: i64) -> Result<bool>;
    async fn ponds_for_user(&mut self, user_id: i64) -> Result<Vec<Pond>>;
    async fn ponds_expired(&mut self, now: Millis) -> Result<Vec<Pond>>;
    /// Gives the lead's unassigned open tasks to `user_id`.
    async fn tasks_claim(&mut self, lead_id: i64, user_id: i64) -> Result<u64>;

    // rate limits
    /// Counts a hit on `key` in the window starting at `window_start`; returns the hits in it.
    async fn rate_hit(&mut self, key: &str, window_start: Millis) -> Result<i64>;
    /// The hits on `key` in the window starting at `window_start`, without counting one.
    async fn rate_count(&mut self, key: &str, window_start: Millis) -> Result<i64>;
    /// Forgets windows that started before `before`.
    async fn rate_prune(&mut self, before: Millis) -> Result<()>;

    // reports
    async fn report_rows(&mut self, since: Millis, now: Millis) -> Result<ReportRows>;
}

#[cfg(test)]
mod vacuum_tests {
    use super::vacuum_warnings;

    #[test]
    fn a_server_or_table_without_autovacuum_is_named_and_a_healthy_one_is_not() {
        assert!(vacuum_warnings(true, true, &[]).is_empty());
        let off = vacuum_warnings(false, true, &[]);
        assert_eq!(off.len(), 1);
        assert!(off[0].contains("autovacuum = off"), "{off:?}");
        let counts = vacuum_warnings(true, false, &[]);
        assert_eq!(counts.len(), 1);
        assert!(counts[0].contains("track_counts = off"), "{counts:?}");
        let tables = vacuum_warnings(true, true, &["tasks".into(), "touches".into()]);
        assert_eq!(tables.len(), 1);
        assert!(tables[0].contains("tasks, touches"), "{tables:?}");
        assert_eq!(vacuum_warnings(false, false, &["touches".into()]).len(), 2);
    }
}
