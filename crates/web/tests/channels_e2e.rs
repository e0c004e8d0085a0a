//! End to end with real protocol peers on loopback: a lead created through the API gets its
//! first text at an HTTP server speaking Twilio's Messages API and its email at a real SMTP
//! server; the email's pixel produces an `engagement` event on the SSE stream; a signed STOP
//! makes every later text skip.

mod common;

use axum::extract::State;
use axum::routing::post;
use common::{TestApp, day_zone};
use futures::StreamExt;
use mailin_embedded::{Handler, Response, Server, response};
use relentless_engine::Config;
use relentless_engine::channels::Router;
use relentless_engine::channels::email::SmtpChannel;
use relentless_engine::channels::sms::{TwilioChannel, TwilioConfig};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const AUTH: &str = "e2e-auth-token";

#[derive(Clone, Default)]
struct Smtp {
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    current: Vec<u8>,
}

impl Handler for Smtp {
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }
    fn data_end(&mut self) -> Response {
        self.received
            .lock()
            .unwrap()
            .push(std::mem::take(&mut self.current));
        response::OK
    }
}

fn start_smtp(h: Smtp) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut server = Server::new(h);
    server
        .with_name("mx.test.local")
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    port
}

type Texts = Arc<Mutex<Vec<HashMap<String, String>>>>;

/// An HTTP server that speaks Twilio's Messages API and records what it got.
async fn start_twilio(texts: Texts) -> String {
    async fn create(
        State(texts): State<Texts>,
        body: String,
    ) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
        let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let mut t = texts.lock().unwrap();
        t.push(form);
        let sid = format!("SM{:032}", t.len());
        (
            axum::http::StatusCode::CREATED,
            axum::Json(json!({"sid": sid, "status": "queued"})),
        )
    }
    let app = axum::Router::new()
        .route("/2010-04-01/Accounts/{sid}/Messages.json", post(create))
        .with_state(texts);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

async fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lead_to_text_and_email_to_engagement_to_stop() {
    let smtp = Smtp::default();
    let mails = smtp.received.clone();
    let port = start_smtp(smtp);
    let texts: Texts = Default::default();
    let twilio_base = start_twilio(texts.clone()).await;
    let mut tc = TwilioConfig::new("AC123", AUTH, "+15125550100");
    tc.api_base = twilio_base;
    let router = Router {
        email: Arc::new(
            SmtpChannel::from_url(&format!("smtp://127.0.0.1:{port}"), "team@mail.example.com")
                .unwrap(),
        ),
        sms: Arc::new(TwilioChannel::new(tc)),
    };
    let config = Config {
        twilio_auth_token: Some(AUTH.into()),
        email_from: "team@mail.example.com".into(),
        ..Config::default()
    };
    let app = TestApp::spawn_with(config, Arc::new(router)).await;

    // 1. A new lead: the first text reaches "Twilio" at once.
    let (_, lead) = app.post(&app.admin, "/api/v1/leads", json!({"first_name": "Jordan", "phone": "(512) 555-0134", "email": "jordan@example.com", "timezone": day_zone()})).await;
    let id = lead["id"].as_i64().unwrap();
    let first = wait("the first text at Twilio", || {
        texts.lock().unwrap().first().cloned()
    })
    .await;
    assert_eq!(first["To"], "+15125550134");
    assert_eq!(first["From"], "+15125550100");
    assert!(first["Body"].contains("Jordan"), "{first:?}");
    let touches = app.touches(id).await;
    assert!(
        touches[0]["provider_id"]
            .as_str()
            .unwrap()
            .starts_with("SM"),
        "the provider's id is kept"
    );

    // 2. The +1h email, brought forward, reaches the SMTP server with tracking and unsubscribe.
    let mut tx = app.engine.store.write().await.unwrap();
    let email = tx
        .touches_for_lead(id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.channel == relentless_core::types::Channel::Email)
        .unwrap();
    tx.touch_reschedule(email.id, relentless_engine::now_ms() - 1, "test")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    app.engine.wake.notify_one();
    let raw = wait("the email at the SMTP server", || {
        mails.lock().unwrap().first().cloned()
    })
    .await;
    let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(
        msg.to().unwrap().first().unwrap().address().unwrap(),
        "jordan@example.com"
    );
    let html = msg.body_html(0).unwrap().to_string();
    let text = msg.body_text(0).unwrap().to_string();
    let token = html
        .split("/t/")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect::<String>();
    assert!(
        html.contains(&format!("{}/t/{token}/o.gif", app.base)),
        "open pixel"
    );
    assert!(
        text.contains(&format!("{}/u/{token}", app.base)),
        "unsubscribe link in the text part"
    );
    let lu = msg.header_raw("List-Unsubscribe").unwrap();
    assert!(lu.contains(&format!("/u/{token}")), "{lu}");
    assert_eq!(
        msg.header_raw("List-Unsubscribe-Post").unwrap().trim(),
        "List-Unsubscribe=One-Click"
    );

    // 3. The lead opens it: the agent's stream gets `engagement` at once.
    let res = app
        .client
        .get(format!("{}/api/v1/notifications/stream", app.base))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    let ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148";
    let started = std::time::Instant::now();
    app.client
        .get(format!("{}/t/{token}/o.gif", app.base))
        .header("user-agent", ua)
        .send()
        .await
        .unwrap();
    let mut got = String::new();
    while !got.contains("event: engagement") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("engagement event")
            .unwrap()
            .unwrap();
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(got.contains("Jordan"), "{got}");
    eprintln!("pixel → SSE in {:?}", started.elapsed());

    // 4. STOP, signed like Twilio: the next text is not sent.
    let url = format!("{}/webhooks/twilio/sms", app.base);
    let params = vec![
        ("From".to_string(), "+15125550134".to_string()),
        ("Body".to_string(), "STOP".to_string()),
        ("MessageSid".to_string(), "SMin1".to_string()),
    ];
    let sig = relentless_core::twilio::signature(AUTH, &url, &params);
    let res = app
        .client
        .post(&url)
        .header("X-Twilio-Signature", sig)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert!(res.text().await.unwrap().contains("<Message>"));
    let before = texts.lock().unwrap().len();
    let mut tx = app.engine.store.write().await.unwrap();
    let next_text = tx
        .touches_for_lead(id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| {
            t.status == relentless_core::types::TouchStatus::Scheduled
                && t.channel == relentless_core::types::Channel::Text
        })
        .unwrap();
    tx.touch_reschedule(next_text.id, relentless_engine::now_ms() - 1, "test")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    app.engine.wake.notify_one();
    app.wait_touches(id, "the text settled", |t| {
        t.iter()
            .any(|t| t["id"] == next_text.id && t["status"] != "scheduled")
    })
    .await;
    assert_eq!(texts.lock().unwrap().len(), before, "no text after STOP");
}
