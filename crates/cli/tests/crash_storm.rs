//! Crash storm on SQLite (issue 7, item 5; SPEC §5.4 and §5.7): a real `relentless serve`
//! is killed with SIGKILL at random moments, many times, and restarted, while clients create
//! leads through the API and the intake webhook, a lead-facing loopback "Twilio" receives the
//! texts the dispatcher sends, leads reply through the signed Twilio webhook, and a
//! `relentless import` runs beside it (and is killed too). The first kills land during
//! migrations of a fresh database. Afterwards:
//! - `PRAGMA integrity_check` is `ok`;
//! - every lead acknowledged to a client (201/200 with an id) exists;
//! - no text reached the provider twice, no touch has two outbox copies;
//! - no touch is left `sending`, none that was due is left behind unsent, every status is one
//!   of SPEC §3.
//!
//! Also: a full disk and a read-only database give a clear error and leave the file intact.
//!
//! CI size: 12 kills. Full size (100 kills, about 5 minutes):
//! `RELENTLESS_STORM_KILLS=100 cargo test -p relentless --release --test crash_storm -- --nocapture`

use axum::extract::State;
use axum::routing::post;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_relentless");
const TWILIO_AUTH: &str = "storm-auth-token";

type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A loopback Twilio Messages API that records (To, Body) of every request.
async fn start_twilio(seen: Seen) -> String {
    async fn create(
        State(seen): State<Seen>,
        axum::Form(form): axum::Form<HashMap<String, String>>,
    ) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
        tokio::time::sleep(Duration::from_millis(2)).await;
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

/// A zone where it is now between 10:00 and 18:59: texts go out at once.
fn day_zone() -> String {
    relentless_core::schedule::zone_with_local_hour(jiff::Timestamp::now(), 10..=18)
        .expect("some zone is in the day")
}

fn sql(db: &Path, query: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(query)
        .output()
        .expect("the sqlite3 command-line shell is needed (Debian package `sqlite3`)");
    assert!(
        out.status.success(),
        "sqlite3 {query:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("RELENTLESS_") {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir)
        .env("RELENTLESS_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

/// Waits for `c` to exit; a process still running after `limit` is killed and the test fails
/// (a hang must fail fast, not eat CI's time).
fn wait_within(c: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = c.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            sigkill(c);
            panic!("{what} was still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigkill(c: &mut Child) {
    let _ = c.kill(); // SIGKILL on Unix: no chance to finish anything
    let _ = c.wait();
}

struct Storm {
    dir: tempfile::TempDir,
    twilio: String,
    port: u16,
    started: usize,
}

impl Storm {
    fn db(&self) -> PathBuf {
        self.dir.path().join("storm.db")
    }
    fn url(&self) -> String {
        format!("sqlite://{}", self.db().display())
    }
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn serve(&mut self) -> Child {
        self.started += 1;
        let log =
            std::fs::File::create(self.dir.path().join(format!("serve-{}.log", self.started)))
                .unwrap();
        command(self.dir.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--database-url")
            .arg(self.url())
            .env("RELENTLESS_PUBLIC_URL", self.base())
            .env(
                "RELENTLESS_TWILIO_ACCOUNT_SID",
                "AC00000000000000000000000000000000",
            )
            .env("RELENTLESS_TWILIO_AUTH_TOKEN", TWILIO_AUTH)
            .env("RELENTLESS_TWILIO_FROM", "+15125550100")
            .env("RELENTLESS_TWILIO_API_BASE", &self.twilio)
            .env("RELENTLESS_SEND_LEASE_SECS", "1")
            .env("RELENTLESS_BATCH", "20")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start relentless serve")
    }

    async fn wait_ready(&self, client: &reqwest::Client, server: &mut Child) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/healthz", self.base())).send().await
                && r.status() == 200
            {
                return;
            }
            if let Some(s) = server.try_wait().unwrap() {
                panic!("serve exited {s:?} at start\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "serve not ready in 30 s\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for i in 1..=self.started {
            if let Ok(s) = std::fs::read_to_string(self.dir.path().join(format!("serve-{i}.log")))
                && !s.trim().is_empty()
            {
                out.push_str(&format!("--- serve {i}\n{s}\n"));
            }
        }
        out
    }
}

/// What the clients were told: lead ids acknowledged with 201/200.
#[derive(Default)]
struct Acks {
    ids: Mutex<Vec<i64>>,
    phones: Mutex<Vec<String>>,
}

async fn create_leads(
    client: reqwest::Client,
    base: String,
    token: String,
    zone: String,
    next: Arc<AtomicU64>,
    acks: Arc<Acks>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let k = next.fetch_add(1, Ordering::Relaxed);
        let phone = format!("+1512{:07}", 3_000_000 + k);
        let res = client
            .post(format!("{base}/api/v1/leads"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"first_name": format!("Storm{k}"), "phone": phone, "timezone": zone}))
            .send()
            .await;
        let Ok(res) = res else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if res.status() == 201
            && let Ok(v) = res.json::<serde_json::Value>().await
            && let Some(id) = v["id"].as_i64()
        {
            acks.ids.lock().unwrap().push(id);
            acks.phones.lock().unwrap().push(phone);
        }
    }
}

async fn intake_posts(
    client: reqwest::Client,
    url: String,
    next: Arc<AtomicU64>,
    acks: Arc<Acks>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let k = next.fetch_add(1, Ordering::Relaxed);
        let res = client
            .post(&url)
            .json(&serde_json::json!({"name": format!("Web{k} Lead"), "email": format!("web{k}@example.com")}))
            .send()
            .await;
        match res {
            Ok(r) if r.status() == 201 => {
                if let Ok(v) = r.json::<serde_json::Value>().await
                    && let Some(id) = v["id"].as_i64()
                {
                    acks.ids.lock().unwrap().push(id);
                }
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Leads answer by text, through the signed Twilio webhook (a reply stops their plans).
async fn replies(client: reqwest::Client, base: String, acks: Arc<Acks>, stop: Arc<AtomicBool>) {
    let url = format!("{base}/webhooks/twilio/sms");
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let phone = {
            let p = acks.phones.lock().unwrap();
            if p.is_empty() {
                None
            } else {
                Some(p[rand::random_range(0..p.len())].clone())
            }
        };
        let Some(phone) = phone else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        n += 1;
        let params = vec![
            ("From".to_string(), phone),
            ("Body".to_string(), "Thanks! Call me tomorrow".to_string()),
            ("MessageSid".to_string(), format!("SMreply{n}")),
        ];
        let sig = relentless_core::twilio::signature(TWILIO_AUTH, &url, &params);
        let _ = client
            .post(&url)
            .header("X-Twilio-Signature", sig)
            .form(&params)
            .send()
            .await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_storm_loses_nothing_acknowledged_and_sends_nothing_twice() {
    let kills: usize = std::env::var("RELENTLESS_STORM_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seen: Seen = Default::default();
    let twilio = start_twilio(seen.clone()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut storm = Storm {
        dir: tempfile::tempdir().unwrap(),
        twilio,
        port,
        started: 0,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let started = Instant::now();
    let mut done = 0usize;
    let mut by_moment: HashMap<&str, usize> = HashMap::new();

    // 1. Kills during the migrations of a fresh database.
    for _ in 0..3.min(kills) {
        let mut m = command(storm.dir.path())
            .arg("migrate")
            .arg("--database-url")
            .arg(storm.url())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rand::random_range(2..40)));
        sigkill(&mut m);
        done += 1;
        *by_moment.entry("migration").or_default() += 1;
        if storm.db().exists() {
            assert_eq!(sql(&storm.db(), "PRAGMA integrity_check"), "ok");
        }
    }
    let init = command(storm.dir.path())
        .args([
            "init",
            "--admin-email",
            "storm@example.com",
            "--team-name",
            "Storm",
        ])
        .arg("--database-url")
        .arg(storm.url())
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let token = String::from_utf8_lossy(&init.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string();
    let intake = command(storm.dir.path())
        .args(["intake", "create", "--source", "storm"])
        .arg("--database-url")
        .arg(storm.url())
        .env("RELENTLESS_PUBLIC_URL", storm.base())
        .output()
        .unwrap();
    assert!(intake.status.success(), "{intake:?}");
    let intake_url = String::from_utf8_lossy(&intake.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string();
    // A CSV for the imports that run beside the server.
    let csv = storm.dir.path().join("import.csv");
    let mut f = std::fs::File::create(&csv).unwrap();
    writeln!(f, "First Name,Email").unwrap();
    for i in 0..3000 {
        writeln!(f, "Imported{i},imported{i}@example.com").unwrap();
    }
    drop(f);

    // 2. Kills of `serve` at random moments under load.
    let zone = day_zone();
    let acks = Arc::new(Acks::default());
    let next = Arc::new(AtomicU64::new(0));
    while done < kills {
        let mut server = storm.serve();
        let moment = ["dispatch", "api", "import", "webhook", "startup"][done % 5];
        if moment == "startup" {
            // While it opens the database, recovers leases and starts dispatching.
            tokio::time::sleep(Duration::from_millis(rand::random_range(5..150))).await;
            sigkill(&mut server);
            done += 1;
            *by_moment.entry(moment).or_default() += 1;
            continue;
        }
        storm.wait_ready(&client, &mut server).await;
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = vec![tokio::spawn(create_leads(
            client.clone(),
            storm.base(),
            token.clone(),
            zone.clone(),
            next.clone(),
            acks.clone(),
            stop.clone(),
        ))];
        tasks.push(tokio::spawn(create_leads(
            client.clone(),
            storm.base(),
            token.clone(),
            zone.clone(),
            next.clone(),
            acks.clone(),
            stop.clone(),
        )));
        let mut import = None;
        match moment {
            "webhook" => {
                tasks.push(tokio::spawn(replies(
                    client.clone(),
                    storm.base(),
                    acks.clone(),
                    stop.clone(),
                )));
                tasks.push(tokio::spawn(intake_posts(
                    client.clone(),
                    intake_url.clone(),
                    next.clone(),
                    acks.clone(),
                    stop.clone(),
                )));
            }
            "import" => {
                import = Some(
                    command(storm.dir.path())
                        .arg("import")
                        .arg(&csv)
                        .arg("--database-url")
                        .arg(storm.url())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap(),
                );
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(300..1500))).await;
        sigkill(&mut server);
        if let Some(mut i) = import {
            sigkill(&mut i);
        }
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        done += 1;
        *by_moment.entry(moment).or_default() += 1;
    }

    // 3. Recovery: one more start; leases run out, the due touches go out, then a clean stop.
    let mut server = storm.serve();
    storm.wait_ready(&client, &mut server).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let open = sql(
            &storm.db(),
            &format!(
                "SELECT count(*) FROM touches WHERE status = 'sending'
                 OR (status = 'scheduled' AND task_id IS NULL AND channel IN ('text', 'email') AND due_at < {})",
                now_ms - 2_000
            ),
        );
        if open == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "touches not settled 60 s after recovery: {open}\n{}",
            storm.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = wait_within(
        &mut server,
        Duration::from_secs(60),
        "the server after SIGTERM",
    );
    assert!(
        status.success(),
        "graceful stop: {status:?}\n{}",
        storm.logs()
    );

    // 4. The checks.
    let db = storm.db();
    assert_eq!(sql(&db, "PRAGMA integrity_check"), "ok");
    assert_eq!(sql(&db, "PRAGMA foreign_key_check"), "");
    let present: std::collections::HashSet<i64> = sql(&db, "SELECT id FROM leads")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let acked = acks.ids.lock().unwrap().clone();
    let missing: Vec<_> = acked.iter().filter(|id| !present.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged leads are missing: {missing:?}",
        missing.len()
    );
    let statuses = sql(&db, "SELECT DISTINCT status FROM touches");
    for s in statuses.lines() {
        assert!(
            [
                "scheduled",
                "sent",
                "done",
                "skipped",
                "cancelled",
                "failed",
                "uncertain"
            ]
            .contains(&s),
            "a touch is {s}"
        );
    }
    let twice_outbox = sql(
        &db,
        "SELECT touch_id FROM outbox WHERE touch_id IS NOT NULL GROUP BY touch_id HAVING count(*) > 1",
    );
    assert_eq!(twice_outbox, "", "touches with two outbox copies");
    let seen = seen.lock().unwrap().clone();
    let mut counts: HashMap<&(String, String), usize> = HashMap::new();
    for m in &seen {
        *counts.entry(m).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "texts sent twice: {twice:?}");
    let sent_texts: i64 = sql(
        &db,
        "SELECT count(*) FROM touches WHERE status = 'sent' AND COALESCE(sent_channel, channel) = 'text'",
    )
    .parse()
    .unwrap();
    let uncertain: i64 = sql(
        &db,
        "SELECT count(*) FROM touches WHERE status = 'uncertain'",
    )
    .parse()
    .unwrap();
    assert!(
        seen.len() as i64 >= sent_texts,
        "every text recorded sent reached the provider ({} < {sent_texts})",
        seen.len()
    );
    eprintln!(
        "crash storm: {done} SIGKILLs {by_moment:?} in {:?}; {} leads acknowledged, all present ({} in the database); {} texts at the provider, none twice; {sent_texts} text touches sent, {uncertain} uncertain; integrity ok",
        started.elapsed(),
        acked.len(),
        present.len(),
        seen.len()
    );
}

/// A tmpfs of `size` mounted at a new folder (root only); None where mounting is not allowed.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(size: &str) -> Option<Mount> {
        let dir = tempfile::tempdir().unwrap().keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root and must be able to mount a tmpfs"
            );
            eprintln!("cannot mount a tmpfs here (not root?): skipped");
            return None;
        }
        Some(Mount(dir))
    }
    fn remount(&self, opts: &str) {
        assert!(
            Command::new("mount")
                .args(["-o", &format!("remount,{opts}")])
                .arg(&self.0)
                .status()
                .unwrap()
                .success()
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Serves `db` on a free port; returns the child and the base URL once it answers.
async fn serve_on(dir: &Path, db: &Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = command(dir)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            return (child, base);
        }
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!("serve exited: {}", String::from_utf8_lossy(&out.stderr));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("serve did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_a_clear_error_and_no_corruption() {
    let Some(mnt) = Mount::tmpfs("3m") else {
        return;
    };
    let db = mnt.0.join("full.db");
    let init = command(&mnt.0)
        .args(["init", "--admin-email", "full@example.com"])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .env("RELENTLESS_DATA_DIR", mnt.0.join("data"))
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let token = String::from_utf8_lossy(&init.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string();
    let (mut server, base) = serve_on(&mnt.0, &db).await;
    let client = reqwest::Client::new();
    let mut created = Vec::new();
    let mut refusal = None;
    for i in 0..20_000 {
        let res = client
            .post(format!("{base}/api/v1/leads"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"first_name": format!("Full{i}"), "email": format!("full{i}@example.com"), "notes": "n".repeat(2000)}))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        if status == 201 {
            created.push(i);
            continue;
        }
        refusal = Some((status, body));
        break;
    }
    let (status, body) = refusal.expect("the 3 MB disk fills up");
    if status != 507 {
        sigkill(&mut server);
        let mut log = String::new();
        if let Some(mut e) = server.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut log);
        }
        panic!("{status} {body}\nserver log:\n{log}");
    }
    assert!(body.contains("disk is full"), "{body}");
    assert!(body.contains("nothing was saved"), "{body}");
    // The server keeps serving reads.
    let res = client
        .get(format!("{base}/api/v1/leads?limit=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    sigkill(&mut server);
    assert_eq!(sql(&db, "PRAGMA integrity_check"), "ok");
    let n: usize = sql(&db, "SELECT count(*) FROM leads").parse().unwrap();
    assert_eq!(
        n,
        created.len(),
        "every acknowledged lead, nothing half-written"
    );
    eprintln!("disk full after {} leads: {status} {body}", created.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_gives_a_clear_error_and_no_corruption() {
    // Stopped cleanly, the WAL is checkpointed away and opening must write to set it up
    // again; killed, the WAL and its index stay and SQLite opens the file read-only without
    // complaint. Either way `serve` must refuse to start rather than run and fail every change.
    for killed in [false, true] {
        read_only_after(killed).await;
    }
}

async fn read_only_after(killed: bool) {
    let Some(mnt) = Mount::tmpfs("16m") else {
        return;
    };
    let db = mnt.0.join("ro.db");
    let init = command(&mnt.0)
        .args(["init", "--admin-email", "ro@example.com"])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let token = String::from_utf8_lossy(&init.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string();
    // A file system that turned read-only under a running server (a failing disk does that).
    let (mut server, base) = serve_on(&mnt.0, &db).await;
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base}/api/v1/leads"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"first_name": "Before", "email": "before@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    if killed {
        sigkill(&mut server);
    } else {
        let _ = Command::new("kill")
            .args(["-TERM", &server.id().to_string()])
            .status();
        wait_within(
            &mut server,
            Duration::from_secs(60),
            "the server after SIGTERM",
        );
    }
    mnt.remount("ro");
    let mut serve = command(&mnt.0)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_within(
        &mut serve,
        Duration::from_secs(60),
        &format!("serve on a read-only database (killed={killed})"),
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "killed={killed}: {stderr}");
    assert!(
        stderr.contains("read-only") || stderr.contains("readonly"),
        "a clear message (killed={killed}): {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    mnt.remount("rw");
    assert_eq!(sql(&db, "PRAGMA integrity_check"), "ok");
    assert_eq!(
        sql(&db, "SELECT first_name FROM leads"),
        "Before",
        "the data is intact (killed={killed})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_writes_restores_every_lead_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let url = format!("sqlite://{}", db.display());
    let init = command(dir.path())
        .args(["init", "--admin-email", "b@example.com"])
        .arg("--database-url")
        .arg(&url)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let token = String::from_utf8_lossy(&init.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string();
    let (mut server, base) = serve_on(dir.path(), &db).await;
    let client = reqwest::Client::new();
    let acks = Arc::new(Acks::default());
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(create_leads(
                client.clone(),
                base.clone(),
                token.clone(),
                "America/Chicago".into(),
                next.clone(),
                acks.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Everything acknowledged before the backup starts must be in it.
    let before = acks.ids.lock().unwrap().clone();
    let backup = dir.path().join("backup.db");
    let out = command(dir.path())
        .arg("backup")
        .arg(&backup)
        .arg("--database-url")
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let during = acks.ids.lock().unwrap().len() - before.len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    sigkill(&mut server);
    assert!(before.len() > 20, "writes were going on: {}", before.len());

    // Restore as documented (RELIABILITY.md): stop the server, copy the backup over the
    // database (its -wal and -shm files removed), start again.
    let restored = dir.path().join("restored.db");
    std::fs::copy(&backup, &restored).unwrap();
    assert_eq!(sql(&restored, "PRAGMA integrity_check"), "ok");
    let present: std::collections::HashSet<i64> = sql(&restored, "SELECT id FROM leads")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let missing: Vec<_> = before.iter().filter(|id| !present.contains(id)).collect();
    assert!(missing.is_empty(), "missing from the backup: {missing:?}");
    // Each lead is whole: its plan and touches came with it.
    assert_eq!(
        sql(
            &restored,
            "SELECT count(*) FROM leads l WHERE NOT EXISTS (SELECT 1 FROM enrollments e WHERE e.lead_id = l.id)"
        ),
        "0",
        "a lead without its enrollments"
    );
    let (mut server, base) = serve_on(dir.path(), &restored).await;
    let res = client
        .get(format!("{base}/api/v1/leads/{}", before[before.len() / 2]))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the restored database serves");
    sigkill(&mut server);
    eprintln!(
        "backup under writes: {} leads acknowledged before it, {during} during it; {} in the copy; integrity ok",
        before.len(),
        present.len()
    );
}
