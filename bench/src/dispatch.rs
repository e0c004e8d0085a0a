//! Phase 2: the real `Dispatcher::tick()` in a loop over the backlog until nothing is due.
//!
//! With the statement profiler ([`crate::sqlprof`]) on, the report also shows every SQL
//! statement shape the batches ran: calls per batch, time, share of the wall time. The rest of
//! the tick is the engine's own CPU (deciding, rendering templates, building rows) and the
//! hand-offs between the async runtime and sqlx's SQLite worker thread.

use crate::load::{BoxErr, url};
use crate::sqlprof::SqlProfile;
use relentless_engine::channels::outbox::Outbox;
use relentless_engine::dispatch::Dispatcher;
use relentless_engine::{Config, Engine, now_ms};
use relentless_store::sqlite::SqliteStore;
use serde_json::{Value, json};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Row, SqliteConnection};
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct DispatchArgs {
    /// Stop after this long even if touches are still due.
    pub cap: Duration,
    /// Touches claimed per batch (the engine's `Config::batch`).
    pub batch: i64,
    /// Count and time SQL statements (costs ~1 µs per statement).
    pub profile: bool,
}

async fn raw(db: &Path) -> Result<SqliteConnection, BoxErr> {
    Ok(SqliteConnectOptions::from_str(&url(db))?
        .read_only(true)
        .connect()
        .await?)
}

async fn due_now(db: &Path) -> Result<i64, BoxErr> {
    let mut c = raw(db).await?;
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM touches WHERE status = 'scheduled' AND task_id IS NULL AND due_at <= ?",
    )
    .bind(now_ms())
    .fetch_one(&mut c)
    .await?;
    Ok(n)
}

/// User + system CPU seconds of this process (all threads, including sqlx's SQLite workers).
pub fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// This process's I/O so far (`/proc/self/io`, all threads): bytes and calls of `read`/`pread`
/// and `write`/`pwrite`, page-cache hits included. Unlike a rate, these do not move with the
/// host's load: the dispatcher's page reads and WAL frames, and its checkpoints.
fn io_counters() -> HashMap<String, f64> {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

pub async fn run(db: &Path, a: &DispatchArgs) -> Result<Value, BoxErr> {
    let due_before = due_now(db).await?;
    let prof = a.profile.then(SqlProfile::install);
    let store = SqliteStore::open(&url(db)).await?;
    let config = Config {
        batch: a.batch,
        ..Config::default()
    };
    let engine = Engine::new(Arc::new(store), Arc::new(Outbox), config);
    let mut d = Dispatcher::new(engine.clone());

    if let Some(p) = &prof {
        p.reset();
    }
    let start_ms = now_ms();
    let cpu0 = cpu_secs();
    let io0 = io_counters();
    let t0 = Instant::now();
    let mut busy = Duration::ZERO;
    let mut ticks: Vec<f64> = Vec::new();
    let (mut claimed, mut sent, mut tasks, mut skipped, mut uncertain) = (0, 0, 0, 0, 0);
    let mut next_report = Duration::from_secs(5);
    loop {
        let tt = Instant::now();
        let r = d.tick().await?;
        if r.claimed == 0 {
            break;
        }
        let dt = tt.elapsed();
        busy += dt;
        ticks.push(dt.as_secs_f64() * 1000.0);
        claimed += r.claimed;
        sent += r.sent;
        tasks += r.tasks;
        skipped += r.skipped;
        uncertain += r.uncertain;
        if t0.elapsed() >= next_report {
            next_report += Duration::from_secs(5);
            eprintln!(
                "  dispatch: {claimed:>8} claimed, {:>7.0}/s",
                claimed as f64 / busy.as_secs_f64()
            );
        }
        if t0.elapsed() >= a.cap {
            eprintln!("  dispatch: stopped at the cap ({:?})", a.cap);
            break;
        }
    }
    let cpu = cpu_secs() - cpu0;
    let io1 = io_counters();
    let io_per_fired =
        |k: &str| (io1.get(k).unwrap_or(&0.0) - io0.get(k).unwrap_or(&0.0)) / claimed.max(1) as f64;
    let secs = busy.as_secs_f64();
    let profile = prof.map(|p| p.snapshot()).unwrap_or_default();
    let decided_ahead = d.batches_decided_ahead();
    drop(d);
    drop(engine);

    // What the database says happened (the engine's counts are cross-checked here).
    let mut c = raw(db).await?;
    let by_status: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, COUNT(*) FROM touches WHERE settled_at >= ? GROUP BY status ORDER BY status",
    )
    .bind(start_ms)
    .fetch_all(&mut c)
    .await?;
    let tasks_db: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks WHERE created_at >= ?")
        .bind(start_ms)
        .fetch_one(&mut c)
        .await?;
    let held: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM touches WHERE status = 'scheduled' AND reason LIKE 'held for%'",
    )
    .fetch_one(&mut c)
    .await?;
    let outbox: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(&mut c)
        .await?;
    let row = sqlx::query("SELECT COUNT(*) FROM activities")
        .fetch_one(&mut c)
        .await?;
    let activities: i64 = row.get(0);
    drop(c);
    let due_after = due_now(db).await?;
    let micro = crate::micro::run(db).await?;

    let settled_db: i64 = by_status.iter().map(|(_, n)| n).sum();
    let fired = settled_db + tasks_db;
    let mut t_sorted = ticks.clone();
    t_sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let sql_total: f64 = profile.iter().map(|(_, s)| s.secs).sum();
    let sql_calls: u64 = profile.iter().map(|(_, s)| s.calls).sum();
    let ops: Vec<Value> = profile
        .iter()
        .map(|(sql, st)| {
            json!({
                "sql": sql,
                "calls": st.calls,
                "rows": st.rows,
                "calls_per_batch": st.calls as f64 / ticks.len().max(1) as f64,
                "calls_per_claimed_touch": st.calls as f64 / claimed.max(1) as f64,
                "total_secs": st.secs,
                "share": st.secs / secs.max(1e-9),
                "us_per_claimed_touch": st.secs * 1e6 / claimed.max(1) as f64,
            })
        })
        .collect();
    Ok(json!({
        "due_before": due_before,
        "due_after": due_after,
        "secs": secs,
        "cpu_secs": cpu,
        "kib_written_per_fired": io_per_fired("wchar") / 1024.0,
        "kib_read_per_fired": io_per_fired("rchar") / 1024.0,
        "write_calls_per_fired": io_per_fired("syscw"),
        "read_calls_per_fired": io_per_fired("syscr"),
        "batches": ticks.len(),
        "batches_decided_ahead": decided_ahead,
        "batch_size": a.batch,
        "claimed": claimed,
        "sent": sent,
        "tasks": tasks,
        "skipped": skipped,
        "uncertain": uncertain,
        "held": held,
        "settled_by_status": by_status.iter().map(|(s, n)| json!({"status": s, "count": n})).collect::<Vec<_>>(),
        "tasks_created": tasks_db,
        "outbox_rows": outbox,
        "activity_rows": activities,
        "fired": fired,
        "fired_per_sec": fired as f64 / secs.max(1e-9),
        "claimed_per_sec": claimed as f64 / secs.max(1e-9),
        "tick_ms_p50": pct(&t_sorted, 0.50),
        "tick_ms_p99": pct(&t_sorted, 0.99),
        "tick_ms_max": t_sorted.last().copied().unwrap_or(0.0),
        // Every batch's time in order: where the slow ones fall (the first, cold; or later).
        "tick_ms": ticks.iter().map(|t| (t * 10.0).round() / 10.0).collect::<Vec<_>>(),
        "profiled": a.profile,
        "sql_secs": sql_total,
        "sql_statements": sql_calls,
        "sql_statements_per_claimed_touch": sql_calls as f64 / claimed.max(1) as f64,
        "outside_sql_secs": (secs - sql_total).max(0.0),
        "profile": ops,
        "micro": micro,
        "peak_rss_mb": crate::sys::peak_rss_kb() as f64 / 1024.0,
    }))
}

/// The `q` quantile of sorted values (nearest rank).
pub fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
