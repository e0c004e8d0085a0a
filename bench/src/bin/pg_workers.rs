//! Issue 5: fired touches per second with 1, 2 and 4 `relentless worker` processes on
//! PostgreSQL, next to one `relentless worker` on SQLite (the single dispatcher), same data.
//!
//! Every run starts from a fresh database (PostgreSQL: a file copy of a database seeded once on
//! the test server, `RELENTLESS_TEST_POSTGRES` or 127.0.0.1:5432, dropped afterwards; SQLite: a
//! new file in the temp directory, deleted afterwards): migrations, `Engine::init`, a one-email
//! plan `bench`, `--leads` leads of which the first `--touches` have one email due now, and
//! `--future` touches per lead of a `later` plan due from tomorrow on (the size of the tables
//! and indexes: `--leads 1000000 --future 12` is the main benchmark's 13 touches per lead). Then K real worker processes of
//! `target/release/relentless` are started (outbox channels: no SMTP/Twilio settings) and the
//! clock runs until no `bench` touch is `scheduled` or `sending`. Afterwards every touch must be
//! `sent`, the outbox must hold exactly one copy of each.
//!
//! ```sh
//! cargo build --release -p relentless -p relentless-bench
//! target/release/pg_workers --touches 50000 --workers 1,2,4
//! ```

use relentless_core::types::Channel;
use relentless_engine::channels::outbox::Outbox;
use relentless_engine::setup::InitInput;
use relentless_engine::{Config, Engine, now_ms};
use relentless_store::postgres::testing::TestDatabase;
use relentless_store::{DynStore, PlanRow, TemplateRow};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

const PLAN_SOURCE: &str =
    "slug='bench'\nname='Bench'\n[[steps]]\nafter='+0m'\nchannel='email'\ntemplate='bench-email'\n";

struct Args {
    touches: i64,
    /// Leads in the database (at least `touches`): the first `touches` have a touch due now.
    leads: i64,
    /// Touches per lead scheduled for later (another plan, never due during a run): the
    /// tables and indexes a dispatcher works in are the size of a real team's.
    future: i64,
    workers: Vec<usize>,
    sqlite: bool,
    bin: PathBuf,
    cap: u64,
}

fn parse_args() -> Result<Args, BoxErr> {
    let mut a = Args {
        touches: 50_000,
        leads: 0,
        future: 0,
        workers: vec![1, 2, 4],
        sqlite: true,
        bin: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/relentless"),
        cap: 1800,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--touches" => a.touches = value()?.parse()?,
            "--leads" => a.leads = value()?.parse()?,
            "--future" => a.future = value()?.parse()?,
            "--workers" => {
                a.workers = value()?
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "--no-sqlite" => a.sqlite = false,
            "--bin" => a.bin = PathBuf::from(value()?),
            "--cap" => a.cap = value()?.parse()?,
            "-h" | "--help" => {
                println!(
                    "pg_workers [--touches N] [--leads N] [--future K] [--workers 1,2,4] [--no-sqlite] [--bin PATH] [--cap SECS]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    a.leads = a.leads.max(a.touches);
    Ok(a)
}

/// A fixed-offset zone where it is now between 10:00 and 18:59 (the run never meets the
/// sending window, whatever the time of day).
fn day_zone() -> String {
    let now = jiff::Timestamp::now();
    (-12..=14)
        .map(|h: i32| match h {
            0 => "Etc/GMT".to_string(),
            h if h > 0 => format!("Etc/GMT-{h}"),
            h => format!("Etc/GMT+{}", -h),
        })
        .find(|z| now.in_tz(z).is_ok_and(|t| (10..=18).contains(&t.hour())))
        .unwrap_or_else(|| "Etc/GMT".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Migrations, team, the `bench` plan and its template, through the store and the engine.
async fn prepare(url: &str) -> Result<(), BoxErr> {
    let store: DynStore = relentless_store::open(url).await?;
    store.migrate().await?;
    let engine = Engine::new(store.clone(), Arc::new(Outbox), Config::default());
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
        slug: "bench-email".into(),
        channel: Channel::Email,
        name: "Bench".into(),
        subject: Some("Hello {{ lead.first_name }}".into()),
        body: "Hi {{ lead.first_name }}, still looking for a home?".into(),
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
    tx.plan_save(&PlanRow {
        slug: "later".into(),
        name: "Later".into(),
        version: 1,
        source: LATER_SOURCE.into(),
        updated_at: now,
    })
    .await?;
    tx.commit().await?;
    Ok(())
}

const LATER_SOURCE: &str = "slug='later'\nname='Later'\n[[steps]]\nafter='+30d'\nchannel='email'\ntemplate='bench-email'\n";

// The same rows on both backends: lead i is `B{i} Bench <b{i}@example.com>`, 8 attempts
// already (finishing the plan starts no `nurture`, SPEC §5.6), one active `bench` enrollment,
// one email touch due now.
const LEADS: &str = "INSERT INTO leads (first_name, last_name, email, email_key, timezone, source, level, stage, attempts, created_at, updated_at)
     SELECT 'B' || i, 'Bench', 'b' || i || '@example.com', 'b' || i || '@example.com', $1, 'bench', 'warm', 'attempting', 8, $2, $2";
// Leads 1..=touches get the `bench` touch due now; every lead gets `future` touches of a
// `later` enrollment, due from tomorrow on. `$1` is bound (now); {touches} and {future} are
// the numbers from the command line, written in (see `numbers`).
const ENROLLMENTS: &str = "INSERT INTO enrollments (lead_id, plan, plan_version, state, started_at)
     SELECT id, 'bench', 1, 'active', $1 FROM leads WHERE source = 'bench' AND id <= {touches}";
const TOUCHES: &str = "INSERT INTO touches (enrollment_id, lead_id, plan, step, channel, template, planned_at, due_at, created_at)
     SELECT id, lead_id, 'bench', 0, 'email', 'bench-email', $1, $1, $1 FROM enrollments WHERE plan = 'bench'";
const LATER_ENROLLMENTS: &str =
    "INSERT INTO enrollments (lead_id, plan, plan_version, state, started_at)
     SELECT id, 'later', 1, 'active', $1 FROM leads WHERE source = 'bench' AND {future} > 0";
const LATER_TOUCHES: &str = "INSERT INTO touches (enrollment_id, lead_id, plan, step, channel, template, planned_at, due_at, created_at)
     SELECT e.id, e.lead_id, 'later', k.k, 'email', 'bench-email', $1 + (k.k + 1) * 86400000, $1 + (k.k + 1) * 86400000, $1
     FROM enrollments e JOIN ks k ON k.k < {future} WHERE e.plan = 'later'";
/// SQLite's `touches` hands out no ids (migration 0016): the same rows as the two above,
/// numbered on from the largest id.
const SQLITE_TOUCHES: &str = "INSERT INTO touches (id, enrollment_id, lead_id, plan, step, channel, template, planned_at, due_at, created_at)
     SELECT (SELECT COALESCE(MAX(id), 0) FROM touches) + ROW_NUMBER() OVER (ORDER BY id),
       id, lead_id, 'bench', 0, 'email', 'bench-email', $1, $1, $1 FROM enrollments WHERE plan = 'bench'";
const SQLITE_LATER_TOUCHES: &str = "INSERT INTO touches (id, enrollment_id, lead_id, plan, step, channel, template, planned_at, due_at, created_at)
     SELECT (SELECT COALESCE(MAX(id), 0) FROM touches) + ROW_NUMBER() OVER (ORDER BY e.id, k.k),
       e.id, e.lead_id, 'later', k.k, 'email', 'bench-email', $1 + (k.k + 1) * 86400000, $1 + (k.k + 1) * 86400000, $1
     FROM enrollments e JOIN ks k ON k.k < {future} WHERE e.plan = 'later'";

/// Writes the run's sizes into a statement: integers parsed from the command line.
fn numbers(sql: &str, a: &Args) -> String {
    sql.replace("{touches}", &a.touches.to_string())
        .replace("{future}", &a.future.to_string())
}

async fn seed_postgres(url: &str, a: &Args) -> Result<(), BoxErr> {
    prepare(url).await?;
    let pool = sqlx::PgPool::connect(url).await?;
    let now = now_ms();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "{LEADS} FROM generate_series(1, $3) AS i"
    )))
    .bind(day_zone())
    .bind(now)
    .bind(a.leads)
    .execute(&pool)
    .await?;
    for sql in [
        ENROLLMENTS.to_string(),
        TOUCHES.to_string(),
        LATER_ENROLLMENTS.to_string(),
        format!("WITH ks AS (SELECT generate_series(0, 999) AS k) {LATER_TOUCHES}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(numbers(&sql, a)))
            .bind(now)
            .execute(&pool)
            .await?;
    }
    sqlx::query("VACUUM ANALYZE").execute(&pool).await?;
    pool.close().await;
    Ok(())
}

async fn seed_sqlite(url: &str, a: &Args) -> Result<(), BoxErr> {
    prepare(url).await?;
    let pool = sqlx::SqlitePool::connect(url).await?;
    let now = now_ms();
    let mut tx = pool.begin().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $3) {LEADS} FROM s"
    )
    .replace('$', "?")))
    .bind(day_zone())
    .bind(now)
    .bind(a.leads)
    .execute(&mut *tx)
    .await?;
    // `$N` would be numbered by first appearance on SQLite; `?N` is explicit.
    for sql in [
        ENROLLMENTS.to_string(),
        SQLITE_TOUCHES.to_string(),
        LATER_ENROLLMENTS.to_string(),
        format!(
            "WITH RECURSIVE ks(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM ks WHERE k < 999) {SQLITE_LATER_TOUCHES}"
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(numbers(&sql, a).replace('$', "?")))
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(())
}

/// `relentless worker` on `url`, with no RELENTLESS_* setting but the database's own: the
/// outbox channels and the engine's defaults (batch 500).
fn spawn_worker(bin: &PathBuf, url: &str, log: &std::path::Path) -> Result<Child, BoxErr> {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("RELENTLESS_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.arg("worker")
        .env("RELENTLESS_DATABASE_URL", url)
        .env("RELENTLESS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?);
    Ok(cmd
        .spawn()
        .map_err(|e| format!("start {}: {e}", bin.display()))?)
}

fn stop(children: &mut [Child]) {
    for c in children.iter() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
    }
    for c in children.iter_mut() {
        let _ = c.wait();
    }
}

struct Outcome {
    backend: &'static str,
    workers: usize,
    secs: f64,
    sent: i64,
    other: i64,
    outbox: i64,
    duplicates: i64,
    load_before: String,
}

/// A pool on either backend, for the progress poll and the checks.
enum Db {
    Pg(sqlx::PgPool),
    Lite(sqlx::SqlitePool),
}

impl Db {
    async fn count(&self, sql: &str) -> Result<i64, BoxErr> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        Ok(match self {
            Db::Pg(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await?,
            Db::Lite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await?,
        })
    }
    async fn close(self) {
        match self {
            Db::Pg(p) => p.close().await,
            Db::Lite(p) => p.close().await,
        }
    }
}

async fn measure(
    a: &Args,
    backend: &'static str,
    url: &str,
    k: usize,
    logs: &std::path::Path,
) -> Result<Outcome, BoxErr> {
    let db = match backend {
        "postgres" => Db::Pg(sqlx::PgPool::connect(url).await?),
        _ => Db::Lite(sqlx::SqlitePool::connect(url).await?),
    };
    let pending_sql =
        "SELECT COUNT(*) FROM touches WHERE plan = 'bench' AND status IN ('scheduled', 'sending')";
    let load_before = loadavg();
    let start = Instant::now();
    let mut children = Vec::new();
    for i in 0..k {
        children.push(spawn_worker(
            &a.bin,
            url,
            &logs.join(format!("{backend}-{k}-{i}.log")),
        )?);
    }
    let result = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        match db.count(pending_sql).await {
            Ok(0) => break Ok(start.elapsed().as_secs_f64()),
            Ok(_) => {}
            Err(e) => eprintln!("poll: {e}"),
        }
        if let Some(dead) = children
            .iter_mut()
            .position(|c| matches!(c.try_wait(), Ok(Some(_))))
        {
            break Err(format!(
                "worker {dead} exited early; logs in {}",
                logs.display()
            ));
        }
        if start.elapsed().as_secs() > a.cap {
            break Err(format!("not done after {} s", a.cap));
        }
    };
    stop(&mut children);
    let secs = result?;
    let sent = db
        .count("SELECT COUNT(*) FROM touches WHERE plan = 'bench' AND status = 'sent'")
        .await?;
    let other = db
        .count("SELECT COUNT(*) FROM touches WHERE plan = 'bench' AND status <> 'sent'")
        .await?;
    let outbox = db.count("SELECT COUNT(*) FROM outbox").await?;
    let duplicates = db
        .count("SELECT COUNT(*) FROM (SELECT touch_id FROM outbox GROUP BY touch_id HAVING COUNT(*) > 1) AS d")
        .await?;
    db.close().await;
    Ok(Outcome {
        backend,
        workers: k,
        secs,
        sent,
        other,
        outbox,
        duplicates,
        load_before,
    })
}

fn report(o: &Outcome, n: i64) {
    println!(
        "| {} | {} | {} | {:.1} | {:.0} | {} | {} | {} | {} |",
        o.backend,
        o.workers,
        n,
        o.secs,
        o.sent as f64 / o.secs,
        o.sent,
        o.other,
        o.duplicates,
        o.load_before
    );
    if o.other != 0 || o.duplicates != 0 || o.outbox != o.sent {
        println!(
            "  ^ CHECK FAILED: {} not sent, {} duplicated, outbox {} vs sent {}",
            o.other, o.duplicates, o.outbox, o.sent
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxErr> {
    let a = parse_args()?;
    if !a.bin.exists() {
        return Err(format!(
            "{} not found: cargo build --release -p relentless",
            a.bin.display()
        )
        .into());
    }
    let logs = std::env::temp_dir().join(format!("relentless-pg-workers-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    println!(
        "pg_workers: {} due email touches per run among {} leads with {} later touches each, workers {:?}, {} cores, load average {} at start, {}",
        a.touches,
        a.leads,
        a.future,
        a.workers,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg(),
        jiff::Timestamp::now()
    );
    println!(
        "| backend | workers | touches | wall s | touches/s | sent | not sent | outbox duplicates | load avg before (1/5/15 min) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    if a.sqlite {
        let file = logs.join("bench.db");
        let url = format!("sqlite://{}", file.display());
        let t = Instant::now();
        seed_sqlite(&url, &a).await?;
        eprintln!("sqlite seeded in {:.1} s", t.elapsed().as_secs_f64());
        let o = measure(&a, "sqlite", &url, 1, &logs).await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
        report(&o?, a.touches);
    }
    // Seeded once; every run gets a fresh file copy of it.
    let template = if a.workers.is_empty() {
        None
    } else {
        let db = TestDatabase::create().await?;
        let t = Instant::now();
        seed_postgres(db.url(), &a).await?;
        eprintln!(
            "postgres {} seeded in {:.1} s",
            db.name(),
            t.elapsed().as_secs_f64()
        );
        Some(db)
    };
    for &k in &a.workers {
        let t = Instant::now();
        let db = TestDatabase::copy_of(template.as_ref().unwrap().name()).await?;
        eprintln!(
            "postgres {} copied in {:.1} s",
            db.name(),
            t.elapsed().as_secs_f64()
        );
        let o = measure(&a, "postgres", db.url(), k, &logs).await;
        drop(db);
        report(&o?, a.touches);
    }
    drop(template);
    let _ = std::fs::remove_dir_all(&logs);
    Ok(())
}
