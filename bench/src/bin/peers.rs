//! Issue 8: the Relentless side of the side-by-side workloads (W1–W4), and the SQLite ceiling.
//! `bench/run.sh` drives this binary; the peers (graphile-worker, BullMQ) are driven by
//! `bench/peers/*.js` with the same workload arguments and the same output files.
//!
//! ```sh
//! peers relentless --url sqlite|postgres --n 50000 --span-ms 3000 --gap-ms 1500 --workers 1 --out DIR
//! peers sqlite-ceiling --n 50000 --synchronous normal --out DIR
//! ```
//!
//! `relentless`: a fresh database (a temp SQLite file, or a new database on the PostgreSQL
//! test server), migrations, `Engine::init`, a one-text plan `bench`; optionally `--backlog`
//! touches due tomorrow (W3, not timed); then `--n` leads, each with one active enrollment and
//! one text touch, written in transactions of 1,000 (lead + enrollment + touch rows, raw SQL,
//! timed as the enqueue). Touch i is due at `first_due + i * span / n`, `first_due` being
//! the planned end of the enqueue plus `--gap-ms`. Then `--workers` child processes of this
//! binary (`peers relentless-worker`) each run the engine's real `Dispatcher::run` with a
//! recording channel (texts and emails alike): it keeps (touch id, fired instant) in memory
//! and writes them when the process ends (with `--sync`, one `write(2)` per message, so a
//! SIGKILLed worker's records survive). With `--kill-every-ms`, worker 0 is SIGKILLed and
//! restarted at that period until the last touch is due (W4). The run ends when no touch is
//! `scheduled` or `sending`, or at `last due + --grace-ms`.
//!
//! Output in `--out`: `fired.csv` (key,due_ms,fired_ms,pid; one line per delivery),
//! `uncertain.csv` (keys of touches `uncertain` or still `sending`), `meta.json`.

/// The product binary's allocator (`crates/cli/src/main.rs`): the worker processes here run
/// the engine's dispatcher as `relentless worker` would, allocator included (with glibc's,
/// a fifth of a W0 worker's samples were in `malloc`/`free`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use relentless_core::types::Channel;
use relentless_engine::channels::{Message, SendError, Sent};
use relentless_engine::dispatch::Dispatcher;
use relentless_engine::setup::InitInput;
use relentless_engine::{Config, Engine, now_ms};
use relentless_store::postgres::testing::TestDatabase;
use relentless_store::{DynStore, PlanRow, TemplateRow};
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

const PLAN_SOURCE: &str =
    "slug='bench'\nname='Bench'\n[[steps]]\nafter='+0m'\nchannel='text'\ntemplate='bench-text'\n";
/// ~200 bytes once rendered, like the peers' payload.
const BODY: &str = "Hi {{ lead.first_name }}, this is {{ agent.name }} following up on your request about the home at 12 Main Street. Are you still looking? Reply here or call me back any time today.";

fn now_ms_f() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// `--flag value` pairs.
struct Flags(HashMap<String, String>);

impl Flags {
    fn parse(args: &[String]) -> Result<Flags, BoxErr> {
        let mut m = HashMap::new();
        let mut it = args.iter();
        while let Some(f) = it.next() {
            let Some(k) = f.strip_prefix("--") else {
                return Err(format!("unexpected argument {f}").into());
            };
            if k == "sync" {
                m.insert(k.to_string(), "1".to_string());
                continue;
            }
            let v = it.next().ok_or_else(|| format!("{f} needs a value"))?;
            m.insert(k.to_string(), v.clone());
        }
        Ok(Flags(m))
    }
    fn str(&self, k: &str, d: &str) -> String {
        self.0.get(k).cloned().unwrap_or_else(|| d.to_string())
    }
    fn num(&self, k: &str, d: i64) -> Result<i64, BoxErr> {
        Ok(match self.0.get(k) {
            Some(v) => v.parse().map_err(|e| format!("--{k} {v}: {e}"))?,
            None => d,
        })
    }
    fn has(&self, k: &str) -> bool {
        self.0.contains_key(k)
    }
}

/// A fixed-offset zone where it is now between 10:00 and 17:59, so the sending window
/// (08:00–21:00) stays open for the whole run.
fn day_zone() -> String {
    let now = jiff::Timestamp::now();
    (-12..=14)
        .map(|h: i32| match h {
            0 => "Etc/GMT".to_string(),
            h if h > 0 => format!("Etc/GMT-{h}"),
            h => format!("Etc/GMT+{}", -h),
        })
        .find(|z| now.in_tz(z).is_ok_and(|t| (10..=17).contains(&t.hour())))
        .unwrap_or_else(|| "Etc/GMT".into())
}

async fn prepare(url: &str) -> Result<(), BoxErr> {
    let store: DynStore = relentless_store::open(url).await?;
    store.migrate().await?;
    let engine = Engine::new(
        store.clone(),
        Arc::new(relentless_engine::channels::outbox::Outbox),
        Config::default(),
    );
    engine
        .init(InitInput {
            admin_email: "admin@example.com".into(),
            admin_password: None,
            team_name: Some("Bench Team".into()),
            address: Some("1 Main St".into()),
        })
        .await?;
    let now = now_ms();
    let mut tx = store.write().await?;
    tx.template_save(&TemplateRow {
        slug: "bench-text".into(),
        channel: Channel::Text,
        name: "Bench".into(),
        subject: None,
        body: BODY.into(),
        voicemail: None,
        updated_at: now,
    })
    .await?;
    tx.plan_save(&PlanRow {
        slug: "bench".into(),
        name: "Bench".into(),
        version: 1,
        source: PLAN_SOURCE.into(),
        updated_at: now,
    })
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Either backend's pool.
enum Db {
    Pg(sqlx::PgPool),
    Lite(sqlx::SqlitePool),
}

// Lead i: first_name = i (the workload key), a unique phone, 8 attempts already (finishing
// the plan starts no `nurture`), one active `bench` enrollment, one text touch. `$`-numbered
// parameters; SQLite gets `?N`.
const LEADS: &str = "INSERT INTO leads (first_name, last_name, phone, timezone, source, level, stage, attempts, created_at, updated_at)
     SELECT CAST(i AS TEXT), 'Bench', '+1555' || CAST(1000000000 + i AS TEXT), $1, 'bench', 'warm', 'attempting', 8, $2, $2";
const ENROLLMENTS: &str = "INSERT INTO enrollments (lead_id, plan, plan_version, state, started_at)
     SELECT id, 'bench', 1, 'active', $1 FROM leads WHERE id > $2";
// SQLite's `touches` hands out no ids (migration 0016): they are numbered on from the largest.
// (PostgreSQL's form is in `insert_batch`.)
const SQLITE_TOUCHES: &str = "INSERT INTO touches (id, enrollment_id, lead_id, plan, step, channel, template, planned_at, due_at, created_at)
     SELECT (SELECT COALESCE(MAX(id), 0) FROM touches) + ROW_NUMBER() OVER (ORDER BY e.id),
       e.id, e.lead_id, 'bench', 0, 'text', 'bench-text', $1, $1 + ((CAST(l.first_name AS BIGINT) - $4) * $2) / $3, $1
     FROM enrollments e JOIN leads l ON l.id = e.lead_id WHERE e.id > $5";

impl Db {
    async fn open(url: &str) -> Result<Db, BoxErr> {
        Ok(if url.starts_with("postgres") {
            Db::Pg(sqlx::PgPool::connect(url).await?)
        } else {
            Db::Lite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await?,
            )
        })
    }

    async fn scalar(&self, sql: &str) -> Result<i64, BoxErr> {
        let q = sqlx::AssertSqlSafe(sql.to_string());
        Ok(match self {
            Db::Pg(p) => sqlx::query_scalar::<_, i64>(q).fetch_one(p).await?,
            Db::Lite(p) => sqlx::query_scalar::<_, i64>(q).fetch_one(p).await?,
        })
    }

    async fn pairs(&self, sql: &str) -> Result<Vec<(i64, i64, i64)>, BoxErr> {
        let q = sqlx::AssertSqlSafe(sql.to_string());
        Ok(match self {
            Db::Pg(p) => sqlx::query_as(q).fetch_all(p).await?,
            Db::Lite(p) => sqlx::query_as(q).fetch_all(p).await?,
        })
    }

    /// Keys lo..hi (exclusive), one transaction: leads, enrollments, touches. Touch of key i
    /// is due at `first_due + (i - base) * span / n`.
    #[allow(clippy::too_many_arguments)] // one workload row range: all plain numbers
    async fn insert_batch(
        &self,
        lo: i64,
        hi: i64,
        zone: &str,
        first_due: i64,
        span: i64,
        n: i64,
        base: i64,
    ) -> Result<(), BoxErr> {
        let now = now_ms();
        match self {
            Db::Pg(p) => {
                // One statement, the new rows passed along by `RETURNING`. The SQLite form
                // below (`… FROM leads WHERE id > $max`) is planned from statistics on
                // PostgreSQL, which a table growing this fast never has: the planner
                // expected a third of the table and scanned all of it, for each 1,000 rows
                // (enqueue fell from ~16,000 rows/s to 3,566 /s over 1,000,000).
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "WITH l AS ({LEADS} FROM generate_series($3::bigint, $4::bigint) AS i RETURNING id, first_name),
                     e AS (INSERT INTO enrollments (lead_id, plan, plan_version, state, started_at)
                           SELECT id, 'bench', 1, 'active', $2 FROM l RETURNING id, lead_id)
                     INSERT INTO touches (enrollment_id, lead_id, plan, step, channel, template, planned_at, due_at, created_at)
                     SELECT e.id, e.lead_id, 'bench', 0, 'text', 'bench-text', $5, $5 + ((CAST(l.first_name AS BIGINT) - $8) * $6) / $7, $5
                     FROM e JOIN l ON l.id = e.lead_id"
                )))
                .bind(zone)
                .bind(now)
                .bind(lo)
                .bind(hi - 1)
                .bind(first_due)
                .bind(span)
                .bind(n)
                .bind(base)
                .execute(p)
                .await?;
            }
            Db::Lite(p) => {
                let mut tx = p.begin().await?;
                let max_lead: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM leads")
                    .fetch_one(&mut *tx)
                    .await?;
                let max_enr: i64 =
                    sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM enrollments")
                        .fetch_one(&mut *tx)
                        .await?;
                sqlx::query(sqlx::AssertSqlSafe(
                    format!(
                        "WITH RECURSIVE s(i) AS (SELECT $3 UNION ALL SELECT i + 1 FROM s WHERE i < $4) {LEADS} FROM s"
                    )
                    .replace('$', "?"),
                ))
                .bind(zone)
                .bind(now)
                .bind(lo)
                .bind(hi - 1)
                .execute(&mut *tx)
                .await?;
                sqlx::query(sqlx::AssertSqlSafe(ENROLLMENTS.replace('$', "?")))
                    .bind(now)
                    .bind(max_lead)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(SQLITE_TOUCHES.replace('$', "?")))
                    .bind(first_due)
                    .bind(span)
                    .bind(n)
                    .bind(base)
                    .bind(max_enr)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    async fn analyze(&self) -> Result<(), BoxErr> {
        match self {
            Db::Pg(p) => {
                sqlx::query("VACUUM ANALYZE").execute(p).await?;
            }
            Db::Lite(p) => {
                sqlx::query("ANALYZE").execute(p).await?;
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(p)
                    .await?;
            }
        }
        Ok(())
    }

    async fn close(self) {
        match self {
            Db::Pg(p) => p.close().await,
            Db::Lite(p) => p.close().await,
        }
    }
}

/// The recording "provider": what arrived and when; nothing else.
struct Recorder {
    recs: Mutex<Vec<(i64, f64)>>,
    file: Option<Mutex<std::fs::File>>,
}

#[async_trait::async_trait]
impl relentless_engine::channels::Channel for Recorder {
    async fn send(&self, m: &Message) -> Result<Sent, SendError> {
        let at = now_ms_f();
        let id = m.touch_id.unwrap_or(-1);
        if let Some(f) = &self.file {
            let line = format!("{id},{at:.3},{}\n", std::process::id());
            let _ = f.lock().unwrap().write_all(line.as_bytes());
        } else {
            self.recs.lock().unwrap().push((id, at));
        }
        Ok(Sent {
            provider_id: None,
            outbox: None,
        })
    }
    fn name(&self) -> &'static str {
        "recorder"
    }
}

async fn worker(f: &Flags) -> Result<(), BoxErr> {
    // The engine's warnings and errors (a failed batch, a retried deadlock) go to the
    // worker's log file, which the harness keeps next to the run's results.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .try_init();
    let url = f.str("url", "");
    let out = PathBuf::from(f.str("file", "fired.raw"));
    let rec = Arc::new(Recorder {
        recs: Mutex::new(Vec::with_capacity(1 << 16)),
        file: if f.has("sync") {
            Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&out)?,
            ))
        } else {
            None
        },
    });
    let store = relentless_store::open(&url).await?;
    let config = Config {
        lease_ms: f.num("lease-ms", 60_000)?,
        batch: f.num("batch", 500)?,
        ..Config::default()
    };
    let engine = Engine::new(store, rec.clone(), config);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Dispatcher::new(engine)
        .run(async move {
            term.recv().await;
        })
        .await;
    if rec.file.is_none() {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&out)?);
        let pid = std::process::id();
        for (id, at) in rec.recs.lock().unwrap().iter() {
            writeln!(w, "{id},{at:.3},{pid}")?;
        }
        w.flush()?;
    }
    Ok(())
}

fn spawn_worker(
    f: &Flags,
    url: &str,
    out: &Path,
    idx: usize,
    generation: usize,
) -> Result<Child, BoxErr> {
    let me = std::env::current_exe()?;
    let file = out.join(format!("raw-{idx}-{generation}.csv"));
    let mut cmd = Command::new(me);
    cmd.arg("relentless-worker")
        .args(["--url", url])
        .args(["--file", &file.display().to_string()])
        .args(["--lease-ms", &f.str("lease-ms", "60000")])
        .args(["--batch", &f.str("batch", "500")])
        .env("RELENTLESS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(
            out.join(format!("worker-{idx}-{generation}.log")),
        )?);
    if f.has("sync") {
        cmd.arg("--sync");
    }
    Ok(cmd.spawn()?)
}

fn term(c: &Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(c.id().to_string())
        .status();
}

async fn relentless(f: &Flags) -> Result<(), BoxErr> {
    let backend = f.str("url", "sqlite");
    let n = f.num("n", 50_000)?;
    let span = f.num("span-ms", 3_000)?;
    let gap = f.num("gap-ms", 1_500)?;
    let est_rate = f.num("est-rate", 10_000)?;
    let backlog = f.num("backlog", 0)?;
    let k = f.num("workers", 1)? as usize;
    let kill_every = f.num("kill-every-ms", 0)?;
    let grace = f.num("grace-ms", 60_000)?;
    let out = PathBuf::from(f.str("out", "."));
    std::fs::create_dir_all(&out)?;

    let mut pg_db = None;
    let sqlite_file = out.join("bench.db");
    let url = if backend == "postgres" {
        let db = TestDatabase::create().await?;
        let u = db.url().to_string();
        pg_db = Some(db);
        u
    } else {
        format!("sqlite://{}", sqlite_file.display())
    };
    prepare(&url).await?;
    let db = Db::open(&url).await?;
    let zone = day_zone();

    // W3: the backlog due tomorrow, stored before the clock starts (keys -backlog..-1).
    if backlog > 0 {
        let t = Instant::now();
        let tomorrow = now_ms() + 86_400_000;
        let mut lo = -backlog;
        while lo < 0 {
            let hi = (lo + 10_000).min(0);
            db.insert_batch(lo, hi, &zone, tomorrow, 3_600_000, backlog, -backlog)
                .await?;
            lo = hi;
        }
        db.analyze().await?;
        eprintln!(
            "  backlog of {backlog} stored in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }

    // Enqueue: planned end = start + n / est_rate; first due = planned end + gap.
    let enq_start = now_ms();
    let first_due = enq_start + n * 1000 / est_rate.max(1) + gap;
    let mut lo = 0;
    while lo < n {
        let hi = (lo + 1_000).min(n);
        db.insert_batch(lo, hi, &zone, first_due, span, n, 0)
            .await?;
        lo = hi;
    }
    let enq_end = now_ms();
    eprintln!(
        "  enqueued {n} in {:.2} s ({:.0}/s); first due in {} ms",
        (enq_end - enq_start) as f64 / 1000.0,
        n as f64 * 1000.0 / (enq_end - enq_start).max(1) as f64,
        first_due - enq_end
    );
    let last_due = first_due + (n - 1) * span / n.max(1);

    // Workers.
    let workers_started = now_ms();
    let mut children: Vec<Child> = Vec::new();
    let mut gens = vec![0usize; k];
    for i in 0..k {
        children.push(spawn_worker(f, &url, &out, i, 0)?);
    }
    let pending_near = format!(
        "SELECT COUNT(*) FROM touches WHERE plan = 'bench' AND status IN ('scheduled', 'sending') AND due_at <= {last_due}"
    );
    let mut kills = 0;
    let mut next_kill = now_ms() + kill_every;
    let timed_out = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = now_ms();
        if kill_every > 0 && now >= next_kill && now <= last_due {
            next_kill += kill_every;
            let c = &mut children[0];
            let _ = c.kill();
            let _ = c.wait();
            kills += 1;
            gens[0] += 1;
            children[0] = spawn_worker(f, &url, &out, 0, gens[0])?;
        }
        if now > last_due {
            match db.scalar(&pending_near).await {
                Ok(0) => break false,
                Ok(_) => {}
                Err(e) => eprintln!("  poll: {e}"),
            }
            // The grace period runs from the last due instant, or from the workers' start
            // when the enqueue overran it (the run then measures how fast the backlog drains).
            if now > last_due.max(workers_started) + grace {
                break true;
            }
        }
        for (i, c) in children.iter_mut().enumerate() {
            if let Ok(Some(st)) = c.try_wait() {
                return Err(
                    format!("worker {i} exited early ({st}); logs in {}", out.display()).into(),
                );
            }
        }
    };
    let end = now_ms();
    for c in &children {
        term(c);
    }
    for c in children.iter_mut() {
        let _ = c.wait();
    }

    // Touch id → (key, due); raw records → fired.csv.
    let map: HashMap<i64, (i64, i64)> = db
        .pairs("SELECT t.id, CAST(l.first_name AS BIGINT), t.due_at FROM touches t JOIN leads l ON l.id = t.lead_id WHERE t.plan = 'bench'")
        .await?
        .into_iter()
        .map(|(id, key, due)| (id, (key, due)))
        .collect();
    let mut w = std::io::BufWriter::new(std::fs::File::create(out.join("fired.csv"))?);
    let mut raw_files: Vec<PathBuf> = std::fs::read_dir(&out)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("raw-"))
        })
        .collect();
    raw_files.sort();
    let mut backlog_fired = 0;
    for p in &raw_files {
        for line in std::fs::read_to_string(p)?.lines() {
            let mut it = line.split(',');
            let (Some(id), Some(at), Some(pid)) = (it.next(), it.next(), it.next()) else {
                continue; // a line cut short by SIGKILL
            };
            let Ok(id) = id.parse::<i64>() else { continue };
            match map.get(&id) {
                Some((key, due)) if *key >= 0 => writeln!(w, "{key},{due},{at},{pid}")?,
                _ => backlog_fired += 1,
            }
        }
        std::fs::remove_file(p)?;
    }
    w.flush()?;
    let uncertain = db
        .pairs("SELECT t.id, CAST(l.first_name AS BIGINT), t.due_at FROM touches t JOIN leads l ON l.id = t.lead_id WHERE t.plan = 'bench' AND t.status IN ('uncertain', 'sending') AND CAST(l.first_name AS BIGINT) >= 0")
        .await?;
    std::fs::write(
        out.join("uncertain.csv"),
        uncertain
            .iter()
            .map(|(_, key, _)| format!("{key}\n"))
            .collect::<String>(),
    )?;
    let statuses: Vec<(i64, i64, i64)> = db
        .pairs("SELECT CAST(0 AS BIGINT), CAST(0 AS BIGINT), COUNT(*) FROM touches WHERE plan = 'bench' AND status = 'sent'")
        .await?;
    db.close().await;
    drop(pg_db);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", sqlite_file.display()));
    }
    let meta = json!({
        "system": f.str("system", &format!("relentless-{backend}-{k}")),
        "backend": backend,
        "workers": k,
        "n": n,
        "backlog": backlog,
        "backlog_fired": backlog_fired,
        "span_ms": span,
        "enqueue_start_ms": enq_start,
        "enqueue_end_ms": enq_end,
        "first_due_ms": first_due,
        "last_due_ms": last_due,
        "workers_started_ms": workers_started,
        "end_ms": end,
        "timed_out": timed_out,
        "kills": kills,
        "uncertain": uncertain.len(),
        "sent_in_db": statuses.first().map(|s| s.2).unwrap_or(0),
        "settings": format!("engine defaults (batch {}, lease {} ms); {}", f.str("batch", "500"), f.str("lease-ms", "60000"), if backend == "postgres" { "PostgreSQL synchronous_commit as the server has it" } else { "SQLite WAL, synchronous as the store sets it" }),
        "enqueue": "raw SQL, one transaction per 1,000 (lead + enrollment + touch rows)",
    });
    std::fs::write(out.join("meta.json"), serde_json::to_string_pretty(&meta)?)?;
    eprintln!(
        "  done: {} ms after the last due; timed out: {timed_out}; kills {kills}; uncertain {}",
        end - last_due,
        uncertain.len()
    );
    Ok(())
}

/// SQLite ceiling: the same rows in a bare table; insert in transactions of 1,000, then the
/// claim loop `UPDATE … WHERE id IN (SELECT … ORDER BY due LIMIT 500) RETURNING` until
/// nothing is due.
async fn sqlite_ceiling(f: &Flags) -> Result<(), BoxErr> {
    use sqlx::{ConnectOptions, Connection};
    let n = f.num("n", 50_000)?;
    let sync = f.str("synchronous", "normal").to_uppercase();
    let out = PathBuf::from(f.str("out", "."));
    std::fs::create_dir_all(&out)?;
    let file = out.join("ceiling.db");
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&file)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .pragma("synchronous", sync.clone())
        .connect()
        .await?;
    sqlx::query("CREATE TABLE q (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, due INTEGER NOT NULL, state INTEGER NOT NULL DEFAULT 0, payload TEXT NOT NULL)")
        .execute(&mut c)
        .await?;
    sqlx::query("CREATE INDEX q_due ON q(due) WHERE state = 0")
        .execute(&mut c)
        .await?;
    let body = BODY
        .replace("{{ lead.first_name }}", "Lead")
        .replace("{{ agent.name }}", "Agent");
    let t0 = Instant::now();
    let due0 = now_ms() - n; // every row due by the time the claim loop starts
    let mut lo = 0;
    while lo < n {
        let hi = (lo + 1000).min(n);
        let rows: Vec<serde_json::Value> = (lo..hi)
            .map(|i| {
                json!([
                    format!("lead-{i}/touch-0"),
                    due0 + i,
                    format!(
                        "{{\"to\":\"+1555{}\",\"body\":\"{body}\"}}",
                        1_000_000_000 + i
                    )
                ])
            })
            .collect();
        let mut tx = c.begin().await?;
        sqlx::query("INSERT INTO q (key, due, payload) SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?)")
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        lo = hi;
    }
    let insert_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let now = now_ms() + 1;
    let mut claimed = 0usize;
    loop {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "UPDATE q SET state = 1 WHERE id IN (SELECT id FROM q WHERE state = 0 AND due <= ? ORDER BY due LIMIT 500) RETURNING id, due",
        )
        .bind(now)
        .fetch_all(&mut c)
        .await?;
        if rows.is_empty() {
            break;
        }
        claimed += rows.len();
    }
    let claim_s = t1.elapsed().as_secs_f64();
    c.close().await?;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
    let r = json!({
        "system": format!("sqlite-ceiling-{}", sync.to_lowercase()),
        "n": n,
        "synchronous": sync,
        "insert_secs": insert_s,
        "insert_per_sec": n as f64 / insert_s,
        "claimed": claimed,
        "claim_secs": claim_s,
        "claim_per_sec": claimed as f64 / claim_s,
    });
    println!("{r}");
    std::fs::write(out.join("ceiling.json"), r.to_string())?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxErr> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("peers relentless|relentless-worker|sqlite-ceiling [--flag value]…");
        std::process::exit(2);
    };
    let f = Flags::parse(&args[1..])?;
    match cmd.as_str() {
        "relentless" => relentless(&f).await,
        "relentless-worker" => worker(&f).await,
        "sqlite-ceiling" => sqlite_ceiling(&f).await,
        other => Err(format!("unknown command {other}").into()),
    }
}
