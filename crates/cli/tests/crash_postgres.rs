//! Crash test (SPEC §5.4 across processes): three real `relentless worker` processes on one
//! PostgreSQL database dispatch due texts to a loopback server that speaks Twilio's Messages
//! API and records every request, while a random worker is killed with SIGKILL every 1–2 s
//! and restarted. At the end every touch is `sent` or `uncertain`, the provider saw no touch
//! twice, every `sent` touch reached it, and `uncertain` is at most kills × batch.
//!
//! CI size: 3,000 touches. Full size: `RELENTLESS_CRASH_TOUCHES=100000 cargo test -p relentless
//! --release --test crash_postgres -- --nocapture` (see bench/ for throughput).

use axum::extract::State;
use axum::routing::post;
use relentless_engine::channels::outbox::Outbox;
use relentless_engine::setup::InitInput;
use relentless_engine::{Config, Engine, now_ms};
use relentless_store::postgres::PostgresStore;
use relentless_store::postgres::testing::TestDatabase;
use relentless_store::{PlanRow, Store, TemplateRow};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_relentless");
const WORKERS: usize = 3;
const BATCH: i64 = 20;

/// (To, Body) of every request the provider got, in order.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A loopback Twilio: `POST /2010-04-01/Accounts/{sid}/Messages.json` records the message
/// and answers `201` with a message SID, after 20 ms (a provider is not instant, so kills
/// land mid-batch).
async fn start_twilio(seen: Seen) -> String {
    async fn create(
        State(seen): State<Seen>,
        axum::Form(form): axum::Form<HashMap<String, String>>,
    ) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let n = {
            let mut s = seen.lock().unwrap();
            s.push((
                form.get("To").cloned().unwrap_or_default(),
                form.get("Body").cloned().unwrap_or_default(),
            ));
            s.len()
        };
        (
            axum::http::StatusCode::CREATED,
            axum::Json(serde_json::json!({"sid": format!("SM{n:032}"), "status": "queued"})),
        )
    }
    let app = axum::Router::new()
        .route("/2010-04-01/Accounts/{sid}/Messages.json", post(create))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// A zone where it is now between 10:00 and 18:59: texts are inside the sending window for
/// the whole run.
fn day_zone() -> String {
    relentless_core::schedule::zone_with_local_hour(jiff::Timestamp::now(), 10..=18)
        .expect("some zone is in the day")
}

/// The team, a one-text plan, and `n` leads each with one text due now (unique body: the
/// lead's first name is `T{i}`). Written with SQL: 100,000 leads through the API would take
/// longer than the test.
async fn seed(url: &str, n: i64) {
    let store = Arc::new(PostgresStore::open(url, 2).await.unwrap());
    store.migrate().await.unwrap();
    let engine = Engine::new(store.clone(), Arc::new(Outbox), Config::default());
    engine
        .init(InitInput {
            admin_email: "admin@example.com".into(),
            admin_password: None,
            team_name: Some("Crash Team".into()),
            address: Some("1 Main St".into()),
        })
        .await
        .unwrap();
    let now = now_ms();
    let mut tx = store.write().await.unwrap();
    tx.template_save(&TemplateRow {
        slug: "crash-text".into(),
        channel: relentless_core::types::Channel::Text,
        name: "Crash".into(),
        subject: None,
        body: "Crash test {{ lead.first_name }}".into(),
        voicemail: None,
        updated_at: now,
    })
    .await
    .unwrap();
    tx.plan_save(&PlanRow {
        slug: "crash".into(),
        name: "Crash".into(),
        version: 1,
        source: "slug='crash'\nname='Crash'\n[[steps]]\nafter='+0m'\nchannel='text'\ntemplate='crash-text'\n".into(),
        updated_at: now,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let pool = store.pool();
    // 8 attempts already: finishing the plan does not start `nurture` (SPEC §5.6).
    sqlx::query(
        "INSERT INTO leads (first_name, last_name, phone, timezone, source, level, stage, attempts, created_at, updated_at)
         SELECT 'T' || i, 'Crash', '+1512' || (2000000 + i), $1, 'crash', 'warm', 'attempting', 8, $2, $2
         FROM generate_series(1, $3) AS i",
    )
    .bind(day_zone())
    .bind(now)
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO enrollments (lead_id, plan, plan_version, state, started_at)
         SELECT id, 'crash', 1, 'active', $1 FROM leads WHERE source = 'crash'",
    )
    .bind(now)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO touches (enrollment_id, lead_id, plan, step, channel, template, planned_at, due_at, created_at)
         SELECT id, lead_id, 'crash', 0, 'text', 'crash-text', $1, $1, $1 FROM enrollments WHERE plan = 'crash'",
    )
    .bind(now)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(pool).await.unwrap();
}

struct Workers {
    url: String,
    twilio: String,
    logs: tempfile::TempDir,
    children: Vec<Child>,
    started: usize,
}

impl Workers {
    fn spawn(&mut self) -> Child {
        self.started += 1;
        let log = std::fs::File::create(
            self.logs
                .path()
                .join(format!("worker-{}.log", self.started)),
        )
        .unwrap();
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("RELENTLESS_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("worker")
            .arg("--database-url")
            .arg(&self.url)
            .current_dir(self.logs.path())
            .env(
                "RELENTLESS_TWILIO_ACCOUNT_SID",
                "AC00000000000000000000000000000000",
            )
            .env("RELENTLESS_TWILIO_AUTH_TOKEN", "crash-test-token")
            .env("RELENTLESS_TWILIO_FROM", "+15125550100")
            .env("RELENTLESS_TWILIO_API_BASE", &self.twilio)
            .env("RELENTLESS_BATCH", BATCH.to_string())
            .env("RELENTLESS_SEND_LEASE_SECS", "1")
            .env("RELENTLESS_DB_POOL", "3")
            .env("RELENTLESS_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start relentless worker")
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for i in 1..=self.started {
            if let Ok(s) = std::fs::read_to_string(self.logs.path().join(format!("worker-{i}.log")))
                && !s.trim().is_empty()
            {
                out.push_str(&format!("--- worker {i}\n{s}\n"));
            }
        }
        out
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn counts(pool: &sqlx::PgPool) -> HashMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT status, COUNT(*) FROM touches WHERE plan = 'crash' GROUP BY status",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_never_send_a_touch_twice() {
    let n: i64 = std::env::var("RELENTLESS_CRASH_TOUCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let db = TestDatabase::create().await.unwrap();
    seed(db.url(), n).await;
    let seen: Seen = Default::default();
    let twilio = start_twilio(seen.clone()).await;
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();

    let mut w = Workers {
        url: db.url().to_string(),
        twilio,
        logs: tempfile::tempdir().unwrap(),
        children: vec![],
        started: 0,
    };
    for _ in 0..WORKERS {
        let c = w.spawn();
        w.children.push(c);
    }
    let started = Instant::now();
    let limit = Duration::from_secs(60 + n as u64 / 100);
    let mut kills = 0usize;
    // The first kill lands as soon as the provider has had a message (sending is under way),
    // later ones every 1–2 s: workers that send side by side may finish 3,000 texts in under
    // two seconds, and a run with no kill would test nothing.
    let mut next_kill: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let c = counts(&pool).await;
        let open =
            c.get("scheduled").copied().unwrap_or(0) + c.get("sending").copied().unwrap_or(0);
        if open == 0 {
            break;
        }
        assert!(
            started.elapsed() < limit,
            "not settled after {limit:?}: {c:?}\n{}",
            w.logs()
        );
        // Keep killing while there is work to interrupt.
        let kill_now = match next_kill {
            Some(at) => Instant::now() >= at,
            None => !seen.lock().unwrap().is_empty(),
        };
        if kill_now && c.get("scheduled").copied().unwrap_or(0) > 0 {
            let i = rand::random_range(0..WORKERS);
            w.children[i].kill().unwrap(); // SIGKILL: no chance to finish the batch
            w.children[i].wait().unwrap();
            kills += 1;
            w.children[i] = w.spawn();
            next_kill =
                Some(Instant::now() + Duration::from_millis(rand::random_range(1000..2000)));
        }
    }
    let elapsed = started.elapsed();

    // Graceful stop: SIGTERM, each worker finishes its batch and exits 0.
    for c in &w.children {
        let ok = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    for c in &mut w.children {
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = c.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "a worker ignored SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(status.success(), "{status:?}\n{}", w.logs());
    }

    let c = counts(&pool).await;
    let sent = c.get("sent").copied().unwrap_or(0);
    let uncertain = c.get("uncertain").copied().unwrap_or(0);
    eprintln!(
        "{n} touches, {WORKERS} workers, {kills} kills in {elapsed:?}: {sent} sent, {uncertain} uncertain, {} requests at the provider",
        seen.lock().unwrap().len()
    );
    assert_eq!(
        sent + uncertain,
        n,
        "every touch is sent or uncertain: {c:?}\n{}",
        w.logs()
    );
    assert!(kills > 0, "the run was long enough to kill a worker");
    assert!(
        uncertain <= kills as i64 * BATCH,
        "uncertain ({uncertain}) ≤ kills ({kills}) × batch ({BATCH})"
    );

    // The provider saw no touch twice...
    let seen = seen.lock().unwrap().clone();
    let mut by_body: HashMap<&str, usize> = HashMap::new();
    for (_, body) in &seen {
        *by_body.entry(body.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = by_body.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    // ...and every touch recorded `sent` reached it (the uncertain ones may or may not have).
    let sent_bodies: Vec<String> =
        sqlx::query_scalar("SELECT content FROM touches WHERE plan = 'crash' AND status = 'sent'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(sent_bodies.len() as i64, sent);
    let missing: Vec<_> = sent_bodies
        .iter()
        .filter(|b| !by_body.contains_key(b.as_str()))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "recorded sent, never received: {missing:?}"
    );
    assert!(seen.len() as i64 >= sent && seen.len() as i64 <= sent + uncertain);
    pool.close().await;
}
