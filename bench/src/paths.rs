//! Phase 4, product paths (issues 3 and 4): the real router and dispatcher, as `relentless
//! serve` runs them, with texts going through the real Twilio channel to an HTTP server that
//! speaks Twilio's Messages API. That server lives in the client process (`--phase
//! paths-client`), so a lead's POST and its text's arrival are timed on one clock.
//!
//! Start-up is a handshake: the server process spawns the client; the client starts the
//! Twilio-speaking server and prints its address; the server builds the engine's channel
//! (`channels::Router { email: Outbox, sms: TwilioChannel }` with `api_base` = that address),
//! starts the router and the dispatcher and writes the base URL and the tokens to the client's
//! stdin; the client measures and prints one JSON line.
//!
//! - **Intake POST → first text at the provider** (issue 4): `POST /webhooks/leads/{token}`
//!   (JSON, a new phone in a zone where it is daytime now), timed until the Messages API
//!   request for that phone has arrived at the Twilio-speaking server. Leads are posted one
//!   after another. The webhook allows 30 posts a minute per client address and 120 per
//!   intake token, so the client posts from several loopback source addresses (127.0.0.2, …,
//!   at most 25 posts each) to several intakes (at most 100 posts each).
//! - **Open pixel → SSE event** (issue 3): email-only leads assigned to an agent (so
//!   speed-to-lead sends them a tracked email at once); the agent's
//!   `/api/v1/notifications/stream` open; `GET /t/{token}/o.gif` with an iPhone Safari user
//!   agent, timed until the `engagement` event for that lead arrives on the stream.
//! - **Pixel requests per second**: `wrk` against one pixel URL (a tokio client loop when
//!   `wrk` is not installed, or with `--loadgen tokio`); the opens the server recorded
//!   (`open` activities on the lead's timeline) and the events the stream delivered are counted as a cross-check.

use crate::api::summary;
use crate::data::{self, FIRST, LAST, mix};
use crate::load::{ADMIN_EMAIL, AGENTS, BoxErr, url};
use axum::extract::State;
use relentless_engine::channels::Router;
use relentless_engine::channels::outbox::Outbox;
use relentless_engine::channels::sms::{TwilioChannel, TwilioConfig};
use relentless_engine::dispatch::Dispatcher;
use relentless_engine::{Config, Engine};
use relentless_store::sqlite::SqliteStore;
use relentless_web::{AppState, launch_with_tcp_listener};
use serde_json::{Value, json};
use sqlx::ConnectOptions;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

#[derive(Clone)]
pub struct PathsArgs {
    pub samples: usize,
    /// Issue 8's steady intake: leads per second posted to `POST /api/v1/leads` on a fixed
    /// schedule (open loop), and for how long.
    pub steady_rate: u64,
    pub steady_secs: u64,
    pub pixel_secs: u64,
    pub pixel_conns: usize,
    /// `auto` (wrk when installed, else the tokio client), `wrk` or `tokio`.
    pub loadgen: String,
}

const TWILIO_SID: &str = "ACbench0000000000000000000000000000";
const TWILIO_FROM: &str = "+15125550100";
/// A person opening the email on an iPhone (Safari's user agent): counted as engagement.
pub const IPHONE_UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
/// Unmeasured leads before each latency series.
const WARM: usize = 3;
/// The webhook's limits (crates/web/src/webhooks/intake.rs) are 30 posts a minute per client
/// address and 120 per intake token; stay below both.
const POSTS_PER_ADDRESS: usize = 25;
const POSTS_PER_INTAKE: usize = 100;

fn args_vec(a: &PathsArgs) -> Vec<String> {
    vec![
        "--samples".into(),
        a.samples.to_string(),
        "--steady-rate".into(),
        a.steady_rate.to_string(),
        "--steady-secs".into(),
        a.steady_secs.to_string(),
        "--pixel-secs".into(),
        a.pixel_secs.to_string(),
        "--pixel-conns".into(),
        a.pixel_conns.to_string(),
        "--loadgen".into(),
        a.loadgen.clone(),
    ]
}

/// The server process: router + dispatcher with the Twilio channel pointed at the client's
/// Twilio-speaking server.
pub async fn run(db: &Path, a: &PathsArgs) -> Result<Value, BoxErr> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["--phase", "paths-client", "--db"])
        .arg(db)
        .args(args_vec(a))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let hello: Value = serde_json::from_str(
        &lines
            .next_line()
            .await?
            .ok_or("the client printed nothing")?,
    )?;
    let twilio_base = hello["twilio"]
        .as_str()
        .ok_or("the client did not say where its Twilio server is")?
        .to_string();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let store = SqliteStore::open(&url(db)).await?;
    let mut tc = TwilioConfig::new(TWILIO_SID, "bench-auth-token", TWILIO_FROM);
    tc.api_base = twilio_base.clone();
    let channel = Router {
        email: Arc::new(Outbox),
        sms: Arc::new(TwilioChannel::new(tc)),
    };
    let config = Config {
        public_url: format!("http://{addr}"),
        ..Config::default()
    };
    let engine = Engine::new(Arc::new(store), Arc::new(channel), config);
    let admin = engine.create_token(ADMIN_EMAIL).await?;
    let agent = engine.create_token(AGENTS[0].0).await?;

    let (stop_web, web_rx) = oneshot::channel::<()>();
    let (stop_disp, disp_rx) = oneshot::channel::<()>();
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

    let go = json!({
        "base": format!("http://{addr}"),
        "admin": admin,
        "agent": agent,
        "agent_email": AGENTS[0].0,
    });
    stdin.write_all(format!("{go}\n").as_bytes()).await?;
    stdin.flush().await?;
    drop(stdin);
    let mut last = None;
    while let Some(l) = lines.next_line().await? {
        last = Some(l);
    }
    let status = child.wait().await?;
    let peak = crate::sys::peak_rss_kb();
    let rss_end = crate::sys::rss_kb();
    let _ = stop_disp.send(());
    let _ = stop_web.send(());
    let _ = dispatcher.await;
    let _ = server.await;
    if !status.success() {
        return Err(format!("the product-path client failed ({status})").into());
    }
    let mut v: Value = serde_json::from_str(&last.ok_or("the client printed no result")?)?;
    v["twilio_base"] = json!(twilio_base);
    v["rss_idle_mb"] = json!(rss_idle as f64 / 1024.0);
    v["rss_end_mb"] = json!(rss_end as f64 / 1024.0);
    v["peak_rss_mb"] = json!(peak as f64 / 1024.0);
    Ok(v)
}

/// What the Twilio-speaking server got.
#[derive(Clone, Default)]
struct Provider {
    /// Phones the client is waiting for: the arrival instant goes to the waiter.
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<Instant>>>>,
    texts: Arc<AtomicU64>,
    /// Texts to phones nobody waited for (loaded leads whose touches came due meanwhile).
    other: Arc<AtomicU64>,
    /// Requests without Basic auth or without `To`/`From`/`Body`.
    malformed: Arc<AtomicU64>,
}

impl Provider {
    /// Waits for a text to `phone`: the receiver gets the instant its request arrived.
    fn expect(&self, phone: &str) -> oneshot::Receiver<Instant> {
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(phone.to_string(), tx);
        rx
    }

    /// Stops waiting for `phone` (its text did not come in time).
    fn forget(&self, phone: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(phone);
    }
}

async fn messages(
    State(p): State<Provider>,
    headers: axum::http::HeaderMap,
    body: String,
) -> (axum::http::StatusCode, axum::Json<Value>) {
    let at = Instant::now();
    let form: HashMap<String, String> = ::url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let n = p.texts.fetch_add(1, Ordering::Relaxed) + 1;
    let basic = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Basic "));
    if !basic
        || ["To", "From", "Body"]
            .iter()
            .any(|k| !form.contains_key(*k))
    {
        p.malformed.fetch_add(1, Ordering::Relaxed);
    }
    let to = form.get("To").cloned().unwrap_or_default();
    let waiter = p
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&to);
    match waiter {
        Some(tx) => {
            let _ = tx.send(at);
        }
        None => {
            p.other.fetch_add(1, Ordering::Relaxed);
        }
    }
    (
        axum::http::StatusCode::CREATED,
        axum::Json(json!({"sid": format!("SM{n:032x}"), "status": "queued", "to": to})),
    )
}

async fn start_provider(p: Provider) -> Result<String, BoxErr> {
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            axum::routing::post(messages),
        )
        .with_state(p);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("relentless-bench: the Twilio-speaking server stopped: {e}");
        }
    });
    Ok(base)
}

struct Ctx {
    base: String,
    admin: String,
    agent: String,
    agent_email: String,
    http: reqwest::Client,
    zone: &'static str,
    nonce: u64,
}

impl Ctx {
    async fn post(&self, path: &str, token: &str, body: &Value) -> Result<Value, BoxErr> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await?;
        if !status.is_success() {
            return Err(format!("POST {path}: {status}: {v}").into());
        }
        Ok(v)
    }
}

/// The client process: hosts the Twilio-speaking server, then measures.
pub async fn client(db: &Path, a: &PathsArgs) -> Result<Value, BoxErr> {
    let provider = Provider::default();
    let twilio = start_provider(provider.clone()).await?;
    println!("{}", json!({ "twilio": twilio }));
    let mut line = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await?;
    let go: Value = serde_json::from_str(&line)?;
    let s = |k: &str| -> Result<String, BoxErr> {
        Ok(go[k]
            .as_str()
            .ok_or_else(|| format!("no {k} from the server"))?
            .to_string())
    };
    let cx = Ctx {
        base: s("base")?,
        admin: s("admin")?,
        agent: s("agent")?,
        agent_email: s("agent_email")?,
        http: reqwest::Client::new(),
        zone: data::open_zones(1)[0],
        nonce: jiff::Timestamp::now().as_millisecond() as u64 % 1_000_000,
    };
    let intake = intake_path(&cx, a, &provider).await?;
    let steady = steady_path(&cx, a, &provider).await?;
    let pixel = pixel_path(&cx, a, db).await?;
    Ok(json!({
        "zone": cx.zone,
        "intake": intake,
        "steady": steady,
        "pixel": pixel,
        "provider_texts": provider.texts.load(Ordering::Relaxed),
        "provider_other_texts": provider.other.load(Ordering::Relaxed),
        "provider_malformed": provider.malformed.load(Ordering::Relaxed),
        "client_peak_rss_mb": crate::sys::peak_rss_kb() as f64 / 1024.0,
    }))
}

/// Issue 4: intake POST → the lead's first text at the Twilio-speaking server.
async fn intake_path(cx: &Ctx, a: &PathsArgs, p: &Provider) -> Result<Value, BoxErr> {
    let total = a.samples + WARM;
    let n_intakes = total.div_ceil(POSTS_PER_INTAKE);
    let mut intakes = Vec::with_capacity(n_intakes);
    for i in 0..n_intakes {
        let source = if i == 0 {
            "bench".to_string()
        } else {
            format!("bench-{}", i + 1)
        };
        let v = cx
            .post("/api/v1/intakes", &cx.admin, &json!({ "source": source }))
            .await?;
        let u = v["url"]
            .as_str()
            .ok_or("the intake has no url")?
            .to_string();
        if !u.starts_with(&cx.base) {
            return Err(format!("the intake url {u} is not on {}", cx.base).into());
        }
        intakes.push(u);
    }
    // One client per loopback source address: the per-address limit is the webhook's.
    let n_addrs = total.div_ceil(POSTS_PER_ADDRESS);
    if n_addrs > 250 {
        return Err("--samples too large for the loopback addresses 127.0.0.2-251".into());
    }
    let mut clients = Vec::with_capacity(n_addrs);
    for i in 0..n_addrs {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8));
        clients.push((ip, reqwest::Client::builder().local_address(ip).build()?));
    }
    let mut first_text = Vec::with_capacity(a.samples);
    let mut post_ms = Vec::with_capacity(a.samples);
    let mut timeouts = 0u64;
    let mut last_id = 0i64;
    for k in 0..total {
        let h = mix(cx.nonce * 7919 + 17 + k as u64);
        // 347 is not an area code of the loaded leads nor of the API phase: never a merge.
        let phone = format!("+1347{:07}", 2_000_000 + k as u64);
        let body = json!({
            "first_name": FIRST[(h % FIRST.len() as u64) as usize],
            "last_name": LAST[((h >> 20) % LAST.len() as u64) as usize],
            "email": format!("intake.{}.{k}@example.net", cx.nonce),
            "phone": phone,
            "message": "Is the house on Elm Street still available? Could I see it this week?",
            "property_address": "12 Elm Street",
            "timezone": cx.zone,
            "source": "bench-form",
        });
        let rx = p.expect(&phone);
        let (ip, http) = &clients[k % n_addrs];
        let to = &intakes[k % n_intakes];
        let t0 = Instant::now();
        let r = http.post(to).json(&body).send().await?;
        let status = r.status();
        let v: Value = r.json().await?;
        let t_post = t0.elapsed().as_secs_f64() * 1000.0;
        if status.as_u16() != 201 {
            return Err(format!("POST intake from {ip}: {status}: {v}").into());
        }
        last_id = v["id"].as_i64().ok_or("no id")?;
        let deadline = Duration::from_secs(30);
        let arrived = tokio::time::timeout(deadline.saturating_sub(t0.elapsed()), rx).await;
        if k < WARM {
            continue;
        }
        post_ms.push(t_post);
        match arrived {
            Ok(Ok(at)) => first_text.push(at.duration_since(t0).as_secs_f64() * 1000.0),
            _ => {
                timeouts += 1;
                p.forget(&phone);
                first_text.push(deadline.as_secs_f64() * 1000.0);
            }
        }
    }
    // The touch records the provider's message id (the `sid` the server answered), once the
    // dispatcher has recorded the send (a moment after the request reached the provider).
    let mut provider_id = None;
    let t0 = Instant::now();
    while provider_id.is_none() && t0.elapsed() < Duration::from_secs(10) {
        let r = cx
            .http
            .get(format!("{}/api/v1/leads/{last_id}/touches", cx.base))
            .bearer_auth(&cx.admin)
            .send()
            .await?;
        let t: Value = r.json().await?;
        provider_id = t["items"]
            .as_array()
            .and_then(|items| items.iter().find(|x| x["status"] == "sent"))
            .and_then(|x| x["provider_id"].as_str())
            .map(str::to_string);
        if provider_id.is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(json!({
        "first_text": summary(first_text),
        "post": summary(post_ms),
        "timeouts": timeouts,
        "intakes": n_intakes,
        "source_addresses": n_addrs,
        "first_source_address": clients.first().map(|c| c.0.to_string()),
        "last_source_address": clients.last().map(|c| c.0.to_string()),
        "last_lead_provider_id": provider_id,
    }))
}

/// Issue 8: `POST /api/v1/leads` → the lead's first text at the Twilio-speaking server, with
/// leads arriving at a steady `steady_rate` per second for `steady_secs`. Open loop: each
/// lead is posted at its own instant on the schedule whether or not the earlier ones are
/// done, and its figure runs from that scheduled instant (a server that falls behind shows
/// as lateness, not as a slower offered rate).
async fn steady_path(cx: &Ctx, a: &PathsArgs, p: &Provider) -> Result<Value, BoxErr> {
    let n = a.steady_rate * a.steady_secs;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let deadline = Duration::from_secs(30);
    let start = Instant::now() + Duration::from_millis(100);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / a.steady_rate);
        tokio::time::sleep_until(due.into()).await;
        let h = mix(cx.nonce * 6_700_417 + i);
        // 347 is no loaded lead's area code; 5,000,000+ is above the intake path's numbers.
        let phone = format!("+1347{:07}", 5_000_000 + i);
        let body = json!({
            "first_name": FIRST[(h % FIRST.len() as u64) as usize],
            "last_name": LAST[((h >> 20) % LAST.len() as u64) as usize],
            "email": format!("steady.{}.{i}@example.net", cx.nonce),
            "phone": phone,
            "timezone": cx.zone,
            "source": "bench-steady",
        });
        let rx = p.expect(&phone);
        let req = http
            .post(format!("{}/api/v1/leads", cx.base))
            .bearer_auth(&cx.admin)
            .json(&body);
        let p = p.clone();
        set.spawn(async move {
            let started_late = due.elapsed().as_secs_f64() * 1000.0;
            let r = req.send().await.map_err(|e| e.to_string())?;
            let status = r.status();
            let v: Value = r.json().await.map_err(|e| e.to_string())?;
            let post = due.elapsed().as_secs_f64() * 1000.0;
            if status.as_u16() != 201 {
                return Err(format!("POST /api/v1/leads: {status}: {v}"));
            }
            let first = match tokio::time::timeout(deadline.saturating_sub(due.elapsed()), rx).await
            {
                Ok(Ok(at)) => Some(at.duration_since(due).as_secs_f64() * 1000.0),
                _ => {
                    p.forget(&phone);
                    None
                }
            };
            Ok((started_late, post, first))
        });
    }
    let offered_secs = start.elapsed().as_secs_f64();
    let (mut late, mut post, mut first) = (Vec::new(), Vec::new(), Vec::new());
    let mut timeouts = 0u64;
    while let Some(r) = set.join_next().await {
        let (l, p, f) = r??;
        late.push(l);
        post.push(p);
        match f {
            Some(ms) => first.push(ms),
            None => {
                timeouts += 1;
                first.push(deadline.as_secs_f64() * 1000.0);
            }
        }
    }
    let max_late = late.iter().copied().fold(0.0, f64::max);
    Ok(json!({
        "rate": a.steady_rate,
        "secs": a.steady_secs,
        "leads": n,
        "offered_over_secs": offered_secs,
        "first_text": summary(first),
        "post": summary(post),
        "timeouts": timeouts,
        "client_max_start_late_ms": max_late,
    }))
}

/// One event from the SSE stream: (event, lead id, when it was read).
type SseEvent = (String, Option<i64>, Instant);

/// Reads the notification stream, one message per `\n\n`-terminated block.
fn read_sse(mut resp: reqwest::Response) -> mpsc::UnboundedReceiver<SseEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            let at = Instant::now();
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = buf.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&block);
                let mut event = String::from("message");
                let mut data = String::new();
                for l in text.lines() {
                    if let Some(v) = l.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = l.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                let lead = serde_json::from_str::<Value>(&data)
                    .ok()
                    .and_then(|v| v["lead_id"].as_i64());
                if tx.send((event, lead, at)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

async fn db_conn(db: &Path) -> Result<sqlx::SqliteConnection, BoxErr> {
    Ok(sqlx::sqlite::SqliteConnectOptions::from_str(&url(db))?
        .read_only(true)
        .connect()
        .await?)
}

/// Issue 3: open pixel → `engagement` on the agent's stream; then pixel throughput.
async fn pixel_path(cx: &Ctx, a: &PathsArgs, db: &Path) -> Result<Value, BoxErr> {
    let total = a.samples + WARM;
    // Email-only leads, assigned to the agent: speed-to-lead's text falls back to an email,
    // sent at once with a tracking pixel. Half are opened on an otherwise idle server, half
    // under the load generator.
    let mut ids = Vec::with_capacity(2 * total);
    for k in 0..2 * total {
        let h = mix(cx.nonce * 104_729 + k as u64);
        let v = cx
            .post(
                "/api/v1/leads",
                &cx.admin,
                &json!({
                    "first_name": FIRST[(h % FIRST.len() as u64) as usize],
                    "last_name": LAST[((h >> 20) % LAST.len() as u64) as usize],
                    "email": format!("pixel.{}.{k}@example.net", cx.nonce),
                    "timezone": cx.zone,
                    "source": "bench",
                    "assigned_to": cx.agent_email,
                }),
            )
            .await?;
        ids.push(v["id"].as_i64().ok_or("no id")?);
    }
    // Their tracking tokens, once the dispatcher has sent the emails.
    let mut conn = db_conn(db).await?;
    let list = ids
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let t0 = Instant::now();
    let tokens: HashMap<i64, String> = loop {
        // The ids are integers from the API's answers.
        let rows: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT lead_id, token FROM tracking WHERE kind = 'email' AND lead_id IN ({list})"
        )))
        .fetch_all(&mut conn)
        .await?;
        let m: HashMap<i64, String> = rows.into_iter().collect();
        if m.len() == ids.len() {
            break m;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "only {} of {} pixel leads got a tracked email within 60 s",
                m.len(),
                ids.len()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // The agent's stream.
    let sse = reqwest::Client::new()
        .get(format!("{}/api/v1/notifications/stream", cx.base))
        .bearer_auth(&cx.agent)
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .await?;
    if !sse.status().is_success() {
        return Err(format!("notification stream: {}", sse.status()).into());
    }
    let mut events = read_sse(sse);
    let browser = reqwest::Client::builder().user_agent(IPHONE_UA).build()?;
    let pixel_url = |t: &str| format!("{}/t/{t}/o.gif", cx.base);

    let idle = time_opens(
        &ids[..total],
        &tokens,
        &mut events,
        &browser,
        &pixel_url,
        None,
        None,
    )
    .await?;
    let mut other_events = idle.other_events;

    // Throughput against one pixel URL (a lead already opened: each hit still records the
    // open, an activity and a notification, but makes no second call task within the hour),
    // and while that load runs, the first opens of the other half of the emails, timed to
    // their events as above (issue 8: pixel → SSE event under a loopback load generator).
    let token = tokens[&ids[WARM.min(ids.len() - 1)]].clone();
    let lead = ids[WARM.min(ids.len() - 1)];
    let opens_before = opens(&mut conn, &token).await?;
    while events.try_recv().is_ok() {}
    let url = pixel_url(&token);
    let load_task = {
        let (url, a) = (url.clone(), a.clone());
        tokio::spawn(async move {
            match a.loadgen.as_str() {
                "tokio" => tokio_load(&url, &a).await,
                "wrk" => wrk(&url, &a)
                    .await?
                    .ok_or_else(|| "--loadgen wrk: wrk is not installed".into()),
                _ => match wrk(&url, &a).await? {
                    Some(v) => Ok(v),
                    None => tokio_load(&url, &a).await,
                },
            }
        })
    };
    // Let the load generator's connections open and the load settle first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let loaded = time_opens(
        &ids[total..],
        &tokens,
        &mut events,
        &browser,
        &pixel_url,
        Some(lead),
        Some(&load_task),
    )
    .await?;
    let load = load_task.await??;
    // Let the stream catch up, then count what it delivered for that lead.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut delivered = loaded.watched_events;
    while let Ok((ev, l, _)) = events.try_recv() {
        if ev == "engagement" && l == Some(lead) {
            delivered += 1;
        }
    }
    other_events += loaded.other_events;
    let opens_after = opens(&mut conn, &token).await?;
    Ok(json!({
        "to_event": summary(idle.to_event),
        "pixel_get": summary(idle.get_ms),
        "timeouts": idle.timeouts,
        "to_event_under_load": summary(loaded.to_event),
        "pixel_get_under_load": summary(loaded.get_ms),
        "timeouts_under_load": loaded.timeouts,
        "other_events_seen": other_events,
        "user_agent": IPHONE_UA,
        "throughput": load,
        "throughput_opens_recorded": opens_after - opens_before,
        "throughput_events_delivered": delivered,
    }))
}

/// What [`time_opens`] measured.
struct Opens {
    to_event: Vec<f64>,
    get_ms: Vec<f64>,
    timeouts: u64,
    other_events: u64,
    /// `engagement` events for the watched lead (the one under load) seen meanwhile.
    watched_events: u64,
}

/// Each lead's first open (`GET` of its pixel), one after another, timed until its
/// `engagement` event has been read from the stream; the first [`WARM`] are not counted.
/// With `until`, stops taking samples once that task (the load generator) has finished, so
/// every counted sample was taken under its load.
async fn time_opens(
    ids: &[i64],
    tokens: &HashMap<i64, String>,
    events: &mut mpsc::UnboundedReceiver<SseEvent>,
    browser: &reqwest::Client,
    pixel_url: &impl Fn(&str) -> String,
    watched: Option<i64>,
    until: Option<&tokio::task::JoinHandle<Result<Value, BoxErr>>>,
) -> Result<Opens, BoxErr> {
    let mut o = Opens {
        to_event: Vec::with_capacity(ids.len()),
        get_ms: Vec::with_capacity(ids.len()),
        timeouts: 0,
        other_events: 0,
        watched_events: 0,
    };
    let other = |o: &mut Opens, ev: &str, lead: Option<i64>| {
        if ev == "engagement" && lead.is_some() && lead == watched {
            o.watched_events += 1;
        } else {
            o.other_events += 1;
        }
    };
    for (k, id) in ids.iter().enumerate() {
        if until.is_some_and(|t| t.is_finished()) {
            break;
        }
        while let Ok((ev, lead, _)) = events.try_recv() {
            other(&mut o, &ev, lead);
        }
        let t0 = Instant::now();
        let r = browser.get(pixel_url(&tokens[id])).send().await?;
        let ok = r.status().is_success()
            && r.headers()
                .get(reqwest::header::CONTENT_TYPE)
                .is_some_and(|v| v == "image/gif");
        let _ = r.bytes().await?;
        let t_get = t0.elapsed().as_secs_f64() * 1000.0;
        if !ok {
            return Err("the pixel did not answer 200 image/gif".into());
        }
        let deadline = t0 + Duration::from_secs(10);
        let got = loop {
            match tokio::time::timeout_at(deadline.into(), events.recv()).await {
                Ok(Some((ev, lead, at))) => {
                    if ev == "engagement" && lead == Some(*id) {
                        break Some(at.duration_since(t0).as_secs_f64() * 1000.0);
                    }
                    other(&mut o, &ev, lead);
                }
                Ok(None) => return Err("the notification stream ended".into()),
                Err(_) => break None,
            }
        };
        if k < WARM {
            continue;
        }
        o.get_ms.push(t_get);
        match got {
            Some(ms) => o.to_event.push(ms),
            None => {
                o.timeouts += 1;
                o.to_event.push(10_000.0);
            }
        }
    }
    Ok(o)
}

async fn opens(conn: &mut sqlx::SqliteConnection, token: &str) -> Result<i64, BoxErr> {
    Ok(sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM activities WHERE kind = 'open'
             AND lead_id = (SELECT lead_id FROM tracking WHERE token = ?)",
    )
    .bind(token)
    .fetch_one(conn)
    .await?)
}

/// `wrk` against `url`; `None` when wrk is not installed.
async fn wrk(url: &str, a: &PathsArgs) -> Result<Option<Value>, BoxErr> {
    let out = tokio::process::Command::new("wrk")
        .args(["-t", "2", "-c", &a.pixel_conns.to_string()])
        .args(["-d", &format!("{}s", a.pixel_secs), "--latency"])
        .args(["-H", &format!("User-Agent: {IPHONE_UA}")])
        .arg(url)
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!(
            "wrk failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let mut v = parse_wrk(&text);
    v["tool"] = json!("wrk");
    v["threads"] = json!(2);
    v["connections"] = json!(a.pixel_conns);
    v["secs"] = json!(a.pixel_secs);
    v["raw"] = json!(text);
    Ok(Some(v))
}

/// A wrk duration ("812.00us", "1.23ms", "1.01s", "2.00m") in milliseconds.
fn wrk_ms(s: &str) -> Option<f64> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let x: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => x / 1000.0,
        "ms" => x,
        "s" => x * 1000.0,
        "m" => x * 60_000.0,
        "h" => x * 3_600_000.0,
        _ => return None,
    })
}

fn parse_wrk(text: &str) -> Value {
    let mut v = json!({"non_2xx": 0, "socket_errors": null});
    let mut in_dist = false;
    for l in text.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.as_slice() {
            ["Latency", avg, _stdev, max, ..] if !in_dist => {
                v["avg_ms"] = json!(wrk_ms(avg));
                v["max_ms"] = json!(wrk_ms(max));
            }
            ["Latency", "Distribution", ..] => in_dist = true,
            [p, d] if in_dist && p.ends_with('%') => {
                let key = match *p {
                    "50%" => "p50_ms",
                    "75%" => "p75_ms",
                    "90%" => "p90_ms",
                    "99%" => "p99_ms",
                    _ => continue,
                };
                v[key] = json!(wrk_ms(d));
            }
            [n, "requests", "in", ..] => {
                in_dist = false;
                v["requests"] = json!(n.parse::<u64>().ok());
            }
            ["Requests/sec:", r] => v["requests_per_sec"] = json!(r.parse::<f64>().ok()),
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                v["non_2xx"] = json!(n.parse::<u64>().ok())
            }
            ["Socket", "errors:", ..] => v["socket_errors"] = json!(w[2..].join(" ")),
            _ => {}
        }
    }
    v
}

/// The fallback load generator: `pixel_conns` tokio tasks, each a request loop on its own
/// connection, for `pixel_secs`.
async fn tokio_load(url: &str, a: &PathsArgs) -> Result<Value, BoxErr> {
    let http = reqwest::Client::builder()
        .user_agent(IPHONE_UA)
        .pool_max_idle_per_host(a.pixel_conns)
        .build()?;
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(a.pixel_secs);
    let mut tasks = Vec::new();
    for _ in 0..a.pixel_conns.max(1) {
        let http = http.clone();
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < until {
                let t = Instant::now();
                match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        if r.bytes().await.is_ok() {
                            lat.push(t.elapsed().as_secs_f64() * 1000.0);
                        } else {
                            errors += 1;
                        }
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0u64;
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = all.len();
    let mut v = summary(all);
    v["tool"] = json!("tokio");
    v["connections"] = json!(a.pixel_conns);
    v["secs"] = json!(secs);
    v["requests"] = json!(n);
    v["requests_per_sec"] = json!(n as f64 / secs);
    v["errors"] = json!(errors);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_output() {
        let text = "Running 15s test @ http://127.0.0.1:1/t/x/o.gif
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.12ms    2.01ms  41.30ms   80.00%
    Req/Sec     1.57k   120.00     1.90k    70.00%
  Latency Distribution
     50%    4.80ms
     75%    6.10ms
     90%    7.70ms
     99%   12.40ms
  47000 requests in 15.00s, 9.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   3133.33
Transfer/sec:    614.40KB
";
        let v = parse_wrk(text);
        assert_eq!(v["p50_ms"], 4.8);
        assert_eq!(v["p99_ms"], 12.4);
        assert_eq!(v["max_ms"], 41.3);
        assert_eq!(v["requests"], 47000);
        assert_eq!(v["requests_per_sec"], 3133.33);
        assert_eq!(v["non_2xx"], 3);
        assert_eq!(wrk_ms("812.00us"), Some(0.812));
        assert_eq!(wrk_ms("1.50s"), Some(1500.0));
    }
}
