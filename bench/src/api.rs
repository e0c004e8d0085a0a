//! Phase 3: the real router (`relentless_web::launch_with_tcp_listener`) on 127.0.0.1:0 with
//! the dispatcher running beside it, as `relentless serve` runs them, driven over HTTP by a
//! client in a child process.
//!
//! - lead → first touch: `POST /api/v1/leads`, then `GET /api/v1/leads/{id}/touches` every
//!   `poll` until a touch is `sent` (speed-to-lead's text, handed to the outbox channel). The
//!   figure is what a client sees: it includes the POST and up to one poll interval.
//! - leads list: `GET /api/v1/leads?limit=50` (admin: everything, newest first; agent: own
//!   leads), and with `q=` a last name, a full name, a phone and an email.

use crate::data::{self, FIRST, LAST, mix};
use crate::dispatch::pct;
use crate::load::{ADMIN_EMAIL, AGENTS, BoxErr, url};
use relentless_engine::channels::outbox::Outbox;
use relentless_engine::dispatch::Dispatcher;
use relentless_engine::{Config, Engine};
use relentless_store::sqlite::SqliteStore;
use relentless_web::{AppState, launch_with_tcp_listener};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct ApiArgs {
    pub samples: usize,
    /// Leads in the database (to pick existing phones and emails to search for).
    pub leads: u64,
    pub poll: Duration,
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn get(&self, path: &str, token: &str) -> Result<(Value, f64), BoxErr> {
        let t = Instant::now();
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if !status.is_success() {
            return Err(format!("GET {path}: {status}: {v}").into());
        }
        Ok((v, ms))
    }
}

pub fn summary(mut v: Vec<f64>) -> Value {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    json!({
        "n": v.len(),
        "p50_ms": pct(&v, 0.50),
        "p99_ms": pct(&v, 0.99),
        "max_ms": v.last().copied().unwrap_or(0.0),
    })
}

/// The server process: the router and the dispatcher on the benchmark's database. The HTTP
/// client runs in a child process (`--phase client`), so this process's peak RSS is the
/// server's alone.
pub async fn run(db: &Path, a: &ApiArgs) -> Result<Value, BoxErr> {
    let store = SqliteStore::open(&url(db)).await?;
    let engine = Engine::new(Arc::new(store), Arc::new(Outbox), Config::default());
    let admin = engine.create_token(ADMIN_EMAIL).await?;
    let agent = engine.create_token(AGENTS[0].0).await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_web, web_rx) = tokio::sync::oneshot::channel::<()>();
    let (stop_disp, disp_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(launch_with_tcp_listener(
        listener,
        AppState {
            engine: engine.clone(),
            metrics: None,
            limits: Default::default(),
        },
        async move {
            let _ = web_rx.await;
        },
    ));
    let dispatcher = tokio::spawn(Dispatcher::new(engine.clone()).run(async move {
        let _ = disp_rx.await;
    }));
    let rss_idle = crate::sys::rss_kb();

    let out = tokio::process::Command::new(std::env::current_exe()?)
        .args(["--phase", "client", "--db"])
        .arg(db)
        .args(["--leads", &a.leads.to_string()])
        .args(["--samples", &a.samples.to_string()])
        .args(["--poll-ms", &a.poll.as_millis().to_string()])
        .env("RELENTLESS_BENCH_BASE", format!("http://{addr}/api/v1"))
        .env("RELENTLESS_BENCH_ADMIN_TOKEN", &admin)
        .env("RELENTLESS_BENCH_AGENT_TOKEN", &agent)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    let peak = crate::sys::peak_rss_kb();
    let rss_end = crate::sys::rss_kb();
    let _ = stop_disp.send(());
    let _ = stop_web.send(());
    let _ = dispatcher.await;
    let _ = server.await;
    if !out.status.success() {
        return Err(format!("the HTTP client failed ({})", out.status).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v: Value = serde_json::from_str(text.lines().last().ok_or("client printed nothing")?)?;
    v["rss_idle_mb"] = json!(rss_idle as f64 / 1024.0);
    v["rss_end_mb"] = json!(rss_end as f64 / 1024.0);
    v["peak_rss_mb"] = json!(peak as f64 / 1024.0);
    Ok(v)
}

/// The HTTP client process: every request of the API phase, timed.
pub async fn client(a: &ApiArgs) -> Result<Value, BoxErr> {
    let env = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set"));
    let admin = env("RELENTLESS_BENCH_ADMIN_TOKEN")?;
    let agent = env("RELENTLESS_BENCH_AGENT_TOKEN")?;
    let c = Client {
        http: reqwest::Client::new(),
        base: env("RELENTLESS_BENCH_BASE")?,
    };
    let zone = data::open_zones(1)[0];
    let nonce = jiff::Timestamp::now().as_millisecond() as u64 % 1_000_000;

    // Warm-up (not measured): connections, statement caches, the first pages.
    for _ in 0..10 {
        c.get("/leads?limit=50", &admin).await?;
    }

    // (a) lead → first automatic touch.
    let mut first_touch = Vec::with_capacity(a.samples);
    let mut post_ms = Vec::with_capacity(a.samples);
    let mut polls = 0u64;
    let mut timeouts = 0u64;
    for k in 0..a.samples + 3 {
        let h = mix(nonce * 7919 + k as u64);
        let body = json!({
            "first_name": FIRST[(h % FIRST.len() as u64) as usize],
            "last_name": LAST[((h >> 20) % LAST.len() as u64) as usize],
            "email": format!("api.{nonce}.{k}@example.org"),
            // 646 is not an area code of the loaded leads: never merges into one of them.
            "phone": format!("+1646{:07}", 2_000_000 + (nonce % 7_000) * 1_000 + k as u64 % 1_000),
            "timezone": zone,
            "source": "bench",
            "level": "hot",
        });
        let t0 = Instant::now();
        let r = c
            .http
            .post(format!("{}/leads", c.base))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await?;
        let t_post = t0.elapsed().as_secs_f64() * 1000.0;
        if status.as_u16() != 201 {
            return Err(format!("POST /leads: {status}: {v}").into());
        }
        let id = v["id"].as_i64().ok_or("no id")?;
        let deadline = Duration::from_secs(30);
        let done = loop {
            polls += 1;
            let (t, _) = c.get(&format!("/leads/{id}/touches"), &admin).await?;
            let sent = t["items"]
                .as_array()
                .is_some_and(|items| items.iter().any(|x| x["status"] == "sent"));
            if sent {
                break Some(t0.elapsed().as_secs_f64() * 1000.0);
            }
            if t0.elapsed() > deadline {
                break None;
            }
            tokio::time::sleep(a.poll).await;
        };
        if k < 3 {
            continue; // warm-up
        }
        post_ms.push(t_post);
        match done {
            Some(ms) => first_touch.push(ms),
            None => {
                timeouts += 1;
                first_touch.push(deadline.as_secs_f64() * 1000.0);
            }
        }
    }

    // (b) the leads list, first page, and searches.
    let n = a.leads.max(1);
    let pick = |k: usize| -> u64 { 1 + mix(nonce + 31 * k as u64) % n };
    let mut list_admin = Vec::new();
    let mut list_agent = Vec::new();
    let mut by_last = Vec::new();
    let mut by_full = Vec::new();
    let mut by_phone = Vec::new();
    let mut by_email = Vec::new();
    let mut hits = json!({});
    for k in 0..a.samples {
        let (v, ms) = c.get("/leads?limit=50", &admin).await?;
        if v["items"].as_array().map_or(0, |i| i.len()) != 50.min(n as usize) {
            return Err("the first page does not have 50 leads".into());
        }
        list_admin.push(ms);
        let (_, ms) = c.get("/leads?limit=50", &agent).await?;
        list_agent.push(ms);
        let p = data::person(pick(k));
        let (v, ms) = c
            .get(&format!("/leads?limit=50&q={}", enc(p.last)), &admin)
            .await?;
        by_last.push(ms);
        hits["last_name"] = json!(v["items"].as_array().map_or(0, |i| i.len()));
        let (v, ms) = c
            .get(
                &format!(
                    "/leads?limit=50&q={}",
                    enc(&format!("{} {}", p.first, p.last))
                ),
                &admin,
            )
            .await?;
        by_full.push(ms);
        hits["full_name"] = json!(v["items"].as_array().map_or(0, |i| i.len()));
        let (v, ms) = c
            .get(&format!("/leads?limit=50&q={}", enc(&p.phone)), &admin)
            .await?;
        if v["items"].as_array().map_or(0, |i| i.len()) != 1 {
            return Err(
                format!("phone search for {} did not find exactly one lead", p.phone).into(),
            );
        }
        by_phone.push(ms);
        let (v, ms) = c
            .get(&format!("/leads?limit=50&q={}", enc(&p.email)), &admin)
            .await?;
        if v["items"].as_array().map_or(0, |i| i.len()) != 1 {
            return Err(
                format!("email search for {} did not find exactly one lead", p.email).into(),
            );
        }
        by_email.push(ms);
    }

    // (c) the web app's pages: what each page's script asks the server for when it opens
    // (assets/*.js), one request after another, as the agent's browser would (it sends
    // them in parallel, so this total is an upper bound of the page's wait). The HTML shells
    // are not included: they need a browser session, and render no data.
    let lead_id = 1 + mix(nonce) % n;
    let reports_since = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(30 * 24);
    let pages: Vec<(&str, &str, Vec<String>)> = vec![
        ("today", "agent", vec!["/today".into()]),
        (
            "leads",
            "admin",
            vec!["/leads?limit=50".into(), "/plans".into(), "/users".into()],
        ),
        (
            "lead",
            "admin",
            vec![
                format!("/leads/{lead_id}"),
                format!("/leads/{lead_id}/timeline?limit=100"),
                format!("/leads/{lead_id}/touches"),
                format!("/leads/{lead_id}/consents"),
                "/templates".into(),
                "/plans".into(),
            ],
        ),
        ("plans", "admin", vec!["/plans".into(), "/templates".into()]),
        (
            "plan",
            "admin",
            vec!["/plans/relentless-21".into(), "/templates".into()],
        ),
        (
            "reports",
            "admin",
            vec![format!(
                "/reports/summary?since={}",
                enc(&reports_since.to_string())
            )],
        ),
        (
            "team",
            "admin",
            vec!["/users".into(), "/intakes".into(), "/plans".into()],
        ),
    ];
    let page_samples = a.samples.min(50);
    let mut page_figs = json!({});
    for (name, who, paths) in &pages {
        let token = if *who == "agent" { &agent } else { &admin };
        let mut totals = Vec::with_capacity(page_samples);
        let mut slowest: (f64, String) = (0.0, String::new());
        // The first visit is reported on its own: the reports page computes its summary
        // then (later visits get the kept one, refreshed in the background).
        let mut first_ms = 0.0;
        for k in 0..=page_samples {
            let mut total = 0.0;
            for path in paths {
                let (_, ms) = c.get(path, token).await?;
                total += ms;
                if ms > slowest.0 {
                    slowest = (ms, path.clone());
                }
            }
            if k == 0 {
                first_ms = total;
                continue;
            }
            totals.push(total);
        }
        let mut fig = summary(totals);
        fig["first_visit_ms"] = json!(first_ms);
        fig["requests"] = json!(paths);
        fig["slowest_request"] = json!({"path": slowest.1, "ms": slowest.0});
        page_figs[*name] = fig;
    }

    Ok(json!({
        "pages": page_figs,
        "zone": zone,
        "poll_ms": a.poll.as_secs_f64() * 1000.0,
        "first_touch": summary(first_touch),
        "first_touch_timeouts": timeouts,
        "touch_polls": polls,
        "post_lead": summary(post_ms),
        "list_admin": summary(list_admin),
        "list_agent": summary(list_agent),
        "search_last_name": summary(by_last),
        "search_full_name": summary(by_full),
        "search_phone": summary(by_phone),
        "search_email": summary(by_email),
        "hits_last_sample": hits,
        "client_peak_rss_mb": crate::sys::peak_rss_kb() as f64 / 1024.0,
    }))
}
