//! Phase 1: a fresh SQLite file with N leads in `relentless-21` (13 touches each).
//!
//! The schema comes from the store's own migrations and the team, admin, agents, plans and
//! templates from `Engine::init`/`add_user`, so the file is exactly what `relentless serve`
//! would open. The leads, enrollments and touches are then written through a second, raw
//! sqlx connection (the `Store` interface inserts one lead per statement with `RETURNING`,
//! which is far slower at this size): ids are assigned here, each batch is one transaction, and
//! rows travel as one JSON array per statement (`INSERT … SELECT … FROM jsonb_each(?)`), so
//! SQLite parses the rows in C instead of sqlx binding 16 values per touch (`jsonb_each` hands
//! each row over as JSONB, so `->>` does not re-parse it per column: twice as fast as
//! `json_each`). The secondary indexes are dropped while loading and rebuilt afterwards from
//! the SQL in `sqlite_master` (`--keep-indexes` to load with them in place). Touch instants are
//! computed by the engine's own `leads::plan_for` (schedule math, sending window), cached per
//! (zone, start minute).
//!
//! The data set models a team in steady state plus a backlog:
//! - *bulk* leads started 0–21 days ago (ids ascending with start); their touches due before
//!   now are already settled (`sent` for text/email, `done` for call/video tasks), the rest are
//!   `scheduled` in the future;
//! - *backlog* leads (every k-th id, enough to make `--due` touches) started 22–23 days ago and
//!   none of their 13 touches has gone out: they are all due now (as after an import with a
//!   back-dated start, or an outage). Their zones are chosen so that the sending window is open
//!   while the benchmark runs, so the dispatcher sends instead of holding them.

use crate::data::{self, SOURCES, US_ZONES, mix};
use relentless_core::plan::Plan;
use relentless_core::types::{Channel, Role};
use relentless_engine::channels::outbox::Outbox;
use relentless_engine::setup::{InitInput, UserInput};
use relentless_engine::{Config, Engine, TeamCtx, now_ms};
use relentless_store::sqlite::SqliteStore;
use relentless_store::{Lead, Store};
use serde_json::{Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

pub type BoxErr = Box<dyn std::error::Error + Send + Sync>;

pub const ADMIN_EMAIL: &str = "admin@bench.example.com";
pub const AGENTS: &[(&str, &str)] = &[
    ("sam@bench.example.com", "Sam Carter"),
    ("riley@bench.example.com", "Riley Chen"),
];
const PLAN: &str = "relentless-21";
const DAY: i64 = 86_400_000;

pub struct LoadArgs {
    pub leads: u64,
    /// Touches that should be due (unsent) when loading ends.
    pub due: u64,
    /// Leads per write transaction.
    pub batch: u64,
    /// Drop the secondary indexes (and the FTS insert trigger) while loading and build them
    /// afterwards, from the exact SQL the migrations created.
    pub drop_indexes: bool,
}

pub fn url(db: &Path) -> String {
    format!("sqlite://{}", db.display())
}

/// One planned touch, ready to be written (strings pre-rendered as JSON).
struct PTouch {
    step: i64,
    channel: Channel,
    template_json: String,
    planned: i64,
    due: i64,
    reason_json: String,
}

pub async fn run(db: &Path, a: &LoadArgs) -> Result<Value, BoxErr> {
    let t_setup = Instant::now();
    let url = url(db);
    let store = SqliteStore::open(&url).await?;
    store.migrate().await?;
    let engine = Engine::new(Arc::new(store), Arc::new(Outbox), Config::default());
    engine
        .init(InitInput {
            admin_email: ADMIN_EMAIL.into(),
            admin_password: None,
            team_name: Some("Bench Realty".into()),
            address: Some("1 Benchmark Way, Austin, TX 78701".into()),
        })
        .await?;
    let mut agent_ids = Vec::new();
    for (email, name) in AGENTS {
        let u = engine
            .add_user(UserInput {
                email: Some((*email).into()),
                name: Some((*name).into()),
                role: Some(Role::Agent),
                ..Default::default()
            })
            .await?;
        agent_ids.push(u.id);
    }
    let (team, plan, plan_version) = {
        let mut tx = engine.store.read().await?;
        let team = tx.team().await?.ok_or("no team after init")?;
        let row = tx.plan(PLAN).await?.ok_or("no relentless-21 after init")?;
        (team, Plan::from_toml(&row.source)?, row.version)
    };
    let rules = relentless_engine::team_rules(&team)?;
    let tz = jiff::tz::TimeZone::get(&team.timezone)?;
    let team = TeamCtx { team, rules, tz };
    drop(engine);
    let setup_secs = t_setup.elapsed().as_secs_f64();

    // The loader's own connection: a big page cache and no fsync while loading (the file is
    // thrown away if the load fails); the store's settings (WAL, NORMAL) apply when it is
    // opened again by the next phases.
    let mut conn = SqliteConnectOptions::from_str(&url)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Off)
        .foreign_keys(false)
        .pragma("cache_size", "-1048576")
        .pragma("temp_store", "memory")
        .connect()
        .await?;

    let open = data::open_zones(4);
    let n = a.leads;
    let backlog_leads = a.due.div_ceil(13).min(n);
    let is_backlog = |i: u64| -> bool {
        backlog_leads > 0 && (i * backlog_leads / n) != ((i - 1) * backlog_leads / n)
    };
    let zones: Vec<&'static str> = US_ZONES
        .iter()
        .copied()
        .chain(open.iter().copied())
        .collect();
    let zone_leads: Vec<Lead> = zones.iter().map(|z| blank_lead(z)).collect();

    let load_now = now_ms();
    let mut cache: HashMap<(usize, i64), Rc<Vec<PTouch>>> = HashMap::new();
    let mut plan_calls = 0u64;
    let mut gen_secs = 0.0f64;
    let mut sql_secs = 0.0f64;
    let mut touch_id: i64 = 0;
    let mut touches_total = 0u64;
    let mut due_total = 0u64;
    let chunk = 1_000u64.min(a.batch.max(1));

    let t_load = Instant::now();
    // Bulk-load idiom: indexes built once, sorted, instead of maintained row by row. The SQL
    // comes from sqlite_master, so whatever the migrations define is what is rebuilt.
    let mut rebuild: Vec<(String, String, String)> = Vec::new();
    if a.drop_indexes {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT type, name, sql FROM sqlite_master
             WHERE tbl_name IN ('leads', 'enrollments', 'touches') AND sql IS NOT NULL
               AND (type = 'index' OR (type = 'trigger' AND sql LIKE '%leads_fts%' AND sql LIKE '%AFTER INSERT%'))",
        )
        .fetch_all(&mut conn)
        .await?;
        for (kind, name, sql) in rows {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP {} \"{name}\"",
                kind.to_uppercase()
            )))
            .execute(&mut conn)
            .await?;
            rebuild.push((kind, name, sql));
        }
    }
    let mut next_report = 100_000u64;
    let mut i = 1u64;
    while i <= n {
        let batch_end = (i + a.batch).min(n + 1);
        let mut tx = conn.begin().await?;
        while i < batch_end {
            let chunk_end = (i + chunk).min(batch_end);
            let t_gen = Instant::now();
            let mut leads = String::with_capacity(300 * chunk as usize);
            let mut enrollments = String::with_capacity(30 * chunk as usize);
            let mut touches = String::with_capacity(13 * 160 * chunk as usize);
            leads.push('[');
            enrollments.push('[');
            touches.push('[');
            for id in i..chunk_end {
                let backlog = is_backlog(id);
                let h = mix(id ^ 0x5eed);
                let (zone_idx, start) = if backlog {
                    let z = US_ZONES.len() + (id as usize % open.len());
                    // 22-23 days ago: every step of the 21-day plan is due.
                    let s = load_now - 22 * DAY - (h % DAY as u64) as i64;
                    (z, s - s.rem_euclid(60_000))
                } else {
                    let z = id as usize % US_ZONES.len();
                    let age = (21 * DAY) as u128 * (n - id) as u128 / n as u128;
                    let s = load_now - age as i64;
                    (z, s - s.rem_euclid(60_000))
                };
                let planned = match cache.get(&(zone_idx, start)) {
                    Some(p) => p.clone(),
                    None => {
                        if cache.len() > 20_000 {
                            cache.clear();
                        }
                        plan_calls += 1;
                        let p = Rc::new(
                            relentless_engine::leads::plan_for(
                                &plan,
                                &team,
                                &zone_leads[zone_idx],
                                start,
                                None,
                                &[],
                            )
                            .into_iter()
                            .map(|t| PTouch {
                                step: t.step,
                                channel: t.channel,
                                template_json: serde_json::to_string(&t.template).unwrap(),
                                planned: t.planned_at,
                                due: t.due_at,
                                reason_json: serde_json::to_string(&t.reason).unwrap(),
                            })
                            .collect::<Vec<_>>(),
                        );
                        cache.insert((zone_idx, start), p.clone());
                        p
                    }
                };
                // Touches: settled if past (bulk leads), scheduled otherwise.
                let mut attempts = 0i64;
                let mut first_attempt: Option<i64> = None;
                let mut last_touch: Option<i64> = None;
                let mut next_touch: Option<i64> = None;
                for t in planned.iter() {
                    touch_id += 1;
                    touches_total += 1;
                    let settled = !backlog && t.due <= load_now;
                    if touches.len() > 1 {
                        touches.push(',');
                    }
                    let _ = write!(
                        touches,
                        "[{touch_id},{id},{},\"{}\",{},{},{},",
                        t.step,
                        t.channel.as_str(),
                        t.template_json,
                        t.planned,
                        t.due
                    );
                    if settled {
                        attempts += 1;
                        first_attempt.get_or_insert(t.due);
                        last_touch = Some(t.due);
                        let (status, sent_channel, delivery) = if t.channel.is_automatic() {
                            ("sent", format!("\"{}\"", t.channel.as_str()), "\"queued\"")
                        } else {
                            ("done", "null".to_string(), "null")
                        };
                        let _ = write!(
                            touches,
                            "\"{status}\",{},{attempts},{sent_channel},{delivery},{},{start}]",
                            t.reason_json, t.due
                        );
                    } else {
                        if t.due <= load_now {
                            due_total += 1;
                        }
                        next_touch = Some(next_touch.map_or(t.due, |n: i64| n.min(t.due)));
                        let _ = write!(
                            touches,
                            "\"scheduled\",{},null,null,null,null,{start}]",
                            t.reason_json
                        );
                    }
                }
                let p = data::person(id);
                let source = SOURCES[(h % SOURCES.len() as u64) as usize];
                let level = if h.is_multiple_of(5) { "hot" } else { "warm" };
                let stage = if attempts > 0 { "attempting" } else { "new" };
                let agent = agent_ids[(id % agent_ids.len() as u64) as usize];
                let opt = |v: Option<i64>| v.map_or("null".to_string(), |x| x.to_string());
                if leads.len() > 1 {
                    leads.push(',');
                    enrollments.push(',');
                }
                let _ = write!(
                    leads,
                    "[{id},\"{}\",\"{}\",\"{}\",\"{}\",\"{}\",\"{source}\",\"{level}\",\"{stage}\",{agent},{attempts},{},{},{},{start}]",
                    p.first,
                    p.last,
                    p.email,
                    p.phone,
                    zones[zone_idx],
                    opt(first_attempt),
                    opt(last_touch),
                    opt(next_touch),
                );
                let _ = write!(enrollments, "[{id},{start}]");
            }
            leads.push(']');
            enrollments.push(']');
            touches.push(']');
            gen_secs += t_gen.elapsed().as_secs_f64();

            let t_sql = Instant::now();
            sqlx::query(
                "INSERT INTO leads (id, first_name, last_name, email, email_key, phone, timezone, source, level, stage,
                   assigned_to, attempts, first_attempt_at, last_touch_at, next_touch_at, created_at, updated_at)
                 SELECT j.value->>0, j.value->>1, j.value->>2, j.value->>3, j.value->>3, j.value->>4, j.value->>5, j.value->>6,
                   j.value->>7, j.value->>8, j.value->>9, j.value->>10, j.value->>11, j.value->>12, j.value->>13,
                   j.value->>14, j.value->>14
                 FROM jsonb_each(?1) j",
            )
            .bind(&leads)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO enrollments (id, lead_id, plan, plan_version, state, started_at)
                 SELECT j.value->>0, j.value->>0, ?2, ?3, 'active', j.value->>1 FROM jsonb_each(?1) j",
            )
            .bind(&enrollments)
            .bind(PLAN)
            .bind(plan_version)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO touches (id, enrollment_id, lead_id, plan, step, channel, template, planned_at, due_at, status,
                   reason, attempt, sent_channel, delivery, settled_at, created_at)
                 SELECT j.value->>0, j.value->>1, j.value->>1, ?2, j.value->>2, j.value->>3, j.value->>4, j.value->>5,
                   j.value->>6, j.value->>7, j.value->>8, j.value->>9, j.value->>10, j.value->>11, j.value->>12, j.value->>13
                 FROM jsonb_each(?1) j",
            )
            .bind(&touches)
            .bind(PLAN)
            .execute(&mut *tx)
            .await?;
            sql_secs += t_sql.elapsed().as_secs_f64();
            i = chunk_end;
        }
        let t_commit = Instant::now();
        tx.commit().await?;
        sql_secs += t_commit.elapsed().as_secs_f64();
        if i > next_report || i > n {
            next_report += 100_000;
            eprintln!(
                "  load: {:>9} leads, {:>10} touches, {:6.1} s",
                i - 1,
                touches_total,
                t_load.elapsed().as_secs_f64()
            );
        }
    }
    let t_index = Instant::now();
    let fts_trigger = rebuild.iter().any(|(k, _, _)| k == "trigger");
    for (_, _, sql) in rebuild.iter().filter(|(k, _, _)| k == "index") {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await?;
    }
    if fts_trigger {
        sqlx::query("INSERT INTO leads_fts(leads_fts) VALUES ('rebuild')")
            .execute(&mut conn)
            .await?;
        for (_, _, sql) in rebuild.iter().filter(|(k, _, _)| k == "trigger") {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut conn)
                .await?;
        }
    }
    let index_secs = t_index.elapsed().as_secs_f64();
    if !rebuild.is_empty() {
        eprintln!(
            "  load: {} indexes/triggers rebuilt in {index_secs:.1} s",
            rebuild.len()
        );
    }
    let t_ckpt = Instant::now();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    let checkpoint_secs = t_ckpt.elapsed().as_secs_f64();
    let load_secs = t_load.elapsed().as_secs_f64();

    // Sanity check, outside the timing: the file holds what was meant.
    let counts = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM leads), (SELECT COUNT(*) FROM enrollments), (SELECT COUNT(*) FROM touches),
           (SELECT COUNT(*) FROM touches WHERE status = 'scheduled' AND task_id IS NULL AND due_at <= ?1)",
    )
    .bind(load_now)
    .fetch_one(&mut conn)
    .await?;
    let (db_leads, db_enr, db_touches, db_due): (i64, i64, i64, i64) =
        (counts.get(0), counts.get(1), counts.get(2), counts.get(3));
    if db_leads as u64 != n || db_touches as u64 != touches_total {
        return Err(format!(
            "loaded {db_leads} leads / {db_touches} touches, expected {n} / {touches_total}"
        )
        .into());
    }
    conn.close().await?;
    let db_bytes = std::fs::metadata(db).map(|m| m.len()).unwrap_or(0);
    let rows = db_leads + db_enr + db_touches;
    Ok(json!({
        "setup_secs": setup_secs,
        "load_secs": load_secs,
        "generate_secs": gen_secs,
        "sql_secs": sql_secs,
        "checkpoint_secs": checkpoint_secs,
        "index_secs": index_secs,
        "dropped_indexes": a.drop_indexes,
        "leads": db_leads,
        "enrollments": db_enr,
        "touches": db_touches,
        "rows": rows,
        "leads_per_sec": db_leads as f64 / load_secs,
        "rows_per_sec": rows as f64 / load_secs,
        "backlog_leads": backlog_leads,
        "due_touches": db_due,
        "due_expected": due_total,
        "plan_for_calls": plan_calls,
        "db_mb": db_bytes as f64 / 1e6,
        "zones_open_now": open,
        "peak_rss_mb": crate::sys::peak_rss_kb() as f64 / 1024.0,
    }))
}

/// What `plan_for` reads of a lead: its zone and region.
fn blank_lead(zone: &str) -> Lead {
    use relentless_core::types::{Level, Stage};
    Lead {
        id: 0,
        first_name: String::new(),
        last_name: String::new(),
        email: None,
        phone: None,
        timezone: zone.to_string(),
        region: None,
        source: String::new(),
        level: Level::Warm,
        stage: Stage::New,
        preferred_channel: None,
        assigned_to: None,
        external_id: None,
        tags: vec![],
        notes: String::new(),
        property_address: String::new(),
        sms_opt_out: false,
        email_opt_out: false,
        do_not_call: false,
        email_bad: false,
        phone_bad: false,
        attempts: 0,
        first_attempt_at: None,
        first_call_at: None,
        answered_at: None,
        answered_on: None,
        attempts_at_answer: None,
        last_touch_at: None,
        next_touch_at: None,
        created_at: 0,
        updated_at: 0,
    }
}
