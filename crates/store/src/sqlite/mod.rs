//! The SQLite backend: one file, WAL, foreign keys on, one writer connection per process
//! (so writers queue in-process instead of failing with SQLITE_BUSY) and a pool of readers.

use crate::*;
use async_trait::async_trait;
use relentless_core::types::{EnrollmentState, TaskStatus, TouchStatus};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Builds SQL from trusted pieces (column lists, integer id lists); values are always bound.
macro_rules! sql {
    ($($t:tt)*) => { sqlx::AssertSqlSafe(format!($($t)*)) };
}

pub struct SqliteStore {
    writer: SqlitePool,
    /// Committed write transactions of this process, for [`WriteMark`].
    commits: Arc<std::sync::atomic::AtomicU64>,
    /// Rung by every committed write; the checkpointer (see `checkpointer`) answers it.
    wrote: Arc<Notify>,
    checkpointer: tokio::task::JoinHandle<()>,
    /// Held while a stuck writer connection is replaced (see `write`).
    recovering: tokio::sync::Mutex<()>,
    reader: SqlitePool,
    url: String,
}

/// SQLite's primary result code for "attempt to write a readonly database".
const SQLITE_READONLY: i64 = 8;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or `sqlite::memory:`
    /// is not supported: every connection would get its own empty database).
    pub async fn open(url: &str) -> Result<SqliteStore> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-8000")
            // The checkpointer task copies the WAL back on its own connection (its own thread,
            // so the other core), out of the writers' way; a commit checkpoints by itself once
            // the WAL is this long (see `checkpointer` for why it still must now and then).
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT.to_string());
        let commits = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = commits.clone();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            // One connection for the life of the store; and should it ever be replaced, the
            // new one's `data_version` starts afresh, so it counts as a commit: no
            // [`WriteMark`] taken on the old one may match a mark taken on it.
            .max_lifetime(None)
            .idle_timeout(None)
            .after_connect(move |_, _| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Box::pin(async { Ok::<(), sqlx::Error>(()) })
            })
            // The writer gets a bigger page cache than the readers (RSS stays bounded).
            .connect_with(
                opts.clone()
                    .pragma("cache_size", "-24000")
                    // Named for profiles and `bench/threads.py`.
                    .thread_name(|id| format!("sqlite-writer-{id}")),
            )
            .await?;
        // SQLite opens a file it cannot write read-only without a word, and a database whose
        // WAL is already set up needs no write to open: without this probe a server on a
        // read-only disk would start and then fail every change. Writing the schema cookie
        // back unchanged is the smallest real write there is.
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&writer)
            .await?;
        sqlx::query(sql!("PRAGMA user_version = {version}"))
            .execute(&writer)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db)
                    if db
                        .code()
                        .and_then(|c| c.parse::<i64>().ok())
                        .map(|c| c & 0xff)
                        == Some(SQLITE_READONLY) =>
                {
                    StoreError::Config(format!("the database is read-only: {db}"))
                }
                _ => e.into(),
            })?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone().thread_name(|id| format!("sqlite-reader-{id}")))
            .await?;
        let wrote = Arc::new(Notify::new());
        let checkpointer = tokio::spawn(checkpointer(
            opts.clone()
                .pragma("cache_size", "-2000")
                .thread_name(|id| format!("sqlite-checkpoint-{id}")),
            wrote.clone(),
        ));
        Ok(SqliteStore {
            writer,
            commits,
            wrote,
            checkpointer,
            recovering: tokio::sync::Mutex::new(()),
            reader,
            url: url.to_string(),
        })
    }

    /// The URL this store was opened with.
    pub fn url(&self) -> String {
        self.url.clone()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.checkpointer.abort();
    }
}

/// WAL frames (pages) after which a commit checkpoints by itself: 256 MB of WAL. At 16,000
/// the dispatcher's writer paid for whole checkpoints under a 1,000,000-lead backlog (8 % of
/// its time); 64,000 gave +10 % fired touches (BENCHMARKS.md).
const WAL_AUTOCHECKPOINT: i64 = 64_000;

/// What the checkpointer does after a pass that left the WAL `frames` long; `grew`: its
/// length changed since the pass before (something was committed in between).
///
/// Why the writer checkpoints at all: SQLite starts the WAL over from its beginning only when
/// a write transaction begins with every frame copied back, and under a backlog the writer
/// begins its next transaction the moment one commits, long before a pass on another
/// connection is done. So the WAL only grows until a commit crosses [`WAL_AUTOCHECKPOINT`]
/// and copies back itself whatever is left, on the writer's thread, before the next
/// transaction begins (then the WAL starts over). That commit's cost is what is left: with
/// passes half a second apart, up to a second of commits (~400 ms at 1,000,000 leads, once
/// every ~50 batches, a fifth of the dispatcher's time; BENCHMARKS.md). From half the limit
/// on, passes therefore follow one another without a pause, so that the commit crossing it
/// finds at most one short pass's frames left; past the limit the rest is that commit's, and
/// a pass running then would only make it skip its checkpoint (busy) and let the WAL grow.
#[derive(Debug, PartialEq, Eq)]
enum NextPass {
    /// Wait for the next commit, then let commits gather for [`CHECKPOINT_GATHER`].
    Gather,
    /// Copy back again at once.
    Now,
}

/// How long commits gather before a pass: a page changed by several of them (index pages,
/// appended tables, the B-trees' upper levels) is copied back once. Half a second against
/// 50 ms: 6 % fewer bytes written per fired touch at 1,000,000 leads and less CPU taken from
/// the writer (BENCHMARKS.md).
const CHECKPOINT_GATHER: Duration = Duration::from_millis(500);

fn next_pass(frames: i64, grew: bool) -> NextPass {
    if grew && (WAL_AUTOCHECKPOINT / 2..WAL_AUTOCHECKPOINT).contains(&frames) {
        NextPass::Now
    } else {
        NextPass::Gather
    }
}

/// Copies committed WAL frames back into the database file, half a second after writes (at
/// once while the WAL is long, see [`next_pass`]), on a connection of its own. Left to
/// SQLite's automatic checkpoint, this work (page writes and an fsync of the database file)
/// ran inside whichever commit crossed the threshold: a fifth of the dispatcher's time at
/// 1,000,000 leads (BENCHMARKS.md). A PASSIVE checkpoint never blocks readers or the writer;
/// what it cannot copy yet is copied the next time.
async fn checkpointer(opts: SqliteConnectOptions, wrote: Arc<Notify>) {
    use sqlx::ConnectOptions;
    let mut conn = None;
    let mut next = NextPass::Gather;
    let mut last_frames = 0;
    loop {
        if next == NextPass::Gather {
            wrote.notified().await;
            tokio::time::sleep(CHECKPOINT_GATHER).await;
        }
        next = NextPass::Gather;
        if conn.is_none() {
            match opts.connect().await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "the WAL checkpointer cannot connect; SQLite's automatic checkpoint stays");
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        // (busy, frames in the WAL, frames copied back); busy: another checkpoint held the
        // checkpoint lock (then the frame counts are -1).
        let pass: std::result::Result<(i64, i64, i64), _> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&mut *c)
                .await;
        match pass {
            // (A busy pass says nothing of the WAL's length: it is not compared against.)
            Ok((0, frames, _)) => {
                next = next_pass(frames, frames != last_frames);
                last_frames = frames;
            }
            Ok(_busy) => {}
            Err(e) => {
                // A full disk, for one: the frames stay in the WAL, nothing is lost.
                tracing::warn!(error = %e, "WAL checkpoint failed; retrying after the next write");
                conn = None;
            }
        }
    }
}

impl SqliteStore {
    /// `BEGIN IMMEDIATE` on the one writer connection.
    async fn begin_write(&self) -> Result<SqliteTx> {
        // IMMEDIATE takes the write lock up front: no deadlock from upgrading a read later.
        let mut attempt = 0;
        let tx = loop {
            match self.writer.begin_with("BEGIN IMMEDIATE").await {
                Ok(tx) => break tx,
                // A COMMIT that failed (the disk was full) leaves the writer connection marked
                // as inside a transaction that SQLite has already rolled back (sqlx's ROLLBACK
                // then fails too), so every later BEGIN would fail and the server could never
                // write again: that connection is closed and a fresh one takes its place. Two
                // requests may meet it at once; one recovers at a time, and a connection that
                // is not stuck is kept. (sqlx's own error for a BEGIN on a connection it counts
                // as inside a transaction: matched by variant, not by its message's wording.)
                Err(e @ sqlx::Error::InvalidSavePointStatement) if attempt < 3 => {
                    attempt += 1;
                    let _one_at_a_time = self.recovering.lock().await;
                    let mut conn = self.writer.acquire().await?;
                    if sqlx::Connection::is_in_transaction(&*conn) {
                        tracing::warn!(error = %e, "reopening the database's writer connection");
                        // (Its replacement counts as a commit: see `after_connect`.)
                        conn.close_on_drop();
                    }
                    drop(conn);
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(SqliteTx {
            tx,
            wrote: Some((self.wrote.clone(), self.commits.clone())),
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn write(&self) -> Result<Box<dyn Tx>> {
        Ok(Box::new(self.begin_write().await?))
    }
    async fn renew_lease(&self, ids: &[i64], worker: &str, lease_until: Millis) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        // A write transaction like any other (one writer; counted as a commit).
        let mut t = self.begin_write().await?;
        let r = sqlx::query(sql!(
            "UPDATE touches SET lease_until = ? WHERE id IN ({}) AND status = 'sending' AND claimed_by = ?",
            ids_list(ids)
        ))
        .bind(lease_until)
        .bind(worker)
        .execute(&mut *t.tx)
        .await?;
        Box::new(t).commit().await?;
        Ok(r.rows_affected())
    }
    async fn read(&self) -> Result<Box<dyn Tx>> {
        let tx = self.reader.begin().await?;
        Ok(Box::new(SqliteTx { tx, wrote: None }))
    }
    async fn migrate(&self) -> Result<()> {
        // A migration that rebuilds a table (0016: every touch) sorts millions of rows, for its
        // copy and for each index. With the connection's `temp_store = memory` SQLite's
        // sorter spilled to RAM: 1.8 GB at 1,000,000 leads. In temporary files the process
        // peaked at 90 MB, and the migration took no longer (76.8 s against 80.4 s,
        // BENCHMARKS.md).
        // (The writer pool is its one connection, so each statement below runs on it.)
        sqlx::query("PRAGMA temp_store = FILE")
            .execute(&self.writer)
            .await?;
        let ran = MIGRATOR.run(&self.writer).await;
        let reset = sqlx::query("PRAGMA temp_store = MEMORY")
            .execute(&self.writer)
            .await;
        // A failed migration's error comes first: it is the one that says what is wrong.
        ran?;
        reset?;
        Ok(())
    }
    async fn backup(&self, path: &str) -> Result<()> {
        // VACUUM INTO writes a consistent snapshot while readers and writers carry on.
        if std::path::Path::new(path).exists() {
            return Err(StoreError::Conflict(format!("backup file {path}")));
        }
        sqlx::query("VACUUM INTO ?")
            .bind(path)
            .execute(&self.reader)
            .await?;
        Ok(())
    }
    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
    /// On write transactions: the checkpointer's bell and the store's commit count.
    wrote: Option<(Arc<Notify>, Arc<std::sync::atomic::AtomicU64>)>,
}

impl SqliteTx {
    /// Runs an `UPDATE touches … FROM v WHERE touches.id = v.id` whose `v` also gives each
    /// touch's `due_at`, so that SQLite finds the row by the table's key (migration 0016)
    /// instead of a lookup in `touches_id` per touch (a random page each: a fifth of the
    /// dispatcher's page reads at 1,000,000 leads). `build` is given the `INDEXED BY` to put
    /// after the table's name. Should fewer than `n` rows be written (a touch moved since its
    /// due time was read; nothing moves a claimed touch today), the statement runs again by
    /// id alone: the same values, so a row written twice ends as if written once.
    async fn update_touches_by_key(
        &mut self,
        n: usize,
        build: impl Fn(&'static str) -> QueryBuilder<Sqlite>,
    ) -> Result<()> {
        // Left to itself SQLite reaches the row through `touches_id` (which holds the key too)
        // even given the whole key; `sqlite_autoindex_touches_1` is its name for the table's
        // own key.
        let mut q = build(" INDEXED BY sqlite_autoindex_touches_1");
        q.push(" AND touches.due_at = v.due_at");
        if q.build().execute(&mut *self.tx).await?.rows_affected() < n as u64 {
            build("").build().execute(&mut *self.tx).await?;
        }
        Ok(())
    }
    /// The ids the next `n` rows inserted into `table` get, in order, as SQLite would hand
    /// them out: past the largest id in the table and, for an AUTOINCREMENT table, past the
    /// largest it ever handed out (`sqlite_sequence`). Only on a write transaction: it holds
    /// SQLite's one write lock, so nothing else inserts meanwhile. A batch's rows take their
    /// ids from here instead of `RETURNING` them: the order of `RETURNING` rows is not
    /// promised, and each row returned is a hand-over from sqlx's thread.
    async fn next_ids(&mut self, table: &str, n: usize) -> Result<std::ops::Range<i64>> {
        let first: i64 = sqlx::query_scalar(sql!(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0),
                        COALESCE((SELECT MAX(id) FROM {table}), 0)) + 1"
        ))
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(first..first + n as i64)
    }
}

fn map_unique(e: sqlx::Error, field: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return StoreError::Conflict(field.to_string());
    }
    StoreError::Database(e)
}

/// A lead's columns, from `leads l`. Its next touch is worked out here, not read from the row:
/// `leads.next_touch_at` is only a lower bound of it (what each path that adds a touch or
/// moves one earlier last wrote; see `Tx::leads_refresh_next`), so that firing a touch does
/// not rewrite its lead's row for it. The search starts at that bound in `touches_lead`, so
/// it reads only the touches settled since that bound was written (a lead's plans' worth at
/// most).
const LEAD_COLS: &str = lead_cols!(
    "(SELECT t.due_at FROM touches t INDEXED BY touches_lead \
      WHERE t.lead_id = l.id AND t.due_at >= l.next_touch_at AND t.status = 'scheduled' ORDER BY t.due_at LIMIT 1)"
);
/// [`LEAD_COLS`] without the next touch (see `leads_by_ids_unplanned`).
const LEAD_COLS_UNPLANNED: &str = lead_cols!("NULL");

/// A touch's columns, its message from `touch_bodies` (migration 0013 says why it lives there).
/// Subqueries rather than a join so that `RETURNING` can use it too; only `FROM touches`
/// (not aliased).
const TOUCH_COLS: &str = "id, enrollment_id, lead_id, plan, step, channel, template, planned_at, due_at, status, \
    reason, attempt, sent_channel, \
    (SELECT b.subject FROM touch_bodies b WHERE b.id = touches.body_id) AS subject, \
    (SELECT b.content FROM touch_bodies b WHERE b.id = touches.body_id) AS content, \
    provider_id, delivery, task_id, settled_at";

const TASK_COLS: &str = "id, lead_id, touch_id, assignee_id, kind, due_at, script, voicemail, status, outcome, note, \
    escalated_at, created_at, completed_at";

const USER_COLS: &str =
    "id, email, name, phone, role, password_hash, active, notify_sms, notify_email, created_at";

fn ids_list(ids: &[i64]) -> String {
    // Integers only: safe to inline, and keeps one statement for any number of ids.
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn email_key(email: &Option<String>) -> Option<String> {
    email.as_ref().map(|e| e.to_lowercase())
}

#[async_trait]
impl Tx for SqliteTx {
    async fn commit(self: Box<Self>) -> Result<()> {
        // Counted before the COMMIT: a commit whose caller stops waiting (a request dropped
        // mid-commit) still lands, and counting one that fails only costs a re-read.
        if let Some((_, commits)) = &self.wrote {
            commits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.tx.commit().await?;
        if let Some((bell, _)) = &self.wrote {
            bell.notify_one();
        }
        Ok(())
    }

    async fn write_mark(&mut self) -> Result<Option<WriteMark>> {
        let Some((_, commits)) = &self.wrote else {
            return Ok(None);
        };
        // This transaction holds the one writer connection, so the count cannot move under
        // it; `data_version` moves when another connection (another process) commits.
        let commits = commits.load(std::sync::atomic::Ordering::SeqCst);
        let data_version: i64 = sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(Some(WriteMark {
            commits,
            data_version,
        }))
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
             VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
        let id = sqlx::query_scalar("INSERT INTO users (email, name, phone, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id")
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
            sqlx::query_as(sql!("SELECT {USER_COLS} FROM users WHERE id = ?"))
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    async fn user_by_email(&mut self, email: &str) -> Result<Option<User>> {
        Ok(sqlx::query_as(sql!(
            "SELECT {USER_COLS} FROM users WHERE email = ? COLLATE NOCASE"
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
        sqlx::query("UPDATE users SET email = ?, name = ?, phone = ?, role = ?, password_hash = ?, active = ?, notify_sms = ?, notify_email = ? WHERE id = ?")
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
        sqlx::query("INSERT INTO api_tokens (user_id, token_hash, created_at) VALUES (?, ?, ?)")
            .bind(user_id)
            .bind(token_hash)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn user_by_token(&mut self, token_hash: &str) -> Result<Option<User>> {
        Ok(sqlx::query_as(sql!(
            "SELECT {} FROM users u JOIN api_tokens t ON t.user_id = u.id WHERE t.token_hash = ? AND u.active = 1",
            USER_COLS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
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
            "INSERT INTO sessions (id_hash, user_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
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
            "SELECT user_id, csrf FROM sessions WHERE id_hash = ? AND expires_at > ?",
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
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn sessions_delete_for(&mut self, user_id: Option<i64>, now: Millis) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE user_id = ? OR expires_at <= ?")
            .bind(user_id)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn reassign_all(&mut self, from: i64, to: i64) -> Result<(u64, u64)> {
        let leads = sqlx::query("UPDATE leads SET assigned_to = ? WHERE assigned_to = ?")
            .bind(to)
            .bind(from)
            .execute(&mut *self.tx)
            .await?;
        let tasks = sqlx::query(
            "UPDATE tasks SET assignee_id = ? WHERE assignee_id = ? AND status = 'open'",
        )
        .bind(to)
        .bind(from)
        .execute(&mut *self.tx)
        .await?;
        Ok((leads.rows_affected(), tasks.rows_affected()))
    }

    async fn plan_save(&mut self, p: &PlanRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO plans (slug, name, version, source, updated_at) VALUES (?, ?, ?, ?, ?)
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
            "SELECT slug, name, version, source, updated_at FROM plans WHERE slug = ?",
        )
        .bind(slug)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn plans(&mut self) -> Result<Vec<PlanRow>> {
        Ok(sqlx::query_as(
            "SELECT slug, name, version, source, updated_at FROM plans ORDER BY slug",
        )
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn template_save(&mut self, t: &TemplateRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO templates (slug, channel, name, subject, body, voicemail, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
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
        Ok(sqlx::query_as("SELECT slug, channel, name, subject, body, voicemail, updated_at FROM templates WHERE slug = ?")
            .bind(slug)
            .fetch_optional(&mut *self.tx)
            .await?)
    }

    async fn templates(&mut self) -> Result<Vec<TemplateRow>> {
        Ok(sqlx::query_as("SELECT slug, channel, name, subject, body, voicemail, updated_at FROM templates ORDER BY slug").fetch_all(&mut *self.tx).await?)
    }

    async fn lead_insert(&mut self, l: &Lead) -> Result<i64> {
        let id = sqlx::query_scalar(
            "INSERT INTO leads (first_name, last_name, email, email_key, phone, timezone, region, source, level, stage, preferred_channel,
               assigned_to, external_id, tags, notes, property_address, sms_opt_out, email_opt_out, do_not_call, email_bad, phone_bad,
               attempts, created_at, updated_at, next_touch_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
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
        .bind(serde_json::to_string(&l.tags).unwrap_or_else(|_| "[]".into()))
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
        Ok(
            sqlx::query_as(sql!("SELECT {LEAD_COLS} FROM leads l WHERE id = ?"))
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    async fn leads_by_ids(&mut self, ids: &[i64]) -> Result<Vec<Lead>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        Ok(sqlx::query_as(sql!(
            "SELECT {LEAD_COLS} FROM leads l WHERE id IN ({})",
            ids_list(ids)
        ))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn leads_by_ids_unplanned(&mut self, ids: &[i64]) -> Result<Vec<Lead>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        Ok(sqlx::query_as(sql!(
            "SELECT {LEAD_COLS_UNPLANNED} FROM leads l WHERE id IN ({})",
            ids_list(ids)
        ))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn leads_progress(&mut self, ids: &[i64]) -> Result<Vec<(i64, i64, bool)>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        Ok(sqlx::query_as(sql!(
            "SELECT id, attempts, answered_at IS NOT NULL FROM leads WHERE id IN ({})",
            ids_list(ids)
        ))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn lead_match(
        &mut self,
        external_id: Option<&str>,
        email_key: Option<&str>,
        phone: Option<&str>,
    ) -> Result<Option<Lead>> {
        if external_id.is_none() && email_key.is_none() && phone.is_none() {
            return Ok(None);
        }
        // One statement (SQLite answers the OR from the three indexes): the external id wins,
        // then the email, then the phone; the oldest lead among equals.
        Ok(sqlx::query_as(sql!(
            "SELECT {LEAD_COLS} FROM leads l
             WHERE external_id = ?1 OR email_key = ?2 OR phone = ?3
             ORDER BY CASE WHEN external_id = ?1 THEN 0 WHEN email_key = ?2 THEN 1 ELSE 2 END, id
             LIMIT 1"
        ))
        .bind(external_id)
        .bind(email_key)
        .bind(phone)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn leads_make_hot(&mut self, ids: &[i64], now: Millis) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(sql!(
            "UPDATE leads SET level = 'hot', updated_at = ? WHERE id IN ({}) AND level != 'hot'",
            ids_list(ids)
        ))
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn lead_save(&mut self, l: &Lead) -> Result<()> {
        sqlx::query(
            "UPDATE leads SET first_name = ?, last_name = ?, email = ?, email_key = ?, phone = ?, timezone = ?, region = ?, source = ?,
               level = ?, stage = ?, preferred_channel = ?, assigned_to = ?, external_id = ?, tags = ?, notes = ?, property_address = ?,
               sms_opt_out = ?, email_opt_out = ?, do_not_call = ?, email_bad = ?, phone_bad = ?, attempts = ?, first_attempt_at = ?,
               first_call_at = ?, answered_at = ?, answered_on = ?, attempts_at_answer = ?, last_touch_at = ?, updated_at = ?
             WHERE id = ?",
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
        .bind(serde_json::to_string(&l.tags).unwrap_or_else(|_| "[]".into()))
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
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {LEAD_COLS} FROM leads l"));
        let only_name = f.email_key.is_none()
            && f.phone.is_none()
            && f.level.is_none()
            && f.stage.is_none()
            && f.source.is_none()
            && f.assigned_to.is_none()
            && f.below_attempts.is_none()
            && f.no_touch_since.is_none();
        if let Some(words) = &f.name_query {
            // No words (only punctuation): nothing matches, rather than an FTS5 syntax error.
            let fq = fts_query(words);
            if only_name {
                // FTS5 walks its matches in rowid order: the page comes straight from the index
                // instead of sorting every lead with a common surname.
                q.push(" WHERE l.id IN (SELECT rowid FROM leads_fts WHERE leads_fts MATCH ")
                    .push_bind(fq.clone());
                if let Some(b) = f.before_id {
                    q.push(" AND rowid < ").push_bind(b);
                }
                q.push(" ORDER BY rowid DESC LIMIT ")
                    .push_bind(f.limit)
                    .push(")");
                if fq.is_empty() {
                    q.push(" AND 0");
                }
                q.push(" ORDER BY l.id DESC");
                return Ok(q.build_query_as().fetch_all(&mut *self.tx).await?);
            }
            q.push(" JOIN leads_fts ON leads_fts.rowid = l.id AND leads_fts MATCH ")
                .push_bind(fq.clone());
            if fq.is_empty() {
                q.push(" AND 0");
            }
        }
        q.push(" WHERE 1 = 1");
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
        sqlx::query("DELETE FROM outbox WHERE lead_id = ?")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("DELETE FROM notifications WHERE lead_id = ?")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("DELETE FROM touches WHERE lead_id = ?")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("DELETE FROM tasks WHERE lead_id = ?")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        let r = sqlx::query("DELETE FROM leads WHERE id = ?")
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
        sqlx::query(sql!(
            "UPDATE leads SET next_touch_at = (SELECT MIN(due_at) FROM touches t WHERE t.lead_id = leads.id AND t.status IN ('scheduled', 'sending')) WHERE id IN ({})",
            ids_list(ids)
        ))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn suppress(&mut self, hash: &str, kind: &str, now: Millis) -> Result<()> {
        sqlx::query("INSERT INTO suppressions (hash, kind, created_at) VALUES (?, ?, ?) ON CONFLICT (hash) DO NOTHING")
            .bind(hash)
            .bind(kind)
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn is_suppressed(&mut self, hash: &str) -> Result<bool> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM suppressions WHERE hash = ?")
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
        let ids = self
            .enrollments_insert(&[NewEnrollment {
                lead_id,
                plan,
                version,
                started_at,
                touches,
            }])
            .await?;
        ids.first()
            .copied()
            .ok_or_else(|| StoreError::Corrupt("an enrollment insert returned no id".into()))
    }

    async fn enrollments_insert(&mut self, rows: &[NewEnrollment<'_>]) -> Result<Vec<i64>> {
        let mut ids = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(200) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO enrollments (lead_id, plan, plan_version, state, started_at) ",
            );
            q.push_values(chunk, |mut b, e| {
                b.push_bind(e.lead_id)
                    .push_bind(e.plan.to_string())
                    .push_bind(e.version)
                    .push_bind("active")
                    .push_bind(e.started_at);
            });
            q.push(" RETURNING id");
            let mut got: Vec<i64> = q.build_query_scalar().fetch_all(&mut *self.tx).await?;
            // Ids are handed out in VALUES order; RETURNING's order is unspecified.
            got.sort_unstable();
            ids.extend(got);
        }
        let touches: Vec<(i64, &NewEnrollment, &NewTouch)> = ids
            .iter()
            .zip(rows)
            .flat_map(|(id, e)| e.touches.iter().map(move |t| (*id, e, t)))
            .collect();
        // `touches` is keyed by when each falls due (migration 0016) and hands out no ids.
        let touch_ids: Vec<i64> = self.next_ids("touches", touches.len()).await?.collect();
        for (chunk, chunk_ids) in touches.chunks(50).zip(touch_ids.chunks(50)) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO touches (id, enrollment_id, lead_id, plan, step, channel, template, planned_at, due_at, reason, created_at) ",
            );
            q.push_values(
                chunk.iter().zip(chunk_ids),
                |mut b, ((id, e, t), touch_id)| {
                    b.push_bind(*touch_id)
                        .push_bind(*id)
                        .push_bind(e.lead_id)
                        .push_bind(e.plan.to_string())
                        .push_bind(t.step)
                        .push_bind(t.channel.as_str())
                        .push_bind(t.template.clone())
                        .push_bind(t.planned_at)
                        .push_bind(t.due_at)
                        .push_bind(t.reason.clone())
                        .push_bind(e.started_at);
                },
            );
            q.build().execute(&mut *self.tx).await?;
        }
        Ok(ids)
    }

    async fn suppressed_among(&mut self, hashes: &[String]) -> Result<Vec<String>> {
        if hashes.is_empty() {
            return Ok(vec![]);
        }
        Ok(sqlx::query_scalar(
            "SELECT hash FROM suppressions WHERE hash IN (SELECT value FROM json_each(?))",
        )
        .bind(sqlx::types::Json(hashes))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn enrollments(&mut self, lead_id: i64) -> Result<Vec<Enrollment>> {
        self.enrollments_for_leads(&[lead_id]).await
    }

    async fn enrollments_by_ids(
        &mut self,
        _lead_ids: &[i64],
        ids: &[i64],
    ) -> Result<Vec<Enrollment>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        Ok(sqlx::query_as(sql!(
            "SELECT id, lead_id, plan, plan_version, state, reason, started_at, ended_at, NULL AS next_touch_at
             FROM enrollments WHERE id IN ({})",
            ids_list(ids)
        ))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn activities_insert(&mut self, all: &[NewActivity]) -> Result<()> {
        for chunk in all.chunks(100) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO activities (lead_id, kind, detail, data, actor_id, at) ",
            );
            q.push_values(chunk, |mut b, a| {
                b.push_bind(a.lead_id)
                    .push_bind(a.kind.clone())
                    .push_bind(a.detail.clone())
                    .push_bind(a.data.as_ref().map(|d| d.to_string()))
                    .push_bind(a.actor_id)
                    .push_bind(a.at);
            });
            q.build().execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn outbox_insert_many(&mut self, all: &[NewOutbox], now: Millis) -> Result<()> {
        for chunk in all.chunks(100) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO outbox (channel, to_addr, subject, body, lead_id, touch_id, created_at) ",
            );
            q.push_values(chunk, |mut b, m| {
                b.push_bind(m.channel.as_str())
                    .push_bind(m.to_addr.clone())
                    .push_bind(m.subject.clone())
                    .push_bind(m.body.clone())
                    .push_bind(m.lead_id)
                    .push_bind(m.touch_id)
                    .push_bind(now);
            });
            q.build().execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn enrollments_for_leads(&mut self, lead_ids: &[i64]) -> Result<Vec<Enrollment>> {
        if lead_ids.is_empty() {
            return Ok(vec![]);
        }
        Ok(sqlx::query_as(sql!(
            "SELECT e.id, e.lead_id, e.plan, e.plan_version, e.state, e.reason, e.started_at, e.ended_at,
               (SELECT MIN(t.due_at) FROM touches t WHERE t.enrollment_id = e.id AND t.status = 'scheduled') AS next_touch_at
             FROM enrollments e WHERE e.lead_id IN ({}) ORDER BY e.id",
            ids_list(lead_ids)
        ))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn enrollment_pause(&mut self, id: i64, paused: bool, now: Millis) -> Result<()> {
        let (state, reason) = if paused {
            ("paused", Some("paused by the agent"))
        } else {
            ("active", None)
        };
        sqlx::query("UPDATE enrollments SET state = ?, reason = ? WHERE id = ? AND state IN ('active', 'paused')")
            .bind(state)
            .bind(reason)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        if !paused {
            sqlx::query("UPDATE touches SET due_at = MAX(planned_at, ?) WHERE enrollment_id = ? AND status = 'scheduled'")
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
        sqlx::query("UPDATE enrollments SET state = ?, reason = ?, ended_at = ? WHERE id = ?")
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
            "UPDATE tasks SET status = 'cancelled', completed_at = ?, note = ? WHERE status = 'open' AND touch_id IN
               (SELECT id FROM touches WHERE enrollment_id = ? AND status = 'scheduled')",
        )
        .bind(at)
        .bind(reason)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        let r = sqlx::query("UPDATE touches SET status = 'cancelled', reason = ?, settled_at = ? WHERE enrollment_id = ? AND status = 'scheduled'")
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
        // A touch still to go is looked for among the lead's touches (`touches_lead`, where a
        // lead's touches are neighbours; the unary `+` keeps SQLite off
        // `touches_enrollment`, a random page of its own per enrollment), latest first: a plan
        // that goes on has its last touch still to go, so one row is read, where the earliest
        // first read every touch already settled (+7 % fired touches at 1,000,000 leads,
        // BENCHMARKS.md). An enrollment's row is read only when none is left: most of a
        // batch's plans go on. Before, every enrollment row and its `touches_enrollment` page
        // were read: a third of the dispatcher's page reads at 1,000,000 leads (BENCHMARKS.md).
        let pairs = ids
            .iter()
            .map(|(e, l)| format!("({e},{l})"))
            .collect::<Vec<_>>()
            .join(",");
        let mut done: Vec<Enrollment> = sqlx::query_as(sql!(
            "WITH v(eid, lid) AS (VALUES {pairs})
             UPDATE enrollments SET state = 'completed', reason = NULL, ended_at = ?
             WHERE id IN (SELECT eid FROM v WHERE (
                     SELECT 1 FROM touches t WHERE t.lead_id = v.lid AND +t.enrollment_id = v.eid
                       AND t.status IN ('scheduled', 'sending') ORDER BY t.due_at DESC LIMIT 1) IS NULL)
               AND state = 'active'
             RETURNING id, lead_id, plan, plan_version, state, reason, started_at, ended_at, NULL AS next_touch_at"
        ))
        .bind(at)
        .fetch_all(&mut *self.tx)
        .await?;
        // The search above trusts each pair's lead: a pair naming another lead than its
        // enrollment's finds none of that enrollment's touches and would complete a plan
        // that goes on. Checked on the rows returned (the few that finish), not in SQL, where
        // it cost a scan of the pairs per finishing row; the caller's transaction then rolls
        // back.
        if let Some(e) = done.iter().find(|e| {
            !ids.iter()
                .any(|&(eid, lid)| eid == e.id && lid == e.lead_id)
        }) {
            return Err(StoreError::Misuse(format!(
                "enrollment {} was given with another lead than its own ({})",
                e.id, e.lead_id
            )));
        }
        done.sort_by_key(|e| e.id);
        Ok(done)
    }

    async fn touches_for_lead(&mut self, lead_id: i64) -> Result<Vec<Touch>> {
        Ok(sqlx::query_as(sql!(
            "SELECT {TOUCH_COLS} FROM touches WHERE lead_id = ? ORDER BY due_at, id"
        ))
        .bind(lead_id)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn touch(&mut self, id: i64) -> Result<Option<Touch>> {
        Ok(
            sqlx::query_as(sql!("SELECT {TOUCH_COLS} FROM touches WHERE id = ?"))
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
        // One statement each: the rows it picks are the rows it marks, so two claimers never
        // share one. New leads' speed-to-lead touches first, so a backlog never delays them.
        let mut out: Vec<Touch> = sqlx::query_as(sql!(
            "UPDATE touches SET status = 'sending', claimed_by = ?, lease_until = ?
             WHERE id IN (SELECT id FROM touches WHERE status = 'scheduled' AND task_id IS NULL AND plan = 'speed-to-lead' AND due_at <= ? ORDER BY due_at LIMIT ?)
             RETURNING {TOUCH_COLS}"
        ))
        .bind(worker)
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?;
        let rest = limit - out.len() as i64;
        if rest > 0 {
            let more: Vec<Touch> = sqlx::query_as(sql!(
                "UPDATE touches SET status = 'sending', claimed_by = ?, lease_until = ?
                 WHERE id IN (SELECT id FROM touches WHERE status = 'scheduled' AND task_id IS NULL AND due_at <= ? ORDER BY due_at LIMIT ?)
                 RETURNING {TOUCH_COLS}"
            ))
            .bind(worker)
            .bind(lease_until)
            .bind(now)
            .bind(rest)
            .fetch_all(&mut *self.tx)
            .await?;
            out.extend(more);
        }
        Ok(out)
    }

    async fn touches_due(&mut self, now: Millis, limit: i64, except: &[i64]) -> Result<Vec<Touch>> {
        // Read only: this transaction holds SQLite's one write lock (BEGIN IMMEDIATE) until it
        // commits. Each due touch used to be marked `sending` here and settled a moment later
        // in the same transaction: two row writes and two index changes for one outcome.
        // (`id NOT IN` is checked on the due index's entry: a touch passed over is never read
        // from the table.)
        let passed_over = if except.is_empty() {
            String::new()
        } else {
            format!(" AND id NOT IN ({})", ids_list(except))
        };
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
                 WHERE status = 'scheduled' AND task_id IS NULL{only}{skip}{passed_over} AND due_at <= ?
                 ORDER BY due_at LIMIT ?"
            ))
            .bind(now)
            .bind(rest)
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
        sqlx::query(sql!(
            "UPDATE touches SET status = 'sending', claimed_by = ?, lease_until = ? WHERE id IN ({})",
            ids_list(ids)
        ))
        .bind(worker)
        .bind(lease_until)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn touch_release(&mut self, id: i64) -> Result<()> {
        sqlx::query("UPDATE touches SET status = 'scheduled', claimed_by = NULL, lease_until = NULL WHERE id = ? AND status = 'sending'")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn touch_reschedule(&mut self, id: i64, due_at: Millis, reason: &str) -> Result<()> {
        sqlx::query("UPDATE touches SET status = 'scheduled', due_at = ?, reason = ?, claimed_by = NULL, lease_until = NULL WHERE id = ?")
            .bind(due_at)
            .bind(reason)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn touches_record(&mut self, results: &[TouchResult], now: Millis) -> Result<()> {
        // One attempts update per lead (not per touch): the lead's new count gives each of its
        // touches its attempt number, in order.
        let mut per_lead: Vec<(i64, i64)> = Vec::new();
        let mut index: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
        for r in results.iter().filter(|r| r.attempt) {
            match index.get(&r.lead_id) {
                Some(&i) => per_lead[i].1 += 1,
                None => {
                    index.insert(r.lead_id, per_lead.len());
                    per_lead.push((r.lead_id, 1));
                }
            }
        }
        // All the batch's leads in a few statements (UPDATE … FROM (VALUES …)), not one each:
        // each statement is a round trip to sqlx's SQLite thread. Nothing is returned (each
        // touch's attempt number is worked out below from its lead's new count, in the
        // outcomes' statement): no row handed back from that thread one at a time (not
        // measurable in the dispatch rate, BENCHMARKS.md 2026-12-07, but one step fewer).
        for chunk in per_lead.chunks(400) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("WITH v(lid, n) AS (");
            q.push_values(chunk, |mut b, (lead_id, n)| {
                b.push_bind(*lead_id).push_bind(*n);
            });
            q.push(") UPDATE leads SET attempts = attempts + v.n, last_touch_at = ")
                .push_bind(now)
                .push(", first_attempt_at = COALESCE(first_attempt_at, ")
                .push_bind(now)
                .push("), updated_at = ")
                .push_bind(now)
                .push(" FROM v WHERE leads.id = v.lid");
            q.build().execute(&mut *self.tx).await?;
        }
        // A first attempt moves a `new` lead to `attempting`, in a statement of its own: SQLite
        // rewrites the `leads_stage` entry of every row whose `stage` is assigned, changed or
        // not, and in the statement above that was one random index page per lead per batch
        // (14 % of the dispatcher's page writes at 1,000,000 leads).
        let ids: Vec<i64> = per_lead.iter().map(|(id, _)| *id).collect();
        if !ids.is_empty() {
            sqlx::query(sql!(
                "UPDATE leads SET stage = 'attempting' WHERE stage = 'new' AND id IN ({})",
                ids_list(&ids)
            ))
            .execute(&mut *self.tx)
            .await?;
        }
        // The batch's messages, appended to `touch_bodies` (migration 0013 says why), with the
        // ids given here ([`SqliteTx::next_ids`]).
        let mut body_ids: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
        let with_body: Vec<&TouchResult> = results
            .iter()
            .filter(|r| r.subject.is_some() || r.content.is_some())
            .collect();
        if !with_body.is_empty() {
            let ids = self.next_ids("touch_bodies", with_body.len()).await?;
            for (r, id) in with_body.iter().zip(ids) {
                body_ids.insert(r.touch_id, id);
            }
            for chunk in with_body.chunks(100) {
                let mut q: QueryBuilder<Sqlite> =
                    QueryBuilder::new("INSERT INTO touch_bodies (id, subject, content) ");
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(body_ids[&r.touch_id])
                        .push_bind(r.subject.clone())
                        .push_bind(r.content.clone());
                });
                q.build().execute(&mut *self.tx).await?;
            }
        }
        // Every touch of the batch in a few statements: UPDATE … FROM (VALUES …). A lead's
        // attempts in this batch are numbered in batch order: the k-th of its n is attempt
        // `attempts - n + k` of its new count (its row is in the cache: updated just above).
        let mut kth: std::collections::HashMap<i64, i64> =
            std::collections::HashMap::with_capacity(per_lead.len());
        // How many of its lead's attempts in this batch come after each touch.
        let back: Vec<Option<i64>> = results
            .iter()
            .map(|r| {
                r.attempt.then(|| {
                    let k = kth.entry(r.lead_id).or_insert(0);
                    *k += 1;
                    per_lead[index[&r.lead_id]].1 - *k
                })
            })
            .collect();
        for (chunk, backs) in results.chunks(100).zip(back.chunks(100)) {
            self.update_touches_by_key(chunk.len(), |index| {
                let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                    "WITH v(id, due_at, status, reason, sent_channel, body_id, provider_id, back) AS (",
                );
                q.push_values(chunk.iter().zip(backs), |mut b, (r, back)| {
                    b.push_bind(r.touch_id)
                        .push_bind(r.due_at)
                        .push_bind(r.status.as_str())
                        .push_bind(r.reason.clone())
                        .push_bind(r.sent_channel.map(|c| c.as_str()))
                        .push_bind(body_ids.get(&r.touch_id).copied())
                        .push_bind(r.provider_id.clone())
                        .push_bind(*back);
                });
                q.push(") UPDATE touches").push(index).push(
                    " SET status = v.status, reason = COALESCE(v.reason, touches.reason), sent_channel = v.sent_channel,
                       body_id = v.body_id, provider_id = v.provider_id,
                       attempt = CASE WHEN v.back IS NULL THEN NULL
                                      ELSE (SELECT l.attempts FROM leads l WHERE l.id = touches.lead_id) - v.back END,
                       delivery = CASE WHEN v.status = 'sent' THEN 'queued' ELSE touches.delivery END, settled_at = ",
                )
                .push_bind(now)
                .push(", claimed_by = NULL, lease_until = NULL FROM v WHERE touches.id = v.id");
                q
            })
            .await?;
        }
        Ok(())
    }

    async fn touch_set_task(&mut self, touch_id: i64, task_id: i64) -> Result<()> {
        sqlx::query("UPDATE touches SET task_id = ?, status = 'scheduled', claimed_by = NULL, lease_until = NULL WHERE id = ?")
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
        let ids: Vec<i64> = self.next_ids("tasks", tasks.len()).await?.collect();
        // A touch's last task wins, as when each was linked in turn.
        let mut by_touch: std::collections::HashMap<i64, (Millis, i64)> =
            std::collections::HashMap::with_capacity(tasks.len());
        for (t, id) in tasks.iter().zip(&ids) {
            if let Some(touch_id) = t.touch_id {
                by_touch.insert(touch_id, (t.due_at, *id));
            }
        }
        for (chunk, chunk_ids) in tasks.chunks(200).zip(ids.chunks(200)) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO tasks (id, lead_id, touch_id, assignee_id, kind, due_at, script, voicemail, created_at) ",
            );
            q.push_values(chunk.iter().zip(chunk_ids), |mut b, (t, id)| {
                b.push_bind(*id)
                    .push_bind(t.lead_id)
                    .push_bind(t.touch_id)
                    .push_bind(t.assignee_id)
                    .push_bind(t.kind.as_str())
                    .push_bind(t.due_at)
                    .push_bind(t.script.clone())
                    .push_bind(t.voicemail.clone())
                    .push_bind(now);
            });
            q.build().execute(&mut *self.tx).await?;
        }
        // A task is due when its touch was (the dispatcher makes it so): that due time names
        // the touch's key; a link that misses is written again by id.
        let links: Vec<(i64, Millis, i64)> = by_touch
            .into_iter()
            .map(|(touch, (due_at, task))| (touch, due_at, task))
            .collect();
        for chunk in links.chunks(400) {
            self.update_touches_by_key(chunk.len(), |index| {
                let mut q: QueryBuilder<Sqlite> =
                    QueryBuilder::new("WITH v(id, due_at, task_id) AS (");
                q.push_values(chunk, |mut b, (touch_id, due_at, task_id)| {
                    b.push_bind(*touch_id).push_bind(*due_at).push_bind(*task_id);
                });
                q.push(") UPDATE touches").push(index).push(
                    " SET task_id = v.task_id, status = 'scheduled', claimed_by = NULL, lease_until = NULL
                     FROM v WHERE touches.id = v.id",
                );
                q
            })
            .await?;
        }
        Ok(ids)
    }

    async fn touches_expire_sending(&mut self, now: Millis) -> Result<Vec<Touch>> {
        Ok(sqlx::query_as(sql!(
            "UPDATE touches SET status = 'uncertain', settled_at = ?, claimed_by = NULL, lease_until = NULL,
               reason = 'the process stopped while this message was being sent; it may or may not have gone out, so it is not resent'
             WHERE status = 'sending' AND lease_until < ? RETURNING {TOUCH_COLS}"
        ))
        .bind(now)
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
            "UPDATE touches SET answered = 1 WHERE id = (SELECT id FROM touches WHERE lead_id = ? AND status IN ('sent', 'done')
               ORDER BY settled_at DESC, id DESC LIMIT 1)",
        )
        .bind(lead_id)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn task_insert(&mut self, t: &NewTask, now: Millis) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO tasks (lead_id, touch_id, assignee_id, kind, due_at, script, voicemail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
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
        Ok(
            sqlx::query_as(sql!("SELECT {TASK_COLS} FROM tasks WHERE id = ?"))
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    async fn reassign_task(&mut self, id: i64, to: i64) -> Result<()> {
        sqlx::query("UPDATE tasks SET assignee_id = ? WHERE id = ?")
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
        Ok(sqlx::query_scalar(sql!(
            "SELECT DISTINCT lead_id FROM tasks WHERE lead_id IN ({}) AND status = 'open'
             AND kind = 'call' AND touch_id IS NULL AND created_at > ?",
            ids_list(lead_ids)
        ))
        .bind(since)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn tasks(&mut self, f: &TaskFilter) -> Result<Vec<Task>> {
        let mut q: QueryBuilder<Sqlite> =
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
            q.push(" AND (due_at > ")
                .push_bind(due)
                .push(" OR (due_at = ")
                .push_bind(due)
                .push(" AND id > ")
                .push_bind(id)
                .push("))");
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
            "UPDATE tasks SET status = ?, outcome = ?, note = ?, completed_at = ? WHERE id = ?",
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
        sqlx::query("UPDATE touches SET status = ?, reason = COALESCE(?, reason), attempt = COALESCE(?, attempt), settled_at = ? WHERE id = ?")
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
        let cols = TASK_COLS
            .split(", ")
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(sqlx::query_as(sql!(
            "SELECT {cols} FROM tasks t JOIN leads l ON l.id = t.lead_id
             WHERE t.status = 'open' AND t.kind = 'call' AND t.escalated_at IS NULL AND l.level = 'hot' AND t.due_at < ?
             ORDER BY t.due_at LIMIT 500"
        ))
        .bind(now - minutes * 60_000)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn task_mark_escalated(&mut self, id: i64, at: Millis) -> Result<()> {
        sqlx::query("UPDATE tasks SET escalated_at = ? WHERE id = ?")
            .bind(at)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn tasks_due_between(&mut self, from: Millis, to: Millis) -> Result<Vec<Task>> {
        Ok(sqlx::query_as(sql!("SELECT {TASK_COLS} FROM tasks WHERE status = 'open' AND due_at > ? AND due_at <= ? ORDER BY due_at LIMIT 1000"))
            .bind(from)
            .bind(to)
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn next_task_due_after(&mut self, t: Millis) -> Result<Option<Millis>> {
        Ok(
            sqlx::query_scalar(
                "SELECT MIN(due_at) FROM tasks WHERE status = 'open' AND due_at > ?",
            )
            .bind(t)
            .fetch_one(&mut *self.tx)
            .await?,
        )
    }

    async fn activity_insert(&mut self, a: &NewActivity) -> Result<i64> {
        Ok(sqlx::query_scalar("INSERT INTO activities (lead_id, kind, detail, data, actor_id, at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id")
            .bind(a.lead_id)
            .bind(&a.kind)
            .bind(&a.detail)
            .bind(a.data.as_ref().map(|d| d.to_string()))
            .bind(a.actor_id)
            .bind(a.at)
            .fetch_one(&mut *self.tx)
            .await?)
    }

    async fn timeline(
        &mut self,
        lead_id: i64,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Activity>> {
        Ok(sqlx::query_as(
            "SELECT id, lead_id, kind, detail, data, actor_id, at FROM activities WHERE lead_id = ? AND id < ? ORDER BY at DESC, id DESC LIMIT ?",
        )
        .bind(lead_id)
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn outbox_insert(&mut self, m: &NewOutbox, now: Millis) -> Result<i64> {
        Ok(sqlx::query_scalar("INSERT INTO outbox (channel, to_addr, subject, body, lead_id, touch_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id")
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

    async fn outbox(
        &mut self,
        assignee: Option<i64>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
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
        Ok(sqlx::query_scalar(
            "INSERT INTO notifications (user_id, event, lead_id, lead_name, kind, at, detail) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(n.user_id)
        .bind(n.event.as_str())
        .bind(n.lead_id)
        .bind(&n.lead_name)
        .bind(&n.kind)
        .bind(n.at)
        .bind(&n.detail)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    async fn notifications_insert(&mut self, all: &[NewNotification]) -> Result<Vec<i64>> {
        if all.is_empty() {
            return Ok(vec![]);
        }
        // (AUTOINCREMENT: the SSE ids never go back, even past an erased newest one.)
        let ids: Vec<i64> = self.next_ids("notifications", all.len()).await?.collect();
        for (chunk, chunk_ids) in all.chunks(200).zip(ids.chunks(200)) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO notifications (id, user_id, event, lead_id, lead_name, kind, at, detail) ",
            );
            q.push_values(chunk.iter().zip(chunk_ids), |mut b, (n, id)| {
                b.push_bind(*id)
                    .push_bind(n.user_id)
                    .push_bind(n.event.as_str())
                    .push_bind(n.lead_id)
                    .push_bind(n.lead_name.clone())
                    .push_bind(n.kind.clone())
                    .push_bind(n.at)
                    .push_bind(n.detail.clone());
            });
            q.build().execute(&mut *self.tx).await?;
        }
        Ok(ids)
    }

    async fn notifications_after(
        &mut self,
        user_id: i64,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<Notification>> {
        Ok(sqlx::query_as(
            "SELECT id, user_id, event, lead_id, lead_name, kind, at, detail FROM notifications WHERE user_id = ? AND id > ? ORDER BY id LIMIT ?",
        )
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
        Ok(sqlx::query_as("SELECT id, user_id, event, lead_id, lead_name, kind, at, detail FROM notifications WHERE user_id = ? AND event = ? AND at >= ? ORDER BY id DESC LIMIT ?")
            .bind(user_id)
            .bind(event)
            .bind(since)
            .bind(limit)
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn shift_lead_back(&mut self, lead_id: i64, by: i64) -> Result<()> {
        for q in [
            "UPDATE leads SET created_at = created_at - ?1, updated_at = updated_at - ?1, next_touch_at = next_touch_at - ?1 WHERE id = ?2",
            "UPDATE enrollments SET started_at = started_at - ?1 WHERE lead_id = ?2",
            "UPDATE touches SET due_at = due_at - ?1, planned_at = planned_at - ?1, created_at = created_at - ?1 WHERE lead_id = ?2",
            "UPDATE activities SET at = at - ?1 WHERE lead_id = ?2",
        ] {
            sqlx::query(q)
                .bind(by)
                .bind(lead_id)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    async fn tracking_insert(&mut self, t: &Tracking) -> Result<()> {
        sqlx::query("INSERT INTO tracking (token, kind, lead_id, touch_id, links, video_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&t.token)
            .bind(&t.kind)
            .bind(t.lead_id)
            .bind(t.touch_id)
            .bind(serde_json::to_string(&t.links).unwrap_or_else(|_| "[]".into()))
            .bind(t.video_id)
            .bind(t.created_at)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn tracking_insert_many(&mut self, all: &[Tracking]) -> Result<()> {
        for chunk in all.chunks(200) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO tracking (token, kind, lead_id, touch_id, links, video_id, created_at) ",
            );
            q.push_values(chunk, |mut b, t| {
                b.push_bind(t.token.clone())
                    .push_bind(t.kind.clone())
                    .push_bind(t.lead_id)
                    .push_bind(t.touch_id)
                    .push_bind(serde_json::to_string(&t.links).unwrap_or_else(|_| "[]".into()))
                    .push_bind(t.video_id)
                    .push_bind(t.created_at);
            });
            q.build().execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn tracking(&mut self, token: &str) -> Result<Option<Tracking>> {
        Ok(sqlx::query_as("SELECT token, kind, lead_id, touch_id, links, video_id, created_at FROM tracking WHERE token = ?")
            .bind(token)
            .fetch_optional(&mut *self.tx)
            .await?)
    }

    async fn trackings(&mut self, tokens: &[String]) -> Result<Vec<Tracking>> {
        if tokens.is_empty() {
            return Ok(vec![]);
        }
        // One statement text for any number of tokens: they travel as one JSON array.
        Ok(sqlx::query_as("SELECT token, kind, lead_id, touch_id, links, video_id, created_at FROM tracking WHERE token IN (SELECT value FROM json_each(?))")
            .bind(sqlx::types::Json(tokens))
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
        sqlx::query("INSERT INTO clicks (token, n, at) VALUES (?, ?, ?)")
            .bind(token)
            .bind(n)
            .bind(at)
            .execute(&mut *self.tx)
            .await?;
        Ok(sqlx::query_scalar("SELECT COUNT(DISTINCT n) FROM clicks WHERE token = ? AND n != ? AND at >= ? AND at <= ?")
            .bind(token)
            .bind(n)
            .bind(at - window_ms)
            .bind(at + window_ms)
            .fetch_one(&mut *self.tx)
            .await?)
    }

    async fn inbound_first_time(&mut self, key: &str, now: Millis) -> Result<bool> {
        let r = sqlx::query("INSERT INTO inbound_seen (key, received_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING").bind(key).bind(now).execute(&mut *self.tx).await?;
        Ok(r.rows_affected() == 1)
    }

    async fn text_by_provider_id(&mut self, provider_id: &str) -> Result<Option<Touch>> {
        Ok(sqlx::query_as(sql!(
            "SELECT {TOUCH_COLS} FROM touches WHERE provider_id = ? AND sent_channel = 'text' LIMIT 1"
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
            "SELECT {TOUCH_COLS} FROM touches WHERE id = ? AND message_id = ?"
        ))
        .bind(touch_id)
        .bind(message_id)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn touch_set_message_id(&mut self, touch_id: i64, message_id: &str) -> Result<()> {
        sqlx::query("UPDATE touches SET message_id = ? WHERE id = ?")
            .bind(message_id)
            .bind(touch_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn touches_set_message_ids(&mut self, all: &[(i64, Millis, String)]) -> Result<()> {
        for chunk in all.chunks(400) {
            self.update_touches_by_key(chunk.len(), |index| {
                let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("WITH v(id, due_at, mid) AS (");
                q.push_values(chunk, |mut b, (touch_id, due_at, mid)| {
                    b.push_bind(*touch_id)
                        .push_bind(*due_at)
                        .push_bind(mid.clone());
                });
                q.push(") UPDATE touches")
                    .push(index)
                    .push(" SET message_id = v.mid FROM v WHERE touches.id = v.id");
                q
            })
            .await?;
        }
        Ok(())
    }

    async fn touch_set_delivery(
        &mut self,
        touch_id: i64,
        delivery: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE touches SET delivery = ?, reason = COALESCE(?, reason) WHERE id = ?")
            .bind(delivery)
            .bind(reason)
            .bind(touch_id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn video_insert(&mut self, v: &Video) -> Result<i64> {
        Ok(sqlx::query_scalar("INSERT INTO videos (lead_id, user_id, file, content_type, size, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id")
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
        Ok(sqlx::query_as("SELECT id, lead_id, user_id, file, content_type, size, created_at FROM videos WHERE id = ?").bind(id).fetch_optional(&mut *self.tx).await?)
    }

    async fn intake_insert(&mut self, i: &Intake) -> Result<i64> {
        Ok(sqlx::query_scalar("INSERT INTO intakes (token, source, plan, routing, thank_you_url, active, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id")
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
        Ok(sqlx::query_as("SELECT id, token, source, plan, routing, thank_you_url, active, created_at FROM intakes WHERE token = ?")
            .bind(token)
            .fetch_optional(&mut *self.tx)
            .await?)
    }

    async fn intake(&mut self, id: i64) -> Result<Option<Intake>> {
        Ok(sqlx::query_as("SELECT id, token, source, plan, routing, thank_you_url, active, created_at FROM intakes WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?)
    }

    async fn intakes(&mut self) -> Result<Vec<Intake>> {
        Ok(sqlx::query_as("SELECT id, token, source, plan, routing, thank_you_url, active, created_at FROM intakes ORDER BY id").fetch_all(&mut *self.tx).await?)
    }

    async fn intake_save(&mut self, i: &Intake) -> Result<()> {
        sqlx::query("UPDATE intakes SET source = ?, plan = ?, routing = ?, thank_you_url = ?, active = ? WHERE id = ?")
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
            "UPDATE intakes SET rr_cursor = rr_cursor + 1 WHERE id = ? RETURNING rr_cursor",
        )
        .bind(id)
        .fetch_optional(&mut *self.tx)
        .await?
        .unwrap_or(0))
    }

    async fn consent_insert(&mut self, c: &Consent) -> Result<i64> {
        Ok(sqlx::query_scalar("INSERT INTO consents (lead_id, channel, source, wording, ip, at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id")
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
        Ok(sqlx::query_as("SELECT id, lead_id, channel, source, wording, ip, at FROM consents WHERE lead_id = ? ORDER BY at, id").bind(lead_id).fetch_all(&mut *self.tx).await?)
    }

    async fn leads_with_text_consent(&mut self, lead_ids: &[i64]) -> Result<Vec<i64>> {
        if lead_ids.is_empty() {
            return Ok(vec![]);
        }
        Ok(sqlx::query_scalar(sql!(
            "SELECT DISTINCT lead_id FROM consents WHERE channel = 'text' AND lead_id IN ({})",
            ids_list(lead_ids)
        ))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn pond_insert(&mut self, p: &Pond) -> Result<()> {
        sqlx::query("INSERT INTO ponds (lead_id, intake_id, agents, expires_at, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(p.lead_id)
            .bind(p.intake_id)
            .bind(serde_json::to_string(&p.agents).unwrap_or_else(|_| "[]".into()))
            .bind(p.expires_at)
            .bind(p.created_at)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn pond(&mut self, lead_id: i64) -> Result<Option<Pond>> {
        Ok(sqlx::query_as("SELECT lead_id, intake_id, agents, expires_at, created_at FROM ponds WHERE lead_id = ?").bind(lead_id).fetch_optional(&mut *self.tx).await?)
    }

    async fn pond_take(&mut self, lead_id: i64) -> Result<bool> {
        Ok(sqlx::query("DELETE FROM ponds WHERE lead_id = ?")
            .bind(lead_id)
            .execute(&mut *self.tx)
            .await?
            .rows_affected()
            == 1)
    }

    async fn ponds_for_user(&mut self, user_id: i64) -> Result<Vec<Pond>> {
        let all: Vec<Pond> = sqlx::query_as("SELECT lead_id, intake_id, agents, expires_at, created_at FROM ponds ORDER BY created_at").fetch_all(&mut *self.tx).await?;
        Ok(all
            .into_iter()
            .filter(|p| p.agents.contains(&user_id))
            .collect())
    }

    async fn ponds_expired(&mut self, now: Millis) -> Result<Vec<Pond>> {
        Ok(sqlx::query_as("SELECT lead_id, intake_id, agents, expires_at, created_at FROM ponds WHERE expires_at <= ? ORDER BY expires_at LIMIT 500")
            .bind(now)
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn tasks_claim(&mut self, lead_id: i64, user_id: i64) -> Result<u64> {
        Ok(sqlx::query("UPDATE tasks SET assignee_id = ? WHERE lead_id = ? AND status = 'open' AND assignee_id IS NULL")
            .bind(user_id)
            .bind(lead_id)
            .execute(&mut *self.tx)
            .await?
            .rows_affected())
    }

    async fn rate_hit(&mut self, key: &str, window_start: Millis) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO rate_limits (key, window_start, hits) VALUES (?, ?, 1)
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
            "SELECT hits FROM rate_limits WHERE key = ? AND window_start = ?",
        )
        .bind(key)
        .bind(window_start)
        .fetch_optional(&mut *self.tx)
        .await?
        .unwrap_or(0))
    }

    async fn rate_prune(&mut self, before: Millis) -> Result<()> {
        sqlx::query("DELETE FROM rate_limits WHERE window_start < ?")
            .bind(before)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn report_rows(&mut self, since: Millis, now: Millis) -> Result<ReportRows> {
        let hour = since.div_euclid(3_600_000);
        let lead_values = sqlx::query_as(
            "SELECT metric, hour * 3600000, value, n FROM report_lead_hours WHERE hour >= ? AND n <> 0",
        )
        .bind(hour)
        .fetch_all(&mut *self.tx)
        .await?;
        let touches = sqlx::query_as(
            "SELECT plan, step, channel, SUM(sent), SUM(answered) FROM report_touch_hours WHERE hour >= ?
             GROUP BY plan, step, channel HAVING SUM(sent) <> 0",
        )
        .bind(hour)
        .fetch_all(&mut *self.tx)
        .await?;
        let overdue_by_agent = sqlx::query_as(
            "SELECT u.email, COUNT(t.id) FROM users u LEFT JOIN tasks t ON t.assignee_id = u.id AND t.status = 'open' AND t.due_at < ?
             WHERE u.active = 1 GROUP BY u.id ORDER BY u.email",
        )
        .bind(now)
        .fetch_all(&mut *self.tx)
        .await?;
        let leads_below_8 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM leads WHERE created_at >= ? AND attempts < 8 AND answered_at IS NULL AND sms_opt_out = 0 AND email_opt_out = 0",
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

/// Turns what someone typed into an FTS5 prefix query: each word quoted, `*` for prefixes.
fn fts_query(words: &str) -> String {
    words
        .split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-')
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{}\"*", w.replace('"', "")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkpointer_hurries_only_while_the_wal_nears_the_writers_own_checkpoint() {
        let half = WAL_AUTOCHECKPOINT / 2;
        // A short WAL: commits gather for half a second before the next pass.
        assert_eq!(next_pass(0, true), NextPass::Gather);
        assert_eq!(next_pass(half - 1, true), NextPass::Gather);
        // From half the limit on, and while commits keep coming, pass after pass: the commit
        // that crosses the limit then finds little left to copy back itself.
        assert_eq!(next_pass(half, true), NextPass::Now);
        assert_eq!(next_pass(WAL_AUTOCHECKPOINT - 1, true), NextPass::Now);
        // Nothing committed since the last pass: wait for a commit (no busy loop on an idle
        // database whose WAL is long).
        assert_eq!(next_pass(half + 10, false), NextPass::Gather);
        // Past the limit, the next commit copies back the rest and the WAL starts over; a
        // pass running then would make that commit skip its checkpoint.
        assert_eq!(next_pass(WAL_AUTOCHECKPOINT, true), NextPass::Gather);
        assert_eq!(next_pass(WAL_AUTOCHECKPOINT * 2, true), NextPass::Gather);
    }
}
